/* The snapshot's view of the live blocks: the set as it was when a snapshot
 * began, read in address order while the writer goes on applying events.
 * Writer-only: see snapview.c for the invariants. */
#ifndef MTP_SNAPVIEW_H
#define MTP_SNAPVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "memtrail_format.h"

/* Up to `max` live blocks whose address is `from` or above, in increasing
 * address order, as the live table holds them now. Returns how many. */
typedef size_t mtp_snapview_source_fn(uint64_t from, mtsnap_block_t *out, size_t max);

/* Set while a session is open: the live table tells the view about every
 * change (mtp_snapview_added / mtp_snapview_removed) before making it. */
extern int mtp_snapview_on;   /* writer-only */

/* Opens a session on the live set as it is now. */
void mtp_snapview_begin(mtp_snapview_source_fn *source);
/* Closes it and returns its memory. Safe to call when none is open. */
void mtp_snapview_end(void);

/* The next blocks of the view, in increasing address order; 0 at the end.
 * Returns -ENOMEM (the view cannot be kept exact) once memory ran out. */
long mtp_snapview_next(mtsnap_block_t *out, size_t max);

/* From the live table, before the change, only while mtp_snapview_on:
 * a block is about to appear at `address`, or block `b` is about to leave. */
void mtp_snapview_added(uint64_t address);
void mtp_snapview_removed(const mtsnap_block_t *b);

/* Bytes the open session holds (for the benchmark's memory figures). */
size_t mtp_snapview_memory(void);

#endif /* MTP_SNAPVIEW_H */
