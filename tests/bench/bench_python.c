/* bench_python: runs py_workload.py under CPython bare, with tracemalloc (1 and
 * 25 frames), under `memtrail run`, `memtrail run --sample` and `memtrail run
 * --native` (hybrid stacks), and with another build's library (memtrail-B),
 * interleaved round-robin; prints the median wall time of each mode, its
 * ratio to bare (of the medians, and paired: the median of each round's
 * time over that round's bare time, which moves less when the machine's
 * speed drifts between rounds), memtrail against tracemalloc=1, and for memtrail's modes
 * the exit snapshot's COSTS (the program's waits on full rings, the writer's
 * CPU time over the run). Every run must print the same checksum line as
 * the bare one.
 *
 * Environment:
 *   PYTHON               interpreter (default /root/.pyenv/versions/3.11.7/bin/
 *                        python3.11, else python3 on PATH; none: "skipped")
 *   MEMTRAIL_BUILD_ROOT  meson build dir: analyzer/memtrail, preload/libmemtrail.so
 *                        (default: found from this program's location)
 *   MEMTRAIL_SOURCE_ROOT source tree: tests/bench/py_workload.py (default: the
 *                        source dir this program was built from)
 *   BENCH_ROUNDS         rounds, each runs every mode once (default 5)
 *   BENCH_SCALE          workload scale (default: py_workload.py's own)
 *   BENCH_TIMEOUT        seconds before a single run is killed (default 900)
 *   BENCH_ALL_PYTHONS=1  then also every /root/.pyenv/versions/X/bin/python3.Y
 *                        (3.8 and later)
 *   BENCH_SAMPLE         the mean of the sampled mode, `memtrail run --sample`
 *                        (default 512KiB; off: no sampled mode)
 *   BENCH_TRACEMALLOC=0  leaves the two tracemalloc modes out (they take most
 *                        of the time: bare, exact and sampled side by side)
 *   BENCH_NATIVE=0       leaves the --native mode out
 *   BENCH_OTHER_LIB      another build's libmemtrail.so: mode memtrail-B, the
 *                        memtrail mode with that library (to compare builds) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

/* Variables the workloads never inherit. */
static const char *const env_drop[] = {
    "LD_PRELOAD=", "MEMTRAIL_", "MALLOC_PERTURB_=", "MALLOC_CHECK_=",
    "PYTHONTRACEMALLOC=", "PYTHONMALLOC=", "PYTHONMALLOCSTATS=", "PYTHONDEVMODE=", NULL,
};

extern char **environ;

#define MAX_ROUNDS BENCH_MAX_SAMPLES
#define DEFAULT_ROUNDS 5
#define DEFAULT_TIMEOUT_S 900u
#define MAX_PYTHONS 32
#ifndef DEFAULT_PYTHON
#define DEFAULT_PYTHON "/root/.pyenv/versions/3.11.7/bin/python3.11"
#endif
#define PYENV_GLOB "/root/.pyenv/versions/*/bin/python3.*"

#ifndef BENCH_PY_WORKLOAD
#define BENCH_PY_WORKLOAD ""
#endif

enum mode { M_BARE, M_TM1, M_TM25, M_MEMTRAIL, M_SAMPLED, M_NATIVE, M_OTHER, M_COUNT };
static const char *const mode_name[M_COUNT] = {
    "bare", "tracemalloc=1", "tracemalloc=25", "memtrail", "memtrail-sampled",
    "memtrail-native", "memtrail-B",
};
/* The columns of the table of every interpreter (BENCH_ALL_PYTHONS). */
static const char *const mode_column[M_COUNT] = {
    "bare_s", "tm1_x", "tm25_x", "memtr_x", "sampled_x", "native_x", "B_x",
};

static int is_memtrail(enum mode m)
{
    return m == M_MEMTRAIL || m == M_SAMPLED || m == M_NATIVE || m == M_OTHER;
}

typedef struct config {
    unsigned rounds;
    unsigned timeout_s;
    char scale[24];             /* empty: the workload's default */
    char workload[PATH_MAX];    /* py_workload.py */
    char memtrail[PATH_MAX];    /* the memtrail CLI */
    char lib[PATH_MAX];         /* libmemtrail.so, passed as MEMTRAIL_LIB */
    char other_lib[PATH_MAX];   /* memtrail-B's (BENCH_OTHER_LIB) */
    char tmpdir[PATH_MAX];      /* ours, removed at the end */
    char outdir[PATH_MAX];      /* memtrail run -o */
    char out[PATH_MAX];         /* stdout of the last run */
    char err[PATH_MAX];         /* stderr of the last run */
    char sample[64];            /* the sampled mode's --sample */
    int skip[M_COUNT];          /* modes left out (BENCH_SAMPLE=off, BENCH_TRACEMALLOC=0,
                                   BENCH_NATIVE=0, no BENCH_OTHER_LIB) */
} config_t;

typedef struct python {
    char exe[PATH_MAX];         /* sys.executable (pyenv shims resolved) */
    char version[64];           /* e.g. 3.11.7 */
    int minor;
} python_t;

typedef struct series {
    double wall[MAX_ROUNDS];
    double round_wall[MAX_ROUNDS];   /* by round, 0 where the run failed */
    long maxrss_kb;
    long long snap_bytes;       /* memtrail: largest sum of snapshot sizes of a run */
    double wait_ms[MAX_ROUNDS], busy[MAX_ROUNDS];   /* memtrail: each run's COSTS */
    unsigned ncosts;            /* runs with a COSTS record */
    unsigned n;
    int failed;
    int skipped;                /* the mode is left out */
    double median_s;
} series_t;

typedef struct result {
    const python_t *py;
    series_t s[M_COUNT];
    int ok;                     /* every mode has a median */
} result_t;



/* ---------------------------------------------------------------- paths */



static int locate(config_t *c, const char *root_arg)
{
    char root[PATH_MAX];
    const char *src = getenv("MEMTRAIL_SOURCE_ROOT");
    int rc;

    if ((rc = bench_build_root(root_arg, root, sizeof(root))) < 0 ||
        (rc = bench_path_join(c->memtrail, sizeof(c->memtrail), root, "analyzer/memtrail")) < 0 ||
        (rc = bench_path_join(c->lib, sizeof(c->lib), root, "preload/libmemtrail.so")) < 0)
        return rc;
    if (src && *src)
        rc = bench_path_join(c->workload, sizeof(c->workload), src, "tests/bench/py_workload.py");
    else
        rc = snprintf(c->workload, sizeof(c->workload), "%s", BENCH_PY_WORKLOAD) >=
                     (int)sizeof(c->workload) ? -ENAMETOOLONG : 0;
    if (rc < 0)
        return rc;
    if (access(c->memtrail, X_OK) < 0) {
        rc = -errno;
        fprintf(stderr, "bench_python: %s: %s\n", c->memtrail, strerror(errno));
        return rc;
    }
    if (access(c->lib, R_OK) < 0) {
        rc = -errno;
        fprintf(stderr, "bench_python: %s: %s\n", c->lib, strerror(errno));
        return rc;
    }
    if (!*c->workload || access(c->workload, R_OK) < 0) {
        rc = *c->workload ? -errno : -ENOENT;
        fprintf(stderr, "bench_python: py_workload.py: %s: %s (set MEMTRAIL_SOURCE_ROOT)\n",
                *c->workload ? c->workload : "?", strerror(-rc));
        return rc;
    }
    return 0;
}

/* -------------------------------------------------------- temp files */



/* Removes the files directly inside `dir`; returns the sum of their sizes. */
static long long empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    char p[PATH_MAX];
    long long total = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            bench_path_join(p, sizeof(p), dir, e->d_name) == 0) {
            if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
                total += (long long)st.st_size;
            unlink(p);
        }
    closedir(d);
    return total;
}

static int make_tmp(config_t *c)
{
    snprintf(c->tmpdir, sizeof(c->tmpdir), "/tmp/memtrail-pybench.XXXXXX");
    if (!mkdtemp(c->tmpdir)) {
        c->tmpdir[0] = 0;
        return -errno;
    }
    int rc;
    if ((rc = bench_path_join(c->outdir, sizeof(c->outdir), c->tmpdir, "out")) < 0 ||
        (rc = bench_path_join(c->out, sizeof(c->out), c->tmpdir, "stdout")) < 0 ||
        (rc = bench_path_join(c->err, sizeof(c->err), c->tmpdir, "stderr")) < 0)
        return rc;
    if (mkdir(c->outdir, 0700) < 0)
        return -errno;
    return 0;
}

/* ---------------------------------------------------- running a child */




/* Runs argv (argv[0] a path) with `extra` in its environment, stdout to c->out
 * and stderr to c->err, in its own process group (killed as a whole on timeout
 * or interruption). Returns the wait status (>= 0) or a negative errno;
 * -ETIMEDOUT / -EINTR when killed. */
static int run_child(const config_t *c, char *const argv[], char *const extra[],
                     double *wall_s, long *maxrss_kb)
{
    char **env = bench_make_env(env_drop, extra);
    if (!env)
        return -ENOMEM;
    int rc = bench_run_child(argv, env, c->out, c->err, c->timeout_s, wall_s, maxrss_kb);
    free(env);
    return rc;
}

static void show_tail(const char *path, const char *what)
{
    FILE *f = fopen(path, "re");
    char buf[4096];
    size_t n;
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    if (n)
        fprintf(stderr, "---- %s of the run ----\n%s\n", what, buf);
}

static int check_run(const config_t *c, const char *what, int rc)
{
    if (rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0)
        return 0;
    if (rc == -EINTR)
        return rc;
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "bench_python: %s: killed after the time limit (BENCH_TIMEOUT=%u s)\n",
                what, c->timeout_s);
    else if (rc < 0)
        fprintf(stderr, "bench_python: %s: %s\n", what, strerror(-rc));
    else if (WIFEXITED(rc))
        fprintf(stderr, "bench_python: %s: exit status %d\n", what, WEXITSTATUS(rc));
    else
        fprintf(stderr, "bench_python: %s: killed by signal %d\n", what, WTERMSIG(rc));
    show_tail(c->out, "stdout");
    show_tail(c->err, "stderr");
    return -ECHILD;
}

/* The "checksum ..." line of the last run's stdout, or -EBADMSG. */
static int read_checksum(const config_t *c, char *dst, size_t len)
{
    FILE *f = fopen(c->out, "re");
    char line[512];
    int rc = -EBADMSG;
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "checksum ", 9)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(dst, len, "%s", line);
            rc = 0;
        }
    fclose(f);
    return rc;
}

/* One run of the workload in `mode` with scale `scale` (NULL: default). */
static int run_mode(const config_t *c, const python_t *py, enum mode m, const char *scale,
                    double *wall_s, long *maxrss_kb, long long *snap_bytes, char *checksum,
                    size_t cslen, bench_costs_t *costs, int *has_costs)
{
    char libenv[PATH_MAX + 16], what[128];
    char *argv[12];
    char *extra[2] = {NULL, NULL};
    int a = 0, rc;

    if (is_memtrail(m)) {
        argv[a++] = (char *)c->memtrail;
        argv[a++] = (char *)"run";
        argv[a++] = (char *)"-o";
        argv[a++] = (char *)c->outdir;
        if (m == M_SAMPLED) {
            argv[a++] = (char *)"--sample";
            argv[a++] = (char *)c->sample;
        }
        if (m == M_NATIVE)
            argv[a++] = (char *)"--native";
        argv[a++] = (char *)"--";
        snprintf(libenv, sizeof(libenv), "MEMTRAIL_LIB=%s", m == M_OTHER ? c->other_lib : c->lib);
        extra[0] = libenv;
    }
    argv[a++] = (char *)py->exe;
    if (m == M_TM1 || m == M_TM25) {
        argv[a++] = (char *)"-X";
        argv[a++] = (char *)(m == M_TM1 ? "tracemalloc=1" : "tracemalloc=25");
    }
    argv[a++] = (char *)c->workload;
    if (scale && *scale)
        argv[a++] = (char *)scale;
    argv[a] = NULL;

    rc = run_child(c, argv, extra, wall_s, maxrss_kb);
    snprintf(what, sizeof(what), "Python %s, %s", py->version, mode_name[m]);
    rc = check_run(c, what, rc);
    if (has_costs)
        *has_costs = rc == 0 && is_memtrail(m) && bench_exit_costs(c->outdir, costs);
    long long bytes = empty_dir(c->outdir);
    if (snap_bytes)
        *snap_bytes = bytes;
    if (rc == 0 && checksum && (rc = read_checksum(c, checksum, cslen)) < 0) {
        fprintf(stderr, "bench_python: %s: no checksum line on stdout\n", what);
        show_tail(c->out, "stdout");
        show_tail(c->err, "stderr");
    }
    return rc;
}

/* ------------------------------------------------------------ pythons */

/* Runs `cand` once to learn sys.executable and the version. 0 if usable. */
static int probe_python(const config_t *c, const char *cand, python_t *py)
{
    char *argv[] = {
        (char *)cand, (char *)"-c",
        (char *)"import sys; v = sys.version_info; "
                "print(sys.executable); print('%d.%d.%d' % (v[0], v[1], v[2]))",
        NULL,
    };
    double wall;
    long rss;
    char exe[PATH_MAX], ver[64];
    int rc = run_child(c, argv, NULL, &wall, &rss);
    if (rc < 0 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        return rc == -EINTR ? rc : -ENOEXEC;
    FILE *f = fopen(c->out, "re");
    if (!f)
        return -errno;
    int ok = fgets(exe, sizeof(exe), f) && fgets(ver, sizeof(ver), f);
    fclose(f);
    if (!ok)
        return -ENOEXEC;
    exe[strcspn(exe, "\n")] = 0;
    ver[strcspn(ver, "\n")] = 0;
    int major = 0, minor = 0;
    if (sscanf(ver, "%d.%d", &major, &minor) != 2 || major != 3)
        return -ENOEXEC;
    /* sys.executable may be empty or a name when unknown: keep the candidate. */
    snprintf(py->exe, sizeof(py->exe), "%s", exe[0] == '/' && access(exe, X_OK) == 0 ? exe : cand);
    snprintf(py->version, sizeof(py->version), "%s", ver);
    py->minor = minor;
    return 0;
}

static int find_in_path(const char *name, char *dst, size_t len)
{
    const char *path = getenv("PATH");
    if (!path)
        return -ENOENT;
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (int)n < PATH_MAX &&
            snprintf(dst, len, "%.*s/%s", (int)n, path, name) < (int)len &&
            access(dst, X_OK) == 0)
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

/* The interpreter to benchmark. 0, -ENOENT if there is none, or another
 * error if $PYTHON is set but not usable. */
static int main_python(const config_t *c, python_t *py)
{
    const char *env = getenv("PYTHON");
    char cand[PATH_MAX];
    int rc;
    if (env && *env) {
        if (strchr(env, '/'))
            snprintf(cand, sizeof(cand), "%s", env);
        else if (find_in_path(env, cand, sizeof(cand)) < 0)
            snprintf(cand, sizeof(cand), "%s", env);
        if ((rc = probe_python(c, cand, py)) < 0 && rc != -EINTR) {
            fprintf(stderr, "bench_python: PYTHON=%s is not a usable CPython 3\n", env);
            show_tail(c->err, "stderr");
            rc = -EINVAL;
        }
        return rc;
    }
    if (access(DEFAULT_PYTHON, X_OK) == 0 && (rc = probe_python(c, DEFAULT_PYTHON, py)) != -ENOEXEC)
        return rc;
    if (find_in_path("python3", cand, sizeof(cand)) == 0 &&
        (rc = probe_python(c, cand, py)) != -ENOEXEC)
        return rc;
    return -ENOENT;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int cmp_python(const void *a, const void *b)
{
    const python_t *x = a, *y = b;
    int xv[3] = {0, 0, 0}, yv[3] = {0, 0, 0};
    sscanf(x->version, "%d.%d.%d", &xv[0], &xv[1], &xv[2]);
    sscanf(y->version, "%d.%d.%d", &yv[0], &yv[1], &yv[2]);
    for (int i = 0; i < 3; i++)
        if (xv[i] != yv[i])
            return xv[i] < yv[i] ? -1 : 1;
    return strcmp(x->exe, y->exe);
}

/* Appends the pyenv interpreters 3.8+ other than those already in pys[]. */
static int add_pyenv_pythons(const config_t *c, python_t *pys, unsigned *n)
{
    glob_t g;
    unsigned first = *n;
    if (glob(PYENV_GLOB, 0, NULL, &g) != 0)
        return 0;
    for (size_t i = 0; i < g.gl_pathc && *n < MAX_PYTHONS; i++) {
        const char *p = g.gl_pathv[i], *base = strrchr(p, '/') + 1;
        /* python3.Y only: not python3.Y-config, python3.Y-gdb.py... */
        if (strspn(base + 8, "0123456789") != strlen(base + 8) || !base[8])
            continue;
        int dup = 0;
        for (unsigned k = 0; k < *n; k++)
            dup |= same_file(p, pys[k].exe);
        python_t py;
        int rc = dup ? 0 : probe_python(c, p, &py);
        if (rc == -EINTR) {
            globfree(&g);
            return rc;
        }
        if (dup || rc < 0)
            continue;
        if (py.minor < 8) {
            printf("skipped %s: CPython %s (the workload needs 3.8 or later)\n", p, py.version);
            continue;
        }
        pys[(*n)++] = py;
    }
    globfree(&g);
    qsort(pys + first, *n - first, sizeof(*pys), cmp_python);
    return 0;
}

/* ------------------------------------------------------------ results */



static int usable(const series_t *s)
{
    return !s->failed && s->n > 0;
}


static void print_table(result_t *r, unsigned rounds)
{
    const series_t *bare = &r->s[M_BARE];
    printf("\n%-16s %9s %8s %8s %8s %10s %12s %9s %8s\n", "mode", "median_s", "x_bare", "x_pair",
           "spread%", "maxrss_MiB", "snapshot_MiB", "wait_ms", "writer%");
    for (unsigned m = 0; m < M_COUNT; m++) {
        const series_t *s = &r->s[m];
        printf("%-16s ", mode_name[m]);
        if (!usable(s) && s->skipped) {
            printf("%9s\n", "-");
            continue;
        }
        if (!usable(s)) {
            printf("%9s\n", "failed");
            continue;
        }
        double lo = s->wall[0], hi = lo;
        for (unsigned i = 1; i < s->n; i++) {
            lo = s->wall[i] < lo ? s->wall[i] : lo;
            hi = s->wall[i] > hi ? s->wall[i] : hi;
        }
        printf("%9.3f ", s->median_s);
        double pr = usable(bare) ? bench_median_ratio(s->round_wall, bare->round_wall, rounds) : 0;
        if (usable(bare))
            printf("%8.2f ", s->median_s / bare->median_s);
        else
            printf("%8s ", "-");
        if (pr > 0)
            printf("%8.2f ", pr);
        else
            printf("%8s ", "-");
        printf("%8.1f %10.1f ", (hi - lo) * 100 / s->median_s, (double)s->maxrss_kb / 1024);
        if (!is_memtrail(m)) {
            printf("%12s\n", "-");
            continue;
        }
        printf("%12.2f ", (double)s->snap_bytes / (1024.0 * 1024.0));
        if (s->ncosts == s->n)
            printf("%9.1f %8.1f\n", bench_median(s->wait_ms, s->ncosts),
                   100 * bench_median(s->busy, s->ncosts));
        else
            printf("%9s %8s\n", "-", "-");
    }
    printf("(median of %u runs; x_pair = median of the rounds' ratios to bare's run of the\n"
           " same round; spread = (max - min) / median; maxrss = largest process;\n"
           " snapshot = size of the snapshot files one memtrail run wrote, largest run;\n"
           " wait_ms = time the program's threads waited on full rings, writer%% = the\n"
           " writer thread's CPU time over the run, medians, from the exit snapshot)\n",
           r->s[M_BARE].n);
}

/* The memtrail/tracemalloc1 line; returns 1 if memtrail was faster. */
static int print_verdict(const result_t *r)
{
    const series_t *b = &r->s[M_BARE], *t = &r->s[M_TM1], *m = &r->s[M_MEMTRAIL];
    if (!usable(b) || !usable(t) || !usable(m)) {
        printf("memtrail/tracemalloc1 = ? (a mode failed)\n");
        return 0;
    }
    double ratio = m->median_s / t->median_s;
    double added_t = t->median_s - b->median_s, added_m = m->median_s - b->median_s;
    if (added_t > 0)
        printf("added time: memtrail %+.3f s, tracemalloc=1 %+.3f s (memtrail adds %.2f of "
               "tracemalloc=1's)\n", added_m, added_t, added_m / added_t);
    printf("memtrail/tracemalloc1 = %.2f: memtrail is %s than tracemalloc=1 (Python %s)\n",
           ratio, ratio < 1 ? "faster" : "not faster", r->py->version);
    return ratio < 1;
}

/* ---------------------------------------------------------------- main */

/* Warm-up, reference checksum, then the rounds for one interpreter. Returns
 * -EINTR when bench_interrupted, -ECHILD when a run failed or differed, else 0. */
static int bench_one(const config_t *c, const python_t *py, result_t *r)
{
    char ref[512], cs[512];
    double wall;
    long rss;
    long long snap;
    int rc, failed = 0;

    memset(r, 0, sizeof(*r));
    r->py = py;
    for (unsigned m = 0; m < M_COUNT; m++)
        r->s[m].skipped = c->skip[m];
    printf("\n== CPython %s: %s\n", py->version, py->exe);
    /* Warm-up, not timed: the bare run gives the reference checksum; a short
     * memtrail run loads the tracer once (page cache, dynamic loader). */
    rc = run_mode(c, py, M_BARE, c->scale, &wall, &rss, NULL, ref, sizeof(ref), NULL, NULL);
    if (rc == -EINTR || bench_stopped())
        return -EINTR;
    if (rc < 0) {
        fprintf(stderr, "bench_python: the bare warm-up run failed, skipping CPython %s\n",
                py->version);
        return -ECHILD;
    }
    printf("reference (bare, warm-up %.3f s): %s\n", wall, ref);
    rc = run_mode(c, py, M_MEMTRAIL, "1", &wall, &rss, NULL, NULL, 0, NULL, NULL);
    if (rc == -EINTR || bench_stopped())
        return -EINTR;

    for (unsigned round = 0; round < c->rounds; round++) {
        printf("  round %u/%u:", round + 1, c->rounds);
        for (unsigned k = 0; k < M_COUNT; k++) {
            enum mode m = (enum mode)((k + round) % M_COUNT);
            series_t *s = &r->s[m];
            if (s->failed || s->skipped)
                continue;
            bench_costs_t cost;
            int has_cost = 0;
            rc = run_mode(c, py, m, c->scale, &wall, &rss, &snap, cs, sizeof(cs), &cost, &has_cost);
            if (rc == -EINTR || bench_stopped())
                return -EINTR;
            if (rc == 0 && strcmp(cs, ref)) {
                fprintf(stderr, "\nbench_python: CPython %s, %s: checksum differs from bare:\n"
                                "  bare: %s\n  %s: %s\n",
                        py->version, mode_name[m], ref, mode_name[m], cs);
                rc = -EBADMSG;
            }
            if (rc < 0) {
                s->failed = failed = 1;
                printf(" %s failed%s", mode_name[m], k + 1 < M_COUNT ? "," : "");
                continue;
            }
            s->wall[s->n++] = wall;
            s->round_wall[round] = wall;
            if (has_cost) {
                s->wait_ms[s->ncosts] = cost.wait_ms;
                s->busy[s->ncosts++] = cost.writer_busy;
            }
            if (rss > s->maxrss_kb)
                s->maxrss_kb = rss;
            if (snap > s->snap_bytes)
                s->snap_bytes = snap;
            printf(" %s %.3f s%s", mode_name[m], wall, k + 1 < M_COUNT ? "," : "");
        }
        printf("\n");
    }
    bench_print_load("after these runs");
    r->ok = 1;
    for (unsigned m = 0; m < M_COUNT; m++) {
        if (usable(&r->s[m]))
            r->s[m].median_s = bench_median(r->s[m].wall, r->s[m].n);
        else if (!r->s[m].skipped)
            r->ok = 0;
    }
    print_table(r, c->rounds);
    print_verdict(r);
    return failed ? -ECHILD : 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_python [-b BUILD_ROOT]\n"
            "Runs tests/bench/py_workload.py bare, with -X tracemalloc=1 and =25, under\n"
            "`memtrail run`, `memtrail run --sample` and `memtrail run --native`, interleaved;\n"
            "prints the median wall times and their ratios.\n"
            "Environment: PYTHON, MEMTRAIL_BUILD_ROOT, MEMTRAIL_SOURCE_ROOT, BENCH_ROUNDS\n"
            "(default %u), BENCH_SCALE, BENCH_TIMEOUT (default %u s), BENCH_ALL_PYTHONS=1,\n"
            "BENCH_SAMPLE (default 512KiB; off), BENCH_TRACEMALLOC=0, BENCH_NATIVE=0,\n"
            "BENCH_OTHER_LIB (another build's libmemtrail.so: mode memtrail-B).\n",
            DEFAULT_ROUNDS, DEFAULT_TIMEOUT_S);
}

int main(int argc, char **argv)
{
    bench_prog = "bench_python";
    static config_t cfg;
    static python_t pys[MAX_PYTHONS];
    static result_t res[MAX_PYTHONS];
    const char *root = NULL;
    unsigned npy = 0, scale = 0;
    int rc = 0, failed = 0;

    if ((rc = bench_root_option(argc, argv, usage, &root)) >= 0)
        return rc;
    rc = 0;

    cfg.rounds = DEFAULT_ROUNDS;
    cfg.timeout_s = DEFAULT_TIMEOUT_S;
    if (bench_env_uint("bench_python", "BENCH_ROUNDS", MAX_ROUNDS, &cfg.rounds) < 0 ||
        bench_env_uint("bench_python", "BENCH_TIMEOUT", 86400, &cfg.timeout_s) < 0 ||
        bench_env_uint("bench_python", "BENCH_SCALE", 1000000, &scale) < 0)
        return 2;
    if (scale)
        snprintf(cfg.scale, sizeof(cfg.scale), "%u", scale);
    const char *all = getenv("BENCH_ALL_PYTHONS");
    int all_pythons = all && *all && strcmp(all, "0");
    const char *mean = getenv("BENCH_SAMPLE"), *tm = getenv("BENCH_TRACEMALLOC");
    snprintf(cfg.sample, sizeof(cfg.sample), "%s", mean && *mean ? mean : "512KiB");
    cfg.skip[M_SAMPLED] = !strcmp(cfg.sample, "off");
    cfg.skip[M_TM1] = cfg.skip[M_TM25] = tm && !strcmp(tm, "0");
    const char *native = getenv("BENCH_NATIVE"), *other = getenv("BENCH_OTHER_LIB");
    cfg.skip[M_NATIVE] = native && !strcmp(native, "0");
    cfg.skip[M_OTHER] = !other || !*other;
    if (!cfg.skip[M_OTHER]) {
        if (access(other, R_OK) != 0) {
            fprintf(stderr, "bench_python: BENCH_OTHER_LIB=%s: %s\n", other, strerror(errno));
            return 2;
        }
        snprintf(cfg.other_lib, sizeof(cfg.other_lib), "%s", other);
    }

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGCHLD, SIG_DFL);   /* an inherited SIG_IGN would reap our children */
    signal(SIGPIPE, SIG_IGN);   /* see bench_stopped() */

    if ((rc = make_tmp(&cfg)) < 0) {
        fprintf(stderr, "bench_python: cannot create a directory under /tmp: %s\n", strerror(-rc));
        goto out;
    }
    rc = main_python(&cfg, &pys[0]);
    if (rc == -ENOENT) {
        printf("skipped: no CPython\n");
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    npy = 1;
    if ((rc = locate(&cfg, root)) < 0)
        goto out;

    printf("memtrail Python benchmark\n");
    if (!cfg.skip[M_OTHER])
        printf("memtrail-B library: %s\n", cfg.other_lib);
    printf("memtrail: %s\nlibrary:  %s\nworkload: %s %s\n", cfg.memtrail, cfg.lib, cfg.workload,
           cfg.scale[0] ? cfg.scale : "(default scale)");
    printf("cpus online: %ld, rounds: %u (each runs every mode once, order rotating; "
           "median wall time kept)\n", sysconf(_SC_NPROCESSORS_ONLN), cfg.rounds);
    if (all_pythons && (rc = add_pyenv_pythons(&cfg, pys, &npy)) < 0)
        goto out;
    printf("interpreters:");
    for (unsigned i = 0; i < npy; i++)
        printf(" %s", pys[i].version);
    printf("\n");
    bench_print_load("at start");

    for (unsigned i = 0; i < npy; i++) {
        rc = bench_one(&cfg, &pys[i], &res[i]);
        if (rc == -EINTR)
            goto out;
        if (rc < 0)
            failed = 1;
        rc = 0;
    }

    if (npy > 1) {
        unsigned faster = 0, measured = 0;
        printf("\n%-8s", "python");
        for (unsigned m = 0; m < M_COUNT; m++)
            printf(" %9s", mode_column[m]);
        printf(" %12s\n", "memtr/tm1");
        for (unsigned i = 0; i < npy; i++) {
            const result_t *r = &res[i];
            printf("%-8s ", pys[i].version);
            if (!r->ok) {
                printf("%9s\n", "failed");
                continue;
            }
            double b = r->s[M_BARE].median_s;
            printf(" %9.3f", b);
            for (unsigned m = M_TM1; m < M_COUNT; m++) {
                if (usable(&r->s[m]))
                    printf(" %9.2f", r->s[m].median_s / b);
                else
                    printf(" %9s", "-");
            }
            printf(" ");
            if (usable(&r->s[M_TM1]))
                printf("%12.2f\n", r->s[M_MEMTRAIL].median_s / r->s[M_TM1].median_s);
            else
                printf("%12s\n", "-");
            measured += usable(&r->s[M_TM1]);
            faster += usable(&r->s[M_TM1]) && r->s[M_MEMTRAIL].median_s < r->s[M_TM1].median_s;
        }
        printf("memtrail < tracemalloc=1 on %u of %u interpreters\n", faster, measured);
    }
    if (failed)
        fprintf(stderr, "bench_python: some runs failed or printed another checksum (above)\n");
    goto out;

out:
    bench_remove_tree(cfg.tmpdir);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "bench_python: stopped (bench_interrupted, or stdout closed)\n");
        return 130;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_python: %s\n", strerror(-rc));
        return 1;
    }
    return failed ? 1 : 0;
}
