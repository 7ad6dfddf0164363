/*
 * The snapshot's view of the live blocks. A snapshot is written while the
 * writer keeps draining the rings (between chunks of the file it applies
 * the events published meanwhile), so no traced thread waits for a snapshot
 * to be written; yet the file must hold the live set S0 of the moment the
 * snapshot began. The view gives S0 back in address order, whatever the live
 * table did since.
 *
 * Thread: writer-only, like the live table; nothing here is atomic. A
 * session runs from mtp_snapview_begin() to mtp_snapview_end().
 *
 * Invariant, for the part of the address space not read yet:
 *     S0 ∩ [cursor, ∞) = (live ∩ [cursor, ∞)  minus the blocks at `added`)
 *                        ∪ removed
 *   cursor   the lowest address not read yet (reads go up in address order);
 *   added    addresses at or above the cursor that were given a block since
 *            the session began (an open-addressing set);
 *   removed  the blocks of S0 at or above the cursor that left the live table
 *            since (a min-heap by address).
 * The live table reports each change before making it; a change below the
 * cursor is ignored (the view has read past it). A block that appears and
 * leaves again during the session leaves no trace (it is only in `added`,
 * and leaving takes it out), so the memory held is bounded by the net
 * changes above the cursor, never by the events.
 *
 * A read takes one chunk from the live table and merges it with the heap
 * (and the next chunk, when every block of one was added during the
 * session); no event is applied within a read, so a chunk cannot go stale.
 * Memory comes from mmap, never from the traced heap.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "base/util.h"
#include "writer/snapview.h"

#define CHUNK 512   /* blocks taken from the live table per read, at most */

int mtp_snapview_on;

static mtp_snapview_source_fn *source;
static uint64_t cursor;        /* lowest address not read yet */
static int done;               /* the whole address space has been read */
static int failed;             /* memory ran out: the view is not exact */

static uint64_t *added;        /* open addressing, 0 = empty slot */
static size_t added_bytes, added_used;
static size_t added_cap;       /* slots, a power of two (0 before the first) */

static mtsnap_block_t *heap;   /* removed blocks, a min-heap by address */
static size_t heap_bytes, heap_len;

static mtsnap_block_t *chunk;  /* one read's blocks from the live table */
static size_t chunk_bytes;

/* ---- the set of added addresses ---- */
static inline size_t home_of(uint64_t a, size_t mask)
{
    return (size_t)(((a >> 4) * MTP_HASH_MUL) >> 24) & mask;
}

static size_t added_find(uint64_t a)
{
    size_t mask = added_cap - 1, i = home_of(a, mask);
    while (added[i] && added[i] != a)
        i = (i + 1) & mask;
    return i;
}

static int added_grow(void)
{
    uint64_t *old = added;
    size_t old_cap = added_cap, old_bytes = added_bytes;
    size_t cap = old_cap ? old_cap * 2 : 1024;
    void *p = NULL;
    size_t bytes = 0;
    if (mtp_mm_grow(&p, &bytes, cap * sizeof(uint64_t)) < 0)
        return -ENOMEM;
    added = p;
    added_bytes = bytes;
    added_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            added[added_find(old[i])] = old[i];
    if (old)
        munmap(old, old_bytes);
    return 0;
}

static void added_insert(uint64_t a)
{
    if ((added_used + 1) * 4 > added_cap * 3 && added_grow() < 0) {
        failed = 1;
        return;
    }
    size_t i = added_find(a);
    if (!added[i]) {
        added[i] = a;
        added_used++;
    }
}

/* Takes `a` out of the set; returns whether it was there. */
static int added_take(uint64_t a)
{
    if (!added_cap)
        return 0;
    size_t mask = added_cap - 1, i = added_find(a);
    if (!added[i])
        return 0;
    /* backward-shift deletion: no tombstones */
    for (size_t j = i;;) {
        added[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!added[j]) {
                added_used--;
                return 1;
            }
            if (mtp_probe_fills_hole(i, j, home_of(added[j], mask)))
                break;
        }
        added[i] = added[j];
        i = j;
    }
}

static int added_has(uint64_t a)
{
    return added_cap && added[added_find(a)] == a;
}

/* ---- the heap of removed blocks ---- */
static void heap_push(const mtsnap_block_t *b)
{
    if ((heap_len + 1) * sizeof(*heap) > heap_bytes &&
        mtp_mm_grow((void **)&heap, &heap_bytes, (heap_len + 1) * sizeof(*heap)) < 0) {
        failed = 1;
        return;
    }
    size_t i = heap_len++;
    while (i) {
        size_t up = (i - 1) / 2;
        if (heap[up].address <= b->address)
            break;
        heap[i] = heap[up];
        i = up;
    }
    heap[i] = *b;
}

static mtsnap_block_t heap_pop(void)
{
    mtsnap_block_t top = heap[0], last = heap[--heap_len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= heap_len)
            break;
        if (c + 1 < heap_len && heap[c + 1].address < heap[c].address)
            c++;
        if (last.address <= heap[c].address)
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (heap_len)
        heap[i] = last;
    return top;
}

/* ---- the session ---- */
void mtp_snapview_begin(mtp_snapview_source_fn *src)
{
    mtp_snapview_end();
    source = src;
    cursor = 0;
    done = failed = 0;
    mtp_snapview_on = 1;
}

MTP_FORK_CODE void mtp_snapview_end(void)
{
    if (!added && !heap && !chunk && !mtp_snapview_on)
        return;   /* nothing to clear (a fork child writes no page for it) */
    if (added)
        munmap(added, added_bytes);
    if (heap)
        munmap(heap, heap_bytes);
    if (chunk)
        munmap(chunk, chunk_bytes);
    added = NULL;
    heap = chunk = NULL;
    added_bytes = added_cap = added_used = heap_bytes = heap_len = chunk_bytes = 0;
    mtp_snapview_on = 0;
}

void mtp_snapview_added(uint64_t address)
{
    if (!done && address >= cursor)
        added_insert(address);
}

void mtp_snapview_removed(const mtsnap_block_t *b)
{
    if (done || b->address < cursor)
        return;
    if (!added_take(b->address))   /* appeared during the session: no trace left */
        heap_push(b);              /* a block of S0 */
}

long mtp_snapview_next(mtsnap_block_t *out, size_t max)
{
    if (failed)
        return -ENOMEM;
    if (done || !max)
        return 0;
    size_t want = max < CHUNK ? max : CHUNK, k = 0;
    if (mtp_mm_grow((void **)&chunk, &chunk_bytes, want * sizeof(*chunk)) < 0) {
        failed = 1;
        return -ENOMEM;
    }
    for (;;) {
        size_t n = source(cursor, chunk, want);
        /* The live table has nothing between the chunk's last address and
         * `hi` that was not in the chunk; above it, the next read looks
         * again. */
        uint64_t hi = n == want ? chunk[n - 1].address : UINT64_MAX;
        size_t i = 0;
        while (k < max) {
            while (i < n && added_has(chunk[i].address))
                i++;   /* given its block after the session began */
            int live = i < n;
            int rem = heap_len && heap[0].address <= hi;
            if (!live && !rem)
                break;
            if (live && (!rem || chunk[i].address < heap[0].address))
                out[k++] = chunk[i++];
            else
                out[k++] = heap_pop();
        }
        /* A full chunk of blocks all given during the session, and nothing
         * removed below its end: S0 has nothing up to `hi`, read on above. */
        if (k > 0 || hi == UINT64_MAX)
            break;
        cursor = hi + 1;
    }
    if (k == 0) {
        done = 1;
        return 0;
    }
    uint64_t last = out[k - 1].address;
    if (last == UINT64_MAX)
        done = 1;
    else
        cursor = last + 1;
    /* Entries of `added` below the cursor are never looked up again; they
     * stay until the session ends (bounded by the net changes). */
    return (long)k;
}

size_t mtp_snapview_memory(void)
{
    return added_bytes + heap_bytes + chunk_bytes;
}
