/* Unit tests of the snapshot's view (preload/writer/snapview.c): while the
 * live table keeps changing between reads, the view reads back exactly the
 * set of the moment the session began, in address order. The live table is
 * a sorted array here (the model); the view sees it only through its source
 * function, as it sees the writer's table. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "writer/snapview.h"

#define MAXB 20000

static mtsnap_block_t live[MAXB];
static size_t nlive;

static size_t lower_bound(uint64_t a)
{
    size_t lo = 0, hi = nlive;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (live[mid].address < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t source(uint64_t from, mtsnap_block_t *out, size_t max)
{
    size_t i = lower_bound(from), n = 0;
    while (i < nlive && n < max)
        out[n++] = live[i++];
    return n;
}

/* The live table's side of the protocol: tell the view, then change. */
static void model_remove(size_t i)
{
    if (mtp_snapview_on)
        mtp_snapview_removed(&live[i]);
    memmove(&live[i], &live[i + 1], (nlive - i - 1) * sizeof(*live));
    nlive--;
}

static void model_alloc(uint64_t a, uint64_t size, uint32_t stack, uint32_t domain)
{
    size_t i = lower_bound(a);
    if (i < nlive && live[i].address == a)
        model_remove(i);   /* a free the table never saw: the old block leaves */
    cr_assert(nlive < MAXB);
    if (mtp_snapview_on)
        mtp_snapview_added(a);
    memmove(&live[i + 1], &live[i], (nlive - i) * sizeof(*live));
    live[i] = (mtsnap_block_t){.address = a, .size = size, .stack = stack, .domain = domain};
    nlive++;
}

static void model_free(uint64_t a)
{
    size_t i = lower_bound(a);
    if (i < nlive && live[i].address == a)
        model_remove(i);
}

static uint64_t rnd_addr(unsigned *seed, uint64_t span)
{
    return 0x10000 + 16 * (uint64_t)(rand_r(seed) % span);
}

static void random_ops(unsigned *seed, int ops, uint64_t span)
{
    for (int k = 0; k < ops; k++) {
        uint64_t a = rnd_addr(seed, span);
        if (rand_r(seed) % 2 && nlive < MAXB - 1)
            model_alloc(a, rand_r(seed) % 5000, rand_r(seed) % 50, rand_r(seed) % 4);
        else if (nlive)
            model_free(live[rand_r(seed) % nlive].address);
    }
}

/* Reads the whole view in chunks of random sizes with random changes between
 * them, and checks it against the copy taken at the start. */
static void check_session(unsigned seed, int ops_between, uint64_t span)
{
    static mtsnap_block_t s0[MAXB], got[MAXB], buf[700];
    nlive = 0;
    random_ops(&seed, 8000, span);
    size_t n0 = nlive;
    memcpy(s0, live, n0 * sizeof(*live));

    mtp_snapview_begin(source);
    size_t ngot = 0;
    long n;
    do {
        random_ops(&seed, rand_r(&seed) % (ops_between + 1), span);
        size_t want = 1 + (size_t)rand_r(&seed) % 700;
        n = mtp_snapview_next(buf, want);
        cr_assert_geq(n, 0);
        cr_assert_leq((size_t)n, want);
        cr_assert_leq(ngot + (size_t)n, n0, "the view gives more blocks than it began with");
        memcpy(&got[ngot], buf, (size_t)n * sizeof(*buf));
        ngot += (size_t)n;
    } while (n > 0);
    mtp_snapview_end();
    cr_assert_eq(mtp_snapview_on, 0);

    cr_assert_eq(ngot, n0, "seed %u: %zu blocks read, %zu at the start", seed, ngot, n0);
    for (size_t i = 0; i < n0; i++) {
        cr_assert_eq(got[i].address, s0[i].address, "seed %u: block %zu", seed, i);
        cr_assert_eq(got[i].size, s0[i].size);
        cr_assert_eq(got[i].stack, s0[i].stack);
        cr_assert_eq(got[i].domain, s0[i].domain);
    }
}

Test(snapview, no_change_reads_the_table)
{
    check_session(1, 0, 100000);
}

Test(snapview, changes_between_reads_do_not_show)
{
    for (unsigned seed = 2; seed < 40; seed++)
        check_session(seed, 200, 100000);
}

/* Few addresses: the same ones are freed and reused over and over, the
 * case of a real allocator. */
Test(snapview, reused_addresses)
{
    for (unsigned seed = 100; seed < 140; seed++)
        check_session(seed, 300, 12000);
}

/* A block that comes and goes during the session leaves nothing behind:
 * the memory held follows the net changes, not the events. */
Test(snapview, churn_holds_no_memory)
{
    nlive = 0;
    for (uint64_t a = 0x10000; a < 0x10000 + 16 * 1000; a += 16)
        model_alloc(a, 32, 1, 0);
    mtp_snapview_begin(source);
    mtsnap_block_t buf[10];
    cr_assert_eq(mtp_snapview_next(buf, 10), 10);
    model_alloc(0x900000, 64, 2, 0);
    model_free(0x900000);
    size_t before = mtp_snapview_memory();   /* the set of added addresses exists now */
    for (int round = 0; round < 100000; round++) {
        model_alloc(0x900000, 64, 2, 0);   /* above the cursor, new */
        model_free(0x900000);
    }
    cr_assert_eq(mtp_snapview_memory(), before, "100,000 blocks came and went: nothing kept");
    long n, total = 10;
    while ((n = mtp_snapview_next(buf, 10)) > 0)
        total += n;
    cr_assert_eq(total, 1000);
    mtp_snapview_end();
    cr_assert_eq(mtp_snapview_memory(), 0);
}

/* Changes below the cursor are the live table's business only. */
Test(snapview, changes_below_the_cursor_are_ignored)
{
    nlive = 0;
    for (uint64_t a = 0x10000; a < 0x10000 + 16 * 100; a += 16)
        model_alloc(a, 16, 1, 0);
    mtp_snapview_begin(source);
    mtsnap_block_t buf[100];
    cr_assert_eq(mtp_snapview_next(buf, 50), 50);
    model_free(0x10000);           /* read already */
    model_alloc(0x10008, 8, 3, 0); /* below the cursor */
    model_free(0x10000 + 16 * 60); /* not read yet: still in the view */
    cr_assert_eq(mtp_snapview_next(buf, 100), 50);
    cr_assert_eq(buf[10].address, 0x10000 + 16 * 60);
    cr_assert_eq(mtp_snapview_next(buf, 100), 0);
    mtp_snapview_end();
}

/* A chunk's worth of blocks allocated during the session above the cursor
 * (a program that allocates while its snapshot is written, from the top of
 * its heap) is passed over: the blocks of S0 above them are still read
 * (the view used to end there). */
Test(snapview, a_run_of_added_blocks_does_not_end_the_view)
{
    nlive = 0;
    model_alloc(0x10000, 16, 1, 0);
    model_alloc(0x7f0000000000, 4096, 2, 0);   /* an mmap'd block, far above */
    mtsnap_block_t buf[600];
    const size_t maxes[] = {1, 4, 600};
    for (size_t m = 0; m < 3; m++) {
        mtp_snapview_begin(source);
        cr_assert_eq(mtp_snapview_next(buf, 1), 1);
        for (uint64_t a = 0x20000; a < 0x20000 + 16 * 2000; a += 16)
            model_alloc(a, 16, 3, 0);
        cr_assert_eq(mtp_snapview_next(buf, maxes[m]), 1, "max %zu: the view ended early",
                     maxes[m]);
        cr_assert_eq(buf[0].address, 0x7f0000000000);
        cr_assert_eq(mtp_snapview_next(buf, maxes[m]), 0);
        mtp_snapview_end();
        for (uint64_t a = 0x20000; a < 0x20000 + 16 * 2000; a += 16)
            model_free(a);
    }
}

/* The top of the address space ends the view. */
Test(snapview, highest_address)
{
    nlive = 0;
    model_alloc(0x1000, 1, 1, 0);
    model_alloc(UINT64_MAX, 2, 2, 1);
    mtp_snapview_begin(source);
    model_free(UINT64_MAX);
    mtsnap_block_t buf[4];
    cr_assert_eq(mtp_snapview_next(buf, 4), 2);
    cr_assert_eq(buf[1].address, UINT64_MAX);
    cr_assert_eq(buf[1].size, 2);
    cr_assert_eq(mtp_snapview_next(buf, 4), 0);
    mtp_snapview_end();
}
