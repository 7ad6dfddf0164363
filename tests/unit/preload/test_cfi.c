/* The cached DWARF-CFI unwinder (preload/cfi.c) against libunwind's
 * unw_backtrace, frame for frame, on stacks of many shapes. This file is built
 * with -O2 -fomit-frame-pointer so that most frames have no frame pointer. */
#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
 * in both tables (at least 472 of them went to the large one), and none
 * computed again. */
Test(cfi, stored_rules_are_the_computed_ones_in_both_tables)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    static mtp_rule_ent_t computed[600];
    uintptr_t base = (uintptr_t)&qsort;
    for (unsigned i = 0; i < 600; i++)
        computed[i] = mtp_cfi_rule(base + (uintptr_t)i * 97);
    unsigned long before = mtp_cfi_computed();
    for (unsigned i = 0; i < 600; i++) {
        mtp_rule_ent_t again = mtp_cfi_rule(base + (uintptr_t)i * 97);
        cr_assert(again.pc == computed[i].pc && again.cfa_off == computed[i].cfa_off &&
                      again.rbp_off == computed[i].rbp_off && again.base == computed[i].base,
                  "address %u: rule (%d, %d, %u) stored as (%d, %d, %u)", i, computed[i].cfa_off,
                  computed[i].rbp_off, computed[i].base, again.cfa_off, again.rbp_off, again.base);
    }
    cr_assert_eq(mtp_cfi_computed(), before, "every rule found where it was stored (%lu computed again)",
                 mtp_cfi_computed() - before);
}

/* ---- the table shared with fork children (cfi.c, "Fork children") ---- */

/* What a child sends its parent: its rules for addresses, and how many it
 * computed itself. */
typedef struct child_rules {
    uintptr_t pc[40];
    mtp_rule_ent_t rule[40];
    unsigned n;
    unsigned long computed;
} child_rules_t;

/* Forks; the child runs fn (which fills *out) and sends *out back. */
static void in_child(void (*fn)(child_rules_t *), child_rules_t *out)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        child_rules_t c = {.n = 0};
        fn(&c);
        ssize_t w = write(p[1], &c, sizeof(c));
        _exit(w == (ssize_t)sizeof(c) ? 0 : 1);
    }
    close(p[1]);
    size_t got = 0;
    while (got < sizeof(*out)) {
        ssize_t r = read(p[0], (char *)out + got, sizeof(*out) - got);
        cr_assert_gt(r, 0, "the child's rules");
        got += (size_t)r;
    }
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Addresses in libc's code no rule was asked for before (strtod's
 * neighbourhood; the tests above ask around qsort). */
static uintptr_t fresh_pc(unsigned i)
{
    return (uintptr_t)&strtod + 4096 + (uintptr_t)i * 131;
}

static void child_libc_rules(child_rules_t *c)
{
    unsigned long before = mtp_cfi_computed();
    for (c->n = 0; c->n < 40; c->n++) {
        c->pc[c->n] = fresh_pc(c->n);
        c->rule[c->n] = mtp_cfi_rule(c->pc[c->n]);
    }
    c->computed = mtp_cfi_computed() - before;
}

/* The tables, the shared one made as the first fork's handler makes it,
 * then fn in a child. */
static void shared_then_child(void (*fn)(child_rules_t *), child_rules_t *out)
{
    cr_assert_eq(mtp_cfi_init(), 0);
    mtp_cfi_atfork_prepare();
    in_child(fn, out);
}

static int same_rule(mtp_rule_ent_t a, mtp_rule_ent_t b)
{
    return a.pc == b.pc && a.cfa_off == b.cfa_off && a.rbp_off == b.rbp_off && a.base == b.base;
}

/* A shell's children run code the shell never returns into: the rules one
 * child computes for it are the next one's, and the parent's, without
 * computing them again; and they are the rules computed here. */
Test(cfi, a_fork_childs_rules_for_the_parents_code_are_shared)
{
    child_rules_t c;
    shared_then_child(child_libc_rules, &c);
    cr_assert_eq(c.computed, 40, "the child computed its 40 rules (%lu)", c.computed);
    unsigned long before = mtp_cfi_computed();
    for (unsigned i = 0; i < c.n; i++) {
        mtp_rule_ent_t r = mtp_cfi_rule(c.pc[i]);
        cr_assert(same_rule(r, c.rule[i]), "address %u: the child's rule (%d, %d, %u), here (%d, %d, %u)",
                  i, c.rule[i].cfa_off, c.rule[i].rbp_off, c.rule[i].base, r.cfa_off, r.rbp_off,
                  r.base);
    }
    cr_assert_eq(mtp_cfi_computed(), before, "the parent computed none of them again");
    /* Another child finds them too. */
    in_child(child_libc_rules, &c);
    cr_assert_eq(c.computed, 0, "a second child computed %lu", c.computed);
}

static void child_loaded_rule(child_rules_t *c)
{
    void *h = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL);
    void *f = h ? dlsym(h, "crypt") : NULL;
    if (!f)
        _exit(3);
    /* An address there with a rule it models (the first 2 KiB of code
     * from crypt on hold one at least). */
    for (uintptr_t off = 16; off < 2048; off += 16) {
        unsigned long before = mtp_cfi_computed();
        c->pc[0] = (uintptr_t)f + off;
        c->rule[0] = mtp_cfi_rule(c->pc[0]);
        c->n = 1;
        c->computed = mtp_cfi_computed() - before;
        if (c->rule[0].base != MTP_CFI_UNSUPPORTED)
            return;
    }
}

/* A module loaded after the table was made may sit, in another process of
 * the tree, where that one has other code (or none): its rules stay in the
 * process that computed them. */
Test(cfi, rules_for_code_loaded_after_the_first_fork_stay_in_their_process)
{
    child_rules_t c;
    shared_then_child(child_loaded_rule, &c);
    cr_assert_eq(c.computed, 1);
    cr_assert_neq(c.rule[0].base, MTP_CFI_UNSUPPORTED, "libcrypt's crypt has an FDE");
    unsigned long before = mtp_cfi_computed();
    mtp_rule_ent_t r = mtp_cfi_rule(c.pc[0]);   /* nothing is mapped there here */
    cr_assert_eq(mtp_cfi_computed(), before + 1, "computed here, not the child's");
    cr_assert_eq(r.base, MTP_CFI_UNSUPPORTED);
}

static void child_after_unload(child_rules_t *c)
{
    void *h = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h || dlclose(h) != 0)
        _exit(3);
    child_libc_rules(c);
}

/* Once a process has unloaded a module, the code noted at the first fork
 * may no longer be what it has at those addresses: it shares no more rules. */
Test(cfi, a_process_that_unloaded_a_module_shares_no_more_rules)
{
    child_rules_t c;
    shared_then_child(child_after_unload, &c);
    cr_assert_eq(c.computed, 40);
    unsigned long before = mtp_cfi_computed();
    for (unsigned i = 0; i < c.n; i++)
        cr_assert(same_rule(mtp_cfi_rule(c.pc[i]), c.rule[i]));
    cr_assert_eq(mtp_cfi_computed(), before + 40, "the parent computed all 40 itself");
}
