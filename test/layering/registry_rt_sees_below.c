/* Control: registry_rt/ sees both the runtime and the registry core's public header. */
#include "hordec/hc_registry.h"
#include "hordec/hc_runtime.h"
