/* Shared between the leak scan (leakscan.c) and its Python pass (pyreach.c):
 * the scan's state, its roots and the block lookup. Writer thread only. */
#ifndef MTP_LEAKSCAN_INT_H
#define MTP_LEAKSCAN_INT_H

#include <sys/types.h>

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
/* scanindex.c: the block holding addr (start or interior), or -1; the
 * index over sc->addr (sets sc->lo and sc->hi; -1 when it could not be had,
 * and the lookup is then a search of the whole array), and its release. */
ssize_t mtp_scan_lookup(const mtp_scan_t *sc, uint64_t addr);
int mtp_scan_index_build(mtp_scan_t *sc);
void mtp_scan_index_free(mtp_scan_t *sc);
int mtp_scan_push(mtp_scan_t *sc, uint32_t i);

/* pyreach.c: sets MTSNAP_PYOBJ_REACHED (and STATIC) on the graph's nodes. */
void mtp_pyreach(mtp_scan_t *sc, mtp_pygraph_t *g);

#endif /* MTP_LEAKSCAN_INT_H */
