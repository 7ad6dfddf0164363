/*
 * The CPython ABI memtrail reads: every structure offset, flag mask and
 * layout rule of the interpreter, one row per minor version 3.8 to 3.13
 * (x86-64, default build), plus the C API structures and constants the
 * preload fills in itself. No other file holds a raw offset into a CPython
 * object: they reach it through the small accessors below.
 *
 * Who writes it: nobody. The rows are constant (abi.c); the row of the
 * running interpreter is chosen once at bind time (python/capi.c, before
 * Python support is switched on) and cached in mtp_pyapi.abi, read-only
 * afterwards. tests/unit/test_pylayout.c checks every field and constant
 * against each installed interpreter's own headers (tests/python/layout_probe.c).
 */
#ifndef MTP_PY_ABI_H
#define MTP_PY_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/util.h"

#define MTP_PY_NONE (-1)   /* field absent in this version */

/* How a frame's position is stored (pos_kind). */
enum mtp_py_pos {
    MTP_PY_POS_LASTI_BYTES = 0,  /* int f_lasti, bytes (3.8, 3.9) */
    MTP_PY_POS_LASTI_UNITS = 1,  /* int f_lasti, 2-byte code units (3.10) */
    MTP_PY_POS_PREV_INSTR = 2,   /* _Py_CODEUNIT *prev_instr (3.11, 3.12) */
    MTP_PY_POS_INSTR_PTR = 3,    /* _Py_CODEUNIT *instr_ptr (3.13) */
};

/* Which function returns the current thread state without checks (tstate_getter). */
enum mtp_py_tstate_getter {
    MTP_PY_TSTATE_UNDERSCORE = 0,  /* _PyThreadState_UncheckedGet (3.8-3.12) */
    MTP_PY_TSTATE_UNCHECKED = 1,   /* PyThreadState_GetUnchecked (3.13) */
};

typedef struct mtp_pyabi {
    int minor;                /* 3.minor */
    /* ---- the thread state ---- */
    int tstate_getter;        /* enum mtp_py_tstate_getter */
    int tstate_global;        /* 1: the "current" thread state is process-wide, ours
                               * only if it is PyGILState_GetThisThreadState() (3.8-3.11) */
    /* in _PyRuntime (3.8-3.11), what _PyThreadState_UncheckedGet and
     * PyGILState_GetThisThreadState read: */
    int rt_tstate;            /* gilstate.tstate_current */
    int rt_auto_interp;       /* gilstate.autoInterpreterState */
    int rt_tss_key;           /* gilstate.autoTSSkey._key (a pthread_key_t) */
    int ts_frame;             /* PyThreadState.frame (3.8-3.10) or .current_frame (3.13) */
    int ts_cframe;            /* PyThreadState.cframe (3.11, 3.12) */
    int cframe_current;       /* _PyCFrame.current_frame (3.11, 3.12) */
    int ts_datastack_chunk;   /* _PyStackChunk *datastack_chunk (3.11+; the leak scan's roots) */
    int ts_datastack_top;     /* PyObject **datastack_top (3.11+) */
    /* ---- _PyStackChunk (3.11+) ---- */
    int chunk_previous;       /* struct _PyStackChunk *previous */
    int chunk_size;           /* size_t size (bytes, header included) */
    int chunk_top;            /* size_t top (slots used) */
    int chunk_data;           /* PyObject *data[] */
    /* ---- frames: PyFrameObject (3.8-3.10) or _PyInterpreterFrame (3.11+) ---- */
    int pos_kind;             /* enum mtp_py_pos */
    int f_back;               /* f_back / previous */
    int f_code;               /* f_code / f_executable (3.13) */
    int f_code_any;           /* 1: f_code may hold another object than a code object (3.13) */
    int f_pos;                /* f_lasti / prev_instr / instr_ptr */
    int f_owner;              /* char owner (3.11+) */
    int f_is_entry;           /* bool is_entry (3.11 only) */
    int owner_generator;      /* FRAME_OWNED_BY_GENERATOR */
    int owner_cstack;         /* FRAME_OWNED_BY_CSTACK (3.12+) */
    /* ---- code objects ---- */
    int co_firstlineno;
    int co_filename;
    int co_name;
    int co_qualname;          /* 3.11+ */
    int co_firsttraceable;    /* int _co_firsttraceable (3.11+) */
    int co_code_adaptive;     /* first code unit (3.11+) */
    int co_extra;             /* void *co_extra: PEP 523's per-code slots, where the code
                               * registry keeps each code object's id (python/pycode.c) */
    int co_linetable;         /* PyObject *co_linetable (3.10+), co_lnotab (3.8, 3.9): bytes */
    /* ---- object header ---- */
    int ob_refcnt;            /* PyObject.ob_refcnt */
    int ob_type;              /* PyObject.ob_type */
    int ob_size;              /* PyVarObject.ob_size */
    int immortal_bit;         /* refcount bit that makes an object immortal (3.12+:
                               * _Py_IsImmortal is (int32_t)ob_refcnt < 0) */
    /* ---- the collector: PyGC_Head before each gc object, and 3.12+ the
     * pre-header (managed dict, weak references) before that ---- */
    int gc_head_size;         /* sizeof(PyGC_Head) */
    int gc_next;              /* PyGC_Head._gc_next: 0 when the object is untracked */
    int preheader_size;       /* Py_TPFLAGS_PREHEADER's words as tracemalloc counts them
                               * (3.12+; its 3.11 does not look before the managed-dict
                               * pointers) */
    int block_preheader_size; /* the words before the collector header of a type with
                               * the pre-header flags, where the allocator's block starts
                               * (_PyType_PreHeaderSize: 3.11's managed dict too; the leak
                               * scan's) */
    /* ---- type objects ---- */
    int tp_name;              /* const char *tp_name */
    int tp_basicsize;         /* Py_ssize_t tp_basicsize */
    int tp_itemsize;          /* Py_ssize_t tp_itemsize */
    int tp_traverse;          /* traverseproc tp_traverse */
    int tp_del;               /* destructor tp_del (legacy finalizer) */
    int tp_finalize;          /* destructor tp_finalize */
    int tp_flags;             /* unsigned long tp_flags */
    /* ---- str: PyASCIIObject ---- */
    int str_length;           /* Py_ssize_t length */
    int str_state;            /* the 32-bit state bit field */
    int str_compact;          /* mask of state.compact */
    int str_ascii;            /* mask of state.ascii */
    int str_ascii_data;       /* compact ASCII text: right after the header */
    /* ---- bytes: PyBytesObject ---- */
    int bytes_data;           /* char ob_sval[] (its length: ob_size) */
    /* ---- split dicts' values arrays (3.11, 3.12): a prefix whose last byte
     * is its size (a multiple of 8), then the values; pointers to them point
     * past the prefix ---- */
    int dict_values_tag;      /* the values' address less what an object's managed-dict
                               * slot holds (3.12: 1, a tag; 3.11: 0); MTP_PY_NONE: no
                               * such layout (3.8-3.10, 3.13) */
} mtp_pyabi_t;

/* The row for 3.minor, or NULL when memtrail does not know that version. */
const mtp_pyabi_t *mtp_pyabi_for(int minor);
/* The name of the thread-state getter of that row. */
const char *mtp_pyabi_tstate_getter(const mtp_pyabi_t *A);

/* ---- the C API structures and constants memtrail fills in itself (the
 * same in 3.8 to 3.13; the test checks them too) ---- */
#define MTP_PY_CODEUNIT_SIZE 2       /* sizeof(_Py_CODEUNIT) */
#define MTP_PY_DOMAIN_RAW 0          /* PYMEM_DOMAIN_RAW */
#define MTP_PY_DOMAIN_MEM 1          /* PYMEM_DOMAIN_MEM */
#define MTP_PY_DOMAIN_OBJ 2          /* PYMEM_DOMAIN_OBJ */
#define MTP_PY_NDOMAINS 3
#define MTP_PY_METH_VARARGS 0x0001   /* METH_VARARGS */
#define MTP_PY_METH_NOARGS 0x0004    /* METH_NOARGS */
#define MTP_PY_METH_O 0x0008         /* METH_O */

/* PyMemAllocatorEx */
typedef struct mtp_pyalloc {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t n, size_t size);
    void *(*realloc)(void *ctx, void *p, size_t size);
    void (*free)(void *ctx, void *p);
} mtp_pyalloc_t;

/* PyCodeAddressRange (3.10+, the same layout to 3.13): a position in a
 * code object's line table, from which the exported
 * _PyCode_CheckLineNumber moves forward or back to the range holding an
 * instruction offset. Made as _PyLineTable_InitAddressRange makes it
 * (python/pycode.c). */
typedef struct mtp_pyrange {
    int ar_start, ar_end, ar_line;
    struct {                  /* struct _opaque: aligned as its pointers are */
        int computed_line;
        const uint8_t *lo_next, *limit;
    } opaque;
} mtp_pyrange_t;

/* PyMethodDef */
typedef struct mtp_pymethod {
    const char *name;
    void *(*meth)(void *self, void *args);
    int flags;
    const char *doc;
} mtp_pymethod_t;

/* ---- accessors: A is the cached row, p the object (any pointer type) ---- */
/* The three readers the object graph and the leak scan reach Python's
 * memory through (MTP_NO_SANITIZE_SCAN: base/util.h). */
MTP_NO_SANITIZE_SCAN static inline const char *mtp_rd_ptr(const void *base, int off)
{
    return *(const char *const *)((const char *)base + off);
}

MTP_NO_SANITIZE_SCAN static inline int64_t mtp_rd_i64(const void *base, int off)
{
    return *(const int64_t *)((const char *)base + off);
}

MTP_NO_SANITIZE_SCAN static inline uint64_t mtp_rd_u64(uintptr_t addr, int off)
{
    return *(const uint64_t *)(addr + (uintptr_t)(intptr_t)off);
}

static inline const char *mtp_py_type(const mtp_pyabi_t *A, const void *obj)
{
    return mtp_rd_ptr(obj, A->ob_type);
}

static inline int64_t mtp_py_refcnt(const mtp_pyabi_t *A, const void *obj)
{
    return mtp_rd_i64(obj, A->ob_refcnt);
}

/* Whether the first word of obj can be an object's count: 1 to 2^32 - 1
 * (3.12+'s immortal ones included). A pointer or 0 is not: what the leak
 * scan takes for a str, bytes or code object (whose contents it does not
 * read) must pass this first. */
static inline int mtp_py_refcnt_plausible(const mtp_pyabi_t *A, const void *obj)
{
    int64_t refcnt = mtp_py_refcnt(A, obj);
    return refcnt > 0 && refcnt <= (int64_t)UINT32_MAX;
}

static inline int mtp_py_immortal(const mtp_pyabi_t *A, int64_t refcnt)
{
    return A->immortal_bit != MTP_PY_NONE && ((uint64_t)refcnt >> A->immortal_bit & 1);
}

/* tp_basicsize + tp_itemsize * |ob_size| */
static inline int64_t mtp_py_obj_size(const mtp_pyabi_t *A, const void *obj, const void *type)
{
    int64_t itemsize = mtp_rd_i64(type, A->tp_itemsize);
    int64_t size = mtp_rd_i64(type, A->tp_basicsize);
    if (itemsize) {
        int64_t n = mtp_rd_i64(obj, A->ob_size);
        size += itemsize * (n < 0 ? -n : n);
    }
    return size;
}

static inline const char *mtp_py_type_name(const mtp_pyabi_t *A, const void *type)
{
    return mtp_rd_ptr(type, A->tp_name);
}

static inline int mtp_py_type_has_finalizer(const mtp_pyabi_t *A, const void *type)
{
    return mtp_rd_ptr(type, A->tp_finalize) || mtp_rd_ptr(type, A->tp_del);
}

/* Py_TPFLAGS_TYPE_SUBCLASS: the type is `type` or a subclass of it, so its
 * instances are classes (the same bit in 3.8 to 3.13). */
#define MTP_PY_TPFLAGS_TYPE_SUBCLASS (1ul << 31)
static inline int mtp_py_type_makes_classes(const mtp_pyabi_t *A, const void *type)
{
    return (mtp_rd_u64((uintptr_t)type, A->tp_flags) & MTP_PY_TPFLAGS_TYPE_SUBCLASS) != 0;
}

/* Py_TPFLAGS_HAVE_GC, and 3.12+'s Py_TPFLAGS_PREHEADER (MANAGED_WEAKREF |
 * MANAGED_DICT): the same bits in every version that has them. */
#define MTP_PY_TPFLAGS_HAVE_GC (1ul << 14)
#define MTP_PY_TPFLAGS_PREHEADER ((1ul << 3) | (1ul << 4))
/* Where the allocator's block holding object obj starts, as CPython's own
 * _PyType_PreHeaderSize (and tracemalloc's lookup of a reused object) says:
 * before the collector header for a gc type, and on 3.12+ before the
 * pre-header too for a type with the flags (3.11's managed-dict words are
 * not counted: its tracemalloc does not either; preheader_size is 0 there). */
static inline uintptr_t mtp_py_obj_block(const mtp_pyabi_t *A, const void *obj)
{
    uint64_t flags = mtp_rd_u64((uintptr_t)mtp_py_type(A, obj), A->tp_flags);
    size_t pre = ((flags & MTP_PY_TPFLAGS_HAVE_GC) ? (size_t)A->gc_head_size : 0) +
                 ((flags & MTP_PY_TPFLAGS_PREHEADER) ? (size_t)A->preheader_size : 0);
    return (uintptr_t)obj - pre;
}

typedef int (*mtp_py_visitproc)(void *obj, void *arg);
typedef int (*mtp_py_traverseproc)(void *obj, mtp_py_visitproc visit, void *arg);

static inline mtp_py_traverseproc mtp_py_type_traverse(const mtp_pyabi_t *A, const void *type)
{
    return (mtp_py_traverseproc)(uintptr_t)mtp_rd_ptr(type, A->tp_traverse);
}

/* ---- code objects and frames (the stack walk: hot) ---- */
static inline const char *mtp_py_code_filename(const mtp_pyabi_t *A, const char *code)
{
    return mtp_rd_ptr(code, A->co_filename);
}

/* co_qualname (3.11+) or co_name */
static inline const char *mtp_py_code_name(const mtp_pyabi_t *A, const char *code)
{
    return mtp_rd_ptr(code, A->co_qualname != MTP_PY_NONE ? A->co_qualname : A->co_name);
}

/* 3.11+: the first code unit, and the first one a traced frame has reached
 * (a frame whose position is before it is still in its prologue). */
static inline const char *mtp_py_code_start(const mtp_pyabi_t *A, const char *code)
{
    return code + A->co_code_adaptive;
}

static inline const char *mtp_py_code_traceable(const mtp_pyabi_t *A, const char *code)
{
    return mtp_py_code_start(A, code) +
           MTP_PY_CODEUNIT_SIZE * (intptr_t)*(const int *)(code + A->co_firsttraceable);
}

/* Slot `index` of a code object's PEP 523 extra slots, or 0 when it has
 * none that far. co_extra points to CPython's private _PyCodeObjectExtra,
 * { Py_ssize_t ce_size; void *ce_extras[ce_size]; } in 3.6 to 3.13, which
 * no header installs: the code registry checks it on the first code object
 * it names (python/pycode.c) before it trusts this reader. */
static inline uintptr_t mtp_py_code_extra(const mtp_pyabi_t *A, const char *code, ssize_t index)
{
    const char *ex = mtp_rd_ptr(code, A->co_extra);
    if (!ex || index >= *(const ssize_t *)ex)
        return 0;
    return ((const uintptr_t *)(ex + sizeof(ssize_t)))[index];
}

/* The bytes of a code object's line table (co_linetable; co_lnotab before
 * 3.10), or NULL: with co_firstlineno, they map every instruction offset
 * to its line. */
static inline const char *mtp_py_code_linetable(const mtp_pyabi_t *A, const char *code,
                                                ssize_t *len)
{
    const char *b = mtp_rd_ptr(code, A->co_linetable);
    *len = b ? (ssize_t)mtp_rd_i64(b, A->ob_size) : 0;
    return b && *len > 0 ? b + A->bytes_data : NULL;
}

static inline int mtp_py_code_firstlineno(const mtp_pyabi_t *A, const char *code)
{
    return *(const int *)(code + A->co_firstlineno);
}

/* The innermost frame of a thread state, or NULL. */
static inline const char *mtp_py_ts_frame(const mtp_pyabi_t *A, const char *ts)
{
    if (A->ts_cframe != MTP_PY_NONE) {
        const char *cf = mtp_rd_ptr(ts, A->ts_cframe);
        return cf ? mtp_rd_ptr(cf, A->cframe_current) : NULL;
    }
    return mtp_rd_ptr(ts, A->ts_frame);
}

static inline const char *mtp_py_frame_back(const mtp_pyabi_t *A, const char *f)
{
    return mtp_rd_ptr(f, A->f_back);
}

static inline const char *mtp_py_frame_code(const mtp_pyabi_t *A, const char *f)
{
    return mtp_rd_ptr(f, A->f_code);
}

/* 3.8-3.10 (pos_kind <= MTP_PY_POS_LASTI_UNITS): f_lasti, in bytes. */
static inline intptr_t mtp_py_frame_lasti(const mtp_pyabi_t *A, const char *f)
{
    intptr_t off = *(const int *)(f + A->f_pos);
    if (A->pos_kind == MTP_PY_POS_LASTI_UNITS)
        off *= MTP_PY_CODEUNIT_SIZE;
    return off;
}

static inline int mtp_py_frame_owner(const mtp_pyabi_t *A, const char *f)
{
    return *(const signed char *)(f + A->f_owner);
}

/* 3.11: the first frame its evaluation-loop call ran */
static inline int mtp_py_frame_is_entry(const mtp_pyabi_t *A, const char *f)
{
    return A->f_is_entry != MTP_PY_NONE && *(const char *)(f + A->f_is_entry);
}

/* Is obj a code object? (3.13, f_code_any: f_executable may be None.) */
static inline int mtp_py_is_code(const mtp_pyabi_t *A, const void *obj, const void *code_type)
{
    return mtp_py_type(A, obj) == (const char *)code_type;
}

/* A compact ASCII str: its text and length, or NULL (read it another way). */
static inline const char *mtp_py_str_ascii(const mtp_pyabi_t *A, const char *str, ssize_t *len)
{
    uint32_t state = *(const uint32_t *)(str + A->str_state);
    if (!(state & (uint32_t)A->str_compact) || !(state & (uint32_t)A->str_ascii))
        return NULL;
    *len = (ssize_t)mtp_rd_i64(str, A->str_length);
    return str + A->str_ascii_data;
}

/* A block starting with a collector header (at `head`): is its object
 * untracked, and its type. The block must be at least mtp_py_gc_min_block. */
static inline size_t mtp_py_gc_min_block(const mtp_pyabi_t *A)
{
    return (size_t)A->gc_head_size + (size_t)A->ob_type + sizeof(void *);
}

static inline int mtp_py_gc_untracked(const mtp_pyabi_t *A, uintptr_t head)
{
    return mtp_rd_u64(head, A->gc_next) == 0;
}

static inline uint64_t mtp_py_gc_obj_type(const mtp_pyabi_t *A, uintptr_t head)
{
    return mtp_rd_u64(head, A->gc_head_size + A->ob_type);
}

/* _PyStackChunk: the slots in use of a chunk that is not the current one
 * ([*lo, *hi)), 0 if its header is inconsistent. */
static inline int mtp_py_chunk_used(const mtp_pyabi_t *A, uintptr_t chunk, uintptr_t *lo,
                                    uintptr_t *hi)
{
    uint64_t used = mtp_rd_u64(chunk, A->chunk_top), size = mtp_rd_u64(chunk, A->chunk_size);
    *lo = chunk + (uintptr_t)A->chunk_data;
    *hi = *lo + used * sizeof(void *);
    return (uint64_t)A->chunk_data + used * sizeof(void *) <= size;
}

#endif /* MTP_PY_ABI_H */
