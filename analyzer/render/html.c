/*
 * `memtrail html`: the page's data and the page (html.h).
 *
 * Data flow: the snapshots -> analysis/flametree.c (the merged call tree,
 * pruned to the node budget) -> the JSON of docs/html.md, written in one
 * pass with the compact HTML-safe writer (json.c, mta_json_init_html): the
 * frames, the tree, then per snapshot the inclusive values (computed for
 * that snapshot only, then freed), the outputs of `report` (one per table
 * key), `leaks` and `cycles` in JSON, each rendered by its own renderer into
 * a memory stream and spliced in (mta_json_splice: whitespace dropped, '<'
 * escaped), and the timeline of the newest snapshot that has one. The page
 * is the build's template (html_template.c) with the data and the title in
 * its two kinds of slots.
 *
 * Bounds: the tree has at most o->max_nodes nodes; each report at most
 * o->top entries per key; the timeline is bounded by the writer (4,096
 * points). Nothing here is quadratic in the input.
 */
#include "html.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"
#include "names.h"
#include "outputs.h"
#include "report.h"

#ifndef MEMTRAIL_VERSION
#define MEMTRAIL_VERSION "unknown"
#endif

static const char *const metric_names[MTA_FT_NMETRICS] = {
    [MTA_FT_LIVE] = "live",         [MTA_FT_PEAK] = "peak",
    [MTA_FT_ALLOC] = "allocated",   [MTA_FT_DEFINITE] = "definite",
    [MTA_FT_POSSIBLE] = "possible",
};

/* "memtrail: ARGV..." of the first snapshot (the executable without a
 * command line), newly allocated; NULL on ENOMEM. */
static char *page_title(const mta_snapshot_t *s)
{
    size_t len = s->cmdline_len;
    const char *cmd = s->cmdline;
    if (!len) {
        cmd = s->exe;
        len = strlen(cmd);
    }
    char *t = malloc(len + 11);
    if (!t)
        return NULL;
    memcpy(t, "memtrail: ", 10);
    for (size_t i = 0; i < len; i++)
        t[10 + i] = cmd[i] ? cmd[i] : ' ';
    while (len > 0 && t[10 + len - 1] == ' ')   /* argv's final NUL */
        len--;
    t[10 + len] = '\0';
    return t;
}

/* s as HTML text: & < > " ' as character references, control characters
 * as '?', bytes that are not valid UTF-8 as U+FFFD. */
static void put_html_text(FILE *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str);
    for (size_t i = 0; i < len;) {
        size_t n = mta_utf8_seq(s + i, len - i);
        if (n == 0) {
            fputs("\xef\xbf\xbd", out);   /* U+FFFD */
            i++;
            continue;
        }
        if (n > 1) {
            fwrite(s + i, 1, n, out);
            i += n;
            continue;
        }
        switch (s[i]) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], out);
        }
        i++;
    }
}

/* ns since tracing began, 0 when the clock went backwards. */
static uint64_t since_start(const mta_snapshot_t *s, uint64_t ns)
{
    return ns > s->meta.start_ns ? ns - s->meta.start_ns : 0;
}

static void write_u64s(mta_json_t *j, const uint64_t *v, size_t n)
{
    mta_json_begin_array(j);
    for (size_t i = 0; i < n; i++)
        mta_json_u64(j, v[i]);
    mta_json_end_array(j);
}

static void write_frames_and_tree(mta_json_t *j, const mta_flametree_t *t)
{
    mta_json_key(j, "frames");
    mta_json_begin_array(j);
    for (size_t f = 0; f < t->nframes; f++) {
        const mta_ft_frame_t *fr = &t->frames[f];
        mta_json_begin_object(j);
        mta_json_key(j, "function");
        mta_json_string(j, fr->function);
        mta_json_key(j, "file");
        mta_json_string(j, fr->file);
        mta_json_key(j, "line");
        mta_json_u64(j, fr->line);
        mta_json_key(j, "module");
        mta_json_string(j, fr->module);
        mta_json_key(j, "kind");
        mta_json_string(j, fr->kind == MTSNAP_FRAME_PYTHON ? "python" : "native");
        if (fr->inlined) {
            mta_json_key(j, "inlined");
            mta_json_bool(j, true);
        }
        mta_json_end_object(j);
    }
    mta_json_end_array(j);
    mta_json_key(j, "tree");
    mta_json_begin_object(j);
    mta_json_key(j, "parent");
    mta_json_begin_array(j);
    for (size_t i = 0; i < t->nnodes; i++)
        mta_json_i64(j, t->parent[i]);
    mta_json_end_array(j);
    mta_json_key(j, "frame");
    mta_json_begin_array(j);
    for (size_t i = 0; i < t->nnodes; i++)
        mta_json_i64(j, t->frame[i]);
    mta_json_end_array(j);
    if (t->pruned) {   /* per "other" node: the call-tree nodes merged into it */
        mta_json_key(j, "merged");
        mta_json_begin_array(j);
        for (size_t i = 0; i < t->nnodes; i++) {
            if (t->frame[i] != MTA_FT_OTHER)
                continue;
            mta_json_begin_array(j);
            mta_json_u64(j, i);
            mta_json_u64(j, t->merged[i]);
            mta_json_end_array(j);
        }
        mta_json_end_array(j);
    }
    mta_json_end_object(j);
    mta_json_key(j, "pruned");
    if (!t->pruned) {
        mta_json_null(j);
        return;
    }
    mta_json_begin_object(j);
    mta_json_key(j, "threshold_share");
    mta_json_double(j, t->threshold);
    mta_json_key(j, "nodes_merged");
    mta_json_u64(j, t->nodes_merged);
    mta_json_key(j, "nodes_kept");
    mta_json_u64(j, t->nodes_kept);
    mta_json_end_object(j);
}

/* What an output renderer wrote into a memory stream, spliced in as the
 * value of `key`; render's result when it is an error. */
typedef int render_fn(FILE *out, const mta_snapshot_t *s, const void *opts);

static int rend_report(FILE *out, const mta_snapshot_t *s, const void *o)
{
    return mta_report(out, s, o);
}

static int rend_leaks(FILE *out, const mta_snapshot_t *s, const void *o)
{
    return mta_leaks(out, s, o);
}

static int rend_cycles(FILE *out, const mta_snapshot_t *s, const void *o)
{
    return mta_cycles(out, s, o);
}

static int splice_output(mta_json_t *j, const char *key, render_fn *fn,
                         const mta_snapshot_t *s, const void *opts)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    if (!ms)
        return -ENOMEM;
    int rc = fn(ms, s, opts);
    if (fclose(ms) != 0 && rc >= 0)
        rc = -ENOMEM;
    if (rc >= 0) {   /* MTA_GATE_FAILED cannot happen: no gate is set */
        mta_json_key(j, key);
        mta_json_splice(j, buf, len);
        rc = 0;
    }
    free(buf);
    return rc;
}

static int write_snapshot(mta_json_t *j, const mta_flametree_t *t, size_t si, uint64_t *v,
                          const mta_html_opts_t *o)
{
    static const mta_group_by_t keys[] = { MTA_GROUP_LINE, MTA_GROUP_FUNCTION, MTA_GROUP_FILE,
                                           MTA_GROUP_MODULE };
    const mta_snapshot_t *s = t->snaps[si];
    int rc = 0;
    mta_json_begin_object(j);
    mta_json_key(j, "path");
    mta_json_string(j, s->path);
    mta_json_key(j, "pid");
    mta_json_u64(j, s->meta.pid);
    mta_json_key(j, "seq");
    mta_json_u64(j, s->meta.seq);
    mta_json_key(j, "trigger");
    mta_json_string(j, mtf_trigger_name(s->meta.trigger));
    mta_json_key(j, "label");
    mta_json_string(j, s->label);
    mta_json_key(j, "time_s");
    mta_json_seconds(j, since_start(s, s->meta.time_ns));
    mta_json_key(j, "values");
    mta_json_begin_object(j);
    mta_flametree_values(t, si, v);
    for (int m = 0; m < MTA_FT_NMETRICS; m++) {
        if (!mta_flametree_has(t, si, (mta_ft_metric_t)m))
            continue;
        mta_json_key(j, metric_names[m]);
        mta_json_begin_object(j);
        mta_json_key(j, "bytes");
        write_u64s(j, &v[(2 * (size_t)m) * t->nnodes], t->nnodes);
        mta_json_key(j, "blocks");
        write_u64s(j, &v[(2 * (size_t)m + 1) * t->nnodes], t->nnodes);
        mta_json_end_object(j);
    }
    mta_json_end_object(j);
    mta_json_key(j, "report");
    mta_json_begin_object(j);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && rc == 0; k++) {
        mta_report_opts_t ro = { .group_by = keys[k], .top = o->top, .format = MTA_FORMAT_JSON,
                                 .filter = o->filter, .keep_empty = true };
        rc = splice_output(j, mta_group_by_name(keys[k]), rend_report, s, &ro);
    }
    mta_json_end_object(j);
    size_t records = o->top && o->top < MTA_HTML_LEAK_RECORDS ? o->top : MTA_HTML_LEAK_RECORDS;
    mta_leaks_opts_t lo = { .kinds = MTA_LEAK_DEFAULT, .top = records, .format = MTA_FORMAT_JSON,
                            .filter = o->filter };
    mta_cycles_opts_t co = { .format = MTA_FORMAT_JSON, .top = records };
    if (rc == 0 && s->has_leaks)
        rc = splice_output(j, "leaks", rend_leaks, s, &lo);
    else if (rc == 0) {
        mta_json_key(j, "leaks");
        mta_json_null(j);
    }
    if (rc == 0 && s->has_pygraph)
        rc = splice_output(j, "cycles", rend_cycles, s, &co);
    else if (rc == 0) {
        mta_json_key(j, "cycles");
        mta_json_null(j);
    }
    mta_json_end_object(j);
    return rc;
}

/* The timeline of the newest snapshot that has one (docs/format.md,
 * TIMELINE), with that snapshot's peak. */
static void write_timeline(mta_json_t *j, const mta_snapshot_t *const *snaps, size_t n)
{
    mta_json_key(j, "timeline");
    const mta_snapshot_t *s = NULL;
    for (size_t i = 0; i < n; i++)
        if (snaps[i]->has_timeline && (!s || snaps[i]->meta.time_ns > s->meta.time_ns))
            s = snaps[i];
    if (s) {
        const mta_timeline_point_t *p = s->timeline;
        mta_json_begin_object(j);
        mta_json_key(j, "step_s");
        mta_json_seconds(j, s->timeline_step_ns);
        mta_json_key(j, "t");
        mta_json_begin_array(j);
        for (uint64_t i = 0; i < s->ntimeline; i++)
            mta_json_seconds(j, p[i].t_ns);
        mta_json_end_array(j);
        static const char *const series[] = { "heap", "blocks", "rss" };
        for (int k = 0; k < 3; k++) {
            mta_json_key(j, series[k]);
            mta_json_begin_array(j);
            for (uint64_t i = 0; i < s->ntimeline; i++)
                mta_json_u64(j, k == 0 ? p[i].heap_bytes
                                       : k == 1 ? p[i].heap_blocks : p[i].rss_bytes);
            mta_json_end_array(j);
        }
        mta_json_key(j, "peak");
        mta_json_begin_object(j);
        mta_json_key(j, "t");
        mta_json_seconds(j, since_start(s, s->totals.peak_time_ns));
        mta_json_key(j, "bytes");
        mta_json_u64(j, s->totals.peak_bytes);
        mta_json_end_object(j);
        mta_json_end_object(j);
        return;
    }
    mta_json_null(j);
}

static int write_data(FILE *out, const mta_flametree_t *t, const char *title,
                      const mta_html_opts_t *o)
{
    mta_json_t j;
    int rc = 0;
    uint64_t *v = malloc(2 * MTA_FT_NMETRICS * (t->nnodes ? t->nnodes : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    mta_json_init_html(&j, out);
    mta_json_begin_object(&j);
    mta_json_key(&j, "schema");
    mta_json_u64(&j, 1);
    mta_json_key(&j, "title");
    mta_json_string(&j, title);
    mta_json_key(&j, "generator");
    mta_json_string(&j, "memtrail html " MEMTRAIL_VERSION);
    write_frames_and_tree(&j, t);
    mta_json_key(&j, "snapshots");
    mta_json_begin_array(&j);
    for (size_t s = 0; s < t->nsnaps && rc == 0; s++)
        rc = write_snapshot(&j, t, s, v, o);
    mta_json_end_array(&j);
    write_timeline(&j, t->snaps, t->nsnaps);
    mta_json_end_object(&j);
    free(v);
    return rc;
}

/* The data, or the whole page when `page`. */
static int html_write(FILE *out, const mta_snapshot_t *const *snaps, size_t n,
                      const mta_html_opts_t *o, mta_html_info_t *info, bool page)
{
    mta_flametree_t t;
    mta_ft_opts_t fo = { .filter = o->filter, .max_nodes = o->max_nodes,
                         .min_share = o->min_share };
    char *title = page_title(snaps[0]);
    int rc = title ? mta_flametree_build(&t, snaps, n, &fo) : -ENOMEM;
    if (rc < 0)
        goto out;
    if (info)
        *info = (mta_html_info_t){ .nodes = t.nnodes, .frames = t.nframes, .pruned = t.pruned,
                                   .threshold = t.threshold, .nodes_merged = t.nodes_merged };
    for (size_t p = 0; page && p < mta_html_nparts && rc == 0; p++) {
        fwrite(mta_html_parts[p].text, 1, mta_html_parts[p].len, out);
        if (p + 1 == mta_html_nparts)
            break;
        if (mta_html_slots[p] == MTA_HTML_SLOT_DATA) {
            fputs("<script id=\"memtrail-data\" type=\"application/json\">", out);
            rc = write_data(out, &t, title, o);
            fputs("</script>", out);
        } else
            put_html_text(out, title);
    }
    if (!page)
        rc = write_data(out, &t, title, o);
    mta_flametree_free(&t);
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
out:
    free(title);
    return rc;
}

int mta_html_data(FILE *out, const mta_snapshot_t *const *snaps, size_t n,
                  const mta_html_opts_t *o, mta_html_info_t *info)
{
    return html_write(out, snaps, n, o, info, false);
}

int mta_html(FILE *out, const mta_snapshot_t *const *snaps, size_t n, const mta_html_opts_t *o,
             mta_html_info_t *info)
{
    return html_write(out, snaps, n, o, info, true);
}

void mta_html_series_defaults(size_t nsnaps, size_t *max_nodes, size_t *top)
{
    size_t n = nsnaps ? nsnaps : 1;
    *max_nodes = MTA_HTML_MAX_NODES * 2 / (n + 1);
    *top = MTA_HTML_TOP * 2 / (n + 1);
    if (*top < MTA_HTML_MIN_TOP)
        *top = MTA_HTML_MIN_TOP;
}
