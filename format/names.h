/* Names of the numbers a snapshot holds, both ways: triggers (file names,
 * reports), leak kinds (--kind, JSON) and allocation domains (--domain).
 * The tables come from the X-macros of include/memtrail_format.h, so a name
 * is spelled once for the writer, the reader and the tests. */
#ifndef MTF_NAMES_H
#define MTF_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "memtrail_format.h"

/* "exit", "signal", "interval", "api", "final"; "unknown" for anything else. */
const char *mtf_trigger_name(uint32_t trigger);
/* The trigger named by the n bytes at s, or -EINVAL. */
int mtf_trigger_parse(const char *s, size_t n);

/* "unscanned", "definite", "indirect", "possible", "reachable", "libc"; "?"
 * for anything else. */
const char *mtf_leak_kind_name(unsigned kind);
/* The kind named by the n bytes at s, or -EINVAL. */
int mtf_leak_kind_parse(const char *s, size_t n);

/* "native", "raw", "mem", "obj" for the built-in domains; NULL for the
 * others (extension domains have numbers, not names). */
const char *mtf_domain_name(uint32_t domain);
/* The built-in domain named s, or -EINVAL. */
int mtf_domain_parse(const char *s);

#endif /* MTF_NAMES_H */
