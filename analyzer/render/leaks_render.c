/* `memtrail leaks` renderers: the loss records of analysis/leaks.c, worst
 * first, and memcheck's LEAK SUMMARY, as text or JSON, with memcheck's
 * words for each kind. */
#include "leaks.h"
#include "outputs.h"
#include "names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "group.h"
#include "json.h"

#define NKINDS MTA_LEAK_NKINDS

/* memcheck's words for each kind. */
static const struct kind_words {
    const char *summary;  /* the LEAK SUMMARY label */
    const char *verb;     /* "N B in M blocks ..." of a loss record */
    const char *adverb;   /* the verdict: "definitely lost" */
} kinds[NKINDS] = {
    [MTSNAP_LEAK_DEFINITE] = { "definitely lost", "are definitely lost", "definitely" },
    [MTSNAP_LEAK_INDIRECT] = { "indirectly lost", "are indirectly lost", "indirectly" },
    [MTSNAP_LEAK_POSSIBLE] = { "possibly lost", "are possibly lost", "possibly" },
    [MTSNAP_LEAK_REACHABLE] = { "still reachable", "are still reachable", "" },
    [MTSNAP_LEAK_LIBC] = { "C library's own", "are reachable only from the C library's data", "" },
    [MTSNAP_LEAK_UNSCANNED] = { "unscanned", "were not scanned", "" },
};

/* The --fail-on-leak verdict (decided by analysis/leaks.c): the lost kinds
 * found, or the kinds checked. */
static void leaks_verdict(const mta_leak_scan_t *l, const mta_leaks_opts_t *o, mta_verdict_t *v)
{
    unsigned checked = o->kinds & MTA_LEAK_LOST, nchecked = 0, i = 0;
    size_t len = 0;
    *v = (mta_verdict_t){ .set = o->fail_on_leak };
    if (!v->set)
        return;
    v->failed = l->failed;
    for (unsigned k = 0; k < NKINDS; k++)
        nchecked += (checked & MTA_LEAK_BIT(k)) != 0;
    const char *among = l->filtered ? " among the blocks selected by the filters" : "";
    if (nchecked == 0) {
        snprintf(v->message, sizeof(v->message),
                 "ok: --kind shows no lost kind (definite, indirect, possible) (--fail-on-leak)");
        return;
    }
    len = (size_t)snprintf(v->message, sizeof(v->message), "%s", v->failed ? "FAIL: " : "ok: nothing ");
    for (unsigned r = 0; r < NKINDS && len < sizeof(v->message); r++) {
        unsigned k = mta_leak_kind_order[r];
        char a[MTA_SIZE_LEN + 40];
        if (!(checked & MTA_LEAK_BIT(k)))
            continue;
        if (v->failed && l->sum[k].blocks == 0)
            continue;
        if (v->failed) {
            mta_format_bytes_in(l->sum[k].bytes, l->sum[k].blocks, a, sizeof(a));
            len += (size_t)snprintf(v->message + len, sizeof(v->message) - len, "%s%s %s",
                                    i ? ", " : "", a, kinds[k].summary);
        } else {
            len += (size_t)snprintf(v->message + len, sizeof(v->message) - len, "%s%s",
                                    i == 0 ? "" : i + 1 == nchecked ? " or " : ", ",
                                    kinds[k].adverb);
        }
        i++;
    }
    if (len < sizeof(v->message))
        snprintf(v->message + len, sizeof(v->message) - len, "%s%s (--fail-on-leak)",
                 v->failed ? "" : " lost", among);
}

/* ---- text ------------------------------------------------------------------ */

/* "definite, possible": the names of a set of kinds, worst first. */
static void put_kinds(FILE *out, unsigned set)
{
    bool first = true;
    for (unsigned r = 0; r < NKINDS; r++) {
        if (!(set & MTA_LEAK_BIT(mta_leak_kind_order[r])))
            continue;
        fprintf(out, "%s%s", first ? "" : ", ", mtf_leak_kind_name(mta_leak_kind_order[r]));
        first = false;
    }
    if (first)
        fputs("none", out);
}

/* The paint of a kind: the lost ones stand out. */
static mta_paint_t kind_paint(unsigned k, bool *painted)
{
    *painted = k == MTSNAP_LEAK_DEFINITE || k == MTSNAP_LEAK_INDIRECT || k == MTSNAP_LEAK_POSSIBLE;
    return k == MTSNAP_LEAK_DEFINITE ? MTA_PAINT_BAD : MTA_PAINT_WARN;
}

/* s in the paint of kind k (plain for the kinds that are not lost). */
static void put_kind_text(FILE *out, unsigned k, const char *s)
{
    bool painted;
    mta_paint_t p = kind_paint(k, &painted);
    if (painted)
        mta_put_painted(out, p, s);
    else
        fputs(s, out);
}

static void text_header(FILE *out, const mta_leak_scan_t *l)
{
    const mta_snapshot_t *s = l->snap;
    char a[MTA_SIZE_LEN + 40];
    mta_put_snapshot_header(out, s, MTA_HEADER_INDENTED, "memtrail leaks");
    mta_format_bytes_in(s->totals.live_bytes, s->totals.live_blocks, a, sizeof(a));
    fprintf(out, "; live: %s\n", a);
}

static int text_record(FILE *out, const mta_leak_scan_t *l, const mta_leak_record_t *r, size_t rank)
{
    const mta_stack_t *st = &l->snap->stacks[r->stack];
    char a[MTA_SIZE_LEN + 40];
    mta_format_bytes_in(r->bytes, r->blocks, a, sizeof(a));
    fprintf(out, "\n%s ", a);
    put_kind_text(out, r->kind, kinds[r->kind].verb);
    fprintf(out, " (loss record %zu of %zu)\n", rank, l->nrecords);
    return mta_put_stack(out, l->g, st->frames, st->depth, true, true);
}

static void text_summary(FILE *out, const mta_leak_scan_t *l)
{
    const mtsnap_leak_header_t *h = &l->snap->leak;
    char a[MTA_SIZE_LEN + 40], b[MTA_SIZE_LEN];
    fputc('\n', out);
    mta_put_painted(out, MTA_PAINT_HEADING, l->filtered ? "LEAK SUMMARY (blocks selected by the filters):"
                                                       : "LEAK SUMMARY:");
    fputc('\n', out);
    for (unsigned r = 0; r < NKINDS; r++) {
        unsigned k = mta_leak_kind_order[r];
        const mta_leak_tally_t *t = &l->sum[k];
        if (k == MTSNAP_LEAK_UNSCANNED && t->blocks == 0)
            continue;
        mta_format_bytes_in(t->bytes, t->blocks, a, sizeof(a));
        fprintf(out, "%*s", (int)(18 - strlen(kinds[k].summary)), "");
        if (t->blocks)
            put_kind_text(out, k, kinds[k].summary);
        else
            fputs(kinds[k].summary, out);
        fprintf(out, ": %s%s\n", a,
                k == MTSNAP_LEAK_LIBC ? "   (reached only from libc's data; valgrind frees these at exit)"
                : k == MTSNAP_LEAK_UNSCANNED ? "   (their memory could not be read at scan time)"
                                             : "");
    }
    mta_format_size(h->root_bytes, a, sizeof(a));
    mta_format_size(h->heap_bytes, b, sizeof(b));
    fprintf(out, "%18s: %" PRIu32 " (stopped for %.3f ms; %s of roots and %s of blocks read)\n",
            "threads scanned", h->threads, (double)h->stop_ns / 1e6, a, b);
    if (l->snap->has_sampling)
        fprintf(out, "%18s: estimates; the scan read the sampled blocks only, so a block held\n"
                "%18s  only through blocks that were not sampled reads as lost\n", "sampled", "");
    if (h->threads_missed > 0)
        fprintf(out, "%18s: %" PRIu32 " %s did not stop in time (scanned while running, or not at all)\n",
                "partial scan", h->threads_missed, mta_plural(h->threads_missed, "thread", "threads"));
    else if (h->flags & MTSNAP_LEAK_F_PARTIAL)
        fprintf(out, "%18s: a thread did not stop in time (scanned while running, or not at all)\n",
                "partial scan");
}

static int leaks_text(FILE *out, const mta_leak_scan_t *l, const mta_leaks_opts_t *o,
                      const mta_verdict_t *v)
{
    size_t shown = o->top && o->top < l->nrecords ? o->top : l->nrecords;
    int rc = 0;
    text_header(out, l);
    if (l->nrecords == 0) {
        fputs("\nno blocks of the kinds shown (", out);
        put_kinds(out, o->kinds);
        fprintf(out, ")%s\n", l->filtered ? " among the blocks selected by the filters" : "");
    }
    for (size_t i = 0; i < shown && rc == 0; i++)
        rc = text_record(out, l, &l->records[i], i + 1);
    if (rc < 0)
        return rc;
    if (shown < l->nrecords) {
        uint64_t bytes = 0, blocks = 0;
        for (size_t i = shown; i < l->nrecords; i++) {
            bytes += l->records[i].bytes;
            blocks += l->records[i].blocks;
        }
        mta_put_more(out, l->nrecords - shown,
                     mta_plural(l->nrecords - shown, "loss record", "loss records"), bytes, blocks);
    }
    text_summary(out, l);
    if ((o->kinds & MTA_LEAK_ALL) != MTA_LEAK_ALL) {
        fputs("\nloss records shown: ", out);
        put_kinds(out, o->kinds);
        fputs(" (--kind all shows every kind)\n", out);
    }
    mta_put_verdict(out, v);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_tally(mta_json_t *j, const mta_leak_tally_t *t)
{
    mta_json_begin_object(j);
    mta_json_key(j, "bytes");
    mta_json_u64(j, t->bytes);
    mta_json_key(j, "blocks");
    mta_json_u64(j, t->blocks);
    mta_json_end_object(j);
}

static void json_scan(mta_json_t *j, const mtsnap_leak_header_t *h)
{
    mta_json_begin_object(j);
    mta_json_key(j, "threads");
    mta_json_u64(j, h->threads);
    mta_json_key(j, "threads_missed");
    mta_json_u64(j, h->threads_missed);
    mta_json_key(j, "partial");
    mta_json_bool(j, (h->flags & MTSNAP_LEAK_F_PARTIAL) || h->threads_missed > 0);
    mta_json_key(j, "root_bytes");
    mta_json_u64(j, h->root_bytes);
    mta_json_key(j, "heap_bytes");
    mta_json_u64(j, h->heap_bytes);
    mta_json_key(j, "stop_ns");
    mta_json_u64(j, h->stop_ns);
    mta_json_end_object(j);
}

static int json_record(mta_json_t *j, const mta_leak_scan_t *l, const mta_leak_record_t *r)
{
    const mta_stack_t *st = &l->snap->stacks[r->stack];
    mta_json_begin_object(j);
    mta_json_key(j, "kind");
    mta_json_string(j, mtf_leak_kind_name(r->kind));
    mta_json_key(j, "bytes");
    mta_json_u64(j, r->bytes);
    mta_json_key(j, "blocks");
    mta_json_u64(j, r->blocks);
    mta_json_key(j, "stack");
    mta_json_u64(j, r->stack);
    mta_json_key(j, "frames");
    if (mta_json_frames(j, l->g, st->frames, st->depth, true) < 0)
        return -ENOMEM;
    mta_json_end_object(j);
    return 0;
}

static int leaks_json(FILE *out, const mta_leak_scan_t *l, const mta_leaks_opts_t *o,
                      const mta_verdict_t *v)
{
    size_t shown = o->top && o->top < l->nrecords ? o->top : l->nrecords;
    mta_json_t j;
    mta_json_init(&j, out);
    mta_json_begin_object(&j);
    mta_json_key(&j, "snapshot");
    mta_json_snapshot(&j, l->snap);
    mta_json_key(&j, "scan");
    json_scan(&j, &l->snap->leak);
    mta_json_key(&j, "summary");
    mta_json_begin_object(&j);
    for (unsigned r = 0; r < NKINDS; r++) {
        mta_json_key(&j, mtf_leak_kind_name(mta_leak_kind_order[r]));
        json_tally(&j, &l->sum[mta_leak_kind_order[r]]);
    }
    mta_json_end_object(&j);
    mta_json_key(&j, "filtered");
    mta_json_bool(&j, l->filtered);
    mta_json_key(&j, "kinds");
    mta_json_begin_array(&j);
    for (unsigned r = 0; r < NKINDS; r++)
        if (o->kinds & MTA_LEAK_BIT(mta_leak_kind_order[r]))
            mta_json_string(&j, mtf_leak_kind_name(mta_leak_kind_order[r]));
    mta_json_end_array(&j);
    mta_json_key(&j, "total_records");
    mta_json_u64(&j, l->nrecords);
    mta_json_key(&j, "leaks");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < shown; i++)
        if (json_record(&j, l, &l->records[i]) < 0)
            return -ENOMEM;
    mta_json_end_array(&j);
    mta_json_verdict(&j, v);
    mta_json_end_object(&j);
    return 0;
}

int mta_leaks(FILE *out, const mta_snapshot_t *snap, const mta_leaks_opts_t *opts)
{
    mta_leak_scan_t l;
    mta_verdict_t v;
    int rc = mta_leaks_compute(snap, opts, &l);
    if (rc < 0)
        return rc;
    leaks_verdict(&l, opts, &v);
    rc = opts->format == MTA_FORMAT_JSON ? leaks_json(out, &l, opts, &v)
                                         : leaks_text(out, &l, opts, &v);
    rc = mta_render_end(out, rc, &v);
    mta_leaks_clear(&l);
    return rc;
}
