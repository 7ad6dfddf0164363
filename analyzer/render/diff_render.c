/*
 * `memtrail diff` renderers: the verdict of the gate (analysis/diff.c
 * decides it), text for people, markdown for a CI job summary, JSON, and
 * signed collapsed stacks for differential flame graphs. Every form lists
 * the entries in the diff's order; --top cuts each list the same way.
 */
#include "diff.h"
#include "outputs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"

/* ---- the verdict ------------------------------------------------------------ */

static void add_part(char *msg, size_t size, const char *text)
{
    size_t n = strlen(msg);
    snprintf(msg + n, size - n, "%s%s", n ? "; " : "", text);
}

/* The verdict line: the limits passed, or else those kept, "; "-separated. */
static void diff_verdict(const mta_diff_t *d, const mta_diff_opts_t *o, mta_verdict_t *v)
{
    char part[400], a[MTA_SIZE_LEN], b[MTA_SIZE_LEN];
    const char *memory = mta_metric_memory(o->metric);
    struct { char message[1250]; } fails = { "" }, oks = { "" };
    mta_diff_gate_t g;
    mta_diff_gate(d, o, &g);
    *v = (mta_verdict_t){ .set = g.set, .failed = g.failed };
    if (o->growth_set) {
        mta_format_bytes(d->bytes_diff, true, a, sizeof(a));
        mta_format_bytes((int64_t)o->growth, false, b, sizeof(b));
        snprintf(part, sizeof(part), "%s changed by %s, %s the limit of %s (--fail-on-growth)",
                 memory, a, g.growth_failed ? "above" : "within", b);
        add_part(g.growth_failed ? fails.message : oks.message, sizeof(fails.message), part);
    }
    if (o->site_set) {
        mta_format_bytes((int64_t)o->site_growth, false, b, sizeof(b));
        if (g.worst) {
            mta_format_bytes(g.worst->bytes_diff, true, a, sizeof(a));
            snprintf(part, sizeof(part), "%zu %s grew by more than %s (--fail-on-growth-per-site), the most %s at %s",
                     g.sites_over, mta_plural(g.sites_over, "site", "sites"), b, a,
                     mta_diff_key(d, g.worst));
        } else {
            snprintf(part, sizeof(part), "no site grew by more than %s (--fail-on-growth-per-site)", b);
        }
        add_part(g.worst ? fails.message : oks.message, sizeof(fails.message), part);
    }
    if (o->blocks_set) {
        snprintf(part, sizeof(part), "%s blocks changed by %+" PRId64 ", %s the limit of %" PRIu64 " (--fail-on-blocks)",
                 o->metric == MTA_METRIC_LIVE ? "live" : o->metric == MTA_METRIC_PEAK
                                                   ? "the peak's" : "allocated",
                 d->blocks_diff, g.blocks_failed ? "above" : "within", o->block_growth);
        add_part(g.blocks_failed ? fails.message : oks.message, sizeof(fails.message), part);
    }
    if (o->peak_growth_set) {
        mta_format_bytes(d->peak_diff, true, a, sizeof(a));
        mta_format_size(o->peak_growth, b, sizeof(b));
        snprintf(part, sizeof(part), "the peak changed by %s, %s the limit of %s (--fail-on-peak-growth)",
                 a, g.peak_failed ? "above" : "within", b);
        add_part(g.peak_failed ? fails.message : oks.message, sizeof(fails.message), part);
    }
    snprintf(v->message, sizeof(v->message), "%s: %s", v->failed ? "FAIL" : "ok",
             v->failed ? fails.message : oks.message);
}

/* "A in N blocks -> B in M blocks: " of the totals; the change is the
 * caller's (it may be painted). */
static void totals_line(char *buf, size_t len, const mta_diff_t *d)
{
    char a[MTA_SIZE_LEN], b[MTA_SIZE_LEN], oc[32], nc[32];
    mta_format_size(d->old_bytes, a, sizeof(a));
    mta_format_size(d->new_bytes, b, sizeof(b));
    mta_format_count(d->old_blocks, oc, sizeof(oc));
    mta_format_count(d->new_blocks, nc, sizeof(nc));
    snprintf(buf, len, "%s in %s %s -> %s in %s %s: ", a, oc, mta_blocks_word(d->old_blocks), b,
             nc, mta_blocks_word(d->new_blocks));
}

/* "+1,234 B (+1.2 KiB), +3 blocks": a change in bytes, painted by its
 * sign, and in blocks. */
static void put_change(FILE *out, int64_t bytes, int64_t blocks)
{
    char a[MTA_SIZE_LEN];
    mta_format_bytes(bytes, true, a, sizeof(a));
    mta_put_change(out, bytes, a);
    fprintf(out, ", %+" PRId64 " %s", blocks, mta_blocks_word(mta_mag(blocks)));
}

/* ---- text ----------------------------------------------------------------- */

/* The types that grew, as objgraph's show_growth prints them. */
static void text_types(FILE *out, const mta_diff_t *d, size_t top)
{
    size_t shown = top && top < d->ntypes ? top : d->ntypes, width = 20;
    if (d->ntypes == 0) {
        fputs("\nPython objects (gc-tracked) by type: none grew\n", out);
        return;
    }
    for (size_t i = 0; i < shown; i++)
        if (strlen(d->types[i].type) > width)
            width = strlen(d->types[i].type);
    fputs("\nPython objects (gc-tracked) by type, grown:\n", out);
    for (size_t i = 0; i < shown; i++) {
        const mta_type_growth_t *t = &d->types[i];
        fputs("  ", out);
        mta_put_str(out, t->type);
        fprintf(out, "%*s %9" PRIu64 " %+9" PRId64 "\n", (int)(width - strlen(t->type)), "",
                t->count, t->delta);
    }
    if (shown < d->ntypes)
        fprintf(out, "  ... %zu more types grew (--top 0 shows all)\n", d->ntypes - shown);
}

/* A sampled snapshot against an exact one: "old is sampled (estimates), new
 * exact: ...", or NULL when both are of one kind. */
static const char *mixed_note(const mta_diff_t *d)
{
    bool o = d->old->snap->has_sampling, n = d->new->snap->has_sampling;
    if (o == n)
        return NULL;
    return o ? "old is sampled (estimates), new exact: the changes compare estimates with "
               "exact figures"
             : "old is exact, new sampled (estimates): the changes compare estimates with "
               "exact figures";
}

static int diff_text(FILE *out, const mta_diff_t *d, const mta_diff_opts_t *o, const mta_verdict_t *gt)
{
    size_t shown = o->top && o->top < d->nentries ? o->top : d->nentries;
    char line[512];
    mta_put_snapshot_header(out, d->old->snap, MTA_HEADER_ONE_LINE, "old");
    mta_put_snapshot_header(out, d->new->snap, MTA_HEADER_ONE_LINE, "new");
    if (mixed_note(d))
        fprintf(out, "note: %s\n", mixed_note(d));
    totals_line(line, sizeof(line), d);
    fprintf(out, "\n%s%s: %s", o->metric == MTA_METRIC_PEAK ? "at the peak"
                                : mta_metric_name(o->metric),
            d->new->filtered ? " (selected by the filters)" : "", line);
    put_change(out, d->bytes_diff, d->blocks_diff);
    fputc('\n', out);
    if (o->metric != MTA_METRIC_PEAK) {
        char a[MTA_SIZE_LEN], b[MTA_SIZE_LEN], c[MTA_SIZE_LEN];
        mta_format_size(d->old_peak, a, sizeof(a));
        mta_format_size(d->new_peak, b, sizeof(b));
        mta_format_bytes(d->peak_diff, true, c, sizeof(c));
        fprintf(out, "peak%s: %s -> %s: ", d->new->filtered ? " (selected by the filters)" : "",
                a, b);
        mta_put_change(out, d->peak_diff, c);
        fputc('\n', out);
    }
    fprintf(out, "\n%s", mta_paint_on(MTA_PAINT_HEADING));
    if (d->nentries == 0)
        fprintf(out, "no %s in either snapshot", mta_metric_memory(o->metric));
    else if (shown < d->nentries)
        fprintf(out, "top %zu of %zu %s by size of change:", shown, d->nentries,
                mta_group_by_plural(o->group_by));
    else
        fprintf(out, "%zu %s by size of change:", d->nentries,
                mta_plural(d->nentries, mta_group_by_name(o->group_by),
                           mta_group_by_plural(o->group_by)));
    fprintf(out, "%s\n", mta_paint_off());
    for (size_t i = 0; i < shown; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        const mta_group_entry_t *ge;
        mta_group_t *g = mta_diff_entry_group(d, e, &ge);
        char b[MTA_SIZE_LEN + 40];
        mta_format_bytes_in(e->bytes, e->blocks, b, sizeof(b));
        fprintf(out, "\n#%zu  ", i + 1);
        put_change(out, e->bytes_diff, e->blocks_diff);
        fprintf(out, ": now %s%s\n", b, !e->old ? " (new)" : !e->new ? " (gone)" : "");
        if (o->group_by != MTA_GROUP_STACK) {
            fputs("    ", out);
            if (mta_put_site(out, g, ge) < 0)
                return -ENOMEM;
            fputc('\n', out);
            continue;
        }
        if (mta_put_stack(out, g, ge->frames, ge->nframes, false, false) < 0)
            return -ENOMEM;
    }
    if (shown < d->nentries)
        fprintf(out, "\n... %zu more (--top 0 shows all)\n", d->nentries - shown);
    if (d->has_types)
        text_types(out, d, o->top);
    mta_put_verdict(out, gt);
    return 0;
}

/* ---- markdown (a CI job summary) -------------------------------------------- */

/* Text inside a table cell: '|' escaped, control characters and backticks
 * replaced, so the table stays one row per line. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '|')
            fputs("\\|", out);
        else if (c == '`')
            fputc('\'', out);
        else
            fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
    }
}

static int md_site(FILE *out, const mta_diff_t *d, const mta_diff_entry_t *e)
{
    const mta_group_entry_t *ge;
    mta_group_t *g = mta_diff_entry_group(d, e, &ge);
    uint32_t f = mta_entry_key_frame(g, ge);
    if (g->by == MTA_GROUP_FILE || g->by == MTA_GROUP_MODULE || f == MTSNAP_NONE) {
        fputc('`', out);
        const char *key = mta_diff_key(d, e);
        if (!key)
            return -ENOMEM;
        md_cell(out, key);
        fputc('`', out);
        return 0;
    }
    const mta_frame_t *fr = &g->snap->frames[f];
    char *name = mta_frame_name(g, f);
    if (!name)
        return -ENOMEM;
    if (fr->file[0]) {
        fputc('`', out);
        mta_put_location(out, fr, md_cell);
        fputs("` in ", out);
    }
    fputc('`', out);
    md_cell(out, name);
    fputc('`', out);
    mta_put_module(out, g->snap, f, false, md_cell);
    free(name);
    return 0;
}

/* The types that grew, as a small table (nothing without both graphs). */
static void md_types(FILE *out, const mta_diff_t *d, size_t top)
{
    size_t shown = top && top < d->ntypes ? top : d->ntypes;
    if (!d->has_types)
        return;
    if (d->ntypes == 0) {
        fputs("\nPython objects (gc-tracked) by type: none grew.\n", out);
        return;
    }
    fputs("\nPython objects (gc-tracked) by type, grown:\n\n| type | objects | change |\n"
          "|---|---:|---:|\n", out);
    for (size_t i = 0; i < shown; i++) {
        fputs("| `", out);
        md_cell(out, d->types[i].type);
        fprintf(out, "` | %" PRIu64 " | %+" PRId64 " |\n", d->types[i].count, d->types[i].delta);
    }
    if (shown < d->ntypes)
        fprintf(out, "\n%zu more types grew.\n", d->ntypes - shown);
}

static int diff_markdown(FILE *out, const mta_diff_t *d, const mta_diff_opts_t *o,
                         const mta_verdict_t *gt)
{
    size_t shown = o->top && o->top < d->nentries ? o->top : d->nentries;
    char a[MTA_SIZE_LEN], b[MTA_SIZE_LEN], c[MTA_SIZE_LEN];
    const char *mark = !gt->set ? "" : gt->failed ? ":x: " : ":white_check_mark: ";
    mta_format_bytes(d->bytes_diff, true, a, sizeof(a));
    fprintf(out, "### %smemtrail: %s %s %s, %+" PRId64 " %s\n\n", mark,
            mta_metric_memory(o->metric),
            d->bytes_diff > 0 ? "grew by" : d->bytes_diff < 0 ? "shrank by" : "changed by", a,
            d->blocks_diff, mta_blocks_word(mta_mag(d->blocks_diff)));
    if (gt->set) {
        fputs(gt->failed ? "**" : "", out);
        md_cell(out, gt->message);
        fputs(gt->failed ? "**\n\n" : "\n\n", out);
    }
    if (mixed_note(d))
        fprintf(out, "Note: %s.\n\n", mixed_note(d));
    else if (d->new->snap->has_sampling)
        fputs("Note: both snapshots are sampled: the figures are estimates.\n\n", out);
    mta_format_size(d->old_bytes, b, sizeof(b));
    mta_format_size(d->new_bytes, c, sizeof(c));
    fprintf(out, "%s%s: %s in %" PRIu64 " %s (old) -> %s in %" PRIu64 " %s (new).\n",
            o->metric == MTA_METRIC_PEAK ? "At the peak" : o->metric == MTA_METRIC_ALLOCATED
                                                            ? "Allocated" : "Live",
            d->new->filtered ? " (selected by the filters)" : "", b, d->old_blocks,
            mta_blocks_word(d->old_blocks), c, d->new_blocks, mta_blocks_word(d->new_blocks));
    if (d->nentries == 0) {
        md_types(out, d, o->top);
        return 0;
    }
    fprintf(out, "\n| # | change | blocks | %s now | %s |\n|---:|---:|---:|---:|---|\n",
            mta_metric_name(o->metric),
            o->group_by == MTA_GROUP_STACK || o->group_by == MTA_GROUP_LINE ? "site"
                                                                           : mta_group_by_name(o->group_by));
    for (size_t i = 0; i < shown; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        mta_format_bytes(e->bytes_diff, true, a, sizeof(a));
        mta_format_size(e->bytes, b, sizeof(b));
        fprintf(out, "| %zu | %s | %+" PRId64 " | %s | ", i + 1, a, e->blocks_diff, b);
        if (md_site(out, d, e) < 0)
            return -ENOMEM;
        fputs(" |\n", out);
    }
    if (shown < d->nentries)
        fprintf(out, "\n%zu more %s changed less (or not at all).\n", d->nentries - shown,
                mta_group_by_plural(o->group_by));
    md_types(out, d, o->top);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static int diff_json(FILE *out, const mta_diff_t *d, const mta_diff_opts_t *o, const mta_verdict_t *gt)
{
    size_t shown = o->top && o->top < d->nentries ? o->top : d->nentries;
    mta_json_t j;
    mta_json_init(&j, out);
    mta_json_begin_object(&j);
    mta_json_key(&j, "old");
    mta_json_snapshot(&j, d->old->snap);
    mta_json_key(&j, "new");
    mta_json_snapshot(&j, d->new->snap);
    mta_json_key(&j, "group_by");
    mta_json_string(&j, mta_group_by_name(o->group_by));
    mta_json_key(&j, "metric");
    mta_json_string(&j, mta_metric_name(o->metric));
    mta_json_key(&j, "filtered");
    mta_json_bool(&j, d->new->filtered);
    mta_json_key(&j, "estimated");
    mta_json_bool(&j, d->old->snap->has_sampling || d->new->snap->has_sampling);
    const struct { const char *k; uint64_t v; } totals[] = {
        { "old_bytes", d->old_bytes },   { "old_blocks", d->old_blocks },
        { "new_bytes", d->new_bytes },   { "new_blocks", d->new_blocks },
        { "old_peak_bytes", d->old_peak }, { "new_peak_bytes", d->new_peak },
    };
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        mta_json_key(&j, totals[i].k);
        mta_json_u64(&j, totals[i].v);
    }
    const struct { const char *k; int64_t v; } changes[] = {
        { "bytes_diff", d->bytes_diff }, { "blocks_diff", d->blocks_diff },
        { "peak_bytes_diff", d->peak_diff },
    };
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        mta_json_key(&j, changes[i].k);
        mta_json_i64(&j, changes[i].v);
    }
    mta_json_verdict_begin(&j, gt);
    if (gt->set) {
        const struct { const char *k; bool set; uint64_t v; } lim[] = {
            { "fail_on_growth", o->growth_set, o->growth },
            { "fail_on_growth_per_site", o->site_set, o->site_growth },
            { "fail_on_blocks", o->blocks_set, o->block_growth },
            { "fail_on_peak_growth", o->peak_growth_set, o->peak_growth },
        };
        for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
            mta_json_key(&j, lim[i].k);
            if (lim[i].set)
                mta_json_u64(&j, lim[i].v);
            else
                mta_json_null(&j);
        }
    }
    mta_json_verdict_end(&j, gt);
    mta_json_key(&j, "top");
    mta_json_u64(&j, o->top);
    mta_json_key(&j, "total_entries");
    mta_json_u64(&j, d->nentries);
    mta_json_key(&j, "entries");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < shown; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        const mta_group_entry_t *ge;
        mta_group_t *g = mta_diff_entry_group(d, e, &ge);
        mta_json_begin_object(&j);
        const char *key = mta_diff_key(d, e);
        if (!key)
            return -ENOMEM;
        mta_json_key(&j, "key");
        mta_json_string(&j, key);
        mta_json_key(&j, "bytes");
        mta_json_u64(&j, e->bytes);
        mta_json_key(&j, "bytes_diff");
        mta_json_i64(&j, e->bytes_diff);
        mta_json_key(&j, "blocks");
        mta_json_u64(&j, e->blocks);
        mta_json_key(&j, "blocks_diff");
        mta_json_i64(&j, e->blocks_diff);
        mta_json_key(&j, "status");
        mta_json_string(&j, !e->old ? "new" : !e->new ? "gone" : "both");
        mta_json_key(&j, "frames");
        if (mta_json_frames(&j, g, ge->frames, ge->nframes, false) < 0)
            return -ENOMEM;
        mta_json_end_object(&j);
    }
    mta_json_end_array(&j);
    if (d->has_types) {
        size_t nt = o->top && o->top < d->ntypes ? o->top : d->ntypes;
        mta_json_key(&j, "types_grown");
        mta_json_begin_array(&j);
        for (size_t i = 0; i < nt; i++) {
            mta_json_begin_object(&j);
            mta_json_key(&j, "type");
            mta_json_string(&j, d->types[i].type);
            mta_json_key(&j, "count");
            mta_json_u64(&j, d->types[i].count);
            mta_json_key(&j, "delta");
            mta_json_i64(&j, d->types[i].delta);
            mta_json_end_object(&j);
        }
        mta_json_end_array(&j);
    }
    mta_json_end_object(&j);
    return 0;
}

/* The two-count collapsed form of differential flame graphs, as FlameGraph's
 * difffolded.pl writes it and flamegraph.pl reads it: "root;...;leaf OLD
 * NEW", the metric's bytes in each snapshot, one line per group (unchanged
 * ones too), in the diff's order. */
static int diff_collapsed(FILE *out, const mta_diff_t *d, const mta_diff_opts_t *o)
{
    char **lnew = mta_collapsed_labels(d->new), **lold = mta_collapsed_labels(d->old);
    int rc = lnew && lold ? 0 : -ENOMEM;
    for (size_t i = 0; i < d->nentries && rc == 0; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        const mta_group_entry_t *ge;
        mta_group_t *g = mta_diff_entry_group(d, e, &ge);
        rc = mta_collapsed_stack(out, g, ge, g == d->new ? lnew : lold);
        fprintf(out, " %" PRIu64 " %" PRIu64 "\n", e->old ? mta_entry_bytes(e->old, o->metric) : 0,
                e->bytes);
    }
    mta_collapsed_labels_free(d->new, lnew);
    mta_collapsed_labels_free(d->old, lold);
    return rc;
}

int mta_diff(FILE *out, const mta_snapshot_t *old, const mta_snapshot_t *new,
             const mta_diff_opts_t *o)
{
    mta_diff_t *d = NULL;
    mta_verdict_t gt;
    int rc = mta_diff_compute(old, new, o, &d);
    if (rc < 0)
        return rc;
    diff_verdict(d, o, &gt);
    switch (o->format) {
    case MTA_FORMAT_JSON: rc = diff_json(out, d, o, &gt); break;
    case MTA_FORMAT_MARKDOWN: rc = diff_markdown(out, d, o, &gt); break;
    case MTA_FORMAT_COLLAPSED:
        rc = diff_collapsed(out, d, o);
        if (gt.set)   /* the collapsed lines leave no room for it on stdout */
            fprintf(stderr, "memtrail: diff: verdict: %s\n", gt.message);
        break;
    default: rc = diff_text(out, d, o, &gt); break;
    }
    rc = mta_render_end(out, rc, &gt);
    mta_diff_free(d);
    return rc;
}
