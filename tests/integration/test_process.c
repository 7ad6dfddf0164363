/* Integration tests: process life cycle under `memtrail run`: fork, fork +
 * exec (followed or not), _exit, SIGKILL after an API snapshot, errno
 * transparency of the interposed functions. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "expected.h"
#include "harness.h"

#define assert_exited(st, code, what)                                                      \
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == (code),                                  \
              "%s: wait status %#x, want exit %d", (what), (unsigned)(st), (code))

static void assert_no_site(const mta_snapshot_t *snap, const char *function)
{
    cr_expect_eq(site_stacks(snap, function), 0, "%s: unexpected stacks at %s", snap->path,
                 function);
    mt_assert_site(snap, function, 0, 0);
}

static size_t count_snapshots(pid_t pid, const char *trigger)
{
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, pid, trigger, &list), 0);
    size_t n = list.n;
    mt_snaplist_free(&list);
    return n;
}

Test(integration, forker, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forker");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forker");
    long parent = mt_number_after(run.out, "parent");
    long child = mt_number_after(run.out, "child");
    cr_assert(parent > 0 && child > 0 && parent != child, "forker printed \"%s\"", run.out);
    cr_expect_eq(count_snapshots(0, NULL), 2, "one exit snapshot per process");

    mta_snapshot_t *ps = mt_load_one(mt_dir, (pid_t)parent, "exit");
    mt_check_meta(ps, (pid_t)parent, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(ps, "before_fork", 555, 5);
    mt_assert_site(ps, "in_parent", 999, 3);
    assert_no_site(ps, "in_child");

    mta_snapshot_t *cs = mt_load_one(mt_dir, (pid_t)child, "exit");
    mt_check_meta(cs, (pid_t)child, (pid_t)parent, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(cs, "before_fork", 555, 5);
    mt_assert_site(cs, "in_child", 444, 2);
    assert_no_site(cs, "in_parent");

    mta_snapshot_free(ps);
    mta_snapshot_free(cs);
    mt_run_free(&run);
    free(prog);
}

/* Fork's prepare handler gives back the pages of the forking thread's ring
 * that hold no record still to be read (record/ring.c): twelve children
 * forked with the parent's ring at as many places, each with 300 blocks
 * just allocated (their records likely still in the ring), have exactly
 * those blocks in their exit snapshots. */
Test(integration, forkring, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forkring");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forkring");
    for (unsigned r = 0; r < 12; r++) {
        char key[32];
        snprintf(key, sizeof(key), "child %u ", r);
        const char *at = strstr(run.out, key);
        cr_assert_not_null(at, "forkring printed no \"%s\": %s", key, run.out);
        long child = strtol(at + strlen(key), NULL, 10);
        cr_assert(child > 0, "forkring printed \"%s\"", run.out);
        mta_snapshot_t *cs = mt_load_one(mt_dir, (pid_t)child, "exit");
        mt_assert_site(cs, "held_blocks", 300 * (1000 + r), 300);
        mt_assert_site(cs, "churn", 0, 0);
        mta_snapshot_free(cs);
    }
    mta_snapshot_t *ps = mt_load_one(mt_dir, (pid_t)mt_number_after(run.out, "parent"), "exit");
    mt_assert_site(ps, "held_blocks", 0, 0);
    mt_assert_site(ps, "churn", 0, 0);
    mta_snapshot_free(ps);
    mt_run_free(&run);
    free(prog);
}

/* "name PID THREADS" in forklate's output (THREADS after `name PID `). */
static long forklate_field(const char *out, const char *name, int field)
{
    const char *p = strstr(out, name);
    long pid = -1, threads = -1, sig = -1;
    cr_assert_not_null(p, "forklate printed no \"%s\" line: %s", name, out);
    sscanf(p + strlen(name), " %ld %ld %ld", &pid, &threads, &sig);
    return field == 0 ? pid : field == 1 ? threads : sig;
}

/* Blocks of a domain in a snapshot. */
static uint64_t domain_blocks(const mta_snapshot_t *snap, unsigned domain)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++)
        n += snap->blocks[i].domain == domain;
    return n;
}

/* A fork child's writer starts late (writer/writer.c): a child that has not
 * allocated since the fork runs on one thread; its exit, many allocations
 * or a termination signal start the writer, and every snapshot is exact. */
Test(integration, forklate, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forklate");
    char lib[PATH_MAX];
    snprintf(lib, sizeof(lib), "%s/libforklate_ctor.so", mt_env("MT_PROGRAMS_DIR"));
    const char *argv[] = {prog, lib, NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forklate");
    pid_t quiet = (pid_t)forklate_field(run.out, "quiet", 0);
    pid_t busy = (pid_t)forklate_field(run.out, "busy", 0);
    pid_t idle = (pid_t)forklate_field(run.out, "idle", 0);
    pid_t parent = (pid_t)forklate_field(run.out, "parent", 0);
    cr_expect_eq(forklate_field(run.out, "quiet", 1), 1, "a child that has not allocated: one thread");
    cr_expect_eq(forklate_field(run.out, "busy", 1), 2, "100,000 events in a tight loop: the writer runs");
    cr_expect_eq(forklate_field(run.out, "slow", 1), 1, "a slow child: one thread");
    pid_t slow = (pid_t)forklate_field(run.out, "slow", 0);
    cr_expect_eq(forklate_field(run.out, "idle", 1), 1, "an idle child: one thread");
    cr_expect_eq(forklate_field(run.out, "idle", 2), SIGTERM, "%s", run.out);
    cr_expect_eq(forklate_field(run.out, "handler", 1), 1, "no thread started from a signal handler");
    cr_expect_eq(forklate_field(run.out, "handler", 2), 2, "...but at the next allocation after it");
    cr_expect_eq(forklate_field(run.out, "ctor", 1), 1, "no thread started while the loader runs");
    cr_expect_eq(forklate_field(run.out, "ctor", 2), 2, "...but at the next allocation after it");
    cr_expect_eq(count_snapshots(0, NULL), 7, "one exit snapshot per process");
    pid_t late[] = {(pid_t)forklate_field(run.out, "handler", 0),
                    (pid_t)forklate_field(run.out, "ctor", 0)};
    for (int i = 0; i < 2; i++) {
        /* Points marked while its writer could not start (in the handler,
         * under the loader), closed before the writer's own. */
        mta_snapshot_t *ls = mt_load_one(mt_dir, late[i], "exit");
        mt_check_timeline(ls);
        mt_assert_site(ls, "before_fork_late", 308, 4);
        mt_assert_site(ls, "child_after", 320, 20);
        mt_assert_site(ls, "child_churn", 0, 0);
        mta_snapshot_free(ls);
    }

    mta_snapshot_t *qs = mt_load_one(mt_dir, quiet, "exit");
    mt_check_meta(qs, quiet, parent, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(qs, "before_fork_late", 308, 4);
    mt_assert_site(qs, "child_quiet", 300, 3);
    mta_snapshot_t *bs = mt_load_one(mt_dir, busy, "exit");
    mt_check_meta(bs, busy, parent, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(bs, "before_fork_late", 308, 4);
    mt_assert_site(bs, "child_busy", 1000, 5);
    mt_assert_site(bs, "child_churn", 0, 0);
    assert_no_site(bs, "child_quiet");
    /* The slow child's writer never started: its time line's points were
     * added by the drains its own thread made, each with the heap as it
     * was then, between what it inherited and its 160 blocks more. */
    mta_snapshot_t *ss = mt_load_one(mt_dir, slow, "exit");
    mt_check_meta(ss, slow, parent, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(ss, "child_slow", 160000, 160);
    mt_check_timeline(ss);
    uint64_t final = ss->totals.live_bytes, between = 0;
    for (uint64_t i = 0; i < ss->ntimeline; i++)
        between += ss->timeline[i].heap_bytes > final - 160000 &&
                   ss->timeline[i].heap_bytes < final;
    cr_expect_geq(between, 4, "%s: %llu time line points while the heap grew, of %llu", ss->path,
                  (unsigned long long)between, (unsigned long long)ss->ntimeline);
    mta_snapshot_free(ss);
    mta_snapshot_t *is = mt_load_one(mt_dir, idle, "exit");
    mt_check_meta(is, idle, parent, MTSNAP_TRIGGER_EXIT, 1, "SIGTERM");
    mt_assert_site(is, "before_fork_late", 308, 4);
    assert_no_site(is, "child_busy");

    /* Nothing of the writer's own (its thread's stack and TLS, made from
     * the exit path or a handler) counts as the program's: every child has
     * what it inherited plus its own sites' blocks. */
    uint64_t inherited = domain_blocks(is, MTSNAP_DOMAIN_NATIVE);
    cr_expect_eq(domain_blocks(qs, MTSNAP_DOMAIN_NATIVE), inherited + 3);
    cr_expect_eq(domain_blocks(bs, MTSNAP_DOMAIN_NATIVE), inherited + 5);
    cr_expect_eq(domain_blocks(qs, MTSNAP_DOMAIN_MMAP) + domain_blocks(bs, MTSNAP_DOMAIN_MMAP) +
                     domain_blocks(is, MTSNAP_DOMAIN_MMAP), 0);
    mta_snapshot_free(qs);
    mta_snapshot_free(bs);
    mta_snapshot_free(is);
    mt_run_free(&run);
    free(prog);
}

/* Default: the exec'd program is traced too and writes its own snapshot. */
Test(integration, forkexec_follow, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forkexec"), *leaky = mt_program("leaky");
    const char *argv[] = {prog, leaky, NULL};
    char real_leaky[PATH_MAX];
    mt_run_t run;

    cr_assert_not_null(realpath(leaky, real_leaky));
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forkexec");
    long child = mt_number_after(run.out, "child");
    cr_assert_gt(child, 0, "forkexec printed \"%s\"", run.out);
    cr_expect_eq(count_snapshots(0, NULL), 2, "parent + exec'd child");

    mta_snapshot_t *cs = mt_load_one(mt_dir, (pid_t)child, "exit");
    pid_t parent = (pid_t)cs->meta.ppid;
    cr_expect_str_eq(cs->exe, real_leaky, "the child's snapshot comes from leaky");
    mt_check_meta(cs, (pid_t)child, 0, MTSNAP_TRIGGER_EXIT, 1, "");
    for (size_t i = 0; i < MT_LEAKY_NSITES; i++)
        mt_assert_site(cs, mt_leaky_sites[i].function, mt_leaky_sites[i].live_bytes,
                       mt_leaky_sites[i].live_blocks);
    uint64_t bytes, blocks;
    site_alloc_total(cs, "temporaries", &bytes, &blocks);
    cr_expect_eq(bytes, MT_LEAKY_TEMP_BYTES);
    cr_expect_eq(blocks, MT_LEAKY_TEMP_BLOCKS);
    assert_no_site(cs, "before_exec_parent");

    mta_snapshot_t *ps = mt_load_one(mt_dir, parent, "exit");
    mt_check_meta(ps, parent, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(ps, "before_exec_parent", 123, 1);
    assert_no_site(ps, "leak_dropped");

    mta_snapshot_free(ps);
    mta_snapshot_free(cs);
    mt_run_free(&run);
    free(prog);
    free(leaky);
}

/* --no-follow: the exec'd program runs untraced and writes nothing. */
Test(integration, forkexec_no_follow, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forkexec"), *leaky = mt_program("leaky");
    const char *argv[] = {prog, leaky, NULL};
    const char *opts[] = {"--no-follow", NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forkexec --no-follow");
    long child = mt_number_after(run.out, "child");
    cr_assert_gt(child, 0, "forkexec printed \"%s\"", run.out);
    cr_expect_eq(count_snapshots(0, NULL), 1, "only the parent is traced");
    cr_expect_eq(count_snapshots((pid_t)child, NULL), 0, "the exec'd child is not traced");

    mta_snapshot_t *ps = mt_load_one(mt_dir, 0, "exit");
    cr_expect_neq(ps->meta.pid, (uint32_t)child);
    mt_check_meta(ps, (pid_t)ps->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(ps, "before_exec_parent", 123, 1);
    assert_no_site(ps, "leak_dropped");

    mta_snapshot_free(ps);
    mt_run_free(&run);
    free(prog);
    free(leaky);
}

/* _exit() skips atexit handlers; the tracer still writes the exit snapshot
 * and the exit status goes through memtrail run unchanged. */
Test(integration, underscore_exit, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("quick_exit");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 3, "quick_exit");
    cr_expect_eq(count_snapshots(0, NULL), 1);
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "exit");
    mt_check_meta(snap, (pid_t)snap->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(snap, "before_underscore_exit", 1000, 2);

    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(prog);
}

/* Under `memtrail run`, a short process's exit snapshot is written by a
 * copy of the process (preload/writer/exitcopy.c): the copy closes the
 * program's descriptors before the program ends (a flock the child held is
 * free once its parent waited for it, as bare), its snapshot has the
 * process's pid and parent and exact figures, and `memtrail run` returns
 * once it is written. Five rounds: a copy that held the lock would be seen
 * in most of them. */
Test(integration, exit_copy, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("exitcopy");
    char file[PATH_MAX];
    snprintf(file, sizeof(file), "%s/held.lock", mt_dir);
    const char *argv[] = {prog, "check", file, NULL};
    for (int round = 0; round < 5; round++) {
        mt_run_t run;
        cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
        assert_exited(run.status, 0, "exitcopy");
        cr_expect(strstr(run.out, "\nfree\n") != NULL, "round %d: %s", round, run.out);
        long parent = mt_number_after(run.out, "parent");
        long child = mt_number_after(run.out, "child");
        cr_assert(parent > 0 && child > 0, "exitcopy printed \"%s\"", run.out);
        mta_snapshot_t *cs = mt_load_one(mt_dir, (pid_t)child, "exit");
        mt_check_meta(cs, (pid_t)child, (pid_t)parent, MTSNAP_TRIGGER_EXIT, 1, "");
        mt_assert_site(cs, "held_blocks", 300, 3);
        mta_snapshot_free(cs);
        mta_snapshot_t *ps = mt_load_one(mt_dir, (pid_t)parent, "exit");
        mt_check_meta(ps, (pid_t)parent, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
        mta_snapshot_free(ps);
        mt_run_free(&run);
    }
    free(prog);
}

/* An API snapshot survives the SIGKILL that follows it; memtrail run dies
 * of the same signal; there is no exit snapshot. */
Test(integration, killed, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("killed");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    cr_assert(WIFSIGNALED(run.status) && WTERMSIG(run.status) == SIGKILL,
              "killed under memtrail: wait status %#x, want death by SIGKILL", run.status);
    cr_expect_eq(count_snapshots(0, "exit"), 0, "no exit snapshot after SIGKILL");
    cr_expect_eq(count_snapshots(0, NULL), 1, "only the api snapshot");
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "api");
    mt_check_meta(snap, (pid_t)snap->meta.pid, run.pid, MTSNAP_TRIGGER_API, 1, "before-kill");
    mt_assert_site(snap, "kept_before_kill", 900, 3);

    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(prog);
}

/* Without the tracer, the weak memtrail_snapshot is absent: -ENOSYS. */
Test(integration, killed_bare, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("killed");
    const char *argv[] = {prog, "bare", NULL};
    mt_run_t run;

    cr_assert_eq(run_bare_capture(argv, &run), 0);
    assert_exited(run.status, 0, "killed bare (MEMTRAIL_SNAPSHOT must return -38)");
    cr_expect_eq(count_snapshots(0, NULL), 0);
    mt_run_free(&run);
    free(prog);
}

#define TRANSPARENT_CHECKS 52

static unsigned count_lines(const char *text, const char *prefix)
{
    unsigned n = 0;
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            n++;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return n;
}

/* The interposed functions behave exactly like libc's, errno included. */
Test(integration, transparent, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("transparent");
    const char *argv[] = {prog, NULL};
    mt_run_t bare, traced;

    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    assert_exited(bare.status, 0, "transparent bare");
    cr_expect_eq(count_lines(bare.out, "ok "), TRANSPARENT_CHECKS, "bare output:\n%s", bare.out);
    cr_expect_eq(mt_number_after(bare.out, "checks"), TRANSPARENT_CHECKS);

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &traced), 0);
    cr_expect_eq(count_lines(traced.out, "FAIL "), 0, "traced output:\n%s", traced.out);
    cr_expect_str_eq(traced.out, bare.out, "traced output differs from bare");
    assert_exited(traced.status, 0, "transparent traced");

    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "exit");
    mt_check_meta(snap, (pid_t)snap->meta.pid, traced.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    mta_snapshot_free(snap);
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(prog);
}

/* memtrail's writer thread starts bound to the CPU its creator ran on, and
 * takes the creator's whole CPU set 200 ms later (writer/writer.c), unless
 * another set its CPUs meanwhile; the program's own thread keeps its set.
 * tests/programs/writercpu.c looks at 30 ms and at 630 ms. With one CPU
 * allowed there is nothing to bind. */
Test(integration, writer_starts_on_its_creators_cpu, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("writercpu");
    const char *argv[] = {prog, NULL};
    mt_run_t bare, traced;
    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    assert_exited(bare.status, 0, "writercpu bare");
    long own = mt_number_after(bare.out, "own");
    char want[64];
    snprintf(want, sizeof(want), "own %ld early none late none\n", own);
    cr_expect_str_eq(bare.out, want, "bare: the program alone");

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &traced), 0);
    assert_exited(traced.status, 0, "writercpu traced");
    snprintf(want, sizeof(want), "own %ld early 1 late %ld\n", own, own);
    cr_expect_str_eq(traced.out, want, "traced: the writer bound early, free late");
    mt_run_free(&traced);

    /* Its CPUs set by someone else while it is bound (as `taskset -a -p`
     * would): theirs stay. */
    const char *retarget[] = {prog, "retarget", NULL};
    cr_assert_eq(run_traced_capture(mt_dir, NULL, retarget, NULL, &traced), 0);
    assert_exited(traced.status, 0, "writercpu retarget traced");
    snprintf(want, sizeof(want), "own %ld early 1 late 1\n", own);
    cr_expect_str_eq(traced.out, want, "traced: the CPU set another gave the writer stays");
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(prog);
}

/* The process ends with its last thread (main called pthread_exit): the
 * writer thread does not keep it alive, the thread that outlived main still
 * ran to its end, and the exit snapshot holds what it allocated. */
Test(integration, last_thread_after_pthread_exit, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("lastthread");
    const char *argv[] = {prog, "main", NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "lastthread main");
    cr_expect_str_eq(run.out, "thread done\n");
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "exit");   /* the one process */
    mt_assert_site(s, "after_main", 2331, 3);
    mta_snapshot_free(s);
    mt_run_free(&run);
    free(prog);
}

/* A child forked from a thread ends when that thread returns (CPython's
 * test_main_thread_after_fork_from_nonmain_thread hung here). */
Test(integration, last_thread_of_a_child_forked_from_a_thread, .init = mt_setup,
     .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("lastthread");
    const char *argv[] = {prog, "fork", NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "lastthread fork");
    long child = mt_number_after(run.out, "child");
    cr_assert_gt(child, 0, "lastthread printed \"%s\"", run.out);
    cr_expect_eq(mt_number_after(run.out, "child status"), 0, "lastthread printed \"%s\"", run.out);
    mta_snapshot_t *s = mt_load_one(mt_dir, (pid_t)child, "exit");
    mt_assert_site(s, "child_thread", 1110, 2);
    mta_snapshot_free(s);
    mt_run_free(&run);
    free(prog);
}

/* The same, 20 times over: the child's only thread often ends before the
 * writer restarted in the child first runs (the writer missed that exit and
 * kept the child alive, about one run in ten). */
Test(integration, last_thread_of_a_fork_child_repeated, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("lastthread");
    const char *argv[] = {prog, "fork", NULL};
    for (int i = 0; i < 20; i++) {
        mt_run_t run;
        cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
        assert_exited(run.status, 0, "lastthread fork");
        cr_assert_eq(mt_number_after(run.out, "child status"), 0, "run %d printed \"%s\"", i,
                     run.out);
        mt_run_free(&run);
    }
    free(prog);
}

/* SIGTERM or SIGINT with the default disposition: the program's view of its
 * dispositions is what it is bare (tests/programs/termsig.c prints it), an
 * exit snapshot labelled with the signal holds what was live, and the
 * process ends by the signal, as bare. */
static void check_terminating(const char *signame, int signo, int threads)
{
    char *prog = mt_program("termsig");
    const char *argv[] = {prog, signame, threads ? "threads" : NULL, NULL};
    mt_run_t bare, traced;
    char label[16];
    snprintf(label, sizeof(label), "SIG%s", signame);

    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_assert(WIFSIGNALED(bare.status) && WTERMSIG(bare.status) == signo,
              "termsig %s bare: wait status %#x\n%s", signame, bare.status, bare.out);
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &traced), 0);
    cr_expect_eq(traced.status, bare.status, "termsig %s traced: wait status %#x, bare %#x",
                 signame, traced.status, bare.status);
    cr_expect_str_eq(traced.out, bare.out, "termsig %s: stdout differs:\n--- bare\n%s--- traced\n%s",
                     signame, bare.out, traced.out);
    cr_expect(strstr(bare.out, "default TERM DFL") != NULL, "bare:\n%s", bare.out);
    cr_expect_eq(count_snapshots(0, NULL), 1, "one snapshot: the exit snapshot");
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "exit");
    mt_check_meta(snap, (pid_t)snap->meta.pid, traced.pid, MTSNAP_TRIGGER_EXIT, 1, label);
    mt_assert_site(snap, "kept_before_signal", 2800, 4);
    mta_snapshot_free(snap);
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(prog);
}

Test(integration, terminating_sigterm, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    check_terminating("TERM", SIGTERM, 0);
}

Test(integration, terminating_sigint, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    check_terminating("INT", SIGINT, 0);
}

/* ...while another thread allocates without a pause. */
Test(integration, terminating_sigterm_while_a_thread_allocates, .init = mt_setup,
     .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    check_terminating("TERM", SIGTERM, 1);
}

/* ---- --name BASE: stable file names (memtrail_protocol.h) ---- */
static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.mtsnap names in mt_dir, sorted bytewise, one per line. */
static char *dir_names(void)
{
    static char buf[4096];
    char *names[64];
    size_t n = 0, len = 0;
    DIR *d = opendir(mt_dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d)) && n < 64;) {
        size_t l = strlen(e->d_name);
        if (l > 7 && !strcmp(e->d_name + l - 7, ".mtsnap"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_name);
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\n", names[i]);
        free(names[i]);
    }
    return buf;
}

/* forkexec under --name job: the program memtrail run started writes
 * job.exit.mtsnap, the exec'd child job.CHILD.exit.mtsnap, and nothing else
 * is written; a second run replaces job.exit.mtsnap, and its child's file is
 * a third one. The run summary names the files. */
Test(integration, named_forkexec, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forkexec"), *leaky = mt_program("leaky");
    const char *argv[] = {prog, leaky, NULL};
    const char *opts[] = {"--name", "job", NULL};
    char want[512], path[PATH_MAX];
    long child[2];
    pid_t parent[2];
    for (int round = 0; round < 2; round++) {
        mt_run_t run;
        cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, &run), 0);
        assert_exited(run.status, 0, "forkexec");
        child[round] = mt_number_after(run.out, "child");
        cr_assert_gt(child[round], 0, "forkexec printed \"%s\"", run.out);
        snprintf(path, sizeof(path), "%s/job.exit.mtsnap", mt_dir);
        mta_snapshot_t *ps = mt_load(path);
        parent[round] = (pid_t)ps->meta.pid;
        mt_check_meta(ps, parent[round], run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
        mt_assert_site(ps, "before_exec_parent", 123, 1);
        snprintf(path, sizeof(path), "%s/job.%ld.exit.mtsnap", mt_dir, child[round]);
        mta_snapshot_t *cs = mt_load(path);
        mt_check_meta(cs, (pid_t)child[round], parent[round], MTSNAP_TRIGGER_EXIT, 1, "");
        assert_no_site(cs, "before_exec_parent");
        snprintf(want, sizeof(want), "memtrail: 2 snapshots in %s:\n%s/job.%ld.exit.mtsnap\n"
                 "%s/job.exit.mtsnap\n", mt_dir, mt_dir, child[round], mt_dir);
        cr_expect(strstr(run.err, want) != NULL, "summary:\n%s\nwant:\n%s", run.err, want);
        mta_snapshot_free(ps);
        mta_snapshot_free(cs);
        mt_run_free(&run);
    }
    cr_expect_neq(parent[0], parent[1]);
    char a[32], b[32], t[32];
    snprintf(a, sizeof(a), "%ld", child[0]);
    snprintf(b, sizeof(b), "%ld", child[1]);
    if (strcmp(a, b) > 0) {   /* the names sort by the pids' digits */
        strcpy(t, a);
        strcpy(a, b);
        strcpy(b, t);
    }
    snprintf(want, sizeof(want), "job.%s.exit.mtsnap\njob.%s.exit.mtsnap\njob.exit.mtsnap\n", a, b);
    cr_expect_str_eq(dir_names(), want);
    free(prog);
    free(leaky);
}

/* The run summary names only what this run wrote. File times tick with the
 * coarse clock, so an earlier run's file can carry a time at or after this
 * run's start (named_forkexec's second round once listed the first round's
 * child); a file already there, dated an hour ahead, stands for it. A file
 * this run writes again under the same name is listed. */
Test(integration, summary_leaves_out_earlier_files, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forker");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--name", "job", NULL};
    const char *old[] = {"job.1.exit.mtsnap", "job.exit.mtsnap"};
    char want[512], path[PATH_MAX];
    struct timespec later[2];
    clock_gettime(CLOCK_REALTIME, &later[0]);
    later[0].tv_sec += 3600;
    later[1] = later[0];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", mt_dir, old[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "old", 3), 3);
        cr_assert_eq(futimens(fd, later), 0);
        close(fd);
    }
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forker");
    long child = mt_number_after(run.out, "child");
    cr_assert_gt(child, 0, "forker printed \"%s\"", run.out);
    snprintf(want, sizeof(want), "memtrail: 2 snapshots in %s:\n%s/job.%ld.exit.mtsnap\n"
             "%s/job.exit.mtsnap\n", mt_dir, mt_dir, child, mt_dir);
    cr_expect(strstr(run.err, want) != NULL, "summary:\n%s\nwant:\n%s", run.err, want);
    snprintf(want, sizeof(want), "job.1.exit.mtsnap\njob.%ld.exit.mtsnap\njob.exit.mtsnap\n", child);
    cr_expect_str_eq(dir_names(), want);
    mt_run_free(&run);
    free(prog);
}

/* forker (fork without exec) under --name: the child, which is not the
 * process memtrail run started, gets job.CHILD.exit.mtsnap. */
Test(integration, named_fork, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forker");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--name", "job", NULL};
    char want[256], path[PATH_MAX];
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, &run), 0);
    assert_exited(run.status, 0, "forker");
    long parent = mt_number_after(run.out, "parent");
    long child = mt_number_after(run.out, "child");
    cr_assert(parent > 0 && child > 0, "forker printed \"%s\"", run.out);
    snprintf(want, sizeof(want), "job.%ld.exit.mtsnap\njob.exit.mtsnap\n", child);
    cr_expect_str_eq(dir_names(), want);
    snprintf(path, sizeof(path), "%s/job.exit.mtsnap", mt_dir);
    mta_snapshot_t *ps = mt_load(path);
    mt_check_meta(ps, (pid_t)parent, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(ps, "in_parent", 999, 3);
    snprintf(path, sizeof(path), "%s/job.%ld.exit.mtsnap", mt_dir, child);
    mta_snapshot_t *cs = mt_load(path);
    mt_check_meta(cs, (pid_t)child, (pid_t)parent, MTSNAP_TRIGGER_EXIT, 1, "");
    mt_assert_site(cs, "in_child", 444, 2);
    mta_snapshot_free(ps);
    mta_snapshot_free(cs);
    mt_run_free(&run);
    free(prog);
}

/* --name with a '/' or a leading '.' is refused before anything runs. */
Test(integration, named_invalid, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forker");
    const char *argv[] = {prog, NULL};
    const char *bad[][3] = {{"--name", "a/b", NULL}, {"--name", ".hidden", NULL},
                            {"--name", "", NULL}};
    for (size_t i = 0; i < 3; i++) {
        mt_run_t run;
        cr_assert_eq(run_traced_capture(mt_dir, bad[i], argv, NULL, &run), 0);
        assert_exited(run.status, 2, "memtrail run --name");
        cr_expect(strstr(run.err, "invalid --name") != NULL, "stderr: %s", run.err);
        cr_expect_str_eq(run.out, "", "the program must not run");
        mt_run_free(&run);
    }
    cr_expect_str_eq(dir_names(), "");
    free(prog);
}

/* ---- memtrail run: CMD's environment and exec failures (cli/cmd_run.c) ---- */
/* CMD gets memtrail run's environment with the tracer's variables set once
 * each (a stale MEMTRAIL_NAME and MEMTRAIL_NAME_PID left out without
 * --name), and, with --name, its own pid in MEMTRAIL_NAME_PID (written by
 * the vfork child before exec). */
static int env_count(const char *out, const char *kv, int whole)
{
    int n = 0;
    size_t len = strlen(kv);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, kv, len) == 0 && (!whole || p[len] == '\n'))
            n++;
    return n;
}

Test(integration, run_environment, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    const char *argv[] = {"/usr/bin/env", NULL};
    const char *stale[] = {"MEMTRAIL_NAME=stale", "MEMTRAIL_NAME_PID=1", "MEMTRAIL_DEPTH=3",
                           "MT_KEPT=yes", NULL};
    char want[PATH_MAX + 64];
    mt_run_t r;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, stale, &r), 0);
    assert_exited(r.status, 0, "env");
    cr_expect_eq(env_count(r.out, "MEMTRAIL_NAME", 0), 0, "%s", r.out);
    cr_expect_eq(env_count(r.out, "MEMTRAIL_DEPTH=", 0), 1, "%s", r.out);
    cr_expect_eq(env_count(r.out, "MEMTRAIL_DEPTH=64", 1), 1, "%s", r.out);
    cr_expect_eq(env_count(r.out, "MT_KEPT=yes", 1), 1, "%s", r.out);
    snprintf(want, sizeof(want), "MEMTRAIL_OUTPUT=%s", mt_dir);
    cr_expect_eq(env_count(r.out, want, 1), 1, "%s", r.out);
    cr_expect_eq(env_count(r.out, "LD_PRELOAD=", 0), 1, "%s", r.out);
    mt_run_free(&r);

    const char *opts[] = {"--name", "envjob", NULL};
    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, stale, &r), 0);
    assert_exited(r.status, 0, "env");
    cr_expect_eq(env_count(r.out, "MEMTRAIL_NAME=envjob", 1), 1, "%s", r.out);
    cr_expect_eq(env_count(r.out, "MEMTRAIL_NAME_PID=", 0), 1, "%s", r.out);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/envjob.exit.mtsnap", mt_dir);   /* env's own */
    mta_snapshot_t *s = mt_load(path);
    snprintf(want, sizeof(want), "MEMTRAIL_NAME_PID=%u", s->meta.pid);
    cr_expect_eq(env_count(r.out, want, 1), 1, "%s wanted in %s", want, r.out);
    mta_snapshot_free(s);
    mt_run_free(&r);
}

/* A CMD that cannot be run: one line, and the shell's statuses (127 not
 * found, 126 not executable). */
Test(integration, run_exec_failures, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char plain[PATH_MAX], want[PATH_MAX + 64];
    snprintf(plain, sizeof(plain), "%s/not-a-program", mt_dir);
    FILE *f = fopen(plain, "w");
    cr_assert_not_null(f);
    fclose(f);
    const char *cases[][2] = {{"/nonexistent/program", "No such file or directory"},
                              {plain, "Permission denied"}};
    for (int i = 0; i < 2; i++) {
        const char *argv[] = {cases[i][0], NULL};
        mt_run_t r;
        cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &r), 0);
        assert_exited(r.status, i == 0 ? 127 : 126, cases[i][0]);
        snprintf(want, sizeof(want), "memtrail: run: %s: %s\n", cases[i][0], cases[i][1]);
        cr_expect_str_eq(r.err, want);
        mt_run_free(&r);
    }
}
