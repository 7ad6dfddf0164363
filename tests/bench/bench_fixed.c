/* bench_fixed: the fixed cost of tracing a process, side by side with bare.
 *
 * 1. `/bin/echo hi`, BENCH_ECHO_RUNS times (default 200) under each tracer
 *    (bare, memtrail run, memtrail-B with -B; heaptrack BENCH_HT_RUNS times,
 *    default 20), interleaved: mean and median wall ms, the added ms, the
 *    ratio to bare's (of the means, and paired: the median of each run's
 *    over the bare run of the same turn), the
 *    median CPU time and minor page faults of a run's processes (less noisy
 *    than wall time on a shared machine), peak RSS, snapshot bytes per run.
 * 2. `python3 -c pass`, BENCH_PY_RUNS times (default 20), bare, memtrail run,
 *    -X tracemalloc: mean ms, peak RSS (median of the runs' ru_maxrss),
 *    snapshot files and bytes per run; for the system's python3 (Debian's,
 *    libpython linked in statically) and for pyenv's 3.11.7 (a shared
 *    libpython, and a startup that allocates about four times as much),
 *    each when present, or for $PYTHON alone.
 * 3. `bash -c SCRIPT` where SCRIPT runs BENCH_SH_CMDS commands (default
 *    1000: /bin/true, /bin/echo, /bin/cat /dev/null, /usr/bin/expr in
 *    turn), BENCH_ROUNDS times (default 1), bare and under memtrail run (which
 *    follows every child): wall time, its ratio to bare, snapshot files and
 *    bytes. heaptrack is not run here (it would trace bash only).
 * Every memtrail run writes into a temp directory that is emptied after it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchproc.h"
#include "benchutil.h"

#ifndef BENCH_SRC_DIR
#define BENCH_SRC_DIR ""
#endif
#define SYSTEM_PYTHON "/usr/bin/python3"
#define PYENV_PYTHON "/root/.pyenv/versions/3.11.7/bin/python3.11"
#define MAX_RUNS 100000u

typedef struct acc {
    unsigned n;
    int failed;
    double sum_s;
    double *wall;               /* n values, for the median */
    double *rss_kb;
    double *cpu_s, *faults;     /* CPU time and minor faults of every process of a run */
    double files, bytes;        /* sums */
} acc_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_fixed [-b BUILD_ROOT] [-B LIB] [-H HEAPTRACK|none]\n"
            "Traced against bare: /bin/echo hi, python3 -c pass, and a bash script\n"
            "running many commands.\n"
            "Environment: BENCH_ECHO_RUNS (default 200), BENCH_HT_RUNS (heaptrack's\n"
            "echo runs, default 20), BENCH_PY_RUNS (default 20),\n"
            "BENCH_SH_CMDS (default 1000), BENCH_ROUNDS (bash script runs, default 1),\n"
            "PYTHON (default: %s and %s, each when present), BENCH_TIMEOUT,\n"
            "MEMTRAIL_BUILD_ROOT.\n",
            SYSTEM_PYTHON, PYENV_PYTHON);
}

static int acc_init(acc_t *a, unsigned runs)
{
    memset(a, 0, sizeof(*a));
    a->wall = calloc(runs, sizeof(double));
    a->rss_kb = calloc(runs, sizeof(double));
    a->cpu_s = calloc(runs, sizeof(double));
    a->faults = calloc(runs, sizeof(double));
    return a->wall && a->rss_kb && a->cpu_s && a->faults ? 0 : -ENOMEM;
}

static void acc_free(acc_t *a)
{
    free(a->wall);
    free(a->rss_kb);
    free(a->cpu_s);
    free(a->faults);
}

/* Runs cmd `runs` times under each usable tracer of use[], interleaved,
 * after one untimed run each if warm_up; heaptrack only the first ht_runs
 * times (it takes about 0.7 s a run). */
static int series(const bench_ctx_t *c, char *const cmd[], const char *what, unsigned runs,
                  unsigned ht_runs, int warm_up, const int use[BT_COUNT], acc_t acc[BT_COUNT])
{
    for (unsigned t = 0; t < BT_COUNT; t++)
        if (acc_init(&acc[t], runs) < 0)
            return -ENOMEM;
    /* One untimed run each: page cache, dynamic loader. */
    for (unsigned t = 0; warm_up && t < BT_COUNT; t++) {
        double w;
        long rss;
        bench_snaps_t s;
        if (use[t] && bench_run(c, (enum bench_tracer)t, cmd, NULL, what, &w, &rss) == -EINTR)
            return -EINTR;
        bench_collect(c, &s);
    }
    for (unsigned i = 0; i < runs; i++) {
        for (unsigned k = 0; k < BT_COUNT; k++) {
            unsigned t = (k + i) % BT_COUNT;
            acc_t *a = &acc[t];
            double w;
            long rss;
            bench_snaps_t s;
            if (!use[t] || a->failed || (t == BT_HEAPTRACK && i >= ht_runs))
                continue;
            int rc = bench_run(c, (enum bench_tracer)t, cmd, NULL, what, &w, &rss);
            bench_collect(c, &s);
            if (rc == -EINTR || bench_stopped())
                return -EINTR;
            if (rc < 0) {
                a->failed = 1;
                continue;
            }
            a->wall[a->n] = w;
            a->rss_kb[a->n] = (double)rss;
            a->cpu_s[a->n] = bench_last_cpu_s;
            a->faults[a->n] = (double)bench_last_minflt;
            a->sum_s += w;
            a->files += s.files;
            a->bytes += (double)s.bytes;
            a->n++;
        }
    }
    return 0;
}

static void print_series(const char *title, const int use[BT_COUNT], acc_t acc[BT_COUNT],
                         int ratio)
{
    /* each run's time over bare's of the same turn of the interleaving (the
     * runs are aligned: a failed tracer stops), before the values are sorted */
    double pair[BT_COUNT];
    for (unsigned t = 0; t < BT_COUNT; t++)
        pair[t] = use[t] && !acc[t].failed
                      ? bench_median_ratio(acc[t].wall, acc[BT_BARE].wall,
                                           acc[t].n < acc[BT_BARE].n ? acc[t].n : acc[BT_BARE].n)
                      : 0;
    double bare_mean = acc[BT_BARE].n ? acc[BT_BARE].sum_s / acc[BT_BARE].n : 0;
    double bare_rss = acc[BT_BARE].n ? bench_median_sort(acc[BT_BARE].rss_kb, acc[BT_BARE].n) : 0;
    double bare_cpu = acc[BT_BARE].n ? bench_median_sort(acc[BT_BARE].cpu_s, acc[BT_BARE].n) : 0;
    double bare_flt = acc[BT_BARE].n ? bench_median_sort(acc[BT_BARE].faults, acc[BT_BARE].n) : 0;
    printf("\n%s\n%-12s %6s %10s %10s %10s %7s %7s %9s %9s %9s %9s %8s %12s\n", title, "tracer",
           "runs", "mean_ms", "median_ms", "added_ms", "x_bare", "x_pair", "cpu_ms", "+cpu_ms",
           "rss_MiB", "+rss_MiB", "files/run", "snap_KiB/run");
    for (unsigned t = 0; t < BT_COUNT; t++) {
        acc_t *a = &acc[t];
        if (!use[t])
            continue;
        printf("%-12s ", bench_tracer_name[t]);
        if (a->failed || !a->n) {
            printf("%6s\n", "failed");
            continue;
        }
        double mean = a->sum_s / a->n, rss = bench_median_sort(a->rss_kb, a->n);
        double cpu = bench_median_sort(a->cpu_s, a->n);
        printf("%6u %10.2f %10.2f ", a->n, mean * 1e3, bench_median_sort(a->wall, a->n) * 1e3);
        if (t != BT_BARE && acc[BT_BARE].n)
            printf("%10.2f %7.2f %7.2f %9.2f %9.2f %9.1f %9.1f ", (mean - bare_mean) * 1e3,
                   mean / bare_mean, pair[t], cpu * 1e3, (cpu - bare_cpu) * 1e3, rss / 1024,
                   (rss - bare_rss) / 1024);
        else
            printf("%10s %7s %7s %9.2f %9s %9.1f %9s ", "-", ratio ? "1.00" : "-",
                   ratio ? "1.00" : "-", cpu * 1e3, "-", rss / 1024, "-");
        printf("%8.1f %12.1f\n", a->files / a->n, a->bytes / a->n / 1024);
    }
    /* minor faults: a figure no other process's load changes */
    printf("%-12s", "faults");
    for (unsigned t = 0; t < BT_COUNT; t++)
        if (use[t] && !acc[t].failed && acc[t].n)
            printf("  %s %.0f (%+.0f)", bench_tracer_name[t], bench_median_sort(acc[t].faults, acc[t].n),
                   bench_median_sort(acc[t].faults, acc[t].n) - bare_flt);
    printf("\n");
}

static char *make_script(unsigned cmds)
{
    char *s = NULL;
    if (asprintf(&s, "i=0; while [ $i -lt %u ]; do case $((i %% 4)) in "
                     "0) /bin/true;; 1) /bin/echo $i >/dev/null;; 2) /bin/cat /dev/null;; "
                     "3) /usr/bin/expr $i + 1 >/dev/null;; esac; i=$((i + 1)); done", cmds) < 0)
        return NULL;
    return s;
}

int main(int argc, char **argv)
{
    static bench_ctx_t c;
    static acc_t acc[BT_COUNT];
    unsigned echo_runs = 200, ht_runs = 20, py_runs = 20, sh_cmds = 1000, rounds = 1;
    int rc, failed = 0, use[BT_COUNT];
    char *script = NULL;

    bench_prog = "bench_fixed";
    if ((rc = bench_ctx_init(&c, argc, argv, usage, BENCH_SRC_DIR)) >= 0)
        return rc;
    bench_reap_orphans();   /* the copies writing exit snapshots: their CPU counts */
    if (bench_env_uint(bench_prog, "BENCH_ECHO_RUNS", MAX_RUNS, &echo_runs) < 0 ||
        bench_env_uint(bench_prog, "BENCH_HT_RUNS", MAX_RUNS, &ht_runs) < 0 ||
        bench_env_uint(bench_prog, "BENCH_PY_RUNS", MAX_RUNS, &py_runs) < 0 ||
        bench_env_uint(bench_prog, "BENCH_SH_CMDS", 1000000, &sh_cmds) < 0 ||
        bench_env_uint(bench_prog, "BENCH_ROUNDS", MAX_RUNS, &rounds) < 0) {
        bench_ctx_done(&c);
        return 2;
    }
    const char *pys[2] = {getenv("PYTHON"), NULL};
    if (!pys[0] || !*pys[0]) {
        pys[0] = SYSTEM_PYTHON;
        pys[1] = PYENV_PYTHON;
    }

    printf("memtrail fixed-cost benchmark\nmemtrail: %s\nlibrary:  %s\n", c.memtrail, c.lib);
    if (c.lib_b[0])
        printf("memtrail-B: %s\n", c.lib_b);
    printf("heaptrack: %s\npython: %s\ncpus online: %ld\n",
           c.heaptrack[0] ? c.heaptrack : "(not used)", pys[1] ? SYSTEM_PYTHON ", " PYENV_PYTHON : pys[0],
           sysconf(_SC_NPROCESSORS_ONLN));
    bench_print_load("at start");

    /* 1. /bin/echo hi */
    for (unsigned t = 0; t < BT_COUNT; t++)
        use[t] = t != BT_TRACEMALLOC && bench_tracer_usable(&c, (enum bench_tracer)t);
    {
        char *cmd[] = {(char *)"/bin/echo", (char *)"hi", NULL};
        rc = series(&c, cmd, "/bin/echo hi", echo_runs, ht_runs, 1, use, acc);
        if (rc == -EINTR)
            goto out;
        print_series("/bin/echo hi (wall of the whole command: `memtrail run` included)", use,
                     acc, 1);
        for (unsigned t = 0; t < BT_COUNT; t++) {
            failed |= use[t] && acc[t].failed;
            acc_free(&acc[t]);
        }
    }

    /* 2. python3 -c pass */
    for (unsigned t = 0; t < BT_COUNT; t++)
        use[t] = t != BT_HEAPTRACK && bench_tracer_usable(&c, (enum bench_tracer)t);
    for (unsigned k = 0; k < 2 && pys[k]; k++) {
        const char *py = pys[k];
        char title[PATH_MAX + 32];
        snprintf(title, sizeof title, "%s -c pass", py);
        if (access(py, X_OK) != 0) {
            printf("\n%s: skipped (%s)\n", title, strerror(errno));
            continue;
        }
        char *cmd[] = {(char *)py, (char *)"-c", (char *)"pass", NULL};
        rc = series(&c, cmd, title, py_runs, 0, 1, use, acc);
        if (rc == -EINTR)
            goto out;
        print_series(title, use, acc, 1);
        for (unsigned t = 0; t < BT_COUNT; t++) {
            failed |= use[t] && acc[t].failed;
            acc_free(&acc[t]);
        }
    }

    /* 3. bash running sh_cmds commands */
    for (unsigned t = 0; t < BT_COUNT; t++)
        use[t] = (t == BT_BARE || t == BT_MEMTRAIL || t == BT_MEMTRAIL_B) &&
                 bench_tracer_usable(&c, (enum bench_tracer)t);
    if (!(script = make_script(sh_cmds))) {
        rc = -ENOMEM;
        goto out;
    }
    {
        char *cmd[] = {(char *)"/bin/bash", (char *)"-c", script, NULL};
        char title[96];
        rc = series(&c, cmd, "bash script", rounds, 0, 0, use, acc);
        if (rc == -EINTR)
            goto out;
        snprintf(title, sizeof(title), "bash -c SCRIPT: %u commands, %u run(s) each", sh_cmds,
                 rounds);
        print_series(title, use, acc, 1);
        for (unsigned t = 0; t < BT_COUNT; t++) {
            failed |= use[t] && acc[t].failed;
            acc_free(&acc[t]);
        }
    }
    bench_print_load("at end");
    printf("(mean/median: wall ms per run; added: mean over bare's; x_pair: median of each\n"
           " run's time over bare's run next to it in the interleaving; cpu_ms: median user +\n"
           " system CPU time of every process of a run (wait4's rusage, the reaped\n"
           " descendants' included, and the copies that write short processes' exit\n"
           " snapshots once those ended), +cpu_ms: over bare's median; rss: median ru_maxrss,\n"
           " the largest process of a run; files, snap_KiB: snapshot files per run;\n"
           " faults: median minor page faults of a run's processes, and over bare's)\n");
    rc = 0;
out:
    free(script);
    bench_ctx_done(&c);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "bench_fixed: stopped (interrupted, or stdout closed)\n");
        return 130;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_fixed: %s\n", strerror(-rc));
        return 1;
    }
    return failed ? 1 : 0;
}
