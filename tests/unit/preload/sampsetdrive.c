/*
 * The sampled-address set (preload/record/sampset.c) under threads, as a
 * plain C program so that tests/sanitize/run.sh can run it under
 * ThreadSanitizer (criterion's runner does not start there), and under ASan
 * and UBSan; in the plain build it runs as the test preload_sampset.
 *
 * 1. One thread: addresses in and out, against a plain model; the tables
 *    grow past a hundred thousand entries and shrink back when emptied.
 * 2. NTHREADS threads, each with addresses of its own, add, look up and
 *    take their own blocks in random order, as frees would, while every
 *    thread also asks for addresses nobody holds (the frees of unsampled
 *    blocks): the set's stripes grow, shift entries back and shrink under
 *    them. Each answer must be the model's: an own address is found until
 *    taken, once; an address never added is never found.
 *
 * Exit status 0 when every check holds; 1 with one line on stderr if not.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "record/sample.h"

#define NTHREADS 4
#define ROUNDS 40
#define BATCH 5000

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sampsetdrive: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Thread t's i-th address: 16-aligned, distinct across threads; absent
 * ones (never added) are the odd multiples of 8. */
static uintptr_t own(unsigned t, uint64_t i)
{
    return ((uintptr_t)(t + 1) << 40) + 16 * i;
}

static uintptr_t absent(uint64_t r)
{
    return ((r & 0xffffffffffull) << 4) | 8;
}

static void single_thread(void)
{
    enum { N = 150000 };
    size_t empty_bytes = mtp_sampset_memory();
    for (uint64_t i = 0; i < N; i++) {
        if (mtp_sampset_add(own(9, i)) < 0)
            fail("add %llu: no memory", (unsigned long long)i);
        if (i + 1 == 100 || i + 1 == 1000 || i + 1 == 10000 || i + 1 == 100000 || i + 1 == N)
            printf("sampsetdrive: %llu addresses: tables of %zu bytes, %.1f B an address\n",
                   (unsigned long long)i + 1, mtp_sampset_memory(),
                   (double)mtp_sampset_memory() / (double)(i + 1));
    }
    if (mtp_sampset_count() != N)
        fail("count %zu after %d adds", mtp_sampset_count(), N);
    size_t full_bytes = mtp_sampset_memory();
    for (uint64_t i = 0; i < N; i++) {
        if (!mtp_sampset_has(own(9, i)))
            fail("address %llu lost", (unsigned long long)i);
        if (mtp_sampset_has(own(9, i) + 8) || mtp_sampset_take(own(9, i) + 8))
            fail("address %llu + 8 found", (unsigned long long)i);
    }
    for (uint64_t i = 0; i < N; i += 2)
        if (mtp_sampset_take(own(9, i)) != 1)
            fail("take %llu", (unsigned long long)i);
    for (uint64_t i = 0; i < N; i++)
        if (mtp_sampset_has(own(9, i)) != (int)(i & 1))
            fail("after taking the even ones, %llu is %s", (unsigned long long)i,
                 i & 1 ? "missing" : "still there");
    for (uint64_t i = 1; i < N; i += 2)
        if (mtp_sampset_take(own(9, i)) != 1 || mtp_sampset_take(own(9, i)) != 0)
            fail("take %llu twice", (unsigned long long)i);
    if (mtp_sampset_count() != 0)
        fail("count %zu once emptied", mtp_sampset_count());
    size_t after = mtp_sampset_memory();
    /* 8 bytes a slot, at most half full: 16 B a block at least at the top */
    if (full_bytes < 16 * (size_t)N || after > empty_bytes + 32 * 4096 + 32 * 4096)
        fail("tables of %zu bytes full, %zu emptied (%zu before)", full_bytes, after, empty_bytes);
}

typedef struct worker {
    pthread_t th;
    unsigned id;
    uint64_t rng;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    static _Thread_local uintptr_t live[BATCH];
    uint64_t next = 0;
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = BATCH / 2 + next_rand(&w->rng) % (BATCH / 2);
        for (size_t i = 0; i < n; i++) {
            live[i] = own(w->id, next++);
            if (mtp_sampset_add(live[i]) < 0)
                fail("thread %u: add: no memory", w->id);
            uintptr_t a = absent(next_rand(&w->rng));
            if (mtp_sampset_take(a))
                fail("thread %u: took %#lx, never added", w->id, (unsigned long)a);
        }
        for (size_t i = n; i > 1; i--) {   /* a random order */
            size_t j = next_rand(&w->rng) % i;
            uintptr_t x = live[i - 1];
            live[i - 1] = live[j];
            live[j] = x;
        }
        for (size_t i = 0; i < n; i++) {
            if (!mtp_sampset_has(live[i]))
                fail("thread %u: %#lx lost", w->id, (unsigned long)live[i]);
            if (mtp_sampset_take(live[i]) != 1)
                fail("thread %u: %#lx not taken", w->id, (unsigned long)live[i]);
            if (mtp_sampset_has(live[i]))
                fail("thread %u: %#lx still there once taken", w->id, (unsigned long)live[i]);
            uintptr_t a = absent(next_rand(&w->rng));
            if (mtp_sampset_has(a))
                fail("thread %u: found %#lx, never added", w->id, (unsigned long)a);
            /* own blocks not freed yet, probed while other threads' removals shift entries */
            for (int k = 0; k < 8 && i + 1 < n; k++) {
                uintptr_t x = live[i + 1 + next_rand(&w->rng) % (n - i - 1)];
                int had = mtp_sampset_has(x), took = mtp_sampset_take(x), has = mtp_sampset_has(x);
                if (!had || !took || has)
                    fail("thread %u: %#lx, live, found %d, taken %d, found once taken %d", w->id,
                         (unsigned long)x, had, took, has);
                if (mtp_sampset_add(x) < 0)
                    fail("thread %u: add: no memory", w->id);
            }
        }
    }
    return NULL;
}

int main(void)
{
    single_thread();
    worker_t w[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.id = i, .rng = 1000 + i};
        if (pthread_create(&w[i].th, NULL, work, &w[i]) != 0)
            fail("pthread_create");
    }
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(w[i].th, NULL);
    if (mtp_sampset_count() != 0)
        fail("count %zu at the end", mtp_sampset_count());
    printf("sampsetdrive: ok\n");
    return 0;
}
