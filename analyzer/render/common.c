/* The pieces every renderer prints the same way (common.h): one function
 * per shape, so that a byte count, a frame or a snapshot header reads the
 * same in `report`, `diff`, `leaks`, `cycles` and the exports. Terminal
 * output never carries control characters: they become '?'. */
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demangle.h"
#include "json.h"
#include "names.h"
#include "options.h"

/* ---- strings and numbers ---------------------------------------------------- */

/* The unit rule of every text output (mta_format_size): the exact count,
 * then, from 1 KiB up, the size in the largest IEC unit that keeps it at 1
 * or more, with one decimal: "1,723,133 B (1.6 MiB)"; "512 B" alone. A value
 * that would round to 1024.0 of a unit is shown in the next one
 * ("1,048,575 B (1.0 MiB)"). */

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

/* The unit rule of every text output: the exact count, then, from 1 KiB up,
 * the size in the largest IEC unit that keeps it at 1 or more, with one
 * decimal ("1,723,133 B (1.6 MiB)"); a value that would round to 1024.0 of
 * a unit is shown in the next one ("1,048,575 B (1.0 MiB)"). */
static void format_size(uint64_t mag, const char *pre, char *buf, size_t len)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    char count[32];
    mta_format_count(mag, count, sizeof(count));
    if (mag < 1024) {
        snprintf(buf, len, "%s%s B", pre, count);
        return;
    }
    double x = (double)mag / 1024;
    size_t u = 0;
    while (x >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
        x /= 1024;
        u++;
    }
    snprintf(buf, len, "%s%s B (%s%.1f %s)", pre, count, pre, x, units[u]);
}

void mta_format_size(uint64_t v, char *buf, size_t len)
{
    format_size(v, "", buf, len);
}

void mta_format_bytes(int64_t v, bool sign, char *buf, size_t len)
{
    format_size(mta_mag(v), v < 0 ? "-" : sign && v > 0 ? "+" : "", buf, len);
}

void mta_format_bytes_in(uint64_t bytes, uint64_t blocks, char *buf, size_t len)
{
    char a[MTA_SIZE_LEN], b[32];
    mta_format_size(bytes, a, sizeof(a));
    mta_format_count(blocks, b, sizeof(b));
    snprintf(buf, len, "%s in %s %s", a, b, mta_blocks_word(blocks));
}

const char *mta_metric_memory(mta_metric_t m)
{
    return m == MTA_METRIC_PEAK ? "memory at the peak"
           : m == MTA_METRIC_ALLOCATED ? "allocated memory" : "live memory";
}

const char *mta_plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

const char *mta_blocks_word(uint64_t n)
{
    return mta_plural(n, "block", "blocks");
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

void mta_put_cmdline(FILE *out, const mta_snapshot_t *s)
{
    put_text(out, s->cmdline, cmdline_len(s));
}

/* ---- colour ---------------------------------------------------------------- */

static bool color_on;

void mta_color_use(bool on)
{
    color_on = on;
}

bool mta_color_on(void)
{
    return color_on;
}

const char *mta_paint_on(mta_paint_t p)
{
    static const char *const sgr[] = {
        [MTA_PAINT_HEADING] = "\033[1m",   [MTA_PAINT_GROWTH] = "\033[31m",
        [MTA_PAINT_SHRINK] = "\033[32m",   [MTA_PAINT_BAD] = "\033[1;31m",
        [MTA_PAINT_WARN] = "\033[33m",     [MTA_PAINT_GOOD] = "\033[32m",
    };
    return color_on && (unsigned)p < sizeof(sgr) / sizeof(sgr[0]) ? sgr[p] : "";
}

const char *mta_paint_off(void)
{
    return color_on ? "\033[0m" : "";
}

void mta_put_painted(FILE *out, mta_paint_t p, const char *s)
{
    fputs(mta_paint_on(p), out);
    mta_put_str(out, s);
    fputs(mta_paint_off(), out);
}

void mta_put_change(FILE *out, int64_t v, const char *s)
{
    if (v == 0)
        mta_put_str(out, s);
    else
        mta_put_painted(out, v > 0 ? MTA_PAINT_GROWTH : MTA_PAINT_SHRINK, s);
}

/* ---- the snapshot ------------------------------------------------------------ */

/* "SEP LABEL" when the snapshot has a label. */
static void put_label(FILE *out, const mta_snapshot_t *s, const char *sep, const char *end)
{
    if (!s->label[0])
        return;
    fputs(sep, out);
    mta_put_str(out, s->label);
    fputs(end, out);
}

/* A sampled snapshot: "estimated: sampled by bytes, mean 524,288 B (512.0
 * KiB), 1,234 allocations sampled". */
static void put_estimated(FILE *out, const mta_snapshot_t *s)
{
    char mean[MTA_SIZE_LEN], n[32];
    mta_format_size(s->sampling.mean, mean, sizeof(mean));
    mta_format_count(s->sampling.samples, n, sizeof(n));
    fprintf(out, "estimated: sampled by bytes, mean %s, %s %s sampled", mean, n,
            mta_plural(s->sampling.samples, "allocation", "allocations"));
}

/* The snapshot's notes: the text header's `note:` lines, JSON's `notes`
 * (and so the HTML page's header). */
static const char note_no_reuse[] =
    "objects reused from CPython's free lists keep the line that first allocated their "
    "memory (not followed on this interpreter)";

/* The note of a snapshot of an attached process (META flag attached). */
static void note_attached(const mta_snapshot_t *s, char *buf, size_t size)
{
    char start[48];
    mta_format_time(s->meta.start_ns, 0, start, sizeof(start));
    snprintf(buf, size, "tracing began at %s, when memtrail attached to the running process; "
             "blocks allocated before then are not included", start);
}

/* The note on the Python allocator hooks of an attached CPython process
 * (META flags py_hooks, py_waiting); 0 when there is none. */
static int note_py_hooks(const mta_snapshot_t *s, char *buf, size_t size)
{
    if (s->meta.flags & MTSNAP_META_F_PY_HOOKS) {
        snprintf(buf, size, "Python allocator hooks started %u.%03u s after the attach; Python "
                 "objects allocated before then are not included, and stacks before then "
                 "are native", s->meta.py_hooks_ms / 1000u, s->meta.py_hooks_ms % 1000u);
        return 1;
    }
    if (s->meta.flags & MTSNAP_META_F_PY_WAITING) {
        snprintf(buf, size, "Python allocator hooks not started yet: they start when the "
                 "interpreter's main thread next runs Python code; until then Python objects "
                 "are not included and stacks are native");
        return 1;
    }
    return 0;
}

void mta_put_snapshot_header(FILE *out, const mta_snapshot_t *s, mta_header_style_t style,
                             const char *what)
{
    char tm[48];
    mta_format_time(s->meta.time_ns, 0, tm, sizeof(tm));
    fprintf(out, "%s: ", what);
    mta_put_str(out, s->path);
    switch (style) {
    case MTA_HEADER_ONE_LINE:
        fprintf(out, " (pid %" PRIu32 ", #%" PRIu32 " %s, %s", s->meta.pid, s->meta.seq,
                mtf_trigger_name(s->meta.trigger), tm);
        put_label(out, s, ", label ", "");
        if (s->has_sampling) {
            fputs(", ", out);
            put_estimated(out, s);
        }
        fputs(")\n", out);
        return;
    case MTA_HEADER_INDENTED:
        fprintf(out, " (pid %" PRIu32 ", %s)\n  command: ", s->meta.pid,
                mtf_trigger_name(s->meta.trigger));
        mta_put_cmdline(out, s);
        if (s->has_sampling) {
            fputs("\n  ", out);
            put_estimated(out, s);
        }
        fprintf(out, "\n  taken: %s, #%" PRIu32, tm, s->meta.seq);
        put_label(out, s, ", label ", "");
        return;
    case MTA_HEADER_LINES:
    case MTA_HEADER_LINES_NOEXE:
        break;
    }
    fprintf(out, "\nprocess: %" PRIu32 " (parent %" PRIu32 ")", s->meta.pid, s->meta.ppid);
    if (s->hostname[0]) {
        fputs(" on ", out);
        mta_put_str(out, s->hostname);
    }
    fputs(style == MTA_HEADER_LINES_NOEXE && s->cmdline_len == 0 ? "\ncommand:" : "\ncommand: ",
          out);
    mta_put_cmdline(out, s);
    if (style == MTA_HEADER_LINES && s->exe[0]) {
        fputs("\nexecutable: ", out);
        mta_put_str(out, s->exe);
    }
    fprintf(out, "\ntaken: %s, #%" PRIu32 " (trigger %s)\n", tm, s->meta.seq,
            mtf_trigger_name(s->meta.trigger));
    put_label(out, s, "label: ", "\n");
    if (s->has_sampling) {
        put_estimated(out, s);
        fputc('\n', out);
    }
    if (s->meta.flags & MTSNAP_META_F_ATTACHED) {
        char note[160];
        note_attached(s, note, sizeof(note));
        fprintf(out, "note: %s\n", note);
    }
    char pynote[256];
    if (note_py_hooks(s, pynote, sizeof(pynote)))
        fprintf(out, "note: %s\n", pynote);
    if (s->meta.flags & MTSNAP_META_F_PY_NO_REUSE)
        fprintf(out, "note: %s\n", note_no_reuse);
}

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
    mta_json_string(j, mtf_trigger_name(s->meta.trigger));
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
    mta_json_key(j, "estimated");
    mta_json_bool(j, s->has_sampling);
    mta_json_key(j, "sample_mean_bytes");
    if (s->has_sampling)
        mta_json_u64(j, s->sampling.mean);
    else
        mta_json_null(j);
    mta_json_key(j, "samples");
    if (s->has_sampling)
        mta_json_u64(j, s->sampling.samples);
    else
        mta_json_null(j);
    mta_json_key(j, "attached");
    mta_json_bool(j, (s->meta.flags & MTSNAP_META_F_ATTACHED) != 0);
    mta_json_key(j, "python_hooks_ms");
    if (s->meta.flags & MTSNAP_META_F_PY_HOOKS)
        mta_json_u64(j, s->meta.py_hooks_ms);
    else
        mta_json_null(j);
    mta_json_key(j, "notes");
    mta_json_begin_array(j);
    if (s->meta.flags & MTSNAP_META_F_ATTACHED) {
        char note[160];
        note_attached(s, note, sizeof(note));
        mta_json_string(j, note);
    }
    char pynote[256];
    if (note_py_hooks(s, pynote, sizeof(pynote)))
        mta_json_string(j, pynote);
    if (s->meta.flags & MTSNAP_META_F_PY_NO_REUSE)
        mta_json_string(j, note_no_reuse);
    mta_json_end_array(j);
    mta_json_end_object(j);
}

/* ---- frames and stacks --------------------------------------------------------- */

/* The demangled function of a frame, or its address when unknown. Returns
 * the name ("" when unknown), NULL on ENOMEM. */
static const char *put_function(FILE *out, mta_group_t *g, uint32_t f)
{
    const char *name = mta_group_function(g, f);
    if (!name)
        return NULL;
    if (name[0])
        mta_put_str(out, name);
    else
        fprintf(out, "0x%" PRIx64, g->snap->frames[f].pc);
    return name;
}

void mta_put_location(FILE *out, const mta_frame_t *fr, mta_put_fn *put)
{
    put(out, fr->file);
    if (fr->line)
        fprintf(out, ":%" PRIu32, fr->line);
}

void mta_put_module(FILE *out, const mta_snapshot_t *s, uint32_t f, bool offset, mta_put_fn *put)
{
    const mta_frame_t *fr = &s->frames[f];
    if (fr->module == MTSNAP_NONE)
        return;
    fputs(" [", out);
    put(out, mta_basename(s->modules[fr->module].path));
    if (offset)
        fprintf(out, "+0x%" PRIx64, mta_frame_module_offset(s, f));
    fputc(']', out);
}

/* "function (file:line) [module]" as a user reads it. */
int mta_put_frame(FILE *out, mta_group_t *g, uint32_t f, int with_line)
{
    const mta_frame_t *fr = &g->snap->frames[f];
    const char *name = put_function(out, g, f);
    if (!name)
        return -ENOMEM;
    if (fr->file[0]) {
        fputs(" (", out);
        if (with_line)
            mta_put_location(out, fr, mta_put_str);
        else
            mta_put_str(out, fr->file);
        fputc(')', out);
    }
    mta_put_module(out, g->snap, f, !name[0], mta_put_str);
    if (fr->inlined)
        fputs(" (inlined)", out);
    return 0;
}

uint32_t mta_entry_key_frame(mta_group_t *g, const mta_group_entry_t *e)
{
    if (e->nframes == 0)
        return MTSNAP_NONE;
    if (g->by != MTA_GROUP_STACK)
        return e->frames[0];
    for (uint32_t i = 0; i < e->nframes; i++)
        if (!mta_frame_is_allocator(g, e->frames[i]))
            return e->frames[i];
    return e->frames[0];
}

/* The site column of a non-stack entry. */
int mta_put_site(FILE *out, mta_group_t *g, const mta_group_entry_t *e)
{
    const mta_snapshot_t *s = g->snap;
    if (e->nframes == 0) {
        fputs("[unknown]", out);
        return 0;
    }
    uint32_t f = e->frames[0];
    const mta_frame_t *fr = &s->frames[f];
    switch (g->by) {
    case MTA_GROUP_FUNCTION:
        return mta_put_frame(out, g, f, 0);
    case MTA_GROUP_LINE:
        if (fr->file[0] == '\0')
            return mta_put_frame(out, g, f, 0);
        mta_put_str(out, e->key);
        fputs(" in ", out);
        if (!put_function(out, g, f))
            return -ENOMEM;
        mta_put_module(out, s, f, false, mta_put_str);
        return 0;
    case MTA_GROUP_FILE:
        mta_put_str(out, e->key);
        if (fr->file[0])
            mta_put_module(out, s, f, false, mta_put_str);
        return 0;
    default:
        mta_put_str(out, fr->module == MTSNAP_NONE ? e->key : mta_basename(e->key));
        return 0;
    }
}

int mta_put_stack(FILE *out, mta_group_t *g, const uint32_t *frames, uint32_t n, bool by,
                  bool skip_hidden)
{
    bool any = false;
    for (uint32_t i = 0; i < n; i++) {
        if (skip_hidden && mta_frame_hidden(g->snap, frames[i]))
            continue;
        fputs(!any ? "    at " : by ? "    by " : "       ", out);
        if (mta_put_frame(out, g, frames[i], 1) < 0)
            return -ENOMEM;
        fputc('\n', out);
        any = true;
    }
    if (!any)
        fputs("    [unknown stack]\n", out);
    return 0;
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
    if (fr->inlined) {   /* only then: older consumers see the same members */
        mta_json_key(j, "inlined");
        mta_json_bool(j, true);
    }
    mta_json_end_object(j);
    return 0;
}

int mta_json_frames(mta_json_t *j, mta_group_t *g, const uint32_t *frames, uint32_t n,
                    bool skip_hidden)
{
    mta_json_begin_array(j);
    for (uint32_t i = 0; i < n; i++)
        if (!(skip_hidden && mta_frame_hidden(g->snap, frames[i])) &&
            mta_json_frame(j, g, frames[i]) < 0)
            return -ENOMEM;
    mta_json_end_array(j);
    return 0;
}

/* ---- collapsed stacks ------------------------------------------------------------ */

char *mta_frame_label(mta_group_t *g, uint32_t f)
{
    char *out = mta_frame_text(g, f, false);
    if (!out)
        return NULL;
    for (char *p = out; *p; p++)
        if (*p == ';' || (unsigned char)*p < 0x20 || *p == 0x7f)
            *p = *p == ';' ? ':' : '?';
    return out;
}

char **mta_collapsed_labels(const mta_group_t *g)
{
    return calloc(g->snap->nframes ? g->snap->nframes : 1, sizeof(char *));
}

void mta_collapsed_labels_free(const mta_group_t *g, char **labels)
{
    if (labels)
        for (uint32_t i = 0; i < g->snap->nframes; i++)
            free(labels[i]);
    free(labels);
}

int mta_collapsed_stack(FILE *out, mta_group_t *g, const mta_group_entry_t *e, char **labels)
{
    if (e->nframes == 0)
        fputs("[unknown]", out);
    for (uint32_t k = e->nframes; k-- > 0;) {
        uint32_t f = e->frames[k];
        if (!labels[f] && !(labels[f] = mta_frame_label(g, f)))
            return -ENOMEM;
        if (k + 1 != e->nframes)
            fputc(';', out);
        fputs(labels[f], out);
    }
    return 0;
}

int mta_collapsed_line(FILE *out, mta_group_t *g, const mta_group_entry_t *e, char **labels,
                       int64_t weight)
{
    if (mta_collapsed_stack(out, g, e, labels) < 0)
        return -ENOMEM;
    fprintf(out, " %" PRId64 "\n", weight);
    return 0;
}

/* ---- the CI verdict ---------------------------------------------------------------- */

void mta_put_verdict(FILE *out, const mta_verdict_t *v)
{
    if (!v->set)
        return;
    fprintf(out, "\n%sverdict: ", mta_paint_on(v->failed ? MTA_PAINT_BAD : MTA_PAINT_GOOD));
    mta_put_str(out, v->message);
    fprintf(out, "%s\n", mta_paint_off());
}

void mta_json_verdict_begin(mta_json_t *j, const mta_verdict_t *v)
{
    if (!v->set)
        return;
    mta_json_key(j, "verdict");
    mta_json_begin_object(j);
    mta_json_key(j, "failed");
    mta_json_bool(j, v->failed);
}

void mta_json_verdict_end(mta_json_t *j, const mta_verdict_t *v)
{
    if (!v->set)
        return;
    mta_json_key(j, "message");
    mta_json_string(j, v->message);
    mta_json_end_object(j);
}

void mta_json_verdict(mta_json_t *j, const mta_verdict_t *v)
{
    mta_json_verdict_begin(j, v);
    mta_json_verdict_end(j, v);
}

int mta_render_end(FILE *out, int rc, const mta_verdict_t *v)
{
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
    if (rc == 0 && v->failed)
        rc = MTA_GATE_FAILED;
    return rc;
}

void mta_put_more(FILE *out, size_t n, const char *what, uint64_t bytes, uint64_t blocks)
{
    char a[MTA_SIZE_LEN + 40];
    mta_format_bytes_in(bytes, blocks, a, sizeof(a));
    fprintf(out, "\n... %zu more %s with %s (--top 0 shows all)\n", n, what, a);
}
