/* `memtrail report` renderers: the text form people read and the JSON form
 * tools read (docs/report-json.md), both over mta_group(). */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demangle.h"
#include "json.h"

const char *mta_trigger_name(uint32_t trigger)
{
    switch (trigger) {
    case MTSNAP_TRIGGER_EXIT: return "exit";
    case MTSNAP_TRIGGER_SIGNAL: return "signal";
    case MTSNAP_TRIGGER_INTERVAL: return "interval";
    case MTSNAP_TRIGGER_API: return "api";
    case MTSNAP_TRIGGER_FINAL: return "final";
    default: return "unknown";
    }
}

void mta_format_time(uint64_t ns, int iso, char *buf, size_t len)
{
    time_t secs = (time_t)(ns / 1000000000u);
    unsigned ms = (unsigned)(ns % 1000000000u / 1000000u);
    struct tm tm;
    char date[32];
    if (!gmtime_r(&secs, &tm) || !strftime(date, sizeof(date), iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm)) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, iso ? "%s.%03uZ" : "%s.%03u UTC", date, ms);
}

void mta_format_count(uint64_t v, char *buf, size_t len)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < n && o + 1 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 2 < len)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

void mta_format_bytes(int64_t v, bool sign, char *buf, size_t len)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    const char *pre = v < 0 ? "-" : sign && v > 0 ? "+" : "";
    char count[32];
    mta_format_count(mag, count, sizeof(count));
    if (mag < 1024) {
        snprintf(buf, len, "%s%s B", pre, count);
        return;
    }
    double x = (double)mag / 1024;
    size_t u = 0;
    while (x >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        x /= 1024;
        u++;
    }
    snprintf(buf, len, "%s%s B (%s%.*f %s)", pre, count, pre, x < 10 ? 2 : x < 100 ? 1 : 0, x,
             units[u]);
}

/* The --fail-above verdict of a report. */
typedef struct verdict {
    bool set, failed;
    char message[256];
} verdict_t;

static void report_verdict(const mta_group_t *g, const mta_report_opts_t *o, verdict_t *v)
{
    char live[64], limit[64];
    *v = (verdict_t){ .set = o->fail_above_set };
    if (!v->set)
        return;
    v->failed = g->bytes > o->fail_above;
    mta_format_bytes((int64_t)g->bytes, false, live, sizeof(live));
    mta_format_bytes((int64_t)o->fail_above, false, limit, sizeof(limit));
    snprintf(v->message, sizeof(v->message), "%s: %s live%s, %s the limit of %s (--fail-above)",
             v->failed ? "FAIL" : "ok", live, g->filtered ? " (selected by the filters)" : "",
             v->failed ? "above" : "within", limit);
}

/* ---- text ---------------------------------------------------------------- */

const char *mta_blocks_word(uint64_t n)
{
    return n == 1 ? "block" : "blocks";
}

/* Prints bytes for a terminal: control characters become '?', NULs become
 * spaces (the command line is NUL-separated). */
static void put_text(FILE *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c == 0 ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : c, out);
    }
}

void mta_put_str(FILE *out, const char *s)
{
    put_text(out, s, strlen(s));
}

/* The command line with its trailing NUL dropped. */
static size_t cmdline_len(const mta_snapshot_t *s)
{
    size_t n = s->cmdline_len;
    return n > 0 && s->cmdline[n - 1] == '\0' ? n - 1 : n;
}

/* "function (file:line) [module]" as a user reads it. */
int mta_put_frame(FILE *out, mta_group_t *g, uint32_t f, int with_line)
{
    const mta_snapshot_t *s = g->snap;
    const mta_frame_t *fr = &s->frames[f];
    const char *name = mta_group_function(g, f);
    if (!name)
        return -ENOMEM;
    if (name[0])
        mta_put_str(out, name);
    else
        fprintf(out, "0x%" PRIx64, fr->pc);
    if (fr->file[0]) {
        fputs(" (", out);
        mta_put_str(out, fr->file);
        if (with_line && fr->line)
            fprintf(out, ":%" PRIu32, fr->line);
        fputc(')', out);
    }
    if (fr->module != MTSNAP_NONE) {
        fputs(" [", out);
        mta_put_str(out, mta_basename(s->modules[fr->module].path));
        if (!name[0])
            fprintf(out, "+0x%" PRIx64, mta_frame_module_offset(s, f));
        fputc(']', out);
    }
    return 0;
}

/* The site column of a non-stack entry. */
int mta_put_site(FILE *out, mta_group_t *g, const mta_group_entry_t *e)
{
    const mta_snapshot_t *s = g->snap;
    if (e->nframes == 0) {
        fputs("[unknown]", out);
        return 0;
    }
    const mta_frame_t *fr = &s->frames[e->frames[0]];
    switch (g->by) {
    case MTA_GROUP_FUNCTION:
        return mta_put_frame(out, g, e->frames[0], 0);
    case MTA_GROUP_LINE:
        if (fr->file[0] == '\0')
            return mta_put_frame(out, g, e->frames[0], 0);
        mta_put_str(out, e->key);
        fputs(" in ", out);
        {
            const char *name = mta_group_function(g, e->frames[0]);
            if (!name)
                return -ENOMEM;
            if (name[0])
                mta_put_str(out, name);
            else
                fprintf(out, "0x%" PRIx64, fr->pc);
        }
        if (fr->module != MTSNAP_NONE) {
            fputs(" [", out);
            mta_put_str(out, mta_basename(s->modules[fr->module].path));
            fputc(']', out);
        }
        return 0;
    case MTA_GROUP_FILE:
        mta_put_str(out, e->key);
        if (fr->file[0] && fr->module != MTSNAP_NONE) {
            fputs(" [", out);
            mta_put_str(out, mta_basename(s->modules[fr->module].path));
            fputc(']', out);
        }
        return 0;
    default:
        mta_put_str(out, fr->module == MTSNAP_NONE ? e->key : mta_basename(e->key));
        return 0;
    }
}

static void text_header(FILE *out, const mta_group_t *g)
{
    const mta_snapshot_t *s = g->snap;
    const mtsnap_totals_t *t = &s->totals;
    char a[32], b[32], tm[48];
    fputs("snapshot: ", out);
    mta_put_str(out, s->path);
    fprintf(out, "\nprocess: %" PRIu32 " (parent %" PRIu32 ")", s->meta.pid, s->meta.ppid);
    if (s->hostname[0]) {
        fputs(" on ", out);
        mta_put_str(out, s->hostname);
    }
    fputs("\ncommand: ", out);
    put_text(out, s->cmdline, cmdline_len(s));
    if (s->exe[0]) {
        fputs("\nexecutable: ", out);
        mta_put_str(out, s->exe);
    }
    mta_format_time(s->meta.time_ns, 0, tm, sizeof(tm));
    fprintf(out, "\ntaken: %s, #%" PRIu32 " (trigger %s)", tm, s->meta.seq,
            mta_trigger_name(s->meta.trigger));
    if (s->label[0]) {
        fputs("\nlabel: ", out);
        mta_put_str(out, s->label);
    }
    mta_format_count(t->live_bytes, a, sizeof(a));
    mta_format_count(t->live_blocks, b, sizeof(b));
    fprintf(out, "\n\nlive: %s B in %s %s\n", a, b, mta_blocks_word(t->live_blocks));
    mta_format_count(t->peak_bytes, a, sizeof(a));
    mta_format_count(t->peak_blocks, b, sizeof(b));
    fprintf(out, "peak: %s B in %s %s", a, b, mta_blocks_word(t->peak_blocks));
    if (t->peak_time_ns) {
        mta_format_time(t->peak_time_ns, 0, tm, sizeof(tm));
        fprintf(out, " at %s", tm);
    }
    mta_format_count(t->alloc_bytes, a, sizeof(a));
    mta_format_count(t->alloc_blocks, b, sizeof(b));
    fprintf(out, "\nallocated: %s B in %s %s since tracing began", a, b,
            mta_blocks_word(t->alloc_blocks));
    mta_format_count(t->free_blocks, a, sizeof(a));
    fprintf(out, ", %s %s freed\n", a, mta_blocks_word(t->free_blocks));
    if (g->filtered) {
        mta_format_count(g->bytes, a, sizeof(a));
        mta_format_count(g->blocks, b, sizeof(b));
        fprintf(out, "selected by the filters: %s B in %s %s live%s\n", a, b,
                mta_blocks_word(g->blocks),
                g->live_only ? " (peak and allocated figures are per stack, not per domain:"
                               " not shown)" : "");
    }
}

static int text_stack_entry(FILE *out, mta_group_t *g, size_t rank, const mta_group_entry_t *e)
{
    char a[32], b[32], c[32], d[32], f[32];
    mta_format_count(e->bytes, a, sizeof(a));
    mta_format_count(e->blocks, b, sizeof(b));
    mta_format_count(e->peak_bytes, c, sizeof(c));
    mta_format_count(e->alloc_bytes, d, sizeof(d));
    mta_format_count(e->alloc_blocks, f, sizeof(f));
    if (g->live_only)
        fprintf(out, "\n#%zu  %s B in %s %s\n", rank, a, b, mta_blocks_word(e->blocks));
    else
        fprintf(out, "\n#%zu  %s B in %s %s  (peak %s B; allocated %s B in %s %s)\n", rank, a,
                b, mta_blocks_word(e->blocks), c, d, f, mta_blocks_word(e->alloc_blocks));
    if (e->nframes == 0)
        fputs("    [unknown stack]\n", out);
    for (uint32_t i = 0; i < e->nframes; i++) {
        fputs(i == 0 ? "    at " : "       ", out);
        if (mta_put_frame(out, g, e->frames[i], 1) < 0)
            return -ENOMEM;
        fputc('\n', out);
    }
    return 0;
}

static int text_table(FILE *out, mta_group_t *g, size_t shown)
{
    enum { MAXCOL = 5 };
    static const char *const heads[MAXCOL] = { "#", "live", "blocks", "peak", "allocated" };
    const int ncol = g->live_only ? 3 : MAXCOL;
    int w[MAXCOL];
    char cell[32];
    for (int c = 0; c < ncol; c++)
        w[c] = (int)strlen(heads[c]);
    for (size_t i = 0; i < shown; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        uint64_t v[MAXCOL] = { i + 1, e->bytes, e->blocks, e->peak_bytes, e->alloc_bytes };
        for (int c = 0; c < ncol; c++) {
            mta_format_count(v[c], cell, sizeof(cell));
            int n = (int)strlen(cell) + (c == 1 || c >= 3 ? 2 : 0); /* " B" */
            if (n > w[c])
                w[c] = n;
        }
    }
    fputc('\n', out);
    for (int c = 0; c < ncol; c++)
        fprintf(out, "%*s  ", w[c], heads[c]);
    fprintf(out, "%s\n", mta_group_by_name(g->by));
    for (size_t i = 0; i < shown; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        uint64_t v[MAXCOL] = { i + 1, e->bytes, e->blocks, e->peak_bytes, e->alloc_bytes };
        for (int c = 0; c < ncol; c++) {
            char withunit[40];
            mta_format_count(v[c], cell, sizeof(cell));
            snprintf(withunit, sizeof(withunit), "%s%s", cell, c == 1 || c >= 3 ? " B" : "");
            fprintf(out, "%*s  ", w[c], withunit);
        }
        if (mta_put_site(out, g, e) < 0)
            return -ENOMEM;
        fputc('\n', out);
    }
    return 0;
}

static int report_text(FILE *out, mta_group_t *g, const mta_report_opts_t *o,
                       const verdict_t *v)
{
    size_t shown = o->top && o->top < g->nentries ? o->top : g->nentries;
    const char *what = mta_group_by_plural(g->by);
    int rc = 0;
    text_header(out, g);
    if (g->nentries == 0)
        fputs(g->filtered ? "\nno live memory selected by the filters\n" : "\nno live memory\n",
              out);
    if (g->nentries == 0)
        ;
    else if (shown < g->nentries)
        fprintf(out, "\ntop %zu of %zu %s by live bytes:\n", shown, g->nentries, what);
    else
        fprintf(out, "\n%zu %s by live bytes:\n", g->nentries,
                g->nentries == 1 ? mta_group_by_name(g->by) : what);
    if (g->nentries == 0)
        ;
    else if (g->by == MTA_GROUP_STACK)
        for (size_t i = 0; i < shown && rc == 0; i++)
            rc = text_stack_entry(out, g, i + 1, &g->entries[i]);
    else
        rc = text_table(out, g, shown);
    if (rc == 0 && shown < g->nentries) {
        uint64_t bytes = 0, blocks = 0;
        char a[32], b[32];
        for (size_t i = shown; i < g->nentries; i++) {
            bytes += g->entries[i].bytes;
            blocks += g->entries[i].blocks;
        }
        mta_format_count(bytes, a, sizeof(a));
        mta_format_count(blocks, b, sizeof(b));
        fprintf(out, "\n... %zu more %s with %s B in %s %s (--top 0 shows all)\n",
                g->nentries - shown, g->nentries - shown == 1 ? mta_group_by_name(g->by) : what,
                a, b, mta_blocks_word(blocks));
    }
    if (rc == 0 && v->set)
        fprintf(out, "\nverdict: %s\n", v->message);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_hex(mta_json_t *j, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
    mta_json_string(j, buf);
}

static void json_cmdline(mta_json_t *j, const mta_snapshot_t *s)
{
    size_t len = cmdline_len(s), start = 0;
    mta_json_begin_array(j);
    for (size_t i = 0; len > 0 && i <= len; i++) {
        if (i == len || s->cmdline[i] == '\0') {
            mta_json_string_len(j, s->cmdline + start, i - start);
            start = i + 1;
        }
    }
    mta_json_end_array(j);
}

void mta_json_snapshot(mta_json_t *j, const mta_snapshot_t *s)
{
    char tm[48];
    mta_json_begin_object(j);
    mta_json_key(j, "path");
    mta_json_string(j, s->path);
    mta_json_key(j, "pid");
    mta_json_u64(j, s->meta.pid);
    mta_json_key(j, "ppid");
    mta_json_u64(j, s->meta.ppid);
    mta_json_key(j, "seq");
    mta_json_u64(j, s->meta.seq);
    mta_json_key(j, "trigger");
    mta_json_string(j, mta_trigger_name(s->meta.trigger));
    mta_json_key(j, "label");
    mta_json_string_len(j, s->label, s->string_len[s->meta.label]);
    mta_format_time(s->meta.time_ns, 1, tm, sizeof(tm));
    mta_json_key(j, "time");
    mta_json_string(j, tm);
    mta_json_key(j, "time_ns");
    mta_json_u64(j, s->meta.time_ns);
    mta_json_key(j, "start_ns");
    mta_json_u64(j, s->meta.start_ns);
    mta_json_key(j, "counter");
    mta_json_u64(j, s->meta.counter);
    mta_json_key(j, "cmdline");
    json_cmdline(j, s);
    mta_json_key(j, "exe");
    mta_json_string_len(j, s->exe, s->string_len[s->meta.exe]);
    mta_json_key(j, "hostname");
    mta_json_string_len(j, s->hostname, s->string_len[s->meta.hostname]);
    mta_json_key(j, "unwind");
    mta_json_string(j, s->meta.unwind == MTSNAP_UNWIND_FP ? "fp" : "libunwind");
    mta_json_key(j, "depth");
    mta_json_u64(j, s->meta.depth);
    mta_json_end_object(j);
}

int mta_json_frame(mta_json_t *j, mta_group_t *g, uint32_t f)
{
    const mta_snapshot_t *s = g->snap;
    const mta_frame_t *fr = &s->frames[f];
    const char *name = mta_group_function(g, f);
    if (!name)
        return -ENOMEM;
    mta_json_begin_object(j);
    mta_json_key(j, "function");
    mta_json_string(j, name);
    mta_json_key(j, "symbol");
    mta_json_string(j, fr->function);
    mta_json_key(j, "file");
    mta_json_string(j, fr->file);
    mta_json_key(j, "line");
    mta_json_u64(j, fr->line);
    mta_json_key(j, "module");
    mta_json_string(j, fr->module == MTSNAP_NONE ? "" : s->modules[fr->module].path);
    mta_json_key(j, "address");
    json_hex(j, fr->pc);
    mta_json_key(j, "module_offset");
    json_hex(j, mta_frame_module_offset(s, f));
    mta_json_key(j, "kind");
    mta_json_string(j, fr->kind == MTSNAP_FRAME_PYTHON ? "python" : "native");
    mta_json_end_object(j);
    return 0;
}

static int report_json(FILE *out, mta_group_t *g, const mta_report_opts_t *o,
                       const verdict_t *v)
{
    const mta_snapshot_t *s = g->snap;
    const mtsnap_totals_t *t = &s->totals;
    size_t shown = o->top && o->top < g->nentries ? o->top : g->nentries;
    char tm[48];
    mta_json_t j;
    mta_json_init(&j, out);
    mta_json_begin_object(&j);
    mta_json_key(&j, "snapshot");
    mta_json_snapshot(&j, s);
    const struct { const char *k; uint64_t v; } totals[] = {
        { "total_bytes", t->live_bytes },   { "total_blocks", t->live_blocks },
        { "peak_bytes", t->peak_bytes },    { "peak_blocks", t->peak_blocks },
        { "peak_time_ns", t->peak_time_ns }, { "alloc_bytes", t->alloc_bytes },
        { "alloc_blocks", t->alloc_blocks }, { "free_blocks", t->free_blocks },
    };
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        mta_json_key(&j, totals[i].k);
        mta_json_u64(&j, totals[i].v);
    }
    mta_format_time(t->peak_time_ns, 1, tm, sizeof(tm));
    mta_json_key(&j, "peak_time");
    mta_json_string(&j, tm);
    mta_json_key(&j, "filtered");
    mta_json_bool(&j, g->filtered);
    mta_json_key(&j, "selected_bytes");
    mta_json_u64(&j, g->bytes);
    mta_json_key(&j, "selected_blocks");
    mta_json_u64(&j, g->blocks);
    mta_json_key(&j, "live_only");
    mta_json_bool(&j, g->live_only);
    if (v->set) {
        mta_json_key(&j, "verdict");
        mta_json_begin_object(&j);
        mta_json_key(&j, "failed");
        mta_json_bool(&j, v->failed);
        mta_json_key(&j, "limit_bytes");
        mta_json_u64(&j, o->fail_above);
        mta_json_key(&j, "message");
        mta_json_string(&j, v->message);
        mta_json_end_object(&j);
    }
    mta_json_key(&j, "group_by");
    mta_json_string(&j, mta_group_by_name(g->by));
    mta_json_key(&j, "top");
    mta_json_u64(&j, o->top);
    mta_json_key(&j, "total_entries");
    mta_json_u64(&j, g->nentries);
    mta_json_key(&j, "entries");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < shown; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        mta_json_begin_object(&j);
        const char *key = mta_group_key(g, e);
        if (!key)
            return -ENOMEM;
        mta_json_key(&j, "key");
        mta_json_string(&j, key);
        const struct { const char *k; uint64_t v; } vals[] = {
            { "bytes", e->bytes },             { "blocks", e->blocks },
            { "peak_bytes", e->peak_bytes },   { "peak_blocks", e->peak_blocks },
            { "alloc_bytes", e->alloc_bytes }, { "alloc_blocks", e->alloc_blocks },
            { "stacks", e->nstacks },
        };
        for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
            mta_json_key(&j, vals[k].k);
            if (g->live_only && k >= 2 && k <= 5)
                mta_json_null(&j);   /* not known per domain */
            else
                mta_json_u64(&j, vals[k].v);
        }
        mta_json_key(&j, "frames");
        mta_json_begin_array(&j);
        for (uint32_t k = 0; k < e->nframes; k++)
            if (mta_json_frame(&j, g, e->frames[k]) < 0)
                return -ENOMEM;
        mta_json_end_array(&j);
        mta_json_end_object(&j);
    }
    mta_json_end_array(&j);
    mta_json_end_object(&j);
    return 0;
}

int mta_report(FILE *out, const mta_snapshot_t *snap, const mta_report_opts_t *opts)
{
    mta_group_t *g = NULL;
    verdict_t v;
    int rc = mta_group(snap, opts->group_by, 0, opts->filter, &g);
    if (rc < 0)
        goto out;
    report_verdict(g, opts, &v);
    rc = opts->format == MTA_FORMAT_JSON ? report_json(out, g, opts, &v)
                                         : report_text(out, g, opts, &v);
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
    if (rc == 0 && v.failed)
        rc = MTA_GATE_FAILED;
out:
    mta_group_free(g);
    return rc;
}
