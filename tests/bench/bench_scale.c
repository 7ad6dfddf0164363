/* bench_scale: memory and snapshots against the number of live blocks.
 *
 * Native: live_blocks -n N (8 call sites x 4 paths, 8..200 B blocks, -O2 -g)
 * for each N of BENCH_N, bare, under memtrail (and memtrail-B with -B) and
 * heaptrack. Python: py_scale.py BLOCKS (json dicts, datetimes, Decimals,
 * namedtuples...) for each BLOCKS of BENCH_PY_N, bare, under memtrail and
 * with -X tracemalloc. Each run: the workload builds its blocks, prints
 * "ready PID ...", and waits; a memtrail run then gets `memtrail snapshot PID`
 * (timed: the snapshot write time); then the stop file lets it exit (the
 * exit snapshot). Printed per N, side by side:
 *   peak RSS (wait4's ru_maxrss: the largest process of the run),
 *   tracer bytes per live block = (peak RSS - bare peak RSS) / N,
 *   VmRSS summed over the run's processes at "ready" and the same per block
 *   (heaptrack holds its data in its own process, which ru_maxrss misses),
 *   VmHWM summed over them after the snapshot, before the exit (the peak
 *   without the exit path),
 *   run time (the run's wall time less the wait) and its ratio to bare,
 *   the time the workload took to build its blocks,
 *   the `memtrail snapshot` round trip and that snapshot's bytes per block,
 *   the exit snapshot's bytes per block, and all snapshot files of the run.
 * For Python, N is the growth of sys.getallocatedblocks() the workload
 * reports (the object allocator's blocks; the interpreter's own raw
 * allocations come on top). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchproc.h"
#include "benchutil.h"

#ifndef BENCH_SRC_DIR
#define BENCH_SRC_DIR ""
#endif
#define DEFAULT_PYTHON "/root/.pyenv/versions/3.11.7/bin/python3.11"
#define MAX_SIZES 8
#define MAX_ROUNDS 9

typedef struct result {
    int ok;
    double n;                   /* live blocks */
    double run_s;               /* wall less the wait for the stop file */
    double build_s;
    long maxrss_kb;
    long ready_kb;              /* VmRSS summed over the run's processes at "ready" */
    long hwm_kb;                /* VmHWM summed over them before the exit */
    double snap_s;              /* memtrail snapshot round trip; < 0: none */
    long long snap_bytes;
    bench_snaps_t files;
} result_t;

typedef struct series {
    result_t r[MAX_ROUNDS];
    unsigned n;
    int failed;
} series_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_scale [-b BUILD_ROOT] [-B LIB] [-H HEAPTRACK|none]\n"
            "Native (live_blocks) and Python (py_scale.py) programs holding N live blocks,\n"
            "bare, under memtrail (-B: also under another build's library) and heaptrack\n"
            "or tracemalloc: peak RSS, tracer bytes per live block, snapshot write time\n"
            "and bytes per block, run time against bare.\n"
            "Environment: BENCH_N (native block counts, comma-separated, default\n"
            "1000000,4000000,16000000; 0 = none), BENCH_PY_N (Python blocks, default\n"
            "1000000,4000000; 0 = none), BENCH_ROUNDS (default 1; medians are kept),\n"
            "PYTHON (default %s), BENCH_TIMEOUT (s per run, default 1800),\n"
            "MEMTRAIL_BUILD_ROOT, MEMTRAIL_SOURCE_ROOT.\n",
            DEFAULT_PYTHON);
}

/* "a,b,c" into v[]; 0 entries dropped. Returns the count or -EINVAL. */
static int parse_list(const char *name, const char *dflt, unsigned long v[MAX_SIZES])
{
    const char *s = getenv(name);
    int n = 0;
    if (!s || !*s)
        s = dflt;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long x = strtoul(s, &end, 10);
        if (errno || end == s || (*end && *end != ',') || n == MAX_SIZES || x > 200000000ul) {
            fprintf(stderr, "bench_scale: invalid %s (comma-separated counts up to 2e8, "
                            "at most %d)\n", name, MAX_SIZES);
            return -EINVAL;
        }
        if (x)
            v[n++] = x;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* One run of cmd under t; the workload prints "ready PID BUILD_S [BLOCKS]". */
static int run_one(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[], double n,
                   const char *title, result_t *r)
{
    char line[256], what[192];
    bench_proc_t p;
    long pid = 0;
    double grown = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    r->snap_s = -1;
    snprintf(what, sizeof(what), "%s, %s", title, bench_tracer_name[t]);
    if ((rc = bench_start(c, t, cmd, NULL, &p)) < 0)
        return rc;
    if ((rc = bench_wait_line(c, &p, "ready ", line, sizeof(line))) < 0)
        goto out;
    double t_ready = bench_mono_s();
    r->ready_kb = bench_group_rss_kb(p.pid, "VmRSS");
    int k = sscanf(line, "ready %ld %lf %lf", &pid, &r->build_s, &grown);
    r->n = k == 3 ? grown : n;
    if ((t == BT_MEMTRAIL || t == BT_MEMTRAIL_B) &&
        (rc = bench_snapshot_pid(c, pid, &r->snap_s, &r->snap_bytes)) < 0) {
        bench_kill(&p);
        goto out;
    }
    r->hwm_kb = bench_group_rss_kb(p.pid, "VmHWM");
    double t_release = bench_mono_s();
    if ((rc = bench_release(c)) < 0) {
        bench_kill(&p);
        goto out;
    }
    if ((rc = bench_finish(c, &p, what)) < 0)
        goto out;
    r->run_s = p.wall_s - (t_release - t_ready);
    r->maxrss_kb = p.maxrss_kb;
    r->ok = 1;
out:
    bench_collect(c, &r->files);
    return rc;
}

static double med(const series_t *s, double (*get)(const result_t *))
{
    double v[MAX_ROUNDS];
    for (unsigned i = 0; i < s->n; i++)
        v[i] = get(&s->r[i]);
    return bench_median(v, s->n);
}

static double g_n(const result_t *r) { return r->n; }
static double g_run(const result_t *r) { return r->run_s; }
static double g_build(const result_t *r) { return r->build_s; }
static double g_rss(const result_t *r) { return (double)r->maxrss_kb; }
static double g_ready(const result_t *r) { return (double)r->ready_kb; }
static double g_hwm(const result_t *r) { return (double)r->hwm_kb; }
static double g_snap_s(const result_t *r) { return r->snap_s; }
static double g_snap_b(const result_t *r) { return (double)r->snap_bytes; }
static double g_exit_b(const result_t *r) { return (double)r->files.exit_bytes; }
static double g_all_b(const result_t *r) { return (double)r->files.bytes; }
static double g_ht_b(const result_t *r) { return (double)r->files.heaptrack_bytes; }

static void print_table(const char *title, series_t ser[BT_COUNT], const int use[BT_COUNT])
{
    const series_t *bare = &ser[BT_BARE];
    int have_bare = !bare->failed && bare->n;
    double bare_rss = have_bare ? med(bare, g_rss) : 0, bare_run = have_bare ? med(bare, g_run) : 0;
    double bare_ready = have_bare ? med(bare, g_ready) : 0;
    printf("\n%s\n", title);
    printf("%-12s %10s %9s %10s %8s %9s %8s %8s %7s %8s %8s %9s %9s %9s\n", "tracer",
           "blocks", "peak_MiB", "B/blk_trc", "rdy_MiB", "B/blk_rdy", "hwm_MiB", "run_s",
           "x_bare", "build_s", "snap_s", "snap_B/bk", "exit_B/bk", "files_MiB");
    for (unsigned t = 0; t < BT_COUNT; t++) {
        const series_t *s = &ser[t];
        if (!use[t])
            continue;
        printf("%-12s ", bench_tracer_name[t]);
        if (s->failed || !s->n) {
            printf("%10s\n", "failed");
            continue;
        }
        double n = med(s, g_n), rss = med(s, g_rss), run = med(s, g_run);
        printf("%10.0f %9.1f ", n, rss / 1024);
        double ready = med(s, g_ready);
        if (have_bare && t != BT_BARE)
            printf("%10.1f %8.1f %9.1f ", (rss - bare_rss) * 1024 / n, ready / 1024,
                   (ready - bare_ready) * 1024 / n);
        else
            printf("%10s %8.1f %9s ", "-", ready / 1024, "-");
        printf("%8.1f %8.3f ", med(s, g_hwm) / 1024, run);
        if (have_bare)
            printf("%7.2f ", run / bare_run);
        else
            printf("%7s ", "-");
        printf("%8.3f ", med(s, g_build));
        if (t == BT_MEMTRAIL || t == BT_MEMTRAIL_B)
            printf("%8.3f %9.2f %9.2f %9.1f\n", med(s, g_snap_s), med(s, g_snap_b) / n,
                   med(s, g_exit_b) / n, med(s, g_all_b) / (1024.0 * 1024.0));
        else if (t == BT_HEAPTRACK)
            printf("%8s %9s %9s %9.1f\n", "-", "-", "-", med(s, g_ht_b) / (1024.0 * 1024.0));
        else
            printf("%8s %9s %9s %9s\n", "-", "-", "-", "-");
    }
}

/* Every tracer of use[], `rounds` times, order rotating; then the table. */
static int bench_size(const bench_ctx_t *c, const char *title, char *const cmd[], double n,
                      const int use[BT_COUNT], unsigned rounds)
{
    static series_t ser[BT_COUNT];
    memset(ser, 0, sizeof(ser));
    printf("\n== %s\n", title);
    for (unsigned r = 0; r < rounds; r++) {
        printf("  round %u/%u:", r + 1, rounds);
        for (unsigned k = 0; k < BT_COUNT; k++) {
            enum bench_tracer t = (enum bench_tracer)((k + r) % BT_COUNT);
            series_t *s = &ser[t];
            if (!use[t] || s->failed)
                continue;
            int rc = run_one(c, t, cmd, n, title, &s->r[s->n]);
            if (rc == -EINTR || bench_stopped())
                return -EINTR;
            if (rc < 0) {
                s->failed = 1;
                printf(" %s failed", bench_tracer_name[t]);
                continue;
            }
            printf(" %s %.2f s %.0f MiB", bench_tracer_name[t], s->r[s->n].run_s,
                   (double)s->r[s->n].maxrss_kb / 1024);
            s->n++;
        }
        printf("\n");
    }
    print_table(title, ser, use);
    int failed = 0;
    for (unsigned t = 0; t < BT_COUNT; t++)
        failed |= use[t] && ser[t].failed;
    return failed ? -ECHILD : 0;
}

int main(int argc, char **argv)
{
    static bench_ctx_t c;
    unsigned long sizes[MAX_SIZES], py_sizes[MAX_SIZES];
    unsigned rounds = 1;
    int ns, nps, rc, failed = 0;

    bench_prog = "bench_scale";
    if ((rc = bench_ctx_init(&c, argc, argv, usage, BENCH_SRC_DIR)) >= 0)
        return rc;
    if ((ns = parse_list("BENCH_N", "1000000,4000000,16000000", sizes)) < 0 ||
        (nps = parse_list("BENCH_PY_N", "1000000,4000000", py_sizes)) < 0 ||
        bench_env_uint(bench_prog, "BENCH_ROUNDS", MAX_ROUNDS, &rounds) < 0) {
        bench_ctx_done(&c);
        return 2;
    }
    const char *py = getenv("PYTHON");
    if (!py || !*py)
        py = access(DEFAULT_PYTHON, X_OK) == 0 ? DEFAULT_PYTHON : "/usr/bin/python3";
    char prog[PATH_MAX], script[PATH_MAX], stop[PATH_MAX];
    bench_path_join(prog, sizeof(prog), c.progdir, "live_blocks");
    bench_path_join(script, sizeof(script), c.srcdir, "py_scale.py");
    snprintf(stop, sizeof(stop), "%s", c.stop);

    printf("memtrail scale benchmark\nmemtrail: %s\nlibrary:  %s\n", c.memtrail, c.lib);
    if (c.lib_b[0])
        printf("memtrail-B: %s\n", c.lib_b);
    printf("heaptrack: %s\npython: %s\n", c.heaptrack[0] ? c.heaptrack : "(not used)", py);
    printf("cpus online: %ld, rounds: %u (order rotating, medians kept)\n",
           sysconf(_SC_NPROCESSORS_ONLN), rounds);
    bench_print_load("at start");

    int use[BT_COUNT];
    for (unsigned t = 0; t < BT_COUNT; t++)
        use[t] = t != BT_TRACEMALLOC && bench_tracer_usable(&c, (enum bench_tracer)t);
    for (int i = 0; i < ns && !bench_stopped(); i++) {
        char narg[24], title[128];
        snprintf(narg, sizeof(narg), "%lu", sizes[i]);
        char *cmd[] = {prog, (char *)"-n", narg, (char *)"-s", stop, NULL};
        snprintf(title, sizeof(title), "native: live_blocks -n %lu", sizes[i]);
        rc = bench_size(&c, title, cmd, (double)sizes[i], use, rounds);
        if (rc == -EINTR)
            goto out;
        failed |= rc < 0;
    }

    if (nps && access(py, X_OK) != 0) {
        printf("\npython: skipped (%s: %s)\n", py, strerror(errno));
        nps = 0;
    }
    for (unsigned t = 0; t < BT_COUNT; t++)
        use[t] = t != BT_HEAPTRACK && bench_tracer_usable(&c, (enum bench_tracer)t);
    for (int i = 0; i < nps && !bench_stopped(); i++) {
        char narg[24], title[160];
        snprintf(narg, sizeof(narg), "%lu", py_sizes[i]);
        char *cmd[] = {(char *)py, script, narg, stop, NULL};
        snprintf(title, sizeof(title), "python: py_scale.py %lu", py_sizes[i]);
        rc = bench_size(&c, title, cmd, (double)py_sizes[i], use, rounds);
        if (rc == -EINTR)
            goto out;
        failed |= rc < 0;
    }
    bench_print_load("at end");
    printf("(peak_MiB: wait4 ru_maxrss, the largest process of the run (heaptrack keeps\n"
           " its data in another process, heaptrack_interpret, which this misses);\n"
           " B/blk_trc = (peak - bare peak) / blocks; rdy_MiB: VmRSS summed over the run's\n"
           " processes when the workload is ready, B/blk_rdy the same against bare;\n"
           " hwm_MiB: VmHWM summed over them after the snapshot, before the exit; run_s:\n"
           " wall less the wait at \"ready\", x_bare its ratio; snap_s: `memtrail snapshot\n"
           " PID` round trip, snap_B/bk its file's size per block; exit_B/bk: the exit\n"
           " snapshot's; files_MiB: every snapshot file of the run, heaptrack's data file)\n");
out:
    bench_ctx_done(&c);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "bench_scale: stopped (interrupted, or stdout closed)\n");
        return 130;
    }
    return failed ? 1 : 0;
}
