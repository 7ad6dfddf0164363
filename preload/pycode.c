/*
 * The code registry: names Python frames for the writer without the GIL.
 *
 * When the stack table is about to publish a stack it has never seen,
 * mtp_py_retain registers each (code object, offset) of it. That is the only
 * cold Python work, done by the thread that captured the stack, which holds
 * the GIL: it takes a reference on each new code object (so its address is
 * never reused while our stacks name it), copies its file and function name
 * into an arena of our own, and resolves the line with PyCode_Addr2Line.
 * Inserts are serialized by a spin lock; entries are published with a
 * release store of their key, and the writer reads them lock-free. Nothing
 * is ever removed, so the writer never touches a Python object: snapshots
 * need no GIL, even after the interpreter has finalized.
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "py.h"

mtp_pyapi_t mtp_pyapi;   /* written once by pyhooks.c's bind before mtp_py_on is set */

/* ---- the registry ---- */
#define CODE_SLOTS (1u << 20)
#define LOC_SLOTS (1u << 22)
#define ARENA_BYTES ((size_t)64 << 20)

typedef struct code_ent {
    _Atomic uintptr_t code;     /* key, published last (release) */
    uint32_t file_off, file_len;
    uint32_t name_off, name_len;
} code_ent_t;

typedef struct loc_ent {
    _Atomic uintptr_t code;     /* key part 1, published last (release) */
    uintptr_t offset;           /* key part 2 */
    uint32_t code_slot;
    int32_t line;
} loc_ent_t;

static code_ent_t *codes;       /* insert-only, lock-free readers */
static loc_ent_t *locs;         /* insert-only, lock-free readers */
static char *arena;             /* name bytes, append-only */
static size_t arena_used;       /* under reg_lock */
static atomic_flag reg_lock = ATOMIC_FLAG_INIT;
static uint64_t reg_full;       /* under reg_lock: registrations that found no room */

void mtp_py_stack_setup(void)
{
    int prot = PROT_READ | PROT_WRITE, fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    void *c = mmap(NULL, CODE_SLOTS * sizeof(code_ent_t), prot, fl, -1, 0);
    void *l = mmap(NULL, LOC_SLOTS * sizeof(loc_ent_t), prot, fl, -1, 0);
    void *a = mmap(NULL, ARENA_BYTES, prot, fl, -1, 0);
    if (c == MAP_FAILED || l == MAP_FAILED || a == MAP_FAILED)
        return;   /* Python frames stay unnamed ("<unknown>") */
    codes = c;
    locs = l;
    arena = a;
    mtp_stack_new_hook = mtp_py_retain;
}

static inline size_t hash_ptr(uintptr_t p, uintptr_t off)
{
    uint64_t h = (p ^ (off * 0xff51afd7ed558ccdull)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 24);
}

/* The UTF-8 bytes of a str object, copied into the arena. Compact ASCII
 * strings (nearly every file and function name) are read directly; others
 * go through PyUnicode_AsUTF8AndSize with the error state saved. */
static uint32_t copy_str(const char *obj, uint32_t *len)
{
    const char *data = NULL;
    ssize_t n = 0;
    *len = 0;
    if (!obj)
        return 0;
    uint32_t state = *(const uint32_t *)(obj + 32);
    if ((state & (1u << 5)) && (state & (1u << 6))) {      /* compact, ascii */
        data = obj + (mtp_pyapi.minor >= 12 ? 40 : 48);
        n = *(const ssize_t *)(obj + 16);
    } else {
        void *et, *ev, *etb;
        mtp_pyapi.err_fetch(&et, &ev, &etb);
        data = mtp_pyapi.as_utf8((void *)obj, &n);
        mtp_pyapi.err_restore(et, ev, etb);   /* also drops a failure of ours */
        if (!data)
            n = 0;
    }
    if (n <= 0 || arena_used + (size_t)n > ARENA_BYTES)
        return 0;
    memcpy(arena + arena_used, data, (size_t)n);
    uint32_t off = (uint32_t)arena_used;
    arena_used += (size_t)n;
    *len = (uint32_t)n;
    return off;
}

static int64_t code_slot(uintptr_t code)
{
    size_t i = hash_ptr(code, 0) & (CODE_SLOTS - 1);
    for (size_t k = 0; k < CODE_SLOTS; k++, i = (i + 1) & (CODE_SLOTS - 1)) {
        uintptr_t key = atomic_load_explicit(&codes[i].code, memory_order_acquire);
        if (key == code)
            return (int64_t)i;
        if (key)
            continue;
        const mtp_pylayout_t *L = mtp_pyapi.L;
        const char *co = (const char *)code;
        code_ent_t *e = &codes[i];
        e->file_off = copy_str(mtp_rd_ptr(co, L->co_filename), &e->file_len);
        int name = L->co_qualname != MTP_PY_NONE ? L->co_qualname : L->co_name;
        e->name_off = copy_str(mtp_rd_ptr(co, name), &e->name_len);
        mtp_pyapi.incref((void *)code);
        atomic_store_explicit(&e->code, code, memory_order_release);
        return (int64_t)i;
    }
    return -1;
}

static void retain_one(uintptr_t code, uintptr_t off)
{
    size_t i = hash_ptr(code, off) & (LOC_SLOTS - 1);
    for (size_t k = 0; k < 64; k++, i = (i + 1) & (LOC_SLOTS - 1)) {
        uintptr_t key = atomic_load_explicit(&locs[i].code, memory_order_acquire);
        if (key == code && locs[i].offset == off)
            return;
        if (key)
            continue;
        int64_t cs = code_slot(code);
        if (cs < 0)
            break;
        loc_ent_t *e = &locs[i];
        e->offset = off;
        e->code_slot = (uint32_t)cs;
        e->line = mtp_pyapi.addr2line((void *)code, (int)(intptr_t)off);
        atomic_store_explicit(&e->code, code, memory_order_release);
        return;
    }
    reg_full++;   /* the frame stays "<unknown>" */
}

void mtp_py_retain(const uintptr_t *words, uint32_t n)
{
    if (!locs)
        return;
    while (atomic_flag_test_and_set_explicit(&reg_lock, memory_order_acquire))
        ;
    for (uint32_t i = 0; i + 1 < n; i++) {
        if (mtp_is_pyword(words[i])) {
            retain_one(words[i] & ~MTP_PYWORD_TAG, words[i + 1]);
            i++;
        }
    }
    atomic_flag_clear_explicit(&reg_lock, memory_order_release);
}

int64_t mtp_py_lookup(uintptr_t code, uintptr_t offset, mtp_pyloc_t *loc)
{
    if (!locs)
        return -1;
    size_t i = hash_ptr(code, offset) & (LOC_SLOTS - 1);
    for (size_t k = 0; k < 64; k++, i = (i + 1) & (LOC_SLOTS - 1)) {
        uintptr_t key = atomic_load_explicit(&locs[i].code, memory_order_acquire);
        if (!key)
            return -1;
        if (key != code || locs[i].offset != offset)
            continue;
        const code_ent_t *c = &codes[locs[i].code_slot];
        *loc = (mtp_pyloc_t){arena + c->file_off, arena + c->name_off, c->file_len,
                             c->name_len, locs[i].line};
        return (int64_t)i;
    }
    return -1;
}

int mtp_py_entry(int64_t idx, mtp_pyentry_t *out)
{
    if (!locs || idx < 0 || idx >= (int64_t)LOC_SLOTS)
        return -1;
    uintptr_t code = atomic_load_explicit(&locs[idx].code, memory_order_acquire);
    if (!code)
        return -1;
    out->code = code;
    out->offset = locs[idx].offset;
    return mtp_py_lookup(code, out->offset, &out->loc) == idx ? 0 : -1;
}
