/* `memtrail report`: renders a snapshot's live memory grouped by call site,
 * as text for people or as JSON (schema in docs/report-json.md). */
#ifndef MTA_REPORT_H
#define MTA_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "filter.h"
#include "group.h"
#include "options.h"
#include "snapshot.h"

typedef struct mta_report_opts {
    mta_group_by_t group_by;
    size_t top;            /* entries shown; 0 = all */
    mta_format_t format;   /* text or json */
    const mta_filter_t *filter;  /* NULL: every block */
    bool keep_empty;       /* keep entries with no live bytes (sites that only made
                              up the peak or allocated; `memtrail html`'s table),
                              and (JSON) let --top keep the N largest by live, by
                              peak and by allocated bytes, each */
    bool fail_above_set;   /* --fail-above given */
    uint64_t fail_above;   /* bytes: fail when the selected live bytes exceed it */
    mta_metric_t metric;   /* the figure that ranks and is shown (default live) */
    bool fail_on_peak_set; /* --fail-on-peak given */
    uint64_t fail_on_peak; /* bytes: fail when the bytes at the peak
                              (mta_group_peak_bytes) exceed it */
} mta_report_opts_t;

/* Writes the report to `out`. Returns 0, MTA_GATE_FAILED when --fail-above
 * or --fail-on-peak was passed (the verdict is in the output), -ENOMEM, or
 * -EIO if writing failed. */
int mta_report(FILE *out, const mta_snapshot_t *snap, const mta_report_opts_t *opts);

#endif /* MTA_REPORT_H */
