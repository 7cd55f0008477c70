/* common/ is the bottom layer: not even the public header of a core. */
#include "hordec/hc_crdt.h"
