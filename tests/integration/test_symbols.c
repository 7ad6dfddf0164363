/* Integration tests: symbolization kept from one snapshot to the next and
 * shared across processes (preload/writer/symbolize.c, symcache.c). A module
 * unloaded and another loaded at its address between two snapshots; the same
 * program run cold and warm against one symbol cache gives the same frames;
 * the cache directory's rules (off, created 0700, refused when others can
 * write to it); libdw mapped only by a process whose frames the cache lacks. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"
#include "memtrail_protocol.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.' && ends_with(e->d_name, suffix);
    closedir(d);
    return n;
}

/* The innermost user frame of the one stack live at `function`. */
static const mta_frame_t *live_site_frame(const mta_snapshot_t *snap, const char *function)
{
    const mta_frame_t *found = NULL;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        const mta_frame_t *f = mt_user_frame(snap, snap->stats[i].stack);
        if (snap->stats[i].live_blocks && f != NULL && strcmp(f->function, function) == 0) {
            cr_assert_null(found, "%s: two live stacks at %s", snap->path, function);
            found = f;
        }
    }
    cr_assert_not_null(found, "%s: no live stack at %s", snap->path, function);
    return found;
}

static int has_function(const mta_snapshot_t *snap, const char *function)
{
    for (uint32_t i = 0; i < snap->nframes; i++)
        if (strcmp(snap->frames[i].function, function) == 0)
            return 1;
    return 0;
}

static void check_site(const mta_snapshot_t *snap, const char *function, const char *lib,
                       uint64_t bytes)
{
    char marker[64];
    snprintf(marker, sizeof(marker), "/* SITE:%s */", function);
    unsigned line = mt_marker_line("tests/programs/plugin.c", marker);
    cr_assert_neq(line, 0);
    mt_assert_site(snap, function, bytes, 1);
    const mta_frame_t *f = live_site_frame(snap, function);
    cr_expect(ends_with(f->file, "/plugin.c"), "%s: %s file \"%s\"", snap->path, function, f->file);
    cr_expect_eq(f->line, line, "%s: %s line %u, want %u", snap->path, function, f->line, line);
    cr_assert_neq(f->module, MTSNAP_NONE);
    cr_expect(ends_with(snap->modules[f->module].path, lib), "%s: %s in module %s, want %s",
              snap->path, function, snap->modules[f->module].path, lib);
}

/* One run of reload (A, snapshot, A unloaded and B loaded, snapshot) with the
 * symbol cache in `cache`; every frame checked. */
static void run_reload(const char *out, const char *cache)
{
    char *prog = mt_program("reload");
    char a[PATH_MAX], b[PATH_MAX], env[PATH_MAX + 32];
    snprintf(a, sizeof(a), "%s/libplugin_a.so", mt_env("MT_PROGRAMS_DIR"));
    snprintf(b, sizeof(b), "%s/libplugin_b.so", mt_env("MT_PROGRAMS_DIR"));
    snprintf(env, sizeof(env), "MEMTRAIL_SYMCACHE=%s", cache);
    const char *argv[] = {prog, a, b, NULL};
    /* No background naming of frames: its mappings could take the hole
     * libplugin_a.so leaves, and B must land there to catch a stale answer. */
    const char *extra[] = {env, MTPROTO_ENV_WARM "=0", NULL};
    mt_run_t run;

    mkdir(out, 0700);
    cr_assert_eq(run_traced_capture(out, NULL, argv, extra, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "reload: wait status %#x, stderr %s", run.status, run.err);
    /* Same layout, freed hole: B lands where A was. If it ever does not, the
     * checks below still hold but no longer catch a stale answer. */
    cr_expect_str_eq(run.out, "same\n", "libplugin_b.so was not mapped at libplugin_a.so's address");

    mt_snaplist_t api;
    cr_assert_eq(mt_find_snapshots(out, 0, "api", &api), 0);
    cr_assert_eq(api.n, 2);
    mta_snapshot_t *sa = mt_load(api.paths[0]), *sb = mt_load(api.paths[1]);
    cr_assert_str_eq(sa->label, "a");
    cr_assert_str_eq(sb->label, "b");

    check_site(sa, "plugin_site_a", "/libplugin_a.so", 1111);
    cr_expect(!has_function(sa, "plugin_site_b"), "%s: names plugin_site_b", sa->path);
    check_site(sb, "plugin_site_b", "/libplugin_b.so", 2222);
    if (strcmp(run.out, "same\n") == 0)   /* A's return address now lies in B */
        cr_expect(!has_function(sb, "plugin_site_a"), "%s: names plugin_site_a after dlclose",
                  sb->path);
    mta_snapshot_free(sa);
    mta_snapshot_free(sb);
    mt_snaplist_free(&api);
    mt_run_free(&run);
    free(prog);
}

Test(integration, module_replaced_between_snapshots, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char cache[PATH_MAX], out1[PATH_MAX], out2[PATH_MAX];
    snprintf(cache, sizeof(cache), "%s/cache", mt_dir);
    snprintf(out1, sizeof(out1), "%s/cold", mt_dir);
    snprintf(out2, sizeof(out2), "%s/warm", mt_dir);
    run_reload(out1, cache);              /* every answer from libdw */
    cr_expect_geq(count_files(cache, ".sym"), 3, "reload, libplugin_a.so, libplugin_b.so");
    run_reload(out2, cache);              /* from the cache files */
    char sub[PATH_MAX];
    for (int i = 0; i < 2; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", mt_dir, i ? "warm" : "cold");
        mt_rmtree(sub);
    }
    mt_rmtree(cache);
}

/* Cold and warm runs of leaky: every frame of every stack identical. */
Test(integration, symbol_cache_same_frames, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("leaky");
    char cache[PATH_MAX], env[PATH_MAX + 32], out[2][PATH_MAX];
    snprintf(cache, sizeof(cache), "%s/sub/cache", mt_dir);
    snprintf(env, sizeof(env), "MEMTRAIL_SYMCACHE=%s", cache);
    const char *argv[] = {prog, NULL};
    const char *extra[] = {env, NULL};
    mta_snapshot_t *snap[2];

    for (int i = 0; i < 2; i++) {
        mt_run_t run;
        snprintf(out[i], sizeof(out[i]), "%s/run%d", mt_dir, i);
        mkdir(out[i], 0700);
        cr_assert_eq(run_traced_capture(out[i], NULL, argv, extra, &run), 0);
        cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
        cr_expect(strstr(run.err, "symbol cache") == NULL, "stderr: %s", run.err);
        snap[i] = mt_load_one(out[i], 0, "exit");
        mt_run_free(&run);
    }
    struct stat sb;
    cr_assert_eq(stat(cache, &sb), 0, "cache directory not created");
    cr_expect_eq(sb.st_mode & 0777, 0700, "cache directory mode %o", sb.st_mode & 0777);
    cr_expect_geq(count_files(cache, ".sym"), 2, "leaky and libc at least");

    /* Frames are deduplicated by pc; compare each by module-relative pc. */
    const mta_snapshot_t *c = snap[0], *w = snap[1];
    cr_assert_eq(c->nframes, w->nframes);
    size_t named = 0;
    for (uint32_t i = 0; i < c->nframes; i++) {
        const mta_frame_t *f = &c->frames[i];
        if (f->module == MTSNAP_NONE)
            continue;
        uint64_t rel = f->pc - c->modules[f->module].start;
        const mta_frame_t *g = NULL;
        for (uint32_t j = 0; j < w->nframes && g == NULL; j++)
            if (w->frames[j].module != MTSNAP_NONE &&
                strcmp(w->modules[w->frames[j].module].path, c->modules[f->module].path) == 0 &&
                w->frames[j].pc - w->modules[w->frames[j].module].start == rel)
                g = &w->frames[j];
        cr_assert_not_null(g, "frame %s+%#llx missing from the warm run", f->function,
                           (unsigned long long)f->offset);
        cr_expect_str_eq(g->function, f->function);
        cr_expect_eq(g->offset, f->offset, "%s", f->function);
        cr_expect_str_eq(g->file, f->file, "%s", f->function);
        cr_expect_eq(g->line, f->line, "%s", f->function);
        named += f->function[0] != '\0';
    }
    cr_expect_gt(named, 5);
    mta_snapshot_free(snap[0]);
    mta_snapshot_free(snap[1]);
    for (int i = 0; i < 2; i++)
        mt_rmtree(out[i]);
    mt_rmtree(cache);
    snprintf(cache, sizeof(cache), "%s/sub", mt_dir);
    rmdir(cache);
    free(prog);
}

/* libdw is loaded on first need (preload/base/libload.h): a run against an
 * empty symbol cache maps it to name its frames, a second run against the
 * same cache names the same frames without it, and a bare run never has it. */
Test(integration, libdw_only_for_cache_misses, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("dwlazy");
    char cache[PATH_MAX], env[PATH_MAX + 32], out[2][PATH_MAX];
    snprintf(cache, sizeof(cache), "%s/dwcache", mt_dir);
    snprintf(env, sizeof(env), "MEMTRAIL_SYMCACHE=%s", cache);
    const char *argv[] = {prog, NULL};
    const char *extra[] = {env, NULL};
    static const char *const said[2] = {"libdw 1 libzstd 0\n", "libdw 0 libzstd 0\n"};
    mta_snapshot_t *snap[2];
    mt_run_t run;

    cr_assert_eq(run_bare_capture(argv, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "bare: %s", run.err);
    cr_expect_str_eq(run.out, "libdw 0 libzstd 0\n", "bare");
    mt_run_free(&run);
    for (int i = 0; i < 2; i++) {
        snprintf(out[i], sizeof(out[i]), "%s/dw%d", mt_dir, i);
        mkdir(out[i], 0700);
        cr_assert_eq(run_traced_capture(out[i], NULL, argv, extra, &run), 0);
        cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "run %d: %s", i, run.err);
        cr_expect_str_eq(run.out, said[i], "run %d (%s cache)", i, i ? "warm" : "cold");
        cr_expect(strstr(run.err, "symbolize:") == NULL, "run %d: stderr: %s", i, run.err);
        snap[i] = mt_load_one(out[i], 0, "exit");
        mt_run_free(&run);
    }
    static const struct { const char *function; uint64_t bytes; } site[] = {
        {"site_one", 100}, {"site_two", 200}};
    for (size_t k = 0; k < sizeof(site) / sizeof(site[0]); k++) {
        const mta_frame_t *f[2];
        for (int i = 0; i < 2; i++) {
            mt_assert_site(snap[i], site[k].function, site[k].bytes, 1);
            f[i] = live_site_frame(snap[i], site[k].function);
            cr_expect(ends_with(f[i]->file, "/dwlazy.c"), "%s: %s in \"%s\"", snap[i]->path,
                      site[k].function, f[i]->file);
        }
        cr_expect_gt(f[0]->line, 0, "%s", site[k].function);
        cr_expect_eq(f[1]->line, f[0]->line, "%s", site[k].function);
        cr_expect_eq(f[1]->offset, f[0]->offset, "%s", site[k].function);
    }
    for (int i = 0; i < 2; i++) {
        mta_snapshot_free(snap[i]);
        mt_rmtree(out[i]);
    }
    mt_rmtree(cache);
    free(prog);
}

/* libzstd is loaded on first need too: 5,000 more live blocks make a record
 * too big to be stored (format/encode.h, store_below), and the process maps
 * libzstd to compress it; the snapshot reads back exact. */
Test(integration, libzstd_only_for_big_records, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("dwlazy");
    char out[PATH_MAX];
    snprintf(out, sizeof(out), "%s/zstd", mt_dir);
    mkdir(out, 0700);
    const char *argv[] = {prog, NULL};
    const char *extra[] = {"DWLAZY_BLOCKS=5000", NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(out, NULL, argv, extra, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "stderr: %s", run.err);
    cr_expect(strstr(run.out, " libzstd 1\n") != NULL, "stdout: %s", run.out);
    mt_run_free(&run);
    mt_snaplist_t api;
    cr_assert_eq(mt_find_snapshots(out, 0, "api", &api), 0);
    cr_assert_eq(api.n, 1);
    mta_snapshot_t *snap = mt_load(api.paths[0]);
    mt_assert_site(snap, "site_many", 5000 * 16 + 5000 * sizeof(void *), 5001);
    mt_assert_site(snap, "site_one", 100, 1);
    mta_snapshot_free(snap);
    mt_snaplist_free(&api);
    mt_rmtree(out);
    free(prog);
}

/* The library loader's thread, when pthread_create answers EAGAIN (the
 * system short of tasks for a moment: tests/programs/eagain.c), is asked
 * for again, 20 ms apart, 5 times (writer/writer.c): after two such answers
 * libdw still loads and the frames are named, with no warning; when every
 * call fails, one warning, and the program runs on and exits as it would. */
Test(integration, library_loader_tried_again_on_eagain, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    static const char said[] = "cannot start a thread to load a library";
    static const char *const times[2] = {"EAGAIN_TIMES=2", "EAGAIN_TIMES=1000"};
    char *prog = mt_program("dwlazy");
    char cache[PATH_MAX], env[PATH_MAX + 32], shim[PATH_MAX + 32], out[PATH_MAX];
    const char *argv[] = {prog, NULL};
    snprintf(shim, sizeof(shim), "LD_PRELOAD=%s/libeagain.so", mt_env("MT_PROGRAMS_DIR"));
    for (int i = 0; i < 2; i++) {
        snprintf(cache, sizeof(cache), "%s/eacache%d", mt_dir, i);
        snprintf(env, sizeof(env), "MEMTRAIL_SYMCACHE=%s", cache);
        snprintf(out, sizeof(out), "%s/ea%d", mt_dir, i);
        mkdir(out, 0700);
        const char *extra[] = {env, shim, times[i], NULL};
        mt_run_t run;
        cr_assert_eq(run_traced_capture(out, NULL, argv, extra, &run), 0);
        cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "stderr: %s", run.err);
        const char *warn = strstr(run.err, said);
        mta_snapshot_t *snap = mt_load_one(out, 0, "exit");
        if (i == 0) {
            cr_expect(strstr(run.err, "eagain: failed 2\n") && !strstr(run.err, "eagain: failed 3\n"),
                      "two calls failed, then one went through: %s", run.err);
            cr_expect_null(warn, "stderr: %s", run.err);
            cr_expect_str_eq(run.out, "libdw 1 libzstd 0\n");
            mt_assert_site(snap, "site_one", 100, 1);
        } else {
            cr_expect(strstr(run.err, "eagain: failed 5\n") != NULL, "stderr: %s", run.err);
            cr_expect_not_null(warn, "stderr: %s", run.err);
            cr_expect(warn == NULL || strstr(warn + sizeof(said) - 1, said) == NULL,
                      "warned twice: %s", run.err);
            cr_expect_str_eq(run.out, "libdw 0 libzstd 0\n");
        }
        mta_snapshot_free(snap);
        mt_run_free(&run);
        mt_rmtree(out);
        mt_rmtree(cache);
    }
    free(prog);
}

/* The loader's lock held by the thread that waits for the snapshot that needs
 * libdw (a constructor run by dlopen asks for one, against an empty cache):
 * the writer gives up on names after 5 s with one warning instead of
 * waiting for a lock whose holder waits for it, the constructor's 100,000
 * allocations after it are all applied, and the frames it could not name
 * are named in the exit snapshot. */
Test(integration, libdw_load_waits_no_longer_than_5_s, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("dwlazy");
    char lib[PATH_MAX], cache[PATH_MAX], env[PATH_MAX + 32], out[PATH_MAX];
    snprintf(lib, sizeof(lib), "%s/libdwctor.so", mt_env("MT_PROGRAMS_DIR"));
    snprintf(cache, sizeof(cache), "%s/ctorcache", mt_dir);
    snprintf(env, sizeof(env), "MEMTRAIL_SYMCACHE=%s", cache);
    snprintf(out, sizeof(out), "%s/ctor", mt_dir);
    mkdir(out, 0700);
    const char *argv[] = {prog, lib, NULL};
    /* No naming in the background: the constructor's snapshot is the first
     * to need libdw, whatever the timing. */
    const char *extra[] = {env, MTPROTO_ENV_WARM "=0", NULL};
    mt_run_t run;

    cr_assert_eq(run_traced_capture(out, NULL, argv, extra, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "stderr: %s", run.err);
    static const char said[] = "a library is still loading after 5 s";
    const char *warn = strstr(run.err, said);
    cr_expect_not_null(warn, "stderr: %s", run.err);
    cr_expect(warn == NULL || strstr(warn + sizeof(said) - 1, said) == NULL, "warned twice: %s",
              run.err);
    mt_run_free(&run);

    mt_snaplist_t api;
    cr_assert_eq(mt_find_snapshots(out, 0, "api", &api), 0);
    cr_assert_eq(api.n, 2);
    mta_snapshot_t *in_ctor = mt_load(api.paths[0]), *at_exit = mt_load_one(out, 0, "exit");
    cr_assert_str_eq(in_ctor->label, "ctor");
    cr_expect(!has_function(in_ctor, "ctor_site"), "%s: names ctor_site", in_ctor->path);
    mt_assert_site(at_exit, "ctor_site", 300, 1);
    const mta_frame_t *f = live_site_frame(at_exit, "ctor_site");
    cr_expect(ends_with(f->file, "/dwctor.c"), "ctor_site in \"%s\"", f->file);
    uint64_t bytes, blocks;
    site_alloc_total(at_exit, "churn_site", &bytes, &blocks);
    cr_expect_eq(blocks, 100000);
    cr_expect_eq(bytes, 1600000);
    mta_snapshot_free(in_ctor);
    mta_snapshot_free(at_exit);
    mt_snaplist_free(&api);
    mt_rmtree(out);
    mt_rmtree(cache);
    free(prog);
}

/* MEMTRAIL_SYMCACHE=off writes nothing; a directory others can write to is
 * refused with one warning, and the snapshot is complete without it. */
Test(integration, symbol_cache_off_and_unsafe, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("leaky");
    char cache[PATH_MAX], env[PATH_MAX + 32], out[PATH_MAX];
    const char *argv[] = {prog, NULL};
    mt_run_t run;

    snprintf(out, sizeof(out), "%s/out", mt_dir);
    mkdir(out, 0700);
    const char *off[] = {"MEMTRAIL_SYMCACHE=off", "HOME=/nonexistent", "XDG_CACHE_HOME=", NULL};
    cr_assert_eq(run_traced_capture(out, NULL, argv, off, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
    cr_expect(strstr(run.err, "symbol cache") == NULL, "stderr: %s", run.err);
    mt_run_free(&run);
    mta_snapshot_t *s = mt_load_one(out, 0, "exit");
    mt_assert_site(s, "leak_dropped", 300, 3);
    mta_snapshot_free(s);
    mt_rmtree(out);

    snprintf(cache, sizeof(cache), "%s/shared", mt_dir);
    cr_assert_eq(mkdir(cache, 0700), 0);
    cr_assert_eq(chmod(cache, 0777), 0);
    snprintf(env, sizeof(env), "MEMTRAIL_SYMCACHE=%s", cache);
    const char *unsafe[] = {env, NULL};
    mkdir(out, 0700);
    cr_assert_eq(run_traced_capture(out, NULL, argv, unsafe, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0);
    cr_expect(strstr(run.err, "memtrail: symbol cache") != NULL &&
              strstr(run.err, "unusable") != NULL, "stderr: %s", run.err);
    cr_expect_eq(count_files(cache, ".sym"), 0, "wrote into a world-writable directory");
    s = mt_load_one(out, 0, "exit");
    mt_assert_site(s, "leak_dropped", 300, 3);
    mta_snapshot_free(s);
    mt_run_free(&run);
    mt_rmtree(out);
    mt_rmtree(cache);
    free(prog);
}

/* memtrail's own allocations (libdw inflating libc's debug sections, the
 * snapshot's buffers) leave the C library's allocator as the program finds
 * it bare (preload/base/privheap.c): after a snapshot that named a libc
 * frame with no symbol cache, the program's 300 KiB block is still mmap'd,
 * as bare, where glibc's dynamic threshold, raised by the first free of a
 * block it had mmap'd, would serve it from an arena. */
Test(integration, writer_memory_leaves_malloc_alone, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("mallocstate");
    const char *argv[] = {prog, NULL};
    const char *off[] = {"MEMTRAIL_SYMCACHE=off", NULL};
    mt_run_t bare, run;

    cr_assert_eq(run_bare_capture(argv, &bare), 0);
    cr_assert_str_eq(bare.out, "mmapped 1\n", "bare: %s", bare.out);
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, off, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "stderr: %s", run.err);

    /* The snapshot named strdup from libc's debug information: libdw did
     * its work (without libc6-dbg there is nothing to inflate). */
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "api");
    const mta_frame_t *named = NULL;
    for (uint32_t i = 0; i < s->nframes; i++)
        if (strstr(s->frames[i].function, "strdup") && s->frames[i].file[0])
            named = &s->frames[i];
    if (!named) {
        mta_snapshot_free(s);
        cr_skip_test("libc has no debug information here (libc6-dbg): nothing for libdw to inflate");
    }
    cr_expect_str_eq(run.out, "mmapped 1\n",
                     "traced: the program's 300 KiB block came from an arena (stdout %s)", run.out);
    mta_snapshot_free(s);
    mt_run_free(&bare);
    mt_run_free(&run);
    free(prog);
}
