/* The daemon is on top: nothing below includes its headers. */
#include "daemon/control.h"
