/* Unit tests of the stack table (preload/stacktab.c): one id per distinct
 * stack, from any thread, with the per-thread cache in front. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "record/record.h"

#define NSTACKS 20000
#define NTHREADS 4

static uintptr_t stacks[NSTACKS][24];
static uint32_t depths[NSTACKS];

static mtp_thread_t *new_thread_block(void)
{
    mtp_thread_t *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(t, MAP_FAILED);
    return t;
}

static void make_stacks(void)
{
    unsigned seed = 12345;
    for (int i = 0; i < NSTACKS; i++) {
        depths[i] = 1 + (uint32_t)(rand_r(&seed) % 24);
        for (uint32_t j = 0; j < depths[i]; j++)
            stacks[i][j] = 0x400000 + (uintptr_t)(rand_r(&seed) % 64) * 16;
    }
    /* Stacks that differ only in their last frame, or only in depth. */
    memcpy(stacks[1], stacks[0], sizeof(stacks[0]));
    depths[1] = depths[0];
    stacks[1][depths[0] - 1] ^= 0x10;
    memcpy(stacks[2], stacks[3], sizeof(stacks[3]));
    depths[2] = depths[3] > 1 ? depths[3] - 1 : 2;
}

static int same_stack(int a, int b)
{
    return depths[a] == depths[b] && !memcmp(stacks[a], stacks[b], depths[a] * sizeof(uintptr_t));
}

Test(stacktab, one_id_per_distinct_stack)
{
    cr_assert_eq(mtp_stacktab_init(), 0);
    make_stacks();
    mtp_thread_t *t = new_thread_block();
    static uint32_t ids[NSTACKS];
    for (int i = 0; i < NSTACKS; i++) {
        ids[i] = mtp_stack_intern(t, stacks[i], depths[i]);
        cr_assert_neq(ids[i], 0);
    }
    /* Again: the same ids, through the cache and through the table. */
    mtp_thread_t *t2 = new_thread_block();
    for (int i = NSTACKS - 1; i >= 0; i--) {
        cr_assert_eq(mtp_stack_intern(t, stacks[i], depths[i]), ids[i]);
        cr_assert_eq(mtp_stack_intern(t2, stacks[i], depths[i]), ids[i]);
    }
    /* Stored frames are the stack's frames. */
    for (int i = 0; i < NSTACKS; i++) {
        uintptr_t f[MTP_STACK_MAX_WORDS];
        uint32_t d = mtp_stack_copy(ids[i], f, MTP_STACK_MAX_WORDS);
        cr_assert_eq(d, depths[i]);
        cr_assert_eq(memcmp(f, stacks[i], d * sizeof(uintptr_t)), 0);
        cr_assert_eq(mtp_stack_copy(ids[i], f, d - 1), 0, "a stack longer than the buffer");
    }
    /* Equal ids exactly for equal stacks (checked on a sample of pairs). */
    cr_assert_neq(ids[0], ids[1]);
    cr_assert_neq(ids[2], ids[3]);
    for (int i = 0; i < 2000; i++)
        for (int j = i + 1; j < 2000; j++)
            cr_assert_eq(ids[i] == ids[j], same_stack(i, j), "stacks %d and %d", i, j);
    /* The empty stack is id 0. */
    cr_assert_eq(mtp_stack_intern(t, stacks[0], 0), 0);
    uintptr_t f[4];
    cr_assert_eq(mtp_stack_copy(0, f, 4), 0);
}

static int cmp_stack(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (depths[x] != depths[y])
        return depths[x] < depths[y] ? -1 : 1;
    return memcmp(stacks[x], stacks[y], depths[x] * sizeof(uintptr_t));
}

typedef struct worker {
    int index;
    uint32_t ids[NSTACKS];
} worker_t;

static pthread_barrier_t barrier;

static void *worker(void *p)
{
    worker_t *w = p;
    mtp_thread_t *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_barrier_wait(&barrier);
    /* Every thread inserts every stack, starting at a different place. */
    for (int k = 0; k < NSTACKS; k++) {
        int i = (k + w->index * 7919) % NSTACKS;
        w->ids[i] = mtp_stack_intern(t, stacks[i], depths[i]);
    }
    return NULL;
}

Test(stacktab, concurrent_inserts_agree_on_ids)
{
    cr_assert_eq(mtp_stacktab_init(), 0);
    make_stacks();
    static worker_t w[NTHREADS];
    pthread_t th[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].index = i;
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NSTACKS; i++)
        for (int k = 1; k < NTHREADS; k++)
            cr_assert_eq(w[k].ids[i], w[0].ids[i], "stack %d: thread %d disagrees", i, k);
    /* Distinct stacks got distinct ids: count the distinct ids. */
    static uint8_t seen[1u << 20];
    static int order[NSTACKS];
    int distinct_ids = 0, distinct_stacks = 0;
    for (int i = 0; i < NSTACKS; i++) {
        uint32_t id = w[0].ids[i];
        cr_assert_lt(id, sizeof(seen));
        if (!seen[id]++)
            distinct_ids++;
        order[i] = i;
    }
    qsort(order, NSTACKS, sizeof(order[0]), cmp_stack);
    for (int i = 0; i < NSTACKS; i++) {
        distinct_stacks += i == 0 || !same_stack(order[i - 1], order[i]);
        if (i > 0 && same_stack(order[i - 1], order[i]))
            cr_assert_eq(w[0].ids[order[i - 1]], w[0].ids[order[i]]);
    }
    cr_assert_eq(distinct_ids, distinct_stacks);
}

/* Deep stacks share their outer frames (stored once, as chunks of 16 words
 * cut from the outer end): stacks that differ in one word anywhere (inside
 * a chunk, at a chunk's edge, in the innermost part, outermost), or only in
 * depth, get distinct ids, equal ones the same id, and each reads back
 * exactly, through the per-thread cache and through the table. */
#define DEEP_VARIANTS 400
#define DEEP_MAX 250

Test(stacktab, deep_stacks_share_prefixes_exactly)
{
    cr_assert_eq(mtp_stacktab_init(), 0);
    static uintptr_t deep[DEEP_VARIANTS][DEEP_MAX];
    static uint32_t ddepth[DEEP_VARIANTS], dids[DEEP_VARIANTS];
    static const uint32_t depths_of[] = {1, 15, 16, 17, 31, 32, 33, 48, 100, 249, 250};
    unsigned seed = 777;
    for (int v = 0; v < DEEP_VARIANTS; v++) {
        ddepth[v] = depths_of[v % (sizeof(depths_of) / sizeof(depths_of[0]))];
        for (uint32_t j = 0; j < DEEP_MAX; j++)   /* one common outer part, by distance from the end */
            deep[v][j] = 0x500000 + (uintptr_t)(DEEP_MAX - (ddepth[v] - j)) * 16;
        if (v % 3 != 0) {   /* one word changed, somewhere */
            uint32_t at = (uint32_t)rand_r(&seed) % ddepth[v];
            deep[v][at] ^= 0x1000 * (uintptr_t)(1 + v % 5);
        }
    }
    mtp_thread_t *t = new_thread_block(), *t2 = new_thread_block();
    for (int v = 0; v < DEEP_VARIANTS; v++) {
        dids[v] = mtp_stack_intern(t, deep[v], ddepth[v]);
        cr_assert_neq(dids[v], 0);
    }
    for (int v = DEEP_VARIANTS - 1; v >= 0; v--) {
        cr_assert_eq(mtp_stack_intern(t, deep[v], ddepth[v]), dids[v]);
        cr_assert_eq(mtp_stack_intern(t2, deep[v], ddepth[v]), dids[v]);
        uintptr_t f[MTP_STACK_MAX_WORDS];
        cr_assert_eq(mtp_stack_copy(dids[v], f, MTP_STACK_MAX_WORDS), ddepth[v]);
        cr_assert_eq(memcmp(f, deep[v], ddepth[v] * sizeof(uintptr_t)), 0, "variant %d", v);
    }
    for (int a = 0; a < DEEP_VARIANTS; a++)
        for (int b = a + 1; b < DEEP_VARIANTS; b++) {
            int same = ddepth[a] == ddepth[b] &&
                       !memcmp(deep[a], deep[b], ddepth[a] * sizeof(uintptr_t));
            cr_assert_eq(dids[a] == dids[b], same, "variants %d and %d", a, b);
        }
}

/* mtp_stack_intern_walk: a stack that shares its outer frames with the
 * thread's previous walk (as the unwinder's memo reports: its generation
 * moved on, `shared` outer frames already held) gets the id mtp_stack_intern
 * gives, hashed from the kept lanes; and where the lanes kept are another
 * walk's (a walk in between that was not interned this way, a generation
 * skipped), it hashes from the start and still gets that id. A walk whose
 * frames are all the previous walk's (the memo's `same`) gets that walk's
 * id only when that walk was interned here: a memo that moved on with a
 * walk interned otherwise holds a stack with no id kept. */
Test(stacktab, walked_stacks_share_their_outer_lanes)
{
    cr_assert_eq(mtp_stacktab_init(), 0);
    mtp_thread_t *t = new_thread_block(), *ref = new_thread_block();
    /* held: the stack the memo holds (as far as the test knows). */
    static uintptr_t held[MTP_MAX_DEPTH], cur[MTP_MAX_DEPTH];
    uint32_t held_depth = 0, reused = 0, same_walks = 0;
    unsigned seed = 777;
    for (int i = 0; i < 20000; i++) {
        /* Keep an outer part of the held stack, then new inner frames; a
         * quarter of the walks are the held stack again, whole. */
        int again = held_depth && held_depth <= 80 && rand_r(&seed) % 4 == 0;
        uint32_t keep = held_depth ? (uint32_t)rand_r(&seed) % (held_depth + 1) : 0;
        uint32_t depth = keep + (uint32_t)(rand_r(&seed) % 6);
        if (again)
            keep = depth = held_depth;
        if (depth == 0)
            depth = 1;
        if (depth > 80) {
            depth = 80;
            keep = keep > 80 ? 80 : keep;
        }
        uint32_t inner = depth - keep;
        memcpy(cur + inner, held + held_depth - keep, keep * sizeof(uintptr_t));
        for (uint32_t j = 0; j < inner; j++)
            cur[j] = 0x500000 + (uintptr_t)(rand_r(&seed) % 8) * 16;
        uint64_t before = t->umemo.gen;
        int how = rand_r(&seed) % 8;
        if (how == 0) {
            /* Not the memo's walk (libunwind's, frame pointers): the memo
             * still holds `held`. */
        } else if (how == 1) {
            t->umemo.gen += 2;      /* joined, then walked on: nothing shared */
            t->umemo.shared = 0;
            t->umemo.same = 0;
        } else {
            t->umemo.gen++;
            t->umemo.shared = keep;
            /* the join says whether every frame is the held stack's */
            t->umemo.same = depth == held_depth &&
                            memcmp(cur, held, depth * sizeof(uintptr_t)) == 0;
            reused += keep > 0 && t->hgen == before;
            same_walks += t->umemo.same;
        }
        uint32_t id = mtp_stack_intern_walk(t, cur, depth, before);
        cr_assert_eq(id, mtp_stack_intern(ref, cur, depth), "stack %d (%u frames, %u kept)", i,
                     depth, keep);
        if (how != 0) {
            memcpy(held, cur, depth * sizeof(uintptr_t));
            held_depth = depth;
        } else if (rand_r(&seed) % 4 == 0) {
            /* The memo moved on with a walk interned otherwise (a Python
             * stack's native part): it holds another stack, which the next
             * walk may share, and the lanes kept are not that stack's. */
            held_depth = 1 + (uint32_t)rand_r(&seed) % 40;
            for (uint32_t j = 0; j < held_depth; j++)
                held[j] = 0x600000 + (uintptr_t)(rand_r(&seed) % 8) * 16;
            t->umemo.gen++;
            t->umemo.shared = 0;
            t->umemo.same = 0;
        }
    }
    cr_assert_gt(reused, 5000u);
    cr_assert_gt(same_walks, 2000u);
}
