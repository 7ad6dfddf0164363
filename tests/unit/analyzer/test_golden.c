/* Golden-file tests of diff and export on real snapshots: tests/golden/
 * growth2.mtsnap and growth5.mtsnap are the exit snapshots of
 * `memtrail run -- tests/growth 2` and `... growth 5` (tests/programs/growth.c),
 * written once and kept, so the outputs below never change with the machine.
 * Regenerate the outputs with MEMTRAIL_UPDATE_GOLDEN=1 (then read the diff). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "diff.h"
#include "outputs.h"
#include "export.h"
#include "filter.h"
#include "report.h"
#include "snapshot.h"

static char *golden_path(const char *name)
{
    const char *root = getenv("MEMTRAIL_SOURCE_ROOT");
    char *path = NULL;
    cr_assert_not_null(root, "MEMTRAIL_SOURCE_ROOT is not set");
    cr_assert_geq(asprintf(&path, "%s/tests/golden/%s", root, name), 0);
    return path;
}

/* Loads a fixture under its bare name, so outputs do not hold the checkout path. */
static mta_snapshot_t *fixture(const char *name)
{
    char *path = golden_path(name), err[512];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    mta_snapshot_t *snap = NULL;
    cr_assert_eq(mta_snapshot_parse(buf, len, name, &snap, err, sizeof(err)), 0, "%s", err);
    free(path);
    return snap;
}

static void compare(const char *name, const char *got, size_t gotlen)
{
    char *path = golden_path(name);
    if (getenv("MEMTRAIL_UPDATE_GOLDEN")) {
        FILE *w = fopen(path, "w");
        cr_assert_not_null(w);
        fwrite(got, 1, gotlen, w);
        fclose(w);
    }
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char *want = calloc(1, 1 << 20);
    size_t wantlen = fread(want, 1, (1 << 20) - 1, f);
    fclose(f);
    cr_assert_eq(gotlen, wantlen, "%s: got %zu bytes, want %zu:\n%s", name, gotlen, wantlen, got);
    cr_assert(memcmp(got, want, gotlen) == 0, "%s differs:\n%s", name, got);
    free(want);
    free(path);
}

static void golden_diff(const char *name, mta_diff_opts_t *o, int want_rc)
{
    mta_snapshot_t *a = fixture("growth2.mtsnap"), *b = fixture("growth5.mtsnap");
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    cr_assert_eq(mta_diff(f, a, b, o), want_rc, "%s", name);
    fclose(f);
    compare(name, got, len);
    free(got);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
}

Test(golden, diff_text_by_line)
{
    mta_diff_opts_t o = { .group_by = MTA_GROUP_LINE, .format = MTA_FORMAT_TEXT };
    golden_diff("diff_line.txt", &o, 0);
}

Test(golden, diff_text_by_stack_with_a_passed_gate)
{
    mta_diff_opts_t o = { .group_by = MTA_GROUP_STACK, .top = 3, .format = MTA_FORMAT_TEXT,
                          .growth_set = true, .growth = 22188, .blocks_set = true,
                          .block_growth = 2 };
    golden_diff("diff_stack_ok.txt", &o, 0);
}

Test(golden, diff_json_by_line_failing)
{
    mta_diff_opts_t o = { .group_by = MTA_GROUP_LINE, .format = MTA_FORMAT_JSON,
                          .site_set = true, .site_growth = 5000 };
    golden_diff("diff_line.json", &o, MTA_GATE_FAILED);
}

Test(golden, diff_markdown_failing)
{
    mta_diff_opts_t o = { .group_by = MTA_GROUP_STACK, .top = 4, .format = MTA_FORMAT_MARKDOWN,
                          .growth_set = true, .growth = 10000 };
    golden_diff("diff_stack.md", &o, MTA_GATE_FAILED);
}

Test(golden, diff_collapsed_signed)
{
    mta_diff_opts_t o = { .group_by = MTA_GROUP_STACK, .format = MTA_FORMAT_COLLAPSED };
    golden_diff("diff.collapsed", &o, 0);
}

Test(golden, diff_filtered_by_function)
{
    mta_filter_t flt = { 0 };
    char err[128];
    cr_assert_eq(mta_filter_option(&flt, MTA_OPT_INCLUDE, "function:site_*", err, sizeof(err)), 1);
    cr_assert_eq(mta_filter_option(&flt, MTA_OPT_EXCLUDE, "*only_big", err, sizeof(err)), 1);
    mta_diff_opts_t o = { .group_by = MTA_GROUP_FUNCTION, .format = MTA_FORMAT_TEXT,
                          .filter = &flt };
    golden_diff("diff_function_filtered.txt", &o, 0);
    mta_filter_free(&flt);
}

static void golden_export(const char *name, mta_export_format_t fmt)
{
    mta_snapshot_t *s = fixture("growth5.mtsnap");
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    cr_assert_eq(mta_export(f, s, fmt, NULL), 0);
    fclose(f);
    compare(name, got, len);
    free(got);
    mta_snapshot_free(s);
}

Test(golden, export_collapsed)
{
    golden_export("export.collapsed", MTA_EXPORT_COLLAPSED);
}

Test(golden, export_speedscope)
{
    golden_export("export.speedscope.json", MTA_EXPORT_SPEEDSCOPE);
}

Test(golden, report_with_a_domain_filter_and_a_gate)
{
    mta_snapshot_t *s = fixture("growth5.mtsnap");
    mta_filter_t flt = { 0 };
    char err[128], *got = NULL;
    size_t len = 0;
    cr_assert_eq(mta_filter_option(&flt, MTA_OPT_DOMAIN, "native", err, sizeof(err)), 1);
    cr_assert_eq(mta_filter_option(&flt, MTA_OPT_EXCLUDE, "function:helper_*", err,
                                   sizeof(err)), 1);
    mta_report_opts_t o = { .group_by = MTA_GROUP_LINE, .format = MTA_FORMAT_TEXT,
                            .filter = &flt, .fail_above_set = true, .fail_above = 32 * 1024 };
    FILE *f = open_memstream(&got, &len);
    cr_assert_eq(mta_report(f, s, &o), MTA_GATE_FAILED);
    fclose(f);
    compare("report_filtered.txt", got, len);
    free(got);
    mta_filter_free(&flt);
    mta_snapshot_free(s);
}

/* --color=always: headings bold, the verdict in red, growth red and
 * shrinkage green in a diff; nothing else painted. */
Test(golden, report_in_colour_with_a_failed_gate)
{
    mta_snapshot_t *s = fixture("growth5.mtsnap");
    char *got = NULL;
    size_t len = 0;
    mta_report_opts_t o = { .group_by = MTA_GROUP_FUNCTION, .top = 3, .format = MTA_FORMAT_TEXT,
                            .metric = MTA_METRIC_PEAK, .fail_on_peak_set = true,
                            .fail_on_peak = 32 * 1024 };
    mta_color_use(true);
    FILE *f = open_memstream(&got, &len);
    cr_assert_eq(mta_report(f, s, &o), MTA_GATE_FAILED);
    fclose(f);
    compare("report_color.txt", got, len);
    cr_assert_not_null(strstr(got, "\n\033[1;31mverdict: FAIL: "), "%s", got);
    /* JSON is never painted */
    free(got);
    o.format = MTA_FORMAT_JSON;
    f = open_memstream(&got, &len);
    cr_assert_eq(mta_report(f, s, &o), MTA_GATE_FAILED);
    fclose(f);
    cr_assert_null(strchr(got, '\033'));
    free(got);
    mta_snapshot_free(s);
}

Test(golden, diff_in_colour)
{
    mta_diff_opts_t o = { .group_by = MTA_GROUP_LINE, .format = MTA_FORMAT_TEXT,
                          .growth_set = true, .growth = 30000 };
    mta_color_use(true);
    golden_diff("diff_color.txt", &o, 0);
    mta_color_use(false);
    golden_diff("diff_line_gate.txt", &o, 0);
}

/* The unit rule of the text outputs (mta_format_size, mta_format_bytes) on
 * the edges: below 1 KiB, one decimal, the step to the next unit, signs. */
Test(golden, units)
{
    static const uint64_t sizes[] = {
        0, 1, 512, 1023, 1024, 1075, 1536, 10239, 10240, 1048524, 1048525, 1048575, 1048576,
        1723133, 52428800, 1073741824, 1099511627776ull, 1125899906842624ull,
        1152921504606846976ull, UINT64_MAX,
    };
    static const int64_t changes[] = { 0, 100, -100, 1048576, -1048576, 3000, INT64_MAX,
                                       INT64_MIN };
    char *got = NULL, buf[MTA_SIZE_LEN];
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        mta_format_size(sizes[i], buf, sizeof(buf));
        fprintf(f, "%" PRIu64 " -> %s\n", sizes[i], buf);
    }
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        mta_format_bytes(changes[i], true, buf, sizeof(buf));
        fprintf(f, "%+" PRId64 " -> %s\n", changes[i], buf);
    }
    mta_format_bytes_in(1723133, 2, buf, sizeof(buf));
    fprintf(f, "%s\n", buf);
    fclose(f);
    compare("units.txt", got, len);
    free(got);
}
