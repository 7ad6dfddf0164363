/*
 * The leak scan's blocks and lookups: the live blocks read in place from
 * the live map (no copy), each given a rank (its place in address order,
 * the index of its state byte), and the mapping that holds an address.
 *
 * Layout. The live map keeps the blocks that start in a 4 KiB page as a
 * sorted bucket of 8-byte entries (base/liveentry.h). mtp_scan_pages_build
 * lists those buckets in address order (page[]): each page's first
 * block's address, where its entries are, the rank of its first block and
 * how many it holds. A page that holds
 * a wide block (one a compact entry cannot hold: 2 MiB or more, an odd
 * address, a mapping) is merged with it into whole spans of its own
 * (page[k].ent odd: spans[ent >> 1] on). Blocks at 2^48 or above (tracked
 * addresses, never the heap's) rank last, whole, in hi[]. So the scan
 * holds 24 bytes a page and 16 a block of a wide block's page, where a copy took
 * 8 bytes a block: with 50 blocks a page, 8 MiB less at 1 M blocks.
 *
 * A rank's page: pgof[] gives the page of every 64th rank; the page of
 * rank i lies between those of the two around it (one step for a dense
 * heap, a short search for a sparse one). An address's block: the index
 * (base/addrindex.c) over the pages' first addresses, read in place in
 * page[] (a stride of three words), finds the last page
 * starting at or below it, and a search of that page's sorted entries
 * the last block starting at or below it (mtp_scan_page_find, inline:
 * it runs for every word scanned).
 *
 * Threads: the writer thread, while the other threads are stopped or hold
 * still and no event is applied: the live map does not change while the
 * scan reads its buckets. Nothing here calls malloc.
 */
#include <errno.h>
#include <sys/mman.h>

#include "leak/leakscan_int.h"

typedef struct build {
    mtp_scan_t *sc;
    size_t w;              /* the next wide block to place */
} build_t;

/* A page of n blocks: entries at ent (or spans, ent odd), the first at `first`. */
static int page_add(mtp_scan_t *sc, uint64_t first, uintptr_t ent, size_t n)
{
    size_t k = sc->npages;
    if (n > UINT32_MAX - 1 - sc->nlow)
        return -E2BIG;   /* ranks are 32-bit: 4 G blocks */
    if (mtp_mm_grow((void **)&sc->page, &sc->page_bytes, (k + 1) * sizeof(*sc->page)) < 0)
        return -ENOMEM;
    sc->page[k] = (mtp_scan_page_t){first, ent, (uint32_t)sc->nlow, (uint32_t)n};
    sc->nlow += n;
    sc->npages = k + 1;
    return 0;
}

static int span_add(mtp_scan_t *sc, uint64_t address, uint64_t size)
{
    if (mtp_mm_grow((void **)&sc->spans, &sc->spans_bytes, (sc->nspans + 1) * sizeof(*sc->spans)) < 0)
        return -ENOMEM;
    sc->spans[sc->nspans++] = (mtp_span_t){address, size};
    return 0;
}

/* A wide block, rank `rank`, as the scan has it: a mapping has size 0 here
 * (not classified) and its rank goes to mapped[]. */
static int wide_as_span(mtp_scan_t *sc, const mtsnap_block_t *b, size_t rank, mtp_span_t *out)
{
    *out = (mtp_span_t){b->address, b->size};
    if (b->domain != MTSNAP_DOMAIN_MMAP)
        return 0;
    if (mtp_mm_grow((void **)&sc->mapped, &sc->mapped_cap, (sc->nmapped + 1) * sizeof(*sc->mapped)) < 0)
        return -ENOMEM;
    sc->mapped[sc->nmapped++] = (uint32_t)rank;
    out->size = 0;
    return 0;
}

static int wide_span(mtp_scan_t *sc, const mtsnap_block_t *b, size_t rank)
{
    mtp_span_t w;
    int r = wide_as_span(sc, b, rank, &w);
    return r < 0 ? r : span_add(sc, w.address, w.size);
}

static inline uint64_t page_of(uint64_t a) { return a >> MTP_LE_PAGE_SHIFT; }

/* One page of spans: the wide blocks of page pg still to place, merged
 * with the page's n compact entries (none: e NULL). */
static int span_page(build_t *bd, uint64_t pg, const uint64_t *e, unsigned n)
{
    mtp_scan_t *sc = bd->sc;
    size_t first = sc->nspans, rank = sc->nlow, i = 0;
    uint64_t base = pg << MTP_LE_PAGE_SHIFT;
    int r = 0;
    for (;;) {
        int wide = bd->w < sc->nwide && page_of(sc->wide[bd->w].address) == pg &&
                   sc->wide[bd->w].address < MTP_SCAN_ADDR_LIMIT;
        if (i < n && (!wide || mtp_le_address(base, e[i]) < sc->wide[bd->w].address)) {
            r = span_add(sc, mtp_le_address(base, e[i]), mtp_le_size(e[i]));
            i++;
        } else if (wide) {
            r = wide_span(sc, &sc->wide[bd->w++], rank);
        } else {
            break;
        }
        if (r < 0)
            return r;
        rank++;
    }
    return page_add(sc, sc->spans[first].address, (uintptr_t)first << 1 | 1, sc->nspans - first);
}

/* The wide blocks below `below` (and 2^48) not yet placed, each page's as
 * one page of spans. */
static int wide_pages(build_t *bd, uint64_t below)
{
    const mtp_scan_t *sc = bd->sc;
    int r = 0;
    while (!r && bd->w < sc->nwide && sc->wide[bd->w].address < below &&
           sc->wide[bd->w].address < MTP_SCAN_ADDR_LIMIT)
        r = span_page(bd, page_of(sc->wide[bd->w].address), NULL, 0);
    return r;
}

static int add_page(void *arg, uint64_t base, const uint64_t *e, unsigned n)
{
    build_t *bd = arg;
    mtp_scan_t *sc = bd->sc;
    int r = wide_pages(bd, base);
    if (r < 0)
        return r;
    if (bd->w < sc->nwide && page_of(sc->wide[bd->w].address) == page_of(base))
        return span_page(bd, page_of(base), e, n);
    if ((uintptr_t)e & 1)
        return -EIO;   /* cannot happen: entries are words */
    return page_add(sc, mtp_le_address(base, e[0]), (uintptr_t)e, n);
}

/* The end of page k's blocks: its last block's (a block of size 0 counts
 * one byte). */
static uint64_t page_end(const void *ctx, size_t k)
{
    const mtp_scan_t *sc = ctx;
    const mtp_span_t b = mtp_scan_page_block(sc, k, sc->page[k].rank + sc->page[k].n - 1);
    uint64_t end = b.address + (b.size ? b.size : 1);
    return end > b.address ? end : UINT64_MAX;
}

int mtp_scan_pages_build(mtp_scan_t *sc, const mtp_block_source_t *live)
{
    size_t count = live->count();
    int r;
    sc->nblocks = sc->nlow = sc->npages = sc->nspans = sc->nmapped = 0;
    /* the wide blocks, sorted: few (a Python program's largest lists) */
    size_t nwide = live->wide(NULL, 0);
    if (nwide) {
        if (mtp_mm_grow((void **)&sc->wide, &sc->wide_bytes, nwide * sizeof(*sc->wide)) < 0)
            return -ENOMEM;
        if (live->wide(sc->wide, nwide) != nwide)
            return -EIO;   /* cannot happen: nothing changes the map */
    }
    sc->nwide = nwide;
    build_t bd = {sc, 0};
    if ((r = live->pages(add_page, &bd)) < 0 || (r = wide_pages(&bd, UINT64_MAX)) < 0)
        return r;
    /* then those at 2^48 or above, whole */
    size_t nhi = nwide - bd.w;
    if (nhi && mtp_mm_grow((void **)&sc->hi, &sc->hi_bytes, nhi * sizeof(*sc->hi)) < 0)
        return -ENOMEM;
    sc->nblocks = sc->nlow;
    for (; bd.w < nwide; bd.w++, sc->nblocks++)
        if ((r = wide_as_span(sc, &sc->wide[bd.w], sc->nblocks, &sc->hi[sc->nblocks - sc->nlow])) < 0)
            return r;
    mtp_unmap(sc->wide, sc->wide_bytes);   /* the spans and hi[] hold them now */
    sc->wide = NULL;
    sc->wide_bytes = 0;
    if (sc->nblocks != count)
        return -EIO;   /* cannot happen: the table is settled */
    /* the page of every 64th rank, and one past the last */
    size_t nj = sc->nlow / 64 + 2, k = 0;
    if (mtp_mm_grow((void **)&sc->pgof, &sc->pgof_bytes, nj * sizeof(*sc->pgof)) < 0)
        return -ENOMEM;
    for (size_t j = 0; j < nj; j++) {
        size_t rank = j * 64;
        while (k + 1 < sc->npages && sc->page[k + 1].rank <= rank)
            k++;
        sc->pgof[j] = (uint32_t)k;
    }
    return 0;
}

int mtp_scan_index_build(mtp_scan_t *sc)
{
    return mtp_addrindex_build(&sc->index, sc->page ? &sc->page->first : NULL, sc->npages,
                               MTP_SCAN_PAGE_WORDS, page_end, sc);
}

ssize_t mtp_scan_find_hi(const mtp_scan_t *sc, uint64_t addr)
{
    size_t lo = 0, n = sc->nblocks - sc->nlow;   /* hi[]: increasing addresses */
    if (sc->hi[0].address > addr)   /* below them all: the last ranked block, if any */
        return sc->nlow ? (ssize_t)sc->nlow - 1 : -1;
    while (n - lo > 1) {
        size_t mid = (lo + n) / 2;
        if (sc->hi[mid].address <= addr)
            lo = mid;
        else
            n = mid;
    }
    return (ssize_t)(sc->nlow + lo);
}

void mtp_scan_pages_free(mtp_scan_t *sc)
{
    mtp_addrindex_free(&sc->index);
    mtp_unmap(sc->page, sc->page_bytes);
    mtp_unmap(sc->pgof, sc->pgof_bytes);
    mtp_unmap(sc->spans, sc->spans_bytes);
    mtp_unmap(sc->wide, sc->wide_bytes);
    mtp_unmap(sc->hi, sc->hi_bytes);
    sc->page = NULL;
    sc->pgof = NULL;
    sc->spans = sc->hi = NULL;
    sc->wide = NULL;
}

/* The readable mapping holding addr, or NULL. */
const mtp_map_t *mtp_scan_map_of(const mtp_scan_t *sc, uintptr_t addr)
{
    size_t lo = 0, hi = sc->nmaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sc->maps[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sc->nmaps && sc->maps[lo].start <= addr && sc->maps[lo].readable)
        return &sc->maps[lo];
    return NULL;
}

/* Whether [lo, hi) lies in readable mappings (adjacent ones count as one). */
int mtp_scan_readable(const mtp_scan_t *sc, uintptr_t lo, uintptr_t hi)
{
    while (lo < hi) {
        const mtp_map_t *m = mtp_scan_map_of(sc, lo);
        if (!m)
            return 0;
        lo = m->end;
    }
    return 1;
}
