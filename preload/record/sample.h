/*
 * Byte sampling (MEMTRAIL_SAMPLE; the arithmetic is include/memtrail_sample.h):
 * which allocations the hooks record, and which frees.
 *
 * The decision (record/sample.c): each thread counts down the bytes it
 * allocates to its next sample point; an allocation that reaches the point
 * is sampled, and the next point is drawn from an exponential of the mean
 * with a thread-local generator. An unsampled allocation costs one
 * thread-local decrement and a branch: no unwinding, no stack id, no event
 * number, no ring push. In exact mode (mean 0) the counter never goes above
 * 0, so every allocation takes the same branch to "sampled": both modes
 * share the hot path up to this decision.
 *
 * The sampled-address set (record/sampset.c): the addresses of the blocks
 * the sampler picked that are still allocated. A free (and the old half of a
 * realloc) is recorded only when it takes its address out of the set; any
 * other free is one lock-free probe of a table that holds the sampled
 * blocks only, then the real free.
 *
 * Ordering, the same rule as the event numbers' (record.h): an address is
 * added after the real allocator returned it and taken out before the real
 * free or realloc releases it, so two live blocks never share an entry, and
 * a block's entry is visible to whichever thread frees it (the program's own
 * synchronisation orders its malloc before that free).
 */
#ifndef MTP_RECORD_SAMPLE_H
#define MTP_RECORD_SAMPLE_H

#include "base/util.h"

/* ---- the decision (record/sample.c) ---- */
/* per-thread: bytes left before the next sample point (the block that
 * reaches it is sampled); 0 until the thread's first draw, and always 0 in
 * exact mode. */
extern MTP_TLS int64_t mtp_tls_sample_left;

/* cold: an allocation that reached the sample point (or the thread's first,
 * which draws the first gap). 1 when it is sampled. */
int mtp_sample_hit(size_t size);

/* Whether an allocation of `size` bytes is recorded: always in exact mode;
 * with probability 1 - exp(-size/mean) when sampling. */
static inline int mtp_sampled(size_t size)
{
    int64_t left = mtp_tls_sample_left - (int64_t)size;
    if (MTP_LIKELY(left > 0)) {
        mtp_tls_sample_left = left;
        return 0;
    }
    if (!mtp_cfg.sample)
        return 1;
    return mtp_sample_hit(size);
}

/* The next gap in bytes, ceil of an exponential draw of mean `mean` from the
 * generator *state (splitmix64): the decision's source, for the tests. */
int64_t mtp_sample_gap(uint64_t *state, uint64_t mean);
/* Fork child: the surviving thread draws from a stream of its own. */
void mtp_sample_atfork_child(void);

/* ---- the sampled-address set (record/sampset.c) ---- */
/* The filter in front of it: a bit per hash class, set while an address of
 * the set is in that class; a free whose bit is clear was not sampled. The
 * class is the top bits of the address's hash: the stripe (STRIPE_BITS),
 * then the bit within the stripe's 512 (one cache line each). */
#define MTP_SAMPSET_STRIPE_BITS 5
#define MTP_SAMPSET_FILTER_BITS 9
extern _Atomic uint64_t mtp_sampset_filter[(1u << (MTP_SAMPSET_STRIPE_BITS + MTP_SAMPSET_FILTER_BITS)) / 64];

static inline uint64_t mtp_sampset_hash(uintptr_t addr)
{
    return (uint64_t)(addr >> 3) * MTP_HASH_MUL;
}

static inline unsigned mtp_sampset_bit(uint64_t h)
{
    return (unsigned)(h >> (64 - MTP_SAMPSET_STRIPE_BITS - MTP_SAMPSET_FILTER_BITS));
}

/* 0 when addr is surely not in the set: one load of a hot cache line. */
static inline int mtp_sampset_maybe(uintptr_t addr)
{
    unsigned g = mtp_sampset_bit(mtp_sampset_hash(addr));
    return (int)(atomic_load_explicit(&mtp_sampset_filter[g / 64], memory_order_relaxed) >>
                 (g % 64)) & 1;
}

/* Adds a sampled block's address: 0, or -ENOMEM (then it is not recorded). */
int mtp_sampset_add(uintptr_t addr);
/* Takes addr out of the set: 1 when it was there (the free is recorded),
 * 0 when it was not (an unsampled block: nothing to record). */
int mtp_sampset_take(uintptr_t addr);
/* Whether addr is in the set (PyTraceMalloc_Track of a sampled block). */
int mtp_sampset_has(uintptr_t addr);
/* Fork: no stripe is locked or half-resized in the child. */
void mtp_sampset_atfork_prepare(void);
void mtp_sampset_atfork_parent(void);
void mtp_sampset_atfork_child(void);
/* Addresses in the set, and the bytes of its current tables (whole pages;
 * the tables it no longer uses are released). */
size_t mtp_sampset_count(void);
size_t mtp_sampset_memory(void);

#endif /* MTP_RECORD_SAMPLE_H */
