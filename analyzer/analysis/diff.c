/*
 * `memtrail diff OLD NEW`: tracemalloc's Snapshot.compare_to over memtrail
 * snapshots, and the CI gate on the result.
 *
 * Both snapshots are grouped with portable keys (group.c, MTA_GROUP_PORTABLE):
 * keys are built from symbolized frames (function, file, line, module
 * basename), never from addresses, so two runs of a program match whatever
 * their pids, load addresses or stack ids. The two key-sorted groupings are
 * merge-joined: a group only in NEW has its bytes as its diff, a group only in
 * OLD appears with bytes 0 and a negative diff, groups in both with their
 * difference (0 included, as compare_to does). The order is compare_to's
 * (|size diff|, size, |count diff|, count, all descending) with the key
 * ascending last, so every output is reproducible byte for byte.
 *
 * When both snapshots hold a Python object graph, the objects are also
 * counted per type name (objgraph's show_growth): each side's counts are
 * sorted by name and merge-joined; the types whose count grew are listed by
 * growth, then name. Without both graphs nothing of this is written.
 */
#include "diff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "demangle.h"
#include "export.h"
#include "json.h"

static uint64_t mag(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/* The group and group entry an entry shows: NEW's, or OLD's when gone. */
static mta_group_t *entry_group(const mta_diff_t *d, const mta_diff_entry_t *e,
                                const mta_group_entry_t **ge)
{
    *ge = e->new ? e->new : e->old;
    return e->new ? d->new : d->old;
}

const char *mta_diff_key(const mta_diff_t *d, const mta_diff_entry_t *e)
{
    const mta_group_entry_t *ge;
    mta_group_t *g = entry_group(d, e, &ge);
    return mta_group_key(g, ge);
}

static int cmp_diff(const void *a, const void *b, void *ctx)
{
    const mta_diff_t *d = ctx;
    const mta_diff_entry_t *x = a, *y = b;
    if (mag(x->bytes_diff) != mag(y->bytes_diff))
        return mag(x->bytes_diff) > mag(y->bytes_diff) ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (mag(x->blocks_diff) != mag(y->blocks_diff))
        return mag(x->blocks_diff) > mag(y->blocks_diff) ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    const mta_group_entry_t *gx, *gy;
    mta_group_t *g1 = entry_group(d, x, &gx), *g2 = entry_group(d, y, &gy);
    return mta_group_entry_cmp(g1, gx, g2, gy);
}

static int cmp_entry_key(const void *a, const void *b, void *g)
{
    const mta_group_entry_t *const *x = a, *const *y = b;
    return mta_group_entry_cmp(g, *x, g, *y);
}

/* The group's entries sorted by key (keys are unique within a group). */
static const mta_group_entry_t **by_key(mta_group_t *g)
{
    const mta_group_entry_t **v = malloc((g->nentries ? g->nentries : 1) * sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < g->nentries; i++)
        v[i] = &g->entries[i];
    qsort_r(v, g->nentries, sizeof(*v), cmp_entry_key, g);
    return v;
}

/* ---- Python objects by type ------------------------------------------------ */

typedef struct type_count {
    const char *name;
    uint64_t count;
} type_count_t;

static int cmp_type_name(const void *a, const void *b)
{
    return strcmp(((const type_count_t *)a)->name, ((const type_count_t *)b)->name);
}

/* The graph's objects counted per type name, sorted by name (names equal
 * under different string indices are merged). NULL on ENOMEM. */
static type_count_t *count_types(const mta_snapshot_t *s, size_t *n)
{
    uint64_t *per = calloc(s->nstrings ? s->nstrings : 1, sizeof(*per));
    type_count_t *v = NULL;
    size_t k = 0;
    *n = 0;
    if (!per)
        return NULL;
    for (uint32_t i = 0; i < s->pygraph.objects; i++)
        if (per[s->pyobjs[i].type]++ == 0)
            k++;
    v = malloc((k ? k : 1) * sizeof(*v));
    if (v) {
        k = 0;
        for (uint32_t i = 0; i < s->nstrings; i++)
            if (per[i])
                v[k++] = (type_count_t){ s->strings[i], per[i] };
        qsort(v, k, sizeof(*v), cmp_type_name);
        for (size_t i = 0; i < k; i++) {
            if (*n > 0 && strcmp(v[*n - 1].name, v[i].name) == 0)
                v[*n - 1].count += v[i].count;
            else
                v[(*n)++] = v[i];
        }
    }
    free(per);
    return v;
}

static int cmp_growth(const void *a, const void *b)
{
    const mta_type_growth_t *x = a, *y = b;
    if (x->delta != y->delta)
        return x->delta > y->delta ? -1 : 1;
    return strcmp(x->type, y->type);
}

/* d->types: the types with more objects in NEW than in OLD. */
static int types_grown(mta_diff_t *d, const mta_snapshot_t *old, const mta_snapshot_t *new)
{
    size_t na, nb, i = 0, k = 0;
    type_count_t *a = count_types(old, &na), *b = count_types(new, &nb);
    int rc = -ENOMEM;
    d->types = malloc((nb ? nb : 1) * sizeof(*d->types));
    if (!a || !b || !d->types)
        goto out;
    while (k < nb) {
        int c = i == na ? 1 : strcmp(a[i].name, b[k].name);
        if (c < 0) {
            i++;   /* only in OLD: it shrank */
            continue;
        }
        uint64_t before = c == 0 ? a[i++].count : 0;
        if (b[k].count > before)
            d->types[d->ntypes++] = (mta_type_growth_t){
                .type = b[k].name, .count = b[k].count,
                .delta = (int64_t)(b[k].count - before) };
        k++;
    }
    qsort(d->types, d->ntypes, sizeof(*d->types), cmp_growth);
    d->has_types = true;
    rc = 0;
out:
    free(a);
    free(b);
    return rc;
}

int mta_diff_compute(const mta_snapshot_t *old, const mta_snapshot_t *new,
                     const mta_diff_opts_t *o, mta_diff_t **out)
{
    const mta_group_entry_t **a = NULL, **b = NULL;
    int rc = -ENOMEM;
    mta_diff_t *d = calloc(1, sizeof(*d));
    *out = NULL;
    if (!d)
        return -ENOMEM;
    mta_intern_init(&d->labels);
    if ((rc = mta_group_shared(old, o->group_by, MTA_GROUP_PORTABLE, o->filter, &d->labels,
                               &d->old)) < 0 ||
        (rc = mta_group_shared(new, o->group_by, MTA_GROUP_PORTABLE, o->filter, &d->labels,
                               &d->new)) < 0)
        goto fail;
    rc = -ENOMEM;
    size_t na = d->old->nentries, nb = d->new->nentries;
    a = by_key(d->old);
    b = by_key(d->new);
    d->entries = calloc(na + nb + 1, sizeof(*d->entries));
    if (!a || !b || !d->entries)
        goto fail;
    size_t i = 0, k = 0;
    while (i < na || k < nb) {
        int c = i == na ? 1 : k == nb ? -1 : mta_group_entry_cmp(d->old, a[i], d->new, b[k]);
        mta_diff_entry_t *e = &d->entries[d->nentries++];
        e->old = c <= 0 ? a[i++] : NULL;
        e->new = c >= 0 ? b[k++] : NULL;
        e->bytes = e->new ? e->new->bytes : 0;
        e->blocks = e->new ? e->new->blocks : 0;
        e->bytes_diff = (int64_t)e->bytes - (int64_t)(e->old ? e->old->bytes : 0);
        e->blocks_diff = (int64_t)e->blocks - (int64_t)(e->old ? e->old->blocks : 0);
    }
    qsort_r(d->entries, d->nentries, sizeof(*d->entries), cmp_diff, d);
    d->bytes_diff = (int64_t)d->new->bytes - (int64_t)d->old->bytes;
    d->blocks_diff = (int64_t)d->new->blocks - (int64_t)d->old->blocks;
    if (old->has_pygraph && new->has_pygraph && (rc = types_grown(d, old, new)) < 0)
        goto fail;
    free(a);
    free(b);
    *out = d;
    return 0;
fail:
    free(a);
    free(b);
    mta_diff_free(d);
    return rc;
}

void mta_diff_free(mta_diff_t *d)
{
    if (!d)
        return;
    mta_group_free(d->old);
    mta_group_free(d->new);
    mta_intern_free(&d->labels);
    free(d->entries);
    free(d->types);
    free(d);
}

/* ---- the gate ------------------------------------------------------------- */

typedef struct gate {
    bool set, failed;
    char message[1300];
} gate_t;

static void add_part(char *msg, size_t size, const char *text)
{
    size_t n = strlen(msg);
    snprintf(msg + n, size - n, "%s%s", n ? "; " : "", text);
}

static void diff_gate(const mta_diff_t *d, const mta_diff_opts_t *o, gate_t *g)
{
    char part[400], a[64], b[64];
    struct { char message[1250]; } fails = { "" }, oks = { "" };
    *g = (gate_t){ .set = o->growth_set || o->site_set || o->blocks_set };
    if (o->growth_set) {
        bool f = d->bytes_diff > 0 && (uint64_t)d->bytes_diff > o->growth;
        mta_format_bytes(d->bytes_diff, true, a, sizeof(a));
        mta_format_bytes((int64_t)o->growth, false, b, sizeof(b));
        snprintf(part, sizeof(part), "live memory changed by %s, %s the limit of %s (--fail-on-growth)",
                 a, f ? "above" : "within", b);
        add_part(f ? fails.message : oks.message, sizeof(fails.message), part);
    }
    if (o->site_set) {
        size_t over = 0;
        const mta_diff_entry_t *worst = NULL;
        for (size_t i = 0; i < d->nentries; i++) {
            const mta_diff_entry_t *e = &d->entries[i];
            if (e->bytes_diff > 0 && (uint64_t)e->bytes_diff > o->site_growth) {
                over++;
                if (!worst || e->bytes_diff > worst->bytes_diff)
                    worst = e;
            }
        }
        mta_format_bytes((int64_t)o->site_growth, false, b, sizeof(b));
        if (worst) {
            mta_format_bytes(worst->bytes_diff, true, a, sizeof(a));
            snprintf(part, sizeof(part), "%zu %s grew by more than %s (--fail-on-growth-per-site), the most %s at %s",
                     over, over == 1 ? "site" : "sites", b, a, mta_diff_key(d, worst));
        } else {
            snprintf(part, sizeof(part), "no site grew by more than %s (--fail-on-growth-per-site)", b);
        }
        add_part(worst ? fails.message : oks.message, sizeof(fails.message), part);
    }
    if (o->blocks_set) {
        bool f = d->blocks_diff > 0 && (uint64_t)d->blocks_diff > o->block_growth;
        snprintf(part, sizeof(part), "live blocks changed by %+" PRId64 ", %s the limit of %" PRIu64 " (--fail-on-blocks)",
                 d->blocks_diff, f ? "above" : "within", o->block_growth);
        add_part(f ? fails.message : oks.message, sizeof(fails.message), part);
    }
    g->failed = fails.message[0] != '\0';
    snprintf(g->message, sizeof(g->message), "%s: %s", g->failed ? "FAIL" : "ok",
             g->failed ? fails.message : oks.message);
}

/* "+1,234 B (+1.21 KiB) (+3 blocks)" style summary of the totals. */
static void totals_line(char *buf, size_t len, const mta_diff_t *d)
{
    char a[64], b[64], c[64], oc[32], nc[32];
    mta_format_bytes((int64_t)d->old->bytes, false, a, sizeof(a));
    mta_format_bytes((int64_t)d->new->bytes, false, b, sizeof(b));
    mta_format_bytes(d->bytes_diff, true, c, sizeof(c));
    mta_format_count(d->old->blocks, oc, sizeof(oc));
    mta_format_count(d->new->blocks, nc, sizeof(nc));
    snprintf(buf, len, "%s in %s %s -> %s in %s %s: %s, %+" PRId64 " %s", a, oc,
             mta_blocks_word(d->old->blocks), b, nc, mta_blocks_word(d->new->blocks), c, d->blocks_diff,
             mta_blocks_word(mag(d->blocks_diff)));
}

/* The innermost user frame of an entry (its key frame), or MTSNAP_NONE. */
static uint32_t entry_key_frame(mta_group_t *g, const mta_group_entry_t *ge)
{
    if (ge->nframes == 0)
        return MTSNAP_NONE;
    if (g->by != MTA_GROUP_STACK)
        return ge->frames[0];
    for (uint32_t i = 0; i < ge->nframes; i++)
        if (!mta_frame_is_allocator(g, ge->frames[i]))
            return ge->frames[i];
    return ge->frames[0];
}

/* ---- text ----------------------------------------------------------------- */

static void snapshot_line(FILE *out, const char *what, const mta_snapshot_t *s)
{
    char tm[48];
    mta_format_time(s->meta.time_ns, 0, tm, sizeof(tm));
    fprintf(out, "%s: ", what);
    mta_put_str(out, s->path);
    fprintf(out, " (pid %" PRIu32 ", #%" PRIu32 " %s, %s", s->meta.pid, s->meta.seq,
            mta_trigger_name(s->meta.trigger), tm);
    if (s->label[0]) {
        fputs(", label ", out);
        mta_put_str(out, s->label);
    }
    fputs(")\n", out);
}

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

static int diff_text(FILE *out, const mta_diff_t *d, const mta_diff_opts_t *o, const gate_t *gt)
{
    size_t shown = o->top && o->top < d->nentries ? o->top : d->nentries;
    char line[512];
    snapshot_line(out, "old", d->old->snap);
    snapshot_line(out, "new", d->new->snap);
    totals_line(line, sizeof(line), d);
    fprintf(out, "\nlive%s: %s\n", d->new->filtered ? " (selected by the filters)" : "", line);
    if (d->nentries == 0)
        fputs("\nno live memory in either snapshot\n", out);
    else if (shown < d->nentries)
        fprintf(out, "\ntop %zu of %zu %s by size of change:\n", shown, d->nentries,
                mta_group_by_plural(o->group_by));
    else
        fprintf(out, "\n%zu %s by size of change:\n", d->nentries,
                d->nentries == 1 ? mta_group_by_name(o->group_by) : mta_group_by_plural(o->group_by));
    for (size_t i = 0; i < shown; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        const mta_group_entry_t *ge;
        mta_group_t *g = entry_group(d, e, &ge);
        char a[64], b[64], c[32];
        mta_format_bytes(e->bytes_diff, true, a, sizeof(a));
        mta_format_bytes((int64_t)e->bytes, false, b, sizeof(b));
        mta_format_count(e->blocks, c, sizeof(c));
        fprintf(out, "\n#%zu  %s, %+" PRId64 " %s: now %s in %s %s%s\n", i + 1, a,
                e->blocks_diff, mta_blocks_word(mag(e->blocks_diff)), b, c, mta_blocks_word(e->blocks),
                !e->old ? " (new)" : !e->new ? " (gone)" : "");
        if (o->group_by != MTA_GROUP_STACK) {
            fputs("    ", out);
            if (mta_put_site(out, g, ge) < 0)
                return -ENOMEM;
            fputc('\n', out);
            continue;
        }
        if (ge->nframes == 0)
            fputs("    [unknown stack]\n", out);
        for (uint32_t k = 0; k < ge->nframes; k++) {
            fputs(k == 0 ? "    at " : "       ", out);
            if (mta_put_frame(out, g, ge->frames[k], 1) < 0)
                return -ENOMEM;
            fputc('\n', out);
        }
    }
    if (shown < d->nentries)
        fprintf(out, "\n... %zu more (--top 0 shows all)\n", d->nentries - shown);
    if (d->has_types)
        text_types(out, d, o->top);
    if (gt->set)
        fprintf(out, "\nverdict: %s\n", gt->message);
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
    mta_group_t *g = entry_group(d, e, &ge);
    uint32_t f = entry_key_frame(g, ge);
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
        md_cell(out, fr->file);
        if (fr->line)
            fprintf(out, ":%" PRIu32, fr->line);
        fputs("` in ", out);
    }
    fputc('`', out);
    md_cell(out, name);
    fputc('`', out);
    if (fr->module != MTSNAP_NONE) {
        fputs(" [", out);
        md_cell(out, mta_basename(g->snap->modules[fr->module].path));
        fputc(']', out);
    }
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
                         const gate_t *gt)
{
    size_t shown = o->top && o->top < d->nentries ? o->top : d->nentries;
    char a[64], b[64], c[64];
    const char *mark = !gt->set ? "" : gt->failed ? ":x: " : ":white_check_mark: ";
    mta_format_bytes(d->bytes_diff, true, a, sizeof(a));
    fprintf(out, "### %smemtrail: live memory %s %s, %+" PRId64 " %s\n\n", mark,
            d->bytes_diff > 0 ? "grew by" : d->bytes_diff < 0 ? "shrank by" : "changed by", a,
            d->blocks_diff, mta_blocks_word(mag(d->blocks_diff)));
    if (gt->set) {
        fputs(gt->failed ? "**" : "", out);
        md_cell(out, gt->message);
        fputs(gt->failed ? "**\n\n" : "\n\n", out);
    }
    mta_format_bytes((int64_t)d->old->bytes, false, b, sizeof(b));
    mta_format_bytes((int64_t)d->new->bytes, false, c, sizeof(c));
    fprintf(out, "Live%s: %s in %" PRIu64 " %s (old) -> %s in %" PRIu64 " %s (new).\n",
            d->new->filtered ? " (selected by the filters)" : "", b, d->old->blocks,
            mta_blocks_word(d->old->blocks), c, d->new->blocks, mta_blocks_word(d->new->blocks));
    if (d->nentries == 0) {
        md_types(out, d, o->top);
        return 0;
    }
    fprintf(out, "\n| # | change | blocks | live now | %s |\n|---:|---:|---:|---:|---|\n",
            o->group_by == MTA_GROUP_STACK || o->group_by == MTA_GROUP_LINE ? "site"
                                                                           : mta_group_by_name(o->group_by));
    for (size_t i = 0; i < shown; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        mta_format_bytes(e->bytes_diff, true, a, sizeof(a));
        mta_format_bytes((int64_t)e->bytes, false, b, sizeof(b));
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

static int diff_json(FILE *out, const mta_diff_t *d, const mta_diff_opts_t *o, const gate_t *gt)
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
    mta_json_key(&j, "filtered");
    mta_json_bool(&j, d->new->filtered);
    const struct { const char *k; int64_t v; } totals[] = {
        { "old_bytes", (int64_t)d->old->bytes }, { "old_blocks", (int64_t)d->old->blocks },
        { "new_bytes", (int64_t)d->new->bytes }, { "new_blocks", (int64_t)d->new->blocks },
        { "bytes_diff", d->bytes_diff },         { "blocks_diff", d->blocks_diff },
    };
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        mta_json_key(&j, totals[i].k);
        mta_json_i64(&j, totals[i].v);
    }
    if (gt->set) {
        mta_json_key(&j, "verdict");
        mta_json_begin_object(&j);
        mta_json_key(&j, "failed");
        mta_json_bool(&j, gt->failed);
        const struct { const char *k; bool set; uint64_t v; } lim[] = {
            { "fail_on_growth", o->growth_set, o->growth },
            { "fail_on_growth_per_site", o->site_set, o->site_growth },
            { "fail_on_blocks", o->blocks_set, o->block_growth },
        };
        for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
            mta_json_key(&j, lim[i].k);
            if (lim[i].set)
                mta_json_u64(&j, lim[i].v);
            else
                mta_json_null(&j);
        }
        mta_json_key(&j, "message");
        mta_json_string(&j, gt->message);
        mta_json_end_object(&j);
    }
    mta_json_key(&j, "top");
    mta_json_u64(&j, o->top);
    mta_json_key(&j, "total_entries");
    mta_json_u64(&j, d->nentries);
    mta_json_key(&j, "entries");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < shown; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        const mta_group_entry_t *ge;
        mta_group_t *g = entry_group(d, e, &ge);
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
        mta_json_begin_array(&j);
        for (uint32_t k = 0; k < ge->nframes; k++)
            if (mta_json_frame(&j, g, ge->frames[k]) < 0)
                return -ENOMEM;
        mta_json_end_array(&j);
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

/* Collapsed stacks with signed weights: one line per group that changed, in
 * the diff's order. */
static int diff_collapsed(FILE *out, const mta_diff_t *d)
{
    char **lnew = mta_collapsed_labels(d->new), **lold = mta_collapsed_labels(d->old);
    int rc = lnew && lold ? 0 : -ENOMEM;
    for (size_t i = 0; i < d->nentries && rc == 0; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        const mta_group_entry_t *ge;
        mta_group_t *g = entry_group(d, e, &ge);
        if (e->bytes_diff)
            rc = mta_collapsed_line(out, g, ge, g == d->new ? lnew : lold, e->bytes_diff);
    }
    mta_collapsed_labels_free(d->new, lnew);
    mta_collapsed_labels_free(d->old, lold);
    return rc;
}

int mta_diff(FILE *out, const mta_snapshot_t *old, const mta_snapshot_t *new,
             const mta_diff_opts_t *o)
{
    mta_diff_t *d = NULL;
    gate_t gt;
    int rc = mta_diff_compute(old, new, o, &d);
    if (rc < 0)
        return rc;
    diff_gate(d, o, &gt);
    switch (o->format) {
    case MTA_FORMAT_JSON: rc = diff_json(out, d, o, &gt); break;
    case MTA_FORMAT_MARKDOWN: rc = diff_markdown(out, d, o, &gt); break;
    case MTA_FORMAT_COLLAPSED:
        rc = diff_collapsed(out, d);
        if (gt.set)   /* the collapsed lines leave no room for it on stdout */
            fprintf(stderr, "memtrail: diff: verdict: %s\n", gt.message);
        break;
    default: rc = diff_text(out, d, o, &gt); break;
    }
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
    if (rc == 0 && gt.failed)
        rc = MTA_GATE_FAILED;
    mta_diff_free(d);
    return rc;
}
