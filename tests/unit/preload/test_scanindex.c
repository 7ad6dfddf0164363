/* Unit tests of the leak scan's block lookup (preload/leak/scanindex.c over
 * preload/base/addrindex.c):
 * for block layouts that exercise every case of the index (many small
 * blocks in one page, blocks across page and region boundaries, blocks that
 * cover whole regions, blocks of size 0, a block of 4 GiB or more, sparse
 * blocks far apart, tracked addresses at 2^48 and above; pages of 256
 * bytes, 1 KiB and 4 KiB as density goes down), mtp_scan_lookup answers
 * exactly as a plain search of
 * the sorted array does, at block starts, interiors, ends, page and region
 * boundaries and random addresses, with the index and without it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "leak/leakscan_int.h"

#define MAXB 200000
#define REGION (1ull << 21)
#define PAGE 4096ull

static uint64_t addr[MAXB];
static uint64_t blk[MAXB];     /* the scan's words: address << 16 | size */
static mtp_span_t hiblk[64];   /* blocks at 2^48 or above */
static mtp_bigsize_t big[64];
static uint64_t sizes[MAXB];   /* the model: whole sizes */
static size_t n;
static mtp_scan_t sc;

static uint64_t rnd(void)
{
    static uint64_t s = 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static void add(uint64_t a, uint64_t size)
{
    cr_assert(n < MAXB);
    cr_assert(n == 0 || a >= addr[n - 1] + (sizes[n - 1] ? sizes[n - 1] : 1), "overlap at %zu", n);
    addr[n] = a;
    sizes[n] = size;
    if (a >= MTP_SCAN_ADDR_LIMIT) {
        cr_assert(n - sc.nlow < sizeof(hiblk) / sizeof(hiblk[0]));
        hiblk[n - sc.nlow] = (mtp_span_t){a, size};
    } else {
        cr_assert_eq(sc.nlow, n, "a block below 2^48 after one above");
        blk[n] = a << MTP_SCAN_SIZE_BITS | (size < MTP_SCAN_BIG ? size : MTP_SCAN_BIG);
        if (size >= MTP_SCAN_BIG) {
            cr_assert(sc.nbig < sizeof(big) / sizeof(big[0]));
            big[sc.nbig++] = (mtp_bigsize_t){n, size};
        }
        sc.nlow++;
    }
    n++;
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

static void run(unsigned pshift)
{
    sc.blk = blk;
    sc.hi = hiblk;
    sc.big = big;
    sc.nblocks = n;
    for (size_t i = 0; i < n; i++) {   /* the words give back each block whole */
        const mtp_span_t b = mtp_scan_block(&sc, i);
        cr_assert(b.address == addr[i] && b.size == sizes[i], "block %zu", i);
        cr_assert_eq(mtp_scan_addr(&sc, i), addr[i]);
    }
    cr_assert_eq(mtp_scan_index_build(&sc), 0);
    if (sc.nlow) {
        cr_assert_not_null(sc.index.keys);
        cr_assert_eq(sc.index.pshift, pshift, "pages of 2^%u bytes, expected 2^%u",
                     sc.index.pshift, pshift);
    }
    check_all();
    sc.index.keys = NULL;   /* as when the index's memory could not be had: */
    check_all();            /* the same answers from a search of the whole array */
    mtp_scan_index_free(&sc);
}

static void setup(void)
{
    memset(&sc, 0, sizeof(sc));
    n = 0;
}

TestSuite(scanindex, .init = setup);

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

Test(scanindex, no_blocks)
{
    sc.blk = blk;
    sc.hi = hiblk;
    cr_assert_eq(mtp_scan_index_build(&sc), 0);
    cr_assert_eq(mtp_scan_lookup(&sc, 0x555555560000ull), -1);
    cr_assert_eq(mtp_scan_lookup(&sc, 0), -1);
}
