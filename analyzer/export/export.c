/* `memtrail export`: collapsed stacks (flamegraph.pl, inferno) and
 * speedscope's file format; pprof lives in pprof.c. Frame labels and the
 * collapsed line are render/common.c's, shared with `diff --format collapsed`. */
#include "export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "intern.h"
#include "json.h"

#ifndef MEMTRAIL_VERSION
#define MEMTRAIL_VERSION "unknown"
#endif

static const char *const format_names[] = {
    [MTA_EXPORT_PPROF] = "pprof",
    [MTA_EXPORT_COLLAPSED] = "collapsed",
    [MTA_EXPORT_SPEEDSCOPE] = "speedscope",
};

const char *mta_export_format_word(unsigned i)
{
    return i < sizeof(format_names) / sizeof(format_names[0]) ? format_names[i] : NULL;
}

int mta_export_format_parse(const char *name, mta_export_format_t *out)
{
    for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (mta_export_format_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

int mta_export_collapsed(FILE *out, mta_group_t *g)
{
    char **labels = mta_collapsed_labels(g);
    int rc = labels ? 0 : -ENOMEM;
    for (size_t i = 0; i < g->nentries && rc == 0; i++)
        if (g->entries[i].bytes)
            rc = mta_collapsed_line(out, g, &g->entries[i], labels, (int64_t)g->entries[i].bytes);
    mta_collapsed_labels_free(g, labels);
    return rc;
}

/* speedscope's file format (https://www.speedscope.app/file-format-schema.json):
 * one "sampled" profile in bytes, one sample per stack, frames root first. */
static int export_speedscope(FILE *out, mta_group_t *g)
{
    const mta_snapshot_t *s = g->snap;
    mta_intern_t frames;
    uint32_t *first = NULL;      /* per speedscope frame: a snapshot frame */
    int64_t *index = calloc(s->nframes ? s->nframes : 1, sizeof(*index));
    int rc = -ENOMEM;
    mta_intern_init(&frames);
    if (!index)
        goto out;
    first = malloc((s->nframes ? s->nframes : 1) * sizeof(*first));
    if (!first)
        goto out;
    for (size_t i = 0; i < g->nentries; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        for (uint32_t k = 0; k < e->nframes; k++) {
            uint32_t f = e->frames[k];
            if (index[f])
                continue;
            char *text = mta_frame_label(g, f);
            if (!text)
                goto out;
            int64_t x = mta_intern_str(&frames, text);
            free(text);
            if (x < 0)
                goto out;
            if ((size_t)x + 1 == frames.count)
                first[x] = f;
            index[f] = x + 1;
        }
    }
    char title[1200], tm[48];
    mta_format_time(s->meta.time_ns, 1, tm, sizeof(tm));
    snprintf(title, sizeof(title), "memtrail: %slive memory of pid %" PRIu32 " at %s (%s)",
             s->has_sampling ? "estimated " : "", s->meta.pid, tm, s->path);
    mta_json_t j;
    mta_json_init(&j, out);
    j.compact_depth = 3;
    mta_json_begin_object(&j);
    mta_json_key(&j, "$schema");
    mta_json_string(&j, "https://www.speedscope.app/file-format-schema.json");
    mta_json_key(&j, "name");
    mta_json_string(&j, title);
    mta_json_key(&j, "exporter");
    mta_json_string(&j, "memtrail " MEMTRAIL_VERSION);
    mta_json_key(&j, "activeProfileIndex");
    mta_json_u64(&j, 0);
    mta_json_key(&j, "shared");
    mta_json_begin_object(&j);
    mta_json_key(&j, "frames");
    mta_json_begin_array(&j);
    for (size_t x = 0; x < frames.count; x++) {
        const mta_frame_t *fr = &s->frames[first[x]];
        char *name = mta_frame_name(g, first[x]);
        if (!name)
            goto out;
        mta_json_begin_object(&j);
        mta_json_key(&j, "name");
        mta_json_string(&j, name);
        free(name);
        if (fr->file[0]) {
            mta_json_key(&j, "file");
            mta_json_string(&j, fr->file);
            if (fr->line) {
                mta_json_key(&j, "line");
                mta_json_u64(&j, fr->line);
            }
        }
        mta_json_end_object(&j);
    }
    mta_json_end_array(&j);
    mta_json_end_object(&j);
    mta_json_key(&j, "profiles");
    mta_json_begin_array(&j);
    mta_json_begin_object(&j);
    mta_json_key(&j, "type");
    mta_json_string(&j, "sampled");
    mta_json_key(&j, "name");
    mta_json_string(&j, title);
    mta_json_key(&j, "unit");
    mta_json_string(&j, "bytes");
    mta_json_key(&j, "startValue");
    mta_json_u64(&j, 0);
    mta_json_key(&j, "endValue");
    mta_json_u64(&j, g->bytes);
    mta_json_key(&j, "samples");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < g->nentries; i++) {
        const mta_group_entry_t *e = &g->entries[i];
        mta_json_begin_array(&j);
        for (uint32_t k = e->nframes; k-- > 0;)
            mta_json_u64(&j, (uint64_t)(index[e->frames[k]] - 1));
        mta_json_end_array(&j);
    }
    mta_json_end_array(&j);
    mta_json_key(&j, "weights");
    mta_json_begin_array(&j);
    for (size_t i = 0; i < g->nentries; i++)
        mta_json_u64(&j, g->entries[i].bytes);
    mta_json_end_array(&j);
    mta_json_end_object(&j);
    mta_json_end_array(&j);
    mta_json_end_object(&j);
    rc = 0;
out:
    free(index);
    free(first);
    mta_intern_free(&frames);
    return rc;
}

int mta_export(FILE *out, const mta_snapshot_t *snap, mta_export_format_t format,
               const mta_filter_t *filter)
{
    mta_group_t *g = NULL;
    int rc;
    if (format == MTA_EXPORT_PPROF) {
        rc = mta_export_pprof(out, snap, filter);
    } else {
        rc = mta_group(snap, MTA_GROUP_STACK, MTA_GROUP_PORTABLE, filter, &g);
        if (rc == 0)
            rc = format == MTA_EXPORT_COLLAPSED ? mta_export_collapsed(out, g)
                                                : export_speedscope(out, g);
    }
    if (rc == 0 && (fflush(out) != 0 || ferror(out)))
        rc = -EIO;
    mta_group_free(g);
    return rc;
}
