/* The CFI walk's memory of the previous walk (preload/unwind/walk.c): a walk
 * with the memo gives exactly what the plain walk gives from the same state,
 * and what libunwind gives, on stacks whose shape changes from one walk to
 * the next (recursion of every depth, alloca frames, callbacks from libc,
 * longjmp out of a recursion, depth limits that cut the stack); and it does
 * not join a remembered walk when a word that walk read has changed or when
 * rbp differs where a frame further out uses it; and it says that a walk is
 * the one before it (its `same`, whose stack id the stack table reuses) only
 * when every frame is. Built with -O2
 * -fomit-frame-pointer, as test_cfi.c: most frames have no frame pointer,
 * the alloca frames do. */
#include <alloca.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "stackbounds.h"
#include "unwind/cfi.h"

#define NOINLINE __attribute__((noinline))

static mtp_rule_ent_t cache[MTP_RCACHE_SLOTS];
static mtp_unwind_memo_t memo;
static uintptr_t stack_lo, stack_hi;
static volatile int sink;
static uint32_t max_frames = 128;
static unsigned checked;
static uint64_t captures, capture_joins;   /* capture's own walks, and of them joined */
static uint64_t captures_same;             /* ...and of them said to be the walk before */
/* The frames of the walk the memo holds (its last successful one), innermost
 * first: what a walk that joins it is compared with. */
static int memo_frames(uintptr_t *out)
{
    for (uint32_t h = 0; h < memo.n; h++)
        out[h] = memo.pc[memo.n - 1 - h];
    return (int)memo.n;
}

/* A walk with the memo says `same` only when its frames are the walk's
 * before it, every one (the stack table then reuses that walk's id). */
static void expect_same_is_true(const uintptr_t *before, int nbefore, uint64_t gen_before,
                                const uintptr_t *got, int n, const char *what)
{
    if (memo.gen == gen_before || !memo.same)
        return;
    cr_assert(n == nbefore && memcmp(got, before, (size_t)n * sizeof(*got)) == 0,
              "%s: the memo says the walk is the one before, but it is not", what);
    captures_same++;
}

static void stack_bounds(void)
{
    mt_stack_bounds(&stack_lo, &stack_hi);
}

static void setup(void)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    stack_bounds();
    memset(&memo, 0, sizeof(memo));
}

/* The state a walk starts from, as the preload takes it from its hook. */
typedef struct state {
    uintptr_t pc, sp, bp;
} state_t;

static void expect_walks_agree(state_t st, const char *what)
{
    uintptr_t plain[MTP_MAX_DEPTH], withmemo[MTP_MAX_DEPTH];
    int np = mtp_cfi_unwind_from(cache, NULL, st.pc, st.sp, st.bp, stack_lo, stack_hi, plain,
                                 max_frames);
    uintptr_t before[MTP_MAX_DEPTH];
    int nbefore = memo_frames(before);
    uint64_t gen = memo.gen;
    int nm = mtp_cfi_unwind_from(cache, &memo, st.pc, st.sp, st.bp, stack_lo, stack_hi, withmemo,
                                 max_frames);
    expect_same_is_true(before, nbefore, gen, withmemo, nm, what);
    cr_assert_eq(nm, np, "%s: %d frames with the memo, %d without", what, nm, np);
    for (int i = 0; i < np; i++)
        cr_assert_eq(withmemo[i], plain[i], "%s: frame %d differs", what, i);
    checked++;
}

/* Walks from its caller's state with and without the memo, and checks both
 * against libunwind (minus its frame inside this function). */
NOINLINE __attribute__((optimize("no-omit-frame-pointer"))) static void capture(const char *what)
{
    uintptr_t *fp = __builtin_frame_address(0);
    state_t st = {fp[1], (uintptr_t)(fp + 2), fp[0]};
    void *ref[MTP_MAX_DEPTH + 2];
    int nref = unw_backtrace(ref, (int)max_frames + 1);
    uintptr_t got[MTP_MAX_DEPTH];
    uintptr_t before[MTP_MAX_DEPTH];
    int nbefore = memo_frames(before);
    uint64_t joins = memo.joins, gen = memo.gen;
    int n = mtp_cfi_unwind_from(cache, &memo, st.pc, st.sp, st.bp, stack_lo, stack_hi, got,
                                max_frames);
    expect_same_is_true(before, nbefore, gen, got, n, what);
    captures++;
    capture_joins += memo.joins - joins;
    cr_assert_geq(n, 0, "%s: the walk gave up", what);
    int want = nref - 1 < (int)max_frames ? nref - 1 : (int)max_frames;
    cr_assert_eq(n, want, "%s: %d frames, libunwind %d", what, n, want);
    for (int i = 0; i < n; i++)
        cr_assert_eq(got[i], (uintptr_t)ref[i + 1], "%s: frame %d differs from libunwind", what, i);
    expect_walks_agree(st, what);
}

NOINLINE static void leaf_a(const char *what) { capture(what); sink++; }
NOINLINE static void leaf_b(const char *what) { capture(what); sink += 2; }

NOINLINE static void recurse(int depth, int leaf, const char *what)
{
    if (depth == 0) {
        if (leaf)
            leaf_b(what);
        else
            leaf_a(what);
    } else {
        recurse(depth - 1, leaf, what);
    }
    sink++;
}

/* Frames with an rbp-based CFA, of varying size: the same call chain with
 * its frames at other addresses. */
NOINLINE static void with_alloca(size_t n, int depth, int inner, const char *what)
{
    char *buf = alloca(n);
    memset(buf, depth, n);
    sink += buf[n / 2];
    if (depth)
        with_alloca(n + 16 * (size_t)(depth & 3), depth - 1, inner, what);
    else
        recurse(inner, inner & 1, what);
    sink++;
}

static int cmp_calls;

static int compare(const void *a, const void *b)
{
    if (cmp_calls++ % 7 == 3)
        recurse(cmp_calls % 5, cmp_calls & 1, "qsort callback");
    return *(const int *)a - *(const int *)b;
}

static jmp_buf jump;

NOINLINE static void dive_and_jump(int depth)
{
    if (depth < 0)
        return;
    if (depth == 0) {
        recurse(2, 0, "before longjmp");
        longjmp(jump, 1);
    }
    dive_and_jump(depth - 1);
    sink++;
}

static uint64_t rng = 88172645463325252ull;

static unsigned next_rand(unsigned bound)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % bound);
}

/* One stack of a random shape. */
NOINLINE static void one_shape(void)
{
    switch (next_rand(5)) {
    case 0:
        recurse((int)next_rand(30), (int)next_rand(2), "recursion");
        break;
    case 1:
        with_alloca(16 + 16 * next_rand(8), (int)next_rand(6), (int)next_rand(4), "alloca");
        break;
    case 2: {
        int v[32];
        for (int i = 0; i < 32; i++)
            v[i] = (i * 37) % 32;
        qsort(v, 32, sizeof(v[0]), compare);
        break;
    }
    case 3:
        if (!setjmp(jump))
            dive_and_jump((int)next_rand(12));
        recurse((int)next_rand(3), 1, "after longjmp");
        break;
    default:
        recurse(3, 0, "repeated");
        recurse(3, 0, "repeated");
        recurse(3, 1, "repeated, other leaf");
        break;
    }
}

Test(walkmemo, equals_the_plain_walk_and_libunwind_on_changing_shapes)
{
    setup();
    for (int i = 0; i < 3000; i++)
        one_shape();
    cr_assert_gt(checked, 3000u);
    /* The memo was used, and often: most stacks share their outer part
     * with the previous one. */
    cr_assert_gt(capture_joins, captures / 2, "%llu joins in %llu walks",
                 (unsigned long long)capture_joins, (unsigned long long)captures);
    /* and every second walk from one state (expect_walks_agree's) is the
     * walk before it: said so */
    cr_assert_geq(captures_same, 3000u, "%llu walks said to be the one before",
                  (unsigned long long)captures_same);
}

/* A depth limit below the stacks' depth: walks cut at the limit, then
 * shallower ones that resume after the memo's last frame, then deeper ones
 * that stop inside it. */
Test(walkmemo, depth_limits_cut_resume_and_trim_exactly)
{
    setup();
    for (uint32_t lim = 3; lim <= 24; lim += 7) {
        max_frames = lim;
        memset(&memo, 0, sizeof(memo));
        for (int i = 0; i < 600; i++)
            one_shape();
    }
    cr_assert_gt(capture_joins, 0u);
}

static void *thread_shapes(void *arg)
{
    (void)arg;
    stack_bounds();
    memset(&memo, 0, sizeof(memo));
    for (int i = 0; i < 500; i++)
        one_shape();
    return NULL;
}

/* Another thread's stack, other bounds: the memo walked on the main thread
 * is not joined there (bounds differ), and the thread's own walks agree. */
Test(walkmemo, another_threads_stack)
{
    setup();
    for (int i = 0; i < 50; i++)
        one_shape();
    uint64_t joins = memo.joins;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_shapes, NULL), 0);
    pthread_join(th, NULL);
    cr_assert_gt(memo.joins, joins);
}

/* The state of a fixed call chain, with the memo holding its walk. */
static state_t saved;

NOINLINE __attribute__((optimize("no-omit-frame-pointer"))) static void save_state(void)
{
    uintptr_t *fp = __builtin_frame_address(0);
    saved = (state_t){fp[1], (uintptr_t)(fp + 2), fp[0]};
    uintptr_t pcs[MTP_MAX_DEPTH];
    cr_assert_geq(mtp_cfi_unwind_from(cache, &memo, saved.pc, saved.sp, saved.bp, stack_lo,
                                      stack_hi, pcs, max_frames), 0);
}

typedef void (*probe_fn)(void);
static probe_fn probe;

NOINLINE static void chain(int depth, size_t n)
{
    char *buf = alloca(n);
    memset(buf, 1, n);
    sink += buf[0];
    if (depth)
        chain(depth - 1, n);
    else
        probe();
    sink++;
}

/* With the memo holding this very walk, each word it read changed in the
 * memo's copy in turn (as if the stack held something else there): the walk
 * must not join, and still gives the plain walk's frames. */
NOINLINE static void corrupt_each_word(void)
{
    save_state();
    mtp_unwind_memo_t good = memo;
    uint32_t n = good.n, tried = 0;
    cr_assert_geq(n, 8u, "%u frames in the memo", n);
    for (uint32_t h = 0; h + 1 < n; h++) {
        for (int which = 0; which < 2; which++) {
            memo = good;
            if (which == 0) {
                memo.pc[h] ^= 0x10;            /* the return address read at f[h].sp - 8 */
            } else {
                if (!(good.slot[h + 1] & ~(uintptr_t)MTP_UF_FLAGS))
                    continue;
                memo.bp[h] ^= 0x10;            /* the rbp read by f[h + 1]'s step */
            }
            uint64_t joins = memo.joins;
            expect_walks_agree(saved, which ? "changed rbp slot" : "changed return address");
            cr_assert_eq(memo.joins, joins, "frame %u: joined a walk whose word %s changed", h,
                         which ? "rbp" : "pc");
            tried++;
        }
    }
    cr_assert_gt(tried, n - 1, "some steps read rbp");
    if (n == max_frames) {
        /* Cut at the limit: the return address read after the last frame
         * (where a deeper walk would resume) is checked too. */
        memo = good;
        memo.next.pc ^= 0x10;
        uint64_t joins = memo.joins;
        expect_walks_agree(saved, "changed return address after the last frame");
        cr_assert_eq(memo.joins, joins);
        /* And the rbp read there, where the last frame's step reads one. */
        if (good.slot[0] & ~(uintptr_t)MTP_UF_FLAGS) {
            memo = good;
            memo.next.bp ^= 0x10;
            joins = memo.joins;
            expect_walks_agree(saved, "changed rbp after the last frame");
            cr_assert_eq(memo.joins, joins);
        }
    }
    /* Unchanged, it joins. */
    memo = good;
    uint64_t joins = memo.joins;
    expect_walks_agree(saved, "unchanged");
    cr_assert_eq(memo.joins, joins + 1);
}

Test(walkmemo, a_changed_word_is_never_joined)
{
    setup();
    probe = corrupt_each_word;
    chain(6, 48);
    max_frames = 8;   /* the memo's next state is checked too */
    memset(&memo, 0, sizeof(memo));
    probe = corrupt_each_word;
    chain(12, 32);
}

/* Same pc and sp, another rbp: frames outward whose CFA is rbp-based give
 * another walk (or none), and the memo must give that one too. */
NOINLINE __attribute__((optimize("no-omit-frame-pointer"))) static void other_bp(void)
{
    save_state();
    uint32_t need = 0;
    for (uint32_t h = 0; h < memo.n; h++)
        need += (memo.slot[h] & MTP_UF_NEED_BP) != 0;
    cr_assert_gt(need, 0u, "the alloca frames' CFAs are rbp-based");
    cr_assert(memo.slot[memo.n - 1] & MTP_UF_NEED_BP);
    uintptr_t real[MTP_MAX_DEPTH], other[MTP_MAX_DEPTH];
    int nreal = mtp_cfi_unwind_from(cache, NULL, saved.pc, saved.sp, saved.bp, stack_lo,
                                    stack_hi, real, max_frames);
    unsigned differ = 0;
    for (uintptr_t delta = 16; delta <= 256; delta += 16) {
        state_t st = saved;
        st.bp += delta;
        int n = mtp_cfi_unwind_from(cache, NULL, st.pc, st.sp, st.bp, stack_lo, stack_hi, other,
                                    max_frames);
        differ += n != nreal || memcmp(real, other, sizeof(real[0]) * (size_t)nreal) != 0;
        /* With the memo holding the real walk, the other rbp's walk is the
         * plain walk's (a memo that ignored rbp would give the real one). */
        expect_walks_agree(saved, "real rbp");
        expect_walks_agree(st, "other rbp");
    }
    cr_assert_gt(differ, 8u, "another rbp gives another walk");
}

Test(walkmemo, rbp_counts_where_a_frame_outward_uses_it)
{
    setup();
    probe = other_bp;
    chain(4, 64);
}

/* Frames of three kinds for the fuzz below: rbp-based CFAs (mixed, which
 * has an alloca), frames that save rbp and use it as a register (busy: many
 * values live across the call), and frames that leave rbp alone (thru). */
NOINLINE static int busy(int depth, int a, int b, int c);
NOINLINE static void mixed(int depth);

/* Leaves rbp alone: its callers' rbp passes through its frame. */
NOINLINE static void thru(int depth)
{
    if (depth)
        mixed(depth - 1);
    else
        probe();
    sink++;
}

NOINLINE static void mixed(int depth)
{
    switch (depth % 4) {
    case 3: thru(depth); break;
    case 0: sink += busy(depth, depth * 3, depth * 5, depth * 7); break;
    case 1: {
        char *buf = alloca(16 + (size_t)depth * 8);
        memset(buf, depth, 16);
        sink += buf[3];
        if (depth)
            mixed(depth - 1);
        else
            probe();
        break;
    }
    default:
        if (depth)
            mixed(depth - 1);
        else
            probe();
        sink++;
        break;
    }
}

NOINLINE static int busy(int depth, int a, int b, int c)
{
    int d = a * b, e = b * c, f = a ^ c, g = a + b + c, h = d - e, i = f * g, j = h + i;
    if (depth)
        mixed(depth - 1);
    else
        probe();
    return a + b + c + d + e + f + g + h + i + j + sink;
}

/* Walks from the states of one real stack, taken in random order, with rbp
 * changed at random and limits from 1 frame to more than the stack: every
 * way of joining, resuming and cutting the memo, each checked against the
 * plain walk. */
NOINLINE static void fuzz_states(void)
{
    save_state();
    mtp_unwind_memo_t real = memo;
    uint32_t n = real.n;
    cr_assert_gt(n, 20u);
    uint64_t joins = memo.joins;
    for (int i = 0; i < 20000; i++) {
        uint32_t h = next_rand(n);
        state_t st = {real.pc[h], real.sp[h], real.bp[h]};
        switch (next_rand(4)) {
        case 0: st.bp += 8 * (1 + next_rand(16)); break;
        case 1: st.bp = real.bp[next_rand(n)]; break;
        default: break;
        }
        max_frames = 1 + next_rand(n + 4);
        expect_walks_agree(st, "fuzz");
    }
    cr_assert_gt(memo.joins, joins + 1000);
    max_frames = 128;
}

Test(walkmemo, random_states_limits_and_rbp_of_a_real_stack)
{
    setup();
    probe = fuzz_states;
    mixed(30);
}
