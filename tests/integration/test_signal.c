/* Integration tests: snapshots on demand, with `memtrail snapshot PID` (the
 * socket protocol) and with a plain signal, taken between the phases of the
 * waiter program; and the errors of `memtrail snapshot`. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Run `memtrail snapshot PID [--label LABEL]`. */
static void take_snapshot(pid_t pid, const char *label, const char *const extra[], mt_run_t *res)
{
    char pidstr[32];
    const char *argv[8];
    size_t n = 0;

    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    argv[n++] = mt_env("MEMTRAIL_EXE");
    argv[n++] = "snapshot";
    argv[n++] = pidstr;
    if (label != NULL) {
        argv[n++] = "--label";
        argv[n++] = label;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 7; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(run_bare_capture(argv, res), 0, "cannot run memtrail snapshot");
}

/* `memtrail snapshot` succeeded and printed the path of snapshot `seq`. */
static mta_snapshot_t *snapshot_ok(const mt_run_t *res, pid_t pid, unsigned seq)
{
    cr_assert(WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0,
              "memtrail snapshot: wait status %#x, stderr: %s", (unsigned)res->status, res->err);
    char want[PATH_MAX], got[PATH_MAX], real[PATH_MAX];
    snprintf(want, sizeof(want), "%s/memtrail.%d.%04u.signal.mtsnap", mt_dir, (int)pid, seq);
    size_t len = strcspn(res->out, "\n");
    cr_assert(len > 0 && len < sizeof(got) && res->out[len] == '\n' && res->out[len + 1] == '\0',
              "memtrail snapshot printed \"%s\", want one path line", res->out);
    memcpy(got, res->out, len);
    got[len] = '\0';
    cr_expect_eq(got[0], '/', "printed path \"%s\" is not absolute", got);
    cr_assert_not_null(realpath(got, real), "printed path \"%s\" does not exist", got);
    cr_expect_str_eq(real, want);
    return mt_load(want);
}

static pid_t read_ready(mt_proc_t *proc)
{
    char line[256];
    int n = mt_proc_read_line(proc, line, sizeof(line), MT_WAIT_MS);
    cr_assert_gt(n, 0, "waiter did not say ready (%d)", n);
    long pid = mt_number_after(line, "ready");
    cr_assert_gt(pid, 0, "waiter said \"%s\"", line);
    return (pid_t)pid;
}

static void expect_phases(const mta_snapshot_t *snap, unsigned one_bytes, unsigned one_blocks,
                          unsigned two_bytes, unsigned two_blocks)
{
    mt_assert_site(snap, "phase_one", one_bytes, one_blocks);
    mt_assert_site(snap, "phase_two", two_bytes, two_blocks);
}

/* Two snapshots through the command, one through a plain kill(2), then the
 * exit snapshot: seq 1..4, each with the figures of its moment. */
Test(integration, waiter_snapshots, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    mt_proc_t proc;
    mt_run_t res;
    char line[256];

    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    cr_expect_neq(pid, proc.pid, "the traced program is a child of memtrail run");

    /* 1: phase one done. */
    take_snapshot(pid, "first", NULL, &res);
    mta_snapshot_t *s1 = snapshot_ok(&res, pid, 1);
    mt_check_meta(s1, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, 1, "first");
    expect_phases(s1, 4936, 4, 0, 0);
    mt_run_free(&res);

    /* 2: phase two done. */
    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_eq(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 3);
    cr_assert_str_eq(line, "two");
    take_snapshot(pid, "second", NULL, &res);
    mta_snapshot_t *s2 = snapshot_ok(&res, pid, 2);
    mt_check_meta(s2, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, 2, "second");
    expect_phases(s2, 4936, 4, 8642, 2);
    cr_expect_geq(s2->meta.counter, s1->meta.counter + 2);
    mt_run_free(&res);

    /* 3: a plain kill(2) with the default signal: no label, no reply. */
    cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
    cr_assert_eq(mt_wait_snapshots(mt_dir, pid, "signal", 3, MT_WAIT_MS), 3,
                 "no third signal snapshot after kill -s SIGRTMAX-3");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/memtrail.%d.0003.signal.mtsnap", mt_dir, (int)pid);
    mta_snapshot_t *s3 = mt_load(path);
    mt_check_meta(s3, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, 3, "");
    expect_phases(s3, 4936, 4, 8642, 2);

    /* 4: exit, after phase one was freed. */
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: wait status %#x", status);
    mta_snapshot_t *s4 = mt_load_one(mt_dir, pid, "exit");
    mt_check_meta(s4, pid, proc.pid, MTSNAP_TRIGGER_EXIT, 4, "");
    expect_phases(s4, 0, 0, 8642, 2);
    uint64_t bytes, blocks;
    site_alloc_total(s4, "phase_one", &bytes, &blocks);
    cr_expect_eq(bytes, 4936);
    cr_expect_eq(blocks, 4);

    mt_snaplist_t all;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, NULL, &all), 0);
    cr_expect_eq(all.n, 4, "%zu snapshots, want 4", all.n);
    mt_snaplist_free(&all);
    mta_snapshot_free(s1);
    mta_snapshot_free(s2);
    mta_snapshot_free(s3);
    mta_snapshot_free(s4);
    free(prog);
}

/* The same under --name w: `memtrail snapshot --label "a b/c"` gets
 * w.signal.a_b_c.mtsnap (its path printed), a labelled one again replaces
 * it, an unlabelled kill gets w.0003.signal.mtsnap, the exit w.exit.mtsnap;
 * nothing else is written. */
Test(integration, waiter_named, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--name", "w", NULL};
    mt_proc_t proc;
    mt_run_t res;
    char path[PATH_MAX], real[PATH_MAX];

    cr_assert_eq(mt_spawn_traced(mt_dir, opts, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    snprintf(path, sizeof(path), "%s/w.signal.a_b_c.mtsnap", mt_dir);
    for (unsigned seq = 1; seq <= 2; seq++) {
        take_snapshot(pid, "a b/c", NULL, &res);
        cr_assert(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "stderr: %s", res.err);
        res.out[strcspn(res.out, "\n")] = '\0';
        cr_assert_not_null(realpath(res.out, real), "printed \"%s\"", res.out);
        cr_expect_str_eq(real, path);
        mta_snapshot_t *s = mt_load(path);
        mt_check_meta(s, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, seq, "a b/c");
        mta_snapshot_free(s);
        mt_run_free(&res);
    }
    cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
    snprintf(path, sizeof(path), "%s/w.0003.signal.mtsnap", mt_dir);
    for (int i = 0; i < MT_WAIT_MS / 20 && access(path, F_OK) != 0; i++)
        usleep(20 * 1000);
    mta_snapshot_t *s3 = mt_load(path);
    mt_check_meta(s3, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, 3, "");
    mta_snapshot_free(s3);
    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: wait status %#x", status);
    snprintf(path, sizeof(path), "%s/w.exit.mtsnap", mt_dir);
    mta_snapshot_t *s4 = mt_load(path);
    mt_check_meta(s4, pid, proc.pid, MTSNAP_TRIGGER_EXIT, 4, "");
    expect_phases(s4, 0, 0, 8642, 2);
    mta_snapshot_free(s4);
    DIR *d = opendir(mt_dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            n++;
            cr_expect(!strcmp(e->d_name, "w.signal.a_b_c.mtsnap") ||
                      !strcmp(e->d_name, "w.0003.signal.mtsnap") ||
                      !strcmp(e->d_name, "w.exit.mtsnap"), "unexpected file %s", e->d_name);
        }
    closedir(d);
    cr_expect_eq(n, 3);
    free(prog);
}

/* memtrail run --signal USR2 (MEMTRAIL_SIGNAL): the command uses the signal
 * the process was given. */
Test(integration, waiter_custom_signal, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--signal", "USR2", NULL};
    mt_proc_t proc;
    mt_run_t res;

    cr_assert_eq(mt_spawn_traced(mt_dir, opts, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    take_snapshot(pid, NULL, NULL, &res);
    mta_snapshot_t *s1 = snapshot_ok(&res, pid, 1);
    mt_check_meta(s1, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, 1, "");
    expect_phases(s1, 4936, 4, 0, 0);
    mt_run_free(&res);

    cr_assert_eq(kill(pid, SIGUSR2), 0);
    cr_assert_eq(mt_wait_snapshots(mt_dir, pid, "signal", 2, MT_WAIT_MS), 2,
                 "no signal snapshot after kill -s SIGUSR2");

    cr_assert_eq(mt_proc_write(&proc, "go\ndone\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: wait status %#x", status);
    mta_snapshot_t *s3 = mt_load_one(mt_dir, pid, "exit");
    mt_check_meta(s3, pid, proc.pid, MTSNAP_TRIGGER_EXIT, 3, "");
    expect_phases(s3, 0, 0, 8642, 2);
    mta_snapshot_free(s1);
    mta_snapshot_free(s3);
    free(prog);
}

/* A process whose environment names its signal (MEMTRAIL_SIGNAL=pwr, as when
 * preloaded by hand) is reachable by `memtrail snapshot`, which reads that
 * value with the preload's own rules, and a plain SIGPWR works too. */
Test(integration, signal_named_in_environment, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {"/usr/bin/env", "MEMTRAIL_SIGNAL=pwr", prog, NULL};
    mt_proc_t proc;
    mt_run_t res;

    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    take_snapshot(pid, "named", NULL, &res);
    mta_snapshot_t *s1 = snapshot_ok(&res, pid, 1);
    mt_check_meta(s1, pid, proc.pid, MTSNAP_TRIGGER_SIGNAL, 1, "named");
    expect_phases(s1, 4936, 4, 0, 0);
    mt_run_free(&res);
    cr_assert_eq(kill(pid, SIGPWR), 0);
    cr_assert_eq(mt_wait_snapshots(mt_dir, pid, "signal", 2, MT_WAIT_MS), 2,
                 "no signal snapshot after kill -s SIGPWR");

    cr_assert_eq(mt_proc_write(&proc, "go\ndone\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: wait status %#x", status);
    mta_snapshot_free(s1);
    free(prog);
}

/* memtrail run --signal off: the command refuses with exit status 2. */
Test(integration, snapshot_signal_off, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--signal", "off", NULL};
    mt_proc_t proc;
    mt_run_t res;
    char want[128];

    cr_assert_eq(mt_spawn_traced(mt_dir, opts, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    take_snapshot(pid, "x", NULL, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 2,
              "memtrail snapshot on --signal off: wait status %#x", res.status);
    snprintf(want, sizeof(want), "snapshots on signal are turned off in process %d", (int)pid);
    cr_expect_not_null(strstr(res.err, want), "stderr \"%s\" lacks \"%s\"", res.err, want);
    cr_expect_str_eq(res.out, "");
    mt_run_free(&res);

    cr_assert_eq(mt_proc_write(&proc, "go\ndone\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: wait status %#x", status);
    cr_expect_eq(mt_wait_snapshots(mt_dir, pid, "signal", 1, 0), 0, "a signal snapshot appeared");
    mta_snapshot_t *s = mt_load_one(mt_dir, pid, "exit");
    mt_check_meta(s, pid, proc.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    expect_phases(s, 0, 0, 8642, 2);
    mta_snapshot_free(s);
    free(prog);
}

/* A process without libmemtrail.so mapped: exit status 2, fixed message. */
Test(integration, snapshot_not_traced, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    mt_run_t res;
    char want[128];
    pid_t self = getpid();

    take_snapshot(self, NULL, NULL, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 2,
              "memtrail snapshot on an untraced process: wait status %#x", res.status);
    snprintf(want, sizeof(want), "memtrail: process %d is not traced by memtrail", (int)self);
    cr_expect_not_null(strstr(res.err, want), "stderr \"%s\" lacks \"%s\"", res.err, want);
    cr_expect_str_eq(res.out, "");
    mt_run_free(&res);
}

/* A snapshot of 200,001 blocks taken while two threads allocate and free
 * without pause: the writer applies their events between chunks of the file,
 * yet the file holds one moment (each stack's blocks add up to its figures),
 * and the live table is exact afterwards (the exit snapshot). Three
 * snapshots in a row, so that the threads run through whole writes. */
Test(integration, snapshot_while_threads_allocate, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("churn");
    const char *argv[] = {prog, NULL};
    mt_proc_t proc;
    char line[256];

    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    for (unsigned seq = 1; seq <= 3; seq++) {
        mt_run_t res;
        take_snapshot(pid, NULL, NULL, &res);
        mta_snapshot_t *s = snapshot_ok(&res, pid, seq);
        mt_check_consistency(s);
        mt_assert_site(s, "base_blocks", 14400000, 200001);
        mta_snapshot_free(s);
        mt_run_free(&res);
    }
    cr_assert_eq(mt_proc_write(&proc, "stop\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    long kept = mt_number_after(line, "kept");
    cr_assert_gt(kept, 0, "churn said \"%s\"", line);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "churn: status %#x", status);

    mta_snapshot_t *s = mt_load_one(mt_dir, pid, "exit");
    mt_check_consistency(s);
    mt_assert_site(s, "base_blocks", 14400000, 200001);
    mt_assert_site(s, "keep_site", 48 * (uint64_t)kept, (uint64_t)kept);
    mt_assert_site(s, "churn_site", 0, 0);
    mta_snapshot_free(s);
    free(prog);
}

/* A child forked while a snapshot is being written (fork waits for the
 * writer's next yield, not for the end) inherits no descriptor of
 * memtrail's: five snapshots of 300,001 blocks while the program forks
 * without pause, every child counting its descriptors. */
Test(integration, fork_during_a_snapshot_leaves_no_descriptor, .init = mt_setup,
     .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("forkfd");
    const char *argv[] = {prog, NULL};
    mt_proc_t proc;
    char line[256];

    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    for (unsigned seq = 1; seq <= 5; seq++) {
        mt_run_t res;
        take_snapshot(pid, NULL, NULL, &res);
        mta_snapshot_t *s = snapshot_ok(&res, pid, seq);
        mt_assert_site(s, "keep_blocks", 40 * 300000 + 8 * 300000, 300001);
        mta_snapshot_free(s);
        mt_run_free(&res);
    }
    cr_assert_eq(mt_proc_write(&proc, "stop\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    long forks = mt_number_after(line, "forks"), bad = mt_number_after(line, "bad");
    cr_assert_gt(forks, 0, "forkfd said \"%s\"", line);
    cr_expect_eq(bad, 0, "%ld of %ld children saw a descriptor they did not open", bad, forks);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    free(prog);
}

