/* Python support shared between the allocator-domain hooks (pyhooks.c), the
 * stack walker and code registry (pystack.c), the stack table and the writer.
 * The C API table is python/capi.h, the interpreter layout python/abi.h. */
#ifndef MTP_PY_H
#define MTP_PY_H

#include "record/record.h"
#include "python/capi.h"

/* A Python frame takes two words in a stack: (MTP_PYWORD_TAG | code object
 * address) then the instruction offset in bytes (signed, as intptr_t). No
 * native return address has bit 63 set. */
#define MTP_PYWORD_TAG ((uintptr_t)1 << 63)

static inline int mtp_is_pyword(uintptr_t w)
{
    return (w & MTP_PYWORD_TAG) != 0;
}

/* pycode.c: the code registry */
void mtp_py_stack_setup(void);             /* after mtp_pyapi is bound */
/* The stack source of record/record.h once Python support is on: a Python
 * (or, with --native, hybrid) stack id for the calling thread. */
uint32_t mtp_py_stack(mtp_thread_t *t);
/* Called by the stack table before it publishes a new stack: registers the
 * code objects of its Python frames (a reference is taken on each, so an
 * address is never reused for another code object) and resolves their
 * file, function and line. The GIL is held (such stacks are only captured
 * by a thread holding it). */
void mtp_py_retain(const uintptr_t *words, uint32_t n);

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
