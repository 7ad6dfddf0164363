/* `memtrail leaks`: the snapshot's leak scan (LEAKS record) as memcheck
 * shows it, loss records per allocating stack and kind (computed in
 * analysis/leaks.c, rendered as text or JSON by render/leaks_render.c). */
#ifndef MTA_LEAKS_H
#define MTA_LEAKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "group.h"
#include "options.h"
#include "snapshot.h"

/* A set of enum mtsnap_leak_kind values: bit (1u << kind). */
#define MTA_LEAK_BIT(kind) (1u << (kind))
#define MTA_LEAK_ALL ((1u << (MTSNAP_LEAK_KIND_MAX + 1)) - 1)
/* memcheck's --show-leak-kinds default. */
#define MTA_LEAK_DEFAULT (MTA_LEAK_BIT(MTSNAP_LEAK_DEFINITE) | MTA_LEAK_BIT(MTSNAP_LEAK_POSSIBLE))
/* The kinds --fail-on-leak fails on (when shown). */
#define MTA_LEAK_LOST                                                                      \
    (MTA_LEAK_BIT(MTSNAP_LEAK_DEFINITE) | MTA_LEAK_BIT(MTSNAP_LEAK_INDIRECT) |            \
     MTA_LEAK_BIT(MTSNAP_LEAK_POSSIBLE))

typedef struct mta_leaks_opts {
    unsigned kinds;              /* loss records shown: MTA_LEAK_BIT set */
    size_t top;                  /* loss records shown at most; 0 = all */
    mta_format_t format;         /* text or json */
    const mta_filter_t *filter;  /* NULL: every block */
    bool fail_on_leak;           /* --fail-on-leak: a verdict, MTA_GATE_FAILED */
} mta_leaks_opts_t;

#define MTA_LEAK_NKINDS (MTSNAP_LEAK_KIND_MAX + 1)
/* The kinds worst first: the order of loss records, of the summary and of
 * the names in lists. */
extern const uint8_t mta_leak_kind_order[MTA_LEAK_NKINDS];

typedef struct mta_leak_tally {
    uint64_t bytes, blocks;
} mta_leak_tally_t;

/* One loss record: the blocks of one kind allocated from one stack. */
typedef struct mta_leak_record {
    uint64_t bytes, blocks;
    uint32_t stack;
    uint32_t kind;
} mta_leak_record_t;

typedef struct mta_leak_scan {
    const mta_snapshot_t *snap;
    mta_group_t *g;              /* frame names; with patterns, the selected stacks */
    bool filtered;               /* a filter left blocks out */
    mta_leak_tally_t sum[MTA_LEAK_NKINDS];  /* every kind, of the selected blocks */
    size_t nrecords;
    mta_leak_record_t *records;  /* of the kinds shown, sorted worst first */
    bool failed;                 /* --fail-on-leak: a shown lost kind has blocks */
} mta_leak_scan_t;

/* Sums the selected blocks of `snap` per kind and per (stack, shown kind).
 * Returns 0, -ENODATA without a LEAKS record, or -ENOMEM; on success
 * mta_leaks_clear() releases *l. */
int mta_leaks_compute(const mta_snapshot_t *snap, const mta_leaks_opts_t *opts,
                      mta_leak_scan_t *l);
void mta_leaks_clear(mta_leak_scan_t *l);


/* A --kind list: names of mtf_leak_kind_name() (format/names.h) or "all", separated by
 * commas, into a set. Returns 0, or -EINVAL with the offending item (""
 * for an empty one) copied into bad. */
int mta_leak_kinds_parse(const char *list, unsigned *kinds, char *bad, size_t badlen);
/* The words of a --kind list: the kinds in the order of the loss records,
 * then "all"; NULL after the last. */
const char *mta_leak_kind_word(unsigned i);

#endif /* MTA_LEAKS_H */
