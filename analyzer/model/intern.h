/* String interning for the exporters: each distinct string gets a dense
 * index in order of first appearance (pprof's string table, speedscope's frames). */
#ifndef MTA_INTERN_H
#define MTA_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct mta_intern {
    size_t count;          /* strings interned */
    char **strings;        /* by index: NUL-terminated copies */
    size_t *lens;          /* by index: byte lengths */
    size_t cap;            /* capacity of strings/lens */
    uint32_t *slots;       /* open addressing: index + 1, 0 = empty */
    size_t nslots;         /* a power of two, at least twice count */
} mta_intern_t;

void mta_intern_init(mta_intern_t *t);
/* The index of s (len bytes), adding it if new; -ENOMEM on failure. */
int64_t mta_intern(mta_intern_t *t, const char *s, size_t len);
int64_t mta_intern_str(mta_intern_t *t, const char *s);
void mta_intern_free(mta_intern_t *t);

#endif /* MTA_INTERN_H */
