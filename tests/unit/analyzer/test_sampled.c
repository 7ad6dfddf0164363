/* The analyzer on sampled snapshots (a SAMPLING record, docs/format.md):
 * the record read and refused, the estimates marked in every output
 * (report text and JSON, diff against an exact snapshot, leaks, pprof,
 * speedscope), and the figures the analyzer sums from BLOCKS itself (a
 * domain filter, leak kinds) weighed exactly as the writer weighs them
 * (include/memtrail_sample.h). The composed snapshot is what the writer
 * writes: STACK_STATS and TOTALS hold the sums of the blocks' weights. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "group.h"
#include "memtrail_sample.h"
#include "outputs.h"
#include "pprof_read.h"
#include "report.h"
#include "snapcompose.h"
#include "snapshot.h"

#define MEAN 65536u
#define SMALL 100u          /* three sampled blocks of this size at small_site (native) */
#define BIG (1u << 20)      /* one at big_site (Python obj domain) */

static uint64_t small_bytes(void) { return 3 * mtsample_bytes(SMALL, MEAN); }
static uint64_t small_blocks(void) { return mtsample_blocks(3 * mtsample_units(SMALL, MEAN)); }

/* The fixture, with a SAMPLING record (mean MEAN, 4 samples) unless exact,
 * and a LEAKS record (small blocks definitely lost, the big one reachable)
 * when leaks. An exact snapshot has the same blocks, unweighed. */
static mta_snapshot_t *fixture(int sampled, int leaks, const mtsnap_sampling_t *record)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta.cmdline = mtc_strn(&s, "./svc\0", 6);
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/tmp/svc");
    uint32_t fs = mtc_frame(&s, 0x401100, prog, "small_site", "svc.c", 12);
    uint32_t fb = mtc_frame(&s, 0x401200, prog, "big_site", "svc.c", 20);
    uint32_t s0 = mtc_stack(&s, 1, (uint32_t[]){ fs });
    uint32_t s1 = mtc_stack(&s, 1, (uint32_t[]){ fb });
    for (int i = 0; i < 3; i++)
        mtc_block(&s, 0x10000 + 0x100 * (uint64_t)i, SMALL, s0);
    mtc_block(&s, 0x200000, BIG, s1);
    s.blocks[3].domain = MTSNAP_DOMAIN_PY_OBJ;
    uint64_t sb = sampled ? small_bytes() : 3 * SMALL, sn = sampled ? small_blocks() : 3;
    mtc_stat(&s, s0, sb, sn, sb, sn, sb, sn);
    mtc_stat(&s, s1, BIG, 1, BIG, 1, BIG, 1);
    s.totals = (mtsnap_totals_t){ .live_bytes = sb + BIG, .live_blocks = sn + 1,
                                  .alloc_bytes = sb + BIG, .alloc_blocks = sn + 1,
                                  .peak_bytes = sb + BIG, .peak_blocks = sn + 1 };
    mtsnap_sampling_t sm = { MEAN, 4 };
    mtc_buf_t leakpl = { 0 }, b = { 0 };
    mtsnap_leak_header_t lh = { .blocks = 4, .threads = 1 };
    uint8_t kinds[4] = { MTSNAP_LEAK_DEFINITE, MTSNAP_LEAK_DEFINITE, MTSNAP_LEAK_DEFINITE,
                         MTSNAP_LEAK_REACHABLE };
    mtc_put(&leakpl, &lh, sizeof(lh));
    mtc_put(&leakpl, kinds, sizeof(kinds));
    mtc_extra_t extra[2];
    size_t n = 0;
    if (sampled)
        extra[n++] = (mtc_extra_t){ MTSNAP_TAG_SAMPLING, record ? record : &sm, sizeof(sm) };
    if (leaks)
        extra[n++] = (mtc_extra_t){ MTSNAP_TAG_LEAKS, leakpl.data, leakpl.len };
    b.version = 3;
    mtc_compose_with(&s, extra, n, &b);
    mta_snapshot_t *snap = NULL;
    char err[512];
    int rc = mta_snapshot_parse(b.data, b.len, sampled ? "sampled.mtsnap" : "exact.mtsnap", &snap,
                                err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    mtc_buf_free(&leakpl);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
    return snap;
}

/* The reader's message for a sampled snapshot with this SAMPLING payload. */
static int parse_with(const void *payload, size_t len, size_t copies, char *err, size_t errlen)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    mtc_buf_t b = { .version = 3 };
    mtc_extra_t extra[2] = { { MTSNAP_TAG_SAMPLING, payload, len },
                             { MTSNAP_TAG_SAMPLING, payload, len } };
    mtc_compose_with(&s, extra, copies, &b);
    mta_snapshot_t *snap = NULL;
    int rc = mta_snapshot_parse(b.data, b.len, "x.mtsnap", &snap, err, errlen);
    mta_snapshot_free(snap);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
    return rc;
}

static char *capture(int (*fn)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(fn(f, arg), 0);
    fclose(f);
    return buf;
}

Test(sampled, the_record_is_read_and_checked)
{
    mta_snapshot_t *snap = fixture(1, 0, NULL);
    cr_assert(snap->has_sampling);
    cr_assert_eq(snap->sampling.mean, MEAN);
    cr_assert_eq(snap->sampling.samples, 4);
    mta_snapshot_free(snap);
    snap = fixture(0, 0, NULL);
    cr_assert(!snap->has_sampling);
    mta_snapshot_free(snap);

    char err[512];
    mtsnap_sampling_t zero = { 0, 4 }, ok = { MEAN, 4 };
    cr_assert_eq(parse_with(&ok, 15, 1, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "SMPL record: payload of 15 bytes, expected 16"), "%s", err);
    cr_assert_eq(parse_with(&zero, sizeof(zero), 1, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "SMPL record: a mean of 0 bytes"), "%s", err);
    cr_assert_eq(parse_with(&ok, sizeof(ok), 2, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "duplicate"), "%s", err);
}

/* Each figure a block stands for, as the writer and the reader compute it. */
Test(sampled, blocks_weigh_as_the_writer_weighs_them)
{
    mta_snapshot_t *snap = fixture(1, 0, NULL);
    uint64_t bytes = 0, units = 0;
    for (uint64_t i = 0; i < 3; i++) {
        bytes += mta_block_bytes(snap, &snap->blocks[i]);
        units += mta_block_units(snap, &snap->blocks[i]);
    }
    cr_assert_eq(bytes, snap->stats[0].live_bytes);
    cr_assert_eq(mta_units_blocks(snap, units), snap->stats[0].live_blocks);
    /* a 100-byte block at a 64 KiB mean stands for about 65,586 bytes and 656 blocks */
    cr_assert_eq(mta_block_bytes(snap, &snap->blocks[0]), 65586);
    cr_assert_eq(mta_units_blocks(snap, mta_block_units(snap, &snap->blocks[0])), 656);
    cr_assert_eq(mta_block_bytes(snap, &snap->blocks[3]), BIG);
    mta_snapshot_free(snap);
}

static int report_text(FILE *f, const void *snap)
{
    mta_report_opts_t o = { .group_by = MTA_GROUP_FUNCTION, .top = 5 };
    return mta_report(f, snap, &o);
}

static int report_json(FILE *f, const void *snap)
{
    mta_report_opts_t o = { .group_by = MTA_GROUP_FUNCTION, .top = 5, .format = MTA_FORMAT_JSON };
    return mta_report(f, snap, &o);
}

Test(sampled, the_report_says_estimated)
{
    static const struct { int sampled; const char *text, *json; } cases[] = {
        { 1, "(trigger exit)\nestimated: sampled by bytes, mean 65,536 B (64.0 KiB), 4 allocations "
             "sampled\n\nlive: ",
          "\"estimated\": true,\n    \"sample_mean_bytes\": 65536,\n    \"samples\": 4,\n"
          "    \"attached\": false,\n    \"python_hooks_ms\": null,\n    \"notes\": []\n" },
        { 0, "(trigger exit)\n\nlive: ",
          "\"estimated\": false,\n    \"sample_mean_bytes\": null,\n    \"samples\": null,\n"
          "    \"attached\": false,\n    \"python_hooks_ms\": null,\n    \"notes\": []\n" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mta_snapshot_t *snap = fixture(cases[i].sampled, 0, NULL);
        char *text = capture(report_text, snap), *json = capture(report_json, snap);
        cr_assert(strstr(text, cases[i].text), "%s", text);
        cr_assert(strstr(json, cases[i].json), "%s", json);
        free(text);
        free(json);
        mta_snapshot_free(snap);
    }
}

/* --domain: the live figures come from BLOCKS, weighed. */
Test(sampled, a_domain_filter_sums_weighed_blocks)
{
    mta_snapshot_t *snap = fixture(1, 0, NULL);
    uint32_t native = MTSNAP_DOMAIN_NATIVE;
    mta_filter_t flt = { .ndomains = 1, .domains = &native };
    mta_group_t *g;
    cr_assert_eq(mta_group(snap, MTA_GROUP_FUNCTION, 0, &flt, &g), 0);
    cr_assert_eq(g->bytes, small_bytes());
    cr_assert_eq(g->blocks, small_blocks());
    mta_group_free(g);
    mta_snapshot_free(snap);
}

static int leaks_text(FILE *f, const void *snap)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_DEFAULT };
    return mta_leaks(f, snap, &o);
}

Test(sampled, leaks_are_weighed_and_say_what_sampling_means)
{
    mta_snapshot_t *snap = fixture(1, 1, NULL);
    char *text = capture(leaks_text, snap), want[256];
    char a[MTA_SIZE_LEN + 40];
    mta_format_bytes_in(small_bytes(), small_blocks(), a, sizeof(a));
    snprintf(want, sizeof(want), "   definitely lost: %s\n", a);
    cr_assert(strstr(text, want), "want '%s' in:\n%s", want, text);
    cr_assert(strstr(text, "\n  estimated: sampled by bytes, mean 65,536 B (64.0 KiB), 4 allocations "
                           "sampled\n  taken: "), "%s", text);
    cr_assert(strstr(text, "           sampled: estimates; the scan read the sampled blocks only, "
                           "so a block held\n"), "%s", text);
    free(text);
    mta_snapshot_free(snap);
}

typedef struct pair {
    const mta_snapshot_t *old, *new;
    mta_format_t format;
} pair_t;

static int diff_out(FILE *f, const void *arg)
{
    const pair_t *p = arg;
    mta_diff_opts_t o = { .group_by = MTA_GROUP_FUNCTION, .top = 5, .format = p->format };
    return mta_diff(f, p->old, p->new, &o);
}

Test(sampled, a_diff_of_exact_and_sampled_says_so)
{
    mta_snapshot_t *exact = fixture(0, 0, NULL), *sampled = fixture(1, 0, NULL);
    pair_t p = { exact, sampled, MTA_FORMAT_TEXT };
    char *text = capture(diff_out, &p);
    cr_assert(strstr(text, "\nnote: old is exact, new sampled (estimates): the changes compare "
                           "estimates with exact figures\n"), "%s", text);
    cr_assert(strstr(text, "new: sampled.mtsnap (pid 4242, #1 exit, 2023-11-14 22:13:20.123 UTC, "
                           "estimated: sampled by bytes, mean 65,536 B (64.0 KiB), 4 allocations "
                           "sampled)\n"), "%s", text);
    free(text);
    p.format = MTA_FORMAT_JSON;
    char *json = capture(diff_out, &p);
    cr_assert(strstr(json, "\"filtered\": false,\n  \"estimated\": true,\n"), "%s", json);
    /* the small site's change is its estimate less its exact bytes */
    char want[64];
    snprintf(want, sizeof(want), "\"bytes_diff\": %llu", (unsigned long long)(small_bytes() - 3 * SMALL));
    cr_assert(strstr(json, want), "want %s in:\n%s", want, json);
    free(json);
    p = (pair_t){ exact, exact, MTA_FORMAT_JSON };
    json = capture(diff_out, &p);
    cr_assert(strstr(json, "\"filtered\": false,\n  \"estimated\": false,\n"), "%s", json);
    free(json);
    mta_snapshot_free(exact);
    mta_snapshot_free(sampled);
}

Test(sampled, exports_say_estimated)
{
    mta_snapshot_t *snap = fixture(1, 0, NULL);
    char path[] = "/tmp/mt-sampled-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_eq(mta_export_pprof(f, snap, NULL), 0);
    fclose(f);
    ppr_profile_t *pp;
    char err[256];
    cr_assert_eq(ppr_read_file(path, &pp, err, sizeof(err)), 0, "%s", err);
    unlink(path);
    cr_assert_eq(pp->period, MEAN);
    int found = 0;
    for (size_t i = 0; i < pp->ncomments; i++)
        found |= strstr(ppr_str(pp, pp->comments[i]),
                        "estimated: sampled by bytes, mean 65536 bytes, 4 allocations sampled") != NULL;
    cr_assert(found, "no comment says the values are estimates");
    ppr_free(pp);

    char *buf = NULL;
    size_t len = 0;
    f = open_memstream(&buf, &len);
    cr_assert_eq(mta_export(f, snap, MTA_EXPORT_SPEEDSCOPE, NULL), 0);
    fclose(f);
    cr_assert(strstr(buf, "\"name\": \"memtrail: estimated live memory of pid 4242"), "%s", buf);
    free(buf);
    mta_snapshot_free(snap);
}
