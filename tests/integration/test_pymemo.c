/* Integration tests: the Python walk's memo (preload/python/pystack.c),
 * which reuses the outer frames of a thread's previous walk after comparing
 * them with the live frames, on every interpreter of tests/python/pythons.h.
 *
 * - tests/python/shapes.py (call chains that change shape between
 *   allocations: recursion, generators resumed from other callers, list()
 *   of a generator (a stack that is the one before less its inner frame,
 *   every word shared: it must not get that one's id), exec'd code,
 *   exceptions, coroutines, a chain deeper than the memo holds) runs
 *   twice with PYTHONHASHSEED=0: with MEMTRAIL_PY_MEMO=0 (every stack
 *   walked in full) and with the memo. The blocks allocated by the program
 *   itself (innermost Python frame in shapes.py or its exec'd files) must
 *   sit on the same stacks, with the same bytes and blocks, in both exit
 *   snapshots; also with --depth 8, where most chains are cut.
 * - tests/python/code_reuse.py makes each code object at the address of
 *   the one before it, running at the same offset and called from the same
 *   place; with byte sampling most allocations in between are not walked.
 *   Every block must be at the line of its own code object: the test fails
 *   if the memo stops checking code objects' ids.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "pythons.h"

#define PYMEMO_TIMEOUT 180

/* Run `memtrail run -o DIR OPTS -- PYTHON SCRIPT ARGS` with ENV; asserts it
 * exits 0; returns its exit snapshot (loaded), DIR's only one. */
static mta_snapshot_t *run_exit(const mt_python_t *py, const char *dir, const char *const *opts,
                                const char *script, const char *arg, const char *const *env,
                                mt_run_t *run)
{
    char *path = mt_source_file(script);
    const char *argv[] = {py->path, path, arg, NULL};
    int rc = run_traced_capture(dir, opts, argv, env, run);
    cr_assert_eq(rc, 0, "cannot run %s %s under memtrail", py->path, path);
    cr_assert(WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0,
              "%s %s under memtrail: wait status %#x\nstdout:\n%s\nstderr:\n%s", py->path, path,
              run->status, run->out, run->err);
    free(path);
    return mt_load_one(dir, 0, "exit");
}

/* ---- the same stacks with and without the memo ----------------------------- */

typedef struct stack_fig {
    char *key;      /* the stack's Python frames, "file:line:function;..." */
    uint64_t bytes, blocks;
} stack_fig_t;

static int by_key(const void *a, const void *b)
{
    return strcmp(((const stack_fig_t *)a)->key, ((const stack_fig_t *)b)->key);
}

/* The lines of shapes.py marked "# ALLOC:" (what the program itself
 * allocates there does not depend on anything but the program). */
static unsigned alloc_lines[64], nalloc_lines;

static void read_alloc_lines(void)
{
    char *path = mt_source_file("tests/python/shapes.py"), line[512];
    FILE *f = fopen(path, "r");
    unsigned n = 0;
    cr_assert_not_null(f, "cannot open %s", path);
    nalloc_lines = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        if (strstr(line, "# ALLOC:") != NULL && nalloc_lines < 64)
            alloc_lines[nalloc_lines++] = n;
    }
    fclose(f);
    free(path);
    cr_assert_geq(nalloc_lines, 10, "shapes.py: %u lines marked ALLOC", nalloc_lines);
}

/* The program's own allocation: at a marked line of shapes.py, or in the
 * files it execs. */
static int own_frame(const mta_frame_t *f)
{
    size_t n = strlen(f->file);
    if (strncmp(f->file, "<shape-", 7) == 0)
        return 1;
    if (n < 9 || strcmp(f->file + n - 9, "shapes.py") != 0)
        return 0;
    for (unsigned i = 0; i < nalloc_lines; i++)
        if (alloc_lines[i] == f->line)
            return 1;
    return 0;
}

/* The live blocks of snap whose innermost Python frame is the program's,
 * summed per stack of Python frames (two stack ids with the same Python
 * frames count as one), sorted by key. */
static stack_fig_t *program_stacks(const mta_snapshot_t *snap, size_t *count)
{
    stack_fig_t *v = calloc(snap->nblocks + 1, sizeof(*v));
    size_t n = 0, w = 0;
    static char key[65536];
    cr_assert_not_null(v);
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_stack_t *st = &snap->stacks[b->stack];
        size_t len = 0;
        int first = 1, own = 0;
        for (uint32_t d = 0; d < st->depth; d++) {
            const mta_frame_t *f = &snap->frames[st->frames[d]];
            if (f->kind == MTSNAP_FRAME_PYTHON && first) {
                own = own_frame(f);
                first = 0;
            }
            /* native frames too (--native), by name: the same in both runs */
            len += (size_t)snprintf(key + len, sizeof(key) - len, "%s:%u:%s;", f->file, f->line,
                                    f->function);
            cr_assert_lt(len, sizeof(key), "a stack of more than %zu bytes of frames",
                         sizeof(key));
        }
        if (!own)
            continue;
        v[n].key = strndup(key, len);
        cr_assert_not_null(v[n].key);
        v[n].bytes = b->size;
        v[n++].blocks = 1;
    }
    qsort(v, n, sizeof(*v), by_key);
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(v[w - 1].key, v[i].key) == 0) {
            v[w - 1].bytes += v[i].bytes;
            v[w - 1].blocks += v[i].blocks;
            free(v[i].key);
            continue;
        }
        v[w++] = v[i];
    }
    *count = w;
    return v;
}

static void free_stacks(stack_fig_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].key);
    free(v);
}

/* Stacks of the same frames stored twice: a stack whose hash was computed
 * wrong (the memo's kept hash lanes) is not found and stored again. */
static const mta_snapshot_t *cmp_snap;
static int by_frames(const void *a, const void *b)
{
    const mta_stack_t *x = &cmp_snap->stacks[*(const uint32_t *)a];
    const mta_stack_t *y = &cmp_snap->stacks[*(const uint32_t *)b];
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    return memcmp(x->frames, y->frames, x->depth * sizeof(*x->frames));
}

static size_t twin_stacks(const mta_snapshot_t *snap)
{
    uint32_t *ix = calloc(snap->nstacks + 1, sizeof(*ix));
    size_t twins = 0;
    cr_assert_not_null(ix);
    for (uint32_t s = 0; s < snap->nstacks; s++)
        ix[s] = s;
    cmp_snap = snap;
    qsort(ix, snap->nstacks, sizeof(*ix), by_frames);
    for (uint32_t s = 1; s < snap->nstacks; s++)
        twins += snap->stacks[ix[s]].depth > 0 && by_frames(&ix[s - 1], &ix[s]) == 0;
    free(ix);
    return twins;
}

/* The deepest stack of snap, in frames as taken: a function inlined into
 * the frame after it shares its pc and is not one. */
static uint32_t deepest(const mta_snapshot_t *snap)
{
    uint32_t most = 0;
    for (uint32_t s = 0; s < snap->nstacks; s++) {
        uint32_t d = 0;
        for (uint32_t k = 0; k < snap->stacks[s].depth; k++)
            d += !snap->frames[snap->stacks[s].frames[k]].inlined;
        most = d > most ? d : most;
    }
    return most;
}

/* --native, shapes.py's entries(): the blocks made in entered() hold its
 * Python frames, and only those, in order (entered, entries, main, the
 * module: the splice drops, repeats and reorders none), and when entered()
 * ran through functools.partial, the partial's C frame lies between entered
 * and entries (the run of the evaluation loop entered from C spliced where
 * it ran), and the module's frame inside PyEval_EvalCode, which ran it.
 * Both kinds are there when the partial's frame is named (not in
 * Debian's python3.11, whose local symbols are stripped). */
static int is_partial(const char *function)
{
    return !strcmp(function, "partial_vectorcall") || !strcmp(function, "partial_call");
}

static void check_entered(const mta_snapshot_t *snap)
{
    static const char *const want[] = {"entered", "entries", "main", "<module>"};
    uint64_t via_partial = 0, direct = 0;
    int named = 0;
    for (uint32_t f = 0; f < snap->nframes && !named; f++)
        named = is_partial(snap->frames[f].function);
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mta_stack_t *st = &snap->stacks[snap->blocks[i].stack];
        uint32_t npy = 0, d_entered = UINT32_MAX, d_entries = UINT32_MAX, d_partial = UINT32_MAX;
        uint32_t d_module = UINT32_MAX, d_eval = UINT32_MAX;
        int ours = 0;
        for (uint32_t d = 0; d < st->depth; d++) {
            const mta_frame_t *f = &snap->frames[st->frames[d]];
            if (f->kind != MTSNAP_FRAME_PYTHON) {
                if (is_partial(f->function))
                    d_partial = d_partial == UINT32_MAX ? d : d_partial;
                if (!strcmp(f->function, "PyEval_EvalCode") && d_eval == UINT32_MAX)
                    d_eval = d;
                continue;
            }
            if (npy == 0)
                ours = strcmp(f->function, "entered") == 0 && own_frame(f);
            if (!ours)
                break;
            cr_expect(npy < 4 && strcmp(f->function, want[npy]) == 0,
                      "%s: Python frame %u of a block made in entered() is %s (%s:%u)", snap->path,
                      npy, f->function, f->file, f->line);
            if (npy == 0)
                d_entered = d;
            else if (npy == 1)
                d_entries = d;
            else if (npy == 3)
                d_module = d;
            npy++;
        }
        if (!ours)
            continue;
        cr_expect_eq(npy, 4, "%s: a block made in entered() has %u Python frames", snap->path, npy);
        cr_expect(d_module < d_eval, "%s: <module> (frame %u) not inside PyEval_EvalCode (%u)",
                  snap->path, d_module, d_eval);
        if (d_partial != UINT32_MAX && d_partial < d_entries) {
            cr_expect_lt(d_entered, d_partial, "%s: partial's frame inside entered()", snap->path);
            via_partial++;
        } else {
            cr_expect_eq(d_partial, UINT32_MAX, "%s: partial's frame out of entries()", snap->path);
            direct++;
        }
    }
    cr_expect_gt(direct, 0, "%s: no block made in entered() called directly", snap->path);
    if (named)
        cr_expect_gt(via_partial, 0, "%s: no block made in entered() through partial",
                     snap->path);
}

static void same_stacks(const mt_python_t *py, const char *depth, int native)
{
    const char *opts[4];
    size_t o = 0;
    if (depth != NULL) {
        opts[o++] = "--depth";
        opts[o++] = depth;
    }
    if (native)
        opts[o++] = "--native";
    opts[o] = NULL;
    const char *env_off[] = {"PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1",
                             "MEMTRAIL_PY_MEMO=0", NULL};
    const char *env_on[] = {"PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1", NULL};
    read_alloc_lines();
    char *dir_off = mt_mkdtemp(), *dir_on = mt_mkdtemp();
    mt_run_t r_off, r_on;
    mta_snapshot_t *s_off = run_exit(py, dir_off, opts, "tests/python/shapes.py", NULL,
                                     env_off, &r_off);
    mta_snapshot_t *s_on = run_exit(py, dir_on, opts, "tests/python/shapes.py", NULL, env_on,
                                    &r_on);
    cr_expect_str_eq(r_on.out, r_off.out, "the program's output differs");
    cr_expect_eq(twin_stacks(s_on), 0, "%s: stacks stored twice with the memo", s_on->path);
    cr_expect_eq(twin_stacks(s_off), 0, "%s: stacks stored twice", s_off->path);
    /* Cut to the depth, native and Python frames together (--native: the
     * splice's cut, the same code in both runs). */
    if (depth != NULL)
        cr_expect_eq(s_on->meta.depth, (uint32_t)atoi(depth));
    cr_expect_leq(deepest(s_on), s_on->meta.depth, "%s: a stack of %u frames, deeper than %u",
                  s_on->path, deepest(s_on), s_on->meta.depth);
    cr_expect_leq(deepest(s_off), s_off->meta.depth, "%s: a stack of %u frames, deeper than %u",
                  s_off->path, deepest(s_off), s_off->meta.depth);
    if (native && depth == NULL) {
        check_entered(s_on);
        check_entered(s_off);
    }
    size_t n_off, n_on;
    stack_fig_t *v_off = program_stacks(s_off, &n_off), *v_on = program_stacks(s_on, &n_on);
    /* shapes.py makes about 100 such stacks; cut to 8 frames, about 40 */
    cr_expect_geq(n_off, depth != NULL ? 25 : 60, "%zu program stacks in the full walks' snapshot",
                  n_off);
    cr_expect_eq(n_on, n_off, "%zu program stacks with the memo, %zu without", n_on, n_off);
    for (size_t i = 0, j = 0; i < n_off || j < n_on;) {
        int c = i == n_off ? 1 : j == n_on ? -1 : strcmp(v_off[i].key, v_on[j].key);
        if (c < 0) {
            cr_expect_fail("only without the memo (%llu B in %llu blocks): %s",
                           (unsigned long long)v_off[i].bytes,
                           (unsigned long long)v_off[i].blocks, v_off[i].key);
            i++;
        } else if (c > 0) {
            cr_expect_fail("only with the memo (%llu B in %llu blocks): %s",
                           (unsigned long long)v_on[j].bytes, (unsigned long long)v_on[j].blocks,
                           v_on[j].key);
            j++;
        } else {
            cr_expect(v_off[i].bytes == v_on[j].bytes && v_off[i].blocks == v_on[j].blocks,
                      "%s: %llu B in %llu blocks without the memo, %llu B in %llu with it",
                      v_off[i].key, (unsigned long long)v_off[i].bytes,
                      (unsigned long long)v_off[i].blocks, (unsigned long long)v_on[j].bytes,
                      (unsigned long long)v_on[j].blocks);
            i++;
            j++;
        }
    }
    free_stacks(v_off, n_off);
    free_stacks(v_on, n_on);
    mta_snapshot_free(s_off);
    mta_snapshot_free(s_on);
    mt_run_free(&r_off);
    mt_run_free(&r_on);
    mt_rmtree(dir_off);
    mt_rmtree(dir_on);
    free(dir_off);
    free(dir_on);
}

static void test_same_stacks(const mt_python_t *py)
{
    same_stacks(py, NULL, 0);
}

static void test_same_stacks_cut(const mt_python_t *py)
{
    same_stacks(py, "8", 0);
}

static void test_same_stacks_native(const mt_python_t *py)
{
    same_stacks(py, NULL, 1);
}

static void test_same_stacks_native_cut(const mt_python_t *py)
{
    same_stacks(py, "12", 1);
}

MT_PY_TESTS(pymemo, same_stacks_as_full_walks, test_same_stacks, .init = mt_setup,
            .fini = mt_teardown, .timeout = PYMEMO_TIMEOUT)
MT_PY_TESTS(pymemo, same_stacks_as_full_walks_depth8, test_same_stacks_cut, .init = mt_setup,
            .fini = mt_teardown, .timeout = PYMEMO_TIMEOUT)
MT_PY_TESTS(pymemo, same_hybrid_stacks_as_full_walks, test_same_stacks_native, .init = mt_setup,
            .fini = mt_teardown, .timeout = PYMEMO_TIMEOUT)
MT_PY_TESTS(pymemo, same_hybrid_stacks_as_full_walks_depth12, test_same_stacks_native_cut,
            .init = mt_setup, .fini = mt_teardown, .timeout = PYMEMO_TIMEOUT)

/* ---- a new code object where the old one was ------------------------------- */

static void test_code_reuse(const mt_python_t *py)
{
    const char *opts[] = {"--sample", "64KiB", NULL};
    const char *env[] = {"PYTHONDONTWRITEBYTECODE=1", NULL};
    mt_run_t run;
    mta_snapshot_t *snap = run_exit(py, mt_dir, opts, "tests/python/code_reuse.py", "200", env,
                                    &run);
    const char *files[2] = {"<reuse-A>", "<reuse-B>"};
    unsigned lines[2] = {2, 3};
    uint64_t sizes[2] = {1u << 20, (1u << 20) + 4096}, want[2] = {100, 100}, got[2][2] = {{0}};
    for (int k = 0; k < 2; k++) {
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "REUSE %s %u %llu ", files[k], lines[k],
                 (unsigned long long)sizes[k]);
        const char *p = strstr(run.out, prefix);
        cr_assert_not_null(p, "no \"%s\" line:\n%s", prefix, run.out);
        cr_assert_eq(strtoull(p + strlen(prefix), NULL, 10), want[k]);
    }
    long same = mt_number_after(run.out, "SAME");
    cr_expect_geq(same, 100, "only %ld rounds made their code object where the last one was",
                  same);
    /* Each bytearray's buffer is its size + 1 bytes; sampling keeps every
     * one of them (each is far above the mean). */
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        int k = b->size == sizes[0] + 1 ? 0 : b->size == sizes[1] + 1 ? 1 : -1;
        if (k < 0)
            continue;
        const mta_stack_t *st = &snap->stacks[b->stack];
        for (uint32_t d = 0; d < st->depth; d++) {
            const mta_frame_t *f = &snap->frames[st->frames[d]];
            if (f->kind != MTSNAP_FRAME_PYTHON)
                continue;
            int at = strcmp(f->file, files[1]) == 0 ? 1 : strcmp(f->file, files[0]) == 0 ? 0 : -1;
            cr_expect(at == k && f->line == lines[k],
                      "a block of %llu bytes at %s:%u, want %s:%u",
                      (unsigned long long)b->size, f->file, f->line, files[k], lines[k]);
            if (at == k)
                got[k][0]++;
            break;
        }
    }
    cr_expect_eq(got[0][0], want[0], "%llu blocks of <reuse-A> at its line, want %llu",
                 (unsigned long long)got[0][0], (unsigned long long)want[0]);
    cr_expect_eq(got[1][0], want[1], "%llu blocks of <reuse-B> at its line, want %llu",
                 (unsigned long long)got[1][0], (unsigned long long)want[1]);
    mta_snapshot_free(snap);
    mt_run_free(&run);
}

MT_PY_TESTS(pymemo, new_code_object_at_old_address, test_code_reuse, .init = mt_setup,
            .fini = mt_teardown, .timeout = PYMEMO_TIMEOUT)
