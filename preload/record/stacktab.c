/*
 * Stack table: deduplicates call stacks into 32-bit ids on the application
 * thread, so a ring record carries an id, not frames.
 *
 * Threads and ordering: any thread may insert; nobody ever removes. Memory is
 * reserved once with mmap(MAP_NORESERVE) and touched as it is used, so the
 * table never calls malloc and never moves. An insert claims a node id and
 * frame space with fetch_add, fills them, then links the node at the head of
 * its bucket with a release CAS; readers walk buckets after an acquire load.
 * A node is therefore complete before anyone can reach it. When the CAS
 * fails, the inserter first scans the nodes linked since its last look, so a
 * stack inserted concurrently by two threads still gets a single id (the
 * loser's claimed node is simply never linked). Nothing here can be left
 * half-done by a fork: an unlinked node is invisible.
 *
 * In front of the table each thread keeps a direct-mapped cache (hash -> id)
 * in its own block, verified against the stored frames, so hot stacks are
 * found without touching shared cache lines.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "record/record.h"

#define NBUCKETS (1u << 20)

typedef struct stack_node {
    uint64_t hash;
    uint64_t frames;          /* index of the first frame in frame_pool */
    uint32_t depth;
    _Atomic uint32_t next;    /* next id in the bucket, 0 = end */
} stack_node_t;

static _Atomic uint32_t *buckets;   /* atomic heads, 0 = empty */
static stack_node_t *nodes;          /* nodes[id], id >= 1 */
static uintptr_t *frame_pool;
static size_t max_nodes, max_frames;
static _Atomic uint32_t node_count = 1;  /* atomic: next id */
static _Atomic uint64_t frame_count;     /* atomic: frames used */

/* Set once before tracing starts (Python support): sees every stack before
 * it is published. */
void (*mtp_stack_new_hook)(const uintptr_t *pcs, uint32_t depth);

static void *reserve(size_t *bytes, size_t min_bytes)
{
    while (*bytes >= min_bytes) {
        void *p = mmap(NULL, *bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED)
            return p;
        *bytes /= 4;
    }
    return NULL;
}

int mtp_stacktab_init(void)
{
    size_t bsz = NBUCKETS * sizeof(*buckets);
    size_t nsz = (size_t)1 << 32;   /* up to 128M nodes of 32 bytes */
    size_t fsz = (size_t)1 << 35;   /* up to 4G frames */

    buckets = reserve(&bsz, bsz);
    nodes = reserve(&nsz, (size_t)1 << 24);
    frame_pool = reserve(&fsz, (size_t)1 << 26);
    if (!buckets || !nodes || !frame_pool)
        return -ENOMEM;
    max_nodes = nsz / sizeof(stack_node_t);
    if (max_nodes > UINT32_MAX)
        max_nodes = UINT32_MAX;
    max_frames = fsz / sizeof(uintptr_t);
    return 0;
}

/* Two independent rotate-xor lanes (no multiply in the loop), mixed once at
 * the end. Collisions only cost a comparison: ids are verified by frames. */
static inline uint64_t hash_frames(const uintptr_t *pcs, uint32_t depth)
{
    uint64_t a = 0x9e3779b97f4a7c15ull ^ depth, b = 0xc2b2ae3d27d4eb4full;
    uint32_t i = 0;
    for (; i + 1 < depth; i += 2) {
        a = ((a << 7) | (a >> 57)) ^ pcs[i];
        b = ((b << 11) | (b >> 53)) ^ pcs[i + 1];
    }
    if (i < depth)
        a = ((a << 7) | (a >> 57)) ^ pcs[i];
    uint64_t h = a ^ (b * 0xff51afd7ed558ccdull);
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static inline int node_matches(uint32_t id, uint64_t hash, const uintptr_t *pcs, uint32_t depth)
{
    const stack_node_t *n = &nodes[id];
    return n->hash == hash && n->depth == depth &&
           memcmp(&frame_pool[n->frames], pcs, depth * sizeof(*pcs)) == 0;
}

/* Walk a bucket chain from `id` down to (not including) `stop`. */
static uint32_t chain_find(uint32_t id, uint32_t stop, uint64_t hash, const uintptr_t *pcs,
                           uint32_t depth)
{
    while (id != 0 && id != stop) {
        if (node_matches(id, hash, pcs, depth))
            return id;
        id = atomic_load_explicit(&nodes[id].next, memory_order_acquire);
    }
    return 0;
}

static MTP_NOINLINE uint32_t table_intern(uint64_t hash, const uintptr_t *pcs, uint32_t depth)
{
    _Atomic uint32_t *head = &buckets[hash & (NBUCKETS - 1)];
    uint32_t first = atomic_load_explicit(head, memory_order_acquire);
    uint32_t found = chain_find(first, 0, hash, pcs, depth);
    if (found)
        return found;
    if (mtp_stack_new_hook)
        mtp_stack_new_hook(pcs, depth);

    uint32_t id = atomic_fetch_add_explicit(&node_count, 1, memory_order_relaxed);
    uint64_t off = atomic_fetch_add_explicit(&frame_count, depth, memory_order_relaxed);
    if (id >= max_nodes || off + depth > max_frames)
        return 0; /* table exhausted: the "unknown" stack */
    stack_node_t *n = &nodes[id];
    memcpy(&frame_pool[off], pcs, depth * sizeof(*pcs));
    n->hash = hash;
    n->frames = off;
    n->depth = depth;
    for (;;) {
        atomic_store_explicit(&n->next, first, memory_order_relaxed);
        uint32_t seen = first;
        if (atomic_compare_exchange_weak_explicit(head, &first, id, memory_order_release,
                                                  memory_order_acquire))
            return id;
        /* Someone linked nodes in front of `seen`: one may be our stack. */
        found = chain_find(first, seen, hash, pcs, depth);
        if (found)
            return found;
    }
}

uint32_t mtp_stack_intern(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth)
{
    if (MTP_UNLIKELY(depth == 0))
        return 0;
    uint64_t hash = hash_frames(pcs, depth);
    mtp_scache_ent_t *e = &t->scache[(hash ^ (hash >> 32)) & (MTP_SCACHE_SLOTS - 1)];
    if (MTP_LIKELY(e->hash == hash && e->depth == depth && e->id != 0 &&
                   node_matches(e->id, hash, pcs, depth)))
        return e->id;
    uint32_t id = table_intern(hash, pcs, depth);
    e->hash = hash;
    e->depth = depth;
    e->id = id;
    return id;
}

const uintptr_t *mtp_stack_frames(uint32_t id, uint32_t *depth)
{
    if (id == 0 || id >= atomic_load_explicit(&node_count, memory_order_acquire) ||
        id >= max_nodes) {
        *depth = 0;
        return NULL;
    }
    *depth = nodes[id].depth;
    return &frame_pool[nodes[id].frames];
}

uint32_t mtp_stack_count(void)
{
    uint32_t n = atomic_load_explicit(&node_count, memory_order_acquire);
    return n < max_nodes ? n : (uint32_t)max_nodes;
}
