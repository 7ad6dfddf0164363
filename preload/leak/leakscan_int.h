/* Shared between the leak scan (leakscan.c) and its Python pass (pyreach.c):
 * the scan's state, its roots and the block lookup. Writer thread only. */
#ifndef MTP_LEAKSCAN_INT_H
#define MTP_LEAKSCAN_INT_H

#include <sys/types.h>

#include "base/util.h"
#include "leak/leakscan.h"

typedef struct mtp_map {
    uint64_t start, end, offset;
    int readable, writable;
    const char *path;          /* into the maps text; "" for anonymous memory */
} mtp_map_t;

#define MTP_ROOT_LIBC 0x1u     /* in the C library's or the loader's own data */
#define MTP_ROOT_COPY 0x2u     /* memtrail's copy of a thread's registers */
#define MTP_ROOT_CAPTURER 0x4u /* stack or registers of the thread that captured the
                                  Python graph: left out of the Python pass */

typedef struct mtp_root {
    uint64_t lo, hi;
    unsigned flags;
} mtp_root_t;

#define MTP_SCAN_BIG UINT32_MAX

typedef struct mtp_bigsize {
    uint64_t index, size;
} mtp_bigsize_t;

typedef struct mtp_span {
    uint64_t address, size;
} mtp_span_t;

typedef struct mtp_scan_region {
    uint64_t region;           /* address >> 21 */
    uint32_t cover;            /* the block it lies inside, or UINT32_MAX: counted */
} mtp_scan_region_t;

/* scanindex.c: the lookup's index over 2 MiB regions (see there). */
typedef struct mtp_scan_index {
    uint64_t *keys;            /* open addressing: region, UINT64_MAX = empty */
    uint32_t *pos;             /* per slot: counted region's position, or 1 << 31 | block */
    uint32_t *pages;           /* per counted region: 513 counts of blocks below its pages */
    mtp_scan_region_t *list;   /* the build's list, in address order */
    size_t mask, nregions, ncounted;
    size_t keys_bytes, pos_bytes, pages_bytes, list_bytes;
} mtp_scan_index_t;

typedef struct mtp_scan {
    char *maps_text;           /* /proc/self/maps as read */
    size_t maps_text_cap;
    mtp_map_t *maps;           /* sorted by address (the kernel's order) */
    size_t nmaps, maps_cap;
    mtp_root_t *roots;
    size_t nroots, roots_cap;
    /* The live blocks by address, from the walk: 12 bytes each. */
    uint64_t *addr;            /* increasing */
    mtp_scan_index_t index;    /* mtp_scan_lookup's: none (all zero) = search addr[] */
    uint32_t *size32;          /* MTP_SCAN_BIG: the size is in big[] */
    mtp_bigsize_t *big;        /* by index */
    size_t nblocks, nbig, addr_bytes, size_bytes, big_bytes;
    uint64_t lo, hi;           /* lowest block start, highest block end */
    uint8_t *state;            /* per block, leakscan.c's ST_* */
    size_t state_cap;
    uint32_t *stack;           /* mark stack */
    size_t nstack, stack_cap;
    int oom;                   /* an array could not grow: the result is void */
    int safe;                  /* read memory through process_vm_readv */
    uint32_t threads;          /* threads stopped and scanned */
    uint64_t scanned, root_bytes, heap_bytes;
    char bounce[65536];        /* safe reads */
} mtp_scan_t;

uint64_t mtp_scan_big_size(const mtp_scan_t *sc, size_t i);

/* Block i: its address and size. */
static inline mtp_span_t mtp_scan_block(const mtp_scan_t *sc, size_t i)
{
    uint32_t s = sc->size32[i];
    return (mtp_span_t){sc->addr[i], s != MTP_SCAN_BIG ? s : mtp_scan_big_size(sc, i)};
}

const mtp_map_t *mtp_scan_map_of(const mtp_scan_t *sc, uintptr_t addr);
int mtp_scan_readable(const mtp_scan_t *sc, uintptr_t lo, uintptr_t hi);
void mtp_scan_words(mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, unsigned flags,
                    void (*fn)(mtp_scan_t *, uint64_t, void *), void *arg);
/* scanindex.c: the index over sc->addr (sets sc->lo and sc->hi; -1 when
 * it could not be had, and the lookup is then a search of the whole
 * array), and its release. */
int mtp_scan_index_build(mtp_scan_t *sc);
void mtp_scan_index_free(mtp_scan_t *sc);

/* The lookup through that index (scanindex.c explains it), inline: it runs
 * for every word the scan reads. */
#define MTP_SCAN_REGION_SHIFT 21
#define MTP_SCAN_PAGE_SHIFT 12
#define MTP_SCAN_PAGES (1u << (MTP_SCAN_REGION_SHIFT - MTP_SCAN_PAGE_SHIFT))
#define MTP_SCAN_SLOT_EMPTY UINT64_MAX
#define MTP_SCAN_COVERED 0x80000000u

static inline size_t mtp_scan_region_hash(uint64_t region, size_t mask)
{
    return (size_t)((region * MTP_HASH_MUL) >> 32) & mask;
}

/* The region's slot value: a position in the list of regions with counts
 * (its counts at pages[pos * (MTP_SCAN_PAGES + 1)]), MTP_SCAN_COVERED | block for a region
 * that lies wholly inside one block, or -1 when no block touches it. */
static inline int64_t mtp_scan_region_find(const mtp_scan_index_t *x, uint64_t region)
{
    for (size_t i = mtp_scan_region_hash(region, x->mask);; i = (i + 1) & x->mask) {
        uint64_t k = x->keys[i];
        if (k == region)
            return x->pos[i];
        if (k == MTP_SCAN_SLOT_EMPTY)
            return -1;
    }
}

/* The last index in [lo, hi) whose address is addr or below (a[lo] <= addr). */
static inline size_t mtp_scan_last_at_or_below(const uint64_t *a, size_t lo, size_t hi, uint64_t addr)
{
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (a[mid] <= addr)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Block j, if it holds addr (its start counts for a block of size 0). */
static inline ssize_t mtp_scan_holding(const mtp_scan_t *sc, size_t j, uint64_t addr)
{
    const mtp_span_t b = mtp_scan_block(sc, j);
    if (addr < b.address)
        return -1;
    return addr - b.address < b.size || addr == b.address ? (ssize_t)j : -1;
}

static inline ssize_t mtp_scan_lookup(const mtp_scan_t *sc, uint64_t addr)
{
    if (addr < sc->lo || addr >= sc->hi)
        return -1;
    const mtp_scan_index_t *x = &sc->index;
    if (!x->keys)
        return mtp_scan_holding(sc, mtp_scan_last_at_or_below(sc->addr, 0, sc->nblocks, addr), addr);
    int64_t r = mtp_scan_region_find(x, addr >> MTP_SCAN_REGION_SHIFT);
    if (r < 0)
        return -1;
    if (r & MTP_SCAN_COVERED)
        return (ssize_t)(r & ~MTP_SCAN_COVERED);
    const uint32_t *cnt = &x->pages[(size_t)r * (MTP_SCAN_PAGES + 1) + ((addr >> MTP_SCAN_PAGE_SHIFT) & (MTP_SCAN_PAGES - 1))];
    size_t first = cnt[0], end = cnt[1];   /* blocks [first, end) start in addr's page */
    if (first == end || sc->addr[first] > addr) {
        if (first == 0)
            return -1;
        return mtp_scan_holding(sc, first - 1, addr);   /* began below the page */
    }
    return mtp_scan_holding(sc, mtp_scan_last_at_or_below(sc->addr, first, end, addr), addr);
}

int mtp_scan_push(mtp_scan_t *sc, uint32_t i);

/* pyreach.c: sets MTSNAP_PYOBJ_REACHED (and STATIC) on the graph's nodes. */
void mtp_pyreach(mtp_scan_t *sc, mtp_pygraph_t *g);

#endif /* MTP_LEAKSCAN_INT_H */
