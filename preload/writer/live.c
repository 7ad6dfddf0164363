/*
 * The live table and the per-stack aggregates. Writer-only: every function
 * here runs on the writer thread (or in a fork child before its writer
 * starts), so nothing is atomic.
 *
 * Live table: the live map (livemap.c), blocks by address, compact. A
 * block's allocation event number is not kept (snapshots write 0).
 *
 * Peak: the process-wide peak is the highest total of live bytes. The live
 * bytes per stack at that moment are kept lazily: every stack whose live
 * figures changed since the last peak is on the dirty list; when the total
 * passes the peak, only those stacks copy live -> peak. A stack not on the
 * list has not changed since the previous peak, so its copy is still right.
 * Each event adds at most one stack to the list: O(1) amortized.
 *
 * Memory comes from mmap/mremap, never from the traced heap.
 */
#include <time.h>

#include "base/util.h"
#include "writer/live.h"
#include "writer/snapview.h"

static mtp_livemap_t map;      /* writer-only */
static mtp_stack_stats_t *stats; /* writer-only, indexed by stack id */
static size_t stats_cap;         /* entries */
static uint32_t *dirty;          /* writer-only: stack ids changed since the last peak */
static size_t dirty_len, dirty_cap;
static mtsnap_totals_t totals;   /* writer-only */
/* writer-only: the highest live total since mtp_live_window() restarted it */
static uint64_t win_bytes, win_blocks;


static mtp_stack_stats_t *stat_of(uint32_t stack)
{
    if ((size_t)stack >= stats_cap / sizeof(*stats)) {
        void *p = stats;
        if (mtp_mm_grow(&p, &stats_cap, ((size_t)stack + 1) * sizeof(*stats)) < 0)
            return NULL;
        stats = p;
    }
    return &stats[stack];
}

static void mark_dirty(uint32_t stack, mtp_stack_stats_t *s)
{
    if (s->dirty)
        return;
    if (dirty_len * sizeof(*dirty) >= dirty_cap) {
        void *p = dirty;
        if (mtp_mm_grow(&p, &dirty_cap, (dirty_len + 1) * sizeof(*dirty)) < 0)
            return;  /* out of memory: the peak per stack may lag; totals stay exact */
        dirty = p;
    }
    s->dirty = 1;
    dirty[dirty_len++] = stack;
}

static void commit_peak(uint64_t counter)
{
    for (size_t i = 0; i < dirty_len; i++) {
        mtp_stack_stats_t *s = &stats[dirty[i]];
        s->peak_bytes = s->live_bytes;
        s->peak_blocks = s->live_blocks;
        s->dirty = 0;
    }
    dirty_len = 0;
    totals.peak_bytes = totals.live_bytes;
    totals.peak_blocks = totals.live_blocks;
    totals.peak_counter = counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    totals.peak_time_ns = (uint64_t)ts.tv_sec * MTP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void forget(const mtsnap_block_t *b)
{
    mtp_stack_stats_t *s = stat_of(b->stack);
    if (s) {
        s->live_bytes -= b->size;
        s->live_blocks--;
        mark_dirty(b->stack, s);
    }
    totals.live_bytes -= b->size;
    totals.live_blocks--;
}

/* Every change of the map goes through these two, which tell an open
 * snapshot view (writer/snapview.c) so that it keeps the set it began with. */
static int map_insert(const mtsnap_block_t *b, mtsnap_block_t *old)
{
    int r = mtp_lm_insert(&map, b, old);
    if (MTP_UNLIKELY(mtp_snapview_on) && r >= 0) {
        if (r == 1)
            mtp_snapview_removed(old);
        mtp_snapview_added(b->address);
    }
    return r;
}

static int map_remove(uint64_t addr, mtsnap_block_t *out)
{
    int r = mtp_lm_remove(&map, addr, out);
    if (MTP_UNLIKELY(mtp_snapview_on) && r == 1)
        mtp_snapview_removed(out);
    return r;
}

void mtp_live_alloc(const mtp_event_t *ev)
{
    mtsnap_block_t b = {ev->addr, ev->size, 0, ev->stack, ev->domain}, old;
    int r = map_insert(&b, &old);
    if (r < 0)
        return;   /* out of memory: the block is not recorded */
    if (r == 1) {
        /* A free we never saw (untraced context): that block is gone. */
        forget(&old);
        totals.free_blocks++;
    }

    mtp_stack_stats_t *s = stat_of(ev->stack);
    if (s) {
        s->live_bytes += ev->size;
        s->live_blocks++;
        s->alloc_bytes += ev->size;
        s->alloc_blocks++;
        mark_dirty(ev->stack, s);
    }
    totals.live_bytes += ev->size;
    totals.live_blocks++;
    totals.alloc_bytes += ev->size;
    totals.alloc_blocks++;
    if (totals.live_bytes > win_bytes) {
        win_bytes = totals.live_bytes;
        win_blocks = totals.live_blocks;
    }
    if (totals.live_bytes > totals.peak_bytes)
        commit_peak(ev->counter);
}

void mtp_live_window(uint64_t *bytes, uint64_t *blocks, int restart)
{
    /* Frees alone lower the total: the window's highest is where it began. */
    *bytes = win_bytes;
    *blocks = win_blocks;
    if (restart) {
        win_bytes = totals.live_bytes;
        win_blocks = totals.live_blocks;
    }
}

void mtp_live_free(const mtp_event_t *ev)
{
    mtsnap_block_t old;
    if (map_remove(ev->addr, &old) == 1) {
        forget(&old);
        totals.free_blocks++;
    }
    /* else not ours: allocated before tracing began or in an untraced context */
}

/* PyTraceMalloc_Track: the block (usually just malloc'd, so already live as
 * a native block) now belongs to an extension domain. It is counted once:
 * the native allocation is undone, not freed, and the block re-added with
 * the Track call's domain, stack and size. */
void mtp_live_track(const mtp_event_t *ev)
{
    mtsnap_block_t old;
    if (map_remove(ev->addr, &old) == 1) {
        mtp_stack_stats_t *s = stat_of(old.stack);
        if (s) {
            s->alloc_bytes -= old.size;
            s->alloc_blocks--;
        }
        totals.alloc_bytes -= old.size;
        totals.alloc_blocks--;
        forget(&old);
    }
    mtp_live_alloc(ev);
}

/* PyTraceMalloc_Untrack: removes the block only if it is in that domain. */
void mtp_live_untrack(const mtp_event_t *ev)
{
    mtsnap_block_t b;
    if (mtp_lm_find(&map, ev->addr, &b) == 1 && b.domain == ev->domain &&
        map_remove(ev->addr, &b) == 1) {
        forget(&b);
        totals.free_blocks++;
    }
}

const mtsnap_totals_t *mtp_live_totals(void)
{
    return &totals;
}

const mtp_stack_stats_t *mtp_live_stats(uint32_t *count)
{
    *count = (uint32_t)(stats_cap / sizeof(*stats));
    return stats;
}

size_t mtp_live_count(void)
{
    return mtp_lm_count(&map);
}

int mtp_live_walk(mtp_lm_visit_fn fn, void *arg)
{
    return mtp_lm_walk(&map, fn, arg);
}

typedef struct collect {
    mtsnap_block_t *out;
    size_t n, max;
} collect_t;

static int collect(void *arg, const mtsnap_block_t *b)
{
    collect_t *c = arg;
    c->out[c->n++] = *b;
    return c->n == c->max;   /* 1 stops the walk */
}

size_t mtp_live_next(uint64_t from, mtsnap_block_t *out, size_t max)
{
    collect_t c = {out, 0, max};
    if (max)
        mtp_lm_walk_from(&map, from, collect, &c);
    return c.n;
}

size_t mtp_live_memory(void)
{
    return mtp_lm_memory(&map) + stats_cap + dirty_cap;
}
