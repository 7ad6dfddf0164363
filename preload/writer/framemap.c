/*
 * A snapshot's frames: the stacks it writes, as lists of dense frame
 * indices, each distinct frame once.
 *
 * Runs on the writer thread (snapwrite.c), one map per snapshot; its memory
 * is the writer's own (untraced) and freed with the snapshot.
 *
 * A stack is stored as its own innermost words and a chain of chunks shared
 * with other stacks (record/stacktab.c). Turning a word into a frame key
 * costs a hash probe or two (the code registry for a Python frame, then this
 * map), and a deep program's stacks share most of their words, so each
 * chunk is turned into indices once per snapshot and remembered: a stack
 * then costs its own words and one memo probe per chunk. A Python frame may
 * take two words (python/py.h), and the second may be the first word of
 * the next chunk out. So what a chunk yields depends on whether its first
 * word belongs to the frame before it: the memo is keyed by (chunk, words
 * skipped), and says how many words of the chunk outside belong to its own
 * last frame. Both are fixed by the chunk, since a chunk names the chain
 * outside it.
 *
 * A Python frame's key is its entry in the code registry, found with a
 * probe there and one here. Most Python frames come back in stack after
 * stack (the same line of the same function), so their words are kept
 * with their frame index in a direct-mapped table (PYC_SLOTS): a frame
 * seen before costs one probe of that table, its words compared whole.
 * The registry's answer for the same words does not change while a
 * snapshot is written: a published stack's locations were registered
 * before it (the registry out of room aside, when they are unknown).
 *
 * The file keeps that sharing (format version 3): each memo entry that a
 * written stack reaches becomes one node of the STACKS tree, made after the
 * node of the chunk outside it, and each stack a node of its own words
 * whose parent is its first chunk's node. So a stack costs its own frames
 * and a chunk its frames once per file, however many stacks share it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "python/py.h"
#include "record/record.h"
#include "writer/framemap.h"

#define FIRST_SLOTS 1024
#define PYC_SLOTS 4096           /* Python frames remembered by their words (96 KiB) */
#define FILL_AHEAD (64u << 10)   /* bytes of the pool and the nodes filled at a time */

/* Pages never touched before cost a fault each at their first write, and
 * one madvise fills many for half that a page (base/util.h, mtp_populate):
 * the hash tables are filled whole when made, since they are written all
 * over; the pool and the nodes, written from their start, FILL_AHEAD bytes
 * ahead of the writes (mtp_populate_ahead). Their `filled` bytes restart at
 * what an array holds when it moves. */

/* A hash table's array of n entries of `size` bytes, its pages filled. */
static void *table(uint32_t n, size_t size)
{
    void *p = malloc(n * size);
    if (p)
        mtp_populate(p, n * size);
    return p;
}

static inline uint32_t slot_of(uint64_t k, uint32_t nslots)
{
    return (uint32_t)((k * 0x9e3779b97f4a7c15ull) >> 32) & (nslots - 1);
}

/* Room for one more frame: grows the slots (load at most 1/2) and the
 * order array by doubling. 0 or -ENOMEM. */
static int frames_reserve(mtp_framemap_t *m)
{
    if ((m->count + 1) * 2 <= m->nslots)
        return 0;
    uint32_t n = m->nslots ? m->nslots * 2 : FIRST_SLOTS;
    uint64_t *key = table(n, sizeof(*key)), *order = realloc(m->order, (size_t)n / 2 * sizeof(*order));
    uint32_t *idx = table(n, sizeof(*idx));
    if (order)
        m->order = order;
    if (!key || !idx || !order) {
        free(key);
        free(idx);
        return -ENOMEM;
    }
    memset(key, 0, n * sizeof(*key));
    mtp_populate(order + m->count, ((size_t)n / 2 - m->count) * sizeof(*order));
    for (uint32_t i = 0; i < m->count; i++) {
        uint32_t j = slot_of(m->order[i], n);
        while (key[j])
            j = (j + 1) & (n - 1);
        key[j] = m->order[i];
        idx[j] = i;
    }
    free(m->key);
    free(m->idx);
    m->key = key;
    m->idx = idx;
    m->nslots = n;
    return 0;
}

/* The frame index of key, added if new (a key seen before costs no
 * allocation). */
static int64_t frame_index(mtp_framemap_t *m, uint64_t key)
{
    uint32_t j = 0;
    if (m->nslots) {
        for (j = slot_of(key, m->nslots); m->key[j]; j = (j + 1) & (m->nslots - 1))
            if (m->key[j] == key)
                return m->idx[j];
    }
    if (frames_reserve(m) < 0)
        return -ENOMEM;
    for (j = slot_of(key, m->nslots); m->key[j]; j = (j + 1) & (m->nslots - 1))
        ;
    m->key[j] = key;
    m->idx[j] = m->count;
    m->order[m->count] = key;
    return m->count++;
}

static uint64_t python_key(uintptr_t code, uintptr_t offset)
{
    int64_t idx = mtp_py_lookup(code, offset, NULL);
    return MTP_PYWORD_TAG | (idx < 0 ? 0xffffffffull : (uint64_t)idx);
}

/* The frame index of the Python frame of words w0 (tagged) and w1 (0 for a
 * packed word), added if new. */
static int64_t py_frame(mtp_framemap_t *m, uintptr_t w0, uintptr_t w1)
{
    if (!m->pyc && !m->pyc_failed) {   /* made at the first Python frame, tried once */
        if ((m->pyc = table(PYC_SLOTS, sizeof(*m->pyc))) != NULL)
            memset(m->pyc, 0, PYC_SLOTS * sizeof(*m->pyc));
        else
            m->pyc_failed = 1;
    }
    mtp_fmpy_t *e = m->pyc ? &m->pyc[slot_of(w0 ^ (w1 * 0xff51afd7ed558ccdull), PYC_SLOTS)] : NULL;
    if (e && e->w0 == w0 && e->w1 == w1)
        return e->frame;
    const uintptr_t w[2] = {w0, w1};
    uintptr_t code, offset;
    mtp_pyword_get(w, 2, &code, &offset);
    int64_t k = frame_index(m, python_key(code, offset));
    if (k >= 0 && e)
        *e = (mtp_fmpy_t){w0, w1, (uint32_t)k};
    return k;
}

/* The frames that start in w[skip..n) into out[*nout...]. `next` is the
 * first word after w[n - 1] (when has_next), which a two-word frame at the
 * end needs. Returns the words of the next part that belong to the last
 * frame (0 or 1), or -ENOMEM. */
static int frames_of(mtp_framemap_t *m, const uintptr_t *w, uint32_t n, uint32_t skip,
                     int has_next, uintptr_t next, uint32_t *out, uint32_t *nout)
{
    uint32_t i = skip;
    while (i < n) {
        uintptr_t x = w[i];
        int64_t k;
        if (!mtp_is_pyword(x)) {
            k = frame_index(m, x);
            i++;
        } else if (x & MTP_PYWORD_PACKED) {
            k = py_frame(m, x, 0);
            i++;
        } else if (i + 1 < n || has_next) {
            k = py_frame(m, x, i + 1 < n ? w[i + 1] : next);
            i += 2;
        } else {
            k = frame_index(m, x);   /* a two-word frame cut short by the depth: its bare word */
            i++;
        }
        if (k < 0)
            return (int)k;
        out[(*nout)++] = (uint32_t)k;
    }
    return (int)(i - n);
}

/* ---- the chunk memo ---- */
static int memo_reserve(mtp_framemap_t *m)
{
    if ((m->mcount + 1) * 2 <= m->mslots)
        return 0;
    uint32_t n = m->mslots ? m->mslots * 2 : FIRST_SLOTS;
    uint64_t *key = table(n, sizeof(*key));
    uint32_t *off = table(n, sizeof(*off)), *outer = table(n, sizeof(*outer));
    uint32_t *node = table(n, sizeof(*node));
    uint8_t *len = table(n, 1), *skip = table(n, 1);
    if (!key || !off || !outer || !node || !len || !skip) {
        free(key);
        free(off);
        free(outer);
        free(node);
        free(len);
        free(skip);
        return -ENOMEM;
    }
    memset(key, 0, n * sizeof(*key));
    for (uint32_t i = 0; i < m->mslots; i++) {
        if (!m->mkey[i])
            continue;
        uint32_t j = slot_of(m->mkey[i], n);
        while (key[j])
            j = (j + 1) & (n - 1);
        key[j] = m->mkey[i];
        off[j] = m->moff[i];
        outer[j] = m->mouter[i];
        node[j] = m->mnode[i];
        len[j] = m->mlen[i];
        skip[j] = m->mskip[i];
    }
    free(m->mkey);
    free(m->moff);
    free(m->mouter);
    free(m->mnode);
    free(m->mlen);
    free(m->mskip);
    m->mkey = key;
    m->moff = off;
    m->mouter = outer;
    m->mnode = node;
    m->mlen = len;
    m->mskip = skip;
    m->mslots = n;
    return 0;
}

/* The memo's slot for key: its entry, or the empty slot where it goes. */
static uint32_t memo_slot(const mtp_framemap_t *m, uint64_t key)
{
    uint32_t j = slot_of(key, m->mslots);
    while (m->mkey[j] && m->mkey[j] != key)
        j = (j + 1) & (m->mslots - 1);
    return j;
}

int mtp_framemap_reserve(mtp_framemap_t *m, uint32_t nodes, size_t pool)
{
    if (nodes > m->nodes_cap) {
        mtp_fmnode_t *n = realloc(m->nodes, (size_t)nodes * sizeof(*n));
        if (!n)
            return -ENOMEM;
        m->nodes = n;
        m->nodes_cap = nodes;
        m->nodes_filled = m->nnodes * sizeof(*n);
    }
    if (pool * sizeof(*m->pool) > m->pool_cap) {
        uint32_t *p = realloc(m->pool, pool * sizeof(*p));
        if (!p)
            return -ENOMEM;
        m->pool = p;
        m->pool_cap = pool * sizeof(*p);
        m->pool_filled = m->npool * sizeof(*p);
    }
    return 0;
}

/* Appends len frame indices to the pool: their offset, or -ENOMEM. */
static int64_t pool_add(mtp_framemap_t *m, const uint32_t *f, uint32_t len)
{
    size_t need = (m->npool + len) * sizeof(*m->pool);
    if (need > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap * 2 : FIRST_SLOTS * sizeof(*m->pool);
        while (cap < need)
            cap *= 2;
        if (mtp_framemap_reserve(m, 0, cap / sizeof(*m->pool)) < 0)
            return -ENOMEM;
    }
    mtp_populate_ahead(m->pool, need, &m->pool_filled, m->pool_cap, FILL_AHEAD);
    memcpy(m->pool + m->npool, f, len * sizeof(*f));
    m->npool += len;
    return (int64_t)(m->npool - len);
}

/* Chunk c (entered with `skip` words of it belonging to the frame before)
 * as frame indices appended to out: from the memo, or computed and kept.
 * Sets *outer and *skip for the chunk outside it. */
static int chunk_frames(mtp_framemap_t *m, uint32_t c, uint32_t *skip, uint32_t *outer,
                        uint32_t *out, uint32_t *nout)
{
    uint64_t key = ((uint64_t)c << 1 | *skip) + 1;
    uint32_t j = m->mslots ? memo_slot(m, key) : 0;
    if (m->mslots && m->mkey[j]) {   /* a chunk seen before costs no allocation */
        memcpy(out + *nout, m->pool + m->moff[j], m->mlen[j] * sizeof(*out));
        *nout += m->mlen[j];
        *skip = m->mskip[j];
        *outer = m->mouter[j];
        return 0;
    }
    const uintptr_t *w, *ow = NULL;
    uint32_t n = mtp_stack_chunk(c, &w, outer), o2, first = *nout;
    if (*outer)
        mtp_stack_chunk(*outer, &ow, &o2);
    int r = frames_of(m, w, n, *skip, *outer != 0, ow ? ow[0] : 0, out, nout);
    if (r < 0)
        return r;
    if (memo_reserve(m) < 0)
        return -ENOMEM;
    j = memo_slot(m, key);
    uint32_t len = *nout - first;
    int64_t at = pool_add(m, out + first, len);
    if (at < 0)
        return (int)at;
    m->mkey[j] = key;
    m->moff[j] = (uint32_t)at;
    m->mlen[j] = (uint8_t)len;
    m->mskip[j] = (uint8_t)r;
    m->mouter[j] = *outer;
    m->mnode[j] = 0;
    m->mcount++;
    *skip = (uint32_t)r;
    return 0;
}

/* ---- the tree ---- */
static int64_t node_add(mtp_framemap_t *m, uint32_t off, uint32_t len, uint32_t parent, int is_stack)
{
    if (m->nnodes == m->nodes_cap &&
        mtp_framemap_reserve(m, m->nodes_cap ? m->nodes_cap * 2 : FIRST_SLOTS, 0) < 0)
        return -ENOMEM;
    mtp_populate_ahead(m->nodes, (m->nnodes + 1) * sizeof(*m->nodes), &m->nodes_filled,
                       m->nodes_cap * sizeof(*m->nodes), FILL_AHEAD);
    m->nodes[m->nnodes] = (mtp_fmnode_t){off, parent, (uint16_t)len, (uint16_t)is_stack};
    return m->nnodes++;
}

/* The node of chunk c entered with `skip` words of it belonging to the
 * frame before: from the memo, or made (after the node outside it). The
 * chain is walked inward from the first chunk that has a node, so this
 * neither recurses nor revisits a chunk. */
static int64_t chunk_node(mtp_framemap_t *m, uint32_t c, uint32_t skip)
{
    uint32_t scratch[MTP_STACK_MAX_WORDS], chain[MTP_STACK_MAX_WORDS / 16 + 2];
    uint8_t skips[MTP_STACK_MAX_WORDS / 16 + 2];
    uint32_t depth = 0, parent = MTSNAP_NONE;
    /* Outward: memoize each chunk (its frames), until one has a node. */
    for (;;) {
        uint32_t j, outer, s = skip, nout = 0;
        if (chunk_frames(m, c, &s, &outer, scratch, &nout) < 0)
            return -ENOMEM;
        j = memo_slot(m, ((uint64_t)c << 1 | skip) + 1);
        if (m->mnode[j]) {
            parent = m->mnode[j] - 1;
            break;
        }
        chain[depth] = c;
        skips[depth++] = (uint8_t)skip;
        if (!outer || depth == sizeof(skips))   /* (a stack has fewer chunks) */
            break;
        c = outer;
        skip = s;
    }
    /* Inward: each chunk's node after the one outside it. */
    while (depth--) {
        uint32_t j = memo_slot(m, ((uint64_t)chain[depth] << 1 | skips[depth]) + 1);
        int64_t n = node_add(m, m->moff[j], m->mlen[j], parent, 0);
        if (n < 0)
            return n;
        m->mnode[j] = (uint32_t)n + 1;
        parent = (uint32_t)n;
    }
    return parent;
}

int64_t mtp_framemap_add_stack(mtp_framemap_t *m, uint32_t id)
{
    const uintptr_t *w, *cw = NULL;
    uint32_t chunk, nout = 0, o2, own[MTP_STACK_MAX_WORDS];
    uint32_t n = mtp_stack_own(id, &w, &chunk);
    int64_t parent = MTSNAP_NONE;
    if (n) {
        if (chunk)
            mtp_stack_chunk(chunk, &cw, &o2);
        int r = frames_of(m, w, n, 0, chunk != 0, cw ? cw[0] : 0, own, &nout);
        if (r < 0)
            return r;
        if (chunk && (parent = chunk_node(m, chunk, (uint32_t)r)) < 0)
            return parent;
    }
    int64_t at = pool_add(m, own, nout);
    if (at < 0)
        return at;
    return node_add(m, (uint32_t)at, nout, (uint32_t)parent, 1);
}

void mtp_framemap_free(mtp_framemap_t *m)
{
    free(m->key);
    free(m->idx);
    free(m->order);
    free(m->mkey);
    free(m->moff);
    free(m->mlen);
    free(m->mskip);
    free(m->mouter);
    free(m->mnode);
    free(m->pyc);
    free(m->pool);
    free(m->nodes);
    memset(m, 0, sizeof(*m));
}
