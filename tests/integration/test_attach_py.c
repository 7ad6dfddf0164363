/* `memtrail attach PID` on CPython (tests/python/attachee.py, run bare), on
 * every interpreter of tests/python/pythons.h: the Python allocator hooks
 * start at the interpreter's next safe point, and from then on the objects
 * allocated at a known line have exact figures and Python frames; a main
 * thread blocked in time.sleep or in a read starts them when the call
 * returns, not cut short, and snapshots taken meanwhile say so; attach and
 * detach again, with the objects kept across a detach freed after it; the
 * program ends with its own output and status, or by SIGTERM after the exit
 * snapshot. */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attachutil.h"
#include "harness.h"
#include "../python/pythons.h"

#define SCRIPT "tests/python/attachee.py"

/* The script's absolute, symlink-free path: its co_filename. */
static char *script_path(void)
{
    char *path = mt_source_file(SCRIPT), real[PATH_MAX];
    cr_assert_not_null(realpath(path, real), "cannot resolve %s", path);
    free(path);
    return strdup(real);
}

/* The line of the script that ends with "# SITE:<name>". */
static unsigned site_line(const char *name)
{
    char want[64];
    snprintf(want, sizeof(want), "# SITE:%s", name);
    char *path = mt_source_file(SCRIPT), line[512];
    FILE *f = fopen(path, "r");
    unsigned n = 0, found = 0;
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f)) {
        n++;
        if (strstr(line, want))
            found = n;
    }
    fclose(f);
    free(path);
    cr_assert_neq(found, 0);
    return found;
}

static void spawn_py(const mt_python_t *py, mt_proc_t *proc)
{
    char *script = script_path();
    const char *argv[] = {py->path, script, NULL};
    cr_assert_eq(mt_spawn_bare(argv, proc), 0);
    char line[256];
    cr_assert_gt(mt_proc_read_line(proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_str_eq(line, "ready");
    free(script);
}

/* The live blocks whose innermost frame is the SITE:keep line (all of the
 * object domain, made in alloc called by main) against what the program
 * printed ("SITE keep BYTES BLOCKS 0"). */
static void expect_keep(const mta_snapshot_t *snap, const char *printed)
{
    const char *at = strstr(printed, "SITE keep ");
    cr_assert_not_null(at, "no SITE line in:\n%s", printed);
    unsigned long long want_bytes, want_blocks;
    cr_assert_eq(sscanf(at, "SITE keep %llu %llu", &want_bytes, &want_blocks), 2);
    char *file = script_path();
    unsigned line = site_line("keep");
    uint64_t bytes = 0, blocks = 0, other_domain = 0, bad_frames = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_stack_t *s = &snap->stacks[b->stack];
        if (s->depth < 2)
            continue;
        const mta_frame_t *f0 = &snap->frames[s->frames[0]];
        if (f0->kind != MTSNAP_FRAME_PYTHON || f0->line != line || strcmp(f0->file, file))
            continue;
        const mta_frame_t *f1 = &snap->frames[s->frames[1]];
        bytes += b->size;
        blocks++;
        other_domain += b->domain != MTSNAP_DOMAIN_PY_OBJ;
        bad_frames += strcmp(f0->function, "alloc") || f1->kind != MTSNAP_FRAME_PYTHON ||
                      strcmp(f1->function, "main");
    }
    cr_expect_eq(bytes, want_bytes, "%s: %s:%u: %llu live bytes, want %llu", snap->path, file,
                 line, (unsigned long long)bytes, want_bytes);
    cr_expect_eq(blocks, want_blocks, "%s: %s:%u: %llu live blocks, want %llu", snap->path, file,
                 line, (unsigned long long)blocks, want_blocks);
    cr_expect_eq(other_domain, 0, "%s: %llu blocks not of the object domain", snap->path,
                 (unsigned long long)other_domain);
    cr_expect_eq(bad_frames, 0, "%s: %llu blocks not at alloc called by main", snap->path,
                 (unsigned long long)bad_frames);
    free(file);
}

/* The snapshot says the Python hooks started, within [min_ms, max_ms] of
 * the attach, in META and in the report (text and JSON). */
static void expect_hooks_started(const char *path, uint32_t min_ms, uint32_t max_ms)
{
    mta_snapshot_t *snap = mt_load(path);
    uint32_t flags = snap->meta.flags, ms = snap->meta.py_hooks_ms;
    mta_snapshot_free(snap);
    cr_expect(flags & MTSNAP_META_F_ATTACHED);
    cr_expect(flags & MTSNAP_META_F_PY_HOOKS, "%s: flags %#x: Python hooks not started", path,
              flags);
    cr_expect(!(flags & MTSNAP_META_F_PY_WAITING), "%s: flags %#x", path, flags);
    cr_expect(ms >= min_ms && ms <= max_ms, "%s: hooks started %u ms after the attach, want "
              "%u to %u", path, ms, min_ms, max_ms);
    char want[160];
    snprintf(want, sizeof(want), "note: Python allocator hooks started %u.%03u s after the attach",
             ms / 1000, ms % 1000);
    mt_run_t res;
    at_memtrail((const char *const[]){"report", path, NULL}, &res);
    cr_expect(strstr(res.out, want), "report lacks \"%s\":\n%s", want, res.out);
    mt_run_free(&res);
    snprintf(want, sizeof(want), "\"python_hooks_ms\": %u,", ms);
    at_memtrail((const char *const[]){"report", "-f", "json", path, NULL}, &res);
    cr_expect(strstr(res.out, want), "JSON report lacks %s", want);
    mt_run_free(&res);
}

/* Live blocks of the worker's line (Python frames), by domain. */
static uint64_t worker_blocks(const mta_snapshot_t *snap, unsigned domain)
{
    char *file = script_path();
    unsigned line = site_line("worker");
    uint64_t n = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_stack_t *s = &snap->stacks[b->stack];
        const mta_frame_t *f0 = s->depth ? &snap->frames[s->frames[0]] : NULL;
        n += f0 && f0->kind == MTSNAP_FRAME_PYTHON && f0->line == line &&
             !strcmp(f0->file, file) && b->domain == domain;
    }
    free(file);
    return n;
}

/* A snapshot taken before the hooks start: says so, and holds no Python
 * frame, though the worker thread runs Python code all along: its large
 * objects are there, through malloc, with native stacks. */
static void expect_waiting(const char *path)
{
    mta_snapshot_t *snap = mt_load(path);
    uint64_t native = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++)
        native += snap->blocks[i].domain == MTSNAP_DOMAIN_NATIVE &&
                  snap->blocks[i].size == 1000 + 33;   /* the worker's bytes objects */
    cr_expect_geq(native, 1, "%s: none of the worker's objects while the hooks wait", path);
    cr_expect(snap->meta.flags & MTSNAP_META_F_PY_WAITING, "%s: flags %#x: not waiting", path,
              snap->meta.flags);
    cr_expect(!(snap->meta.flags & MTSNAP_META_F_PY_HOOKS), "%s: flags %#x", path,
              snap->meta.flags);
    uint64_t python = 0;
    for (uint32_t i = 0; i < snap->nframes; i++)
        python += snap->frames[i].kind == MTSNAP_FRAME_PYTHON;
    cr_expect_eq(python, 0, "%s: %llu Python frames before the hooks", path,
                 (unsigned long long)python);
    mta_snapshot_free(snap);
    mt_run_t res;
    at_memtrail((const char *const[]){"report", path, NULL}, &res);
    cr_expect(strstr(res.out, "note: Python allocator hooks not started yet: they start when the "
                              "interpreter's main thread next runs Python code"),
              "report lacks the waiting note:\n%s", res.out);
    mt_run_free(&res);
}

/* Ends the program: "done: N" and status 0. */
static void finish(mt_proc_t *proc)
{
    char out[256] = "";
    at_command(proc, "end\n", "done:", out, sizeof(out));
    int status;
    cr_assert_eq(mt_proc_wait(proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}

/* Attached, the hooks running (or starting within a moment): `alloc`,
 * then a snapshot exact at the keep site, which says the hooks started
 * within 2 s of the attach. out gets the program's lines. */
static void alloc_attached(mt_proc_t *proc, char *out, size_t len)
{
    at_command(proc, "alloc\n", "allocated", out, len);
    char *path = at_snapshot(proc->pid);
    mta_snapshot_t *snap = mt_load(path);
    expect_keep(snap, out);
    mta_snapshot_free(snap);
    expect_hooks_started(path, 0, 2000);
    free(path);
}

/* Busy main thread: the hooks start within a moment; alloc, snapshot,
 * detach; the kept objects are freed after the detach (by the allocator
 * that made them: a wrong one would crash the program); three cycles. */
static void test_busy(const mt_python_t *py)
{
    mt_proc_t proc;
    spawn_py(py, &proc);
    for (int cycle = 0; cycle < 3; cycle++) {
        cr_assert_eq(mt_proc_write(&proc, "busy\n"), 0);
        usleep(100 * 1000);
        at_attach(proc.pid, 0, "memtrail: attached to process");
        char out[512] = "";
        alloc_attached(&proc, out, sizeof(out));
        char *last = at_detach(proc.pid);
        cr_assert_not_null(last);
        mta_snapshot_t *snap = mt_load(last);
        expect_keep(snap, out);
        mta_snapshot_free(snap);
        free(last);
        at_command(&proc, "drop\n", "dropped", out, sizeof(out));
    }
    finish(&proc);
}

/* The main thread blocked in time.sleep, then in a read of stdin, when
 * attached, a worker thread running Python code meanwhile: the hooks start
 * when the main thread's call returns, the sleep is not cut short, and a
 * snapshot taken meanwhile says the hooks wait (and has no Python frame,
 * on the second attach too). */
static void test_blocked(const mt_python_t *py)
{
    /* A symbol cache of its own, cold: the first attach's writer then
     * symbolizes with libdw and libelf, whose dynamic TLS blocks the loader
     * allocates on the writer's thread through the hooks (Debian's
     * python3.11, a non-PIE executable, makes its own PLT entry the loader's
     * malloc). The second attach's pthread_create reuses that dead writer's
     * cached stack, and glibc frees those blocks with its own free: they
     * must be glibc's, never memtrail's private heap (hook/hooks.c,
     * from_loader), or the target aborts ("free(): invalid size"). */
    char *symcache = mt_mkdtemp();
    cr_assert_eq(setenv("MEMTRAIL_SYMCACHE", symcache, 1), 0);
    mt_proc_t proc;
    spawn_py(py, &proc);
    char out[512] = "";
    at_command(&proc, "worker\n", "worker started", out, sizeof(out));
    at_command(&proc, "sleep 1.5\n", "sleeping", out, sizeof(out));
    usleep(300 * 1000);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    usleep(200 * 1000);   /* the worker allocates meanwhile */
    char *path = at_snapshot(proc.pid);
    expect_waiting(path);
    free(path);
    char line[256];
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    double slept = 0;
    cr_assert_eq(sscanf(line, "slept %lf", &slept), 1, "%s", line);
    cr_expect_geq(slept, 1.5, "time.sleep(1.5) returned after %.3f s", slept);
    at_command(&proc, "alloc\n", "allocated", out, sizeof(out));
    path = at_snapshot(proc.pid);
    mta_snapshot_t *snap = mt_load(path);
    expect_keep(snap, out);
    mta_snapshot_free(snap);
    expect_hooks_started(path, 900, 5000);   /* the sleep had 1.2 s left at the attach */
    /* the worker's objects now come through the object domain's wrapper,
     * with their Python line */
    snap = mt_load(path);
    cr_expect_geq(worker_blocks(snap, MTSNAP_DOMAIN_PY_OBJ), 1, "%s: no worker object", path);
    mta_snapshot_free(snap);
    free(path);
    free(at_detach(proc.pid));
    at_command(&proc, "drop\n", "dropped", out, sizeof(out));

    /* blocked in read() */
    out[0] = 0;
    at_command(&proc, "read\n", "reading", out, sizeof(out));
    usleep(200 * 1000);
    at_wait_main_syscall(proc.pid, 0, 0);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    usleep(200 * 1000);
    path = at_snapshot(proc.pid);
    expect_waiting(path);
    free(path);
    usleep(500 * 1000);
    at_command(&proc, "hello\n", "read hello", out, sizeof(out));
    at_command(&proc, "alloc\n", "allocated", out, sizeof(out));
    path = at_snapshot(proc.pid);
    snap = mt_load(path);
    expect_keep(snap, out);
    mta_snapshot_free(snap);
    expect_hooks_started(path, 400, 5000);
    free(path);
    free(at_detach(proc.pid));
    finish(&proc);
    mt_rmtree(symcache);
    free(symcache);
}

/* QUICK_CYCLES attach/detach cycles on the busy program, each allocating
 * and dropping (after the detach) the kept objects; then attached once
 * more: SIGTERM writes the exit snapshot (label SIGTERM, the kept objects
 * exact) and the process ends by the signal. */
#define QUICK_CYCLES 20
static void test_cycles_sigterm(const mt_python_t *py)
{
    mt_proc_t proc;
    spawn_py(py, &proc);
    char out[512] = "";
    for (int cycle = 0; cycle < QUICK_CYCLES; cycle++) {
        cr_assert_eq(mt_proc_write(&proc, "busy\n"), 0);
        at_attach(proc.pid, 0, "memtrail: attached to process");
        at_command(&proc, "alloc\n", "allocated", out, sizeof(out));
        cr_assert_eq(mt_proc_write(&proc, "busy\n"), 0);
        char *last = at_detach(proc.pid);
        cr_assert_not_null(last, "cycle %d", cycle);
        free(last);
        at_command(&proc, "drop\n", "dropped", out, sizeof(out));
    }
    cr_assert_eq(mt_proc_write(&proc, "busy\n"), 0);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    out[0] = 0;
    at_command(&proc, "alloc\n", "allocated", out, sizeof(out));
    kill(proc.pid, SIGTERM);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    mta_snapshot_t *snap = mt_load_one(mt_dir, proc.pid, "exit");
    cr_expect_str_eq(snap->label, "SIGTERM");
    cr_expect_eq(snap->meta.seq, QUICK_CYCLES + 1u);
    expect_keep(snap, out);
    mta_snapshot_free(snap);
}

/* CPython embedded in a C program that dlopen'd libpython into a local
 * scope (tests/programs/embed.c with EMBED_LOCAL=1: its symbols are not in
 * the global scope): the attach finds it among the loaded objects, and the
 * script's lines are exact after the hooks start. */
Test(attach_python, embedded_local_scope, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    static const char home[] = "/root/.pyenv/versions/3.11.7";
    char lib[512], run[PATH_MAX + 128];
    snprintf(lib, sizeof(lib), "%s/lib/libpython3.11.so.1.0", home);
    if (access(lib, R_OK) != 0)
        cr_skip_test("%s not found", lib);
    cr_assert_eq(setenv("PYTHONHOME", home, 1), 0);
    cr_assert_eq(setenv("EMBED_LOCAL", "1", 1), 0);
    char *script = script_path();
    snprintf(run, sizeof(run), "import runpy\nrunpy.run_path('%s', run_name='__main__')\n",
             script);
    char *prog = mt_program("embed");
    const char *argv[] = {prog, lib, run, NULL};
    mt_proc_t proc;
    cr_assert_eq(mt_spawn_bare(argv, &proc), 0);
    char line[256];
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_str_eq(line, "ready");
    char out[512] = "";
    /* blocked in its read of stdin (no `busy`: select is an extension
     * module); the command returns it to Python code, where the hooks start */
    usleep(100 * 1000);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    at_command(&proc, "drop\n", "dropped", out, sizeof(out));
    out[0] = 0;
    alloc_attached(&proc, out, sizeof(out));
    free(at_detach(proc.pid));
    at_command(&proc, "drop\n", "dropped", out, sizeof(out));
    finish(&proc);
    free(prog);
    free(script);
}

/* A free of NULL in each Python domain, the hooks running after an attach:
 * memtrail added no audit hook then, and its check for that hook's entry
 * (NULL) took such a free for the entry's and called the allocator it
 * would have come from, which it never had: the attachee died at address
 * 0 (cycles_sigterm now and then, when the first `busy` imported select,
 * whose type setup frees NULL, after the attach). */
static void test_free_null(const mt_python_t *py)
{
    mt_proc_t proc;
    spawn_py(py, &proc);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[512] = "";
    alloc_attached(&proc, out, sizeof(out));
    at_command(&proc, "freenull\n", "freed null", out, sizeof(out));
    free(at_detach(proc.pid));
    finish(&proc);
}

MT_PY_TESTS(attach_python, busy, test_busy, .init = mt_setup, .fini = mt_teardown,
            .timeout = 120)
MT_PY_TESTS(attach_python, blocked, test_blocked, .init = mt_setup, .fini = mt_teardown,
            .timeout = 120)
MT_PY_TESTS(attach_python, cycles_sigterm, test_cycles_sigterm, .init = mt_setup,
            .fini = mt_teardown, .timeout = 120)
MT_PY_TESTS(attach_python, free_of_null_after_attach, test_free_null, .init = mt_setup,
            .fini = mt_teardown, .timeout = 120)
