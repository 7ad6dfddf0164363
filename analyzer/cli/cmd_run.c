/*
 * `memtrail run -- CMD ARGS`: runs CMD with libmemtrail.so preloaded.
 *
 * Order of events: options are validated and the output directory created
 * before anything runs; CMD's environment is made (ours, with the MEMTRAIL_*
 * variables and LD_PRELOAD set); the forwarded signals are blocked, their
 * handlers installed, then we vfork: we are suspended until the child has
 * exec'd CMD or failed to, and neither page tables nor copy-on-write faults
 * are paid for a copy of this process that lives a moment (about 2 ms of
 * `memtrail run -- echo`, docs/performance.md). The child restores the
 * default dispositions and the signal mask, writes its pid into the
 * environment made for it (the only memory it writes) and execs; an exec
 * failure is left in exec_errno, which the child shares with us until it
 * exits. Before that, a program the loader will not
 * preload the tracer into (static, set-user-ID...: untraceable.c) gets one
 * line saying so, and runs all the same. The parent unblocks the signals and waits.
 * A forwarded signal is sent on to the child unless it came from the
 * terminal (si_code SI_KERNEL): the terminal already signals the whole
 * foreground process group, child included. At the end the snapshots that
 * appeared are listed on stderr (stdout belongs to CMD) and CMD's status is
 * reproduced: same exit code, or the same signal re-raised on ourselves.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "memtrail_format.h"
#include "memtrail_protocol.h"
#include "memtrail_sample.h"
#include "snapshot.h"
#include "untraceable.h"

#define CMD "run"
#define SUFFIX_LEN (sizeof(MTSNAP_SUFFIX) - 1)

/* From the installed memtrail's directory to the installed tracer's
 * (analyzer/meson.build). */
#ifndef MEMTRAIL_BIN_TO_PKGLIB
#define MEMTRAIL_BIN_TO_PKGLIB "../lib/memtrail"
#endif

static const char usage[] =
    "Usage: memtrail run [OPTIONS] -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD with memtrail's tracer preloaded. CMD writes snapshots\n"
    "(memtrail.PID.SEQ.TRIGGER.mtsnap) into the output directory: one when it\n"
    "exits (also when SIGTERM or SIGINT ends it, if it does not handle them:\n"
    "the signal takes effect after the snapshot), others on demand (memtrail\n"
    "snapshot PID) or periodically. A short process's exit snapshot is written\n"
    "by a copy of the process once the process has ended, so that its parent\n"
    "(a shell) goes on meanwhile. When CMD ends, memtrail waits for those\n"
    "copies, then lists the snapshots written on stderr, with the steps of\n"
    "writing one (leak scan, object graph, symbolization, writing) that took a\n"
    "second or more, and exits with CMD's status. When CMD cannot be traced\n"
    "(statically linked, set-user-ID or set-group-ID, file capabilities,\n"
    "another architecture) one line on stderr says why, and CMD runs\n"
    "unchanged.\n"
    "\n"
    "Options:\n"
    "  -o, --output DIR      directory for the snapshots (default: .; created)\n"
    "  -n, --name BASE       stable file names: CMD writes BASE.exit.mtsnap (and\n"
    "                        BASE.final.mtsnap), BASE.TRIGGER.LABEL.mtsnap for a\n"
    "                        labelled snapshot, BASE.SEQ.TRIGGER.mtsnap for the\n"
    "                        others; a process CMD starts or forks uses\n"
    "                        BASE.PID.* instead; an existing file is replaced\n"
    "  -i, --interval SEC    also write a snapshot every SEC seconds (decimals\n"
    "                        allowed; 0 = never, the default)\n"
    "  -s, --signal SIG      signal that makes CMD write a snapshot: a name (USR1,\n"
    "                        USR2, PWR...), RTMIN+N, RTMAX-N (SIG prefix optional),\n"
    "                        a number, or off (default " MTPROTO_DEFAULT_SIGNAL ")\n"
    "      --no-follow       do not trace the programs CMD executes\n"
    "      --native          in Python processes, record native frames too, with\n"
    "                        the Python frames spliced in where the interpreter\n"
    "                        runs them (default: Python frames only)\n"
    "  -u, --unwind METHOD   libunwind (default, exact) or fp (frame pointers,\n"
    "                        faster, needs -fno-omit-frame-pointer)\n"
    "  -d, --depth N         record at most N frames per stack (1-" MTPROTO_STR(MTPROTO_MAX_DEPTH)
    ", default " MTPROTO_STR(MTPROTO_DEFAULT_DEPTH) ")\n"
    "  -l, --leak-check WHEN when to classify lost blocks (and, in a Python\n"
    "                        process, capture the object graph): exit (default:\n"
    "                        the exit snapshots), all (every snapshot) or off;\n"
    "                        read them with memtrail leaks / memtrail cycles\n"
    "      --sample BYTES    record a sample of the allocations, one every BYTES\n"
    "                        allocated on average (a size: 512KiB, 64K...; on =\n"
    "                        512KiB; off, the default: every allocation); the\n"
    "                        figures are then unbiased estimates\n"
    "      --mmap WHICH      which mappings the mmap domain records (report\n"
    "                        --domain mmap; the heap figures leave them out):\n"
    "                        anon (default: anonymous mappings), all (file-backed\n"
    "                        ones too) or off\n"
    "  -h, --help            show this help\n"
    "\n"
    "Environment: " MTPROTO_ENV_LIB " overrides the path of " MTPROTO_LIB_NAME ".\n"
    "Exit status: CMD's; 127 if CMD cannot be found, 126 if it cannot be run,\n"
    "2 on bad usage.\n";

/* The words of --unwind, --leak-check and --mmap, defaults first. */
const char *mta_unwind_word(unsigned i)
{
    static const char *const names[] = { MTPROTO_UNWIND_LIBUNWIND, MTPROTO_UNWIND_FP };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

const char *mta_leak_check_word(unsigned i)
{
    static const char *const names[] = { MTPROTO_LEAK_CHECK_EXIT, MTPROTO_LEAK_CHECK_ALL,
                                         MTPROTO_LEAK_CHECK_OFF };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

const char *mta_mmap_word(unsigned i)
{
    static const char *const names[] = { MTPROTO_MMAP_ANON, MTPROTO_MMAP_ALL, MTPROTO_MMAP_OFF };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

/* '+': the options end at CMD. */
static const char shortopts[] = "+:o:n:i:s:u:d:l:h";
static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "name", required_argument, NULL, 'n' },
    { "interval", required_argument, NULL, 'i' },
    { "signal", required_argument, NULL, 's' },
    { "no-follow", no_argument, NULL, 'F' },
    { "native", no_argument, NULL, 'N' },
    { "unwind", required_argument, NULL, 'u' },
    { "depth", required_argument, NULL, 'd' },
    { "leak-check", required_argument, NULL, 'l' },
    { "sample", required_argument, NULL, 'S' },
    { "mmap", required_argument, NULL, 'M' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'o', MTA_ARG_DIR, NULL },
    { 'u', MTA_ARG_WORD, mta_unwind_word },
    { 'l', MTA_ARG_WORD, mta_leak_check_word },
    { 'M', MTA_ARG_WORD, mta_mmap_word },
    { 0, MTA_ARG_COMMAND, NULL },
    { 0, MTA_ARG_END, NULL },
};

static volatile sig_atomic_t child_pid;
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
#define NFORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

typedef struct run_opts {
    const char *output;
    const char *name;     /* --name BASE, or NULL */
    const char *interval;
    const char *signal;
    const char *unwind;
    const char *depth;
    const char *leak_check;
    const char *sample;
    const char *mmap;
    int follow;
    int native;
    char signal_value[16]; /* what MEMTRAIL_SIGNAL gets: "off" or the number */
    char sample_value[24]; /* what MEMTRAIL_SAMPLE gets: the mean in bytes, 0 for off */
} run_opts_t;

static void forward(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    if (child_pid > 0 && info->si_code != SI_KERNEL)
        kill((pid_t)child_pid, sig);
}

/* mkdir -p. */
int mta_cli_make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof(buf))
        return -ENAMETOOLONG;
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0777) < 0 && errno != EEXIST)
            return -errno;
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Absolute path of libmemtrail.so, or NULL with an error printed: $MEMTRAIL_LIB,
 * else beside the build tree's memtrail (BUILD/analyzer/memtrail,
 * BUILD/preload/libmemtrail.so), else in the installed tree (BINDIR/memtrail,
 * LIBDIR/memtrail/libmemtrail.so). */
char *mta_cli_find_library(const char *cmd)
{
    const char *env = getenv(MTPROTO_ENV_LIB);
    char exe[PATH_MAX], cand[2][PATH_MAX + 64];
    if (env && *env) {
        char *p = realpath(env, NULL);
        if (!p)
            mta_cli_error(cmd, MTPROTO_ENV_LIB "=%s: %s", env, strerror(errno));
        return p;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        mta_cli_error(cmd, "cannot find libmemtrail.so: /proc/self/exe: %s", strerror(errno));
        return NULL;
    }
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(cand[0], sizeof(cand[0]), "%s/../preload/" MTPROTO_LIB_NAME, exe);
    snprintf(cand[1], sizeof(cand[1]), "%s/%s/" MTPROTO_LIB_NAME, exe, MEMTRAIL_BIN_TO_PKGLIB);
    for (int i = 0; i < 2; i++) {
        if (access(cand[i], R_OK) == 0) {
            char *p = realpath(cand[i], NULL);
            if (p)
                return p;
        }
    }
    mta_cli_error(cmd, "cannot find " MTPROTO_LIB_NAME " (looked for %s and %s; set " MTPROTO_ENV_LIB ")",
                  cand[0], cand[1]);
    return NULL;
}

/* CMD's environment: ours without the variables set here, then those. */
typedef struct child_env {
    char **envp;         /* NULL-terminated; the strings below and environ's */
    char *set[16];       /* "NAME=value", malloc'd */
    size_t nset;
    char *pid_digits;    /* in MEMTRAIL_NAME_PID's string: the child writes its pid */
} child_env_t;

#define PID_DIGITS 20

static int env_set(child_env_t *e, const char *name, const char *value)
{
    if (e->nset == sizeof(e->set) / sizeof(e->set[0]) ||
        asprintf(&e->set[e->nset], "%s=%s", name, value) < 0)
        return -ENOMEM;
    e->nset++;
    return 0;
}

/* Whether "NAME=value" string kv sets `name`. */
static int env_is(const char *kv, const char *name)
{
    size_t n = strlen(name);
    return strncmp(kv, name, n) == 0 && kv[n] == '=';
}

/* Whether environment string kv is left out of CMD's: a variable set here,
 * or MEMTRAIL_NAME and MEMTRAIL_NAME_PID (unset without --name). */
static int env_overridden(const child_env_t *e, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return 0;
    size_t n = (size_t)(eq - kv) + 1;   /* "NAME=" */
    for (size_t i = 0; i < e->nset; i++)
        if (strncmp(e->set[i], kv, n) == 0)
            return 1;
    return env_is(kv, MTPROTO_ENV_NAME) || env_is(kv, MTPROTO_ENV_NAME_PID);
}

static void env_free(child_env_t *e)
{
    for (size_t i = 0; i < e->nset; i++)
        free(e->set[i]);
    free(e->envp);
}

static int env_make(child_env_t *e, const run_opts_t *o, const char *dir, const char *lib,
                    const char *exit_lock)
{
    extern char **environ;
    const char *old = getenv("LD_PRELOAD");
    char *preload = NULL, room[PID_DIGITS + 1];
    memset(e, 0, sizeof(*e));
    if ((old && *old ? asprintf(&preload, "%s:%s", lib, old) : asprintf(&preload, "%s", lib)) < 0)
        return -ENOMEM;
    /* MEMTRAIL_NAME_PID: CMD's pid, known in the child only (room kept for
     * its digits); unset without --name, as is MEMTRAIL_NAME. */
    memset(room, ' ', PID_DIGITS);
    room[PID_DIGITS] = '\0';
    int r = (o->name ? env_set(e, MTPROTO_ENV_NAME, o->name) |
                       env_set(e, MTPROTO_ENV_NAME_PID, room)
                     : 0) |
            env_set(e, MTPROTO_ENV_OUTPUT, dir) |
            env_set(e, MTPROTO_ENV_INTERVAL, o->interval) |
            env_set(e, MTPROTO_ENV_SIGNAL, o->signal_value) |
            env_set(e, MTPROTO_ENV_FOLLOW, o->follow ? "1" : "0") |
            env_set(e, MTPROTO_ENV_NATIVE, o->native ? "1" : "0") |
            env_set(e, MTPROTO_ENV_UNWIND, o->unwind) |
            env_set(e, MTPROTO_ENV_DEPTH, o->depth) |
            env_set(e, MTPROTO_ENV_LEAK_CHECK, o->leak_check) |
            env_set(e, MTPROTO_ENV_SAMPLE, o->sample_value) |
            env_set(e, MTPROTO_ENV_MMAP, o->mmap) |
            env_set(e, MTPROTO_ENV_EXIT_LOCK, exit_lock ? exit_lock : "") |
            env_set(e, "LD_PRELOAD", preload);
    free(preload);
    size_t n = 0;
    while (environ && environ[n])
        n++;
    if (r < 0 || !(e->envp = malloc((n + e->nset + 1) * sizeof(*e->envp)))) {
        env_free(e);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!env_overridden(e, environ[i]))
            e->envp[k++] = environ[i];
    for (size_t i = 0; i < e->nset; i++)
        e->envp[k++] = e->set[i];
    e->envp[k] = NULL;
    if (o->name)   /* set[1] is "MEMTRAIL_NAME_PID=" and the room */
        e->pid_digits = e->set[1] + sizeof(MTPROTO_ENV_NAME_PID);
    return 0;
}

/* The waiter's lock (memtrail_protocol.h, MTPROTO_ENV_EXIT_LOCK): the copy
 * of a short process that writes its last snapshot after it ended holds
 * this file's flock shared; taken exclusive once CMD ended, before the
 * snapshots are listed, it is free when every such copy is done. An empty
 * file in $TMPDIR (else /tmp), not in the output directory, which stays as
 * CMD and its snapshots make it; removed at the end. -1 when it cannot be
 * made: then each process writes its own last snapshot. */
static int exit_lock_make(char *path, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/')
        tmp = "/tmp";
    int n = snprintf(path, cap, "%s/" MTPROTO_EXIT_LOCK_PREFIX "XXXXXX", tmp);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkostemp(path, O_CLOEXEC);
}

static void exit_lock_wait(int fd, const char *path)
{
    if (fd < 0)
        return;
    while (flock(fd, LOCK_EX) < 0 && errno == EINTR) {
    }
    unlink(path);
    close(fd);
}

/* Set by the vfork child when exec fails; read once it has exited. */
static volatile int exec_errno;

/* Child side, after vfork: signals, its pid, exec. Never returns. Writes
 * only e->pid_digits and exec_errno: the memory is still ours. */
static void exec_child(const child_env_t *e, char **cmd)
{
    sigset_t none;
    for (size_t i = 0; i < NFORWARDED; i++)
        signal(forwarded[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (e->pid_digits) {   /* this process is CMD's */
        char digits[PID_DIGITS];
        size_t n = 0;
        for (unsigned long v = (unsigned long)getpid(); v || !n; v /= 10)
            digits[n++] = (char)('0' + v % 10);
        for (size_t i = 0; i < n; i++)
            e->pid_digits[i] = digits[n - 1 - i];
        e->pid_digits[n] = '\0';
    }
    execvpe(cmd[0], cmd, e->envp);
    exec_errno = errno ? errno : ENOEXEC;
    _exit(127);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A snapshot whose writing had a step of a second or more: one line naming
 * those steps (its TIMING record, read without the rest of the file). */
#define SLOW_STEP_NS 1000000000ull
static void say_slow_steps(const char *dir, const char *name)
{
    char path[PATH_MAX], steps[256] = "";
    mtsnap_timing_t t;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mta_snapshot_timing(path, &t) < 0)
        return;
    const struct { const char *what; uint64_t ns; } step[] = {
        {"leak scan", t.scan_ns}, {"object graph", t.graph_ns},
        {"symbolization", t.symbolize_ns}, {"writing", t.write_ns}};
    uint64_t total = 0;
    size_t len = 0;
    for (size_t k = 0; k < sizeof(step) / sizeof(step[0]); k++) {
        total += step[k].ns;
        if (step[k].ns >= SLOW_STEP_NS && len < sizeof(steps))
            len += (size_t)snprintf(steps + len, sizeof(steps) - len, "%s%s %.1f s",
                                    len ? ", " : "", step[k].what, (double)step[k].ns / 1e9);
    }
    if (len)
        fprintf(stderr, "memtrail: %s took %.1f s: %s\n", name, (double)total / 1e9, steps);
}

/* The snapshot files (memtrail.*.mtsnap; with --name, BASE.*.mtsnap) in a
 * directory modified at or after `since` (coarse realtime clock, the one
 * file timestamps use), with what identifies each version of a file. */
typedef struct {
    char *name;
    ino_t ino;
    struct timespec mtime, ctime;
    off_t size;
} snap_file_t;

typedef struct {
    snap_file_t *f;
    size_t n;
} snap_list_t;

static void snap_list_free(snap_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->f[i].name);
    free(l->f);
    l->f = NULL;
    l->n = 0;
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int ts_eq(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* 0, or -errno when the directory cannot be read (l is then empty). */
static int scan_snapshots(const char *dir, const char *base, const struct timespec *since,
                          snap_list_t *l)
{
    char prefix[MTPROTO_NAME_MAX + 2];
    if (base)
        snprintf(prefix, sizeof(prefix), "%s.", base);
    else
        snprintf(prefix, sizeof(prefix), "%s", MTPROTO_SNAP_PREFIX);
    size_t plen = strlen(prefix), cap = 0;
    l->f = NULL;
    l->n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        struct stat st;
        if (len < plen + SUFFIX_LEN + 1 || strncmp(de->d_name, prefix, plen) != 0 ||
            strcmp(de->d_name + len - SUFFIX_LEN, MTSNAP_SUFFIX) != 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            ts_before(&st.st_mtim, since))
            continue;
        if (l->n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            snap_file_t *nf = realloc(l->f, ncap * sizeof(*nf));
            if (!nf)
                break;
            l->f = nf;
            cap = ncap;
        }
        snap_file_t *f = &l->f[l->n];
        if (!(f->name = strdup(de->d_name)))
            break;
        f->ino = st.st_ino;
        f->mtime = st.st_mtim;
        f->ctime = st.st_ctim;
        f->size = st.st_size;
        l->n++;
    }
    closedir(d);
    return 0;
}

/* Whether `f` is a file `before` already had, unchanged: a snapshot is
 * renamed into place, so a file written again is a new inode. */
static int seen_before(const snap_list_t *before, const snap_file_t *f)
{
    for (size_t i = 0; i < before->n; i++) {
        const snap_file_t *b = &before->f[i];
        if (b->ino == f->ino && b->size == f->size && ts_eq(&b->mtime, &f->mtime) &&
            ts_eq(&b->ctime, &f->ctime) && !strcmp(b->name, f->name))
            return 1;
    }
    return 0;
}

/* Lists on stderr the snapshots that appeared in dir while CMD ran: those
 * modified at or after `since` that are not, unchanged, in `before` (taken
 * just before CMD started). File times tick with the coarse clock (several
 * milliseconds), so the time alone would also name the files an earlier run
 * wrote within the same tick. */
static void list_snapshots(const char *dir, const char *base, const struct timespec *since,
                           const snap_list_t *before)
{
    snap_list_t now;
    int rc = scan_snapshots(dir, base, since, &now);
    if (rc < 0) {
        mta_cli_error(CMD, "cannot list %s: %s", dir, strerror(-rc));
        return;
    }
    char **names = now.n ? calloc(now.n, sizeof(*names)) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < now.n && names; i++)
        if (!seen_before(before, &now.f[i]))
            names[n++] = now.f[i].name;
    if (n > 1)   /* names is NULL when there are none: qsort(NULL, 0) is undefined */
        qsort(names, n, sizeof(*names), cmp_str);
    if (n == 0)
        fprintf(stderr, "memtrail: no snapshots in %s\n", dir);
    else
        fprintf(stderr, "memtrail: %zu snapshot%s in %s:\n", n, n == 1 ? "" : "s", dir);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%s%s\n", dir, strcmp(dir, "/") ? "/" : "", names[i]);
    for (size_t i = 0; i < n; i++)
        say_slow_steps(dir, names[i]);
    free(names);
    snap_list_free(&now);
}

/* Ends memtrail the way CMD ended. */
static int reproduce_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    int sig = WTERMSIG(status);
    struct rlimit no_core = { 0, 0 };
    sigset_t set;
    fflush(stdout);
    fflush(stderr);
    setrlimit(RLIMIT_CORE, &no_core); /* CMD already dumped core if it was to */
    signal(sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    return 128 + sig;
}

static int validate(run_opts_t *o)
{
    uint64_t v;
    int sig;
    char *end;
    errno = 0;
    double sec = strtod(o->interval, &end);
    /* Seconds, with decimals; the preload rounds to milliseconds. */
    if (end == o->interval || *end || errno || !(sec >= 0 && sec <= 1e6) ||
        (sec > 0 && sec < 0.001)) {
        mta_cli_error(CMD, "invalid --interval '%s' (seconds, at least 0.001; 0 = off)",
                      o->interval);
        return -EINVAL;
    }
    if (mta_parse_signal(o->signal, &sig) < 0) {
        mta_cli_error(CMD, "invalid --signal '%s' (USR1, USR2, RTMIN+N, RTMAX-N, a number, off)",
                      o->signal);
        return -EINVAL;
    }
    if (sig == 0)
        snprintf(o->signal_value, sizeof(o->signal_value), "off");
    else
        snprintf(o->signal_value, sizeof(o->signal_value), "%d", sig);
    if (mta_cli_choice(CMD, "unwind", mta_unwind_word, o->unwind) < 0)
        return -EINVAL;
    if (mta_parse_uint(o->depth, 1, MTPROTO_MAX_DEPTH, &v) < 0) {
        mta_cli_error(CMD, "invalid --depth '%s' (1 to " MTPROTO_STR(MTPROTO_MAX_DEPTH) ")", o->depth);
        return -EINVAL;
    }
    if (mta_cli_choice(CMD, "leak-check", mta_leak_check_word, o->leak_check) < 0 ||
        mta_cli_choice(CMD, "mmap", mta_mmap_word, o->mmap) < 0)
        return -EINVAL;
    if (mtsample_parse(o->sample, &v) < 0) {
        mta_cli_error(CMD, "invalid --sample '%s' (a mean such as 512KiB or 64K, up to 1TiB; on, off)",
                      o->sample);
        return -EINVAL;
    }
    snprintf(o->sample_value, sizeof(o->sample_value), "%llu", (unsigned long long)v);
    return 0;
}

static int run_main(int argc, char **argv)
{
    run_opts_t o = { .output = MTPROTO_DEFAULT_OUTPUT, .interval = MTPROTO_DEFAULT_INTERVAL,
                     .signal = MTPROTO_DEFAULT_SIGNAL, .unwind = MTPROTO_UNWIND_LIBUNWIND,
                     .depth = MTPROTO_STR(MTPROTO_DEFAULT_DEPTH),
                     .leak_check = MTPROTO_LEAK_CHECK_EXIT, .sample = MTPROTO_SAMPLE_OFF,
                     .mmap = MTPROTO_MMAP_ANON, .follow = 1 };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'n': o.name = optarg; break;
        case 'i': o.interval = optarg; break;
        case 's': o.signal = optarg; break;
        case 'F': o.follow = 0; break;
        case 'N': o.native = 1; break;
        case 'u': o.unwind = optarg; break;
        case 'd': o.depth = optarg; break;
        case 'l': o.leak_check = optarg; break;
        case 'S': o.sample = optarg; break;
        case 'M': o.mmap = optarg; break;
        case 'h': fputs(usage, stdout); return MTA_EXIT_OK;
        default: return mta_cli_bad_option(CMD, c, argv);
        }
    }
    if (optind >= argc) {
        mta_cli_error(CMD, "missing command (usage: memtrail run [OPTIONS] -- CMD [ARGS...])");
        return MTA_EXIT_USAGE;
    }
    if (o.output[0] == '\0') {
        mta_cli_error(CMD, "empty --output directory");
        return MTA_EXIT_USAGE;
    }
    if (o.name && !mtproto_name_ok(o.name)) {
        mta_cli_error(CMD, "invalid --name '%s' (a file name: no '/', no leading '.', at most %d "
                      "bytes)", o.name, MTPROTO_NAME_MAX);
        return MTA_EXIT_USAGE;
    }
    if (validate(&o) < 0)
        return MTA_EXIT_USAGE;
    signal(SIGCHLD, SIG_DFL); /* waitpid() needs it, whatever we inherited */
    char **cmd = argv + optind;
    int rc = mta_cli_make_dirs(o.output);
    if (rc < 0) {
        mta_cli_error(CMD, "cannot create %s: %s", o.output, strerror(-rc));
        return MTA_EXIT_USAGE;
    }
    char *dir = realpath(o.output, NULL);
    char *lib = dir ? mta_cli_find_library(CMD) : NULL;
    int status = MTA_EXIT_USAGE;
    sigset_t block, saved;
    child_env_t env = {0};
    snap_list_t before = {0};   /* the snapshots already there, this clock tick */
    char lock_path[PATH_MAX + 64];
    int lock_fd = -1;
    if (!dir) {
        mta_cli_error(CMD, "%s: %s", o.output, strerror(errno));
        goto out;
    }
    if (!lib)
        goto out;
    char why[2 * PATH_MAX + 256];
    if (mta_untraceable(cmd[0], lib, why, sizeof(why)))   /* CMD still runs, unchanged */
        mta_cli_error(CMD, "%s", why);
    lock_fd = exit_lock_make(lock_path, sizeof(lock_path));
    char lock_var[sizeof(lock_path) + 32];   /* "PID:PATH" (memtrail_protocol.h) */
    snprintf(lock_var, sizeof(lock_var), "%ld:%s", (long)getpid(), lock_path);
    if (env_make(&env, &o, dir, lib, lock_fd >= 0 ? lock_var : NULL) < 0) {
        mta_cli_error(CMD, "%s", strerror(ENOMEM));
        goto out;
    }

    struct timespec start;
    clock_gettime(CLOCK_REALTIME_COARSE, &start);
    scan_snapshots(dir, o.name, &start, &before);   /* unreadable: listed at the end */
    sigemptyset(&block);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaddset(&block, forwarded[i]);
    sigprocmask(SIG_BLOCK, &block, &saved);
    struct sigaction sa = { .sa_sigaction = forward, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaction(forwarded[i], &sa, NULL);
    fflush(NULL);
    exec_errno = 0;
    pid_t pid = vfork();
    if (pid < 0) {
        mta_cli_error(CMD, "fork: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &saved, NULL);
        goto out;
    }
    if (pid == 0)
        exec_child(&env, cmd);
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &saved, NULL);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) {
            mta_cli_error(CMD, "waitpid: %s", strerror(errno));
            status = MTA_EXIT_FAIL;
            goto out;
        }
    }
    child_pid = 0;
    exit_lock_wait(lock_fd, lock_path);   /* the copies writing last snapshots are done */
    lock_fd = -1;
    if (exec_errno) {
        mta_cli_error(CMD, "%s: %s", cmd[0], strerror(exec_errno));
        status = exec_errno == ENOENT ? 127 : 126;
        goto out;
    }
    list_snapshots(dir, o.name, &start, &before);
    status = reproduce_status(wstatus);
out:
    exit_lock_wait(lock_fd, lock_path);
    snap_list_free(&before);
    env_free(&env);
    free(lib);
    free(dir);
    return status;
}

const mta_command_t mta_cmd_run = {
    .name = CMD,
    .summary = "run a program under the tracer",
    .usage = usage,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = run_main,
};
