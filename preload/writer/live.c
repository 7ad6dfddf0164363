/*
 * The live table and the per-stack aggregates. Writer-only: every function
 * here runs on the writer thread (or in a fork child before its writer
 * starts), so nothing is atomic.
 *
 * Live table: open addressing keyed by address (0 = empty slot), linear
 * probing, backward-shift deletion (no tombstones), load kept under 0.7.
 * Entries are mtsnap_block_t, the snapshot's own block layout.
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
#include <string.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <time.h>

#include "base/util.h"
#include "writer/live.h"

#define LIVE_MIN_SLOTS 65536   /* first size of the live table (a power of two) */

static mtsnap_block_t *table;   /* writer-only */
static size_t table_cap;        /* power of two */
static size_t table_used;
static mtp_stack_stats_t *stats; /* writer-only, indexed by stack id */
static size_t stats_cap;         /* entries */
static uint32_t *dirty;          /* writer-only: stack ids changed since the last peak */
static size_t dirty_len, dirty_cap;
static mtsnap_totals_t totals;   /* writer-only */


static inline size_t slot_of(uint64_t addr, size_t mask)
{
    return (size_t)(((addr >> 4) * MTP_HASH_MUL) >> 20) & mask;
}

static int table_rehash(size_t cap)
{
    mtsnap_block_t *old = table;
    size_t old_cap = table_cap;
    mtsnap_block_t *nt = mmap(NULL, cap * sizeof(*nt), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (nt == MAP_FAILED)
        return -ENOMEM;
    size_t mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].address)
            continue;
        size_t j = slot_of(old[i].address, mask);
        while (nt[j].address)
            j = (j + 1) & mask;
        nt[j] = old[i];
    }
    if (old)
        munmap(old, old_cap * sizeof(*old));
    table = nt;
    table_cap = cap;
    return 0;
}

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

/* Remove the entry at slot i, shifting back the entries of its probe run. */
static void table_delete(size_t i)
{
    size_t mask = table_cap - 1, j = i;
    for (;;) {
        table[i].address = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!table[j].address)
                return;
            size_t home = slot_of(table[j].address, mask);
            /* j's entry may move to i if its home is not in (i, j] cyclically */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        table[i] = table[j];
        i = j;
    }
}

void mtp_live_alloc(const mtp_event_t *ev)
{
    if (MTP_UNLIKELY((table_used + 1) * 10 > table_cap * 7)) {
        if (table_rehash(table_cap ? table_cap * 2 : LIVE_MIN_SLOTS) < 0)
            return;
    }
    size_t mask = table_cap - 1, i = slot_of(ev->addr, mask);
    while (table[i].address && table[i].address != ev->addr)
        i = (i + 1) & mask;
    if (table[i].address) {
        /* A free we never saw (untraced context): that block is gone. */
        forget(&table[i]);
        totals.free_blocks++;
    } else {
        table_used++;
    }
    table[i] = (mtsnap_block_t){ev->addr, ev->size, ev->counter, ev->stack, ev->domain};

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
    if (totals.live_bytes > totals.peak_bytes)
        commit_peak(ev->counter);
}

static ssize_t table_find(uint64_t addr)
{
    if (!table_cap)
        return -1;
    size_t mask = table_cap - 1, i = slot_of(addr, mask);
    while (table[i].address) {
        if (table[i].address == addr)
            return (ssize_t)i;
        i = (i + 1) & mask;
    }
    return -1;
}

/* The block at slot i leaves the table and the live figures. */
static void drop_at(size_t i)
{
    forget(&table[i]);
    table_delete(i);
    table_used--;
}

static void remove_at(size_t i)   /* a free */
{
    drop_at(i);
    totals.free_blocks++;
}

void mtp_live_free(const mtp_event_t *ev)
{
    ssize_t i = table_find(ev->addr);
    if (i >= 0)
        remove_at((size_t)i);
    /* else not ours: allocated before tracing began or in an untraced context */
}

/* PyTraceMalloc_Track: the block (usually just malloc'd, so already live as
 * a native block) now belongs to an extension domain. It is counted once:
 * the native allocation is undone, not freed, and the block re-added with
 * the Track call's domain, stack and size. */
void mtp_live_track(const mtp_event_t *ev)
{
    ssize_t i = table_find(ev->addr);
    if (i >= 0) {
        const mtsnap_block_t *b = &table[i];
        mtp_stack_stats_t *s = stat_of(b->stack);
        if (s) {
            s->alloc_bytes -= b->size;
            s->alloc_blocks--;
        }
        totals.alloc_bytes -= b->size;
        totals.alloc_blocks--;
        drop_at((size_t)i);
    }
    mtp_live_alloc(ev);
}

/* PyTraceMalloc_Untrack: removes the block only if it is in that domain. */
void mtp_live_untrack(const mtp_event_t *ev)
{
    ssize_t i = table_find(ev->addr);
    if (i >= 0 && table[i].domain == ev->domain)
        remove_at((size_t)i);
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

const mtsnap_block_t *mtp_live_table(size_t *capacity, size_t *used)
{
    *capacity = table_cap;
    *used = table_used;
    return table;
}

size_t mtp_live_memory(void)
{
    return table_cap * sizeof(*table) + stats_cap + dirty_cap;
}
