/* Control: the host sees the runtime and the CRDT, public and private headers alike. */
#include "crdt/map.h"
#include "dist/conn.h"
#include "host/host.h"
#include "hordec/hc_crdt.h"
#include "hordec/hc_runtime.h"
