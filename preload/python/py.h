/* Python support shared between the allocator-domain hooks (pyhooks.c), the
 * stack walker and code registry (pystack.c), the stack table and the writer.
 * The C API table is python/capi.h, the interpreter layout python/abi.h. */
#ifndef MTP_PY_H
#define MTP_PY_H

#include "record/record.h"
#include "python/capi.h"

/* A Python frame in a stack: one word when it fits, else two. Bit 63 marks
 * a Python word (no native return address has it set).
 *   packed: bit 62 set; bits 19-61 the code object's address / 16, bits
 *           0-18 the instruction offset (code objects are 16-byte aligned
 *           and below 2^47; the offset below 2^19);
 *   wide:   bit 62 clear, the code object's address; then the instruction
 *           offset (in bytes, or code units before 3.11; signed) as a word.
 * Everything that writes or reads stack words goes through these three. */
#define MTP_PYWORD_TAG ((uintptr_t)1 << 63)
#define MTP_PYWORD_PACKED ((uintptr_t)1 << 62)
#define MTP_PYWORD_OFF_BITS 19

static inline int mtp_is_pyword(uintptr_t w)
{
    return (w & MTP_PYWORD_TAG) != 0;
}

/* Writes the frame (code, offset) at w; returns the words used (1 or 2). */
static inline uint32_t mtp_pyword_put(uintptr_t *w, uintptr_t code, uintptr_t offset)
{
    if ((code & 15) == 0 && code >> 47 == 0 && offset >> MTP_PYWORD_OFF_BITS == 0) {
        w[0] = MTP_PYWORD_TAG | MTP_PYWORD_PACKED | (code >> 4) << MTP_PYWORD_OFF_BITS | offset;
        return 1;
    }
    w[0] = MTP_PYWORD_TAG | code;
    w[1] = offset;
    return 2;
}

/* The words of the Python frame that starts at w[0] (a Python word), with
 * `avail` words left in the stack: 1 or 2 (a wide frame cut by the end of
 * the stack counts 1, with offset 0). */
static inline uint32_t mtp_pyword_get(const uintptr_t *w, uint32_t avail, uintptr_t *code,
                                      uintptr_t *offset)
{
    if (w[0] & MTP_PYWORD_PACKED) {
        *code = ((w[0] & ~(MTP_PYWORD_TAG | MTP_PYWORD_PACKED)) >> MTP_PYWORD_OFF_BITS) << 4;
        *offset = w[0] & (((uintptr_t)1 << MTP_PYWORD_OFF_BITS) - 1);
        return 1;
    }
    *code = w[0] & ~MTP_PYWORD_TAG;
    *offset = avail > 1 ? w[1] : 0;
    return avail > 1 ? 2 : 1;
}

/* The words of the frame at w[0], native (1) or Python (1 or 2). */
static inline uint32_t mtp_frame_words(const uintptr_t *w, uint32_t avail)
{
    uintptr_t code, offset;
    return mtp_is_pyword(w[0]) ? mtp_pyword_get(w, avail, &code, &offset) : 1;
}

/* pycode.c: the code registry */
void mtp_py_stack_setup(void);             /* after mtp_pyapi is bound */
/* The stack source of record/record.h once Python support is on: a Python
 * (or, with --native, hybrid) stack id for the calling thread. */
uint32_t mtp_py_stack(mtp_thread_t *t);
/* Called by the stack table before it publishes a new stack: registers the
 * code objects of the Python frames that start in its first new_words
 * words (the rest are in shared chunks whose first stack registered them;
 * a reference is taken on each, so an address is never reused for another
 * code object) and resolves their file, function and line. The GIL is held
 * (such stacks are only captured by a thread holding it). */
void mtp_py_retain(const uintptr_t *words, uint32_t n, uint32_t new_words);
/* The code objects the registry holds a reference to (so that they outlive
 * the stacks naming them): up to max into out; returns how many there are.
 * Any thread; the leak scan counts them as held (memtrail's own references). */
size_t mtp_py_held(uintptr_t *out, size_t max);

/* Writer side: the resolved location of a Python frame. */
typedef struct mtp_pyloc {
    const char *file, *function;
    uint32_t file_len, function_len;
    int32_t line;
} mtp_pyloc_t;
/* Returns a dense index (>= 0) for (code, offset) and fills *loc (if not
 * NULL), or -1 if unknown. */
int64_t mtp_py_lookup(uintptr_t code, uintptr_t offset, mtp_pyloc_t *loc);

typedef struct mtp_pyentry {
    uintptr_t code, offset;
    mtp_pyloc_t loc;
} mtp_pyentry_t;
/* The entry with that index (from mtp_py_lookup). Returns 0, or -ENOENT. */
int mtp_py_entry(int64_t idx, mtp_pyentry_t *out);

#endif /* MTP_PY_H */
