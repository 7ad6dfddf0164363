/* Integration tests of the analyzer's commands on real snapshots: `memtrail
 * diff` (two runs of tests/programs/growth.c, whose live figures depend on
 * its argument in known ways), its CI gates, `report --fail-above`, the
 * filters, `export` read back (pprof through tests/unit/analyzer/pprof_read.h and
 * `go tool pprof`; collapsed; speedscope; diff's two-count collapsed form)
 * and the errors on bad input, running memtrail as a user would (anutil.c).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anutil.h"
#include "harness.h"
#include "pprof_read.h"
#include "../python/pythons.h"

#define GROWTH_SRC "tests/programs/growth.c"
#define AN_TEST(name) Test(analyzer, name, .init = mt_setup, .fini = an_fini, .timeout = 120)

/* ---- growth runs --------------------------------------------------------------- */

static uint64_t growth_bytes(unsigned n) { return 300 + 5096u * n + (n < 3 ? 100 : 7000) + 768; }
static uint64_t growth_blocks(unsigned n) { return 3 + n + 1 + (n < 3 ? 2 : 1) + 3; }

static unsigned site_line(const char *site)
{
    char marker[64];
    snprintf(marker, sizeof(marker), "/* SITE:%s */", site);
    unsigned line = mt_marker_line(GROWTH_SRC, marker);
    cr_assert_neq(line, 0, "no %s in %s", marker, GROWTH_SRC);
    return line;
}

/* Runs `growth N` under the tracer, checks its exit snapshot (the harness's
 * checks and the live totals growth.c promises) and renames it mt_dir/NAME,
 * so each run's snapshot is the only memtrail.* file. Returns the new path;
 * the loaded snapshot in *snap when snap is not NULL. */
static char *run_growth(unsigned n, const char *name, mta_snapshot_t **snap)
{
    char *prog = an_keep(mt_program("growth")), arg[16], *path;
    snprintf(arg, sizeof(arg), "%u", n);
    const char *argv[] = {prog, arg, NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "growth %u under memtrail: wait status %#x, stderr: %s", n, run.status, run.err);
    cr_expect_str_eq(run.out, "");
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "exit");
    cr_expect_neq(s->meta.pid, (uint32_t)run.pid);
    cr_expect_eq(s->totals.live_bytes, growth_bytes(n), "growth %u: %llu live bytes", n,
                 (unsigned long long)s->totals.live_bytes);
    cr_expect_eq(s->totals.live_blocks, growth_blocks(n));
    path = cat(mt_dir, name);
    cr_assert_eq(rename(s->path, path), 0);
    if (snap != NULL)
        *snap = s;
    else
        mta_snapshot_free(s);
    mt_run_free(&run);
    return path;
}

/* The entry (diff or report grouped by line or function) whose key frame is
 * `function`: asserts there is exactly one, at the line of SITE:site. */
static const jv_t *entry_of(const jv_t *doc, const char *function, const char *site)
{
    const jv_t *entries = jreq(doc, "entries", 'a'), *found = NULL;
    for (size_t i = 0; i < entries->n; i++) {
        const jv_t *frames = jreq(entries->items[i], "frames", 'a');
        if (frames->n > 0 && strcmp(jstr(frames->items[0], "function"), function) == 0) {
            cr_assert_null(found, "two entries for %s", function);
            found = entries->items[i];
        }
    }
    cr_assert_not_null(found, "no entry for %s", function);
    cr_expect_eq(jnum(jreq(found, "frames", 'a')->items[0], "line"), site_line(site),
                 "line of %s", function);
    return found;
}

/* ---- diff ------------------------------------------------------------------------ */

AN_TEST(diff_by_line)
{
    char *old = run_growth(2, "/old.mtsnap", NULL), *new = run_growth(5, "/new.mtsnap", NULL);
    jv_t *d = JSON(0, "diff", old, new, "--group-by", "line", "--format", "json", "--top", "0");

    cr_expect_neq(jnum(jreq(d, "old", 'o'), "pid"), jnum(jreq(d, "new", 'o'), "pid"));
    cr_expect_str_eq(jstr(d, "group_by"), "line");
    cr_expect_eq(jnum(d, "old_bytes"), 11360);
    cr_expect_eq(jnum(d, "new_bytes"), 33548);
    cr_expect_eq(jnum(d, "old_blocks"), 11);
    cr_expect_eq(jnum(d, "new_blocks"), 13);
    cr_expect_eq(jnum(d, "bytes_diff"), 22188, "total bytes_diff %lld", jnum(d, "bytes_diff"));
    cr_expect_eq(jnum(d, "blocks_diff"), 2);
    cr_expect_null(jget(d, "verdict"), "a verdict without a gate");

    static const struct {
        const char *function, *site, *status;
        long long bytes, bytes_diff, blocks, blocks_diff;
    } want[] = {
        {"site_bytes", "bytes", "both", 20480, 12288, 1, 0},
        {"site_only_big", "only_big", "new", 7000, 7000, 1, 1},
        {"site_grows", "grows", "both", 5000, 3000, 5, 3},
        {"site_only_small", "only_small", "gone", 0, -100, 0, -2},
        {"site_fixed", "fixed", "both", 300, 0, 3, 0},
        {"helper_lib_like", "helper", "both", 768, 0, 3, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const jv_t *e = entry_of(d, want[i].function, want[i].site);
        const char *fn = want[i].function;
        cr_expect_eq(jnum(e, "bytes"), want[i].bytes, "%s: bytes %lld", fn, jnum(e, "bytes"));
        cr_expect_eq(jnum(e, "bytes_diff"), want[i].bytes_diff, "%s: bytes_diff %lld", fn,
                     jnum(e, "bytes_diff"));
        cr_expect_eq(jnum(e, "blocks"), want[i].blocks, "%s: blocks %lld", fn, jnum(e, "blocks"));
        cr_expect_eq(jnum(e, "blocks_diff"), want[i].blocks_diff, "%s: blocks_diff %lld", fn,
                     jnum(e, "blocks_diff"));
        cr_expect_str_eq(jstr(e, "status"), want[i].status, "%s: status", fn);
    }
    const jv_t *entries = jreq(d, "entries", 'a');
    cr_expect_eq(entries->n, 6, "%zu lines", entries->n);
    cr_expect_eq(jnum(d, "total_entries"), 6);
    long long sum = 0, prev = LLONG_MAX;
    for (size_t i = 0; i < entries->n; i++) {
        long long bd = jnum(entries->items[i], "bytes_diff");
        sum += bd;
        cr_expect_leq(llabs(bd), prev, "entry %zu (|%lld|) after a smaller change", i, bd);
        prev = llabs(bd);
    }
    cr_expect_eq(sum, jnum(d, "bytes_diff"), "entries sum to %lld", sum);
    cr_expect_eq(jnum(entries->items[0], "bytes_diff"), 12288);

    /* --top 2 keeps the two largest changes; total_entries counts them all */
    d = JSON(0, "diff", old, new, "-g", "line", "-f", "json", "-n", "2");
    cr_expect_eq(jreq(d, "entries", 'a')->n, 2);
    cr_expect_eq(jnum(d, "total_entries"), 6);
    cr_expect_eq(jnum(jreq(d, "entries", 'a')->items[1], "bytes_diff"), 7000);
}

/* Two runs of `growth 3`, different pids (and load addresses, with ASLR):
 * every group matches, with no change, in every grouping. */
AN_TEST(diff_same_program)
{
    mta_snapshot_t *sa, *sb;
    char *a = run_growth(3, "/a.mtsnap", &sa), *b = run_growth(3, "/b.mtsnap", &sb);
    cr_expect_neq(sa->meta.pid, sb->meta.pid);
    for (uint32_t i = 0; i < sa->nmodules; i++)   /* the addresses differ too, with ASLR */
        for (uint32_t k = 0; k < sb->nmodules; k++)
            if (strcmp(sa->modules[i].path, sa->exe) == 0 &&
                strcmp(sb->modules[k].path, sb->exe) == 0 &&
                sa->modules[i].start == sb->modules[k].start)
                cr_log_warn("both runs loaded %s at %#llx (ASLR off?)", sa->exe,
                            (unsigned long long)sa->modules[i].start);
    static const struct { const char *by; size_t n; } groupings[] = {
        {"stack", 6}, {"function", 5}, {"line", 5}, {"file", 1}, {"module", 1},
    };
    for (size_t g = 0; g < sizeof(groupings) / sizeof(groupings[0]); g++) {
        const char *by = groupings[g].by;
        jv_t *d = JSON(0, "diff", a, b, "--group-by", by, "--format", "json", "--top", "0");
        const jv_t *entries = jreq(d, "entries", 'a');
        cr_expect_eq(entries->n, groupings[g].n, "by %s: %zu entries", by, entries->n);
        cr_expect_eq(jnum(d, "bytes_diff"), 0, "by %s: bytes_diff %lld", by, jnum(d, "bytes_diff"));
        cr_expect_eq(jnum(d, "new_bytes"), (long long)growth_bytes(3));
        size_t helpers = 0;
        for (size_t i = 0; i < entries->n; i++) {
            const jv_t *e = entries->items[i], *fr = jreq(e, "frames", 'a');
            cr_expect_eq(jnum(e, "bytes_diff"), 0, "by %s: %s changed by %lld", by,
                         jstr(e, "key"), jnum(e, "bytes_diff"));
            cr_expect_eq(jnum(e, "blocks_diff"), 0, "by %s: %s", by, jstr(e, "key"));
            cr_expect_str_eq(jstr(e, "status"), "both", "by %s: %s", by, jstr(e, "key"));
            if (fr->n == 0 || strcmp(jstr(fr->items[0], "function"), "helper_lib_like") != 0)
                continue;
            helpers++;
            /* by stack: caller_a's 256 B apart from caller_b's 512 B */
            long long want = strcmp(by, "stack") != 0 ? 768
                             : strcmp(jstr(fr->items[1], "function"), "caller_a") == 0 ? 256
                                                                                       : 512;
            cr_expect_eq(jnum(e, "bytes"), want, "by %s: helper %lld", by, jnum(e, "bytes"));
        }
        if (groupings[g].n > 1)
            cr_expect_eq(helpers, strcmp(by, "stack") == 0 ? 2 : 1, "by %s: %zu helper entries",
                         by, helpers);
    }
    mt_run_t r;
    cr_expect_eq(MT(&r, "diff", a, b, "-g", "function"), 0);
    cr_expect(strstr(r.out, "\nlive: 23,356 B (22.8 KiB) in 11 blocks -> 23,356 B (22.8 KiB) in "
                            "11 blocks: 0 B, +0 blocks\n") != NULL, "text:\n%s", r.out);
    mt_run_free(&r);
    mta_snapshot_free(sa);
    mta_snapshot_free(sb);
}

/* ---- gates ---------------------------------------------------------------------- */

/* diff OLD NEW GATE VALUE, in text and JSON: exit status and verdict. */
static void expect_gate(const char *old, const char *new, const char *gate, const char *value,
                        int fail)
{
    mt_run_t r;
    int rc = MT(&r, "diff", old, new, gate, value);
    char *last = last_line(r.out);
    const char *want = fail ? "verdict: FAIL: " : "verdict: ok: ";
    cr_expect_eq(rc, fail, "%s %s: exit %d, want %d; stderr %s", gate, value, rc, fail, r.err);
    cr_expect(strncmp(last, want, strlen(want)) == 0 && strstr(last, gate) != NULL,
              "%s %s: last line \"%s\"", gate, value, last);
    mt_run_free(&r);
    jv_t *d = JSON(fail, "diff", old, new, gate, value, "--format", "json");
    const jv_t *v = jreq(d, "verdict", 'o');
    cr_expect_eq(jbool(v, "failed"), fail, "%s %s: JSON verdict.failed", gate, value);
    cr_expect_eq(strncmp(jstr(v, "message"), want + 9, strlen(want + 9)), 0);
}

AN_TEST(diff_gates)
{
    char *old = run_growth(2, "/old.mtsnap", NULL), *new = run_growth(5, "/new.mtsnap", NULL);
    /* total +22,188 B, +2 blocks; the largest change of a site +12,288 B */
    static const struct { const char *gate, *value; int fail; } gates[] = {
        {"--fail-on-growth", "22187", 1},     {"--fail-on-growth", "22188", 0},
        {"--fail-on-growth", "22KB", 1},      {"--fail-on-growth", "22KiB", 0},
        {"--fail-on-growth", "0.022188MB", 0}, {"--fail-on-growth-per-site", "12287", 1},
        {"--fail-on-growth-per-site", "12288", 0}, {"--fail-on-growth-per-site", "12KB", 1},
        {"--fail-on-growth-per-site", "12KiB", 0}, {"--fail-on-blocks", "1", 1},
        {"--fail-on-blocks", "2", 0},
    };
    for (size_t i = 0; i < sizeof(gates) / sizeof(gates[0]); i++)
        expect_gate(old, new, gates[i].gate, gates[i].value, gates[i].fail);
    /* new -> old: the totals shrink, only site_only_small grows (+100 B) */
    expect_gate(new, old, "--fail-on-growth", "0", 0);
    expect_gate(new, old, "--fail-on-blocks", "0", 0);
    expect_gate(new, old, "--fail-on-growth-per-site", "99", 1);
    expect_gate(new, old, "--fail-on-growth-per-site", "100", 0);

    jv_t *d = JSON(1, "diff", old, new, "-f", "json", "--fail-on-growth", "22KB",
                   "--fail-on-growth-per-site", "20000", "--fail-on-blocks", "5");
    const jv_t *v = jreq(d, "verdict", 'o');
    cr_expect_eq(jnum(v, "fail_on_growth"), 22000);
    cr_expect_eq(jnum(v, "fail_on_growth_per_site"), 20000);
    cr_expect_eq(jnum(v, "fail_on_blocks"), 5);
    cr_expect_str_eq(jstr(v, "message"), "FAIL: live memory changed by +22,188 B (+21.7 KiB), "
                                         "above the limit of 22,000 B (21.5 KiB) "
                                         "(--fail-on-growth)");
    mt_run_t r;
    /* the worst site is named; --top does not hide sites from the gate */
    cr_expect_eq(MT(&r, "diff", old, new, "-g", "function", "-n", "1", "--fail-on-growth-per-site",
                    "3KB"), 1);
    char *last = last_line(r.out);
    cr_expect_str_eq(last, "verdict: FAIL: 2 sites grew by more than 3,000 B (2.9 KiB) "
                           "(--fail-on-growth-per-site), the most +12,288 B (+12.0 KiB) at "
                           "site_bytes [growth]");
    mt_run_free(&r);

    /* Markdown: the heading first, the verdict, a table row for site_grows. */
    cr_expect_eq(MT(&r, "diff", old, new, "-g", "line", "-f", "markdown", "--fail-on-blocks",
                    "1"), 1);
    cr_expect_eq(strncmp(r.out, "### :x: memtrail: live memory grew by +22,188 B", 47), 0,
                 "markdown starts with \"%.60s\"", r.out);
    cr_expect(strstr(r.out, "\n**FAIL: live blocks changed by +2, above the limit of 1 "
                            "(--fail-on-blocks)**\n") != NULL, "markdown:\n%s", r.out);
    char want[160];
    snprintf(want, sizeof(want), "growth.c:%u` in `site_grows` [growth] |\n", site_line("grows"));
    const char *row = strstr(r.out, want);
    cr_expect_not_null(row, "no row for site_grows (%s) in:\n%s", want, r.out);
    while (row != NULL && row > r.out && row[-1] != '\n')
        row--;
    const char *cells = "| 3 | +3,000 B (+2.9 KiB) | +3 | 5,000 B (4.9 KiB) | `";
    cr_expect(row != NULL && strncmp(row, cells, strlen(cells)) == 0, "row: %.100s", row);
    mt_run_free(&r);
    cr_expect_eq(MT(&r, "diff", old, new, "-f", "markdown", "--fail-on-blocks", "2"), 0);
    cr_expect_eq(strncmp(r.out, "### :white_check_mark: memtrail: live memory grew by", 52), 0,
                 "%.80s", r.out);
    mt_run_free(&r);
}

AN_TEST(report_fail_above)
{
    char *snap = run_growth(5, "/g5.mtsnap", NULL);
    static const struct { const char *limit, *filter; int fail; } cases[] = {
        {"33547", NULL, 1}, {"33548", NULL, 0}, {"32KiB", NULL, 1}, {"33.548KB", NULL, 0},
        {"4999", "function:site_grows", 1}, {"5000", "function:site_grows", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *lim = cases[i].limit, *flt = cases[i].filter;
        const char *args[] = {"report", snap, "--fail-above", lim, "-f", "text",
                              flt ? "--include" : NULL, flt, NULL};
        const char *want = cases[i].fail ? "verdict: FAIL: " : "verdict: ok: ";
        mt_run_t r;
        int rc = mt_argv(&r, args);
        char *last = last_line(r.out);
        cr_expect_eq(rc, cases[i].fail, "--fail-above %s: exit %d; %s", lim, rc, r.err);
        cr_expect_eq(strncmp(last, want, strlen(want)), 0, "--fail-above %s: \"%s\"", lim, last);
        mt_run_free(&r);
        args[5] = "json";
        jv_t *d = json_argv(cases[i].fail, args);
        cr_expect_eq(jbool(jreq(d, "verdict", 'o'), "failed"), cases[i].fail);
        cr_expect_eq(jnum(d, "selected_bytes"), flt ? 5000 : 33548);
    }
}

/* ---- filters -------------------------------------------------------------------- */

typedef struct filter_case {
    const char *args[5];     /* filter options, NULL-terminated */
    long long a, b;          /* report: selected bytes, blocks; diff: new_bytes, bytes_diff */
} filter_case_t;

/* `memtrail CMD FILE [FILE2] -g function -f json --top 0 FILTERS...` */
static jv_t *filtered_json(const char *cmd, const char *a, const char *b, const char *const *f)
{
    const char *args[24] = {cmd, a, b, "-n", "0", "-g", "function", "-f", "json"};
    size_t n = b != NULL ? 3 : 2;
    for (size_t i = 3; i < 9; i++)
        args[n++] = args[i];
    for (; *f != NULL; f++)
        args[n++] = *f;
    args[n] = NULL;
    return json_argv(0, args);
}

/* Each case's figures (keys ka and kb of the JSON); the entries' `ksum`
 * values must add up to the figure of ka (report) or kb (diff). */
static void check_filters(const char *cmd, const char *a, const char *b, const filter_case_t *c,
                          size_t n, const char *ka, const char *kb, const char *ksum)
{
    for (; n-- > 0; c++) {
        char *what = join(c->args);
        jv_t *d = filtered_json(cmd, a, b, c->args);
        const jv_t *entries = jreq(d, "entries", 'a');
        long long sum = 0, want_sum = b != NULL ? c->b : c->a;
        cr_expect_eq(jnum(d, ka), c->a, "%s%s: %s %lld, want %lld", cmd, what, ka, jnum(d, ka),
                     c->a);
        cr_expect_eq(jnum(d, kb), c->b, "%s%s: %s %lld, want %lld", cmd, what, kb, jnum(d, kb),
                     c->b);
        cr_expect_eq(jbool(d, "filtered"), c->args[0] != NULL, "%s%s: filtered", cmd, what);
        for (size_t k = 0; k < entries->n; k++)
            sum += jnum(entries->items[k], ksum);
        cr_expect_eq(sum, want_sum, "%s%s: entries sum to %lld", cmd, what, sum);
    }
}

AN_TEST(report_filters)
{
    char *snap = run_growth(5, "/g5.mtsnap", NULL);
    /* growth 5: fixed 300/3, grows 5000/5, bytes 20480/1, only_big 7000/1,
     * helper 768/3 (caller_a 256/1, caller_b 512/2): 33548/13 */
    static const filter_case_t cases[] = {
        {{NULL}, 33548, 13}, {{"--include", "function:site_grows"}, 5000, 5},
        {{"--exclude", "function:site_grows"}, 28548, 8},
        {{"--include", "function:site_*"}, 32780, 10},
        {{"--include", "function:site_fixed", "--include", "function:site_only_big"}, 7300, 4},
        {{"--include", "function:site_*", "--exclude", "function:site_bytes"}, 12300, 9},
        {{"--include", "file:*/programs/growth.c"}, 33548, 13},
        {{"--exclude", "file:*growth.c"}, 0, 0}, {{"--include", "file:*.py"}, 0, 0},
        {{"--include", "module:growth"}, 33548, 13},
        {{"--include", "module:/*/growth"}, 33548, 13},
        {{"--exclude", "module:growth"}, 0, 0}, {{"--include", "module:libc.so*"}, 0, 0},
        {{"--include", "helper_lib_like"}, 768, 3}, {{"--include", "*growth.c"}, 33548, 13},
        {{"--include", "growth"}, 33548, 13}, {{"--exclude", "site_b*"}, 13068, 12},
        {{"--include", "function:main"}, 0, 0},
        {{"--include", "function:main", "--all-frames"}, 33548, 13},
        {{"--include", "function:caller_b"}, 0, 0},
        {{"--include", "function:caller_b", "--all-frames"}, 512, 2},
        {{"--exclude", "function:caller_?", "--all-frames"}, 32780, 10},
        {{"--exclude", "module:libc.so*", "--all-frames"}, 0, 0},
        {{"--domain", "native"}, 33548, 13}, {{"--domain", "python"}, 0, 0},
        {{"--domain", "obj"}, 0, 0}, {{"--domain", "7"}, 0, 0},
        {{"--exclude-domain", "native"}, 0, 0},
        {{"--exclude-domain", "python", "--include", "site_grows"}, 5000, 5},
    };
    check_filters("report", snap, NULL, cases, sizeof(cases) / sizeof(cases[0]),
                  "selected_bytes", "selected_blocks", "bytes");
}

AN_TEST(diff_filters)
{
    char *old = run_growth(2, "/old.mtsnap", NULL), *new = run_growth(5, "/new.mtsnap", NULL);
    static const filter_case_t cases[] = {   /* new_bytes, bytes_diff */
        {{NULL}, 33548, 22188}, {{"--include", "function:site_grows"}, 5000, 3000},
        {{"--exclude", "function:site_bytes"}, 13068, 9900},
        {{"--include", "site_only_*"}, 7000, 6900},
        {{"--include", "file:*growth.c"}, 33548, 22188},
        {{"--exclude", "module:growth"}, 0, 0},
        {{"--include", "module:growth", "--exclude", "helper*"}, 32780, 22188},
        {{"--include", "function:main"}, 0, 0},
        {{"--include", "function:main", "--all-frames"}, 33548, 22188},
        {{"--include", "function:caller_a", "--all-frames"}, 256, 0},
        {{"--domain", "native"}, 33548, 22188}, {{"--domain", "python"}, 0, 0},
    };
    check_filters("diff", old, new, cases, sizeof(cases) / sizeof(cases[0]), "new_bytes",
                  "bytes_diff", "bytes_diff");
}

/* ---- Python domains -------------------------------------------------------------- */

static void report_sel(const char *snap, const char *const *f, long long *bytes,
                       long long *blocks)
{
    jv_t *d = filtered_json("report", snap, NULL, f);
    *bytes = jnum(d, "selected_bytes");
    *blocks = jnum(d, "selected_blocks");
}
#define SEL(snap, b, n, ...) report_sel((snap), (const char *const[]){__VA_ARGS__, NULL}, (b), (n))

AN_TEST(python_domains)
{
    const mt_python_t *py = NULL;
    for (size_t i = 0; i < sizeof(mt_pythons) / sizeof(mt_pythons[0]) && py == NULL; i++)
        if (access(mt_pythons[i].path, X_OK) == 0)
            py = &mt_pythons[i];
    if (py == NULL)
        cr_skip_test("no interpreter of tests/python/pythons.h is installed");
    char *script = cat(mt_dir, "/alloc_script.py");
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs("keep = []\n\n\ndef work():\n"
          "    keep.append(bytearray(100000))\n"   /* line 5 */
          "    keep.append([None] * 1000)\n\n\nwork()\n", f);
    cr_assert_eq(fclose(f), 0);
    const char *argv[] = {py->path, script, NULL}, *env[] = {"PYTHONDONTWRITEBYTECODE=1", NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, env, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "%s: status %#x: %s",
              py->path, run.status, run.err);
    mt_run_free(&run);
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "exit");
    const char *snap = s->path;

    /* Each domain's blocks, counted in the snapshot, against --domain. */
    long long want_b[4] = {0}, want_n[4] = {0}, total_b, total_n, b, n, sum_b = 0, sum_n = 0;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        cr_assert_lt(s->blocks[i].domain, 4, "block of domain %u", s->blocks[i].domain);
        want_b[s->blocks[i].domain] += (long long)s->blocks[i].size;
        want_n[s->blocks[i].domain]++;
    }
    static const char *const names[] = {"native", "raw", "mem", "obj"};
    SEL(snap, &total_b, &total_n, "-n", "0");
    cr_expect_eq(total_b, (long long)s->totals.live_bytes);
    for (int d = 0; d < 4; d++) {
        SEL(snap, &b, &n, "--domain", names[d]);
        cr_expect_eq(b, want_b[d], "--domain %s: %lld bytes, want %lld", names[d], b, want_b[d]);
        cr_expect_eq(n, want_n[d], "--domain %s: %lld blocks, want %lld", names[d], n, want_n[d]);
        sum_b += b;
        sum_n += n;
    }
    cr_expect_eq(sum_b, total_b, "domains sum to %lld of %lld bytes", sum_b, total_b);
    cr_expect_eq(sum_n, total_n);
    cr_expect_gt(want_b[3], 0, "no obj blocks");
    long long py_b, py_n;
    SEL(snap, &py_b, &py_n, "--domain", "python");
    cr_expect_eq(py_b, want_b[1] + want_b[2] + want_b[3]);
    cr_expect_eq(py_n, want_n[1] + want_n[2] + want_n[3]);
    cr_expect_geq(py_b, 100000);
    SEL(snap, &b, &n, "--domain", "python", "--domain", "native");
    cr_expect_eq(b, total_b);
    SEL(snap, &b, &n, "--exclude-domain", "native");
    cr_expect_eq(b, py_b);

    /* The script's lines: by file:, by a bare glob, and among '*.py' */
    jv_t *d = filtered_json("report", snap, NULL, (const char *const[]){"-g", "line",
                            "--include", "file:*alloc_script.py", NULL});
    const jv_t *entries = jreq(d, "entries", 'a');
    long long sel = jnum(d, "selected_bytes"), line5 = -1, script_b = 0;
    cr_expect_geq(entries->n, 2);
    for (size_t i = 0; i < entries->n; i++) {
        const jv_t *fr = jreq(entries->items[i], "frames", 'a')->items[0];
        cr_expect_str_eq(jstr(fr, "file"), script);
        cr_expect_str_eq(jstr(fr, "kind"), "python");
        if (jnum(fr, "line") == 5)
            line5 = jnum(entries->items[i], "bytes");
    }
    cr_expect_geq(line5, 100000, "the bytearray's line holds %lld bytes", line5);
    SEL(snap, &b, &n, "--include", "*alloc_script.py");
    cr_expect_eq(b, sel, "--include '*alloc_script.py': %lld, with file: %lld", b, sel);
    SEL(snap, &b, &n, "--exclude", "file:*alloc_script.py");
    cr_expect_eq(b, total_b - sel);
    d = filtered_json("report", snap, NULL, (const char *const[]){"-g", "line", "--include",
                      "*.py", NULL});
    entries = jreq(d, "entries", 'a');
    for (size_t i = 0; i < entries->n; i++) {
        const char *file = jstr(jreq(entries->items[i], "frames", 'a')->items[0], "file");
        cr_expect(strlen(file) > 3 && strcmp(file + strlen(file) - 3, ".py") == 0, "%s", file);
        script_b += strcmp(file, script) == 0 ? jnum(entries->items[i], "bytes") : 0;
    }
    cr_expect_eq(script_b, sel, "'*.py': the script's lines hold %lld, want %lld", script_b, sel);
    mta_snapshot_free(s);
}

/* ---- export ------------------------------------------------------------------------ */

AN_TEST(export_pprof)
{
    mta_snapshot_t *s;
    char *snap = run_growth(5, "/g5.mtsnap", &s), *out = cat(mt_dir, "/heap.pb.gz");
    char *prog = an_keep(mt_program("growth")), exe[PATH_MAX], err[256];
    cr_assert_not_null(realpath(prog, exe));
    mt_run_t r;
    cr_assert_eq(MT(&r, "export", snap, "--format", "pprof", "-o", out), 0, "%s", r.err);
    cr_expect(r.out[0] == '\0' && r.err[0] == '\0', "output: %s%s", r.out, r.err);
    mt_run_free(&r);

    ppr_profile_t *p = NULL;
    cr_assert_eq(ppr_read_file(out, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
    static const char *const types[4][2] = {{"alloc_objects", "count"}, {"alloc_space", "bytes"},
                                            {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
    cr_assert_eq(p->nsample_types, 4);
    for (int i = 0; i < 4; i++) {
        cr_expect_str_eq(ppr_str(p, p->sample_types[i].type), types[i][0]);
        cr_expect_str_eq(ppr_str(p, p->sample_types[i].unit), types[i][1]);
    }
    cr_expect_str_eq(ppr_str(p, p->default_sample_type), "inuse_space");
    int64_t sums[4] = {0}, grows_space = -1, grows_objects = -1;
    const ppr_location_t *grows = NULL;
    for (size_t i = 0; i < p->nsamples; i++) {
        const ppr_sample_t *smp = &p->samples[i];
        for (int k = 0; k < 4; k++)
            sums[k] += smp->values[k];
        cr_assert_gt(smp->nlocs, 0);
        const ppr_location_t *loc = ppr_location(p, smp->location_ids[0]);
        cr_assert(loc != NULL && loc->nlines == 1);
        const ppr_function_t *fn = ppr_function(p, loc->lines[0].function_id);
        if (strcmp(ppr_str(p, fn->name), "site_grows") != 0)
            continue;
        cr_expect_null(grows, "two samples at site_grows");
        grows = loc;
        grows_space = smp->values[3];
        grows_objects = smp->values[2];
        cr_expect_eq(loc->lines[0].line, site_line("grows"), "site_grows line %lld",
                     (long long)loc->lines[0].line);
        cr_expect(strstr(ppr_str(p, fn->filename), "growth.c") != NULL);
    }
    cr_expect_eq(sums[3], 33548, "inuse_space sums to %lld", (long long)sums[3]);
    cr_expect_eq(sums[3], (int64_t)s->totals.live_bytes);
    cr_expect_eq(sums[2], 13);
    cr_expect_eq(sums[1], (int64_t)s->totals.alloc_bytes);
    cr_expect_eq(sums[1], 33548 + 2 * 64, "alloc_space sums to %lld", (long long)sums[1]);
    cr_expect_eq(sums[0], 15);
    cr_assert_not_null(grows, "no sample at site_grows");
    cr_expect_eq(grows_space, 5000);
    cr_expect_eq(grows_objects, 5);
    const ppr_mapping_t *m = ppr_mapping(p, grows->mapping_id);
    cr_assert_not_null(m, "site_grows has no mapping");
    cr_expect_str_eq(ppr_str(p, m->filename), exe);
    const char *want_id = NULL;
    for (uint32_t i = 0; i < s->nmodules; i++)
        if (strcmp(s->modules[i].path, exe) == 0)
            want_id = s->modules[i].build_id;
    cr_assert_not_null(want_id, "the snapshot has no module %s", exe);
    cr_expect_neq(want_id[0], '\0', "%s has no build id", exe);
    cr_expect_str_eq(ppr_str(p, m->build_id), want_id);
    cr_expect(grows->address >= m->memory_start && grows->address < m->memory_limit);
    ppr_free(p);

    /* go tool pprof, when Go is installed (env exits 127 when it is not) */
    char *home = cat("HOME=", mt_dir);
    const char *go[] = {"/usr/bin/env", home, "go", "tool", "pprof", "-symbolize=none", "-raw",
                        out, NULL};
    cr_assert_eq(run_bare_capture(go, &r), 0);
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127) {
        cr_log_info("go is not on PATH: go tool pprof not tried");
    } else {
        cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "go tool pprof: %#x: %s",
                  r.status, r.err);
        cr_expect(strstr(r.out, " site_grows ") != NULL, "go tool pprof -raw:\n%s", r.out);
        cr_expect(strstr(r.out, "inuse_space/bytes[dflt]") != NULL);
    }
    mt_run_free(&r);
    mta_snapshot_free(s);
}

/* Sum of the weights of collapsed lines ("frame;...;frame N", each checked);
 * in *leaf_w the weight of the lines whose leaf is "leaf (...growth.c:LINE)". */
static long long collapsed_sum(const char *text, const char *leaf, unsigned line,
                               long long *leaf_w)
{
    long long sum = 0;
    char head[96], tail[64];
    snprintf(head, sizeof(head), "%s (", leaf);
    snprintf(tail, sizeof(tail), "growth.c:%u)", line);
    *leaf_w = 0;
    cr_expect_neq(text[0], '\0', "no collapsed lines");
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "collapsed output does not end with a newline");
        char *l = strndup(p, (size_t)(nl - p)), *sp = strrchr(l, ' '), *end;
        cr_assert(sp != NULL && sp > l, "collapsed line \"%s\"", l);
        long long w = strtoll(sp + 1, &end, 10);
        cr_expect(*end == '\0' && sp[1] != '\0' && w != 0, "weight of \"%s\"", l);
        sum += w;
        *sp = '\0';
        char *lf = strrchr(l, ';') ? strrchr(l, ';') + 1 : l;
        size_t ll = strlen(lf);
        if (strncmp(lf, head, strlen(head)) == 0 && ll > strlen(tail) &&
            strcmp(lf + ll - strlen(tail), tail) == 0)
            *leaf_w += w;
        free(l);
        p = nl + 1;
    }
    return sum;
}

/* `diff --format collapsed` read back: one line per stack of either
 * snapshot, with the stack's live bytes in OLD and in NEW, exactly as the
 * diff's JSON has them; the columns sum to the snapshots' live totals; the
 * sites growth.c documents have their figures. */
static void check_diff_folded(const char *text, const char *old, const char *new,
                              const mta_snapshot_t *so, const mta_snapshot_t *sn)
{
    folded2_t v[64];
    size_t n = parse_folded2(text, v, 64);
    long long sum_old = 0, sum_new = 0;
    for (size_t i = 0; i < n; i++) {
        sum_old += v[i].old;
        sum_new += v[i].new;
    }
    cr_expect_eq(sum_old, (long long)so->totals.live_bytes, "OLD column sums to %lld", sum_old);
    cr_expect_eq(sum_new, (long long)sn->totals.live_bytes, "NEW column sums to %lld", sum_new);
    jv_t *d = JSON(0, "diff", old, new, "--format", "json", "--top", "0");
    const jv_t *entries = jreq(d, "entries", 'a');
    cr_expect_eq(n, entries->n, "%zu lines for %zu stacks", n, entries->n);
    for (size_t i = 0; i < entries->n && i < n; i++) {
        char *stack = json_stack(entries->items[i]);
        long long bytes = jnum(entries->items[i], "bytes");
        long long was = bytes - jnum(entries->items[i], "bytes_diff");
        size_t k = 0;
        while (k < n && strcmp(v[k].stack, stack) != 0)
            k++;
        cr_expect_lt(k, n, "no line for %s", stack);
        if (k < n) {
            cr_expect_eq(v[k].old, was, "%s: OLD %lld, want %lld", stack, v[k].old, was);
            cr_expect_eq(v[k].new, bytes, "%s: NEW %lld, want %lld", stack, v[k].new, bytes);
        }
        free(stack);
    }
    static const struct { const char *site; long long old, new; } want[] = {
        {"only_small", 100, 0}, {"only_big", 0, 7000}, {"grows", 2000, 5000}, {"fixed", 300, 300},
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        char leaf[64];
        size_t found = 0, ll = (size_t)snprintf(leaf, sizeof(leaf), "growth.c:%u)",
                                                site_line(want[w].site));
        for (size_t i = 0; i < n; i++) {
            size_t ls = strlen(v[i].stack);
            if (ls >= ll && strcmp(v[i].stack + ls - ll, leaf) == 0 && ++found)
                cr_expect(v[i].old == want[w].old && v[i].new == want[w].new,
                          "%s: %lld %lld", want[w].site, v[i].old, v[i].new);
        }
        cr_expect_eq(found, 1, "site %s: %zu lines", want[w].site, found);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].stack);
}

AN_TEST(export_text_formats)
{
    mta_snapshot_t *so, *sn;
    char *old = run_growth(2, "/old.mtsnap", &so), *new = run_growth(5, "/new.mtsnap", &sn);
    char *out = cat(mt_dir, "/grows.folded");
    unsigned grows_line = site_line("grows");
    mt_run_t r;
    long long w;
    cr_assert_eq(MT(&r, "export", new, "--format", "collapsed"), 0, "%s", r.err);
    cr_expect_eq(collapsed_sum(r.out, "site_grows", grows_line, &w), 33548);
    cr_expect_eq(w, 5000, "site_grows leaf weight %lld", w);
    cr_expect(strstr(r.out, ";main (") != NULL);
    mt_run_free(&r);
    /* -o OUT, with a filter */
    cr_assert_eq(MT(&r, "export", new, "-f", "collapsed", "-o", out, "--include",
                    "function:site_grows"), 0, "%s", r.err);
    mt_run_free(&r);
    cr_assert_eq(run_bare_capture((const char *const[]){"/bin/cat", out, NULL}, &r), 0);
    cr_expect_eq(collapsed_sum(r.out, "site_grows", grows_line, &w), 5000);
    cr_expect_eq(w, 5000);
    mt_run_free(&r);

    jv_t *d = JSON(0, "export", new, "--format", "speedscope");
    cr_expect_str_eq(jstr(d, "$schema"), "https://www.speedscope.app/file-format-schema.json");
    const jv_t *prof = jreq(d, "profiles", 'a');
    cr_assert_eq(prof->n, 1);
    prof = prof->items[0];
    cr_expect_str_eq(jstr(prof, "unit"), "bytes");
    cr_expect_str_eq(jstr(prof, "type"), "sampled");
    cr_expect_eq(jnum(prof, "startValue"), 0);
    cr_expect_eq(jnum(prof, "endValue"), 33548);
    const jv_t *samples = jreq(prof, "samples", 'a'), *weights = jreq(prof, "weights", 'a');
    const jv_t *frames = jreq(jreq(d, "shared", 'o'), "frames", 'a');
    cr_expect_eq(samples->n, weights->n);
    long long sum = 0, grows = 0;
    for (size_t i = 0; i < weights->n && i < samples->n; i++) {
        const jv_t *st = samples->items[i];
        sum += weights->items[i]->num;
        cr_assert_gt(st->n, 0);
        long long leaf = st->items[st->n - 1]->num;
        cr_assert(leaf >= 0 && (size_t)leaf < frames->n);
        if (strcmp(jstr(frames->items[leaf], "name"), "site_grows") == 0) {
            grows += weights->items[i]->num;
            cr_expect_eq(jnum(frames->items[leaf], "line"), grows_line);
        }
    }
    cr_expect_eq(sum, 33548, "speedscope weights sum to %lld", sum);
    cr_expect_eq(grows, 5000);

    /* diff --format collapsed: "stack OLD NEW"; a gate's verdict on stderr */
    cr_assert_eq(MT(&r, "diff", old, new, "--format", "collapsed"), 0, "%s", r.err);
    cr_expect_str_eq(r.err, "");
    check_diff_folded(r.out, old, new, so, sn);
    mt_run_free(&r);
    cr_expect_eq(MT(&r, "diff", old, new, "-f", "collapsed", "--fail-on-blocks", "1"), 1);
    cr_expect_eq(strncmp(r.err, "memtrail: diff: verdict: FAIL: ", 31), 0, "stderr %s", r.err);
    mt_run_free(&r);
    mta_snapshot_free(so);
    mta_snapshot_free(sn);
}

/* ---- bad input ---------------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Exit status 2, nothing on stdout, one line "memtrail: ..." holding `what`. */
static void expect_error(const char *what, const char *const *args)
{
    mt_run_t r;
    int rc = mt_argv(&r, args);
    char *cmd = join(args);
    const char *nl = strchr(r.err, '\n');
    cr_expect_eq(rc, 2, "memtrail%s: exit %d, want 2", cmd, rc);
    cr_expect_str_eq(r.out, "", "memtrail%s: stdout", cmd);
    cr_expect(strncmp(r.err, "memtrail: ", 10) == 0 && nl != NULL && nl[1] == '\0',
              "memtrail%s: stderr is not one line \"memtrail: ...\": \"%s\"", cmd, r.err);
    cr_expect(strstr(r.err, what) != NULL, "memtrail%s: \"%s\" not in \"%s\"", cmd, what, r.err);
    mt_run_free(&r);
}
#define EXPECT_ERROR(what, ...) expect_error((what), (const char *const[]){__VA_ARGS__, NULL})

AN_TEST(bad_input)
{
    char *good = run_growth(2, "/good.mtsnap", NULL);
    FILE *f = fopen(good, "rb");
    cr_assert_not_null(f);
    unsigned char *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    cr_assert(len > 64 && len < (1 << 20));
    char *trunc = cat(mt_dir, "/trunc.mtsnap"), *crc = cat(mt_dir, "/crc.mtsnap");
    char *newer = cat(mt_dir, "/newer.mtsnap"), *missing = cat(mt_dir, "/missing.mtsnap");
    char *out1 = cat(mt_dir, "/nodir/x.txt"), *out2 = cat(mt_dir, "/nodir/x.pb.gz");
    write_file(trunc, buf, len / 2);
    /* a payload byte of the record holding the middle of the file (record
     * headers: 16 bytes in version 1, 32 in version 2, which the tracer writes) */
    cr_assert_eq(buf[8], MTSNAP_VERSION);
    size_t hl = sizeof(mtsnap_record_header_v2_t);
    size_t off = 16, mid = len / 2, at = 0;
    while (off + hl <= len && at == 0) {
        uint64_t plen;
        memcpy(&plen, buf + off + 8, 8);
        if (mid < off + hl + plen)
            at = mid >= off + hl ? mid : off + hl;
        off += hl + plen;
    }
    cr_assert_neq(at, 0);
    buf[at] ^= 0x5a;
    write_file(crc, buf, len);
    buf[at] ^= 0x5a;
    buf[8] = MTSNAP_VERSION + 1;   /* version, u16 little-endian */
    buf[9] = 0;
    write_file(newer, buf, len);

    EXPECT_ERROR("truncated", "report", trunc);
    EXPECT_ERROR("truncated", "diff", trunc, good);
    EXPECT_ERROR("CRC mismatch", "report", crc);
    EXPECT_ERROR("CRC mismatch", "diff", good, crc);
    EXPECT_ERROR("newer", "report", newer);
    EXPECT_ERROR("newer", "export", newer, "-f", "collapsed");
    EXPECT_ERROR("newer", "diff", good, newer);   /* snapshots of two format versions */
    EXPECT_ERROR("No such file", "diff", good, missing);
    EXPECT_ERROR("No such file", "diff", missing, good, "-f", "json");
    EXPECT_ERROR("--group-by", "diff", good, good, "--group-by", "address");
    EXPECT_ERROR("--group-by", "report", good, "-g", "stacks");
    EXPECT_ERROR("--format", "diff", good, good, "--format", "yaml");
    EXPECT_ERROR("--format", "report", good, "--format", "markdown");
    EXPECT_ERROR("--format", "export", good, "--format", "svg");
    EXPECT_ERROR("12XB", "diff", good, good, "--fail-on-growth", "12XB");
    EXPECT_ERROR("12XB", "diff", good, good, "--fail-on-growth-per-site", "12XB");
    EXPECT_ERROR("-3", "diff", good, good, "--fail-on-blocks", "-3");
    EXPECT_ERROR("12XB", "report", good, "--fail-above", "12XB");
    EXPECT_ERROR("--domain", "report", good, "--domain", "heap");
    EXPECT_ERROR("--format", "export", good);
    EXPECT_ERROR("nodir", "export", good, "-f", "collapsed", "-o", out1);
    EXPECT_ERROR("nodir", "export", good, "-f", "pprof", "-o", out2);
    free(buf);
}
