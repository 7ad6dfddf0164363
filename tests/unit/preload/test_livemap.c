/* The live map (preload/writer/livemap.c) and the live table on top of it
 * (live.c), against a reference model: random alloc/free/track/untrack
 * sequences over a pool of addresses that mixes dense pages (full buckets),
 * sparse pages and the edge cases that go to the wide table (unaligned,
 * above 2^48, size >= 2 MiB, extension domains). After every step batch
 * the block set, the walk order, every lookup, the per-stack figures and
 * the totals must equal the model's exactly. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "writer/live.h"
#include "writer/livemap.h"

#define POOL 6000
#define NSTACKS 40
#define STEPS 60000
#define CHECK_EVERY 2000

typedef struct model_block {
    int live;
    mtsnap_block_t b;
} model_block_t;

static uint64_t pool[POOL];
static model_block_t model[POOL];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Distinct nonzero addresses: two whole pages (512 entries each), pages of
 * a few blocks across the 48-bit space, unaligned and high addresses. */
static void make_pool(void)
{
    size_t n = 0;
    for (uint64_t off = 0; off < 4096; off += 8)
        pool[n++] = 0x7f0000001000ull + off;
    for (uint64_t off = 0; off < 4096; off += 8)
        pool[n++] = 0x555555554000ull + off;   /* the next page after a full one too */
    pool[n++] = 0x555555553ff8ull;
    pool[n++] = 0x555555555000ull;
    pool[n++] = 8;                             /* lowest page, offset 8 */
    pool[n++] = 0xfffffffffff8ull;             /* last compact address */
    pool[n++] = 1ull << 48;                    /* first one above */
    pool[n++] = UINT64_MAX;
    pool[n++] = UINT64_MAX - 7;
    pool[n++] = 0x7f0000001001ull;             /* unaligned, in a dense page */
    pool[n++] = 0x7f0000001004ull;
    while (n < POOL) {
        uint64_t a;
        switch (rnd() % 4) {
        case 0: a = (rnd() & 0xffffffffff8ull) | 8; break;                 /* 44-bit, sparse */
        case 1: a = 0x600000000000ull + ((rnd() % 64) << 12) + (rnd() % 512) * 8; break;
        case 2: a = (rnd() & 0xffffffffffffull) | 1; break;                /* unaligned */
        default: a = (1ull << 48) + (rnd() & 0xffffffffff8ull); break;     /* above 2^48 */
        }
        pool[n++] = a;
    }
    qsort(pool, POOL, sizeof(*pool), cmp_u64);
    size_t k = 0;   /* drop duplicates, refill with fresh sparse ones */
    for (size_t i = 0; i < POOL; i++)
        if (!k || pool[i] != pool[k - 1])
            pool[k++] = pool[i];
    for (; k < POOL; k++)
        pool[k] = 0x100000000000ull + k * 4096 * 3;
    qsort(pool, POOL, sizeof(*pool), cmp_u64);
}

static uint64_t rnd_size(void)
{
    switch (rnd() % 16) {
    case 0: return 0;
    case 1: return (1ull << 21) - 1;          /* largest compact */
    case 2: return (1ull << 21) + rnd() % 4096;   /* wide */
    case 3: return 1ull << 40;
    default: return rnd() % 2000;
    }
}

static uint32_t rnd_domain(void)
{
    uint32_t r = (uint32_t)(rnd() % 10);
    return r < 4 ? r : r < 8 ? MTSNAP_DOMAIN_NATIVE : 16 + (uint32_t)(rnd() % 5);
}

/* ---- the map alone ---- */
typedef struct walk_check {
    uint64_t prev;
    size_t n;
    int first;
} walk_check_t;

static size_t pool_index(uint64_t a)
{
    size_t lo = 0, hi = POOL;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (pool[mid] < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    cr_assert(lo < POOL && pool[lo] == a, "walk gave %#llx, not an address of the pool",
              (unsigned long long)a);
    return lo;
}

static void expect_block(const mtsnap_block_t *got, const mtsnap_block_t *want)
{
    cr_assert_eq(got->address, want->address);
    cr_assert_eq(got->size, want->size, "%#llx: size %llu, want %llu",
                 (unsigned long long)want->address, (unsigned long long)got->size,
                 (unsigned long long)want->size);
    cr_assert_eq(got->stack, want->stack, "%#llx: stack", (unsigned long long)want->address);
    cr_assert_eq(got->domain, want->domain, "%#llx: domain", (unsigned long long)want->address);
    cr_assert_eq(got->counter, 0);
}

static int visit(void *arg, const mtsnap_block_t *b)
{
    walk_check_t *w = arg;
    cr_assert(w->first || b->address > w->prev, "walk: %#llx after %#llx",
              (unsigned long long)b->address, (unsigned long long)w->prev);
    size_t i = pool_index(b->address);
    cr_assert(model[i].live, "walk: %#llx is not live", (unsigned long long)b->address);
    expect_block(b, &model[i].b);
    w->prev = b->address;
    w->first = 0;
    w->n++;
    return 0;
}

static void check_map(mtp_livemap_t *m)
{
    size_t live = 0;
    for (size_t i = 0; i < POOL; i++) {
        mtsnap_block_t b;
        int found = mtp_lm_find(m, pool[i], &b);
        cr_assert_eq(found, model[i].live, "find %#llx: %d", (unsigned long long)pool[i], found);
        if (found)
            expect_block(&b, &model[i].b);
        live += model[i].live;
    }
    cr_assert_eq(mtp_lm_count(m), live);
    walk_check_t w = {0, 0, 1};
    cr_assert_eq(mtp_lm_walk(m, visit, &w), 0);
    cr_assert_eq(w.n, live, "walk gave %zu blocks of %zu", w.n, live);
    /* resumed walks (the snapshot's view reads the map a chunk at a time):
     * from a block's address, just past it, just before it, and the ends */
    for (int k = 0; k < 8; k++) {
        uint64_t from = k == 0 ? 0 : k == 1 ? UINT64_MAX : pool[rnd() % POOL] + (uint64_t)(k % 3) - 1;
        size_t want = 0;
        for (size_t i = 0; i < POOL; i++)
            want += model[i].live && pool[i] >= from;
        walk_check_t wf = {from, 0, 1};
        cr_assert_eq(mtp_lm_walk_from(m, from, visit, &wf), 0);
        cr_assert_eq(wf.n, want, "walk from %#llx gave %zu blocks of %zu",
                     (unsigned long long)from, wf.n, want);
        cr_assert(wf.n == 0 || wf.first == 0);
    }
}

Test(livemap, random_sequences_match_the_model)
{
    static mtp_livemap_t m;
    make_pool();
    for (int round = 0; round < 3; round++) {
        for (int step = 1; step <= STEPS; step++) {
            /* the first half mostly adds, the second mostly removes */
            size_t i = rnd() % POOL;
            int add = (int)(rnd() % 100) < (step < STEPS / 2 ? 70 : 30);
            if (add) {
                mtsnap_block_t b = {pool[i], rnd_size(), rnd(), (uint32_t)rnd(), rnd_domain()}, old;
                int r = mtp_lm_insert(&m, &b, &old);
                cr_assert_eq(r, model[i].live, "insert %#llx: %d", (unsigned long long)b.address, r);
                if (r == 1)
                    expect_block(&old, &model[i].b);
                b.counter = 0;
                model[i] = (model_block_t){1, b};
            } else {
                mtsnap_block_t old;
                int r = mtp_lm_remove(&m, pool[i], &old);
                cr_assert_eq(r, model[i].live, "remove %#llx: %d", (unsigned long long)pool[i], r);
                if (r == 1)
                    expect_block(&old, &model[i].b);
                model[i].live = 0;
            }
            if (step % CHECK_EVERY == 0)
                check_map(&m);
        }
    }
    /* empty it: every bucket goes back to its free list; removing maps nothing */
    size_t mapped = mtp_lm_memory(&m);
    for (size_t i = 0; i < POOL; i++) {
        mtsnap_block_t old;
        cr_assert_eq(mtp_lm_remove(&m, pool[i], &old), model[i].live);
        model[i].live = 0;
    }
    check_map(&m);
    cr_assert_eq(mtp_lm_memory(&m), mapped);
    mtp_lm_destroy(&m);
    cr_assert_eq(mtp_lm_memory(&m), 0);
    cr_assert_eq(mtp_lm_count(&m), 0);
}

typedef struct in_walk {
    const mtsnap_block_t *in;   /* the blocks expected, by address */
    size_t n;
} in_walk_t;

static int visit_in(void *arg, const mtsnap_block_t *b)
{
    in_walk_t *w = arg;
    expect_block(b, &w->in[w->n]);
    w->n++;
    return 0;
}

/* Compact entries keep every bit of their fields at the edges. */
Test(livemap, edges_are_exact)
{
    static mtp_livemap_t m;
    const mtsnap_block_t in[] = {
        {0x1000, 0, 0, 0, 0},
        {0x1008, (1ull << 21) - 1, 0, UINT32_MAX, 3},
        {0x1ff8, 1, 0, 0x80000000u, 2},
        {0x2000, 1ull << 21, 0, 7, 1},                 /* wide: size */
        {0x2008, 16, 0, 7, 4},                         /* wide: domain */
        {0x2011, 16, 0, 7, 0},                         /* wide: unaligned */
        {0xfffffffffff8ull, 8, 0, 1, 1},
        {1ull << 48, 8, 0, 2, 2},                      /* wide: high */
        {UINT64_MAX, UINT64_MAX, 0, UINT32_MAX, UINT32_MAX},
    };
    size_t n = sizeof(in) / sizeof(in[0]);
    for (size_t i = n; i-- > 0;) {   /* backwards: every insert is at a bucket's front */
        mtsnap_block_t old;
        cr_assert_eq(mtp_lm_insert(&m, &in[i], &old), 0);
    }
    in_walk_t w = {in, 0};
    cr_assert_eq(mtp_lm_walk(&m, visit_in, &w), 0);
    cr_assert_eq(w.n, n);
    /* a wide block replaced by a compact one at the same address, and back */
    mtsnap_block_t small = {0x2000, 5, 0, 9, 0}, big = {0x2000, 1ull << 30, 0, 10, 0}, old;
    cr_assert_eq(mtp_lm_insert(&m, &small, &old), 1);
    cr_assert_eq(old.size, 1ull << 21);
    cr_assert_eq(mtp_lm_count(&m), n);
    cr_assert_eq(mtp_lm_insert(&m, &big, &old), 1);
    cr_assert_eq(old.size, 5);
    cr_assert_eq(mtp_lm_find(&m, 0x2000, &old), 1);
    cr_assert_eq(old.size, 1ull << 30);
    cr_assert_eq(mtp_lm_count(&m), n);
    cr_assert_eq(mtp_lm_find(&m, 0x1010, &old), 0);
    cr_assert_eq(mtp_lm_remove(&m, 0x2010, &old), 0);
    mtp_lm_destroy(&m);
}

/* The walk stops at the callback's first nonzero answer and returns it. */
static int stop_at_third(void *arg, const mtsnap_block_t *b)
{
    (void)b;
    return ++*(int *)arg == 3 ? 42 : 0;
}

Test(livemap, walk_stops_when_asked)
{
    static mtp_livemap_t m;
    for (uint64_t a = 0x10000; a < 0x10000 + 10 * 4096; a += 4096) {
        mtsnap_block_t b = {a, 1, 0, 1, 0}, old;
        cr_assert_eq(mtp_lm_insert(&m, &b, &old), 0);
    }
    int calls = 0;
    cr_assert_eq(mtp_lm_walk(&m, stop_at_third, &calls), 42);
    cr_assert_eq(calls, 3);
    mtp_lm_destroy(&m);
}

/* ---- the live table: per-stack figures, totals, the lazy peak ---- */
typedef struct model_stat {
    uint64_t live_bytes, live_blocks, alloc_bytes, alloc_blocks, peak_bytes, peak_blocks;
} model_stat_t;

static model_stat_t mstat[NSTACKS];
static mtsnap_totals_t mtot;

static void m_forget(const mtsnap_block_t *b)
{
    mstat[b->stack].live_bytes -= b->size;
    mstat[b->stack].live_blocks--;
    mtot.live_bytes -= b->size;
    mtot.live_blocks--;
}

static void m_alloc(size_t i, const mtsnap_block_t *b)
{
    if (model[i].live) {
        m_forget(&model[i].b);
        mtot.free_blocks++;
    }
    model[i] = (model_block_t){1, *b};
    mstat[b->stack].live_bytes += b->size;
    mstat[b->stack].live_blocks++;
    mstat[b->stack].alloc_bytes += b->size;
    mstat[b->stack].alloc_blocks++;
    mtot.live_bytes += b->size;
    mtot.live_blocks++;
    mtot.alloc_bytes += b->size;
    mtot.alloc_blocks++;
    if (mtot.live_bytes > mtot.peak_bytes) {   /* the reference: copy every stack */
        mtot.peak_bytes = mtot.live_bytes;
        mtot.peak_blocks = mtot.live_blocks;
        for (int s = 0; s < NSTACKS; s++) {
            mstat[s].peak_bytes = mstat[s].live_bytes;
            mstat[s].peak_blocks = mstat[s].live_blocks;
        }
    }
}

static void check_live(void)
{
    uint32_t n = 0;
    const mtp_stack_stats_t *st = mtp_live_stats(&n);
    for (uint32_t s = 0; s < NSTACKS; s++) {
        const model_stat_t *w = &mstat[s];
        if (s >= n) {
            cr_assert_eq(w->alloc_blocks, 0, "stack %u has no stats", s);
            continue;
        }
        cr_assert_eq(st[s].live_bytes, w->live_bytes, "stack %u live bytes", s);
        cr_assert_eq(st[s].live_blocks, w->live_blocks, "stack %u live blocks", s);
        cr_assert_eq(st[s].alloc_bytes, w->alloc_bytes, "stack %u alloc bytes", s);
        cr_assert_eq(st[s].alloc_blocks, w->alloc_blocks, "stack %u alloc blocks", s);
        cr_assert_eq(st[s].peak_bytes, w->peak_bytes, "stack %u peak bytes", s);
        cr_assert_eq(st[s].peak_blocks, w->peak_blocks, "stack %u peak blocks", s);
    }
    const mtsnap_totals_t *t = mtp_live_totals();
    cr_assert_eq(t->live_bytes, mtot.live_bytes);
    cr_assert_eq(t->live_blocks, mtot.live_blocks);
    cr_assert_eq(t->alloc_bytes, mtot.alloc_bytes);
    cr_assert_eq(t->alloc_blocks, mtot.alloc_blocks);
    cr_assert_eq(t->free_blocks, mtot.free_blocks);
    cr_assert_eq(t->peak_bytes, mtot.peak_bytes);
    cr_assert_eq(t->peak_blocks, mtot.peak_blocks);
    cr_assert_eq(mtp_live_count(), mtot.live_blocks);
    walk_check_t w = {0, 0, 1};
    cr_assert_eq(mtp_live_walk(visit, &w), 0);
    cr_assert_eq(w.n, mtot.live_blocks);
}

/* A snapshot's session (mtp_live_stats_freeze): the frozen figures are the
 * model's at the freeze, every stack, whatever the events since. */
static model_stat_t mfrozen[NSTACKS];
static int frozen_on;

static void check_frozen(void)
{
    for (uint32_t s = 0; s < NSTACKS; s++) {
        const mtp_stack_stats_t *f = mtp_live_stat_frozen(s);
        const model_stat_t *w = &mfrozen[s];
        cr_assert(f->live_bytes == w->live_bytes && f->live_blocks == w->live_blocks &&
                      f->alloc_bytes == w->alloc_bytes && f->alloc_blocks == w->alloc_blocks &&
                      f->peak_bytes == w->peak_bytes && f->peak_blocks == w->peak_blocks,
                  "stack %u: the frozen figures are not the freeze's", s);
    }
}

Test(live, events_match_the_model)
{
    make_pool();
    uint64_t counter = 1, retraced = 0;
    for (int step = 1; step <= 2 * STEPS; step++) {
        if (step % CHECK_EVERY == CHECK_EVERY / 2) {   /* half of the time in a session */
            if (frozen_on) {
                check_frozen();
                mtp_live_stats_thaw();
            } else {
                uint32_t n = 0;
                mtp_live_stats(&n);
                mtp_live_stats_freeze(n);
                for (uint32_t s = 0; s < NSTACKS; s++)
                    mfrozen[s] = s < n ? mstat[s] : (model_stat_t){0};
            }
            frozen_on = !frozen_on;
        }
        size_t i = rnd() % POOL;
        int phase = (step / 10000) % 2, r = (int)(rnd() % 100);
        uint64_t size = rnd() % 8 ? rnd() % 5000 : rnd_size();
        uint32_t stack = (uint32_t)(rnd() % NSTACKS), dom = rnd_domain();
        mtp_event_t ev = {counter++, pool[i], size, stack, 0, dom};
        mtsnap_block_t b = {pool[i], size, 0, stack, dom};
        if (r < (phase ? 35 : 60)) {          /* malloc (maybe over an unseen free) */
            ev.kind = MTP_EV_ALLOC;
            mtp_live_alloc(&ev);
            m_alloc(i, &b);
        } else if (r < 85) {                  /* free, traced or not */
            ev.kind = MTP_EV_FREE;
            mtp_live_free(&ev);
            if (model[i].live) {
                m_forget(&model[i].b);
                mtot.free_blocks++;
                model[i].live = 0;
            }
        } else if (r < 93) {                  /* PyTraceMalloc_Track: re-added, counted once */
            ev.kind = MTP_EV_TRACK;
            mtp_live_track(&ev);
            if (model[i].live) {
                const mtsnap_block_t *o = &model[i].b;
                mstat[o->stack].alloc_bytes -= o->size;
                mstat[o->stack].alloc_blocks--;
                mtot.alloc_bytes -= o->size;
                mtot.alloc_blocks--;
                m_forget(o);
                model[i].live = 0;
            }
            m_alloc(i, &b);
        } else if (r < 97) {                  /* free-list reuse: a Python domain's block moves */
            ev.kind = MTP_EV_RETRACE;
            ev.domain = 0;
            mtp_live_retrace(&ev);
            mtsnap_block_t *o = &model[i].b;
            if (model[i].live && o->domain >= MTSNAP_DOMAIN_PY_RAW &&
                o->domain <= MTSNAP_DOMAIN_PY_OBJ && o->stack != stack) {
                mstat[o->stack].live_bytes -= o->size;
                mstat[o->stack].live_blocks--;
                mstat[stack].live_bytes += o->size;
                mstat[stack].live_blocks++;
                mstat[stack].alloc_bytes += o->size;
                mstat[stack].alloc_blocks++;
                mtot.alloc_bytes += o->size;
                mtot.alloc_blocks++;
                mtot.free_blocks++;
                o->stack = stack;
                retraced++;
            }
        } else {                              /* PyTraceMalloc_Untrack: only in its domain */
            ev.kind = MTP_EV_UNTRACK;
            if (model[i].live && rnd() % 2)
                ev.domain = model[i].b.domain;
            mtp_live_untrack(&ev);
            if (model[i].live && model[i].b.domain == ev.domain) {
                m_forget(&model[i].b);
                mtot.free_blocks++;
                model[i].live = 0;
            }
        }
        if (step % CHECK_EVERY == 0)
            check_live();
    }
    check_live();
    if (frozen_on) {
        check_frozen();
        mtp_live_stats_thaw();
    }
    cr_assert_gt(mtot.free_blocks, 1000);
    cr_assert_gt(retraced, 100);
    cr_assert_gt(mtp_live_memory(), 0);
}

/* Many stacks changed during one session (the saved figures' table grows
 * several times), a new peak committed meanwhile, stacks made after the
 * freeze: each frozen stack still reads its figures of the moment, a stack
 * at or past the freeze's count reads zero, and after the thaw the current
 * figures are back. */
Test(live, frozen_figures_many_stacks)
{
    enum { N = 5000 };
    static uint64_t before_live[N], before_peak[N];
    uint64_t counter = 1, base = 0x7f0000000000ull;
    for (uint32_t s = 0; s < N; s++) {
        mtp_event_t ev = {counter++, base + 64ull * s, 16 + s % 7, s, MTP_EV_ALLOC, 0};
        mtp_live_alloc(&ev);
    }
    uint32_t n = 0;
    const mtp_stack_stats_t *st = mtp_live_stats(&n);
    cr_assert_geq(n, N);
    for (uint32_t s = 0; s < N; s++) {
        before_live[s] = st[s].live_bytes;
        before_peak[s] = st[s].peak_bytes;
    }
    mtp_live_stats_freeze(N - 10);
    for (uint32_t s = 0; s < N; s++) {   /* every stack: freed, then two bigger blocks */
        mtp_event_t ev = {counter++, base + 64ull * s, 0, s, MTP_EV_FREE, 0};
        mtp_live_free(&ev);
        mtp_event_t a = {counter++, base + 0x10000000ull + 128ull * s, 100, s, MTP_EV_ALLOC, 0};
        mtp_live_alloc(&a);
        mtp_event_t b = {counter++, base + 0x10000000ull + 128ull * s + 64, 100, s, MTP_EV_ALLOC, 0};
        mtp_live_alloc(&b);
    }
    mtp_event_t late = {counter++, base + 0x20000000ull, 50, N + 5, MTP_EV_ALLOC, 0};
    mtp_live_alloc(&late);
    for (uint32_t s = 0; s < N - 10; s++) {
        const mtp_stack_stats_t *f = mtp_live_stat_frozen(s);
        cr_assert_eq(f->live_bytes, before_live[s], "stack %u", s);
        cr_assert_eq(f->live_blocks, 1, "stack %u", s);
        cr_assert_eq(f->alloc_blocks, 1, "stack %u", s);
        cr_assert_eq(f->peak_bytes, before_peak[s], "stack %u", s);
    }
    for (uint32_t s = N - 10; s < N + 8; s++)
        cr_assert_eq(mtp_live_stat_frozen(s)->alloc_blocks, 0, "stack %u: past the freeze", s);
    mtp_live_stats_thaw();
    st = mtp_live_stats(&n);
    for (uint32_t s = 0; s < N; s++) {
        cr_assert_eq(st[s].live_bytes, 200, "stack %u", s);
        cr_assert_eq(st[s].peak_bytes, 200, "stack %u: the new peak", s);
    }
    /* a second session starts empty */
    mtp_live_stats_freeze(N);
    cr_assert_eq(mtp_live_stat_frozen(7)->live_bytes, 200);
    mtp_event_t f7 = {counter++, base + 0x10000000ull + 128ull * 7, 0, 7, MTP_EV_FREE, 0};
    mtp_live_free(&f7);
    cr_assert_eq(mtp_live_stat_frozen(7)->live_bytes, 200);
    mtp_live_stats_thaw();
    st = mtp_live_stats(&n);
    cr_assert_eq(st[7].live_bytes, 100);
}
