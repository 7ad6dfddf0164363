/*
 * The recording API: the only calls the hooks (hook/) make to record an
 * event, and the stack table they name stacks with.
 *
 * The numbering protocol, written once here: every event takes a number from
 * mtp_counter.n and every number taken is pushed, so the writer can merge the
 * rings by consecutive numbers.
 *   - An allocation takes its number AFTER the real function returned
 *     (mtp_record_alloc).
 *   - A free takes its number and is pushed BEFORE the real function releases
 *     the block (mtp_record_free), so a reuse of the address by another thread
 *     is numbered after it.
 *   - A realloc takes its number BEFORE the real call (mtp_record_realloc_begin)
 *     and pushes it after (mtp_record_realloc_end): FREE of the old block when
 *     it was released, a NOP when it stays. The hook holds the guard at SILENT
 *     in between, so nothing nested is pushed out of order.
 *   - The mmap domain (hook/maphooks.c) follows the same rules: a mapping
 *     takes its number after the real call (mtp_record_map, and
 *     mtp_record_unmapped for the pages a MAP_FIXED mapping replaced), munmap
 *     and mremap's old range before it (mtp_record_unmap_begin, pushed after
 *     by mtp_record_unmap_end: UNMAP or REMAP_OLD when the call succeeded, a
 *     NOP when it failed), mremap's new range after it (REMAP_NEW), with the
 *     guard at SILENT from the first number to the last push.
 * With byte sampling (record/sample.h) the hooks ask first: mtp_sampled()
 * whether an allocation is recorded, mtp_free_recorded() whether a free is
 * (its block was sampled); what is not recorded takes no number.
 * Every call keeps errno, except mtp_record_free and the realloc pair, whose
 * callers save it once around the push and the real call (as they must
 * anyway: the real free or realloc may change it). The callers own the
 * per-thread guard.
 */
#ifndef MTP_RECORD_H
#define MTP_RECORD_H

#include "base/thread.h"
#include "record/sample.h"

/* ---- the ring, producer side (record/ring.c) ---- */
/* A ring this full (as far as its producer knows) wakes the writer, which
 * may be asleep for long when the process is idle. */
#define MTP_RING_NUDGE (MTP_RING_SLOTS / 2)
/* cold, when head reaches t->cold_at: fills the ring's next pages ahead of
 * its first lap; if the ring is half full or more, wakes the writer and
 * waits while it is full. */
void mtp_ring_cold(mtp_thread_t *t);

/* The writer, freeing slots: publishes tail and wakes the producer if it
 * sleeps on its full ring. The store and the load are sequentially
 * consistent, as are the producer's store of `waiting` and its load of
 * tail (ring.c): one of the two sees the other's, so no wake is lost. */
void mtp_ring_wake_producer(mtp_thread_t *t);
/* What producers' waits on their full rings cost since tracing began (in a
 * fork child: since the fork), for the snapshots' COSTS record. Atomic: any
 * producer adds when it stops waiting. */
typedef struct mtp_ring_costs {
    _Atomic uint64_t wait_ns, waits, worst_ns;
} mtp_ring_costs_t;
extern mtp_ring_costs_t mtp_ring_costs;
void mtp_ring_atfork_child(void);   /* the child's own count starts at 0 */
void mtp_ring_atfork_prepare(mtp_thread_t *t);   /* the forking thread's read pages go */
/* 1: no writer will drain the rings any more (memtrail detach): a producer
 * whose ring is full does not wait, and overwrites its oldest slot (the
 * next attach drops whatever the rings hold). 0: the writer runs again. */
void mtp_ring_orphan(int orphaned);
static inline void mtp_ring_set_tail(mtp_thread_t *t, uint64_t tail)
{
    atomic_store_explicit(&t->tail, tail, memory_order_seq_cst);
    if (MTP_UNLIKELY(atomic_load_explicit(&t->waiting, memory_order_seq_cst)))
        mtp_ring_wake_producer(t);
}

static inline void mtp_ring_push(mtp_thread_t *t, const mtp_event_t *ev)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    if (MTP_UNLIKELY(h >= t->cold_at))
        mtp_ring_cold(t);
    t->slots[h & (MTP_RING_SLOTS - 1)] = *ev;
    atomic_store_explicit(&t->head, h + 1, memory_order_release);
}

/* ---- the stack table (record/stacktab.c): id 0 is the empty/unknown stack ---- */
int mtp_stacktab_init(void);
/* Fork: no insert is half-done in the child (core/control.c calls these). */
void mtp_stacktab_atfork_prepare(void);
void mtp_stacktab_atfork_parent(void);
void mtp_stacktab_atfork_child(void);
uint32_t mtp_stack_intern(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth);
/* The same id, for a stack just walked by mtp_unwind, whose memo was at
 * generation gen_before: when the walk became the memo's, the hash starts
 * from the lanes of the outer frames it shares with the walk before it, and
 * the lanes of this one are kept for the next. While t->fresh (a fork
 * child's first stacks, base/thread.h), without the per-thread cache, and
 * counting them down. */
uint32_t mtp_stack_intern_walk(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth,
                               uint64_t gen_before);
/* The same for any caller that keeps such a memo (python/pystack.c): the
 * stack's outer `shared` words are those of the stack interned last with
 * gen_after == gen_before on this thread (then the hash starts from their
 * lanes); with `same`, all its words are that stack's (then that stack's
 * id is its id, nothing hashed or looked up). The lanes and the id of this
 * one are kept under gen_after. A memo's generations must never take a
 * value another memo's take (the unwind memo's count up from 0, python/'s
 * have the top bit set). */
uint32_t mtp_stack_intern_from(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth,
                               uint32_t shared, int same, uint64_t gen_before,
                               uint64_t gen_after);
/* Copies stack id's words (innermost first) to out; returns how many, or 0
 * for id 0, an unknown id, or a stack of more than max words. */
uint32_t mtp_stack_copy(uint32_t id, uintptr_t *out, uint32_t max);
/* The most words a stack can have: --native splices up to MTP_MAX_DEPTH
 * native and Python frames, two words at most each (python/pystack.c). */
#define MTP_STACK_MAX_WORDS (3 * MTP_MAX_DEPTH + 16)
uint32_t mtp_stack_count(void); /* ids are < this */
/* The stored parts of a stack, for readers that can reuse work across stacks
 * sharing their outer frames (writer/framemap.c): its own innermost words
 * (returned count, 0 for an unknown id) and the chunk outside them (0 =
 * none); a chunk's words (returned count) and the chunk outside it. A chunk
 * id must come from mtp_stack_own or mtp_stack_chunk. Words are immutable. */
uint32_t mtp_stack_own(uint32_t id, const uintptr_t **words, uint32_t *chunk);
uint32_t mtp_stack_chunk(uint32_t c, const uintptr_t **words, uint32_t *outer);
/* Set once by python/ (stacktab.c): called with each new stack before it is
 * published, with the count of its innermost words that no stored stack
 * held and, for mtp_stack_intern_from, that the stack interned before it
 * (stored) did not share: every word of a stored stack has been given to
 * the hook once. */
extern void (*mtp_stack_new_hook)(const uintptr_t *pcs, uint32_t depth, uint32_t new_words);

/* ---- stacks (record/record.c) ---- */
/* The calling thread's native stack, interned. */
uint32_t mtp_native_stack(mtp_thread_t *t);
/* Where stack ids come from: NULL for native stacks, or a source installed
 * once by a layer above (python/: Python or hybrid stacks). atomic. */
typedef uint32_t (*mtp_stack_source_fn)(mtp_thread_t *t);
extern _Atomic(mtp_stack_source_fn) mtp_stack_source;

static inline uint32_t mtp_stack_id(mtp_thread_t *t)
{
    mtp_stack_source_fn f = atomic_load_explicit(&mtp_stack_source, memory_order_relaxed);
    if (MTP_UNLIKELY(f != NULL))
        return f(t);
    return mtp_native_stack(t);
}

/* ---- events ---- */
static inline uint64_t mtp_take_number(void)
{
    return atomic_fetch_add_explicit(&mtp_counter.n, 1, memory_order_relaxed);
}

static inline void mtp_push(mtp_thread_t *t, unsigned kind, uint64_t counter, const void *p,
                            uint64_t size, uint32_t stack, unsigned domain)
{
    mtp_event_t ev = {counter, (uintptr_t)p, size, stack, kind, domain};
    mtp_ring_push(t, &ev);
}

/* After a successful allocation that mtp_sampled() picked: (when sampling,
 * its address into the sampled set, before the block can be freed) stack
 * id, then the number, then the push. */
static inline void mtp_record_alloc(mtp_thread_t *t, const void *p, size_t size, unsigned domain)
{
    int saved = errno;
    if (MTP_UNLIKELY(mtp_cfg.sample) && mtp_sampset_add((uintptr_t)p) < 0) {
        errno = saved;
        return;   /* no room in the set: a free could not be told; not recorded */
    }
    uint32_t id = mtp_stack_id(t);
    mtp_push(t, MTP_EV_ALLOC, mtp_take_number(), p, size, id, domain);
    errno = saved;
}

/* Whether a free (or realloc) of p is recorded, asked before the block is
 * released: always in exact mode; when sampling, only for a sampled block,
 * which leaves the sampled set here. No errno change. */
static inline int mtp_free_recorded(const void *p)
{
    return !mtp_cfg.sample || (mtp_sampset_maybe((uintptr_t)p) && mtp_sampset_take((uintptr_t)p));
}

/* Whether p is a block the tracer holds (PyTraceMalloc_Track and Untrack
 * re-label only those when sampling). */
static inline int mtp_block_recorded(const void *p)
{
    return !mtp_cfg.sample || mtp_sampset_has((uintptr_t)p);
}

/* Before the block is released. The caller keeps errno across this push
 * and the real free together (one save for both). */
static inline void mtp_record_free(mtp_thread_t *t, const void *p, unsigned domain)
{
    mtp_push(t, MTP_EV_FREE, mtp_take_number(), p, 0, 0, domain);
}

/* Before the real realloc: the number its old half will carry. */
static inline uint64_t mtp_record_realloc_begin(void)
{
    return mtp_take_number();
}

/* After it, with the old block's address (only an address once released):
 * the old block was released (FREE) or stays (NOP; when
 * sampling, a block that stays goes back into the sampled set, which
 * mtp_free_recorded took it out of: the table it left has room for it). */
static inline void mtp_record_realloc_end(mtp_thread_t *t, uint64_t n, uintptr_t old,
                                          int released, unsigned domain)
{
    if (!released && mtp_cfg.sample)
        mtp_sampset_add(old);
    mtp_push(t, released ? MTP_EV_FREE : MTP_EV_NOP, n, (const void *)old, 0, 0, domain);
}

/* PyTraceMalloc_Track / Untrack: re-label (or add) a block, remove it. */
static inline void mtp_record_track(mtp_thread_t *t, const void *p, size_t size, unsigned domain)
{
    int saved = errno;
    uint32_t id = mtp_stack_id(t);
    mtp_push(t, MTP_EV_TRACK, mtp_take_number(), p, size, id, domain);
    errno = saved;
}

static inline void mtp_record_untrack(mtp_thread_t *t, const void *p, unsigned domain)
{
    int saved = errno;
    mtp_push(t, MTP_EV_UNTRACK, mtp_take_number(), p, 0, 0, domain);
    errno = saved;
}

/* An object CPython reused from a free list (hook/pyreuse.c): the live block
 * at p now belongs to the calling stack. Not an allocation: it takes a
 * number (its place among the frees and allocations of p) after the reuse. */
static inline void mtp_record_retrace(mtp_thread_t *t, const void *p)
{
    int saved = errno;
    uint32_t id = mtp_stack_id(t);
    mtp_push(t, MTP_EV_RETRACE, mtp_take_number(), p, 0, id, 0);
    errno = saved;
}

/* ---- the mmap domain: every mapping recorded (never sampled) ---- */
/* After a mapping the domain records, [p, p + len) (len in whole pages). */
static inline void mtp_record_map(mtp_thread_t *t, const void *p, size_t len, unsigned kind)
{
    int saved = errno;
    uint32_t id = mtp_stack_id(t);
    mtp_push(t, kind, mtp_take_number(), p, len, id, MTSNAP_DOMAIN_MMAP);
    errno = saved;
}

/* After a MAP_FIXED mapping the domain does not record: the recorded pages
 * it replaced are gone. */
static inline void mtp_record_unmapped(mtp_thread_t *t, const void *p, size_t len)
{
    mtp_push(t, MTP_EV_UNMAP, mtp_take_number(), p, len, 0, MTSNAP_DOMAIN_MMAP);
}

/* munmap and mremap's old range: the number before the real call (pages it
 * hands back may be mapped by another thread at once), the push after it:
 * `kind` (UNMAP or REMAP_OLD; `look` 1: the range stays mapped) when the
 * call succeeded, a NOP when it failed. The caller keeps errno. */
static inline uint64_t mtp_record_unmap_begin(void)
{
    return mtp_take_number();
}

static inline void mtp_record_unmap_end(mtp_thread_t *t, uint64_t n, unsigned kind,
                                        const void *p, size_t len, int done, int look)
{
    mtp_push(t, done ? kind : MTP_EV_NOP, n, p, len, (uint32_t)look, MTSNAP_DOMAIN_MMAP);
}

#endif /* MTP_RECORD_H */
