/* Diff, filter and size-parsing tests on composed snapshots: compare_to
 * semantics and order, matching by symbols across address layouts, every
 * filter's selection rule, and the units of SIZE. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "diff.h"
#include "filter.h"
#include "group.h"
#include "snapcompose.h"
#include "snapshot.h"

static mta_snapshot_t *load(const mtc_snap_t *s, const char *name)
{
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    char err[512];
    mtc_compose(s, &b);
    int rc = mta_snapshot_parse(b.data, b.len, name, &snap, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    mtc_buf_free(&b);
    return snap;
}

/* One run of a program "app" with a library "libz.so". `base` moves every
 * address (ASLR); `reverse` interns frames and stacks in the opposite
 * order, so frame and stack indices differ between runs too. Sites:
 *   grow   app:grow  (app.c:10) <- main   n blocks of 1000 B   (native)
 *   fixed  app:fixed (app.c:20) <- main   1 block of 300 B     (native)
 *   zlib   helper    (z.c:5)    <- main   1 block of 64 B      (domain obj)
 *   other  helper    (app.c:30) <- main   small: 2 x 50 B, only when n < 3
 * "helper" exists in both modules: the function keys must tell them apart. */
static mta_snapshot_t *run_of(uint64_t n, uint64_t base, bool reverse, const char *name)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    uint32_t app = mtc_module(&s, base + 0x1000, base + 0x9000, base, "/build1/app");
    uint32_t z = mtc_module(&s, base + 0x100000, base + 0x200000, base + 0x100000,
                            "/usr/lib/libz.so");
    uint32_t f[5];
    const struct { uint64_t pc; uint32_t mod; const char *fn, *file; uint32_t line; } fr[5] = {
        { 0x1100, 0, "grow", "app.c", 10 },     { 0x1200, 0, "fixed", "app.c", 20 },
        { 0x1300, 0, "main", "app.c", 40 },     { 0x100500, 1, "helper", "z.c", 5 },
        { 0x1400, 0, "helper", "app.c", 30 },
    };
    for (int k = 0; k < 5; k++) {
        int i = reverse ? 4 - k : k;
        f[i] = mtc_frame(&s, base + fr[i].pc, fr[i].mod ? z : app, fr[i].fn, fr[i].file,
                         fr[i].line);
    }
    uint32_t st[4];
    for (int k = 0; k < 4; k++) {
        int i = reverse ? 3 - k : k;
        uint32_t leaf = i == 0 ? f[0] : i == 1 ? f[1] : i == 2 ? f[3] : f[4];
        st[i] = mtc_stack(&s, 2, (uint32_t[]){ leaf, f[2] });
    }
    uint64_t addr = base + 0x10000000;
    for (uint64_t i = 0; i < n; i++)
        mtc_block(&s, addr += 0x1000, 1000, st[0]);
    mtc_block(&s, addr += 0x1000, 300, st[1]);
    mtc_block(&s, addr += 0x1000, 64, st[2]);
    s.blocks[s.nblocks - 1].domain = MTSNAP_DOMAIN_PY_OBJ;
    uint64_t small = n < 3 ? 2 : 0;
    for (uint64_t i = 0; i < small; i++)
        mtc_block(&s, addr += 0x1000, 50, st[3]);
    mtc_stat(&s, st[0], 1000 * n, n, 1000 * n, n, 1000 * n, n);
    mtc_stat(&s, st[1], 300, 1, 300, 1, 300, 1);
    mtc_stat(&s, st[2], 64, 1, 64, 1, 64, 1);
    mtc_stat(&s, st[3], 50 * small, small, 100, 2, 100, 2);
    s.totals.live_bytes = 1000 * n + 364 + 50 * small;
    s.totals.live_blocks = n + 2 + small;
    mta_snapshot_t *snap = load(&s, name);
    mtc_snap_free(&s);
    return snap;
}

static const mta_diff_entry_t *find(const mta_diff_t *d, const char *key)
{
    for (size_t i = 0; i < d->nentries; i++)
        if (strcmp(mta_diff_key(d, &d->entries[i]), key) == 0)
            return &d->entries[i];
    cr_assert_fail("no entry '%s'", key);
    return NULL;
}

static mta_diff_t *diff_of(uint64_t n_old, uint64_t n_new, mta_group_by_t by,
                           const mta_filter_t *filter, mta_snapshot_t **a, mta_snapshot_t **b)
{
    *a = run_of(n_old, 0x555500000000, false, "old");
    *b = run_of(n_new, 0x7f1200000000, true, "new");
    mta_diff_opts_t o = { .group_by = by, .filter = filter };
    mta_diff_t *d = NULL;
    cr_assert_eq(mta_diff_compute(*a, *b, &o, &d), 0);
    return d;
}

Test(diff, compare_to_by_line)
{
    mta_snapshot_t *a, *b;
    mta_diff_t *d = diff_of(2, 5, MTA_GROUP_LINE, NULL, &a, &b);
    cr_assert_eq(d->nentries, 4);
    /* Sorted by |bytes_diff| desc: grow +3000, other -100, then the unchanged
     * ones by size (fixed 300, z 64). */
    const char *order[] = { "app.c:10", "app.c:30", "app.c:20", "z.c:5" };
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_eq(mta_diff_key(d, &d->entries[i]), order[i], "entry %zu", i);
    const mta_diff_entry_t *e = find(d, "app.c:10");
    cr_assert(e->old && e->new);
    cr_assert_eq(e->bytes, 5000);
    cr_assert_eq(e->bytes_diff, 3000);
    cr_assert_eq(e->blocks, 5);
    cr_assert_eq(e->blocks_diff, 3);
    e = find(d, "app.c:30");   /* only in OLD: bytes 0, negative diff */
    cr_assert(e->old && !e->new);
    cr_assert_eq(e->bytes, 0);
    cr_assert_eq(e->bytes_diff, -100);
    cr_assert_eq(e->blocks_diff, -2);
    cr_assert_eq(find(d, "app.c:20")->bytes_diff, 0);
    cr_assert_eq(d->bytes_diff, 2900);
    cr_assert_eq(d->blocks_diff, 1);
    mta_diff_free(d);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
}

Test(diff, matches_across_layouts_for_every_grouping)
{
    for (int by = MTA_GROUP_STACK; by <= MTA_GROUP_MODULE; by++) {
        mta_snapshot_t *a, *b;
        mta_diff_t *d = diff_of(4, 4, (mta_group_by_t)by, NULL, &a, &b);
        cr_assert_gt(d->nentries, 0);
        for (size_t i = 0; i < d->nentries; i++) {
            cr_assert(d->entries[i].old && d->entries[i].new, "%s: '%s' unmatched",
                      mta_group_by_name((mta_group_by_t)by), mta_diff_key(d, &d->entries[i]));
            cr_assert_eq(d->entries[i].bytes_diff, 0);
        }
        mta_diff_free(d);
        mta_snapshot_free(a);
        mta_snapshot_free(b);
    }
}

Test(diff, same_function_name_in_two_modules_stays_apart)
{
    mta_snapshot_t *a, *b;
    mta_diff_t *d = diff_of(2, 5, MTA_GROUP_FUNCTION, NULL, &a, &b);
    cr_assert_eq(find(d, "helper [libz.so]")->bytes, 64);
    cr_assert_eq(find(d, "helper [app]")->bytes_diff, -100);
    cr_assert_eq(find(d, "grow [app]")->bytes_diff, 3000);
    mta_diff_free(d);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
    d = diff_of(2, 5, MTA_GROUP_MODULE, NULL, &a, &b);
    cr_assert_eq(d->nentries, 2);
    cr_assert_eq(find(d, "[app]")->bytes_diff, 2900);
    cr_assert_eq(find(d, "[libz.so]")->bytes_diff, 0);
    mta_diff_free(d);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
}

Test(diff, stack_keys_name_frames_not_addresses)
{
    mta_snapshot_t *a, *b;
    mta_diff_t *d = diff_of(2, 5, MTA_GROUP_STACK, NULL, &a, &b);
    cr_assert_eq(find(d, "grow (app.c:10) [app] <- main (app.c:40) [app]")->bytes_diff, 3000);
    mta_diff_free(d);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
}

/* ---- filters ---------------------------------------------------------------- */

static void add(mta_filter_t *f, int opt, const char *arg)
{
    char err[256];
    cr_assert_eq(mta_filter_option(f, opt, arg, err, sizeof(err)), 1, "%s", err);
}

/* Checks what filter f selects, then empties it for the next case. */
static void selected(mta_filter_t *f, uint64_t bytes, uint64_t blocks)
{
    mta_snapshot_t *s = run_of(4, 0x555500000000, false, "s");
    mta_group_t *g = NULL;
    cr_assert_eq(mta_group(s, MTA_GROUP_LINE, 0, f, &g), 0);
    cr_assert_eq(g->bytes, bytes, "bytes %llu, want %llu", (unsigned long long)g->bytes,
                 (unsigned long long)bytes);
    cr_assert_eq(g->blocks, blocks);
    cr_assert_eq(g->filtered, mta_filter_has_patterns(f) || mta_filter_has_domains(f));
    mta_group_free(g);
    mta_snapshot_free(s);
    mta_filter_free(f);
}

/* One site "big" (big.c:1) with the given live figures in STACK_STATS. */
static mta_snapshot_t *counts_of(uint64_t bytes, uint64_t blocks, const char *name)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    uint32_t f = mtc_frame(&s, 0x1000, MTSNAP_NONE, "big", "big.c", 1);
    uint32_t st = mtc_stack(&s, 1, &f);
    mtc_stat(&s, st, bytes, blocks, bytes, blocks, bytes, blocks);
    s.totals.live_bytes = bytes;
    s.totals.live_blocks = blocks;
    mta_snapshot_t *snap = load(&s, name);
    mtc_snap_free(&s);
    return snap;
}

/* Counts at or above 2^63 (a forged STAT record): every change is NEW minus
 * OLD saturated to int64_t, with the right sign, never a signed overflow. */
Test(diff, changes_saturate_on_huge_counts)
{
    const uint64_t top = (uint64_t)1 << 63;
    const struct {
        uint64_t old, new;
        int64_t want;
    } cases[] = {
        /* (int64_t)new - (int64_t)old would overflow on these two */
        { 100, top + 5, INT64_MAX - 94 },        /* exact: 2^63 - 95 */
        { top, top - 1, -1 },
        { top + 12345, 100, INT64_MIN },         /* fell by more than 2^63 */
        { 100, top + 500, INT64_MAX },           /* grew by more than 2^63 - 1 */
        { UINT64_MAX, UINT64_MAX - 7, -7 },      /* exact inside the range */
        { top, 0, INT64_MIN },                   /* fell by exactly 2^63 */
        { 1, top, INT64_MAX },                   /* grew by exactly 2^63 - 1 */
        { UINT64_MAX, 0, INT64_MIN },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mta_snapshot_t *a = counts_of(cases[i].old, cases[i].old, "old");
        mta_snapshot_t *b = counts_of(cases[i].new, cases[i].new, "new");
        mta_diff_opts_t o = { .group_by = MTA_GROUP_LINE };
        mta_diff_t *d = NULL;
        cr_assert_eq(mta_diff_compute(a, b, &o, &d), 0);
        cr_assert_eq(d->nentries, 1);
        cr_assert_eq(d->entries[0].bytes_diff, cases[i].want, "case %zu: %" PRId64, i,
                     d->entries[0].bytes_diff);
        cr_assert_eq(d->entries[0].blocks_diff, cases[i].want, "case %zu", i);
        cr_assert_eq(d->bytes_diff, cases[i].want, "case %zu", i);
        cr_assert_eq(d->blocks_diff, cases[i].want, "case %zu", i);
        mta_diff_free(d);
        mta_snapshot_free(a);
        mta_snapshot_free(b);
    }
}

Test(filter, include_and_exclude_on_each_field)
{
    mta_filter_t f = { 0 };
    selected(&f, 4364, 6);                     /* nothing given: everything */
    add(&f, MTA_OPT_INCLUDE, "function:grow");
    selected(&f, 4000, 4);
    add(&f, MTA_OPT_INCLUDE, "file:z.*");
    add(&f, MTA_OPT_INCLUDE, "function:fixed");
    selected(&f, 364, 2);                      /* either include */
    add(&f, MTA_OPT_EXCLUDE, "module:libz.so");  /* basename */
    selected(&f, 4300, 5);
    add(&f, MTA_OPT_EXCLUDE, "*/libz*");       /* any field, full path */
    selected(&f, 4300, 5);
    add(&f, MTA_OPT_INCLUDE, "app.c");         /* any field: the file */
    selected(&f, 4300, 5);
    add(&f, MTA_OPT_INCLUDE, "module:/build1/*");
    add(&f, MTA_OPT_EXCLUDE, "function:gr?w");
    selected(&f, 300, 1);
}

Test(filter, all_frames)
{
    mta_filter_t f = { 0 };
    add(&f, MTA_OPT_INCLUDE, "function:main");
    selected(&f, 0, 0);                        /* main is never the key frame */
    add(&f, MTA_OPT_INCLUDE, "function:main");
    add(&f, MTA_OPT_ALL_FRAMES, NULL);
    selected(&f, 4364, 6);
    add(&f, MTA_OPT_EXCLUDE, "app.c");
    add(&f, MTA_OPT_ALL_FRAMES, NULL);
    selected(&f, 0, 0);                        /* every stack has main (app.c) */
}

Test(filter, domains)
{
    mta_filter_t f = { 0 };
    add(&f, MTA_OPT_DOMAIN, "native");
    selected(&f, 4300, 5);
    add(&f, MTA_OPT_DOMAIN, "python");
    selected(&f, 64, 1);
    add(&f, MTA_OPT_DOMAIN, "obj");
    selected(&f, 64, 1);
    add(&f, MTA_OPT_DOMAIN, "mem");
    selected(&f, 0, 0);
    add(&f, MTA_OPT_EXCLUDE_DOMAIN, "obj");
    selected(&f, 4300, 5);
    add(&f, MTA_OPT_DOMAIN, "native");
    add(&f, MTA_OPT_INCLUDE, "function:grow");
    selected(&f, 4000, 4);
}

Test(filter, domain_filter_has_no_peak_or_alloc_figures)
{
    mta_filter_t f = { 0 };
    add(&f, MTA_OPT_DOMAIN, "native");
    mta_snapshot_t *s = run_of(4, 0x555500000000, false, "s");
    mta_group_t *g = NULL;
    cr_assert_eq(mta_group(s, MTA_GROUP_STACK, 0, &f, &g), 0);
    cr_assert(g->live_only);
    for (size_t i = 0; i < g->nentries; i++)
        cr_assert_eq(g->entries[i].alloc_bytes + g->entries[i].peak_bytes, 0);
    mta_group_free(g);
    mta_snapshot_free(s);
    mta_filter_free(&f);
}

Test(filter, parsing)
{
    mta_pattern_t p;
    cr_assert_eq(mta_pattern_parse("file:*.py", true, &p), 0);
    cr_assert_eq(p.field, MTA_MATCH_FILE);
    cr_assert_str_eq(p.glob, "*.py");
    cr_assert_eq(mta_pattern_parse("function:", true, &p), -EINVAL);
    cr_assert_eq(mta_pattern_parse("fn:x", false, &p), 0);   /* not a field: a glob */
    cr_assert_eq(p.field, MTA_MATCH_ANY);
    cr_assert_str_eq(p.glob, "fn:x");
    uint32_t *v = NULL;
    size_t n = 0;
    cr_assert_eq(mta_domain_parse("python", &v, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(mta_domain_parse("389047", &v, &n), 0);
    cr_assert_eq(v[3], 389047 + MTSNAP_DOMAIN_EXT_BASE);
    cr_assert_eq(mta_domain_parse("pyton", &v, &n), -EINVAL);
    cr_assert_eq(mta_domain_parse("-1", &v, &n), -EINVAL);
    cr_assert_eq(mta_domain_parse("4294967295", &v, &n), -EINVAL);
    free(v);
    mta_filter_t f = { 0 };
    char err[256];
    cr_assert_eq(mta_filter_option(&f, MTA_OPT_DOMAIN, "nope", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "--domain 'nope'"), "%s", err);
    cr_assert_eq(mta_filter_option(&f, 'x', "y", err, sizeof(err)), 0);
    mta_filter_free(&f);
}

Test(cli, sizes)
{
    const struct { const char *s; uint64_t v; } ok[] = {
        { "0", 0 },          { "100", 100 },        { "100B", 100 },
        { "10MB", 10000000 }, { "10mb", 10000000 }, { "10M", 10000000 },
        { "512KiB", 524288 }, { "1.5MiB", 1572864 }, { "2GiB", 2147483648ull },
        { "1kb", 1000 },     { "3 KiB", 3072 },     { "18446744073709551615", UINT64_MAX },
        { "0.5KB", 500 },    { "1TB", 1000000000000ull },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 1;
        cr_assert_eq(mta_parse_size(ok[i].s, &v), 0, "'%s'", ok[i].s);
        cr_assert_eq(v, ok[i].v, "'%s' gave %llu", ok[i].s, (unsigned long long)v);
    }
    const char *bad[] = { "", "12XB", "-1", "1.5", "MB", "1.5B", "20000000TB", "1e3",
                          "18446744073709551616", " 5", "5 MB x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v;
        cr_assert_eq(mta_parse_size(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
    }
}
