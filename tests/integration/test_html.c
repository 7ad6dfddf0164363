/* `memtrail html` on real runs, checked in headless Chromium: a C program
 * (tests/programs/htmlpeak.c) and a Python script (tests/python/htmlpeak.py) run
 * under `memtrail run` with an api snapshot and the exit snapshot; their
 * page is opened with #selftest (the page's own checks, docs/html.md) and
 * the answers compared with `memtrail report --format json`. Screenshots of
 * each view go to BUILD/tests/html-artefacts/. Skipped without chromium. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pythons.h"

#define MIB (1024ull * 1024)

static char *chromium, *timeout_prog;

static void setup(void)
{
    mt_setup();
    chromium = mt_find_on_path("chromium");
    timeout_prog = mt_find_on_path("timeout");
}

static void teardown(void)
{
    free(chromium);
    free(timeout_prog);
    mt_teardown();
}

#define HTML_TEST(name) Test(html, name, .init = setup, .fini = teardown, .timeout = 240)

static void need_chromium(void)
{
    if (!chromium)
        cr_skip_test("chromium not found on PATH (Debian package chromium; build.sh installs it)");
    cr_assert_not_null(timeout_prog, "timeout (coreutils) not found");
}

/* Runs memtrail ARGS (NULL-terminated, at most 14); asserts exit status 0. */
static void memtrail(mt_run_t *r, const char *const args[])
{
    const char *argv[16] = { mt_env("MEMTRAIL_EXE") };
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    cr_assert_eq(run_bare_capture(argv, r), 0);
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "memtrail %s %s: %#x %s",
              args[0], args[1], r->status, r->err);
}

/* chromium --headless on file://PAGE#FRAGMENT with `extra` (--dump-dom or
 * --screenshot=F), within 60 s; stdout into *r. */
static void run_chromium(mt_run_t *r, const char *page, const char *fragment, const char *extra)
{
    char url[4200], profile[4200];
    snprintf(url, sizeof(url), "file://%s#%s", page, fragment);
    snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium-profile", mt_dir);
    const char *argv[] = { timeout_prog, "-k", "5", "60", chromium, "--headless", "--no-sandbox",
                           "--disable-gpu", "--disable-dev-shm-usage", profile,
                           "--virtual-time-budget=5000", "--window-size=1400,1000", extra, url,
                           NULL };
    int rc = run_bare_capture(argv, r);
    cr_assert_eq(rc, 0, "cannot run chromium: %s", strerror(-rc));
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "chromium on %s: wait status %#x\n%s", url, r->status, r->err);
}

/* The page's self-test answer: the text of <pre id="mt-selftest">, with the
 * character references --dump-dom writes undone. malloc'd. */
static char *selftest(const char *page, const char *fragment)
{
    mt_run_t r;
    run_chromium(&r, page, fragment, "--dump-dom");
    const char *p = strstr(r.out, "<pre id=\"mt-selftest\">");
    cr_assert_not_null(p, "no self-test in the page's DOM (%zu bytes)", r.outlen);
    p = strchr(p, '>') + 1;
    const char *end = strstr(p, "</pre>");
    cr_assert_not_null(end);
    char *out = malloc((size_t)(end - p) + 1), *o = out;
    static const struct { const char *ref; char c; } refs[] = {
        { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&amp;", '&' },
    };
    while (p < end) {
        size_t k = 0;
        while (k < 4 && strncmp(p, refs[k].ref, strlen(refs[k].ref)) != 0)
            k++;
        *o++ = k < 4 ? refs[k].c : *p;
        p += k < 4 ? strlen(refs[k].ref) : 1;
    }
    *o = '\0';
    mt_run_free(&r);
    return out;
}

/* The JSON value after "key": in text (spaces skipped), or NULL. */
static const char *value_of(const char *text, const char *key)
{
    char k[128];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *p = strstr(text, k);
    if (!p)
        return NULL;
    p += strlen(k);
    while (*p == ' ' || *p == '\n')
        p++;
    return p;
}

static long long number_of(const char *text, const char *key)
{
    const char *p = value_of(text, key);
    cr_assert_not_null(p, "no \"%s\" in %s", key, text);
    cr_assert(*p >= '0' && *p <= '9', "\"%s\" is not a number in %s", key, text);
    return strtoll(p, NULL, 10);
}

static void expect_true(const char *text, const char *key)
{
    const char *p = value_of(text, key);
    cr_expect(p && strncmp(p, "true", 4) == 0, "\"%s\" is not true in %s", key, text);
}

/* Writes the page of the run's snapshots (an api snapshot "start", the
 * exit snapshot, and Python's final one), checks it in Chromium against
 * `memtrail report`, and saves screenshots of `views` as
 * html-artefacts/TAG-VIEW.png. Returns the page's text. */
static char *check_page(const char *tag, const char *const views[])
{
    mt_snaplist_t all;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, NULL, &all), 0);
    cr_assert(all.n >= 2 && all.n <= 4, "%zu snapshots", all.n);
    char page[4096];
    snprintf(page, sizeof(page), "%s/%s.html", mt_dir, tag);
    const char *args[12] = { "html", "-o", page };
    for (size_t i = 0; i < all.n; i++)
        args[3 + i] = all.paths[i];   /* in seq order: one process */
    mt_run_t r;
    memtrail(&r, args);
    cr_expect(strstr(r.out, "wrote "), "%s", r.out);
    mt_run_free(&r);

    char *st = selftest(page, "selftest");
    cr_log_info("%s self-test: %s", tag, st);
    expect_true(st, "pass");
    cr_expect(strstr(st, "\"errors\": []") || strstr(st, "\"errors\":[]"), "errors: %s", st);
    expect_true(st, "top_function_present");
    expect_true(st, "zoom_ok");
    expect_true(st, "diff_ok");
    cr_expect_eq(number_of(st, "snap_marks"), (long long)all.n, "one timeline mark per snapshot");
    cr_expect_eq(number_of(st, "snapshots"), (long long)all.n);
    long long sel = number_of(st, "selected");
    cr_assert(sel >= 0 && sel < (long long)all.n);
    memtrail(&r, (const char *[]){ "report", all.paths[sel], "--format", "json", NULL });
    long long live = number_of(r.out, "total_bytes");
    /* The snapshot's notes: one where free-list reuses are not followed
     * (META flag MTSNAP_META_F_PY_NO_REUSE), each shown in the header. */
    mta_snapshot_t *snap = mt_load(all.paths[sel]);
    long long notes = (snap->meta.flags & MTSNAP_META_F_PY_NO_REUSE) ? 1 : 0;
    mta_snapshot_free(snap);
    cr_expect_eq(number_of(st, "notes"), notes, "the snapshot's notes in the page's data");
    cr_expect_eq(number_of(st, "notes_shown"), notes, "the snapshot's notes in its header");
    cr_expect_eq(strstr(r.out, "\"notes\": []") == NULL, notes != 0, "%s", r.out);
    mt_run_free(&r);
    cr_expect_eq(number_of(st, "root_bytes"), live,
                 "the flame graph's root is the report's live bytes (%lld)", live);
    cr_expect_eq(number_of(st, "snapshot_live_bytes"), live);
    free(st);

    char dir[4096], png[4200], shot[4300];
    snprintf(dir, sizeof(dir), "%s/tests/html-artefacts", mt_env("MEMTRAIL_BUILD_ROOT"));
    cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST, "%s: %s", dir, strerror(errno));
    for (size_t v = 0; views[v]; v++) {
        char frag[64];
        snprintf(png, sizeof(png), "%s/%s-%s.png", dir, tag, views[v]);
        snprintf(shot, sizeof(shot), "--screenshot=%s", png);
        snprintf(frag, sizeof(frag), "view=%s", views[v]);
        unlink(png);
        run_chromium(&r, page, frag, shot);
        mt_run_free(&r);
        char *img = mt_read_file(png);
        cr_expect(memcmp(img, "\x89PNG", 4) == 0, "%s is a PNG", png);
        free(img);
    }
    mt_snaplist_free(&all);
    return mt_read_file(page);
}

HTML_TEST(c_program_peak)
{
    need_chromium();
    char *prog = mt_program("htmlpeak");
    mt_run_t r;
    const char *argv[] = { prog, NULL };
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, NULL, &r), 0);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%#x %s", r.status, r.err);
    mt_run_free(&r);
    static const char *const views[] = { "flame", "diff", "timeline", "table", "leaks", NULL };
    char *html = check_page("c", views);
    /* The exact figures in the embedded data: the roots of the two
     * snapshots (keep_site; keep_site + late_site) and the peak-only site
     * in the exit snapshot's table. */
    cr_expect(strstr(html, "\"values\":{\"live\":{\"bytes\":[1048576,"), "start: 1 MiB live");
    cr_expect(strstr(html, "\"values\":{\"live\":{\"bytes\":[1114112,"), "exit: 1 MiB + 64 KiB");
    cr_expect(strstr(html, "\"peak\":{\"bytes\":[9437184,"), "exit: the peak is 9 MiB");
    cr_expect(strstr(html, "{\"key\":\"peak_site\",\"bytes\":0,\"blocks\":0,"
                           "\"peak_bytes\":8388608,\"peak_blocks\":8,"),
              "peak_site in the table with no live bytes, 8 MiB at the peak");
    /* The timeline of the exit snapshot, with the process-wide peak. */
    cr_expect(strstr(html, "\"timeline\":{\"step_s\":"), "a timeline");
    cr_expect(strstr(html, ",\"bytes\":9437184}}"), "the timeline's peak: 9 MiB");
    free(html);
    free(prog);
}

HTML_TEST(python_script_peak)
{
    need_chromium();
    const mt_python_t *py = NULL;
    for (size_t i = 0; i < sizeof(mt_pythons) / sizeof(mt_pythons[0]) && !py; i++)
        if (access(mt_pythons[i].path, X_OK) == 0)
            py = &mt_pythons[i];
    if (!py)
        cr_skip_test("no Python of tests/python/pythons.h installed");
    char *script = mt_source_file("tests/python/htmlpeak.py");
    mt_run_t r;
    const char *argv[] = { py->path, script, NULL };
    const char *env[] = { "PYTHONDONTWRITEBYTECODE=1", NULL };
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, env, &r), 0);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: %#x %s", py->path,
              r.status, r.err);
    mt_run_free(&r);
    static const char *const views[] = { "flame", NULL };
    char *html = check_page("python", views);
    /* The peak line: no live bytes at exit, its 8 x 4 MiB at the peak. */
    char key[4200];
    snprintf(key, sizeof(key), "{\"key\":\"%s:%u\",\"bytes\":0,\"blocks\":0,\"peak_bytes\":",
             script, mt_marker_line("tests/python/htmlpeak.py", "SITE:peak"));
    const char *p = strstr(html, key);
    cr_assert_not_null(p, "no peak-only entry %s", key);
    unsigned long long peak = strtoull(p + strlen(key), NULL, 10);
    cr_expect_geq(peak, 32 * MIB, "the peak line held %llu B at the peak", peak);
    cr_expect_lt(peak, 33 * MIB);
    free(html);
    free(script);
}
