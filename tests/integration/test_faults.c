/* Integration tests: faults while files are written. A snapshot
 * (preload/writer/snapwrite.c) or an export (`memtrail export -o`,
 * analyzer/cli/outfile.c) that cannot be written completely leaves no file
 * under its final name, no temporary, and the traced program runs on
 * unchanged with one warning: on a full disk, in a read-only or vanished
 * directory, killed by SIGKILL mid-write (the temporaries of the named path
 * are removed by the next traced process in the directory), with symlinks
 * planted at the names it uses; and `memtrail snapshot PID` on a target that
 * exits before answering says so at once.
 *
 * The disk faults need a small tmpfs: the test moves itself into a private
 * mount namespace (root only, else skipped) and mounts one there; the
 * programs it spawns inherit the namespace. The named-temporary path
 * (a file system without O_TMPFILE) is reached with a seccomp filter that
 * makes every open with O_TMPFILE fail with EOPNOTSUPP, as such a file
 * system does, in the test and everything it spawns. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define FREE_LEFT (16 * 1024)   /* what a "full" tmpfs still has room for */

/* ---- set-up -------------------------------------------------------------- */

static char *mounts[4];   /* tmpfs mount points, unmounted by faults_fini */
static size_t nmounts;

static void faults_fini(void)
{
    while (nmounts > 0) {
        char *m = mounts[--nmounts];
        umount2(m, MNT_DETACH);
        rmdir(m);   /* a subdirectory of mt_dir; mt_dir itself stays for mt_teardown */
        free(m);
    }
    mt_teardown();
}

/* Moves the test into a private mount namespace, or skips it. */
static void private_mounts(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to mount a tmpfs in a private mount namespace");
    if (unshare(CLONE_NEWNS) < 0)
        cr_skip_test("unshare(CLONE_NEWNS) not permitted: %s", strerror(errno));
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0,
                 "cannot make / private: %s", strerror(errno));
}

/* Mounts a tmpfs with `opts` on dir (in the private namespace). */
static void mount_tmpfs(const char *dir, unsigned long flags, const char *opts)
{
    cr_assert_eq(mount("none", dir, "tmpfs", flags, opts), 0, "mount tmpfs %s on %s: %s", opts,
                 dir, strerror(errno));
    cr_assert_lt(nmounts, sizeof(mounts) / sizeof(mounts[0]));
    mounts[nmounts++] = strdup(dir);
}

/* A fresh directory NAME in mt_dir, malloc'd path. */
static char *subdir(const char *name)
{
    char *d = NULL;
    cr_assert(asprintf(&d, "%s/%s", mt_dir, name) > 0);
    cr_assert_eq(mkdir(d, 0700), 0, "mkdir %s: %s", d, strerror(errno));
    return d;
}

/* Fills the file system of dir with dir/fill until `left` bytes are free. */
static void fill(const char *dir, unsigned long left)
{
    struct statvfs sv;
    char path[PATH_MAX], zero[65536] = {0};
    cr_assert_eq(statvfs(dir, &sv), 0);
    unsigned long avail = sv.f_bavail * sv.f_frsize;
    cr_assert_gt(avail, left, "%s has %lu bytes free", dir, avail);
    snprintf(path, sizeof(path), "%s/fill", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    for (unsigned long n = avail - left; n > 0;) {
        ssize_t w = write(fd, zero, n < sizeof(zero) ? n : sizeof(zero));
        cr_assert_gt(w, 0, "filling %s: %s", dir, strerror(errno));
        n -= (unsigned long)w;
    }
    close(fd);
    cr_assert_eq(statvfs(dir, &sv), 0);
    cr_assert_leq(sv.f_bavail * sv.f_frsize, left);
}

/* From now on every open(2)/openat(2) with O_TMPFILE fails with EOPNOTSUPP,
 * in this process and in every process it spawns (seccomp filters are
 * inherited and cannot be removed), as on a file system without O_TMPFILE:
 * the snapshot writer takes its named-temporary path. */
static void forbid_o_tmpfile(void)
{
#if defined(__x86_64__)
    const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const unsigned arch = AUDIT_ARCH_AARCH64;
#else
    cr_skip_test("no seccomp filter for this architecture");
    const unsigned arch = 0;
#endif
#ifdef __NR_open
    const unsigned nr_open = __NR_open;
#else
    const unsigned nr_open = ~0u;   /* aarch64 has openat only */
#endif
    /* The kernel's __O_TMPFILE bit (glibc's O_TMPFILE includes O_DIRECTORY). */
    const unsigned tmpfile_bit = O_TMPFILE & ~O_DIRECTORY;
    struct sock_filter f[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        /* 2 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 2),
        /* 5 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        /* 6 */ BPF_STMT(BPF_JMP | BPF_JA, 2),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr_open, 0, 3),
        /* 8 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        /* 9 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, tmpfile_bit, 0, 1),
        /* 10 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EOPNOTSUPP),
        /* 11 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        cr_skip_test("cannot install a seccomp filter: %s", strerror(errno));
    int fd = open(mt_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert(fd < 0 && errno == EOPNOTSUPP, "O_TMPFILE still works after the filter");
}

/* ---- looking at directories --------------------------------------------- */

static int not_dots(const struct dirent *e)
{
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

/* The names in dir, hidden ones too, sorted, each followed by a space. */
static void names(const char *dir, char *buf, size_t len)
{
    struct dirent **list;
    int n = scandir(dir, &list, not_dots, alphasort);
    size_t used = 0;
    buf[0] = '\0';
    cr_assert_geq(n, 0, "scandir %s: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        int w = snprintf(buf + used, len - used, "%s ", list[i]->d_name);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
        free(list[i]);
    }
    free(list);
}

static int is_final_name(const char *name)
{
    size_t len = strlen(name), sl = strlen(MTSNAP_SUFFIX);
    return strncmp(name, "memtrail.", 9) == 0 && len > 9 + sl &&
           strcmp(name + len - sl, MTSNAP_SUFFIX) == 0;
}

/* Every file in dir under a snapshot's final name is complete: `memtrail
 * report` reads it. Returns how many there are. */
static size_t expect_complete_finals(const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, not_dots, alphasort);
    size_t finals = 0;
    cr_assert_geq(n, 0);
    for (int i = 0; i < n; i++) {
        if (is_final_name(list[i]->d_name)) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
            const char *argv[] = {mt_env("MEMTRAIL_EXE"), "report", path, "--top", "1", NULL};
            mt_run_t res;
            cr_assert_eq(run_bare_capture(argv, &res), 0);
            cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
                      "%s does not read back (a partial snapshot?): %s", path, res.err);
            mt_run_free(&res);
            finals++;
        }
        free(list[i]);
    }
    free(list);
    return finals;
}

/* Whether process pid has a file of dir open (the snapshot being written:
 * the named temporary, or an O_TMPFILE file, "DIR/#INO (deleted)"). Another
 * process's temporary is not pid's snapshot: pid holds it open only while
 * it looks whether it may remove it, before it makes its own. */
static int writing_in(pid_t pid, const char *dir)
{
    char fddir[64], link[PATH_MAX + 32], target[PATH_MAX + 32], own[64];
    snprintf(fddir, sizeof(fddir), "/proc/%d/fd", (int)pid);
    snprintf(own, sizeof(own), ".memtrail.%d.", (int)pid);
    DIR *d = opendir(fddir);
    struct dirent *e;
    int found = 0;
    size_t dl = strlen(dir);
    while (d && !found && (e = readdir(d))) {
        snprintf(link, sizeof(link), "%s/%s", fddir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strncmp(target, dir, dl) == 0 && target[dl] == '/' &&
                (strncmp(target + dl + 1, ".memtrail.", 10) != 0 ||
                 strncmp(target + dl + 1, own, strlen(own)) == 0);
    }
    if (d)
        closedir(d);
    return found;
}

static size_t count_prefix(const char *dir, const char *prefix)
{
    struct dirent **list;
    int n = scandir(dir, &list, not_dots, alphasort);
    size_t k = 0;
    cr_assert_geq(n, 0);
    for (int i = 0; i < n; i++) {
        k += strncmp(list[i]->d_name, prefix, strlen(prefix)) == 0;
        free(list[i]);
    }
    free(list);
    return k;
}

/* Removes the files in dir. */
static void clear(const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, not_dots, alphasort);
    cr_assert_geq(n, 0);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
        cr_expect_eq(unlink(path), 0, "unlink %s: %s", path, strerror(errno));
        free(list[i]);
    }
    free(list);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- running programs ---------------------------------------------------- */

/* mt_spawn_traced with the traced side's stderr in errpath. */
static void spawn_err_to(const char *outdir, const char *const opts[], const char *const argv[],
                         const char *errpath, mt_proc_t *proc)
{
    int saved = dup(2);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    int rc = mt_spawn_traced(outdir, opts, argv, NULL, proc);
    dup2(saved, 2);
    close(saved);
    close(fd);
    cr_assert_eq(rc, 0, "cannot spawn memtrail run: %s", strerror(-rc));
}

static pid_t read_ready(mt_proc_t *proc)
{
    char line[256];
    int n = mt_proc_read_line(proc, line, sizeof(line), MT_WAIT_MS);
    cr_assert_gt(n, 0, "the program did not say ready (%d)", n);
    long pid = mt_number_after(line, "ready");
    cr_assert_gt(pid, 0, "the program said \"%s\"", line);
    return (pid_t)pid;
}

/* The one warning of a traced program whose snapshots cannot be written. */
static void warning(char *buf, size_t len, const char *dir, const char *reason)
{
    snprintf(buf, len,
             "memtrail: cannot write a snapshot in %s: %s (later failures are not reported)\n",
             dir, reason);
}

/* Runs `prog args` bare and traced into dir; the traced run must print and
 * end the same and say only `want_err` on stderr (memtrail run's listing
 * aside). */
static void run_like_bare(const char *dir, const char *const argv[], const char *const opts[],
                          const char *want_err)
{
    mt_run_t bare, traced;
    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_assert_eq(run_traced_capture(dir, opts, argv, NULL, &traced), 0);
    cr_expect_str_eq(traced.out, bare.out, "the traced program's output changed");
    cr_expect_eq(traced.status, bare.status, "status %#x, bare %#x", (unsigned)traced.status,
                 (unsigned)bare.status);
    char *err = mt_strip_run_summary(traced.err, dir);
    cr_expect_str_eq(err, want_err);
    free(err);
    mt_run_free(&bare);
    mt_run_free(&traced);
}

/* ---- a. a full disk --------------------------------------------------------- */

/* The exit snapshot of scatter (tens of KB) into a 1 MiB tmpfs: with room,
 * it is written; filled up to FREE_LEFT, the write fails midway (ENOSPC),
 * scatter prints and ends as it does bare, with one warning, and leaves no
 * exit snapshot, partial or not, and no temporary. --interval makes more
 * snapshots fail the same way (still one warning); the first ones, small
 * enough to fit, are written whole. */
static void snapshot_on_full_disk(const char *dir)
{
    char *prog = mt_program("scatter");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--interval", "0.05", NULL};
    char buf[4096], want[PATH_MAX + 200];

    /* With room: one exit snapshot, larger than what the full disk has left. */
    run_like_bare(dir, argv, NULL, "");
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(dir, 0, "exit", &list), 0);
    cr_assert_eq(list.n, 1);
    struct stat st;
    cr_assert_eq(stat(list.paths[0], &st), 0);
    cr_assert_gt(st.st_size, 2 * FREE_LEFT, "the snapshot (%lld B) would fit in the full disk",
                 (long long)st.st_size);
    cr_assert_eq(unlink(list.paths[0]), 0);
    mt_snaplist_free(&list);

    fill(dir, FREE_LEFT);
    warning(want, sizeof(want), dir, "No space left on device");
    run_like_bare(dir, argv, opts, want);
    expect_complete_finals(dir);
    cr_assert_eq(mt_find_snapshots(dir, 0, "exit", &list), 0);
    cr_expect_eq(list.n, 0, "an exit snapshot that cannot fit");
    mt_snaplist_free(&list);
    cr_expect_eq(count_prefix(dir, ".memtrail"), 0, "a temporary was left: %s",
                 (names(dir, buf, sizeof(buf)), buf));
    clear(dir);
    free(prog);
}

Test(faults, snapshot_on_a_full_disk, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    private_mounts();
    char *dir = subdir("disk");
    mount_tmpfs(dir, 0, "size=1m");
    snapshot_on_full_disk(dir);   /* O_TMPFILE */
    forbid_o_tmpfile();
    snapshot_on_full_disk(dir);   /* the named temporary */
    free(dir);
}

/* No snapshot follows the exit snapshot: lateflush goes on for a while
 * after it (its stdout is flushed after the destructors, and the test does
 * not read it for 300 ms), and interval snapshots taken then would be cut
 * short by _exit: on the named-temporary path a temporary was left behind,
 * and a full disk saw one after the run. */
Test(faults, no_snapshot_after_the_exit_snapshot, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("lateflush");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--interval", "0.02", NULL};
    mt_proc_t proc;

    cr_assert_eq(mt_spawn_traced(mt_dir, opts, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_eq(mt_wait_snapshots(mt_dir, pid, "exit", 1, MT_WAIT_MS), 1);
    usleep(300 * 1000);   /* lateflush is blocked on its full stdout */
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "lateflush: status %#x", status);
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, pid, NULL, &list), 0);
    cr_assert_geq(list.n, 1);
    const char *last = strrchr(list.paths[list.n - 1], '/') + 1;   /* sorted: by seq */
    cr_expect(strstr(last, ".exit.mtsnap") != NULL, "%zu snapshots, the last is %s", list.n,
              last);
    mt_snaplist_free(&list);
    free(prog);
}

/* `memtrail export -o OUT` of a real snapshot onto a full tmpfs: exit status
 * 2 and one line naming ENOSPC; OUT, a symlink to a file elsewhere, and
 * then a complete earlier export, are left as they were; no temporary. */
Test(faults, export_on_a_full_disk, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("scatter");
    const char *argv[] = {prog, NULL};
    char out[PATH_MAX], victim[PATH_MAX], buf[4096], want[PATH_MAX + 200];
    int status;

    cr_assert_eq(run_traced(mt_dir, NULL, argv, &status), 0);
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, "exit", &list), 0);
    cr_assert_eq(list.n, 1);
    const char *snap = list.paths[0];

    private_mounts();
    char *dir = subdir("disk");
    mount_tmpfs(dir, 0, "size=1m");
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(victim, sizeof(victim), "%s/victim", mt_dir);
    const char *exp[] = {mt_env("MEMTRAIL_EXE"), "export", snap, "--format", "collapsed",
                         "-o", out, NULL};
    mt_run_t res;

    /* With room: the export is larger than what the full disk has left. */
    cr_assert_eq(run_bare_capture(exp, &res), 0);
    cr_assert(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "export: %s", res.err);
    mt_run_free(&res);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_assert_gt(st.st_size, 2 * FREE_LEFT, "the export (%lld B) would fit in the full disk",
                 (long long)st.st_size);
    cr_assert_eq(unlink(out), 0);

    /* OUT a symlink to a file outside. */
    FILE *v = fopen(victim, "we");
    cr_assert_not_null(v);
    fputs("precious\n", v);
    fclose(v);
    cr_assert_eq(symlink(victim, out), 0);
    fill(dir, FREE_LEFT);
    snprintf(want, sizeof(want), "memtrail: export: cannot write %s: No space left on device\n",
             out);
    cr_assert_eq(run_bare_capture(exp, &res), 0);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 2, "export: status %#x",
              (unsigned)res.status);
    cr_expect_str_eq(res.err, want);
    cr_expect_str_eq(res.out, "");
    mt_run_free(&res);
    char *text = mt_read_file(victim);
    cr_expect_str_eq(text, "precious\n", "the symlink's target was written");
    free(text);
    cr_expect_eq(lstat(out, &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "OUT is no longer the symlink");
    names(dir, buf, sizeof(buf));
    cr_expect_str_eq(buf, "fill out.txt ", "a temporary was left: %s", buf);

    /* OUT a complete earlier export. */
    cr_assert_eq(unlink(out), 0);
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "old 1\n", 6), 6);
    close(fd);
    cr_assert_eq(run_bare_capture(exp, &res), 0);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 2, "export: status %#x",
              (unsigned)res.status);
    cr_expect_str_eq(res.err, want);
    mt_run_free(&res);
    text = mt_read_file(out);
    cr_expect_str_eq(text, "old 1\n", "OUT was replaced by a partial export");
    free(text);
    names(dir, buf, sizeof(buf));
    cr_expect_str_eq(buf, "fill out.txt ", "a temporary was left: %s", buf);

    mt_snaplist_free(&list);
    unlink(victim);
    free(dir);
    free(prog);
}

/* ---- b. a read-only or vanished directory -------------------------------- */

Test(faults, read_only_directory, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("transparent");
    const char *argv[] = {prog, NULL};
    char want[PATH_MAX + 200], buf[4096];

    private_mounts();
    char *dir = subdir("ro");
    mount_tmpfs(dir, MS_RDONLY, "size=1m");
    warning(want, sizeof(want), dir, "Read-only file system");
    run_like_bare(dir, argv, NULL, want);
    forbid_o_tmpfile();
    run_like_bare(dir, argv, NULL, want);
    names(dir, buf, sizeof(buf));
    cr_expect_str_eq(buf, "");
    free(dir);
    free(prog);
}

/* The output directory is removed while waiter runs: a snapshot request
 * fails with a clear answer, the exit snapshot fails too, one warning in
 * all, and waiter goes through its phases and ends as it would. */
static void directory_removed(const char *name)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    char errpath[PATH_MAX], line[256], want[2 * PATH_MAX + 300], pidstr[32];
    char *dir = subdir(name);
    mt_proc_t proc;

    snprintf(errpath, sizeof(errpath), "%s/%s.err", mt_dir, name);
    spawn_err_to(dir, NULL, argv, errpath, &proc);
    pid_t pid = read_ready(&proc);
    cr_assert_eq(rmdir(dir), 0, "rmdir %s: %s", dir, strerror(errno));

    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    const char *snap[] = {mt_env("MEMTRAIL_EXE"), "snapshot", pidstr, NULL};
    mt_run_t res;
    cr_assert_eq(run_bare_capture(snap, &res), 0);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 1,
              "memtrail snapshot: status %#x", (unsigned)res.status);
    snprintf(want, sizeof(want),
             "memtrail: snapshot: cannot write in %s: No such file or directory\n", dir);
    cr_expect_str_eq(res.err, want);
    cr_expect_str_eq(res.out, "");
    mt_run_free(&res);

    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_expect_str_eq(line, "two");
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "waiter: status %#x", status);

    char *err = mt_read_file(errpath), *rest = mt_strip_run_summary(err, dir);
    int n = snprintf(want, sizeof(want),
                     "memtrail: cannot write a snapshot in %s: No such file or directory (later "
                     "failures are not reported)\n", dir);
    /* memtrail run's own listing of the directory, once waiter ended */
    snprintf(want + n, sizeof(want) - (size_t)n,
             "memtrail: run: cannot list %s: No such file or directory\n", dir);
    cr_expect_str_eq(rest, want);
    free(err);
    free(rest);
    free(dir);
    free(prog);
}

Test(faults, directory_removed_while_running, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    directory_removed("gone");
    forbid_o_tmpfile();
    directory_removed("gone-named");
}

/* ---- c. SIGKILL while a snapshot is written ------------------------------- */

/* Starts manyblocks (300,000 blocks: a snapshot takes a while) traced into
 * dir, asks for a snapshot, waits until the file is open, lets the writer
 * go on for a random moment, stops the process and kills it. Returns 1
 * when the process still had the file open when stopped (killed
 * mid-write), 0 when it had finished. */
static int kill_while_writing(const char *dir, unsigned delay_us)
{
    char *prog = mt_program("manyblocks");
    const char *argv[] = {prog, "300000", NULL};
    mt_proc_t proc;

    char final[PATH_MAX];
    struct stat st;

    cr_assert_eq(mt_spawn_traced(dir, NULL, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    snprintf(final, sizeof(final), "%s/memtrail.%d.0001.signal.mtsnap", dir, (int)pid);
    cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
    double deadline = now_s() + MT_WAIT_MS / 1000.0;
    while (!writing_in(pid, dir) && lstat(final, &st) < 0 && now_s() < deadline)
        usleep(100);
    cr_assert(now_s() < deadline, "the snapshot was never written");
    usleep(delay_us);
    kill(pid, SIGSTOP);
    int mid_write = writing_in(pid, dir);
    kill(pid, SIGKILL);
    int status;
    mt_proc_wait(&proc, &status);
    free(prog);
    return mid_write;
}

/* Unnamed (O_TMPFILE) files: killed at any moment of the write, a process
 * leaves a complete snapshot or nothing, never a temporary. */
Test(faults, sigkill_while_writing, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    char buf[4096];
    unsigned mid = 0;
    srand((unsigned)getpid());
    for (int round = 0; round < 5; round++) {
        /* at once (mid-write for sure), or anywhere in the write (about 150 ms) or after */
        mid += (unsigned)kill_while_writing(mt_dir, round % 2 ? (unsigned)(rand() % 200000) : 0);
        expect_complete_finals(mt_dir);
        cr_expect_eq(count_prefix(mt_dir, ".memtrail."), 0, "a temporary: %s",
                     (names(mt_dir, buf, sizeof(buf)), buf));
    }
    cr_expect_gt(mid, 0, "no round was killed in the middle of a write");
    cr_log_info("%u of 5 rounds killed mid-write", mid);
}

/* The named temporary (no O_TMPFILE): killed mid-write, a process leaves
 * `.memtrail.PID.SEQ.tmp` behind but never a partial file under the final
 * name; the next traced process in the directory removes the temporaries of
 * dead processes, and nothing else: not a live process's, one a writer holds
 * locked, another user's, a symlink (nor its target), a FIFO, a directory or
 * a name not quite memtrail's. */
Test(faults, sigkill_leaves_temporaries_the_next_process_removes, .init = mt_setup,
     .fini = faults_fini, .timeout = MT_TEST_TIMEOUT)
{
    char buf[4096], path[PATH_MAX], victim[PATH_MAX];
    unsigned mid = 0;
    forbid_o_tmpfile();
    srand((unsigned)getpid());
    for (int round = 0; round < 10; round++) {
        int killed = kill_while_writing(mt_dir, round % 2 ? (unsigned)(rand() % 200000) : 0);
        mid += (unsigned)killed;
        expect_complete_finals(mt_dir);
        /* this round's temporary; the last round's went when this one started */
        cr_expect_eq(count_prefix(mt_dir, ".memtrail."), (size_t)killed,
                     "round %d (killed %s): %s", round, killed ? "mid-write" : "after the write",
                     (names(mt_dir, buf, sizeof(buf)), buf));
    }
    cr_expect_gt(mid, 0, "no round was killed in the middle of a write");
    cr_log_info("%u of 10 rounds killed mid-write", mid);
    size_t stale = count_prefix(mt_dir, ".memtrail.");

    /* What the cleaner must leave alone. A dead pid: a reaped child's. */
    pid_t dead = fork();
    cr_assert_geq(dead, 0);
    if (dead == 0)
        _exit(0);
    cr_assert_eq(waitpid(dead, NULL, 0), dead);
    snprintf(victim, sizeof(victim), "%s/victim", mt_dir);
    int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "precious\n", 9), 9);
    close(fd);
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0001.tmp", mt_dir, (int)dead);
    cr_assert_eq(symlink(victim, path), 0);
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0002.tmp", mt_dir, (int)dead);
    cr_assert_eq(mkfifo(path, 0600), 0);
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0003.tmp", mt_dir, (int)dead);
    cr_assert_eq(mkdir(path, 0700), 0);
    /* names not quite memtrail's: a suffix, no sequence, no dot, a letter */
    const char *others[][2] = {{".memtrail.", ".0004.tmp.keep"}, {".memtrail.", ".x.tmp"},
                               {"memtrail.", ".0005.tmp"}, {".memtrail.", "x.0006.tmp"}};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s%d%s", mt_dir, others[i][0], (int)dead, others[i][1]);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
    }
    /* a live process's (this one's) temporary */
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0001.tmp", mt_dir, (int)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    /* one a writer holds locked (its pid is not ours to see: another pid namespace) */
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0007.tmp", mt_dir, (int)dead);
    int held = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(held, 0);
    cr_assert_eq(flock(held, LOCK_EX), 0);
    /* another user's */
    if (geteuid() == 0) {
        snprintf(path, sizeof(path), "%s/.memtrail.%d.0008.tmp", mt_dir, (int)dead);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(fchown(fd, 65534, 65534), 0);
        close(fd);
    }
    size_t kept = count_prefix(mt_dir, ".memtrail.") - stale;

    /* The next traced process. */
    char *prog = mt_program("transparent");
    const char *argv[] = {prog, NULL};
    int status;
    cr_assert_eq(run_traced(mt_dir, NULL, argv, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_expect_eq(count_prefix(mt_dir, ".memtrail."), kept, "left: %s",
                 (names(mt_dir, buf, sizeof(buf)), buf));
    close(held);
    char *text = mt_read_file(victim);
    cr_expect_str_eq(text, "precious\n");
    free(text);
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0001.tmp", mt_dir, (int)dead);
    struct stat st;
    cr_expect(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the planted symlink is gone");
    expect_complete_finals(mt_dir);
    snprintf(path, sizeof(path), "%s/.memtrail.%d.0003.tmp", mt_dir, (int)dead);
    rmdir(path);   /* mt_teardown removes files only */
    free(prog);
}

/* ---- d. symlinks at the names the named path uses --------------------------- */

/* Without O_TMPFILE, symlinks planted at the temporary and the final name
 * of the next snapshot are replaced, never followed: their target keeps its
 * content and the snapshot is a complete regular file of mode 0600. */
Test(faults, symlinks_at_the_named_temporary, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("waiter");
    const char *argv[] = {prog, NULL};
    char line[256], victim[PATH_MAX], tmpname[PATH_MAX], final[PATH_MAX];
    mt_proc_t proc;

    forbid_o_tmpfile();
    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    snprintf(victim, sizeof(victim), "%s/victim", mt_dir);
    int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "keep\n", 5), 5);
    close(fd);
    for (unsigned seq = 1; seq <= 2; seq++) {
        snprintf(tmpname, sizeof(tmpname), "%s/.memtrail.%d.%04u.tmp", mt_dir, (int)pid, seq);
        cr_assert_eq(symlink(victim, tmpname), 0);
    }
    snprintf(final, sizeof(final), "%s/memtrail.%d.0001.signal.mtsnap", mt_dir, (int)pid);
    cr_assert_eq(symlink(victim, final), 0);
    snprintf(final, sizeof(final), "%s/memtrail.%d.0002.exit.mtsnap", mt_dir, (int)pid);
    cr_assert_eq(symlink(victim, final), 0);

    cr_assert_eq(kill(pid, SIGRTMAX - 3), 0);
    snprintf(final, sizeof(final), "%s/memtrail.%d.0001.signal.mtsnap", mt_dir, (int)pid);
    struct stat st;
    for (int i = 0; i < 3000 && !(lstat(final, &st) == 0 && S_ISREG(st.st_mode)); i++)
        usleep(10000);
    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_eq(mt_proc_write(&proc, "done\n"), 0);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    char *text = mt_read_file(victim);
    cr_expect_str_eq(text, "keep\n", "the symlinks' target was written");
    free(text);
    const char *trig[] = {"signal", "exit"};
    for (unsigned seq = 1; seq <= 2; seq++) {
        snprintf(final, sizeof(final), "%s/memtrail.%d.%04u.%s.mtsnap", mt_dir, (int)pid, seq,
                 trig[seq - 1]);
        cr_assert_eq(lstat(final, &st), 0);
        cr_expect(S_ISREG(st.st_mode), "%s is still a symlink", final);
        cr_expect_eq(st.st_mode & 0777, 0600);
        mta_snapshot_t *s = mt_load(final);
        mt_assert_site(s, "phase_two", seq == 1 ? 0 : 8642, seq == 1 ? 0 : 2);
        mta_snapshot_free(s);
        snprintf(tmpname, sizeof(tmpname), "%s/.memtrail.%d.%04u.tmp", mt_dir, (int)pid, seq);
        cr_expect_neq(lstat(tmpname, &st), 0, "%s is left", tmpname);
    }
    free(prog);
}

/* ---- e. a target that exits during `memtrail snapshot PID` ---------------- */

/* Runs `memtrail snapshot PID --timeout 20` while a forked killer ends the
 * traced process: 300 ms after the request (the process is stopped, so it
 * cannot have answered), or as soon as the snapshot's file is open (it is
 * then stopped, seen still writing, and killed). Returns 0, or 1 when the
 * write ended before the killer could stop it (nothing was killed). */
static int request_while_dying(pid_t pid, int mid_write, mt_run_t *res, double *took)
{
    char pidstr[32], final[PATH_MAX];
    snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
    snprintf(final, sizeof(final), "%s/memtrail.%d.0001.signal.mtsnap", mt_dir, (int)pid);
    if (!mid_write)
        cr_assert_eq(kill(pid, SIGSTOP), 0);
    pid_t killer = fork();
    cr_assert_geq(killer, 0);
    if (killer == 0) {
        struct stat st;
        double deadline = now_s() + 20;
        if (mid_write) {
            while (!writing_in(pid, mt_dir) && lstat(final, &st) < 0 && now_s() < deadline)
                usleep(100);
            kill(pid, SIGSTOP);
            int writing = writing_in(pid, mt_dir);
            kill(pid, writing ? SIGKILL : SIGCONT);
            _exit(writing ? 0 : 1);
        }
        usleep(300 * 1000);
        kill(pid, SIGKILL);
        _exit(0);
    }
    const char *cmd[] = {mt_env("MEMTRAIL_EXE"), "snapshot", pidstr, "--timeout", "20", NULL};
    double t0 = now_s();
    cr_assert_eq(run_bare_capture(cmd, res), 0);
    *took = now_s() - t0;
    int kst;
    cr_assert_eq(waitpid(killer, &kst, 0), killer);
    cr_assert(WIFEXITED(kst) && WEXITSTATUS(kst) <= 1, "the killer: status %#x", kst);
    return WEXITSTATUS(kst);
}

/* `memtrail snapshot PID` on a real traced process that dies before it
 * answers, once stopped before it served the request, once in the middle
 * of writing the snapshot: exit status 1, "exited before answering", in
 * well under the timeout, and no partial snapshot. */
Test(faults, target_exits_during_snapshot_request, .init = mt_setup, .fini = faults_fini,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("manyblocks");
    const char *argv[] = {prog, "300000", NULL};
    char want[128];

    for (int mid_write = 0; mid_write < 2; mid_write++) {
        for (int attempt = 0;; attempt++) {
            mt_proc_t proc;
            mt_run_t res;
            double took;
            int status;
            cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
            pid_t pid = read_ready(&proc);
            int finished = request_while_dying(pid, mid_write, &res, &took);
            if (finished) {   /* too quick for the killer: try again */
                cr_assert_lt(attempt, 3, "every write ended before it could be stopped");
                mt_run_free(&res);
                kill(pid, SIGKILL);
                mt_proc_wait(&proc, &status);
                continue;
            }
            cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 1,
                      "round %d: memtrail snapshot: status %#x", mid_write, (unsigned)res.status);
            snprintf(want, sizeof(want), "memtrail: process %d exited before answering\n",
                     (int)pid);
            cr_expect_str_eq(res.err, want, "round %d: %s", mid_write, res.err);
            cr_expect_str_eq(res.out, "");
            cr_expect_lt(took, 5.0, "round %d took %.1f s", mid_write, took);
            mt_run_free(&res);
            mt_proc_wait(&proc, &status);
            cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "memtrail run: status %#x", status);
            expect_complete_finals(mt_dir);
            break;
        }
    }
    free(prog);
}
