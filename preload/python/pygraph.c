/*
 * Capture of the Python object graph for a snapshot: every gc-tracked
 * object, its type, size and reference count, and what its tp_traverse
 * visits.
 *
 * Threads: mtp_pygraph_capture runs on a Python thread that holds the GIL,
 * so no Python code runs while it reads objects; the caller keeps the GIL
 * until the writer has scanned and written the graph (mtp_snapshot_sync),
 * so the graph is still true when the scan looks at memory. The objects
 * come from gc.get_objects(), whose list holds one reference to each: that
 * reference is taken off each count, and the list is dropped before the
 * writer scans. memtrail's own allocations here are not traced (the hook
 * guard is set) and go to mmap'd arrays the writer can read while other
 * threads are stopped.
 *
 * Offsets (the object and type headers, the data stack chunks) come from
 * python/abi.h, the C API from python/capi.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "base/util.h"
#include "python/py.h"
#include "python/pygraph.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uintptr_t mtp_py_own[MTP_PY_OWN_MAX];   /* GIL */
uint32_t mtp_py_nown;                   /* GIL */

/* ---- an address's index in an array whose elements begin with it ----
 * Open addressing: slots hold index + 1 (0 empty), at most half full. The
 * type table (mtp_pytype_t, by its addr) and the far referents (far[]) are
 * found through one each while the graph is captured. */
_Static_assert(offsetof(mtp_pytype_t, addr) == 0, "a type begins with its address");

static inline uint64_t key_at(const void *base, size_t stride, uint32_t i)
{
    return *(const uint64_t *)(const void *)((const char *)base + (size_t)i * stride);
}

static inline uint32_t ahash_slot(uint64_t a, uint32_t nslots)
{
    return (uint32_t)((a * MTP_HASH_MUL) >> 32) & (nslots - 1);
}

/* Room for one element more than `count`: the slots doubled (`first` at
 * first) and filled again when they would be more than half full, their
 * count kept within 32 bits. Returns 0 or -1. */
static int ahash_room(mtp_pyaddr_hash_t *h, const void *base, size_t stride, uint32_t count,
                      uint32_t first)
{
    if ((uint64_t)(count + 1) * 2 <= h->nslots)
        return 0;
    if (h->nslots >= (1u << 31))
        return -1;
    mtp_pyaddr_hash_t n = {.nslots = h->nslots ? h->nslots * 2 : first};
    if (mtp_mm_grow((void **)&n.slots, &n.cap, (size_t)n.nslots * sizeof(*n.slots)) < 0)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t j = ahash_slot(key_at(base, stride, i), n.nslots);
        while (n.slots[j])
            j = (j + 1) & (n.nslots - 1);
        n.slots[j] = i + 1;
    }
    mtp_pyaddr_hash_free(h);
    *h = n;
    return 0;
}

/* The slot of address a: the one holding its index + 1, or the empty one
 * where it goes. */
static uint32_t *ahash_find(const mtp_pyaddr_hash_t *h, const void *base, size_t stride, uint64_t a)
{
    uint32_t j = ahash_slot(a, h->nslots);
    while (h->slots[j] && key_at(base, stride, h->slots[j] - 1) != a)
        j = (j + 1) & (h->nslots - 1);
    return &h->slots[j];
}

void mtp_pyaddr_hash_free(mtp_pyaddr_hash_t *h)
{
    if (h->slots)
        munmap(h->slots, h->cap);
    *h = (mtp_pyaddr_hash_t){0};
}

/* ---- building the graph (all arrays mmap'd) ---- */
typedef struct build {
    mtp_pygraph_t *g;
    const mtp_pyabi_t *A;
    mtp_pyaddr_hash_t types;   /* type address -> index into g->types */
    mtp_pyaddr_hash_t far;     /* far referent -> index into g->far */
    uint64_t from;             /* the object whose references are visited */
    int oom;
} build_t;

/* The word of a far referent: its index in far[], added when new. */
static __attribute__((noinline)) int64_t far_word(mtp_pygraph_t *g, mtp_pyaddr_hash_t *h, uint64_t to)
{
    if (g->nfar >= MTP_PYEDGE_FAR_MAX || ahash_room(h, g->far, sizeof(*g->far), g->nfar, 256) < 0)
        return -1;
    uint32_t *slot = ahash_find(h, g->far, sizeof(*g->far), to);
    if (*slot)
        return (int64_t)(*slot - 1) << 1 | 1;
    if (mtp_mm_grow((void **)&g->far, &g->far_cap, ((size_t)g->nfar + 1) * sizeof(*g->far)) < 0)
        return -1;
    g->far[g->nfar] = to;
    *slot = g->nfar + 1;
    return (int64_t)g->nfar++ << 1 | 1;
}

int mtp_pygraph_add_edge(mtp_pygraph_t *g, mtp_pyaddr_hash_t *h, uint64_t from, uint64_t to)
{
    /* (the growth check inline: this runs for every reference of every object) */
    if (g->nedges == UINT32_MAX ||
        ((g->nedges + 1) * sizeof(*g->edges) > g->edges_cap &&
         mtp_mm_grow_huge((void **)&g->edges, &g->edges_cap,
                          (g->nedges + 1) * sizeof(*g->edges)) < 0))
        return -1;
    int64_t d = (int64_t)(to - from), w;
    if (!(d & 7) && d >= -MTP_PYEDGE_NEAR && d < MTP_PYEDGE_NEAR)
        w = d >> 2;   /* even: a multiple of 8, over 4 */
    else if ((w = far_word(g, h, to)) < 0)
        return -1;
    g->edges[g->nedges++] = (uint32_t)w;
    return 0;
}

static int visit(void *obj, void *arg)
{
    build_t *b = arg;
    if (obj && !b->oom && mtp_pygraph_add_edge(b->g, &b->far, b->from, (uintptr_t)obj) < 0)
        b->oom = 1;
    return 0;
}

/* The type's index in the table, added (name copied) when new. */
MTP_NO_SANITIZE_SCAN
static int64_t type_index(build_t *b, uintptr_t type)
{
    mtp_pygraph_t *g = b->g;
    if (ahash_room(&b->types, g->types, sizeof(*g->types), g->ntypes, 1024) < 0)
        return -1;
    uint32_t *slot = ahash_find(&b->types, g->types, sizeof(*g->types), type);
    if (*slot)
        return *slot - 1;
    const char *name = mtp_py_type_name(b->A, (const void *)type);
    size_t len = name ? strnlen(name, 512) : 0;
    if (mtp_mm_grow((void **)&g->types, &g->types_cap, (g->ntypes + 1) * sizeof(*g->types)) < 0 ||
        mtp_mm_grow((void **)&g->names, &g->names_cap, g->names_len + len + 1) < 0)
        return -1;
    memcpy(g->names + g->names_len, name ? name : "", len);
    g->types[g->ntypes] = (mtp_pytype_t){type, g->names_len, (uint32_t)len};
    g->names_len += (uint32_t)len;
    *slot = g->ntypes + 1;
    return g->ntypes++;
}

MTP_NO_SANITIZE_SCAN
static int add_node(build_t *b, uintptr_t o)
{
    mtp_pygraph_t *g = b->g;
    const mtp_pyabi_t *A = b->A;
    const void *obj = (const void *)o;
    const void *type = mtp_py_type(A, obj);
    int64_t raw = mtp_py_refcnt(A, obj);
    int64_t t = type_index(b, (uintptr_t)type);
    if (t < 0)
        return -1;
    int64_t size = mtp_py_obj_size(A, obj, type);
    uint32_t flags = 0;
    if (mtp_py_immortal(A, raw))
        flags |= MTSNAP_PYOBJ_IMMORTAL;
    if (mtp_py_type_has_finalizer(A, type))
        flags |= MTSNAP_PYOBJ_FINALIZER;
    if (mtp_py_type_makes_classes(A, type))
        flags |= MTSNAP_PYOBJ_CLASS;
    mtp_pynode_t *n = &g->nodes[g->nnodes];
    if (t >= MTP_PYNODE_TYPES)
        return -1;
    uint64_t sz = size > 0 ? (uint64_t)size : 0;
    if (sz >= MTP_PYNODE_BIG) {   /* 4 GiB or more: kept whole beside */
        if (mtp_mm_grow((void **)&g->bigsizes, &g->bigsizes_cap,
                        (g->nbigsizes + 1) * sizeof(*g->bigsizes)) < 0)
            return -1;
        g->bigsizes[g->nbigsizes++] = (mtp_bigsize_t){g->nnodes, sz};
    }
    int64_t refs = raw - 1;
    if (refs < 0 || refs >= MTP_PYNODE_BIG) {   /* kept whole beside */
        if (mtp_mm_grow((void **)&g->bigrefs, &g->bigrefs_cap,
                        (g->nbigrefs + 1) * sizeof(*g->bigrefs)) < 0)
            return -1;
        g->bigrefs[g->nbigrefs++] = (mtp_bigsize_t){g->nnodes, (uint64_t)refs};
    }
    *n = (mtp_pynode_t){.address = o, .edge_first = (uint32_t)g->nedges,
                        .refcount = refs >= 0 && refs < MTP_PYNODE_BIG ? (uint32_t)refs : MTP_PYNODE_BIG,
                        .size = sz < MTP_PYNODE_BIG ? (uint32_t)sz : MTP_PYNODE_BIG,
                        .type = (uint32_t)t, .flags = flags};
    mtp_py_traverseproc trav = mtp_py_type_traverse(A, type);
    b->from = o;
    if (trav)
        trav((void *)o, visit, b);
    if (b->oom)
        return -1;   /* no more edges: the graph would be incomplete */
    g->nnodes++;
    g->nodes[g->nnodes].edge_first = (uint32_t)g->nedges;   /* the end of its edges */
    return 0;
}

static int add_root(mtp_pygraph_t *g, uintptr_t lo, uintptr_t hi)
{
    if (hi <= lo)
        return 0;
    if (mtp_mm_grow((void **)&g->roots, &g->roots_cap, (g->nroots + 1) * 2 * sizeof(uint64_t)) < 0)
        return -1;
    g->roots[2 * g->nroots] = lo;
    g->roots[2 * g->nroots + 1] = hi;
    g->nroots++;
    return 0;
}

/* 3.11+: every thread's frames live in its data stack chunks. The current
 * chunk is used up to tstate->datastack_top, older ones up to their `top`
 * slot. */
MTP_NO_SANITIZE_SCAN
static int datastack_roots(mtp_pygraph_t *g)
{
    const mtp_pyabi_t *A = g->abi;
    if (A->ts_datastack_chunk == MTP_PY_NONE)
        return 0;
    for (void *in = mtp_pyapi.interp_head(); in; in = mtp_pyapi.interp_next(in)) {
        for (void *ts = mtp_pyapi.thread_head(in); ts; ts = mtp_pyapi.thread_next(ts)) {
            uintptr_t chunk = (uintptr_t)mtp_rd_ptr(ts, A->ts_datastack_chunk);
            uintptr_t top = (uintptr_t)mtp_rd_ptr(ts, A->ts_datastack_top), lo, hi;
            if (chunk && add_root(g, chunk + (uintptr_t)A->chunk_data, top) < 0)
                return -1;
            for (uintptr_t c = chunk ? (uintptr_t)mtp_rd_ptr((void *)chunk, A->chunk_previous) : 0;
                 c; c = (uintptr_t)mtp_rd_ptr((void *)c, A->chunk_previous)) {
                if (mtp_py_chunk_used(A, c, &lo, &hi) && add_root(g, lo, hi) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The collectable types: every node's, plus frame, tuple and dict. */
static int gather_gctypes(mtp_pygraph_t *g)
{
    size_t n = g->ntypes + MTP_PY_EXTRA_GCTYPES, k = 0;
    if (mtp_mm_grow((void **)&g->gctypes, &g->gctypes_cap, n * sizeof(uint64_t)) < 0)
        return -1;
    for (uint32_t i = 0; i < g->ntypes; i++)
        g->gctypes[k++] = g->types[i].addr;
    for (int i = 0; i < MTP_PY_EXTRA_GCTYPES; i++)
        if (mtp_pyapi.extra_gctypes[i])
            g->gctypes[k++] = (uintptr_t)mtp_pyapi.extra_gctypes[i];
    qsort(g->gctypes, k, sizeof(uint64_t), cmp_u64);   /* small: the number of types */
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || g->gctypes[u - 1] != g->gctypes[i])
            g->gctypes[u++] = g->gctypes[i];
    g->ngctypes = (uint32_t)u;
    return 0;
}

/* The standard library's directory: os.__file__ without its last part. */
static void find_stdlib(mtp_pygraph_t *g)
{
    void *os = mtp_pyapi.import("os"), *file = os ? mtp_pyapi.getattr(os, "__file__") : NULL;
    ssize_t len = 0;
    const char *s = file ? mtp_pyapi.as_utf8(file, &len) : NULL;
    if (s) {
        const char *slash = memrchr(s, '/', (size_t)len);
        if (slash)
            snprintf(g->stdlib, sizeof(g->stdlib), "%.*s/", (int)(slash - s), s);
    }
    if (file)
        mtp_pyapi.decref(file);
    if (os)
        mtp_pyapi.decref(os);
    mtp_pyapi.err_clear();
}

static void gc_state(mtp_pygraph_t *g, void *gc)
{
    void *f = mtp_pyapi.getattr(gc, "isenabled"), *r = f ? mtp_pyapi.call(f, NULL) : NULL;
    g->gc_enabled = r ? mtp_pyapi.is_true(r) == 1 : 1;
    if (r)
        mtp_pyapi.decref(r);
    if (f)
        mtp_pyapi.decref(f);
    f = mtp_pyapi.getattr(gc, "get_count");
    r = f ? mtp_pyapi.call(f, NULL) : NULL;
    for (int i = 0; r && i < 3; i++) {
        void *item = mtp_pyapi.tuple_item(r, i);
        g->generation[i] = item ? (uint32_t)mtp_pyapi.as_long(item) : 0;
    }
    if (r)
        mtp_pyapi.decref(r);
    if (f)
        mtp_pyapi.decref(f);
    mtp_pyapi.err_clear();
}

mtp_pygraph_t *mtp_pygraph_capture(void)
{
    static int warned;
    if (!mtp_pyapi.graph_ok) {
        mtp_warn_once(&warned, "python: the C API lacks what the object graph needs; no graph");
        return NULL;
    }
    uint64_t t0 = mono_ns();
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_HOOK;   /* memtrail's own objects are not traced, */
    int owning = mtp_py_owning;
    mtp_py_owning = 1;                /* but registered (python/pyown.c) */
    void *et, *ev, *etb;
    mtp_pyapi.err_fetch(&et, &ev, &etb);
    build_t b = {0};
    mtp_pygraph_t *g = mmap(NULL, sizeof(*g), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    void *gc = NULL, *getobj = NULL, *list = NULL;
    int ok = 0;
    if (g == MAP_FAILED) {
        g = NULL;
        goto out;
    }
    memset(g, 0, sizeof(*g));
    b.g = g;
    b.A = g->abi = mtp_pyapi.abi;
    g->minor = mtp_pyapi.minor;
    g->capturer = (int)syscall(SYS_gettid);
    for (int i = 0; i < MTP_PY_ATOMIC_TYPES; i++)
        g->atomic_types[i] = (uintptr_t)mtp_pyapi.atomic_types[i];
    gc = mtp_pyapi.import("gc");
    getobj = gc ? mtp_pyapi.getattr(gc, "get_objects") : NULL;
    if (!getobj)
        goto out;
    gc_state(g, gc);
    list = mtp_pyapi.call(getobj, NULL);
    ssize_t n = list ? mtp_pyapi.list_size(list) : -1;
    if (n < 0 || mtp_mm_grow((void **)&g->nodes, &g->nodes_cap, ((size_t)n + 1) * sizeof(*g->nodes)) < 0)
        goto out;
    for (ssize_t i = 0; i < n; i++) {
        void *o = mtp_pyapi.list_item(list, i);
        if (o && add_node(&b, (uintptr_t)o) < 0)
            goto out;
    }
    if (datastack_roots(g) < 0 || gather_gctypes(g) < 0 ||
        add_root(g, (uintptr_t)mtp_py_own, (uintptr_t)(mtp_py_own + mtp_py_nown)) < 0)
        goto out;
    find_stdlib(g);
    /* The references came one at a time, filled ahead of use: what is past
     * them would stay with the graph until the snapshot is written. */
    mtp_mm_trim(g->edges, g->edges_cap, g->nedges * sizeof(*g->edges));
    ok = 1;
out:
    if (list)
        mtp_pyapi.decref(list);
    if (getobj)
        mtp_pyapi.decref(getobj);
    if (gc)
        mtp_pyapi.decref(gc);
    mtp_pyaddr_hash_free(&b.types);
    mtp_pyaddr_hash_free(&b.far);
    mtp_pyapi.err_clear();
    mtp_pyapi.err_restore(et, ev, etb);
    mtp_py_owning = owning;
    mtp_tls_guard = guard;
    if (!ok) {
        mtp_warn_once(&warned, "python: cannot capture the object graph (out of memory?); "
                               "snapshots go on without it");
        mtp_pygraph_free(g);
        return NULL;
    }
    g->capture_ns = mono_ns() - t0;
    return g;
}

/* Writer: g->order = node indices by address. When the addresses, less the
 * lowest and their common low zero bits, and the indices fit one word
 * together (a heap's objects do), the words are sorted: half the memory of
 * (key, value) pairs, and half the bytes moved by each pass. */
static int sort_packed(mtp_pygraph_t *g)
{
    /* The low zero bits all differences share: those of the differences
     * from any one address (here the first), so one pass finds them too. */
    uint64_t lo = UINT64_MAX, hi = 0, low_bits = 0, first = g->nodes[0].address;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        uint64_t a = g->nodes[i].address;
        lo = a < lo ? a : lo;
        hi = a > hi ? a : hi;
        low_bits |= a ^ first;
    }
    unsigned shift = low_bits ? (unsigned)__builtin_ctzll(low_bits) : 0;
    uint64_t span = (hi - lo) >> shift;
    unsigned kbits = span ? 64 - (unsigned)__builtin_clzll(span) : 0;
    unsigned ibits = 64 - (unsigned)__builtin_clzll((uint64_t)g->nnodes);
    if (kbits + ibits > 64)
        return 1;   /* does not fit: the pairs' sort */
    size_t cap = 0;
    uint64_t *w = NULL;
    if (mtp_mm_grow((void **)&w, &cap, ((size_t)g->nnodes + 1) * sizeof(*w)) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < g->nnodes; i++)
        w[i] = ((g->nodes[i].address - lo) >> shift) << ibits | i;
    int r = mtp_sort_words(w, g->nnodes, ibits, ibits + kbits);
    uint64_t imask = (1ull << ibits) - 1;
    for (uint32_t i = 0; r == 0 && i < g->nnodes; i++)
        g->order[i] = (uint32_t)(w[i] & imask);
    munmap(w, cap);
    return r;
}

int mtp_pygraph_sort(mtp_pygraph_t *g)
{
    size_t cap = 0;
    mtp_keyed_t *tmp = NULL;
    if (g->order)
        return 0;
    if (mtp_mm_grow((void **)&g->order, &g->order_cap, ((size_t)g->nnodes + 1) * sizeof(uint32_t)) < 0)
        return -ENOMEM;
    int r = g->nnodes ? sort_packed(g) : 0;
    if (r > 0) {
        r = mtp_mm_grow((void **)&tmp, &cap, ((size_t)g->nnodes + 1) * sizeof(*tmp));
        for (uint32_t i = 0; r == 0 && i < g->nnodes; i++)
            tmp[i] = (mtp_keyed_t){g->nodes[i].address, i};
        if (r == 0)
            r = mtp_sort_keyed(tmp, g->nnodes);
        for (uint32_t i = 0; r == 0 && i < g->nnodes; i++)
            g->order[i] = (uint32_t)tmp[i].value;
        if (tmp)
            munmap(tmp, cap);
    }
    if (r < 0) {   /* no order: the graph is not scanned nor written */
        munmap(g->order, g->order_cap);
        g->order = NULL;
        g->order_cap = 0;
    }
    return r;
}

void mtp_pygraph_drop_objects(mtp_pygraph_t *g)
{
    struct { void **p; size_t *n; } maps[] = {
        {(void **)&g->nodes, &g->nodes_cap}, {(void **)&g->edges, &g->edges_cap},
        {(void **)&g->far, &g->far_cap}, {(void **)&g->bigsizes, &g->bigsizes_cap},
        {(void **)&g->bigrefs, &g->bigrefs_cap}, {(void **)&g->order, &g->order_cap}};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        if (*maps[i].p)
            munmap(*maps[i].p, *maps[i].n);
        *maps[i].p = NULL;
        *maps[i].n = 0;
    }
    g->nnodes = 0;
    g->nedges = 0;
    g->nfar = g->nbigsizes = g->nbigrefs = 0;
}

void mtp_pygraph_free(mtp_pygraph_t *g)
{
    if (!g)
        return;
    mtp_pygraph_drop_objects(g);
    struct { void *p; size_t n; } maps[] = {
        {g->types, g->types_cap}, {g->names, g->names_cap}, {g->gctypes, g->gctypes_cap},
        {g->roots, g->roots_cap}};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
        if (maps[i].p)
            munmap(maps[i].p, maps[i].n);
    munmap(g, sizeof(*g));
}
