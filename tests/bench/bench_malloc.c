/* bench_malloc: malloc-heavy workload for the memtrail benchmark: N malloc/free
 * pairs over 5 call sites, ~20 frames deep, split evenly over 1 or 2 threads. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOINLINE __attribute__((noinline, noclone))
#define SLOTS 1024u        /* live blocks per thread (working set) */
#define BATCH 512u         /* pairs done per descent into the recursion */
#define REC_DEPTH 15       /* recursion levels above the allocating loop */
#define DEFAULT_PAIRS 10000000ull

typedef struct worker {
    _Alignas(64) pthread_t thread; /* aligned: no false sharing between workers */
    uint64_t pairs;        /* pairs this thread performs */
    uint64_t done;         /* pairs performed so far */
    uint64_t rng;          /* xorshift64 state */
    uint64_t sum;          /* checksum of what was read back */
    unsigned batch_no;     /* selects the recursion path */
    void *slot[SLOTS];
    size_t slot_size[SLOTS];
} worker_t;

static inline uint64_t next_rand(worker_t *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

/* ---- the allocating sites: each is its own function, so its own stack ---- */

/* Small string-like buffer, 16..64 bytes, filled entirely. */
static NOINLINE void *site_small(worker_t *w, size_t *size)
{
    size_t n = 16 + next_rand(w) % 49;
    char *p = malloc(n);
    if (!p)
        return NULL;
    memset(p, 'a' + (int)(n & 15), n - 1);
    p[n - 1] = 0;
    w->sum += (unsigned char)p[n / 2];
    *size = n;
    return p;
}

/* Medium record, 64..512 bytes: header written, a tail word written. */
static NOINLINE void *site_medium(worker_t *w, size_t *size)
{
    size_t n = 64 + next_rand(w) % 449;
    unsigned char *p = malloc(n);
    if (!p)
        return NULL;
    memset(p, (int)(n & 0xff), 64);
    memcpy(p + n - sizeof(uint64_t), &w->done, sizeof(uint64_t));
    w->sum += p[17] + p[n - 1];
    *size = n;
    return p;
}

/* Zeroed array of 2..64 words (16..512 bytes), a few entries set. */
static NOINLINE void *site_calloc(worker_t *w, size_t *size)
{
    size_t cnt = 2 + next_rand(w) % 63;
    uint64_t *p = calloc(cnt, sizeof(uint64_t));
    if (!p)
        return NULL;
    p[0] = cnt;
    p[cnt - 1] = w->done;
    w->sum += p[cnt / 2] + p[0];
    *size = cnt * sizeof(uint64_t);
    return p;
}

/* A list node of fixed size (48 bytes) initialised field by field. */
struct node {
    struct node *next, *prev;
    uint64_t key, value;
    uint32_t flags, refs;
    uint64_t pad;
};

static NOINLINE void *site_node(worker_t *w, size_t *size)
{
    struct node *p = malloc(sizeof(*p));
    if (!p)
        return NULL;
    *p = (struct node){.key = w->done, .value = w->rng, .flags = 1, .refs = 1};
    w->sum += p->key & 0xff;
    *size = sizeof(*p);
    return p;
}

/* Grows or shrinks an existing block to 16..512 bytes; counts as one pair
 * (the old block is released, a new one obtained). */
static NOINLINE void *site_realloc(worker_t *w, void *old, size_t old_size, size_t *size)
{
    size_t n = 16 + next_rand(w) % 497;
    unsigned char *p = realloc(old, n);
    if (!p)
        return NULL;
    if (n > old_size)
        memset(p + old_size, 0x5a, n - old_size > 64 ? 64 : n - old_size);
    p[n - 1] = (unsigned char)n;
    w->sum += p[0] + p[n - 1];
    *size = n;
    return p;
}

/* Reads the block back before it is released. */
static inline void release(worker_t *w, unsigned i)
{
    unsigned char *p = w->slot[i];
    if (p) {
        w->sum += p[0] + p[w->slot_size[i] - 1];
        free(p);
    }
}

/* The leaf: BATCH pairs, each replacing a random slot's block. */
static NOINLINE int leaf_batch(worker_t *w, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++, w->done++) {
        uint64_t r = next_rand(w);
        unsigned i = (unsigned)(r % SLOTS);
        unsigned kind = (unsigned)((r >> 32) % 16);
        void *p;
        size_t sz = 0;
        if (kind == 0 && w->slot[i]) {
            p = site_realloc(w, w->slot[i], w->slot_size[i], &sz);
        } else {
            release(w, i);
            if (kind < 5)
                p = site_small(w, &sz);
            else if (kind < 9)
                p = site_medium(w, &sz);
            else if (kind < 12)
                p = site_calloc(w, &sz);
            else
                p = site_node(w, &sz);
        }
        w->slot[i] = p;
        w->slot_size[i] = sz;
        if (!p)
            return -ENOMEM;
    }
    return 0;
}

/* ---- recursion: three mutually recursive functions; the batch number picks
 * which one runs at each of the upper levels, giving a few distinct paths ---- */
static int rec_a(worker_t *w, int depth);
static int rec_b(worker_t *w, int depth);
static int rec_c(worker_t *w, int depth);

static inline __attribute__((always_inline)) int rec_next(worker_t *w, int depth)
{
    if (depth == 0) {
        uint64_t left = w->pairs - w->done;
        return leaf_batch(w, left < BATCH ? left : BATCH);
    }
    switch ((w->batch_no >> (2 * (depth % 3))) % 3) {
    case 0: return rec_a(w, depth - 1);
    case 1: return rec_b(w, depth - 1);
    default: return rec_c(w, depth - 1);
    }
}

/* The work after each call keeps these from becoming tail calls. */
static NOINLINE int rec_a(worker_t *w, int depth)
{
    int rc = rec_next(w, depth);
    __asm__ volatile("" ::: "memory");
    w->sum += (uint64_t)depth;
    return rc;
}

static NOINLINE int rec_b(worker_t *w, int depth)
{
    int rc = rec_next(w, depth);
    __asm__ volatile("" ::: "memory");
    w->sum ^= (uint64_t)depth << 8;
    return rc;
}

static NOINLINE int rec_c(worker_t *w, int depth)
{
    int rc = rec_next(w, depth);
    __asm__ volatile("" ::: "memory");
    w->sum += (uint64_t)depth * 3;
    return rc;
}

static void *run_worker(void *arg)
{
    worker_t *w = arg;
    int rc = 0;
    while (rc == 0 && w->done < w->pairs) {
        rc = rec_a(w, REC_DEPTH - 1);
        w->batch_no++;
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        release(w, i);
        w->slot[i] = NULL;
    }
    return (void *)(intptr_t)rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_malloc [-t THREADS (1|2)] [-n PAIRS (default %llu)]\n",
            DEFAULT_PAIRS);
}

int main(int argc, char **argv)
{
    unsigned long threads = 1;
    unsigned long long pairs = DEFAULT_PAIRS;
    worker_t *w = NULL;
    unsigned started = 0;
    int rc = 0, opt;
    char *end;

    while ((opt = getopt(argc, argv, "t:n:h")) != -1) {
        switch (opt) {
        case 't':
            threads = strtoul(optarg, &end, 10);
            if (*end || threads < 1 || threads > 2) {
                usage(stderr);
                return 2;
            }
            break;
        case 'n':
            pairs = strtoull(optarg, &end, 10);
            if (*end || pairs == 0) {
                usage(stderr);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    w = calloc(threads, sizeof(*w));
    if (!w) {
        rc = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < threads; i++) {
        w[i].pairs = pairs / threads + (i < pairs % threads ? 1 : 0);
        w[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
        int e = pthread_create(&w[i].thread, NULL, run_worker, &w[i]);
        if (e) {
            rc = -e;
            goto out;
        }
        started++;
    }

out:
    for (unsigned i = 0; i < started; i++) {
        void *ret;
        pthread_join(w[i].thread, &ret);
        if (ret && rc == 0)
            rc = (int)(intptr_t)ret;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc < 0) {
        fprintf(stderr, "bench_malloc: %s\n", strerror(-rc));
    } else {
        uint64_t sum = 0;
        for (unsigned i = 0; i < threads; i++)
            sum += w[i].sum;
        printf("threads %lu\npairs %llu\nevents %llu\nwork_s %.6f\nchecksum %llu\n",
               threads, pairs, 2 * pairs,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
               (unsigned long long)sum);
    }
    free(w);
    return rc < 0 ? 1 : 0;
}
