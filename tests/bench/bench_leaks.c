/* bench_leaks: what the leak scan and the Python object graph cost at exit,
 * with 1 million live blocks / gc-tracked objects.
 *
 * Two workloads, each traced under `memtrail run` with --leak-check=exit (the
 * default: the exit snapshot carries a LEAKS record, and in a Python process a
 * PYGRAPH record) and with --leak-check=off, BENCH_RUNS times each, the two
 * modes alternating (exit first in even rounds, off first in odd ones):
 *
 *   native  tests/bench/many_stacks BENCH_BLOCKS BENCH_STACKS (1,000,001 live
 *           blocks over 100,001 stacks at the defaults)
 *   python  tests/bench/py_objects.py BENCH_OBJECTS with $PYTHON (default
 *           /root/.pyenv/versions/3.11.7/bin/python3.11; "skipped" when it
 *           cannot be run): 250,000 records of 4 gc-tracked objects each
 *
 * For every run: the wall time of the whole `memtrail run` (wrapper, program,
 * snapshots), the peak RSS of the traced process (wait4's rusage, which
 * covers memtrail run's reaped child), and from the exit snapshot (read with
 * the analyzer's reader): its size, the LEAKS header (stop_ns: how long the
 * other threads were stopped, i.e. the scan; root_bytes, heap_bytes, threads)
 * and the PYGRAPH header (capture_ns: the time the GIL was held capturing the
 * graph; objects, edges). A Python process also writes a `final` snapshot
 * after the interpreter's teardown, scanned too: its size and stop_ns are
 * shown. The tables give the median of each figure over the runs and the
 * ratio exit / off. A run that fails, a leak-check=exit snapshot without its
 * records or a leak-check=off snapshot with them make the runner exit 1.
 *
 * Environment:
 *   MEMTRAIL_BUILD_ROOT  meson build dir: analyzer/memtrail, preload/libmemtrail.so,
 *                        tests/bench/many_stacks (default: found from this
 *                        program's location)
 *   MEMTRAIL_SOURCE_ROOT source tree, for tests/bench/py_objects.py (default:
 *                        the path compiled in)
 *   PYTHON               the interpreter (default the pyenv 3.11.7 above)
 *   BENCH_RUNS           runs of each mode (default 3; the median is kept)
 *   BENCH_BLOCKS         many_stacks' live blocks (default 1000000)
 *   BENCH_STACKS         many_stacks' distinct stacks (default 100000)
 *   BENCH_OBJECTS        py_objects.py's gc-tracked objects (default 1000000)
 *   BENCH_TIMEOUT        seconds before a single run is killed (default 900) */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"
#include "snapshot.h"

#ifndef BENCH_PY_OBJECTS
#define BENCH_PY_OBJECTS ""
#endif
#define DEFAULT_PYTHON "/root/.pyenv/versions/3.11.7/bin/python3.11"

/* Variables the children never inherit. */
static const char *const env_drop[] = {
    "LD_PRELOAD=", "MEMTRAIL_", "MALLOC_PERTURB_=", "MALLOC_CHECK_=", "PYTHONTRACEMALLOC=",
    "PYTHONMALLOC=", "PYTHONMALLOCSTATS=", "PYTHONDEVMODE=", NULL,
};

#define MAX_RUNS BENCH_MAX_SAMPLES
#define DEFAULT_RUNS 3
#define DEFAULT_BLOCKS 1000000u
#define DEFAULT_STACKS 100000u
#define DEFAULT_OBJECTS 1000000u
#define DEFAULT_TIMEOUT_S 900u
#define MIB (1024.0 * 1024.0)

typedef struct config {
    unsigned runs;
    unsigned blocks;
    unsigned stacks;
    unsigned objects;
    unsigned timeout_s;
    char memtrail[PATH_MAX];
    char lib[PATH_MAX];         /* libmemtrail.so, passed as MEMTRAIL_LIB */
    char many_stacks[PATH_MAX];
    char script[PATH_MAX];      /* py_objects.py */
    char python[PATH_MAX];
    char pyversion[64];
    char tmpdir[PATH_MAX];      /* ours, removed at the end */
    char out[PATH_MAX];         /* stdout of the last run */
    char err[PATH_MAX];         /* stderr of the last run */
} config_t;

/* What one run measured; NaN-free: absent figures have their has_ flag 0. */
typedef struct sample {
    double wall_s;
    double rss_mib;
    double exit_mib;            /* the exit snapshot */
    double write_s;             /* its mtime - META.time_ns: written after the scan */
    int has_leaks, has_pygraph;
    double nblocks;             /* BLOCKS count of the exit snapshot */
    double leaks_mib;           /* LEAKS record: header + payload */
    double stop_ms, root_mib, heap_mib, threads, threads_missed, partial;
    double capture_ms, objects, edges, pygraph_mib;
    int has_final, final_leaks;
    double final_mib, final_stop_ms;
} sample_t;

typedef struct series {
    const char *mode;           /* "exit" or "off" */
    sample_t s[MAX_RUNS];
    unsigned n;
    char first_line[256];       /* the workload's first stdout line */
} series_t;

/* ---------------------------------------------------------------- paths */


static int locate(config_t *c, const char *root_arg)
{
    char root[PATH_MAX];
    const char *src = getenv("MEMTRAIL_SOURCE_ROOT");
    int rc;

    if ((rc = bench_build_root(root_arg, root, sizeof(root))) < 0 ||
        (rc = bench_path_join(c->memtrail, sizeof(c->memtrail), root, "analyzer/memtrail")) < 0 ||
        (rc = bench_path_join(c->lib, sizeof(c->lib), root, "preload/libmemtrail.so")) < 0 ||
        (rc = bench_path_join(c->many_stacks, sizeof(c->many_stacks), root,
                              "tests/bench/many_stacks")) < 0)
        return rc;
    if (src && *src)
        rc = bench_path_join(c->script, sizeof(c->script), src, "tests/bench/py_objects.py");
    else
        rc = snprintf(c->script, sizeof(c->script), "%s", BENCH_PY_OBJECTS) >=
                     (int)sizeof(c->script) ? -ENAMETOOLONG : 0;
    if (rc < 0)
        return rc;
    const char *const need[][2] = {
        { c->memtrail, "x" }, { c->many_stacks, "x" }, { c->lib, "r" },
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (access(need[i][0], need[i][1][0] == 'x' ? X_OK : R_OK) < 0) {
            rc = -errno;
            fprintf(stderr, "bench_leaks: %s: %s\n", need[i][0], strerror(errno));
            return rc;
        }
    return 0;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The file's mtime in ns since the epoch (CLOCK_REALTIME, as META.time_ns). */
static double mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    return (double)st.st_mtim.tv_sec * 1e9 + (double)st.st_mtim.tv_nsec;
}

/* The *.<trigger>.mtsnap file in `dir` into dst (the largest if there are several). */
static int find_snapshot(const char *dir, const char *trigger, char *dst, size_t len)
{
    char suffix[32];
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];
    long long best = -1;
    int rc = -ENOENT;
    if (!d)
        return -errno;
    size_t ns = (size_t)snprintf(suffix, sizeof(suffix), ".%s.mtsnap", trigger);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= ns || strcmp(e->d_name + n - ns, suffix) ||
            bench_path_join(p, sizeof(p), dir, e->d_name) < 0)
            continue;
        long long size = file_size(p);
        if (size > best) {
            best = size;
            rc = snprintf(dst, len, "%s", p) >= (int)len ? -ENAMETOOLONG : 0;
        }
    }
    closedir(d);
    return rc;
}

/* ---------------------------------------------------- running a child */

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

/* 0 when the status is a clean exit 0; else a reason in why and -ECHILD
 * (-EINTR when interrupted). */
static int check_status(const config_t *c, int rc, char *why, size_t len)
{
    char line[200];
    if (rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0)
        return 0;
    if (rc == -EINTR)
        return rc;
    bench_first_line(c->err, line, sizeof(line));
    if (rc == -ETIMEDOUT)
        snprintf(why, len, "killed after the time limit (BENCH_TIMEOUT=%u s)", c->timeout_s);
    else if (rc < 0)
        snprintf(why, len, "%s", strerror(-rc));
    else if (WIFEXITED(rc))
        snprintf(why, len, "exit status %d: %s", WEXITSTATUS(rc), line[0] ? line : "(no stderr)");
    else
        snprintf(why, len, "killed by signal %d: %s", WTERMSIG(rc), line[0] ? line : "(no stderr)");
    return -ECHILD;
}

/* The interpreter: $PYTHON or the default; its version into c->pyversion.
 * 0, or -ENOENT (with the reason in why) when it cannot be run. */
static int find_python(config_t *c, char *why, size_t len)
{
    const char *env = getenv("PYTHON");
    const char *py = env && *env ? env : DEFAULT_PYTHON;
    double wall;
    long rss;
    snprintf(c->python, sizeof(c->python), "%s", py);
    if (access(c->python, X_OK) < 0) {
        snprintf(why, len, "%.300s: %s%s", c->python, strerror(errno),
                 env && *env ? "" : " (set PYTHON to another CPython 3)");
        return -ENOENT;
    }
    char *argv[] = { c->python, (char *)"-c",
                     (char *)"import sys; print(sys.version.split()[0])", NULL };
    int rc = run_child(c, argv, NULL, &wall, &rss);
    if (rc == -EINTR)
        return rc;
    if (check_status(c, rc, why, len) < 0)
        return -ENOENT;
    bench_first_line(c->out, c->pyversion, sizeof(c->pyversion));
    if (strncmp(c->pyversion, "3.", 2) != 0) {
        snprintf(why, len, "%.300s is not CPython 3 (%s)", c->python, c->pyversion);
        return -ENOENT;
    }
    return 0;
}

/* ------------------------------------------------------------ one run */

static int read_snapshot(const char *path, mta_snapshot_t **snap)
{
    char err[512];
    int rc = mta_snapshot_load(path, snap, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "bench_leaks: %s\n", err);
    return rc;
}

/* memtrail run -o DIR --leak-check=MODE -- WORKLOAD...; the figures into *s. */
static int run_once(const config_t *c, const char *tag, unsigned round, const char *mode,
                    char *const workload[], series_t *ser, sample_t *s)
{
    char dir[PATH_MAX], name[64], libenv[PATH_MAX + 16], lc[32], why[256], path[PATH_MAX];
    char *extra[] = { libenv, NULL };
    char *argv[16];
    int a = 0, rc;
    double wall;
    long rss;

    snprintf(name, sizeof(name), "%s-%s-%u", tag, mode, round);
    if ((rc = bench_path_join(dir, sizeof(dir), c->tmpdir, name)) < 0)
        return rc;
    snprintf(libenv, sizeof(libenv), "MEMTRAIL_LIB=%s", c->lib);
    snprintf(lc, sizeof(lc), "--leak-check=%s", mode);
    argv[a++] = (char *)c->memtrail;
    argv[a++] = (char *)"run";
    argv[a++] = (char *)"-o";
    argv[a++] = dir;
    argv[a++] = lc;
    argv[a++] = (char *)"--";
    for (size_t i = 0; workload[i] && a < 15; i++)
        argv[a++] = workload[i];
    argv[a] = NULL;

    rc = run_child(c, argv, extra, &wall, &rss);
    if ((rc = check_status(c, rc, why, sizeof(why))) < 0) {
        if (rc != -EINTR)
            fprintf(stderr, "bench_leaks: %s %s (leak-check=%s): %s\n", tag, name, mode, why);
        return rc;
    }
    if (!ser->first_line[0])
        bench_first_line(c->out, ser->first_line, sizeof(ser->first_line));

    memset(s, 0, sizeof(*s));
    s->wall_s = wall;
    s->rss_mib = (double)rss / 1024;
    if ((rc = find_snapshot(dir, "exit", path, sizeof(path))) < 0) {
        fprintf(stderr, "bench_leaks: no *.exit.mtsnap in %s\n", dir);
        return -ECHILD;
    }
    s->exit_mib = (double)file_size(path) / MIB;
    mta_snapshot_t *snap;
    if ((rc = read_snapshot(path, &snap)) < 0)
        return -ECHILD;
    s->nblocks = (double)snap->nblocks;
    s->write_s = (mtime_ns(path) - (double)snap->meta.time_ns) / 1e9;
    if ((s->has_leaks = snap->has_leaks)) {
        const mtsnap_leak_header_t *h = &snap->leak;
        uint64_t bytes = 0;
        mta_snapshot_record_size(path, MTSNAP_TAG_LEAKS, &bytes);
        s->leaks_mib = (double)bytes / MIB;   /* as stored: compressed in version 2 */
        s->stop_ms = (double)h->stop_ns / 1e6;
        s->root_mib = (double)h->root_bytes / MIB;
        s->heap_mib = (double)h->heap_bytes / MIB;
        s->threads = h->threads;
        s->threads_missed = h->threads_missed;
        s->partial = (h->flags & MTSNAP_LEAK_F_PARTIAL) != 0;
    }
    if ((s->has_pygraph = snap->has_pygraph)) {
        const mtsnap_pygraph_header_t *g = &snap->pygraph;
        s->capture_ms = (double)g->capture_ns / 1e6;
        s->objects = g->objects;
        s->edges = (double)g->edges;
        uint64_t bytes = 0;
        mta_snapshot_record_size(path, MTSNAP_TAG_PYGRAPH, &bytes);
        s->pygraph_mib = (double)bytes / MIB;
    }
    mta_snapshot_free(snap);

    if (find_snapshot(dir, "final", path, sizeof(path)) == 0) {
        s->has_final = 1;
        s->final_mib = (double)file_size(path) / MIB;
        if (read_snapshot(path, &snap) < 0)
            return -ECHILD;
        if ((s->final_leaks = snap->has_leaks))
            s->final_stop_ms = (double)snap->leak.stop_ns / 1e6;
        mta_snapshot_free(snap);
    }
    bench_remove_tree(dir);

    int want = !strcmp(mode, "off") ? 0 : 1;
    if (s->has_leaks != want) {
        fprintf(stderr, "bench_leaks: %s: leak-check=%s but the exit snapshot %s a LEAKS record\n",
                name, mode, want ? "lacks" : "has");
        return -ECHILD;
    }
    return 0;
}

/* BENCH_RUNS rounds of both modes, alternating which goes first. */
static int run_workload(const config_t *c, const char *tag, char *const workload[],
                        series_t ser[2], int python)
{
    ser[0].mode = "exit";
    ser[1].mode = "off";
    for (unsigned round = 0; round < c->runs; round++)
        for (unsigned k = 0; k < 2; k++) {
            series_t *sr = &ser[(k + round) % 2];
            int rc = run_once(c, tag, round, sr->mode, workload, sr, &sr->s[sr->n]);
            if (rc < 0 || bench_stopped())
                return rc < 0 ? rc : -EINTR;
            if (python && !strcmp(sr->mode, "exit") && !sr->s[sr->n].has_pygraph) {
                fprintf(stderr, "bench_leaks: %s: leak-check=exit but no PYGRAPH record\n", tag);
                return -ECHILD;
            }
            sr->n++;
        }
    return 0;
}

/* ------------------------------------------------------------ printing */

/* Median of the field at byte offset `off` of the samples. */
static double med(const series_t *sr, size_t off)
{
    double v[MAX_RUNS];
    for (unsigned i = 0; i < sr->n; i++)
        v[i] = *(const double *)((const char *)&sr->s[i] + off);
    return bench_median(v, sr->n);
}

static double spread_pct(const series_t *sr)
{
    double lo = sr->s[0].wall_s, hi = lo;
    for (unsigned i = 1; i < sr->n; i++) {
        lo = sr->s[i].wall_s < lo ? sr->s[i].wall_s : lo;
        hi = sr->s[i].wall_s > hi ? sr->s[i].wall_s : hi;
    }
    double m = med(sr, offsetof(sample_t, wall_s));
    return m > 0 ? (hi - lo) * 100 / m : 0;
}

#define F(field) offsetof(sample_t, field)

/* One line: the median of `field` (prec decimals) in both modes (off: "-" when !both) and the
 * ratio exit/off when `ratio`. */
static void line(const series_t ser[2], const char *what, size_t field, int prec,
                 int both, int ratio)
{
    char a[32], b[32], r[32] = "";
    double x = med(&ser[0], field), y = med(&ser[1], field);
    snprintf(a, sizeof(a), "%.*f", prec, x);
    if (both)
        snprintf(b, sizeof(b), "%.*f", prec, y);
    else
        snprintf(b, sizeof(b), "-");
    if (ratio && both && y > 0)
        snprintf(r, sizeof(r), "%.2f", x / y);
    printf("  %-44s %12s %12s %9s\n", what, a, b, r);
}

static void print_common(const series_t ser[2])
{
    printf("  %-44s %12s %12s %9s\n", "figure (median)", "exit", "off", "exit/off");
    line(ser, "wall s, whole memtrail run", F(wall_s), 3, 1, 1);
    printf("  %-44s %11.0f%% %11.0f%%\n", "  spread (max - min) / median", spread_pct(&ser[0]),
           spread_pct(&ser[1]));
    for (unsigned k = 0; k < 2; k++) {
        printf("  %-44s", k ? "" : "  each run, in order");
        for (unsigned i = 0; i < ser[k].n; i++)
            printf(" %.3f", ser[k].s[i].wall_s);
        printf(" (%s)\n", ser[k].mode);
    }
    line(ser, "peak RSS MiB, traced process", F(rss_mib), 1, 1, 1);
    line(ser, "exit snapshot MiB", F(exit_mib), 2, 1, 1);
    line(ser, "exit snapshot written in s (after the scan)", F(write_s), 3, 1, 1);
    line(ser, "live blocks in the exit snapshot", F(nblocks), 0, 1, 0);
    line(ser, "LEAKS record MiB (as stored)", F(leaks_mib), 2, 0, 0);
    line(ser, "LEAKS stop_ns: threads stopped, ms", F(stop_ms), 1, 0, 0);
    line(ser, "LEAKS root_bytes, MiB", F(root_mib), 2, 0, 0);
    line(ser, "LEAKS heap_bytes, MiB", F(heap_mib), 2, 0, 0);
    line(ser, "LEAKS threads stopped", F(threads), 0, 0, 0);
}

static void print_added(const series_t ser[2], double per, const char *unit)
{
    double dw = med(&ser[0], F(wall_s)) - med(&ser[1], F(wall_s));
    double stop = med(&ser[0], F(stop_ms));
    printf("  added by the scan: %+.3f s wall (%+.3f s per million %s); threads stopped "
           "%.1f ms (%.1f ms per million %s)\n",
           dw, per > 0 ? dw * 1e6 / per : 0, unit, stop, per > 0 ? stop * 1e6 / per : 0, unit);
}

static void print_native(const config_t *c, const series_t ser[2])
{
    printf("\nnative: memtrail run --leak-check=exit|off -- many_stacks %u %u\n", c->blocks,
           c->stacks);
    printf("  workload: %s\n", ser[0].first_line);
    print_common(ser);
    for (unsigned i = 0; i < ser[0].n; i++)
        if (ser[0].s[i].threads_missed || ser[0].s[i].partial)
            printf("  run %u: %.0f thread(s) missed the stop signal (partial scan)\n", i,
                   ser[0].s[i].threads_missed);
    print_added(ser, med(&ser[0], F(nblocks)), "blocks");
}

static void print_python(const config_t *c, const series_t ser[2])
{
    printf("\npython %s: memtrail run --leak-check=exit|off -- %s py_objects.py %u\n",
           c->pyversion, c->python, c->objects);
    printf("  workload: %s\n", ser[0].first_line);
    print_common(ser);
    line(ser, "PYGRAPH capture_ns: GIL held, ms", F(capture_ms), 1, 0, 0);
    line(ser, "PYGRAPH objects", F(objects), 0, 0, 0);
    line(ser, "PYGRAPH edges", F(edges), 0, 0, 0);
    line(ser, "PYGRAPH record MiB (as stored)", F(pygraph_mib), 2, 0, 0);
    int final = ser[0].n && ser[0].s[0].has_final && ser[1].n && ser[1].s[0].has_final;
    if (final) {
        line(ser, "final snapshot MiB (after teardown)", F(final_mib), 2, 1, 1);
        line(ser, "final snapshot LEAKS stop_ns, ms", F(final_stop_ms), 1, 0, 0);
    }
    for (unsigned i = 0; i < ser[0].n; i++)
        if (ser[0].s[i].threads_missed || ser[0].s[i].partial)
            printf("  run %u: %.0f thread(s) missed the stop signal (partial scan)\n", i,
                   ser[0].s[i].threads_missed);
    double objs = med(&ser[0], F(objects));
    double cap = med(&ser[0], F(capture_ms));
    print_added(ser, objs, "objects");
    printf("  GIL held capturing the graph: %.1f ms (%.1f ms per million objects)\n", cap,
           objs > 0 ? cap * 1e6 / objs : 0);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_leaks [-b BUILD_ROOT]\n"
            "Traces many_stacks (BENCH_BLOCKS live blocks over BENCH_STACKS stacks) and\n"
            "py_objects.py (BENCH_OBJECTS gc-tracked objects) under memtrail run with\n"
            "--leak-check=exit and =off, and compares the runs: wall time, peak RSS,\n"
            "snapshot sizes, the LEAKS and PYGRAPH headers (scan and capture times).\n"
            "Environment: MEMTRAIL_BUILD_ROOT, MEMTRAIL_SOURCE_ROOT, PYTHON (default\n"
            "%s), BENCH_RUNS (default %u),\n"
            "BENCH_BLOCKS (default %u), BENCH_STACKS (default %u), BENCH_OBJECTS\n"
            "(default %u), BENCH_TIMEOUT (default %u s).\n",
            DEFAULT_PYTHON, DEFAULT_RUNS, DEFAULT_BLOCKS, DEFAULT_STACKS, DEFAULT_OBJECTS,
            DEFAULT_TIMEOUT_S);
}

int main(int argc, char **argv)
{
    bench_prog = "bench_leaks";
    static config_t cfg;
    static series_t native[2], python[2];
    const char *root = NULL;
    int rc = 0;

    if ((rc = bench_root_option(argc, argv, usage, &root)) >= 0)
        return rc;
    rc = 0;

    cfg.runs = DEFAULT_RUNS;
    cfg.blocks = DEFAULT_BLOCKS;
    cfg.stacks = DEFAULT_STACKS;
    cfg.objects = DEFAULT_OBJECTS;
    cfg.timeout_s = DEFAULT_TIMEOUT_S;
    if (bench_env_uint("bench_leaks", "BENCH_RUNS", MAX_RUNS, &cfg.runs) < 0 ||
        bench_env_uint("bench_leaks", "BENCH_BLOCKS", 1000000000, &cfg.blocks) < 0 ||
        bench_env_uint("bench_leaks", "BENCH_STACKS", 1u << 24, &cfg.stacks) < 0 ||
        bench_env_uint("bench_leaks", "BENCH_OBJECTS", 1000000000, &cfg.objects) < 0 ||
        bench_env_uint("bench_leaks", "BENCH_TIMEOUT", 86400, &cfg.timeout_s) < 0)
        return 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGCHLD, SIG_DFL);   /* an inherited SIG_IGN would reap our children */
    signal(SIGPIPE, SIG_IGN);   /* see bench_stopped() */

    if ((rc = locate(&cfg, root)) < 0)
        goto out;
    snprintf(cfg.tmpdir, sizeof(cfg.tmpdir), "/tmp/memtrail-leakbench.XXXXXX");
    if (!mkdtemp(cfg.tmpdir)) {
        rc = -errno;
        cfg.tmpdir[0] = 0;
        fprintf(stderr, "bench_leaks: cannot create a directory under /tmp: %s\n", strerror(-rc));
        goto out;
    }
    if ((rc = bench_path_join(cfg.out, sizeof(cfg.out), cfg.tmpdir, "stdout")) < 0 ||
        (rc = bench_path_join(cfg.err, sizeof(cfg.err), cfg.tmpdir, "stderr")) < 0)
        goto out;

    printf("memtrail leak scan / object graph benchmark\n");
    printf("memtrail: %s\n", cfg.memtrail);
    printf("cpus online: %ld, runs: %u of each mode (median kept; modes alternate)\n",
           sysconf(_SC_NPROCESSORS_ONLN), cfg.runs);
    bench_print_load("at start");

    char nb[16], ns[16], no[16];
    snprintf(nb, sizeof(nb), "%u", cfg.blocks);
    snprintf(ns, sizeof(ns), "%u", cfg.stacks);
    snprintf(no, sizeof(no), "%u", cfg.objects);
    char *nat_argv[] = { cfg.many_stacks, nb, ns, NULL };
    if ((rc = run_workload(&cfg, "native", nat_argv, native, 0)) < 0)
        goto out;
    print_native(&cfg, native);

    char why[512];
    int prc = find_python(&cfg, why, sizeof(why));
    if (prc == -EINTR) {
        rc = prc;
        goto out;
    }
    if (prc < 0) {
        printf("\npython: skipped: %s\n", why);
    } else if (!cfg.script[0] || access(cfg.script, R_OK) < 0) {
        printf("\npython: skipped: py_objects.py: %s (set MEMTRAIL_SOURCE_ROOT)\n",
               cfg.script[0] ? cfg.script : "?");
    } else {
        char *py_argv[] = { cfg.python, cfg.script, no, NULL };
        if ((rc = run_workload(&cfg, "python", py_argv, python, 1)) < 0)
            goto out;
        print_python(&cfg, python);
    }
    printf("\n(exit = memtrail run --leak-check=exit, the default; off = --leak-check=off.\n"
           " wall = the whole memtrail run, median of %u; RSS = wait4's ru_maxrss, the traced\n"
           " process; record sizes as stored in the file, record header included)\n",
           cfg.runs);
    bench_print_load("at the end");

out:
    bench_remove_tree(cfg.tmpdir);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "bench_leaks: stopped (interrupted, or stdout closed)\n");
        return 130;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_leaks: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
