/*
 * An index over a sorted array of addresses (the leak scan's live blocks,
 * the Python graph's objects): which element holds an address.
 *
 * The leak scan looks up every word it reads, most of them not pointers
 * into the heap at all (a type pointer into a library's data, a length,
 * text), so a miss must be as cheap as a hit. A search of the whole array
 * costs a cache miss per step. In front of it, this index over 2 MiB
 * regions: a small open-addressing table holds every region that an
 * element starts in, ends in or covers; a region that lies wholly inside
 * one element says which, and the others have counts, the number of
 * elements that start below each of its pages (and below the next region).
 * A lookup (mtp_addrindex_find, inline in the header) hashes the region
 * (absent: in no element), reads two counts, and searches only the elements
 * that start in that page, or takes the one before (an element that began
 * earlier). Pages are 256 bytes (32 KiB of counts per region: a search of a
 * few elements, in a cache line or two) unless the counts would exceed 2
 * bytes per element (64 KiB at least), then 1 KiB, then 4 KiB (2 KiB a
 * region): a sparse heap, of large blocks, keeps a small index, and a small
 * one does not fault in pages of counts for the few lookups it gets. Measured on
 * 3 M blocks of a Python heap: the scan took 0.48 to 0.50 s with 256-byte
 * pages, 0.60 s with 4 KiB ones.
 *
 * Threads: built, used and freed by one thread at a time; every array is
 * mmap'd (mtp_mm_grow), nothing here calls malloc (the leak scan builds it
 * while the other threads are stopped). When an array cannot be had, the
 * lookup searches the whole array instead: slower, same answers.
 */
#include <string.h>
#include <sys/mman.h>

#include "base/addrindex.h"

#define REGION_SHIFT MTP_AIX_REGION_SHIFT
#define PSHIFT_MIN 8             /* 256-byte pages where the counts fit the budget */
#define PSHIFT_MAX 12            /* 4 KiB pages at most */
#define BUDGET_PER_ELEMENT 2     /* bytes of counts per element... */
#define BUDGET_FLOOR 32768       /* ...counted for at least this many: 64 KiB */
#define EMPTY MTP_AIX_EMPTY
#define COVERED MTP_AIX_COVERED
#define COUNTED UINT32_MAX
#define MAX_REGIONS (1u << 26)   /* more (an element of 128 TiB): no index */
/* Fewer elements: no index, a binary search of at most 6 steps; the index's
 * arrays (64 KiB of counts at least) would cost a small process's snapshot
 * more to map, fill and unmap than its lookups take. A test seam
 * (addrindex.h). */
size_t mtp_aix_index_min = 64;

/* Adds region to the list: counted (cover = COUNTED), or wholly inside
 * element `cover`. Callers add each region once. */
static int region_add(mtp_addrindex_t *x, uint64_t region, uint32_t cover)
{
    if (x->nregions == MAX_REGIONS ||
        mtp_mm_grow((void **)&x->list, &x->list_bytes, (x->nregions + 1) * sizeof(*x->list)) < 0)
        return -1;
    x->list[x->nregions++] = (mtp_aix_region_t){region, cover};
    x->ncounted += cover == COUNTED;
    return 0;
}

static void unmap_arrays(mtp_addrindex_t *x)
{
    if (x->list)
        munmap(x->list, x->list_bytes);
    if (x->slots)
        munmap(x->slots, x->slots_bytes);
    if (x->pages)
        munmap(x->pages, x->pages_bytes);
    x->list = NULL;
    x->slots = NULL;
    x->pages = NULL;
    x->list_bytes = x->slots_bytes = x->pages_bytes = 0;
    x->nregions = x->ncounted = x->mask = 0;
}

void mtp_addrindex_free(mtp_addrindex_t *x)
{
    unmap_arrays(x);
    memset(x, 0, sizeof(*x));
}

int mtp_addrindex_build(mtp_addrindex_t *x, const uint64_t *addr, size_t n, unsigned stride,
                        uint64_t (*end_of)(const void *ctx, size_t i), const void *ctx)
{
    mtp_addrindex_free(x);
    x->addr = addr;
    x->n = n;
    x->stride = stride;
    if (n == 0)
        return 0;
    x->lo = addr[0];
    /* The span, and the regions, in increasing order: the region each
     * element starts in and the one it ends in get counts, those between
     * are covered by it. Elements do not overlap, so an element's first
     * region is never below the last one added. */
    int indexed = n >= mtp_aix_index_min && n < COVERED;
    uint64_t last = EMPTY;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = addr[i * stride];
        uint64_t end = end_of ? end_of(ctx, i) : a + 1;
        if (end <= a)
            end = a + 1 > a ? a + 1 : a;   /* size 0, or one that wraps */
        if (end > x->hi)
            x->hi = end;
        if (!indexed)
            continue;
        uint64_t r0 = a >> REGION_SHIFT, r1 = (end - 1) >> REGION_SHIFT;
        if ((last == EMPTY || r0 > last) && region_add(x, r0, COUNTED) < 0)
            indexed = 0;
        else if (r1 > r0 + 1 && r1 - r0 > MAX_REGIONS)
            indexed = 0;
        for (uint64_t r = r0 + 1; indexed && r < r1; r++)
            if (region_add(x, r, (uint32_t)i) < 0)
                indexed = 0;
        if (indexed && r1 > r0 && region_add(x, r1, COUNTED) < 0)
            indexed = 0;
        last = r1;
    }
    if (n < mtp_aix_index_min)
        return 0;   /* small: searched whole, by design */
    size_t cap = 16;
    while (indexed && cap < 2 * x->nregions)
        cap *= 2;
    /* The finest pages whose counts stay within the budget: a search then
     * covers the elements of 256 bytes in a dense heap, of 4 KiB in a
     * sparse one (a few regions' worth of elements each). */
    size_t budget = (n > BUDGET_FLOOR ? n : BUDGET_FLOOR) * BUDGET_PER_ELEMENT;
    x->pshift = PSHIFT_MIN;
    while (x->pshift < PSHIFT_MAX &&
           x->ncounted * ((1u << (REGION_SHIFT - x->pshift)) + 1) * sizeof(uint32_t) > budget)
        x->pshift += 2;
    x->npages = 1u << (REGION_SHIFT - x->pshift);
    if (!indexed ||
        mtp_mm_grow((void **)&x->slots, &x->slots_bytes, cap * sizeof(*x->slots)) < 0 ||
        mtp_mm_grow((void **)&x->pages, &x->pages_bytes,
                    x->ncounted * (x->npages + 1) * sizeof(*x->pages)) < 0) {
        unmap_arrays(x);   /* the lookup searches the whole array */
        return -1;
    }
    x->mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        x->slots[i].region = EMPTY;
    size_t j = 0;        /* elements that start below the page considered */
    uint32_t pos = 0;    /* counted regions so far */
    for (size_t k = 0; k < x->nregions; k++) {
        const mtp_aix_region_t *e = &x->list[k];
        size_t i = mtp_aix_hash(e->region, x->mask);
        while (x->slots[i].region != EMPTY)
            i = (i + 1) & x->mask;
        x->slots[i].region = e->region;
        if (e->cover != COUNTED) {
            x->slots[i].pos = COVERED | e->cover;
            continue;
        }
        x->slots[i].pos = pos;
        uint32_t *cnt = &x->pages[(size_t)pos++ * (x->npages + 1)];
        for (uint32_t p = 0; p <= x->npages; p++) {
            uint64_t page_start = (e->region << REGION_SHIFT) + ((uint64_t)p << x->pshift);
            while (j < n && addr[j * stride] < page_start)
                j++;
            cnt[p] = (uint32_t)j;
        }
    }
    munmap(x->list, x->list_bytes);   /* only the build needs it */
    x->list = NULL;
    x->list_bytes = 0;
    return 0;
}
