/* Expected figures of the programs in tests/programs/, as derived in the
 * comment at the top of each program; shared by the integration tests. */
#ifndef MT_EXPECTED_H
#define MT_EXPECTED_H

#include <stddef.h>
#include <stdint.h>

typedef struct mt_site {
    const char *function;   /* innermost user frame */
    uint64_t live_bytes, live_blocks;
} mt_site_t;

/* leaky.c */
static const mt_site_t mt_leaky_sites[] = {
    {"leak_dropped", 300, 3},
    {"keep_global", 2000, 2},
    {"drop_list", 480, 10},
    {"grow_chain", 4096, 1},
    {"use_calloc", 240, 1},
    {"use_posix_memalign", 200, 1},
    {"use_aligned_alloc", 512, 1},
    {"use_memalign", 300, 1},
    {"use_valloc", 100, 1},
    {"use_pvalloc", 100, 1},
    {"use_reallocarray", 77, 1},
    {"temporaries", 0, 0},
};
#define MT_LEAKY_NSITES (sizeof(mt_leaky_sites) / sizeof(mt_leaky_sites[0]))
#define MT_LEAKY_TEMP_BYTES 64000u   /* allocated at temporaries */
#define MT_LEAKY_TEMP_BLOCKS 1000u
#define MT_LEAKY_CHAIN_BYTES 8176u   /* allocated at grow_chain: 16 + ... + 4096 */
#define MT_LEAKY_CHAIN_BLOCKS 9u
/* leaky allocates nothing else (no stdio), so the process totals are exact. */
#define MT_LEAKY_LIVE_BYTES 8405u    /* sum over the sites above */
#define MT_LEAKY_LIVE_BLOCKS 23u
#define MT_LEAKY_ALLOC_BYTES 76485u  /* 8405 - 4096 + 8176 + 64000 */
#define MT_LEAKY_ALLOC_BLOCKS 1031u  /* 22 + 9 + 1000 */
#define MT_LEAKY_FREE_BLOCKS 1008u   /* 8 by realloc + 1000 */
#define MT_LEAKY_PEAK_BYTES 8469u    /* everything kept + one temporary */
#define MT_LEAKY_PEAK_BLOCKS 24u
/* Events the program makes at least: 2000 for temporaries, 23 live blocks,
 * 8 more realloc calls in grow_chain. */
#define MT_LEAKY_MIN_EVENTS 2031u

/* threads.c */
#define MT_THREADS_PRODUCERS 4u
#define MT_THREADS_PER_PRODUCER 50000u
#define MT_THREADS_KEEP 100u

/* Size of block i of a producer at produce_block. */
static inline uint64_t mt_threads_produce_size(unsigned i)
{
    return (uint64_t)(i % 256) + 1;
}

/* Size of kept block k of producer p at keep_block. */
static inline uint64_t mt_threads_keep_size(unsigned p, unsigned k)
{
    return 8 * ((uint64_t)p + 1) + k;
}

#endif /* MT_EXPECTED_H */
