/*
 * The leak scan's block lookup: the live blocks' addresses, indexed by
 * base/addrindex.c over each block's whole span (a block of size 0 counts
 * one byte), and the sizes of 4 GiB or more, which the scan keeps beside
 * its 32-bit sizes. The lookup itself is inline (leakscan_int.h): it runs
 * for every word scanned.
 *
 * Threads: the writer thread, while the other threads are stopped: nothing
 * here calls malloc.
 */
#include "leak/leakscan_int.h"

/* The size of block i, one of 4 GiB or more. */
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
    return mtp_addrindex_build(&sc->index, sc->addr, sc->nblocks, block_end, sc);
}

void mtp_scan_index_free(mtp_scan_t *sc)
{
    mtp_addrindex_free(&sc->index);
}
