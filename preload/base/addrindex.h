/* An index over a sorted array of addresses: which element's span holds an
 * address, in a hash probe and a search of one page's elements
 * (base/addrindex.c explains it). Used by the leak scan for every word it
 * reads, and by the snapshot writer to number the Python graph's edges.
 * Build and free: any one thread; the index allocates with mmap only (the
 * leak scan builds it while the other threads are stopped). */
#ifndef MTP_BASE_ADDRINDEX_H
#define MTP_BASE_ADDRINDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"

#define MTP_AIX_REGION_SHIFT 21   /* 2 MiB regions */
#define MTP_AIX_EMPTY UINT64_MAX
#define MTP_AIX_COVERED 0x80000000u

typedef struct mtp_aix_region {
    uint64_t region;           /* address >> 21 */
    uint32_t cover;            /* the element it lies inside, or UINT32_MAX: counted */
} mtp_aix_region_t;

/* A region's slot: the region and what the lookup needs of it, on one
 * line (a lookup's first miss). */
typedef struct mtp_aix_slot {
    uint64_t region;           /* address >> 21, MTP_AIX_EMPTY = empty */
    uint32_t pos;              /* the counted region's position, or COVERED | element */
    uint32_t unused;
} mtp_aix_slot_t;

typedef struct mtp_addrindex {
    const uint64_t *addr;      /* the sorted array (borrowed) */
    size_t n;
    unsigned stride;           /* element i's address: addr[i * stride] */
    uint64_t lo, hi;           /* the first start, the highest end */
    mtp_aix_slot_t *slots;     /* open addressing by region; NULL: no index */
    uint32_t *pages;           /* per counted region: npages + 1 counts of elements below its pages */
    unsigned pshift;           /* pages of 1 << pshift bytes: 256 B to 4 KiB */
    uint32_t npages;           /* per region */
    mtp_aix_region_t *list;    /* the build's list, in address order */
    size_t mask, nregions, ncounted;
    size_t slots_bytes, pages_bytes, list_bytes;
} mtp_addrindex_t;

/* Indexes n elements (increasing, not overlapping) whose addresses are
 * addr[i * stride]: a plain array (stride 1), or the first word of each of
 * an array of structures (the leak scan's pages, leak/leakscan_int.h). end(ctx, i) is
 * element i's end (exclusive); NULL: each element is one byte. 0, or -1
 * when memory could not be had: the index then answers through a search of
 * the whole array, with the same answers. Fewer than mtp_aix_index_min
 * elements are searched so (0, no index made). */
extern size_t mtp_aix_index_min;   /* 64; a test seam: 0 indexes every array */
int mtp_addrindex_build(mtp_addrindex_t *x, const uint64_t *addr, size_t n, unsigned stride,
                        uint64_t (*end)(const void *ctx, size_t i), const void *ctx);
void mtp_addrindex_free(mtp_addrindex_t *x);

static inline size_t mtp_aix_hash(uint64_t region, size_t mask)
{
    return (size_t)((region * MTP_HASH_MUL) >> 32) & mask;
}

/* The last index in [lo, hi) whose address (v[i * stride]) is a or below
 * (that of lo is). */
static inline size_t mtp_aix_last_le(const uint64_t *v, unsigned stride, size_t lo, size_t hi,
                                     uint64_t a)
{
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (v[mid * stride] <= a)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The element that may hold a: the last one starting at a or below, when
 * a lies in a region some element starts in, ends in or covers; else -1.
 * The caller checks the element's span (or equality). */
static inline ssize_t mtp_addrindex_find(const mtp_addrindex_t *x, uint64_t a)
{
    if (a < x->lo || a >= x->hi)
        return -1;
    if (!x->slots)
        return (ssize_t)mtp_aix_last_le(x->addr, x->stride, 0, x->n, a);
    uint64_t region = a >> MTP_AIX_REGION_SHIFT;
    uint32_t p;
    for (size_t i = mtp_aix_hash(region, x->mask);; i = (i + 1) & x->mask) {
        uint64_t k = x->slots[i].region;
        if (k == region) {
            p = x->slots[i].pos;
            break;
        }
        if (k == MTP_AIX_EMPTY)
            return -1;
    }
    if (p & MTP_AIX_COVERED)
        return (ssize_t)(p & ~MTP_AIX_COVERED);
    const uint32_t *cnt =
        &x->pages[(size_t)p * (x->npages + 1) + ((a >> x->pshift) & (x->npages - 1))];
    size_t first = cnt[0], end = cnt[1];   /* elements [first, end) start in a's page */
    if (first == end || x->addr[first * x->stride] > a)
        return first == 0 ? -1 : (ssize_t)first - 1;   /* began below the page */
    return (ssize_t)mtp_aix_last_le(x->addr, x->stride, first, end, a);
}

#endif /* MTP_BASE_ADDRINDEX_H */
