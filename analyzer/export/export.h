/* `memtrail export`: a snapshot in the formats other viewers read (pprof,
 * collapsed stacks for flame graphs, speedscope), and the signed collapsed diff. */
#ifndef MTA_EXPORT_H
#define MTA_EXPORT_H

#include <stdio.h>

#include "filter.h"
#include "group.h"
#include "snapshot.h"

typedef enum mta_export_format {
    MTA_EXPORT_PPROF = 0,
    MTA_EXPORT_COLLAPSED,
    MTA_EXPORT_SPEEDSCOPE,
} mta_export_format_t;

/* "pprof", "collapsed", "speedscope" and back; parse: -EINVAL if unknown. */
int mta_export_format_parse(const char *name, mta_export_format_t *out);

/* Collapsed stacks: "root;...;leaf BYTES", one line per entry of g with live
 * bytes, in g's order (largest first). Each frame is mta_frame_label().
 * g should be a STACK grouping with portable keys, so that equal stacks are
 * one line. Returns 0 or -ENOMEM. */
int mta_export_collapsed(FILE *out, mta_group_t *g);
/* One collapsed line for entry e of g with `weight`; `labels` caches the
 * frame labels (mta_collapsed_labels(), one slot per snapshot frame). */
int mta_collapsed_line(FILE *out, mta_group_t *g, const mta_group_entry_t *e, char **labels,
                       int64_t weight);
char **mta_collapsed_labels(const mta_group_t *g);
void mta_collapsed_labels_free(const mta_group_t *g, char **labels);

/* The label a frame gets in flame graphs: the function name (or
 * module+0xOFF), then " (file:line)" when the file is known; ';' and
 * control characters replaced so that the collapsed form stays parseable.
 * Newly allocated; NULL on ENOMEM. */
char *mta_frame_label(mta_group_t *g, uint32_t f);

/* Exports `snap` (its blocks selected by `filter`, may be NULL) to `out`. Returns 0,
 * -ENOMEM or -EIO. */
int mta_export(FILE *out, const mta_snapshot_t *snap, mta_export_format_t format,
               const mta_filter_t *filter);

/* pprof's profile.proto, gzip'd (analyzer/pprof.c). */
int mta_export_pprof(FILE *out, const mta_snapshot_t *snap, const mta_filter_t *filter);

#endif /* MTA_EXPORT_H */
