/*
 * Sizes in bytes as people write them, shared by both sides: the `memtrail`
 * command line (--fail-above, --sample...) and the preload
 * (MEMTRAIL_SAMPLE) read them with this one parser, so a value one side
 * accepts is never refused by the other.
 *
 * Accepted: a decimal number with an optional unit, case-insensitive, a
 * space allowed between them: B, K/KB, M/MB, G/GB, T/TB (powers of 1000),
 * KiB, MiB, GiB, TiB (powers of 1024). A fraction needs a unit ("1.5MiB");
 * a plain number is read exactly. "10MB" = 10,000,000, "512KiB" = 524,288,
 * "64K" = 64,000. Nothing allocates (the preload calls it at start-up, from
 * its constructor).
 */
#ifndef MEMTRAIL_SIZE_H
#define MEMTRAIL_SIZE_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

/* 0 and *out, or -1 when s is not a size or does not fit in 64 bits. */
static inline int mtsize_parse(const char *s, uint64_t *out)
{
    static const struct { const char *unit; double factor; } units[] = {
        { "", 1 },          { "b", 1 },
        { "k", 1e3 },       { "kb", 1e3 },      { "kib", 1024.0 },
        { "m", 1e6 },       { "mb", 1e6 },      { "mib", 1048576.0 },
        { "g", 1e9 },       { "gb", 1e9 },      { "gib", 1073741824.0 },
        { "t", 1e12 },      { "tb", 1e12 },     { "tib", 1099511627776.0 },
    };
    char *end;
    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    int saved = errno;
    errno = 0;
    /* Integers exactly (no rounding through double); fractions need a unit. */
    unsigned long long whole = strtoull(s, &end, 10);
    double v = (double)whole;
    int fraction = *end == '.';
    if (!errno && fraction)
        v = strtod(s, &end);
    int bad = errno || !isfinite(v);
    errno = saved;
    if (bad)
        return -1;
    const char *unit = end;
    while (*unit == ' ')
        unit++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(unit, units[i].unit) != 0)
            continue;
        if (units[i].factor == 1) {
            if (fraction)
                return -1;
            *out = whole;
            return 0;
        }
        double bytes = v * units[i].factor;
        if (bytes >= 18446744073709551616.0)
            return -1;
        *out = (uint64_t)(bytes + 0.5);
        return 0;
    }
    return -1;
}

#endif /* MEMTRAIL_SIZE_H */
