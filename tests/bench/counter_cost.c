/* counter_cost: what one atomic add on a counter that every thread shares
 * costs against one on a counter of each thread's own, with one thread and
 * with two: the price of memtrail's global event counter (record/record.h,
 * mtp_take_number) to a program whose threads allocate at once
 * (docs/performance.md, issue 19's third row).
 *
 * Each thread does ITERS (default 20 M) iterations of a relaxed fetch-add
 * on its counter and about 30 additions of its own work. Printed: the
 * median over ROUNDS (default 5) of the wall time per iteration, for each
 * of the four cases. Usage: counter_cost [ITERS [ROUNDS]] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"

#define MAX_ROUNDS 51
_Static_assert(MAX_ROUNDS <= BENCH_MAX_SAMPLES, "bench_median takes the rounds");

static _Alignas(64) _Atomic unsigned long shared;
static struct {
    _Alignas(64) _Atomic unsigned long n;
} own[2];
static long iters = 20000000;
static int use_shared;

static void *worker(void *arg)
{
    long id = (long)arg;
    _Atomic unsigned long *c = use_shared ? &shared : &own[id].n;
    volatile unsigned long work = 0;
    for (long i = 0; i < iters; i++) {
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
        for (int k = 0; k < 30; k++)
            work += (unsigned long)k;
    }
    return NULL;
}

static double run(int threads)
{
    pthread_t th[2];
    double t0 = bench_mono_s();
    for (long i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
            perror("counter_cost: pthread_create");
            exit(1);
        }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return (bench_mono_s() - t0) / (double)iters * 1e9;
}

int main(int argc, char **argv)
{
    int rounds = 5;
    if (argc > 1)
        iters = atol(argv[1]);
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (iters <= 0 || rounds <= 0 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: counter_cost [ITERS [ROUNDS (1..%d)]]\n", MAX_ROUNDS);
        return 2;
    }
    static const char *const names[4] = {"own counter, 1 thread", "own counters, 2 threads",
                                         "shared counter, 1 thread", "shared counter, 2 threads"};
    double v[4][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int c = 0; c < 4; c++) {
            use_shared = c >= 2;
            v[c][r] = run(c % 2 ? 2 : 1);
        }
    printf("ns per iteration (a fetch-add and about 30 additions), medians of %d\n", rounds);
    for (int c = 0; c < 4; c++)
        printf("  %-28s %6.1f\n", names[c], bench_median(v[c], (unsigned)rounds));
    return 0;
}
