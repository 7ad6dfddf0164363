/*
 * Stack table: deduplicates call stacks into 32-bit ids on the application
 * thread, so a ring record carries an id, not frames.
 *
 * Threads and ordering: any thread may look up; nobody ever removes. Nodes
 * and frames live in memory reserved once with mmap(MAP_NORESERVE) and
 * touched as used, so the table never calls malloc and nodes never move.
 * The nodes grow down from where the frames grow up (node id at
 * nodes_top - id), halfway into a 2 MiB region (mtp_pmd_middle): a
 * process's first nodes and frames share one page-table page and one of
 * the level above, where two reservations took two of each.
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
 * Shared prefixes: a stack of more than CHUNK words keeps only its innermost
 * 1 to CHUNK words itself; the rest is a chain of chunks of CHUNK words,
 * cut from the outer end (the caller side), each naming the chunk outside
 * it. Chunks are interned (under insert_lock, in a table of their own and
 * their own id space, so stack ids stay dense), so stacks that share their
 * outer frames share those chunks: a deep recursion stores its common part
 * once. A chunk is immutable once its id is stored in a published node.
 * Comparing a stack walks its chain: one memcmp per chunk.
 *
 * In front of the table each thread keeps a direct-mapped cache (hash -> id)
 * in its own block, verified against the stored frames, so hot stacks are
 * found without touching shared cache lines.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "base/index.h"
#include "base/util.h"
#include "record/record.h"

#define INDEX_FIRST (1u << 9)     /* 2 KiB: a short process's stacks in one page */
/* Both indexes' first tables: memtrail's own zeroed data, where two small
 * mappings filled at once cost every process two mmap and two madvise
 * calls at start (about 20 us, most of the stack table's start). */
static MTP_LARGE _Alignas(64) struct {
    _Alignas(64) unsigned char stacks[MTP_INDEX_BYTES(INDEX_FIRST)];
    _Alignas(64) unsigned char chunks[MTP_INDEX_BYTES(INDEX_FIRST)];
} first_index;
#define CHUNK 16                  /* words per shared chunk */

typedef struct stack_node {
    uint64_t hash;            /* of all its words (hash_frames) */
    uint64_t frames;          /* its own words: index of the first in frame_pool */
    uint32_t depth;           /* words in all */
    uint16_t own;             /* words of its own: depth - CHUNK * chunks, 1..CHUNK */
    uint32_t chunk;           /* the chunk outside them, 0 = none */
} stack_node_t;

typedef struct chunk_node {
    uint64_t hash;            /* of (outer chunk, its CHUNK words) */
    uint64_t frames;          /* its CHUNK words in frame_pool */
    uint32_t outer;           /* the chunk outside it, 0 = none */
} chunk_node_t;

static _Atomic(mtp_index_t *) index_cur;  /* release-published */
static mtp_index_t *chunk_index;          /* under insert_lock */
static stack_node_t *nodes_top;           /* node id at nodes_top - id, id >= 1 */
static chunk_node_t *chunks;              /* chunks[id], id >= 1 */
static uintptr_t *frame_pool;
static size_t max_nodes, max_chunks, max_frames;
static _Atomic uint32_t node_count = 1;   /* atomic: next id; written under insert_lock */
static uint32_t chunk_count = 1;          /* under insert_lock: next chunk id */
static uint64_t frame_count;              /* under insert_lock: frames used */
static MTP_FORKED _Alignas(64) pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t nodes_filled, chunks_filled, frames_filled;   /* under insert_lock: bytes */
static MTP_FORKED int fork_locked;        /* the fork prepare handler holds insert_lock */

/* Set once before tracing starts (Python support): sees every stack before
 * it is published, and how many of its words (from the innermost) no
 * stack stored before holds. */
void (*mtp_stack_new_hook)(const uintptr_t *pcs, uint32_t depth, uint32_t new_words);

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

/* One reservation for the nodes (*nsz bytes, below) and the frames (*fsz,
 * above), both quartered while it cannot be had. Returns where they meet
 * (mtp_pmd_middle). */
static char *reserve_nodes_frames(size_t *nsz, size_t *fsz)
{
    while (*nsz >= ((size_t)1 << 24) && *fsz >= ((size_t)1 << 26)) {
        char *p = mmap(NULL, *nsz + MTP_PMD + *fsz, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED)
            return (char *)mtp_pmd_middle((uintptr_t)p + *nsz);
        *nsz /= 4;
        *fsz /= 4;
    }
    return NULL;
}

static inline stack_node_t *node_at(uint32_t id)
{
    return nodes_top - id;
}

int mtp_stacktab_init(void)
{
    size_t nsz = (size_t)1 << 32;   /* up to 134M stacks of 32 bytes */
    size_t csz = (size_t)1 << 32;   /* up to 178M chunks of 24 bytes */
    size_t fsz = (size_t)1 << 35;   /* up to 4G frames */

    mtp_index_t *t = mtp_index_in(first_index.stacks, INDEX_FIRST);
    chunk_index = mtp_index_in(first_index.chunks, INDEX_FIRST);
    char *meet = reserve_nodes_frames(&nsz, &fsz);
    chunks = reserve(&csz, (size_t)1 << 24);
    if (!t || !chunk_index || !meet || !chunks)
        return -ENOMEM;
    nodes_top = (stack_node_t *)meet;
    frame_pool = (uintptr_t *)meet;
    atomic_store_explicit(&index_cur, t, memory_order_release);
    max_nodes = nsz / sizeof(stack_node_t);
    if (max_nodes > UINT32_MAX)
        max_nodes = UINT32_MAX;
    max_chunks = csz / sizeof(chunk_node_t);
    if (max_chunks > UINT32_MAX)
        max_chunks = UINT32_MAX;
    max_frames = fsz / sizeof(uintptr_t);
    return 0;
}

/* Under insert_lock: the reserved regions are written in order, so their
 * pages are filled ahead of use, one call per FILL_STEP bytes (or an eighth
 * of what is filled, as the table grows) rather than a fault per page. */
#define FILL_STEP (4 * 1024)
/* The extent (bytes from the region's start) a region filled to `filled`
 * is to be filled to for `upto` bytes of it to be in (max: its size), and
 * in *from where the call is to start (from == the extent: no call). */
static size_t fill_extent(size_t filled, size_t upto, size_t max, size_t *from)
{
    *from = filled;
    if (upto <= filled)
        return filled;
    if (filled == 0 && upto <= MTP_PAGE) {
        /* The region's first page: its first write's fault is cheaper than
         * a call to fill it (and, 4 KiB ahead, the next, which most short
         * processes never reach). */
        *from = MTP_PAGE;
        return MTP_PAGE;
    }
    size_t step = filled / 8 > FILL_STEP ? filled / 8 : FILL_STEP;
    return upto + step < max ? upto + step : max;
}

/* A region growing up from `base`. */
static void fill_to(void *base, size_t *filled, size_t upto, size_t max)
{
    size_t from, to = fill_extent(*filled, upto, max, &from);
    if (to > from)
        mtp_populate((char *)base + from, to - from);
    *filled = to;
}

/* A region growing down from `top` (the nodes). */
static void fill_down(void *top, size_t *filled, size_t upto, size_t max)
{
    size_t from, to = fill_extent(*filled, upto, max, &from);
    if (to > from)
        mtp_populate((char *)top - to, to - from);
    *filled = to;
}

/* Two independent rotate-xor lanes (no multiply in the loop), mixed once at
 * the end with the depth. Collisions only cost a comparison: ids are
 * verified by frames. The words go in from the outermost (pcs[depth - 1])
 * inward, the p-th from the outer end into lane p & 1: the lanes after a
 * stack's outer p words depend on those words alone, so a stack that shares
 * its outer part with the thread's previous walk starts from that walk's
 * lanes (mtp_stack_intern_walk). */
#define LANE_A0 0x9e3779b97f4a7c15ull
#define LANE_B0 0xc2b2ae3d27d4eb4full

static inline void hash_words(uint64_t lane[2], const uintptr_t *pcs, uint32_t depth, uint32_t p,
                              uint64_t (*keep)[2])
{
    uint64_t a = lane[0], b = lane[1];
    /* Two words a turn, one into each lane, without a branch on the
     * parity per word (the same values as one word a turn). */
    if ((p & 1) && p < depth) {
        if (keep) {
            keep[p][0] = a;
            keep[p][1] = b;
        }
        b = ((b << 11) | (b >> 53)) ^ pcs[depth - 1 - p];
        p++;
    }
    for (; p + 1 < depth; p += 2) {
        if (keep) {
            keep[p][0] = a;
            keep[p][1] = b;
        }
        a = ((a << 7) | (a >> 57)) ^ pcs[depth - 1 - p];
        if (keep) {
            keep[p + 1][0] = a;
            keep[p + 1][1] = b;
        }
        b = ((b << 11) | (b >> 53)) ^ pcs[depth - 2 - p];
    }
    if (p < depth) {
        if (keep) {
            keep[p][0] = a;
            keep[p][1] = b;
        }
        a = ((a << 7) | (a >> 57)) ^ pcs[depth - 1 - p];
    }
    if (keep) {
        keep[depth][0] = a;
        keep[depth][1] = b;
    }
    lane[0] = a;
    lane[1] = b;
}

static inline uint64_t hash_end(const uint64_t lane[2], uint32_t depth)
{
    uint64_t h = (lane[0] ^ ((uint64_t)depth * 0x9fb21c651e98df25ull)) ^
                 (lane[1] * 0xff51afd7ed558ccdull);
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static inline uint64_t hash_frames(const uintptr_t *pcs, uint32_t depth)
{
    uint64_t lane[2] = {LANE_A0, LANE_B0};
    hash_words(lane, pcs, depth, 0, NULL);
    return hash_end(lane, depth);
}

static inline int node_matches(uint32_t id, uint64_t hash, const uintptr_t *pcs, uint32_t depth)
{
    const stack_node_t *n = node_at(id);
    if (n->hash != hash || n->depth != depth ||
        memcmp(&frame_pool[n->frames], pcs, n->own * sizeof(*pcs)) != 0)
        return 0;
    pcs += n->own;
    for (uint32_t c = n->chunk; c != 0; c = chunks[c].outer, pcs += CHUNK)
        if (memcmp(&frame_pool[chunks[c].frames], pcs, CHUNK * sizeof(*pcs)) != 0)
            return 0;
    return 1;
}

/* The id of the stack in index t, or 0. */
static uint32_t index_find(const mtp_index_t *t, uint64_t hash, const uintptr_t *pcs,
                           uint32_t depth)
{
    for (uint32_t i = (uint32_t)hash & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (id == 0 || node_matches(id, hash, pcs, depth))
            return id;
    }
}

static uint64_t stack_hash(uint32_t id)
{
    return node_at(id)->hash;
}

static uint64_t chunk_hash(uint32_t id)
{
    return chunks[id].hash;
}

/* insert_lock held: the id of the chunk (outer, words[0..CHUNK)), added if
 * new (*added set); 0 when the table is full. */
static uint32_t chunk_intern(uint32_t outer, const uintptr_t *words, int *added)
{
    uint64_t h = hash_frames(words, CHUNK) ^ ((uint64_t)outer * MTP_HASH_MUL);
    mtp_index_t *t = chunk_index;
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t c = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (c == 0)
            break;
        if (chunks[c].hash == h && chunks[c].outer == outer &&
            memcmp(&frame_pool[chunks[c].frames], words, CHUNK * sizeof(*words)) == 0)
            return c;
    }
    t = mtp_index_room(chunk_index, chunk_count - 1, 1, 2, chunk_hash);
    if (!t || chunk_count >= max_chunks || frame_count + CHUNK > max_frames)
        return 0;
    chunk_index = t;
    fill_to(frame_pool, &frames_filled, (frame_count + CHUNK) * sizeof(*frame_pool),
            max_frames * sizeof(*frame_pool));
    fill_to(chunks, &chunks_filled, (chunk_count + 1) * sizeof(*chunks),
            max_chunks * sizeof(*chunks));
    uint32_t c = chunk_count++;
    memcpy(&frame_pool[frame_count], words, CHUNK * sizeof(*words));
    chunks[c] = (chunk_node_t){h, frame_count, outer};
    frame_count += CHUNK;
    mtp_index_put(t, c, h);
    *added = 1;
    return c;
}

/* `known`: words at the stack's outer end that mtp_stack_new_hook has
 * already seen (those it shares with a stored stack the caller compared it
 * with: mtp_stack_intern_from); the hook is not given them again. */
static MTP_NOINLINE uint32_t table_intern(uint64_t hash, const uintptr_t *pcs, uint32_t depth,
                                          uint32_t known)
{
    uint32_t id = index_find(atomic_load_explicit(&index_cur, memory_order_acquire), hash, pcs,
                             depth);
    if (id)
        return id;
    pthread_mutex_lock(&insert_lock);
    mtp_index_t *t = atomic_load_explicit(&index_cur, memory_order_relaxed);
    id = index_find(t, hash, pcs, depth);
    if (id)
        goto out;
    uint32_t next = atomic_load_explicit(&node_count, memory_order_relaxed);
    mtp_index_t *grown = mtp_index_room(t, next - 1, 1, 2, stack_hash);
    if (grown && grown != t)
        atomic_store_explicit(&index_cur, grown, memory_order_release);
    uint32_t nchunks = (depth - 1) / CHUNK, own = depth - nchunks * CHUNK, chunk = 0;
    if (!grown || next >= max_nodes || frame_count + own > max_frames)
        goto out; /* table exhausted: the "unknown" stack (id 0) */
    /* Outermost first. Once one chunk is new, every chunk inside it is new
     * too (its key names the new one): the new words are a prefix. */
    uint32_t new_words = own;
    int full = 0;
    for (uint32_t k = nchunks; k > 0 && !full; k--) {
        int added = 0;
        chunk = chunk_intern(chunk, pcs + own + (k - 1) * CHUNK, &added);
        if (added && new_words == own)
            new_words = own + k * CHUNK;
        full = chunk == 0;
    }
    /* Chunks added before the table filled up are shared from now on: the
     * hook sees them even though this stack gets no id. */
    if (mtp_stack_new_hook && (!full || new_words > own))
        mtp_stack_new_hook(pcs, depth, new_words > depth - known ? depth - known : new_words);
    if (full)
        goto out;
    fill_to(frame_pool, &frames_filled, (frame_count + own) * sizeof(*frame_pool),
            max_frames * sizeof(*frame_pool));
    fill_down(nodes_top, &nodes_filled, (next + 1) * sizeof(stack_node_t),
              max_nodes * sizeof(stack_node_t));
    stack_node_t *n = node_at(next);
    memcpy(&frame_pool[frame_count], pcs, own * sizeof(*pcs));
    *n = (stack_node_t){.hash = hash, .frames = frame_count, .depth = depth,
                        .own = (uint16_t)own, .chunk = chunk};
    frame_count += own;
    atomic_store_explicit(&node_count, next + 1, memory_order_release);
    mtp_index_put(grown, next, hash);
    id = next;
out:
    pthread_mutex_unlock(&insert_lock);
    return id;
}

MTP_FORK_CODE void mtp_stacktab_atfork_prepare(void)
{
    pthread_mutex_lock(&insert_lock);
    fork_locked = 1;
}

MTP_FORK_CODE void mtp_stacktab_atfork_parent(void)
{
    if (fork_locked) {
        fork_locked = 0;
        pthread_mutex_unlock(&insert_lock);
    }
}

MTP_FORK_CODE void mtp_stacktab_atfork_child(void)
{
    fork_locked = 0;
    pthread_mutex_init(&insert_lock, NULL);
}


/* The hot part of every intern, in each caller: the per-thread cache. */
static inline __attribute__((always_inline)) uint32_t
intern_hashed(mtp_thread_t *t, uint64_t hash, const uintptr_t *pcs, uint32_t depth,
              uint32_t known)
{
    mtp_scache_ent_t *e = &t->scache[(hash ^ (hash >> 32)) & (MTP_SCACHE_SLOTS - 1)];
    if (MTP_LIKELY(e->hash == hash && e->depth == depth && e->id != 0 &&
                   node_matches(e->id, hash, pcs, depth)))
        return e->id;
    uint32_t id = table_intern(hash, pcs, depth, known);
    e->hash = hash;
    e->depth = depth;
    e->id = id;
    return id;
}

uint32_t mtp_stack_intern(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth)
{
    if (MTP_UNLIKELY(depth == 0))
        return 0;
    return intern_hashed(t, hash_frames(pcs, depth), pcs, depth, 0);
}

/* A stack whose words are all those of the stack interned last (`same`) has
 * its id, when that stack was interned here under gen_before (wgen): every
 * change of a memo bumps its generation, so wgen == gen_before names the
 * very walk the memo compared with. The hash lanes kept for it are this
 * stack's too. */
uint32_t mtp_stack_intern_from(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth,
                               uint32_t shared, int same, uint64_t gen_before,
                               uint64_t gen_after)
{
    if (MTP_UNLIKELY(depth == 0))
        return 0;
    if (depth > MTP_MAX_DEPTH)
        return mtp_stack_intern(t, pcs, depth);   /* more words than lanes kept */
    uint32_t id;
    if (same && t->wgen == gen_before && t->wid != 0) {
        id = t->wid;
        if (t->hgen == gen_before)
            t->hgen = gen_after;
    } else {
        uint64_t lane[2] = {LANE_A0, LANE_B0};
        uint32_t p = 0;
        if (shared && t->hgen == gen_before && shared <= depth) {
            p = shared;
            lane[0] = t->hlane[p][0];
            lane[1] = t->hlane[p][1];
        }
        hash_words(lane, pcs, depth, p, t->hlane);
        t->hgen = gen_after;
        /* The outer `shared` words are those of stored stack wid (when it
         * is the one interned under gen_before), whose words the new-stack
         * hook has seen: a new stack's are only its inner ones. */
        uint32_t known = shared && t->wgen == gen_before && t->wid != 0 && shared <= depth
                             ? shared : 0;
        id = intern_hashed(t, hash_end(lane, depth), pcs, depth, known);
    }
    t->wid = id;
    t->wgen = gen_after;
    return id;
}

/* A fork child's first stacks (t->fresh, base/thread.h; walked without the
 * memo, unwind/unwind.c): the id from the table, the per-thread cache's
 * wiped pages neither read nor written. Counts them. */
static MTP_NOINLINE uint32_t intern_fresh(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth)
{
    t->fresh--;
    if (depth == 0)
        return 0;
    return table_intern(hash_frames(pcs, depth), pcs, depth, 0);
}

uint32_t mtp_stack_intern_walk(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth,
                               uint64_t gen_before)
{
    const mtp_unwind_memo_t *m = &t->umemo;
    if (m->gen == gen_before) {   /* not the memo's walk */
        if (MTP_UNLIKELY(t->fresh))
            return intern_fresh(t, pcs, depth);
        return mtp_stack_intern(t, pcs, depth);
    }
    return mtp_stack_intern_from(t, pcs, depth, m->shared, (int)m->same, gen_before, m->gen);
}


uint32_t mtp_stack_copy(uint32_t id, uintptr_t *out, uint32_t max)
{
    if (id == 0 || id >= atomic_load_explicit(&node_count, memory_order_acquire) ||
        id >= max_nodes)
        return 0;
    const stack_node_t *n = node_at(id);
    if (n->depth > max)
        return 0;
    memcpy(out, &frame_pool[n->frames], n->own * sizeof(*out));
    uint32_t k = n->own;
    for (uint32_t c = n->chunk; c != 0; c = chunks[c].outer, k += CHUNK)
        memcpy(out + k, &frame_pool[chunks[c].frames], CHUNK * sizeof(*out));
    return n->depth;
}

uint32_t mtp_stack_own(uint32_t id, const uintptr_t **words, uint32_t *chunk)
{
    if (id == 0 || id >= atomic_load_explicit(&node_count, memory_order_acquire) ||
        id >= max_nodes)
        return 0;
    const stack_node_t *n = node_at(id);
    *words = &frame_pool[n->frames];
    *chunk = n->chunk;
    return n->own;
}

uint32_t mtp_stack_chunk(uint32_t c, const uintptr_t **words, uint32_t *outer)
{
    /* c came from a published node (or chunk), whose release store ordered
     * the chunk's node and words before it: no lock, no count check. */
    *words = &frame_pool[chunks[c].frames];
    *outer = chunks[c].outer;
    return CHUNK;
}

uint32_t mtp_stack_count(void)
{
    uint32_t n = atomic_load_explicit(&node_count, memory_order_acquire);
    return n < max_nodes ? n : (uint32_t)max_nodes;
}
