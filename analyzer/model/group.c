/*
 * Grouping of live memory by call site.
 *
 * Input is the snapshot's STACK_STATS (one row per stack that ever
 * allocated). Each row gets a key string according to the grouping; rows are
 * then sorted by key and adjacent rows with equal keys summed, so the result
 * depends only on the snapshot's content, never on hash order. The final
 * order (live bytes desc, live blocks desc, key asc, stack asc) is total,
 * which keeps text and JSON output byte-for-byte reproducible. Demangled
 * names are computed at most once per frame and cached in the group.
 */
#include "group.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demangle.h"
#include "memtrail_protocol.h"

static const char *const group_names[] = {
    [MTA_GROUP_STACK] = "stack",
    [MTA_GROUP_FUNCTION] = "function",
    [MTA_GROUP_LINE] = "line",
    [MTA_GROUP_FILE] = "file",
    [MTA_GROUP_MODULE] = "module",
};

const char *mta_group_by_name(mta_group_by_t by)
{
    if ((unsigned)by < sizeof(group_names) / sizeof(group_names[0]))
        return group_names[by];
    return "?";
}

const char *mta_group_by_plural(mta_group_by_t by)
{
    static const char *const plural[] = {
        [MTA_GROUP_STACK] = "stacks",   [MTA_GROUP_FUNCTION] = "functions",
        [MTA_GROUP_LINE] = "lines",     [MTA_GROUP_FILE] = "files",
        [MTA_GROUP_MODULE] = "modules",
    };
    if ((unsigned)by < sizeof(plural) / sizeof(plural[0]))
        return plural[by];
    return "?";
}

const char *mta_group_by_word(unsigned i)
{
    return i < sizeof(group_names) / sizeof(group_names[0]) ? group_names[i] : NULL;
}

int mta_group_by_parse(const char *name, mta_group_by_t *out)
{
    for (size_t i = 0; i < sizeof(group_names) / sizeof(group_names[0]); i++) {
        if (strcmp(name, group_names[i]) == 0) {
            *out = (mta_group_by_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *const metric_names[] = {
    [MTA_METRIC_LIVE] = "live",
    [MTA_METRIC_PEAK] = "peak",
    [MTA_METRIC_ALLOCATED] = "allocated",
};

const char *mta_metric_name(mta_metric_t m)
{
    if ((unsigned)m < sizeof(metric_names) / sizeof(metric_names[0]))
        return metric_names[m];
    return "?";
}

const char *mta_metric_word(unsigned i)
{
    return i < sizeof(metric_names) / sizeof(metric_names[0]) ? metric_names[i] : NULL;
}

int mta_metric_parse(const char *name, mta_metric_t *out)
{
    for (size_t i = 0; i < sizeof(metric_names) / sizeof(metric_names[0]); i++) {
        if (strcmp(name, metric_names[i]) == 0) {
            *out = (mta_metric_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

uint64_t mta_entry_bytes(const mta_group_entry_t *e, mta_metric_t m)
{
    return m == MTA_METRIC_PEAK ? e->peak_bytes : m == MTA_METRIC_ALLOCATED ? e->alloc_bytes
                                                                            : e->bytes;
}

uint64_t mta_entry_blocks(const mta_group_entry_t *e, mta_metric_t m)
{
    return m == MTA_METRIC_PEAK ? e->peak_blocks : m == MTA_METRIC_ALLOCATED ? e->alloc_blocks
                                                                             : e->blocks;
}

const char *mta_group_function(mta_group_t *g, uint32_t f)
{
    const mta_frame_t *fr = &g->snap->frames[f];
    if (fr->function[0] == '\0')
        return "";
    if (!g->names[f]) {
        g->names[f] = fr->kind == MTSNAP_FRAME_NATIVE ? mta_demangle(fr->function)
                                                      : strdup(fr->function);
    }
    return g->names[f];
}

bool mta_frame_hidden(const mta_snapshot_t *snap, uint32_t f)
{
    uint32_t m = snap->frames[f].module;
    if (m == MTSNAP_NONE)
        return false;
    return strncmp(mta_basename(snap->modules[m].path), MTPROTO_LIB_STEM,
                   sizeof(MTPROTO_LIB_STEM) - 1) == 0;
}

bool mta_frame_is_allocator(mta_group_t *g, uint32_t f)
{
    static const char *const mangled[] = { "_Znw", "_Zna", "_Zdl", "_Zda" };
    const mta_frame_t *fr = &g->snap->frames[f];
    if (mta_frame_hidden(g->snap, f))
        return true;
    if (fr->kind != MTSNAP_FRAME_NATIVE)
        return false;
    for (size_t i = 0; i < sizeof(mangled) / sizeof(mangled[0]); i++)
        if (strncmp(fr->function, mangled[i], 4) == 0)
            return true;
    const char *name = mta_group_function(g, f);
    return name && (strncmp(name, "operator new", 12) == 0 ||
                    strncmp(name, "operator delete", 15) == 0);
}

uint64_t mta_frame_module_offset(const mta_snapshot_t *snap, uint32_t f)
{
    const mta_frame_t *fr = &snap->frames[f];
    if (fr->module == MTSNAP_NONE)
        return 0;
    return fr->pc - snap->modules[fr->module].bias;
}

/* The frame whose key stands for the stack, or MTSNAP_NONE. */
static uint32_t key_frame(mta_group_t *g, const mta_stack_t *st)
{
    uint32_t first_visible = MTSNAP_NONE;
    for (uint32_t i = 0; i < st->depth; i++) {
        uint32_t f = st->frames[i];
        if (mta_frame_hidden(g->snap, f))
            continue;
        if (first_visible == MTSNAP_NONE)
            first_visible = f;
        if (!mta_frame_is_allocator(g, f))
            return f;
    }
    return first_visible;
}

char *mta_frame_name(mta_group_t *g, uint32_t f)
{
    const mta_snapshot_t *s = g->snap;
    const mta_frame_t *fr = &s->frames[f];
    const char *name = mta_group_function(g, f);
    char *out = NULL;
    if (!name)
        return NULL;
    if (name[0])
        return strdup(name);
    if (fr->module != MTSNAP_NONE) {
        if (asprintf(&out, "%s+0x%" PRIx64, mta_basename(s->modules[fr->module].path),
                     mta_frame_module_offset(s, f)) < 0)
            return NULL;
        return out;
    }
    if (asprintf(&out, "0x%" PRIx64, fr->pc) < 0)
        return NULL;
    return out;
}

/* " [module basename]" for a named native frame in portable keys, else "". */
static const char *module_suffix(mta_group_t *g, uint32_t f, char *buf, size_t len)
{
    const mta_frame_t *fr = &g->snap->frames[f];
    buf[0] = '\0';
    if ((g->flags & MTA_GROUP_PORTABLE) && fr->module != MTSNAP_NONE && fr->function[0])
        snprintf(buf, len, " [%s]", mta_basename(g->snap->modules[fr->module].path));
    return buf;
}

static char *function_key(mta_group_t *g, uint32_t f)
{
    char suffix[300], *out = NULL;
    module_suffix(g, f, suffix, sizeof(suffix));
    if (!suffix[0])
        return mta_frame_name(g, f);
    char *name = mta_frame_name(g, f);
    if (name && asprintf(&out, "%s%s", name, suffix) < 0)
        out = NULL;
    free(name);
    return out;
}

static char *line_key(mta_group_t *g, uint32_t f)
{
    const mta_frame_t *fr = &g->snap->frames[f];
    char *out = NULL;
    if (fr->file[0] == '\0')
        return function_key(g, f);
    if (fr->line == 0)
        return strdup(fr->file);
    if (asprintf(&out, "%s:%" PRIu32, fr->file, fr->line) < 0)
        return NULL;
    return out;
}

static char *module_key(const mta_snapshot_t *s, uint32_t f, bool brackets)
{
    uint32_t m = s->frames[f].module;
    char *out = NULL;
    if (m == MTSNAP_NONE)
        return strdup("[unknown]");
    if (!brackets)
        return strdup(s->modules[m].path);
    if (asprintf(&out, "[%s]", mta_basename(s->modules[m].path)) < 0)
        return NULL;
    return out;
}

char *mta_frame_text(mta_group_t *g, uint32_t f, bool with_module)
{
    const mta_frame_t *fr = &g->snap->frames[f];
    char *name = mta_frame_name(g, f), *text = NULL, suffix[300] = "", where[64] = "";
    if (!name)
        return NULL;
    if (fr->file[0] && fr->line)
        snprintf(where, sizeof(where), ":%" PRIu32 ")", fr->line);
    else if (fr->file[0])
        snprintf(where, sizeof(where), ")");
    if (with_module)
        module_suffix(g, f, suffix, sizeof(suffix));
    int n = asprintf(&text, "%s%s%s%s%s", name, fr->file[0] ? " (" : "", fr->file, where, suffix);
    free(name);
    return n < 0 ? NULL : text;
}

/* The label id of frame f: "function (file:line)" plus the portable module
 * suffix; -ENOMEM on failure. */
static int64_t label_id(mta_group_t *g, uint32_t f)
{
    if (g->label_of[f] != UINT32_MAX)
        return g->label_of[f];
    char *text = mta_frame_text(g, f, true);
    if (!text)
        return -ENOMEM;
    int64_t id = mta_intern_str(g->labels, text);
    free(text);
    if (id >= 0)
        g->label_of[f] = (uint32_t)id;
    return id;
}

const char *mta_group_key(mta_group_t *g, const mta_group_entry_t *ce)
{
    mta_group_entry_t *e = (mta_group_entry_t *)ce;   /* the cache is not the entry's value */
    if (e->key)
        return e->key;
    if (e->nframes == 0)
        return e->key = strdup("[unknown]");
    size_t len = 0;
    for (uint32_t i = 0; i < e->nframes; i++)
        len += g->labels->lens[g->label_of[e->frames[i]]] + 4;
    char *p = e->key = malloc(len + 1);
    if (!p)
        return NULL;
    for (uint32_t i = 0; i < e->nframes; i++) {
        uint32_t id = g->label_of[e->frames[i]];
        if (i) {
            memcpy(p, " <- ", 4);
            p += 4;
        }
        memcpy(p, g->labels->strings[id], g->labels->lens[id]);
        p += g->labels->lens[id];
    }
    *p = '\0';
    return e->key;
}

int mta_group_entry_cmp(const mta_group_t *ga, const mta_group_entry_t *a, const mta_group_t *gb,
                        const mta_group_entry_t *b)
{
    if (ga->by != MTA_GROUP_STACK)
        return strcmp(a->key, b->key);
    uint32_t n = a->nframes < b->nframes ? a->nframes : b->nframes;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t x = ga->label_of[a->frames[i]], y = gb->label_of[b->frames[i]];
        if (x == y && ga->labels == gb->labels)
            continue;
        int c = strcmp(ga->labels->strings[x], gb->labels->strings[y]);
        if (c)
            return c;
    }
    return a->nframes < b->nframes ? -1 : a->nframes > b->nframes;
}

/* Does frame f match pattern p? */
static bool frame_matches(mta_group_t *g, uint32_t f, const mta_pattern_t *p)
{
    const mta_snapshot_t *s = g->snap;
    const mta_frame_t *fr = &s->frames[f];
    const char *name = mta_group_function(g, f);
    const char *module = fr->module == MTSNAP_NONE ? "" : s->modules[fr->module].path;
    return mta_pattern_match(p, fr->file, name ? name : "", module);
}

/* Does the stack match p: on its key frame, or with --all-frames on any
 * visible frame? */
static bool stack_matches(mta_group_t *g, const mta_stack_t *st, const mta_filter_t *flt,
                          const mta_pattern_t *p)
{
    if (!flt->all_frames) {
        uint32_t kf = key_frame(g, st);
        return kf != MTSNAP_NONE && frame_matches(g, kf, p);
    }
    for (uint32_t i = 0; i < st->depth; i++)
        if (!mta_frame_hidden(g->snap, st->frames[i]) && frame_matches(g, st->frames[i], p))
            return true;
    return false;
}

/* tracemalloc's rule: kept if it matches at least one include pattern (when
 * there is one) and no exclude pattern. */
bool mta_group_stack_selected(mta_group_t *g, uint32_t stack, const mta_filter_t *flt)
{
    if (!flt)
        return true;
    const mta_stack_t *st = &g->snap->stacks[stack];
    bool any_include = false, included = false;
    for (size_t i = 0; i < flt->npatterns; i++) {
        const mta_pattern_t *p = &flt->patterns[i];
        if (p->include) {
            any_include = true;
            if (!included && stack_matches(g, st, flt, p))
                included = true;
        } else if (stack_matches(g, st, flt, p)) {
            return false;
        }
    }
    return !any_include || included;
}

/* A stack's figures after the domain filter. */
typedef struct row {
    uint64_t bytes, blocks;
} row_t;

/* A stack's figures as an entry (no key or frames yet): from its row, or
 * with a domain filter the live figures of its selected blocks only. */
static mta_group_entry_t figures(const mtsnap_stack_stat_t *st, const row_t *live)
{
    if (live)
        return (mta_group_entry_t){ .bytes = live->bytes, .blocks = live->blocks, .nstacks = 1,
                                    .stack = st->stack };
    return (mta_group_entry_t){ .bytes = st->live_bytes, .blocks = st->live_blocks,
                                .peak_bytes = st->peak_bytes, .peak_blocks = st->peak_blocks,
                                .alloc_bytes = st->alloc_bytes, .alloc_blocks = st->alloc_blocks,
                                .nstacks = 1, .stack = st->stack };
}

static void add_figures(mta_group_entry_t *d, const mta_group_entry_t *e)
{
    d->bytes += e->bytes;
    d->blocks += e->blocks;
    d->peak_bytes += e->peak_bytes;
    d->peak_blocks += e->peak_blocks;
    d->alloc_bytes += e->alloc_bytes;
    d->alloc_blocks += e->alloc_blocks;
    d->nstacks += e->nstacks;
}

static bool entry_empty(const mta_group_entry_t *e, mta_metric_t m)
{
    return mta_entry_bytes(e, m) == 0 && mta_entry_blocks(e, m) == 0;
}

/* Is e kept in a grouping by metric with these flags? */
static bool entry_kept(const mta_group_entry_t *e, mta_metric_t metric, unsigned flags)
{
    return (flags & MTA_GROUP_KEEP_EMPTY) || !entry_empty(e, metric) ||
           ((flags & MTA_GROUP_KEEP_PEAK) && !entry_empty(e, MTA_METRIC_PEAK));
}

static int fill_entry(mta_group_t *g, mta_group_entry_t *e, const mtsnap_stack_stat_t *st,
                      const row_t *live)
{
    const mta_stack_t *stack = &g->snap->stacks[st->stack];
    *e = figures(st, live);
    if (g->by == MTA_GROUP_STACK) {
        e->frames = malloc(stack->depth ? stack->depth * sizeof(uint32_t) : 1);
        if (!e->frames)
            return -ENOMEM;
        for (uint32_t i = 0; i < stack->depth; i++) {
            uint32_t f = stack->frames[i];
            if (mta_frame_hidden(g->snap, f))
                continue;
            if (label_id(g, f) < 0)
                return -ENOMEM;
            e->frames[e->nframes++] = f;
        }
        return 0;   /* the key string is built on demand (mta_group_key) */
    }
    uint32_t kf = key_frame(g, stack);
    if (kf == MTSNAP_NONE) {
        e->key = strdup("[unknown]");
        return e->key ? 0 : -ENOMEM;
    }
    e->frames = malloc(sizeof(uint32_t));
    if (!e->frames)
        return -ENOMEM;
    e->frames[0] = kf;
    e->nframes = 1;
    switch (g->by) {
    case MTA_GROUP_FUNCTION: e->key = function_key(g, kf); break;
    case MTA_GROUP_LINE: e->key = line_key(g, kf); break;
    case MTA_GROUP_FILE:
        e->key = g->snap->frames[kf].file[0] ? strdup(g->snap->frames[kf].file)
                                             : module_key(g->snap, kf, true);
        break;
    default: e->key = module_key(g->snap, kf, (g->flags & MTA_GROUP_PORTABLE) != 0); break;
    }
    return e->key ? 0 : -ENOMEM;
}

static int cmp_key(const void *a, const void *b, void *g)
{
    const mta_group_entry_t *x = a, *y = b;
    int c = mta_group_entry_cmp(g, x, g, y);
    if (c)
        return c;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* By figures of metric m, largest first, then by key. */
static int cmp_metric(const mta_group_entry_t *x, const mta_group_entry_t *y, mta_metric_t m,
                      void *g)
{
    uint64_t xb = mta_entry_bytes(x, m), yb = mta_entry_bytes(y, m);
    if (xb != yb)
        return xb > yb ? -1 : 1;
    xb = mta_entry_blocks(x, m);
    yb = mta_entry_blocks(y, m);
    if (xb != yb)
        return xb > yb ? -1 : 1;
    return cmp_key(x, y, g);
}

static int cmp_final(const void *a, const void *b, void *g)
{
    return cmp_metric(a, b, ((mta_group_t *)g)->metric, g);
}

uint64_t mta_group_peak_bytes(const mta_group_t *g)
{
    return g->filtered ? g->sum.peak_bytes : g->snap->totals.peak_bytes;
}

const mta_group_entry_t *mta_group_peak_top(const mta_group_t *g)
{
    const mta_group_entry_t *top = NULL;
    for (size_t i = 0; i < g->nentries; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        if (!entry_empty(e, MTA_METRIC_PEAK) &&
            (!top || cmp_metric(e, top, MTA_METRIC_PEAK, (void *)g) < 0))
            top = e;
    }
    return top;
}

static void entry_clear(mta_group_entry_t *e)
{
    free(e->key);
    free(e->frames);
}

/* Sums entries with equal keys (entries sorted by key, then stack). The
 * first entry of a run has the lowest stack index and supplies the frame. */
static size_t merge_equal_keys(mta_group_t *g, mta_group_entry_t *v, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && mta_group_entry_cmp(g, &v[out - 1], g, &v[i]) == 0) {
            add_figures(&v[out - 1], &v[i]);
            entry_clear(&v[i]);
            continue;
        }
        v[out++] = v[i];
    }
    return out;
}

/* Live figures per stack from the blocks of the selected domains (in a
 * sampled snapshot, estimates: each block weighed as the writer did). */
static row_t *domain_rows(const mta_snapshot_t *snap, const mta_filter_t *flt)
{
    row_t *rows = calloc(snap->nstacks ? snap->nstacks : 1, sizeof(*rows));
    if (!rows)
        return NULL;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        if (mta_filter_domain(flt, b->domain)) {
            rows[b->stack].bytes += mta_block_bytes(snap, b);
            rows[b->stack].blocks += mta_block_units(snap, b);
        }
    }
    for (uint32_t k = 0; k < snap->nstacks; k++)
        rows[k].blocks = mta_units_blocks(snap, rows[k].blocks);
    return rows;
}

int mta_group(const mta_snapshot_t *snap, mta_group_by_t by, unsigned flags,
              const mta_filter_t *filter, mta_group_t **out)
{
    return mta_group_shared(snap, by, MTA_METRIC_LIVE, flags, filter, NULL, out);
}

int mta_group_shared(const mta_snapshot_t *snap, mta_group_by_t by, mta_metric_t metric,
                     unsigned flags, const mta_filter_t *filter, mta_intern_t *labels,
                     mta_group_t **out)
{
    int rc = -ENOMEM;
    row_t *rows = NULL;
    mta_group_t *g = calloc(1, sizeof(*g));
    *out = NULL;
    if (!g)
        return -ENOMEM;
    g->snap = snap;
    g->by = by;
    g->metric = metric;
    g->flags = flags;
    g->names = calloc(snap->nframes ? snap->nframes : 1, sizeof(char *));
    g->entries = calloc(snap->nstats ? snap->nstats : 1, sizeof(*g->entries));
    g->label_of = malloc((snap->nframes ? snap->nframes : 1) * sizeof(uint32_t));
    g->labels = labels;
    if (!labels) {
        g->labels = malloc(sizeof(*g->labels));
        g->own_labels = true;
        if (g->labels)
            mta_intern_init(g->labels);
    }
    if (!g->names || !g->entries || !g->label_of || !g->labels)
        goto fail;
    memset(g->label_of, 0xff, (snap->nframes ? snap->nframes : 1) * sizeof(uint32_t));
    g->filtered = mta_filter_has_patterns(filter) || mta_filter_has_domains(filter);
    if (mta_filter_has_domains(filter)) {
        g->live_only = true;
        if (!(rows = domain_rows(snap, filter)))
            goto fail;
    }
    for (uint32_t i = 0; i < snap->nstats; i++) {
        const mtsnap_stack_stat_t *st = &snap->stats[i];
        const row_t *live = rows ? &rows[st->stack] : NULL;
        mta_group_entry_t fig = figures(st, live);
        if (mta_filter_has_patterns(filter) && !mta_group_stack_selected(g, st->stack, filter))
            continue;
        add_figures(&g->sum, &fig);
        /* Empty stacks still add their other figures to a group. */
        if (!(flags & (MTA_GROUP_KEEP_EMPTY | MTA_GROUP_PORTABLE)) && by == MTA_GROUP_STACK &&
            !entry_kept(&fig, metric, flags))
            continue;
        rc = fill_entry(g, &g->entries[g->nentries], st, live);
        g->nentries++;
        if (rc < 0)
            goto fail;
    }
    free(rows);
    rows = NULL;
    if (by != MTA_GROUP_STACK || (flags & MTA_GROUP_PORTABLE)) {
        qsort_r(g->entries, g->nentries, sizeof(*g->entries), cmp_key, g);
        g->nentries = merge_equal_keys(g, g->entries, g->nentries);
    }
    size_t k = 0;
    for (size_t i = 0; i < g->nentries; i++) {
        mta_group_entry_t *e = &g->entries[i];
        if (!entry_kept(e, metric, flags)) {
            entry_clear(e);
            continue;
        }
        g->nranked += !entry_empty(e, metric);
        g->entries[k++] = *e;
    }
    g->nentries = k;
    g->bytes = g->sum.bytes;
    g->blocks = g->sum.blocks;
    qsort_r(g->entries, g->nentries, sizeof(*g->entries), cmp_final, g);
    *out = g;
    return 0;
fail:
    free(rows);
    mta_group_free(g);
    return rc;
}

mta_group_t *mta_group_names(const mta_snapshot_t *snap)
{
    mta_group_t *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->snap = snap;
    g->by = MTA_GROUP_STACK;
    g->names = calloc(snap->nframes ? snap->nframes : 1, sizeof(*g->names));
    if (!g->names) {
        free(g);
        return NULL;
    }
    return g;
}

void mta_group_free(mta_group_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nentries; i++)
        entry_clear(&g->entries[i]);
    free(g->entries);
    if (g->names)
        for (uint32_t i = 0; i < g->snap->nframes; i++)
            free(g->names[i]);
    free(g->names);
    free(g->label_of);
    if (g->own_labels && g->labels) {
        mta_intern_free(g->labels);
        free(g->labels);
    }
    free(g);
}
