/* The mmap domain on tests/programs/mapped.c: after each of its steps (an
 * API snapshot each), the exact bytes and blocks of the domain in all and
 * at each call site's line (mapped.c's SITE: markers), with the default
 * (anonymous mappings), with --mmap=all (its file mapping too) and with
 * --sample (mappings are never sampled: the same figures); the heap figures
 * (STACK_STATS, TOTALS, the default report) never hold a mapping, and the
 * 64 MiB malloc that glibc maps itself is one native block and nothing in
 * the domain. `report --domain mmap` (text and JSON), `export` and `leaks`
 * show the domain only when it is named; --mmap=off records nothing; a
 * fork child keeps what it inherited. tests/python/mapped.py on every
 * interpreter: its mmap.mmap is one block of the domain, pymalloc's arenas
 * none.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "anutil.h"
#include "harness.h"
#include "../python/pythons.h"

#define SRC "tests/programs/mapped.c"
#define MMAP_TEST(name) Test(mmap, name, .init = mt_setup, .fini = an_fini, .timeout = 120)
#define MIB 1048576ull
#define FILE_BYTES 131072ull   /* after its mremap */

enum { S_MAP, S_GROW, S_RESERVE, S_MOVE, S_FIXED, S_FILE, S_FILEREMAP, S_LARGE, NSITES };
static const char *const site_names[NSITES] = {"map", "grow", "reserve", "move", "fixed",
                                               "file", "fileremap", "large"};

/* The mmap domain after each step: bytes and blocks per site (anonymous
 * mappings; `file` says where FILE's mapping is live under --mmap=all). */
typedef struct step {
    const char *label;
    struct { uint64_t bytes, blocks; } at[NSITES];
    int file;
    int large;   /* the 64 MiB native block is live */
    unsigned events;   /* events numbered since "mapped" (no --mmap=all, not off) */
} step_t;

/* Events: a mapping 1, an mremap 2 (its old and new ranges, whether the old
 * one was recorded or not), a munmap 1 (of a range memtrail never saw too,
 * and a failed one: a no-op), a failed mmap 0, a file mapping 0 unless
 * --mmap=all (then 1), malloc and free 1: nothing of memtrail's own. */
static const step_t steps[] = {
    {"mapped", {[S_MAP] = {10 * MIB, 1}}, 0, 0, 0},
    {"grown", {[S_GROW] = {12 * MIB, 1}}, 0, 0, 2},
    {"reserved", {[S_GROW] = {12 * MIB, 1}, [S_RESERVE] = {12 * MIB, 1}}, 0, 0, 3},
    {"moved", {[S_MOVE] = {12 * MIB, 1}}, 0, 0, 5},
    {"split", {[S_MOVE] = {8 * MIB, 2}}, 0, 0, 6},
    {"trimmed", {[S_MOVE] = {4 * MIB, 1}}, 0, 0, 7},
    {"fixed", {[S_MOVE] = {3 * MIB, 1}, [S_FIXED] = {MIB, 1}}, 0, 0, 8},
    {"file", {[S_MOVE] = {3 * MIB, 1}, [S_FIXED] = {MIB, 1}}, 1, 0, 10},
    {"large", {[S_MOVE] = {3 * MIB, 1}, [S_FIXED] = {MIB, 1}}, 1, 1, 11},
    {"raw", {[S_MOVE] = {3 * MIB, 1}, [S_FIXED] = {MIB, 1}}, 1, 1, 15},
    {"unmapped", {{0, 0}}, 0, 0, 18},
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

static unsigned site_line(int s)
{
    char marker[32];
    snprintf(marker, sizeof(marker), "/* SITE:%s */", site_names[s]);
    unsigned line = mt_marker_line(SRC, marker);
    cr_assert_neq(line, 0, "no %s in %s", marker, SRC);
    return line;
}

/* The bytes and blocks of domain `domain` in s whose innermost user frame
 * is mapped.c's line `line` (0: any stack). */
static void figures(const mta_snapshot_t *s, uint32_t domain, unsigned line, uint64_t *bytes,
                    uint64_t *blocks)
{
    uint64_t units = 0;
    *bytes = 0;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        if (b->domain != domain)
            continue;
        if (line) {
            const mta_frame_t *f = mt_user_frame(s, b->stack);
            if (!f || f->line != line || !strstr(f->file, "mapped.c"))
                continue;
        }
        *bytes += mta_block_bytes(s, b);
        units += mta_block_units(s, b);
    }
    *blocks = mta_units_blocks(s, units);
}

/* Runs mapped under the tracer with `opts`; returns its API snapshots'
 * paths (NSTEPS of them, in order). */
static char **run_mapped(const char *const *opts)
{
    char *file = cat(mt_dir, "/mapped.data");
    const char *argv[] = {an_keep(mt_program("mapped")), file, NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "mapped under memtrail: wait status %#x, stderr: %s", run.status, run.err);
    mt_run_free(&run);
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, "api", &list), 0);
    cr_assert_eq(list.n, NSTEPS, "%zu API snapshots, want %zu", list.n, NSTEPS);
    char **paths = an_keep(calloc(NSTEPS, sizeof(char *)));
    for (size_t i = 0; i < NSTEPS; i++)
        paths[i] = an_keep(strdup(list.paths[i]));
    mt_snaplist_free(&list);
    return paths;
}

/* Every step's figures, the domain's and the heap's. */
static void check_steps(char **paths, int all)
{
    unsigned lines[NSITES];
    uint64_t first = 0;
    for (int s = 0; s < NSITES; s++)
        lines[s] = site_line(s);
    for (size_t i = 0; i < NSTEPS; i++) {
        const step_t *st = &steps[i];
        mta_snapshot_t *snap = mt_load(paths[i]);
        cr_assert_str_eq(snap->label, st->label);
        if (i == 0)
            first = snap->meta.counter;
        uint64_t events = snap->meta.counter - first;
        uint64_t want_events = st->events + (all && i >= 7);   /* the file mapping */
        cr_expect_eq(events, want_events, "%s: %llu events since \"mapped\", want %llu",
                     st->label, (unsigned long long)events, (unsigned long long)want_events);
        uint64_t want_bytes = 0, want_blocks = 0, bytes, blocks;
        for (int s = 0; s < NSITES; s++) {
            uint64_t wb = st->at[s].bytes, wn = st->at[s].blocks;
            if (s == S_FILEREMAP && all && st->file) {
                wb = FILE_BYTES;
                wn = 1;
            }
            figures(snap, MTSNAP_DOMAIN_MMAP, lines[s], &bytes, &blocks);
            cr_expect(bytes == wb && blocks == wn,
                      "%s: mmap at SITE:%s (line %u): %llu B in %llu blocks, want %llu in %llu",
                      st->label, site_names[s], lines[s], (unsigned long long)bytes,
                      (unsigned long long)blocks, (unsigned long long)wb, (unsigned long long)wn);
            want_bytes += wb;
            want_blocks += wn;
        }
        figures(snap, MTSNAP_DOMAIN_MMAP, 0, &bytes, &blocks);
        cr_expect(bytes == want_bytes && blocks == want_blocks,
                  "%s: mmap domain: %llu B in %llu blocks, want %llu in %llu", st->label,
                  (unsigned long long)bytes, (unsigned long long)blocks,
                  (unsigned long long)want_bytes, (unsigned long long)want_blocks);
        /* The heap: the large block alone, once, at its line. */
        uint64_t heap = st->large ? 64 * MIB : 0, heap_blocks = st->large ? 1 : 0;
        cr_expect(snap->totals.live_bytes == heap && snap->totals.live_blocks == heap_blocks,
                  "%s: heap TOTALS %llu B in %llu blocks, want %llu in %llu", st->label,
                  (unsigned long long)snap->totals.live_bytes,
                  (unsigned long long)snap->totals.live_blocks, (unsigned long long)heap,
                  (unsigned long long)heap_blocks);
        figures(snap, MTSNAP_DOMAIN_NATIVE, lines[S_LARGE], &bytes, &blocks);
        cr_expect(bytes == heap && blocks == heap_blocks,
                  "%s: native at SITE:large: %llu B in %llu blocks, want %llu in %llu",
                  st->label, (unsigned long long)bytes, (unsigned long long)blocks,
                  (unsigned long long)heap, (unsigned long long)heap_blocks);
        uint64_t stats_bytes = 0;
        for (uint32_t k = 0; k < snap->nstats; k++)
            stats_bytes += snap->stats[k].live_bytes;
        cr_expect_eq(stats_bytes, heap, "%s: STACK_STATS hold %llu B, want %llu", st->label,
                     (unsigned long long)stats_bytes, (unsigned long long)heap);
        mta_snapshot_free(snap);
    }
}

MMAP_TEST(anonymous)
{
    check_steps(run_mapped(NULL), 0);
}

MMAP_TEST(all)
{
    static const char *const opts[] = {"--mmap=all", NULL};
    check_steps(run_mapped(opts), 1);
}

/* Mappings are never sampled: the same exact figures under --sample. */
MMAP_TEST(sampled)
{
    static const char *const opts[] = {"--sample", "64KiB", NULL};
    check_steps(run_mapped(opts), 0);
}

MMAP_TEST(off)
{
    static const char *const opts[] = {"--mmap", "off", NULL};
    char **paths = run_mapped(opts);
    for (size_t i = 0; i < NSTEPS; i++) {
        mta_snapshot_t *snap = mt_load(paths[i]);
        uint64_t bytes, blocks;
        figures(snap, MTSNAP_DOMAIN_MMAP, 0, &bytes, &blocks);
        cr_expect(bytes == 0 && blocks == 0, "%s: %llu B in %llu mappings with --mmap=off",
                  steps[i].label, (unsigned long long)bytes, (unsigned long long)blocks);
        mta_snapshot_free(snap);
    }
}

/* The commands: the domain only when named. */
MMAP_TEST(commands)
{
    char **paths = run_mapped(NULL);
    const char *split = paths[4];   /* 8 MiB in 2 blocks at SITE:move */
    char move[64];
    snprintf(move, sizeof(move), "mapped.c:%u)", site_line(S_MOVE));

    jv_t *all = JSON(0, "report", "--format", "json", split);
    cr_expect_eq(jnum(all, "total_bytes"), 0);
    cr_expect_eq(jnum(all, "selected_bytes"), 0);
    cr_expect_eq(jget(all, "entries")->n, 0);
    jv_t *mm = JSON(0, "report", "--format", "json", "--domain", "mmap", split);
    cr_expect_eq(jnum(mm, "selected_bytes"), (long long)(8 * MIB));
    cr_expect_eq(jnum(mm, "selected_blocks"), 2);
    jv_t *entries = jget(mm, "entries");
    cr_assert_eq(entries->n, 1);
    cr_expect_eq(jnum(entries->items[0], "bytes"), (long long)(8 * MIB));
    cr_expect_eq(jnum(entries->items[0], "blocks"), 2);
    jv_t *frames = jget(entries->items[0], "frames");
    cr_assert_gt(frames->n, 0);
    cr_expect_eq(jnum(frames->items[0], "line"), (long long)site_line(S_MOVE));
    /* --exclude-domain alone leaves the mappings out too. */
    jv_t *ex = JSON(0, "report", "--format", "json", "--exclude-domain", "raw", split);
    cr_expect_eq(jnum(ex, "selected_bytes"), 0);

    mt_run_t r;
    cr_assert_eq(MT(&r, "report", split), 0);
    cr_expect(strstr(r.out, "\nlive: 0 B in 0 blocks\n") != NULL, "default report: %s", r.out);
    mt_run_free(&r);
    cr_assert_eq(MT(&r, "report", "--domain", "mmap", split), 0);
    cr_expect(strstr(r.out, "selected by the filters: 8,388,608 B (8.0 MiB) in 2 blocks live") &&
                  strstr(r.out, move),
              "report --domain mmap: %s", r.out);
    mt_run_free(&r);
    cr_assert_eq(MT(&r, "export", "--format", "collapsed", split), 0);
    cr_expect_str_eq(r.out, "", "export: %s", r.out);
    mt_run_free(&r);
    cr_assert_eq(MT(&r, "export", "--format", "collapsed", "--domain", "mmap", split), 0);
    cr_expect(strstr(r.out, move) && strstr(r.out, ") 8388608\n"), "export --domain mmap: %s",
              r.out);
    mt_run_free(&r);
}

/* The leak scan does not classify mappings: `leaks` leaves the domain out,
 * and with --domain mmap shows them reachable. */
MMAP_TEST(leaks)
{
    static const char *const opts[] = {"--leak-check", "all", NULL};
    char **paths = run_mapped(opts);
    const char *split = paths[4];
    mt_run_t r;
    cr_assert_eq(MT(&r, "leaks", split), 0);
    cr_expect(strstr(r.out, "8,388,608") == NULL, "leaks: %s", r.out);
    mt_run_free(&r);
    cr_assert_eq(MT(&r, "leaks", "--domain", "mmap", split), 0);
    cr_expect(strstr(r.out, "still reachable: 8,388,608 B (8.0 MiB) in 2 blocks") != NULL,
              "leaks --domain mmap: %s", r.out);
    mt_run_free(&r);
}

/* A fork child inherits the mappings and the live table: its unmap of half
 * of one leaves the other half, the parent keeps the whole. */
MMAP_TEST(fork)
{
    const char *argv[] = {an_keep(mt_program("mapped")), cat(mt_dir, "/mapped.data"), "fork",
                          NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "mapped fork under memtrail: wait status %#x, stderr: %s", run.status, run.err);
    mt_run_free(&run);
    unsigned line = mt_marker_line(SRC, "/* SITE:forkmap */");
    cr_assert_neq(line, 0);
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, "api", &list), 0);
    cr_assert_eq(list.n, 2);
    int seen = 0;
    for (size_t i = 0; i < list.n; i++) {
        mta_snapshot_t *snap = mt_load(list.paths[i]);
        int child = strcmp(snap->label, "child") == 0;
        cr_assert(child || strcmp(snap->label, "parent") == 0, "label %s", snap->label);
        seen |= child ? 1 : 2;
        uint64_t bytes, blocks, want = child ? 2 * MIB : 4 * MIB;
        figures(snap, MTSNAP_DOMAIN_MMAP, line, &bytes, &blocks);
        cr_expect(bytes == want && blocks == 1, "%s: %llu B in %llu blocks, want %llu in 1",
                  snap->label, (unsigned long long)bytes, (unsigned long long)blocks,
                  (unsigned long long)want);
        figures(snap, MTSNAP_DOMAIN_MMAP, 0, &bytes, &blocks);
        cr_expect(bytes == want && blocks == 1, "%s: mmap domain %llu B in %llu blocks",
                  snap->label, (unsigned long long)bytes, (unsigned long long)blocks);
        mta_snapshot_free(snap);
    }
    cr_expect_eq(seen, 3);
    mt_snaplist_free(&list);
}

/* The mmap blocks of s that t does not have (same address and size). */
static size_t new_mappings(const mta_snapshot_t *s, const mta_snapshot_t *t,
                           const mtsnap_block_t **out, size_t max)
{
    size_t n = 0;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        if (b->domain != MTSNAP_DOMAIN_MMAP)
            continue;
        int old = 0;
        for (uint64_t k = 0; k < t->nblocks && !old; k++)
            old = t->blocks[k].domain == MTSNAP_DOMAIN_MMAP &&
                  t->blocks[k].address == b->address && t->blocks[k].size == b->size;
        if (!old && n < max)
            out[n] = b;
        n += !old;
    }
    return n;
}

static void python_mapped(const mt_python_t *py)
{
    char *script = an_keep(mt_source_file("tests/python/mapped.py"));
    const char *argv[] = {py->path, script, NULL};
    static const char *const env[] = {"PYTHONDONTWRITEBYTECODE=1", NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, env, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "%s mapped.py: wait status %#x, stderr: %s", py->tag, run.status, run.err);
    const char *labels[3] = {"before", "mapped", "closed"};
    mta_snapshot_t *snap[3];
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof(key), "SNAP %s ", labels[i]);
        const char *p = strstr(run.out, key);
        cr_assert_not_null(p, "%s: no %s in: %s", py->tag, key, run.out);
        char *path = an_keep(strndup(p + strlen(key), strcspn(p + strlen(key), "\n")));
        snap[i] = mt_load(path);
    }
    mt_run_free(&run);
    const mtsnap_block_t *added[8];
    size_t n = new_mappings(snap[1], snap[0], added, 8);
    cr_assert_eq(n, 1, "%s: %zu new mappings between before and mapped, want 1", py->tag, n);
    cr_expect_eq(added[0]->size, 8 * MIB, "%s: the mapping has %llu B", py->tag,
                 (unsigned long long)added[0]->size);
    /* Where it was made: the script's line, or (the module releases the GIL
     * around its mmap call, and then memtrail has only the C stack) the
     * mmap module's constructor. */
    unsigned line = mt_marker_line("tests/python/mapped.py", "# SITE:pymap");
    const mta_stack_t *st = &snap[1]->stacks[added[0]->stack];
    int found = 0;
    for (uint32_t k = 0; k < st->depth && !found; k++) {
        const mta_frame_t *f = &snap[1]->frames[st->frames[k]];
        found = (strstr(f->file, "mapped.py") && f->line == line) ||
                strcmp(f->function, "new_mmap_object") == 0;
    }
    cr_expect(found, "%s: the mapping's stack has neither mapped.py:%u nor new_mmap_object",
              py->tag, line);
    cr_expect_eq(new_mappings(snap[2], snap[0], added, 8), 0, "%s: a mapping left after close",
                 py->tag);
    cr_expect_eq(new_mappings(snap[0], snap[2], added, 8), 0, "%s: a mapping gone", py->tag);
    for (int i = 0; i < 3; i++)
        mta_snapshot_free(snap[i]);
}

MT_PY_TESTS(mmap, python, python_mapped, .init = mt_setup, .fini = an_fini, .timeout = 120)
