/*
 * pprof export: a snapshot as a gzip'd profile.proto (github.com/google/pprof,
 * proto/profile.proto), the heap profile form Go's `go tool pprof` reads.
 *
 * Samples: one per stack of the snapshot (after the filters) with four
 * values, alloc_objects, alloc_space, inuse_objects, inuse_space, as Go's
 * heap profiles have them; inuse_space is the default. Locations: one per
 * snapshot frame (memtrail's own frames left out), with one Line whose
 * Function carries the display name, the symbol and the source file; the
 * frames of functions inlined at a return address (mta_frame_t.inlined)
 * are Lines of the location of the frame they are inlined into, innermost
 * first, as profile.proto has inlining;
 * native frames point at the Mapping of their module (path and GNU build
 * id), Python frames at none. Ids are dense and start at 1; string 0 is "".
 * The message is built in memory with a small protobuf encoder (varints,
 * length-delimited submessages, packed repeated fields) and compressed with
 * zlib's gzip wrapper.
 */
#include "export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "demangle.h"
#include "intern.h"

/* ---- protobuf encoding ------------------------------------------------------ */

typedef struct pb {
    uint8_t *data;
    size_t len, cap;
    bool oom;
} pb_t;

static void pb_put(pb_t *b, const void *p, size_t n)
{
    if (b->oom || !n)   /* n == 0: p may be an empty buffer's NULL */
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *nd = realloc(b->data, cap);
        if (!nd) {
            b->oom = true;
            return;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void pb_varint(pb_t *b, uint64_t v)
{
    uint8_t buf[10];
    size_t n = 0;
    do {
        buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(b, buf, n);
}

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

/* A varint field, left out when 0 (proto3 default). */
static void pb_uint(pb_t *b, uint32_t field, uint64_t v)
{
    if (!v)
        return;
    pb_varint(b, (uint64_t)field << 3 | WIRE_VARINT);
    pb_varint(b, v);
}

static void pb_bytes(pb_t *b, uint32_t field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | WIRE_LEN);
    pb_varint(b, n);
    pb_put(b, p, n);
}

static void pb_message(pb_t *b, uint32_t field, pb_t *sub)
{
    if (sub->oom)
        b->oom = true;
    pb_bytes(b, field, sub->data, sub->len);
    sub->len = 0;
}

/* A packed repeated varint field. */
static void pb_packed(pb_t *b, uint32_t field, const uint64_t *v, size_t n, pb_t *tmp)
{
    tmp->len = 0;
    for (size_t i = 0; i < n; i++)
        pb_varint(tmp, v[i]);
    pb_message(b, field, tmp);
}

/* ---- profile.proto field numbers -------------------------------------------- */

enum {
    PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE = 2, PROFILE_MAPPING = 3, PROFILE_LOCATION = 4,
    PROFILE_FUNCTION = 5, PROFILE_STRING_TABLE = 6, PROFILE_TIME_NANOS = 9,
    PROFILE_DURATION_NANOS = 10, PROFILE_PERIOD_TYPE = 11, PROFILE_PERIOD = 12,
    PROFILE_COMMENT = 13, PROFILE_DEFAULT_SAMPLE_TYPE = 14,
    VALUE_TYPE_TYPE = 1, VALUE_TYPE_UNIT = 2,
    SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE = 2,
    MAPPING_ID = 1, MAPPING_MEMORY_START = 2, MAPPING_MEMORY_LIMIT = 3, MAPPING_FILE_OFFSET = 4,
    MAPPING_FILENAME = 5, MAPPING_BUILD_ID = 6, MAPPING_HAS_FUNCTIONS = 7,
    MAPPING_HAS_FILENAMES = 8, MAPPING_HAS_LINE_NUMBERS = 9, MAPPING_HAS_INLINE_FRAMES = 10,
    LOCATION_ID = 1, LOCATION_MAPPING_ID = 2, LOCATION_ADDRESS = 3, LOCATION_LINE = 4,
    LINE_FUNCTION_ID = 1, LINE_LINE = 2,
    FUNCTION_ID = 1, FUNCTION_NAME = 2, FUNCTION_SYSTEM_NAME = 3, FUNCTION_FILENAME = 4,
};

typedef struct builder {
    mta_group_t *g;
    mta_intern_t strings;
    mta_intern_t functions;  /* "name\0symbol\0file" -> function id - 1 */
    pb_t out, sub, tmp;
    int64_t err;             /* < 0 once an intern failed */
} builder_t;

static int64_t str(builder_t *b, const char *s)
{
    int64_t x = mta_intern_str(&b->strings, s);
    if (x < 0)
        b->err = x;
    return x < 0 ? 0 : x;
}

static void value_type(builder_t *b, uint32_t field, const char *type, const char *unit)
{
    pb_t vt = { 0 };
    pb_uint(&vt, VALUE_TYPE_TYPE, (uint64_t)str(b, type));
    pb_uint(&vt, VALUE_TYPE_UNIT, (uint64_t)str(b, unit));
    pb_message(&b->out, field, &vt);
    free(vt.data);
}

/* The name pprof shows for frame f (newly allocated; NULL on ENOMEM): the
 * demangled function of a native frame; for a Python frame "function
 * (file.py)". pprof demangles again a Function whose name equals its
 * system_name, and strips what is between angle brackets from a name that
 * looks like C++ (`<module>`, `<listcomp>` came out as "<unknown>"); it keeps
 * a name that differs from system_name as it is. The file's base name also
 * tells apart the `<module>` of every module. */
static char *display_name(builder_t *b, uint32_t f)
{
    const mta_frame_t *fr = &b->g->snap->frames[f];
    char *name = mta_frame_name(b->g, f), *out = NULL;
    if (!name || fr->kind != MTSNAP_FRAME_PYTHON || !fr->file[0])
        return name;
    if (asprintf(&out, "%s (%s)", name, mta_basename(fr->file)) < 0)
        out = NULL;
    free(name);
    return out;
}

/* The Function of frame f, emitted the first time it is seen; its id. */
static uint64_t function_id(builder_t *b, uint32_t f)
{
    const mta_frame_t *fr = &b->g->snap->frames[f];
    char *name = display_name(b, f), *key = NULL;
    size_t nl, sl, fl;
    uint64_t id = 0;
    if (!name) {
        b->err = -ENOMEM;
        return 0;
    }
    nl = strlen(name);
    sl = strlen(fr->function);
    fl = strlen(fr->file);
    key = malloc(nl + sl + fl + 3);
    if (!key) {
        b->err = -ENOMEM;
        goto out;
    }
    memcpy(key, name, nl + 1);
    memcpy(key + nl + 1, fr->function, sl + 1);
    memcpy(key + nl + sl + 2, fr->file, fl + 1);
    size_t before = b->functions.count;
    int64_t x = mta_intern(&b->functions, key, nl + sl + fl + 2);
    if (x < 0) {
        b->err = x;
        goto out;
    }
    id = (uint64_t)x + 1;
    if (b->functions.count != before) {
        pb_uint(&b->sub, FUNCTION_ID, id);
        pb_uint(&b->sub, FUNCTION_NAME, (uint64_t)str(b, name));
        pb_uint(&b->sub, FUNCTION_SYSTEM_NAME, (uint64_t)str(b, fr->function[0] ? fr->function : name));
        pb_uint(&b->sub, FUNCTION_FILENAME, (uint64_t)str(b, fr->file));
        pb_message(&b->out, PROFILE_FUNCTION, &b->sub);
    }
out:
    free(key);
    free(name);
    return id;
}

static int gzip_to(FILE *out, const pb_t *msg)
{
    z_stream z;
    uint8_t buf[1 << 16];
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    z.next_in = msg->data;
    z.avail_in = (uInt)msg->len;   /* profiles stay far below 4 GiB */
    int zr, rc = 0;
    do {
        z.next_out = buf;
        z.avail_out = sizeof(buf);
        zr = deflate(&z, Z_FINISH);
        if (zr == Z_STREAM_ERROR) {
            rc = -EIO;
            break;
        }
        size_t n = sizeof(buf) - z.avail_out;
        if (n && fwrite(buf, 1, n, out) != n) {
            rc = -EIO;
            break;
        }
    } while (zr != Z_STREAM_END);
    deflateEnd(&z);
    return rc;
}

int mta_export_pprof(FILE *out, const mta_snapshot_t *snap, const mta_filter_t *filter)
{
    builder_t b = { 0 };
    uint64_t *locs = NULL;
    uint8_t *seen = NULL;
    int rc = mta_group(snap, MTA_GROUP_STACK, MTA_GROUP_KEEP_EMPTY, filter, &b.g);
    if (rc < 0)
        return rc;
    rc = -ENOMEM;
    mta_intern_init(&b.strings);
    mta_intern_init(&b.functions);
    str(&b, "");
    value_type(&b, PROFILE_SAMPLE_TYPE, "alloc_objects", "count");
    value_type(&b, PROFILE_SAMPLE_TYPE, "alloc_space", "bytes");
    value_type(&b, PROFILE_SAMPLE_TYPE, "inuse_objects", "count");
    value_type(&b, PROFILE_SAMPLE_TYPE, "inuse_space", "bytes");

    /* Mappings: one per module, id = index + 1. */
    bool lines = false;
    for (uint32_t f = 0; f < snap->nframes; f++)
        lines = lines || snap->frames[f].line != 0;
    for (uint32_t m = 0; m < snap->nmodules; m++) {
        const mta_module_t *mod = &snap->modules[m];
        pb_uint(&b.sub, MAPPING_ID, m + 1);
        pb_uint(&b.sub, MAPPING_MEMORY_START, mod->start);
        pb_uint(&b.sub, MAPPING_MEMORY_LIMIT, mod->end);
        pb_uint(&b.sub, MAPPING_FILE_OFFSET, 0);
        pb_uint(&b.sub, MAPPING_FILENAME, (uint64_t)str(&b, mod->path));
        pb_uint(&b.sub, MAPPING_BUILD_ID, (uint64_t)str(&b, mod->build_id));
        pb_uint(&b.sub, MAPPING_HAS_FUNCTIONS, 1);
        pb_uint(&b.sub, MAPPING_HAS_FILENAMES, 1);
        pb_uint(&b.sub, MAPPING_HAS_LINE_NUMBERS, lines);
        pb_uint(&b.sub, MAPPING_HAS_INLINE_FRAMES, snap->has_inlined);
        pb_message(&b.out, PROFILE_MAPPING, &b.sub);
    }

    /* Locations (id = frame index + 1) and their functions, for the frames
     * the samples use; then the samples. */
    size_t maxdepth = 1;
    for (size_t i = 0; i < b.g->nentries; i++)
        if (b.g->entries[i].nframes > maxdepth)
            maxdepth = b.g->entries[i].nframes;
    seen = calloc(snap->nframes ? snap->nframes : 1, 1);
    locs = malloc(maxdepth * sizeof(*locs));
    if (!seen || !locs)
        goto out;
    for (size_t i = 0; i < b.g->nentries; i++) {
        const mta_group_entry_t *e = &b.g->entries[i];
        for (uint32_t k = 0, first = 0; k < e->nframes; k++) {
            uint32_t f = e->frames[k];
            if (snap->frames[f].inlined)
                continue;                   /* a Line of the next frame's location */
            uint32_t from = first;          /* the inlined frames before it */
            first = k + 1;
            if (seen[f])
                continue;
            seen[f] = 1;
            const mta_frame_t *fr = &snap->frames[f];
            pb_uint(&b.tmp, LOCATION_ID, (uint64_t)f + 1);
            if (fr->kind == MTSNAP_FRAME_NATIVE) {
                pb_uint(&b.tmp, LOCATION_MAPPING_ID, fr->module == MTSNAP_NONE ? 0 : fr->module + 1);
                pb_uint(&b.tmp, LOCATION_ADDRESS, fr->pc);
            }
            for (uint32_t m = from; m <= k; m++) {
                pb_t line = { 0 };
                pb_uint(&line, LINE_FUNCTION_ID, function_id(&b, e->frames[m]));
                pb_uint(&line, LINE_LINE, snap->frames[e->frames[m]].line);
                pb_message(&b.tmp, LOCATION_LINE, &line);
                free(line.data);
            }
            pb_message(&b.out, PROFILE_LOCATION, &b.tmp);
        }
    }
    for (size_t i = 0; i < b.g->nentries; i++) {
        const mta_group_entry_t *e = &b.g->entries[i];
        uint32_t nlocs = 0;
        for (uint32_t k = 0; k < e->nframes; k++)
            if (!snap->frames[e->frames[k]].inlined)
                locs[nlocs++] = (uint64_t)e->frames[k] + 1;
        uint64_t values[4] = { e->alloc_blocks, e->alloc_bytes, e->blocks, e->bytes };
        pb_packed(&b.sub, SAMPLE_LOCATION_ID, locs, nlocs, &b.tmp);
        pb_packed(&b.sub, SAMPLE_VALUE, values, 4, &b.tmp);
        pb_message(&b.out, PROFILE_SAMPLE, &b.sub);
    }

    pb_uint(&b.out, PROFILE_TIME_NANOS, snap->meta.time_ns);
    if (snap->meta.time_ns > snap->meta.start_ns)
        pb_uint(&b.out, PROFILE_DURATION_NANOS, snap->meta.time_ns - snap->meta.start_ns);
    /* Sampled: the period is the mean, as Go's heap profiles give their
     * MemProfileRate; the values are already estimates (not to be scaled). */
    value_type(&b, PROFILE_PERIOD_TYPE, "space", "bytes");
    pb_uint(&b.out, PROFILE_PERIOD, snap->has_sampling ? snap->sampling.mean : 1);
    char comment[1200];
    snprintf(comment, sizeof(comment), "memtrail snapshot %s (pid %u, %s)", snap->path,
             snap->meta.pid, b.g->live_only ? "domain filter: alloc values are 0" : "all values");
    pb_uint(&b.out, PROFILE_COMMENT, (uint64_t)str(&b, comment));
    if (snap->has_sampling) {
        snprintf(comment, sizeof(comment),
                 "estimated: sampled by bytes, mean %llu bytes, %llu allocations sampled; "
                 "the values are unbiased estimates",
                 (unsigned long long)snap->sampling.mean, (unsigned long long)snap->sampling.samples);
        pb_uint(&b.out, PROFILE_COMMENT, (uint64_t)str(&b, comment));
    }
    pb_uint(&b.out, PROFILE_DEFAULT_SAMPLE_TYPE, (uint64_t)str(&b, "inuse_space"));
    /* The string table last: every string is known by now. */
    for (size_t i = 0; i < b.strings.count; i++)
        pb_bytes(&b.out, PROFILE_STRING_TABLE, b.strings.strings[i], b.strings.lens[i]);
    if (b.err < 0 || b.out.oom || b.sub.oom || b.tmp.oom)
        goto out;
    rc = gzip_to(out, &b.out);
out:
    free(seen);
    free(locs);
    free(b.out.data);
    free(b.sub.data);
    free(b.tmp.data);
    mta_intern_free(&b.strings);
    mta_intern_free(&b.functions);
    mta_group_free(b.g);
    return rc;
}
