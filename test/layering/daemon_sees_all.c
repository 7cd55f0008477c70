/* Control: the daemon sees every layer, and its own private headers under hordec/. */
#include "hordec/control.h"
#include "hordec/hc_runtime.h"
#include "host/host.h"
