/* Integration tests: the CPython scripts of tests/python/ under `memtrail run`,
 * on every interpreter of tests/python/pythons.h.
 *
 * Each script marks every allocating line with `# SITE:name` and prints, per
 * site, "SITE <name> <bytes> <blocks> <mem_bytes>": the sizes the allocators
 * were asked for there, as that interpreter computes them (sys.getsizeof of
 * objects that are one allocation, or an object plus one buffer, none from a
 * free list). The tests compare them, exactly, with the blocks of the
 * snapshot whose innermost frame is a Python frame at that file:line, domain
 * by domain (mem_bytes from MEM, the rest from OBJ), and check the frames of
 * those stacks (function: co_qualname on 3.11+, co_name before; caller and
 * its line).
 */
#include <ctype.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pythons.h"

#define PY_TEST_TIMEOUT 120

/* ---- small helpers -------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    cr_assert_not_null(d);
    return d;
}

/* Absolute, symlink-free path of a file of the source tree (malloc'd): the
 * script is run by that path, so it is also its co_filename. */
static char *py_script(const char *relpath)
{
    char *path = mt_source_file(relpath), real[PATH_MAX];
    cr_assert_not_null(realpath(path, real), "cannot resolve %s", path);
    free(path);
    return xstrdup(real);
}

/* The line of relpath that ends with "# " marker (e.g. "SITE:bytes_big"),
 * exactly: no other marker may merely start with it. Asserts it exists. */
static unsigned py_marker(const char *relpath, const char *marker)
{
    char *path = mt_source_file(relpath), want[128], line[1024];
    FILE *f = fopen(path, "r");
    unsigned n = 0, found = 0;
    cr_assert_not_null(f, "cannot open %s", path);
    snprintf(want, sizeof(want), "# %s", marker);
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        size_t len = strcspn(line, "\r\n");
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        line[len] = '\0';
        size_t wl = strlen(want);
        if (len >= wl && strcmp(line + len - wl, want) == 0) {
            cr_assert_eq(found, 0, "%s: marker %s on lines %u and %u", relpath, marker, found, n);
            found = n;
        }
    }
    fclose(f);
    free(path);
    cr_assert_neq(found, 0, "%s: no line ends with \"%s\"", relpath, want);
    return found;
}

/* The text of the line of `text` that starts with `prefix` (malloc'd, without
 * the prefix and the newline), or NULL. */
static char *line_after(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len >= pl && strncmp(p, prefix, pl) == 0)
            return strndup(p + pl, len - pl);
        p = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* ---- running a script ------------------------------------------------------ */

typedef struct py_opts {
    const char *const *mt_opts;    /* memtrail run options, NULL-terminated */
    const char *const *py_args;    /* interpreter options before the script */
    const char *const *env;        /* extra environment ("NAME=value") */
    const char *pythonpath;        /* PYTHONPATH, or NULL */
} py_opts_t;

/* Run `memtrail run -o mt_dir [opts] -- PYTHON [py_args] SCRIPT`; asserts it
 * exits 0 and that stderr holds nothing but memtrail run's summary. */
static void py_run(const mt_python_t *py, const char *script, const py_opts_t *o, mt_run_t *run)
{
    const char *argv[16], *env[16];
    size_t a = 0, e = 0;
    char *pp = NULL;
    argv[a++] = py->path;
    for (size_t i = 0; o != NULL && o->py_args != NULL && o->py_args[i] != NULL; i++)
        argv[a++] = o->py_args[i];
    argv[a++] = script;
    argv[a] = NULL;
    /* No bytecode caches next to the sources or the extension. */
    env[e++] = "PYTHONDONTWRITEBYTECODE=1";
    if (o != NULL && o->pythonpath != NULL) {
        cr_assert(asprintf(&pp, "PYTHONPATH=%s", o->pythonpath) > 0);
        env[e++] = pp;
    }
    for (size_t i = 0; o != NULL && o->env != NULL && o->env[i] != NULL; i++)
        env[e++] = o->env[i];
    env[e] = NULL;

    int rc = run_traced_capture(mt_dir, o != NULL ? o->mt_opts : NULL, argv, env, run);
    cr_assert_eq(rc, 0, "cannot run %s %s under memtrail: %s", py->path, script, strerror(-rc));
    cr_assert(WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0,
              "%s %s under memtrail: wait status %#x\nstdout:\n%s\nstderr:\n%s", py->path,
              script, run->status, run->out, run->err);
    char *rest = mt_strip_run_summary(run->err, mt_dir);
    cr_expect_str_eq(rest, "", "%s %s: unexpected stderr:\n%s", py->path, script, rest);
    free(rest);
    free(pp);
}

/* The snapshot whose path the script printed on the line "SNAP <label> PATH"
 * (label NULL: "SNAP PATH"); checks it is an api snapshot with that label. */
static mta_snapshot_t *py_snap(const mt_run_t *run, const char *label, const char *want_label)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "SNAP %s%s", label != NULL ? label : "",
             label != NULL ? " " : "");
    char *path = line_after(run->out, prefix);
    cr_assert_not_null(path, "no \"%s\" line in the output:\n%s", prefix, run->out);
    cr_assert_eq(strncmp(path, mt_dir, strlen(mt_dir)), 0,
                 "memtrail.snapshot() returned %s, not in %s", path, mt_dir);
    mta_snapshot_t *snap = mt_load(path);
    cr_expect_eq(snap->meta.trigger, MTSNAP_TRIGGER_API, "%s: trigger %u, want api", path,
                 snap->meta.trigger);
    cr_expect_str_eq(snap->label, want_label, "%s: label \"%s\"", path, snap->label);
    free(path);
    return snap;
}

/* ---- figures per Python line --------------------------------------------- */

/* The innermost Python frame of a stack, with its depth, or NULL. */
static const mta_frame_t *py_first(const mta_snapshot_t *snap, uint32_t stack, uint32_t *depth)
{
    const mta_stack_t *s = &snap->stacks[stack];
    for (uint32_t d = 0; d < s->depth; d++) {
        const mta_frame_t *f = &snap->frames[s->frames[d]];
        if (f->kind == MTSNAP_FRAME_PYTHON) {
            if (depth != NULL)
                *depth = d;
            return f;
        }
    }
    return NULL;
}

static int frame_at_line(const mta_frame_t *f, const char *file, unsigned line)
{
    return f != NULL && f->kind == MTSNAP_FRAME_PYTHON && f->line == line &&
           strcmp(f->file, file) == 0;
}

#define PY_NDOM 4   /* native, RAW, MEM, OBJ; [PY_NDOM] = any other domain */

typedef struct py_fig {
    uint64_t bytes, blocks;
    uint64_t dom_bytes[PY_NDOM + 1], dom_blocks[PY_NDOM + 1];
} py_fig_t;

/* Live blocks whose stack's innermost frame (innermost: frame 0; otherwise
 * the innermost Python frame) is file:line, by domain. */
static py_fig_t py_line(const mta_snapshot_t *snap, const char *file, unsigned line,
                        int innermost)
{
    py_fig_t fig;
    memset(&fig, 0, sizeof(fig));
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_stack_t *s = &snap->stacks[b->stack];
        const mta_frame_t *f = innermost ? (s->depth > 0 ? &snap->frames[s->frames[0]] : NULL)
                                         : py_first(snap, b->stack, NULL);
        if (!frame_at_line(f, file, line))
            continue;
        unsigned d = b->domain < PY_NDOM ? b->domain : PY_NDOM;
        fig.bytes += b->size;
        fig.blocks++;
        fig.dom_bytes[d] += b->size;
        fig.dom_blocks[d]++;
    }
    return fig;
}

/* The expected frames of a site: function of the innermost frame (3.11+ and
 * before: co_qualname / co_name) and the next frame out. */
typedef struct py_site {
    const char *name;
    const char *func_qual, *func_name;   /* innermost frame */
    const char *caller;                  /* next frame out */
    const char *caller_marker;           /* its line, e.g. "CALL:main" */
} py_site_t;

static const py_site_t *find_site(const py_site_t *sites, const char *name)
{
    for (const py_site_t *s = sites; s != NULL && s->name != NULL; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* Checks the frames of every stack with live blocks at file:line. */
static void check_site_frames(const mta_snapshot_t *snap, const mt_python_t *py,
                              const char *file, const char *relpath, unsigned line,
                              const py_site_t *site)
{
    const char *func = py->minor >= 11 ? site->func_qual : site->func_name;
    unsigned caller_line = py_marker(relpath, site->caller_marker);
    size_t nstacks = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        const mtsnap_stack_stat_t *st = &snap->stats[i];
        const mta_stack_t *s = &snap->stacks[st->stack];
        if (st->live_blocks == 0 || s->depth == 0 ||
            !frame_at_line(&snap->frames[s->frames[0]], file, line))
            continue;
        nstacks++;
        const mta_frame_t *f0 = &snap->frames[s->frames[0]];
        cr_expect_str_eq(f0->function, func, "%s: %s:%u: innermost function \"%s\", want \"%s\"",
                         snap->path, file, line, f0->function, func);
        cr_assert_geq(s->depth, 2, "%s: stack at %s:%u has one frame", snap->path, file, line);
        const mta_frame_t *f1 = &snap->frames[s->frames[1]];
        cr_expect_eq(f1->kind, MTSNAP_FRAME_PYTHON);
        cr_expect_str_eq(f1->function, site->caller, "%s: %s:%u: caller \"%s\", want \"%s\"",
                         snap->path, file, line, f1->function, site->caller);
        cr_expect_str_eq(f1->file, file, "%s: caller's file", snap->path);
        cr_expect_eq(f1->line, caller_line, "%s: %s:%u: caller's line %u, want %u", snap->path,
                     file, line, f1->line, caller_line);
        /* Without --native a stack is Python frames only, outermost the
         * script's module (or the threading module's bootstrap). */
        for (uint32_t d = 0; d < s->depth; d++)
            cr_expect_eq(snap->frames[s->frames[d]].kind, MTSNAP_FRAME_PYTHON,
                         "%s: frame %u of the stack at %s:%u is native", snap->path, d, file,
                         line);
    }
    cr_expect_geq(nstacks, 1, "%s: no stack at %s:%u", snap->path, file, line);
}

/* Every "SITE name bytes blocks mem" line of the output against the snapshot;
 * sites[] gives the frames expected (NULL: frames not checked). Returns the
 * number of sites checked. */
static size_t check_sites(const mta_snapshot_t *snap, const mt_python_t *py, const char *out,
                          const char *relpath, const char *file, const py_site_t *sites)
{
    size_t n = 0;
    for (const char *p = strstr(out, "SITE "); p != NULL; p = strstr(p + 1, "\nSITE ")) {
        if (*p == '\n')
            p++;
        char name[64];
        unsigned long long bytes, blocks, mem;
        cr_assert_eq(sscanf(p, "SITE %63s %llu %llu %llu", name, &bytes, &blocks, &mem), 4,
                     "bad SITE line in:\n%s", out);
        char marker[80];
        snprintf(marker, sizeof(marker), "SITE:%s", name);
        unsigned line = py_marker(relpath, marker);
        py_fig_t fig = py_line(snap, file, line, 1);
        cr_expect_eq(fig.bytes, bytes, "%s: site %s (%s:%u): %llu live bytes, want %llu",
                     snap->path, name, relpath, line, (unsigned long long)fig.bytes, bytes);
        cr_expect_eq(fig.blocks, blocks, "%s: site %s (%s:%u): %llu live blocks, want %llu",
                     snap->path, name, relpath, line, (unsigned long long)fig.blocks, blocks);
        cr_expect_eq(fig.dom_bytes[MTSNAP_DOMAIN_PY_MEM], mem,
                     "%s: site %s: %llu bytes in the MEM domain, want %llu", snap->path, name,
                     (unsigned long long)fig.dom_bytes[MTSNAP_DOMAIN_PY_MEM], mem);
        cr_expect_eq(fig.dom_bytes[MTSNAP_DOMAIN_PY_OBJ], bytes - mem,
                     "%s: site %s: %llu bytes in the OBJ domain, want %llu", snap->path, name,
                     (unsigned long long)fig.dom_bytes[MTSNAP_DOMAIN_PY_OBJ], bytes - mem);
        const py_site_t *site = find_site(sites, name);
        if (site != NULL)
            check_site_frames(snap, py, file, relpath, line, site);
        n++;
    }
    return n;
}

/* Exactly one snapshot of `trigger` in mt_dir (loaded). */
static mta_snapshot_t *py_one(const char *trigger)
{
    return mt_load_one(mt_dir, 0, trigger);
}

/* ---- a. sites of known size; d. PYTHONMALLOC=malloc; f. -X dev ------------ */

#define SITES_PY "tests/python/alloc_sites.py"
static const py_site_t alloc_sites[] = {
    {"bytes_big", "main", "main", "<module>", "CALL:main"},
    {"bytes_small", "main", "main", "<module>", "CALL:main"},
    {"bytearray", "main", "main", "<module>", "CALL:main"},
    {"str_ascii", "main", "main", "<module>", "CALL:main"},
    {"str_wide", "main", "main", "<module>", "CALL:main"},
    {"tuple", "main", "main", "<module>", "CALL:main"},
    {"slots", "main", "main", "<module>", "CALL:main"},
    {"set", "main", "main", "<module>", "CALL:main"},
    {NULL, NULL, NULL, NULL, NULL},
};

static void run_sites(const mt_python_t *py, const py_opts_t *o)
{
    char *script = py_script(SITES_PY);
    mt_run_t run;
    py_run(py, script, o, &run);
    mta_snapshot_t *snap = py_snap(&run, NULL, "sites");
    size_t n = check_sites(snap, py, run.out, SITES_PY, script, alloc_sites);
    cr_expect_eq(n, 8, "%zu SITE lines in the output, want 8:\n%s", n, run.out);
    /* The exit and final snapshots are written too. */
    mta_snapshot_free(py_one("exit"));
    mta_snapshot_free(py_one("final"));
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

static void test_sites(const mt_python_t *py)
{
    run_sites(py, NULL);
}

/* CPython's allocators become malloc-based (all three domains), but are still
 * called through the domains: the same figures, the same domains, nothing
 * counted twice by memtrail's malloc hooks underneath. */
static void test_sites_pymalloc_off(const mt_python_t *py)
{
    static const char *const env[] = {"PYTHONMALLOC=malloc", NULL};
    py_opts_t o = {.env = env};
    run_sites(py, &o);
}

/* Development mode installs the debug hooks (which pad every block) during
 * pre-initialization; memtrail rewraps on top of them and records the sizes
 * asked for, so the figures do not change. */
static void test_sites_devmode(const mt_python_t *py)
{
    static const char *const args[] = {"-X", "dev", NULL};
    py_opts_t o = {.py_args = args};
    run_sites(py, &o);
}

MT_PY_TESTS(python, sites, test_sites, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)
MT_PY_TESTS(python, sites_pythonmalloc_malloc, test_sites_pymalloc_off, .init = mt_setup,
            .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)
MT_PY_TESTS(python, sites_x_dev, test_sites_devmode, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- b. threads --------------------------------------------------------------- */

#define THREADS_PY "tests/python/threads.py"
static const py_site_t thread_sites[] = {
    {"t0", "alloc0", "alloc0", "worker", "CALL:worker"},
    {"t1", "alloc1", "alloc1", "worker", "CALL:worker"},
    {"t2", "alloc2", "alloc2", "worker", "CALL:worker"},
    {"t3", "alloc3", "alloc3", "worker", "CALL:worker"},
    {NULL, NULL, NULL, NULL, NULL},
};

static void test_threads(const mt_python_t *py)
{
    char *script = py_script(THREADS_PY);
    mt_run_t run;
    py_run(py, script, NULL, &run);
    mta_snapshot_t *snap = py_snap(&run, NULL, "threads");
    size_t n = check_sites(snap, py, run.out, THREADS_PY, script, thread_sites);
    cr_expect_eq(n, 4, "%zu SITE lines, want 4:\n%s", n, run.out);
    /* A worker's stack is its own thread's: it never holds the main
     * thread's frames (main, <module>) but threading's bootstrap. */
    unsigned main_line = py_marker(THREADS_PY, "CALL:main");
    for (int t = 0; t < 4; t++) {
        char marker[16];
        snprintf(marker, sizeof(marker), "SITE:t%d", t);
        unsigned line = py_marker(THREADS_PY, marker);
        for (uint32_t i = 0; i < snap->nstats; i++) {
            const mta_stack_t *s = &snap->stacks[snap->stats[i].stack];
            if (s->depth == 0 || !frame_at_line(&snap->frames[s->frames[0]], script, line))
                continue;
            const mta_frame_t *outer = &snap->frames[s->frames[s->depth - 1]];
            cr_expect(strstr(outer->file, "threading.py") != NULL,
                      "%s: thread %d: outermost frame %s (%s:%u), want threading's bootstrap",
                      snap->path, t, outer->function, outer->file, outer->line);
            for (uint32_t d = 0; d < s->depth; d++) {
                const mta_frame_t *f = &snap->frames[s->frames[d]];
                cr_expect(!frame_at_line(f, script, main_line) && strcmp(f->function, "main"),
                          "%s: thread %d's stack holds the main thread's frame %s:%u",
                          snap->path, t, f->file, f->line);
            }
        }
    }
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, threads, test_threads, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- c. a method and a generator ------------------------------------------ */

#define GENCLASS_PY "tests/python/genclass.py"
static const py_site_t genclass_sites[] = {
    {"build", "Box.build", "build", "main", "CALL:build"},
    {"gen", "gen", "gen", "main", "CALL:gen"},
    {NULL, NULL, NULL, NULL, NULL},
};

static void test_genclass(const mt_python_t *py)
{
    char *script = py_script(GENCLASS_PY);
    mt_run_t run;
    py_run(py, script, NULL, &run);
    mta_snapshot_t *snap = py_snap(&run, NULL, "genclass");
    size_t n = check_sites(snap, py, run.out, GENCLASS_PY, script, genclass_sites);
    cr_expect_eq(n, 2, "%zu SITE lines, want 2:\n%s", n, run.out);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, method_and_generator, test_genclass, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- e. tracemalloc started and stopped ------------------------------------- */

#define TM_PY "tests/python/tm_interplay.py"

/* Blocks of another domain than OBJ at a tracemalloc site can only be
 * tracemalloc's own bookkeeping, made while that line ran: its trace_t and
 * traceback_t (RAW) and its hash table entries (malloc). memtrail saw them
 * while its wrappers were under tracemalloc's, right after
 * tracemalloc.start(); it now re-wraps on top when tracemalloc sets its
 * hooks (where libpython calls PyMem_SetAllocator through its PLT; else at
 * the first allocation it records under them), and passes them through
 * (tracemalloc_line_* checks a line's figures exactly). CPython up to 3.12.4 never frees a traceback_t
 * (gh-121390: the tracebacks table has the wrong destructor), so after
 * tracemalloc.stop() one 24-byte RAW block (a traceback of one frame) may
 * stay at the line that ran while tracing. */
static void check_tm_extra(const mta_snapshot_t *snap, const mt_python_t *py, const char *site,
                           const py_fig_t *fig, int stopped)
{
    uint64_t raw_b = fig->dom_bytes[MTSNAP_DOMAIN_PY_RAW];
    uint64_t raw_n = fig->dom_blocks[MTSNAP_DOMAIN_PY_RAW];
    cr_expect_eq(fig->dom_blocks[MTSNAP_DOMAIN_PY_MEM] + fig->dom_blocks[PY_NDOM], 0,
                 "%s: site %s has MEM or extension-domain blocks", snap->path, site);
    if (!stopped)
        return;
    int leaky = py->minor >= 9 && py->minor <= 12;   /* 3.12.1 here: before the fix */
    cr_expect_eq(fig->dom_blocks[MTSNAP_DOMAIN_NATIVE], 0,
                 "%s: site %s: %llu native blocks left after tracemalloc.stop()", snap->path,
                 site, (unsigned long long)fig->dom_blocks[MTSNAP_DOMAIN_NATIVE]);
    cr_expect(raw_n == 0 || (leaky && raw_n == 1 && raw_b == 24),
              "%s: site %s: %llu RAW blocks (%llu bytes) left after tracemalloc.stop()",
              snap->path, site, (unsigned long long)raw_n, (unsigned long long)raw_b);
}

static void test_tracemalloc(const mt_python_t *py)
{
    char *script = py_script(TM_PY);
    mt_run_t run;
    py_run(py, script, NULL, &run);
    cr_expect(strstr(run.out, "TRACED 1\n") != NULL,
              "tracemalloc did not trace the object made while it ran:\n%s", run.out);
    mta_snapshot_t *during = py_snap(&run, "during", "during");
    mta_snapshot_t *after = py_snap(&run, "after", "after");
    static const char *const names[] = {"before", "during", "after"};
    for (int i = 0; i < 3; i++) {
        char marker[32], word[32];
        snprintf(marker, sizeof(marker), "SITE:%s", names[i]);
        snprintf(word, sizeof(word), "SITE %s", names[i]);
        unsigned line = py_marker(TM_PY, marker);
        long want = mt_number_after(run.out, word);
        cr_assert_gt(want, 0, "no \"%s\" line:\n%s", word, run.out);
        for (int k = 0; k < 2; k++) {
            const mta_snapshot_t *snap = k == 0 ? during : after;
            if (k == 0 && i == 2)
                continue;   /* `after` runs after the first snapshot */
            py_fig_t fig = py_line(snap, script, line, 1);
            cr_expect_eq(fig.dom_bytes[MTSNAP_DOMAIN_PY_OBJ], (uint64_t)want,
                         "%s: site %s: %llu OBJ bytes, want %ld", snap->path, names[i],
                         (unsigned long long)fig.dom_bytes[MTSNAP_DOMAIN_PY_OBJ], want);
            cr_expect_eq(fig.dom_blocks[MTSNAP_DOMAIN_PY_OBJ], 1,
                         "%s: site %s: %llu OBJ blocks, want 1", snap->path, names[i],
                         (unsigned long long)fig.dom_blocks[MTSNAP_DOMAIN_PY_OBJ]);
            if (i == 0)   /* before tracemalloc: nothing else */
                cr_expect_eq(fig.blocks, 1, "%s: site before: %llu blocks", snap->path,
                             (unsigned long long)fig.blocks);
            else
                check_tm_extra(snap, py, names[i], &fig, k == 1);
        }
    }
    mta_snapshot_free(during);
    mta_snapshot_free(after);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, tracemalloc_start_stop, test_tracemalloc, .init = mt_setup,
            .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)

/* ---- g. the exit snapshot at the start of finalization ---------------------- */

#define EXIT_PY "tests/python/exit_global.py"

static void test_exit(const mt_python_t *py)
{
    char *script = py_script(EXIT_PY);
    mt_run_t run;
    py_run(py, script, NULL, &run);
    mt_snaplist_t all;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, NULL, &all), 0);
    cr_expect_eq(all.n, 2, "%zu snapshots, want exit and final", all.n);
    mt_snaplist_free(&all);

    unsigned line = py_marker(EXIT_PY, "SITE:big");
    long want = mt_number_after(run.out, "SITE big");
    cr_assert_gt(want, 0, "no SITE line:\n%s", run.out);
    /* The exit snapshot is taken from an atexit callback: the module's
     * globals are still alive. */
    mta_snapshot_t *ex = py_one("exit");
    mt_check_meta(ex, (pid_t)ex->meta.pid, run.pid, MTSNAP_TRIGGER_EXIT, 1, "");
    py_fig_t fig = py_line(ex, script, line, 1);
    cr_expect_eq(fig.bytes, (uint64_t)want, "%s: big: %llu live bytes at exit, want %ld",
                 ex->path, (unsigned long long)fig.bytes, want);
    cr_expect_eq(fig.blocks, 1);
    cr_expect_eq(fig.dom_blocks[MTSNAP_DOMAIN_PY_OBJ], 1);
    /* The final snapshot comes after the interpreter's teardown, which
     * cleared the module. */
    mta_snapshot_t *fin = py_one("final");
    mt_check_meta(fin, (pid_t)ex->meta.pid, run.pid, MTSNAP_TRIGGER_FINAL, 2, "");
    cr_expect_gt(fin->meta.time_ns, 0);
    cr_expect_geq(fin->meta.counter, ex->meta.counter);
    fig = py_line(fin, script, line, 1);
    cr_expect_eq(fig.bytes, 0, "%s: big still live after teardown (%llu bytes)", fin->path,
                 (unsigned long long)fig.bytes);
    mta_snapshot_free(ex);
    mta_snapshot_free(fin);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, exit_snapshot, test_exit, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* Runs PYTHON SCRIPT bare, then under memtrail; expects the same wait
 * status and the same stdout (byte for byte). */
static void py_bare_and_traced(const mt_python_t *py, const char *script, mt_run_t *bare,
                               mt_run_t *traced)
{
    const char *argv[] = {py->path, script, NULL};
    cr_assert_eq(run_bare_capture(argv, bare), 0);
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, traced), 0);
    cr_expect_eq(traced->status, bare->status, "%s: wait status %#x, bare %#x", py->tag,
                 traced->status, bare->status);
    cr_expect(traced->outlen == bare->outlen && memcmp(traced->out, bare->out, bare->outlen) == 0,
              "%s: stdout differs:\n--- bare\n%s--- traced\n%s", py->tag, bare->out,
              traced->out);
}

/* ---- h. sys._debugmallocstats keeps pymalloc's section ---------------------- */

#define DMS_PY "tests/python/debugmallocstats.py"

/* The labels of sys._debugmallocstats()'s figure lines ("# arenas allocated
 * total", "Small block threshold", "Total": the text before '=' of each
 * line that does not start with a number), one per line, in order. */
static char *dms_labels(const char *err)
{
    size_t cap = strlen(err) + 1, n = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    for (const char *l = err; *l != '\0';) {
        const char *end = strchr(l, '\n'), *eq = strchr(l, '=');
        if (end == NULL)
            end = l + strlen(l);
        const char *s = l;
        while (s < end && *s == ' ')
            s++;
        if (eq != NULL && eq < end && s < eq && !isdigit((unsigned char)*s)) {
            const char *e = eq;
            while (e > s && e[-1] == ' ')
                e--;
            memcpy(out + n, s, (size_t)(e - s));
            n += (size_t)(e - s);
            out[n++] = '\n';
        }
        l = *end != '\0' ? end + 1 : end;
    }
    out[n] = '\0';
    return out;
}

static void test_debugmallocstats(const mt_python_t *py)
{
    char *script = py_script(DMS_PY);
    mt_run_t bare, traced;
    py_bare_and_traced(py, script, &bare, &traced);
    cr_expect_str_eq(bare.out, "TypeError\n_debugmallocstats sys\n");
    char *want = dms_labels(bare.err), *got = dms_labels(traced.err);
    /* Every interpreter here is built with pymalloc. */
    cr_expect(strstr(want, "Small block threshold\n") != NULL, "bare:\n%s", bare.err);
    cr_expect_str_eq(got, want, "%s: sections differ:\n--- bare\n%s--- traced\n%s", py->tag,
                     want, got);
    free(want);
    free(got);
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(script);
}

MT_PY_TESTS(python, debugmallocstats, test_debugmallocstats, .init = mt_setup,
            .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)

/* ---- h2. the tracer's module dies in finalization ------------------------------ */

#define MODLIFE_PY "tests/python/module_lifetime.py"

/* Bare, the script only says "done"; traced, its weak reference to the
 * tracer's module `_memtrail` sees the module freed when the interpreter
 * finalizes, and says so on stderr (memtrail held a reference to it until
 * the end: no line). */
static void test_module_lifetime(const mt_python_t *py)
{
    char *script = py_script(MODLIFE_PY);
    mt_run_t bare, traced;
    py_bare_and_traced(py, script, &bare, &traced);
    cr_expect_str_eq(bare.out, "done\n");
    cr_expect_str_eq(bare.err, "");
    cr_expect(strstr(traced.err, "_memtrail freed\n") != NULL, "%s traced, stderr: %s", py->tag,
              traced.err);
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(script);
}

MT_PY_TESTS(python, tracer_module_dies_in_finalization, test_module_lifetime, .init = mt_setup,
            .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)

/* ---- i. os.fork() sees no thread of memtrail's ------------------------------- */

#define FORK_THREADS_PY "tests/python/fork_threads.py"

/* CPython 3.12+ warns at os.fork() when /proc/self/stat counts more than one
 * thread (CPython's test_main_thread_after_fork): traced as bare, a
 * single-threaded program gets no warning, one with a second thread gets
 * it; the program's own fopen of the file counts its threads only. */
static void test_fork_threads(const mt_python_t *py)
{
    char *script = py_script(FORK_THREADS_PY);
    mt_run_t bare, traced;
    py_bare_and_traced(py, script, &bare, &traced);
    cr_expect(strstr(bare.out, "single-threaded 0\n") != NULL, "bare:\n%s", bare.out);
    cr_expect(strstr(bare.out, "threads 1\n") != NULL, "bare:\n%s", bare.out);
    char *rest = mt_strip_run_summary(traced.err, mt_dir);
    cr_expect_str_eq(rest, bare.err, "%s: stderr differs:\n--- bare\n%s--- traced\n%s",
                     py->tag, bare.err, rest);
    free(rest);
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(script);
}

MT_PY_TESTS(python, fork_sees_no_memtrail_thread, test_fork_threads, .init = mt_setup,
            .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)

/* ---- j. Pool.terminate(): workers ended by SIGTERM leave exit snapshots ----- */

#define POOL_PY "tests/python/pool_terminate.py"
#define POOL_WORKERS 2
#define POOL_TASKS 4
#define POOL_BLOCK 123457   /* bytearray(123456): its buffer has room for a NUL */

static void test_pool_terminate(const mt_python_t *py)
{
    char *script = py_script(POOL_PY);
    unsigned line = py_marker(POOL_PY, "SITE:kept");
    mt_run_t run;
    py_run(py, script, NULL, &run);
    cr_expect_str_eq(run.out, "SIGTERM is SIG_DFL True\nTASKS 4\n");
    mt_snaplist_t all;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, "exit", &all), 0);
    size_t workers = 0;
    uint64_t bytes = 0, blocks = 0;
    for (size_t i = 0; i < all.n; i++) {
        mta_snapshot_t *snap = mt_load(all.paths[i]);
        if (snap->meta.ppid != (uint64_t)run.pid) {   /* a worker: the child of a child */
            mt_check_meta(snap, (pid_t)snap->meta.pid, (pid_t)snap->meta.ppid,
                          MTSNAP_TRIGGER_EXIT, 1, "SIGTERM");
            for (uint64_t k = 0; k < snap->nblocks; k++) {   /* the bytearrays' buffers */
                const mtsnap_block_t *b = &snap->blocks[k];
                const mta_stack_t *st = &snap->stacks[b->stack];
                if (b->size == POOL_BLOCK && st->depth > 0 &&
                    frame_at_line(&snap->frames[st->frames[0]], script, line)) {
                    bytes += b->size;
                    blocks++;
                }
            }
            workers++;
        }
        mta_snapshot_free(snap);
    }
    cr_expect_eq(workers, POOL_WORKERS, "%zu worker exit snapshots, want %d", workers,
                 POOL_WORKERS);
    cr_expect_eq(blocks, POOL_TASKS, "%llu blocks kept by the workers, want %d",
                 (unsigned long long)blocks, POOL_TASKS);
    cr_expect_eq(bytes, (uint64_t)POOL_TASKS * POOL_BLOCK);
    mt_snaplist_free(&all);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, pool_terminate_leaves_worker_snapshots, test_pool_terminate,
            .init = mt_setup, .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)

/* ---- f. a line's figures with tracemalloc on and off ----------------------------- */

#define TM_LINE_PY "tests/python/tm_line.py"

/* The SITE line of tests/python/tm_line.py, in its snapshot, run with
 * py_args and env. */
static py_fig_t tm_line_fig(const mt_python_t *py, const char *const *py_args,
                            const char *const *env, int tracing)
{
    char *script = py_script(TM_LINE_PY);
    py_opts_t o = {.py_args = py_args, .env = env};
    mt_run_t run;
    py_run(py, script, &o, &run);
    char want[16];
    snprintf(want, sizeof(want), "TRACING %d\n", tracing);
    cr_expect(strstr(run.out, want) != NULL, "%s: want \"%s\":\n%s", py->tag, want, run.out);
    mta_snapshot_t *snap = py_snap(&run, "line", "line");
    py_fig_t fig = py_line(snap, script, py_marker(TM_LINE_PY, "SITE:line"), 0);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
    return fig;
}

/* tracemalloc's bookkeeping for the blocks it traces (its trace_t and
 * traceback_t, RAW; its hash tables' entries) is made by tracemalloc's
 * hooks, which call the allocators they found under them: memtrail's
 * wrappers. Right after tracemalloc.start() its hooks are on top of
 * memtrail's, and that bookkeeping was recorded at the program's line:
 * 17,968 blocks at the line instead of 6,002 (3.12). memtrail now puts its
 * wrappers back on top as soon as tracemalloc sets its hooks
 * (PyMem_SetAllocator's GOT slot, hook/pyhooks.c), and the bookkeeping
 * runs under memtrail's top wrapper, untraced: the line's figures, every
 * domain, are those of a run without tracemalloc, whether it was started
 * by tracemalloc.start() or -X tracemalloc. Where libpython's calls to
 * PyMem_SetAllocator are bound at link time (Debian's static python3.11),
 * memtrail re-wraps at the first allocation it records from under
 * tracemalloc's hooks, and some of tracemalloc's bookkeeping is made
 * outside any allocator call (moving a reused object's trace, from
 * _Py_NewReference): there the MEM and OBJ domains are equal and at most 3
 * RAW or native blocks (at most 100 bytes) are tracemalloc's at the line
 * (measured: 88 B in 3 after tracemalloc.start(), 56 B in 2 with
 * -X tracemalloc). */
static void test_tracemalloc_line(const mt_python_t *py)
{
    static const char *const env_off[] = {"TM_MODE=off", NULL};
    static const char *const env_start[] = {"TM_MODE=start", NULL};
    static const char *const x_tm[] = {"-X", "tracemalloc", NULL};
    py_fig_t off = tm_line_fig(py, NULL, env_off, 0);
    cr_expect_geq(off.blocks, 5000, "%s: %llu blocks at the line without tracemalloc", py->tag,
                  (unsigned long long)off.blocks);
    const char *const modes[] = {"tracemalloc.start()", "-X tracemalloc"};
    for (int m = 0; m < 2; m++) {
        py_fig_t on = m == 0 ? tm_line_fig(py, NULL, env_start, 1)
                             : tm_line_fig(py, x_tm, env_off, 1);
        for (unsigned d = 0; d <= PY_NDOM; d++)
            cr_log_info("%s %s: domain %u: %llu bytes in %llu blocks, off %llu in %llu", py->tag,
                        modes[m], d, (unsigned long long)on.dom_bytes[d],
                        (unsigned long long)on.dom_blocks[d], (unsigned long long)off.dom_bytes[d],
                        (unsigned long long)off.dom_blocks[d]);
        if (py->bound) {
            /* tracemalloc's bookkeeping of the line's first block: RAW and
             * native (malloc'd hash table entries) blocks, no more than 3 */
            uint64_t xb = on.bytes - off.bytes, xn = on.blocks - off.blocks;
            cr_expect(on.bytes >= off.bytes && xn <= 3 && xb <= 100 &&
                          xb == on.dom_bytes[MTSNAP_DOMAIN_NATIVE] +
                                    on.dom_bytes[MTSNAP_DOMAIN_PY_RAW] -
                                    off.dom_bytes[MTSNAP_DOMAIN_NATIVE] -
                                    off.dom_bytes[MTSNAP_DOMAIN_PY_RAW],
                      "%s %s: %llu bytes in %llu blocks at the line, without tracemalloc %llu "
                      "in %llu", py->tag, modes[m], (unsigned long long)on.bytes,
                      (unsigned long long)on.blocks, (unsigned long long)off.bytes,
                      (unsigned long long)off.blocks);
        } else {
            cr_expect(on.bytes == off.bytes && on.blocks == off.blocks,
                      "%s %s: %llu bytes in %llu blocks at the line, without tracemalloc %llu "
                      "in %llu", py->tag, modes[m], (unsigned long long)on.bytes,
                      (unsigned long long)on.blocks, (unsigned long long)off.bytes,
                      (unsigned long long)off.blocks);
        }
        for (unsigned d = MTSNAP_DOMAIN_PY_MEM; d <= MTSNAP_DOMAIN_PY_OBJ; d++)
            cr_expect(on.dom_bytes[d] == off.dom_bytes[d] && on.dom_blocks[d] == off.dom_blocks[d],
                      "%s %s: domain %u: %llu bytes in %llu blocks, without tracemalloc %llu in "
                      "%llu", py->tag, modes[m], d, (unsigned long long)on.dom_bytes[d],
                      (unsigned long long)on.dom_blocks[d], (unsigned long long)off.dom_bytes[d],
                      (unsigned long long)off.dom_blocks[d]);
    }
}

MT_PY_TESTS(python, tracemalloc_line, test_tracemalloc_line, .init = mt_setup,
            .fini = mt_teardown, .timeout = PY_TEST_TIMEOUT)

/* ---- f2. lines looked up out of order, and through an equal code object ----------- */

#define LINE_ORDER_PY "tests/python/line_order.py"
#define LINE_ORDER_SITES 12

/* Each SITE:k line of tests/python/line_order.py holds exactly the two
 * bytes objects of 100,000 + 1,000 k bytes made there: one by each of two
 * equal code objects (the second made after the first died, sharing its
 * id), their lines looked up back and forth in the line table. */
static void test_line_order(const mt_python_t *py)
{
    char *script = py_script(LINE_ORDER_PY);
    mt_run_t run;
    py_run(py, script, NULL, &run);
    mta_snapshot_t *snap = py_snap(&run, "lines", "lines");
    for (unsigned k = 0; k < LINE_ORDER_SITES; k++) {
        char marker[16];
        snprintf(marker, sizeof(marker), "SITE:%u", k);
        unsigned line = py_marker(LINE_ORDER_PY, marker);
        py_fig_t fig = py_line(snap, script, line, 0);
        uint64_t size = 100000 + 1000 * (uint64_t)k;   /* and the object's header */
        cr_expect(fig.blocks == 2 && fig.bytes >= 2 * size && fig.bytes < 2 * (size + 64),
                  "%s: line %u (SITE:%u): %llu bytes in %llu blocks, want 2 of %llu bytes and "
                  "a header", py->tag, line, k, (unsigned long long)fig.bytes,
                  (unsigned long long)fig.blocks, (unsigned long long)size);
    }
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, line_order, test_line_order, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- 2. parity with tracemalloc -------------------------------------------------- */

#define PARITY_PY "tests/python/parity.py"
#define PARITY_LINES 20
#define PARITY_PERCENT 2

/* The script prints tracemalloc's top 20 lines (tracemalloc.py and the
 * frozen import machinery filtered out). For each, memtrail's live bytes of
 * the stacks whose innermost Python frame is that file:line must agree
 * within 2%. memtrail's side counts the MEM and OBJ domains: the workload
 * makes no RAW allocation of its own, and the blocks of other domains at
 * these lines are tracemalloc's bookkeeping (RAW trace_t/traceback_t, malloc'd
 * hash table entries), which tracemalloc does not count. An object taken
 * from a free list is at the line that reused it in both (memtrail: 3.9+
 * with a shared libpython; elsewhere it keeps its first line, well under 2%
 * per line here; the freelist_lines tests below check reuses exactly). */
static void test_parity(const mt_python_t *py)
{
    char *script = py_script(PARITY_PY);
    mt_run_t run;
    py_run(py, script, NULL, &run);
    mta_snapshot_t *snap = py_snap(&run, NULL, "parity");
    size_t n = 0, ours = 0;
    for (const char *p = strstr(run.out, "TM "); p != NULL; p = strstr(p + 1, "\nTM ")) {
        if (*p == '\n')
            p++;
        char key[PATH_MAX];
        unsigned long long tm_bytes, tm_blocks;
        cr_assert_eq(sscanf(p, "TM %4095s %llu %llu", key, &tm_bytes, &tm_blocks), 3,
                     "bad TM line in:\n%s", run.out);
        char *colon = strrchr(key, ':');
        cr_assert_not_null(colon, "bad TM key %s", key);
        *colon = '\0';
        unsigned line = (unsigned)strtoul(colon + 1, NULL, 10);
        py_fig_t fig = py_line(snap, key, line, 0);
        uint64_t mt_bytes = fig.dom_bytes[MTSNAP_DOMAIN_PY_MEM] + fig.dom_bytes[MTSNAP_DOMAIN_PY_OBJ];
        uint64_t diff = mt_bytes > tm_bytes ? mt_bytes - tm_bytes : tm_bytes - mt_bytes;
        cr_expect(diff * 100 <= tm_bytes * PARITY_PERCENT,
                  "%s: %s:%u: memtrail %llu bytes (%llu blocks), tracemalloc %llu bytes (%llu "
                  "blocks): %+.2f%%",
                  snap->path, key, line, (unsigned long long)mt_bytes,
                  (unsigned long long)(fig.dom_blocks[MTSNAP_DOMAIN_PY_MEM] +
                                       fig.dom_blocks[MTSNAP_DOMAIN_PY_OBJ]),
                  tm_bytes, tm_blocks, 100.0 * ((double)mt_bytes - (double)tm_bytes) / (double)tm_bytes);
        cr_log_info("%s %s:%u tracemalloc %llu memtrail %llu", py->tag, key, line, tm_bytes,
                    (unsigned long long)mt_bytes);
        ours += strcmp(key, script) == 0;
        n++;
    }
    cr_expect_eq(n, PARITY_LINES, "%zu TM lines, want %d:\n%s", n, PARITY_LINES, run.out);
    cr_expect_geq(ours, PARITY_LINES / 2, "only %zu of the top lines are the workload's", ours);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

MT_PY_TESTS(python, tracemalloc_parity, test_parity, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- 2b. objects reused from free lists, line by line with tracemalloc ---- */

#define FREELIST_PY "tests/python/freelist.py"
static const char *const freelist_markers[] = {
    "FL:churn_tuple", "FL:keep_tuple", "FL:churn_list", "FL:keep_list",
    "FL:churn_dict",  "FL:keep_dict",  "FL:churn_float", "FL:keep_float",
};
#define FREELIST_N (sizeof(freelist_markers) / sizeof(freelist_markers[0]))

/* tracemalloc's bytes and blocks at `line`, from the "TM line bytes blocks"
 * lines of a bare `freelist.py tracemalloc` run (0 when it has none). */
static void tm_line(const char *out, unsigned line, uint64_t *bytes, uint64_t *blocks)
{
    *bytes = *blocks = 0;
    for (const char *p = strstr(out, "TM "); p != NULL; p = strstr(p + 1, "\nTM ")) {
        unsigned l;
        unsigned long long b, n;
        if (*p == '\n')
            p++;
        cr_assert_eq(sscanf(p, "TM %u %llu %llu", &l, &b, &n), 3, "bad TM line in:\n%s", out);
        if (l == line) {
            *bytes = b;
            *blocks = n;
        }
    }
}

/* The script churns 2-tuples, lists, dicts and floats at one line each and
 * keeps fewer at another, every kept object taken from a free list. Run
 * bare with tracemalloc.start(25) (and so again under memtrail: the same
 * output), then under memtrail without tracemalloc: at every marked
 * line, memtrail's live bytes and blocks of the Python domains are
 * tracemalloc's, exactly (the kept objects at the keep lines, the ones still
 * on the free lists and the dicts' keys blocks at the churn lines). Where
 * memtrail cannot follow reuses (3.8, a libpython bound at link time) the
 * snapshot says so and the kept tuples keep their first allocation's line. */
static void test_freelist(const mt_python_t *py)
{
    char *script = py_script(FREELIST_PY);
    const char *argv[] = {py->path, script, "tracemalloc", NULL};
    mt_run_t bare, run;
    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_assert(WIFEXITED(bare.status) && WEXITSTATUS(bare.status) == 0,
              "%s %s tracemalloc: status %#x\n%s", py->path, script, bare.status, bare.err);
    /* tracemalloc under memtrail sees what it sees bare */
    mt_run_t tm;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &tm), 0);
    cr_expect(tm.status == bare.status && tm.outlen == bare.outlen &&
                  memcmp(tm.out, bare.out, bare.outlen) == 0,
              "%s: tracemalloc's figures under memtrail differ:\n--- bare\n%s--- traced\n%s",
              py->tag, bare.out, tm.out);
    mt_run_free(&tm);
    py_run(py, script, NULL, &run);
    mta_snapshot_t *snap = py_snap(&run, NULL, "freelist");
    int follows = py->minor >= 9 && !py->bound;
    cr_expect_eq(snap->meta.flags, follows ? 0u : MTSNAP_META_F_PY_NO_REUSE,
                 "%s: META.flags %#x", snap->path, snap->meta.flags);
    for (size_t i = 0; i < FREELIST_N; i++) {
        unsigned line = py_marker(FREELIST_PY, freelist_markers[i]);
        uint64_t tm_bytes, tm_blocks;
        tm_line(bare.out, line, &tm_bytes, &tm_blocks);
        py_fig_t fig = py_line(snap, script, line, 0);
        uint64_t bytes = 0, blocks = 0;
        for (unsigned d = MTSNAP_DOMAIN_PY_RAW; d <= MTSNAP_DOMAIN_PY_OBJ; d++) {
            bytes += fig.dom_bytes[d];
            blocks += fig.dom_blocks[d];
        }
        cr_log_info("%s %s line %u: tracemalloc %llu bytes %llu blocks, memtrail %llu %llu",
                    py->tag, freelist_markers[i], line, (unsigned long long)tm_bytes,
                    (unsigned long long)tm_blocks, (unsigned long long)bytes,
                    (unsigned long long)blocks);
        if (strncmp(freelist_markers[i], "FL:keep", 7) == 0)
            cr_expect_gt(tm_blocks, 0, "%s: tracemalloc has nothing at %s", py->tag,
                         freelist_markers[i]);
        if (follows) {
            cr_expect(bytes == tm_bytes && blocks == tm_blocks,
                      "%s: %s (line %u): memtrail %llu bytes in %llu blocks, tracemalloc %llu "
                      "in %llu", snap->path, freelist_markers[i], line,
                      (unsigned long long)bytes, (unsigned long long)blocks,
                      (unsigned long long)tm_bytes, (unsigned long long)tm_blocks);
        } else if (strcmp(freelist_markers[i], "FL:keep_tuple") == 0) {
            /* tracemalloc: the 1,000 tuples and the list's array; memtrail:
             * the array (the tuples keep the lines that first allocated them) */
            cr_expect_eq(tm_blocks, 1001, "%s: tracemalloc's kept tuples", py->tag);
            cr_expect_eq(blocks, 1, "%s: %s: %llu blocks at the tuples' keep line", py->tag,
                         snap->path, (unsigned long long)blocks);
        }
    }
    mta_snapshot_free(snap);
    mt_run_free(&run);
    mt_run_free(&bare);
    free(script);
}

MT_PY_TESTS(python, freelist_lines, test_freelist, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- 3. a C extension: PyMem, malloc, PyTraceMalloc_Track, no GIL ---------- */

#define EXT_PY "tests/python/ext_calls.py"
#define EXT_TRACK_DOMAIN 7u

/* Build tests/python/ext/mtext.c for this interpreter into mt_dir. */
static void build_ext(const mt_python_t *py)
{
    const char *const cflags[] = {"-fno-omit-frame-pointer", "-Wall", NULL};
    mt_build_py_ext(py->path, py->minor, "mtext", cflags);
}

/* The blocks of exactly `size` bytes whose stack has the native frame
 * `cfunc`: asserts there is one and returns it. */
static const mtsnap_block_t *ext_block(const mta_snapshot_t *snap, uint64_t size,
                                       const char *cfunc)
{
    const mtsnap_block_t *found = NULL;
    size_t n = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        if (b->size != size)
            continue;
        const mta_stack_t *s = &snap->stacks[b->stack];
        for (uint32_t d = 0; d < s->depth; d++) {
            const mta_frame_t *f = &snap->frames[s->frames[d]];
            if (f->kind == MTSNAP_FRAME_NATIVE && strcmp(f->function, cfunc) == 0) {
                found = b;
                n++;
                break;
            }
        }
    }
    cr_assert_eq(n, 1, "%s: %zu blocks of %llu bytes allocated in %s, want 1", snap->path, n,
                 (unsigned long long)size, cfunc);
    return found;
}

static int stack_has_python(const mta_snapshot_t *snap, uint32_t stack)
{
    return py_first(snap, stack, NULL) != NULL;
}

static void test_ext(const mt_python_t *py, int native)
{
    static const char *const nat_opts[] = {"--native", NULL};
    build_ext(py);
    char *script = py_script(EXT_PY);
    py_opts_t o = {.mt_opts = native ? nat_opts : NULL, .pythonpath = mt_dir};
    mt_run_t run;
    py_run(py, script, &o, &run);
    mta_snapshot_t *snap = py_snap(&run, "ext", "ext");
    unsigned main_line = py_marker(EXT_PY, "CALL:main");

    static const struct {
        const char *site, *cfunc;
        uint32_t domain;
    } sites[] = {
        {"pymem", "mtext_pymem_site", MTSNAP_DOMAIN_PY_MEM},
        {"cmalloc", "mtext_malloc_site", MTSNAP_DOMAIN_NATIVE},
        {"tracked", "mtext_tracked_site", MTSNAP_DOMAIN_EXT_BASE + EXT_TRACK_DOMAIN},
    };
    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
        char marker[32], word[32];
        snprintf(marker, sizeof(marker), "SITE:%s", sites[i].site);
        snprintf(word, sizeof(word), "SITE %s", sites[i].site);
        unsigned line = py_marker(EXT_PY, marker);
        long size = mt_number_after(run.out, word);
        cr_assert_gt(size, 0, "no \"%s\" line:\n%s", word, run.out);
        if (!native) {
            /* Python frames only: the calling line is the innermost frame. */
            py_fig_t fig = py_line(snap, script, line, 1);
            cr_expect_eq(fig.bytes, (uint64_t)size, "%s: site %s: %llu bytes, want %ld",
                         snap->path, sites[i].site, (unsigned long long)fig.bytes, size);
            cr_expect_eq(fig.blocks, 1, "%s: site %s: %llu blocks", snap->path, sites[i].site,
                         (unsigned long long)fig.blocks);
            unsigned d = sites[i].domain < PY_NDOM ? sites[i].domain : PY_NDOM;
            cr_expect_eq(fig.dom_blocks[d], 1, "%s: site %s: not in domain %u", snap->path,
                         sites[i].site, sites[i].domain);
            for (uint64_t k = 0; k < snap->nblocks; k++) {
                const mtsnap_block_t *b = &snap->blocks[k];
                const mta_stack_t *s = &snap->stacks[b->stack];
                if (s->depth > 0 && frame_at_line(&snap->frames[s->frames[0]], script, line))
                    cr_expect_eq(b->domain, sites[i].domain, "%s: site %s: domain %u, want %u",
                                 snap->path, sites[i].site, b->domain, sites[i].domain);
            }
            continue;
        }
        /* --native: the C function, then further out the calling line. */
        const mtsnap_block_t *b = ext_block(snap, (uint64_t)size, sites[i].cfunc);
        cr_expect_eq(b->domain, sites[i].domain, "%s: %s's block: domain %u, want %u",
                     snap->path, sites[i].cfunc, b->domain, sites[i].domain);
        const mta_stack_t *s = &snap->stacks[b->stack];
        uint32_t cdepth = s->depth, pydepth = 0;
        for (uint32_t d = 0; d < s->depth && cdepth == s->depth; d++)
            if (strcmp(snap->frames[s->frames[d]].function, sites[i].cfunc) == 0)
                cdepth = d;
        const mta_frame_t *pf = py_first(snap, b->stack, &pydepth);
        cr_assert_not_null(pf, "%s: the stack of %s's block has no Python frame", snap->path,
                           sites[i].cfunc);
        cr_expect_lt(cdepth, pydepth, "%s: %s (frame %u) is not inside the Python frames "
                     "(first at %u)", snap->path, sites[i].cfunc, cdepth, pydepth);
        cr_expect(frame_at_line(pf, script, line),
                  "%s: innermost Python frame of %s's block is %s (%s:%u), want %s:%u",
                  snap->path, sites[i].cfunc, pf->function, pf->file, pf->line, script, line);
        cr_expect_str_eq(pf->function, "main");
        /* The next Python frame: the module, where it called main(). */
        const mta_frame_t *outer = NULL;
        for (uint32_t d = pydepth + 1; d < s->depth && outer == NULL; d++)
            if (snap->frames[s->frames[d]].kind == MTSNAP_FRAME_PYTHON)
                outer = &snap->frames[s->frames[d]];
        cr_expect(frame_at_line(outer, script, main_line),
                  "%s: the frame out of main is not <module> at line %u", snap->path, main_line);
    }

    /* Without the GIL there is no Python stack: native frames only. */
    long nogil = mt_number_after(run.out, "SITE nogil");
    cr_assert_gt(nogil, 0);
    const mtsnap_block_t *b = ext_block(snap, (uint64_t)nogil, "mtext_malloc_site");
    cr_expect_eq(b->domain, MTSNAP_DOMAIN_NATIVE);
    cr_expect(!stack_has_python(snap, b->stack),
              "%s: a block allocated without the GIL has a Python stack", snap->path);
    const mta_frame_t *uf = mt_user_frame(snap, b->stack);
    cr_assert_not_null(uf);
    if (!native) /* with --native too, but libpython's frames may come first */
        cr_expect_str_eq(uf->function, "mtext_malloc_site");

    /* Another thread's, while this one held the GIL: its own stack, not
     * the Python stack of the thread holding the GIL. */
    long other = mt_number_after(run.out, "SITE other");
    cr_assert_gt(other, 0);
    b = ext_block(snap, (uint64_t)other, "mtext_other_site");
    cr_expect(!stack_has_python(snap, b->stack),
              "%s: a block another thread allocated while this one held the GIL has a Python "
              "stack", snap->path);

    /* release() freed them all (PyTraceMalloc_Untrack first for one). */
    mta_snapshot_t *rel = py_snap(&run, "released", "released");
    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
        char marker[32];
        snprintf(marker, sizeof(marker), "SITE:%s", sites[i].site);
        py_fig_t fig = py_line(rel, script, py_marker(EXT_PY, marker), 0);
        cr_expect_eq(fig.blocks, 0, "%s: site %s: %llu blocks left after release()", rel->path,
                     sites[i].site, (unsigned long long)fig.blocks);
    }
    for (uint64_t k = 0; k < rel->nblocks; k++) {
        const mtsnap_block_t *rb = &rel->blocks[k];
        cr_expect(rb->domain < MTSNAP_DOMAIN_EXT_BASE, "%s: a block in domain %u is left",
                  rel->path, rb->domain);
        const mta_stack_t *s = &rel->stacks[rb->stack];
        for (uint32_t d = 0; d < s->depth; d++)
            /* other_start's pthread_create: glibc keeps a joined thread's
             * own blocks for the next thread */
            cr_expect(strncmp(rel->frames[s->frames[d]].function, "mtext_", 6) != 0 ||
                          strcmp(rel->frames[s->frames[d]].function, "mtext_other_start") == 0,
                      "%s: block of %llu bytes from %s is still live", rel->path,
                      (unsigned long long)rb->size, rel->frames[s->frames[d]].function);
    }
    mta_snapshot_free(rel);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

static void test_ext_python(const mt_python_t *py)
{
    test_ext(py, 0);
}

static void test_ext_native(const mt_python_t *py)
{
    test_ext(py, 1);
}

MT_PY_TESTS(python, extension, test_ext_python, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)
MT_PY_TESTS(python, extension_native, test_ext_native, .init = mt_setup, .fini = mt_teardown,
            .timeout = PY_TEST_TIMEOUT)

/* ---- 4. numpy (Debian's python3.11 with python3-numpy) ---------------------- */

#define NUMPY_PY "tests/python/numpy_zeros.py"
#define NUMPY_DOMAIN 389047u
#define NUMPY_PYTHON 6   /* mt_pythons[]: /usr/bin/python3.11 */

Test(python, numpy_data_domain, .init = mt_setup, .fini = mt_teardown,
     .timeout = PY_TEST_TIMEOUT)
{
    const mt_python_t *py = &mt_pythons[NUMPY_PYTHON];
    MT_PY_SKIP_MISSING(py);
    const char *check[] = {py->path, "-c", "import numpy", NULL};
    mt_run_t run;
    cr_assert_eq(run_bare_capture(check, &run), 0);
    if (!WIFEXITED(run.status) || WEXITSTATUS(run.status) != 0)
        cr_skip_test("numpy not installed for %s (apt-get install python3-numpy)", py->path);
    mt_run_free(&run);

    char *script = py_script(NUMPY_PY);
    py_run(py, script, NULL, &run);
    cr_expect_eq(mt_number_after(run.out, "DOMAIN"), (long)NUMPY_DOMAIN, "numpy's domain: %s",
                 run.out);
    mta_snapshot_t *snap = py_snap(&run, NULL, "numpy");
    unsigned line = py_marker(NUMPY_PY, "SITE:zeros");
    size_t n = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_stack_t *s = &snap->stacks[b->stack];
        if (s->depth == 0 || !frame_at_line(&snap->frames[s->frames[0]], script, line) ||
            b->domain != MTSNAP_DOMAIN_EXT_BASE + NUMPY_DOMAIN)
            continue;
        cr_expect_eq(b->size, 8000000, "%s: numpy data block of %llu bytes", snap->path,
                     (unsigned long long)b->size);
        n++;
    }
    cr_expect_eq(n, 1, "%s: %zu blocks in domain 16+%u at %s:%u, want 1", snap->path, n,
                 NUMPY_DOMAIN, NUMPY_PY, line);
    mta_snapshot_free(snap);
    mt_run_free(&run);
    free(script);
}

/* ---- 5. transparency on a real workload -------------------------------------- */

#define TRANSPARENCY_PY "tests/python/transparency.py"
#define TRANSPARENCY_PYTHON 3   /* mt_pythons[]: pyenv 3.11, with sympy and networkx */

Test(python, transparency_sympy_networkx, .init = mt_setup, .fini = mt_teardown,
     .timeout = PY_TEST_TIMEOUT)
{
    const mt_python_t *py = &mt_pythons[TRANSPARENCY_PYTHON];
    MT_PY_SKIP_MISSING(py);
    const char *check[] = {py->path, "-c", "import sympy, networkx", NULL};
    mt_run_t bare, traced;
    cr_assert_eq(run_bare_capture(check, &bare), 0);
    if (!WIFEXITED(bare.status) || WEXITSTATUS(bare.status) != 0)
        cr_skip_test("sympy or networkx not installed for %s", py->path);
    mt_run_free(&bare);

    char *script = py_script(TRANSPARENCY_PY);
    const char *argv[] = {py->path, script, NULL};
    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_assert(WIFEXITED(bare.status) && WEXITSTATUS(bare.status) == 0,
              "bare run: status %#x\n%s", bare.status, bare.err);
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &traced), 0);
    cr_expect_eq(traced.status, bare.status, "wait status %#x, bare %#x", traced.status,
                 bare.status);
    cr_expect_eq(traced.outlen, bare.outlen, "stdout: %zu bytes, bare %zu", traced.outlen,
                 bare.outlen);
    cr_expect(traced.outlen == bare.outlen && memcmp(traced.out, bare.out, bare.outlen) == 0,
              "stdout differs:\n--- bare\n%s--- traced\n%s", bare.out, traced.out);
    cr_expect_str_eq(bare.err, "done\n", "bare stderr: %s", bare.err);
    char *rest = mt_strip_run_summary(traced.err, mt_dir);
    cr_expect_str_eq(rest, bare.err, "stderr differs (memtrail's summary removed):\n--- bare\n"
                     "%s--- traced\n%s", bare.err, rest);
    free(rest);
    /* The summary itself: the exit and final snapshots. */
    cr_expect(strstr(traced.err, "memtrail: 2 snapshots in ") != NULL, "stderr:\n%s",
              traced.err);
    mta_snapshot_t *ex = py_one("exit");
    cr_expect_gt(ex->nblocks, 1000);
    mta_snapshot_free(ex);
    mta_snapshot_free(py_one("final"));
    mt_run_free(&bare);
    mt_run_free(&traced);
    free(script);
}
