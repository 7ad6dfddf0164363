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
 * Sampling (MEMTRAIL_SAMPLE): the table holds the sampled blocks, as they
 * are; every figure is an estimate, each block weighed by
 * include/memtrail_sample.h (size / p bytes, 1 / p blocks): `weigh` is
 * the one place that says what a block counts for, so a free takes away
 * exactly what its allocation added. Figures that count blocks are kept in
 * units (live.h) and turned into blocks when they leave this file's tables
 * (mtp_live_blocks).
 *
 * The mmap domain (hook/maphooks.c): its blocks are in the live map, as
 * every block, and in no figure here (neither the stacks' nor the totals,
 * the peak or the timeline: those are the heap's); a snapshot's BLOCKS
 * carries them, and a stack that made one has `mapped` set so that it is
 * written. They are exact when sampling. `maps` lists them by address,
 * start and end: an unmap ends the pages of every recorded mapping it
 * covers, and what is left of a mapping on either side stays a block of
 * its own with the mapping's stack (a munmap of the middle of one leaves
 * two). Invariant: `maps` holds exactly the mmap blocks of the map (every
 * removal of one goes through forget(), or through unmap_range() itself).
 *
 * A snapshot's per-stack figures (mtp_live_stats_freeze): the snapshot is
 * written while the writer applies events between its chunks, yet holds the
 * figures of the moment it began. Until the session ends, the first change
 * to a frozen stack's figures saves them first (`frozen`, by id), and the
 * snapshot reads a stack's saved figures or, when it has none, its current
 * ones, which have not changed since. Invariant, for every frozen id:
 * frozen holds it, or stats[id] is what it was at the freeze. Every change
 * to a stack's figures goes through stat_of(), or commit_peak(), which save
 * first: memory in the stacks changed during the session, where a copy of
 * every stack's figures (56 bytes each) was 1.3 MB of a traced `python3 -c
 * pass`'s peak.
 *
 * Memory comes from mmap/mremap, never from the traced heap.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "base/util.h"
#include "memtrail_sample.h"
#include "writer/live.h"
#include "writer/snapview.h"
#include "writer/window.h"

static mtp_livemap_t map;      /* writer-only */
static mtp_stack_stats_t *stats; /* writer-only, indexed by stack id */
static size_t stats_cap;         /* entries */
static uint32_t *dirty;          /* writer-only: stack ids changed since the last peak */
static size_t dirty_len, dirty_cap;
static mtsnap_totals_t totals;   /* writer-only */
/* writer-only: the highest live total since mtp_live_window() restarted it,
 * written on every allocation that raises it: a cache line of its own, away
 * from the locks the program's threads take beside it (MTP_FORKED) */
static MTP_FORKED _Alignas(64) struct {
    uint64_t bytes, blocks;
} win;
static uint64_t samples;         /* writer-only: allocations recorded (sampling: blocks sampled) */
typedef struct map_span {
    uint64_t start, end;
} map_span_t;
static map_span_t *maps;         /* writer-only: the mmap blocks, by address */
static size_t nmaps, maps_cap;   /* entries; bytes mapped */

/* What a block of `size` counts for: its bytes, and its blocks in units. */
static inline void weigh(uint64_t size, uint64_t *bytes, uint64_t *units)
{
    if (MTP_LIKELY(!mtp_cfg.sample)) {
        *bytes = size;
        *units = 1;
        return;
    }
    *bytes = mtsample_bytes(size, mtp_cfg.sample);
    *units = mtsample_units(size, mtp_cfg.sample);
}

uint64_t mtp_live_blocks(uint64_t units)
{
    return mtp_cfg.sample ? mtsample_blocks(units) : units;
}

/* ---- the figures of a snapshot's moment ---- */
typedef struct frozen_ent {
    uint32_t id1;                 /* stack id + 1; 0: an empty slot */
    uint32_t pad;
    mtp_stack_stats_t st;
} frozen_ent_t;
static uint32_t frozen_n;         /* writer-only: ids below this are frozen (0: no session) */
static frozen_ent_t *frozen;      /* writer-only: open addressing by id */
static size_t frozen_bytes, frozen_used;
static size_t frozen_cap;         /* slots, a power of two (0 before the first) */
#define FROZEN_MIN 256
#define FROZEN_KEEP_BYTES (256u << 10)   /* kept between sessions up to this */

static inline size_t frozen_home(uint32_t id, size_t mask)
{
    return (size_t)((id * MTP_HASH_MUL) >> 32) & mask;
}

static frozen_ent_t *frozen_find(uint32_t id)
{
    if (!frozen_cap)
        return NULL;
    size_t mask = frozen_cap - 1;
    for (size_t i = frozen_home(id, mask);; i = (i + 1) & mask) {
        if (frozen[i].id1 == id + 1)
            return &frozen[i];
        if (!frozen[i].id1)
            return NULL;
    }
}

static int frozen_grow(void)
{
    size_t ncap = frozen_cap ? frozen_cap * 2 : FROZEN_MIN;
    size_t bytes = 0;
    frozen_ent_t *t = NULL;
    if (mtp_mm_grow((void **)&t, &bytes, ncap * sizeof(*t)) < 0)
        return -ENOMEM;
    memset(t, 0, ncap * sizeof(*t));
    for (size_t i = 0; i < frozen_cap; i++) {
        if (!frozen[i].id1)
            continue;
        size_t j = frozen_home(frozen[i].id1 - 1, ncap - 1);
        while (t[j].id1)
            j = (j + 1) & (ncap - 1);
        t[j] = frozen[i];
    }
    if (frozen)
        munmap(frozen, frozen_bytes);
    frozen = t;
    frozen_bytes = bytes;
    frozen_cap = ncap;
    return 0;
}

/* Before stats[id] changes during a session: its figures of the moment saved. */
static MTP_NOINLINE void freeze_save(uint32_t id)
{
    static int warned;
    if (frozen_find(id))
        return;
    if ((frozen_used + 1) * 2 > frozen_cap && frozen_grow() < 0) {
        mtp_warn_once(&warned, "snapshot: out of memory: a stack's figures may be newer "
                               "than the snapshot's moment");
        return;
    }
    size_t mask = frozen_cap - 1, i = frozen_home(id, mask);
    while (frozen[i].id1)
        i = (i + 1) & mask;
    frozen[i].id1 = id + 1;
    frozen[i].st = stats[id];
    frozen_used++;
}

void mtp_live_stats_freeze(uint32_t n)
{
    uint32_t have = (uint32_t)(stats_cap / sizeof(*stats));
    frozen_n = n < have ? n : have;
    frozen_used = 0;
    if (frozen_cap)
        memset(frozen, 0, frozen_cap * sizeof(*frozen));
}

const mtp_stack_stats_t *mtp_live_stat_frozen(uint32_t id)
{
    static const mtp_stack_stats_t none;
    if (id >= frozen_n)
        return &none;
    const frozen_ent_t *e = frozen_used ? frozen_find(id) : NULL;
    return e ? &e->st : &stats[id];
}

MTP_FORK_CODE void mtp_live_stats_thaw(void)
{
    if (frozen_n)   /* else unchanged: no page written in a fork child */
        frozen_n = 0;
    if (frozen_used)
        frozen_used = 0;
    if (frozen_bytes > FROZEN_KEEP_BYTES) {
        munmap(frozen, frozen_bytes);
        frozen = NULL;
        frozen_bytes = frozen_cap = 0;
    }
}

static mtp_stack_stats_t *stat_of(uint32_t stack)
{
    if (MTP_UNLIKELY(stack < frozen_n))
        freeze_save(stack);
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
        if (MTP_UNLIKELY(dirty[i] < frozen_n))
            freeze_save(dirty[i]);
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
    /* The coarse clock lags by up to a tick: never before tracing began. */
    if (totals.peak_time_ns < mtp_start_ns)
        totals.peak_time_ns = mtp_start_ns;
}

/* ---- the mmap blocks' index ---- */
/* The first mapping that ends above a. */
static size_t maps_after(uint64_t a)
{
    size_t lo = 0, hi = nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (maps[mid].end > a)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int maps_add(uint64_t start, uint64_t end)
{
    if ((nmaps + 1) * sizeof(*maps) > maps_cap) {
        void *p = maps;
        if (mtp_mm_grow(&p, &maps_cap, (nmaps + 1) * sizeof(*maps)) < 0)
            return -ENOMEM;
        maps = p;
    }
    size_t i = maps_after(start);
    memmove(&maps[i + 1], &maps[i], (nmaps - i) * sizeof(*maps));
    maps[i] = (map_span_t){start, end};
    nmaps++;
    return 0;
}

static void maps_del(size_t i)
{
    memmove(&maps[i], &maps[i + 1], (nmaps - i - 1) * sizeof(*maps));
    nmaps--;
}

/* Takes b's weight out of the live figures; returns its units (an mmap
 * block has none: it only leaves the index). */
static uint64_t forget(const mtsnap_block_t *b)
{
    if (b->domain == MTSNAP_DOMAIN_MMAP) {
        size_t i = maps_after(b->address);
        if (i < nmaps && maps[i].start == b->address)
            maps_del(i);
        return 0;
    }
    uint64_t bytes, units;
    weigh(b->size, &bytes, &units);
    mtp_stack_stats_t *s = stat_of(b->stack);
    if (s) {
        s->live_bytes -= bytes;
        s->live_blocks -= units;
        mark_dirty(b->stack, s);
    }
    totals.live_bytes -= bytes;
    totals.live_blocks -= units;
    if (MTP_UNLIKELY(mtp_windows_open))
        mtp_window_removed(b->address, b->stack, bytes, units);
    return units;
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

/* ---- the mmap domain ---- */
/* A mapping [start, end) at `stack`, in the map and the index. */
static void map_piece(uint64_t start, uint64_t end, uint32_t stack)
{
    mtsnap_block_t b = {start, end - start, 0, stack, MTSNAP_DOMAIN_MMAP}, old;
    int r = map_insert(&b, &old);
    if (r < 0)
        return;   /* out of memory: not recorded */
    if (r == 1)   /* a block at that address we never saw go */
        totals.free_blocks += forget(&old);
    if (maps_add(start, end) < 0) {
        map_remove(start, &old);   /* keeps the invariant */
        return;
    }
    mtp_stack_stats_t *s = stat_of(stack);
    if (s)
        s->mapped = 1;
}

/* Ends the recorded mappings' pages in [a, a + len); what is left of each
 * on either side stays, with its stack. `look`: only whether any is there
 * (len 0: the one holding a). Returns whether one was. */
static int unmap_range(uint64_t a, uint64_t len, int look)
{
    uint64_t e = a + (len ? len : 1);
    if (e < a)
        e = UINT64_MAX;
    size_t i = maps_after(a);
    if (look || i == nmaps || maps[i].start >= e)
        return i < nmaps && maps[i].start < e;
    while (i < nmaps && maps[i].start < e) {
        map_span_t s = maps[i];
        mtsnap_block_t b;
        maps_del(i);
        if (map_remove(s.start, &b) != 1)
            continue;   /* cannot happen (the invariant) */
        if (s.start < a)
            map_piece(s.start, a, b.stack);
        if (s.end > e)
            map_piece(e, s.end, b.stack);
        i = maps_after(a);   /* the piece left of a ends at a */
    }
    return 1;
}

int mtp_live_unmap(const mtp_event_t *ev)
{
    return unmap_range(ev->addr, ev->size, ev->stack != 0);
}

void mtp_live_remap(const mtp_event_t *ev, int found)
{
    unmap_range(ev->addr, ev->size, 0);   /* MREMAP_FIXED replaces what was there */
    if (found)
        map_piece(ev->addr, ev->addr + ev->size, ev->stack);
}

void mtp_live_alloc(const mtp_event_t *ev)
{
    if (ev->domain == MTSNAP_DOMAIN_MMAP) {
        unmap_range(ev->addr, ev->size, 0);   /* MAP_FIXED: what it replaced */
        map_piece(ev->addr, ev->addr + ev->size, ev->stack);
        return;
    }
    mtsnap_block_t b = {ev->addr, ev->size, 0, ev->stack, ev->domain}, old;
    int r = map_insert(&b, &old);
    if (r < 0)
        return;   /* out of memory: the block is not recorded */
    if (r == 1) {
        /* A free we never saw (untraced context): that block is gone. */
        totals.free_blocks += forget(&old);
    }

    uint64_t bytes, units;
    weigh(ev->size, &bytes, &units);
    samples++;
    mtp_stack_stats_t *s = stat_of(ev->stack);
    if (s) {
        s->live_bytes += bytes;
        s->live_blocks += units;
        s->alloc_bytes += bytes;
        s->alloc_blocks += units;
        mark_dirty(ev->stack, s);
    }
    totals.live_bytes += bytes;
    totals.live_blocks += units;
    totals.alloc_bytes += bytes;
    totals.alloc_blocks += units;
    if (MTP_UNLIKELY(mtp_windows_open))
        mtp_window_added(ev->addr, ev->stack, bytes, units, ev->counter);
    if (totals.live_bytes > win.bytes) {
        win.bytes = totals.live_bytes;
        win.blocks = totals.live_blocks;
    }
    if (totals.live_bytes > totals.peak_bytes)
        commit_peak(ev->counter);
}

MTP_FORK_CODE void mtp_live_window(uint64_t *bytes, uint64_t *blocks, int restart)
{
    /* Frees alone lower the total: the window's highest is where it began. */
    *bytes = win.bytes;
    *blocks = mtp_live_blocks(win.blocks);
    if (restart) {
        win.bytes = totals.live_bytes;
        win.blocks = totals.live_blocks;
    }
}

void mtp_live_free(const mtp_event_t *ev)
{
    mtsnap_block_t old;
    if (map_remove(ev->addr, &old) == 1)
        totals.free_blocks += forget(&old);
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
        if (old.domain != MTSNAP_DOMAIN_MMAP) {   /* a mapping has no figures to undo */
            uint64_t bytes, units;
            weigh(old.size, &bytes, &units);
            mtp_stack_stats_t *s = stat_of(old.stack);
            if (s) {
                s->alloc_bytes -= bytes;
                s->alloc_blocks -= units;
            }
            totals.alloc_bytes -= bytes;
            totals.alloc_blocks -= units;
            samples--;
            if (MTP_UNLIKELY(mtp_windows_open))
                mtp_window_unallocated(old.address, old.stack, bytes, units);
        }
        forget(&old);
    }
    mtp_live_alloc(ev);
}

/* PyTraceMalloc_Untrack: removes the block only if it is in that domain. */
void mtp_live_untrack(const mtp_event_t *ev)
{
    mtsnap_block_t b;
    if (mtp_lm_find(&map, ev->addr, &b) == 1 && b.domain == ev->domain &&
        map_remove(ev->addr, &b) == 1)
        totals.free_blocks += forget(&b);
}

/* A free-list reuse (RETRACE): the block keeps its address, size and
 * domain and changes stacks. In the figures it is the end of the old
 * object and an object made at the new stack: its live bytes and blocks
 * move from the old stack to the new one (both marked dirty, so that the
 * per-stack figures at the next peak are right), the new stack's and the
 * totals' allocation figures count it, and the totals' frees count the old
 * one. The live total does not change, so neither do the peak nor the time
 * line. Only the Python domains' blocks move, as tracemalloc's traces (which
 * hold those three domains) do: an object another allocator made is not
 * CPython's to reuse. */
void mtp_live_retrace(const mtp_event_t *ev)
{
    mtsnap_block_t b, old;
    if (mtp_lm_find(&map, ev->addr, &b) != 1 || b.stack == ev->stack ||
        b.domain < MTSNAP_DOMAIN_PY_RAW || b.domain > MTSNAP_DOMAIN_PY_OBJ)
        return;
    uint32_t from = b.stack;
    b.stack = ev->stack;
    mtp_stack_stats_t *s = stat_of(ev->stack);
    if (!s || map_insert(&b, &old) < 0)
        return;   /* out of memory: the block stays where it was */
    uint64_t bytes, units;
    weigh(b.size, &bytes, &units);
    s->live_bytes += bytes;
    s->live_blocks += units;
    s->alloc_bytes += bytes;
    s->alloc_blocks += units;
    mark_dirty(ev->stack, s);
    totals.alloc_bytes += bytes;
    totals.alloc_blocks += units;
    totals.free_blocks += units;
    s = stat_of(from);   /* exists: it holds the block */
    if (s) {
        s->live_bytes -= bytes;
        s->live_blocks -= units;
        mark_dirty(from, s);
    }
    if (MTP_UNLIKELY(mtp_windows_open))
        mtp_window_moved(b.address, from, ev->stack, bytes, units);
}

const mtsnap_totals_t *mtp_live_totals(void)
{
    return &totals;
}

uint64_t mtp_live_samples(void)
{
    return samples;
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

int mtp_live_pages(mtp_le_page_fn fn, void *arg)
{
    return mtp_lm_walk_pages(&map, fn, arg);
}

size_t mtp_live_wide(mtsnap_block_t *out, size_t max)
{
    return mtp_lm_wide(&map, out, max);
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
    return mtp_lm_memory(&map) + stats_cap + dirty_cap + maps_cap;
}

void mtp_live_reset(void)
{
    mtp_lm_destroy(&map);
    if (stats)
        memset(stats, 0, stats_cap);   /* bytes (mtp_mm_grow) */
    dirty_len = 0;
    memset(&totals, 0, sizeof(totals));
    win.bytes = win.blocks = 0;
    samples = 0;
    nmaps = 0;
}
