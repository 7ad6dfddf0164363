/* bench_stall: what a snapshot costs the threads that keep allocating.
 *
 * 1. Stall: live_blocks -n N -t 2 -g GAP_US -s STOP (N live blocks, then 2
 *    threads timing every malloc+free pair, worst latency per 1 ms window),
 *    for each GAP_US of BENCH_GAP_US (0: the threads never sleep, and fill
 *    the tracer's rings as fast as they can; 50: they sleep between pairs).
 *    After BENCH_SETTLE seconds, a memtrail run gets `memtrail snapshot PID`;
 *    BENCH_SETTLE seconds after it returns the stop file ends the run. The
 *    workload prints its windows; printed: the worst pair latency inside the
 *    snapshot (the windows that overlap the round trip), the worst outside,
 *    the windows above 1 ms and 10 ms inside, and the round trip. The bare
 *    run, with no snapshot, gives the machine's own worst (scheduling noise).
 * 2. Interval overhead: live_blocks -n N -t 2 -p PAIRS (fixed work, threads
 *    never sleeping) bare, under memtrail, and under memtrail --interval SEC;
 *    printed: wall time, the work phase's time, the interval snapshots
 *    written, and the added time of --interval against memtrail without it,
 *    in percent: of the medians, and the median of each round's pair (the
 *    two runs are next to each other in a round), and that added time over
 *    the round's interval snapshots (ms a snapshot). A short BENCH_INTERVAL
 *    takes several snapshots a run, so their cost stands above the noise. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchproc.h"
#include "benchutil.h"

#ifndef BENCH_SRC_DIR
#define BENCH_SRC_DIR ""
#endif
#define MAX_ROUNDS 9
#define MAX_GAPS 4

typedef struct stall {
    int ok;
    double snap_s;              /* round trip; < 0: no snapshot (bare) */
    double worst_in_ms, worst_out_ms;
    unsigned over1_in, over10_in; /* windows inside above 1 ms / 10 ms */
    unsigned windows_in;
    double work_s;
    unsigned long long pairs;
    double ring_wait_ms, ring_worst_ms;   /* the exit snapshot's COSTS; < 0: none */
} stall_t;

typedef struct timed {
    int ok;
    double wall_s, work_s;
    unsigned snaps;             /* interval snapshots written */
    long long snap_bytes;
} timed_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_stall [-b BUILD_ROOT] [-B LIB] [-H HEAPTRACK|none]\n"
            "Worst malloc+free latency of 2 allocating threads while `memtrail snapshot`\n"
            "writes N live blocks, and the run time of --interval snapshots.\n"
            "Environment: BENCH_N (live blocks, default 4000000), BENCH_GAP_US (sleeps\n"
            "between pairs in the stall runs, comma-separated, default 0,50: one stall\n"
            "series with threads that never sleep, one with 50 us sleeps), BENCH_SETTLE (s before\n"
            "and after the snapshot, default 1), BENCH_PAIRS (pairs per thread in the\n"
            "interval runs, default 40000000), BENCH_INTERVAL (s, default 10),\n"
            "BENCH_ROUNDS (default 1), BENCH_PART (1: stall only, 2: interval only),\n"
            "BENCH_TIMEOUT, MEMTRAIL_BUILD_ROOT. (-H is accepted; heaptrack is not run.)\n");
}

/* BENCH_GAP_US: comma-separated sleeps (us, 0 = spin), default "0,50". */
static int parse_gaps(unsigned g[MAX_GAPS])
{
    const char *s = getenv("BENCH_GAP_US");
    int n = 0;
    if (!s || !*s)
        s = "0,50";
    while (*s) {
        char *end;
        errno = 0;
        unsigned long x = strtoul(s, &end, 10);
        if (errno || end == s || (*end && *end != ',') || n == MAX_GAPS || x > 1000000) {
            fprintf(stderr, "bench_stall: invalid BENCH_GAP_US (up to %d comma-separated "
                            "microseconds, 0 to 1000000)\n", MAX_GAPS);
            return -EINVAL;
        }
        g[n++] = (unsigned)x;
        s = *end ? end + 1 : end;
    }
    return n;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_interrupted)
        ;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads the windows of c->out; [a, b) is the snapshot (a == b: none). */
static int parse_windows(const bench_ctx_t *c, uint64_t a, uint64_t b, stall_t *s)
{
    FILE *f = fopen(c->out, "re");
    char line[256];
    unsigned long long base = 0, win = 0, nwin = 0, idx;
    unsigned ns;
    int have = 0;
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "w %llu %u", &idx, &ns) == 2 && have) {
            uint64_t w0 = base + idx * win, w1 = w0 + win;
            double ms = ns / 1e6;
            if (a < b && w1 > a && w0 < b) {
                s->windows_in++;
                s->over1_in += ms > 1;
                s->over10_in += ms > 10;
                if (ms > s->worst_in_ms)
                    s->worst_in_ms = ms;
            } else if (ms > s->worst_out_ms) {
                s->worst_out_ms = ms;
            }
        } else if (sscanf(line, "windows %llu %llu %llu", &base, &win, &nwin) == 3) {
            have = win > 0;
        } else {
            sscanf(line, "work_s %lf pairs %llu", &s->work_s, &s->pairs);
        }
    }
    fclose(f);
    return have ? 0 : -EBADMSG;
}

static int run_stall(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[], double settle,
                     stall_t *s)
{
    char line[256];
    bench_proc_t p;
    bench_snaps_t files;
    long pid = 0;
    long long bytes = 0;
    uint64_t a = 0, b = 0;
    int rc;

    memset(s, 0, sizeof(*s));
    s->snap_s = -1;
    if ((rc = bench_start(c, t, cmd, NULL, &p)) < 0)
        return rc;
    if ((rc = bench_wait_line(c, &p, "ready ", line, sizeof(line))) < 0)
        goto out;
    sscanf(line, "ready %ld", &pid);
    sleep_s(settle);
    if (t != BT_BARE) {
        a = mono_ns();
        rc = bench_snapshot_pid(c, pid, &s->snap_s, &bytes);
        b = mono_ns();
        if (rc < 0) {
            bench_kill(&p);
            goto out;
        }
        sleep_s(settle);
    }
    if ((rc = bench_release(c)) < 0) {
        bench_kill(&p);
        goto out;
    }
    if ((rc = bench_finish(c, &p, bench_tracer_name[t])) < 0)
        goto out;
    if ((rc = parse_windows(c, a, b, s)) < 0) {
        fprintf(stderr, "bench_stall: %s: no windows in the output\n", bench_tracer_name[t]);
        goto out;
    }
    s->ok = 1;
out:
    bench_collect(c, &files);
    s->ring_wait_ms = files.has_costs ? (double)files.wait_ns / 1e6 : -1;
    s->ring_worst_ms = files.has_costs ? (double)files.worst_wait_ns / 1e6 : -1;
    return rc;
}

static int run_timed(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[],
                     const char *interval, timed_t *r)
{
    char line[256], what[64];
    bench_snaps_t files;
    long rss;
    unsigned long long pairs;
    memset(r, 0, sizeof(*r));
    snprintf(what, sizeof(what), "%s%s%s", bench_tracer_name[t], interval ? " --interval " : "",
             interval ? interval : "");
    int rc = bench_run(c, t, cmd, interval, what, &r->wall_s, &rss);
    if (rc == 0 && (bench_out_line(c, "work_s ", line, sizeof(line)) < 0 ||
                    sscanf(line, "work_s %lf pairs %llu", &r->work_s, &pairs) != 2)) {
        fprintf(stderr, "bench_stall: %s: no work_s line\n", what);
        rc = -EBADMSG;
    }
    bench_collect(c, &files);
    r->snaps = files.interval_files;
    r->snap_bytes = files.interval_bytes;
    r->ok = rc == 0;
    return rc;
}


static int part_stall(const bench_ctx_t *c, const char *prog, unsigned n, unsigned gap,
                      unsigned settle, unsigned rounds)
{
    char narg[24], garg[24];
    static stall_t st[BT_COUNT][MAX_ROUNDS];
    unsigned cnt[BT_COUNT] = {0};
    int failed = 0;
    snprintf(narg, sizeof(narg), "%u", n);
    snprintf(garg, sizeof(garg), "%u", gap);
    char *cmd[] = {(char *)prog, (char *)"-n", narg, (char *)"-t", (char *)"2", (char *)"-g", garg,
                   (char *)"-s", (char *)c->stop, NULL};
    printf("\n== stall: live_blocks -n %u -t 2 -g %u, `memtrail snapshot PID` %u s after "
           "ready\n", n, gap, settle);
    static const enum bench_tracer order[] = {BT_BARE, BT_MEMTRAIL, BT_MEMTRAIL_B};
    for (unsigned r = 0; r < rounds; r++) {
        printf("  round %u/%u:", r + 1, rounds);
        for (unsigned k = 0; k < 3; k++) {
            enum bench_tracer t = order[(k + r) % 3];
            if (!bench_tracer_usable(c, t))
                continue;
            stall_t *s = &st[t][cnt[t]];
            int rc = run_stall(c, t, cmd, settle, s);
            if (rc == -EINTR || bench_stopped())
                return -EINTR;
            if (rc < 0) {
                failed = 1;
                printf(" %s failed", bench_tracer_name[t]);
                continue;
            }
            cnt[t]++;
            printf(" %s", bench_tracer_name[t]);
            if (s->snap_s >= 0)
                printf(" (snapshot %.3f s, worst inside %.2f ms)", s->snap_s, s->worst_in_ms);
        }
        printf("\n");
    }
    printf("\n%-12s %8s %13s %14s %10s %11s %10s %12s %12s %13s\n", "tracer", "snap_s",
           "worst_in_ms", "worst_out_ms", "win>1ms_in", "win>10ms_in", "windows_in", "pairs/s",
           "ring_wait_ms", "ring_worst_ms");
    for (unsigned k = 0; k < 3; k++) {
        enum bench_tracer t = order[k];
        if (!bench_tracer_usable(c, t))
            continue;
        printf("%-12s ", bench_tracer_name[t]);
        if (!cnt[t]) {
            printf("%8s\n", "failed");
            continue;
        }
        double vin[MAX_ROUNDS], vout[MAX_ROUNDS], vs[MAX_ROUNDS], rate[MAX_ROUNDS];
        double rw[MAX_ROUNDS], rx[MAX_ROUNDS];
        unsigned o1 = 0, o10 = 0, wi = 0, nr = 0;
        for (unsigned i = 0; i < cnt[t]; i++) {
            vin[i] = st[t][i].worst_in_ms;
            vout[i] = st[t][i].worst_out_ms;
            vs[i] = st[t][i].snap_s;
            rate[i] = st[t][i].work_s > 0 ? (double)st[t][i].pairs / st[t][i].work_s : 0;
            if (st[t][i].ring_wait_ms >= 0) {
                rw[nr] = st[t][i].ring_wait_ms;
                rx[nr++] = st[t][i].ring_worst_ms;
            }
            o1 += st[t][i].over1_in;
            o10 += st[t][i].over10_in;
            wi += st[t][i].windows_in;
        }
        if (t == BT_BARE)
            printf("%8s %13s %14.2f %10s %11s %10s", "-", "-", bench_max(vout, cnt[t]), "-", "-", "-");
        else
            printf("%8.3f %13.2f %14.2f %10u %11u %10u", bench_median(vs, cnt[t]),
                   bench_max(vin, cnt[t]), bench_max(vout, cnt[t]), o1, o10, wi);
        printf(" %12.0f", bench_median(rate, cnt[t]));
        if (nr)
            printf(" %12.1f %13.2f\n", bench_median(rw, nr), bench_max(rx, nr));
        else
            printf(" %12s %13s\n", "-", "-");
    }
    printf("(worst_*: the largest malloc+free pair latency of either thread, over every\n"
           " round, inside the snapshot's round trip and outside it; win>*: 1 ms windows\n"
           " inside whose worst pair took longer; pairs/s: both threads, sleeps included;\n"
           " ring_*: the exit snapshot's COSTS record, the whole run: time the threads\n"
           " waited on their full rings (median of the rounds) and the longest wait)\n");
    return failed ? -ECHILD : 0;
}

static int part_interval(const bench_ctx_t *c, const char *prog, unsigned n, unsigned pairs,
                         unsigned interval, unsigned rounds)
{
    char narg[24], parg[24], iarg[24];
    enum { R_BARE, R_NONE, R_INT, R_NONE_B, R_INT_B, R_COUNT };
    static const char *const name[R_COUNT] = {"bare", "memtrail", "memtrail --interval",
                                              "memtrail-B", "memtrail-B --interval"};
    static timed_t res[R_COUNT][MAX_ROUNDS];
    unsigned cnt[R_COUNT] = {0};
    int failed = 0;
    snprintf(narg, sizeof(narg), "%u", n);
    snprintf(parg, sizeof(parg), "%u", pairs);
    snprintf(iarg, sizeof(iarg), "%u", interval);
    char *cmd[] = {(char *)prog, (char *)"-n", narg, (char *)"-t", (char *)"2", (char *)"-p", parg,
                   NULL};
    printf("\n== interval: live_blocks -n %u -t 2 -p %u, memtrail with and without "
           "--interval %u\n", n, pairs, interval);
    for (unsigned r = 0; r < rounds; r++) {
        printf("  round %u/%u:", r + 1, rounds);
        for (unsigned k = 0; k < R_COUNT; k++) {
            unsigned m = (k + r) % R_COUNT;
            enum bench_tracer t = m == R_BARE     ? BT_BARE
                                : m < R_NONE_B    ? BT_MEMTRAIL
                                                  : BT_MEMTRAIL_B;
            if (!bench_tracer_usable(c, t))
                continue;
            timed_t *x = &res[m][r];
            int rc = run_timed(c, t, cmd, m == R_INT || m == R_INT_B ? iarg : NULL, x);
            if (rc == -EINTR || bench_stopped())
                return -EINTR;
            if (rc < 0) {
                failed = 1;
                printf(" %s failed", name[m]);
                continue;
            }
            cnt[m]++;
            printf(" %s %.2f s", name[m], x->wall_s);
        }
        printf("\n");
    }
    printf("\n%-22s %8s %8s %7s %10s %12s %10s %8s %10s\n", "run", "wall_s", "work_s", "x_bare",
           "snapshots", "snap_MiB", "added%", "pair%", "ms/snap");
    double med_wall[R_COUNT] = {0};
    for (unsigned m = 0; m < R_COUNT; m++) {
        if (!cnt[m])
            continue;
        double w[MAX_ROUNDS], wk[MAX_ROUNDS], sn[MAX_ROUNDS], sb[MAX_ROUNDS];
        for (unsigned r = 0, i = 0; r < rounds; r++) {
            if (!res[m][r].ok)
                continue;
            w[i] = res[m][r].wall_s;
            wk[i] = res[m][r].work_s;
            sn[i] = res[m][r].snaps;
            sb[i++] = (double)res[m][r].snap_bytes;
        }
        med_wall[m] = bench_median(w, cnt[m]);
        printf("%-22s %8.3f %8.3f ", name[m], med_wall[m], bench_median(wk, cnt[m]));
        if (cnt[R_BARE])
            printf("%7.2f ", med_wall[m] / med_wall[R_BARE]);
        else
            printf("%7s ", "-");
        printf("%10.1f %12.1f ", bench_median(sn, cnt[m]), bench_median(sb, cnt[m]) / 1048576.0);
        unsigned base = m == R_INT ? R_NONE : m == R_INT_B ? R_NONE_B : R_COUNT;
        if (base < R_COUNT && cnt[base]) {
            /* Paired within each round: the runs with and without --interval
             * ran next to each other, so the machine's drift between rounds
             * cancels. ms/snap: the added wall time over the snapshots taken. */
            double with[MAX_ROUNDS], without[MAX_ROUNDS], per[MAX_ROUNDS];
            unsigned k = 0, kp = 0;
            for (unsigned r = 0; r < rounds; r++) {
                if (!res[m][r].ok || !res[base][r].ok)
                    continue;
                with[k] = res[m][r].wall_s;
                without[k++] = res[base][r].wall_s;
                if (res[m][r].snaps)
                    per[kp++] = (res[m][r].wall_s - res[base][r].wall_s) * 1e3 / res[m][r].snaps;
            }
            printf("%10.2f ", (med_wall[m] - med_wall[base]) * 100 / med_wall[base]);
            if (k)
                printf("%8.2f ", (bench_median_ratio(with, without, k) - 1) * 100);
            else
                printf("%8s ", "-");
            if (kp)
                printf("%10.1f\n", bench_median(per, kp));
            else
                printf("%10s\n", "-");
        } else {
            printf("%10s %8s %10s\n", "-", "-", "-");
        }
    }
    printf("(wall: the whole run, exit snapshot included; work: the allocating phase as the\n"
           " workload timed it; added%%: wall with --interval against without, same library,\n"
           " medians; pair%%: the median of each round's with/without, runs next to each\n"
           " other; ms/snap: the median of each round's added wall time over its interval\n"
           " snapshots; snapshots: interval snapshots written, snap_MiB their total size)\n");
    return failed ? -ECHILD : 0;
}

int main(int argc, char **argv)
{
    static bench_ctx_t c;
    unsigned gaps[MAX_GAPS];
    int ngaps;
    unsigned n = 4000000, settle = 1, pairs = 40000000, interval = 10, rounds = 1;
    unsigned part = 0;
    int rc, failed = 0;

    bench_prog = "bench_stall";
    if ((rc = bench_ctx_init(&c, argc, argv, usage, BENCH_SRC_DIR)) >= 0)
        return rc;
    rc = 0;
    if ((ngaps = parse_gaps(gaps)) < 0 ||
        bench_env_uint(bench_prog, "BENCH_N", 200000000, &n) < 0 ||
        bench_env_uint(bench_prog, "BENCH_SETTLE", 60, &settle) < 0 ||
        bench_env_uint(bench_prog, "BENCH_PAIRS", 4000000000u, &pairs) < 0 ||
        bench_env_uint(bench_prog, "BENCH_INTERVAL", 3600, &interval) < 0 ||
        bench_env_uint(bench_prog, "BENCH_ROUNDS", MAX_ROUNDS, &rounds) < 0 ||
        bench_env_uint(bench_prog, "BENCH_PART", 2, &part) < 0) {
        bench_ctx_done(&c);
        return 2;
    }
    char prog[PATH_MAX];
    bench_path_join(prog, sizeof(prog), c.progdir, "live_blocks");

    printf("memtrail stall benchmark\nmemtrail: %s\nlibrary:  %s\n", c.memtrail, c.lib);
    if (c.lib_b[0])
        printf("memtrail-B: %s\n", c.lib_b);
    printf("cpus online: %ld, rounds: %u\n", sysconf(_SC_NPROCESSORS_ONLN), rounds);
    bench_print_load("at start");
    if (part != 2) {
        for (int i = 0; i < ngaps; i++) {
            rc = part_stall(&c, prog, n, gaps[i], settle, rounds);
            if (rc == -EINTR)
                goto out;
            failed |= rc < 0;
        }
    }
    if (part != 1) {
        rc = part_interval(&c, prog, n, pairs, interval, rounds);
        if (rc == -EINTR)
            goto out;
        failed |= rc < 0;
    }
    bench_print_load("at end");
out:
    bench_ctx_done(&c);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "bench_stall: stopped (interrupted, or stdout closed)\n");
        return 130;
    }
    return failed ? 1 : 0;
}
