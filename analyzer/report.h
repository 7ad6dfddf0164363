/* `memtrail report`: renders a snapshot's live memory grouped by call site,
 * as text for people or as JSON (schema in docs/report-json.md). */
#ifndef MTA_REPORT_H
#define MTA_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "group.h"
#include "snapshot.h"

typedef enum mta_format { MTA_FORMAT_TEXT = 0, MTA_FORMAT_JSON } mta_format_t;

typedef struct mta_report_opts {
    mta_group_by_t group_by;
    size_t top;            /* entries shown; 0 = all */
    mta_format_t format;
} mta_report_opts_t;

/* Writes the report to `out`. Returns 0, -ENOMEM, or -EIO if writing failed. */
int mta_report(FILE *out, const mta_snapshot_t *snap, const mta_report_opts_t *opts);

/* Helpers shared with other renderers. */
const char *mta_trigger_name(uint32_t trigger);          /* "exit", ... */
/* "2024-11-21T05:08:00.123Z" (iso) or "2024-11-21 05:08:00.123 UTC". */
void mta_format_time(uint64_t ns, int iso, char *buf, size_t len);
/* 1234567 -> "1,234,567". buf needs 27 bytes. */
void mta_format_count(uint64_t v, char *buf, size_t len);

#endif /* MTA_REPORT_H */
