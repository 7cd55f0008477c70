/* common/ is the bottom layer: it sees nothing above it. */
#include "dist/conn.h"
