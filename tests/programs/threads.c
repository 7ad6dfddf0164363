/* threads: 4 producers and 4 consumers over a bounded queue (mutex + two
 * condition variables). Producers allocate, consumers free, so addresses are
 * reused heavily across threads while the tracer records them.
 *
 * Producer p (0..3) sends BLOCKS_PER_PRODUCER = 50,000 blocks allocated in
 * produce_block(), block i (0-based, per producer) of size (i % 256) + 1;
 * every block is freed by some consumer. Then it keeps KEEP_PER_PRODUCER =
 * 100 more blocks (never sent) in g_kept[p][k], allocated in keep_block(),
 * block k of size 8 * (p + 1) + k. main pushes one NULL sentinel per consumer
 * after joining the producers, then joins the consumers; every thread is
 * joined before exit.
 *
 * Expected exit snapshot, by innermost user frame:
 *   produce_block   live 0 / 0; allocated 25,671,840 bytes / 200,000 blocks
 *                   (per producer: 195 full cycles of 1..256 = 6,414,720,
 *                   plus 1..80 = 3,240: 6,417,960; times 4)
 *   keep_block      live 27,800 bytes / 400 blocks
 *                   (sum over p of 800 * (p + 1) + 4,950); allocated the same
 * Prints nothing; exit status 0.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define PRODUCERS 4
#define CONSUMERS 4
#define BLOCKS_PER_PRODUCER 50000
#define KEEP_PER_PRODUCER 100
#define QUEUE_CAP 64

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void *slot[QUEUE_CAP];
    unsigned head, count;
} g_q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
};

static void *g_kept[PRODUCERS][KEEP_PER_PRODUCER];
static unsigned long g_consumed[CONSUMERS];

static void queue_push(void *p)
{
    pthread_mutex_lock(&g_q.lock);
    while (g_q.count == QUEUE_CAP)
        pthread_cond_wait(&g_q.not_full, &g_q.lock);
    g_q.slot[(g_q.head + g_q.count) % QUEUE_CAP] = p;
    g_q.count++;
    pthread_cond_signal(&g_q.not_empty);
    pthread_mutex_unlock(&g_q.lock);
}

static void *queue_pop(void)
{
    pthread_mutex_lock(&g_q.lock);
    while (g_q.count == 0)
        pthread_cond_wait(&g_q.not_empty, &g_q.lock);
    void *p = g_q.slot[g_q.head];
    g_q.head = (g_q.head + 1) % QUEUE_CAP;
    g_q.count--;
    pthread_cond_signal(&g_q.not_full);
    pthread_mutex_unlock(&g_q.lock);
    return p;
}

static NOINLINE unsigned char *produce_block(size_t size)
{
    unsigned char *p = malloc(size);
    if (p == NULL)
        prog_die("threads", "malloc failed");
    return p;
}

static NOINLINE void *keep_block(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        prog_die("threads", "malloc failed");
    return p;
}

static void *producer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < BLOCKS_PER_PRODUCER; i++) {
        size_t size = (size_t)(i % 256) + 1;
        unsigned char *p = produce_block(size);
        p[0] = 0xa5;
        p[size - 1] = 0xa5;
        queue_push(p);
    }
    for (unsigned k = 0; k < KEEP_PER_PRODUCER; k++)
        g_kept[id][k] = keep_block(8 * ((size_t)id + 1) + k);
    return NULL;
}

static void *consumer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    for (;;) {
        unsigned char *p = queue_pop();
        if (p == NULL)
            break;
        if (p[0] != 0xa5)
            prog_die("threads", "corrupted block");
        free(p);
        g_consumed[id]++;
    }
    return NULL;
}

int main(void)
{
    pthread_t prod[PRODUCERS], cons[CONSUMERS];

    for (unsigned i = 0; i < CONSUMERS; i++)
        if (pthread_create(&cons[i], NULL, consumer, (void *)(uintptr_t)i) != 0)
            prog_die("threads", "pthread_create failed");
    for (unsigned i = 0; i < PRODUCERS; i++)
        if (pthread_create(&prod[i], NULL, producer, (void *)(uintptr_t)i) != 0)
            prog_die("threads", "pthread_create failed");
    for (unsigned i = 0; i < PRODUCERS; i++)
        pthread_join(prod[i], NULL);
    for (unsigned i = 0; i < CONSUMERS; i++)
        queue_push(NULL);
    for (unsigned i = 0; i < CONSUMERS; i++)
        pthread_join(cons[i], NULL);

    unsigned long consumed = 0;
    for (unsigned i = 0; i < CONSUMERS; i++)
        consumed += g_consumed[i];
    if (consumed != (unsigned long)PRODUCERS * BLOCKS_PER_PRODUCER)
        prog_die("threads", "lost blocks");
    return 0;
}
