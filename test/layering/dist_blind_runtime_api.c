/* dist/ knows nothing about processes. */
#include "hordec/hc_runtime.h"
