/* Inlined frames (issue 16): tests/programs/inl.c, built with -O2, whose
 * allocation helpers are inlined two levels deep, run under the tracer with
 * each unwinder. The snapshot, `memtrail report` (JSON and text), `export`
 * (collapsed, pprof read back) and `diff` of two runs must show each
 * inlined function as its own frame at its own line, and the function it
 * was inlined into at the line of the call, with exact figures per site;
 * so must the HTML page's data.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "anutil.h"
#include "harness.h"
#include "pprof_read.h"

#define INL_SRC "tests/programs/inl.c"
#define INL_TEST(name) Test(inline, name, .init = mt_setup, .fini = an_fini, .timeout = 120)

static unsigned site_line(const char *site)
{
    char marker[64];
    snprintf(marker, sizeof(marker), "/* SITE:%s */", site);
    unsigned line = mt_marker_line(INL_SRC, marker);
    cr_assert_neq(line, 0, "no %s in %s", marker, INL_SRC);
    return line;
}

/* The user part of the two kinds of stack inl.c allocates from, innermost
 * first: function, SITE marker of its line, inlined into the next frame. */
typedef struct want_frame {
    const char *function, *site;
    int inlined;
} want_frame_t;

static const want_frame_t via_fill[] = {
    {"make_raw", "make_raw", 1}, {"make_buf", "make_buf", 1}, {"fill", "fill", 0},
    {"main", "main_fill", 0}};
static const want_frame_t via_direct[] = {
    {"make_raw", "make_raw", 1}, {"fill_direct", "fill_direct", 0}, {"main", "main_direct", 0}};
#define NWANT(a) (sizeof(a) / sizeof(a[0]))

/* Runs inl under the tracer (opts: extra `memtrail run` options) and
 * renames its exit snapshot to mt_dir/NAME; returns the new path and the
 * loaded snapshot in *snap. */
static char *run_inl(const char *const opts[], const char *name, mta_snapshot_t **snap)
{
    const char *argv[] = {an_keep(mt_program("inl")), NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, opts, argv, NULL, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "inl under memtrail: wait status %#x, stderr: %s", run.status, run.err);
    mt_run_free(&run);
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "exit");
    char *path = cat(mt_dir, name);
    cr_assert_eq(rename(s->path, path), 0);
    *snap = s;
    return path;
}

/* Whether frames fr[0..n) of the stack start with `want` (innermost user
 * frames first) and the inlined ones share the pc of the frame they are
 * inlined into; asserts the lines. */
static int matches(const mta_snapshot_t *s, const uint32_t *fr, uint32_t n,
                   const want_frame_t *want, size_t nwant)
{
    if (n < nwant)
        return 0;
    for (size_t i = 0; i < nwant; i++)
        if (strcmp(s->frames[fr[i]].function, want[i].function) != 0)
            return 0;
    for (size_t i = 0; i < nwant; i++) {
        const mta_frame_t *f = &s->frames[fr[i]];
        cr_expect_eq(f->line, site_line(want[i].site), "%s: line %u, want %u (SITE:%s)",
                     want[i].function, f->line, site_line(want[i].site), want[i].site);
        cr_expect(strstr(f->file, INL_SRC) != NULL, "%s: file %s", want[i].function, f->file);
        cr_expect_eq(f->inlined, (uint32_t)want[i].inlined, "%s: inlined %u", want[i].function,
                     f->inlined);
        cr_expect_eq(f->kind, MTSNAP_FRAME_NATIVE);
        if (want[i].inlined)
            cr_expect_eq(f->pc, s->frames[fr[i + 1]].pc, "%s: not at its caller's pc",
                         want[i].function);
    }
    cr_expect_neq(s->frames[fr[nwant - 2]].pc, s->frames[fr[nwant - 1]].pc,
                  "main at the pc of its callee");
    return 1;
}

/* The snapshot itself: every live stack is one of the two kinds, with exact
 * figures: 3 x 116 bytes through fill, 40 bytes through fill_direct. */
static void check_snapshot(const mta_snapshot_t *s)
{
    uint64_t bytes[2] = {0}, blocks[2] = {0};
    cr_expect(s->has_inlined, "no INLINED record");
    cr_expect_eq(s->totals.live_bytes, 388);
    cr_expect_eq(s->totals.live_blocks, 4);
    for (uint32_t i = 0; i < s->nstats; i++) {
        const mtsnap_stack_stat_t *st = &s->stats[i];
        const mta_stack_t *stk = &s->stacks[st->stack];
        uint32_t k = 0;
        while (k < stk->depth && mt_is_allocator_frame(s, &s->frames[stk->frames[k]]))
            k++;
        int which = matches(s, stk->frames + k, stk->depth - k, via_fill, NWANT(via_fill)) ? 0
                    : matches(s, stk->frames + k, stk->depth - k, via_direct, NWANT(via_direct)) ? 1
                    : -1;
        cr_expect_neq(which, -1, "stack %u: innermost user frame %s", st->stack,
                      k < stk->depth ? s->frames[stk->frames[k]].function : "(none)");
        if (which >= 0) {
            bytes[which] += st->live_bytes;
            blocks[which] += st->live_blocks;
        }
    }
    cr_expect_eq(bytes[0], 348, "through fill: %llu bytes", (unsigned long long)bytes[0]);
    cr_expect_eq(blocks[0], 3);
    cr_expect_eq(bytes[1], 40, "through fill_direct: %llu bytes", (unsigned long long)bytes[1]);
    cr_expect_eq(blocks[1], 1);
}

/* A JSON frame against want. */
static void check_json_frame(const jv_t *f, const want_frame_t *want)
{
    cr_expect_str_eq(jstr(f, "function"), want->function);
    cr_expect_eq(jnum(f, "line"), site_line(want->site), "%s: line %lld", want->function,
                 jnum(f, "line"));
    cr_expect(strstr(jstr(f, "file"), INL_SRC) != NULL);
    const jv_t *inl = jget(f, "inlined");
    cr_expect_eq(inl != NULL && inl->type == 't', want->inlined, "%s: \"inlined\"", want->function);
}

static void check_report(const char *snap)
{
    /* By function: the innermost function is the inlined make_raw. */
    jv_t *d = JSON(0, "report", snap, "-g", "function", "-f", "json", "-n", "0");
    const jv_t *entries = jreq(d, "entries", 'a');
    cr_assert_eq(entries->n, 1, "%zu functions", entries->n);
    check_json_frame(jreq(entries->items[0], "frames", 'a')->items[0], &via_fill[0]);
    cr_expect_eq(jnum(entries->items[0], "bytes"), 388);
    cr_expect_eq(jnum(entries->items[0], "blocks"), 4);

    /* By stack: every frame of the user part, the figures per stack kind. */
    d = JSON(0, "report", snap, "-g", "stack", "-f", "json", "-n", "0");
    entries = jreq(d, "entries", 'a');
    long long bytes[2] = {0}, blocks[2] = {0};
    for (size_t i = 0; i < entries->n; i++) {
        const jv_t *fr = jreq(entries->items[i], "frames", 'a');
        cr_assert_geq(fr->n, 3);
        int which = strcmp(jstr(fr->items[1], "function"), "make_buf") == 0 ? 0 : 1;
        const want_frame_t *w = which == 0 ? via_fill : via_direct;
        size_t nw = which == 0 ? NWANT(via_fill) : NWANT(via_direct);
        cr_assert_geq(fr->n, nw);
        for (size_t k = 0; k < nw; k++)
            check_json_frame(fr->items[k], &w[k]);
        bytes[which] += jnum(entries->items[i], "bytes");
        blocks[which] += jnum(entries->items[i], "blocks");
    }
    cr_expect_eq(bytes[0], 348);
    cr_expect_eq(blocks[0], 3);
    cr_expect_eq(bytes[1], 40);
    cr_expect_eq(blocks[1], 1);

    /* The text report marks the inlined frames. */
    mt_run_t r;
    cr_assert_eq(MT(&r, "report", snap, "-g", "stack"), 0, "%s", r.err);
    char want[256];
    snprintf(want, sizeof(want), "make_buf (%s/%s:%u) [inl] (inlined)\n",
             mt_env("MEMTRAIL_SOURCE_ROOT"), INL_SRC, site_line("make_buf"));
    cr_expect(strstr(r.out, want) != NULL, "no \"%s\" in:\n%s", want, r.out);
    snprintf(want, sizeof(want), "fill (%s/%s:%u) [inl]\n", mt_env("MEMTRAIL_SOURCE_ROOT"),
             INL_SRC, site_line("fill"));
    cr_expect(strstr(r.out, want) != NULL, "no \"%s\" in:\n%s", want, r.out);
    mt_run_free(&r);
}

INL_TEST(frames_libunwind)
{
    mta_snapshot_t *s;
    char *snap = run_inl(NULL, "/inl.mtsnap", &s);
    check_snapshot(s);
    mta_snapshot_free(s);
    check_report(snap);
}

INL_TEST(frames_fp)
{
    mta_snapshot_t *s;
    const char *opts[] = {"--unwind", "fp", NULL};
    char *snap = run_inl(opts, "/inl.mtsnap", &s);
    check_snapshot(s);
    mta_snapshot_free(s);
    check_report(snap);
}

/* "a (f:l);b (f:l);..." of one frame kind, outermost first, as the
 * collapsed export writes it (the path of inl.c made absolute). */
static char *collapsed_tail(const want_frame_t *w, size_t n)
{
    char buf[1024];
    size_t len = 0;
    for (size_t i = n; i-- > 0;)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, ";%s (%s/%s:%u)", w[i].function,
                                mt_env("MEMTRAIL_SOURCE_ROOT"), INL_SRC, site_line(w[i].site));
    return an_keep(strdup(buf));
}

INL_TEST(exports)
{
    mta_snapshot_t *s;
    char *snap = run_inl(NULL, "/inl.mtsnap", &s);
    mta_snapshot_free(s);

    /* collapsed: each inlined function a frame of its own */
    mt_run_t r;
    cr_assert_eq(MT(&r, "export", snap, "--format", "collapsed"), 0, "%s", r.err);
    char *want[2] = {collapsed_tail(via_fill, NWANT(via_fill)),
                     collapsed_tail(via_direct, NWANT(via_direct))};
    long long sum[2] = {0};
    for (char *l = r.out, *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
        *nl = '\0';
        char *sp = strrchr(l, ' ');
        cr_assert_not_null(sp, "line \"%s\"", l);
        *sp = '\0';
        int hit = 0;
        for (int k = 0; k < 2; k++) {
            size_t wl = strlen(want[k]), ll = strlen(l);
            if (ll >= wl && strcmp(l + ll - wl, want[k]) == 0) {
                sum[k] += atoll(sp + 1);
                hit = 1;
            }
        }
        cr_expect(hit, "collapsed stack \"%s\" ends in neither %s nor %s", l, want[0], want[1]);
    }
    cr_expect_eq(sum[0], 348, "through fill: %lld", sum[0]);
    cr_expect_eq(sum[1], 40, "through fill_direct: %lld", sum[1]);
    mt_run_free(&r);

    /* pprof: one location per return address; the inlined functions are
     * its first Lines, innermost first, the function they are inlined into
     * the last */
    char *out = cat(mt_dir, "/inl.pb.gz"), err[256];
    cr_assert_eq(MT(&r, "export", snap, "--format", "pprof", "-o", out), 0, "%s", r.err);
    mt_run_free(&r);
    ppr_profile_t *p = NULL;
    cr_assert_eq(ppr_read_file(out, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
    long long space[2] = {0}, objects[2] = {0};
    for (size_t i = 0; i < p->nsamples; i++) {
        const ppr_sample_t *smp = &p->samples[i];
        const ppr_location_t *loc = NULL;
        for (size_t k = 0; k < smp->nlocs && loc == NULL; k++) {   /* past malloc */
            const ppr_location_t *l = ppr_location(p, smp->location_ids[k]);
            cr_assert_not_null(l);
            const ppr_function_t *fn = ppr_function(p, l->lines[0].function_id);
            if (strcmp(ppr_str(p, fn->name), "make_raw") == 0)
                loc = l;
        }
        cr_assert_not_null(loc, "sample %zu does not go through make_raw", i);
        int which = loc->nlines == NWANT(via_fill) - 1 ? 0 : 1;
        const want_frame_t *w = which == 0 ? via_fill : via_direct;
        cr_assert_eq(loc->nlines, which == 0 ? 3 : 2, "%zu lines", loc->nlines);
        for (size_t k = 0; k < loc->nlines; k++) {
            const ppr_function_t *fn = ppr_function(p, loc->lines[k].function_id);
            cr_expect_str_eq(ppr_str(p, fn->name), w[k].function);
            cr_expect_eq(loc->lines[k].line, site_line(w[k].site), "%s line %lld", w[k].function,
                         (long long)loc->lines[k].line);
        }
        cr_expect_neq(loc->address, 0);
        const ppr_mapping_t *m = ppr_mapping(p, loc->mapping_id);
        cr_assert_not_null(m);
        cr_expect(m->has_inline_frames);
        space[which] += smp->values[3];
        objects[which] += smp->values[2];
    }
    cr_expect_eq(space[0], 348);
    cr_expect_eq(objects[0], 3);
    cr_expect_eq(space[1], 40);
    cr_expect_eq(objects[1], 1);
    ppr_free(p);

    /* the HTML page's data: each inlined function a frame of the tree, marked */
    char *html = cat(mt_dir, "/inl.html");
    cr_assert_eq(MT(&r, "html", snap, "-o", html), 0, "%s", r.err);
    mt_run_free(&r);
    FILE *f = fopen(html, "r");
    cr_assert_not_null(f);
    static char page[4 << 20];
    size_t n = fread(page, 1, sizeof(page) - 1, f);
    fclose(f);
    page[n] = '\0';
    for (size_t k = 0; k < NWANT(via_fill) - 1; k++) {
        char frame[512];
        snprintf(frame, sizeof(frame),
                 "{\"function\":\"%s\",\"file\":\"%s/%s\",\"line\":%u,\"module\":\"inl\","
                 "\"kind\":\"native\"%s}", via_fill[k].function, mt_env("MEMTRAIL_SOURCE_ROOT"),
                 INL_SRC, site_line(via_fill[k].site), via_fill[k].inlined ? ",\"inlined\":true" : "");
        cr_expect(strstr(page, frame) != NULL, "no %s in the page's frames", frame);
    }
}

/* Two runs (the second answered from the symbol cache the first filled):
 * the same frames, and diff matches every stack, inlined frames and all. */
INL_TEST(diff)
{
    mta_snapshot_t *a, *b;
    char *old = run_inl(NULL, "/old.mtsnap", &a), *new = run_inl(NULL, "/new.mtsnap", &b);
    check_snapshot(b);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
    for (int by = 0; by < 2; by++) {
        jv_t *d = JSON(0, "diff", old, new, "-g", by ? "stack" : "line", "-f", "json", "-n", "0");
        const jv_t *entries = jreq(d, "entries", 'a');
        cr_expect_geq(entries->n, by ? 2 : 1);
        for (size_t i = 0; i < entries->n; i++) {
            const jv_t *e = entries->items[i];
            cr_expect_str_eq(jstr(e, "status"), "both", "%s", json_stack(e));
            cr_expect_eq(jnum(e, "bytes_diff"), 0);
            check_json_frame(jreq(e, "frames", 'a')->items[0], &via_fill[0]);
        }
        cr_expect_eq(jnum(d, "bytes_diff"), 0);
        cr_expect_eq(jnum(d, "new_bytes"), 388);
    }
}
