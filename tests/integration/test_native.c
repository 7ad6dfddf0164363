/* Integration tests: single-process programs (leaky, cxxnew, threads, stackfirst) under
 * `memtrail run`, asserting the exact live figures of every allocating site. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "expected.h"
#include "harness.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *module_base(const mta_snapshot_t *snap, const mta_frame_t *f)
{
    if (f->module == MTSNAP_NONE || f->module >= snap->nmodules)
        return "";
    const char *p = strrchr(snap->modules[f->module].path, '/');
    return p != NULL ? p + 1 : snap->modules[f->module].path;
}

/* The single stack whose innermost user frame is `function` (asserted). */
static const mta_stack_t *site_stack(const mta_snapshot_t *snap, const char *function)
{
    const mta_stack_t *found = NULL;
    size_t n = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        const mta_frame_t *f = mt_user_frame(snap, snap->stats[i].stack);
        if (f != NULL && strcmp(f->function, function) == 0) {
            found = &snap->stacks[snap->stats[i].stack];
            n++;
        }
    }
    cr_assert_eq(n, 1, "%s: %zu stacks end at %s, want 1", snap->path, n, function);
    return found;
}

static const mta_frame_t *frame_at(const mta_snapshot_t *snap, const mta_stack_t *s, uint32_t d)
{
    cr_assert_lt(d, s->depth, "%s: stack too short (%u frames)", snap->path, s->depth);
    return &snap->frames[s->frames[d]];
}

/* Every figure leaky.c promises, plus the shape of its stacks. `path` is the
 * leaky executable the snapshot came from. */
/* argv run under memtrail (opts: its options, or NULL), its snapshots in
 * mt_dir, its stdout and stderr in *run: the run must end with status 0. */
static void run_traced_ok(const char *const opts[], const char *const argv[], mt_run_t *run)
{
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, run), 0);
    cr_assert(WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0,
              "%s under memtrail: wait status %#x, stderr: %s", name, run->status, run->err);
}

static void check_leaky(const mta_snapshot_t *snap, const char *prog)
{
    char path[PATH_MAX];
    cr_assert_not_null(realpath(prog, path));
    for (size_t i = 0; i < MT_LEAKY_NSITES; i++) {
        const mt_site_t *s = &mt_leaky_sites[i];
        mt_assert_site(snap, s->function, s->live_bytes, s->live_blocks);
        /* One call site per function, so one stack; a C program calls the
         * allocator directly, so the site is the innermost frame and its
         * caller is main (hook frames are stripped). */
        const mta_stack_t *st = site_stack(snap, s->function);
        cr_expect_str_eq(frame_at(snap, st, 0)->function, s->function);
        cr_expect_str_eq(frame_at(snap, st, 1)->function, "main",
                         "%s: caller of %s is \"%s\"", snap->path, s->function,
                         frame_at(snap, st, 1)->function);
    }
    uint64_t bytes, blocks;
    site_alloc_total(snap, "temporaries", &bytes, &blocks);
    cr_expect_eq(bytes, MT_LEAKY_TEMP_BYTES, "temporaries allocated %llu bytes",
                 (unsigned long long)bytes);
    cr_expect_eq(blocks, MT_LEAKY_TEMP_BLOCKS, "temporaries allocated %llu blocks",
                 (unsigned long long)blocks);
    cr_expect_geq(snap->meta.counter, MT_LEAKY_MIN_EVENTS, "counter %llu",
                  (unsigned long long)snap->meta.counter);
    site_alloc_total(snap, "grow_chain", &bytes, &blocks);
    cr_expect_eq(bytes, MT_LEAKY_CHAIN_BYTES, "grow_chain allocated %llu bytes",
                 (unsigned long long)bytes);
    cr_expect_eq(blocks, MT_LEAKY_CHAIN_BLOCKS, "grow_chain allocated %llu blocks",
                 (unsigned long long)blocks);

    const mtsnap_totals_t *t = &snap->totals;
    cr_expect_eq(t->live_bytes, MT_LEAKY_LIVE_BYTES, "TOTALS live_bytes %llu",
                 (unsigned long long)t->live_bytes);
    cr_expect_eq(t->live_blocks, MT_LEAKY_LIVE_BLOCKS);
    cr_expect_eq(t->alloc_bytes, MT_LEAKY_ALLOC_BYTES, "TOTALS alloc_bytes %llu",
                 (unsigned long long)t->alloc_bytes);
    cr_expect_eq(t->alloc_blocks, MT_LEAKY_ALLOC_BLOCKS, "TOTALS alloc_blocks %llu",
                 (unsigned long long)t->alloc_blocks);
    cr_expect_eq(t->free_blocks, MT_LEAKY_FREE_BLOCKS, "TOTALS free_blocks %llu",
                 (unsigned long long)t->free_blocks);
    cr_expect_eq(t->peak_bytes, MT_LEAKY_PEAK_BYTES, "TOTALS peak_bytes %llu",
                 (unsigned long long)t->peak_bytes);
    cr_expect_eq(t->peak_blocks, MT_LEAKY_PEAK_BLOCKS, "TOTALS peak_blocks %llu",
                 (unsigned long long)t->peak_blocks);
    for (uint64_t i = 0; i < snap->nblocks; i++)
        cr_expect_eq(snap->blocks[i].domain, MTSNAP_DOMAIN_NATIVE);

    /* Symbolization of the site frame: function, module, file and line. */
    const mta_frame_t *f = frame_at(snap, site_stack(snap, "leak_dropped"), 0);
    unsigned line = mt_marker_line("tests/programs/leaky.c", "/* SITE:leak_dropped */");
    cr_assert_neq(line, 0);
    cr_expect(ends_with(f->file, "leaky.c"), "leak_dropped file \"%s\"", f->file);
    cr_expect_eq(f->line, line, "leak_dropped line %u, want %u", f->line, line);
    cr_expect_eq(f->kind, MTSNAP_FRAME_NATIVE);
    cr_assert_neq(f->module, MTSNAP_NONE, "leak_dropped frame has no module");
    cr_expect_str_eq(snap->modules[f->module].path, path, "module of leak_dropped");
    cr_expect(f->pc >= snap->modules[f->module].start && f->pc < snap->modules[f->module].end);
    cr_expect_gt(f->offset, 0);

    cr_expect_str_eq(snap->exe, path, "META exe");
    cr_expect_str_eq(snap->cmdline, path, "META cmdline argv[0]");
}

Test(integration, leaky, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *leaky = mt_program("leaky");
    const char *argv[] = {leaky, NULL};
    mt_run_t run;

    run_traced_ok(NULL, argv, &run);
    cr_expect_str_eq(run.out, "", "leaky printed \"%s\"", run.out);

    mt_snaplist_t all;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, NULL, &all), 0);
    cr_assert_eq(all.n, 1, "%zu snapshots, want 1 (the exit snapshot)", all.n);
    mta_snapshot_t *snap = mt_load(all.paths[0]);
    cr_expect_neq(snap->meta.pid, (uint32_t)run.pid, "the traced program is a child of memtrail run");
    mt_check_meta(snap, (pid_t)snap->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    cr_expect_eq(snap->meta.unwind, MTSNAP_UNWIND_LIBUNWIND, "default unwinder");
    cr_expect_eq(snap->meta.depth, 64, "default depth");
    check_leaky(snap, leaky);
    /* Not a fork child: the time line's highest point is the peak, exactly. */
    cr_expect_eq(mt_check_timeline(snap), snap->totals.peak_bytes);

    mta_snapshot_free(snap);
    mt_snaplist_free(&all);
    mt_run_free(&run);
    free(leaky);
}

/* The frame-pointer unwinder and a small depth (memtrail run --unwind fp
 * --depth 8) give the same figures. */
Test(integration, leaky_fp_depth8, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *leaky = mt_program("leaky");
    const char *argv[] = {leaky, NULL};
    const char *opts[] = {"--unwind", "fp", "--depth", "8", NULL};
    mt_run_t run;

    run_traced_ok(opts, argv, &run);
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "exit");
    mt_check_meta(snap, (pid_t)snap->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    cr_expect_eq(snap->meta.unwind, MTSNAP_UNWIND_FP, "--unwind fp");
    cr_expect_eq(snap->meta.depth, 8, "--depth 8");
    for (uint32_t i = 0; i < snap->nstacks; i++)
        cr_expect_leq(snap->stacks[i].depth, 8, "stack %u has %u frames", i,
                      snap->stacks[i].depth);
    check_leaky(snap, leaky);

    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(leaky);
}

Test(integration, cxxnew, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("cxxnew");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    run_traced_ok(NULL, argv, &run);
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, NULL);
    mt_check_meta(snap, (pid_t)snap->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");

    mt_assert_site(snap, "make_widget", 120, 3);
    mt_assert_site(snap, "make_array", 400, 1);
    mt_assert_site(snap, "churn", 0, 0);
    uint64_t bytes, blocks;
    site_alloc_total(snap, "churn", &bytes, &blocks);
    cr_expect_eq(bytes, 40000, "churn allocated %llu bytes", (unsigned long long)bytes);
    cr_expect_eq(blocks, 1000, "churn allocated %llu blocks", (unsigned long long)blocks);
    site_live_any_frame(snap, "make_vector", &bytes, &blocks);
    cr_expect_eq(bytes, 4000, "make_vector (any frame) live %llu bytes",
                 (unsigned long long)bytes);
    cr_expect_eq(blocks, 1, "make_vector (any frame) live %llu blocks",
                 (unsigned long long)blocks);

    /* operator new frames from libstdc++ are kept in the stack (only the
     * analyzer skips them): new Widget -> _Znwm; new int[] -> _Znwm, then
     * _Znam unless libstdc++ made operator new[] a tail call (Debian's does). */
    const mta_stack_t *w = site_stack(snap, "make_widget");
    cr_expect_str_eq(frame_at(snap, w, 0)->function, "_Znwm");
    cr_expect(strncmp(module_base(snap, frame_at(snap, w, 0)), "libstdc++", 9) == 0,
              "operator new in module \"%s\"", module_base(snap, frame_at(snap, w, 0)));
    cr_expect_str_eq(frame_at(snap, w, 1)->function, "make_widget");
    const mta_stack_t *a = site_stack(snap, "make_array");
    cr_expect_str_eq(frame_at(snap, a, 0)->function, "_Znwm");
    if (strcmp(frame_at(snap, a, 1)->function, "_Znam") == 0) /* not a tail call */
        cr_expect_str_eq(frame_at(snap, a, 2)->function, "make_array");
    else
        cr_expect_str_eq(frame_at(snap, a, 1)->function, "make_array");
    /* At -O0 std::__new_allocator<int>::allocate is a real frame: it is the
     * innermost user frame of the vector's stack, not make_vector. */
    const mta_stack_t *v = site_stack(snap, "_ZNSt15__new_allocatorIiE8allocateEmPKv");
    cr_expect_str_eq(frame_at(snap, v, 0)->function, "_Znwm");
    mt_assert_site(snap, "make_vector", 0, 0);

    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(prog);
}

/* Heavy cross-thread address reuse: 200,000 blocks made by 4 producers and
 * freed by 4 consumers; only the 400 kept blocks are live at exit. */
Test(integration, threads, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("threads");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    run_traced_ok(NULL, argv, &run);
    cr_expect_str_eq(run.out, "");
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, NULL);
    mt_check_meta(snap, (pid_t)snap->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");

    uint64_t produced_bytes = 0, kept_bytes = 0;
    uint64_t kept_by_size[512] = {0};
    for (unsigned i = 0; i < MT_THREADS_PER_PRODUCER; i++)
        produced_bytes += mt_threads_produce_size(i);
    produced_bytes *= MT_THREADS_PRODUCERS;
    for (unsigned p = 0; p < MT_THREADS_PRODUCERS; p++) {
        for (unsigned k = 0; k < MT_THREADS_KEEP; k++) {
            kept_bytes += mt_threads_keep_size(p, k);
            kept_by_size[mt_threads_keep_size(p, k)]++;
        }
    }
    cr_assert_eq(produced_bytes, 25671840u);
    cr_assert_eq(kept_bytes, 27800u);

    mt_assert_site(snap, "produce_block", 0, 0);
    mt_assert_site(snap, "keep_block", 27800, 400);
    uint64_t bytes, blocks;
    site_alloc_total(snap, "produce_block", &bytes, &blocks);
    cr_expect_eq(bytes, produced_bytes, "produce_block allocated %llu bytes",
                 (unsigned long long)bytes);
    cr_expect_eq(blocks, 200000, "produce_block allocated %llu blocks",
                 (unsigned long long)blocks);
    site_alloc_total(snap, "keep_block", &bytes, &blocks);
    cr_expect_eq(bytes, 27800);
    cr_expect_eq(blocks, 400);

    /* The kept blocks themselves: exactly the sizes 8 * (p + 1) + k. */
    uint64_t got_by_size[512] = {0};
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_frame_t *f = mt_user_frame(snap, b->stack);
        if (f == NULL || strcmp(f->function, "keep_block") != 0)
            continue;
        cr_assert_lt(b->size, 512, "kept block of size %llu", (unsigned long long)b->size);
        got_by_size[b->size]++;
    }
    for (unsigned s = 0; s < 512; s++)
        cr_expect_eq(got_by_size[s], kept_by_size[s], "kept blocks of %u bytes: %llu, want %llu",
                     s, (unsigned long long)got_by_size[s],
                     (unsigned long long)kept_by_size[s]);
    cr_expect_geq(snap->meta.counter, 2u * 200000 + 400);

    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(prog);
}

/* tests/programs/stackfirst.c: every thread's first allocation is made
 * inside pthread_getattr_np, which holds the thread's descriptor lock while
 * it allocates. memtrail read the new thread's stack bounds with the same
 * function from inside it and the run never ended (the test timed out);
 * now the bounds are read at a later push (hook/stackattr.c). The blocks
 * made right after have their whole stacks. */
Test(integration, first_allocation_inside_pthread_getattr_np, .init = mt_setup,
     .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("stackfirst");
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    run_traced_ok(NULL, argv, &run);
    cr_expect_str_eq(run.out, "stack 1 1\n");
    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, NULL);
    mt_check_consistency(snap);
    mt_assert_site(snap, "keep_main", 100, 1);
    mt_assert_site(snap, "keep_thread", 200, 1);
    uint64_t bytes, blocks;
    site_live_any_frame(snap, "outer_main", &bytes, &blocks);
    cr_expect(bytes == 100 && blocks == 1, "through outer_main: %llu bytes in %llu blocks",
              (unsigned long long)bytes, (unsigned long long)blocks);
    site_live_any_frame(snap, "thread_main", &bytes, &blocks);
    cr_expect(bytes == 200 && blocks == 1, "through thread_main: %llu bytes in %llu blocks",
              (unsigned long long)bytes, (unsigned long long)blocks);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(prog);
}

/* libunwind is loaded on the first stack memtrail's CFI walk cannot follow
 * (preload/unwind/unwind.c): tests/programs/unwlazy.c says it is not mapped
 * after allocations the walk follows to the end, and is after one made in a
 * signal handler (a signal frame); that block's stack runs through the
 * handler, the interrupted raise and main, exact. Its dlopens of modules
 * that need liblzma, which libunwind brought in, then store blocks of the
 * program's in liblzma's link map: no block is definitely or possibly lost
 * (the link maps of memtrail's load are roots of the leak scan). Bare, the
 * program maps libunwind at neither point. */
Test(integration, libunwind_only_for_stacks_the_cfi_walk_cannot_follow, .init = mt_setup,
     .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("unwlazy"), *lib = mt_program("libunwlazydep.so");
    const char *argv[] = {prog, mt_dir, lib, NULL};
    mt_run_t run;
    cr_assert_eq(run_bare_capture(argv, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "bare: %#x, %s", run.status,
              run.err);
    cr_assert_str_eq(run.out, "libunwind 0 0\n");
    mt_run_free(&run);

    run_traced_ok(NULL, argv, &run);
    cr_assert_str_eq(run.out, "libunwind 0 1\n");
    cr_assert_null(strstr(run.err, "libload"), "%s", run.err);
    mt_run_free(&run);

    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "exit");
    const mta_stack_t *st = site_stack(snap, "handler_site");
    uint32_t stat = UINT32_MAX;
    for (uint32_t i = 0; i < snap->nstats; i++)
        if (&snap->stacks[snap->stats[i].stack] == st)
            stat = i;
    cr_assert_neq(stat, UINT32_MAX);
    cr_assert_eq(snap->stats[stat].live_blocks, 1);
    cr_assert_eq(snap->stats[stat].live_bytes, 4242);
    /* handler_site, on_usr1, the signal trampoline, raise's frames, main. */
    const char *want[] = {"handler_site", "on_usr1", "raise", "main"};
    size_t w = 0;
    for (uint32_t d = 0; d < st->depth && w < 4; d++) {
        const mta_frame_t *f = &snap->frames[st->frames[d]];
        if (f->function && strcmp(f->function, want[w]) == 0)
            w++;
    }
    cr_assert_eq(w, 4, "%s: the handler's stack lacks %s", snap->path, want[w < 4 ? w : 3]);
    cr_assert(snap->has_leaks, "%s: no leak scan", snap->path);
    for (uint64_t i = 0; i < snap->nblocks; i++)
        cr_expect(snap->leak_kind[i] != MTSNAP_LEAK_DEFINITE &&
                      snap->leak_kind[i] != MTSNAP_LEAK_POSSIBLE,
                  "%s: block %llu (%llu bytes) is %s lost", snap->path, (unsigned long long)i,
                  (unsigned long long)snap->blocks[i].size,
                  snap->leak_kind[i] == MTSNAP_LEAK_DEFINITE ? "definitely" : "possibly");
    mta_snapshot_free(snap);
    free(prog);
    free(lib);
}

/* tests/programs/shapes.c: call chains that change shape from one allocation
 * to the next (recursion, longjmp, alloca, signal handlers, coroutines on
 * stacks of their own, two threads). Every stack of the exit snapshot that
 * runs through alloc_here is one the program got from libunwind, with the
 * same blocks and bytes, and every one the program got is there: memtrail's
 * walk, remembered from one allocation to the next, gives no other stack. */
typedef struct shape_stack {
    uint64_t blocks, bytes;
    uint32_t depth;
    uint64_t pc[48];
    int seen;
} shape_stack_t;

/* forked: the program forks first and its child does it all; the child's
 * first stacks are walked without its caches and memos (record/record.c). */
static void check_shapes(int forked)
{
    char *prog = mt_program("shapes");
    char table_path[PATH_MAX];
    snprintf(table_path, sizeof(table_path), "%s/shapes.txt", mt_dir);
    const char *argv[] = {prog, table_path, forked ? "fork" : NULL, NULL};
    mt_run_t run;
    run_traced_ok(NULL, argv, &run);
    pid_t pid = 0;
    if (forked) {
        pid = (pid_t)mt_number_after(run.out, "child");
        cr_assert_gt(pid, 0, "shapes printed \"%s\"", run.out);
    }

    static shape_stack_t want[4096];
    size_t nwant = 0;
    FILE *f = fopen(table_path, "r");
    cr_assert_not_null(f);
    unsigned long long blocks, bytes;
    unsigned depth;
    while (fscanf(f, "%llu %llu %u", &blocks, &bytes, &depth) == 3) {
        cr_assert_lt(nwant, 4096u);
        cr_assert_leq(depth, 48u);
        shape_stack_t *w = &want[nwant++];
        *w = (shape_stack_t){blocks, bytes, depth, {0}, 0};
        for (unsigned d = 0; d < depth; d++)
            cr_assert_eq(fscanf(f, "%lx", (unsigned long *)&w->pc[d]), 1);
    }
    fclose(f);
    cr_assert_gt(nwant, 100u, "%zu distinct stacks", nwant);

    mta_snapshot_t *snap = mt_load_one(mt_dir, pid, "exit");
    size_t through = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        const mta_stack_t *st = &snap->stacks[snap->stats[i].stack];
        /* The frames as walked (inlined functions' frames share their pc
         * with the frame after them), innermost first. */
        uint64_t pcs[80];
        uint32_t n = 0;
        const char *first = NULL;
        for (uint32_t d = 0; d < st->depth && n < 80; d++) {
            const mta_frame_t *fr = &snap->frames[st->frames[d]];
            if (fr->inlined)
                continue;
            if (!first)
                first = fr->function;
            pcs[n++] = fr->pc;
        }
        if (!first || strcmp(first, "alloc_here") != 0)
            continue;
        through++;
        shape_stack_t *w = NULL;
        for (size_t k = 0; k < nwant && !w; k++)
            if (want[k].depth == n - 1 && memcmp(want[k].pc, pcs + 1, (n - 1) * 8) == 0)
                w = &want[k];
        cr_assert_not_null(w, "stack %u (%u frames) through alloc_here is none libunwind gave",
                           snap->stats[i].stack, n);
        cr_assert_eq(w->seen, 0, "stack %u twice", snap->stats[i].stack);
        w->seen = 1;
        cr_expect_eq(snap->stats[i].live_blocks, w->blocks, "stack %u: %llu blocks, want %llu",
                     snap->stats[i].stack, (unsigned long long)snap->stats[i].live_blocks,
                     (unsigned long long)w->blocks);
        cr_expect_eq(snap->stats[i].live_bytes, w->bytes, "stack %u: %llu bytes, want %llu",
                     snap->stats[i].stack, (unsigned long long)snap->stats[i].live_bytes,
                     (unsigned long long)w->bytes);
    }
    cr_expect_eq(through, nwant, "%zu stacks through alloc_here, the program saw %zu", through,
                 nwant);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(prog);
}

Test(integration, changing_shapes_give_libunwinds_stacks, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    check_shapes(0);
}

Test(integration, changing_shapes_in_a_fork_child, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    check_shapes(1);
}
