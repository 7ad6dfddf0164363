/* Test-side reader of pprof profiles: strict protobuf wire decoding of
 * profile.proto (gzip'd via zlib or raw) and pprof's consistency checks. */
#include "pprof_read.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* A cursor over one (sub)message; base is the whole buffer, for offsets. */
typedef struct rd {
    const uint8_t *base, *p, *end;
    char *err;
    size_t errlen;
} rd_t;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    int n = snprintf(err, errlen, "pprof: ");
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static int fail(rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rd_t *r, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_err(r->err, r->errlen, "%s at offset %zu", msg, (size_t)(r->p - r->base));
    return -EINVAL;
}

static int nomem(rd_t *r)
{
    set_err(r->err, r->errlen, "out of memory");
    return -ENOMEM;
}

static int read_varint(rd_t *r, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return fail(r, "truncated varint");
        uint8_t b = *r->p;
        if (i == 9 && (b & 0x80))
            return fail(r, "varint longer than 10 bytes");
        if (i == 9 && b > 1)
            return fail(r, "varint overflows 64 bits");
        r->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return fail(r, "varint longer than 10 bytes"); /* not reached */
}

static int read_tag(rd_t *r, uint32_t *field, unsigned *wt)
{
    uint64_t v;
    int rc = read_varint(r, &v);
    if (rc)
        return rc;
    *wt = (unsigned)(v & 7);
    if (v >> 3 == 0 || v >> 3 > 0x1fffffff)
        return fail(r, "invalid field number %llu", (unsigned long long)(v >> 3));
    *field = (uint32_t)(v >> 3);
    if (*wt == 3 || *wt == 4)
        return fail(r, "group wire type %u (field %u) not supported", *wt, *field);
    if (*wt == 6 || *wt == 7)
        return fail(r, "invalid wire type %u (field %u)", *wt, *field);
    return 0;
}

/* Reads a length prefix and sets *sub to the next len bytes, consuming them. */
static int read_len(rd_t *r, rd_t *sub)
{
    uint64_t len;
    int rc = read_varint(r, &len);
    if (rc)
        return rc;
    if (len > (uint64_t)(r->end - r->p))
        return fail(r, "length %llu exceeds the %zu bytes left", (unsigned long long)len,
                    (size_t)(r->end - r->p));
    *sub = *r;
    sub->end = r->p + len;
    r->p += len;
    return 0;
}

static int skip_field(rd_t *r, uint32_t field, unsigned wt)
{
    uint64_t v;
    rd_t sub;
    size_t n = wt == WT_I64 ? 8 : 4;
    switch (wt) {
    case WT_VARINT:
        return read_varint(r, &v);
    case WT_LEN:
        return read_len(r, &sub);
    case WT_I64:
    case WT_I32:
        if ((size_t)(r->end - r->p) < n)
            return fail(r, "truncated fixed%zu (field %u)", n * 8, field);
        r->p += n;
        return 0;
    }
    return fail(r, "invalid wire type %u (field %u)", wt, field);
}

static int want_wt(rd_t *r, const char *msg, uint32_t field, unsigned wt, unsigned want)
{
    if (wt == want)
        return 0;
    return fail(r, "%s field %u has wire type %u, expected %u", msg, field, wt, want);
}

/* Appends a zeroed element of size elsz to *arr (count *n) and returns it, or
 * NULL with *rc set. Capacity is implicit: it doubles when n hits 4, 8, 16... */
static void *push(rd_t *r, void **arr, size_t *n, size_t elsz, int *rc)
{
    size_t k = *n;
    if (k == 0 || (k >= 4 && !(k & (k - 1)))) {
        size_t ncap = k ? k * 2 : 4;
        void *q = ncap > k && ncap <= SIZE_MAX / elsz ? realloc(*arr, ncap * elsz) : NULL;
        if (!q) {
            *rc = nomem(r);
            return NULL;
        }
        *arr = q;
    }
    void *el = (char *)*arr + k * elsz;
    memset(el, 0, elsz);
    (*n)++;
    return el;
}

#define PUSH(arr, n) push(r, (void **)&(arr), &(n), sizeof(*(arr)), &rc)

/* A repeated 64-bit varint field, packed (wire type 2) or not (wire type 0).
 * Every element takes at least one input byte, so growth is bounded by len. */
static int get_repeated(rd_t *r, const char *msg, uint32_t field, unsigned wt, uint64_t **arr,
                        size_t *n)
{
    rd_t sub;
    int rc = 0;
    if (wt == WT_VARINT)
        sub = *r;
    else if (wt != WT_LEN)
        return fail(r, "%s field %u has wire type %u, expected 0 or 2", msg, field, wt);
    else if ((rc = read_len(r, &sub)))
        return rc;
    /* One element unpacked; packed, as many as the run holds (maybe none). */
    for (bool first = true; wt == WT_VARINT ? first : sub.p < sub.end; first = false) {
        uint64_t *el = PUSH(*arr, *n);
        if (!el || (rc = read_varint(&sub, el)))
            return rc;
    }
    if (wt == WT_VARINT)
        r->p = sub.p;
    return 0;
}

/* Scalar (varint) fields of a message: field number, kind, offset in the struct. */
enum { K_64, K_BOOL };
typedef struct fdesc {
    uint32_t field;
    int kind;
    size_t off;
} fdesc_t;
#define FD(f, type, member)                                                             \
    { f, _Generic(((type *)0)->member, bool: K_BOOL, default: K_64), offsetof(type, member) }
#define NFD(tab) (sizeof(tab) / sizeof((tab)[0]))

/* Handles a field the table lacks: 0, an error, or 1 when unknown (skipped). */
typedef int (*more_fn)(rd_t *r, void *obj, uint32_t f, unsigned wt);

/* Decodes message r into obj: varint fields by tab, others by more. */
static int decode_msg(rd_t *r, const char *msg, const fdesc_t *tab, size_t ntab, void *obj,
                      more_fn more)
{
    int rc = 0;
    unsigned wt = 0;
    uint32_t f = 0;
    while (r->p < r->end) {
        if ((rc = read_tag(r, &f, &wt)))
            return rc;
        const fdesc_t *d = NULL;
        for (size_t i = 0; i < ntab && !d; i++)
            d = tab[i].field == f ? &tab[i] : NULL;
        if (d) {
            uint64_t v;
            if ((rc = want_wt(r, msg, f, wt, WT_VARINT)) || (rc = read_varint(r, &v)))
                return rc;
            if (d->kind == K_BOOL)
                *(bool *)((char *)obj + d->off) = v != 0;
            else
                memcpy((char *)obj + d->off, &v, sizeof(v)); /* uint64_t or int64_t */
            continue;
        }
        rc = more ? more(r, obj, f, wt) : 1;
        if (rc == 1)
            rc = skip_field(r, f, wt);
        if (rc)
            return rc;
    }
    return 0;
}

static const fdesc_t vt_tab[] = { FD(1, ppr_value_type_t, type), FD(2, ppr_value_type_t, unit) };
static const fdesc_t label_tab[] = {
    FD(1, ppr_label_t, key), FD(2, ppr_label_t, str), FD(3, ppr_label_t, num),
    FD(4, ppr_label_t, num_unit),
};
static const fdesc_t mapping_tab[] = {
    FD(1, ppr_mapping_t, id), FD(2, ppr_mapping_t, memory_start),
    FD(3, ppr_mapping_t, memory_limit), FD(4, ppr_mapping_t, file_offset),
    FD(5, ppr_mapping_t, filename), FD(6, ppr_mapping_t, build_id),
    FD(7, ppr_mapping_t, has_functions), FD(8, ppr_mapping_t, has_filenames),
    FD(9, ppr_mapping_t, has_line_numbers), FD(10, ppr_mapping_t, has_inline_frames),
};
/* Line field 3 (column, in newer pprof) is unknown here and skipped. */
static const fdesc_t line_tab[] = { FD(1, ppr_line_t, function_id), FD(2, ppr_line_t, line) };
static const fdesc_t location_tab[] = {
    FD(1, ppr_location_t, id), FD(2, ppr_location_t, mapping_id),
    FD(3, ppr_location_t, address), FD(5, ppr_location_t, is_folded),
};
static const fdesc_t function_tab[] = {
    FD(1, ppr_function_t, id), FD(2, ppr_function_t, name), FD(3, ppr_function_t, system_name),
    FD(4, ppr_function_t, filename), FD(5, ppr_function_t, start_line),
};
static const fdesc_t profile_tab[] = {
    FD(7, ppr_profile_t, drop_frames), FD(8, ppr_profile_t, keep_frames),
    FD(9, ppr_profile_t, time_nanos), FD(10, ppr_profile_t, duration_nanos),
    FD(12, ppr_profile_t, period), FD(14, ppr_profile_t, default_sample_type),
};

/* Reads a length-delimited field (wire type checked) into *sub. */
static int get_sub(rd_t *r, const char *msg, uint32_t f, unsigned wt, rd_t *sub)
{
    int rc = want_wt(r, msg, f, wt, WT_LEN);
    return rc ? rc : read_len(r, sub);
}

/* Appends an element to arr and decodes sub into it (in a function with r and rc). */
#define SUB(arr, n, name, tab, more)                                                    \
    ((el = PUSH(arr, n)) ? decode_msg(&sub, name, tab, NFD(tab), el, more) : rc)

static const fdesc_t no_tab[] = { { 0, K_64, 0 } }; /* field 0 never occurs */

static int sample_more(rd_t *r, void *obj, uint32_t f, unsigned wt)
{
    ppr_sample_t *s = obj;
    void *el;
    rd_t sub;
    int rc = 0;
    if (f == 1)
        return get_repeated(r, "Sample", f, wt, &s->location_ids, &s->nlocs);
    if (f == 2)
        return get_repeated(r, "Sample", f, wt, (uint64_t **)&s->values, &s->nvalues);
    if (f != 3)
        return 1;
    return (rc = get_sub(r, "Sample", f, wt, &sub)) ? rc
         : SUB(s->labels, s->nlabels, "Label", label_tab, NULL);
}

static int location_more(rd_t *r, void *obj, uint32_t f, unsigned wt)
{
    ppr_location_t *l = obj;
    void *el;
    rd_t sub;
    int rc = 0;
    if (f != 4)
        return 1;
    return (rc = get_sub(r, "Location", f, wt, &sub)) ? rc
         : SUB(l->lines, l->nlines, "Line", line_tab, NULL);
}

static int add_string(rd_t *r, ppr_profile_t *p, const rd_t *sub)
{
    size_t len = (size_t)(sub->end - sub->p), n = p->nstrings;
    int rc = 0;
    char **s = PUSH(p->strings, n);
    size_t *l = s ? PUSH(p->string_len, p->nstrings) : NULL;
    if (!l)
        return rc;
    if (!(*s = malloc(len + 1)))
        return nomem(r);
    memcpy(*s, sub->p, len);
    (*s)[len] = '\0';
    *l = len;
    return 0;
}

static int profile_more(rd_t *r, void *obj, uint32_t f, unsigned wt)
{
    ppr_profile_t *p = obj;
    rd_t sub;
    void *el;
    int rc = 0;
    if (f == 13)
        return get_repeated(r, "Profile", f, wt, (uint64_t **)&p->comments, &p->ncomments);
    if (f > 6 && f != 11)
        return 1;
    if ((rc = get_sub(r, "Profile", f, wt, &sub)))
        return rc;
    switch (f) {
    case 1: rc = SUB(p->sample_types, p->nsample_types, "ValueType", vt_tab, NULL); break;
    case 2: rc = SUB(p->samples, p->nsamples, "Sample", no_tab, sample_more); break;
    case 3: rc = SUB(p->mappings, p->nmappings, "Mapping", mapping_tab, NULL); break;
    case 4: rc = SUB(p->locations, p->nlocations, "Location", location_tab, location_more); break;
    case 5: rc = SUB(p->functions, p->nfunctions, "Function", function_tab, NULL); break;
    case 6: rc = add_string(r, p, &sub); break;
    case 11:
        rc = decode_msg(&sub, "ValueType", vt_tab, NFD(vt_tab), &p->period_type, NULL);
        break;
    }
    return rc;
}

int ppr_decode(const void *buf, size_t len, ppr_profile_t **out, char *err, size_t errlen)
{
    rd_t r = { .base = buf, .p = buf, .end = (const uint8_t *)buf + len, .err = err,
               .errlen = errlen };
    int rc;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!buf && len)
        return -EINVAL;
    ppr_profile_t *p = calloc(1, sizeof(*p));
    if (!p)
        return nomem(&r);
    rc = decode_msg(&r, "Profile", profile_tab, NFD(profile_tab), p, profile_more);
    if (!rc) {
        *out = p;
        p = NULL;
    }
    ppr_free(p);
    return rc;
}

void ppr_free(ppr_profile_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nsamples; i++) {
        free(p->samples[i].location_ids);
        free(p->samples[i].values);
        free(p->samples[i].labels);
    }
    /* A sample or location being decoded when an error struck is counted too. */
    for (size_t i = 0; i < p->nlocations; i++)
        free(p->locations[i].lines);
    for (size_t i = 0; i < p->nstrings; i++)
        free(p->strings[i]);
    free(p->sample_types);
    free(p->samples);
    free(p->mappings);
    free(p->locations);
    free(p->functions);
    free(p->strings);
    free(p->string_len);
    free(p->comments);
    free(p);
}

/* Doubles the buffer *buf of capacity *cap (at least min to start); false when out of memory. */
static bool grow_buf(uint8_t **buf, size_t *cap, size_t min)
{
    size_t ncap = *cap ? *cap * 2 : min;
    uint8_t *q = ncap > *cap ? realloc(*buf, ncap) : NULL;
    if (q) {
        *buf = q;
        *cap = ncap;
    }
    return q != NULL;
}

/* Reads all of path into a malloc'd buffer. */
static int slurp(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen)
{
    size_t cap = 0, n = 0, got = 1;
    uint8_t *buf = NULL;
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = -errno;
        set_err(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    while (got) {
        if (n == cap && !grow_buf(&buf, &cap, 65536)) {
            rc = -ENOMEM;
            set_err(err, errlen, "out of memory reading %s", path);
            goto out;
        }
        n += got = fread(buf + n, 1, cap - n, f);
    }
    if (ferror(f)) {
        rc = -EIO;
        set_err(err, errlen, "%s: read error", path);
    }
out:
    fclose(f);
    if (rc)
        free(buf);
    *data = rc ? NULL : buf;
    *len = n;
    return rc;
}

/* Inflates one or more concatenated gzip members; all input must be consumed. */
static int gunzip(const uint8_t *in, size_t inlen, uint8_t **data, size_t *len, char *err,
                  size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    size_t cap = 0, n = 0, in_left = inlen;
    uint8_t *buf = NULL;
    int rc = 0, zr = Z_OK;
    if (inflateInit2(&z, 15 + 32) != Z_OK) {
        set_err(err, errlen, "inflateInit2 failed");
        return -ENOMEM;
    }
    z.next_in = (Bytef *)in;
    while (zr != Z_STREAM_END || in_left) {
        if (zr == Z_STREAM_END) { /* another member, or trailing garbage */
            if (in_left < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b) {
                rc = -EINVAL;
                set_err(err, errlen, "%zu trailing bytes after the gzip stream", in_left);
                break;
            }
            inflateReset(&z);
        }
        if (n == cap && !grow_buf(&buf, &cap, inlen * 4 + 4096)) {
            rc = -ENOMEM;
            set_err(err, errlen, "out of memory inflating");
            break;
        }
        z.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        z.next_out = buf + n;
        z.avail_out = cap - n > UINT_MAX ? UINT_MAX : (uInt)(cap - n);
        uInt out_before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        n += out_before - z.avail_out;
        in_left = inlen - (size_t)(z.next_in - in);
        if (zr == Z_OK || zr == Z_STREAM_END || (zr == Z_BUF_ERROR && z.avail_out == 0))
            continue;
        rc = zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
        if (zr == Z_BUF_ERROR && in_left == 0)
            set_err(err, errlen, "truncated gzip stream");
        else
            set_err(err, errlen, "bad gzip stream: %s", z.msg ? z.msg : "inflate error");
        break;
    }
    inflateEnd(&z);
    if (rc)
        free(buf);
    *data = rc ? NULL : buf;
    *len = n;
    return rc;
}

int ppr_read_file(const char *path, ppr_profile_t **out, char *err, size_t errlen)
{
    uint8_t *raw = NULL, *msg = NULL;
    size_t rawlen = 0, msglen = 0;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    int rc = slurp(path, &raw, &rawlen, err, errlen);
    if (rc)
        return rc;
    if (rawlen >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        if (!(rc = gunzip(raw, rawlen, &msg, &msglen, err, errlen)))
            rc = ppr_decode(msg, msglen, out, err, errlen);
    } else {
        rc = ppr_decode(raw, rawlen, out, err, errlen);
    }
    free(msg);
    free(raw);
    return rc;
}

const char *ppr_str(const ppr_profile_t *p, int64_t idx)
{
    if (!p || idx < 0 || (uint64_t)idx >= p->nstrings)
        return NULL;
    return p->strings[idx];
}

/* The id of element i of a table whose elements start with their uint64_t id. */
static uint64_t id_at(const void *arr, size_t stride, size_t i)
{
    uint64_t id;
    memcpy(&id, (const char *)arr + i * stride, sizeof(id));
    return id;
}

/* Ids are usually 1..n in order: try that slot first, then scan. */
static const void *lookup(const void *arr, size_t n, size_t stride, uint64_t id)
{
    if (id == 0)
        return NULL;
    if (id <= n && id_at(arr, stride, id - 1) == id)
        return (const char *)arr + (id - 1) * stride;
    for (size_t i = 0; i < n; i++)
        if (id_at(arr, stride, i) == id)
            return (const char *)arr + i * stride;
    return NULL;
}

const ppr_location_t *ppr_location(const ppr_profile_t *p, uint64_t id)
{
    return lookup(p->locations, p->nlocations, sizeof(*p->locations), id);
}

const ppr_function_t *ppr_function(const ppr_profile_t *p, uint64_t id)
{
    return lookup(p->functions, p->nfunctions, sizeof(*p->functions), id);
}

const ppr_mapping_t *ppr_mapping(const ppr_profile_t *p, uint64_t id)
{
    return lookup(p->mappings, p->nmappings, sizeof(*p->mappings), id);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#define BAD(...) (set_err(err, errlen, __VA_ARGS__), -EINVAL)

/* Checks that the ids of one table are nonzero and unique. */
static int check_ids(const void *arr, size_t n, size_t stride, const char *what, char *err,
                     size_t errlen)
{
    uint64_t *ids = n && n <= SIZE_MAX / sizeof(uint64_t) ? malloc(n * sizeof(*ids)) : NULL;
    int rc = 0;
    if (n && !ids) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n && !rc; i++)
        if ((ids[i] = id_at(arr, stride, i)) == 0)
            rc = BAD("%s #%zu has id 0", what, i);
    if (!rc && n)
        qsort(ids, n, sizeof(*ids), cmp_u64);
    for (size_t i = 1; i < n && !rc; i++)
        if (ids[i] == ids[i - 1])
            rc = BAD("duplicate %s id %llu", what, (unsigned long long)ids[i]);
    free(ids);
    return rc;
}

#define CHECK_STR(idx, ...)                                                             \
    do {                                                                                \
        if ((idx) < 0 || (uint64_t)(idx) >= p->nstrings) {                              \
            char what_[160];                                                            \
            snprintf(what_, sizeof(what_), __VA_ARGS__);                                \
            return BAD("%s: string index %lld out of range (%zu strings)", what_,       \
                       (long long)(idx), p->nstrings);                                  \
        }                                                                               \
    } while (0)
#define ULL(x) ((unsigned long long)(x))

int ppr_validate(const ppr_profile_t *p, char *err, size_t errlen)
{
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (p->nstrings == 0)
        return BAD("empty string table (string_table[0] must be \"\")");
    if (p->string_len[0] != 0)
        return BAD("string_table[0] is \"%s\", must be \"\"", p->strings[0]);
    for (size_t i = 0; i < p->nsample_types; i++) {
        CHECK_STR(p->sample_types[i].type, "sample_type #%zu type", i);
        CHECK_STR(p->sample_types[i].unit, "sample_type #%zu unit", i);
    }
    CHECK_STR(p->period_type.type, "period_type type");
    CHECK_STR(p->period_type.unit, "period_type unit");
    CHECK_STR(p->drop_frames, "drop_frames");
    CHECK_STR(p->keep_frames, "keep_frames");
    CHECK_STR(p->default_sample_type, "default_sample_type");
    for (size_t i = 0; i < p->ncomments; i++)
        CHECK_STR(p->comments[i], "comment #%zu", i);
    if ((rc = check_ids(p->mappings, p->nmappings, sizeof(*p->mappings), "mapping", err,
                        errlen)) ||
        (rc = check_ids(p->locations, p->nlocations, sizeof(*p->locations), "location", err,
                        errlen)) ||
        (rc = check_ids(p->functions, p->nfunctions, sizeof(*p->functions), "function", err,
                        errlen)))
        return rc;
    for (size_t i = 0; i < p->nmappings; i++) {
        CHECK_STR(p->mappings[i].filename, "mapping %llu filename", ULL(p->mappings[i].id));
        CHECK_STR(p->mappings[i].build_id, "mapping %llu build_id", ULL(p->mappings[i].id));
    }
    for (size_t i = 0; i < p->nfunctions; i++) {
        const ppr_function_t *f = &p->functions[i];
        CHECK_STR(f->name, "function %llu name", ULL(f->id));
        CHECK_STR(f->system_name, "function %llu system_name", ULL(f->id));
        CHECK_STR(f->filename, "function %llu filename", ULL(f->id));
    }
    for (size_t i = 0; i < p->nlocations; i++) {
        const ppr_location_t *l = &p->locations[i];
        if (l->mapping_id && !ppr_mapping(p, l->mapping_id))
            return BAD("location %llu: mapping id %llu not found", ULL(l->id),
                       ULL(l->mapping_id));
        for (size_t j = 0; j < l->nlines; j++)
            if (!ppr_function(p, l->lines[j].function_id))
                return BAD("location %llu line #%zu: function id %llu not found", ULL(l->id),
                           j, ULL(l->lines[j].function_id));
    }
    for (size_t i = 0; i < p->nsamples; i++) {
        const ppr_sample_t *s = &p->samples[i];
        if (s->nvalues != p->nsample_types)
            return BAD("sample #%zu has %zu values, want %zu (sample types)", i, s->nvalues,
                       p->nsample_types);
        for (size_t j = 0; j < s->nlocs; j++)
            if (!ppr_location(p, s->location_ids[j]))
                return BAD("sample #%zu: location id %llu not found", i,
                           ULL(s->location_ids[j]));
        for (size_t j = 0; j < s->nlabels; j++) {
            CHECK_STR(s->labels[j].key, "sample #%zu label #%zu key", i, j);
            CHECK_STR(s->labels[j].str, "sample #%zu label #%zu str", i, j);
            CHECK_STR(s->labels[j].num_unit, "sample #%zu label #%zu num_unit", i, j);
        }
    }
    return 0;
}
