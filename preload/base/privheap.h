/* memtrail's private heap: where the writer thread's own allocations go
 * (libdw, libelf, zlib and zstd while symbolizing and compressing, the
 * symbolizer's tables), so that they never come from the traced program's
 * allocator, never change its state (glibc raises its mmap threshold for
 * the whole process when a large mmap'd block is freed, and keeps freed
 * memory in an arena), and go back to the system after each snapshot
 * (mtp_ph_trim). base/privheap.c explains the layout.
 *
 * Threads: any thread may free or reallocate a block of this heap (a
 * pointer the writer handed on); one lock protects it. mtp_ph_owns is a
 * lock-free range check. Fork: core/control.c takes the lock around fork. */
#ifndef MTP_BASE_PRIVHEAP_H
#define MTP_BASE_PRIVHEAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The reserved range, [mtp_ph_base, mtp_ph_base + mtp_ph_bytes), set once
 * when the heap is first used (0 and 0 before: nothing is ours). */
extern _Atomic uintptr_t mtp_ph_base, mtp_ph_bytes;

/* Whether p is a block of this heap. The size is published after the base
 * (release), read first (acquire): a reader that sees it sees the base. */
static inline int mtp_ph_owns(const void *p)
{
    uintptr_t n = atomic_load_explicit(&mtp_ph_bytes, memory_order_acquire);
    return (uintptr_t)p - atomic_load_explicit(&mtp_ph_base, memory_order_relaxed) < n;
}

/* NULL when the heap cannot serve the request (no memory, the range is
 * used up, a size of 2^32 or more): the caller uses the C library's. */
void *mtp_ph_malloc(size_t size);
void *mtp_ph_calloc(size_t n, size_t size);
/* p is ours (mtp_ph_owns). A realloc that cannot be served leaves p as it
 * was and returns NULL, as realloc does. */
void mtp_ph_free(void *p);
void *mtp_ph_realloc(void *p, size_t size);
size_t mtp_ph_usable_size(const void *p);

/* Gives the pages of every free run back to the system, adjacent free runs
 * merged, when more than `keep` bytes of them are resident (0: always; a
 * block of 128 KiB or more that realloc moved gave its pages back then):
 * called by the writer after each snapshot and symbolizer flush with
 * MTP_PH_KEEP, so that the next snapshot does not fault in again the few
 * pages it reuses, while what a libdw session freed goes back. */
#define MTP_PH_KEEP (256u << 10)
void mtp_ph_trim(size_t keep);

/* What the heap holds: runs in use by blocks, free runs still resident,
 * bytes asked for and live. For the tests and the run's statistics. */
typedef struct mtp_ph_stats {
    uint64_t runs_used, runs_free_dirty, runs_reserved, live_bytes, live_blocks;
} mtp_ph_stats_t;
void mtp_ph_stats(mtp_ph_stats_t *out);

void mtp_ph_atfork_prepare(void);
void mtp_ph_atfork_parent(void);
void mtp_ph_atfork_child(void);

#endif /* MTP_BASE_PRIVHEAP_H */
