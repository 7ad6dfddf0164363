/* The leak scan: stops the other threads, classifies every live block as
 * memcheck does and, in a Python process, marks the objects memory reaches. */
#ifndef MTP_LEAKSCAN_H
#define MTP_LEAKSCAN_H

#include "base/thread.h"
#include "leak/stopworld.h"
#include "python/pygraph.h"

/* A scan's result. Every array is mmap'd (the scan runs while other threads
 * may hold the allocator's locks) and freed by mtp_leakscan_free. */
typedef struct mtp_leakscan {
    size_t nblocks;
    uint8_t *kind;              /* enum mtsnap_leak_kind, one per live block in the
                                   walk's order (by address) */
    mtsnap_leak_header_t hdr;
    size_t kind_bytes;
} mtp_leakscan_t;

/* From mtp_init (the loader lock may be taken here, never during a scan):
 * finds the static TLS size and memtrail's own module; mtp_stopworld_init. */
void mtp_leakscan_init(void);

/* The writer's live blocks: how many, and a walk calling fn on each by
 * increasing address (stops at fn's first nonzero return and returns it;
 * else 0 or -errno). The walk allocates nothing from the heap. */
typedef int (*mtp_block_visit_fn)(void *arg, const mtsnap_block_t *b);
typedef struct mtp_block_source {
    size_t (*count)(void);
    int (*walk)(mtp_block_visit_fn fn, void *arg);
} mtp_block_source_t;

/* Writer thread, writer lock held. `settle` applies every event published
 * so far and returns 1 when no event number is still in flight; `live`
 * gives the live blocks once settled. With a graph, its nodes' REACHED flags
 * are set too. `held` (or NULL): a thread that holds itself still for the
 * scan, all signals blocked, waiting for it in memtrail's code, with its
 * registers and stack pointer as they were before it began to wait (the
 * stack below sp is memtrail's, not scanned): it is never asked to stop,
 * and when it is the only thread besides the caller, no thread is stopped.
 * Returns 0 or -errno. */
int mtp_leakscan_run(mtp_leakscan_t *ls, mtp_pygraph_t *graph, int (*settle)(void),
                     const mtp_block_source_t *live, const mtp_stopped_t *held);
void mtp_leakscan_free(mtp_leakscan_t *ls);

#endif /* MTP_LEAKSCAN_H */
