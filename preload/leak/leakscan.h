/* The leak scan: stops the other threads, classifies every live block as
 * memcheck does and, in a Python process, marks the objects memory reaches. */
#ifndef MTP_LEAKSCAN_H
#define MTP_LEAKSCAN_H

#include "base/thread.h"
#include "python/pygraph.h"

/* A scan's result. Every array is mmap'd (the scan runs while other threads
 * may hold the allocator's locks) and freed by mtp_leakscan_free. */
typedef struct mtp_leakscan {
    mtsnap_block_t *blocks;     /* the live table, sorted by address */
    size_t nblocks;
    uint8_t *kind;              /* enum mtsnap_leak_kind, one per block */
    mtsnap_leak_header_t hdr;
    size_t map_bytes;           /* bytes mapped for blocks */
    size_t kind_bytes;
} mtp_leakscan_t;

/* From mtp_init (the loader lock may be taken here, never during a scan):
 * finds the static TLS size and memtrail's own module. */
void mtp_leakscan_init(void);

/* The writer's live table: `capacity` slots, empty ones have address 0. */
typedef const mtsnap_block_t *(*mtp_table_fn)(size_t *capacity, size_t *used);

/* Writer thread, writer lock held. `settle` applies every event published
 * so far and returns 1 when no event number is still in flight; `table_of`
 * gives the live table once settled. With a graph, its nodes' REACHED flags
 * are set too. Returns 0 or -errno. */
int mtp_leakscan_run(mtp_leakscan_t *ls, mtp_pygraph_t *graph, int (*settle)(void),
                     mtp_table_fn table_of);
void mtp_leakscan_free(mtp_leakscan_t *ls);

/* Signal used to stop threads during a scan. */
int mtp_leakscan_signal(void);

#endif /* MTP_LEAKSCAN_H */
