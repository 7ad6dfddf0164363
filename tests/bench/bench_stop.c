/* bench_stop: what stopping the world costs the leak scan
 * (preload/leak/stopworld.c), by ptrace and by the stop signal: for 1, 8 and
 * 64 threads asleep in pause(), ROUNDS rounds of stop then release, each
 * timed; prints the median and the 90th percentile of both, in
 * microseconds, and the signal's first stop, which begins with ptrace
 * refused. The signal path is had through the stop_ptrace seam, as
 * MEMTRAIL_STOP=signal does. Usage: bench_stop [ROUNDS] (default 200).
 * docs/performance.md has the figures. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/util.h"
#include "leak/stopworld.h"

static void *sleep_fn(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static long refuse(long request, long tid, long addr, long data)
{
    (void)request, (void)tid, (void)addr, (void)data;
    return -EPERM;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void line(int threads, const char *path, uint64_t *stop, uint64_t *rel, int rounds,
                 uint32_t missed)
{
    qsort(stop, (size_t)rounds, sizeof(*stop), cmp_u64);
    qsort(rel, (size_t)rounds, sizeof(*rel), cmp_u64);
    printf("%3d threads  %-6s  stop %8.1f us (p90 %8.1f)  release %8.1f us (p90 %8.1f)%s\n",
           threads, path, stop[rounds / 2] / 1e3, stop[rounds * 9 / 10] / 1e3,
           rel[rounds / 2] / 1e3, rel[rounds * 9 / 10] / 1e3, missed ? "  MISSED" : "");
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    static const int counts[] = {1, 8, 64};
    uint64_t *stop = calloc((size_t)rounds, sizeof(*stop)), *rel = calloc((size_t)rounds, sizeof(*rel));
    if (rounds < 1 || !stop || !rel)
        return 2;
    mtp_stopworld_init(0);
    int have = 0;
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        for (; have < counts[c]; have++) {
            pthread_t t;
            if (pthread_create(&t, NULL, sleep_fn, NULL) != 0)
                return 2;
        }
        usleep(100 * 1000);   /* all in pause() */
        for (int by_signal = 0; by_signal < 2; by_signal++) {
            mtp_seams.stop_ptrace = by_signal ? refuse : mtp_real_stop_ptrace;
            uint32_t missed = 0;
            /* Once per scan: a refusal is then remembered, so the signal's
             * first round pays for the attempt (printed apart) and the
             * others not, as the scan's retries do. */
            if (mtp_stopworld_prepare() < 0)
                return 2;
            uint64_t first = 0;
            for (int r = 0; r < rounds; r++) {
                uint32_t asked;
                uint64_t t0 = mtp_mono_ns();
                missed += mtp_stopworld_stop(&asked);
                uint64_t t1 = mtp_mono_ns();
                mtp_stopworld_release();
                uint64_t t2 = mtp_mono_ns();
                stop[r] = t1 - t0;
                if (r == 0)
                    first = t1 - t0;
                rel[r] = t2 - t1;
                if (mtp_stopworld_by_ptrace() == by_signal)
                    return 3;   /* not the path asked for */
            }
            line(counts[c], by_signal ? "signal" : "ptrace", stop, rel, rounds, missed);
            if (by_signal)
                printf("%3d threads  signal  first stop, after ptrace refused: %.1f us\n",
                       counts[c], first / 1e3);
        }
    }
    return 0;
}
