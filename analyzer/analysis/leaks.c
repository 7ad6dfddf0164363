/*
 * `memtrail leaks`: loss records per (allocating stack, kind) from the
 * snapshot's LEAKS record, and the sums per kind behind memcheck's LEAK
 * SUMMARY (render/leaks_render.c writes them).
 *
 * The filters select stacks (by their frames, through mta_group()) and
 * blocks (by domain); the sums per kind count every selected block, the
 * loss records only the kinds shown. Records are ordered by kind, worst
 * first (mta_leak_kind_order), then bytes, blocks and stack index, all descending
 * but the stack: the order is total, so outputs are reproducible.
 * --fail-on-leak fails when a shown kind among definite, indirect and
 * possible has a selected block.
 */
#include "leaks.h"
#include "names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

#define NKINDS MTA_LEAK_NKINDS

/* The kinds worst first: the order of loss records, of the summary and of
 * the names in lists. */
const uint8_t mta_leak_kind_order[MTA_LEAK_NKINDS] = {
    MTSNAP_LEAK_DEFINITE, MTSNAP_LEAK_INDIRECT, MTSNAP_LEAK_POSSIBLE,
    MTSNAP_LEAK_REACHABLE, MTSNAP_LEAK_LIBC, MTSNAP_LEAK_UNSCANNED,
};

/* Position of each kind in mta_leak_kind_order. The names (--kind, JSON)
 * are the format library's (mtf_leak_kind_name). */
static const uint8_t kind_rank[NKINDS] = {
    [MTSNAP_LEAK_DEFINITE] = 0, [MTSNAP_LEAK_INDIRECT] = 1, [MTSNAP_LEAK_POSSIBLE] = 2,
    [MTSNAP_LEAK_REACHABLE] = 3, [MTSNAP_LEAK_LIBC] = 4,    [MTSNAP_LEAK_UNSCANNED] = 5,
};

static const char all_kinds[] = "all";

const char *mta_leak_kind_word(unsigned i)
{
    for (unsigned k = 0; k < MTA_LEAK_NKINDS; k++)
        if (mta_leak_kind_order[k] == i)
            return mtf_leak_kind_name(k);
    return i == MTA_LEAK_NKINDS ? all_kinds : NULL;
}

int mta_leak_kinds_parse(const char *list, unsigned *out, char *bad, size_t badlen)
{
    unsigned set = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        if (n == sizeof(all_kinds) - 1 && strncmp(p, all_kinds, n) == 0)
            bit = MTA_LEAK_ALL;
        int k = bit ? -1 : mtf_leak_kind_parse(p, n);
        if (k >= 0)
            bit = MTA_LEAK_BIT((unsigned)k);
        if (!bit) {
            snprintf(bad, badlen, "%.*s", (int)n, p);
            return -EINVAL;
        }
        set |= bit;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    *out = set;
    return 0;
}

/* ---- the loss records ------------------------------------------------------ */

static int record_cmp(const void *a, const void *b)
{
    const mta_leak_record_t *x = a, *y = b;
    if (x->kind != y->kind)
        return kind_rank[x->kind] < kind_rank[y->kind] ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Sums the selected blocks per kind and per (stack, shown kind). Stacks are
 * selected by the patterns through mta_group() (on their STACK_STATS row),
 * blocks by their domain. */
static int leaks_compute(mta_leak_scan_t *l, const mta_leaks_opts_t *o)
{
    const mta_snapshot_t *s = l->snap;
    uint8_t *sel = NULL;
    mta_leak_tally_t *cells = NULL;
    int slot[NKINDS], rc = mta_group(s, MTA_GROUP_STACK, MTA_GROUP_KEEP_EMPTY, o->filter, &l->g);
    unsigned kind_of[NKINDS];
    size_t nshown = 0, n = 0;
    if (rc < 0)
        return rc;
    l->filtered = l->g->filtered;
    rc = -ENOMEM;
    if (mta_filter_has_patterns(o->filter)) {
        if (!(sel = calloc(s->nstacks ? s->nstacks : 1, 1)))
            goto out;
        for (size_t i = 0; i < l->g->nentries; i++)
            sel[l->g->entries[i].stack] = 1;
    }
    for (unsigned k = 0; k < NKINDS; k++) {
        slot[k] = -1;
        if (o->kinds & MTA_LEAK_BIT(k)) {
            kind_of[nshown] = k;
            slot[k] = (int)nshown++;
        }
    }
    size_t ncells = (size_t)s->nstacks * nshown;
    if (!(cells = calloc(ncells ? ncells : 1, sizeof(*cells))))
        goto out;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        unsigned k = s->leak_kind[i];
        if ((sel && !sel[b->stack]) || !mta_filter_domain(o->filter, b->domain))
            continue;
        /* blocks in units (a sampled block stands for more: snapshot.h) */
        uint64_t bytes = mta_block_bytes(s, b), units = mta_block_units(s, b);
        l->sum[k].bytes += bytes;
        l->sum[k].blocks += units;
        if (slot[k] >= 0) {
            mta_leak_tally_t *c = &cells[(size_t)b->stack * nshown + (size_t)slot[k]];
            n += c->blocks == 0;
            c->bytes += bytes;
            c->blocks += units;
        }
    }
    for (unsigned k = 0; k < NKINDS; k++)
        l->sum[k].blocks = mta_units_blocks(s, l->sum[k].blocks);
    if (!(l->records = malloc(n ? n * sizeof(*l->records) : 1)))
        goto out;
    for (size_t c = 0; c < ncells; c++) {
        if (cells[c].blocks == 0)
            continue;
        l->records[l->nrecords++] = (mta_leak_record_t){ .bytes = cells[c].bytes,
                                                .blocks = mta_units_blocks(s, cells[c].blocks),
                                                .stack = (uint32_t)(c / nshown),
                                                .kind = kind_of[c % nshown] };
    }
    qsort(l->records, l->nrecords, sizeof(*l->records), record_cmp);
    rc = 0;
out:
    free(sel);
    free(cells);
    return rc;
}

/* The --fail-on-leak decision: a shown kind among definite, indirect and
 * possible has a selected block. */
static void leaks_gate(mta_leak_scan_t *l, const mta_leaks_opts_t *o)
{
    unsigned checked = o->kinds & MTA_LEAK_LOST;
    l->failed = false;
    for (unsigned k = 0; o->fail_on_leak && k < NKINDS; k++)
        l->failed |= (checked & MTA_LEAK_BIT(k)) && l->sum[k].blocks > 0;
}

int mta_leaks_compute(const mta_snapshot_t *snap, const mta_leaks_opts_t *o, mta_leak_scan_t *l)
{
    int rc;
    *l = (mta_leak_scan_t){ .snap = snap };
    if (!snap->has_leaks)
        return -ENODATA;
    if ((rc = leaks_compute(l, o)) < 0) {
        mta_leaks_clear(l);
        return rc;
    }
    leaks_gate(l, o);
    return 0;
}

void mta_leaks_clear(mta_leak_scan_t *l)
{
    free(l->records);
    mta_group_free(l->g);
    l->records = NULL;
    l->g = NULL;
    l->nrecords = 0;
}
