/* Integration tests: interval snapshots, and a traced program whose snapshots
 * cannot be written (missing directory, file size limit) runs on unchanged. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"

/* --interval 0.2: while waiter sits between its phases, interval snapshots
 * appear with consecutive sequence numbers and the figures of that moment. */
Test(integration, interval_snapshots, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--interval", "0.2", NULL};
    mt_proc_t proc;
    char line[256];

    cr_assert_eq(mt_spawn_traced(mt_dir, opts, argv, NULL, &proc), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    pid_t pid = (pid_t)mt_number_after(line, "ready");
    cr_assert_gt(pid, 0, "waiter said \"%s\"", line);
    cr_assert_geq(mt_wait_snapshots(mt_dir, pid, "interval", 3, MT_WAIT_MS), 3);
    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: status %#x", status);

    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, pid, "interval", &list), 0);
    cr_assert_geq(list.n, 3);
    /* The first interval snapshots were taken while phase one was live. */
    for (unsigned seq = 1; seq <= 3; seq++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/memtrail.%d.%04u.interval.mtsnap", mt_dir, (int)pid, seq);
        mta_snapshot_t *s = mt_load(path);
        mt_check_meta(s, pid, proc.pid, MTSNAP_TRIGGER_INTERVAL, seq, "");
        mt_assert_site(s, "phase_one", 4936, 4);
        mta_snapshot_free(s);
    }
    mt_snaplist_free(&list);
    free(prog);
}

/* Runs `transparent` with the preload but without memtrail run, so that the
 * output directory is whatever the test says. */
static void run_preloaded(const char *outdir, mt_run_t *res)
{
    char *prog = mt_program("transparent");
    const char *argv[] = {prog, NULL};
    cr_assert_eq(setenv("LD_PRELOAD", mt_env("MEMTRAIL_LIB"), 1), 0);
    cr_assert_eq(setenv("MEMTRAIL_OUTPUT", outdir, 1), 0);
    cr_assert_eq(run_bare_capture(argv, res), 0);
    unsetenv("LD_PRELOAD");
    unsetenv("MEMTRAIL_OUTPUT");
    free(prog);
}

static void expect_same_as_bare(const mt_run_t *traced, const char *why)
{
    char *prog = mt_program("transparent");
    const char *argv[] = {prog, NULL};
    mt_run_t bare;
    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_expect_str_eq(traced->out, bare.out, "%s: output differs from the bare run", why);
    cr_expect_eq(traced->status, bare.status, "%s: status %#x, bare %#x", why,
                 (unsigned)traced->status, (unsigned)bare.status);
    mt_run_free(&bare);
    free(prog);
}

/* One warning line on stderr, and nothing else. */
static void expect_one_warning(const mt_run_t *res, const char *dir, const char *reason)
{
    char want[PATH_MAX + 200];
    snprintf(want, sizeof(want),
             "memtrail: cannot write a snapshot in %s: %s (later failures are not reported)\n",
             dir, reason);
    cr_expect_str_eq(res->err, want);
}

Test(integration, missing_output_directory, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/does/not/exist", mt_dir);
    mt_run_t res;
    run_preloaded(dir, &res);
    expect_same_as_bare(&res, "missing directory");
    expect_one_warning(&res, dir, "No such file or directory");
    mt_run_free(&res);
}

/* A file size limit makes the writer's write(2) fail with EFBIG, as a full
 * disk makes it fail with ENOSPC; SIGXFSZ is blocked in the writer thread,
 * so the program is not killed. Nothing is left behind. */
Test(integration, snapshot_write_fails_midway, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    struct rlimit lim = {1024, 1024};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    mt_run_t res;
    run_preloaded(mt_dir, &res);
    lim.rlim_cur = lim.rlim_max = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &lim); /* may fail unprivileged: the test has ended anyway */
    expect_same_as_bare(&res, "file size limit");
    expect_one_warning(&res, mt_dir, "File too large");
    mt_snaplist_t all;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, NULL, &all), 0);
    cr_expect_eq(all.n, 0, "a partial snapshot was left behind");
    mt_snaplist_free(&all);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", mt_dir);
    cr_expect_eq(system(cmd), 0, "a temporary file was left behind");
}

/* Symlinks planted at the snapshot's temporary and final names are never
 * followed: the files they point to stay untouched, and the snapshot is a
 * regular file of mode 0600. */
Test(integration, symlinks_are_not_followed, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    mt_proc_t proc;
    char line[256], victim[PATH_MAX], tmpname[PATH_MAX], final[PATH_MAX], cmd[6 * PATH_MAX];

    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    pid_t pid = (pid_t)mt_number_after(line, "ready");
    cr_assert_gt(pid, 0);
    snprintf(victim, sizeof(victim), "%s/victim", mt_dir);
    snprintf(tmpname, sizeof(tmpname), "%s/.memtrail.%d.0001.tmp", mt_dir, (int)pid);
    snprintf(final, sizeof(final), "%s/memtrail.%d.0001.signal.mtsnap", mt_dir, (int)pid);
    snprintf(cmd, sizeof(cmd), "echo keep > '%s' && ln -s '%s' '%s' && ln -s '%s' '%s'", victim,
             victim, tmpname, victim, final);
    cr_assert_eq(system(cmd), 0);

    cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
    for (int i = 0; i < 300; i++) {
        struct stat st;
        if (lstat(final, &st) == 0 && S_ISREG(st.st_mode))
            break;
        usleep(10000);
    }
    struct stat st;
    cr_assert_eq(lstat(final, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "the final name is still a symlink");
    cr_expect_eq(st.st_mode & 0777, 0600);
    snprintf(cmd, sizeof(cmd), "test \"$(cat '%s')\" = keep", victim);
    cr_expect_eq(system(cmd), 0, "the symlink's target was written");
    mta_snapshot_t *s = mt_load(final);
    mt_assert_site(s, "phase_one", 4936, 4);
    mta_snapshot_free(s);

    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    unlink(victim);
    unlink(tmpname);
    free(prog);
}

/* The names in dir (hidden ones too), one per line; returns how many. */
static size_t list_names(const char *dir, char *out, size_t len)
{
    size_t n = 0, used = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = 0;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int w = snprintf(out + used, len - used, "%s\n", e->d_name);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* A snapshot gets a name only once it is complete: while a big one is being
 * written, the directory shows nothing (no temporary name), and a process
 * killed while writing leaves nothing behind. */
Test(integration, snapshot_has_no_name_until_complete, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("manyblocks");
    const char *argv[] = {prog, "300000", NULL};
    char line[256], names[4096], final[PATH_MAX];

    for (int round = 0; round < 2; round++) {
        mt_proc_t proc;
        cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
        cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
        pid_t pid = (pid_t)mt_number_after(line, "ready");
        cr_assert_gt(pid, 0);
        snprintf(final, sizeof(final), "memtrail.%d.0001.signal.mtsnap\n", (int)pid);
        cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
        if (round == 0) {
            /* watch the directory until the snapshot appears */
            for (int i = 0; i < 200000; i++) {
                size_t n = list_names(mt_dir, names, sizeof(names));
                if (n == 0)
                    continue;
                cr_assert_eq(n, 1, "the directory holds: %s", names);
                cr_assert_str_eq(names, final);
                break;
            }
            cr_assert_str_eq(names, final, "no snapshot after the signal");
            cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
            int status;
            cr_assert_eq(mt_proc_wait(&proc, &status), 0);
            mta_snapshot_t *s = mt_load_one(mt_dir, pid, "signal");
            mt_assert_site(s, "keep_blocks", 56 * 300000, 300001);   /* + the array of pointers */
            mta_snapshot_free(s);
            mt_rmtree(mt_dir);
            cr_assert_eq(mkdir(mt_dir, 0700), 0);
        } else {
            usleep(30 * 1000);   /* the writer is at work on the file */
            kill(pid, SIGKILL);
            int status;
            mt_proc_wait(&proc, &status);
            size_t n = list_names(mt_dir, names, sizeof(names));
            cr_assert(n == 0 || (n == 1 && strcmp(names, final) == 0),
                      "killed while writing, the directory holds: %s", names);
        }
    }
    free(prog);
}

/* The voluntary context switches of the traced process's thread other than
 * `pid` (memtrail's writer), or -1. */
static long writer_switches(pid_t pid)
{
    char path[128], line[256];
    long tid = 0, n = -1;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (atol(e->d_name) > 0 && atol(e->d_name) != pid)
            tid = atol(e->d_name);
    if (d)
        closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/task/%ld/status", (int)pid, tid);
    FILE *f = tid ? fopen(path, "r") : NULL;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
            n = atol(line + 24);
    if (f)
        fclose(f);
    return n;
}

/* An idle traced program costs about one wake-up of the writer a second
 * (it used to be a hundred): measured on waiter, blocked on its stdin. Its
 * writer thread starts late (preload/writer/writer.c, `deferred`), and
 * waiter allocates too little for it to start on its own: the snapshot
 * signal, sent while it waits, starts it and is served. */
Test(integration, idle_writer_sleeps, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    mt_proc_t proc;
    char line[256];

    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    pid_t pid = (pid_t)mt_number_after(line, "ready");
    cr_assert_gt(pid, 0);
    cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
    cr_assert_eq(mt_wait_snapshots(mt_dir, pid, "signal", 1, MT_WAIT_MS), 1,
                 "no signal snapshot: the writer did not start");
    usleep(2500 * 1000);   /* the writer backs off: 1, 2, 4 ... 1000 ms */
    long before = writer_switches(pid);
    usleep(3000 * 1000);
    long after = writer_switches(pid);
    cr_assert_geq(before, 0, "no writer thread found");
    cr_expect_leq(after - before, 6, "the idle writer woke %ld times in 3 s", after - before);

    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mta_snapshot_t *s = mt_load_one(mt_dir, pid, "exit");
    mt_assert_site(s, "phase_two", 8642, 2);   /* nothing lost while it slept */
    mta_snapshot_free(s);
    free(prog);
}

/* memtrail keeps no file descriptor open in the traced program (a program
 * that closes and reuses descriptors must not find one of ours). */
Test(integration, no_descriptor_is_left_open, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("fds");
    const char *argv[] = {prog, NULL};
    mt_run_t bare, traced;
    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &traced), 0);
    cr_expect_str_eq(traced.out, bare.out);
    cr_expect_eq(traced.status, 0);
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(prog);
}
