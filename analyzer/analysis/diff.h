/* `memtrail diff`: what changed between two snapshots, per group, with
 * tracemalloc's Snapshot.compare_to semantics, and the CI gate on it
 * (computed in analysis/diff.c, rendered by render/diff_render.c). */
#ifndef MTA_DIFF_H
#define MTA_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "group.h"
#include "options.h"
#include "snapshot.h"

typedef struct mta_diff_entry {
    const mta_group_entry_t *old;   /* NULL: only in NEW */
    const mta_group_entry_t *new;   /* NULL: only in OLD */
    uint64_t bytes, blocks;         /* the metric's figures in NEW (0 when only in OLD) */
    int64_t bytes_diff, blocks_diff; /* NEW minus OLD, saturated (mta_change) */
} mta_diff_entry_t;

/* A Python type whose gc-tracked objects grew in number (both snapshots
 * have a PYGRAPH record): objgraph's show_growth. */
typedef struct mta_type_growth {
    const char *type;               /* tp_name, NEW's string */
    uint64_t count;                 /* objects in NEW */
    int64_t delta;                  /* NEW minus OLD, > 0 */
} mta_type_growth_t;

typedef struct mta_diff {
    mta_intern_t labels;            /* frame labels, shared by both groupings */
    mta_group_t *old, *new;         /* grouped with MTA_GROUP_PORTABLE */
    size_t nentries;
    mta_diff_entry_t *entries;      /* |bytes_diff| desc, bytes desc, |blocks_diff| desc,
                                       blocks desc, key asc */
    uint64_t old_bytes, old_blocks, new_bytes, new_blocks; /* the metric's figures
                                        over the selected blocks */
    int64_t bytes_diff, blocks_diff; /* NEW minus OLD of those, saturated (mta_change) */
    uint64_t old_peak, new_peak;    /* bytes at the peak: the snapshots' totals, or
                                       the selected stacks' sum with a filter */
    int64_t peak_diff;              /* NEW minus OLD, saturated */
    bool has_types;                 /* both snapshots have a Python object graph */
    size_t ntypes;
    mta_type_growth_t *types;       /* the types that grew: delta desc, name asc */
} mta_diff_t;

typedef struct mta_diff_opts {
    mta_group_by_t group_by;
    size_t top;                     /* entries shown; 0 = all */
    mta_format_t format;            /* text, json, markdown or collapsed */
    const mta_filter_t *filter;
    bool growth_set, site_set, blocks_set;
    uint64_t growth;                /* --fail-on-growth: total bytes of the metric */
    uint64_t site_growth;           /* --fail-on-growth-per-site: bytes of one group */
    uint64_t block_growth;          /* --fail-on-blocks: total blocks of the metric */
    mta_metric_t metric;            /* the figure compared (default live) */
    bool peak_growth_set;
    uint64_t peak_growth;           /* --fail-on-peak-growth: bytes at the peak */
} mta_diff_opts_t;

/* Compares two snapshots. Returns 0 or -ENOMEM. */
int mta_diff_compute(const mta_snapshot_t *old, const mta_snapshot_t *new,
                     const mta_diff_opts_t *o, mta_diff_t **out);
void mta_diff_free(mta_diff_t *d);
/* The portable key of an entry (NULL on ENOMEM). */
const char *mta_diff_key(const mta_diff_t *d, const mta_diff_entry_t *e);
/* The grouping and group entry an entry shows: NEW's, or OLD's when gone. */
mta_group_t *mta_diff_entry_group(const mta_diff_t *d, const mta_diff_entry_t *e,
                                  const mta_group_entry_t **ge);

/* The CI gate's decision: which --fail-on-* limits were passed. */
typedef struct mta_diff_gate {
    bool set;                        /* a limit was given */
    bool failed;                     /* one of them was passed */
    bool growth_failed;              /* --fail-on-growth */
    bool blocks_failed;              /* --fail-on-blocks */
    bool peak_failed;                /* --fail-on-peak-growth */
    size_t sites_over;               /* groups above --fail-on-growth-per-site */
    const mta_diff_entry_t *worst;   /* the largest growth among them, or NULL */
} mta_diff_gate_t;
void mta_diff_gate(const mta_diff_t *d, const mta_diff_opts_t *o, mta_diff_gate_t *g);


#endif /* MTA_DIFF_H */
