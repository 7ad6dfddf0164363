/* Helpers shared by the benchmark runners; see benchutil.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

static int reap_orphans;   /* bench_reap_orphans */

extern char **environ;

const char *bench_prog = "bench";
int bench_interrupted;

int bench_stopped(void)
{
    if (ferror(stdout))
        bench_interrupted = 1;
    return bench_interrupted;
}

int bench_path_join(char *dst, size_t len, const char *a, const char *b)
{
    int n = snprintf(dst, len, "%s/%s", a, b);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        fprintf(stderr, "%s: cannot remove %s: %s\n", bench_prog, path, strerror(errno));
    return 0;
}

void bench_remove_tree(const char *path)
{
    if (*path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int dropped(const char *v, const char *const drop[])
{
    for (size_t i = 0; drop[i]; i++)
        if (!strncmp(v, drop[i], strlen(drop[i])))
            return 1;
    return 0;
}

char **bench_make_env(const char *const drop[], char *const extra[])
{
    size_t n = 0, k = 0, x = 0;
    while (environ[n])
        n++;
    while (extra && extra[x])
        x++;
    char **env = calloc(n + x + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!dropped(environ[i], drop))
            env[k++] = environ[i];
    for (size_t i = 0; i < x; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    return env;
}

double bench_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median_sort(double *v, unsigned n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_median(const double *src, unsigned n)
{
    double v[BENCH_MAX_SAMPLES];
    memcpy(v, src, n * sizeof(*v));
    return bench_median_sort(v, n);
}

double bench_quantile(double *v, unsigned n, double q)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return v[(unsigned)(q * (n - 1) + 0.5)];
}

double bench_median_ratio(const double *a, const double *b, unsigned n)
{
    double *q = n ? malloc(n * sizeof(*q)) : NULL;
    unsigned k = 0;
    if (!q)
        return 0;
    for (unsigned i = 0; i < n; i++)
        if (a[i] > 0 && b[i] > 0)
            q[k++] = a[i] / b[i];
    double r = bench_median_sort(q, k);
    free(q);
    return r;
}

double bench_max(const double *v, unsigned n)
{
    double m = v[0];
    for (unsigned i = 1; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

void bench_print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "re");
    char buf[128] = "?";
    if (f) {
        if (fgets(buf, sizeof(buf), f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
    printf("load average %s: %s\n", when, buf);
}

double bench_last_cpu_s;
long bench_last_minflt;

int bench_run_child(char *const argv[], char *const env[], const char *out_path,
                    const char *err_path, unsigned timeout_s, double *wall_s, long *maxrss_kb)
{
    sigset_t set, old;
    int rc = 0, fo = -1, fe = -1;
    pid_t pid = -1;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    fe = err_path ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : fo;
    if (fo < 0 || fe < 0) {
        rc = -errno;
        goto out;
    }

    double t0 = bench_mono_s();
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto out;
    }
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        if (in >= 0)
            dup2(in, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execve(argv[0], argv, env);
        dprintf(2, "%s: exec %s: %s\n", bench_prog, argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);   /* also in the parent: no race with the kill below */

    struct timespec left = { (time_t)timeout_s, 0 };
    int status = 0;
    struct rusage ru = { 0 };
    for (;;) {
        double t_wait = bench_mono_s();
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &left);
        if (sig == SIGCHLD) {
            if (wait4(pid, &status, WNOHANG, &ru) == pid)
                break;
        } else if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            bench_interrupted = 1;
            rc = -EINTR;
        } else if (sig < 0 && errno == EAGAIN) {
            rc = -ETIMEDOUT;
        }
        if (rc < 0) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            goto out;
        }
        double rest = (double)left.tv_sec + (double)left.tv_nsec / 1e9 - (bench_mono_s() - t_wait);
        if (rest < 0.001)
            rest = 0.001;
        left.tv_sec = (time_t)rest;
        left.tv_nsec = (long)((rest - (double)left.tv_sec) * 1e9);
    }
    *wall_s = bench_mono_s() - t0;
    if (reap_orphans) {   /* each has ended or is ending: `memtrail run` waited */
        struct rusage ro;
        int st;
        while (wait4(-1, &st, 0, &ro) > 0) {
            ru.ru_utime.tv_sec += ro.ru_utime.tv_sec;
            ru.ru_utime.tv_usec += ro.ru_utime.tv_usec;
            ru.ru_stime.tv_sec += ro.ru_stime.tv_sec;
            ru.ru_stime.tv_usec += ro.ru_stime.tv_usec;
            ru.ru_minflt += ro.ru_minflt;
        }
    }
    /* wait4's rusage covers the child and its reaped descendants: under
     * `memtrail run` the largest is the traced program. */
    *maxrss_kb = ru.ru_maxrss;
    bench_last_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    bench_last_minflt = ru.ru_minflt;
    rc = status;
out:
    if (fe >= 0 && fe != fo)
        close(fe);
    if (fo >= 0)
        close(fo);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void bench_reap_orphans(void)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) == 0)
        reap_orphans = 1;
}

int bench_build_root(const char *arg, char *dst, size_t len)
{
    const char *root = arg && *arg ? arg : getenv("MEMTRAIL_BUILD_ROOT");
    char self[PATH_MAX], tmp[PATH_MAX + 8];
    if (root && *root)
        return snprintf(dst, len, "%s", root) >= (int)len ? -ENAMETOOLONG : 0;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0)
        return -errno;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -ENOENT;
    *slash = 0;
    snprintf(tmp, sizeof(tmp), "%s/../..", self);
    if (!realpath(tmp, dst))
        return -errno;
    return 0;
}

int bench_root_option(int argc, char **argv, void (*usage)(FILE *), const char **root)
{
    int opt;
    while ((opt = getopt(argc, argv, "b:h")) != -1) {
        switch (opt) {
        case 'b':
            *root = optarg;
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
    return -1;
}

int bench_env_uint(const char *prog, const char *name, unsigned max, unsigned *v)
{
    const char *s = getenv(name);
    char *end;
    if (!s || !*s)
        return 0;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end || *s == '-' || x == 0 || x > max) {
        fprintf(stderr, "%s: invalid %s=%s (1 to %u)\n", prog, name, s, max);
        return -EINVAL;
    }
    *v = (unsigned)x;
    return 0;
}

void bench_first_line(const char *path, char *dst, size_t len)
{
    FILE *f = fopen(path, "re");
    dst[0] = 0;
    if (!f)
        return;
    while (fgets(dst, (int)len, f)) {
        dst[strcspn(dst, "\n")] = 0;
        if (dst[0])
            break;
    }
    fclose(f);
}
