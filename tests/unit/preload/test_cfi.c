/* The cached DWARF-CFI unwinder (preload/cfi.c) against libunwind's
 * unw_backtrace, frame for frame, on stacks of many shapes. This file is built
 * with -O2 -fomit-frame-pointer so that most frames have no frame pointer. */
#include <alloca.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "stackbounds.h"
#include "unwind/cfi.h"

static mtp_rule_ent_t cache[MTP_RCACHE_SLOTS];
static uintptr_t stack_lo, stack_hi;
static volatile int sink;

typedef struct result {
    uintptr_t ours[128];
    int nours;
    void *ref[130];
    int nref;
} result_t;

static void stack_bounds(void)
{
    mt_stack_bounds(&stack_lo, &stack_hi);
}

/* Keeps its frame pointer, so the walk can start from its caller exactly as
 * the preload starts from the caller of malloc. */
__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void
capture(result_t *r)
{
    uintptr_t *fp = __builtin_frame_address(0);
    r->nref = unw_backtrace(r->ref, 130);
    r->nours = mtp_cfi_unwind_from(cache, NULL, fp[1], (uintptr_t)(fp + 2), fp[0], stack_lo, stack_hi,
                                   r->ours, 128);
}

/* Identical to libunwind, minus libunwind's own first frame (inside capture). */
static void expect_same(const result_t *r, const char *what)
{
    cr_assert_geq(r->nours, 0, "%s: the CFI walk gave up", what);
    cr_assert_eq(r->nours, r->nref - 1, "%s: %d frames, libunwind %d", what, r->nours,
                 r->nref - 1);
    for (int i = 0; i < r->nours; i++)
        cr_assert_eq(r->ours[i], (uintptr_t)r->ref[i + 1], "%s: frame %d differs", what, i);
}

__attribute__((noinline)) static void recurse(result_t *r, int depth)
{
    if (depth == 0)
        capture(r);
    else
        recurse(r, depth - 1);
    sink++;
}

__attribute__((noinline)) static void with_alloca(result_t *r, int n, int depth)
{
    char *buf = alloca((size_t)n);
    memset(buf, depth, (size_t)n);
    sink += buf[n / 2];
    if (depth)
        with_alloca(r, n * 3 + 8, depth - 1);
    else
        recurse(r, 3);
    sink++;
}

static result_t *qsort_result;
static int cmp_calls;

static int compare(const void *a, const void *b)
{
    if (cmp_calls++ == 5)
        recurse(qsort_result, 2);
    return *(const int *)a - *(const int *)b;
}

Test(cfi, matches_libunwind_on_plain_recursion)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    stack_bounds();
    static result_t r;
    for (int depth = 0; depth < 40; depth += 7) {
        memset(&r, 0, sizeof(r));
        recurse(&r, depth);
        expect_same(&r, "recursion");
        cr_assert_geq(r.nours, depth + 3);
    }
    /* Twice more: from the per-thread cache, then from the shared table. */
    recurse(&r, 10);
    expect_same(&r, "cached");
    memset(cache, 0, sizeof(cache));
    recurse(&r, 10);
    expect_same(&r, "shared table");
}

Test(cfi, matches_libunwind_through_alloca_frames)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    stack_bounds();
    static result_t r;
    with_alloca(&r, 40, 4);
    expect_same(&r, "alloca");
}

Test(cfi, matches_libunwind_through_libc_callbacks)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    stack_bounds();
    static result_t r;
    int v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (i * 37) % 64;
    qsort_result = &r;
    qsort(v, 64, sizeof(v[0]), compare);
    expect_same(&r, "qsort callback");
}

static void *thread_main(void *p)
{
    result_t *r = p;
    pthread_attr_t attr;
    void *addr;
    size_t size;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    stack_lo = (uintptr_t)addr;
    stack_hi = (uintptr_t)addr + size;
    recurse(r, 5);
    return NULL;
}

Test(cfi, matches_libunwind_on_a_thread_down_to_clone)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    static result_t r;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_main, &r), 0);
    pthread_join(th, NULL);
    expect_same(&r, "thread");
}

static result_t signal_result;

static void on_signal(int sig)
{
    (void)sig;
    recurse(&signal_result, 2);
}

/* A signal frame is not modelled: the walk must hand over to libunwind
 * (return -1), never return a different stack. */
Test(cfi, signal_frames_are_left_to_libunwind)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    stack_bounds();
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    result_t *r = &signal_result;
    cr_assert_gt(r->nref, 8, "libunwind sees through the signal frame");
    if (r->nours >= 0) {
        expect_same(r, "signal");
    } else {
        cr_assert_eq(r->nours, -ENOENT);
    }
}

Test(cfi, bad_stack_bounds_give_up_instead_of_reading)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    uintptr_t pcs[8];
    uintptr_t *fp = __builtin_frame_address(0);
    (void)fp;
    /* A stack pointer outside the bounds: the first CFA fails the check. */
    int n = mtp_cfi_unwind_from(cache, NULL, (uintptr_t)&recurse + 8, 0x1000, 0x1000, 0x7000, 0x8000,
                                pcs, 8);
    cr_assert_eq(n, -ENOENT);
    /* Unknown bounds: never walks. */
    cr_assert_eq(mtp_cfi_unwind_from(cache, NULL, (uintptr_t)&recurse + 8, 0, 0, 0, 0, pcs, 8), -ENOENT);
}

/* The rule tables (cfi.c): the first FIRST_MAX rules in a table of one
 * page, the others in the large one. Rules for 600 addresses across libc's
 * code (most with an FDE, some perhaps without: UNSUPPORTED, stored all the
 * same), each asked twice: the first answer is the computed rule, the
 * second the stored one, from whichever table took it; they must be equal,
 * in both tables (at least 472 of them went to the large one). */
Test(cfi, stored_rules_are_the_computed_ones_in_both_tables)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    static mtp_rule_ent_t computed[600];
    uintptr_t base = (uintptr_t)&qsort;
    for (unsigned i = 0; i < 600; i++)
        computed[i] = mtp_cfi_rule(base + (uintptr_t)i * 97);
    for (unsigned i = 0; i < 600; i++) {
        mtp_rule_ent_t again = mtp_cfi_rule(base + (uintptr_t)i * 97);
        cr_assert(again.pc == computed[i].pc && again.cfa_off == computed[i].cfa_off &&
                      again.rbp_off == computed[i].rbp_off && again.base == computed[i].base,
                  "address %u: rule (%d, %d, %u) stored as (%d, %d, %u)", i, computed[i].cfa_off,
                  computed[i].rbp_off, computed[i].base, again.cfa_off, again.rbp_off, again.base);
    }
}
