/* control.h — encode and decode distribution control messages.
 *
 * A data packet (after its 4-byte length) is: 'p', 131, ControlTuple, [131, Message]. Encoders append
 * the 'p', 131, ControlTuple part to a buffer; the sender appends 131 + Message. The decoder validates
 * the whole packet — both terms, every length — before anything acts on it, so a malformed packet is
 * rejected as a unit. */
#ifndef HORDEC_DIST_CONTROL_H
#define HORDEC_DIST_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "dist/flags.h"
#include "hordec/hc_term.h" /* hc_span */

/* A process as the protocol names it: a pid, or a registered name (on the receiving node). */
typedef struct hc_procref {
    bool is_name;
    hc_pid pid;
    hc_atom name;
} hc_procref;

typedef struct hc_ctrl {
    int op;
    bool known;         /* false for well-formed messages of OTP ops we do not handle (ignore them) */
    hc_pid from;        /* LINK, EXIT*, MONITOR_P*, DEMONITOR_P, REG_SEND, UNLINK_ID*, ALIAS_SEND, SPAWN_REQUEST */
    hc_procref to;      /* SEND, LINK, EXIT*, MONITOR_P, DEMONITOR_P, REG_SEND (name), UNLINK_ID*, SPAWN_REPLY */
    hc_procref watched; /* MONITOR_P_EXIT: the process that died, as the watcher named it */
    hc_span to_raw;     /* raw bytes of To in MONITOR_P/DEMONITOR_P, echoed back in MONITOR_P_EXIT */
    hc_ref ref;         /* MONITOR_P*, DEMONITOR_P, ALIAS_SEND (the alias), SPAWN_* (ReqId) */
    hc_span reason;     /* EXIT, EXIT2, MONITOR_P_EXIT */
    hc_span id;         /* UNLINK_ID / UNLINK_ID_ACK: the raw integer term */
    hc_span result;     /* SPAWN_REPLY: the pid or error atom */
    int64_t flags;      /* SPAWN_REPLY */
    hc_span msg;        /* payload term when present (len 0 if none) */
} hc_ctrl;

/* Decodes a data packet (the bytes after the 4-byte length). HC_OK or HC_EDECODE (malformed, or an op
 * number the protocol does not define). Trace-token variants decode as their base op. Spans point
 * into `p`. */
int hc_ctrl_decode(const uint8_t *p, size_t len, hc_ctrl *out);

/* Encoders: each appends 'p', 131 and the control tuple. */
int hc_ctrl_enc_send(hc_buf *b, const hc_pid *to);
int hc_ctrl_enc_reg_send(hc_buf *b, const hc_pid *from, hc_atom to_name);
int hc_ctrl_enc_link(hc_buf *b, const hc_pid *from, const hc_pid *to);
int hc_ctrl_enc_exit(hc_buf *b, const hc_pid *from, const hc_pid *to, const uint8_t *reason, size_t rlen);
int hc_ctrl_enc_exit2(hc_buf *b, const hc_pid *from, const hc_pid *to, const uint8_t *reason, size_t rlen);
int hc_ctrl_enc_monitor_p(hc_buf *b, const hc_pid *from, const hc_procref *to, const hc_ref *ref);
int hc_ctrl_enc_demonitor_p(hc_buf *b, const hc_pid *from, const hc_procref *to, const hc_ref *ref);
/* `watched_raw` is To exactly as the watcher sent it in MONITOR_P (pid or atom). */
int hc_ctrl_enc_monitor_p_exit(hc_buf *b, const uint8_t *watched_raw, size_t wlen, const hc_pid *watcher,
                               const hc_ref *ref, const uint8_t *reason, size_t rlen);
int hc_ctrl_enc_unlink_id(hc_buf *b, uint64_t id, const hc_pid *from, const hc_pid *to);
int hc_ctrl_enc_unlink_id_ack(hc_buf *b, const uint8_t *id_raw, size_t idlen, const hc_pid *from, const hc_pid *to);
int hc_ctrl_enc_alias_send(hc_buf *b, const hc_pid *from, const hc_ref *alias);
/* SPAWN_REQUEST {29, ReqId, From, GroupLeader, {M, F, Arity}, OptList}; the sender appends the arg list. */
int hc_ctrl_enc_spawn_request(hc_buf *b, const hc_ref *req, const hc_pid *from, const hc_pid *group_leader,
                              const char *mod, const char *fun, uint32_t arity, const uint8_t *opts, size_t olen);
/* SPAWN_REPLY {31, ReqId, To, Flags, Result}: result is a pid (success) or an error atom. */
int hc_ctrl_enc_spawn_reply(hc_buf *b, const hc_ref *req, const hc_pid *to, int64_t flags, const uint8_t *result,
                            size_t rlen);

#endif
