/* Integration tests of the peak in the analyzer's commands, on programs
 * whose peak is made by a site that frees all it allocated before exit:
 * tests/programs/peak.c (N MiB at site_spike) and tests/python/peak.py (a
 * 50 MB bytearray on one line), on every interpreter of pythons.h. `report
 * --metric peak` ranks that site first with its exact bytes while the
 * default (live) report does not list it; the text header says when the
 * peak happened and names the site; `report --fail-on-peak` and `diff
 * --fail-on-peak-growth` fail just below the figure and pass at it; bad
 * values of the new options are one-line errors with exit status 2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "anutil.h"
#include "common.h"
#include "harness.h"
#include "../python/pythons.h"

#define PEAK_SRC "tests/programs/peak.c"
#define PEAK_TEST(name) Test(peak, name, .init = mt_setup, .fini = an_fini, .timeout = 120)
#define MIB 1048576ull

/* Runs argv under the tracer (exit status 0, stdout into *out when out is
 * not NULL), renames its exit snapshot to mt_dir/NAME and returns that
 * path; the loaded snapshot in *snap. */
static char *run_one(const char *const *argv, const char *name, mta_snapshot_t **snap,
                     char **out)
{
    static const char *const env[] = {"PYTHONDONTWRITEBYTECODE=1", NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, env, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "%s under memtrail: wait status %#x, stderr: %s", argv[0], run.status, run.err);
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "exit");
    char *path = cat(mt_dir, name);
    cr_assert_eq(rename(s->path, path), 0);
    if (out != NULL)
        *out = an_keep(strdup(run.out));
    mt_run_free(&run);
    /* the other snapshots (a Python process's final one) go */
    char *cmd = NULL;
    cr_assert_gt(asprintf(&cmd, "rm -f %s/memtrail.*.mtsnap", mt_dir), 0);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    *snap = s;
    return path;
}

static char *run_peak(unsigned n, const char *name, mta_snapshot_t **snap)
{
    char arg[16];
    snprintf(arg, sizeof(arg), "%u", n);
    const char *argv[] = {an_keep(mt_program("peak")), arg, NULL};
    return run_one(argv, name, snap, NULL);
}

/* The line of a text, from its start up to its newline, that starts with
 * `head` (NULL when none). */
static char *line_starting(const char *text, const char *head)
{
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, head, strlen(head)) == 0)
            return an_keep(strndup(p, strcspn(p, "\n")));
    return NULL;
}

/* The report's "peak:" line for snapshot s: its figures, when it happened
 * and how long after the start. */
static char *want_peak_line(const mta_snapshot_t *s, const char *figures)
{
    char tm[48], *line = NULL;
    mta_format_time(s->totals.peak_time_ns, 0, tm, sizeof(tm));
    cr_assert_gt(s->meta.start_ns, 0);
    cr_assert_geq(s->totals.peak_time_ns, s->meta.start_ns);
    cr_assert_gt(asprintf(&line, "peak: %s at %s, %.3f s after tracing started", figures, tm,
                          (double)(s->totals.peak_time_ns - s->meta.start_ns) / 1e9), 0);
    return an_keep(line);
}

/* report FILE --fail-on-peak LIMIT: exit status, verdict line and JSON. */
static void expect_peak_gate(const char *snap, uint64_t limit, uint64_t peak)
{
    char lim[32], fig[64], want[256];
    snprintf(lim, sizeof(lim), "%llu", (unsigned long long)limit);
    int fail = peak > limit;
    mta_format_size(peak, fig, sizeof(fig));
    snprintf(want, sizeof(want), "verdict: %s: %s at the peak, %s the limit of ",
             fail ? "FAIL" : "ok", fig, fail ? "above" : "within");
    mt_run_t r;
    int rc = MT(&r, "report", snap, "--fail-on-peak", lim);
    char *last = last_line(r.out);
    cr_expect_eq(rc, fail, "--fail-on-peak %s: exit %d; %s", lim, rc, r.err);
    cr_expect(strncmp(last, want, strlen(want)) == 0 && strstr(last, "(--fail-on-peak)"),
              "--fail-on-peak %s: \"%s\", want \"%s...\"", lim, last, want);
    mt_run_free(&r);
    jv_t *d = JSON(fail, "report", snap, "--fail-on-peak", lim, "-f", "json");
    const jv_t *v = jreq(d, "verdict", 'o');
    cr_expect_eq(jbool(v, "failed"), fail);
    cr_expect_eq(jnum(v, "peak_limit_bytes"), (long long)limit);
    cr_expect_null(jget(v, "limit_bytes"), "--fail-above was not given");
}

/* ---- the C program ------------------------------------------------------------- */

PEAK_TEST(report_ranks_the_site_of_the_peak)
{
    mta_snapshot_t *s;
    char *snap = run_peak(16, "/peak.mtsnap", &s);
    unsigned spike = mt_marker_line(PEAK_SRC, "/* SITE:spike */");
    cr_assert_neq(spike, 0);
    cr_expect_eq(s->totals.peak_bytes, 3000 + 16 * MIB, "peak %llu",
                 (unsigned long long)s->totals.peak_bytes);
    cr_expect_eq(s->totals.peak_blocks, 19);
    cr_expect_eq(s->totals.live_bytes, 3000 + 2 * MIB);

    /* live: site_spike holds nothing at exit, and is not listed */
    jv_t *d = JSON(0, "report", snap, "-f", "json", "-n", "0");
    cr_expect_str_eq(jstr(d, "metric"), "live");
    const jv_t *entries = jreq(d, "entries", 'a');
    for (size_t i = 0; i < entries->n; i++)
        cr_expect_str_neq(jstr(jreq(entries->items[i], "frames", 'a')->items[0], "function"),
                          "site_spike");
    /* peak: it comes first, with its exact figures */
    d = JSON(0, "report", snap, "--metric", "peak", "-f", "json", "-n", "0");
    cr_expect_str_eq(jstr(d, "metric"), "peak");
    entries = jreq(d, "entries", 'a');
    cr_assert_geq(entries->n, 2);
    cr_expect_eq(jnum(d, "total_entries"), (long long)entries->n);
    const jv_t *e = entries->items[0], *f = jreq(e, "frames", 'a')->items[0];
    cr_expect_str_eq(jstr(f, "function"), "site_spike");
    cr_expect_eq(jnum(f, "line"), spike);
    cr_expect_eq(jnum(e, "peak_bytes"), (long long)(16 * MIB));
    cr_expect_eq(jnum(e, "peak_blocks"), 16);
    cr_expect_eq(jnum(e, "bytes"), 0);
    cr_expect_eq(jnum(e, "alloc_bytes"), (long long)(16 * MIB));
    cr_expect_eq(jnum(d, "selected_peak_bytes"), (long long)s->totals.peak_bytes);
    long long sum = 0;
    for (size_t i = 0; i < entries->n; i++) {
        cr_expect_gt(jnum(entries->items[i], "peak_bytes") + jnum(entries->items[i], "peak_blocks"),
                     0, "entry %zu holds nothing at the peak", i);
        sum += jnum(entries->items[i], "peak_bytes");
    }
    cr_expect_eq(sum, (long long)s->totals.peak_bytes, "entries hold %lld at the peak", sum);
    /* by function, allocated: site_spike first too (16 MiB against 2 MiB) */
    d = JSON(0, "report", snap, "--metric", "allocated", "-g", "function", "-f", "json");
    e = jreq(d, "entries", 'a')->items[0];
    cr_expect_str_eq(jstr(e, "key"), "site_spike");
    cr_expect_eq(jnum(e, "alloc_bytes"), (long long)(16 * MIB));

    /* the text: the header's peak lines, the heading, the first entry */
    mt_run_t r;
    cr_assert_eq(MT(&r, "report", snap, "--metric", "peak", "-n", "1"), 0, "%s", r.err);
    cr_expect_str_eq(line_starting(r.out, "peak: "),
                     want_peak_line(s, "16,780,216 B (16.0 MiB) in 19 blocks"));
    char want[512];
    snprintf(want, sizeof(want), "largest at the peak: 16,777,216 B (16.0 MiB) in 16 blocks at "
             "site_spike (%s:%u) [peak]", mt_source_file(PEAK_SRC), spike);
    cr_expect_str_eq(line_starting(r.out, "largest at the peak: "), want);
    cr_expect(strstr(r.out, "\ntop 1 of 2 stacks by peak bytes:\n\n#1  16,777,216 B (16.0 MiB) in "
                            "16 blocks at the peak  (live 0 B; allocated 16,777,216 B (16.0 MiB) "
                            "in 16 blocks)\n    at site_spike (") != NULL, "%s", r.out);
    mt_run_free(&r);
    /* the header names the site whatever the metric */
    cr_assert_eq(MT(&r, "report", snap), 0);
    cr_expect_str_eq(line_starting(r.out, "largest at the peak: "), want);
    cr_expect(strstr(r.out, "stacks by live bytes:\n") != NULL, "%s", r.out);
    mt_run_free(&r);

    /* --fail-on-peak fails just below the peak, passes at it */
    expect_peak_gate(snap, s->totals.peak_bytes - 1, s->totals.peak_bytes);
    expect_peak_gate(snap, s->totals.peak_bytes, s->totals.peak_bytes);
    expect_peak_gate(snap, 16 * MIB, s->totals.peak_bytes);
    /* --fail-above looks at live memory only: 2 MiB passes */
    cr_expect_eq(MT(&r, "report", snap, "--fail-above", "3MiB", "--fail-on-peak", "16MiB"), 1);
    cr_expect_str_eq(last_line(r.out), "verdict: FAIL: 16,780,216 B (16.0 MiB) at the peak, "
                                       "above the limit of 16,777,216 B (16.0 MiB) "
                                       "(--fail-on-peak)");
    mt_run_free(&r);
    mta_snapshot_free(s);
}

PEAK_TEST(diff_gates_the_growth_of_the_peak)
{
    mta_snapshot_t *a, *b;
    char *old = run_peak(8, "/p8.mtsnap", &a), *new = run_peak(16, "/p16.mtsnap", &b);
    cr_expect_eq(b->totals.peak_bytes - a->totals.peak_bytes, 8 * MIB);
    mt_run_t r;
    cr_assert_eq(MT(&r, "diff", old, new), 0, "%s", r.err);
    cr_expect(strstr(r.out, "\npeak: 8,391,608 B (8.0 MiB) -> 16,780,216 B (16.0 MiB): "
                            "+8,388,608 B (+8.0 MiB)\n") != NULL, "%s", r.out);
    mt_run_free(&r);
    static const struct { const char *limit; int fail; } gates[] = {
        {"8388607", 1}, {"8388608", 0}, {"8MB", 1}, {"8MiB", 0},
    };
    for (size_t i = 0; i < sizeof(gates) / sizeof(gates[0]); i++) {
        int rc = MT(&r, "diff", old, new, "--fail-on-peak-growth", gates[i].limit);
        char *last = last_line(r.out);
        const char *want = gates[i].fail ? "verdict: FAIL: the peak changed by +8,388,608 B "
                                           "(+8.0 MiB), above the limit of "
                                         : "verdict: ok: the peak changed by +8,388,608 B "
                                           "(+8.0 MiB), within the limit of ";
        cr_expect_eq(rc, gates[i].fail, "--fail-on-peak-growth %s: exit %d", gates[i].limit, rc);
        cr_expect_eq(strncmp(last, want, strlen(want)), 0, "%s: \"%s\"", gates[i].limit, last);
        mt_run_free(&r);
    }
    /* --metric peak: site_spike grew by 8 MiB, the only change */
    jv_t *d = JSON(1, "diff", old, new, "--metric", "peak", "-g", "function", "-f", "json",
                   "--fail-on-peak-growth", "1MiB");
    cr_expect_str_eq(jstr(d, "metric"), "peak");
    cr_expect_eq(jnum(d, "peak_bytes_diff"), (long long)(8 * MIB));
    cr_expect_eq(jnum(d, "bytes_diff"), (long long)(8 * MIB));
    cr_expect_eq(jnum(jreq(d, "verdict", 'o'), "fail_on_peak_growth"), (long long)MIB);
    const jv_t *e = jreq(d, "entries", 'a')->items[0];
    cr_expect_str_eq(jstr(e, "key"), "site_spike [peak]");
    cr_expect_eq(jnum(e, "bytes"), (long long)(16 * MIB));
    cr_expect_eq(jnum(e, "bytes_diff"), (long long)(8 * MIB));
    cr_expect_eq(jnum(e, "blocks_diff"), 8);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
}

/* Exit status 2, nothing on stdout, one line "memtrail: ..." holding `what`. */
static void expect_error(const char *what, const char *const *args)
{
    mt_run_t r;
    int rc = mt_argv(&r, args);
    const char *nl = strchr(r.err, '\n');
    cr_expect_eq(rc, 2, "memtrail%s: exit %d", join(args), rc);
    cr_expect_str_eq(r.out, "", "memtrail%s: stdout", join(args));
    cr_expect(strncmp(r.err, "memtrail: ", 10) == 0 && nl != NULL && nl[1] == '\0' &&
              strstr(r.err, what) != NULL, "memtrail%s: stderr \"%s\"", join(args), r.err);
    mt_run_free(&r);
}
#define EXPECT_ERROR(what, ...) expect_error((what), (const char *const[]){__VA_ARGS__, NULL})

PEAK_TEST(bad_values)
{
    mta_snapshot_t *s;
    char *snap = run_peak(1, "/p1.mtsnap", &s);
    EXPECT_ERROR("--metric 'heap'", "report", snap, "--metric", "heap");
    EXPECT_ERROR("--metric 'Peak'", "diff", snap, snap, "-m", "Peak");
    EXPECT_ERROR("--metric peak needs", "report", snap, "--metric", "peak", "--domain", "native");
    EXPECT_ERROR("--fail-on-peak needs", "report", snap, "--fail-on-peak", "1", "--domain",
                 "native");
    EXPECT_ERROR("--fail-on-peak-growth needs", "diff", snap, snap, "--fail-on-peak-growth", "1",
                 "--exclude-domain", "native");
    EXPECT_ERROR("--fail-on-peak '12XB'", "report", snap, "--fail-on-peak", "12XB");
    EXPECT_ERROR("--fail-on-peak-growth '-1'", "diff", snap, snap, "--fail-on-peak-growth", "-1");
    EXPECT_ERROR("--color 'sometimes'", "report", snap, "--color", "sometimes");
    EXPECT_ERROR("--color 'yes'", "diff", snap, snap, "--color=yes");
    mta_snapshot_free(s);
}

/* ---- the Python script ----------------------------------------------------------- */

static void python_peak(const mt_python_t *py)
{
    char *script = mt_source_file("tests/python/peak.py"), *out;
    const char *argv[] = {py->path, script, NULL};
    mta_snapshot_t *s;
    char *snap = run_one(argv, "/py.mtsnap", &s, &out);
    unsigned line = 0;
    unsigned long long size = 0;
    cr_assert_eq(sscanf(out, "BIG %u %llu", &line, &size), 2, "output: %s", out);
    cr_expect_eq(line, mt_marker_line("tests/python/peak.py", "# SITE:big"));
    cr_expect_geq(size, 50000000ull);

    jv_t *d = JSON(0, "report", snap, "--metric", "peak", "-g", "line", "-f", "json", "-n", "0");
    const jv_t *e = jreq(d, "entries", 'a')->items[0], *f = jreq(e, "frames", 'a')->items[0];
    cr_expect_str_eq(jstr(f, "file"), script);
    cr_expect_eq(jnum(f, "line"), line, "%s: first by peak: line %lld", py->tag, jnum(f, "line"));
    cr_expect_eq(jnum(e, "peak_bytes"), (long long)size, "%s: %lld at the peak, want %llu",
                 py->tag, jnum(e, "peak_bytes"), size);
    cr_expect_eq(jnum(e, "bytes"), 0, "%s: %lld live", py->tag, jnum(e, "bytes"));
    /* the live report has no entry for the line */
    d = JSON(0, "report", snap, "-g", "line", "-f", "json", "-n", "0");
    const jv_t *entries = jreq(d, "entries", 'a');
    for (size_t i = 0; i < entries->n; i++) {
        f = jreq(entries->items[i], "frames", 'a')->items[0];
        cr_expect(strcmp(jstr(f, "file"), script) != 0 || jnum(f, "line") != line,
                  "%s: line %u listed by live bytes", py->tag, line);
    }
    /* the header names it */
    mt_run_t r;
    char want[512], fig[64];
    mta_format_size(size, fig, sizeof(fig));
    snprintf(want, sizeof(want), "largest at the peak: %s in ", fig);
    cr_assert_eq(MT(&r, "report", snap, "-g", "line"), 0);
    char *got = line_starting(r.out, "largest at the peak: ");
    cr_assert_not_null(got, "%s", r.out);
    cr_expect_eq(strncmp(got, want, strlen(want)), 0, "%s: %s", py->tag, got);
    snprintf(want, sizeof(want), " at %s:%u in spike", script, line);
    cr_expect(strlen(got) > strlen(want) && strcmp(got + strlen(got) - strlen(want), want) == 0,
              "%s: %s", py->tag, got);
    mt_run_free(&r);
    expect_peak_gate(snap, s->totals.peak_bytes - 1, s->totals.peak_bytes);
    expect_peak_gate(snap, s->totals.peak_bytes, s->totals.peak_bytes);
    mta_snapshot_free(s);
}

MT_PY_TESTS(peak, python_line, python_peak, .init = mt_setup, .fini = an_fini, .timeout = 120)
