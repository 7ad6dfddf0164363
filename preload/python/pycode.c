/*
 * The code registry: names Python frames for the writer without the GIL,
 * and never holds a Python object.
 *
 * Ids. A code object's id is its entry in `codes` + 1. The registry keeps it
 * in the code object's own PEP 523 extra slot (CPython's per-code storage
 * for tools, index requested once), so the stack walk finds it with three
 * loads (mtp_py_code_id in py.h) and stack words carry (id, offset) instead
 * of the object's address. A code object that dies takes its slot with it;
 * one allocated later at the same address has no id and gets a new one. So
 * an id names one code object for the life of the process and no reference
 * is taken: memtrail never extends a code object's lifetime (and, through
 * it, its constants', names' and file name's).
 *
 * Registration (mtp_py_code_register, the walk's cold path) and location
 * entries (mtp_py_retain, when the stack table publishes a stack it has
 * never seen) run on the thread that captured the stack, which holds the
 * GIL and so the code objects of its frames are alive: file and function
 * names are copied into an arena of our own, lines resolved with
 * PyCode_Addr2Line. Inserts are serialized by a spin lock; entries are
 * published with release stores, and the writer reads them lock-free.
 * Nothing is ever removed, so the writer never touches a Python object:
 * snapshots need no GIL, even after the interpreter has finalized.
 *
 * Only the main interpreter's code objects get ids (the extra slot index is
 * per interpreter); frames of other interpreters are named "<unknown>".
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "base/index.h"
#include "base/util.h"
#include "python/py.h"

/* ---- the registry ----
 * Entries are dense arrays filled in order. Locations are found through an
 * open-addressing index table (u32: entry + 1, 0 = empty), the only memory
 * touched at random, so it starts small (INDEX_FIRST slots) and doubles
 * when two thirds full: the inserter (reg_lock held) builds the bigger
 * table from the dense array and publishes it with a release store. A
 * reader still probing an older table finds every entry published before
 * the switch; an entry published after it is reached only through the new
 * table, which the reader's acquire of the stack naming it makes visible.
 * Older tables are never unmapped (readers may hold them); together they
 * are smaller than the current one. */
#define INDEX_FIRST (1u << 12)
#define CODE_MAX (1u << 17)                 /* code objects */
#define LOC_MAX (1u << 20)                  /* (code, offset) pairs */
#define ARENA_BYTES ((size_t)64 << 20)

typedef struct loc_ent {
    uintptr_t id, offset;
    int32_t line;
} loc_ent_t;

static _Atomic(mtp_index_t *) loc_tab;   /* release-published */
mtp_pycode_t *mtp_py_codes;      /* dense; written before its id is published */
uint32_t mtp_py_ncodes;          /* written under reg_lock (release), GIL held */
ssize_t mtp_py_extra_index = -1; /* the extra slot; -1: not requested yet, -2: none (GIL) */
static loc_ent_t *locs;          /* dense; likewise */
static uint32_t nlocs;           /* under reg_lock */
static char *arena;              /* name bytes, append-only */
static size_t arena_used;        /* under reg_lock */
static int extra_checked;        /* under reg_lock: the extra slot read back once */
static mtp_index_t *same_tab;    /* under reg_lock: ids by hash, for find_same */
static atomic_flag reg_lock = ATOMIC_FLAG_INIT;
int (*mtp_py_may_allocate)(void);   /* set once before Python support is on */
MTP_TLS const mtp_pywalk_t *mtp_py_cur_walk;   /* per-thread: set by mtp_py_stack */

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

/* The index key of entry idx - 1 (index ids are entry + 1). */
static uint64_t loc_hash(uint32_t id)
{
    return hash_ptr(locs[id - 1].id, locs[id - 1].offset);
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
    mtp_index_t *lt = mtp_index_new(INDEX_FIRST);
    mtp_pycode_t *codes = reserve(CODE_MAX * sizeof(*codes));
    locs = reserve(LOC_MAX * sizeof(*locs));
    arena = reserve(ARENA_BYTES);
    if (!lt || !codes || !locs || !arena) {
        locs = NULL;   /* Python frames stay unnamed ("<unknown>") */
        return;
    }
    mtp_py_codes = codes;
    same_tab = mtp_index_new(INDEX_FIRST);
    atomic_store(&loc_tab, lt);
    mtp_stack_new_hook = mtp_py_retain;
}

/* The UTF-8 bytes of a str object, copied into the arena. Compact ASCII
 * strings (nearly every file and function name) are read directly; others
 * go through PyUnicode_AsUTF8AndSize with the error state saved. */
static uint32_t copy_str(const char *obj, uint32_t *len, int may)
{
    ssize_t n = 0;
    *len = 0;
    if (!obj)
        return 0;
    const char *data = mtp_py_str_ascii(mtp_pyapi.abi, obj, &n);
    if (!data && may) {   /* the UTF-8 form may be made, and cached: allocates */
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

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&reg_lock, memory_order_acquire))
        ;
}

static void unlock(void)
{
    atomic_flag_clear_explicit(&reg_lock, memory_order_release);
}

/* Deaths of code objects that have extra slots: CPython calls this for
 * each one it deallocates (GIL held), before its memory is freed, and so
 * before another object can take its address. A dying code object's id
 * needs no cleanup; what the count is for is the walk's memo (pystack.c):
 * while it has not moved, a frame's code pointer equal to one the memo kept
 * for a frame with an id is that same code object, still alive. */
_Atomic uint64_t mtp_py_code_deaths;

static void code_died(void *extra)
{
    (void)extra;
    atomic_fetch_add_explicit(&mtp_py_code_deaths, 1, memory_order_relaxed);
}

/* reg_lock held: the extra slot index, requested on the first call (the
 * interpreter exists: a frame is running). */
static ssize_t extra_index(void)
{
    if (mtp_py_extra_index == -1) {
        ssize_t i = mtp_pyapi.request_extra_index(code_died);
        mtp_py_extra_index = i >= 0 ? i : -2;
        if (i < 0)
            mtp_warn("python: no PEP 523 extra slot left for memtrail: Python frames are "
                     "named <unknown>");
    }
    return mtp_py_extra_index;
}

/* Codes registered where the allocators could not be called (from inside
 * another allocator layer, or a native hook: setting the extra slot
 * allocates): found by address, pinned by a reference (so the address
 * names them until then) until a registration that may call the allocators
 * sets their slot and drops it. Under reg_lock. */
#define PENDING_MAX 1024
static MTP_LARGE struct { uintptr_t code, id; } pending[PENDING_MAX];
static uint32_t npending;

/* Equal code objects share an id: same file, name, first line and line
 * table name every offset alike (a module exec'd again, a namedtuple made
 * again), so they share their stacks too. Found through same_tab by their
 * hash. */

static uint64_t same_hash(uint32_t id)
{
    return mtp_py_codes[id - 1].hash;
}

/* reg_lock held: the entry an equal code object registered, or 0. e is the
 * new entry (names copied, hash set), not yet published. */
static uint32_t find_same(const mtp_pycode_t *e)
{
    if (!same_tab)
        return 0;
    for (uint32_t i = (uint32_t)e->hash & same_tab->mask;; i = (i + 1) & same_tab->mask) {
        uint32_t k = atomic_load_explicit(&same_tab->slot[i], memory_order_relaxed);
        if (!k)
            return 0;
        const mtp_pycode_t *o = &mtp_py_codes[k - 1];
        if (o->hash == e->hash && o->file_len == e->file_len && o->name_len == e->name_len &&
            !memcmp(arena + o->file_off, arena + e->file_off, e->file_len) &&
            !memcmp(arena + o->name_off, arena + e->name_off, e->name_len))
            return k;
    }
}

size_t mtp_py_pinned(uintptr_t *out, size_t max)
{
    uint32_t n = __atomic_load_n(&npending, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n && i < max; i++)
        out[i] = __atomic_load_n(&pending[i].code, __ATOMIC_RELAXED);
    return n;
}

/* reg_lock held: sets the code's extra slot to id; 0 or -1. */
static int attach(const char *code, ssize_t idx, uintptr_t id)
{
    uintptr_t v = mtp_py_id_slot(id);
    void *et, *ev, *etb;
    mtp_pyapi.err_fetch(&et, &ev, &etb);
    int rc = mtp_pyapi.code_set_extra((void *)code, idx, (void *)v);
    mtp_pyapi.err_restore(et, ev, etb);   /* also drops a failure of ours */
    if (rc == 0 && !extra_checked) {      /* CPython's private layout, read back once */
        if (mtp_py_code_extra(mtp_pyapi.abi, code, idx) != v) {
            mtp_warn("python: cannot read code objects' extra slots: Python frames are named "
                     "<unknown>");
            mtp_py_extra_index = -2;
            return -1;
        }
        extra_checked = 1;
    }
    return rc < 0 ? -1 : 0;
}

/* reg_lock held: the id of a code object not seen before, or 0: an equal
 * code object's, or a new entry's (published). */
static uintptr_t new_id(const char *code, int may)
{
    const mtp_pyabi_t *A = mtp_pyapi.abi;
    if (mtp_py_ncodes == CODE_MAX)
        return 0;
    mtp_pycode_t *e = &mtp_py_codes[mtp_py_ncodes];
    size_t mark = arena_used;
    e->code = (uintptr_t)code;
    e->range_len = 0;
    e->file_off = copy_str(mtp_py_code_filename(A, code), &e->file_len, may);
    e->name_off = copy_str(mtp_py_code_name(A, code), &e->name_len, may);
    ssize_t ltlen;
    const char *lt = mtp_py_code_linetable(A, code, &ltlen);
    int first = mtp_py_code_firstlineno(A, code);
    uint64_t h = mtp_fnv1a(MTP_FNV_OFFSET, arena + e->file_off, e->file_len);
    h = mtp_fnv1a(h, arena + e->name_off, e->name_len);
    h = mtp_fnv1a(h, &first, sizeof(first));
    e->hash = mtp_fnv1a(h, lt, lt ? (size_t)ltlen : 0);
    uint32_t same = find_same(e);
    if (same) {
        arena_used = mark;   /* the names are the other entry's */
        return same;
    }
    mtp_index_t *t = same_tab ? mtp_index_room(same_tab, mtp_py_ncodes, 2, 3, same_hash) : NULL;
    if (t) {
        same_tab = t;
        mtp_index_put(t, mtp_py_ncodes + 1, e->hash);
    }
    __atomic_store_n(&mtp_py_ncodes, mtp_py_ncodes + 1, __ATOMIC_RELEASE);
    return mtp_py_ncodes;
}

/* The walk's cold path (GIL held, the code object alive): the id of a code
 * object that has none in its slot yet, registered now; 0 when it cannot
 * have one (another interpreter's, the registry full, an extra slot we
 * cannot use). */
MTP_NOINLINE uintptr_t mtp_py_code_register(const char *code)
{
    const mtp_pyabi_t *A = mtp_pyapi.abi;
    uintptr_t id = 0;
    if (!locs || (mtp_pyapi.main_interp && mtp_pyapi.current_interp &&
                  mtp_pyapi.current_interp() != mtp_pyapi.main_interp()))
        return 0;
    int may = !mtp_py_may_allocate || mtp_py_may_allocate();
    int saved = errno;   /* the hook's caller keeps its errno */
    lock();
    ssize_t idx = extra_index();
    if (idx < 0)
        goto out;
    uintptr_t cur = mtp_py_code_extra(A, code, idx);
    if (cur) {   /* ours (registered meanwhile), or a value we must not touch */
        id = mtp_py_slot_id(cur);
        goto out;
    }
    for (uint32_t i = 0; i < npending; i++) {
        if (pending[i].code != (uintptr_t)code)
            continue;
        id = pending[i].id;
        if (may && attach(code, idx, id) == 0) {
            pending[i] = pending[npending - 1];
            __atomic_store_n(&npending, npending - 1, __ATOMIC_RELEASE);
            mtp_pyapi.decref((void *)code);   /* a frame holds it: not the last reference */
        }
        goto out;
    }
    if (!may && npending == PENDING_MAX)
        goto out;
    uintptr_t next = new_id(code, may);
    if (!next)
        goto out;
    if (may) {
        if (attach(code, idx, next) < 0)
            goto out;
    } else {
        mtp_pyapi.incref((void *)code);
        pending[npending].code = (uintptr_t)code;
        pending[npending].id = next;
        __atomic_store_n(&npending, npending + 1, __ATOMIC_RELEASE);
    }
    id = next;
out:
    unlock();
    errno = saved;
    return id;
}

/* reg_lock held: the line of instruction offset `off` in `code` (alive,
 * its id `id`). From 3.10 on, the exported _PyCode_CheckLineNumber moves
 * the id's position in its line table from where its last lookup left it,
 * forward or back, where PyCode_Addr2Line reads the table from its start
 * each time: a code object looked up at offsets near each other (a
 * module's body importing one module after another, a function's lines in
 * turn) reads a few entries. In Debian's `python3 -c pass`, PyCode_Addr2Line
 * was a quarter of what tracing added to the program's thread (16 M
 * instructions for 1,810 lookups). The position is kept as an offset into
 * the table and the range's pointers made from this code object's table at
 * each lookup: an equal code object sharing the id (the first one dead,
 * its table with it) has equal bytes elsewhere. */
static int line_of(uintptr_t id, const char *code, int off)
{
    mtp_pycode_t *c = &mtp_py_codes[id - 1];
    ssize_t len;
    const char *lt;
    if (!mtp_pyapi.check_line || off < 0 ||
        !(lt = mtp_py_code_linetable(mtp_pyapi.abi, code, &len)) || len > UINT32_MAX)
        return mtp_pyapi.addr2line((void *)code, off);
    const uint8_t *t = (const uint8_t *)lt;
    if (c->range_len != (uint32_t)len) {   /* as _PyLineTable_InitAddressRange makes it */
        c->range = (mtp_pyrange_t){-1, 0, -1, {mtp_py_code_firstlineno(mtp_pyapi.abi, code)}};
        c->range_pos = 0;
        c->range_len = (uint32_t)len;
    }
    c->range.opaque.lo_next = t + c->range_pos;
    c->range.opaque.limit = t + len;
    int line = mtp_pyapi.check_line(off, &c->range);
    c->range_pos = (uint32_t)(c->range.opaque.lo_next - t);
    return line;
}

/* reg_lock held: the line of (id, off), resolved with the live code object
 * of the walk being recorded that has this id (*from: where to look first;
 * the stack's Python frames come in the walk's order). */
static void retain_one(uintptr_t id, uintptr_t off, uint32_t *from)
{
    const mtp_pywalk_t *w = mtp_py_cur_walk;
    if (!id || id > mtp_py_ncodes || !w || nlocs == LOC_MAX ||
        index_room(&loc_tab, nlocs, loc_hash) < 0)
        return;   /* no id, or registry full: the frame stays "<unknown>" */
    uint32_t j = *from;   /* counted from the inner end */
    while (j < w->n && w->id[w->n - 1 - j] != id)
        j++;
    if (j == w->n)
        return;
    *from = j + 1;
    j = w->n - 1 - j;
    mtp_index_t *t = atomic_load_explicit(&loc_tab, memory_order_relaxed);
    size_t i = hash_ptr(id, off) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t k = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (k && locs[k - 1].id == id && locs[k - 1].offset == off)
            return;
        if (k)
            continue;
        locs[nlocs] =
            (loc_ent_t){id, off, line_of(id, (const char *)w->code[j], (int)(intptr_t)off)};
        atomic_store_explicit(&t->slot[i], ++nlocs, memory_order_release);
        return;
    }
}

void mtp_py_retain(const uintptr_t *words, uint32_t n, uint32_t new_words)
{
    if (!locs)
        return;
    lock();
    uint32_t from = 0;
    for (uint32_t i = 0; i < new_words && i < n;) {
        uintptr_t id, offset;
        if (!mtp_is_pyword(words[i])) {
            i++;
            continue;
        }
        uint32_t k = mtp_pyword_get(words + i, n - i, &id, &offset);
        if (k == 2 || (words[i] & MTP_PYWORD_PACKED))   /* not a wide frame cut short */
            retain_one(id, offset, &from);
        i += k;
    }
    unlock();
}

static void fill(uint32_t idx, mtp_pyloc_t *loc)
{
    const loc_ent_t *e = &locs[idx];
    const mtp_pycode_t *c = &mtp_py_codes[e->id - 1];
    *loc = (mtp_pyloc_t){arena + c->file_off, arena + c->name_off, c->file_len, c->name_len,
                         e->line};
}

int64_t mtp_py_lookup(uintptr_t id, uintptr_t offset, mtp_pyloc_t *loc)
{
    if (!locs)
        return -1;
    mtp_index_t *t = atomic_load_explicit(&loc_tab, memory_order_acquire);
    size_t i = hash_ptr(id, offset) & t->mask;
    for (;; i = (i + 1) & t->mask) {
        uint32_t k = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!k)
            return -1;
        if (locs[k - 1].id != id || locs[k - 1].offset != offset)
            continue;
        if (loc)
            fill(k - 1, loc);
        return k - 1;
    }
}

int mtp_py_entry(int64_t idx, mtp_pyentry_t *out)
{
    /* Indices come from mtp_py_lookup, whose acquire load published the entry. */
    if (!locs || idx < 0 || idx >= (int64_t)LOC_MAX || !locs[idx].id)
        return -ENOENT;
    out->code = mtp_py_codes[locs[idx].id - 1].code;
    out->offset = locs[idx].offset;
    fill((uint32_t)idx, &out->loc);
    return 0;
}
