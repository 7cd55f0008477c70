/* The host adapts the runtime; the runtime must not know it. */
#include "host/host.h"
