/* `memtrail report` renderers: the text form people read and the JSON form
 * tools read (docs/report-json.md), both over mta_group(); the snapshot
 * header, counts and frames come from common.c. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* The verdict of --fail-above (live bytes) and --fail-on-peak (bytes at the
 * peak): the limits passed, or else those kept, "; "-separated. */
static void report_verdict(const mta_group_t *g, const mta_report_opts_t *o, mta_verdict_t *v)
{
    char fig[MTA_SIZE_LEN], limit[MTA_SIZE_LEN], part[2][300] = { "", "" };
    const char *sel = g->filtered ? " (selected by the filters)" : "";
    bool above = o->fail_above_set && g->bytes > o->fail_above;
    bool peak = o->fail_on_peak_set && mta_group_peak_bytes(g) > o->fail_on_peak;
    *v = (mta_verdict_t){ .set = o->fail_above_set || o->fail_on_peak_set,
                          .failed = above || peak };
    if (!v->set)
        return;
    if (o->fail_above_set) {
        mta_format_size(g->bytes, fig, sizeof(fig));
        mta_format_size(o->fail_above, limit, sizeof(limit));
        snprintf(part[0], sizeof(part[0]), "%s live%s, %s the limit of %s (--fail-above)", fig,
                 sel, above ? "above" : "within", limit);
    }
    if (o->fail_on_peak_set) {
        mta_format_size(mta_group_peak_bytes(g), fig, sizeof(fig));
        mta_format_size(o->fail_on_peak, limit, sizeof(limit));
        snprintf(part[1], sizeof(part[1]), "%s at the peak%s, %s the limit of %s (--fail-on-peak)",
                 fig, sel, peak ? "above" : "within", limit);
    }
    /* when failed, only the limits passed */
    bool show0 = part[0][0] && (!v->failed || above), show1 = part[1][0] && (!v->failed || peak);
    snprintf(v->message, sizeof(v->message), "%s: %s%s%s", v->failed ? "FAIL" : "ok",
             show0 ? part[0] : "", show0 && show1 ? "; " : "", show1 ? part[1] : "");
}

/* ---- text ---------------------------------------------------------------- */

/* "largest at the peak: FIGURES at SITE": the entry that held the most at
 * the process-wide peak (nothing when none held any). */
static int text_peak_top(FILE *out, mta_group_t *g)
{
    const mta_group_entry_t *e = mta_group_peak_top(g);
    char a[MTA_SIZE_LEN + 40];
    if (!e)
        return 0;
    mta_format_bytes_in(e->peak_bytes, e->peak_blocks, a, sizeof(a));
    fprintf(out, "largest at the peak: %s at ", a);
    if (g->by != MTA_GROUP_STACK) {
        if (mta_put_site(out, g, e) < 0)
            return -ENOMEM;
    } else {
        uint32_t f = mta_entry_key_frame(g, e);
        if (f == MTSNAP_NONE)
            fputs("[unknown]", out);
        else if (mta_put_frame(out, g, f, 1) < 0)
            return -ENOMEM;
    }
    fputc('\n', out);
    return 0;
}

static int text_header(FILE *out, mta_group_t *g)
{
    const mta_snapshot_t *s = g->snap;
    const mtsnap_totals_t *t = &s->totals;
    char a[MTA_SIZE_LEN + 40], tm[48];
    mta_put_snapshot_header(out, s, MTA_HEADER_LINES, "snapshot");
    mta_format_bytes_in(t->live_bytes, t->live_blocks, a, sizeof(a));
    fprintf(out, "\nlive: %s\n", a);
    mta_format_bytes_in(t->peak_bytes, t->peak_blocks, a, sizeof(a));
    fprintf(out, "peak: %s", a);
    if (t->peak_time_ns) {
        mta_format_time(t->peak_time_ns, 0, tm, sizeof(tm));
        fprintf(out, " at %s", tm);
        if (s->meta.start_ns && t->peak_time_ns >= s->meta.start_ns)
            fprintf(out, ", %.3f s after tracing started",
                    (double)(t->peak_time_ns - s->meta.start_ns) / 1e9);
    }
    mta_format_bytes_in(t->alloc_bytes, t->alloc_blocks, a, sizeof(a));
    fprintf(out, "\nallocated: %s since tracing began", a);
    mta_format_count(t->free_blocks, a, sizeof(a));
    fprintf(out, ", %s %s freed\n", a, mta_blocks_word(t->free_blocks));
    if (g->filtered) {
        mta_format_bytes_in(g->bytes, g->blocks, a, sizeof(a));
        fprintf(out, "selected by the filters: %s live%s\n", a,
                g->live_only ? " (peak and allocated figures are per stack, not per domain:"
                               " not shown)" : "");
    }
    return text_peak_top(out, g);
}

/* The figures of the metrics other than the ranked one, "; "-separated. */
static void other_figures(FILE *out, const mta_group_t *g, const mta_group_entry_t *e)
{
    char a[MTA_SIZE_LEN + 40];
    bool first = true;
    for (mta_metric_t m = MTA_METRIC_LIVE; m <= MTA_METRIC_ALLOCATED; m++) {
        if (m == g->metric)
            continue;
        if (m == MTA_METRIC_ALLOCATED)
            mta_format_bytes_in(e->alloc_bytes, e->alloc_blocks, a, sizeof(a));
        else
            mta_format_size(mta_entry_bytes(e, m), a, sizeof(a));
        fprintf(out, "%s%s %s", first ? "" : "; ", mta_metric_name(m), a);
        first = false;
    }
}

static int text_stack_entry(FILE *out, mta_group_t *g, size_t rank, const mta_group_entry_t *e)
{
    char a[MTA_SIZE_LEN + 40];
    mta_format_bytes_in(mta_entry_bytes(e, g->metric), mta_entry_blocks(e, g->metric), a,
                        sizeof(a));
    fprintf(out, "\n#%zu  %s", rank, a);
    if (g->metric == MTA_METRIC_PEAK)
        fputs(" at the peak", out);
    else if (g->metric == MTA_METRIC_ALLOCATED)
        fputs(" allocated", out);
    if (!g->live_only) {
        fputs("  (", out);
        other_figures(out, g, e);
        fputc(')', out);
    }
    fputc('\n', out);
    return mta_put_stack(out, g, e->frames, e->nframes, false, false);
}

/* The table's row i: rank, the metric's bytes and blocks, then the other
 * metrics' bytes (the metric's column first). */
enum { MAXCOL = 5 };
static void table_row(const mta_group_t *g, size_t i, char cells[MAXCOL][MTA_SIZE_LEN])
{
    const mta_group_entry_t *e = &g->entries[i];
    int c = 2;
    mta_format_count(i + 1, cells[0], MTA_SIZE_LEN);
    mta_format_size(mta_entry_bytes(e, g->metric), cells[1], MTA_SIZE_LEN);
    mta_format_count(mta_entry_blocks(e, g->metric), cells[2], MTA_SIZE_LEN);
    for (mta_metric_t m = MTA_METRIC_LIVE; m <= MTA_METRIC_ALLOCATED; m++)
        if (m != g->metric)
            mta_format_size(mta_entry_bytes(e, m), cells[++c], MTA_SIZE_LEN);
}

static int text_table(FILE *out, mta_group_t *g, size_t shown)
{
    const char *heads[MAXCOL] = { "#", mta_metric_name(g->metric), "blocks" };
    const int ncol = g->live_only ? 3 : MAXCOL;
    int w[MAXCOL], c = 2;
    char cells[MAXCOL][MTA_SIZE_LEN];
    for (mta_metric_t m = MTA_METRIC_LIVE; m <= MTA_METRIC_ALLOCATED; m++)
        if (m != g->metric)
            heads[++c] = mta_metric_name(m);
    for (c = 0; c < ncol; c++)
        w[c] = (int)strlen(heads[c]);
    for (size_t i = 0; i < shown; i++) {
        table_row(g, i, cells);
        for (c = 0; c < ncol; c++)
            if ((int)strlen(cells[c]) > w[c])
                w[c] = (int)strlen(cells[c]);
    }
    fputc('\n', out);
    fputs(mta_paint_on(MTA_PAINT_HEADING), out);
    for (c = 0; c < ncol; c++)
        fprintf(out, "%*s  ", w[c], heads[c]);
    fprintf(out, "%s%s\n", mta_group_by_name(g->by), mta_paint_off());
    for (size_t i = 0; i < shown; i++) {
        table_row(g, i, cells);
        for (c = 0; c < ncol; c++)
            fprintf(out, "%*s  ", w[c], cells[c]);
        if (mta_put_site(out, g, &g->entries[i]) < 0)
            return -ENOMEM;
        fputc('\n', out);
    }
    return 0;
}

static int report_text(FILE *out, mta_group_t *g, const mta_report_opts_t *o,
                       const mta_verdict_t *v)
{
    size_t n = g->nranked, shown = o->top && o->top < n ? o->top : n;
    const char *what = mta_group_by_plural(g->by), *metric = mta_metric_name(g->metric);
    int rc = text_header(out, g);
    if (rc < 0)
        return rc;
    if (n == 0)
        fprintf(out, "\nno %s%s\n", mta_metric_memory(g->metric),
                g->filtered ? " selected by the filters" : "");
    else if (shown < n)
        fprintf(out, "\n%stop %zu of %zu %s by %s bytes:%s\n", mta_paint_on(MTA_PAINT_HEADING),
                shown, n, what, metric, mta_paint_off());
    else
        fprintf(out, "\n%s%zu %s by %s bytes:%s\n", mta_paint_on(MTA_PAINT_HEADING), n,
                mta_plural(n, mta_group_by_name(g->by), what), metric, mta_paint_off());
    if (n == 0)
        ;
    else if (g->by == MTA_GROUP_STACK)
        for (size_t i = 0; i < shown && rc == 0; i++)
            rc = text_stack_entry(out, g, i + 1, &g->entries[i]);
    else
        rc = text_table(out, g, shown);
    if (rc == 0 && shown < n) {
        uint64_t bytes = 0, blocks = 0;
        for (size_t i = shown; i < n; i++) {
            bytes += mta_entry_bytes(&g->entries[i], g->metric);
            blocks += mta_entry_blocks(&g->entries[i], g->metric);
        }
        mta_put_more(out, n - shown, mta_plural(n - shown, mta_group_by_name(g->by), what),
                     bytes, blocks);
    }
    if (rc == 0)
        mta_put_verdict(out, v);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

/* Orders entry indices, largest first, then by index (the live order): by
 * peak bytes when arg is { g, g }, by allocated bytes when { g, NULL }. */
static int cmp_metric(const void *a, const void *b, void *arg)
{
    const mta_group_entry_t *e = ((const mta_group_t **)arg)[0]->entries;
    bool peak = ((const mta_group_t **)arg)[1] != NULL;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    uint64_t vx = peak ? e[x].peak_bytes : e[x].alloc_bytes;
    uint64_t vy = peak ? e[y].peak_bytes : e[y].alloc_bytes;
    if (vx != vy)
        return vx > vy ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The entries a peak and allocated aware --top shows (keep_empty): the N
 * first of the live order and the N largest by peak and by allocated
 * bytes; shown[i] = 1 for each. Returns 0 or -ENOMEM. */
static int top_by_each_metric(const mta_group_t *g, size_t top, uint8_t *shown)
{
    size_t *idx = malloc(g->nentries * sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    memset(shown, 0, g->nentries);
    memset(shown, 1, top);
    for (int m = 0; m < 2; m++) {
        const mta_group_t *arg[2] = { g, m == 0 ? g : NULL };
        for (size_t i = 0; i < g->nentries; i++)
            idx[i] = i;
        qsort_r(idx, g->nentries, sizeof(*idx), cmp_metric, arg);
        for (size_t i = 0; i < top; i++)
            shown[idx[i]] = 1;
    }
    free(idx);
    return 0;
}

static int report_json(FILE *out, mta_group_t *g, const mta_report_opts_t *o,
                       const mta_verdict_t *v)
{
    const mta_snapshot_t *s = g->snap;
    const mtsnap_totals_t *t = &s->totals;
    /* keep_empty (memtrail html's table) lists entries without the metric too */
    size_t limit = o->keep_empty ? g->nentries : g->nranked;
    size_t shown = o->top && o->top < limit ? o->top : limit;
    uint8_t *each = NULL;   /* keep_empty's --top: the entries shown */
    int rc = 0;
    char tm[48];
    mta_json_t j;
    if (o->keep_empty && shown < g->nentries) {
        if (!(each = malloc(g->nentries)) || top_by_each_metric(g, shown, each) < 0) {
            free(each);
            return -ENOMEM;
        }
        shown = g->nentries;
    }
    mta_json_init(&j, out);
    mta_json_begin_object(&j);
    mta_json_key(&j, "snapshot");
    mta_json_snapshot(&j, s);
    const struct { const char *k; uint64_t v; } totals[] = {
        { "total_bytes", t->live_bytes },   { "total_blocks", t->live_blocks },
        { "peak_bytes", t->peak_bytes },    { "peak_blocks", t->peak_blocks },
        { "peak_time_ns", t->peak_time_ns }, { "alloc_bytes", t->alloc_bytes },
        { "alloc_blocks", t->alloc_blocks }, { "free_blocks", t->free_blocks },
    };
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        mta_json_key(&j, totals[i].k);
        mta_json_u64(&j, totals[i].v);
    }
    mta_format_time(t->peak_time_ns, 1, tm, sizeof(tm));
    mta_json_key(&j, "peak_time");
    mta_json_string(&j, tm);
    mta_json_key(&j, "filtered");
    mta_json_bool(&j, g->filtered);
    mta_json_key(&j, "selected_bytes");
    mta_json_u64(&j, g->bytes);
    mta_json_key(&j, "selected_blocks");
    mta_json_u64(&j, g->blocks);
    mta_json_key(&j, "live_only");
    mta_json_bool(&j, g->live_only);
    mta_json_key(&j, "selected_peak_bytes");
    if (g->live_only)
        mta_json_null(&j);
    else
        mta_json_u64(&j, mta_group_peak_bytes(g));
    mta_json_verdict_begin(&j, v);
    if (o->fail_above_set) {
        mta_json_key(&j, "limit_bytes");
        mta_json_u64(&j, o->fail_above);
    }
    if (o->fail_on_peak_set) {
        mta_json_key(&j, "peak_limit_bytes");
        mta_json_u64(&j, o->fail_on_peak);
    }
    mta_json_verdict_end(&j, v);
    mta_json_key(&j, "group_by");
    mta_json_string(&j, mta_group_by_name(g->by));
    mta_json_key(&j, "metric");
    mta_json_string(&j, mta_metric_name(g->metric));
    mta_json_key(&j, "top");
    mta_json_u64(&j, o->top);
    mta_json_key(&j, "total_entries");
    mta_json_u64(&j, g->nranked);
    mta_json_key(&j, "entries");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < shown; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        if (each && !each[i])
            continue;
        mta_json_begin_object(&j);
        const char *key = mta_group_key(g, e);
        if (!key) {
            rc = -ENOMEM;
            break;
        }
        mta_json_key(&j, "key");
        mta_json_string(&j, key);
        const struct { const char *k; uint64_t v; } vals[] = {
            { "bytes", e->bytes },             { "blocks", e->blocks },
            { "peak_bytes", e->peak_bytes },   { "peak_blocks", e->peak_blocks },
            { "alloc_bytes", e->alloc_bytes }, { "alloc_blocks", e->alloc_blocks },
            { "stacks", e->nstacks },
        };
        for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
            mta_json_key(&j, vals[k].k);
            if (g->live_only && k >= 2 && k <= 5)
                mta_json_null(&j);   /* not known per domain */
            else
                mta_json_u64(&j, vals[k].v);
        }
        mta_json_key(&j, "frames");
        if (mta_json_frames(&j, g, e->frames, e->nframes, false) < 0) {
            rc = -ENOMEM;
            break;
        }
        mta_json_end_object(&j);
    }
    free(each);
    if (rc < 0)
        return rc;
    mta_json_end_array(&j);
    mta_json_end_object(&j);
    return 0;
}

int mta_report(FILE *out, const mta_snapshot_t *snap, const mta_report_opts_t *opts)
{
    mta_group_t *g = NULL;
    mta_verdict_t v;
    /* the entry largest at the peak is kept even with nothing live */
    int rc = mta_group_shared(snap, opts->group_by, opts->metric,
                              MTA_GROUP_KEEP_PEAK | (opts->keep_empty ? MTA_GROUP_KEEP_EMPTY : 0),
                              opts->filter, NULL, &g);
    if (rc < 0)
        goto out;
    report_verdict(g, opts, &v);
    rc = opts->format == MTA_FORMAT_JSON ? report_json(out, g, opts, &v)
                                         : report_text(out, g, opts, &v);
    rc = mta_render_end(out, rc, &v);
out:
    mta_group_free(g);
    return rc;
}
