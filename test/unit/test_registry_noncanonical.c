/* test_registry_noncanonical.c — a replica message may carry member and client records whose keys are another
 * encoding of the same term ({client, Pid} with 'client' as a latin1 atom, say). The core ignores such keys (only
 * its own encoding is its, core.c canonical()), and its invariant check must agree: fuzz_registry found the check
 * reporting "a client record differs from its watch" for a record the core had rightly ignored
 * (test/fuzz/corpus/fuzz_registry/crash-client-record-differs-from-watch). */
#include "registry_harness.h"

/* Writes key => value straight into replica i's engine, as a peer's delta would, and lets the core see it. */
static void put_raw(h_world *w, int i, const hc_buf *k, const hc_buf *v)
{
    hc_crdt *e = hc_registry_core_engine(w->r[i].core);
    assert_int_equal(hc_crdt_put(e, k->data, k->len, v->data, v->len, w->now), HC_OK);
    w->now.mono_ms += 10;
    w->now.wall_ms += 10;
    hc_registry_core_ops.tick(w->r[i].core, w->now);
    h_pump(w, i);
}

static void test_noncanonical_client_and_member_keys(void **state)
{
    (void)state;
    h_world w;
    h_init(&w, 1, HC_REGISTRY_UNIQUE);
    h_pump(&w, 0);
    static const uint8_t client_l1[] = {104, 2, 115, 6, 'c', 'l', 'i', 'e', 'n', 't'}; /* {client (latin1), */
    static const uint8_t member_l1[] = {104, 2, 115, 6, 'm', 'e', 'm', 'b', 'e', 'r'}; /* {member (latin1), */
    hc_pid client = h_beam(7);
    hc_buf k = {0}, v = {0};

    hc_buf_append(&k, client_l1, sizeof client_l1);
    hc_enc_pid(&k, &client);
    hc_enc_tuple_header(&v, 2);
    hc_enc_atom_cstr(&v, "reg");
    hc_enc_atom(&v, h_node(0));
    put_raw(&w, 0, &k, &v);
    h_check(&w); /* failed before the fix: "a client record differs from its watch" */

    hc_buf_reset(&k);
    hc_buf_reset(&v);
    hc_buf_append(&k, member_l1, sizeof member_l1);
    hc_enc_tuple_header(&k, 2);
    hc_enc_atom_cstr(&k, "reg");
    hc_enc_atom(&k, h_node(2));
    hc_enc_atom_cstr(&v, "true");
    put_raw(&w, 0, &k, &v);
    h_check(&w); /* and "member reg/h3@sim is not in the member list" */

    /* the same client record in our own encoding is indexed, and checked */
    hc_buf_reset(&k);
    hc_buf_reset(&v);
    hc_enc_tuple_header(&k, 2);
    hc_enc_atom_cstr(&k, "client");
    hc_enc_pid(&k, &client);
    hc_enc_tuple_header(&v, 2);
    hc_enc_atom_cstr(&v, "reg");
    hc_enc_atom(&v, h_node(0));
    put_raw(&w, 0, &k, &v);
    h_check(&w);

    hc_buf_free(&k);
    hc_buf_free(&v);
    h_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noncanonical_client_and_member_keys),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    hc_atom_table_reset();
    return rc;
}
