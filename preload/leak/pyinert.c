/*
 * What the leak scan does not read in Python's objects: the text of str
 * and bytes objects and the bytecode of code objects (3.11+, where it is
 * inline, after the object's fields). Their bytes are characters and
 * instructions, never pointers; but a short run of them padded with zeros
 * is a small number, and in an interpreter that is not position
 * independent (Debian's python3.11) the heap lies in the low gigabytes,
 * where such numbers are addresses. Measured there, in about one run in a
 * hundred a leaked block was called possibly lost because of:
 *   - a static str's text in the executable's data ("ino2", 0x326f6e69);
 *   - LOAD_GLOBAL 9 and its zeroed inline cache, 0x09740001, in the
 *     bytecode of the frozen modules' code objects (in the executable's
 *     data) and of code objects on the heap.
 * valgrind would say the same; a leak tracer that knows the objects need
 * not. The object's own fields (a str's wstr and utf8, a code object's
 * constants and names) are still read: only what follows them is skipped,
 * and that is the end of the object.
 *
 * An object is recognized by its type (str, bytes, code: the interpreter's,
 * found when memtrail bound to it, so also in the final snapshot, written
 * after finalization without a graph), a
 * plausible reference count and a length that ends it where it must: at
 * the end of its block (within one word: the allocation is the object's
 * exact size), or, in a module's image, within its segment and, for str
 * and bytes, on the NUL they always end with.
 *
 * Threads: the writer thread, inside the scan, every other thread stopped
 * (the memory is read directly, an image's segment only when it is mapped
 * readable throughout; a scan whose threads did not all stop, sc->safe,
 * reads blocks and images whole).
 */
#include "leak/leakscan_int.h"
#include "python/capi.h"

#define IMAGE_TEXT_MAX (1u << 20)     /* a static str or bytes object's length, at most */
#define CODE_UNITS_MAX (1u << 24)     /* a code object's code units, at most */
#define CODE_SLACK 16                 /* tp_basicsize past co_code_adaptive, at most */

/* [*lo, *end) of obj's text or bytecode when obj is a str, bytes or code
 * object ending at hi (whole: a block; within a word, or CODE_SLACK for a
 * code object) or below it (an image's segment); else 0. *lo is rounded up
 * to a word (one partly the object's fields is read), *end is not. */
MTP_NO_SANITIZE_SCAN
static int inert_tail(const mtp_scan_t *sc, uintptr_t obj, uintptr_t hi, int whole,
                      uintptr_t *lo, uintptr_t *end)
{
    const mtp_pyabi_t *A = sc->inert_abi;
    uint64_t type = (uintptr_t)mtp_py_type(A, (const void *)obj);
    if (!mtp_py_refcnt_plausible(A, (const void *)obj))
        return 0;
    uintptr_t start, slack;
    if (type == sc->inert_types[0]) {   /* str: compact ASCII only */
        ssize_t len;
        const char *s = obj + (uintptr_t)A->str_ascii_data < hi
                            ? mtp_py_str_ascii(A, (const char *)obj, &len) : NULL;
        if (!s || len <= 0 || (!whole && len > IMAGE_TEXT_MAX) ||
            (uintptr_t)len >= hi - (uintptr_t)s || s[len] != 0)
            return 0;
        start = (uintptr_t)s;
        *end = start + (uintptr_t)len + 1;
        slack = 8;
    } else if (type == sc->inert_types[1]) {   /* bytes */
        start = obj + (uintptr_t)A->bytes_data;   /* past ob_size: checked first */
        if (start >= hi)
            return 0;
        int64_t len = mtp_rd_i64((const void *)obj, A->ob_size);
        if (len <= 0 || (!whole && len > IMAGE_TEXT_MAX) || (uint64_t)len >= hi - start ||
            ((const char *)start)[len] != 0)
            return 0;
        *end = start + (uintptr_t)len + 1;
        slack = 8;
    } else if (type == sc->inert_types[2]) {   /* code (3.11+: bytecode inline) */
        start = obj + (uintptr_t)A->co_code_adaptive;   /* past ob_size: checked first */
        if (start >= hi)
            return 0;
        int64_t units = mtp_rd_i64((const void *)obj, A->ob_size);
        if (units <= 0 || units > CODE_UNITS_MAX ||
            (uint64_t)units * MTP_PY_CODEUNIT_SIZE > hi - start)
            return 0;
        *end = start + (uintptr_t)units * MTP_PY_CODEUNIT_SIZE;
        slack = CODE_SLACK;
    } else {
        return 0;
    }
    if (whole && hi - *end >= slack)
        return 0;
    *lo = (start + 7) & ~(uintptr_t)7;
    return 1;
}

uintptr_t mtp_scan_read_end_slow(const mtp_scan_t *sc, uintptr_t address, uintptr_t end)
{
    uintptr_t lo, tail_end;
    return inert_tail(sc, address, end, 1, &lo, &tail_end) ? lo : end;
}

MTP_NO_SANITIZE_SCAN
uintptr_t mtp_scan_image_inert(const mtp_scan_t *sc, uintptr_t lo, uintptr_t hi, uintptr_t lim,
                               uintptr_t *end)
{
    const mtp_pyabi_t *A = sc->inert_abi;
    /* Read directly: only a segment mapped readable throughout. An ELF
     * file mapped whole as data (libdw's, a program's mmap) passes for a
     * module at offset 0, and its "segments" may lie past its end: they
     * are read as roots, page by page where mapped (mtp_scan_words). */
    if (!A || sc->safe || !mtp_scan_readable(sc, lo, lim))
        return hi;
    uintptr_t text;
    for (uintptr_t obj = (lo + 7) & ~(uintptr_t)7; obj < hi && obj + (uintptr_t)A->ob_type + 8 <= lim;
         obj += 8) {
        uint64_t type = *(const uint64_t *)(obj + (uintptr_t)A->ob_type);
        if (mtp_scan_inert_type(sc, type) && inert_tail(sc, obj, lim, 0, &text, end)) {
            *end = (*end + 7) & ~(uintptr_t)7;
            return text;
        }
    }
    return hi;
}

void mtp_scan_inert_init(mtp_scan_t *sc)
{
    /* Bound once (python/capi.c), before Python is traced; a type not
     * found yet is 0, which no object's type word is. */
    const mtp_pyabi_t *A = __atomic_load_n(&mtp_pyapi.abi, __ATOMIC_ACQUIRE);
    sc->inert_abi = NULL;
    if (!A)
        return;   /* no interpreter: nothing is skipped */
    sc->inert_types[0] = (uintptr_t)mtp_pyapi.atomic_types[0];   /* str */
    sc->inert_types[1] = (uintptr_t)mtp_pyapi.atomic_types[1];   /* bytes */
    sc->inert_types[2] = A->co_code_adaptive != MTP_PY_NONE ? (uintptr_t)mtp_pyapi.code_type : 0;
    sc->inert_abi = A;
}
