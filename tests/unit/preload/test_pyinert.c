/* Unit tests of what the leak scan does not read in Python's objects
 * (preload/leak/pyinert.c), on objects laid out here with an interpreter's
 * offsets (python/abi.h, 3.11 and 3.12) and stand-in type objects:
 *   - a block holding a compact ASCII str, a bytes object or a code object
 *     (3.11+) is read up to its text or bytecode, and whole when anything
 *     does not fit: another type, a str that is not compact ASCII, no NUL,
 *     a block larger than the object, an implausible reference count;
 *   - a block of 16 bytes at the end of a mapping, its second word a type
 *     that has a length, is looked at without a read past it (the next
 *     page is not mapped: a read would fault);
 *   - in an image's segment, the static objects' text is found in turn,
 *     but for an object whose NUL would lie past the segment; a segment
 *     not mapped readable throughout is not read at all (an ELF file
 *     mapped whole as data passes for a module: its segments may lie past
 *     the mapping);
 *   - with sc->safe, or without an interpreter (3.10's code objects have
 *     no inline bytecode), everything is read;
 *   - mtp_scan_inert_init takes the types from mtp_pyapi. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "leak/leakscan_int.h"
#include "python/capi.h"

/* stand-ins for PyUnicode_Type, PyBytes_Type and PyCode_Type */
static char str_type[64], bytes_type[64], code_type[64];
static mtp_scan_t sc;
static _Alignas(16) unsigned char mem[8192];
static mtp_map_t maps[2];   /* what /proc/self/maps would say of mem (and of a test's page) */

static void setup_minor(int minor)
{
    memset(&sc, 0, sizeof(sc));
    memset(mem, 0, sizeof(mem));
    memset(&mtp_pyapi, 0, sizeof(mtp_pyapi));
    mtp_pyapi.abi = mtp_pyabi_for(minor);
    cr_assert_not_null(mtp_pyapi.abi);
    mtp_pyapi.atomic_types[0] = str_type;
    mtp_pyapi.atomic_types[1] = bytes_type;
    mtp_pyapi.code_type = code_type;
    mtp_scan_inert_init(&sc);
    maps[0] = (mtp_map_t){(uintptr_t)mem, (uintptr_t)mem + sizeof(mem), 0, 1, 1, ""};
    sc.maps = maps;
    sc.nmaps = 1;
}

static void put(unsigned char *obj, int off, uint64_t v)
{
    memcpy(obj + off, &v, sizeof(v));
}

/* An object's head: its count, its type and its length (ob_size, which
 * is also where a str keeps its length). */
static void make_head(unsigned char *obj, int64_t refcnt, const void *type, uint64_t len)
{
    const mtp_pyabi_t *A = sc.inert_abi;
    put(obj, A->ob_refcnt, (uint64_t)refcnt);
    put(obj, A->ob_type, (uintptr_t)type);
    put(obj, A->ob_size, len);
}

/* Two pages, the second unmapped: returns the first. */
static unsigned char *page_then_hole(long page)
{
    unsigned char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(munmap(m + page, (size_t)page), 0);
    return m;
}

/* A compact ASCII str of `text` at obj; returns its size. */
static size_t make_str(unsigned char *obj, const char *text, int64_t refcnt)
{
    const mtp_pyabi_t *A = sc.inert_abi;
    size_t len = strlen(text);
    cr_assert_eq(A->str_length, A->ob_size);
    make_head(obj, refcnt, str_type, len);
    uint32_t state = (uint32_t)(A->str_compact | A->str_ascii);
    memcpy(obj + A->str_state, &state, sizeof(state));
    memcpy(obj + A->str_ascii_data, text, len + 1);
    return (size_t)A->str_ascii_data + len + 1;
}

static size_t make_bytes(unsigned char *obj, size_t len)
{
    const mtp_pyabi_t *A = sc.inert_abi;
    make_head(obj, 1, bytes_type, len);
    memset(obj + A->bytes_data, 0x11, len);   /* 0x1111111111111111: any number */
    obj[A->bytes_data + len] = 0;
    return (size_t)A->bytes_data + len + 1;
}

/* A code object of `units` code units: its block, tp_basicsize (the
 * bytecode's offset and a word) and the units. */
static size_t make_code(unsigned char *obj, size_t units)
{
    const mtp_pyabi_t *A = sc.inert_abi;
    make_head(obj, 1, code_type, units);
    for (size_t i = 0; i < units; i++) {   /* LOAD_GLOBAL 9 and its zeroed cache, in turn */
        obj[A->co_code_adaptive + 2 * i] = i % 6 == 0 ? 0x74 : 0;
        obj[A->co_code_adaptive + 2 * i + 1] = i % 6 == 0 ? 0x09 : 0;
    }
    return (size_t)A->co_code_adaptive + 8 + MTP_PY_CODEUNIT_SIZE * units;
}

static uintptr_t read_end(const void *block, size_t size)
{
    return mtp_scan_read_end(&sc, (mtp_span_t){(uintptr_t)block, size});
}

Test(pyinert, init_takes_the_interpreters_types)
{
    setup_minor(11);
    cr_assert_eq(sc.inert_abi, mtp_pyabi_for(11));
    cr_assert_eq(sc.inert_types[0], (uintptr_t)str_type);
    cr_assert_eq(sc.inert_types[1], (uintptr_t)bytes_type);
    cr_assert_eq(sc.inert_types[2], (uintptr_t)code_type);
    setup_minor(10);   /* its bytecode is a bytes object of its own */
    cr_assert_eq(sc.inert_types[2], 0);
    setup_minor(11);
    size_t n = make_bytes(mem, 100);
    memset(&mtp_pyapi, 0, sizeof(mtp_pyapi));   /* no interpreter: read whole */
    mtp_scan_inert_init(&sc);
    cr_assert_null(sc.inert_abi);
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n);
}

Test(pyinert, blocks_read_up_to_their_text)
{
    for (int minor = 11; minor <= 12; minor++) {
        setup_minor(minor);
        const mtp_pyabi_t *A = sc.inert_abi;
        size_t n = make_str(mem, "ino2 and more text", 1);
        cr_expect_eq(read_end(mem, n), (uintptr_t)mem + (uintptr_t)A->str_ascii_data,
                     "3.%d: str", minor);
        cr_expect_eq(read_end(mem, n + 7), (uintptr_t)mem + (uintptr_t)A->str_ascii_data,
                     "3.%d: str, 7 bytes of slack", minor);
        cr_expect_eq(read_end(mem, n + 8), (uintptr_t)mem + n + 8,
                     "3.%d: str in a larger block: read whole", minor);
        n = make_bytes(mem, 333);
        cr_expect_eq(read_end(mem, n), (uintptr_t)mem + (uintptr_t)A->bytes_data,
                     "3.%d: bytes", minor);
        memset(mem, 0, sizeof(mem));
        n = make_code(mem, 301);
        cr_expect_eq(read_end(mem, n), (uintptr_t)mem + (uintptr_t)A->co_code_adaptive,
                     "3.%d: code", minor);
        cr_expect_eq(read_end(mem, n + 16), (uintptr_t)mem + n + 16,
                     "3.%d: code in a larger block: read whole", minor);
    }
}

Test(pyinert, blocks_read_whole_when_the_object_does_not_fit)
{
    setup_minor(11);
    const mtp_pyabi_t *A = sc.inert_abi;
    size_t n = make_str(mem, "some text", 1);
    uint32_t state = (uint32_t)A->str_compact;   /* compact, not ASCII */
    memcpy(mem + A->str_state, &state, sizeof(state));
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "not ASCII");
    n = make_str(mem, "some text", 1);
    mem[n - 1] = 'x';   /* no NUL */
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "no NUL");
    n = make_str(mem, "some text", 0);
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "a count of 0");
    n = make_str(mem, "some text", (int64_t)1 << 33);
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "a count past 32 bits: a pointer");
    n = make_str(mem, "some text", 1);
    put(mem, A->ob_type, (uintptr_t)str_type + 8);
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "another type");
    n = make_bytes(mem, 40);
    put(mem, A->ob_size, 4000);   /* longer than its block */
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "bytes longer than its block");
    memset(mem, 0, sizeof(mem));
    n = make_code(mem, 10);
    put(mem, A->ob_size, 0);
    cr_expect_eq(read_end(mem, n), (uintptr_t)mem + n, "code of no unit");
    cr_expect_eq(read_end(mem, 8), (uintptr_t)mem + 8, "a block of one word");
}

/* A 16-byte block ending a mapping, the next page unmapped: its length
 * field would be past it. */
Test(pyinert, no_read_past_a_small_block)
{
    setup_minor(11);
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *m = page_then_hole(page);
    unsigned char *b = m + page - 16;
    void *const types[] = {str_type, bytes_type, code_type};
    for (int i = 0; i < 3; i++) {
        put(b, 0, 1);
        put(b, 8, (uintptr_t)types[i]);
        cr_expect_eq(read_end(b, 16), (uintptr_t)b + 16, "type %d", i);
    }
    munmap(m, (size_t)page);
}

/* An image's segment: words, then static objects among them. */
Test(pyinert, image_text_found_in_turn)
{
    setup_minor(12);
    const mtp_pyabi_t *A = sc.inert_abi;
    size_t at1 = 64, at2, at3, at4;
    size_t n1 = make_str(mem + at1, "ino2", 999999999);   /* a static object's count */
    at2 = (at1 + n1 + 15) & ~(size_t)15;
    size_t n2 = make_bytes(mem + at2, 21);
    at3 = (at2 + n2 + 15) & ~(size_t)15;
    size_t n3 = make_code(mem + at3, 50);
    at4 = (at3 + n3 + 15) & ~(size_t)15;
    size_t n4 = make_str(mem + at4, "the last one, cut by the segment's end", 1);
    uintptr_t lo = (uintptr_t)mem, hi = (uintptr_t)mem + at4 + n4 - 1, end;
    uintptr_t want[3][2] = {
        {(uintptr_t)mem + at1 + (uintptr_t)A->str_ascii_data,
         ((uintptr_t)mem + at1 + n1 + 7) & ~(uintptr_t)7},
        {(uintptr_t)mem + at2 + (uintptr_t)A->bytes_data,
         ((uintptr_t)mem + at2 + n2 + 7) & ~(uintptr_t)7},
        {(uintptr_t)mem + at3 + (uintptr_t)A->co_code_adaptive,
         ((uintptr_t)mem + at3 + n3 - 8 + 7) & ~(uintptr_t)7}};
    for (int k = 0; k < 3; k++) {
        uintptr_t text = mtp_scan_image_inert(&sc, lo, hi, hi, &end);
        cr_assert_eq(text, want[k][0], "object %d: text at +%zu, want +%zu", k,
                     (size_t)(text - (uintptr_t)mem), (size_t)(want[k][0] - (uintptr_t)mem));
        cr_assert_eq(end, want[k][1], "object %d: end at +%zu, want +%zu", k,
                     (size_t)(end - (uintptr_t)mem), (size_t)(want[k][1] - (uintptr_t)mem));
        lo = end;
    }
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, hi, hi, &end), hi, "the cut str is read");
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, hi + 1, hi + 1, &end),
                 (uintptr_t)mem + at4 + (uintptr_t)A->str_ascii_data, "the whole str is not");
    /* A run of written pages ending inside the object: found as far as the
     * segment's end (lim) allows, whether its text starts in the run or
     * past it; an object starting past the run is not looked at. */
    uintptr_t obj = (uintptr_t)mem + at4, text = obj + (uintptr_t)A->str_ascii_data;
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, obj + 8, hi + 1, &end), text,
                 "the str starting in the run, its text past it");
    cr_expect_eq(end, (obj + n4 + 7) & ~(uintptr_t)7, "its text's end");
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, text + 8, hi + 1, &end), text,
                 "the str, its text starting in the run");
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, obj, hi + 1, &end), obj, "past the run: none");
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, obj + 8, hi, &end), obj + 8,
                 "cut by the segment's end: none");
    sc.safe = 1;
    cr_expect_eq(mtp_scan_image_inert(&sc, (uintptr_t)mem, hi, hi, &end), hi, "safe: read all");
}

/* An ELF file mapped whole as data passes for a module at offset 0; its
 * writable "segment" may run past the file's mapping, onto unmapped pages:
 * the segment is not read directly (it would fault), but as roots. */
Test(pyinert, image_not_mapped_throughout_not_read)
{
    setup_minor(11);
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *m = page_then_hole(page);
    make_str(m, "static text", 1);
    maps[0] = (mtp_map_t){(uintptr_t)m, (uintptr_t)m + (uintptr_t)page, 0, 1, 1, "/lib/x.so"};
    uintptr_t end, lo = (uintptr_t)m, hi = (uintptr_t)m + 2 * (uintptr_t)page;
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, hi, hi, &end), hi, "past the mapping: no direct read");
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, hi - (uintptr_t)page, hi, &end), hi - (uintptr_t)page,
                 "a segment past the mapping: no direct read either");
    cr_expect_eq(mtp_scan_image_inert(&sc, lo, hi - (uintptr_t)page, hi - (uintptr_t)page, &end),
                 lo + (uintptr_t)sc.inert_abi->str_ascii_data, "within it: the text found");
    munmap(m, (size_t)page);
}
