/*
 * The merged call tree of `memtrail html` (flametree.h).
 *
 * Data flow. Each snapshot is grouped by stack (model/group.c: the filters
 * applied, entries with no live bytes kept, hidden frames dropped); each
 * entry's visible frames, outermost first, are a path from the root of ONE
 * tree shared by all snapshots, so the same call path is the same node in
 * every snapshot and a diff is a subtraction per node. A frame is identified
 * by (kind, function, file, line, module basename), as diff's portable keys,
 * so that two runs of a program (different addresses) share their nodes.
 * Nodes are created in order of first use, so parent[i] < i always holds:
 * inclusive values are computed by adding the entries' figures at their
 * nodes and then, from the last node to the first, each node into its
 * parent (no recursion, no stack depth limit).
 *
 * The bound. A snapshot of 100,000 distinct stacks makes a tree of hundreds
 * of thousands of nodes; the page must stay small (docs/html.md: 10 MB for
 * 100 k stacks). Every node gets its largest share: the maximum, over every
 * metric of every snapshot, of its inclusive bytes over the root's. Shares
 * never grow from a node to its children, so "keep the nodes whose share is
 * at least T" keeps a subtree that contains the root. The children a kept
 * node loses are replaced by ONE "other" node holding their sum, so every
 * kept node's inclusive values, the root's above all, stay exact. T is the
 * smallest share (at least opts->min_share) whose tree, "other" nodes
 * included, fits opts->max_nodes; a binary search over the nodes' shares.
 *
 * Memory: the tree and one array of 10 values per node for one snapshot at
 * a time; the values of the final tree are computed on demand per snapshot
 * (mta_flametree_values), from each entry's node, in O(entries + nodes).
 */
#include "flametree.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demangle.h"
#include "intern.h"

#define NVALUES (2 * MTA_FT_NMETRICS)

/* The tree as it grows: nodes, and a hash of (parent, frame) -> child. */
typedef struct grow {
    size_t n, cap;
    int32_t *parent, *frame;
    uint32_t *slots;     /* node + 1, 0 = empty; a power of two, at least 2n */
    size_t nslots;
} grow_t;

static uint64_t child_hash(int32_t parent, int32_t frame)
{
    uint64_t h = ((uint64_t)(uint32_t)parent << 32 | (uint32_t)frame) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static int grow_rehash(grow_t *g, size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++) {
        size_t k = child_hash(g->parent[i], g->frame[i]) & (nslots - 1);
        while (slots[k])
            k = (k + 1) & (nslots - 1);
        slots[k] = (uint32_t)i + 1;
    }
    free(g->slots);
    g->slots = slots;
    g->nslots = nslots;
    return 0;
}

/* The node for `frame` under `parent`, created if new; -ENOMEM. */
static int64_t grow_child(grow_t *g, int32_t parent, int32_t frame)
{
    if (2 * (g->n + 1) > g->nslots && grow_rehash(g, g->nslots ? 2 * g->nslots : 1024) < 0)
        return -ENOMEM;
    size_t k = child_hash(parent, frame) & (g->nslots - 1);
    for (; g->slots[k]; k = (k + 1) & (g->nslots - 1)) {
        uint32_t i = g->slots[k] - 1;
        if (g->parent[i] == parent && g->frame[i] == frame)
            return i;
    }
    if (g->n >= INT32_MAX)
        return -ENOMEM;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 1024;
        int32_t *p = realloc(g->parent, cap * sizeof(*p));
        if (p)
            g->parent = p;
        int32_t *f = realloc(g->frame, cap * sizeof(*f));
        if (f)
            g->frame = f;
        if (!p || !f)
            return -ENOMEM;
        g->cap = cap;
    }
    g->parent[g->n] = parent;
    g->frame[g->n] = frame;
    g->slots[k] = (uint32_t)g->n + 1;
    return (int64_t)g->n++;
}

/* All the frames met, interned by their identity. */
typedef struct frames {
    mta_intern_t keys;
    mta_ft_frame_t *v;   /* by key index */
    size_t cap;
} frames_t;

/* The frame index of snapshot frame f of group g; -ENOMEM. */
static int64_t frame_id(frames_t *fs, mta_group_t *g, uint32_t f)
{
    const mta_snapshot_t *s = g->snap;
    const mta_frame_t *fr = &s->frames[f];
    const char *module = fr->kind == MTSNAP_FRAME_NATIVE && fr->module != MTSNAP_NONE
                             ? mta_basename(s->modules[fr->module].path) : "";
    char *name = mta_frame_name(g, f), *key = NULL;
    int64_t id = -ENOMEM;
    if (!name)
        return -ENOMEM;
    int len = asprintf(&key, "%" PRIu32 "%c%s%c%s%c%" PRIu32 "%c%s", fr->kind, 0, name, 0, fr->file,
                       0, fr->line, 0, module);
    if (len < 0) {
        key = NULL;
        goto out;
    }
    if (fs->keys.count == fs->cap) {   /* room first: v[0 .. count) always set */
        size_t cap = fs->cap ? 2 * fs->cap : 256;
        mta_ft_frame_t *v = realloc(fs->v, cap * sizeof(*v));
        if (!v)
            goto out;
        fs->v = v;
        fs->cap = cap;
    }
    size_t before = fs->keys.count;
    id = mta_intern(&fs->keys, key, (size_t)len);
    if (id < 0 || fs->keys.count == before)
        goto out;
    fs->v[id] = (mta_ft_frame_t){ .function = name, .file = fr->file, .line = fr->line,
                                  .module = module, .kind = fr->kind,
                                  .inlined = fr->inlined };
    name = NULL;
out:
    free(key);
    free(name);
    return id;
}

/* Definite and possible bytes and blocks per stack of s, of the blocks the
 * filter's domains select; NULL without a LEAKS record (or on ENOMEM: *rc). */
static uint64_t *lost_per_stack(const mta_snapshot_t *s, const mta_filter_t *flt, int *rc)
{
    if (!s->has_leaks)
        return NULL;
    uint64_t *lost = calloc(s->nstacks ? 4 * (size_t)s->nstacks : 1, sizeof(*lost));
    if (!lost) {
        *rc = -ENOMEM;
        return NULL;
    }
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        uint8_t k = s->leak_kind[i];
        if ((k != MTSNAP_LEAK_DEFINITE && k != MTSNAP_LEAK_POSSIBLE) ||
            (mta_filter_has_domains(flt) && !mta_filter_domain(flt, b->domain)))
            continue;
        uint64_t *row = &lost[4 * (size_t)b->stack + (k == MTSNAP_LEAK_DEFINITE ? 0 : 2)];
        row[0] += mta_block_bytes(s, b);
        row[1] += mta_block_units(s, b);   /* units: blocks below */
    }
    for (size_t i = 1; i < 4 * (size_t)s->nstacks; i += 2)
        lost[i] = mta_units_blocks(s, lost[i]);
    return lost;
}

bool mta_flametree_has(const mta_flametree_t *t, size_t s, mta_ft_metric_t m)
{
    return m < MTA_FT_DEFINITE || t->lost[s] != NULL;
}

/* Inclusive values of snapshot s on a tree of n nodes whose entries sit at
 * node_of[]: v as mta_flametree_values(). */
static void accumulate(const mta_flametree_t *t, const int32_t *parent, size_t n,
                       const uint32_t *node_of, size_t s, uint64_t *v)
{
    const mta_group_t *g = t->groups[s];
    const uint64_t *lost = t->lost[s];
    memset(v, 0, NVALUES * n * sizeof(*v));
    for (size_t e = 0; e < g->nentries; e++) {
        const mta_group_entry_t *en = &g->entries[e];
        size_t i = node_of[e];
        uint64_t add[NVALUES] = { en->bytes,       en->blocks,      en->peak_bytes, en->peak_blocks,
                                  en->alloc_bytes, en->alloc_blocks };
        if (lost)
            memcpy(&add[2 * MTA_FT_DEFINITE], &lost[4 * (size_t)en->stack], 4 * sizeof(uint64_t));
        for (size_t r = 0; r < NVALUES; r++)
            v[r * n + i] += add[r];
    }
    for (size_t i = n; i-- > 1;)
        for (size_t r = 0; r < NVALUES; r++)
            v[r * n + (size_t)parent[i]] += v[r * n + i];
}

void mta_flametree_values(const mta_flametree_t *t, size_t s, uint64_t *v)
{
    accumulate(t, t->parent, t->nnodes, t->node_of[s], s, v);
}

/* Per node of the grown tree: its largest share of a root total. */
static int node_shares(const mta_flametree_t *t, const grow_t *g, double *share)
{
    uint64_t *v = malloc(NVALUES * g->n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++)
        share[i] = 0;
    for (size_t s = 0; s < t->nsnaps; s++) {
        accumulate(t, g->parent, g->n, t->node_of[s], s, v);
        for (size_t m = 0; m < MTA_FT_NMETRICS; m++) {
            const uint64_t *bytes = &v[2 * m * g->n];
            if (bytes[0] == 0)
                continue;
            for (size_t i = 1; i < g->n; i++) {
                double x = (double)bytes[i] / (double)bytes[0];
                if (x > share[i])
                    share[i] = x;
            }
        }
    }
    share[0] = INFINITY;   /* the root is always kept */
    free(v);
    return 0;
}

/* Nodes of the tree that keeps the shares >= th, "other" nodes included.
 * mark: scratch, one per node. */
static size_t count_kept(const grow_t *g, const double *share, double th, uint8_t *mark)
{
    size_t n = 1;
    memset(mark, 0, g->n);
    for (size_t i = 1; i < g->n; i++) {
        size_t p = (size_t)g->parent[i];
        if (share[i] >= th)
            n++;
        else if (share[p] >= th && !mark[p]) {
            mark[p] = 1;
            n++;
        }
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The threshold: the smallest share >= min_share whose tree fits max_nodes. */
static int choose_threshold(const grow_t *g, const double *share, const mta_ft_opts_t *o,
                            uint8_t *mark, double *th)
{
    *th = o->min_share;
    if (!o->max_nodes || count_kept(g, share, *th, mark) <= o->max_nodes)
        return 0;
    double *c = malloc(g->n * sizeof(*c));
    if (!c)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 1; i < g->n; i++)
        if (share[i] > o->min_share)
            c[m++] = share[i];
    qsort(c, m, sizeof(*c), cmp_double);
    /* count_kept(c[k]) does not grow with k; find the first that fits,
     * else keep only the root and one "other" node (a share above all). */
    size_t lo = 0, hi = m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (count_kept(g, share, c[mid], mark) <= o->max_nodes)
            hi = mid;
        else
            lo = mid + 1;
    }
    *th = lo < m ? c[lo] : (m ? c[m - 1] * 2 : 1);
    free(c);
    return 0;
}

/* The final tree from the grown one, keeping the shares >= th (all when
 * share is NULL); entries' nodes remapped, frames renumbered by first use. */
static int finish(mta_flametree_t *t, const grow_t *g, const double *share, double th,
                  frames_t *fs)
{
    int rc = -ENOMEM;
    int64_t *new_of = malloc(g->n * sizeof(*new_of)), *other = malloc(g->n * sizeof(*other));
    int64_t *fnew = malloc((fs->keys.count ? fs->keys.count : 1) * sizeof(*fnew));
    t->parent = malloc(g->n * sizeof(*t->parent));
    t->frame = malloc(g->n * sizeof(*t->frame));
    t->merged = calloc(g->n ? g->n : 1, sizeof(*t->merged));
    t->frames = calloc(fs->keys.count ? fs->keys.count : 1, sizeof(*t->frames));
    if (!new_of || !other || !fnew || !t->parent || !t->frame || !t->merged || !t->frames)
        goto out;
    for (size_t f = 0; f < fs->keys.count; f++)
        fnew[f] = -1;
    size_t kept = 0, merged = 0;
    for (size_t i = 0; i < g->n; i++) {
        other[i] = -1;
        if (share && share[i] < th) {
            new_of[i] = -1;
            merged++;
            continue;
        }
        new_of[i] = (int64_t)kept++;
    }
    /* Kept nodes keep their order (parent < child); "other" nodes follow. */
    size_t n = kept;
    for (size_t i = 0; i < g->n; i++) {
        int32_t p = g->parent[i];
        if (new_of[i] >= 0) {
            int32_t f = g->frame[i];
            if (f >= 0 && fnew[f] < 0) {
                fnew[f] = (int64_t)t->nframes;
                t->frames[t->nframes++] = fs->v[f];
                fs->v[f].function = NULL;   /* now the tree's */
            }
            t->parent[new_of[i]] = i ? (int32_t)new_of[p] : -1;
            t->frame[new_of[i]] = f >= 0 ? (int32_t)fnew[f] : MTA_FT_ROOT;
            continue;
        }
        if (share[p] >= th) {   /* p kept: i goes to p's "other" node */
            if (other[p] < 0) {
                other[p] = (int64_t)n;
                t->parent[n] = (int32_t)new_of[p];
                t->frame[n] = MTA_FT_OTHER;
                n++;
            }
            new_of[i] = other[p];
        } else {
            new_of[i] = new_of[p];   /* inside a merged subtree: its "other" node */
        }
        t->merged[new_of[i]]++;
    }
    for (size_t s = 0; s < t->nsnaps; s++)
        for (size_t e = 0; e < t->groups[s]->nentries; e++)
            t->node_of[s][e] = (uint32_t)new_of[t->node_of[s][e]];
    t->nnodes = n;
    t->nodes_kept = kept;
    t->nodes_merged = merged;
    t->pruned = merged > 0;
    t->threshold = t->pruned ? th : 0;
    rc = 0;
out:
    free(new_of);
    free(other);
    free(fnew);
    return rc;
}

int mta_flametree_build(mta_flametree_t *t, const mta_snapshot_t *const *snaps, size_t n,
                        const mta_ft_opts_t *o)
{
    int rc = -ENOMEM;
    grow_t g = { 0 };
    frames_t fs = { 0 };
    uint32_t *fid = NULL;
    double *share = NULL;
    uint8_t *mark = NULL;
    *t = (mta_flametree_t){ .nsnaps = n, .snaps = snaps };
    mta_intern_init(&fs.keys);
    t->groups = calloc(n ? n : 1, sizeof(*t->groups));
    t->node_of = calloc(n ? n : 1, sizeof(*t->node_of));
    t->lost = calloc(n ? n : 1, sizeof(*t->lost));
    if (!t->groups || !t->node_of || !t->lost || grow_child(&g, -1, MTA_FT_ROOT) < 0)
        goto fail;
    for (size_t s = 0; s < n; s++) {
        const mta_snapshot_t *snap = snaps[s];
        if ((rc = mta_group(snap, MTA_GROUP_STACK, MTA_GROUP_KEEP_EMPTY, o->filter,
                            &t->groups[s])) < 0)
            goto fail;
        rc = -ENOMEM;
        mta_group_t *gr = t->groups[s];
        t->lost[s] = lost_per_stack(snap, o->filter, &rc);
        if (snap->has_leaks && !t->lost[s])
            goto fail;
        t->node_of[s] = malloc((gr->nentries ? gr->nentries : 1) * sizeof(uint32_t));
        fid = malloc((snap->nframes ? snap->nframes : 1) * sizeof(*fid));
        if (!t->node_of[s] || !fid)
            goto fail;
        memset(fid, 0xff, (snap->nframes ? snap->nframes : 1) * sizeof(*fid));
        for (size_t e = 0; e < gr->nentries; e++) {
            const mta_group_entry_t *en = &gr->entries[e];
            int64_t node = 0;
            for (uint32_t k = en->nframes; k-- > 0;) {   /* outermost first */
                uint32_t f = en->frames[k];
                if (fid[f] == UINT32_MAX) {
                    int64_t id = frame_id(&fs, gr, f);
                    if (id < 0)
                        goto fail;
                    fid[f] = (uint32_t)id;
                }
                if ((node = grow_child(&g, (int32_t)node, (int32_t)fid[f])) < 0)
                    goto fail;
            }
            t->node_of[s][e] = (uint32_t)node;
        }
        free(fid);
        fid = NULL;
    }
    double th = 0;
    if ((o->max_nodes && g.n > o->max_nodes) || o->min_share > 0) {
        share = malloc(g.n * sizeof(*share));
        mark = malloc(g.n);
        if (!share || !mark || node_shares(t, &g, share) < 0 ||
            choose_threshold(&g, share, o, mark, &th) < 0)
            goto fail;
    }
    if (finish(t, &g, share, th, &fs) < 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    mta_flametree_free(t);
out:
    for (size_t f = 0; f < fs.keys.count && fs.v; f++)
        free(fs.v[f].function);
    free(fs.v);
    mta_intern_free(&fs.keys);
    free(g.parent);
    free(g.frame);
    free(g.slots);
    free(fid);
    free(share);
    free(mark);
    return rc;
}

void mta_flametree_free(mta_flametree_t *t)
{
    for (size_t f = 0; f < t->nframes; f++)
        free(t->frames[f].function);
    free(t->frames);
    free(t->parent);
    free(t->frame);
    free(t->merged);
    for (size_t s = 0; s < t->nsnaps; s++) {
        if (t->groups)
            mta_group_free(t->groups[s]);
        if (t->node_of)
            free(t->node_of[s]);
        if (t->lost)
            free(t->lost[s]);
    }
    free(t->groups);
    free(t->node_of);
    free(t->lost);
    *t = (mta_flametree_t){ 0 };
}
