/* The daemon is on top: nothing below includes its headers. */
#include "hordec/control.h"
