/* `memtrail html` on composed snapshots: the merged call tree's exact
 * inclusive values across two snapshots (analysis/flametree.c), the lost
 * kinds, the escaping of the embedded data, the size bound on 100,000
 * distinct stacks, and the command's errors and atomic output. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flametree.h"
#include "html.h"
#include "report.h"
#include "snapcompose.h"
#include "snapshot.h"

static mta_snapshot_t *parse_image(const mtc_buf_t *b, const char *name)
{
    mta_snapshot_t *snap = NULL;
    char err[512];
    int rc = mta_snapshot_parse(b->data, b->len, name, &snap, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return snap;
}

static mta_snapshot_t *load(const mtc_snap_t *s, const char *name)
{
    mtc_buf_t b = { 0 };
    mtc_compose(s, &b);
    mta_snapshot_t *snap = parse_image(&b, name);
    mtc_buf_free(&b);
    return snap;
}

/* Snapshot A (seq 1):
 *   a0 hook <- parse:12 <- main          live 100/1  alloc 300/3   peak 200/2
 *   a1 load:20 <- main                   live  50/2  alloc  50/2   peak  50/2
 *   a2 load:20 <- parse:12 <- main       live   0/0  alloc 1000/1  peak 1000/1
 * Snapshot B (seq 2): the same functions at other addresses, the program
 * loaded from another directory (same basename):
 *   b0 parse:12 <- main                  live 400/4  alloc 700/7   peak 400/4
 *   b1 grow:70 <- main                   live 1000/1 alloc 1000/1  peak 1000/1
 *   b2 parse:13 <- main                  live   8/1  alloc   8/1   peak    8/1 */
static mta_snapshot_t *snap_a(void)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta.trigger = MTSNAP_TRIGGER_INTERVAL;
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/build/app");
    uint32_t mt = mtc_module(&s, 0x7d0000000000, 0x7d0000100000, 0x7d0000000000,
                             "/opt/lib/libmemtrail.so");
    uint32_t hook = mtc_frame(&s, 0x7d0000001000, mt, "mtp_malloc_hook", "hooks.c", 5);
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "app.c", 40);
    uint32_t parse = mtc_frame(&s, 0x401100, prog, "_ZN6Parser5parseEv", "app.c", 12);
    uint32_t loadf = mtc_frame(&s, 0x401200, prog, "load", "app.c", 20);
    mtc_stat(&s, mtc_stack(&s, 3, (uint32_t[]){ hook, parse, mainf }), 100, 1, 300, 3, 200, 2);
    mtc_stat(&s, mtc_stack(&s, 2, (uint32_t[]){ loadf, mainf }), 50, 2, 50, 2, 50, 2);
    mtc_stat(&s, mtc_stack(&s, 3, (uint32_t[]){ loadf, parse, mainf }), 0, 0, 1000, 1, 1000, 1);
    s.totals = (mtsnap_totals_t){ .live_bytes = 150, .live_blocks = 3, .alloc_bytes = 1350,
                                  .alloc_blocks = 6, .peak_bytes = 1250, .peak_blocks = 5 };
    mta_snapshot_t *snap = load(&s, "/snaps/memtrail.4242.0001.interval.mtsnap");
    mtc_snap_free(&s);
    return snap;
}

static mta_snapshot_t *snap_b(void)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta.seq = 2;
    uint32_t prog = mtc_module(&s, 0x800000, 0x900000, 0x400000, "/other/app");
    uint32_t mainf = mtc_frame(&s, 0x801000, prog, "main", "app.c", 40);
    uint32_t parse = mtc_frame(&s, 0x801100, prog, "_ZN6Parser5parseEv", "app.c", 12);
    uint32_t parse13 = mtc_frame(&s, 0x801108, prog, "_ZN6Parser5parseEv", "app.c", 13);
    uint32_t grow = mtc_frame(&s, 0x801300, prog, "grow", "app.c", 70);
    mtc_stat(&s, mtc_stack(&s, 2, (uint32_t[]){ parse, mainf }), 400, 4, 700, 7, 400, 4);
    mtc_stat(&s, mtc_stack(&s, 2, (uint32_t[]){ grow, mainf }), 1000, 1, 1000, 1, 1000, 1);
    mtc_stat(&s, mtc_stack(&s, 2, (uint32_t[]){ parse13, mainf }), 8, 1, 8, 1, 8, 1);
    s.totals = (mtsnap_totals_t){ .live_bytes = 1408, .live_blocks = 6, .alloc_bytes = 1708,
                                  .alloc_blocks = 9, .peak_bytes = 1408, .peak_blocks = 6 };
    mta_snapshot_t *snap = load(&s, "/snaps/memtrail.4242.0002.exit.mtsnap");
    mtc_snap_free(&s);
    return snap;
}

/* The node at the path of (function, line) pairs from the root; -1 if none. */
static long node_at(const mta_flametree_t *t, int n, ...)
{
    va_list ap;
    long cur = 0;
    va_start(ap, n);
    for (int k = 0; k < n && cur >= 0; k++) {
        const char *fn = va_arg(ap, const char *);
        unsigned line = va_arg(ap, unsigned);
        long found = -1;
        for (size_t i = 1; i < t->nnodes && found < 0; i++) {
            const mta_ft_frame_t *f = t->frame[i] >= 0 ? &t->frames[t->frame[i]] : NULL;
            if (t->parent[i] == cur && f && strcmp(f->function, fn) == 0 && f->line == line)
                found = (long)i;
        }
        cur = found;
    }
    va_end(ap);
    return cur;
}

/* Value r (2 * metric + 0 bytes / 1 blocks) of node i. */
#define V(v, t, m, blocks, i) ((v)[(2 * (size_t)(m) + (blocks)) * (t).nnodes + (size_t)(i)])

static void expect_node(const uint64_t *v, const mta_flametree_t *t, long i, mta_ft_metric_t m,
                        uint64_t bytes, uint64_t blocks, const char *what)
{
    cr_assert_geq(i, 0, "%s: no such node", what);
    cr_expect_eq(V(v, *t, m, 0, i), bytes, "%s metric %d: %llu bytes, want %llu", what, (int)m,
                 (unsigned long long)V(v, *t, m, 0, i), (unsigned long long)bytes);
    cr_expect_eq(V(v, *t, m, 1, i), blocks, "%s metric %d: %llu blocks, want %llu", what, (int)m,
                 (unsigned long long)V(v, *t, m, 1, i), (unsigned long long)blocks);
}

Test(html, tree_of_two_snapshots_exact_inclusive_values)
{
    const mta_snapshot_t *snaps[2] = { snap_a(), snap_b() };
    mta_flametree_t t;
    mta_ft_opts_t o = { .max_nodes = 1000 };
    cr_assert_eq(mta_flametree_build(&t, snaps, 2, &o), 0);
    /* root, main, main/parse:12, main/parse:12/load, main/load, main/grow,
     * main/parse:13: the same path is one node in both snapshots. */
    cr_expect_eq(t.nnodes, 7);
    cr_expect_eq(t.nframes, 5, "main, Parser::parse():12, load, grow, Parser::parse():13");
    cr_expect_not(t.pruned);
    long mainn = node_at(&t, 1, "main", 40);
    long parse = node_at(&t, 2, "main", 40, "Parser::parse()", 12);
    long parse_load = node_at(&t, 3, "main", 40, "Parser::parse()", 12, "load", 20);
    long loadn = node_at(&t, 2, "main", 40, "load", 20);
    long grow = node_at(&t, 2, "main", 40, "grow", 70);
    long parse13 = node_at(&t, 2, "main", 40, "Parser::parse()", 13);
    cr_assert(parse13 >= 0 && parse13 != parse, "a different line is a different frame");
    cr_expect_str_eq(t.frames[t.frame[parse]].module, "app");
    cr_expect_str_eq(t.frames[t.frame[parse]].file, "app.c");
    for (size_t i = 1; i < t.nnodes; i++)
        cr_expect_lt(t.parent[i], (int32_t)i);

    uint64_t *v = malloc(2 * MTA_FT_NMETRICS * t.nnodes * sizeof(*v));
    mta_flametree_values(&t, 0, v);
    expect_node(v, &t, 0, MTA_FT_LIVE, 150, 3, "A root");
    expect_node(v, &t, mainn, MTA_FT_LIVE, 150, 3, "A main");
    expect_node(v, &t, parse, MTA_FT_LIVE, 100, 1, "A parse");
    expect_node(v, &t, parse_load, MTA_FT_LIVE, 0, 0, "A parse/load");
    expect_node(v, &t, loadn, MTA_FT_LIVE, 50, 2, "A load");
    expect_node(v, &t, grow, MTA_FT_LIVE, 0, 0, "A grow");
    expect_node(v, &t, 0, MTA_FT_PEAK, 1250, 5, "A root");
    expect_node(v, &t, parse, MTA_FT_PEAK, 1200, 3, "A parse");
    expect_node(v, &t, parse_load, MTA_FT_PEAK, 1000, 1, "A parse/load");
    expect_node(v, &t, 0, MTA_FT_ALLOC, 1350, 6, "A root");
    expect_node(v, &t, parse, MTA_FT_ALLOC, 1300, 4, "A parse");
    cr_expect_not(mta_flametree_has(&t, 0, MTA_FT_DEFINITE));
    mta_flametree_values(&t, 1, v);
    expect_node(v, &t, 0, MTA_FT_LIVE, 1408, 6, "B root");
    expect_node(v, &t, parse, MTA_FT_LIVE, 400, 4, "B parse");
    expect_node(v, &t, parse_load, MTA_FT_LIVE, 0, 0, "B parse/load");
    expect_node(v, &t, grow, MTA_FT_LIVE, 1000, 1, "B grow");
    expect_node(v, &t, parse13, MTA_FT_LIVE, 8, 1, "B parse:13");
    expect_node(v, &t, 0, MTA_FT_ALLOC, 1708, 9, "B root");
    expect_node(v, &t, parse, MTA_FT_PEAK, 400, 4, "B parse");
    free(v);
    mta_flametree_free(&t);
    mta_snapshot_free((mta_snapshot_t *)snaps[0]);
    mta_snapshot_free((mta_snapshot_t *)snaps[1]);
}

Test(html, lost_kinds_per_node_from_the_blocks)
{
    enum { D = MTSNAP_LEAK_DEFINITE, P = MTSNAP_LEAK_POSSIBLE, R = MTSNAP_LEAK_REACHABLE,
           I = MTSNAP_LEAK_INDIRECT };
    mtc_snap_t s;
    mtc_snap_init(&s);
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/build/app");
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "app.c", 40);
    uint32_t f = mtc_frame(&s, 0x401100, prog, "f", "app.c", 10);
    uint32_t g = mtc_frame(&s, 0x401200, prog, "g", "app.c", 20);
    uint32_t s0 = mtc_stack(&s, 2, (uint32_t[]){ f, mainf });
    uint32_t s1 = mtc_stack(&s, 2, (uint32_t[]){ g, mainf });
    const struct { uint64_t size; uint32_t stack; uint8_t kind; } blocks[] = {
        { 16, s0, D }, { 32, s0, D }, { 64, s0, P }, { 128, s0, R }, { 8, s1, P }, { 4, s1, I },
    };
    uint8_t kinds[6];
    for (size_t i = 0; i < 6; i++) {
        mtc_block(&s, 0x10000 + 0x100 * i, blocks[i].size, blocks[i].stack);
        kinds[i] = blocks[i].kind;
    }
    mtc_stat(&s, s0, 240, 4, 240, 4, 240, 4);
    mtc_stat(&s, s1, 12, 2, 12, 2, 12, 2);
    s.totals = (mtsnap_totals_t){ .live_bytes = 252, .live_blocks = 6, .alloc_bytes = 252,
                                  .alloc_blocks = 6, .peak_bytes = 252, .peak_blocks = 6 };
    mtc_buf_t payload = { 0 }, b = { 0 };
    mtsnap_leak_header_t h = { .blocks = 6 };
    mtc_put(&payload, &h, sizeof(h));
    mtc_put(&payload, kinds, sizeof(kinds));
    mtc_extra_t extra = { .tag = MTSNAP_TAG_LEAKS, .payload = payload.data, .len = payload.len };
    mtc_compose_with(&s, &extra, 1, &b);
    const mta_snapshot_t *snap = parse_image(&b, "/snaps/memtrail.4242.0001.exit.mtsnap");
    mtc_buf_free(&payload);
    mtc_buf_free(&b);
    mtc_snap_free(&s);

    mta_flametree_t t;
    mta_ft_opts_t o = { 0 };
    cr_assert_eq(mta_flametree_build(&t, &snap, 1, &o), 0);
    cr_expect(mta_flametree_has(&t, 0, MTA_FT_DEFINITE) && mta_flametree_has(&t, 0, MTA_FT_POSSIBLE));
    uint64_t *v = malloc(2 * MTA_FT_NMETRICS * t.nnodes * sizeof(*v));
    mta_flametree_values(&t, 0, v);
    long fn = node_at(&t, 2, "main", 40, "f", 10), gn = node_at(&t, 2, "main", 40, "g", 20);
    expect_node(v, &t, fn, MTA_FT_DEFINITE, 48, 2, "f");
    expect_node(v, &t, fn, MTA_FT_POSSIBLE, 64, 1, "f");
    expect_node(v, &t, gn, MTA_FT_DEFINITE, 0, 0, "g");
    expect_node(v, &t, gn, MTA_FT_POSSIBLE, 8, 1, "g");
    expect_node(v, &t, 0, MTA_FT_DEFINITE, 48, 2, "root");
    expect_node(v, &t, 0, MTA_FT_POSSIBLE, 72, 2, "root");
    expect_node(v, &t, 0, MTA_FT_LIVE, 252, 6, "root");
    free(v);
    mta_flametree_free(&t);
    mta_snapshot_free((mta_snapshot_t *)snap);
}

/* The report's JSON of snap into a string. */
static char *report_of(const mta_snapshot_t *snap, const mta_report_opts_t *o)
{
    char *buf = NULL;
    size_t len;
    FILE *ms = open_memstream(&buf, &len);
    cr_assert_eq(mta_report(ms, snap, o), 0);
    fclose(ms);
    return buf;
}

Test(html, table_keeps_the_top_sites_of_each_metric)
{
    const mta_snapshot_t *a = snap_a();
    /* by function: Parser::parse() 100 live, 200 peak, 300 allocated;
     * load 50 live, 1,050 peak, 1,050 allocated */
    mta_report_opts_t o = { .group_by = MTA_GROUP_FUNCTION, .top = 1, .format = MTA_FORMAT_JSON };
    char *r = report_of(a, &o);
    cr_expect(strstr(r, "\"key\": \"Parser::parse()\""));
    cr_expect_null(strstr(r, "\"key\": \"load\""), "the live order's top 1 only");
    free(r);
    o.keep_empty = true;
    r = report_of(a, &o);
    cr_expect(strstr(r, "\"key\": \"Parser::parse()\""), "the top 1 by live bytes");
    cr_expect(strstr(r, "\"key\": \"load\",\n      \"bytes\": 50,\n      \"blocks\": 2,\n"
                        "      \"peak_bytes\": 1050,"),
              "and the top 1 by peak and allocated bytes: %s", r);
    cr_expect(strstr(r, "\"total_entries\": 2"));
    free(r);
    mta_snapshot_free((mta_snapshot_t *)a);
}

/* The whole page of snaps into a string. */
static char *page_of(const mta_snapshot_t *const *snaps, size_t n, const mta_html_opts_t *o,
                     mta_html_info_t *info, size_t *len)
{
    char *buf = NULL;
    FILE *ms = open_memstream(&buf, len);
    cr_assert_eq(mta_html(ms, snaps, n, o, info), 0);
    fclose(ms);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* The embedded data: from after the data element's start tag to the next "</". */
static char *data_of(const char *page)
{
    static const char tag[] = "<script id=\"memtrail-data\" type=\"application/json\">{";
    const char *p = NULL, *q;
    for (q = page; (q = strstr(q, tag)); q++)
        p = q;   /* the last one: the template's comment may name the element */
    cr_assert_not_null(p, "no data element");
    p += sizeof(tag) - 2;
    q = strstr(p, "</script>");
    cr_assert_not_null(q);
    return strndup(p, (size_t)(q - p));
}

Test(html, data_is_escaped_for_a_script_element)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    static const char cmd[] = "./evil\0</title><b>x&y\xff";   /* two arguments */
    s.meta.cmdline = mtc_strn(&s, cmd, sizeof(cmd));
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/build/app");
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "app.c", 40);
    uint32_t evil = mtc_frame(&s, 0x401100, prog, "f</script><script>alert(1)</script>\xff\xfe",
                              "<!--x.c", 3);
    mtc_stat(&s, mtc_stack(&s, 2, (uint32_t[]){ evil, mainf }), 77, 1, 77, 1, 77, 1);
    s.totals = (mtsnap_totals_t){ .live_bytes = 77, .live_blocks = 1, .alloc_bytes = 77,
                                  .alloc_blocks = 1, .peak_bytes = 77, .peak_blocks = 1 };
    const mta_snapshot_t *snap = load(&s, "/snaps/memtrail.4242.0001.exit.mtsnap");
    mtc_snap_free(&s);
    mta_html_opts_t o = { .top = 10, .max_nodes = 1000 };
    size_t len;
    char *page = page_of(&snap, 1, &o, NULL, &len);
    cr_assert_eq(strlen(page), len, "no NUL byte in the page");
    char *data = data_of(page);
    cr_expect_null(strchr(data, '<'), "a '<' in the data");
    cr_expect(strstr(data, "\"function\":\"f\\u003c/script>\\u003cscript>alert(1)\\u003c/script>"
                           "\\ufffd\\ufffd\""), "the frame's name: %.300s", data);
    cr_expect(strstr(data, "\"file\":\"\\u003c!--x.c\""));
    /* the report's own JSON, spliced in: its '<' escaped too */
    cr_expect(strstr(data, "\"key\":\"f\\u003c/script>\\u003cscript>alert(1)"));
    cr_expect(strstr(data, "\"title\":\"memtrail: ./evil \\u003c/title>\\u003cb>x&y\\ufffd\""),
              "%.200s", data);
    /* The page's "</script" are the template's, plus the data element's end. */
    size_t tmpl = 0;
    for (size_t p = 0; p < mta_html_nparts; p++) {
        char *part = strndup(mta_html_parts[p].text, mta_html_parts[p].len);
        tmpl += count(part, "</script");
        free(part);
    }
    cr_expect_eq(count(page, "</script"), tmpl + 1);
    cr_expect(strstr(page, "memtrail: ./evil &lt;/title&gt;&lt;b&gt;x&amp;y\xef\xbf\xbd"),
              "the title, HTML-escaped");
    free(data);
    free(page);
    mta_snapshot_free((mta_snapshot_t *)snap);
}

/* ---- the timeline ----------------------------------------------------------- */

static void put_leb(mtc_buf_t *b, uint64_t v)
{
    uint8_t d[10];
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t)v;
    mtc_put(b, d, n);
}

static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

/* A one-stack snapshot taken `at_ns` after the start, with a TIMELINE of
 * n points {t_ns, heap, blocks, rss} (hand-encoded, docs/format.md). */
static const mta_snapshot_t *timeline_snapshot(uint32_t seq, uint64_t at_ns, uint64_t step_ns,
                                               const uint64_t (*pts)[4], size_t n,
                                               uint64_t peak_at_ns, uint64_t peak_bytes)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta.seq = seq;
    s.meta.time_ns = s.meta.start_ns + at_ns;
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/build/app");
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "app.c", 40);
    mtc_stat(&s, mtc_stack(&s, 1, &mainf), 64, 1, 64, 1, peak_bytes, 1);
    s.totals = (mtsnap_totals_t){ .live_bytes = 64, .live_blocks = 1, .alloc_bytes = 64,
                                  .alloc_blocks = 1, .peak_bytes = peak_bytes, .peak_blocks = 1,
                                  .peak_time_ns = s.meta.start_ns + peak_at_ns };
    mtc_buf_t payload = { 0 }, b = { 0 };
    put_leb(&payload, step_ns);
    put_leb(&payload, n);
    for (size_t i = 0; i < n; i++) {
        put_leb(&payload, pts[i][0] - (i ? pts[i - 1][0] : 0));
        for (int k = 1; k < 4; k++)
            put_leb(&payload, zz((int64_t)(pts[i][k] - (i ? pts[i - 1][k] : 0))));
    }
    mtc_extra_t extra = { .tag = MTSNAP_TAG_TIMELINE, .payload = payload.data, .len = payload.len };
    mtc_compose_with(&s, &extra, 1, &b);
    char name[100];
    snprintf(name, sizeof(name), "/snaps/memtrail.4242.%04u.interval.mtsnap", seq);
    const mta_snapshot_t *snap = parse_image(&b, name);
    mtc_buf_free(&payload);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
    return snap;
}

Test(html, timeline_of_the_newest_snapshot)
{
    static const uint64_t early[][4] = { { 10000000, 64, 1, 4096 }, { 20000000, 500, 2, 8192 } };
    static const uint64_t late[][4] = {
        { 10000000, 64, 1, 4096 },   { 20000000, 1400, 5, 8192 },
        { 35000001, 800, 3, 12288 }, { 40000000, 64, 1, 8192 },
    };
    /* Given newest first: the page takes the newest snapshot's series and peak. */
    const mta_snapshot_t *snaps[2] = {
        timeline_snapshot(2, 40000000, 10000000, late, 4, 15000000, 1400),
        timeline_snapshot(1, 20000000, 10000000, early, 2, 19000000, 500),
    };
    mta_html_opts_t o = { .top = 10, .max_nodes = 1000 };
    char *buf = NULL;
    size_t len;
    FILE *ms = open_memstream(&buf, &len);
    cr_assert_eq(mta_html_data(ms, snaps, 2, &o, NULL), 0);
    fclose(ms);
    cr_expect(strstr(buf, ",\"timeline\":{\"step_s\":0.01,\"t\":[0.01,0.02,0.035000001,0.04],"
                          "\"heap\":[64,1400,800,64],\"blocks\":[1,5,3,1],"
                          "\"rss\":[4096,8192,12288,8192],\"peak\":{\"t\":0.015,\"bytes\":1400}}}\n"),
              "%s", strstr(buf, "\"timeline\"") ? strstr(buf, "\"timeline\"") : buf);
    cr_expect(strstr(buf, "\"time_s\":0.04,"), "snapshot 2's time");
    cr_expect(strstr(buf, "\"time_s\":0.02,"), "snapshot 1's time");
    free(buf);
    mta_snapshot_free((mta_snapshot_t *)snaps[0]);
    mta_snapshot_free((mta_snapshot_t *)snaps[1]);

    /* Without a TIMELINE record: null. */
    const mta_snapshot_t *a = snap_a();
    ms = open_memstream(&buf, &len);
    cr_assert_eq(mta_html_data(ms, &a, 1, &o, NULL), 0);
    fclose(ms);
    cr_expect(strstr(buf, ",\"timeline\":null}\n"));
    free(buf);
    mta_snapshot_free((mta_snapshot_t *)a);
}

/* 100,000 distinct stacks: main <- a<i> (10) <- b<j> (100) <- c<j,k> (100
 * per b, 10,000 distinct frames with long C++ names). */
#define NSTACKS 100000
static uint64_t stack_bytes(uint32_t n) { return 1 + (n * 7919u) % 10007u; }

static const mta_snapshot_t *big_snapshot(void)
{
    mtc_snap_t s;
    char name[200], file[100];
    uint32_t a[10], b[100], *c = malloc(10000 * sizeof(*c));
    mtc_snap_init(&s);
    uint32_t prog = mtc_module(&s, 0x400000, 0x4000000, 0, "/build/bigapp");
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "main.cc", 1);
    uint64_t pc = 0x402000;
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "server::Worker::run_%d()", i);
        a[i] = mtc_frame(&s, pc++, prog, name, "src/worker.cc", 10 + i);
    }
    for (int j = 0; j < 100; j++) {
        snprintf(name, sizeof(name), "server::Handler<std::string>::handle_%d(Request const&)", j);
        b[j] = mtc_frame(&s, pc++, prog, name, "src/handler.cc", 100 + j);
    }
    for (int k = 0; k < 10000; k++) {
        snprintf(name, sizeof(name), "codec::Parser<std::vector<int>>::parse_field_%05d"
                 "(std::string const&, unsigned long)", k);
        snprintf(file, sizeof(file), "src/codec/fields/field_%05d.cc", k);
        c[k] = mtc_frame(&s, pc++, prog, name, file, 1 + k % 500);
    }
    uint64_t live = 0, blocks = 0;
    for (uint32_t n = 0; n < NSTACKS; n++) {
        uint32_t i = n % 10, j = (n / 10) % 100, k = n / 1000;
        uint32_t st = mtc_stack(&s, 4, (uint32_t[]){ c[j * 100 + k], b[j], a[i], mainf });
        mtc_stat(&s, st, stack_bytes(n), 1 + n % 3, 2 * stack_bytes(n), 2 + n % 3,
                 stack_bytes(n), 1 + n % 3);
        live += stack_bytes(n);
        blocks += 1 + n % 3;
    }
    s.totals = (mtsnap_totals_t){ .live_bytes = live, .live_blocks = blocks,
                                  .alloc_bytes = 2 * live, .alloc_blocks = blocks + NSTACKS,
                                  .peak_bytes = live, .peak_blocks = blocks };
    const mta_snapshot_t *snap = load(&s, "/snaps/memtrail.4242.0001.exit.mtsnap");
    mtc_snap_free(&s);
    free(c);
    return snap;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(html, hundred_thousand_stacks_fit_in_ten_megabytes, .timeout = 120)
{
    const mta_snapshot_t *snap = big_snapshot();
    uint64_t live = snap->totals.live_bytes, blocks = snap->totals.live_blocks;
    mta_html_opts_t o = { .top = MTA_HTML_TOP, .max_nodes = MTA_HTML_MAX_NODES };
    mta_html_info_t info;
    size_t len;
    double t0 = now();
    char *page = page_of(&snap, 1, &o, &info, &len);
    double took = now() - t0;
    cr_log_info("100,000 stacks: %zu B of HTML, %zu nodes (%zu merged below %.3g%%), %.2f s",
                len, info.nodes, info.nodes_merged, info.threshold * 100, took);
    cr_expect_leq(len, 10u * 1000 * 1000, "%zu B of HTML", len);
    cr_expect(info.pruned);
    cr_expect_leq(info.nodes, MTA_HTML_MAX_NODES);
    cr_expect_gt(info.nodes_merged, 0);
    char *data = data_of(page);
    cr_expect(strstr(data, "\"pruned\":{\"threshold_share\":"), "pruned is set");
    char want[200];
    snprintf(want, sizeof(want), "\"values\":{\"live\":{\"bytes\":[%llu,",
             (unsigned long long)live);
    cr_expect(strstr(data, want), "the root's live bytes are exact: %s", want);
    snprintf(want, sizeof(want), "],\"blocks\":[%llu,", (unsigned long long)blocks);
    cr_expect(strstr(data, want), "the root's live blocks are exact: %s", want);
    snprintf(want, sizeof(want), "\"allocated\":{\"bytes\":[%llu,", (unsigned long long)(2 * live));
    cr_expect(strstr(data, want), "the root's allocated bytes are exact: %s", want);
    cr_expect(strstr(data, ",-2,"), "an \"other\" node");
    free(data);
    free(page);

    /* Without a budget nothing is merged, and the page is larger. */
    o.max_nodes = 0;
    page = page_of(&snap, 1, &o, &info, &len);
    cr_expect_not(info.pruned);
    cr_expect_eq(info.nodes, 1 + 1 + 10 + 1000 + NSTACKS);
    free(page);
    mta_snapshot_free((mta_snapshot_t *)snap);
}

Test(html, threshold_merges_small_paths_and_keeps_totals)
{
    const mta_snapshot_t *snaps[2] = { snap_a(), snap_b() };
    mta_flametree_t t;
    /* B: grow 1000 of 1408 live; parse:13 8 B is below 1% everywhere. */
    mta_ft_opts_t o = { .min_share = 0.01 };
    cr_assert_eq(mta_flametree_build(&t, snaps, 2, &o), 0);
    cr_expect(t.pruned);
    cr_expect_eq(t.nodes_merged, 1);
    cr_expect_eq(t.nnodes, 7, "six kept, one \"other\" node");
    cr_expect_eq(t.frame[6], MTA_FT_OTHER);
    cr_expect_eq(t.parent[6], node_at(&t, 1, "main", 40));
    cr_expect_eq(t.merged[6], 1);
    uint64_t *v = malloc(2 * MTA_FT_NMETRICS * t.nnodes * sizeof(*v));
    mta_flametree_values(&t, 1, v);
    expect_node(v, &t, 0, MTA_FT_LIVE, 1408, 6, "B root");
    expect_node(v, &t, 6, MTA_FT_LIVE, 8, 1, "B other");
    free(v);
    mta_flametree_free(&t);
    mta_snapshot_free((mta_snapshot_t *)snaps[0]);
    mta_snapshot_free((mta_snapshot_t *)snaps[1]);
}

/* ---- the command ---------------------------------------------------------- */

typedef struct result {
    int status;
    char out[4096], err[4096];
} result_t;

static void slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* memtrail ARGS... (NULL-terminated) in directory dir. */
static void run(result_t *r, const char *dir, ...)
{
    const char *exe = getenv("MEMTRAIL_EXE");
    cr_assert_not_null(exe);
    char *argv[16] = { (char *)exe };
    int argc = 1;
    va_list ap;
    va_start(ap, dir);
    char *a;
    while ((a = va_arg(ap, char *)) && argc < 15)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        if (chdir(dir) != 0)
            _exit(98);
        execv(exe, argv);
        _exit(99);
    }
    cr_assert_eq(waitpid(pid, &r->status, 0), pid);
    slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void expect_usage_error(const result_t *r, const char *line)
{
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 2, "status %d, stderr %s",
              r->status, r->err);
    cr_expect_eq(count(r->err, "\n"), 1, "one line: %s", r->err);
    cr_expect(strstr(r->err, line), "stderr '%s' lacks '%s'", r->err, line);
}

Test(html, command_errors_and_atomic_output)
{
    char dir[] = "/tmp/test_html.XXXXXX", path[256], out[256], bad[256];
    cr_assert_not_null(mkdtemp(dir));
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mtc_snap_init(&s);
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/build/app");
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "app.c", 40);
    mtc_stat(&s, mtc_stack(&s, 1, &mainf), 4096, 2, 4096, 2, 4096, 2);
    s.totals = (mtsnap_totals_t){ .live_bytes = 4096, .live_blocks = 2, .alloc_bytes = 4096,
                                  .alloc_blocks = 2, .peak_bytes = 4096, .peak_blocks = 2 };
    mtc_compose(&s, &b);
    snprintf(path, sizeof(path), "%s/memtrail.4242.0001.exit.mtsnap", dir);
    write_file(path, b.data, b.len);
    snprintf(bad, sizeof(bad), "%s/bad.mtsnap", dir);
    write_file(bad, b.data, b.len / 2);   /* truncated */
    mtc_buf_free(&b);
    mtc_snap_free(&s);
    snprintf(out, sizeof(out), "%s/out.html", dir);
    write_file(out, "old\n", 4);

    result_t r;
    run(&r, dir, "html", bad, "-o", out, NULL);
    expect_usage_error(&r, "memtrail: snapshot: ");
    run(&r, dir, "html", path, "/nonexistent.mtsnap", "-o", out, NULL);
    expect_usage_error(&r, "/nonexistent.mtsnap");
    run(&r, dir, "html", "-o", out, NULL);
    expect_usage_error(&r, "memtrail: html: missing snapshot FILE");
    run(&r, dir, "html", path, "--threshold", "2", NULL);
    expect_usage_error(&r, "memtrail: html: invalid --threshold '2'");
    run(&r, dir, "html", path, "--max-nodes", "3", NULL);
    expect_usage_error(&r, "memtrail: html: invalid --max-nodes '3'");
    run(&r, dir, "html", path, "--bogus", NULL);
    expect_usage_error(&r, "--bogus");
    run(&r, dir, "html", path, "-o", "/nonexistent-dir/x.html", NULL);
    expect_usage_error(&r, "memtrail: html: cannot write /nonexistent-dir/x.html");
    char old[8] = "";
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    cr_expect_eq(fread(old, 1, sizeof(old) - 1, f), 4);
    fclose(f);
    cr_expect_str_eq(old, "old\n", "a failed run leaves OUT as it was");

    /* Success: OUT replaced whole, mode 0600, no temporary left; the default
     * name is the snapshot's with .html, in the current directory. */
    run(&r, dir, "html", path, "-o", out, NULL);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    cr_expect_str_eq(r.err, "");
    cr_expect(strstr(r.out, "wrote "), "%s", r.out);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    f = fopen(out, "r");
    char *page = calloc(1, (size_t)st.st_size + 1);
    cr_assert_eq(fread(page, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    cr_expect(strstr(page, "\"values\":{\"live\":{\"bytes\":[4096,4096],\"blocks\":[2,2]}"),
              "root and main: 4096 B in 2 blocks");
    cr_expect(strstr(page, "</html>"), "the whole page");
    free(page);
    run(&r, dir, "html", path, NULL);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    char def[300];
    snprintf(def, sizeof(def), "%s/memtrail.4242.0001.exit.html", dir);
    cr_expect_eq(access(def, R_OK), 0, "the default OUT");
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls -A %s | grep -c '^\\.memtrail-out' > /dev/null", dir);
    cr_expect_neq(system(cmd), 0, "no temporary left in %s", dir);
    run(&r, dir, "help", "html", NULL);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    cr_expect(strstr(r.out, "--max-nodes") && strstr(r.out, "--threshold") &&
              strstr(r.out, "--top") && strstr(r.out, "--output") && strstr(r.out, "--include"));
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* A series shares the budgets: the node budget and the table's entries per
 * key scale with 2 / (n + 1), the table keeping at least 100 entries. */
Test(html, a_series_shares_the_budgets)
{
    static const struct { size_t n, nodes, top; } want[] = {
        {1, 60000, 500}, {2, 40000, 333}, {3, 30000, 250}, {9, 12000, 100}, {23, 5000, 100},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t nodes, top;
        mta_html_series_defaults(want[i].n, &nodes, &top);
        cr_assert_eq(nodes, want[i].nodes, "%zu snapshots: %zu nodes", want[i].n, nodes);
        cr_assert_eq(top, want[i].top, "%zu snapshots: top %zu", want[i].n, top);
    }
}
