/* The Python graph's references as 32-bit words (preload/python/pygraph.c,
 * mtp_pygraph_add_edge; read back by mtp_pyedge): a referent within 8 GiB
 * of its referrer, at a multiple of 8 from it, is held as that distance;
 * every other one (farther, at the limits' other side, misaligned) is held
 * once in far[] and named by index, whatever order the references come in.
 * Each reference reads back as the address it was given. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "python/pygraph.h"

#define NEAR MTP_PYEDGE_NEAR

static void add(mtp_pygraph_t *g, mtp_pyaddr_hash_t *h, uint64_t from, uint64_t to)
{
    cr_assert_eq(mtp_pygraph_add_edge(g, h, from, to), 0, "edge %#llx -> %#llx",
                 (unsigned long long)from, (unsigned long long)to);
}

static void release(mtp_pygraph_t *g, mtp_pyaddr_hash_t *h)
{
    mtp_pyaddr_hash_free(h);
    if (g->edges)
        munmap(g->edges, g->edges_cap);
    if (g->far)
        munmap(g->far, g->far_cap);
}

Test(pyedges, distances_and_far_referents_read_back_exactly)
{
    mtp_pygraph_t g = {0};
    mtp_pyaddr_hash_t h = {0};
    const uint64_t from = 0x7f1234560010ull;
    struct { uint64_t to; int near; } cases[] = {
        {from, 1},
        {from + 8, 1},
        {from - 8, 1},
        {from + NEAR - 8, 1},            /* the last distance held */
        {from - NEAR, 1},                /* the first */
        {from + NEAR, 0},                /* one word past: far */
        {from - NEAR - 8, 0},
        {from + 4, 0},                   /* not a multiple of 8 */
        {from - 12, 0},
        {0x555555554000ull, 0},          /* a static object in the executable's image */
        {0x10, 0},
        {UINT64_MAX - 7, 0},
        {from + 0x100000000ull, 1},      /* 4 GiB away */
        {from - 0x1ffffff08ull, 1},
        {0x555555554000ull, 0},          /* the same far referent again */
        {from + 4, 0},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++)
        add(&g, &h, from, cases[i].to);
    cr_assert_eq(g.nedges, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(mtp_pyedge(&g, from, i), cases[i].to, "edge %zu: %#llx, not %#llx", i,
                     (unsigned long long)mtp_pyedge(&g, from, i), (unsigned long long)cases[i].to);
        cr_assert_eq(!(g.edges[i] & 1), cases[i].near, "edge %zu held %s", i,
                     cases[i].near ? "far" : "as a distance");
    }
    /* each far referent once: 7 distinct among the 9 far references */
    cr_assert_eq(g.nfar, 7, "%u far referents", g.nfar);
    cr_assert_eq(g.edges[14], g.edges[9], "a far referent named twice");
    cr_assert_eq(g.edges[15], g.edges[7]);
    release(&g, &h);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Many referrers and referents, near and far, in a scattered order: every
 * reference reads back, from its own referrer; the far table grows (its
 * hash is rebuilt many times) and still names each referent once. */
Test(pyedges, many_references_from_many_referrers)
{
    mtp_pygraph_t g = {0};
    mtp_pyaddr_hash_t h = {0};
    enum { N = 200000 };
    uint64_t *from = malloc(N * sizeof(*from)), *to = malloc(N * sizeof(*to));
    cr_assert(from && to);
    uint64_t x = 88172645463325252ull, distinct_far = 0;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        from[i] = 0x7f0000000000ull + (x % (1ull << 36)) * 16;
        switch (i % 4) {
        case 0:   /* near, either side */
            to[i] = from[i] + ((int64_t)(x >> 40) - (1ll << 23)) * 8;
            break;
        case 1:   /* far: one of a few static objects */
            to[i] = 0x555555558000ull + (x % 37) * 32;
            break;
        case 2:   /* far: distinct, across the address space */
            to[i] = 0x100000000000ull + i * 0x1000000ull;
            distinct_far++;
            break;
        default:  /* misaligned by 4, near */
            to[i] = from[i] + 4 + (x % 1024) * 8;
            distinct_far++;   /* distinct: from[] differs each time */
        }
        add(&g, &h, from[i], to[i]);
    }
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(mtp_pyedge(&g, from[i], i), to[i], "edge %zu", i);
    cr_assert_leq(g.nfar, distinct_far + 37);
    cr_assert_geq(g.nfar, distinct_far + 1);
    uint64_t *sorted = malloc(g.nfar * sizeof(*sorted));   /* each once */
    cr_assert(sorted);
    memcpy(sorted, g.far, g.nfar * sizeof(*sorted));
    qsort(sorted, g.nfar, sizeof(*sorted), cmp_u64);
    for (uint32_t i = 1; i < g.nfar; i++)
        cr_assert_neq(sorted[i], sorted[i - 1], "%#llx held twice", (unsigned long long)sorted[i]);
    free(sorted);
    free(from);
    free(to);
    release(&g, &h);
}
