/* fuzz_term.c — the one term codec (hc_term.h) on hostile bytes: every decoder, the skipper, the checker, the
 * list and map iterators and the request matcher, each starting at the first byte of the input.
 *
 * Checked beyond "no crash": the documented contracts. A failed decoder leaves the cursor where it was; a
 * successful one stays inside the input; hc_term_check accepts only what hc_dec_skip reads to the end;
 * hc_dec_term and hc_dec_skip agree; an iterator that starts hands out exactly its count of whole terms; and
 * what a decoder read encodes back (hc_enc_*) to bytes that decode to the same value. */
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "hordec/hc_term.h"

#define CHECK_CURSOR(rc, idx, len)                                                                                     \
    FZ_ASSERT((rc) == HC_OK ? (idx) <= (len) : (idx) == 0, "rc %d moved the cursor to %zu", (rc), (idx))

static void walk(hc_iter *it, bool map)
{
    uint32_t left = it->left, seen = 0;
    hc_span a, b;
    while (map ? hc_iter_next_pair(it, &a, &b) : hc_iter_next(it, &a)) {
        size_t i = 0;
        FZ_ASSERT(hc_dec_skip(a.p, a.len, &i) == HC_OK && i == a.len, "element %u is not one whole term", seen);
        if (map) {
            i = 0;
            FZ_ASSERT(hc_dec_skip(b.p, b.len, &i) == HC_OK && i == b.len, "value %u is not one whole term", seen);
        }
        seen++;
    }
    FZ_ASSERT(seen == left, "iterator handed out %u of %u", seen, left);
}

static int req_fn(void *ctx, hc_req_args *a)
{
    (void)ctx;
    for (uint32_t k = 0; k < a->arity; k++) {
        hc_span s;
        if (hc_dec_term(a->p, a->len, &a->i, &s))
            return HC_EDECODE;
    }
    FZ_ASSERT(hc_req_args_done(a), "arguments do not end the request");
    return HC_OK;
}

static const hc_req_entry reqs[] = {
    {"ping", 0, req_fn},
    {"get", 1, req_fn},
    {"put", 2, req_fn},
    {"register", 4, req_fn},
    {"\xc3\xa9t\xc3\xa9", 1, req_fn},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fz_dup(data, size);
    size_t len = size, i;
    int rc;
    hc_buf b = {0};

    (void)hc_term_type(p, len, 0);
    (void)hc_peek_type(p, len, 0);

    i = 0;
    int skip_rc = hc_dec_skip(p, len, &i);
    CHECK_CURSOR(skip_rc, i, len);
    size_t skipped = i;
    hc_span t;
    i = 0;
    rc = hc_dec_term(p, len, &i, &t);
    FZ_ASSERT(rc == skip_rc && i == skipped, "hc_dec_term and hc_dec_skip disagree");
    if (hc_term_check(p, len) == HC_OK)
        FZ_ASSERT(skip_rc == HC_OK && skipped == len, "hc_term_check accepted what hc_dec_skip does not read");

    hc_atom a;
    i = 0;
    rc = hc_dec_atom(p, len, &i, &a);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        size_t j = 0;
        if (strlen(hc_atom_name(a)) == hc_atom_len(a)) /* no NUL inside: comparable as a C string */
            FZ_ASSERT(hc_dec_is_atom(p, len, &j, hc_atom_name(a)) && j == i, "hc_dec_is_atom disagrees");
        hc_enc_atom(&b, a);
        hc_atom a2;
        j = 0;
        FZ_ASSERT(b.err == HC_OK && hc_dec_atom(b.data, b.len, &j, &a2) == HC_OK && a2 == a, "atom round trip");
        hc_buf_reset(&b);
    }
    bool bv;
    i = 0;
    rc = hc_dec_bool(p, len, &i, &bv);
    CHECK_CURSOR(rc, i, len);

    hc_pid pid;
    i = 0;
    rc = hc_dec_pid(p, len, &i, &pid);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        hc_pid p2;
        size_t j = 0;
        hc_enc_pid(&b, &pid);
        FZ_ASSERT(b.err == HC_OK && hc_dec_pid(b.data, b.len, &j, &p2) == HC_OK && hc_pid_eq(&p2, &pid),
                  "pid round trip");
        hc_buf_reset(&b);
    }
    hc_ref ref;
    i = 0;
    rc = hc_dec_ref(p, len, &i, &ref);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        FZ_ASSERT(ref.len >= 1 && ref.len <= 5, "ref of %u words", ref.len);
        hc_ref r2;
        size_t j = 0;
        hc_enc_ref(&b, &ref);
        FZ_ASSERT(b.err == HC_OK && hc_dec_ref(b.data, b.len, &j, &r2) == HC_OK && hc_ref_eq(&r2, &ref),
                  "ref round trip");
        hc_buf_reset(&b);
    }

    int64_t l;
    i = 0;
    rc = hc_dec_long(p, len, &i, &l);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        int64_t l2;
        size_t j = 0;
        hc_enc_long(&b, l);
        FZ_ASSERT(b.err == HC_OK && hc_dec_long(b.data, b.len, &j, &l2) == HC_OK && l2 == l, "long round trip");
        hc_buf_reset(&b);
    }
    uint64_t u;
    i = 0;
    rc = hc_dec_ulong(p, len, &i, &u);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        uint64_t u2;
        size_t j = 0;
        hc_enc_ulong(&b, u);
        FZ_ASSERT(b.err == HC_OK && hc_dec_ulong(b.data, b.len, &j, &u2) == HC_OK && u2 == u, "ulong round trip");
        hc_buf_reset(&b);
    }
    double d;
    i = 0;
    rc = hc_dec_double(p, len, &i, &d);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        FZ_ASSERT(isfinite(d), "a non-finite double decoded");
        double d2;
        size_t j = 0;
        hc_enc_double(&b, d);
        FZ_ASSERT(b.err == HC_OK && hc_dec_double(b.data, b.len, &j, &d2) == HC_OK && !memcmp(&d, &d2, sizeof d),
                  "double round trip");
        hc_buf_reset(&b);
    }
    hc_span s;
    i = 0;
    rc = hc_dec_binary(p, len, &i, &s);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK) {
        hc_span s2;
        size_t j = 0;
        hc_enc_binary(&b, s.p, s.len);
        FZ_ASSERT(b.err == HC_OK && hc_dec_binary(b.data, b.len, &j, &s2) == HC_OK && s2.len == s.len &&
                      (!s.len || !memcmp(s.p, s2.p, s.len)),
                  "binary round trip");
        hc_buf_reset(&b);
    }
    i = 0;
    rc = hc_dec_string(p, len, &i, &s);
    CHECK_CURSOR(rc, i, len);
    if (rc == HC_OK)
        FZ_ASSERT(!s.len || (s.p >= p && s.p + s.len <= p + len), "string outside the input");

    uint32_t n;
    i = 0;
    rc = hc_dec_tuple_header(p, len, &i, &n);
    CHECK_CURSOR(rc, i, len);
    i = 0;
    rc = hc_dec_map_header(p, len, &i, &n);
    CHECK_CURSOR(rc, i, len);
    i = 0;
    rc = hc_dec_list_header(p, len, &i, &n);
    CHECK_CURSOR(rc, i, len);

    hc_iter it;
    i = 0;
    if (hc_iter_list(&it, p, len, &i) == HC_OK) {
        FZ_ASSERT(skip_rc == HC_OK && i == skipped, "a list iterator ends elsewhere than the skipper");
        walk(&it, false);
    }
    i = 0;
    if (hc_iter_improper_list(&it, p, len, &i) == HC_OK) {
        FZ_ASSERT(skip_rc == HC_OK && i == skipped, "an improper-list iterator ends elsewhere than the skipper");
        walk(&it, false);
    }
    i = 0;
    if (hc_iter_map(&it, p, len, &i) == HC_OK) {
        FZ_ASSERT(skip_rc == HC_OK && i == skipped, "a map iterator ends elsewhere than the skipper");
        walk(&it, true);
    }

    hc_req_args args;
    const hc_req_entry *e = hc_req_match(reqs, sizeof reqs / sizeof reqs[0], p, len, &args);
    if (e) {
        FZ_ASSERT(skip_rc == HC_OK && skipped == len, "matched a request that is not one whole term");
        (void)e->fn(NULL, &args);
    }

    hc_buf_free(&b);
    free(p);
    hc_atom_table_reset();
    return 0;
}
