/* Python support shared between the allocator-domain hooks (pyhooks.c), the
 * stack walker and code registry (pystack.c), the stack table and the writer.
 * The C API table is python/capi.h, the interpreter layout python/abi.h. */
#ifndef MTP_PY_H
#define MTP_PY_H

#include "record/record.h"
#include "python/capi.h"

/* A Python frame in a stack: one word when it fits, else two. Bit 63 marks
 * a Python word (no native return address has it set). The frame's code
 * object is named by its registry id (pycode.c: never reused, unlike the
 * object's address), 0 when it has none.
 *   packed: bit 62 set; bits 19-61 the code id, bits 0-18 the instruction
 *           offset (the id below 2^43, the offset below 2^19);
 *   wide:   bit 62 clear, the code id; then the instruction offset (in
 *           bytes, or code units before 3.11; signed) as a word.
 * Everything that writes or reads stack words goes through these three. */
#define MTP_PYWORD_TAG ((uintptr_t)1 << 63)
#define MTP_PYWORD_PACKED ((uintptr_t)1 << 62)
#define MTP_PYWORD_OFF_BITS 19

static inline int mtp_is_pyword(uintptr_t w)
{
    return (w & MTP_PYWORD_TAG) != 0;
}

/* Writes the frame (code id, offset) at w; returns the words used (1 or 2).
 * The id is below 2^62. */
static inline uint32_t mtp_pyword_put(uintptr_t *w, uintptr_t code, uintptr_t offset)
{
    if (code >> (62 - MTP_PYWORD_OFF_BITS) == 0 && offset >> MTP_PYWORD_OFF_BITS == 0) {
        w[0] = MTP_PYWORD_TAG | MTP_PYWORD_PACKED | code << MTP_PYWORD_OFF_BITS | offset;
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
        *code = (w[0] & ~(MTP_PYWORD_TAG | MTP_PYWORD_PACKED)) >> MTP_PYWORD_OFF_BITS;
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

/* A registered code object: its address when it was registered (alive then;
 * only ever compared, and shown as a Python frame's pc) and its names in the
 * registry's arena. */
typedef struct mtp_pycode {
    uintptr_t code;
    uint32_t file_off, file_len;
    uint32_t name_off, name_len;
    uint64_t hash;        /* of file, name, first line and line table */
    /* Under the registry's lock (pycode.c): where the last line lookup of
     * this id left off in its line table (the range's pointers are not
     * kept: `pos` is lo_next's offset in the table; range_len 0: none). */
    mtp_pyrange_t range;
    uint32_t range_pos, range_len;
} mtp_pycode_t;
extern mtp_pycode_t *mtp_py_codes;    /* entry id - 1; written before the id is published */
extern uint32_t mtp_py_ncodes;        /* ids issued; written under the registry's lock, GIL held */

/* A code object's extra slot holds (id << 8) | MTP_PY_ID_TAG: an odd low
 * byte no pointer another tool keeps there has. */
#define MTP_PY_ID_TAG 0x6du
static inline uintptr_t mtp_py_id_slot(uintptr_t id)
{
    return id << 8 | MTP_PY_ID_TAG;
}

/* The id a slot's value holds, or 0 (empty, or another tool's value). */
static inline uintptr_t mtp_py_slot_id(uintptr_t v)
{
    return (v & 0xff) == MTP_PY_ID_TAG && (v >> 8) - 1 < mtp_py_ncodes ? v >> 8 : 0;
}
extern ssize_t mtp_py_extra_index;    /* the PEP 523 extra slot; < 0: none (yet) */
/* Code objects with extra slots deallocated so far (pycode.c; atomic, raised
 * with the GIL held before the object's memory is freed). */
extern _Atomic uint64_t mtp_py_code_deaths;
/* The walk's cold path: registers a code object without an id (GIL held). */
uintptr_t mtp_py_code_register(const char *code);
/* Set by hook/pyhooks.c (a seam for tests): whether the recording thread
 * may call CPython's allocators now (setting a code object's extra slot
 * allocates). NULL: always. When it may not, a new code object is held by a
 * reference and found by address until it is seen again from a place where
 * it may; one only ever seen from such places stays held. */
extern int (*mtp_py_may_allocate)(void);
/* The code objects the registry holds that way: up to max into out; returns
 * how many there are. The leak scan (threads stopped) counts them as held:
 * memtrail's own references. */
size_t mtp_py_pinned(uintptr_t *out, size_t max);

/* pyown.c: the registry of memtrail's own Python blocks (untraced; read by
 * the leak scan as roots, handed to the program by the reuse wrapper). Set
 * on a thread while it does memtrail's own Python work with the hook guard
 * set: the domain wrappers then register the blocks they are asked for
 * (not those an allocator asks for underneath). */
extern MTP_TLS int mtp_py_owning;
/* Whether p may be registered, without the lock: every free and reuse of
 * a Python domain asks. The addresses ever registered lie in [lo, hi), and
 * a registered address's filter counter (how many registered addresses
 * hash to it, under the lock; 255 sticks) is not 0. The range alone let
 * nearly every free take the lock and probe the table (4.6% of a traced
 * Python workload's samples): memtrail's few hundred blocks lie all over
 * the heap. */
extern _Atomic uintptr_t mtp_py_own_lo, mtp_py_own_hi;
#define MTP_PY_OWN_FILTER (1u << 14)
extern _Atomic uint8_t mtp_py_own_filter[MTP_PY_OWN_FILTER];
static inline uint32_t mtp_py_own_filter_at(uintptr_t a)
{
    return (uint32_t)(((uint64_t)a * 0x9e3779b97f4a7c15ull) >> 50);   /* 14 bits */
}
static inline int mtp_py_own_maybe(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a >= atomic_load_explicit(&mtp_py_own_lo, memory_order_relaxed) &&
           a < atomic_load_explicit(&mtp_py_own_hi, memory_order_relaxed) &&
           atomic_load_explicit(&mtp_py_own_filter[mtp_py_own_filter_at(a)],
                                memory_order_relaxed) != 0;
}
void mtp_py_own_add(void *p, size_t size, unsigned domain);
/* Takes p out of the registry: 1 (its size and domain set when asked), or 0. */
int mtp_py_own_forget(const void *p, size_t *size, unsigned *domain);
/* The registered blocks, (address, size) pairs, up to max into out; returns
 * how many there are (the leak scan, threads stopped, without the lock). */
size_t mtp_py_own_blocks(uintptr_t *out, size_t max);
void mtp_py_own_atfork_prepare(void);   /* core/control.c's fork handlers */
void mtp_py_own_atfork_parent(void);
void mtp_py_own_atfork_child(void);

/* The id of a code object of a running frame (GIL held): read from its
 * extra slot (tagged: another interpreter's slot may hold another tool's
 * value), registered on first sight. 0: none. */
static inline uintptr_t mtp_py_code_id(const mtp_pyabi_t *A, const char *code)
{
    ssize_t idx = mtp_py_extra_index;
    uintptr_t id = idx >= 0 ? mtp_py_slot_id(mtp_py_code_extra(A, code, idx)) : 0;
    if (__builtin_expect(id != 0, 1))
        return id;
    return idx == -2 ? 0 : mtp_py_code_register(code);
}

/* The code objects of the walk being recorded on this thread, outermost
 * first, with their ids: the stack table's hook (mtp_py_retain) resolves
 * new (id, offset) pairs against these live objects. Set by mtp_py_stack
 * around mtp_stack_intern. */
typedef struct mtp_pywalk {
    const char *const *code;
    const uintptr_t *id;
    uint32_t n;
} mtp_pywalk_t;
extern MTP_TLS const mtp_pywalk_t *mtp_py_cur_walk;

/* The stack source of record/record.h once Python support is on: a Python
 * (or, with --native, hybrid) stack id for the calling thread. */
uint32_t mtp_py_stack(mtp_thread_t *t);
/* Called by the stack table before it publishes a new stack: resolves the
 * line of each (code id, offset) of the Python frames that start in its
 * first new_words words (the rest are in shared chunks whose first stack
 * resolved them). The GIL is held (such stacks are only captured by a
 * thread holding it), so the frames' code objects are alive. */
void mtp_py_retain(const uintptr_t *words, uint32_t n, uint32_t new_words);

/* Writer side: the resolved location of a Python frame. */
typedef struct mtp_pyloc {
    const char *file, *function;
    uint32_t file_len, function_len;
    int32_t line;
} mtp_pyloc_t;
/* Returns a dense index (>= 0) for (code id, offset) and fills *loc (if
 * not NULL), or -1 if unknown. */
int64_t mtp_py_lookup(uintptr_t id, uintptr_t offset, mtp_pyloc_t *loc);

typedef struct mtp_pyentry {
    uintptr_t code, offset;
    mtp_pyloc_t loc;
} mtp_pyentry_t;
/* The entry with that index (from mtp_py_lookup). Returns 0, or -ENOENT. */
int mtp_py_entry(int64_t idx, mtp_pyentry_t *out);

#endif /* MTP_PY_H */
