/*
 * The live map: every live block by address, exact for every input.
 * Writer-only (the writer thread, or a fork child before its writer runs):
 * nothing is atomic. Memory comes from mmap, never from the traced heap.
 *
 * Layout. A radix directory over page numbers (address >> 12, 4 levels of
 * 9 bits: addresses below 2^48) ends in leaf slots, one per 4 KiB page. A
 * slot is 0 or names the page's bucket: its pointer << 12 | class << 10 |
 * count. A bucket holds the blocks that start in the page as 8-byte compact
 * entries sorted by address: offset/8 (9 bits) | domain (2) | size (21) |
 * stack (32), offset in the top bits so that entries compare as their
 * addresses. A block a compact entry cannot hold (address not 8-aligned or
 * above 2^48, size >= 2 MiB, domain >= 4) is a wide block: it lives in a
 * small open-addressing hash of whole mtsnap_block_t instead. An address is
 * in at most one of the two.
 *
 * Buckets come in 32 capacity classes (1..8, then 4 steps per doubling up
 * to 512 entries, the most a page can hold), carved from 1 MiB mmap'd
 * chunks, with a free list per class. A bucket grows one class when full,
 * so it is 80-100% full while blocks are added (about 9 B per block). When
 * half empty it moves to a class with a quarter to spare if a bucket of
 * that class is free: reused, never carved, so removing blocks never maps
 * memory and the arena stays within the live peak's.
 * Directory nodes (4 KiB) come from the same chunks and are never freed
 * (4 KiB per 2 MiB of address space).
 *
 * The walk visits the directory in order and merges the wide blocks, which
 * it copies and sorts first (on the stack, or in mmap'd scratch when there
 * are more than LM_WIDE_LOCAL; they are few in practice). The page walk
 * hands out the buckets themselves, for the leak scan to read in place
 * while nothing changes the map; the wide blocks come from their own call.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "base/liveentry.h"
#include "base/util.h"
#include "writer/livemap.h"

#define LM_PAGE_SHIFT MTP_LE_PAGE_SHIFT
#define LM_BITS 9                         /* directory levels index 9 bits each */
#define LM_FAN (1u << LM_BITS)
#define LM_NODE_BYTES (LM_FAN * sizeof(uint64_t))
#define LM_ADDR_LIMIT MTP_LE_ADDR_LIMIT  /* 4 levels x 9 bits + 12 */
#define LM_CHUNK (1u << 20)               /* arena chunk */
#define LM_FILL (64u << 10)               /* bytes of it filled at a time */
#define LM_SLOT_PTR_LIMIT (1ull << 52)    /* a bucket pointer fits a slot below this */
#define LM_LINEAR_MAX 32                  /* buckets searched by a linear count */
#define LM_WIDE_MIN 64                    /* first size of the wide hash (a power of two) */
#define LM_WIDE_LOCAL 32                  /* wide blocks a walk sorts on the stack */

/* compact entry: offset/8 | domain | size | stack (base/liveentry.h) */
#define E_OFF_SHIFT MTP_LE_OFF_SHIFT
#define E_DOM_SHIFT MTP_LE_DOM_SHIFT
#define E_SIZE_SHIFT MTP_LE_SIZE_SHIFT
#define E_SIZE_LIMIT MTP_LE_SIZE_LIMIT
#define E_DOM_LIMIT MTP_LE_DOM_LIMIT

/* leaf slot: pointer << 12 | class << 10 | count */
#define S_COUNT_MASK 1023u
#define S_CLASS_SHIFT 10
#define S_CLASS_MASK 31u
#define S_PTR_SHIFT 12

static const uint16_t lm_cap[MTP_LM_NCLASSES] = {
    1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32,
    40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512};

static inline uint64_t *s_ptr(uint64_t s) { return (uint64_t *)(uintptr_t)((s >> S_PTR_SHIFT) & ~7ull); }
static inline unsigned s_class(uint64_t s) { return (unsigned)(s >> S_CLASS_SHIFT) & S_CLASS_MASK; }
static inline unsigned s_count(uint64_t s) { return (unsigned)s & S_COUNT_MASK; }
static inline uint64_t s_make(const uint64_t *p, unsigned cls, unsigned n)
{
    return (uint64_t)(uintptr_t)p << S_PTR_SHIFT | (uint64_t)cls << S_CLASS_SHIFT | n;
}

static inline int addressable(uint64_t a) { return !(a & 7) && a < LM_ADDR_LIMIT; }
static inline int compact_ok(const mtsnap_block_t *b)
{
    return addressable(b->address) && b->size < E_SIZE_LIMIT && b->domain < E_DOM_LIMIT;
}
static inline unsigned e_off(uint64_t e) { return mtp_le_off(e); }
static inline uint64_t e_make(const mtsnap_block_t *b)
{
    return ((b->address & ((1u << LM_PAGE_SHIFT) - 1)) >> 3) << E_OFF_SHIFT |
           (uint64_t)b->domain << E_DOM_SHIFT | b->size << E_SIZE_SHIFT | b->stack;
}
static inline mtsnap_block_t e_block(uint64_t page_base, uint64_t e)
{
    return (mtsnap_block_t){mtp_le_address(page_base, e), mtp_le_size(e), 0, (uint32_t)e,
                            mtp_le_domain(e)};
}

/* ---- the arena ---- */
static void *lm_mmap(mtp_livemap_t *m, size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    m->mapped += n;
    return p;
}

/* Fresh bytes from the current chunk (zero: chunk memory is never reused
 * but through the free lists). */
static void *carve(mtp_livemap_t *m, size_t n)
{
    if (!m->chunk || m->chunk_used + n > LM_CHUNK) {
        char *c = lm_mmap(m, LM_CHUNK);
        if (!c)
            return NULL;
        if ((uint64_t)(uintptr_t)c + LM_CHUNK > LM_SLOT_PTR_LIMIT) {
            munmap(c, LM_CHUNK);
            m->mapped -= LM_CHUNK;
            return NULL;
        }
        *(void **)c = m->chunks;
        m->chunks = c;
        m->chunk = c;
        m->chunk_used = sizeof(uint64_t);
        m->chunk_filled = 0;
    }
    void *p = m->chunk + m->chunk_used;
    m->chunk_used += n;
    /* Carved from the start and written at once: LM_FILL bytes ahead in
     * one call, not a fault a page (base/util.h); but not in the first
     * LM_FILL bytes of the first chunk (no link to a chunk before it), all
     * a small process's map uses (each page filled ahead and not used is
     * memory it would not have). */
    if (*(void **)m->chunk != NULL || m->chunk_used > LM_FILL)
        mtp_populate_ahead(m->chunk, m->chunk_used, &m->chunk_filled, LM_CHUNK, LM_FILL);
    return p;
}

static uint64_t *bucket_new(mtp_livemap_t *m, unsigned cls)
{
    uint64_t *b = m->freel[cls];
    if (b) {
        m->freel[cls] = *(uint64_t **)b;
        return b;
    }
    return carve(m, (size_t)lm_cap[cls] * sizeof(uint64_t));
}

static void bucket_free(mtp_livemap_t *m, uint64_t *b, unsigned cls)
{
    *(uint64_t **)b = m->freel[cls];
    m->freel[cls] = b;
}

/* ---- the directory ---- */
/* The leaf slot of addr's page (addressable), or NULL when its leaf node
 * does not exist and `create` is 0 (or memory ran out). */
static uint64_t *leaf_slot(mtp_livemap_t *m, uint64_t addr, int create)
{
    uint64_t pg = addr >> LM_PAGE_SHIFT;
    if (m->leaf && m->leaf_key == addr >> (LM_PAGE_SHIFT + LM_BITS))
        return &m->leaf[pg & (LM_FAN - 1)];
    if (!m->root) {
        if (!create || !(m->root = carve(m, LM_NODE_BYTES)))
            return NULL;
    }
    uint64_t *node = m->root;
    for (int shift = 3 * LM_BITS; shift > 0; shift -= LM_BITS) {
        uint64_t *slot = &node[(pg >> shift) & (LM_FAN - 1)];
        if (!*slot) {
            void *n = create ? carve(m, LM_NODE_BYTES) : NULL;
            if (!n)
                return NULL;
            *slot = (uint64_t)(uintptr_t)n;
        }
        node = (uint64_t *)(uintptr_t)*slot;
    }
    m->leaf = node;
    m->leaf_key = addr >> (LM_PAGE_SHIFT + LM_BITS);
    return &node[pg & (LM_FAN - 1)];
}

/* First index in b[0..n) whose offset is >= off. A small bucket is counted
 * through. In a big one offsets spread over the page, so the first probe
 * is where off would sit if they were even and the next narrows the search
 * to 8 entries when they nearly are: about two cache lines for a random
 * lookup instead of a binary search's five. */
static inline unsigned lower_bound(const uint64_t *b, unsigned n, unsigned off)
{
    if (n <= LM_LINEAR_MAX) {   /* small: count, without a branch to mispredict */
        unsigned k = 0;
        for (unsigned i = 0; i < n; i++)
            k += e_off(b[i]) < off;
        return k;
    }
    unsigned lo = 0, hi = n, g = (unsigned)(((uint64_t)off * n) >> 9);   /* g < n */
    if (e_off(b[g]) < off) {
        lo = g + 1;
        if (g + 8 < n && e_off(b[g + 8]) >= off)
            hi = g + 8;
    } else {
        hi = g;
        if (g >= 8 && e_off(b[g - 8]) < off)
            lo = g - 7;
    }
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (e_off(b[mid]) < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Entry moves: a few words inline, more with memmove (the Python
 * workload's inserts moved 14 words on average, a loop of five
 * instructions a word). */
#define MOVE_INLINE 8u
static inline void move_up(uint64_t *b, unsigned from, unsigned n)   /* b[from..n) -> +1 */
{
    if (n - from > MOVE_INLINE) {
        memmove(b + from + 1, b + from, (size_t)(n - from) * sizeof(*b));
        return;
    }
    for (unsigned i = n; i > from; i--)
        b[i] = b[i - 1];
}

static inline void move_down(uint64_t *b, unsigned to, unsigned n)   /* b[to+1..n] -> -1 */
{
    if (n - to > MOVE_INLINE) {
        memmove(b + to, b + to + 1, (size_t)(n - to) * sizeof(*b));
        return;
    }
    for (unsigned i = to; i < n; i++)
        b[i] = b[i + 1];
}

static inline void copy_words(uint64_t *d, const uint64_t *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        d[i] = s[i];
}

static inline unsigned page_off(uint64_t addr)
{
    return (unsigned)(addr & ((1u << LM_PAGE_SHIFT) - 1)) >> 3;
}

/* Index of addr's entry in its bucket, or -1. */
static int bucket_find(uint64_t s, uint64_t addr)
{
    if (!s)
        return -1;
    const uint64_t *b = s_ptr(s);
    unsigned n = s_count(s), off = page_off(addr), i = lower_bound(b, n, off);
    return i < n && e_off(b[i]) == off ? (int)i : -1;
}

static int bucket_insert(mtp_livemap_t *m, uint64_t *slot, unsigned pos, uint64_t e)
{
    uint64_t s = *slot;
    if (!s) {
        uint64_t *b = bucket_new(m, 0);
        if (!b)
            return -ENOMEM;
        b[0] = e;
        *slot = s_make(b, 0, 1);
        return 0;
    }
    uint64_t *b = s_ptr(s);
    unsigned n = s_count(s), cls = s_class(s);
    if (n < lm_cap[cls]) {
        move_up(b, pos, n);
        b[pos] = e;
        *slot = s + 1;
        return 0;
    }
    uint64_t *nb = bucket_new(m, cls + 1);   /* n < 512: a full 512 holds every offset */
    if (!nb)
        return -ENOMEM;
    copy_words(nb, b, pos);
    nb[pos] = e;
    copy_words(nb + pos + 1, b + pos, n - pos);
    bucket_free(m, b, cls);
    *slot = s_make(nb, cls + 1, n + 1);
    return 0;
}

static void bucket_remove(mtp_livemap_t *m, uint64_t *slot, unsigned pos)
{
    uint64_t s = *slot;
    uint64_t *b = s_ptr(s);
    unsigned n = s_count(s) - 1, cls = s_class(s);
    if (!n) {
        bucket_free(m, b, cls);
        *slot = 0;
        return;
    }
    if (n <= lm_cap[cls] / 2) {   /* half empty: to a class with a quarter to spare */
        unsigned to = 0;
        while (lm_cap[to] < n + n / 4 + 1)
            to++;
        if (to < cls && m->freel[to]) {
            uint64_t *nb = bucket_new(m, to);   /* from the free list */
            copy_words(nb, b, pos);
            copy_words(nb + pos, b + pos + 1, n - pos);
            bucket_free(m, b, cls);
            *slot = s_make(nb, to, n);
            return;
        }
    }
    move_down(b, pos, n);
    *slot = s - 1;
}

/* ---- the wide blocks: open addressing, linear probing, backward-shift
 * deletion, load at most 1/2; address 0 marks an empty slot ---- */
static inline size_t wide_home(uint64_t addr, size_t mask)
{
    return (size_t)((addr * MTP_HASH_MUL) >> 32) & mask;
}

static ssize_t wide_find(const mtp_livemap_t *m, uint64_t addr)
{
    if (!m->wide_used)
        return -1;
    size_t mask = m->wide_cap - 1;
    for (size_t i = wide_home(addr, mask); m->wide[i].address; i = (i + 1) & mask)
        if (m->wide[i].address == addr)
            return (ssize_t)i;
    return -1;
}

/* Room for one more wide block. */
static int wide_reserve(mtp_livemap_t *m)
{
    if ((m->wide_used + 1) * 2 <= m->wide_cap)
        return 0;
    size_t cap = m->wide_cap ? m->wide_cap * 2 : LM_WIDE_MIN, mask = cap - 1;
    mtsnap_block_t *nw = lm_mmap(m, cap * sizeof(*nw));
    if (!nw)
        return -ENOMEM;
    for (size_t i = 0; i < m->wide_cap; i++) {
        if (!m->wide[i].address)
            continue;
        size_t j = wide_home(m->wide[i].address, mask);
        while (nw[j].address)
            j = (j + 1) & mask;
        nw[j] = m->wide[i];
    }
    if (m->wide) {
        munmap(m->wide, m->wide_cap * sizeof(*m->wide));
        m->mapped -= m->wide_cap * sizeof(*m->wide);
    }
    m->wide = nw;
    m->wide_cap = cap;
    return 0;
}

/* Adds b, not present; wide_reserve made room. */
static void wide_add(mtp_livemap_t *m, const mtsnap_block_t *b)
{
    size_t mask = m->wide_cap - 1, i = wide_home(b->address, mask);
    while (m->wide[i].address)
        i = (i + 1) & mask;
    m->wide[i] = *b;
    m->wide[i].counter = 0;
    m->wide_used++;
}

static void wide_del(mtp_livemap_t *m, size_t i)
{
    size_t mask = m->wide_cap - 1, j = i;
    m->wide_used--;
    for (;;) {
        m->wide[i].address = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!m->wide[j].address)
                return;
            if (mtp_probe_fills_hole(i, j, wide_home(m->wide[j].address, mask)))
                break;
        }
        m->wide[i] = m->wide[j];
        i = j;
    }
}

/* ---- the interface ---- */
int mtp_lm_find(mtp_livemap_t *m, uint64_t addr, mtsnap_block_t *out)
{
    if (addressable(addr)) {
        uint64_t *slot = leaf_slot(m, addr, 0);
        int i = slot ? bucket_find(*slot, addr) : -1;
        if (i >= 0) {
            *out = e_block(addr & ~((1ull << LM_PAGE_SHIFT) - 1), s_ptr(*slot)[i]);
            return 1;
        }
    }
    ssize_t w = wide_find(m, addr);
    if (w < 0)
        return 0;
    *out = m->wide[w];
    return 1;
}

int mtp_lm_remove(mtp_livemap_t *m, uint64_t addr, mtsnap_block_t *out)
{
    if (addressable(addr)) {
        uint64_t *slot = leaf_slot(m, addr, 0);
        int i = slot ? bucket_find(*slot, addr) : -1;
        if (i >= 0) {
            *out = e_block(addr & ~((1ull << LM_PAGE_SHIFT) - 1), s_ptr(*slot)[i]);
            bucket_remove(m, slot, (unsigned)i);
            m->count--;
            return 1;
        }
    }
    ssize_t w = wide_find(m, addr);
    if (w < 0)
        return 0;
    *out = m->wide[w];
    wide_del(m, (size_t)w);
    m->count--;
    return 1;
}

/* Nothing changes when memory runs out: room is made before anything moves. */
int mtp_lm_insert(mtp_livemap_t *m, const mtsnap_block_t *b, mtsnap_block_t *old)
{
    if (!compact_ok(b)) {
        if (wide_reserve(m) < 0)
            return -ENOMEM;
        int replaced = mtp_lm_remove(m, b->address, old);
        wide_add(m, b);
        m->count++;
        return replaced;
    }
    uint64_t *slot = leaf_slot(m, b->address, 1);
    if (!slot)
        return -ENOMEM;
    const uint64_t *bk = s_ptr(*slot);
    unsigned n = s_count(*slot), off = page_off(b->address), pos = lower_bound(bk, n, off);
    if (pos < n && e_off(bk[pos]) == off) {   /* same address: in place */
        *old = e_block(b->address & ~((1ull << LM_PAGE_SHIFT) - 1), bk[pos]);
        s_ptr(*slot)[pos] = e_make(b);
        return 1;
    }
    if (bucket_insert(m, slot, pos, e_make(b)) < 0)
        return -ENOMEM;
    m->count++;
    ssize_t w = wide_find(m, b->address);   /* it was a wide block */
    if (w < 0)
        return 0;
    *old = m->wide[w];
    wide_del(m, (size_t)w);
    m->count--;
    return 1;
}

/* ---- the walk ---- */
static void sift(mtsnap_block_t *a, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && a[c + 1].address > a[c].address)
            c++;
        if (a[i].address >= a[c].address)
            return;
        mtsnap_block_t t = a[i];
        a[i] = a[c];
        a[c] = t;
        i = c;
    }
}

static void heapsort_blocks(mtsnap_block_t *a, size_t n)   /* in place, no memory */
{
    for (size_t i = n / 2; i-- > 0;)
        sift(a, i, n);
    for (size_t k = n; k > 1; k--) {
        mtsnap_block_t t = a[0];
        a[0] = a[k - 1];
        a[k - 1] = t;
        sift(a, 0, k - 1);
    }
}

typedef struct walk {
    mtp_lm_visit_fn fn;
    void *arg;
    const mtsnap_block_t *wide;   /* sorted */
    size_t nwide, next;
    uint64_t from;                /* blocks below it are not visited */
} walk_t;

/* The wide blocks below `addr`, then nothing else. */
static int wide_upto(walk_t *w, uint64_t addr)
{
    int r = 0;
    while (w->next < w->nwide && w->wide[w->next].address < addr && !r)
        r = w->fn(w->arg, &w->wide[w->next++]);
    return r;
}

static int walk_node(walk_t *w, const uint64_t *node, int level, uint64_t pg)
{
    int r = 0;
    /* a child covers 2^span bytes; those wholly below `from` are skipped */
    unsigned span = LM_PAGE_SHIFT + (unsigned)(3 - level) * LM_BITS;
    for (unsigned i = 0; i < LM_FAN && !r; i++) {
        if (!node[i])
            continue;
        uint64_t p = pg << LM_BITS | i;
        if (((p + 1) << span) <= w->from)
            continue;
        if (level < 3) {
            r = walk_node(w, (const uint64_t *)(uintptr_t)node[i], level + 1, p);
            continue;
        }
        const uint64_t *b = s_ptr(node[i]);
        unsigned n = s_count(node[i]);
        for (unsigned k = 0; k < n && !r; k++) {
            mtsnap_block_t blk = e_block(p << LM_PAGE_SHIFT, b[k]);
            if (blk.address < w->from)
                continue;
            if (!(r = wide_upto(w, blk.address)))
                r = w->fn(w->arg, &blk);
        }
    }
    return r;
}

int mtp_lm_walk(const mtp_livemap_t *m, mtp_lm_visit_fn fn, void *arg)
{
    return mtp_lm_walk_from(m, 0, fn, arg);
}

/* The wide blocks at `from` or above: how many, and when out is given,
 * those blocks in it by increasing address. */
static size_t wide_from(const mtp_livemap_t *m, uint64_t from, mtsnap_block_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < m->wide_cap; i++)
        if (m->wide[i].address && m->wide[i].address >= from) {
            if (out)
                out[k] = m->wide[i];
            k++;
        }
    if (out)
        heapsort_blocks(out, k);
    return k;
}

int mtp_lm_walk_from(const mtp_livemap_t *m, uint64_t from, mtp_lm_visit_fn fn, void *arg)
{
    /* The wide blocks at `from` or above, sorted. A snapshot resumes the
     * walk every 512 blocks, so this runs thousands of times a snapshot:
     * a few wide blocks (a Python program's largest lists) are sorted on
     * the stack; a fresh mapping each time cost a page fault and, at its
     * unmapping, a TLB shootdown of the program's CPU. */
    mtsnap_block_t local[LM_WIDE_LOCAL], *sorted = NULL;
    size_t k = wide_from(m, from, NULL), bytes = 0;
    if (k > LM_WIDE_LOCAL) {
        bytes = k * sizeof(*sorted);
        sorted = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (sorted == MAP_FAILED)
            return -ENOMEM;
    } else if (k) {
        sorted = local;
    }
    if (k)
        wide_from(m, from, sorted);
    walk_t w = {fn, arg, sorted, k, 0, from};
    int r = m->root ? walk_node(&w, m->root, 0, 0) : 0;
    if (!r)
        r = wide_upto(&w, UINT64_MAX);
    if (!r && w.next < w.nwide)   /* a block at UINT64_MAX itself */
        r = fn(arg, &w.wide[w.next++]);
    if (bytes)
        munmap(sorted, bytes);
    return r;
}

static int pages_node(const uint64_t *node, int level, uint64_t pg, mtp_le_page_fn fn, void *arg)
{
    int r = 0;
    for (unsigned i = 0; i < LM_FAN && !r; i++) {
        if (!node[i])
            continue;
        uint64_t p = pg << LM_BITS | i;
        if (level < 3)
            r = pages_node((const uint64_t *)(uintptr_t)node[i], level + 1, p, fn, arg);
        else if (s_count(node[i]))
            r = fn(arg, p << LM_PAGE_SHIFT, s_ptr(node[i]), s_count(node[i]));
    }
    return r;
}

int mtp_lm_walk_pages(const mtp_livemap_t *m, mtp_le_page_fn fn, void *arg)
{
    return m->root ? pages_node(m->root, 0, 0, fn, arg) : 0;
}

size_t mtp_lm_wide(const mtp_livemap_t *m, mtsnap_block_t *out, size_t max)
{
    size_t k = wide_from(m, 0, NULL);
    return k > max || !k ? k : wide_from(m, 0, out);
}

size_t mtp_lm_memory(const mtp_livemap_t *m)
{
    return m->mapped;
}

void mtp_lm_destroy(mtp_livemap_t *m)
{
    for (void *c = m->chunks, *next; c; c = next) {
        next = *(void **)c;
        munmap(c, LM_CHUNK);
    }
    if (m->wide)
        munmap(m->wide, m->wide_cap * sizeof(*m->wide));
    memset(m, 0, sizeof(*m));
}
