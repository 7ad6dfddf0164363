/* The writer's live table (address -> block), per-stack aggregates, totals and
 * the peak. Writer-only: see live.c for the invariants. */
#ifndef MTP_LIVE_H
#define MTP_LIVE_H

#include "base/thread.h"
#include "writer/livemap.h"

/* Figures that count blocks (live_blocks, alloc_blocks, peak_blocks, the
 * totals' *_blocks) are in units: one a block in exact mode; when sampling,
 * MTSAMPLE_UNIT a block (memtrail_sample.h: a sampled block stands for a
 * fraction of blocks more than one). mtp_live_blocks() turns units into
 * blocks; bytes are bytes (estimates, when sampling). */
typedef struct mtp_stack_stats {
    uint64_t live_bytes, live_blocks;
    uint64_t alloc_bytes, alloc_blocks;
    uint64_t peak_bytes, peak_blocks;   /* at the process-wide peak */
    uint32_t dirty;                     /* on the dirty list since the last peak */
    uint32_t mapped;                    /* a mapping (mmap domain) was made here */
} mtp_stack_stats_t;

void mtp_live_alloc(const mtp_event_t *ev);
void mtp_live_free(const mtp_event_t *ev);
void mtp_live_track(const mtp_event_t *ev);
void mtp_live_untrack(const mtp_event_t *ev);
/* An object reused from a free list: the live block of a Python domain at
 * ev->addr moves to stack ev->stack (its live figures with it). */
void mtp_live_retrace(const mtp_event_t *ev);
/* The mmap domain: UNMAP and REMAP_OLD (returns whether the range held a
 * recorded mapping), REMAP_NEW (`found`: what its REMAP_OLD returned). */
int mtp_live_unmap(const mtp_event_t *ev);
void mtp_live_remap(const mtp_event_t *ev, int found);
const mtsnap_totals_t *mtp_live_totals(void);   /* block figures in units */
uint64_t mtp_live_blocks(uint64_t units);
/* Allocations recorded since tracing began (when sampling: blocks sampled). */
uint64_t mtp_live_samples(void);
/* The highest total of live bytes (and the live blocks then, in blocks) since the
 * window last restarted; `restart`: the next window starts at the current
 * total. Exact: every allocation passes through here. */
void mtp_live_window(uint64_t *bytes, uint64_t *blocks, int restart);
/* Indexed by stack id; *count entries (ids beyond it have no stats). */
const mtp_stack_stats_t *mtp_live_stats(uint32_t *count);
/* A snapshot's session (live.c explains it): from _freeze(n) to _thaw(),
 * stat_frozen(id) gives the figures stack id had at the freeze (zero for
 * an id of n or more, or one without stats then), while events go on
 * changing the tables. */
void mtp_live_stats_freeze(uint32_t n);
const mtp_stack_stats_t *mtp_live_stat_frozen(uint32_t id);
void mtp_live_stats_thaw(void);
/* The live blocks: how many, and each by increasing address (counter 0);
 * mtp_lm_walk's contract. */
size_t mtp_live_count(void);
int mtp_live_walk(mtp_lm_visit_fn fn, void *arg);
/* The same in place (the leak scan's): mtp_lm_walk_pages, mtp_lm_wide. */
int mtp_live_pages(mtp_le_page_fn fn, void *arg);
size_t mtp_live_wide(mtsnap_block_t *out, size_t max);
/* Up to max live blocks at `from` or above, by address (writer/snapview.h's
 * source). Returns how many. */
size_t mtp_live_next(uint64_t from, mtsnap_block_t *out, size_t max);
/* Bytes the writer's tables occupy (for the benchmark's memory-per-block figure). */
size_t mtp_live_memory(void);
/* memtrail attach again: every table empty, as when tracing began. */
void mtp_live_reset(void);

#endif /* MTP_LIVE_H */
