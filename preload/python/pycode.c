/*
 * The code registry: names Python frames for the writer without the GIL.
 *
 * When the stack table is about to publish a stack it has never seen,
 * mtp_py_retain registers each (code object, offset) in its new words (its
 * outer words, in chunks shared with stacks stored before, were registered
 * with the first stack that held them). That is the only
 * cold Python work, done by the thread that captured the stack, which holds
 * the GIL: it takes a reference on each new code object (so its address is
 * never reused while our stacks name it), copies its file and function name
 * into an arena of our own, and resolves the line with PyCode_Addr2Line.
 * Inserts are serialized by a spin lock; entries are published with a
 * release store of their key, and the writer reads them lock-free. Nothing
 * is ever removed, so the writer never touches a Python object: snapshots
 * need no GIL, even after the interpreter has finalized.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "base/index.h"
#include "base/util.h"
#include "python/py.h"

/* ---- the registry ----
 * Entries are dense arrays filled in order; open-addressing index tables
 * (u32: entry + 1, 0 = empty) find them. The index tables are the only
 * memory touched at random, so they start small (INDEX_FIRST slots) and
 * double when two thirds full: the inserter (reg_lock held) builds the
 * bigger table from the dense array and publishes it with a release store.
 * A reader still probing an older table finds every entry published before
 * the switch; an entry published after it is reached only through the new
 * table, which the reader's acquire of the stack naming it makes visible.
 * Older tables are never unmapped (readers may hold them); together they
 * are smaller than the current one. */
#define INDEX_FIRST (1u << 12)
#define CODE_MAX (1u << 17)                 /* code objects */
#define LOC_MAX (1u << 20)                  /* (code, offset) pairs */
#define ARENA_BYTES ((size_t)64 << 20)

typedef struct code_ent {
    uintptr_t code;
    uint32_t file_off, file_len;
    uint32_t name_off, name_len;
} code_ent_t;

typedef struct loc_ent {
    uintptr_t code, offset;
    uint32_t code_idx;
    int32_t line;
} loc_ent_t;

static _Atomic(mtp_index_t *) code_tab, loc_tab;   /* release-published */
static code_ent_t *codes;        /* dense; written before its index is published */
static loc_ent_t *locs;          /* dense; likewise */
static uint32_t ncodes, nlocs;   /* under reg_lock */
static char *arena;              /* name bytes, append-only */
static size_t arena_used;        /* under reg_lock */
static atomic_flag reg_lock = ATOMIC_FLAG_INIT;

static void *reserve(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline size_t hash_ptr(uintptr_t p, uintptr_t off)
{
    uint64_t h = (p ^ (off * 0xff51afd7ed558ccdull)) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 24);
}

/* The index keys of entry idx - 1 (index ids are entry + 1). */
static uint64_t code_hash(uint32_t id)
{
    return hash_ptr(codes[id - 1].code, 0);
}

static uint64_t loc_hash(uint32_t id)
{
    return hash_ptr(locs[id - 1].code, locs[id - 1].offset);
}

/* reg_lock held: room in *tp for one more entry after `count`, the index
 * doubled and published if needed. 0, or -ENOMEM. */
static int index_room(_Atomic(mtp_index_t *) *tp, uint32_t count, uint64_t (*hash_of)(uint32_t))
{
    mtp_index_t *t = atomic_load_explicit(tp, memory_order_relaxed);
    mtp_index_t *n = mtp_index_room(t, count, 2, 3, hash_of);
    if (!n)
        return -ENOMEM;
    if (n != t)
        atomic_store_explicit(tp, n, memory_order_release);
    return 0;
}

void mtp_py_stack_setup(void)
{
    mtp_index_t *ct = mtp_index_new(INDEX_FIRST), *lt = mtp_index_new(INDEX_FIRST);
    codes = reserve(CODE_MAX * sizeof(*codes));
    locs = reserve(LOC_MAX * sizeof(*locs));
    arena = reserve(ARENA_BYTES);
    if (!ct || !lt || !codes || !locs || !arena) {
        locs = NULL;   /* Python frames stay unnamed ("<unknown>") */
        return;
    }
    atomic_store(&code_tab, ct);
    atomic_store(&loc_tab, lt);
    mtp_stack_new_hook = mtp_py_retain;
}

/* The UTF-8 bytes of a str object, copied into the arena. Compact ASCII
 * strings (nearly every file and function name) are read directly; others
 * go through PyUnicode_AsUTF8AndSize with the error state saved. */
static uint32_t copy_str(const char *obj, uint32_t *len)
{
    ssize_t n = 0;
    *len = 0;
    if (!obj)
        return 0;
    const char *data = mtp_py_str_ascii(mtp_pyapi.abi, obj, &n);
    if (!data) {
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

/* The entry of a code object, registered (with a reference taken) if new. */
static int64_t code_index(uintptr_t code)
{
    if (ncodes == CODE_MAX || index_room(&code_tab, ncodes, code_hash) < 0)
        return -1;
    mtp_index_t *t = atomic_load_explicit(&code_tab, memory_order_relaxed);
    size_t i = hash_ptr(code, 0) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t k = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (k && codes[k - 1].code == code)
            return k - 1;
        if (k)
            continue;
        const mtp_pyabi_t *A = mtp_pyapi.abi;
        const char *co = (const char *)code;
        code_ent_t *e = &codes[ncodes];
        e->code = code;
        e->file_off = copy_str(mtp_py_code_filename(A, co), &e->file_len);
        e->name_off = copy_str(mtp_py_code_name(A, co), &e->name_len);
        mtp_pyapi.incref((void *)code);
        uint32_t id = ncodes + 1;
        __atomic_store_n(&ncodes, id, __ATOMIC_RELEASE);   /* mtp_py_held reads it */
        atomic_store_explicit(&t->slot[i], id, memory_order_release);
        return id - 1;
    }
}

static void retain_one(uintptr_t code, uintptr_t off)
{
    if (nlocs == LOC_MAX || index_room(&loc_tab, nlocs, loc_hash) < 0)
        return;   /* registry full: the frame stays "<unknown>" */
    mtp_index_t *t = atomic_load_explicit(&loc_tab, memory_order_relaxed);
    size_t i = hash_ptr(code, off) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t k = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (k && locs[k - 1].code == code && locs[k - 1].offset == off)
            return;
        if (k)
            continue;
        int64_t c = code_index(code);
        if (c < 0)
            return;
        loc_ent_t *e = &locs[nlocs];
        *e = (loc_ent_t){code, off, (uint32_t)c,
                         mtp_pyapi.addr2line((void *)code, (int)(intptr_t)off)};
        atomic_store_explicit(&t->slot[i], ++nlocs, memory_order_release);
        return;
    }
}

void mtp_py_retain(const uintptr_t *words, uint32_t n, uint32_t new_words)
{
    if (!locs)
        return;
    while (atomic_flag_test_and_set_explicit(&reg_lock, memory_order_acquire))
        ;
    for (uint32_t i = 0; i < new_words && i < n;) {
        uintptr_t code, offset;
        if (!mtp_is_pyword(words[i])) {
            i++;
            continue;
        }
        uint32_t k = mtp_pyword_get(words + i, n - i, &code, &offset);
        if (k == 2 || (words[i] & MTP_PYWORD_PACKED))   /* not a wide frame cut short */
            retain_one(code, offset);
        i += k;
    }
    atomic_flag_clear_explicit(&reg_lock, memory_order_release);
}

static void fill(uint32_t idx, mtp_pyloc_t *loc)
{
    const loc_ent_t *e = &locs[idx];
    const code_ent_t *c = &codes[e->code_idx];
    *loc = (mtp_pyloc_t){arena + c->file_off, arena + c->name_off, c->file_len, c->name_len,
                         e->line};
}

size_t mtp_py_held(uintptr_t *out, size_t max)
{
    uint32_t n = codes ? __atomic_load_n(&ncodes, __ATOMIC_ACQUIRE) : 0;
    for (uint32_t i = 0; i < n && i < max; i++)
        out[i] = codes[i].code;
    return n;
}

int64_t mtp_py_lookup(uintptr_t code, uintptr_t offset, mtp_pyloc_t *loc)
{
    if (!locs)
        return -1;
    mtp_index_t *t = atomic_load_explicit(&loc_tab, memory_order_acquire);
    size_t i = hash_ptr(code, offset) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t k = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!k)
            return -1;
        if (locs[k - 1].code != code || locs[k - 1].offset != offset)
            continue;
        if (loc)
            fill(k - 1, loc);
        return k - 1;
    }
}

int mtp_py_entry(int64_t idx, mtp_pyentry_t *out)
{
    /* Indices come from mtp_py_lookup, whose acquire load published the entry. */
    if (!locs || idx < 0 || idx >= (int64_t)LOC_MAX)
        return -ENOENT;
    out->code = locs[idx].code;
    out->offset = locs[idx].offset;
    if (!out->code)
        return -ENOENT;
    fill((uint32_t)idx, &out->loc);
    return 0;
}
