/* Unit tests of mtp_sort_words (preload/base/util.c), the radix sort of
 * packed (key, index) words the Python graph's order comes from: against
 * qsort of the same words by their key bits, stable (equal keys keep their
 * indices' order), for keys of a few bits to all 64, digits narrower than
 * the radix's at the top, and keys that do not differ at all. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define N 300000

static uint64_t a[N], want[N];
static unsigned g_low, g_top;

static uint64_t rnd(void)
{
    static uint64_t s = 0x2545f4914f6cdd1dull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static uint64_t key(uint64_t w)
{
    uint64_t k = w >> g_low;
    return g_top - g_low < 64 ? k & ((1ull << (g_top - g_low)) - 1) : k;
}

/* qsort is not stable: ties are broken by the whole word's low bits, the
 * index (the words below are built so). */
static int cmp(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    uint64_t kp = key(p), kq = key(q);
    if (kp != kq)
        return kp < kq ? -1 : 1;
    uint64_t ip = p & ((1ull << g_low) - 1), iq = q & ((1ull << g_low) - 1);
    return ip < iq ? -1 : ip > iq;
}

/* n words: key bits [low, top) random within `spread` bits, the index in
 * the bits below low (increasing), junk above top. */
static void run(size_t n, unsigned low, unsigned top, unsigned spread)
{
    g_low = low;
    g_top = top;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = spread ? rnd() & (spread < 64 ? (1ull << spread) - 1 : ~0ull) : 0;
        uint64_t w = (low ? (uint64_t)i & ((1ull << low) - 1) : 0) | (low < 64 ? k << low : 0);
        if (top < 64)
            w = (w & ((1ull << top) - 1)) | (rnd() << top);   /* not the key's */
        a[i] = want[i] = w;
    }
    qsort(want, n, sizeof(*want), cmp);
    cr_assert_eq(mtp_sort_words(a, n, low, top), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(key(a[i]), key(want[i]), "word %zu: key %#llx, expected %#llx", i,
                     (unsigned long long)key(a[i]), (unsigned long long)key(want[i]));
    if (low)   /* stable: with the index below the key, the words are equal */
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(a[i] & ((1ull << top) - 1),
                         want[i] & ((1ull << top) - 1), "word %zu", i);
}

Test(sortwords, heap_addresses_and_indices)
{
    run(N, 19, 19 + 41, 41);   /* 2^19 indices, addresses spread over 41 bits */
}

Test(sortwords, narrow_keys_many_ties)
{
    run(N, 19, 19 + 5, 5);     /* 32 keys: long runs of ties keep their order */
}

Test(sortwords, a_narrow_top_digit)
{
    run(N, 20, 20 + 23, 23);   /* 23 bits: two 11-bit digits and a 1-bit one */
}

Test(sortwords, all_64_bits_are_the_key)
{
    run(N, 0, 64, 64);
}

Test(sortwords, equal_keys_and_tiny_inputs)
{
    run(N, 19, 40, 0);         /* no key differs: nothing moves */
    run(1, 3, 40, 30);
    run(0, 3, 40, 30);
    run(2, 1, 2, 1);
}
