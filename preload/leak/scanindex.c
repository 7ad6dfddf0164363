/*
 * The leak scan's block lookup: which live block holds an address; this
 * file builds its index.
 *
 * Every word the scan reads is looked up, most of them not pointers into
 * the heap at all (a type pointer into a library's data, a length, text),
 * so a miss must be as cheap as a hit. The blocks are an array sorted by
 * address (leakscan.c copies them from the live table's walk). In front of
 * it, an index over 2 MiB regions: a small open-addressing table holds
 * every region that a block starts in or covers, and per region 513 counts,
 * the number of blocks that start below each of its 4 KiB pages (and below
 * the next region). A lookup (mtp_scan_lookup, inline in leakscan_int.h:
 * it runs for every word scanned) hashes the region (absent: not in any block),
 * reads two counts, and searches only the blocks that start in that page,
 * or takes the one before (a block that began earlier). The index costs
 * about 2 KiB per region that holds blocks, a few hundred KiB for a heap of
 * a few hundred MiB.
 *
 * Threads: writer thread only, while the other threads are stopped: every
 * array is mmap'd (mtp_mm_grow), nothing here calls malloc. When an array
 * cannot be had the lookup searches the whole block array instead: slower,
 * same answers.
 */
#include <string.h>
#include <sys/mman.h>

#include "base/util.h"
#include "leak/leakscan_int.h"

#define REGION_SHIFT MTP_SCAN_REGION_SHIFT
#define PAGES MTP_SCAN_PAGES
#define SLOT_EMPTY MTP_SCAN_SLOT_EMPTY
#define COVERED MTP_SCAN_COVERED
#define MAX_REGIONS (1u << 26)   /* more (a block of 128 TiB): no index */

/* The size of block i, one of 4 GiB or more. */
uint64_t mtp_scan_big_size(const mtp_scan_t *sc, size_t i)
{
    size_t lo = 0, hi = sc->nbig;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sc->big[mid].index < i)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sc->nbig && sc->big[lo].index == i ? sc->big[lo].size : MTP_SCAN_BIG;
}

/* Adds region to the list: counted (cover = COUNTED), or wholly inside
 * block `cover`. Callers add each region once. */
#define COUNTED UINT32_MAX
static int region_add(mtp_scan_index_t *x, uint64_t region, uint32_t cover)
{
    if (x->nregions == MAX_REGIONS ||
        mtp_mm_grow((void **)&x->list, &x->list_bytes, (x->nregions + 1) * sizeof(*x->list)) < 0)
        return -1;
    x->list[x->nregions++] = (mtp_scan_region_t){region, cover};
    x->ncounted += cover == COUNTED;
    return 0;
}

void mtp_scan_index_free(mtp_scan_t *sc)
{
    mtp_scan_index_t *x = &sc->index;
    if (x->list)
        munmap(x->list, x->list_bytes);
    if (x->keys)
        munmap(x->keys, x->keys_bytes);
    if (x->pos)
        munmap(x->pos, x->pos_bytes);
    if (x->pages)
        munmap(x->pages, x->pages_bytes);
    memset(x, 0, sizeof(*x));
}

int mtp_scan_index_build(mtp_scan_t *sc)
{
    mtp_scan_index_t *x = &sc->index;
    mtp_scan_index_free(sc);
    sc->lo = sc->hi = 0;
    if (sc->nblocks == 0)
        return 0;
    if (sc->nblocks >= COVERED)
        return -1;   /* the lookup searches the whole array */
    sc->lo = sc->addr[0];
    /* In increasing order: the region each block starts in and the one it
     * ends in get counts, those between are covered by it. Blocks do not
     * overlap, so a block's first region is never below the last added. */
    uint64_t last = SLOT_EMPTY;
    for (size_t i = 0; i < sc->nblocks; i++) {
        mtp_span_t b = mtp_scan_block(sc, i);
        uint64_t end = b.address + (b.size ? b.size : 1);
        if (end < b.address)
            goto fail;   /* cannot be a real block */
        if (end > sc->hi)
            sc->hi = end;
        uint64_t r0 = b.address >> REGION_SHIFT, r1 = (end - 1) >> REGION_SHIFT;
        if ((last == SLOT_EMPTY || r0 > last) && region_add(x, r0, COUNTED) < 0)
            goto fail;
        if (r1 > r0 + 1 && r1 - r0 > MAX_REGIONS)
            goto fail;
        for (uint64_t r = r0 + 1; r < r1; r++)
            if (region_add(x, r, (uint32_t)i) < 0)
                goto fail;
        if (r1 > r0 && region_add(x, r1, COUNTED) < 0)
            goto fail;
        last = r1;
    }
    size_t cap = 16;
    while (cap < 2 * x->nregions)
        cap *= 2;
    if (mtp_mm_grow((void **)&x->keys, &x->keys_bytes, cap * sizeof(*x->keys)) < 0 ||
        mtp_mm_grow((void **)&x->pos, &x->pos_bytes, cap * sizeof(*x->pos)) < 0 ||
        mtp_mm_grow((void **)&x->pages, &x->pages_bytes,
                    x->ncounted * (PAGES + 1) * sizeof(*x->pages)) < 0)
        goto fail;
    x->mask = cap - 1;
    memset(x->keys, 0xff, cap * sizeof(*x->keys));   /* SLOT_EMPTY */
    size_t j = 0;        /* blocks that start below the page considered */
    uint32_t pos = 0;    /* counted regions so far */
    for (size_t k = 0; k < x->nregions; k++) {
        const mtp_scan_region_t *e = &x->list[k];
        size_t i = mtp_scan_region_hash(e->region, x->mask);
        while (x->keys[i] != SLOT_EMPTY)
            i = (i + 1) & x->mask;
        x->keys[i] = e->region;
        if (e->cover != COUNTED) {
            x->pos[i] = COVERED | e->cover;
            continue;
        }
        x->pos[i] = pos;
        uint32_t *cnt = &x->pages[(size_t)pos++ * (PAGES + 1)];
        for (uint32_t p = 0; p <= PAGES; p++) {
            uint64_t page_start = (e->region << REGION_SHIFT) + ((uint64_t)p << MTP_SCAN_PAGE_SHIFT);
            while (j < sc->nblocks && sc->addr[j] < page_start)
                j++;
            cnt[p] = (uint32_t)j;
        }
    }
    munmap(x->list, x->list_bytes);   /* only the build needs it */
    x->list = NULL;
    x->list_bytes = 0;
    return 0;
fail:
    mtp_scan_index_free(sc);   /* the lookup searches the whole array */
    return -1;
}
