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
/* The name of format i, in the order of mta_export_format_t, NULL after the
 * last: the words of `export --format`. */
const char *mta_export_format_word(unsigned i);

/* Collapsed stacks: "root;...;leaf BYTES", one line per entry of g with live
 * bytes, in g's order (largest first). Each frame is mta_frame_label()
 * (render/common.h).
 * g should be a STACK grouping with portable keys, so that equal stacks are
 * one line. Returns 0 or -ENOMEM. */
int mta_export_collapsed(FILE *out, mta_group_t *g);
/* Exports `snap` (its blocks selected by `filter`, may be NULL) to `out`. Returns 0,
 * -ENOMEM or -EIO. */
int mta_export(FILE *out, const mta_snapshot_t *snap, mta_export_format_t format,
               const mta_filter_t *filter);

/* pprof's profile.proto, gzip'd (analyzer/pprof.c). */
int mta_export_pprof(FILE *out, const mta_snapshot_t *snap, const mta_filter_t *filter);

#endif /* MTA_EXPORT_H */
