/* What the option structs of the analyses share (report.h, diff.h, leaks.h,
 * cycles.h): the output format asked for, and the return value of a command
 * whose CI gate failed. Renderers read the format; analyses only carry it. */
#ifndef MTA_OPTIONS_H
#define MTA_OPTIONS_H

#include <stdint.h>

typedef enum mta_format {
    MTA_FORMAT_TEXT = 0,
    MTA_FORMAT_JSON,
    MTA_FORMAT_MARKDOWN,   /* diff only */
    MTA_FORMAT_COLLAPSED,  /* diff only */
} mta_format_t;

/* Returned (> 0) by mta_report(), mta_diff(), mta_leaks() and mta_cycles()
 * when a --fail-* limit was passed; the verdict is in the output. */
#define MTA_GATE_FAILED 1

/* |v| without overflow for INT64_MIN. */
static inline uint64_t mta_mag(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/* a - b for unsigned counts as a signed change, saturated: INT64_MAX when it
 * is larger, INT64_MIN when smaller (counts at or above 2^63 only come from
 * damaged or forged snapshots; the result keeps at least the right sign). */
static inline int64_t mta_change(uint64_t a, uint64_t b)
{
    if (a >= b)
        return a - b > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(a - b);
    return b - a > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)(b - a);
}

#endif /* MTA_OPTIONS_H */
