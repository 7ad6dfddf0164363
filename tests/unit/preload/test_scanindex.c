/* Unit tests of the leak scan's blocks and lookup (preload/leak/scanindex.c
 * over the live map's pages, writer/livemap.c, and base/addrindex.c): for
 * block layouts that exercise every case (many small blocks in one page,
 * blocks across page and region boundaries, blocks that cover whole
 * regions, blocks of size 0, a block of 4 GiB or more, sparse blocks far
 * apart, tracked addresses at 2^48 and above, wide blocks (odd addresses,
 * 2 MiB or more, mappings) in the pages of compact ones), the blocks are
 * put in a live map and the scan reads them in place: every rank gives its
 * block back whole, and mtp_scan_lookup answers exactly as a plain search
 * of the sorted blocks does, at block starts, interiors, ends, page and
 * region boundaries and random addresses, with the index and without it.
 * The index itself is checked over the plain array too, with its page size
 * (256 bytes, 1 KiB, 4 KiB as density goes down). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "leak/leakscan_int.h"
#include "writer/livemap.h"

#define MAXB 200000
#define REGION (1ull << 21)
#define PAGE 4096ull

static uint64_t addr[MAXB];
static uint64_t sizes[MAXB];   /* the model: whole sizes (0 for a mapping, as the scan has it) */
static uint32_t domain[MAXB];
static uint64_t real[MAXB];    /* the size given to the live map */
static size_t n;
static mtp_scan_t sc;
static mtp_livemap_t lm;

static uint64_t rnd(void)
{
    static uint64_t s = 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static void add_in(uint64_t a, uint64_t size, uint32_t dom)
{
    cr_assert(n < MAXB);
    uint64_t model = dom == MTSNAP_DOMAIN_MMAP ? 0 : size;
    cr_assert(n == 0 || a >= addr[n - 1] + (sizes[n - 1] ? sizes[n - 1] : 1), "overlap at %zu", n);
    addr[n] = a;
    sizes[n] = model;
    real[n] = size;
    domain[n] = dom;
    n++;
}

static void add(uint64_t a, uint64_t size)
{
    add_in(a, size, MTSNAP_DOMAIN_NATIVE);
}

static ssize_t model(uint64_t a)
{
    size_t lo = 0, hi = n;   /* first block above a */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (addr[mid] <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    size_t j = lo - 1;
    return a - addr[j] < sizes[j] || a == addr[j] ? (ssize_t)j : -1;
}

static void check(uint64_t a)
{
    ssize_t want = model(a), got = mtp_scan_lookup(&sc, a);
    cr_assert_eq(got, want, "lookup(%#llx): %zd, expected %zd", (unsigned long long)a, got, want);
}

static void check_all(void)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t a = addr[i], s = sizes[i];
        check(a);
        check(a - 1);
        check(a + 1);
        check(a + s / 2);
        check(a + s - 1);
        check(a + s);
        check(a + s + 1);
        check((a & ~(PAGE - 1)) + PAGE);
        check((a & ~(PAGE - 1)) - 1);
        check((a & ~(REGION - 1)) + REGION);
        check((a & ~(REGION - 1)) - 1);
    }
    for (int k = 0; k < 200000; k++) {   /* anywhere between the first block and past the last */
        uint64_t span = addr[n - 1] + sizes[n - 1] + 2 * REGION - addr[0];
        check(addr[0] - REGION + rnd() % span);
    }
    check(0);
    check(UINT64_MAX);
    check(UINT64_MAX - 7);
}

static size_t live_count(void)
{
    return mtp_lm_count(&lm);
}

static int live_pages(mtp_le_page_fn fn, void *arg)
{
    return mtp_lm_walk_pages(&lm, fn, arg);
}

static size_t live_wide(mtsnap_block_t *out, size_t max)
{
    return mtp_lm_wide(&lm, out, max);
}

static const mtp_block_source_t source = {live_count, live_pages, live_wide};

static uint64_t model_end(const void *ctx, size_t i)
{
    (void)ctx;
    uint64_t end = addr[i] + (sizes[i] ? sizes[i] : 1);
    return end > addr[i] ? end : UINT64_MAX;
}

/* The index over the plain array of the blocks below 2^48: its page size,
 * and the model's answers. */
static void check_index(unsigned pshift)
{
    size_t nlow = 0;
    while (nlow < n && addr[nlow] < MTP_SCAN_ADDR_LIMIT)
        nlow++;
    mtp_addrindex_t x;
    cr_assert_eq(mtp_addrindex_build(&x, addr, nlow, 1, model_end, NULL), 0);
    if (nlow) {
        cr_assert_not_null(x.slots);
        cr_assert_eq(x.pshift, pshift, "pages of 2^%u bytes, expected 2^%u", x.pshift, pshift);
    }
    for (int k = 0; k < 100000 && nlow; k++) {
        size_t i = rnd() % nlow;
        uint64_t a = addr[i] + rnd() % (sizes[i] + 64);
        ssize_t want = model(a), got = mtp_addrindex_find(&x, a);
        if (got >= 0 && !(a - addr[got] < sizes[got] || a == addr[got]))
            got = -1;
        if (want >= (ssize_t)nlow)
            continue;   /* a tracked block: not in this array */
        cr_assert_eq(got, want, "index(%#llx): %zd, expected %zd", (unsigned long long)a, got, want);
    }
    mtp_addrindex_free(&x);
}

static void run(unsigned pshift)
{
    check_index(pshift);
    for (size_t i = 0; i < n; i++) {
        mtsnap_block_t b = {addr[i], real[i], 0, (uint32_t)i, domain[i]}, old;
        cr_assert_eq(mtp_lm_insert(&lm, &b, &old), 0);
    }
    cr_assert_eq(mtp_scan_pages_build(&sc, &source), 0);
    cr_assert_eq(sc.nblocks, n);
    size_t mapped = 0;
    for (size_t i = 0; i < n; i++) {   /* each rank gives its block back whole */
        const mtp_span_t b = mtp_scan_block(&sc, i);
        cr_assert(b.address == addr[i] && b.size == sizes[i], "block %zu: %#llx %llu", i,
                  (unsigned long long)b.address, (unsigned long long)b.size);
        cr_assert_eq(mtp_scan_addr(&sc, i), addr[i]);
        if (domain[i] == MTSNAP_DOMAIN_MMAP) {
            cr_assert(mapped < sc.nmapped && sc.mapped[mapped] == i, "mapping %zu", i);
            mapped++;
        }
    }
    cr_assert_eq(sc.nmapped, mapped);
    cr_assert_eq(mtp_scan_index_build(&sc), 0);
    if (sc.npages)
        cr_assert_not_null(sc.index.slots);
    check_all();
    sc.index.slots = NULL;   /* as when the index's memory could not be had: */
    check_all();            /* the same answers from a search of the pages */
}

static void setup(void)
{
    mtp_aix_index_min = 0;   /* the index of every layout, however small */
    memset(&sc, 0, sizeof(sc));
    memset(&lm, 0, sizeof(lm));
    n = 0;
}

static void teardown(void)
{
    sc.index.slots = NULL;
    mtp_scan_pages_free(&sc);
    if (sc.mapped)
        munmap(sc.mapped, sc.mapped_cap);
    mtp_lm_destroy(&lm);
}

TestSuite(scanindex, .init = setup, .fini = teardown);

Test(scanindex, dense_small_blocks_in_pages)
{
    uint64_t a = 0x555555560000ull;   /* a brk heap: 16 to 64 B apart */
    for (int i = 0; i < 100000; i++) {
        uint64_t s = 16 * (1 + rnd() % 4);
        add(a, s - (rnd() % 3 == 0 ? 8 : 0));
        a += s + 16 * (rnd() % 2);
    }
    run(8);   /* dense: 256-byte pages */
}

Test(scanindex, blocks_across_pages_and_regions)
{
    uint64_t a = 0x7f0000001ff0ull;   /* just below a region's end */
    for (int i = 0; i < 3000; i++) {
        uint64_t s = 1 + rnd() % (3 * PAGE);
        add(a, s);
        a += s + rnd() % 64;
        if (i % 500 == 0)
            a = ((a + REGION) & ~(REGION - 1)) - 8;   /* the next one crosses into a region */
    }
    run(12);   /* 3,000 blocks over about 15 regions: the counts' floor (64 KiB) fits 4 KiB pages */
}

Test(scanindex, blocks_covering_whole_regions)
{
    uint64_t a = 0x7f1234500000ull;
    add(a, 8 * REGION + 123);               /* covers 7 regions wholly, ends inside one */
    add(a + 8 * REGION + 128, 32);          /* starts in the region the big one ends in */
    add(a + 20 * REGION, 3 * REGION);       /* starts and ends on region boundaries */
    add(a + 23 * REGION, 16);               /* right after it */
    add(a + 40 * REGION + 4000, 5 * REGION - 4000);
    run(10);
}

Test(scanindex, zero_sizes_and_a_block_of_4_gib)
{
    uint64_t a = 0x7f5500000000ull;
    add(a, 0);
    add(a + 1, 0);
    add(a + 16, 24);
    add(a + 64, 0);
    add(a + PAGE, (5ull << 30) + 17);   /* 5 GiB: its size is kept beside */
    uint64_t after = a + PAGE + (5ull << 30) + 17;
    add(after, 0);
    add(after + 8, 40);
    run(10);
}

Test(scanindex, sparse_blocks_far_apart)
{
    uint64_t bases[] = {0x400000ull, 0x555555554000ull, 0x7f0000000000ull, 0x7ffff7a00000ull};
    for (size_t b = 0; b < 4; b++)
        for (int i = 0; i < 50; i++)
            add(bases[b] + (uint64_t)i * (REGION + PAGE + 48), 48 + (uint64_t)i);
    run(12);   /* 200 regions of one block: 4 KiB pages keep the counts small */
}

Test(scanindex, middling_density_uses_1_kib_pages)
{
    /* 40,000 blocks in 5 regions: 256-byte pages would take 160 KiB of
     * counts (more than 2 bytes a block), 1 KiB ones 40 KiB */
    for (int r = 0; r < 5; r++) {
        uint64_t a = 0x7f3000000000ull + (uint64_t)r * REGION + (uint64_t)(rnd() % 4096);
        for (int k = 0; k < 8000; k++) {
            uint64_t s = 8 + rnd() % 200;
            add(a, s);
            a += s + rnd() % 40;
        }
    }
    run(10);
}

Test(scanindex, tracked_addresses_at_2_48_and_above)
{
    /* An extension's own domain may track any address: those at 2^48 or
     * above do not fit a block word and are searched apart; a block below
     * may end above 2^48. */
    uint64_t a = MTP_SCAN_ADDR_LIMIT - 3 * REGION;
    for (int i = 0; i < 200; i++)
        add(a + (uint64_t)i * 64, 48);
    add(MTP_SCAN_ADDR_LIMIT - PAGE, 2 * PAGE + 5);        /* straddles 2^48 */
    add(MTP_SCAN_ADDR_LIMIT + 2 * PAGE + 3, 70000);       /* unaligned, large */
    add(MTP_SCAN_ADDR_LIMIT + 5 * REGION, 0);
    add(MTP_SCAN_ADDR_LIMIT + 5 * REGION + 1, 16);
    add(0xfffff00000000000ull, 100);
    run(10);
}

Test(scanindex, only_tracked_addresses_above_2_48)
{
    add(MTP_SCAN_ADDR_LIMIT, 8);
    add(MTP_SCAN_ADDR_LIMIT + 64, 1 << 20);
    add(0xffff800000000000ull, 24);
    run(0);   /* no block below: an empty index */
}

Test(scanindex, wide_blocks_in_the_pages_of_compact_ones)
{
    /* Blocks a compact entry cannot hold, among compact ones: an odd
     * address, 2 MiB or more, a mapping (size 0 to the scan, its rank in
     * mapped[]), alone in a page or beside others before and after them. */
    uint64_t a = 0x7f6600000000ull;
    add(a, 16);
    add(a + 20, 12);                                    /* odd: 4 bytes past a word */
    add(a + 32, 48);
    add(a + 96, 3 * REGION);                            /* 6 MiB, then more in its last page */
    add(a + 96 + 3 * REGION, 32);
    add(a + 5 * REGION + 1, 7);                         /* odd, alone in its page */
    add_in(a + 6 * REGION, 64 * PAGE, MTSNAP_DOMAIN_MMAP);
    add(a + 6 * REGION + 64 * PAGE, 24);                /* right after the mapping */
    add(a + 8 * REGION + 8, 40);
    add_in(a + 8 * REGION + 64, 8, MTSNAP_DOMAIN_MMAP); /* a mapping among blocks */
    add(a + 8 * REGION + 80, 40);
    for (int i = 0; i < 2000; i++)                      /* then pages of compact ones */
        add(a + 9 * REGION + (uint64_t)i * 48, 40);
    add(a + 9 * REGION + 2000 * 48 + 3, 2 * REGION);    /* odd and wide, last below 2^48 */
    add_in(MTP_SCAN_ADDR_LIMIT + PAGE, 100, MTSNAP_DOMAIN_MMAP);   /* tracked: in hi[] */
    run(10);
    cr_assert_gt(sc.nspans, 0);
}

Test(scanindex, no_blocks)
{
    cr_assert_eq(mtp_scan_pages_build(&sc, &source), 0);
    cr_assert_eq(sc.nblocks, 0);
    cr_assert_eq(mtp_scan_index_build(&sc), 0);
    cr_assert_eq(mtp_scan_lookup(&sc, 0x555555560000ull), -1);
    cr_assert_eq(mtp_scan_lookup(&sc, 0), -1);
}

/* A few pages are not indexed (mtp_aix_index_min): the build says 0, makes
 * no arrays, and the lookups search the pages with the same answers. */
Test(scanindex, few_pages_searched_without_an_index)
{
    mtp_aix_index_min = 64;
    for (int i = 0; i < 300; i++)   /* a short-lived process's heap: 4 pages */
        add(0x555555560000ull + 48 * (uint64_t)i, 40);
    for (size_t i = 0; i < n; i++) {
        mtsnap_block_t b = {addr[i], real[i], 0, (uint32_t)i, domain[i]}, old;
        cr_assert_eq(mtp_lm_insert(&lm, &b, &old), 0);
    }
    cr_assert_eq(mtp_scan_pages_build(&sc, &source), 0);
    cr_assert_gt(sc.npages, 1);
    cr_assert_lt(sc.npages, 64);
    cr_assert_eq(mtp_scan_index_build(&sc), 0);
    cr_assert_null(sc.index.slots);
    check_all();
}
