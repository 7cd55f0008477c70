/* A core must not see the runtime: crdt/ cannot include its public header. */
#include "hordec/hc_runtime.h"
