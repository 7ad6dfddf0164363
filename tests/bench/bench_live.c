/* bench_live: holds 1,000,000 live blocks (16..256 bytes, from 100 call stacks),
 * then reports its VmRSS and the time memtrail_snapshot("live-1M") takes. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MEMTRAIL_WEAK
#include <memtrail.h>

#define NOINLINE __attribute__((noinline, noclone))
#define NBLOCKS 1000000u
#define NPATHS 25u         /* recursion paths; x 4 sites = 100 stacks */
#define PATH_LEVELS 5      /* each level picks one of two functions */

typedef struct state {
    void **blocks;         /* mmap'd, so it is not one of the traced blocks */
    size_t count;
    uint64_t rng;
    uint64_t sum;
} state_t;

static inline uint64_t next_rand(state_t *s)
{
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s->rng = x;
}

static inline size_t rand_size(state_t *s)
{
    return 16 + next_rand(s) % 241;
}

/* ---- four allocating sites ---- */
static NOINLINE void *site_string(state_t *s)
{
    size_t n = rand_size(s);
    char *p = malloc(n);
    if (p) {
        memset(p, 'x', n - 1);
        p[n - 1] = 0;
    }
    return p;
}

static NOINLINE void *site_record(state_t *s)
{
    size_t n = rand_size(s);
    unsigned char *p = malloc(n);
    if (p)
        memset(p, 0, n < 32 ? n : 32);
    return p;
}

static NOINLINE void *site_table(state_t *s)
{
    size_t n = 2 + next_rand(s) % 31;   /* 16..256 bytes */
    uint64_t *p = calloc(n, sizeof(uint64_t));
    if (p)
        p[0] = n;
    return p;
}

static NOINLINE void *site_buffer(state_t *s)
{
    size_t n = rand_size(s);
    unsigned char *p = malloc(n / 2 + 8);
    if (p) {
        p[0] = 1;
        unsigned char *q = realloc(p, n);
        if (!q) {
            free(p);
            return NULL;
        }
        p = q;
        p[n - 1] = 2;
    }
    return p;
}

/* Allocates `n` blocks from site `site`; the caller's path makes the stack. */
static NOINLINE int fill(state_t *s, unsigned site, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *p;
        switch (site) {
        case 0: p = site_string(s); break;
        case 1: p = site_record(s); break;
        case 2: p = site_table(s); break;
        default: p = site_buffer(s); break;
        }
        if (!p)
            return -ENOMEM;
        s->sum += *(unsigned char *)p;
        s->blocks[s->count++] = p;
    }
    return 0;
}

/* ---- the path: at each level bit `level` of `path` picks walk_x or walk_y ---- */
static int walk_x(state_t *s, unsigned path, int level, unsigned site, size_t n);
static int walk_y(state_t *s, unsigned path, int level, unsigned site, size_t n);

static inline __attribute__((always_inline)) int walk_next(state_t *s, unsigned path, int level,
                                                     unsigned site, size_t n)
{
    if (level == PATH_LEVELS)
        return fill(s, site, n);
    if (path & (1u << level))
        return walk_y(s, path, level + 1, site, n);
    return walk_x(s, path, level + 1, site, n);
}

static NOINLINE int walk_x(state_t *s, unsigned path, int level, unsigned site, size_t n)
{
    int rc = walk_next(s, path, level, site, n);
    __asm__ volatile("" ::: "memory");
    s->sum += (uint64_t)level;
    return rc;
}

static NOINLINE int walk_y(state_t *s, unsigned path, int level, unsigned site, size_t n)
{
    int rc = walk_next(s, path, level, site, n);
    __asm__ volatile("" ::: "memory");
    s->sum ^= (uint64_t)level << 4;
    return rc;
}

static long read_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kb = -1;
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(void)
{
    state_t s = {.rng = 0x2545f4914f6cdd1dull};
    int rc = 0;

    s.blocks = mmap(NULL, NBLOCKS * sizeof(void *), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s.blocks == MAP_FAILED) {
        s.blocks = NULL;
        rc = -errno;
        goto out;
    }

    /* Interleave the 100 stacks in rounds so blocks of one stack are spread
     * over the heap, as in a real program. */
    const unsigned nstacks = NPATHS * 4;
    const size_t per_round = 100;
    while (s.count < NBLOCKS) {
        for (unsigned k = 0; k < nstacks && s.count < NBLOCKS; k++) {
            size_t n = NBLOCKS - s.count < per_round ? NBLOCKS - s.count : per_round;
            rc = walk_x(&s, k % NPATHS, 0, k / NPATHS, n);
            if (rc < 0)
                goto out;
        }
    }

    long rss = read_rss_kb();
    printf("blocks %zu\nstacks %u\nrss_kb %ld\n", s.count, nstacks, rss);
    fflush(stdout);

    double t0 = now_ms();
    int src = MEMTRAIL_SNAPSHOT("live-1M");
    double t1 = now_ms();
    if (src == -38)
        printf("snapshot_ms none\n");
    else if (src < 0)
        printf("snapshot_ms failed %d\n", src);
    else
        printf("snapshot_ms %.3f\n", t1 - t0);
    printf("rss_after_snapshot_kb %ld\nchecksum %llu\n", read_rss_kb(),
           (unsigned long long)s.sum);

out:
    if (s.blocks) {
        for (size_t i = 0; i < s.count; i++)
            free(s.blocks[i]);
        munmap(s.blocks, NBLOCKS * sizeof(void *));
    }
    if (rc < 0)
        fprintf(stderr, "bench_live: %s\n", strerror(-rc));
    return rc < 0 ? 1 : 0;
}
