/* The registry of memtrail's own Python blocks (preload/python/pyown.c):
 * every registered address passes the lock-free test (mtp_py_own_maybe),
 * whatever else hashes to its filter counter, forgetting gives back each
 * entry's size and domain exactly once, and once the registry is empty the
 * test lets every address through without the lock; a counter that reached
 * 255 stays (the test is then only conservative). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "python/py.h"

#define N 1000   /* of the registry's 1,024 at most */

static uintptr_t addr_of(unsigned i)
{
    /* scattered over a wide range, as memtrail's blocks lie over the heap */
    return 0x555500000000ull + (uintptr_t)i * 0x10010 + (i % 7) * 16;
}

Test(pyown, every_registered_block_is_found_and_forgotten_once)
{
    for (unsigned i = 0; i < N; i++)
        mtp_py_own_add((void *)addr_of(i), 16 + i, i % 3);
    for (unsigned i = 0; i < N; i++)
        cr_assert(mtp_py_own_maybe((void *)addr_of(i)), "block %u not found by the test", i);
    uintptr_t out[2 * N];
    cr_assert_eq(mtp_py_own_blocks(out, N), N);
    /* forget every other one: each gives its figures back once */
    for (unsigned i = 0; i < N; i += 2) {
        size_t size = 0;
        unsigned dom = 9;
        cr_assert_eq(mtp_py_own_forget((void *)addr_of(i), &size, &dom), 1, "block %u", i);
        cr_assert_eq(size, 16 + i);
        cr_assert_eq(dom, i % 3);
        cr_assert_eq(mtp_py_own_forget((void *)addr_of(i), NULL, NULL), 0, "block %u twice", i);
    }
    for (unsigned i = 1; i < N; i += 2)
        cr_assert(mtp_py_own_maybe((void *)addr_of(i)), "block %u lost by a neighbour's forget", i);
    for (unsigned i = 1; i < N; i += 2)
        cr_assert_eq(mtp_py_own_forget((void *)addr_of(i), NULL, NULL), 1, "block %u", i);
    cr_assert_eq(mtp_py_own_blocks(out, N), 0);
    /* empty: no counter is left raised */
    unsigned passed = 0;
    for (unsigned i = 0; i < N; i++)
        passed += mtp_py_own_maybe((void *)addr_of(i));
    cr_expect_eq(passed, 0, "%u addresses still pass the test with nothing registered", passed);
}

Test(pyown, few_blocks_let_most_frees_through)
{
    for (unsigned i = 0; i < 300; i++)
        mtp_py_own_add((void *)addr_of(i * 11), 32, 1);
    /* the range [lo, hi) covers the addresses below; the filter turns most
     * of them away (the range alone let every one through) */
    unsigned passed = 0, tried = 0;
    for (uintptr_t a = addr_of(5); a < addr_of(3000); a += 48, tried++)
        passed += mtp_py_own_maybe((void *)a);
    cr_expect_lt(passed * 20, tried, "%u of %u unregistered addresses pass", passed, tried);
}

Test(pyown, a_full_counter_sticks)
{
    /* 300 addresses with one filter counter: it stops at 255 and stays */
    uintptr_t same[300];
    unsigned n = 0;
    uint32_t want = mtp_py_own_filter_at(addr_of(0));
    for (uintptr_t a = addr_of(0); n < 300; a += 16)
        if (mtp_py_own_filter_at(a) == want)
            same[n++] = a;
    for (unsigned i = 0; i < n; i++)
        mtp_py_own_add((void *)same[i], 8, 0);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(mtp_py_own_forget((void *)same[i], NULL, NULL), 1);
    cr_expect(mtp_py_own_maybe((void *)same[0]), "a counter that reached 255 went down");
}
