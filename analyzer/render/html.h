/* `memtrail html`: one self-contained HTML page (flame graphs, the diff of
 * two snapshots, the memory timeline, the report's table, leaks and Python
 * cycles) for one or more snapshots. html.c writes the data the page reads
 * (docs/html.md, "The embedded data") into the page template the build
 * embeds (html_template.c, from analyzer/render/html/). */
#ifndef MTA_HTML_H
#define MTA_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "filter.h"
#include "flametree.h"
#include "snapshot.h"

/* The node budget of the call tree by default: about 6 MB of data for one
 * snapshot at its largest (docs/html.md, "Size"). */
#define MTA_HTML_MAX_NODES 60000
/* The report's entries per key in the table by default. */
#define MTA_HTML_TOP 500
/* The loss records and Python cycles a snapshot's data holds at most (each
 * record carries its whole stack: about 7 KB in a Python program). */
#define MTA_HTML_LEAK_RECORDS 100
/* A series of n snapshots shares those budgets: by default the node budget
 * and the table's entries are MTA_HTML_MAX_NODES and MTA_HTML_TOP times
 * 2 / (n + 1), the table at least MTA_HTML_MIN_TOP entries (each snapshot
 * adds its values for every node, and its own table). */
#define MTA_HTML_MIN_TOP 100
void mta_html_series_defaults(size_t nsnaps, size_t *max_nodes, size_t *top);

typedef struct mta_html_opts {
    size_t top;                  /* the table's entries per key (report --top); 0 = all */
    size_t max_nodes;            /* the tree's node budget; 0 = none */
    double min_share;            /* merge nodes below this share even within the budget */
    const mta_filter_t *filter;  /* NULL: every block */
} mta_html_opts_t;

/* What was written, for the command's message and the tests. */
typedef struct mta_html_info {
    size_t nodes;                /* nodes in the tree, "other" nodes included */
    size_t frames;
    bool pruned;
    double threshold;            /* when pruned */
    size_t nodes_merged;
} mta_html_info_t;

/* Writes the JSON data of docs/html.md for snaps[0..n) (n >= 1, in the
 * order given), compact and safe inside a <script> element. info may be
 * NULL. Returns 0, -ENOMEM, or -EIO if writing failed. */
int mta_html_data(FILE *out, const mta_snapshot_t *const *snaps, size_t n,
                  const mta_html_opts_t *o, mta_html_info_t *info);

/* Writes the whole page: the template with the data and the title in it.
 * Returns as mta_html_data(). */
int mta_html(FILE *out, const mta_snapshot_t *const *snaps, size_t n, const mta_html_opts_t *o,
             mta_html_info_t *info);

/* The page template (html_template.c): parts[0], slot[0], parts[1], ...,
 * parts[nparts - 1]; slot i is what goes between parts i and i + 1. */
typedef enum mta_html_slot { MTA_HTML_SLOT_DATA, MTA_HTML_SLOT_TITLE } mta_html_slot_t;
typedef struct mta_html_part {
    const char *text;
    size_t len;
} mta_html_part_t;
extern const mta_html_part_t mta_html_parts[];
extern const mta_html_slot_t mta_html_slots[];
extern const size_t mta_html_nparts;

#endif /* MTA_HTML_H */
