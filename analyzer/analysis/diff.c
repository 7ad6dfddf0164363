/*
 * `memtrail diff OLD NEW`: tracemalloc's Snapshot.compare_to over memtrail
 * snapshots, and the CI gate's decision on the result (the text, JSON,
 * markdown and collapsed forms are render/diff_render.c's).
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
 * growth, then name. Without both graphs there is no type list.
 *
 * The figures compared are those of the metric (--metric): live bytes and
 * blocks (default), those at the process-wide peak, or those allocated since
 * tracing began.
 *
 * The gate fails when a limit given is passed: the total bytes grew by more
 * than --fail-on-growth, some group grew by more than
 * --fail-on-growth-per-site (the largest such growth is reported), the
 * blocks grew by more than --fail-on-blocks, or the process-wide peak grew
 * by more than --fail-on-peak-growth. Shrinking never fails.
 *
 * Counts are unsigned 64-bit; every change is NEW minus OLD saturated to the
 * int64_t range (mta_change): a forged count at or above 2^63 gives
 * INT64_MAX or INT64_MIN, never an overflow or a change of the wrong sign.
 */
#include "diff.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

mta_group_t *mta_diff_entry_group(const mta_diff_t *d, const mta_diff_entry_t *e,
                                  const mta_group_entry_t **ge)
{
    *ge = e->new ? e->new : e->old;
    return e->new ? d->new : d->old;
}

const char *mta_diff_key(const mta_diff_t *d, const mta_diff_entry_t *e)
{
    const mta_group_entry_t *ge;
    mta_group_t *g = mta_diff_entry_group(d, e, &ge);
    return mta_group_key(g, ge);
}

static int cmp_diff(const void *a, const void *b, void *ctx)
{
    const mta_diff_t *d = ctx;
    const mta_diff_entry_t *x = a, *y = b;
    if (mta_mag(x->bytes_diff) != mta_mag(y->bytes_diff))
        return mta_mag(x->bytes_diff) > mta_mag(y->bytes_diff) ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (mta_mag(x->blocks_diff) != mta_mag(y->blocks_diff))
        return mta_mag(x->blocks_diff) > mta_mag(y->blocks_diff) ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    const mta_group_entry_t *gx, *gy;
    mta_group_t *g1 = mta_diff_entry_group(d, x, &gx), *g2 = mta_diff_entry_group(d, y, &gy);
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
                .delta = mta_change(b[k].count, before) };
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
    if ((rc = mta_group_shared(old, o->group_by, o->metric, MTA_GROUP_PORTABLE, o->filter, &d->labels,
                               &d->old)) < 0 ||
        (rc = mta_group_shared(new, o->group_by, o->metric, MTA_GROUP_PORTABLE, o->filter, &d->labels,
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
        e->bytes = e->new ? mta_entry_bytes(e->new, o->metric) : 0;
        e->blocks = e->new ? mta_entry_blocks(e->new, o->metric) : 0;
        e->bytes_diff = mta_change(e->bytes, e->old ? mta_entry_bytes(e->old, o->metric) : 0);
        e->blocks_diff = mta_change(e->blocks, e->old ? mta_entry_blocks(e->old, o->metric) : 0);
    }
    qsort_r(d->entries, d->nentries, sizeof(*d->entries), cmp_diff, d);
    d->old_bytes = mta_entry_bytes(&d->old->sum, o->metric);
    d->old_blocks = mta_entry_blocks(&d->old->sum, o->metric);
    d->new_bytes = mta_entry_bytes(&d->new->sum, o->metric);
    d->new_blocks = mta_entry_blocks(&d->new->sum, o->metric);
    d->bytes_diff = mta_change(d->new_bytes, d->old_bytes);
    d->blocks_diff = mta_change(d->new_blocks, d->old_blocks);
    d->old_peak = mta_group_peak_bytes(d->old);
    d->new_peak = mta_group_peak_bytes(d->new);
    d->peak_diff = mta_change(d->new_peak, d->old_peak);
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

void mta_diff_gate(const mta_diff_t *d, const mta_diff_opts_t *o, mta_diff_gate_t *g)
{
    *g = (mta_diff_gate_t){ .set = o->growth_set || o->site_set || o->blocks_set ||
                                   o->peak_growth_set };
    g->growth_failed = o->growth_set && d->bytes_diff > 0 && (uint64_t)d->bytes_diff > o->growth;
    g->blocks_failed = o->blocks_set && d->blocks_diff > 0 &&
                       (uint64_t)d->blocks_diff > o->block_growth;
    for (size_t i = 0; o->site_set && i < d->nentries; i++) {
        const mta_diff_entry_t *e = &d->entries[i];
        if (e->bytes_diff > 0 && (uint64_t)e->bytes_diff > o->site_growth) {
            g->sites_over++;
            if (!g->worst || e->bytes_diff > g->worst->bytes_diff)
                g->worst = e;
        }
    }
    g->peak_failed = o->peak_growth_set && d->peak_diff > 0 &&
                     (uint64_t)d->peak_diff > o->peak_growth;
    g->failed = g->growth_failed || g->worst || g->blocks_failed || g->peak_failed;
}
