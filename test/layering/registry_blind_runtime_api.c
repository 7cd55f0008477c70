/* The registry core is sans-I/O: it must not see the runtime (its C-process calls live in registry_rt/). */
#include "hordec/hc_runtime.h"
