/* runtime/ and crdt/ are side by side: neither sees the other. */
#include "crdt/map.h"
