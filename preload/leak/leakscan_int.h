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

typedef struct mtp_scan {
    char *maps_text;           /* /proc/self/maps as read */
    size_t maps_text_cap;
    mtp_map_t *maps;           /* sorted by address (the kernel's order) */
    size_t nmaps, maps_cap;
    mtp_root_t *roots;
    size_t nroots, roots_cap;
    /* The live blocks by address, from the walk: 12 bytes each. */
    uint64_t *addr;            /* increasing */
    uint64_t *sample;          /* addr[k * MTP_SCAN_SAMPLE]: the lookup's first level */
    size_t nsample, sample_bytes;
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

/* One address in this many is copied into `sample`: a lookup searches that
 * small array (0.125 B a block, mostly in cache) first, then a run of 64
 * neighbours (512 bytes), instead of the whole address array. */
#define MTP_SCAN_SAMPLE 64

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
ssize_t mtp_scan_lookup(const mtp_scan_t *sc, uint64_t addr);
int mtp_scan_push(mtp_scan_t *sc, uint32_t i);

/* pyreach.c: sets MTSNAP_PYOBJ_REACHED (and STATIC) on the graph's nodes. */
void mtp_pyreach(mtp_scan_t *sc, mtp_pygraph_t *g);

#endif /* MTP_LEAKSCAN_INT_H */
