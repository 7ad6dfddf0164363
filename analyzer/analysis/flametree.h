/* The merged call tree of one or more snapshots, as `memtrail html` draws it
 * (flame graphs, the diff between two snapshots): each distinct frame once,
 * one node per distinct path from the root, inclusive values per node for
 * every metric of every snapshot, and the long tail merged into "other"
 * nodes so that the tree stays within a node budget (flametree.c). */
#ifndef MTA_FLAMETREE_H
#define MTA_FLAMETREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter.h"
#include "group.h"
#include "snapshot.h"

/* The metrics of a node, in the order of docs/html.md. */
typedef enum mta_ft_metric {
    MTA_FT_LIVE = 0,   /* live at the snapshot */
    MTA_FT_PEAK,       /* live at the process-wide peak */
    MTA_FT_ALLOC,      /* allocated since tracing began */
    MTA_FT_DEFINITE,   /* definitely lost (LEAKS record) */
    MTA_FT_POSSIBLE,   /* possibly lost (LEAKS record) */
    MTA_FT_NMETRICS,
} mta_ft_metric_t;

/* tree frame[] values that are no frame. */
#define MTA_FT_ROOT (-1)
#define MTA_FT_OTHER (-2)

/* A frame as the tree identifies it: two snapshot frames are the same frame
 * when all five fields are equal (as diff's portable keys). */
typedef struct mta_ft_frame {
    char *function;        /* mta_frame_name(): demangled, or "module+0xOFF" / "0xPC" */
    const char *file;      /* "" when unknown (points into a snapshot) */
    uint32_t line;         /* 0 when unknown */
    const char *module;    /* basename of a native frame's module, else "" */
    uint32_t kind;         /* enum mtsnap_frame_kind */
    uint32_t inlined;      /* inlined into its caller (its first snapshot frame's) */
} mta_ft_frame_t;

typedef struct mta_ft_opts {
    const mta_filter_t *filter;  /* NULL: every block */
    size_t max_nodes;            /* node budget (at least 2); 0: no budget */
    double min_share;            /* prune below this share even within the budget */
} mta_ft_opts_t;

typedef struct mta_flametree {
    size_t nsnaps;
    const mta_snapshot_t *const *snaps;
    size_t nframes;
    mta_ft_frame_t *frames;      /* the frames the nodes use, in order of first use */
    size_t nnodes;
    int32_t *parent;             /* -1 for node 0, the root; parent[i] < i */
    int32_t *frame;              /* index into frames, MTA_FT_ROOT or MTA_FT_OTHER */
    uint32_t *merged;            /* per node: the call-tree nodes an "other" node
                                    stands for; 0 for the others */
    bool pruned;                 /* some nodes were merged into "other" nodes */
    double threshold;            /* when pruned: the share kept nodes reach */
    size_t nodes_merged;         /* call-tree nodes folded into "other" nodes */
    size_t nodes_kept;           /* call-tree nodes kept (the root included) */
    /* private */
    mta_group_t **groups;        /* per snapshot: its stacks (STACK, KEEP_EMPTY, filter) */
    uint32_t **node_of;          /* per snapshot, per group entry: its node */
    uint64_t **lost;             /* per snapshot: NULL, or per stack definite bytes,
                                    blocks, possible bytes, blocks */
} mta_flametree_t;

/* Builds the tree of snaps[0..n) (they must outlive it). Returns 0 or
 * -ENOMEM; on success mta_flametree_free() releases *t. */
int mta_flametree_build(mta_flametree_t *t, const mta_snapshot_t *const *snaps, size_t n,
                        const mta_ft_opts_t *o);
void mta_flametree_free(mta_flametree_t *t);

/* Whether snapshot s has metric m (the lost kinds need a LEAKS record). */
bool mta_flametree_has(const mta_flametree_t *t, size_t s, mta_ft_metric_t m);

/* The inclusive values of snapshot s: v[(2 * m + 0) * nnodes + i] the bytes
 * and v[(2 * m + 1) * nnodes + i] the blocks of metric m at node i (0 for
 * the metrics it does not have). v holds 2 * MTA_FT_NMETRICS * nnodes. */
void mta_flametree_values(const mta_flametree_t *t, size_t s, uint64_t *v);

#endif /* MTA_FLAMETREE_H */
