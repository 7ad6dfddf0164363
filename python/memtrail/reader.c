/*
 * libmemtrail_reader.so: the snapshot reader and the analyses of the
 * `memtrail` program (format/, analyzer/model, analysis, render), as a small
 * C interface for the Python package (python/memtrail/_reader.py binds it
 * with ctypes, so one build serves every interpreter). Only the mtrd_*
 * functions below are exported (reader.map; the python_exports test checks
 * the set).
 *
 * What crosses: a snapshot is an opaque handle (mtrd_snap_t), its blocks,
 * timeline and stacks are read in place (arrays of the format's own structs,
 * include/memtrail_format.h), frames one at a time. The analyses that have a
 * JSON form in the CLI (report, diff, leaks, cycles) hand that very JSON
 * over, written by the same renderers with every entry (--top 0): the
 * package's figures are the CLI's by construction (docs/report-json.md is
 * their schema). Filters are built from the CLI's own option names and
 * arguments (mta_filter_option), so the package has no parser of its own.
 *
 * Errors: a negative errno, and a one-line message in the caller's buffer
 * ("snapshot: FILE: truncated (END record missing)"). Nothing here keeps
 * global state: handles may be used from several threads, one thread per
 * handle at a time.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cycles.h"
#include "diff.h"
#include "filter.h"
#include "group.h"
#include "leaks.h"
#include "outputs.h"
#include "report.h"
#include "snapshot.h"
#include "memtrail_size.h"

#define MTRD_API __attribute__((visibility("default")))

typedef struct mtrd_snap {
    mta_snapshot_t *s;
    mta_group_t *names;   /* function names (demangled), lazily */
} mtrd_snap_t;

/* A filter and the copies of the arguments its patterns point into. */
typedef struct mtrd_filter {
    mta_filter_t f;
    size_t nargs;
    char **args;
} mtrd_filter_t;

/* One frame as the package shows it (strings owned by the snapshot). */
typedef struct mtrd_frame {
    const char *function;   /* demangled (native), as stored (Python); "" unknown */
    const char *symbol;     /* as stored */
    const char *file;       /* "" unknown */
    const char *module;     /* "" none */
    const char *kind;       /* "native" or "python", as in the JSON */
    uint64_t address;
    uint32_t line;          /* 0 unknown */
    uint32_t inlined;
    uint32_t hidden;        /* in memtrail's own library */
} mtrd_frame_t;

#define MTRD_ABI 2   /* bumped when a struct or signature here changes */

MTRD_API int mtrd_abi(void);
MTRD_API int mtrd_open(const char *path, mtrd_snap_t **out, char *err, size_t errlen);
MTRD_API void mtrd_close(mtrd_snap_t *h);
MTRD_API void mtrd_free(void *p);
MTRD_API mtrd_filter_t *mtrd_filter_new(void);
MTRD_API int mtrd_filter_add(mtrd_filter_t *f, const char *option, const char *arg, char *err,
                           size_t errlen);
MTRD_API void mtrd_filter_free(mtrd_filter_t *f);
MTRD_API int mtrd_report_json(mtrd_snap_t *h, const char *group_by, const char *metric,
                            const mtrd_filter_t *f, char **out, char *err, size_t errlen);
MTRD_API int mtrd_diff_json(mtrd_snap_t *old, mtrd_snap_t *new, const char *group_by,
                          const char *metric, const mtrd_filter_t *f, char **out, char *err,
                          size_t errlen);
MTRD_API int mtrd_leaks_json(mtrd_snap_t *h, const char *kinds, const mtrd_filter_t *f, char **out,
                           char *err, size_t errlen);
MTRD_API int mtrd_cycles_json(mtrd_snap_t *h, int all, char **out, char *err, size_t errlen);
MTRD_API uint64_t mtrd_blocks(mtrd_snap_t *h, const mtsnap_block_t **blocks);
MTRD_API int mtrd_select(mtrd_snap_t *h, const mtrd_filter_t *f, uint64_t **idx, uint64_t *n);
MTRD_API uint32_t mtrd_nstacks(mtrd_snap_t *h);
MTRD_API int64_t mtrd_stack(mtrd_snap_t *h, uint32_t stack, const uint32_t **frames);
MTRD_API int mtrd_frame(mtrd_snap_t *h, uint32_t f, mtrd_frame_t *out);
MTRD_API uint64_t mtrd_timeline(mtrd_snap_t *h, const mta_timeline_point_t **points,
                              uint64_t *step_ns);

MTRD_API int mtrd_parse_size(const char *s, uint64_t *out);

/* A size as the command line reads it (include/memtrail_size.h): 0 and
 * *out, or -1. The pytest plugin's limits use it. */
int mtrd_parse_size(const char *s, uint64_t *out)
{
    return mtsize_parse(s, out);
}

int mtrd_abi(void)
{
    return MTRD_ABI;
}

int mtrd_open(const char *path, mtrd_snap_t **out, char *err, size_t errlen)
{
    *out = NULL;
    mtrd_snap_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "snapshot: out of memory");
        return -ENOMEM;
    }
    int rc = mta_snapshot_load(path, &h->s, err, errlen);
    if (rc < 0) {
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void mtrd_close(mtrd_snap_t *h)
{
    if (!h)
        return;
    mta_group_free(h->names);
    mta_snapshot_free(h->s);
    free(h);
}

void mtrd_free(void *p)
{
    free(p);
}

/* ---- filters: the CLI's options by name ---- */
static const struct option filter_opts[] = { MTA_FILTER_LONGOPTS, { NULL, 0, NULL, 0 } };

mtrd_filter_t *mtrd_filter_new(void)
{
    return calloc(1, sizeof(mtrd_filter_t));
}

int mtrd_filter_add(mtrd_filter_t *f, const char *option, const char *arg, char *err,
                   size_t errlen)
{
    const struct option *o = filter_opts;
    while (o->name && strcmp(o->name, option) != 0)
        o++;
    if (!o->name) {
        snprintf(err, errlen, "filter: unknown option --%s", option);
        return -EINVAL;
    }
    if (o->has_arg == required_argument && !arg) {
        snprintf(err, errlen, "filter: --%s needs a value", option);
        return -EINVAL;
    }
    char *copy = NULL;
    if (o->has_arg == required_argument) {
        char **v = realloc(f->args, (f->nargs + 1) * sizeof(*v));
        if (!v || !(copy = strdup(arg))) {
            if (v)
                f->args = v;
            snprintf(err, errlen, "filter: out of memory");
            return -ENOMEM;
        }
        f->args = v;
        f->args[f->nargs++] = copy;   /* the pattern points into it */
    }
    int rc = mta_filter_option(&f->f, o->val, copy, err, errlen);
    return rc < 0 ? rc : 0;
}

void mtrd_filter_free(mtrd_filter_t *f)
{
    if (!f)
        return;
    mta_filter_free(&f->f);
    for (size_t i = 0; i < f->nargs; i++)
        free(f->args[i]);
    free(f->args);
    free(f);
}

/* ---- the CLI's JSON outputs ---- */
typedef struct memout {
    FILE *fp;
    char *buf;
    size_t len;
} memout_t;

static int memout_open(memout_t *m, char *err, size_t errlen)
{
    m->buf = NULL;
    m->len = 0;
    m->fp = open_memstream(&m->buf, &m->len);
    if (!m->fp)
        snprintf(err, errlen, "reader: out of memory");
    return m->fp ? 0 : -ENOMEM;
}

/* Closes the stream; on rc >= 0 hands the text over in *out. */
static int memout_close(memout_t *m, int rc, char **out, char *err, size_t errlen)
{
    if (fclose(m->fp) != 0 && rc >= 0)
        rc = -ENOMEM;
    if (rc < 0) {
        free(m->buf);
        if (!err[0])
            snprintf(err, errlen, "reader: %s", strerror(-rc));
        return rc;
    }
    *out = m->buf;
    return 0;
}

static int parse_keys(const char *group_by, const char *metric, mta_group_by_t *by,
                      mta_metric_t *m, char *err, size_t errlen)
{
    if (mta_group_by_parse(group_by, by) < 0) {
        snprintf(err, errlen, "reader: unknown grouping '%s'", group_by);
        return -EINVAL;
    }
    if (mta_metric_parse(metric, m) < 0) {
        snprintf(err, errlen, "reader: unknown metric '%s'", metric);
        return -EINVAL;
    }
    err[0] = '\0';
    return 0;
}

/* The CLI's rule (mta_cli_metric_filter): with a domain filter only live
 * figures are known. */
static int check_metric(const mtrd_filter_t *f, mta_metric_t m, char *err, size_t errlen)
{
    if (!f || !mta_filter_has_domains(&f->f) || m == MTA_METRIC_LIVE)
        return 0;
    snprintf(err, errlen, "reader: the %s figures are kept per stack, and with a domain filter "
             "only live figures are known", mta_metric_name(m));
    return -EINVAL;
}

int mtrd_report_json(mtrd_snap_t *h, const char *group_by, const char *metric,
                    const mtrd_filter_t *f, char **out, char *err, size_t errlen)
{
    mta_report_opts_t o = { .top = 0, .format = MTA_FORMAT_JSON, .filter = f ? &f->f : NULL };
    memout_t m;
    *out = NULL;
    int rc = parse_keys(group_by, metric, &o.group_by, &o.metric, err, errlen);
    if (rc < 0 || (rc = check_metric(f, o.metric, err, errlen)) < 0 ||
        (rc = memout_open(&m, err, errlen)) < 0)
        return rc;
    return memout_close(&m, mta_report(m.fp, h->s, &o), out, err, errlen);
}

int mtrd_diff_json(mtrd_snap_t *old, mtrd_snap_t *new, const char *group_by, const char *metric,
                  const mtrd_filter_t *f, char **out, char *err, size_t errlen)
{
    mta_diff_opts_t o = { .top = 0, .format = MTA_FORMAT_JSON, .filter = f ? &f->f : NULL };
    memout_t m;
    *out = NULL;
    int rc = parse_keys(group_by, metric, &o.group_by, &o.metric, err, errlen);
    if (rc < 0 || (rc = check_metric(f, o.metric, err, errlen)) < 0 ||
        (rc = memout_open(&m, err, errlen)) < 0)
        return rc;
    return memout_close(&m, mta_diff(m.fp, old->s, new->s, &o), out, err, errlen);
}

int mtrd_leaks_json(mtrd_snap_t *h, const char *kinds, const mtrd_filter_t *f, char **out,
                   char *err, size_t errlen)
{
    mta_leaks_opts_t o = { .kinds = MTA_LEAK_DEFAULT, .top = 0, .format = MTA_FORMAT_JSON,
                           .filter = f ? &f->f : NULL };
    char bad[256];
    memout_t m;
    *out = NULL;
    err[0] = '\0';
    if (kinds && mta_leak_kinds_parse(kinds, &o.kinds, bad, sizeof(bad)) < 0) {
        snprintf(err, errlen, "leaks: unknown kind '%s' in '%s'", bad, kinds);
        return -EINVAL;
    }
    if (!h->s->has_leaks) {
        snprintf(err, errlen, "leaks: %s: no leak scan in this snapshot", h->s->path);
        return -ENODATA;
    }
    int rc = memout_open(&m, err, errlen);
    if (rc < 0)
        return rc;
    return memout_close(&m, mta_leaks(m.fp, h->s, &o), out, err, errlen);
}

int mtrd_cycles_json(mtrd_snap_t *h, int all, char **out, char *err, size_t errlen)
{
    mta_cycles_opts_t o = { .format = MTA_FORMAT_JSON, .all = all != 0, .top = 0 };
    memout_t m;
    *out = NULL;
    err[0] = '\0';
    if (!h->s->has_pygraph) {
        snprintf(err, errlen, "cycles: %s: no Python object graph in this snapshot",
                 h->s->path);
        return -ENODATA;
    }
    int rc = memout_open(&m, err, errlen);
    if (rc < 0)
        return rc;
    return memout_close(&m, mta_cycles(m.fp, h->s, &o), out, err, errlen);
}

/* ---- blocks, stacks, frames, timeline: read in place ---- */
uint64_t mtrd_blocks(mtrd_snap_t *h, const mtsnap_block_t **blocks)
{
    *blocks = h->s->blocks;
    return h->s->nblocks;
}

static mta_group_t *names(mtrd_snap_t *h)
{
    if (!h->names)
        h->names = mta_group_names(h->s);
    return h->names;
}

/* The indices of the blocks the filter (NULL: none) selects by domain and
 * stack, in address order; *idx is freed with mtrd_free. As in the reports,
 * the mmap domain's blocks are selected only when a domain filter names it. */
int mtrd_select(mtrd_snap_t *h, const mtrd_filter_t *f, uint64_t **idx, uint64_t *n)
{
    const mta_snapshot_t *s = h->s;
    mta_group_t *g = names(h);
    uint8_t *stack_ok = malloc(s->nstacks ? s->nstacks : 1);
    uint64_t *v = malloc((s->nblocks ? s->nblocks : 1) * sizeof(*v));
    *idx = NULL;
    *n = 0;
    if (!g || !stack_ok || !v) {
        free(stack_ok);
        free(v);
        return -ENOMEM;
    }
    for (uint32_t k = 0; k < s->nstacks; k++)
        stack_ok[k] = mta_group_stack_selected(g, k, f ? &f->f : NULL);
    uint64_t out = 0;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        if (mta_filter_domain(f ? &f->f : NULL, b->domain) && b->stack < s->nstacks &&
            stack_ok[b->stack])
            v[out++] = i;
    }
    free(stack_ok);
    *idx = v;
    *n = out;
    return 0;
}

uint32_t mtrd_nstacks(mtrd_snap_t *h)
{
    return h->s->nstacks;
}

/* Stack `stack`'s frames (indices for mtrd_frame), innermost first; its
 * depth, or -EINVAL when there is no such stack. */
int64_t mtrd_stack(mtrd_snap_t *h, uint32_t stack, const uint32_t **frames)
{
    if (stack >= h->s->nstacks)
        return -EINVAL;
    *frames = h->s->stacks[stack].frames;
    return h->s->stacks[stack].depth;
}

int mtrd_frame(mtrd_snap_t *h, uint32_t f, mtrd_frame_t *out)
{
    const mta_snapshot_t *s = h->s;
    mta_group_t *g = names(h);
    if (f >= s->nframes)
        return -EINVAL;
    if (!g)
        return -ENOMEM;
    const mta_frame_t *fr = &s->frames[f];
    const char *fn = mta_group_function(g, f);
    if (!fn)
        return -ENOMEM;
    *out = (mtrd_frame_t){
        .function = fn,
        .symbol = fr->function,
        .file = fr->file,
        .module = fr->module == MTSNAP_NONE ? "" : s->modules[fr->module].path,
        .address = fr->pc,
        .line = fr->line,
        .kind = fr->kind == MTSNAP_FRAME_PYTHON ? "python" : "native",
        .inlined = fr->inlined,
        .hidden = mta_frame_hidden(s, f),
    };
    return 0;
}

uint64_t mtrd_timeline(mtrd_snap_t *h, const mta_timeline_point_t **points, uint64_t *step_ns)
{
    const mta_snapshot_t *s = h->s;
    *points = s->has_timeline ? s->timeline : NULL;
    *step_ns = s->has_timeline ? s->timeline_step_ns : 0;
    return s->has_timeline ? s->ntimeline : 0;
}
