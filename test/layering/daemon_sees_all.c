/* Control: the daemon sees every layer, and its own private headers under daemon/. */
#include "daemon/control.h"
#include "hordec/hc_runtime.h"
#include "host/host.h"
