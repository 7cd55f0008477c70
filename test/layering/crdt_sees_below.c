/* Control: what a crdt/ file may include resolves, so the blind probes fail for the right reason. */
#include "common/etf.h"
#include "crdt/map.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_term.h"
