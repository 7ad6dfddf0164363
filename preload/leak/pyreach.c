/*
 * The leak scan's Python pass: which gc-tracked objects memory reaches,
 * with the collector's own links left out.
 *
 * Runs on the writer thread inside mtp_leakscan_run, threads stopped, after
 * the native classification (whose roots, sorted blocks and lookup it
 * reuses). Every tracked object is linked into the collector's lists, so
 * the native pass finds all of them reachable; this pass asks instead what
 * the program can reach. It starts from the same roots (module data, stacks,
 * registers, TLS, and the frames' data stacks of 3.11+) but for the stack
 * and registers of the thread that captured the graph: it waits in
 * memtrail's code (at exit, in an atexit callback), its live C frames hold
 * no Python reference the graph does not show, and their unused slots hold
 * stale words from the calls that ran before. Then:
 *   - a word equal to a graph object's address reaches that object; a word
 *     anywhere else inside an object's block (its collector header, its
 *     managed-dict pre-header) reaches nothing: the collector's list links
 *     point at headers, never at objects;
 *   - a reached object is followed through its referents (tp_traverse, as
 *     the collector sees it); its own block is read too, but there only a
 *     word equal to another object's address counts (a weak reference list,
 *     a type's subclasses dict: references no traversal reports) and its
 *     collector header is skipped. Its other blocks (a list's item array)
 *     are not entered, so stale words in spare capacity keep nothing alive;
 *   - a word inside any other block (an interpreter or thread state, a
 *     code object, an extension's C struct) reaches that block, whose words
 *     are scanned in turn; except a block holding a dead object of a
 *     collectable type kept for reuse (collector header cleared, type one
 *     of the graph's collectable types, count 0): a free list's tuple, dict
 *     or frame holds only stale words. A live untracked tuple is read: the
 *     collector untracks tuples that hold no tracked object, such as a code
 *     object's constants or a tuple of code objects, which do hold
 *     references (to constants tuples the graph has).
 * Objects in a module's image (static types, 3.12+ static objects) are
 * STATIC and count as roots, as do immortal ones. Objects in no traced
 * block elsewhere (memory allocated while tracing was off, reused through a
 * free list) are ordinary: found by address. Blocks holding an object of a
 * type without references (str, bytes, int, float) are not read: their
 * text and numbers only make false pointers.
 */
#include <string.h>
#include <sys/mman.h>

#include "base/util.h"
#include "leak/leakscan_int.h"
#include "python/py.h"

#define NODE_BIT 0x80000000u
/* In the state byte's scratch bits (MTP_ST_SCRATCH), cleared first: */
#define PB_NODE 0x10u  /* the block holds a graph object */
#define PB_SEEN 0x20u  /* the block was reached (non-object blocks) */
#define PB_MULTI 0x40u /* the block holds more than one graph object */
_Static_assert(((PB_NODE | PB_SEEN | PB_MULTI) & ~MTP_ST_SCRATCH) == 0, "scratch bits only");

typedef struct pyctx {
    mtp_pygraph_t *g;
    uint8_t *pb;       /* per block: PB_*, in the scan's state bytes */
    uint64_t *loose;   /* sorted addresses of the objects in no traced block and */
    uint32_t nloose;   /* no module's image (allocated while tracing was off) */
    /* The graph object of a PB_NODE block without a search: blocks and
     * objects are both in address order, so the object of the block is
     * innode[rank of the block among PB_NODE blocks]; the rank is the
     * count of bits below it (nbits: one per block, nprefix: the count
     * before each word). NULL when the arrays could not be had. */
    uint64_t *nbits;
    uint32_t *nprefix;
    uint32_t *innode;
    size_t nbits_cap, nprefix_cap, innode_cap;
} pyctx_t;

/* The node whose address is addr (index into g->nodes), or -1. */
static int64_t find_node(const mtp_pygraph_t *g, uint64_t addr)
{
    size_t lo = 0, hi = g->nnodes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t a = g->nodes[g->order[mid]].address;
        if (a == addr)
            return g->order[mid];
        if (a < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The graph object at w in block j (a PB_NODE block), or -1. */
static int64_t block_node(const pyctx_t *c, size_t j, uint64_t w)
{
    if (!c->innode || (c->pb[j] & PB_MULTI))
        return find_node(c->g, w);
    uint64_t below = c->nbits[j >> 6] & ((1ull << (j & 63)) - 1);
    uint32_t k = c->innode[c->nprefix[j >> 6] + (uint32_t)__builtin_popcountll(below)];
    return c->g->nodes[k].address == w ? (int64_t)k : -1;
}

/* A dead object of a collectable type at the start of block b, kept for
 * reuse (a free list's tuple, dict or frame): its collector header's next
 * link is 0, its type is a collectable one and its count is 0; its slots
 * hold stale words. The header starts the block or, 3.12+, follows the
 * pre-header's words. A live untracked object (a tuple the collector
 * untracked because it holds no tracked object: a code object's constants,
 * or a tuple of code objects) holds real references and is read. */
MTP_NO_SANITIZE_SCAN
static int untracked_at(const mtp_pygraph_t *g, uintptr_t head)
{
    return mtp_py_gc_untracked(g->abi, head) &&
           mtp_scan_is_gctype(g, mtp_py_gc_obj_type(g->abi, head));
}

MTP_NO_SANITIZE_SCAN
static int dead_at(const mtp_pyabi_t *A, uintptr_t head)
{
    return mtp_py_refcnt(A, (const void *)(head + (uintptr_t)A->gc_head_size)) == 0;
}

MTP_NO_SANITIZE_SCAN
static int dead_gc_object(mtp_scan_t *sc, const mtp_pygraph_t *g, size_t b, mtp_span_t span)
{
    const mtp_pyabi_t *A = g->abi;
    uint64_t copy[MTP_SCAN_PEEK / 8];
    size_t n = mtp_scan_peek(sc, b, span, copy, sizeof copy);
    uintptr_t head = (uintptr_t)copy;   /* the block's first bytes */
    size_t min = mtp_py_gc_min_block(A), pre = (size_t)A->block_preheader_size;
    if (n >= min && untracked_at(g, head))
        return dead_at(A, head);
    if (pre && n >= pre + min && untracked_at(g, head + pre))
        return dead_at(A, head + pre);
    return 0;
}

static void reach_node(mtp_scan_t *sc, pyctx_t *c, int64_t k)
{
    mtp_pynode_t *n = &c->g->nodes[k];
    if (n->flags & MTSNAP_PYOBJ_REACHED)
        return;
    n->flags |= MTSNAP_PYOBJ_REACHED;
    mtp_scan_push(sc, NODE_BIT | (uint32_t)k);
}

static int is_loose(const pyctx_t *c, uint64_t w)
{
    size_t lo = 0, hi = c->nloose;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->loose[mid] == w)
            return 1;
        if (c->loose[mid] < w)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* An object of a type that holds no references (str, bytes, int, float,
 * complex, bytearray) at the start of block b: its bytes are text or
 * numbers, never pointers worth following. Its first word is a count, at
 * most 2^32 - 1 (3.12+: immortal ones), where a block of pointers (a list's
 * item array, which may hold a stale str header from the block's last use
 * in its unused slots) starts with a pointer or 0. */
MTP_NO_SANITIZE_SCAN
static int atomic_object(mtp_scan_t *sc, const mtp_pygraph_t *g, size_t b, mtp_span_t span)
{
    const mtp_pyabi_t *A = g->abi;
    uint64_t copy[MTP_SCAN_PEEK / 8];
    size_t n = mtp_scan_peek(sc, b, span, copy, (size_t)A->ob_type + sizeof(void *));
    if (n < (size_t)A->ob_type + sizeof(void *))
        return 0;
    if (!mtp_py_refcnt_plausible(A, copy))
        return 0;
    uint64_t type = (uintptr_t)mtp_py_type(A, copy);
    for (int i = 0; i < MTP_PY_ATOMIC_TYPES; i++)
        if (g->atomic_types[i] && g->atomic_types[i] == type)
            return 1;
    return 0;
}

static inline __attribute__((always_inline)) void py_word(mtp_scan_t *sc, uint64_t w,
                                                          void *arg)
{
    pyctx_t *c = arg;
    mtp_span_t b;
    ssize_t j = mtp_scan_find(sc, w, &b);
    if (j < 0) {
        if (c->nloose && is_loose(c, w))
            reach_node(sc, c, find_node(c->g, w));
        return;
    }
    if (c->pb[j] & PB_NODE) {
        int64_t k = block_node(c, (size_t)j, w);
        if (k >= 0)
            reach_node(sc, c, k);
        return;
    }
    if (c->pb[j] & PB_SEEN)
        return;
    c->pb[j] |= PB_SEEN;
    if (!dead_gc_object(sc, c->g, (size_t)j, b) && !atomic_object(sc, c->g, (size_t)j, b))
        mtp_scan_push(sc, (uint32_t)j);
}

/* Inside a reached object's own block: other objects' addresses only. */
static inline __attribute__((always_inline)) void body_word(mtp_scan_t *sc, uint64_t w,
                                                            void *arg)
{
    pyctx_t *c = arg;
    ssize_t j = mtp_scan_lookup(sc, w);
    if (j >= 0 && (c->pb[j] & PB_NODE)) {
        int64_t k = block_node(c, (size_t)j, w);
        if (k >= 0)
            reach_node(sc, c, k);
    }
}

MTP_NO_SANITIZE_SCAN
static void scan_body(mtp_scan_t *sc, pyctx_t *c, const mtp_pynode_t *n)
{
    mtp_span_t blk;
    ssize_t b = mtp_scan_find(sc, n->address, &blk);
    if (b < 0)
        return;
    uint64_t end = blk.address + blk.size;
    uint64_t gc_head = n->address - (uint64_t)c->g->abi->gc_head_size;
    if (mtp_scan_unreadable(sc, (size_t)b))
        return;
    if (sc->safe) {
        if (gc_head > blk.address)   /* 3.12+ pre-header: managed dict, weak references */
            mtp_scan_words(sc, blk.address, gc_head, 0, body_word, c);
        mtp_scan_words(sc, n->address, end, 0, body_word, c);
        return;
    }
    /* Every thread stopped and the block found mapped: read directly. */
    for (const uint64_t *w = words_from(blk.address), *e = words_to(gc_head); w < e; w++)
        body_word(sc, *w, c);
    for (const uint64_t *w = words_from(n->address), *e = words_to(end); w < e; w++)
        body_word(sc, *w, c);
}

MTP_NO_SANITIZE_SCAN
static void drain(mtp_scan_t *sc, pyctx_t *c)
{
    while (sc->nstack) {
        uint32_t e = sc->stack[--sc->nstack];
        if (sc->nstack) {   /* what comes next: its first line, while this one is read */
            uint32_t x = sc->stack[sc->nstack - 1];
            if (x & NODE_BIT) {
                const mtp_pynode_t *nx = &c->g->nodes[x & ~NODE_BIT];
                __builtin_prefetch(nx);
                __builtin_prefetch((const void *)(uintptr_t)nx->address);
            } else {
                __builtin_prefetch((const void *)(uintptr_t)mtp_scan_addr(sc, x));
            }
            if (sc->nstack > 1 && !(sc->stack[sc->nstack - 2] & NODE_BIT))
                mtp_scan_prefetch_entry(sc, sc->stack[sc->nstack - 2]);   /* the one after */
        }
        if (e & NODE_BIT) {
            const mtp_pynode_t *n = &c->g->nodes[e & ~NODE_BIT];
            for (uint32_t i = n->edge_first, end = n[1].edge_first; i < end; i++)
                py_word(sc, mtp_pyedge(c->g, n->address, i), c);
            scan_body(sc, c, n);
        } else {
            const mtp_span_t b = mtp_scan_block(sc, e);
            if (mtp_scan_unreadable(sc, e))
                continue;
            if (sc->safe) {
                mtp_scan_words(sc, b.address, b.address + b.size, 0, py_word, c);
                continue;
            }
            for (const uint64_t *w = words_from(b.address), *end = words_to(mtp_scan_read_end(sc, b));
                 w < end; w++)
                py_word(sc, *w, c);
        }
    }
}

static void rank_free(pyctx_t *c)
{
    if (c->nbits)
        munmap(c->nbits, c->nbits_cap);
    if (c->nprefix)
        munmap(c->nprefix, c->nprefix_cap);
    if (c->innode)
        munmap(c->innode, c->innode_cap);
    c->nbits = NULL;
    c->nprefix = NULL;
    c->innode = NULL;
}

void mtp_pyreach(mtp_scan_t *sc, mtp_pygraph_t *g)
{
    size_t loose_cap = 0;
    pyctx_t c = {.g = g, .pb = sc->state};
    size_t nwords = sc->nblocks / 64 + 1;
    uint32_t ninnode = 0;
    for (size_t i = 0; i < sc->nblocks; i++)   /* the marking is done with them */
        c.pb[i] &= (uint8_t)~MTP_ST_SCRATCH;
    if (mtp_mm_grow((void **)&c.nbits, &c.nbits_cap, nwords * 8) < 0 ||
        mtp_mm_grow((void **)&c.nprefix, &c.nprefix_cap, nwords * 4) < 0 ||
        mtp_mm_grow((void **)&c.innode, &c.innode_cap, ((size_t)g->nnodes + 1) * 4) < 0)
        rank_free(&c);   /* objects are then found by searching */
    sc->nstack = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {   /* by address: `loose` comes out sorted */
        mtp_pynode_t *n = &g->nodes[g->order[i]];
        n->flags &= ~(MTSNAP_PYOBJ_REACHED | MTSNAP_PYOBJ_STATIC);
        ssize_t b = mtp_scan_lookup(sc, n->address);
        const mtp_map_t *m;
        if (b >= 0) {
            if (c.pb[b] & PB_NODE) {
                c.pb[b] |= PB_MULTI;
            } else {
                c.pb[b] |= PB_NODE;
                if (c.innode) {
                    c.nbits[b >> 6] |= 1ull << (b & 63);
                    c.innode[ninnode++] = g->order[i];
                }
            }
        } else if ((m = mtp_scan_map_of(sc, n->address)) && m->path[0] == '/') {
            n->flags |= MTSNAP_PYOBJ_STATIC;   /* in a module's image: a static object */
        } else if (mtp_mm_grow((void **)&c.loose, &loose_cap, (c.nloose + 1) * 8) == 0) {
            c.loose[c.nloose++] = n->address;
        } else {
            sc->oom = 1;
        }
    }
    for (size_t w = 0, below = 0; c.innode && w < nwords; w++) {
        c.nprefix[w] = (uint32_t)below;
        below += (size_t)__builtin_popcountll(c.nbits[w]);
    }
    for (uint32_t k = 0; k < g->nnodes; k++)
        if (g->nodes[k].flags & (MTSNAP_PYOBJ_STATIC | MTSNAP_PYOBJ_IMMORTAL))
            reach_node(sc, &c, k);
    drain(sc, &c);
    for (size_t r = 0; r < sc->nroots; r++) {
        if (sc->roots[r].flags & (MTP_ROOT_CAPTURER | MTP_ROOT_PYLOOSE))
            continue;
        mtp_scan_words(sc, sc->roots[r].lo, sc->roots[r].hi, sc->roots[r].flags, py_word, &c);
        drain(sc, &c);
    }
    g->scanned = !sc->oom;
    if (c.loose)
        munmap(c.loose, loose_cap);
    rank_free(&c);
}
