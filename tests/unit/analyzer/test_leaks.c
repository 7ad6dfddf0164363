/* `memtrail leaks` tests: loss records and the LEAK SUMMARY of a composed
 * snapshot with a LEAKS record, in text and JSON, --kind, --top, filters,
 * --fail-on-leak, and the one-line errors of the command (exit statuses). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "outputs.h"
#include "names.h"
#include "leaks.h"
#include "snapcompose.h"
#include "snapshot.h"

#define SNAPNAME "memtrail.4242.0001.exit.mtsnap"

enum { D = MTSNAP_LEAK_DEFINITE, I = MTSNAP_LEAK_INDIRECT, P = MTSNAP_LEAK_POSSIBLE,
       R = MTSNAP_LEAK_REACHABLE, L = MTSNAP_LEAK_LIBC, U = MTSNAP_LEAK_UNSCANNED };

static const mtsnap_leak_header_t scan = { .root_bytes = 4096, .heap_bytes = 5000,
                                           .stop_ns = 150000, .threads = 2 };

/* The fixture: six stacks, fifteen blocks of every kind.
 *   s0 leak_three:  definite 48 B / 3, possible 2,000 B / 1 (libmemtrail frame hidden)
 *   s1 make_list:   definite 48 B / 2, indirect 32 B / 2
 *   s2 keep_cache:  possible 16 B / 1, reachable 2,048 B / 2, unscanned 8 B / 1
 *   s3 libc:        libc 100 B / 1
 *   s4 unknown:     definite 8 B / 1
 *   s5 leak_small:  definite 8 B / 1 (its block comes before s4's) */
static void fixture(mtc_snap_t *s, uint8_t *kinds, uint64_t *nkinds)
{
    mtc_snap_init(s);
    s->meta.cmdline = mtc_strn(s, "./leaky\0--fast\0", 15);
    s->meta.exe = mtc_str(s, "/tmp/leaky");
    uint32_t prog = mtc_module(s, 0x400000, 0x500000, 0, "/tmp/leaky");
    uint32_t mt = mtc_module(s, 0x7d0000000000, 0x7d0000100000, 0x7d0000000000,
                             "/opt/memtrail/lib/libmemtrail.so");
    uint32_t libc = mtc_module(s, 0x7f0000000000, 0x7f0000200000, 0x7f0000000000,
                               "/lib/x86_64-linux-gnu/libc.so.6");
    uint32_t hook = mtc_frame(s, 0x7d0000001000, mt, "mtp_malloc_hook", "preload/hooks.c", 5);
    uint32_t three = mtc_frame(s, 0x401100, prog, "leak_three", "leaky.c", 12);
    uint32_t list = mtc_frame(s, 0x401200, prog, "make_list", "leaky.c", 20);
    uint32_t cache = mtc_frame(s, 0x401300, prog, "keep_cache", "leaky.c", 30);
    uint32_t small = mtc_frame(s, 0x401400, prog, "leak_small", "leaky.c", 50);
    uint32_t mainf = mtc_frame(s, 0x401000, prog, "main", "leaky.c", 40);
    uint32_t setup = mtc_frame(s, 0x7f0000012345, libc, "__libc_setup_tls", "", 0);
    uint32_t s0 = mtc_stack(s, 3, (uint32_t[]){ hook, three, mainf });
    uint32_t s1 = mtc_stack(s, 2, (uint32_t[]){ list, mainf });
    uint32_t s2 = mtc_stack(s, 2, (uint32_t[]){ cache, mainf });
    uint32_t s3 = mtc_stack(s, 1, (uint32_t[]){ setup });
    uint32_t s4 = mtc_stack(s, 0, NULL);
    uint32_t s5 = mtc_stack(s, 2, (uint32_t[]){ small, mainf });
    const struct { uint64_t address, size; uint32_t stack; uint8_t kind; } blocks[] = {
        { 0x10000, 16, s0, D },   { 0x10100, 16, s0, D },   { 0x10200, 16, s0, D },
        { 0x10300, 2000, s0, P }, { 0x20000, 24, s1, D },   { 0x20100, 16, s1, I },
        { 0x20200, 16, s1, I },   { 0x20300, 24, s1, D },   { 0x30000, 16, s2, P },
        { 0x30100, 1024, s2, R }, { 0x30200, 1024, s2, R }, { 0x40000, 100, s3, L },
        { 0x50000, 8, s5, D },    { 0x50100, 8, s4, D },    { 0x60000, 8, s2, U },
    };
    *nkinds = sizeof(blocks) / sizeof(blocks[0]);
    for (size_t i = 0; i < *nkinds; i++) {
        mtc_block(s, blocks[i].address, blocks[i].size, blocks[i].stack);
        kinds[i] = blocks[i].kind;
    }
    mtc_stat(s, s0, 2048, 4, 2048, 4, 2048, 4);
    mtc_stat(s, s1, 80, 4, 80, 4, 80, 4);
    mtc_stat(s, s2, 2072, 4, 2072, 4, 2072, 4);
    mtc_stat(s, s3, 100, 1, 100, 1, 100, 1);
    mtc_stat(s, s4, 8, 1, 8, 1, 8, 1);
    mtc_stat(s, s5, 8, 1, 8, 1, 8, 1);
    s->totals = (mtsnap_totals_t){ .live_bytes = 4316, .live_blocks = 15, .alloc_bytes = 4316,
                                   .alloc_blocks = 15, .peak_bytes = 4316, .peak_blocks = 15 };
}

/* The file image of s with a LEAKS record (header h, `n` kind bytes), or
 * without one when h is NULL. */
static void image(const mtc_snap_t *s, const mtsnap_leak_header_t *h, const uint8_t *kinds,
                  uint64_t n, mtc_buf_t *out)
{
    mtc_buf_t payload = { 0 };
    if (!h) {
        mtc_compose(s, out);
        return;
    }
    mtsnap_leak_header_t hh = *h;
    hh.blocks = n;
    mtc_put(&payload, &hh, sizeof(hh));
    mtc_put(&payload, kinds, (size_t)n);
    mtc_extra_t extra = { .tag = MTSNAP_TAG_LEAKS, .payload = payload.data, .len = payload.len };
    mtc_compose_with(s, &extra, 1, out);
    mtc_buf_free(&payload);
}

static mta_snapshot_t *load_fixture(const mtsnap_leak_header_t *h)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    uint8_t kinds[64];
    uint64_t n;
    mta_snapshot_t *snap = NULL;
    char err[512];
    fixture(&s, kinds, &n);
    image(&s, h, kinds, n, &b);
    int rc = mta_snapshot_parse(b.data, b.len, "/snaps/" SNAPNAME, &snap, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
    return snap;
}

/* mta_leaks() on the fixture into a string; *rc gets its result. */
static char *render(const mta_leaks_opts_t *o, const mtsnap_leak_header_t *h, int *rc)
{
    mta_snapshot_t *snap = load_fixture(h);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    *rc = mta_leaks(f, snap, o);
    fclose(f);
    mta_snapshot_free(snap);
    return buf;
}

static const char header[] =
    "memtrail leaks: /snaps/" SNAPNAME " (pid 4242, exit)\n"
    "  command: ./leaky --fast\n"
    "  taken: 2023-11-14 22:13:20.123 UTC, #1; live: 4,316 B (4.2 KiB) in 15 blocks\n";

static const char summary[] =
    "   definitely lost: 112 B in 7 blocks\n"
    "   indirectly lost: 32 B in 2 blocks\n"
    "     possibly lost: 2,016 B (2.0 KiB) in 2 blocks\n"
    "   still reachable: 2,048 B (2.0 KiB) in 2 blocks\n"
    "   C library's own: 100 B in 1 block   (reached only from libc's data; valgrind frees these at exit)\n"
    "         unscanned: 8 B in 1 block   (their memory could not be read at scan time)\n"
    "   threads scanned: 2 (stopped for 0.150 ms; 4,096 B (4.0 KiB) of roots and 5,000 B (4.9 KiB) of blocks read)\n";

Test(leaks, text_default_kinds_worst_first)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_DEFAULT };
    int rc;
    char *got = render(&o, &scan, &rc);
    cr_assert_eq(rc, 0);
    char want[8192];
    snprintf(want, sizeof(want), "%s%s%s%s", header,
             "\n48 B in 3 blocks are definitely lost (loss record 1 of 6)\n"
             "    at leak_three (leaky.c:12) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\n48 B in 2 blocks are definitely lost (loss record 2 of 6)\n"
             "    at make_list (leaky.c:20) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\n8 B in 1 block are definitely lost (loss record 3 of 6)\n"
             "    [unknown stack]\n"
             "\n8 B in 1 block are definitely lost (loss record 4 of 6)\n"
             "    at leak_small (leaky.c:50) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\n2,000 B (2.0 KiB) in 1 block are possibly lost (loss record 5 of 6)\n"
             "    at leak_three (leaky.c:12) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\n16 B in 1 block are possibly lost (loss record 6 of 6)\n"
             "    at keep_cache (leaky.c:30) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\nLEAK SUMMARY:\n",
             summary,
             "\nloss records shown: definite, possible (--kind all shows every kind)\n");
    cr_assert_str_eq(got, want);
    free(got);
}

Test(leaks, text_all_kinds_top_and_partial_scan)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_ALL, .top = 7 };
    mtsnap_leak_header_t h = scan;
    h.threads_missed = 1;
    h.flags = MTSNAP_LEAK_F_PARTIAL;
    int rc;
    char *got = render(&o, &h, &rc);
    cr_assert_eq(rc, 0);
    /* records 5..7: the possible ones, then the first indirect: the kind
     * comes before the size */
    const char *want_tail =
        "\n2,000 B (2.0 KiB) in 1 block are possibly lost (loss record 6 of 10)\n"
        "    at leak_three (leaky.c:12) [leaky]\n"
        "    by main (leaky.c:40) [leaky]\n"
        "\n16 B in 1 block are possibly lost (loss record 7 of 10)\n"
        "    at keep_cache (leaky.c:30) [leaky]\n"
        "    by main (leaky.c:40) [leaky]\n"
        "\n... 3 more loss records with 2,156 B (2.1 KiB) in 4 blocks (--top 0 shows all)\n"
        "\nLEAK SUMMARY:\n";
    cr_assert_not_null(strstr(got, want_tail), "%s", got);
    cr_assert_not_null(strstr(got, "\n32 B in 2 blocks are indirectly lost (loss record 5 of 10)\n"
                                   "    at make_list (leaky.c:20) [leaky]\n"),
                       "%s", got);
    cr_assert_not_null(strstr(got, summary), "%s", got);
    const char *end = "      partial scan: 1 thread did not stop in time (scanned while running,"
                      " or not at all)\n";
    cr_assert_str_eq(got + strlen(got) - strlen(end), end, "%s", got);
    cr_assert_null(strstr(got, "loss records shown"));
    free(got);

    /* the flag alone */
    h.threads_missed = 0;
    o.top = 1;
    got = render(&o, &h, &rc);
    cr_assert_not_null(strstr(got, "\n... 9 more loss records with 4,268 B (4.2 KiB) in 12 blocks"), "%s", got);
    cr_assert_not_null(strstr(got, "      partial scan: a thread did not stop in time"), "%s", got);
    free(got);
}

Test(leaks, text_records_of_the_other_kinds)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_BIT(MTSNAP_LEAK_LIBC) |
                                    MTA_LEAK_BIT(MTSNAP_LEAK_UNSCANNED) |
                                    MTA_LEAK_BIT(MTSNAP_LEAK_REACHABLE) };
    int rc;
    char *got = render(&o, &scan, &rc);
    cr_assert_eq(rc, 0);
    char want[4096];
    snprintf(want, sizeof(want), "%s%s%s%s", header,
             "\n2,048 B (2.0 KiB) in 2 blocks are still reachable (loss record 1 of 3)\n"
             "    at keep_cache (leaky.c:30) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\n100 B in 1 block are reachable only from the C library's data (loss record 2 of 3)\n"
             "    at __libc_setup_tls [libc.so.6]\n"
             "\n8 B in 1 block were not scanned (loss record 3 of 3)\n"
             "    at keep_cache (leaky.c:30) [leaky]\n"
             "    by main (leaky.c:40) [leaky]\n"
             "\nLEAK SUMMARY:\n",
             summary, "\nloss records shown: reachable, libc, unscanned (--kind all shows every kind)\n");
    cr_assert_str_eq(got, want);
    free(got);
}

Test(leaks, kind_lists)
{
    unsigned k = 0;
    char bad[64];
    cr_assert_eq(mta_leak_kinds_parse("definite", &k, bad, sizeof(bad)), 0);
    cr_assert_eq(k, MTA_LEAK_BIT(MTSNAP_LEAK_DEFINITE));
    cr_assert_eq(mta_leak_kinds_parse("unscanned,indirect,libc", &k, bad, sizeof(bad)), 0);
    cr_assert_eq(k, MTA_LEAK_BIT(MTSNAP_LEAK_UNSCANNED) | MTA_LEAK_BIT(MTSNAP_LEAK_INDIRECT) |
                        MTA_LEAK_BIT(MTSNAP_LEAK_LIBC));
    cr_assert_eq(mta_leak_kinds_parse("all", &k, bad, sizeof(bad)), 0);
    cr_assert_eq(k, MTA_LEAK_ALL);
    cr_assert_eq(mta_leak_kinds_parse("possible,all", &k, bad, sizeof(bad)), 0);
    cr_assert_eq(k, MTA_LEAK_ALL);
    cr_assert_eq(mta_leak_kinds_parse("definite,possible", &k, bad, sizeof(bad)), 0);
    cr_assert_eq(k, MTA_LEAK_DEFAULT);
    cr_assert_eq(mta_leak_kinds_parse("definite,lost", &k, bad, sizeof(bad)), -EINVAL);
    cr_assert_str_eq(bad, "lost");
    cr_assert_eq(mta_leak_kinds_parse("definite,", &k, bad, sizeof(bad)), -EINVAL);
    cr_assert_str_eq(bad, "");
    cr_assert_eq(mta_leak_kinds_parse("", &k, bad, sizeof(bad)), -EINVAL);
    cr_assert_eq(mta_leak_kinds_parse("Definite", &k, bad, sizeof(bad)), -EINVAL);
    cr_assert_eq(mta_leak_kinds_parse("definitely", &k, bad, sizeof(bad)), -EINVAL);
    cr_assert_str_eq(bad, "definitely");
    cr_assert_str_eq(mtf_leak_kind_name(MTSNAP_LEAK_LIBC), "libc");
    cr_assert_str_eq(mtf_leak_kind_name(9), "?");
}

Test(leaks, verdicts)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_DEFAULT, .fail_on_leak = true };
    int rc;
    char *got = render(&o, &scan, &rc);
    cr_assert_eq(rc, MTA_GATE_FAILED);
    const char *v = "\nverdict: FAIL: 112 B in 7 blocks definitely lost, 2,016 B (2.0 KiB) in 2 blocks"
                    " possibly lost (--fail-on-leak)\n";
    cr_assert_str_eq(got + strlen(got) - strlen(v), v, "%s", got);
    free(got);

    o.kinds = MTA_LEAK_BIT(MTSNAP_LEAK_REACHABLE) | MTA_LEAK_BIT(MTSNAP_LEAK_LIBC);
    got = render(&o, &scan, &rc);
    cr_assert_eq(rc, 0);
    v = "\nverdict: ok: --kind shows no lost kind (definite, indirect, possible) (--fail-on-leak)\n";
    cr_assert_str_eq(got + strlen(got) - strlen(v), v, "%s", got);
    free(got);

    /* with a filter that leaves only keep_cache's blocks: nothing lost */
    mta_filter_t f = { 0 };
    char err[256];
    cr_assert_eq(mta_filter_option(&f, MTA_OPT_INCLUDE, "function:keep_*", err, sizeof(err)), 1);
    o = (mta_leaks_opts_t){ .kinds = MTA_LEAK_LOST, .fail_on_leak = true, .filter = &f };
    got = render(&o, &scan, &rc);
    cr_assert_eq(rc, MTA_GATE_FAILED, "%s", got);   /* its possible block */
    free(got);
    o.kinds = MTA_LEAK_BIT(MTSNAP_LEAK_DEFINITE) | MTA_LEAK_BIT(MTSNAP_LEAK_INDIRECT);
    got = render(&o, &scan, &rc);
    cr_assert_eq(rc, 0);
    v = "\nno blocks of the kinds shown (definite, indirect) among the blocks selected by the"
        " filters\n\nLEAK SUMMARY (blocks selected by the filters):\n"
        "   definitely lost: 0 B in 0 blocks\n";
    cr_assert_not_null(strstr(got, v), "%s", got);
    v = "\nverdict: ok: nothing definitely or indirectly lost among the blocks selected by the"
        " filters (--fail-on-leak)\n";
    cr_assert_str_eq(got + strlen(got) - strlen(v), v, "%s", got);
    free(got);
    mta_filter_free(&f);
}

Test(leaks, filters_restrict_the_summary)
{
    mta_filter_t f = { 0 };
    char err[256];
    cr_assert_eq(mta_filter_option(&f, MTA_OPT_EXCLUDE, "function:leak_*", err, sizeof(err)), 1);
    cr_assert_eq(mta_filter_option(&f, MTA_OPT_EXCLUDE, "module:libc.so.6", err, sizeof(err)), 1);
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_ALL, .filter = &f };
    int rc;
    char *got = render(&o, &scan, &rc);
    cr_assert_eq(rc, 0);
    /* left: make_list (s1), keep_cache (s2) and the unknown stack (s4) */
    const char *want =
        "\nLEAK SUMMARY (blocks selected by the filters):\n"
        "   definitely lost: 56 B in 3 blocks\n"
        "   indirectly lost: 32 B in 2 blocks\n"
        "     possibly lost: 16 B in 1 block\n"
        "   still reachable: 2,048 B (2.0 KiB) in 2 blocks\n"
        "   C library's own: 0 B in 0 blocks   (reached only from libc's data; valgrind frees these at exit)\n"
        "         unscanned: 8 B in 1 block   (their memory could not be read at scan time)\n";
    cr_assert_not_null(strstr(got, want), "%s", got);
    cr_assert_not_null(strstr(got, "(loss record 1 of 6)\n    at make_list"), "%s", got);
    cr_assert_not_null(strstr(got, "8 B in 1 block are definitely lost (loss record 2 of 6)\n"
                                   "    [unknown stack]\n"), "%s", got);
    cr_assert_null(strstr(got, "leak_three"));
    mta_filter_free(&f);
    free(got);
}

/* A member line of the JSON output, found after `after` (pretty-printed). */
static void expect_json(const char *json, const char *after, const char *member)
{
    const char *from = strstr(json, after);
    cr_assert_not_null(from, "no %s in %s", after, json);
    cr_assert_not_null(strstr(from, member), "no %s after %s in %s", member, after, json);
}

Test(leaks, json)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_DEFAULT, .top = 2, .format = MTA_FORMAT_JSON };
    mtsnap_leak_header_t h = scan;
    h.flags = MTSNAP_LEAK_F_PARTIAL;
    int rc;
    char *got = render(&o, &h, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_eq(strncmp(got, "{\n  \"snapshot\": {\n    \"path\": \"/snaps/" SNAPNAME "\",\n"
                              "    \"pid\": 4242,\n", 70), 0, "%s", got);
    const char *scan_json =
        "  \"scan\": {\n    \"threads\": 2,\n    \"threads_missed\": 0,\n    \"partial\": true,\n"
        "    \"root_bytes\": 4096,\n    \"heap_bytes\": 5000,\n    \"stop_ns\": 150000\n  },\n";
    cr_assert_not_null(strstr(got, scan_json), "%s", got);
    const char *sum_json =
        "  \"summary\": {\n"
        "    \"definite\": {\n      \"bytes\": 112,\n      \"blocks\": 7\n    },\n"
        "    \"indirect\": {\n      \"bytes\": 32,\n      \"blocks\": 2\n    },\n"
        "    \"possible\": {\n      \"bytes\": 2016,\n      \"blocks\": 2\n    },\n"
        "    \"reachable\": {\n      \"bytes\": 2048,\n      \"blocks\": 2\n    },\n"
        "    \"libc\": {\n      \"bytes\": 100,\n      \"blocks\": 1\n    },\n"
        "    \"unscanned\": {\n      \"bytes\": 8,\n      \"blocks\": 1\n    }\n  },\n"
        "  \"filtered\": false,\n"
        "  \"kinds\": [\n    \"definite\",\n    \"possible\"\n  ],\n"
        "  \"total_records\": 6,\n"
        "  \"leaks\": [\n    {\n      \"kind\": \"definite\",\n      \"bytes\": 48,\n"
        "      \"blocks\": 3,\n      \"stack\": 0,\n      \"frames\": [\n        {\n"
        "          \"function\": \"leak_three\",\n          \"symbol\": \"leak_three\",\n"
        "          \"file\": \"leaky.c\",\n          \"line\": 12,\n"
        "          \"module\": \"/tmp/leaky\",\n          \"address\": \"0x401100\",\n"
        "          \"module_offset\": \"0x401100\",\n          \"kind\": \"native\"\n        },\n";
    cr_assert_not_null(strstr(got, sum_json), "%s", got);
    expect_json(got, "\"module_offset\": \"0x401100\"", "\"function\": \"main\"");
    expect_json(got, "\"function\": \"main\"", "\"kind\": \"definite\",\n      \"bytes\": 48,\n"
                                               "      \"blocks\": 2,\n      \"stack\": 1,\n");
    const char *tail = "          \"kind\": \"native\"\n        }\n      ]\n    }\n  ]\n}\n";
    cr_assert_str_eq(got + strlen(got) - strlen(tail), tail, "%s", got);
    cr_assert_null(strstr(got, "verdict"));
    cr_assert_null(strstr(got, "mtp_malloc_hook"));   /* libmemtrail frames hidden */
    free(got);

    o = (mta_leaks_opts_t){ .kinds = MTA_LEAK_BIT(MTSNAP_LEAK_INDIRECT), .top = 0,
                            .format = MTA_FORMAT_JSON, .fail_on_leak = true };
    got = render(&o, &scan, &rc);
    cr_assert_eq(rc, MTA_GATE_FAILED);
    tail = "  \"verdict\": {\n    \"failed\": true,\n    \"message\": \"FAIL: 32 B in 2 blocks"
           " indirectly lost (--fail-on-leak)\"\n  }\n}\n";
    cr_assert_str_eq(got + strlen(got) - strlen(tail), tail, "%s", got);
    cr_assert_not_null(strstr(got, "  \"kinds\": [\n    \"indirect\"\n  ],\n  \"total_records\": 1,\n"));
    free(got);

    o.kinds = MTA_LEAK_BIT(MTSNAP_LEAK_REACHABLE);
    got = render(&o, &scan, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(got, "  \"verdict\": {\n    \"failed\": false,\n"), "%s", got);
    free(got);
}

Test(leaks, no_leaks_record_is_enodata)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_DEFAULT };
    int rc;
    char *got = render(&o, NULL, &rc);
    cr_assert_eq(rc, -ENODATA);
    cr_assert_str_eq(got, "");
    free(got);
}

/* ---- the command ------------------------------------------------------------ */

typedef struct result {
    int status;
    char out[65536];
    char err[4096];
} result_t;

static result_t r;
static char dir[64], path[128];

static void slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs mta_cmd_leaks.main with "leaks" and the arguments (NULL-terminated),
 * standard output and error captured. */
static void run(result_t *res, ...)
{
    char *argv[32] = { (char *)"leaks" };
    int argc = 1;
    va_list ap;
    va_start(ap, res);
    char *a;
    while ((a = va_arg(ap, char *)) && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    FILE *of = tmpfile(), *ef = tmpfile();
    cr_assert(of && ef);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(of), 1);
    dup2(fileno(ef), 2);
    res->status = mta_cmd_leaks.main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(of, res->out, sizeof(res->out));
    slurp(ef, res->err, sizeof(res->err));
}

/* Writes the fixture to DIR/SNAPNAME with the given LEAKS header and kinds
 * (h NULL: no LEAKS record; n: the kinds written). */
static void write_snapshot(const mtsnap_leak_header_t *h, const uint8_t *kinds_override,
                           uint64_t n_override)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    uint8_t kinds[64];
    uint64_t n;
    fixture(&s, kinds, &n);
    if (kinds_override)
        image(&s, h, kinds_override, n_override, &b);
    else
        image(&s, h, kinds, n, &b);
    if (!dir[0]) {
        strcpy(dir, "/tmp/mtleaks.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/%s", dir, SNAPNAME);
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b.data, 1, b.len, f), b.len);
    fclose(f);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

static void cleanup(void)
{
    if (dir[0]) {
        unlink(path);
        rmdir(dir);
    }
}

static void expect_err(int status, const char *want)
{
    cr_assert_eq(r.status, status, "exit %d, want %d; stderr: %s", r.status, status, r.err);
    cr_assert_str_eq(r.err, want);
}

Test(leaks_cmd, exit_statuses_and_verdicts, .fini = cleanup)
{
    write_snapshot(&scan, NULL, 0);
    run(&r, path, NULL);
    expect_err(0, "");
    cr_assert_not_null(strstr(r.out, "(loss record 6 of 6)"), "%s", r.out);
    cr_assert_null(strstr(r.out, "verdict"));
    run(&r, path, "--fail-on-leak", NULL);
    expect_err(1, "");
    cr_assert_not_null(strstr(r.out, "\nverdict: FAIL: 112 B in 7 blocks definitely lost"), "%s", r.out);
    run(&r, "--fail-on-leak", "--kind", "reachable,libc", path, NULL);
    expect_err(0, "");
    cr_assert_not_null(strstr(r.out, "\nverdict: ok: "), "%s", r.out);
    run(&r, path, "-k", "all", "-n", "3", "-f", "json", NULL);
    expect_err(0, "");
    cr_assert_not_null(strstr(r.out, "  \"total_records\": 10,\n"), "%s", r.out);
    cr_assert_eq(strncmp(r.out, "{\n", 2), 0);
    run(&r, path, "--kind", "indirect", "--fail-on-leak", "--format", "json", NULL);
    expect_err(1, "");
    cr_assert_not_null(strstr(r.out, "    \"failed\": true,\n"), "%s", r.out);
    run(&r, path, "--include", "function:keep_cache", "--kind", "definite,indirect",
        "--fail-on-leak", NULL);
    expect_err(0, "");
    run(&r, path, "--domain", "python", "--fail-on-leak", NULL);   /* every block is native */
    expect_err(0, "");
    cr_assert_not_null(strstr(r.out, "   definitely lost: 0 B in 0 blocks\n"), "%s", r.out);
}

Test(leaks_cmd, bad_usage_is_one_line, .fini = cleanup)
{
    write_snapshot(&scan, NULL, 0);
    run(&r, path, "--kind", "definite,lost", NULL);
    expect_err(2, "memtrail: leaks: unknown kind 'lost' in --kind 'definite,lost' (definite,"
                  " indirect, possible, reachable, libc, unscanned, all; separated by commas)\n");
    cr_assert_str_eq(r.out, "");
    run(&r, path, "--kind", "", NULL);
    expect_err(2, "memtrail: leaks: unknown kind '' in --kind '' (definite, indirect, possible,"
                  " reachable, libc, unscanned, all; separated by commas)\n");
    run(&r, path, "--format", "xml", NULL);
    expect_err(2, "memtrail: leaks: unknown --format 'xml' (text, json)\n");
    run(&r, path, "--top", "x", NULL);
    expect_err(2, "memtrail: leaks: invalid --top 'x' (a number, 0 = all)\n");
    run(&r, path, "--bogus", NULL);
    expect_err(2, "memtrail: leaks: unknown option '--bogus' (see memtrail help leaks)\n");
    run(&r, path, "--exclude", "file:", NULL);
    expect_err(2, "memtrail: leaks: invalid --exclude 'file:' (a glob, optionally after file:,"
                  " function: or module:)\n");
    run(&r, NULL);
    expect_err(2, "memtrail: leaks: missing snapshot FILE (usage: memtrail leaks FILE [OPTIONS])\n");
    run(&r, path, path, NULL);
    char want[512];
    snprintf(want, sizeof(want), "memtrail: leaks: too many arguments: '%s' (one snapshot FILE)\n",
             path);
    expect_err(2, want);
    cr_assert_str_eq(r.out, "");
}

Test(leaks_cmd, bad_input_is_one_line, .fini = cleanup)
{
    char want[1024];
    write_snapshot(NULL, NULL, 0);
    run(&r, path, NULL);
    snprintf(want, sizeof(want), "memtrail: leaks: %s: no leak scan in this snapshot (taken at"
             " exit by default; MEMTRAIL_LEAK_CHECK=all scans every snapshot)\n", path);
    expect_err(2, want);
    cr_assert_str_eq(r.out, "");

    uint8_t kinds[64] = { D, D, D };
    write_snapshot(&scan, kinds, 3);   /* the file has 15 blocks */
    run(&r, path, NULL);
    snprintf(want, sizeof(want), "memtrail: snapshot: %s: LEAK record: 3 payload bytes for 3"
             " kinds, the file has 15 blocks\n", path);
    expect_err(2, want);
    cr_assert_str_eq(r.out, "");

    memset(kinds, D, 15);
    kinds[4] = 9;
    write_snapshot(&scan, kinds, 15);
    run(&r, path, "--format", "json", NULL);
    snprintf(want, sizeof(want), "memtrail: snapshot: %s: LEAK record: block 4 has unknown kind 9\n",
             path);
    expect_err(2, want);
    cr_assert_str_eq(r.out, "");

    unlink(path);
    run(&r, path, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "%s", r.err);
    cr_assert_eq(strncmp(r.err, "memtrail: snapshot: ", 20), 0, "%s", r.err);
}

/* `memtrail help leaks` through the built program's command table. */
static void run_exe(result_t *res, const char *a1, const char *a2)
{
    const char *exe = getenv("MEMTRAIL_EXE");
    cr_assert_not_null(exe, "MEMTRAIL_EXE is not set");
    FILE *of = tmpfile();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fileno(of), 1);
        execl(exe, exe, a1, a2, (char *)NULL);
        _exit(99);
    }
    cr_assert_eq(waitpid(pid, &res->status, 0), pid);
    slurp(of, res->out, sizeof(res->out));
}

Test(leaks_cmd, help)
{
    run(&r, "--help", NULL);
    expect_err(0, "");
    cr_assert_eq(strncmp(r.out, "Usage: memtrail leaks FILE ", 27), 0, "%s", r.out);
    const char *opts[] = { "--kind", "--top", "--format", "--fail-on-leak", "--include",
                           "--help", "definite,possible" };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        cr_assert_not_null(strstr(r.out, opts[i]), "no %s in the help", opts[i]);
    char copy[sizeof(r.out)];
    strcpy(copy, r.out);
    result_t *e = calloc(1, sizeof(*e));
    run_exe(e, "help", "leaks");
    cr_assert(WIFEXITED(e->status) && WEXITSTATUS(e->status) == 0);
    cr_assert_str_eq(e->out, copy);
    run_exe(e, "--help", NULL);
    cr_assert_not_null(strstr(e->out, "\n  leaks      classify lost blocks as memcheck does"
                                      " (definite, indirect, possible, reachable)\n"), "%s", e->out);
    free(e);
}
