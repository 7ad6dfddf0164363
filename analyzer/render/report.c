/* `memtrail report` renderers: the text form people read and the JSON form
 * tools read (docs/report-json.md), both over mta_group(); the snapshot
 * header, counts and frames come from common.c. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* The --fail-above verdict of a report. */
static void report_verdict(const mta_group_t *g, const mta_report_opts_t *o, mta_verdict_t *v)
{
    char live[64], limit[64];
    *v = (mta_verdict_t){ .set = o->fail_above_set };
    if (!v->set)
        return;
    v->failed = g->bytes > o->fail_above;
    mta_format_bytes((int64_t)g->bytes, false, live, sizeof(live));
    mta_format_bytes((int64_t)o->fail_above, false, limit, sizeof(limit));
    snprintf(v->message, sizeof(v->message), "%s: %s live%s, %s the limit of %s (--fail-above)",
             v->failed ? "FAIL" : "ok", live, g->filtered ? " (selected by the filters)" : "",
             v->failed ? "above" : "within", limit);
}

/* ---- text ---------------------------------------------------------------- */

static void text_header(FILE *out, const mta_group_t *g)
{
    const mta_snapshot_t *s = g->snap;
    const mtsnap_totals_t *t = &s->totals;
    char a[96], tm[48];
    mta_put_snapshot_header(out, s, MTA_HEADER_LINES, "snapshot");
    mta_format_bytes_in(t->live_bytes, t->live_blocks, a, sizeof(a));
    fprintf(out, "\nlive: %s\n", a);
    mta_format_bytes_in(t->peak_bytes, t->peak_blocks, a, sizeof(a));
    fprintf(out, "peak: %s", a);
    if (t->peak_time_ns) {
        mta_format_time(t->peak_time_ns, 0, tm, sizeof(tm));
        fprintf(out, " at %s", tm);
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
}

static int text_stack_entry(FILE *out, mta_group_t *g, size_t rank, const mta_group_entry_t *e)
{
    char a[96], c[32], d[96];
    mta_format_bytes_in(e->bytes, e->blocks, a, sizeof(a));
    mta_format_count(e->peak_bytes, c, sizeof(c));
    mta_format_bytes_in(e->alloc_bytes, e->alloc_blocks, d, sizeof(d));
    if (g->live_only)
        fprintf(out, "\n#%zu  %s\n", rank, a);
    else
        fprintf(out, "\n#%zu  %s  (peak %s B; allocated %s)\n", rank, a, c, d);
    return mta_put_stack(out, g, e->frames, e->nframes, false, false);
}

static int text_table(FILE *out, mta_group_t *g, size_t shown)
{
    enum { MAXCOL = 5 };
    static const char *const heads[MAXCOL] = { "#", "live", "blocks", "peak", "allocated" };
    const int ncol = g->live_only ? 3 : MAXCOL;
    int w[MAXCOL];
    char cell[32];
    for (int c = 0; c < ncol; c++)
        w[c] = (int)strlen(heads[c]);
    for (size_t i = 0; i < shown; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        uint64_t v[MAXCOL] = { i + 1, e->bytes, e->blocks, e->peak_bytes, e->alloc_bytes };
        for (int c = 0; c < ncol; c++) {
            mta_format_count(v[c], cell, sizeof(cell));
            int n = (int)strlen(cell) + (c == 1 || c >= 3 ? 2 : 0); /* " B" */
            if (n > w[c])
                w[c] = n;
        }
    }
    fputc('\n', out);
    for (int c = 0; c < ncol; c++)
        fprintf(out, "%*s  ", w[c], heads[c]);
    fprintf(out, "%s\n", mta_group_by_name(g->by));
    for (size_t i = 0; i < shown; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        uint64_t v[MAXCOL] = { i + 1, e->bytes, e->blocks, e->peak_bytes, e->alloc_bytes };
        for (int c = 0; c < ncol; c++) {
            char withunit[40];
            mta_format_count(v[c], cell, sizeof(cell));
            snprintf(withunit, sizeof(withunit), "%s%s", cell, c == 1 || c >= 3 ? " B" : "");
            fprintf(out, "%*s  ", w[c], withunit);
        }
        if (mta_put_site(out, g, e) < 0)
            return -ENOMEM;
        fputc('\n', out);
    }
    return 0;
}

static int report_text(FILE *out, mta_group_t *g, const mta_report_opts_t *o,
                       const mta_verdict_t *v)
{
    size_t shown = o->top && o->top < g->nentries ? o->top : g->nentries;
    const char *what = mta_group_by_plural(g->by);
    int rc = 0;
    text_header(out, g);
    if (g->nentries == 0)
        fputs(g->filtered ? "\nno live memory selected by the filters\n" : "\nno live memory\n",
              out);
    if (g->nentries == 0)
        ;
    else if (shown < g->nentries)
        fprintf(out, "\ntop %zu of %zu %s by live bytes:\n", shown, g->nentries, what);
    else
        fprintf(out, "\n%zu %s by live bytes:\n", g->nentries,
                mta_plural(g->nentries, mta_group_by_name(g->by), what));
    if (g->nentries == 0)
        ;
    else if (g->by == MTA_GROUP_STACK)
        for (size_t i = 0; i < shown && rc == 0; i++)
            rc = text_stack_entry(out, g, i + 1, &g->entries[i]);
    else
        rc = text_table(out, g, shown);
    if (rc == 0 && shown < g->nentries) {
        uint64_t bytes = 0, blocks = 0;
        for (size_t i = shown; i < g->nentries; i++) {
            bytes += g->entries[i].bytes;
            blocks += g->entries[i].blocks;
        }
        mta_put_more(out, g->nentries - shown,
                     mta_plural(g->nentries - shown, mta_group_by_name(g->by), what), bytes, blocks);
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
    size_t shown = o->top && o->top < g->nentries ? o->top : g->nentries;
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
    mta_json_verdict_begin(&j, v);
    if (v->set) {
        mta_json_key(&j, "limit_bytes");
        mta_json_u64(&j, o->fail_above);
    }
    mta_json_verdict_end(&j, v);
    mta_json_key(&j, "group_by");
    mta_json_string(&j, mta_group_by_name(g->by));
    mta_json_key(&j, "top");
    mta_json_u64(&j, o->top);
    mta_json_key(&j, "total_entries");
    mta_json_u64(&j, g->nentries);
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
    int rc = mta_group(snap, opts->group_by, opts->keep_empty ? MTA_GROUP_KEEP_EMPTY : 0,
                       opts->filter, &g);
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
