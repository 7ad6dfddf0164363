/* Shared between the leak scan (leakscan.c) and its Python pass (pyreach.c):
 * the scan's state, its roots and the block lookup. Writer thread only. */
#ifndef MTP_LEAKSCAN_INT_H
#define MTP_LEAKSCAN_INT_H

#include <sys/types.h>

#include "base/addrindex.h"
#include "base/liveentry.h"
#include "base/util.h"
#include "leak/leakscan.h"
#include "python/pygraph.h"
#include "python/py.h"

typedef struct mtp_map {
    uint64_t start, end, offset;
    int readable, writable;
    const char *path;          /* into the maps text; "" for anonymous memory */
} mtp_map_t;

#define MTP_ROOT_LIBC 0x1u     /* in the C library's or the loader's own data */
#define MTP_ROOT_COPY 0x2u     /* memtrail's copy of a thread's registers */
#define MTP_ROOT_CAPTURER 0x4u /* stack or registers of the thread that captured the
                                  Python graph: left out of the Python pass */
#define MTP_ROOT_PYLOOSE 0x8u  /* a graph object in no traced block (memory the
                                  interpreter had before tracing began, reused through
                                  a free list), or a block of memtrail's own Python
                                  work: a root of the native pass only */

typedef struct mtp_root {
    uint64_t lo, hi;
    unsigned flags;
} mtp_root_t;

/* Blocks at this address or above (tracked addresses, an extension's own
 * domain: never the heap's) rank last, whole, in hi[]. */
#define MTP_SCAN_ADDR_LIMIT MTP_LE_ADDR_LIMIT

typedef struct mtp_span {
    uint64_t address, size;
} mtp_span_t;

/* A page of the live map as the scan reads it (scanindex.c): its n blocks,
 * ranks [rank, rank + n), are the live map's entries at ent, or when ent
 * is odd, the scan's spans from ent >> 1 on (a page with a wide block).
 * first, its first block's address, leads: the index reads the pages'
 * firsts in place (a stride of MTP_SCAN_PAGE_WORDS), and a lookup finds
 * the rest of the page on the same line. */
typedef struct mtp_scan_page {
    uint64_t first;
    uintptr_t ent;
    uint32_t rank, n;
} mtp_scan_page_t;
#define MTP_SCAN_PAGE_WORDS (sizeof(mtp_scan_page_t) / sizeof(uint64_t))

#define MTP_SCAN_GCTYPE_CACHE 256

typedef struct mtp_scan {
    char *maps_text;           /* /proc/self/maps as read */
    size_t maps_text_cap;
    mtp_map_t *maps;           /* sorted by address (the kernel's order) */
    size_t nmaps, maps_cap;
    mtp_root_t *roots;
    size_t nroots, roots_cap;
    uintptr_t *pinned;         /* the code objects memtrail holds (a root: MTP_ROOT_COPY) */
    size_t pinned_cap;
    uintptr_t *own;            /* memtrail's own Python blocks, (address, size) pairs
                                  (python/pyown.c: each a root, MTP_ROOT_PYLOOSE) */
    size_t own_cap;
    uintptr_t *lmaps;          /* the loader's link maps (a root: MTP_ROOT_COPY | LIBC) */
    size_t lmaps_cap;
    /* The live blocks by address, each known by its rank, read in place
     * from the live map (scanindex.c): ranks [0, nlow) in pages, those from
     * nlow on (at MTP_SCAN_ADDR_LIMIT or above) in hi[]. */
    mtp_scan_page_t *page;     /* by increasing address: the index's elements */
    uint32_t *pgof;            /* the page of rank 64 j, j <= nlow / 64 + 1 */
    mtp_span_t *spans;
    mtsnap_block_t *wide;      /* the source's wide blocks, while the pages are built */
    mtp_addrindex_t index;     /* over page[].first: mtp_scan_lookup's */
    mtp_span_t *hi;
    size_t nblocks, nlow, npages, nspans, nwide;
    size_t page_bytes, pgof_bytes, spans_bytes, wide_bytes, hi_bytes;
    uint32_t *mapped;          /* the mmap domain's blocks (size 0 here: not classified) */
    size_t nmapped, mapped_cap;
    uint8_t *state;            /* per block, leakscan.c's ST_* (bits MTP_ST_SCRATCH:
                                  the marking's, then the Python pass's own) */
    size_t state_cap;
    uint32_t *stack;           /* mark stack */
    size_t nstack, stack_cap;
    uint32_t *deferred;        /* blocks an interior pointer from a reachable place reached:
                                  possible, unless a start pointer comes (leakscan.c) */
    size_t ndeferred, deferred_cap;
    uint8_t *rootint;          /* a bit per block: an interior pointer from a root of the
                                  program's (not the C library's) reached it */
    size_t rootint_cap;
    int oom;                   /* an array could not grow: the result is void */
    int safe;                  /* read memory through process_vm_readv */
    const mtp_pygraph_t *py;   /* a CPython process's graph: its layout makes pointers
                                  to an object count as start pointers (leakscan.c) */
    const mtp_pyabi_t *inert_abi;   /* an interpreter's layout, and its str, bytes and */
    uint64_t inert_types[3];        /* code types: what is not read (pyinert.c); NULL: all */
    uint64_t gctype_cache[MTP_SCAN_GCTYPE_CACHE];   /* mtp_scan_gctype's answers: a type's
                                  address | 1 when collectable, | 0 when not; 0 empty */
    uint32_t threads;          /* threads stopped and scanned */
    const mtp_stopped_t *held; /* the requester held by its own wait, the only other
                                  thread: nothing was stopped (mtp_leakscan_run) */
    uint64_t scanned, root_bytes, heap_bytes;
    char bounce[65536];        /* safe reads */
} mtp_scan_t;

/* The page holding rank i (below nlow): between the pages of the 64th
 * ranks around it. */
static inline size_t mtp_scan_page_of(const mtp_scan_t *sc, size_t i)
{
    size_t lo = sc->pgof[i >> 6];
    if (i - sc->page[lo].rank < sc->page[lo].n)
        return lo;
    size_t hi = (size_t)sc->pgof[(i >> 6) + 1] + 1;   /* page[hi].rank > i, or the end */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (sc->page[mid].rank <= i)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Rank i of page k. */
static inline mtp_span_t mtp_scan_page_block(const mtp_scan_t *sc, size_t k, size_t i)
{
    const mtp_scan_page_t *p = &sc->page[k];
    size_t at = i - p->rank;
    if (p->ent & 1)
        return sc->spans[(p->ent >> 1) + at];
    uint64_t e = ((const uint64_t *)p->ent)[at];
    return (mtp_span_t){mtp_le_address(p->first & ~MTP_LE_PAGE_MASK, e), mtp_le_size(e)};
}

/* Block i: its address and size. */
static inline mtp_span_t mtp_scan_block(const mtp_scan_t *sc, size_t i)
{
    if (i >= sc->nlow)
        return sc->hi[i - sc->nlow];
    return mtp_scan_page_block(sc, mtp_scan_page_of(sc, i), i);
}

static inline uint64_t mtp_scan_addr(const mtp_scan_t *sc, size_t i)
{
    return mtp_scan_block(sc, i).address;
}

/* A hint for the marking loops, two blocks ahead: the line that holds
 * rank i's entry, so that the next turn finds its block's address without
 * a miss (and prefetches the block itself). */
static inline void mtp_scan_prefetch_entry(const mtp_scan_t *sc, size_t i)
{
    if (i >= sc->nlow)
        return;
    const mtp_scan_page_t *p = &sc->page[mtp_scan_page_of(sc, i)];
    if (p->ent & 1)
        __builtin_prefetch(&sc->spans[(p->ent >> 1) + (i - p->rank)]);
    else
        __builtin_prefetch((const uint64_t *)p->ent + (i - p->rank));
}

/* The last of the n sorted entries e[] below key (e[0] is), q being the
 * offset key stands for (0 to 510): a page's blocks lie about evenly over
 * it (a Python pool's are of one size), so the search starts where q puts
 * it and gallops from there, most often within a cache line, then ends in
 * a binary search of what the gallop left. */
static inline __attribute__((always_inline)) size_t mtp_scan_entry_below(const uint64_t *e, size_t n, uint64_t key, uint64_t q)
{
    size_t lo, hi, g = (size_t)((q * n) >> 9), step = 1;
    if (e[g] < key) {   /* the answer is g or after */
        lo = g;
        while (lo + step < n && e[lo + step] < key) {
            lo += step;
            step <<= 1;
        }
        hi = lo + step < n ? lo + step : n;
    } else {            /* before g (e[0] < key, so g > 0) */
        hi = g;
        while (hi > step && e[hi - step] >= key) {
            hi -= step;
            step <<= 1;
        }
        lo = hi > step ? hi - step : 0;
    }
    while (hi - lo > 1) {   /* e[lo] < key, e[hi] >= key (or hi == n) */
        size_t mid = (lo + hi) / 2;
        if (e[mid] < key)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The last block of page k starting at addr or below (addr is at or above
 * the page's first): its rank, and its span in *b. */
static inline __attribute__((always_inline)) size_t mtp_scan_page_find(const mtp_scan_t *sc, size_t k, uint64_t addr,
                                        mtp_span_t *b)
{
    const mtp_scan_page_t *p = &sc->page[k];
    size_t lo = 0, hi = p->n;
    if (p->ent & 1) {
        const mtp_span_t *s = &sc->spans[p->ent >> 1];
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (s[mid].address <= addr)
                lo = mid;
            else
                hi = mid;
        }
        *b = s[lo];
        return p->rank + lo;
    }
    const uint64_t *e = (const uint64_t *)p->ent;
    uint64_t base = p->first & ~MTP_LE_PAGE_MASK, q = (addr - base) >> 3;
    /* entries below key start at addr or below: they compare as addresses;
     * past the page's last offset, its last block */
    lo = q < (MTP_LE_PAGE_MASK >> 3) ? mtp_scan_entry_below(e, hi, (q + 1) << MTP_LE_OFF_SHIFT, q)
                                     : hi - 1;
    *b = (mtp_span_t){mtp_le_address(base, e[lo]), mtp_le_size(e[lo])};
    return p->rank + lo;
}

const mtp_map_t *mtp_scan_map_of(const mtp_scan_t *sc, uintptr_t addr);
int mtp_scan_readable(const mtp_scan_t *sc, uintptr_t lo, uintptr_t hi);
int mtp_scan_push(mtp_scan_t *sc, uint32_t i);
/* The aligned words of [lo, hi), for the loops that read a block directly
 * (every thread stopped, the block found mapped: no sc->safe, no
 * MTP_ST_UNREADABLE), with the per-word step inline: the marking and the
 * Python pass read every reached block this way. */
static inline const uint64_t *words_from(uint64_t lo)
{
    return (const uint64_t *)(uintptr_t)((lo + 7) & ~(uint64_t)7);
}

static inline const uint64_t *words_to(uint64_t hi)
{
    return (const uint64_t *)(uintptr_t)(hi & ~(uint64_t)7);
}

void mtp_scan_words(mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, unsigned flags,
                    void (*fn)(mtp_scan_t *, uint64_t, void *), void *arg);
/* The first bytes of block i, whose span is b (up to n, at most
 * MTP_SCAN_PEEK) copied into buf, for a look at an object's headers: read
 * directly, or through process_vm_readv when a thread did not stop
 * (sc->safe) and memory may be unmapped under us. Returns the bytes copied
 * (0: unreadable). */
#define MTP_SCAN_PEEK 128
size_t mtp_scan_peek(mtp_scan_t *sc, size_t i, mtp_span_t b, void *buf, size_t n);
/* scanindex.c: the pages of the live blocks, read in place from the
 * source (every thread stopped or held, nothing applied), and the index
 * over them (-1 when it could not be had: the lookup is then a search of
 * the pages); their release. */
int mtp_scan_pages_build(mtp_scan_t *sc, const mtp_block_source_t *live);
int mtp_scan_index_build(mtp_scan_t *sc);
void mtp_scan_pages_free(mtp_scan_t *sc);
/* The last block starting at addr or below, addr at MTP_SCAN_ADDR_LIMIT or
 * above and hi[] not empty; or -1. */
ssize_t mtp_scan_find_hi(const mtp_scan_t *sc, uint64_t addr);

/* The block holding addr (start or interior; the start of a block of size
 * 0): its rank and, in *b, its span; or -1. Inline: it runs for every word
 * the scan reads. */
static inline __attribute__((always_inline)) ssize_t mtp_scan_find(const mtp_scan_t *sc, uint64_t addr, mtp_span_t *b)
{
    ssize_t j;
    if (addr >= MTP_SCAN_ADDR_LIMIT && sc->nlow < sc->nblocks) {
        if ((j = mtp_scan_find_hi(sc, addr)) < 0)
            return -1;
        *b = mtp_scan_block(sc, (size_t)j);
    } else {
        ssize_t k = mtp_addrindex_find(&sc->index, addr);
        if (k < 0)
            return -1;
        j = (ssize_t)mtp_scan_page_find(sc, (size_t)k, addr, b);
    }
    return addr - b->address < b->size || addr == b->address ? j : -1;
}

static inline __attribute__((always_inline)) ssize_t mtp_scan_lookup(const mtp_scan_t *sc, uint64_t addr)
{
    mtp_span_t b;
    return mtp_scan_find(sc, addr, &b);
}

/* Whether type is one of the graph's collectable types (sorted). */
static inline int mtp_scan_is_gctype(const mtp_pygraph_t *g, uint64_t type)
{
    size_t lo = 0, hi = g->ngctypes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->gctypes[mid] == type)
            return 1;
        if (g->gctypes[mid] < type)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Whether the word `type` (where a collectable object's type would be)
 * names a collectable type: one of the graph's, or a type object in
 * readable memory (its own type a metatype) whose flags say
 * Py_TPFLAGS_HAVE_GC: a static type, or one with no tracked instance
 * (struct sequences, the preallocated MemoryErrors). leakscan.c. */
int mtp_scan_gctype(mtp_scan_t *sc, uint64_t type);

/* A block whose memory is not all mapped readable (found once, before the
 * marking): its state byte's bit. */
#define MTP_ST_UNREADABLE 0x08u
static inline int mtp_scan_unreadable(const mtp_scan_t *sc, size_t i)
{
    return (sc->state[i] & MTP_ST_UNREADABLE) != 0;
}

/* The bits of a block's state byte that only the marking uses (its Python
 * start checks, its deferral): cleared after it, the Python pass's own. */
#define MTP_ST_SCRATCH 0xf0u

/* pyinert.c: what the scan does not read in Python's objects, the text of
 * str and bytes objects and the bytecode of code objects, whenever the
 * process has an interpreter memtrail knows (with or without a graph: the
 * final snapshot, after finalization, has none). mtp_scan_inert_init sets
 * it up (every thread stopped or held). A block is read up to
 * mtp_scan_read_end (the block mapped, every thread stopped: it reads the
 * block's type word). In a module's image, mtp_scan_image_inert finds the
 * first such span of an object starting in [lo, hi) and ending below lim
 * (the segment's end, hi or past it): its start (hi: none; past hi when
 * the object's header ends the range) and, in *end, its end rounded up to
 * a word. Both read all when there is no interpreter or sc->safe. */
void mtp_scan_inert_init(mtp_scan_t *sc);
static inline int mtp_scan_inert_type(const mtp_scan_t *sc, uint64_t type)
{
    return type && (type == sc->inert_types[0] || type == sc->inert_types[1] ||
                    type == sc->inert_types[2]);
}
uintptr_t mtp_scan_read_end_slow(const mtp_scan_t *sc, uintptr_t address, uintptr_t end);
static inline uintptr_t mtp_scan_read_end(const mtp_scan_t *sc, mtp_span_t b)
{
    const mtp_pyabi_t *A = sc->inert_abi;
    uintptr_t end = b.address + b.size;
    if (A && b.size >= (uint64_t)A->ob_type + 8 &&
        mtp_scan_inert_type(sc, *(const uint64_t *)(uintptr_t)(b.address + (uint64_t)A->ob_type)))
        return mtp_scan_read_end_slow(sc, b.address, end);
    return end;
}
uintptr_t mtp_scan_image_inert(const mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, uintptr_t lim,
                               uintptr_t *end);

/* leakscan.c: one more root, [lo, hi) (nothing when empty); 0 or -ENOMEM. */
int mtp_scan_add_root(mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, unsigned flags);

/* imageroots.c: the roots of the module mapped at m (its first mapping,
 * offset 0): its writable segments' pages that were written, less their
 * inert text; none for memtrail's own (loaded at self_base). pagemap: an
 * fd of /proc/self/pagemap, or -1 (every page read). 0 or -ENOMEM. */
int mtp_scan_module_roots(mtp_scan_t *sc, const mtp_map_t *m, uintptr_t self_base, int pagemap);
/* Calls fn for each run [a, b) of [lo, hi) whose pages the process wrote
 * (a and b clipped to [lo, hi)), in address order; the whole range when
 * pagemap is -1, and from where a read of it fails on. Stops at fn's first
 * negative return, which it returns; else 0. */
int mtp_scan_written_runs(int pagemap, uintptr_t lo, uintptr_t hi,
                          int (*fn)(void *arg, uintptr_t lo, uintptr_t hi), void *arg);

/* pyreach.c: sets MTSNAP_PYOBJ_REACHED (and STATIC) on the graph's nodes. */
void mtp_pyreach(mtp_scan_t *sc, mtp_pygraph_t *g);

#endif /* MTP_LEAKSCAN_INT_H */
