/*
 * Stack table: deduplicates call stacks into 32-bit ids on the application
 * thread, so a ring record carries an id, not frames.
 *
 * Threads and ordering: any thread may look up; nobody ever removes. Nodes
 * and frames live in memory reserved once with mmap(MAP_NORESERVE) and
 * touched as used, so the table never calls malloc and nodes never move.
 * An open-addressing index (u32 ids, 0 = empty) finds a stack by its hash;
 * it starts at INDEX_FIRST slots and doubles at half load, so its pages are
 * touched in proportion to the stacks seen, not at random over a fixed
 * size. Lookups are lock-free: acquire loads of the index pointer and of
 * each slot. Inserts take insert_lock, probe the current index again (a
 * stack inserted meanwhile, or an index grown since the lock-free probe,
 * is found there, so a stack gets one id), fill the node and its frames,
 * then publish the id in its slot with a release store. Growing builds the
 * doubled index from the nodes and publishes it with a release store;
 * older indexes stay mapped (a reader may still probe one: it holds every
 * id published before the switch, and a miss sends it to the lock).
 * Fork: the prepare handler takes insert_lock, so no insert is half-done
 * in a child (mtp_stacktab_atfork_*).
 *
 * In front of the table each thread keeps a direct-mapped cache (hash -> id)
 * in its own block, verified against the stored frames, so hot stacks are
 * found without touching shared cache lines.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "record/record.h"

#define INDEX_FIRST (1u << 12)

typedef struct stack_node {
    uint64_t hash;
    uint64_t frames;          /* index of the first frame in frame_pool */
    uint32_t depth;
} stack_node_t;

typedef struct index_tab {
    uint32_t mask;            /* slots - 1 */
    _Atomic uint32_t slot[];  /* release-published ids, 0 = empty */
} index_tab_t;

static _Atomic(index_tab_t *) index_cur;  /* release-published */
static stack_node_t *nodes;               /* nodes[id], id >= 1 */
static uintptr_t *frame_pool;
static size_t max_nodes, max_frames;
static _Atomic uint32_t node_count = 1;   /* atomic: next id; written under insert_lock */
static uint64_t frame_count;              /* under insert_lock: frames used */
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;
static int fork_locked;                   /* the fork prepare handler holds insert_lock */

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

static index_tab_t *index_new(uint32_t nslots)
{
    size_t bytes = sizeof(index_tab_t) + (size_t)nslots * sizeof(uint32_t);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    index_tab_t *t = p;
    t->mask = nslots - 1;
    return t;
}

int mtp_stacktab_init(void)
{
    size_t nsz = (size_t)1 << 32;   /* up to 178M nodes of 24 bytes */
    size_t fsz = (size_t)1 << 35;   /* up to 4G frames */

    index_tab_t *t = index_new(INDEX_FIRST);
    nodes = reserve(&nsz, (size_t)1 << 24);
    frame_pool = reserve(&fsz, (size_t)1 << 26);
    if (!t || !nodes || !frame_pool)
        return -ENOMEM;
    atomic_store_explicit(&index_cur, t, memory_order_release);
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

/* The id of the stack in index t, or 0. */
static uint32_t index_find(const index_tab_t *t, uint64_t hash, const uintptr_t *pcs,
                           uint32_t depth)
{
    for (uint32_t i = (uint32_t)hash & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (id == 0 || node_matches(id, hash, pcs, depth))
            return id;
    }
}

static void index_put(index_tab_t *t, uint32_t id)
{
    uint32_t i = (uint32_t)nodes[id].hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], id, memory_order_release);
}

/* insert_lock held: the current index, doubled first if one more id would
 * pass half load; NULL when no memory is left. */
static index_tab_t *index_room(uint32_t ids)
{
    index_tab_t *t = atomic_load_explicit(&index_cur, memory_order_relaxed);
    if ((uint64_t)(ids + 1) * 2 <= (uint64_t)t->mask + 1)
        return t;
    if (t->mask >= UINT32_MAX / 2)
        return NULL;
    index_tab_t *n = index_new(2 * (t->mask + 1));
    if (!n)
        return NULL;
    for (uint32_t id = 1; id <= ids; id++)
        index_put(n, id);
    atomic_store_explicit(&index_cur, n, memory_order_release);
    return n;
}

static MTP_NOINLINE uint32_t table_intern(uint64_t hash, const uintptr_t *pcs, uint32_t depth)
{
    uint32_t id = index_find(atomic_load_explicit(&index_cur, memory_order_acquire), hash, pcs,
                             depth);
    if (id)
        return id;
    pthread_mutex_lock(&insert_lock);
    id = index_find(atomic_load_explicit(&index_cur, memory_order_relaxed), hash, pcs, depth);
    if (id)
        goto out;
    uint32_t next = atomic_load_explicit(&node_count, memory_order_relaxed);
    index_tab_t *t = index_room(next - 1);
    if (!t || next >= max_nodes || frame_count + depth > max_frames)
        goto out; /* table exhausted: the "unknown" stack (id 0) */
    if (mtp_stack_new_hook)
        mtp_stack_new_hook(pcs, depth);
    stack_node_t *n = &nodes[next];
    memcpy(&frame_pool[frame_count], pcs, depth * sizeof(*pcs));
    n->hash = hash;
    n->frames = frame_count;
    n->depth = depth;
    frame_count += depth;
    atomic_store_explicit(&node_count, next + 1, memory_order_release);
    index_put(t, next);
    id = next;
out:
    pthread_mutex_unlock(&insert_lock);
    return id;
}

void mtp_stacktab_atfork_prepare(void)
{
    pthread_mutex_lock(&insert_lock);
    fork_locked = 1;
}

void mtp_stacktab_atfork_parent(void)
{
    if (fork_locked) {
        fork_locked = 0;
        pthread_mutex_unlock(&insert_lock);
    }
}

void mtp_stacktab_atfork_child(void)
{
    fork_locked = 0;
    pthread_mutex_init(&insert_lock, NULL);
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
