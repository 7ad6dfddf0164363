/*
 * The leak scan's lookups: the mapping that holds an address (sc->maps,
 * sorted), and the block: the live blocks' addresses, indexed by
 * base/addrindex.c over each block's whole span (a block of size 0 counts
 * one byte), and the sizes of 64 KiB or more, which the scan keeps beside
 * the 16-bit sizes of its block words; blocks at 2^48 or above (tracked
 * addresses, never the heap's) are searched in their own short array. The
 * lookup itself is inline (leakscan_int.h): it runs for every word scanned.
 *
 * Threads: the writer thread, while the other threads are stopped: nothing
 * here calls malloc.
 */
#include "leak/leakscan_int.h"

/* The size of block i, one of 64 KiB or more. */
uint64_t mtp_scan_big_size(const mtp_scan_t *sc, size_t i)
{
    return mtp_bigsize_find(sc->big, sc->nbig, i, MTP_SCAN_BIG);
}

static uint64_t block_end(const void *ctx, size_t i)
{
    const mtp_span_t b = mtp_scan_block(ctx, i);
    uint64_t end = b.address + (b.size ? b.size : 1);
    return end > b.address ? end : UINT64_MAX;
}

int mtp_scan_index_build(mtp_scan_t *sc)
{
    return mtp_addrindex_build(&sc->index, sc->blk, sc->nlow, MTP_SCAN_SIZE_BITS, block_end, sc);
}

ssize_t mtp_scan_find_hi(const mtp_scan_t *sc, uint64_t addr)
{
    size_t lo = 0, n = sc->nblocks - sc->nlow;   /* hi[]: increasing addresses */
    if (sc->hi[0].address > addr)   /* below them all: the last block of blk[], if any */
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

void mtp_scan_index_free(mtp_scan_t *sc)
{
    mtp_addrindex_free(&sc->index);
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
