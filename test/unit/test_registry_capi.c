/* test_registry_capi.c — C processes as registry users (hc_registry.h's calls), in a real runtime with a registry
 * replica hosted by the real host binding (host_rt), on one node and no network: register (taken, bad input,
 * no such registry), lookup, unregister, and the replica dropping a process's names when it exits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hordec/hc_registry.h"
#include "hordec/hc_runtime.h"
#include "host/host_rt.h"

/* A C process that makes one registry call at a time and records the outcome. */
typedef struct user {
    hc_registry_req req;
    int done;   /* callbacks run */
    int status; /* of the last */
    hc_pid pid; /* of the last */
    size_t n_matches;
    hc_pid match_pid;
    uint8_t match_val[64];
    size_t match_len;
} user;

static void on_result(hc_rt *rt, hc_proc *caller, const hc_registry_result *res, void *ud)
{
    user *u = ud;
    u->done++;
    u->status = res->status;
    u->pid = res->pid;
    u->n_matches = res->n_matches;
    if (res->n_matches) {
        u->match_pid = res->matches[0].pid;
        u->match_len = res->matches[0].value_len < sizeof u->match_val ? res->matches[0].value_len : 0;
        memcpy(u->match_val, res->matches[0].value, u->match_len);
    }
    assert_ptr_equal(hc_proc_state(caller), u);
    (void)rt;
}

static const hc_proc_ops user_ops = {0};

typedef struct world {
    hc_rt *rt;
    hc_atom reg;
    hc_proc *replica;
    user users[3];
    hc_proc *procs[3];
    hc_pid pids[3];
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    hc_rt_config cfg;
    hc_rt_config_defaults(&cfg);
    cfg.node_name = "capi@127.0.0.1";
    cfg.cookie = "capi";
    cfg.register_epmd = false;
    char err[256];
    assert_int_equal(hc_rt_new(&cfg, &w->rt, err, sizeof err), HC_OK);
    w->reg = hc_atom_intern_cstr("reg");
    hc_registry_config rc;
    hc_registry_config_init(&rc, w->reg, hc_rt_node(w->rt), HC_REGISTRY_UNIQUE, 42);
    void *core;
    assert_int_equal(hc_registry_core_new(&rc, hc_host_rt_now(w->rt), &core), HC_OK);
    assert_int_equal(hc_host_rt_start(w->rt, w->reg, &hc_registry_core_ops, core, NULL, &w->replica), HC_OK);
    hc_registry_core_set_self(core, hc_proc_pid(w->replica));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hc_proc_spawn(w->rt, &user_ops, &w->users[i], 0, &w->procs[i]), HC_OK);
        w->pids[i] = *hc_proc_pid(w->procs[i]);
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    hc_rt_free(w->rt);
    hc_atom_table_reset();
    free(w);
    return 0;
}

/* Runs the loop until user i's callback ran `n` times in all. */
static void await(world *w, int i, int n)
{
    for (int k = 0; k < 1000 && w->users[i].done < n; k++)
        hc_rt_run_once(w->rt, 1);
    assert_int_equal(w->users[i].done, n);
}

static hc_buf term_atom(const char *a)
{
    hc_buf b = {0};
    hc_enc_atom_cstr(&b, a);
    return b;
}

static void reg(world *w, int i, const hc_buf *key, const hc_buf *val)
{
    assert_int_equal(hc_registry_register(w->rt, w->procs[i], &w->users[i].req, w->reg, key->data, key->len, val->data,
                                          val->len, on_result, &w->users[i]),
                     HC_OK);
}

static void lookup(world *w, int i, const hc_buf *key)
{
    assert_int_equal(
        hc_registry_lookup(w->rt, w->procs[i], &w->users[i].req, w->reg, key->data, key->len, on_result, &w->users[i]),
        HC_OK);
}

static void test_register_lookup_unregister(void **state)
{
    world *w = *state;
    hc_buf key = term_atom("svc"), val = term_atom("v0"), other = term_atom("other");
    reg(w, 0, &key, &val);
    await(w, 0, 1);
    assert_int_equal(w->users[0].status, HC_OK);
    assert_true(hc_pid_eq(&w->users[0].pid, hc_proc_pid(w->replica)));
    /* taken: the holder is named */
    reg(w, 1, &key, &other);
    await(w, 1, 1);
    assert_int_equal(w->users[1].status, HC_EEXIST);
    assert_true(hc_pid_eq(&w->users[1].pid, &w->pids[0]));
    lookup(w, 1, &key);
    await(w, 1, 2);
    assert_int_equal(w->users[1].status, HC_OK);
    assert_int_equal(w->users[1].n_matches, 1);
    assert_true(hc_pid_eq(&w->users[1].match_pid, &w->pids[0]));
    assert_int_equal(w->users[1].match_len, val.len);
    assert_memory_equal(w->users[1].match_val, val.data, val.len);
    /* only its own registration can a process remove */
    assert_int_equal(hc_registry_unregister(w->rt, w->procs[1], &w->users[1].req, w->reg, key.data, key.len, on_result,
                                            &w->users[1]),
                     HC_OK);
    await(w, 1, 3);
    lookup(w, 1, &key);
    await(w, 1, 4);
    assert_int_equal(w->users[1].n_matches, 1);
    assert_int_equal(hc_registry_unregister(w->rt, w->procs[0], &w->users[0].req, w->reg, key.data, key.len, on_result,
                                            &w->users[0]),
                     HC_OK);
    await(w, 0, 2);
    assert_int_equal(w->users[0].status, HC_OK);
    lookup(w, 1, &key);
    await(w, 1, 5);
    assert_int_equal(w->users[1].status, HC_OK);
    assert_int_equal(w->users[1].n_matches, 0);
    hc_buf_free(&key);
    hc_buf_free(&val);
    hc_buf_free(&other);
}

/* The replica monitors the processes registered through it: one that exits loses its names. */
static void test_exit_unregisters(void **state)
{
    world *w = *state;
    hc_buf key = term_atom("worker"), val = term_atom("v");
    reg(w, 2, &key, &val);
    await(w, 2, 1);
    assert_int_equal(w->users[2].status, HC_OK);
    hc_span r = hc_reason_normal();
    hc_proc_exit(w->rt, w->procs[2], r.p, r.len);
    for (int k = 0; k < 50; k++)
        hc_rt_run_once(w->rt, 1);
    lookup(w, 0, &key);
    await(w, 0, 1);
    assert_int_equal(w->users[0].status, HC_OK);
    assert_int_equal(w->users[0].n_matches, 0);
    /* and the name is free for another */
    reg(w, 1, &key, &val);
    await(w, 1, 1);
    assert_int_equal(w->users[1].status, HC_OK);
    hc_buf_free(&key);
    hc_buf_free(&val);
}

static void test_bad_calls(void **state)
{
    world *w = *state;
    hc_buf key = term_atom("k"), val = term_atom("v");
    uint8_t broken[] = {104, 2, 119}; /* not one whole term */
    user *u = &w->users[0];
    assert_int_equal(hc_registry_register(w->rt, w->procs[0], &u->req, w->reg, broken, sizeof broken, val.data, val.len,
                                          on_result, u),
                     HC_EINVAL);
    assert_int_equal(hc_registry_register(w->rt, w->procs[0], &u->req, w->reg, key.data, key.len, broken, sizeof broken,
                                          on_result, u),
                     HC_EINVAL);
    assert_int_equal(hc_registry_lookup(w->rt, w->procs[0], &u->req, w->reg, key.data, key.len, NULL, u), HC_EINVAL);
    assert_int_equal(hc_registry_lookup(w->rt, w->procs[0], NULL, w->reg, key.data, key.len, on_result, u), HC_EINVAL);
    assert_int_equal(hc_registry_unregister(w->rt, NULL, &u->req, w->reg, key.data, key.len, on_result, u), HC_EINVAL);
    /* a registry that does not run here */
    assert_int_equal(hc_registry_register(w->rt, w->procs[0], &u->req, hc_atom_intern_cstr("nope"), key.data, key.len,
                                          val.data, val.len, on_result, u),
                     HC_OK);
    await(w, 0, 1);
    assert_int_equal(u->status, HC_ENOPROC);
    hc_buf_free(&key);
    hc_buf_free(&val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_lookup_unregister, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_unregisters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
