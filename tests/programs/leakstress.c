/* leakstress: worker threads free and realloc blocks large enough to be
 * mmap'd (so freed memory is unmapped at once) while main asks for snapshots,
 * each with a leak scan (MEMTRAIL_LEAK_CHECK=all); checks that a block being
 * freed while the threads are stopped is never read (the scan would fault).
 *
 * Usage: leakstress [SNAPSHOTS]  (default 20). Four workers loop until main
 * has taken its snapshots through memtrail_snapshot() (weak: without the
 * tracer it does nothing). Keeps one 64-byte block reachable in a global.
 * Prints "snapshots N" and exits 0.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMTRAIL_WEAK
#include "memtrail.h"
#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define WORKERS 4
#define BIG (256 * 1024)   /* above glibc's mmap threshold: free unmaps it */

static atomic_int g_stop;
static void *g_keep;

static NOINLINE void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&g_stop)) {
        char *p = malloc(BIG);
        if (p == NULL)
            prog_die("leakstress", "malloc failed");
        memset(p, 0x5a, 4096);
        seed = seed * 1103515245u + 12345u;
        char *q = realloc(p, BIG + (seed % 4) * 65536);
        if (q == NULL)
            prog_die("leakstress", "realloc failed");
        free(q);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20;
    pthread_t th[WORKERS];
    g_keep = malloc(64);
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i + 1)) != 0)
            prog_die("leakstress", "pthread_create failed");
    int taken = 0;
    for (int i = 0; i < n; i++)
        taken += MEMTRAIL_SNAPSHOT("stress") == 0;
    atomic_store(&g_stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    printf("snapshots %d\n", n);
    (void)taken;
    return 0;
}
