/*
 * The sampling decision (record/sample.h): per-thread countdown to the next
 * sample point, exponential gaps from a per-thread generator.
 *
 * Threads: everything here is per-thread (initial-exec TLS) except the
 * process's seed, written once (atomically, by whichever thread draws
 * first) and the stream counter (atomic) that gives each thread a stream of
 * its own. Nothing allocates or locks: this runs inside malloc.
 *
 * Why exact: a gap G is exponential with mean m; the counter holds
 * ceil(G), so an allocation of s bytes is sampled exactly when G <= s, with
 * probability 1 - exp(-s/m); a block that does not reach the point leaves
 * ceil(G) - s = ceil(G - s), and G - s given G > s is again exponential with
 * mean m (memorylessness), so every block is sampled independently with its
 * own probability. After a sampled block the next gap is drawn afresh from
 * its end: the points that fell inside it are not needed (a block is
 * sampled once however many points it holds).
 */
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "record/sample.h"

MTP_TLS int64_t mtp_tls_sample_left;   /* per-thread */
static MTP_TLS uint64_t rng;           /* per-thread: splitmix64 state */
static MTP_TLS int seeded;             /* per-thread: rng drawn from its own stream */
static _Atomic uint64_t seed;          /* atomic: the process's, from AT_RANDOM; 0 until first use */
static _Atomic uint64_t streams;       /* atomic: streams handed out */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ln(u) for u in (0, 1] (no libm in the preload): u = m 2^e with m in
 * [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t) with t = (m - 1) / (m + 1),
 * |t| <= 0.172, summed to t^23 (relative error below 1e-17). */
static double ln_unit(double u)
{
    union { double d; uint64_t b; } x = {u};
    int e = (int)((x.b >> 52) & 0x7ff) - 1023;
    x.b = (x.b & ((1ull << 52) - 1)) | (1023ull << 52);
    double m = x.d;
    if (m > 1.4142135623730951) {
        m /= 2;
        e++;
    }
    double t = (m - 1) / (m + 1), t2 = t * t, sum = 0;
    for (int k = 23; k >= 1; k -= 2)
        sum = sum * t2 + 1.0 / k;
    return 2 * t * sum + e * 0.6931471805599453;
}

int64_t mtp_sample_gap(uint64_t *state, uint64_t mean)
{
    /* u in (0, 1], 53 random bits: never 0, so the logarithm is finite */
    double u = (double)((splitmix64(state) >> 11) + 1) * 0x1p-53;
    double g = -(double)mean * ln_unit(u);
    int64_t c = (int64_t)g;
    return c + (g > (double)c);
}

static void seed_thread(void)
{
    uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);
    if (!s) {
        const void *r = (const void *)getauxval(AT_RANDOM);   /* 16 bytes, any alignment */
        uint64_t w[2] = {0, 0};
        if (r)
            memcpy(w, r, sizeof(w));
        uint64_t mine = (w[0] ^ w[1]) | 1;   /* never 0: 0 means unset */
        if (atomic_compare_exchange_strong(&seed, &s, mine))
            s = mine;   /* else another thread was first: s holds its seed */
    }
    uint64_t n = atomic_fetch_add_explicit(&streams, 1, memory_order_relaxed);
    rng = s ^ (n * 0xd1b54a32d192ed03ull);
    splitmix64(&rng);
    seeded = 1;
}

MTP_COLD int mtp_sample_hit(size_t size)
{
    if (MTP_UNLIKELY(mtp_tls_guard == MTP_GUARD_INTERNAL)) {
        /* The writer thread: never recorded, and every allocation of its
         * own takes the picked path, which serves it from memtrail's
         * private heap (hook/hooks.c). Its count stays at 0. */
        mtp_tls_sample_left = 0;
        return 1;
    }
    if (MTP_UNLIKELY(!seeded)) {
        /* The thread's first allocation: where its first point falls. */
        seed_thread();
        int64_t left = mtp_sample_gap(&rng, mtp_cfg.sample) - (int64_t)size;
        if (left > 0) {
            mtp_tls_sample_left = left;
            return 0;
        }
    }
    mtp_tls_sample_left = mtp_sample_gap(&rng, mtp_cfg.sample);
    return 1;
}

MTP_FORK_CODE void mtp_sample_atfork_child(void)
{
    /* A stream of the child's own for this thread and for those it starts. */
    uint64_t pid = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
    uint64_t s = atomic_load(&seed);
    if (s)
        atomic_store(&seed, (s ^ pid) | 1);
    if (seeded) {
        rng ^= pid;
        splitmix64(&rng);
    }
}
