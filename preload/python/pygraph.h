/* The Python object graph captured for a snapshot (pygraph.c), read by the
 * leak scan (REACHED flags) and written as the PYGRAPH record. */
#ifndef MTP_PYGRAPH_H
#define MTP_PYGRAPH_H

#include <limits.h>
#include <stdint.h>

#include "base/util.h"
#include "memtrail_format.h"
#include "python/capi.h"

/* 24 bytes: a graph of a million objects is on the exit path's peak. A
 * node's referents are edges[edge_first, the next node's edge_first): the
 * nodes are in capture order, their edges appended in the same order, and
 * nodes[nnodes].edge_first is the end of the last (mtp_pynode_nrefs). */
typedef struct mtp_pynode {
    uint64_t address;      /* PyObject * */
    uint32_t refcount;     /* less the reference of the capture's own list; MTP_PYNODE_BIG:
                              outside [0, MTP_PYNODE_BIG), in bigrefs (mtp_pynode_refcount) */
    uint32_t edge_first;
    uint32_t size;         /* tp_basicsize + tp_itemsize * |ob_size|; MTP_PYNODE_BIG:
                              4 GiB or more, in bigsizes (mtp_pynode_size) */
    uint32_t type : 24;    /* index into the type table */
    uint32_t flags : 8;    /* MTSNAP_PYOBJ_* */
} mtp_pynode_t;
_Static_assert(sizeof(mtp_pynode_t) == 24, "graph node layout");
#define MTP_PYNODE_BIG UINT32_MAX
#define MTP_PYNODE_TYPES (1u << 24)   /* types a graph can name */

/* A reference is one 32-bit word (mtp_pyedge). Even: the referent's
 * distance from its referrer, a multiple of 8 within [-8 GiB, 8 GiB),
 * divided by 4 (a heap's objects are near one another). Odd: index << 1 | 1
 * into far[], which holds every other referent once (the interpreter's
 * static objects, None, small ints, types, and objects mapped far away). */
#define MTP_PYEDGE_NEAR (1ll << 33)
#define MTP_PYEDGE_FAR_MAX (1u << 30)   /* far referents a graph can hold (their hash's
                                           slots, twice as many or more, fit 32 bits) */

typedef struct mtp_pytype {
    uint64_t addr;         /* PyTypeObject * */
    uint32_t name_off;     /* its tp_name, copied into names[] */
    uint32_t name_len;
} mtp_pytype_t;

/* Everything is mmap'd: the writer reads it while application threads are
 * stopped. Filled on the Python thread (GIL held); the writer sorts `order`,
 * sets REACHED and writes the record while that thread waits. */
typedef struct mtp_pygraph {
    mtp_pynode_t *nodes;   /* capture order */
    uint32_t nnodes;
    uint32_t *order;       /* node indices sorted by address (writer) */
    uint32_t *edges;       /* references, mtp_pyedge's words (fewer than 2^32: edge_first) */
    uint64_t nedges;
    uint64_t *far;         /* referents an edge cannot hold as a distance, each once */
    uint32_t nfar;
    mtp_bigsize_t *bigsizes;     /* by node index, for sizes of MTP_PYNODE_BIG */
    uint32_t nbigsizes;
    mtp_bigsize_t *bigrefs;      /* by node index, for refcounts of MTP_PYNODE_BIG (as int64) */
    uint32_t nbigrefs;
    mtp_pytype_t *types;
    uint32_t ntypes;
    char *names;
    uint32_t names_len;
    /* types of collectable objects (sorted, unique): an untracked object of
     * one of these is skipped by the scan (the collector knows it holds no
     * reference that matters: an untracked tuple or dict, a dead frame) */
    uint64_t *gctypes;
    uint32_t ngctypes;
    /* str, bytes, int, float, complex, bytearray: objects of these hold no
     * references; the scan does not read their blocks */
    uint64_t atomic_types[MTP_PY_ATOMIC_TYPES];
    /* extra roots: the frames' data stacks (3.11+), [lo, hi) pairs */
    uint64_t *roots;
    uint32_t nroots;
    int minor;
    const mtp_pyabi_t *abi;   /* the interpreter's layout (python/abi.h) */
    int capturer;          /* kernel thread id of the capturing thread */
    int gc_enabled;
    uint32_t generation[3];
    uint64_t capture_ns;
    int scanned;           /* REACHED flags were set */
    char stdlib[PATH_MAX];
    /* mapping sizes, for mtp_pygraph_free */
    size_t nodes_cap, edges_cap, far_cap, types_cap, names_cap, gctypes_cap, roots_cap, order_cap,
        bigsizes_cap, bigrefs_cap;
} mtp_pygraph_t;

/* The size of node k. */
static inline uint64_t mtp_pynode_size(const mtp_pygraph_t *g, uint32_t k)
{
    const mtp_pynode_t *n = &g->nodes[k];
    if (n->size != MTP_PYNODE_BIG)
        return n->size;
    return mtp_bigsize_find(g->bigsizes, g->nbigsizes, k, MTP_PYNODE_BIG);
}

/* Its reference count, less the capture's own. */
static inline int64_t mtp_pynode_refcount(const mtp_pygraph_t *g, uint32_t k)
{
    const mtp_pynode_t *n = &g->nodes[k];
    if (n->refcount != MTP_PYNODE_BIG)
        return n->refcount;
    return (int64_t)mtp_bigsize_find(g->bigrefs, g->nbigrefs, k, MTP_PYNODE_BIG);
}

/* How many referents node k has. */
static inline uint32_t mtp_pynode_nrefs(const mtp_pygraph_t *g, uint32_t k)
{
    return g->nodes[k + 1].edge_first - g->nodes[k].edge_first;
}

/* Edge e of the object at `from` (the node whose edges hold e): its referent. */
static inline uint64_t mtp_pyedge(const mtp_pygraph_t *g, uint64_t from, uint64_t e)
{
    uint32_t w = g->edges[e];
    return w & 1 ? g->far[w >> 1] : from + (uint64_t)((int64_t)(int32_t)w * 4);
}

/* Python thread, GIL held: captures the graph. Returns NULL on failure
 * (after one warning). */
mtp_pygraph_t *mtp_pygraph_capture(void);

/* Python objects memtrail made and that only something outside the graph
 * holds (the atexit callback: atexit keeps it in a C array): each capture
 * adds this array as a root, so that they are held, not leaked. Written by
 * hook/pyhooks.c with the GIL held, before any capture. */
#define MTP_PY_OWN_MAX 4
extern uintptr_t mtp_py_own[MTP_PY_OWN_MAX];
extern uint32_t mtp_py_nown;
/* An address's index in an array whose elements begin with it (the
 * capture's type table and far referents; pygraph.c). */
typedef struct mtp_pyaddr_hash {
    uint32_t *slots;       /* index + 1, 0 empty */
    size_t cap;
    uint32_t nslots;
} mtp_pyaddr_hash_t;
void mtp_pyaddr_hash_free(mtp_pyaddr_hash_t *h);
/* Appends the reference of the object at `from` to `to` (the capture's
 * tp_traverse visits; tests), h: the far referents' hash. Returns 0, or -1
 * when the arrays cannot grow or hold no more. */
int mtp_pygraph_add_edge(mtp_pygraph_t *g, mtp_pyaddr_hash_t *h, uint64_t from, uint64_t to);

/* Writer: node indices sorted by address into g->order. Returns 0 or -ENOMEM. */
int mtp_pygraph_sort(mtp_pygraph_t *g);
/* Writer, once PYGRAPH is encoded: the objects and their references go
 * back to the system (nodes, order, edges and what sizes them: nnodes and
 * nedges become 0). The counts the rest of the snapshot needs (the types,
 * the capture's time and flags) stay; mtp_pygraph_free frees what is left. */
void mtp_pygraph_drop_objects(mtp_pygraph_t *g);
void mtp_pygraph_free(mtp_pygraph_t *g);

#endif /* MTP_PYGRAPH_H */
