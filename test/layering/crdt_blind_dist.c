/* crdt/ sits beside dist/, not above it. */
#include "dist/conn.h"
