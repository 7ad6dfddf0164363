/* `memtrail report`: renders a snapshot's live memory grouped by call site,
 * as text for people or as JSON (schema in docs/report-json.md). */
#ifndef MTA_REPORT_H
#define MTA_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "group.h"
#include "snapshot.h"

typedef enum mta_format {
    MTA_FORMAT_TEXT = 0,
    MTA_FORMAT_JSON,
    MTA_FORMAT_MARKDOWN,   /* diff only */
    MTA_FORMAT_COLLAPSED,  /* diff only */
} mta_format_t;

typedef struct mta_report_opts {
    mta_group_by_t group_by;
    size_t top;            /* entries shown; 0 = all */
    mta_format_t format;   /* text or json */
    const mta_filter_t *filter;  /* NULL: every block */
    bool fail_above_set;   /* --fail-above given */
    uint64_t fail_above;   /* bytes: fail when the selected live bytes exceed it */
} mta_report_opts_t;

/* Writes the report to `out`. Returns 0, MTA_GATE_FAILED when --fail-above
 * was passed (the verdict is in the output), -ENOMEM, or -EIO if writing
 * failed. */
#define MTA_GATE_FAILED 1
int mta_report(FILE *out, const mta_snapshot_t *snap, const mta_report_opts_t *opts);

/* Helpers shared with other renderers. */
struct mta_json;
/* "function (file:line) [module]" (with_line: the line too); -ENOMEM. */
int mta_put_frame(FILE *out, mta_group_t *g, uint32_t f, int with_line);
/* The site of a non-stack entry as the report's table shows it. */
int mta_put_site(FILE *out, mta_group_t *g, const mta_group_entry_t *e);
/* A string for a terminal: control characters become '?'. */
void mta_put_str(FILE *out, const char *s);
/* The JSON objects of docs/report-json.md: snapshot metadata and a frame. */
void mta_json_snapshot(struct mta_json *j, const mta_snapshot_t *s);
int mta_json_frame(struct mta_json *j, mta_group_t *g, uint32_t f);
const char *mta_trigger_name(uint32_t trigger);          /* "exit", ... */
/* "2024-11-21T05:08:00.123Z" (iso) or "2024-11-21 05:08:00.123 UTC". */
void mta_format_time(uint64_t ns, int iso, char *buf, size_t len);
/* "block" for 1, "blocks" otherwise. */
const char *mta_blocks_word(uint64_t n);
/* 1234567 -> "1,234,567". buf needs 27 bytes. */
void mta_format_count(uint64_t v, char *buf, size_t len);
/* 1234567 -> "1,234,567 B (1.18 MiB)"; below 1 KiB just "123 B". A
 * negative v gets a leading '-' (and `sign` adds '+' to positive ones). */
void mta_format_bytes(int64_t v, bool sign, char *buf, size_t len);

#endif /* MTA_REPORT_H */
