/* Unit tests of memtrail's private heap (preload/base/privheap.c): random
 * malloc, calloc, realloc and free against a model that fills every block
 * with its own pattern and checks it (no two live blocks overlap, realloc
 * keeps the contents, calloc gives zeros, alignment 16, the usable size
 * covers the request); frees from other threads; and that mtp_ph_trim
 * gives every free page back (mincore) while live blocks stay. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/privheap.h"

#define SLOTS 2000
#define OPS 100000

typedef struct blk {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} blk_t;

static blk_t blocks[SLOTS];

static uint64_t rnd(void)
{
    static uint64_t s = 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* Mostly small, some of a few runs, a few large. */
static size_t pick_size(void)
{
    uint64_t r = rnd() % 100;
    if (r < 70)
        return rnd() % 300;
    if (r < 93)
        return 300 + rnd() % 9000;
    if (r < 99)
        return 9000 + rnd() % 200000;
    return 200000 + rnd() % 3000000;
}

/* The bytes a block's pattern covers: all of a small block; of a larger
 * one its first and last 512 and every 509th between (a block overlapping
 * another is caught all the same: their patterns differ where they meet). */
static size_t next_byte(size_t i, size_t n)
{
    return n <= 2048 || i < 512 || i + 512 >= n ? i + 1 : (i + 509 < n - 512 ? i + 509 : n - 512);
}

static void fill(blk_t *b)
{
    for (size_t i = 0; i < b->size; i = next_byte(i, b->size))
        b->p[i] = (unsigned char)(b->tag + i * 7);
}

static void check(const blk_t *b, size_t n)
{
    for (size_t i = 0; i < n; i = next_byte(i, b->size))
        if (b->p[i] != (unsigned char)(b->tag + i * 7))
            cr_assert_fail("block %p (%zu B, tag %u): byte %zu is %u", (void *)b->p, b->size,
                           b->tag, i, b->p[i]);
}

static void check_new(const blk_t *b)
{
    cr_assert_not_null(b->p, "allocation of %zu B failed", b->size);
    cr_assert(mtp_ph_owns(b->p));
    cr_assert_eq((uintptr_t)b->p & 15, 0, "%p not 16-aligned", (void *)b->p);
    cr_assert_geq(mtp_ph_usable_size(b->p), b->size);
}

/* Resident pages in [p, p + n). */
static size_t resident(const void *p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(page - 1);
    size_t pages = ((uintptr_t)p + n - lo + (size_t)page - 1) / (size_t)page;
    unsigned char *v = malloc(pages);
    cr_assert_eq(mincore((void *)lo, pages * (size_t)page, v), 0);
    size_t r = 0;
    for (size_t i = 0; i < pages; i++)
        r += v[i] & 1;
    free(v);
    return r;
}

Test(privheap, random_against_model)
{
    for (int op = 0; op < OPS; op++) {
        blk_t *b = &blocks[rnd() % SLOTS];
        uint64_t what = rnd() % 10;
        if (!b->p) {
            b->size = pick_size();
            b->tag = (unsigned char)rnd();
            if (what < 3) {
                b->p = mtp_ph_calloc(1, b->size);
                check_new(b);
                for (size_t i = 0; i < b->size; i = next_byte(i, b->size))
                    if (b->p[i])
                        cr_assert_fail("calloc'd block byte %zu is %u", i, b->p[i]);
            } else {
                b->p = mtp_ph_malloc(b->size);
                check_new(b);
            }
            fill(b);
        } else if (what < 4) {
            size_t size = pick_size();
            unsigned char *q = mtp_ph_realloc(b->p, size);
            cr_assert_not_null(q);
            b->p = q;
            check(b, size < b->size ? size : b->size);
            b->size = size;
            check_new(b);
            fill(b);
        } else {
            check(b, b->size);
            mtp_ph_free(b->p);
            b->p = NULL;
        }
        if (op % 50000 == 0)
            mtp_ph_trim(0);   /* live blocks keep their contents across it */
    }
    for (int i = 0; i < SLOTS; i++) {
        if (blocks[i].p) {
            check(&blocks[i], blocks[i].size);
            mtp_ph_free(blocks[i].p);
            blocks[i].p = NULL;
        }
    }
    mtp_ph_stats_t st;
    mtp_ph_stats(&st);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
    cr_assert_eq(st.runs_used, 0);
    mtp_ph_trim(0);
    mtp_ph_stats(&st);
    cr_assert_eq(st.runs_free_dirty, 0);
    cr_assert_eq(st.runs_reserved, 0, "every run free: nothing left carved");
}

Test(privheap, trim_gives_pages_back)
{
    /* A live small block in the first run; a large block and many small
     * ones freed; after the trim only the live block's page is resident. */
    char *live = mtp_ph_malloc(100);
    memset(live, 1, 100);
    char *large = mtp_ph_malloc(4 << 20);
    memset(large, 2, 4 << 20);
    char *small[4000];
    for (int i = 0; i < 4000; i++) {
        small[i] = mtp_ph_malloc(200);
        memset(small[i], 3, 200);
    }
    uintptr_t base = atomic_load(&mtp_ph_base);
    mtp_ph_stats_t st;
    mtp_ph_stats(&st);
    size_t span = (size_t)st.runs_reserved << 16;
    cr_assert_geq(resident((void *)base, span), (4u << 20) / 4096);
    mtp_ph_free(large);
    for (int i = 0; i < 4000; i++)
        mtp_ph_free(small[i]);
    cr_assert_geq(resident((void *)base, span), (4u << 20) / 4096, "given back before the trim");
    mtp_ph_trim(0);
    size_t left = resident((void *)base, span);
    cr_assert_leq(left, 2, "%zu pages still resident after the trim", left);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(live[i], 1);
    /* What was given back reads as zeros and serves calloc. */
    char *again = mtp_ph_calloc(1, 4 << 20);
    for (size_t i = 0; i < (4u << 20); i += 4096)
        cr_assert_eq(again[i], 0);
    mtp_ph_free(again);
    mtp_ph_free(live);
    mtp_ph_trim(0);
}

static void *free_all(void *arg)
{
    void **v = arg;
    for (int i = 0; i < 1000; i++)
        mtp_ph_free(v[i]);
    return NULL;
}

Test(privheap, freed_by_other_threads)
{
    static void *v[4][1000];
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 1000; i++)
            cr_assert_not_null(v[t][i] = mtp_ph_malloc((size_t)(16 + (i * 37) % 20000)));
    for (int t = 0; t < 4; t++)
        pthread_create(&th[t], NULL, free_all, v[t]);
    for (int i = 0; i < 5000; i++)   /* allocating meanwhile */
        mtp_ph_free(mtp_ph_malloc((size_t)i));
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    mtp_ph_stats_t st;
    mtp_ph_stats(&st);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.runs_used, 0);
}

Test(privheap, realloc_in_place_and_limits)
{
    char *p = mtp_ph_malloc(20000);   /* one run */
    memset(p, 5, 20000);
    cr_assert_eq(mtp_ph_realloc(p, 60000), p, "a span grows in place within its runs");
    cr_assert_eq(p[19999], 5);
    char *q = mtp_ph_realloc(p, 70000);   /* two runs: moved */
    cr_assert_neq(q, NULL);
    cr_assert_eq(q[19999], 5);
    char *s = mtp_ph_realloc(q, 100);     /* back to a small class */
    cr_assert_eq(s[99], 5);
    cr_assert_eq(mtp_ph_usable_size(s), 112);
    cr_assert_null(mtp_ph_malloc((size_t)1 << 33), "2^32 bytes or more: the C library's");
    mtp_ph_free(s);
    cr_assert(!mtp_ph_owns(&p));
    cr_assert(!mtp_ph_owns(NULL));
}

/* The writer's trims keep up to MTP_PH_KEEP of free pages resident (the
 * next snapshot reuses them) and give everything back beyond it. */
Test(privheap, trim_keeps_a_little)
{
    char *a = mtp_ph_malloc(128 << 10), *b = mtp_ph_malloc(4 << 20);
    memset(a, 1, 128 << 10);
    memset(b, 2, 4 << 20);
    uintptr_t base = atomic_load(&mtp_ph_base);
    mtp_ph_stats_t st;
    mtp_ph_stats(&st);
    size_t span = (size_t)st.runs_reserved << 16;
    mtp_ph_free(a);
    mtp_ph_trim(MTP_PH_KEEP);
    cr_assert_geq(resident((void *)base, span), ((4u << 20) + (128u << 10)) / 4096,
                  "128 KiB free: kept");
    mtp_ph_free(b);
    mtp_ph_trim(MTP_PH_KEEP);
    size_t left = resident((void *)base, span);
    cr_assert_leq(left, 2, "4.1 MiB free: %zu pages still resident", left);
}

/* A large block of two runs or more that realloc moves (an array that
 * doubles) gives its old pages back at once: its old copy and the new one
 * are never resident together. A free keeps its pages until the trim (the
 * next snapshot reuses them). What comes back reads as zeros. */
Test(privheap, realloc_gives_the_old_copy_back)
{
    char *keep = mtp_ph_malloc(100);   /* so that the arrays below do not end what was carved */
    char *p = mtp_ph_malloc(1 << 20);
    memset(p, 4, 1 << 20);
    char *block = mtp_ph_malloc(100000);   /* a span after p: p cannot grow in place */
    uintptr_t base = atomic_load(&mtp_ph_base);
    char *q = mtp_ph_realloc(p, 2 << 20);
    cr_assert_neq(q, p, "moved");
    cr_assert_eq(q[(1 << 20) - 1], 4);
    memset(q + (1 << 20), 5, 1 << 20);
    mtp_ph_stats_t st;
    mtp_ph_stats(&st);
    size_t span = (size_t)st.runs_reserved << 16;
    size_t res = resident((void *)base, span);
    cr_assert_lt(res, (3u << 20) / 4096, "the old copy still resident: %zu pages", res);
    cr_assert_geq(res, (2u << 20) / 4096);
    char *z = mtp_ph_calloc(1, 1 << 20);   /* first fit: the old copy's runs, zeros */
    for (size_t i = 0; i < (1u << 20); i += 4096)
        cr_assert_eq(z[i], 0);
    mtp_ph_free(z);
    mtp_ph_free(q);
    cr_assert_geq(resident((void *)base, span), (2u << 20) / 4096, "a free kept until the trim");
    mtp_ph_free(block);
    mtp_ph_free(keep);
    mtp_ph_trim(0);
    res = resident((void *)base, span);
    cr_assert_leq(res, 2, "%zu pages resident after the trim", res);
}

/* A large block that ends what was carved grows in place, its contents kept. */
Test(privheap, last_span_grows_in_place)
{
    char *p = mtp_ph_malloc(100000);
    memset(p, 7, 100000);
    for (size_t size = 200000; size <= (8u << 20); size *= 2) {
        char *q = mtp_ph_realloc(p, size);
        cr_assert_eq(q, p, "realloc to %zu moved it", size);
        cr_assert_eq(q[99999], 7);
        cr_assert_geq(mtp_ph_usable_size(q), size);
        memset(q + size / 2, 8, size / 2);
    }
    char *other = mtp_ph_malloc(70000);   /* now p's span is not the last: it moves */
    char *q = mtp_ph_realloc(p, 16u << 20);
    cr_assert_neq(q, p);
    cr_assert_eq(q[99999], 7);
    mtp_ph_free(q);
    mtp_ph_free(other);
    mtp_ph_stats_t st;
    mtp_ph_stats(&st);
    cr_assert_eq(st.live_blocks, 0);
    cr_assert_eq(st.live_bytes, 0);
}
