/* `memtrail leaks` renderers: loss records per (stack, kind) from a LEAKS
 * record, worst first, and memcheck's LEAK SUMMARY, as text or JSON. */
#include "leaks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "json.h"

#define NKINDS (MTSNAP_LEAK_KIND_MAX + 1)

/* The kinds worst first: the order of loss records, of the summary and of
 * the names in lists. */
static const uint8_t kind_order[NKINDS] = {
    MTSNAP_LEAK_DEFINITE, MTSNAP_LEAK_INDIRECT, MTSNAP_LEAK_POSSIBLE,
    MTSNAP_LEAK_REACHABLE, MTSNAP_LEAK_LIBC, MTSNAP_LEAK_UNSCANNED,
};

static const struct kind_info {
    const char *name;     /* --kind and JSON */
    const char *summary;  /* the LEAK SUMMARY label */
    const char *verb;     /* "N B in M blocks ..." of a loss record */
    const char *adverb;   /* the verdict: "definitely lost" */
    uint8_t rank;         /* position in kind_order */
} kinds[NKINDS] = {
    [MTSNAP_LEAK_DEFINITE] = { "definite", "definitely lost", "are definitely lost", "definitely", 0 },
    [MTSNAP_LEAK_INDIRECT] = { "indirect", "indirectly lost", "are indirectly lost", "indirectly", 1 },
    [MTSNAP_LEAK_POSSIBLE] = { "possible", "possibly lost", "are possibly lost", "possibly", 2 },
    [MTSNAP_LEAK_REACHABLE] = { "reachable", "still reachable", "are still reachable", "", 3 },
    [MTSNAP_LEAK_LIBC] = { "libc", "C library's own",
                           "are reachable only from the C library's data", "", 4 },
    [MTSNAP_LEAK_UNSCANNED] = { "unscanned", "unscanned", "were not scanned", "", 5 },
};

const char *mta_leak_kind_name(unsigned kind)
{
    return kind < NKINDS ? kinds[kind].name : "?";
}

int mta_leak_kinds_parse(const char *list, unsigned *out, char *bad, size_t badlen)
{
    unsigned set = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        if (n == 3 && strncmp(p, "all", 3) == 0)
            bit = MTA_LEAK_ALL;
        for (unsigned k = 0; k < NKINDS && !bit; k++)
            if (strlen(kinds[k].name) == n && strncmp(p, kinds[k].name, n) == 0)
                bit = MTA_LEAK_BIT(k);
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

typedef struct tally {
    uint64_t bytes, blocks;
} tally_t;

/* One loss record: the blocks of one kind allocated from one stack. */
typedef struct record {
    uint64_t bytes, blocks;
    uint32_t stack;
    uint32_t kind;
} record_t;

typedef struct verdict {
    bool set, failed;
    char message[512];
} verdict_t;

typedef struct leaks {
    const mta_snapshot_t *snap;
    mta_group_t *g;          /* frame names; with patterns, the selected stacks */
    bool filtered;           /* a filter was given */
    tally_t sum[NKINDS];     /* every kind, of the selected blocks */
    size_t nrecords;
    record_t *records;       /* of the kinds shown, sorted worst first */
    verdict_t v;
} leaks_t;

static int record_cmp(const void *a, const void *b)
{
    const record_t *x = a, *y = b;
    if (x->kind != y->kind)
        return kinds[x->kind].rank < kinds[y->kind].rank ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Sums the selected blocks per kind and per (stack, shown kind). Stacks are
 * selected by the patterns through mta_group() (on their STACK_STATS row),
 * blocks by their domain. */
static int leaks_compute(leaks_t *l, const mta_leaks_opts_t *o)
{
    const mta_snapshot_t *s = l->snap;
    uint8_t *sel = NULL;
    tally_t *cells = NULL;
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
        l->sum[k].bytes += b->size;
        l->sum[k].blocks++;
        if (slot[k] >= 0) {
            tally_t *c = &cells[(size_t)b->stack * nshown + (size_t)slot[k]];
            n += c->blocks == 0;
            c->bytes += b->size;
            c->blocks++;
        }
    }
    if (!(l->records = malloc(n ? n * sizeof(*l->records) : 1)))
        goto out;
    for (size_t c = 0; c < ncells; c++) {
        if (cells[c].blocks == 0)
            continue;
        l->records[l->nrecords++] = (record_t){ .bytes = cells[c].bytes,
                                                .blocks = cells[c].blocks,
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

/* The --fail-on-leak verdict: the shown kinds among definite, indirect and
 * possible must have no block. */
static void leaks_verdict(leaks_t *l, const mta_leaks_opts_t *o)
{
    verdict_t *v = &l->v;
    unsigned checked = o->kinds & MTA_LEAK_LOST, nchecked = 0, i = 0;
    size_t len = 0;
    *v = (verdict_t){ .set = o->fail_on_leak };
    if (!v->set)
        return;
    for (unsigned r = 0; r < NKINDS; r++) {
        unsigned k = kind_order[r];
        if (checked & MTA_LEAK_BIT(k)) {
            nchecked++;
            v->failed |= l->sum[k].blocks > 0;
        }
    }
    const char *among = l->filtered ? " among the blocks selected by the filters" : "";
    if (nchecked == 0) {
        snprintf(v->message, sizeof(v->message),
                 "ok: --kind shows no lost kind (definite, indirect, possible) (--fail-on-leak)");
        return;
    }
    len = (size_t)snprintf(v->message, sizeof(v->message), "%s", v->failed ? "FAIL: " : "ok: nothing ");
    for (unsigned r = 0; r < NKINDS && len < sizeof(v->message); r++) {
        unsigned k = kind_order[r];
        char a[32], b[32];
        if (!(checked & MTA_LEAK_BIT(k)))
            continue;
        if (v->failed && l->sum[k].blocks == 0)
            continue;
        if (v->failed) {
            mta_format_count(l->sum[k].bytes, a, sizeof(a));
            mta_format_count(l->sum[k].blocks, b, sizeof(b));
            len += (size_t)snprintf(v->message + len, sizeof(v->message) - len,
                                    "%s%s B in %s %s %s", i ? ", " : "", a, b,
                                    mta_blocks_word(l->sum[k].blocks), kinds[k].summary);
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

/* The command line, NULs as spaces, control characters as '?'. */
static void put_cmdline(FILE *out, const mta_snapshot_t *s)
{
    size_t n = s->cmdline_len;
    if (n > 0 && s->cmdline[n - 1] == '\0')
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s->cmdline[i];
        fputc(c == 0 ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : c, out);
    }
}

/* "definite, possible": the names of a set of kinds, worst first. */
static void put_kinds(FILE *out, unsigned set)
{
    bool first = true;
    for (unsigned r = 0; r < NKINDS; r++) {
        if (!(set & MTA_LEAK_BIT(kind_order[r])))
            continue;
        fprintf(out, "%s%s", first ? "" : ", ", kinds[kind_order[r]].name);
        first = false;
    }
    if (first)
        fputs("none", out);
}

static void text_header(FILE *out, const leaks_t *l)
{
    const mta_snapshot_t *s = l->snap;
    char a[32], b[32], tm[48];
    fputs("memtrail leaks: ", out);
    mta_put_str(out, s->path);
    fprintf(out, " (pid %" PRIu32 ", %s)\n  command: ", s->meta.pid,
            mta_trigger_name(s->meta.trigger));
    put_cmdline(out, s);
    mta_format_time(s->meta.time_ns, 0, tm, sizeof(tm));
    fprintf(out, "\n  taken: %s, #%" PRIu32, tm, s->meta.seq);
    if (s->label[0]) {
        fputs(", label ", out);
        mta_put_str(out, s->label);
    }
    mta_format_count(s->totals.live_bytes, a, sizeof(a));
    mta_format_count(s->totals.live_blocks, b, sizeof(b));
    fprintf(out, "; live: %s B in %s %s\n", a, b, mta_blocks_word(s->totals.live_blocks));
}

static int text_record(FILE *out, const leaks_t *l, const record_t *r, size_t rank)
{
    const mta_stack_t *st = &l->snap->stacks[r->stack];
    char a[32], b[32];
    bool any = false;
    mta_format_count(r->bytes, a, sizeof(a));
    mta_format_count(r->blocks, b, sizeof(b));
    fprintf(out, "\n%s B in %s %s %s (loss record %zu of %zu)\n", a, b, mta_blocks_word(r->blocks),
            kinds[r->kind].verb, rank, l->nrecords);
    for (uint32_t i = 0; i < st->depth; i++) {
        uint32_t f = st->frames[i];
        if (mta_frame_hidden(l->snap, f))
            continue;
        fputs(any ? "    by " : "    at ", out);
        if (mta_put_frame(out, l->g, f, 1) < 0)
            return -ENOMEM;
        fputc('\n', out);
        any = true;
    }
    if (!any)
        fputs("    [unknown stack]\n", out);
    return 0;
}

static void text_summary(FILE *out, const leaks_t *l)
{
    const mtsnap_leak_header_t *h = &l->snap->leak;
    char a[32], b[32];
    fputs(l->filtered ? "\nLEAK SUMMARY (blocks selected by the filters):\n" : "\nLEAK SUMMARY:\n",
          out);
    for (unsigned r = 0; r < NKINDS; r++) {
        unsigned k = kind_order[r];
        const tally_t *t = &l->sum[k];
        if (k == MTSNAP_LEAK_UNSCANNED && t->blocks == 0)
            continue;
        mta_format_count(t->bytes, a, sizeof(a));
        mta_format_count(t->blocks, b, sizeof(b));
        fprintf(out, "%18s: %s B in %s %s%s\n", kinds[k].summary, a, b, mta_blocks_word(t->blocks),
                k == MTSNAP_LEAK_LIBC ? "   (reached only from libc's data; valgrind frees these at exit)"
                : k == MTSNAP_LEAK_UNSCANNED ? "   (their memory could not be read at scan time)"
                                             : "");
    }
    mta_format_count(h->root_bytes, a, sizeof(a));
    mta_format_count(h->heap_bytes, b, sizeof(b));
    fprintf(out, "%18s: %" PRIu32 " (stopped for %.3f ms; %s B of roots and %s B of blocks read)\n",
            "threads scanned", h->threads, (double)h->stop_ns / 1e6, a, b);
    if (h->threads_missed > 0)
        fprintf(out, "%18s: %" PRIu32 " %s did not stop in time (scanned while running, or not at all)\n",
                "partial scan", h->threads_missed, h->threads_missed == 1 ? "thread" : "threads");
    else if (h->flags & MTSNAP_LEAK_F_PARTIAL)
        fprintf(out, "%18s: a thread did not stop in time (scanned while running, or not at all)\n",
                "partial scan");
}

static int leaks_text(FILE *out, const leaks_t *l, const mta_leaks_opts_t *o)
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
        char a[32], b[32];
        for (size_t i = shown; i < l->nrecords; i++) {
            bytes += l->records[i].bytes;
            blocks += l->records[i].blocks;
        }
        mta_format_count(bytes, a, sizeof(a));
        mta_format_count(blocks, b, sizeof(b));
        fprintf(out, "\n... %zu more loss %s with %s B in %s %s (--top 0 shows all)\n",
                l->nrecords - shown, l->nrecords - shown == 1 ? "record" : "records", a, b,
                mta_blocks_word(blocks));
    }
    text_summary(out, l);
    if ((o->kinds & MTA_LEAK_ALL) != MTA_LEAK_ALL) {
        fputs("\nloss records shown: ", out);
        put_kinds(out, o->kinds);
        fputs(" (--kind all shows every kind)\n", out);
    }
    if (l->v.set)
        fprintf(out, "\nverdict: %s\n", l->v.message);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_tally(mta_json_t *j, const tally_t *t)
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

static int json_record(mta_json_t *j, const leaks_t *l, const record_t *r)
{
    const mta_stack_t *st = &l->snap->stacks[r->stack];
    mta_json_begin_object(j);
    mta_json_key(j, "kind");
    mta_json_string(j, kinds[r->kind].name);
    mta_json_key(j, "bytes");
    mta_json_u64(j, r->bytes);
    mta_json_key(j, "blocks");
    mta_json_u64(j, r->blocks);
    mta_json_key(j, "stack");
    mta_json_u64(j, r->stack);
    mta_json_key(j, "frames");
    mta_json_begin_array(j);
    for (uint32_t i = 0; i < st->depth; i++)
        if (!mta_frame_hidden(l->snap, st->frames[i]) &&
            mta_json_frame(j, l->g, st->frames[i]) < 0)
            return -ENOMEM;
    mta_json_end_array(j);
    mta_json_end_object(j);
    return 0;
}

static int leaks_json(FILE *out, const leaks_t *l, const mta_leaks_opts_t *o)
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
        mta_json_key(&j, kinds[kind_order[r]].name);
        json_tally(&j, &l->sum[kind_order[r]]);
    }
    mta_json_end_object(&j);
    mta_json_key(&j, "filtered");
    mta_json_bool(&j, l->filtered);
    mta_json_key(&j, "kinds");
    mta_json_begin_array(&j);
    for (unsigned r = 0; r < NKINDS; r++)
        if (o->kinds & MTA_LEAK_BIT(kind_order[r]))
            mta_json_string(&j, kinds[kind_order[r]].name);
    mta_json_end_array(&j);
    mta_json_key(&j, "total_records");
    mta_json_u64(&j, l->nrecords);
    mta_json_key(&j, "leaks");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < shown; i++)
        if (json_record(&j, l, &l->records[i]) < 0)
            return -ENOMEM;
    mta_json_end_array(&j);
    if (l->v.set) {
        mta_json_key(&j, "verdict");
        mta_json_begin_object(&j);
        mta_json_key(&j, "failed");
        mta_json_bool(&j, l->v.failed);
        mta_json_key(&j, "message");
        mta_json_string(&j, l->v.message);
        mta_json_end_object(&j);
    }
    mta_json_end_object(&j);
    return 0;
}

int mta_leaks(FILE *out, const mta_snapshot_t *snap, const mta_leaks_opts_t *opts)
{
    leaks_t l = { .snap = snap };
    int rc;
    if (!snap->has_leaks)
        return -ENODATA;
    if ((rc = leaks_compute(&l, opts)) < 0)
        goto out;
    leaks_verdict(&l, opts);
    rc = opts->format == MTA_FORMAT_JSON ? leaks_json(out, &l, opts) : leaks_text(out, &l, opts);
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
    if (rc == 0 && l.v.failed)
        rc = MTA_GATE_FAILED;
out:
    free(l.records);
    mta_group_free(l.g);
    return rc;
}
