/* Unit tests of the Python frame's stack words (preload/python/py.h): the
 * packed one-word form where the frame fits, the wide two-word form
 * elsewhere, and every (code id, offset) read back exactly as written. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "python/py.h"

static void round_trip(uintptr_t code, uintptr_t offset, uint32_t want_words)
{
    uintptr_t w[3] = {0, 0, 0xdeadbeef}, got_code, got_offset;
    uint32_t k = mtp_pyword_put(w, code, offset);
    cr_expect_eq(k, want_words, "code %#lx offset %#lx: %u words, want %u",
                 (unsigned long)code, (unsigned long)offset, k, want_words);
    cr_expect(mtp_is_pyword(w[0]));
    cr_expect_eq(w[2], 0xdeadbeef, "wrote past the frame");
    cr_expect_eq(mtp_pyword_get(w, 3, &got_code, &got_offset), k);
    cr_expect_eq(mtp_frame_words(w, 3), k);
    cr_expect_eq(got_code, code, "code %#lx read back as %#lx", (unsigned long)code,
                 (unsigned long)got_code);
    cr_expect_eq(got_offset, offset, "offset %#lx read back as %#lx", (unsigned long)offset,
                 (unsigned long)got_offset);
}

Test(pyword, packed_where_it_fits)
{
    round_trip(1, 0, 1);
    round_trip(1, 1, 1);                                       /* code units may be odd */
    round_trip(4242, ((uintptr_t)1 << MTP_PYWORD_OFF_BITS) - 1, 1);
    round_trip(((uintptr_t)1 << (62 - MTP_PYWORD_OFF_BITS)) - 1, 4242, 1);   /* the largest id */
    round_trip(0, 2, 1);                                       /* no id */
}

Test(pyword, wide_elsewhere)
{
    round_trip(7, (uintptr_t)1 << MTP_PYWORD_OFF_BITS, 2);     /* big code object */
    round_trip(7, (uintptr_t)-1, 2);                           /* lasti -1: not started */
    round_trip((uintptr_t)1 << (62 - MTP_PYWORD_OFF_BITS), 2, 2);   /* an id past 43 bits */
}

Test(pyword, native_words_are_one_frame)
{
    uintptr_t w[2] = {0x401234, 0x7fff00001234};
    cr_expect(!mtp_is_pyword(w[0]));
    cr_expect_eq(mtp_frame_words(w, 2), 1);
}

/* A wide frame whose offset word was cut by the end of the stack. */
Test(pyword, wide_frame_cut_short)
{
    uintptr_t w[2], code, offset;
    cr_assert_eq(mtp_pyword_put(w, 9, (uintptr_t)1 << MTP_PYWORD_OFF_BITS), 2);
    cr_expect_eq(mtp_pyword_get(w, 1, &code, &offset), 1);
    cr_expect_eq(code, 9);
    cr_expect_eq(offset, 0);
}
