/* The leak scan: stops the other threads, classifies every live block as
 * memcheck does and, in a Python process, marks the objects memory reaches. */
#ifndef MTP_LEAKSCAN_H
#define MTP_LEAKSCAN_H

#include "base/liveentry.h"
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

/* The writer's live blocks, read in place (no copy): how many; the pages
 * of compact ones by increasing address, each page's entries
 * (base/liveentry.h) sorted, fn called once per page with n > 0 (stops at
 * fn's first nonzero return and returns it; else 0); and the wide blocks,
 * which the pages leave out (their number; when it is max or less, they
 * are in out[] by increasing address). Nothing may change the blocks while
 * the scan runs: the entries are read where they are. Neither allocates
 * from the heap. */
typedef struct mtp_block_source {
    size_t (*count)(void);
    int (*pages)(mtp_le_page_fn fn, void *arg);
    size_t (*wide)(mtsnap_block_t *out, size_t max);
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
