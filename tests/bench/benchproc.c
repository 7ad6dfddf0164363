/* Tracers, background workloads and snapshot files for the runners; see
 * benchproc.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "snapshot.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchproc.h"
#include "benchutil.h"

const char *const bench_tracer_name[BT_COUNT] = {
    "bare", "memtrail", "memtrail-B", "heaptrack", "tracemalloc",
};

/* Variables the workloads never inherit. */
static const char *const env_drop[] = {
    "LD_PRELOAD=", "MEMTRAIL_", "MALLOC_PERTURB_=", "MALLOC_CHECK_=", "PYTHONTRACEMALLOC=",
    "PYTHONMALLOC=", "PYTHONMALLOCSTATS=", "PYTHONDEVMODE=", NULL,
};

#define POLL_NS 2000000L            /* 2 ms */

static void on_signal(int sig)
{
    (void)sig;
    bench_interrupted = 1;
}

static int set_path(char *dst, const char *a, const char *b)
{
    return bench_path_join(dst, PATH_MAX, a, b);
}

int bench_ctx_init(bench_ctx_t *c, int argc, char **argv, void (*usage)(FILE *), const char *src)
{
    char root[PATH_MAX];
    const char *root_arg = NULL, *ht = "/usr/bin/heaptrack";
    const char *srcroot = getenv("MEMTRAIL_SOURCE_ROOT");
    int opt, rc;

    memset(c, 0, sizeof(*c));
    c->timeout_s = 1800;
    while ((opt = getopt(argc, argv, "b:B:H:h")) != -1) {
        switch (opt) {
        case 'b':
            root_arg = optarg;
            break;
        case 'B':
            if (!realpath(optarg, c->lib_b)) {
                fprintf(stderr, "%s: -B %s: %s\n", bench_prog, optarg, strerror(errno));
                return 2;
            }
            break;
        case 'H':
            ht = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (bench_env_uint(bench_prog, "BENCH_TIMEOUT", 86400, &c->timeout_s) < 0)
        return 2;
    if ((rc = bench_build_root(root_arg, root, sizeof(root))) < 0 ||
        (rc = set_path(c->memtrail, root, "analyzer/memtrail")) < 0 ||
        (rc = set_path(c->lib, root, "preload/libmemtrail.so")) < 0 ||
        (rc = set_path(c->progdir, root, "tests/bench")) < 0)
        goto fail;
    if (srcroot && *srcroot)
        rc = set_path(c->srcdir, srcroot, "tests/bench");
    else
        rc = snprintf(c->srcdir, sizeof(c->srcdir), "%s", src) >= PATH_MAX ? -ENAMETOOLONG : 0;
    if (rc < 0)
        goto fail;
    if (access(c->memtrail, X_OK) < 0 || access(c->lib, R_OK) < 0) {
        rc = -errno;
        fprintf(stderr, "%s: %s or %s: %s\n", bench_prog, c->memtrail, c->lib, strerror(errno));
        return 1;
    }
    if (strcmp(ht, "none") && access(ht, X_OK) == 0)
        snprintf(c->heaptrack, sizeof(c->heaptrack), "%s", ht);

    snprintf(c->tmpdir, sizeof(c->tmpdir), "/tmp/memtrail-bench.XXXXXX");
    if (!mkdtemp(c->tmpdir)) {
        rc = -errno;
        c->tmpdir[0] = 0;
        goto fail;
    }
    if ((rc = set_path(c->outdir, c->tmpdir, "out")) < 0 ||
        (rc = set_path(c->htdir, c->tmpdir, "ht")) < 0 ||
        (rc = set_path(c->keptdir, c->tmpdir, "kept")) < 0 ||
        (rc = set_path(c->out, c->tmpdir, "stdout")) < 0 ||
        (rc = set_path(c->err, c->tmpdir, "stderr")) < 0 ||
        (rc = set_path(c->stop, c->tmpdir, "stop")) < 0)
        goto fail;
    if (mkdir(c->outdir, 0700) < 0 || mkdir(c->htdir, 0700) < 0 || mkdir(c->keptdir, 0700) < 0) {
        rc = -errno;
        goto fail;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGCHLD, SIG_DFL);   /* an inherited SIG_IGN would reap our children */
    signal(SIGPIPE, SIG_IGN);   /* see bench_stopped() */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    return -1;
fail:
    fprintf(stderr, "%s: %s\n", bench_prog, strerror(-rc));
    bench_ctx_done(c);
    return 1;
}

void bench_ctx_done(bench_ctx_t *c)
{
    bench_remove_tree(c->tmpdir);
    c->tmpdir[0] = 0;
}

int bench_tracer_usable(const bench_ctx_t *c, enum bench_tracer t)
{
    return t == BT_MEMTRAIL_B ? c->lib_b[0] != 0 : t == BT_HEAPTRACK ? c->heaptrack[0] != 0 : 1;
}

int bench_tracer_argv(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[],
                      const char *interval, char **argv, size_t cap, char **extra,
                      char *libenv, size_t libenv_len)
{
    static char htout[PATH_MAX + 4];
    size_t a = 0, n = 0;
    while (cmd[n])
        n++;
    if (n + 10 > cap)
        return -E2BIG;
    extra[0] = extra[1] = extra[2] = NULL;
    if (t == BT_MEMTRAIL || t == BT_MEMTRAIL_B) {
        snprintf(libenv, libenv_len, "MEMTRAIL_LIB=%s", t == BT_MEMTRAIL ? c->lib : c->lib_b);
        extra[0] = libenv;
        /* Two builds whose symbol caches differ in layout would rewrite each
         * other's files on every run: each gets its own directory (its first
         * run fills it), unless MEMTRAIL_SYMCACHE says otherwise. */
        static char cache[2][PATH_MAX + 32];
        int b = t == BT_MEMTRAIL_B;
        if (!getenv("MEMTRAIL_SYMCACHE")) {
            snprintf(cache[b], sizeof(cache[b]), "MEMTRAIL_SYMCACHE=%s/symcache-%c", c->tmpdir,
                     b ? 'b' : 'a');
            extra[1] = cache[b];
        }
        argv[a++] = (char *)c->memtrail;
        argv[a++] = (char *)"run";
        argv[a++] = (char *)"-o";
        argv[a++] = (char *)c->outdir;
        if (interval) {
            argv[a++] = (char *)"--interval";
            argv[a++] = (char *)interval;
        }
        argv[a++] = (char *)"--";
    } else if (t == BT_HEAPTRACK) {
        snprintf(htout, sizeof(htout), "%s/ht", c->htdir);
        argv[a++] = (char *)c->heaptrack;
        argv[a++] = (char *)"-o";
        argv[a++] = htout;
    }
    for (size_t i = 0; i < n; i++) {
        argv[a++] = cmd[i];
        if (i == 0 && t == BT_TRACEMALLOC) {
            argv[a++] = (char *)"-X";
            argv[a++] = (char *)"tracemalloc";
        }
    }
    argv[a] = NULL;
    return 0;
}

void bench_show_tail(const char *path, const char *what)
{
    FILE *f = fopen(path, "re");
    char buf[4096];
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    if (n)
        fprintf(stderr, "---- %s ----\n%s\n", what, buf);
}

/* 0 for exit status 0, else a message and -ECHILD (-EINTR passed on). */
static int check(const bench_ctx_t *c, const char *what, int rc)
{
    if (rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0)
        return 0;
    if (rc == -EINTR || bench_interrupted)
        return -EINTR;
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "%s: %s: killed after the time limit (BENCH_TIMEOUT=%u s)\n", bench_prog,
                what, c->timeout_s);
    else if (rc < 0)
        fprintf(stderr, "%s: %s: %s\n", bench_prog, what, strerror(-rc));
    else if (WIFEXITED(rc))
        fprintf(stderr, "%s: %s: exit status %d\n", bench_prog, what, WEXITSTATUS(rc));
    else
        fprintf(stderr, "%s: %s: killed by signal %d\n", bench_prog, what, WTERMSIG(rc));
    bench_show_tail(c->out, "stdout of the run");
    bench_show_tail(c->err, "stderr of the run");
    return -ECHILD;
}

int bench_run(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[], const char *interval,
              const char *what, double *wall_s, long *maxrss_kb)
{
    char *argv[64], *extra[3], libenv[PATH_MAX + 16];
    int rc = bench_tracer_argv(c, t, cmd, interval, argv, 64, extra, libenv, sizeof(libenv));
    if (rc < 0)
        return rc;
    char **env = bench_make_env(env_drop, extra);
    if (!env)
        return -ENOMEM;
    rc = bench_run_child(argv, env, c->out, c->err, c->timeout_s, wall_s, maxrss_kb);
    free(env);
    return check(c, what, rc);
}

int bench_start(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[],
                const char *interval, bench_proc_t *p)
{
    char *argv[64], *extra[3], libenv[PATH_MAX + 16];
    int rc, fo = -1, fe = -1;
    memset(p, 0, sizeof(*p));
    p->pid = -1;
    if (unlink(c->stop) < 0 && errno != ENOENT)
        return -errno;
    if ((rc = bench_tracer_argv(c, t, cmd, interval, argv, 64, extra, libenv, sizeof(libenv))) < 0)
        return rc;
    char **env = bench_make_env(env_drop, extra);
    if (!env)
        return -ENOMEM;
    fo = open(c->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    fe = open(c->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fo < 0 || fe < 0) {
        rc = -errno;
        goto out;
    }
    p->t0 = bench_mono_s();
    p->pid = fork();
    if (p->pid < 0) {
        rc = -errno;
        goto out;
    }
    if (p->pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        if (in >= 0)
            dup2(in, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execve(argv[0], argv, env);
        dprintf(2, "%s: exec %s: %s\n", bench_prog, argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(p->pid, p->pid);
out:
    if (fo >= 0)
        close(fo);
    if (fe >= 0)
        close(fe);
    free(env);
    return rc;
}

/* Reaps p if it has ended: 1 if reaped (now or before), 0 if running. */
static int try_reap(bench_proc_t *p)
{
    struct rusage ru = {0};
    if (p->reaped)
        return 1;
    if (wait4(p->pid, &p->status, WNOHANG, &ru) != p->pid)
        return 0;
    p->wall_s = bench_mono_s() - p->t0;
    p->maxrss_kb = ru.ru_maxrss;
    p->reaped = 1;
    return 1;
}

void bench_kill(bench_proc_t *p)
{
    if (p->pid <= 0 || p->reaped)
        return;
    kill(-p->pid, SIGKILL);
    waitpid(p->pid, &p->status, 0);
    p->reaped = 1;
}

int bench_out_line(const bench_ctx_t *c, const char *prefix, char *line, size_t len)
{
    FILE *f = fopen(c->out, "re");
    int rc = -ENOENT;
    size_t n = strlen(prefix);
    if (!f)
        return -errno;
    while (fgets(line, (int)len, f))
        if (!strncmp(line, prefix, n)) {
            line[strcspn(line, "\n")] = 0;
            rc = 0;
            break;
        }
    fclose(f);
    return rc;
}

int bench_wait_line(const bench_ctx_t *c, bench_proc_t *p, const char *prefix, char *line,
                    size_t len)
{
    struct timespec tick = {0, POLL_NS};
    double deadline = p->t0 + c->timeout_s;
    for (;;) {
        if (bench_out_line(c, prefix, line, len) == 0)
            return 0;
        if (bench_interrupted) {
            bench_kill(p);
            return -EINTR;
        }
        if (try_reap(p)) {
            if (bench_out_line(c, prefix, line, len) == 0)
                return 0;
            check(c, "the workload (before it was ready)", p->status);
            return -ECHILD;
        }
        if (bench_mono_s() > deadline) {
            bench_kill(p);
            check(c, "the workload", -ETIMEDOUT);
            return -ETIMEDOUT;
        }
        nanosleep(&tick, NULL);
    }
}

int bench_release(const bench_ctx_t *c)
{
    int fd = open(c->stop, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

int bench_finish(const bench_ctx_t *c, bench_proc_t *p, const char *what)
{
    struct timespec tick = {0, POLL_NS / 2};
    double deadline = p->t0 + c->timeout_s;
    while (!try_reap(p)) {
        if (bench_interrupted) {
            bench_kill(p);
            return -EINTR;
        }
        if (bench_mono_s() > deadline) {
            bench_kill(p);
            return check(c, what, -ETIMEDOUT);
        }
        nanosleep(&tick, NULL);
    }
    return check(c, what, p->status);
}

long bench_group_rss_kb(pid_t pgid, const char *field)
{
    size_t flen = strlen(field);
    DIR *d = opendir("/proc");
    struct dirent *e;
    char path[64], buf[1024];
    long total = 0;
    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        /* pid (comm) state ppid pgrp ...: comm may hold spaces and ')' */
        char *rp = strrchr(buf, ')');
        int pgrp = 0;
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 || pgrp != pgid)
            continue;
        snprintf(path, sizeof(path), "/proc/%.20s/status", e->d_name);
        if (!(f = fopen(path, "re")))
            continue;
        long kb;
        while (fgets(buf, sizeof(buf), f))
            if (!strncmp(buf, field, flen) && buf[flen] == ':' &&
                sscanf(buf + flen + 1, "%ld", &kb) == 1) {
                total += kb;
                break;
            }
        fclose(f);
    }
    closedir(d);
    return total;
}

int bench_snapshot_pid(const bench_ctx_t *c, long pid, double *secs, long long *bytes)
{
    char pidarg[24], out[PATH_MAX + 16], err[PATH_MAX + 16], line[PATH_MAX + 64];
    char *argv[] = {(char *)c->memtrail, (char *)"snapshot", pidarg, (char *)"--timeout",
                    (char *)"600", NULL};
    long rss;
    struct stat st;
    snprintf(pidarg, sizeof(pidarg), "%ld", pid);
    snprintf(out, sizeof(out), "%s/snap.out", c->tmpdir);
    snprintf(err, sizeof(err), "%s/snap.err", c->tmpdir);
    char **env = bench_make_env(env_drop, NULL);
    if (!env)
        return -ENOMEM;
    int rc = bench_run_child(argv, env, out, err, c->timeout_s, secs, &rss);
    free(env);
    if (rc == -EINTR)
        return rc;
    if (rc < 0 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        fprintf(stderr, "%s: memtrail snapshot %ld failed\n", bench_prog, pid);
        bench_show_tail(err, "stderr of memtrail snapshot");
        return -ECHILD;
    }
    bench_first_line(out, line, sizeof(line));
    *bytes = stat(line, &st) == 0 ? (long long)st.st_size : -1;
    return 0;
}

#define KEEP_BELOW (1 << 20)         /* smaller files are moved, not unlinked */

/* Empties dir (bench_collect says why small files are kept); counts the
 * snapshots into s (if not NULL) and every file's bytes into *all (if not
 * NULL). */
static void empty_dir(const char *dir, const char *kept, bench_snaps_t *s, long long *all)
{
    static unsigned long moved;
    char to[PATH_MAX];
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    char p[PATH_MAX];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            bench_path_join(p, sizeof(p), dir, e->d_name) < 0)
            continue;
        size_t n = strlen(e->d_name);
        if (all && lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            *all += (long long)st.st_size;
        if (s && lstat(p, &st) == 0 && S_ISREG(st.st_mode) && n > 7 &&
            !strcmp(e->d_name + n - 7, ".mtsnap")) {
            s->files++;
            s->bytes += (long long)st.st_size;
            if (n > 12 && !strcmp(e->d_name + n - 12, ".exit.mtsnap")) {
                s->exit_files++;
                s->exit_bytes += (long long)st.st_size;
                mtsnap_costs_t k;
                if (mta_snapshot_costs(p, &k) == 0) {
                    s->has_costs = 1;
                    s->wait_ns = k.wait_ns;
                    s->waits = k.waits;
                    s->worst_wait_ns = k.worst_wait_ns;
                    s->writer_cpu_ns = k.writer_cpu_ns;
                }
            } else if (n > 16 && !strcmp(e->d_name + n - 16, ".interval.mtsnap")) {
                s->interval_files++;
                s->interval_bytes += (long long)st.st_size;
            }
        }
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < KEEP_BELOW &&
            snprintf(to, sizeof(to), "%s/%lu", kept, moved++) < (int)sizeof(to) &&
            rename(p, to) == 0)
            continue;
        unlink(p);
    }
    closedir(d);
}

void bench_collect(const bench_ctx_t *c, bench_snaps_t *s)
{
    memset(s, 0, sizeof(*s));
    empty_dir(c->outdir, c->keptdir, s, NULL);
    empty_dir(c->htdir, c->keptdir, NULL, &s->heaptrack_bytes);
}
