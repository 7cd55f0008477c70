/* seeds.c — writes the seed corpora of the fuzz targets (hordec-fuzz-seeds DIR -> DIR/<target>/seed-*), each made
 * by the real encoders and the real cores, so the fuzzer starts from inputs that get deep: handshakes that come
 * up, packets of every control message, atom-cache headers that fill and reuse slots, and for the cores the exact
 * stream of replica messages a live peer sent while clients wrote through it. Deterministic: the same build writes
 * the same bytes. Kept small on purpose (a few KB per target): the fuzzer finds the rest. */
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "dist/atom_cache.h"
#include "dist/control.h"
#include "dist/handshake.h"
#include "fuzz_core.h"

static const char *root;

static void save(const char *target, const char *name, const hc_buf *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/seed-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || b->err || fwrite(b->data, 1, b->len, f) != b->len || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* A tiny term builder: a = atom, p = pid *, t/m/l = tuple/map/list header (unsigned), n = nil, i = int,
 * u = uint64_t, s = binary of a C string, b = an hc_buf's bytes. */
static void T(hc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        switch (*f) {
        case 'a': hc_enc_atom_cstr(b, va_arg(ap, const char *)); break;
        case 'p': hc_enc_pid(b, va_arg(ap, const hc_pid *)); break;
        case 't': hc_enc_tuple_header(b, va_arg(ap, unsigned)); break;
        case 'm': hc_enc_map_header(b, va_arg(ap, unsigned)); break;
        case 'l': hc_enc_list_header(b, va_arg(ap, unsigned)); break;
        case 'n': hc_enc_nil(b); break;
        case 'i': hc_enc_long(b, va_arg(ap, int)); break;
        case 'u': hc_enc_ulong(b, va_arg(ap, uint64_t)); break;
        case 's': hc_enc_string(b, va_arg(ap, const char *)); break;
        case 'b': {
            const hc_buf *o = va_arg(ap, const hc_buf *);
            hc_buf_append(b, o->data, o->len);
            break;
        }
        default: abort();
        }
    }
    va_end(ap);
}

/* ------------------------------------------------------------------ the distribution layer */

static void seeds_handshake(void)
{
    static const char *const statuses[] = {"ok", "ok_simultaneous", "nok", "not_allowed", "alive"};
    for (unsigned st = 0; st < 5; st++) {
        hc_hs con, acc;
        hc_buf to_acc = {0}, to_con = {0}, out = {0}, seed_acc = {0}, seed_con = {0};
        memset(&con, 0, sizeof con);
        memset(&acc, 0, sizeof acc);
        /* The fuzz target plays fuzz@127.0.0.1 with challenge 0x01020304 in both roles. */
        hc_hs_start_accept(&acc, "fuzz@127.0.0.1", "fuzzcookie", 0x3f7fffdull, 7, 0x01020304u);
        hc_hs_start_connect(&con, "peer@127.0.0.1", "fuzz@127.0.0.1", "fuzzcookie", 0x3f7fffdull, 9, 0x0a0b0c0du,
                            &to_acc);
        hc_hs con2;
        memset(&con2, 0, sizeof con2);
        hc_buf first = {0};
        hc_hs_start_connect(&con2, "fuzz@127.0.0.1", "peer@127.0.0.1", "fuzzcookie", 0x3f7fffdull, 7, 0x01020304u,
                            &first);
        hc_buf_put_u8(&seed_acc, (uint8_t)(1 | st << 1));
        hc_buf_put_u8(&seed_con, 0);
        /* acceptor side: what the connector sends; connector side (con2 talks to a real acceptor acc2) */
        hc_hs acc2;
        memset(&acc2, 0, sizeof acc2);
        hc_hs_start_accept(&acc2, "peer@127.0.0.1", "fuzzcookie", 0x3f7fffdull, 9, 0x0a0b0c0du);
        for (int round = 0; round < 6; round++) {
            /* connector -> acceptor */
            size_t i = 0;
            while (i + 2 <= to_acc.len) {
                size_t n = hc_get_be16(to_acc.data + i);
                hc_buf_append(&seed_acc, to_acc.data + i, 2 + n);
                hc_buf_reset(&out);
                int rc = hc_hs_feed(&acc, to_acc.data + i + 2, n, &out);
                if (rc == HC_HS_DECIDE)
                    rc = hc_hs_decide(&acc, statuses[st], &out);
                hc_buf_append(&to_con, out.data, out.len);
                i += 2 + n;
            }
            hc_buf_reset(&to_acc);
            i = 0;
            while (i + 2 <= to_con.len) {
                size_t n = hc_get_be16(to_con.data + i);
                hc_buf_reset(&out);
                (void)hc_hs_feed(&con, to_con.data + i + 2, n, &out);
                if (st == 4 && con.state == HC_HS_ST_WAIT_STATUS && out.len == 0) {
                    /* "alive": the connector answers true */
                    static const uint8_t yes[] = {'s', 't', 'r', 'u', 'e'};
                    hc_buf_put_be16(&out, sizeof yes);
                    hc_buf_append(&out, yes, sizeof yes);
                }
                hc_buf_append(&to_acc, out.data, out.len);
                i += 2 + n;
            }
            hc_buf_reset(&to_con);
        }
        /* connector role: con2's packets go to acc2; what acc2 sends back is the seed */
        hc_buf c2a = {0}, a2c = {0};
        hc_buf_append(&c2a, first.data, first.len);
        for (int round = 0; round < 6; round++) {
            size_t i = 0;
            while (i + 2 <= c2a.len) {
                size_t n = hc_get_be16(c2a.data + i);
                hc_buf_reset(&out);
                int rc = hc_hs_feed(&acc2, c2a.data + i + 2, n, &out);
                if (rc == HC_HS_DECIDE)
                    (void)hc_hs_decide(&acc2, statuses[st], &out);
                hc_buf_append(&a2c, out.data, out.len);
                i += 2 + n;
            }
            hc_buf_reset(&c2a);
            i = 0;
            while (i + 2 <= a2c.len) {
                size_t n = hc_get_be16(a2c.data + i);
                hc_buf_append(&seed_con, a2c.data + i, 2 + n);
                hc_buf_reset(&out);
                (void)hc_hs_feed(&con2, a2c.data + i + 2, n, &out);
                hc_buf_append(&c2a, out.data, out.len);
                i += 2 + n;
            }
            hc_buf_reset(&a2c);
        }
        char name[32];
        snprintf(name, sizeof name, "accept-%s", statuses[st]);
        save("fuzz_handshake", name, &seed_acc);
        snprintf(name, sizeof name, "connect-%s", statuses[st]);
        save("fuzz_handshake", name, &seed_con);
        hc_buf_free(&to_acc);
        hc_buf_free(&to_con);
        hc_buf_free(&out);
        hc_buf_free(&seed_acc);
        hc_buf_free(&seed_con);
        hc_buf_free(&first);
        hc_buf_free(&c2a);
        hc_buf_free(&a2c);
    }
}

static void seeds_framing(void)
{
    for (unsigned header = 2; header <= 4; header += 2) {
        hc_buf b = {0};
        hc_buf_put_u8(&b, (uint8_t)((header == 4) | (10 << 1)));
        hc_buf_put_u8(&b, 17);
        for (unsigned k = 0; k < 12; k++) {
            size_t n = (k * 37) % 200;
            if (header == 2)
                hc_buf_put_be16(&b, (uint16_t)n);
            else
                hc_buf_put_be32(&b, (uint32_t)n);
            for (size_t x = 0; x < n; x++)
                hc_buf_put_u8(&b, (uint8_t)(x + k));
        }
        save("fuzz_framing", header == 2 ? "handshake" : "data", &b);
        hc_buf_free(&b);
    }
}

/* Control messages in 'p' form: each encoder, with a message where the op carries one. */
static void control_packets(hc_buf *pk, size_t *ends, size_t *n)
{
    hc_pid a = {hc_atom_intern_cstr("a@127.0.0.1"), 40, 0, 3}, b = {hc_atom_intern_cstr("fuzz@127.0.0.1"), 7, 1, 9};
    hc_ref r = {hc_atom_intern_cstr("a@127.0.0.1"), 3, 3, {1, 2, 3}};
    hc_procref to_pid = {false, b, 0}, to_name = {true, {0}, hc_atom_intern_cstr("hordec")};
    hc_buf reason = {0}, msg = {0}, opts = {0};
    T(&reason, "a", "normal");
    T(&msg, "tatpt", 3u, "$gen_call", 2u, &a, 2u);
    hc_enc_ref(&msg, &r);
    T(&msg, "t", 2u);
    hc_enc_atom_cstr(&msg, "echo");
    hc_enc_string(&msg, "hello");
    hc_enc_nil(&opts);
    *n = 0;
#define ADD(call, with_msg)                                                                                            \
    do {                                                                                                               \
        call;                                                                                                          \
        if (with_msg) {                                                                                                \
            hc_buf_put_u8(pk, 131);                                                                                    \
            hc_buf_append(pk, msg.data, msg.len);                                                                      \
        }                                                                                                              \
        ends[(*n)++] = pk->len;                                                                                        \
    } while (0)
    ADD(hc_ctrl_enc_send(pk, &b), 1);
    ADD(hc_ctrl_enc_reg_send(pk, &a, hc_atom_intern_cstr("hordec")), 1);
    ADD(hc_ctrl_enc_link(pk, &a, &b), 0);
    ADD(hc_ctrl_enc_exit(pk, &a, &b, reason.data, reason.len), 0);
    ADD(hc_ctrl_enc_exit2(pk, &a, &b, reason.data, reason.len), 0);
    ADD(hc_ctrl_enc_monitor_p(pk, &a, &to_pid, &r), 0);
    ADD(hc_ctrl_enc_monitor_p(pk, &a, &to_name, &r), 0);
    ADD(hc_ctrl_enc_demonitor_p(pk, &a, &to_name, &r), 0);
    ADD(hc_ctrl_enc_monitor_p_exit(pk, reason.data, reason.len, &a, &r, reason.data, reason.len), 0);
    ADD(hc_ctrl_enc_unlink_id(pk, 77, &a, &b), 0);
    ADD(hc_ctrl_enc_alias_send(pk, &a, &r), 1);
    ADD(hc_ctrl_enc_spawn_request(pk, &r, &a, &a, "erlang", "apply", 2, opts.data, opts.len), 1);
    ADD(hc_ctrl_enc_spawn_reply(pk, &r, &a, 0, reason.data, reason.len), 0);
#undef ADD
    hc_buf_free(&reason);
    hc_buf_free(&msg);
    hc_buf_free(&opts);
}

static void seeds_control_and_cache(void)
{
    hc_buf pk = {0};
    size_t ends[32], n;
    control_packets(&pk, ends, &n);
    hc_atom_cache *ac = hc_ac_new();
    hc_buf stream = {0};
    for (size_t k = 0, start = 0; k < n; start = ends[k++]) {
        hc_buf one = {0};
        hc_buf_append(&one, pk.data + start, ends[k] - start);
        char name[16];
        snprintf(name, sizeof name, "op%02zu", k);
        save("fuzz_control", name, &one);
        /* the same packet as a peer with the atom cache sends it: the control part, then the message */
        size_t c = 2;
        hc_dec_skip(one.data, one.len, &c);
        const struct iovec *iov;
        int niov;
        bool has_msg = c < one.len;
        if (hc_ac_encode(ac, one.data, c, has_msg ? one.data + c + 1 : NULL, has_msg ? one.len - c - 1 : 0, &iov,
                         &niov) == HC_OK) {
            hc_buf wire = {0};
            for (int x = 0; x < niov; x++)
                hc_buf_append(&wire, iov[x].iov_base, iov[x].iov_len);
            hc_ac_commit(ac);
            fz_put_piece(&stream, wire.data + 4, wire.len - 4);
            hc_buf_free(&wire);
        }
        hc_buf_free(&one);
    }
    /* once with every slot new, and the plain 'p' form a peer without the flag would send */
    save("fuzz_atom_cache", "stream", &stream);
    hc_buf plain = {0};
    for (size_t k = 0, start = 0; k < n; start = ends[k++])
        fz_put_piece(&plain, pk.data + start, ends[k] - start);
    save("fuzz_atom_cache", "plain", &plain);
    hc_ac_free(ac);
    hc_buf_free(&plain);
    hc_buf_free(&stream);
    hc_buf_free(&pk);
}

/* ------------------------------------------------------------------ the term codec */

static void seeds_term(void)
{
    hc_pid p = {hc_atom_intern_cstr("a@127.0.0.1"), 40, 0, 3};
    hc_ref r = {hc_atom_intern_cstr("a@127.0.0.1"), 3, 3, {1, 2, 3}};
    hc_buf b = {0};
    T(&b, "tauu", 3u, "put", (uint64_t)1, (uint64_t)1 << 40);
    save("fuzz_term", "put", &b);
    hc_buf_reset(&b);
    T(&b, "tas", 2u, "get", "key");
    save("fuzz_term", "get", &b);
    hc_buf_reset(&b);
    T(&b, "ma", 2u, "k");
    hc_enc_double(&b, 3.25);
    T(&b, "alpin", "l", 2u, &p, -5);
    save("fuzz_term", "map", &b);
    hc_buf_reset(&b);
    hc_enc_ref(&b, &r);
    save("fuzz_term", "ref", &b);
    hc_buf_reset(&b);
    hc_enc_pid(&b, &p);
    save("fuzz_term", "pid", &b);
    hc_buf_reset(&b);
    T(&b, "l", 3u);
    for (int k = 0; k < 3; k++)
        T(&b, "t", 1u);
    hc_enc_atom_cstr(&b, "ping");
    hc_enc_nil(&b);
    save("fuzz_term", "list", &b);
    hc_buf_free(&b);
}

/* ------------------------------------------------------------------ the cores */

/* The stream of inputs B got while A was written to through client requests: A's replica messages, B's own
 * requests and time. */
typedef void (*scenario)(fz_world *w);

static void record(const fz_kind *k, uint8_t variant, const char *target, const char *name, scenario s)
{
    fz_world w;
    hc_buf rec = {0};
    hc_buf_put_u8(&rec, variant);
    fz_world_init(&w, k, variant, true);
    w.route = true;
    w.rec = &rec;
    s(&w);
    fz_settle(&w, 40);
    save(target, name, &rec);
    fz_world_free(&w);
    hc_buf_free(&rec);
}

static uint64_t req(fz_world *w, int i, const hc_pid *from, const hc_buf *b)
{
    return fz_request(w, i, from, b->data, b->len);
}

#define REQ(w, i, from, ...)                                                                                           \
    do {                                                                                                               \
        hc_buf rb_ = {0};                                                                                              \
        T(&rb_, __VA_ARGS__);                                                                                          \
        (void)req(w, i, from, &rb_);                                                                                   \
        hc_buf_free(&rb_);                                                                                             \
    } while (0)

static void crdt_writes(fz_world *w)
{
    hc_pid c = fz_client(1);
    fz_settle(w, 4);
    for (int k = 0; k < 8; k++)
        REQ(w, 0, &c, "taii", 3u, "put", k, k * 10);
    REQ(w, 0, &c, "tami", 2u, "merge", 1u, 100, 1);
    fz_settle(w, 6);
    REQ(w, 0, &c, "tai", 2u, "delete", 3);
    REQ(w, 0, &c, "talin", 2u, "drop", 1u, 4);
    fz_settle(w, 6);
    REQ(w, 1, &c, "tai", 2u, "get", 1);
    REQ(w, 1, &c, "a", "to_map");
    REQ(w, 1, &c, "taii", 3u, "put", 1, 11);
}

static void crdt_requests(fz_world *w)
{
    hc_pid c = fz_client(1);
    REQ(w, 1, &c, "tasa", 3u, "put", "k", "v");
    REQ(w, 1, &c, "tas", 2u, "get", "k");
    REQ(w, 1, &c, "tals", 2u, "take", 1u, "k");
    REQ(w, 1, &c, "a", "stats");
    REQ(w, 1, &c, "tas", 2u, "delete", "k");
    REQ(w, 1, &c, "a", "nonsense");
}

static void reg_writes(fz_world *w)
{
    hc_pid c = fz_client(1), holder = fz_client(9), cproc = {fz_node(0), 20, 0, 1};
    fz_settle(w, 4);
    REQ(w, 0, &c, "tapn", 3u, "attach", &c);
    REQ(w, 0, &c, "taltaataan", 2u, "set_members", 2u, 2u, "reg", "h1@fz", 2u, "reg", "h2@fz");
    REQ(w, 0, &c, "taspap", 5u, "register", "svc", &holder, "v", &c);
    REQ(w, 0, &c, "taspaa", 5u, "register", "local", &cproc, "v", "hordec");
    REQ(w, 0, &c, "taspa", 4u, "update_value", "svc", &holder, "v2");
    REQ(w, 0, &c, "taaa", 3u, "put_meta", "m", "x");
    fz_settle(w, 6);
    REQ(w, 1, &c, "tas", 2u, "lookup", "svc");
    REQ(w, 1, &c, "a", "members");
    REQ(w, 0, &c, "tasp", 3u, "unregister", "svc", &holder);
    REQ(w, 0, &c, "taplpn", 3u, "pids_down", &c, 1u, &holder);
    fz_settle(w, 6);
}

static void sup_writes(fz_world *w)
{
    hc_pid c = fz_client(1);
    fz_settle(w, 4);
    REQ(w, 0, &c, "taltaataataan", 2u, "set_members", 3u, 2u, "sup", "h1@fz", 2u, "sup", "h2@fz", 2u, "sup", "h3@fz");
    fz_settle(w, 4);
    for (int k = 0; k < 4; k++)
        REQ(w, 0, &c, "tataautsi", 2u, "start_child", 4u, "c", k & 1 ? "transient" : "permanent", (uint64_t)k * 7919,
            2u, "echo", k);
    REQ(w, 0, &c, "tataautsiu", 3u, "start_child", 4u, "c", "temporary", (uint64_t)5, 2u, "kv", 1, (uint64_t)42);
    fz_settle(w, 10);
    REQ(w, 1, &c, "a", "which_children");
    REQ(w, 1, &c, "a", "count_children");
    REQ(w, 1, &c, "a", "members");
    REQ(w, 1, &c, "tapmaan", 4u, "attach", &c, 1u, "auto", "true");
}

static void seeds_cores(void)
{
    record(&fz_crdt_kind, 0, "fuzz_crdt", "writes", crdt_writes);
    record(&fz_crdt_kind, 0, "fuzz_crdt", "requests", crdt_requests);
    record(&fz_reg_kind, 0, "fuzz_registry", "unique", reg_writes);
    record(&fz_reg_kind, 1, "fuzz_registry", "duplicate", reg_writes);
    record(&fz_sup_kind, 0, "fuzz_supervisor", "uniform", sup_writes);
    record(&fz_sup_kind, 2, "fuzz_supervisor", "random", sup_writes);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    seeds_handshake();
    seeds_framing();
    seeds_control_and_cache();
    seeds_term();
    seeds_cores();
    hc_atom_table_reset();
    return 0;
}
