/* live_blocks: the workload of bench_scale and bench_stall. Holds N live
 * blocks of mixed small sizes (8 to 200 B) allocated from 8 call sites, each
 * reached through one of 4 caller paths (32 stacks), interleaved so that the
 * blocks of one stack are spread over the heap. The pointer array is itself
 * a malloc'd block, so every block stays reachable.
 *
 *   live_blocks -n N [-s STOPFILE] [-t THREADS] [-g GAP_US] [-p PAIRS] [-W WINDOW_US]
 *
 * After the blocks are built it prints "ready PID BUILD_S" and then:
 *   - with -t: starts THREADS threads that each repeat a malloc+free pair
 *     (16 to 272 B, written to), timing every pair with CLOCK_MONOTONIC and
 *     keeping the worst latency per window of WINDOW_US (default 1000) us,
 *     sleeping GAP_US (default 0: none) between pairs;
 *   - each thread stops after PAIRS pairs (-p), or, without -p, when STOPFILE
 *     exists (polled every 2 ms by the main thread);
 *   - without -t it waits for STOPFILE (if any) and exits.
 * With -t it prints "work_s S pairs P" and the window maxima as
 * "windows BASE_NS WINDOW_NS COUNT" followed by one line per window that
 * saw a pair: "w INDEX MAX_NS" (the largest over the threads; BASE_NS is
 * CLOCK_MONOTONIC, comparable with another process's). The blocks are never
 * freed: the exit snapshot sees them all. Exit status 0, or 1 with one line
 * "live_blocks: ..." on stderr. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))
#define MAX_THREADS 16
#define MAX_WINDOWS (4u << 20)      /* at 1 ms: 70 minutes */

typedef struct state {
    void **blocks;
    size_t count;
    uint64_t rng;
    uint64_t sum;
} state_t;

typedef struct churn {
    pthread_t tid;
    unsigned index;
    uint64_t pairs;                 /* 0: until stop */
    uint64_t done;
    uint64_t rng;
    uint64_t sum;
    uint32_t *win_max;              /* ns, per window; shared, max-updated */
} churn_t;

static volatile int stop_flag;
static uint64_t base_ns, window_ns = 1000000, gap_ns;
static uint32_t *windows;           /* worst latency per window, over all threads */

static inline uint64_t next_rand(uint64_t *r)
{
    uint64_t x = *r;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *r = x;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- eight allocating sites, each with its own size mix ---- */
static NOINLINE void *site_string(state_t *s)
{
    size_t n = 8 + next_rand(&s->rng) % 57;       /* 8..64 */
    char *p = malloc(n);
    if (p) {
        memset(p, 'a', n - 1);
        p[n - 1] = 0;
    }
    return p;
}

static NOINLINE void *site_node(state_t *s)
{
    static const size_t sizes[] = {24, 32, 48};
    void **p = malloc(sizes[next_rand(&s->rng) % 3]);
    if (p)
        p[0] = p[1] = NULL;
    return p;
}

static NOINLINE void *site_array(state_t *s)
{
    size_t n = 1 + next_rand(&s->rng) % 16;       /* 8..128 */
    uint64_t *p = calloc(n, sizeof(uint64_t));
    if (p)
        p[0] = n;
    return p;
}

static NOINLINE void *site_buffer(state_t *s)
{
    size_t n = 32 + next_rand(&s->rng) % 169;     /* 32..200, grown by realloc */
    unsigned char *p = malloc(n / 2);
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

static NOINLINE void *site_dup(state_t *s)
{
    char tmp[48];
    unsigned long long k = next_rand(&s->rng) % 100000;
    int n = snprintf(tmp, sizeof(tmp), "key-%llu", k);
    return n > 0 ? strdup(tmp) : NULL;
}

static NOINLINE void *site_pair(state_t *s)
{
    uint32_t *p = malloc(16);
    if (p)
        p[0] = (uint32_t)s->count;
    return p;
}

static NOINLINE void *site_record(state_t *s)
{
    size_t n = 64 + 8 * (next_rand(&s->rng) % 9); /* 64..128 */
    unsigned char *p = malloc(n);
    if (p)
        memset(p, 0, 32);
    return p;
}

static NOINLINE void *site_aligned(state_t *s)
{
    void *p = NULL;
    size_t n = 32 + 32 * (next_rand(&s->rng) % 3);
    if (posix_memalign(&p, 32, n) != 0)
        return NULL;
    memset(p, 3, 8);
    return p;
}

#define NSITES 8u
#define NPATHS 4u

/* Allocates `n` blocks from site `site`. */
static NOINLINE int fill(state_t *s, unsigned site, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *p;
        switch (site) {
        case 0: p = site_string(s); break;
        case 1: p = site_node(s); break;
        case 2: p = site_array(s); break;
        case 3: p = site_buffer(s); break;
        case 4: p = site_dup(s); break;
        case 5: p = site_pair(s); break;
        case 6: p = site_record(s); break;
        default: p = site_aligned(s); break;
        }
        if (!p)
            return -ENOMEM;
        s->sum += *(unsigned char *)p;
        s->blocks[s->count++] = p;
    }
    return 0;
}

/* Four caller paths: two levels, each picks one of two functions. */
static NOINLINE int level_b(state_t *s, unsigned path, unsigned site, size_t n);
static NOINLINE int level_c(state_t *s, unsigned path, unsigned site, size_t n);

static NOINLINE int load_config(state_t *s, unsigned path, unsigned site, size_t n)
{
    int rc = path & 2 ? level_c(s, path, site, n) : level_b(s, path, site, n);
    __asm__ volatile("" ::: "memory");
    s->sum += 1;
    return rc;
}

static NOINLINE int handle_request(state_t *s, unsigned path, unsigned site, size_t n)
{
    int rc = path & 2 ? level_c(s, path, site, n) : level_b(s, path, site, n);
    __asm__ volatile("" ::: "memory");
    s->sum += 2;
    return rc;
}

static NOINLINE int level_b(state_t *s, unsigned path, unsigned site, size_t n)
{
    (void)path;
    int rc = fill(s, site, n);
    __asm__ volatile("" ::: "memory");
    s->sum ^= 4;
    return rc;
}

static NOINLINE int level_c(state_t *s, unsigned path, unsigned site, size_t n)
{
    (void)path;
    int rc = fill(s, site, n);
    __asm__ volatile("" ::: "memory");
    s->sum ^= 8;
    return rc;
}

static int build(state_t *s, size_t nblocks)
{
    const size_t per_round = 64;
    while (s->count < nblocks) {
        for (unsigned k = 0; k < NSITES * NPATHS && s->count < nblocks; k++) {
            size_t n = nblocks - s->count < per_round ? nblocks - s->count : per_round;
            unsigned path = k % NPATHS, site = k / NPATHS;
            int rc = path & 1 ? handle_request(s, path, site, n) : load_config(s, path, site, n);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ---- churn threads ---- */
static NOINLINE void *churn_pair(churn_t *c)
{
    size_t n = 16 + next_rand(&c->rng) % 257;
    unsigned char *p = malloc(n);
    if (p) {
        p[0] = (unsigned char)n;
        p[n - 1] = 1;
        c->sum += p[0];
        free(p);
    }
    return p;
}

static void *churn_main(void *arg)
{
    churn_t *c = arg;
    struct timespec gap = {0, (long)gap_ns};
    while (!stop_flag && (c->pairs == 0 || c->done < c->pairs)) {
        uint64_t t0 = mono_ns();
        void *p = churn_pair(c);
        uint64_t t1 = mono_ns();
        if (!p)
            break;
        c->done++;
        uint64_t w = (t0 - base_ns) / window_ns;
        uint64_t lat = t1 - t0;
        uint32_t v = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
        if (w < MAX_WINDOWS) {
            uint32_t old = __atomic_load_n(&windows[w], __ATOMIC_RELAXED);
            while (v > old &&
                   !__atomic_compare_exchange_n(&windows[w], &old, v, 1, __ATOMIC_RELAXED,
                                                __ATOMIC_RELAXED))
                ;
        }
        if (gap_ns)
            nanosleep(&gap, NULL);
    }
    return NULL;
}

static int wait_stopfile(const char *path)
{
    struct timespec tick = {0, 2000000};
    while (access(path, F_OK) != 0) {
        if (errno != ENOENT)
            return -errno;
        nanosleep(&tick, NULL);
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return -EINVAL;
    *v = x;
    return 0;
}

int main(int argc, char **argv)
{
    state_t s = {.rng = 0x9e3779b97f4a7c15ull};
    churn_t th[MAX_THREADS];
    uint64_t nblocks = 0, threads = 0, pairs = 0, gap_us = 0, win_us = 1000;
    const char *stopfile = NULL;
    int opt, rc = 0;

    while ((opt = getopt(argc, argv, "n:s:t:g:p:W:")) != -1) {
        uint64_t *dst = opt == 'n' ? &nblocks : opt == 't' ? &threads : opt == 'g' ? &gap_us
                      : opt == 'p' ? &pairs : opt == 'W' ? &win_us : NULL;
        if (opt == 's') {
            stopfile = optarg;
            continue;
        }
        if (!dst || parse_u64(optarg, dst) < 0) {
            fprintf(stderr, "usage: live_blocks -n N [-s STOPFILE] [-t THREADS] [-g GAP_US] "
                            "[-p PAIRS] [-W WINDOW_US]\n");
            return 2;
        }
    }
    if (threads > MAX_THREADS || win_us == 0 || (threads && !pairs && !stopfile)) {
        fprintf(stderr, "live_blocks: -t needs -p or -s; at most %d threads\n", MAX_THREADS);
        return 2;
    }
    gap_ns = gap_us * 1000;
    window_ns = win_us * 1000;

    double t0 = (double)mono_ns() / 1e9;
    s.blocks = malloc((nblocks ? nblocks : 1) * sizeof(void *));
    if (!s.blocks) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = build(&s, nblocks)) < 0)
        goto out;
    if (threads && !(windows = calloc(MAX_WINDOWS, sizeof(*windows)))) {
        rc = -ENOMEM;
        goto out;
    }
    printf("ready %ld %.3f\n", (long)getpid(), (double)mono_ns() / 1e9 - t0);
    fflush(stdout);

    if (!threads) {
        if (stopfile)
            rc = wait_stopfile(stopfile);
        goto out;
    }
    base_ns = mono_ns();
    unsigned started = 0;
    for (unsigned i = 0; i < threads; i++) {
        th[i] = (churn_t){.index = i, .pairs = pairs, .rng = 0x2545f4914f6cdd1dull + i};
        if ((rc = -pthread_create(&th[i].tid, NULL, churn_main, &th[i])) < 0)
            break;
        started++;
    }
    if (rc == 0 && !pairs)
        rc = wait_stopfile(stopfile);
    if (rc < 0 || !pairs)
        stop_flag = 1;
    uint64_t total = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        total += th[i].done;
        s.sum += th[i].sum;
    }
    uint64_t end_ns = mono_ns();
    if (rc < 0)
        goto out;
    uint64_t nwin = (end_ns - base_ns) / window_ns + 1;
    if (nwin > MAX_WINDOWS)
        nwin = MAX_WINDOWS;
    printf("work_s %.3f pairs %llu\n", (double)(end_ns - base_ns) / 1e9, (unsigned long long)total);
    printf("windows %llu %llu %llu\n", (unsigned long long)base_ns, (unsigned long long)window_ns,
           (unsigned long long)nwin);
    for (uint64_t w = 0; w < nwin; w++)
        if (windows[w])
            printf("w %llu %u\n", (unsigned long long)w, windows[w]);
out:
    printf("checksum %llu\n", (unsigned long long)s.sum);
    if (rc < 0)
        fprintf(stderr, "live_blocks: %s\n", strerror(-rc));
    return rc < 0 ? 1 : 0;
}
