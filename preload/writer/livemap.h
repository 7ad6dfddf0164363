/* The live map: the writer's live blocks by address, about 9-12 bytes a
 * block, walked in address order with no copy and no sort. Writer-only:
 * see livemap.c for the layout and its invariants. A zeroed map is empty. */
#ifndef MTP_LIVEMAP_H
#define MTP_LIVEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/liveentry.h"
#include "memtrail_format.h"

#define MTP_LM_NCLASSES 32     /* bucket capacity classes, 1..512 entries */

typedef struct mtp_livemap {   /* fields are livemap.c's own */
    uint64_t *root;            /* directory over page numbers, 4 levels */
    uint64_t *leaf;            /* the last leaf node used ... */
    uint64_t leaf_key;         /* ... and its address >> 21 */
    size_t count;              /* live blocks, compact and wide */
    char *chunk;               /* the arena chunk being carved */
    size_t chunk_used;
    size_t chunk_filled;       /* its bytes filled ahead of use (mtp_populate) */
    void *chunks;              /* every chunk, linked through its first word */
    uint64_t *freel[MTP_LM_NCLASSES];   /* free buckets per class */
    mtsnap_block_t *wide;      /* blocks a compact entry cannot hold (hash) */
    size_t wide_cap, wide_used;
    size_t mapped;             /* bytes mmap'd */
} mtp_livemap_t;

/* Adds b (its counter is ignored). A block already at b->address is
 * replaced: then returns 1 and the old block in *old. 0 if new, -ENOMEM. */
int mtp_lm_insert(mtp_livemap_t *m, const mtsnap_block_t *b, mtsnap_block_t *old);
/* Removes the block at addr: 1 and the block in *out, or 0 if none. */
int mtp_lm_remove(mtp_livemap_t *m, uint64_t addr, mtsnap_block_t *out);
/* The block starting at addr: 1 and *out, or 0 (m: the lookup cache). */
int mtp_lm_find(mtp_livemap_t *m, uint64_t addr, mtsnap_block_t *out);
static inline size_t mtp_lm_count(const mtp_livemap_t *m) { return m->count; }

/* Calls fn on every block by increasing address (counter 0). Stops at the
 * first nonzero return of fn and returns it; else 0, or -ENOMEM. Allocates
 * nothing from the heap (the leak scan walks while threads are stopped). */
typedef int (*mtp_lm_visit_fn)(void *arg, const mtsnap_block_t *b);
int mtp_lm_walk(const mtp_livemap_t *m, mtp_lm_visit_fn fn, void *arg);
/* The same, from the first block at `from` or above (a resumable walk: the
 * wide blocks at `from` or above are copied and sorted on each call, on the
 * stack when they are few). */
int mtp_lm_walk_from(const mtp_livemap_t *m, uint64_t from, mtp_lm_visit_fn fn, void *arg);

/* The compact blocks in place, page by page by increasing address: fn gets
 * each page's base and its n entries (base/liveentry.h), sorted, n > 0.
 * Stops at fn's first nonzero return and returns it; else 0. The entries
 * stay where they are until the map next changes. */
int mtp_lm_walk_pages(const mtp_livemap_t *m, mtp_le_page_fn fn, void *arg);
/* The wide blocks, which the page walk leaves out: their number; when it
 * is max or less, they are in out[], by increasing address (counter 0). */
size_t mtp_lm_wide(const mtp_livemap_t *m, mtsnap_block_t *out, size_t max);

size_t mtp_lm_memory(const mtp_livemap_t *m);   /* bytes mapped */
void mtp_lm_destroy(mtp_livemap_t *m);          /* unmaps everything; the map is empty */

#endif /* MTP_LIVEMAP_H */
