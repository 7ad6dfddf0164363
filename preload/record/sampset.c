/*
 * The sampled-address set (record/sample.h): the addresses of the sampled
 * blocks still allocated, asked on every free of a sampling process.
 *
 * Layout: STRIPES stripes, chosen by the top bits of a multiplicative hash
 * of the address; each is a linear-probing table of addresses (0 = empty,
 * no tombstones: deletion shifts the entries after the hole back), in an
 * mmap'd table of 2^k slots (k from MIN_CLASS to MAX_CLASS) whose header
 * holds its mask. A table is grown when it would pass half full and shrunk
 * when it falls below a sixteenth, so its bytes follow the stripe's sampled
 * blocks (8 bytes a slot, 2 to 16 slots a block once past the smallest
 * table).
 *
 * A free asks first the filter (mtp_sampset_maybe, inline in sample.h): a
 * bitmap of 512 bits a stripe, one cache line each, 2 KiB that every free
 * touches and that so stays in cache (the tables themselves are out of it
 * between two frees of a busy program: probing one cost about 6 ns a free
 * in bench_malloc). A bit is set while at least one address of the set
 * hashes to it (a count per bit, kept under the stripe's lock, says when to
 * clear it). A clear bit answers "not sampled" at once, and is never wrong:
 * an address's own bit is set from before its add to after its removal. A
 * set bit sends the free to the table (with S addresses in a stripe, a
 * fraction 1 - exp(-S/512) of the frees of other blocks).
 *
 * Threads: lookups are lock-free; adds, removals and resizes take the
 * stripe's lock. Readers are protected by a sequence count per stripe
 * (`seq`, odd while entries move: a removal shifting entries back, a
 * resize copying them into another table). A reader loads `seq`, probes,
 * and accepts its answer only if `seq` did not change; while it is odd, it
 * waits on the lock instead. An add writes one empty slot and moves
 * nothing, so it does not touch `seq`: a reader looking for its own block
 * is not affected, and one looking for an absent address may see the new
 * entry or not. A table that stops being current is not unmapped (a reader
 * may still be probing it) but released with MADV_DONTNEED: its pages read
 * as zeros (a probe stops at once, and `seq` sends the reader back), and
 * it is the stripe's table of that size the next time one is needed, so a
 * stripe maps at most one table per size.
 *
 * Why a reader finds its block: the program frees a block only after
 * malloc returned it, and the add that happened before that return is
 * visible to the freeing thread (a store that happens-before a load of the
 * same slot is seen by it); no other thread takes that address out, since
 * only the free of that block does, and no other block has it meanwhile.
 *
 * Ownership: the filter, `seq` and `tab` atomic (written under the
 * stripe's lock); `uses`, `count`, `cls` and `sizes` under the lock. Fork:
 * the prepare handler takes every stripe's lock, so the child inherits no
 * half-done change; memory comes from mmap, never from the traced heap.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mman.h>

#include "base/util.h"
#include "record/sample.h"

#define STRIPE_BITS MTP_SAMPSET_STRIPE_BITS
#define STRIPES (1u << STRIPE_BITS)
#define MIN_CLASS 8        /* 256 slots: a table and its header fit a page */
#define MAX_CLASS 30       /* 2^30 slots a stripe: 16 G sampled blocks in all */
#define SPINS 64           /* odd `seq` seen this many times: wait on the lock */
#define FILTER_BITS (1u << MTP_SAMPSET_FILTER_BITS)   /* a stripe's */

typedef struct table {
    _Atomic uint64_t mask;   /* slots - 1; 0 in a released table */
    uint64_t pad[7];
    _Atomic uintptr_t slot[];
} table_t;

typedef struct stripe {
    /* the first cache line: what a lookup reads */
    _Alignas(64) _Atomic(table_t *) tab; /* atomic: the current table, NULL before the first add */
    _Atomic uint32_t seq;               /* atomic: odd while entries move */
    /* the rest: writers only */
    _Alignas(64) uint32_t uses[FILTER_BITS]; /* under lock: addresses on each filter bit */
    size_t count;                       /* under lock: addresses held */
    int cls;                            /* under lock: log2 of the current table's slots */
    table_t *sizes[MAX_CLASS + 1];      /* under lock: the stripe's table of each size, once mapped */
} stripe_t;

/* The stripes' locks (adds, removals, resizes), apart from the stripes
 * and with the other variables a fork writes (MTP_FORKED): fork's handlers
 * take and release every one, and each page they write after a fork is a
 * copy-on-write fault, in the parent and again in the child. In the
 * stripes they lay on 19 pages. */
typedef struct stripe_lock {
    _Alignas(64) pthread_mutex_t m;
} stripe_lock_t;

/* atomic: stripe i's bits are words [i * 8, i * 8 + 8), written under its lock */
_Alignas(64) _Atomic uint64_t mtp_sampset_filter[STRIPES * FILTER_BITS / 64];
static MTP_LARGE stripe_t stripes[STRIPES];
static MTP_FORKED stripe_lock_t locks[STRIPES] = {
#define LOCK_INIT_(i) [i].m = PTHREAD_MUTEX_INITIALIZER
    LOCK_INIT_(0), LOCK_INIT_(1), LOCK_INIT_(2), LOCK_INIT_(3), LOCK_INIT_(4), LOCK_INIT_(5),
    LOCK_INIT_(6), LOCK_INIT_(7), LOCK_INIT_(8), LOCK_INIT_(9), LOCK_INIT_(10), LOCK_INIT_(11),
    LOCK_INIT_(12), LOCK_INIT_(13), LOCK_INIT_(14), LOCK_INIT_(15), LOCK_INIT_(16),
    LOCK_INIT_(17), LOCK_INIT_(18), LOCK_INIT_(19), LOCK_INIT_(20), LOCK_INIT_(21),
    LOCK_INIT_(22), LOCK_INIT_(23), LOCK_INIT_(24), LOCK_INIT_(25), LOCK_INIT_(26),
    LOCK_INIT_(27), LOCK_INIT_(28), LOCK_INIT_(29), LOCK_INIT_(30), LOCK_INIT_(31),
#undef LOCK_INIT_
};
_Static_assert(sizeof(locks) <= 4096, "the locks in one page");
#define LOCK_OF(s) (&locks[(s) - stripes].m)
_Static_assert(STRIPES == 32, "one initialiser a stripe");
_Static_assert(FILTER_BITS == 512, "a stripe's filter is one cache line");
static int warned_full;   /* mtp_warn_once's */

static inline uint64_t hash(uintptr_t addr)
{
    return mtp_sampset_hash(addr);
}

static inline stripe_t *stripe_of(uint64_t h)
{
    return &stripes[mtp_sampset_bit(h) / FILTER_BITS];
}

/* Lock of h's stripe s held: one more (d = 1) or one fewer (d = -1)
 * address on h's filter bit. */
static void filter_count(stripe_t *s, uint64_t h, int d)
{
    unsigned g = mtp_sampset_bit(h), b = g % FILTER_BITS;
    uint32_t n = s->uses[b] += (uint32_t)d;
    uint64_t word = atomic_load_explicit(&mtp_sampset_filter[g / 64], memory_order_relaxed);
    uint64_t bit = 1ull << (g % 64);
    if (n == 1 && d > 0)
        atomic_store_explicit(&mtp_sampset_filter[g / 64], word | bit, memory_order_release);
    else if (n == 0)
        atomic_store_explicit(&mtp_sampset_filter[g / 64], word & ~bit, memory_order_relaxed);
}

/* The home slot: bits below the stripe's. */
static inline uint64_t home(uint64_t h, uint64_t mask)
{
    return (h >> (64 - STRIPE_BITS - MAX_CLASS)) & mask;
}

static size_t table_bytes(int cls)
{
    return sizeof(table_t) + ((size_t)1 << cls) * sizeof(uintptr_t);
}

/* Probes t for addr: 1 found (its slot in *at), 0 not. Never more than the
 * table's slots, whatever a concurrent writer does to it. */
static int probe(const table_t *t, uintptr_t addr, uint64_t h, uint64_t *at)
{
    uint64_t mask = atomic_load_explicit(&t->mask, memory_order_relaxed);
    uint64_t i = home(h, mask);
    for (uint64_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        uintptr_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (v == addr) {
            *at = i;
            return 1;
        }
        if (!v)
            return 0;
    }
    return 0;
}

/* Lock held: is addr in the stripe (its slot in *at)? */
static int find_locked(stripe_t *s, uintptr_t addr, uint64_t h, uint64_t *at)
{
    table_t *t = atomic_load_explicit(&s->tab, memory_order_relaxed);
    return t && probe(t, addr, h, at);
}

static int lookup(stripe_t *s, uintptr_t addr, uint64_t h)
{
    uint64_t at;
    for (int spins = 0;; spins++) {
        uint32_t q = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (q & 1) {
            if (spins < SPINS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(LOCK_OF(s));   /* a resize is long: wait for it */
            int found = find_locked(s, addr, h, &at);
            pthread_mutex_unlock(LOCK_OF(s));
            return found;
        }
        table_t *t = atomic_load_explicit(&s->tab, memory_order_acquire);
        int found = t && probe(t, addr, h, &at);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == q)
            return found;
    }
}

/* Entries are about to move (seq odd), and have moved (seq even). */
static void write_begin(stripe_t *s)
{
    atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(stripe_t *s)
{
    atomic_store_explicit(&s->seq, atomic_load_explicit(&s->seq, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* Lock held, addr absent: into its first empty slot. */
static void place(table_t *t, uintptr_t addr)
{
    uint64_t mask = atomic_load_explicit(&t->mask, memory_order_relaxed);
    uint64_t i = home(hash(addr), mask);
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & mask;
    atomic_store_explicit(&t->slot[i], addr, memory_order_release);
}

/* Lock held: moves the stripe's addresses into its table of 2^cls slots.
 * 0, or -ENOMEM (nothing changed). */
static int resize(stripe_t *s, int cls)
{
    table_t *n = s->sizes[cls], *old = atomic_load_explicit(&s->tab, memory_order_relaxed);
    if (!n) {
        void *p = mmap(NULL, table_bytes(cls), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return -ENOMEM;
        n = s->sizes[cls] = p;
    }
    write_begin(s);
    /* n is all zeros: fresh, or released by MADV_DONTNEED when it stopped
     * being current. A reader still on it from then sees `seq` change. */
    atomic_store_explicit(&n->mask, ((uint64_t)1 << cls) - 1, memory_order_relaxed);
    if (old) {
        uint64_t mask = atomic_load_explicit(&old->mask, memory_order_relaxed);
        for (uint64_t i = 0; i <= mask; i++) {
            uintptr_t v = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
            if (v)
                place(n, v);
        }
    }
    atomic_store_explicit(&s->tab, n, memory_order_release);
    write_end(s);
    if (old)
        madvise(old, table_bytes(s->cls), MADV_DONTNEED);
    s->cls = cls;
    return 0;
}

int mtp_sampset_add(uintptr_t addr)
{
    uint64_t h = hash(addr);
    stripe_t *s = stripe_of(h);
    int r = 0;
    pthread_mutex_lock(LOCK_OF(s));
    table_t *t = atomic_load_explicit(&s->tab, memory_order_relaxed);
    if (!t || (s->count + 1) * 2 > ((size_t)1 << s->cls)) {
        int cls = t ? s->cls + 1 : MIN_CLASS;
        r = cls > MAX_CLASS ? -ENOMEM : resize(s, cls);
        t = atomic_load_explicit(&s->tab, memory_order_relaxed);
    }
    if (r == 0) {
        filter_count(s, h, 1);   /* before the address can be looked up */
        place(t, addr);
        s->count++;
    }
    pthread_mutex_unlock(LOCK_OF(s));
    if (r < 0)
        mtp_warn_once(&warned_full, "sampling: no memory for the sampled-address set: "
                                    "some sampled blocks are not recorded");
    return r;
}

/* Lock held: empties slot i, then shifts back the entries after it that
 * may fill the hole (seq odd meanwhile: entries move). */
static void remove_at(stripe_t *s, table_t *t, uint64_t i)
{
    uint64_t mask = atomic_load_explicit(&t->mask, memory_order_relaxed);
    write_begin(s);
    atomic_store_explicit(&t->slot[i], 0, memory_order_relaxed);
    for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        uintptr_t v = atomic_load_explicit(&t->slot[j], memory_order_relaxed);
        if (!v)
            break;
        if (mtp_probe_fills_hole(i, j, home(hash(v), mask))) {
            atomic_store_explicit(&t->slot[i], v, memory_order_relaxed);
            atomic_store_explicit(&t->slot[j], 0, memory_order_relaxed);
            i = j;
        }
    }
    write_end(s);
    s->count--;
}

int mtp_sampset_take(uintptr_t addr)
{
    uint64_t h = hash(addr), at;
    stripe_t *s = stripe_of(h);
    if (!mtp_sampset_maybe(addr) || !lookup(s, addr, h))
        return 0;
    pthread_mutex_lock(LOCK_OF(s));
    int found = find_locked(s, addr, h, &at);
    if (found) {
        remove_at(s, atomic_load_explicit(&s->tab, memory_order_relaxed), at);
        filter_count(s, h, -1);
        if (s->cls > MIN_CLASS && s->count * 16 < ((size_t)1 << s->cls))
            resize(s, s->cls - 1);   /* may fail: the larger table stays */
    }
    pthread_mutex_unlock(LOCK_OF(s));
    return found;
}

int mtp_sampset_has(uintptr_t addr)
{
    uint64_t h = hash(addr);
    return mtp_sampset_maybe(addr) && lookup(stripe_of(h), addr, h);
}

MTP_FORK_CODE void mtp_sampset_atfork_prepare(void)
{
    for (unsigned i = 0; i < STRIPES; i++)
        pthread_mutex_lock(&locks[i].m);
}

MTP_FORK_CODE void mtp_sampset_atfork_parent(void)
{
    for (unsigned i = STRIPES; i-- > 0;)
        pthread_mutex_unlock(&locks[i].m);
}

MTP_FORK_CODE void mtp_sampset_atfork_child(void)
{
    for (unsigned i = 0; i < STRIPES; i++)
        pthread_mutex_init(&locks[i].m, NULL);
}

size_t mtp_sampset_count(void)
{
    size_t n = 0;
    for (unsigned i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&locks[i].m);
        n += stripes[i].count;
        pthread_mutex_unlock(&locks[i].m);
    }
    return n;
}

size_t mtp_sampset_memory(void)
{
    size_t bytes = 0;
    for (unsigned i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&locks[i].m);
        if (atomic_load_explicit(&stripes[i].tab, memory_order_relaxed))
            bytes += (table_bytes(stripes[i].cls) + 4095) & ~(size_t)4095;   /* mapped pages */
        pthread_mutex_unlock(&locks[i].m);
    }
    return bytes;
}
