/* churn: a snapshot of many blocks taken while threads allocate and free
 * (tests/integration/test_signal.c: the file holds one consistent moment,
 * and the live table is exact afterwards).
 *
 * 1. base_blocks: 200,000 x malloc(64) kept, plus the array of their
 *    pointers (200,000 x 8 bytes): 14,400,000 B in 200,001 blocks.
 * 2. two threads loop until told to stop: churn_site mallocs 32 bytes and
 *    frees it at once; every 100th round keep_site keeps malloc(48) (at most
 *    20,000 per thread), which it frees again every 7th time it keeps one.
 * 3. writes "ready <pid>\n", waits for a line on stdin, stops the threads,
 *    writes "kept <n>\n" (the blocks keep_site holds, both threads), and
 *    exits with them live: the exit snapshot has keep_site 48 n / n,
 *    churn_site 0 / 0, base_blocks as above.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define NBASE 200000
#define KEEP_MAX 20000

static void **g_base;
static _Atomic int g_stop;

typedef struct worker {
    pthread_t th;
    void *kept[KEEP_MAX];
    size_t nkept;
} worker_t;

static worker_t g_workers[2];

static NOINLINE void base_blocks(void)
{
    g_base = malloc(NBASE * sizeof(*g_base));
    if (!g_base)
        prog_die("churn", "malloc failed");
    for (int i = 0; i < NBASE; i++)
        if ((g_base[i] = malloc(64)) == NULL)
            prog_die("churn", "malloc failed");
}

static NOINLINE void churn_site(void)
{
    void *volatile p = malloc(32);
    free(p);
}

static NOINLINE void keep_site(worker_t *w)
{
    if (w->nkept == KEEP_MAX)
        return;
    void *p = malloc(48);
    if (!p)
        prog_die("churn", "malloc failed");
    w->kept[w->nkept++] = p;
    if (w->nkept % 7 == 0)
        free(w->kept[--w->nkept]);
}

static void *work(void *arg)
{
    worker_t *w = arg;
    for (unsigned long round = 1; !atomic_load_explicit(&g_stop, memory_order_relaxed); round++) {
        churn_site();
        if (round % 100 == 0)
            keep_site(w);
    }
    return NULL;
}

int main(void)
{
    base_blocks();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&g_workers[i].th, NULL, work, &g_workers[i]) != 0)
            prog_die("churn", "pthread_create failed");
    prog_put(1, "ready ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");
    char line[64];
    int r = prog_read_line(line, sizeof(line));
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(g_workers[i].th, NULL);
    if (r < 0)
        return 4;
    prog_put(1, "kept ");
    prog_put_u(1, (unsigned long)(g_workers[0].nkept + g_workers[1].nkept));
    prog_put(1, "\n");
    return 0;
}
