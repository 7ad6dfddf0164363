/* Report tests: grouping figures for every --group-by on a composed
 * snapshot (allocator frames skipped, libmemtrail frames hidden, C++ and
 * Rust names demangled), JSON escaping, and the exact text and JSON output
 * of a small case against tests/golden/. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demangle.h"
#include "names.h"
#include "group.h"
#include "json.h"
#include "report.h"
#include "snapcompose.h"
#include "snapshot.h"

static mta_snapshot_t *load(const mtc_snap_t *s)
{
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    char err[512];
    mtc_compose(s, &b);
    int rc = mta_snapshot_parse(b.data, b.len, "/snaps/memtrail.4242.0001.exit.mtsnap", &snap,
                                err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    mtc_buf_free(&b);
    return snap;
}

/* The grouping fixture: see each stack's comment for the key frame.
 * meta_flags: its META.flags. */
static mta_snapshot_t *fixture_flags(uint32_t meta_flags)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta.flags = meta_flags;
    s.meta.cmdline = mtc_strn(&s, "./prog\0--fast\0", 14);
    s.meta.exe = mtc_str(&s, "/usr/bin/prog");
    uint32_t prog = mtc_module(&s, 0x400000, 0x500000, 0, "/usr/bin/prog");
    uint32_t cxx = mtc_module(&s, 0x7e0000000000, 0x7e0000100000, 0x7e0000000000,
                              "/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
    uint32_t mt = mtc_module(&s, 0x7d0000000000, 0x7d0000100000, 0x7d0000000000,
                             "/opt/memtrail/lib/libmemtrail.so");
    uint32_t foo = mtc_module(&s, 0x7f0000000000, 0x7f0000100000, 0x7f0000000000,
                              "/usr/lib/libfoo.so");
    uint32_t hook = mtc_frame(&s, 0x7d0000001000, mt, "mtp_malloc_hook", "preload/hooks.c", 5);
    uint32_t opnew = mtc_frame(&s, 0x7e0000002000, cxx, "_Znwm", "", 0);
    uint32_t parse = mtc_frame(&s, 0x401100, prog, "_ZN6Parser5parseEv", "src/parser.cpp", 12);
    uint32_t mainf = mtc_frame(&s, 0x401000, prog, "main", "src/main.c", 30);
    uint32_t buf42 = mtc_frame(&s, 0x401200, prog, "make_buffer", "src/buf.c", 42);
    uint32_t buf50 = mtc_frame(&s, 0x401250, prog, "make_buffer", "src/buf.c", 50);
    uint32_t rust = mtc_frame(&s, 0x7f0000003000, foo, "_ZN4core3fmt5write17h0123456789abcdefE", "", 0);
    uint32_t v0 = mtc_frame(&s, 0x7f0000004000, foo, "_RNvCs1234_7mycrate3foo", "", 0);
    uint32_t unk = mtc_frame(&s, 0x7f0000012345, foo, "", "", 0);
    /* key: Parser::parse() (hook hidden, operator new skipped) */
    uint32_t s0 = mtc_stack(&s, 4, (uint32_t[]){ hook, opnew, parse, mainf });
    uint32_t s1 = mtc_stack(&s, 3, (uint32_t[]){ hook, buf42, mainf }); /* make_buffer :42 */
    uint32_t s2 = mtc_stack(&s, 2, (uint32_t[]){ buf50, mainf });       /* make_buffer :50 */
    uint32_t s3 = mtc_stack(&s, 2, (uint32_t[]){ rust, mainf });        /* core::fmt::write */
    uint32_t s4 = mtc_stack(&s, 2, (uint32_t[]){ v0, mainf });          /* mycrate::foo */
    uint32_t s5 = mtc_stack(&s, 2, (uint32_t[]){ unk, mainf });         /* libfoo.so+0x12345 */
    uint32_t s6 = mtc_stack(&s, 2, (uint32_t[]){ hook, opnew });        /* all allocator */
    uint32_t s7 = mtc_stack(&s, 0, NULL);                               /* unknown */
    uint32_t s8 = mtc_stack(&s, 1, (uint32_t[]){ mainf });              /* nothing live */
    mtc_stat(&s, s5, 50, 1, 50, 1, 50, 1);
    mtc_stat(&s, s0, 3000, 3, 6000, 6, 4000, 4);
    mtc_stat(&s, s1, 1000, 2, 1000, 2, 1000, 2);
    mtc_stat(&s, s2, 500, 1, 700, 2, 0, 0);
    mtc_stat(&s, s3, 200, 1, 200, 1, 200, 1);
    mtc_stat(&s, s4, 100, 1, 100, 1, 100, 1);
    mtc_stat(&s, s6, 10, 1, 10, 1, 10, 1);
    mtc_stat(&s, s7, 5, 1, 5, 1, 5, 1);
    mtc_stat(&s, s8, 0, 0, 999, 9, 999, 9);
    s.totals = (mtsnap_totals_t){ .live_bytes = 4865, .live_blocks = 11, .alloc_bytes = 9063,
                                  .alloc_blocks = 24, .free_blocks = 13, .peak_bytes = 6363,
                                  .peak_blocks = 20, .peak_time_ns = 1700000000000000000ull };
    mta_snapshot_t *snap = load(&s);
    mtc_snap_free(&s);
    return snap;
}

static mta_snapshot_t *fixture(void)
{
    return fixture_flags(0);
}

typedef struct expect {
    const char *key;
    uint64_t bytes, blocks;
} expect_t;

static void check_group(mta_group_by_t by, const expect_t *want, size_t n)
{
    mta_snapshot_t *snap = fixture();
    mta_group_t *g = NULL;
    cr_assert_eq(mta_group(snap, by, 0, NULL, &g), 0);
    for (size_t i = 0; i < n && i < g->nentries; i++) {
        cr_expect_str_eq(mta_group_key(g, &g->entries[i]), want[i].key, "%s entry %zu", mta_group_by_name(by), i);
        cr_expect_eq(g->entries[i].bytes, want[i].bytes, "%s entry %zu (%s)",
                     mta_group_by_name(by), i, want[i].key);
        cr_expect_eq(g->entries[i].blocks, want[i].blocks, "%s entry %zu (%s)",
                     mta_group_by_name(by), i, want[i].key);
    }
    cr_assert_eq(g->nentries, n, "%s: %zu entries", mta_group_by_name(by), g->nentries);
    mta_group_free(g);
    mta_snapshot_free(snap);
}

Test(group, by_function)
{
    const expect_t want[] = {
        { "Parser::parse()", 3000, 3 },  { "make_buffer", 1500, 3 },
        { "core::fmt::write", 200, 1 },  { "mycrate::foo", 100, 1 },
        { "libfoo.so+0x12345", 50, 1 },  { "operator new(unsigned long)", 10, 1 },
        { "[unknown]", 5, 1 },
    };
    check_group(MTA_GROUP_FUNCTION, want, sizeof(want) / sizeof(want[0]));
}

Test(group, by_line)
{
    const expect_t want[] = {
        { "src/parser.cpp:12", 3000, 3 }, { "src/buf.c:42", 1000, 2 },
        { "src/buf.c:50", 500, 1 },       { "core::fmt::write", 200, 1 },
        { "mycrate::foo", 100, 1 },       { "libfoo.so+0x12345", 50, 1 },
        { "operator new(unsigned long)", 10, 1 }, { "[unknown]", 5, 1 },
    };
    check_group(MTA_GROUP_LINE, want, sizeof(want) / sizeof(want[0]));
}

Test(group, by_file)
{
    const expect_t want[] = {
        { "src/parser.cpp", 3000, 3 }, { "src/buf.c", 1500, 3 }, { "[libfoo.so]", 350, 3 },
        { "[libstdc++.so.6]", 10, 1 }, { "[unknown]", 5, 1 },
    };
    check_group(MTA_GROUP_FILE, want, sizeof(want) / sizeof(want[0]));
}

Test(group, by_module)
{
    const expect_t want[] = {
        { "/usr/bin/prog", 4500, 6 }, { "/usr/lib/libfoo.so", 350, 3 },
        { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", 10, 1 }, { "[unknown]", 5, 1 },
    };
    check_group(MTA_GROUP_MODULE, want, sizeof(want) / sizeof(want[0]));
}

Test(group, by_stack_hides_libmemtrail_frames)
{
    mta_snapshot_t *snap = fixture();
    mta_group_t *g = NULL;
    cr_assert_eq(mta_group(snap, MTA_GROUP_STACK, 0, NULL, &g), 0);
    cr_assert_eq(g->nentries, 8); /* the stack with nothing live is omitted */
    const mta_group_entry_t *e = &g->entries[0];
    cr_assert_eq(e->bytes, 3000);
    cr_assert_eq(e->peak_bytes, 4000);
    cr_assert_eq(e->alloc_bytes, 6000);
    cr_assert_eq(e->alloc_blocks, 6);
    cr_assert_eq(e->nframes, 3);
    cr_assert_str_eq(mta_group_function(g, e->frames[0]), "operator new(unsigned long)");
    cr_assert_str_eq(mta_group_function(g, e->frames[1]), "Parser::parse()");
    cr_assert_str_eq(mta_group_function(g, e->frames[2]), "main");
    cr_assert_str_eq(mta_group_key(g, e), "operator new(unsigned long) <- Parser::parse() (src/parser.cpp:12)"
                             " <- main (src/main.c:30)");
    cr_assert_eq(g->entries[1].bytes, 1000);
    cr_assert_eq(g->entries[1].nframes, 2);
    cr_assert_eq(g->entries[7].nframes, 0);
    cr_assert_str_eq(mta_group_key(g, &g->entries[7]), "[unknown]");
    for (size_t i = 0; i < g->nentries; i++)
        for (uint32_t k = 0; k < g->entries[i].nframes; k++)
            cr_assert_not(mta_frame_hidden(snap, g->entries[i].frames[k]));
    mta_group_free(g);

    cr_assert_eq(mta_group(snap, MTA_GROUP_STACK, MTA_GROUP_KEEP_EMPTY, NULL, &g), 0);
    cr_assert_eq(g->nentries, 9);
    cr_assert_eq(g->entries[8].alloc_bytes, 999);
    mta_group_free(g);
    mta_snapshot_free(snap);
}

Test(group, parse_names)
{
    mta_group_by_t by;
    cr_assert_eq(mta_group_by_parse("line", &by), 0);
    cr_assert_eq(by, MTA_GROUP_LINE);
    cr_assert_eq(mta_group_by_parse("lines", &by), -EINVAL);
    cr_assert_str_eq(mta_group_by_name(MTA_GROUP_MODULE), "module");
}

static void check_demangle(const char *in, const char *want)
{
    char *got = mta_demangle(in);
    cr_assert_str_eq(got, want, "demangling %s", in);
    free(got);
}

Test(demangle, cxx_and_rust)
{
    check_demangle("_ZN6Parser5parseEv", "Parser::parse()");
    check_demangle("_ZnwmRKSt9nothrow_t", "operator new(unsigned long, std::nothrow_t const&)");
    check_demangle("_ZN4core3fmt5write17h0123456789abcdefE", "core::fmt::write");
    check_demangle("_ZN3std2rt10lang_start17h5ed4ba8f0a1b2c3dE", "std::rt::lang_start");
    check_demangle("_RNvCs1234_7mycrate3foo", "mycrate::foo");
    check_demangle("main", "main");
    check_demangle("_Zgarbage", "_Zgarbage");
    check_demangle("", "");
    cr_assert_str_eq(mta_basename("/a/b/libc.so.6"), "libc.so.6");
    cr_assert_str_eq(mta_basename("plain"), "plain");
}

static char *json_of(const char *s, size_t len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    mta_json_write_string(f, s, len);
    fclose(f);
    return buf;
}

Test(json, escaping)
{
    static const struct { const char *in; size_t len; const char *want; } cases[] = {
        { "plain", 5, "\"plain\"" },
        { "q\"b\\s/", 6, "\"q\\\"b\\\\s/\"" },
        { "\n\t\r\b\f", 5, "\"\\n\\t\\r\\b\\f\"" },
        { "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
        { "a\0b", 3, "\"a\\u0000b\"" },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
        { "\xff\xfe", 2, "\"\\u00ff\\u00fe\"" },                 /* invalid bytes */
        { "\xc3", 1, "\"\\u00c3\"" },                           /* cut sequence */
        { "\xc0\xaf", 2, "\"\\u00c0\\u00af\"" },                 /* overlong */
        { "\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\"" },       /* surrogate */
        { "\xf4\x90\x80\x80", 4, "\"\\u00f4\\u0090\\u0080\\u0080\"" }, /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = json_of(cases[i].in, cases[i].len);
        cr_assert_str_eq(got, cases[i].want, "case %zu", i);
        free(got);
    }
}

Test(json, nesting)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    mta_json_t j;
    mta_json_init(&j, f);
    mta_json_begin_object(&j);
    mta_json_key(&j, "a");
    mta_json_u64(&j, 18446744073709551615ull);
    mta_json_key(&j, "e");
    mta_json_begin_array(&j);
    mta_json_end_array(&j);
    mta_json_key(&j, "l");
    mta_json_begin_array(&j);
    mta_json_string(&j, "x");
    mta_json_bool(&j, true);
    mta_json_null(&j);
    mta_json_end_array(&j);
    mta_json_end_object(&j);
    fclose(f);
    cr_assert_str_eq(buf, "{\n  \"a\": 18446744073709551615,\n  \"e\": [],\n  \"l\": [\n"
                          "    \"x\",\n    true,\n    null\n  ]\n}\n");
    free(buf);
}

Test(report, formats)
{
    char a[32], t[48];
    mta_format_count(0, a, sizeof(a));
    cr_assert_str_eq(a, "0");
    mta_format_count(999, a, sizeof(a));
    cr_assert_str_eq(a, "999");
    mta_format_count(1234567, a, sizeof(a));
    cr_assert_str_eq(a, "1,234,567");
    mta_format_count(18446744073709551615ull, a, sizeof(a));
    cr_assert_str_eq(a, "18,446,744,073,709,551,615");
    mta_format_time(1700000000123456789ull, 1, t, sizeof(t));
    cr_assert_str_eq(t, "2023-11-14T22:13:20.123Z");
    mta_format_time(1700000000123456789ull, 0, t, sizeof(t));
    cr_assert_str_eq(t, "2023-11-14 22:13:20.123 UTC");
    cr_assert_str_eq(mtf_trigger_name(MTSNAP_TRIGGER_API), "api");
}

/* Renders the fixture and compares with tests/golden/NAME. */
static void check_golden(const char *name, mta_group_by_t by, size_t top, mta_format_t format)
{
    const char *root = getenv("MEMTRAIL_SOURCE_ROOT");
    cr_assert_not_null(root, "MEMTRAIL_SOURCE_ROOT is not set");
    char path[1024], *want = NULL, *got = NULL;
    size_t wantlen = 0, gotlen = 0;
    snprintf(path, sizeof(path), "%s/tests/golden/%s", root, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    want = calloc(1, 1 << 16);
    wantlen = fread(want, 1, (1 << 16) - 1, f);
    fclose(f);

    mta_snapshot_t *snap = fixture();
    mta_report_opts_t o = { .group_by = by, .top = top, .format = format };
    f = open_memstream(&got, &gotlen);
    cr_assert_eq(mta_report(f, snap, &o), 0);
    fclose(f);
    if (getenv("MEMTRAIL_UPDATE_GOLDEN")) {
        FILE *w = fopen(path, "w");
        fwrite(got, 1, gotlen, w);
        fclose(w);
    }
    cr_assert_eq(gotlen, wantlen, "%s: got %zu bytes, want %zu:\n%s", name, gotlen, wantlen, got);
    cr_assert_str_eq(got, want, "%s differs", name);
    free(got);
    free(want);
    mta_snapshot_free(snap);
}

Test(report, text_by_stack_golden)
{
    check_golden("report_stack.txt", MTA_GROUP_STACK, 3, MTA_FORMAT_TEXT);
}

Test(report, text_by_function_golden)
{
    check_golden("report_function.txt", MTA_GROUP_FUNCTION, 0, MTA_FORMAT_TEXT);
}

Test(report, json_golden)
{
    check_golden("report_stack.json", MTA_GROUP_STACK, 2, MTA_FORMAT_JSON);
    check_golden("report_line.json", MTA_GROUP_LINE, 3, MTA_FORMAT_JSON);
}

/* A snapshot of a CPython process where memtrail did not follow free-list
 * reuses says so in the text header (the goldens, flag 0, have no note). */
Test(report, python_no_reuse_note)
{
    mta_snapshot_t *snap = fixture_flags(MTSNAP_META_F_PY_NO_REUSE);
    mta_report_opts_t o = { .group_by = MTA_GROUP_STACK, .top = 1, .format = MTA_FORMAT_TEXT };
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    cr_assert_eq(mta_report(f, snap, &o), 0);
    fclose(f);
    cr_assert_not_null(strstr(got, "(trigger exit)\nnote: objects reused from CPython's free "
                                   "lists keep the line that first allocated their memory "
                                   "(not followed on this interpreter)\n\nlive: "),
                       "%s", got);
    free(got);
    /* JSON (and so the HTML page, which reads the report's JSON): the same
     * sentence in snapshot.notes, the last member (the goldens: []), after
     * "attached". */
    o.format = MTA_FORMAT_JSON;
    f = open_memstream(&got, &len);
    cr_assert_eq(mta_report(f, snap, &o), 0);
    fclose(f);
    cr_assert_not_null(strstr(got, "\"samples\": null,\n    \"attached\": false,\n"
                                   "    \"python_hooks_ms\": null,\n    \"notes\": [\n      \"objects reused "
                                   "from CPython's free lists keep the line that first allocated "
                                   "their memory (not followed on this interpreter)\"\n    ]\n  },"),
                       "%s", got);
    free(got);
    mta_snapshot_free(snap);
}

/* A snapshot of a process memtrail attached to says when tracing began and
 * what it leaves out, in the text header and the JSON ("attached", and the
 * same sentence in "notes"). */
Test(report, attached_note)
{
    mta_snapshot_t *snap = fixture_flags(MTSNAP_META_F_ATTACHED);
    char start[48], want[256], want_json[320];
    mta_format_time(snap->meta.start_ns, 0, start, sizeof(start));
    snprintf(want, sizeof(want), "(trigger exit)\nnote: tracing began at %s, when memtrail "
             "attached to the running process; blocks allocated before then are not "
             "included\n\nlive: ", start);
    snprintf(want_json, sizeof(want_json), "\"attached\": true,\n    \"python_hooks_ms\": null,\n"
             "    \"notes\": [\n      \"tracing began at %s, when memtrail attached to the running process; blocks "
             "allocated before then are not included\"\n    ]\n", start);
    for (int json = 0; json < 2; json++) {
        mta_report_opts_t o = { .group_by = MTA_GROUP_STACK, .top = 1,
                                .format = json ? MTA_FORMAT_JSON : MTA_FORMAT_TEXT };
        char *got = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&got, &len);
        cr_assert_eq(mta_report(f, snap, &o), 0);
        fclose(f);
        cr_assert_not_null(strstr(got, json ? want_json : want), "%s", got);
        free(got);
    }
    mta_snapshot_free(snap);
}

/* An attached CPython process: how long after the attach its Python
 * allocator hooks started (META py_hooks_ms), or that they have not yet, in
 * the text header and the JSON (python_hooks_ms, and the same sentence in
 * "notes", after the attach's). */
Test(report, python_hooks_note)
{
    static const struct {
        uint32_t flags, ms;
        const char *text, *json_ms;
    } cases[] = {
        {MTSNAP_META_F_PY_HOOKS, 1234,
         "note: Python allocator hooks started 1.234 s after the attach; Python objects "
         "allocated before then are not included, and stacks before then are native\n",
         "\"python_hooks_ms\": 1234,\n"},
        {MTSNAP_META_F_PY_WAITING, 0,
         "note: Python allocator hooks not started yet: they start when the interpreter's "
         "main thread next runs Python code; until then Python objects are not included and "
         "stacks are native\n",
         "\"python_hooks_ms\": null,\n"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        mta_snapshot_t *snap = fixture_flags(MTSNAP_META_F_ATTACHED | cases[c].flags);
        snap->meta.py_hooks_ms = cases[c].ms;
        for (int json = 0; json < 2; json++) {
            mta_report_opts_t o = { .group_by = MTA_GROUP_STACK, .top = 1,
                                    .format = json ? MTA_FORMAT_JSON : MTA_FORMAT_TEXT };
            char *got = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&got, &len);
            cr_assert_eq(mta_report(f, snap, &o), 0);
            fclose(f);
            if (json) {
                cr_expect_not_null(strstr(got, cases[c].json_ms), "%s", got);
                char note[400];
                snprintf(note, sizeof(note), "included\",\n      \"%.*s\"\n    ]",
                         (int)strlen(cases[c].text) - 7, cases[c].text + 6);
                cr_expect_not_null(strstr(got, note), "want %s in %s", note, got);
            } else {
                const char *att = strstr(got, "note: tracing began");
                cr_assert_not_null(att, "%s", got);
                cr_expect_not_null(strstr(att, cases[c].text), "%s", got);
            }
            free(got);
        }
        mta_snapshot_free(snap);
    }
}
