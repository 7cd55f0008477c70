/* flags.h — distribution capability flags and control-message operation codes (OTP's dist.h). */
#ifndef HORDEC_DIST_FLAGS_H
#define HORDEC_DIST_FLAGS_H

#include <stdint.h>

#define DFLAG_PUBLISHED 0x01ULL
#define DFLAG_ATOM_CACHE 0x02ULL
#define DFLAG_EXTENDED_REFERENCES 0x04ULL
#define DFLAG_DIST_MONITOR 0x08ULL
#define DFLAG_FUN_TAGS 0x10ULL
#define DFLAG_DIST_MONITOR_NAME 0x20ULL
#define DFLAG_NEW_FUN_TAGS 0x80ULL
#define DFLAG_EXTENDED_PIDS_PORTS 0x100ULL
#define DFLAG_EXPORT_PTR_TAG 0x200ULL
#define DFLAG_BIT_BINARIES 0x400ULL
#define DFLAG_NEW_FLOATS 0x800ULL
#define DFLAG_DIST_HDR_ATOM_CACHE 0x2000ULL
#define DFLAG_SMALL_ATOM_TAGS 0x4000ULL
#define DFLAG_UTF8_ATOMS 0x10000ULL
#define DFLAG_MAP_TAG 0x20000ULL
#define DFLAG_BIG_CREATION 0x40000ULL
#define DFLAG_HANDSHAKE_23 0x1000000ULL
#define DFLAG_UNLINK_ID 0x2000000ULL
#define DFLAG_MANDATORY_25_DIGEST 0x4000000ULL
#define DFLAG_V4_NC (0x4ULL << 32)

/* What OTP 25 refuses to talk without. */
#define HC_DFLAGS_MANDATORY                                                                                            \
    (DFLAG_EXTENDED_REFERENCES | DFLAG_FUN_TAGS | DFLAG_EXTENDED_PIDS_PORTS | DFLAG_UTF8_ATOMS | DFLAG_NEW_FUN_TAGS |  \
     DFLAG_BIG_CREATION | DFLAG_NEW_FLOATS | DFLAG_MAP_TAG | DFLAG_EXPORT_PTR_TAG | DFLAG_BIT_BINARIES |               \
     DFLAG_HANDSHAKE_23)

/* ei's own set plus DIST_MONITOR_NAME: without that bit the BEAM never sends MONITOR_P to a C node, so
 * GenServer.call to an unknown name would time out instead of failing with noproc. No PUBLISHED: we
 * stay hidden (a visible node would be drawn into global's protocol, which we do not speak).
 * DIST_HDR_ATOM_CACHE: atoms (node names in every pid and ref above all) travel as one-byte cache
 * references, which saves the BEAM an atom-table lookup per atom on both encode and decode. */
#define HC_DFLAGS_OURS                                                                                                 \
    (HC_DFLAGS_MANDATORY | DFLAG_DIST_MONITOR | DFLAG_DIST_MONITOR_NAME | DFLAG_SMALL_ATOM_TAGS | DFLAG_UNLINK_ID |    \
     DFLAG_MANDATORY_25_DIGEST | DFLAG_V4_NC | DFLAG_DIST_HDR_ATOM_CACHE)

enum hc_dop {
    HC_DOP_LINK = 1,
    HC_DOP_SEND = 2,
    HC_DOP_EXIT = 3,
    HC_DOP_UNLINK = 4,
    HC_DOP_REG_SEND = 6,
    HC_DOP_GROUP_LEADER = 7,
    HC_DOP_EXIT2 = 8,
    HC_DOP_MONITOR_P = 19,
    HC_DOP_DEMONITOR_P = 20,
    HC_DOP_MONITOR_P_EXIT = 21,
    HC_DOP_SEND_SENDER = 22,
    HC_DOP_SPAWN_REQUEST = 29,
    HC_DOP_SPAWN_REPLY = 31,
    HC_DOP_ALIAS_SEND = 33,
    HC_DOP_UNLINK_ID = 35,
    HC_DOP_UNLINK_ID_ACK = 36,
};

/* Sequential-trace variants: the base message plus a trailing trace token. A BEAM sends them when a
 * process with a seq_trace token talks to us; we deliver them as the base message. */
enum hc_dop_tt {
    HC_DOP_SEND_TT = 12,
    HC_DOP_EXIT_TT = 13,
    HC_DOP_REG_SEND_TT = 16,
    HC_DOP_EXIT2_TT = 18,
    HC_DOP_SEND_SENDER_TT = 23,
    HC_DOP_ALIAS_SEND_TT = 34,
};

#endif
