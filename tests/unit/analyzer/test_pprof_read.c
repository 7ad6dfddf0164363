/* Unit tests of the test-side pprof reader (tests/unit/analyzer/pprof_read.c) on messages
 * built here by a tiny protobuf encoder: wire decoding, gzip, validation. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pprof_read.h"

/* ---- a tiny protobuf encoder ---- */

typedef struct enc {
    uint8_t *d;
    size_t len, cap;
} enc_t;

static void e_raw(enc_t *e, const void *p, size_t n)
{
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2 + 64;
        e->d = realloc(e->d, e->cap);
        cr_assert_not_null(e->d);
    }
    if (n)
        memcpy(e->d + e->len, p, n);
    e->len += n;
}

static void e_byte(enc_t *e, uint8_t b) { e_raw(e, &b, 1); }

static void e_varint(enc_t *e, uint64_t v)
{
    while (v >= 0x80) {
        e_byte(e, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    e_byte(e, (uint8_t)v);
}

static void e_tag(enc_t *e, unsigned field, unsigned wt) { e_varint(e, (uint64_t)field << 3 | wt); }

static void e_u(enc_t *e, unsigned field, uint64_t v)
{
    e_tag(e, field, 0);
    e_varint(e, v);
}

static void e_bytes(enc_t *e, unsigned field, const void *p, size_t n)
{
    e_tag(e, field, 2);
    e_varint(e, n);
    e_raw(e, p, n);
}

static void e_str(enc_t *e, unsigned field, const char *s) { e_bytes(e, field, s, strlen(s)); }

/* Appends sub as a length-delimited field and frees it. */
static void e_msg(enc_t *e, unsigned field, enc_t *sub)
{
    e_bytes(e, field, sub->d, sub->len);
    free(sub->d);
    memset(sub, 0, sizeof(*sub));
}

/* A repeated varint field, packed or as one tag per element. */
static void e_rep(enc_t *e, unsigned field, const uint64_t *v, size_t n, bool packed)
{
    if (!packed) {
        for (size_t i = 0; i < n; i++)
            e_u(e, field, v[i]);
        return;
    }
    enc_t sub = { 0 };
    for (size_t i = 0; i < n; i++)
        e_varint(&sub, v[i]);
    e_msg(e, field, &sub);
}

/* ---- the reference profile ---- */

static const char *const strs[] = {
    "", "alloc_space", "bytes", "alloc_objects", "count", "main", "main.c", "/usr/bin/prog",
    "buildid123", "malloc", "libc.so.6", "comment one", "thread", "space",
};
#define NSTRS (sizeof(strs) / sizeof(strs[0]))
static const char nul_str[] = { 'a', '\0', 'b' }; /* string 14, with a NUL inside */

#define T_NANOS 1700000000123456789LL

static void e_value_type(enc_t *e, unsigned field, int64_t type, int64_t unit)
{
    enc_t vt = { 0 };
    e_u(&vt, 1, (uint64_t)type);
    e_u(&vt, 2, (uint64_t)unit);
    e_msg(e, field, &vt);
}

static void e_line(enc_t *loc, uint64_t fn, int64_t line, bool column)
{
    enc_t l = { 0 };
    e_u(&l, 1, fn);
    e_u(&l, 2, (uint64_t)line);
    if (column)
        e_u(&l, 3, 7); /* Line.column of newer pprof: unknown here, skipped */
    e_msg(loc, 4, &l);
}

/* Every field of profile.proto, repeated scalars packed or not, with unknown
 * fields of each wire type sprinkled in. */
static void build_full(enc_t *e, bool packed)
{
    enc_t m = { 0 };
    e_value_type(e, 1, 1, 2);
    e_value_type(e, 1, 3, 4);

    uint64_t l1[] = { 1, 2 }, v1[] = { 100, 1 };
    e_rep(&m, 1, l1, 2, packed);
    e_rep(&m, 2, v1, 2, packed);
    enc_t lab = { 0 };
    e_u(&lab, 1, 12);
    e_u(&lab, 2, 5);
    e_msg(&m, 3, &lab);
    e_msg(e, 2, &m);
    uint64_t l2[] = { 3 }, v2[] = { (uint64_t)-5LL, 2 };
    e_rep(&m, 1, l2, 1, packed);
    e_rep(&m, 2, v2, 2, packed);
    e_u(&lab, 1, 13);
    e_u(&lab, 3, 42);
    e_u(&lab, 4, 2);
    e_msg(&m, 3, &lab);
    e_msg(e, 2, &m);

    e_u(&m, 1, 1);
    e_u(&m, 2, 0x400000);
    e_u(&m, 3, 0x500000);
    e_u(&m, 4, 0x1000);
    e_u(&m, 5, 7);
    e_u(&m, 6, 8);
    for (unsigned f = 7; f <= 10; f++)
        e_u(&m, f, 1);
    e_msg(e, 3, &m);
    e_u(&m, 1, 2);
    e_u(&m, 2, 0x7f0000000000ULL);
    e_u(&m, 3, 0x7f0000200000ULL);
    e_u(&m, 5, 10);
    e_u(&m, 7, 1);
    e_tag(&m, 99, 5); /* unknown fixed32 */
    e_raw(&m, "\1\2\3\4", 4);
    e_msg(e, 3, &m);

    e_u(&m, 1, 1);
    e_u(&m, 2, 1);
    e_u(&m, 3, 0x401000);
    e_line(&m, 1, 10, false);
    e_line(&m, 2, 20, true);
    e_msg(e, 4, &m);
    e_u(&m, 1, 2);
    e_u(&m, 2, 2);
    e_u(&m, 3, 0x7f0000001234ULL);
    e_line(&m, 2, 5, false);
    e_u(&m, 5, 1);
    e_msg(e, 4, &m);
    e_u(&m, 1, 3);
    e_u(&m, 3, 0x99);
    e_msg(e, 4, &m);

    e_u(&m, 1, 1);
    e_u(&m, 2, 5);
    e_u(&m, 3, 5);
    e_u(&m, 4, 6);
    e_u(&m, 5, 3);
    e_msg(e, 5, &m);
    e_u(&m, 1, 2);
    e_u(&m, 2, 9);
    e_u(&m, 3, 9);
    e_msg(e, 5, &m);

    for (size_t i = 0; i < NSTRS; i++)
        e_str(e, 6, strs[i]);
    e_bytes(e, 6, nul_str, sizeof(nul_str));

    e_u(e, 7, 9);
    e_u(e, 8, 14);
    e_u(e, 9, (uint64_t)T_NANOS);
    e_u(e, 10, 5000000000ULL);
    e_value_type(e, 11, 13, 2);
    e_u(e, 12, 524288);
    uint64_t comments[] = { 11, 12 };
    e_rep(e, 13, comments, 2, packed);
    e_u(e, 14, 1);
    e_tag(e, 200, 1); /* unknown fixed64 */
    e_raw(e, "12345678", 8);
    e_str(e, 201, "unknown bytes");
    e_u(e, 202, 1ULL << 63);
}

static void check_full(const ppr_profile_t *p)
{
    char err[256];
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(p->nsample_types, 2);
    cr_assert_eq(p->sample_types[0].type, 1);
    cr_assert_eq(p->sample_types[0].unit, 2);
    cr_assert_eq(p->sample_types[1].type, 3);
    cr_assert_eq(p->sample_types[1].unit, 4);

    cr_assert_eq(p->nsamples, 2);
    const ppr_sample_t *s = &p->samples[0];
    cr_assert_eq(s->nlocs, 2);
    cr_assert_eq(s->location_ids[0], 1);
    cr_assert_eq(s->location_ids[1], 2);
    cr_assert_eq(s->nvalues, 2);
    cr_assert_eq(s->values[0], 100);
    cr_assert_eq(s->values[1], 1);
    cr_assert_eq(s->nlabels, 1);
    cr_assert_eq(s->labels[0].key, 12);
    cr_assert_eq(s->labels[0].str, 5);
    s = &p->samples[1];
    cr_assert_eq(s->nlocs, 1);
    cr_assert_eq(s->location_ids[0], 3);
    cr_assert_eq(s->values[0], -5);
    cr_assert_eq(s->values[1], 2);
    cr_assert_eq(s->nlabels, 1);
    cr_assert_eq(s->labels[0].num, 42);
    cr_assert_eq(s->labels[0].num_unit, 2);

    cr_assert_eq(p->nmappings, 2);
    const ppr_mapping_t *m = ppr_mapping(p, 1);
    cr_assert_not_null(m);
    cr_assert_eq(m->memory_start, 0x400000);
    cr_assert_eq(m->memory_limit, 0x500000);
    cr_assert_eq(m->file_offset, 0x1000);
    cr_assert_str_eq(ppr_str(p, m->filename), "/usr/bin/prog");
    cr_assert_str_eq(ppr_str(p, m->build_id), "buildid123");
    cr_assert(m->has_functions && m->has_filenames && m->has_line_numbers &&
              m->has_inline_frames);
    m = ppr_mapping(p, 2);
    cr_assert_not_null(m);
    cr_assert_eq(m->memory_start, 0x7f0000000000ULL);
    cr_assert_str_eq(ppr_str(p, m->filename), "libc.so.6");
    cr_assert(m->has_functions && !m->has_filenames && !m->has_line_numbers &&
              !m->has_inline_frames);
    cr_assert_null(ppr_mapping(p, 3));
    cr_assert_null(ppr_mapping(p, 0));

    cr_assert_eq(p->nlocations, 3);
    const ppr_location_t *l = ppr_location(p, 1);
    cr_assert_not_null(l);
    cr_assert_eq(l->mapping_id, 1);
    cr_assert_eq(l->address, 0x401000);
    cr_assert_eq(l->nlines, 2);
    cr_assert_eq(l->lines[0].function_id, 1);
    cr_assert_eq(l->lines[0].line, 10);
    cr_assert_eq(l->lines[1].function_id, 2);
    cr_assert_eq(l->lines[1].line, 20);
    cr_assert_not(l->is_folded);
    l = ppr_location(p, 2);
    cr_assert_eq(l->nlines, 1);
    cr_assert_eq(l->address, 0x7f0000001234ULL);
    cr_assert(l->is_folded);
    l = ppr_location(p, 3);
    cr_assert_eq(l->mapping_id, 0);
    cr_assert_eq(l->nlines, 0);
    cr_assert_null(ppr_location(p, 4));

    cr_assert_eq(p->nfunctions, 2);
    const ppr_function_t *f = ppr_function(p, 1);
    cr_assert_str_eq(ppr_str(p, f->name), "main");
    cr_assert_str_eq(ppr_str(p, f->system_name), "main");
    cr_assert_str_eq(ppr_str(p, f->filename), "main.c");
    cr_assert_eq(f->start_line, 3);
    f = ppr_function(p, 2);
    cr_assert_str_eq(ppr_str(p, f->name), "malloc");
    cr_assert_eq(f->filename, 0);
    cr_assert_null(ppr_function(p, 7));

    cr_assert_eq(p->nstrings, NSTRS + 1);
    for (size_t i = 0; i < NSTRS; i++) {
        cr_assert_str_eq(p->strings[i], strs[i]);
        cr_assert_eq(p->string_len[i], strlen(strs[i]));
    }
    cr_assert_eq(p->string_len[NSTRS], 3);
    cr_assert_eq(memcmp(p->strings[NSTRS], nul_str, 3), 0);
    cr_assert_null(ppr_str(p, (int64_t)NSTRS + 1));
    cr_assert_null(ppr_str(p, -1));

    cr_assert_eq(p->drop_frames, 9);
    cr_assert_eq(p->keep_frames, 14);
    cr_assert_eq(p->time_nanos, T_NANOS);
    cr_assert_eq(p->duration_nanos, 5000000000LL);
    cr_assert_eq(p->period_type.type, 13);
    cr_assert_eq(p->period_type.unit, 2);
    cr_assert_eq(p->period, 524288);
    cr_assert_eq(p->ncomments, 2);
    cr_assert_eq(p->comments[0], 11);
    cr_assert_eq(p->comments[1], 12);
    cr_assert_eq(p->default_sample_type, 1);
}

static ppr_profile_t *decode_ok(const enc_t *e)
{
    char err[256] = "";
    ppr_profile_t *p = NULL;
    int rc = ppr_decode(e->d, e->len, &p, err, sizeof(err));
    cr_assert_eq(rc, 0, "decode: %d %s", rc, err);
    cr_assert_not_null(p);
    return p;
}

/* Decoding must fail with -EINVAL, a "pprof: " message containing want, no profile. */
static void decode_bad(const void *buf, size_t len, const char *want)
{
    char err[256] = "";
    ppr_profile_t *p = (ppr_profile_t *)1;
    int rc = ppr_decode(buf, len, &p, err, sizeof(err));
    cr_assert_eq(rc, -EINVAL, "rc %d for want '%s' (err '%s')", rc, want, err);
    cr_assert_null(p);
    cr_assert_eq(strncmp(err, "pprof: ", 7), 0, "%s", err);
    cr_assert_not_null(strstr(err, want), "'%s' lacks '%s'", err, want);
}

Test(pprof_read, full_profile_unpacked)
{
    enc_t e = { 0 };
    build_full(&e, false);
    ppr_profile_t *p = decode_ok(&e);
    check_full(p);
    ppr_free(p);
    free(e.d);
}

Test(pprof_read, full_profile_packed)
{
    enc_t e = { 0 };
    build_full(&e, true);
    ppr_profile_t *p = decode_ok(&e);
    check_full(p);
    ppr_free(p);
    free(e.d);
}

Test(pprof_read, packed_and_unpacked_mixed_in_one_field)
{
    enc_t e = { 0 }, s = { 0 };
    uint64_t a[] = { 1, 2 }, b[] = { 3 }, c[] = { 4, 5, 6 };
    e_rep(&s, 1, a, 2, true);
    e_rep(&s, 1, b, 1, false);
    e_rep(&s, 1, c, 3, true);
    e_bytes(&s, 2, "", 0); /* empty packed run: no values */
    e_msg(&e, 2, &s);
    ppr_profile_t *p = decode_ok(&e);
    cr_assert_eq(p->nsamples, 1);
    cr_assert_eq(p->samples[0].nlocs, 6);
    for (uint64_t i = 0; i < 6; i++)
        cr_assert_eq(p->samples[0].location_ids[i], i + 1);
    cr_assert_eq(p->samples[0].nvalues, 0);
    ppr_free(p);
    free(e.d);
}

Test(pprof_read, empty_message_decodes_but_fails_validation)
{
    char err[256];
    ppr_profile_t *p = NULL;
    cr_assert_eq(ppr_decode("", 0, &p, err, sizeof(err)), 0);
    cr_assert_eq(p->nstrings + p->nsamples + p->nlocations, 0);
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "string"), "%s", err);
    ppr_free(p);
}

/* Every proper prefix either decodes (it ends on a top-level field boundary) or
 * fails cleanly; prefixes cut inside a field always fail. */
Test(pprof_read, truncated_buffers)
{
    enc_t e = { 0 };
    build_full(&e, true);
    size_t ok = 0;
    for (size_t n = 0; n < e.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so overreads are visible to ASan */
        memcpy(copy, e.d, n);
        char err[256] = "";
        ppr_profile_t *p = NULL;
        int rc = ppr_decode(copy, n, &p, err, sizeof(err));
        if (rc == 0)
            ok++;
        else
            cr_assert(rc == -EINVAL && !strncmp(err, "pprof: ", 7), "%zu: %d %s", n, rc, err);
        ppr_free(p);
        free(copy);
    }
    cr_assert_lt(ok, e.len / 4, "%zu of %zu prefixes decoded", ok, e.len);
    free(e.d);

    /* Cut inside each wire type. */
    decode_bad("\x48\x80", 2, "truncated varint");                 /* time_nanos */
    decode_bad("\x0a\x05\x08\x01", 4, "exceeds");                  /* sample_type */
    decode_bad("\x0a\x02\x08\x81", 4, "truncated varint");         /* inside nested */
    decode_bad("\xc1\x0c" "1234567", 9, "truncated fixed64");      /* field 200 */
    decode_bad("\xc5\x0c" "123", 5, "truncated fixed32");
    decode_bad("\x12\x03\x0a\x05\x01", 5, "exceeds");              /* packed run past sample */
    /* A huge length must be refused before anything is allocated for it. */
    decode_bad("\x32\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10, "exceeds");
}

Test(pprof_read, overlong_varints)
{
    /* 11 bytes. */
    decode_bad("\x48\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12, "longer than 10");
    /* 10 bytes whose last carries bits beyond 64. */
    decode_bad("\x48\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11, "overflows 64 bits");
    /* Also in tags and lengths. */
    decode_bad("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11, "longer than 10");
    /* The largest legal value, and a non-minimal (but legal) encoding, decode. */
    enc_t e = { 0 };
    e_u(&e, 9, UINT64_MAX);
    e_raw(&e, "\x60\x85\x80\x80\x00", 5); /* period = 5, padded */
    ppr_profile_t *p = decode_ok(&e);
    cr_assert_eq(p->time_nanos, -1);
    cr_assert_eq(p->period, 5);
    ppr_free(p);
    free(e.d);
}

Test(pprof_read, bad_wire_types)
{
    decode_bad("\x4b\x4c", 2, "group wire type 3");    /* field 9, start group */
    decode_bad("\x0b", 1, "group wire type 3 (field 1)");
    decode_bad("\x4c", 1, "group wire type 4");
    decode_bad("\x4e\x00", 2, "invalid wire type 6");
    decode_bad("\x4f\x00", 2, "invalid wire type 7");
    decode_bad("\x0a\x02\x0e\x00", 4, "invalid wire type 6"); /* inside ValueType */
    decode_bad("\xfb\x07\x00", 3, "group wire type 3 (field 127)"); /* unknown field */
    decode_bad("\x07\x00", 2, "invalid field number 0");
    /* Known fields with the wrong (but valid) wire type. */
    decode_bad("\x30\x01", 2, "field 6 has wire type 0");       /* string_table as varint */
    decode_bad("\x4a\x01\x00", 3, "field 9 has wire type 2");   /* time_nanos as bytes */
    decode_bad("\x12\x02\x0d\x00", 4, "field 1 has wire type 5");/* location_id fixed32 */
    decode_bad("\x22\x02\x20\x01", 4, "field 4 has wire type 0");/* Location.line varint */
}

static void write_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(d, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void gzip_buf(const enc_t *in, enc_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, in->len) + 32;
    size_t base = out->len;
    out->d = realloc(out->d, base + cap);
    z.next_in = in->d;
    z.avail_in = (uInt)in->len;
    z.next_out = out->d + base;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len = base + z.total_out;
    out->cap = base + cap;
    deflateEnd(&z);
}

static char tmp_path[64];

static void tmp_file(const void *d, size_t n)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/ppr_test_%d.pb.gz", (int)getpid());
    write_file(tmp_path, d, n);
}

static int read_tmp(ppr_profile_t **p, char *err, size_t errlen)
{
    int rc = ppr_read_file(tmp_path, p, err, errlen);
    unlink(tmp_path);
    return rc;
}

Test(pprof_read, gzip_and_raw_files)
{
    enc_t e = { 0 }, z = { 0 };
    build_full(&e, true);
    gzip_buf(&e, &z);
    cr_assert_eq(z.d[0], 0x1f);
    char err[256] = "";
    ppr_profile_t *p = NULL;
    tmp_file(z.d, z.len);
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), 0, "%s", err);
    check_full(p);
    ppr_free(p);

    tmp_file(e.d, e.len); /* raw */
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), 0, "%s", err);
    check_full(p);
    ppr_free(p);

    /* Two gzip members, as Go's gzip reader accepts: the messages concatenate. */
    enc_t z2 = { 0 };
    gzip_buf(&e, &z2);
    enc_t extra = { 0 };
    e_u(&extra, 12, 77); /* a later period overrides */
    gzip_buf(&extra, &z2);
    tmp_file(z2.d, z2.len);
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(p->period, 77);
    cr_assert_eq(p->nsamples, 2);
    ppr_free(p);
    free(extra.d);
    free(z2.d);

    /* Truncated gzip stream, and trailing garbage. */
    tmp_file(z.d, z.len - 5);
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), -EINVAL);
    cr_assert_null(p);
    cr_assert_not_null(strstr(err, "gzip"), "%s", err);
    e_raw(&z, "junk", 4);
    tmp_file(z.d, z.len);
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "4 trailing bytes"), "%s", err);
    /* Corrupt deflate data. */
    z.d[z.len / 2] ^= 0xff;
    z.d[z.len / 2 + 1] ^= 0x55;
    tmp_file(z.d, z.len - 4);
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), -EINVAL);
    cr_assert_eq(strncmp(err, "pprof: ", 7), 0, "%s", err);

    cr_assert_eq(ppr_read_file("/nonexistent/x.pb.gz", &p, err, sizeof(err)), -ENOENT);
    cr_assert_null(p);
    free(e.d);
    free(z.d);
}

/* Far larger than any initial buffer: a 3 MB string table and 100k samples. */
Test(pprof_read, large_gzip_file)
{
    enc_t e = { 0 }, z = { 0 };
    e_value_type(&e, 1, 1, 0);
    e_str(&e, 6, "");
    char *big = malloc(3 << 20);
    memset(big, 'x', 3 << 20);
    e_bytes(&e, 6, big, 3 << 20);
    free(big);
    for (unsigned i = 0; i < 100000; i++) {
        enc_t s = { 0 };
        e_u(&s, 2, i);
        e_msg(&e, 2, &s);
    }
    gzip_buf(&e, &z);
    cr_assert_lt(z.len, e.len / 10);
    tmp_file(z.d, z.len);
    char err[256] = "";
    ppr_profile_t *p = NULL;
    cr_assert_eq(read_tmp(&p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(p->string_len[1], 3u << 20);
    cr_assert_eq(p->nsamples, 100000);
    cr_assert_eq(p->samples[99999].values[0], 99999);
    ppr_free(p);
    free(e.d);
    free(z.d);
}

/* Decodes the full profile, lets mutate break it, expects validation to fail. */
static void invalid(void (*mutate)(ppr_profile_t *), const char *want)
{
    enc_t e = { 0 };
    build_full(&e, true);
    ppr_profile_t *p = decode_ok(&e);
    char err[256] = "";
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
    mutate(p);
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), -EINVAL, "want '%s'", want);
    cr_assert_eq(strncmp(err, "pprof: ", 7), 0, "%s", err);
    cr_assert_not_null(strstr(err, want), "'%s' lacks '%s'", err, want);
    ppr_free(p);
    free(e.d);
}

static void m_fn_name(ppr_profile_t *p) { p->functions[1].name = (int64_t)p->nstrings; }
static void m_map_file(ppr_profile_t *p) { p->mappings[0].filename = -1; }
static void m_comment(ppr_profile_t *p) { p->comments[1] = 1000; }
static void m_label(ppr_profile_t *p) { p->samples[1].labels[0].num_unit = 99; }
static void m_sample_type(ppr_profile_t *p) { p->sample_types[1].unit = 15; }
static void m_period_type(ppr_profile_t *p) { p->period_type.type = 15; }
static void m_nvalues(ppr_profile_t *p) { p->samples[1].nvalues = 1; }
static void m_dangling_loc(ppr_profile_t *p) { p->samples[0].location_ids[1] = 4; }
static void m_dangling_map(ppr_profile_t *p) { p->locations[1].mapping_id = 3; }
static void m_dangling_fn(ppr_profile_t *p) { p->locations[0].lines[1].function_id = 3; }
static void m_zero_fn(ppr_profile_t *p) { p->locations[0].lines[0].function_id = 0; }
static void m_dup_loc(ppr_profile_t *p) { p->locations[2].id = 1; }
static void m_dup_fn(ppr_profile_t *p)
{
    p->functions[1].id = 1;
    p->locations[1].lines[0].function_id = 1;
    p->locations[0].lines[1].function_id = 1;
}
static void m_dup_map(ppr_profile_t *p) { p->mappings[0].id = 2; p->locations[0].mapping_id = 2; }
static void m_zero_id(ppr_profile_t *p) { p->locations[2].id = 0; p->samples[1].nlocs = 0; }
static void m_str0(ppr_profile_t *p) { p->string_len[0] = 1; p->strings[0] = (char *)strs[5]; }
static void m_nostrings(ppr_profile_t *p) { p->nstrings = 0; p->strings[0] = (char *)""; }

Test(pprof_read, validation_string_index_out_of_range)
{
    invalid(m_fn_name, "function 2 name: string index 15 out of range (15 strings)");
    invalid(m_map_file, "mapping 1 filename: string index -1");
    invalid(m_comment, "comment #1");
    invalid(m_label, "label #0 num_unit");
    invalid(m_sample_type, "sample_type #1 unit");
    invalid(m_period_type, "period_type type");
}

Test(pprof_read, validation_sample_value_count)
{
    invalid(m_nvalues, "sample #1 has 1 values, want 2");
}

Test(pprof_read, validation_dangling_ids)
{
    invalid(m_dangling_loc, "sample #0: location id 4 not found");
    invalid(m_dangling_map, "location 2: mapping id 3 not found");
    invalid(m_dangling_fn, "function id 3 not found");
    invalid(m_zero_fn, "function id 0 not found");
}

Test(pprof_read, validation_duplicate_and_zero_ids)
{
    invalid(m_dup_loc, "duplicate location id 1");
    invalid(m_dup_fn, "duplicate function id 1");
    invalid(m_dup_map, "duplicate mapping id 2");
    invalid(m_zero_id, "location #2 has id 0");
}

/* The strings m_str0/m_nostrings put in are restored before ppr_free. */
static char *saved0;
static void m_str0_save(ppr_profile_t *p) { saved0 = p->strings[0]; m_str0(p); }
static void m_nostrings_save(ppr_profile_t *p) { saved0 = p->strings[0]; m_nostrings(p); }

Test(pprof_read, validation_string_table_zero)
{
    const struct { void (*mutate)(ppr_profile_t *); const char *want; } cases[] = {
        { m_str0_save, "string_table[0] is \"main\", must be \"\"" },
        { m_nostrings_save, "empty string table" },
    };
    for (size_t i = 0; i < 2; i++) {
        enc_t e = { 0 };
        build_full(&e, false);
        ppr_profile_t *p = decode_ok(&e);
        size_t n = p->nstrings;
        char err[256] = "";
        cases[i].mutate(p);
        cr_assert_eq(ppr_validate(p, err, sizeof(err)), -EINVAL);
        cr_assert_not_null(strstr(err, cases[i].want), "'%s' lacks '%s'", err, cases[i].want);
        p->strings[0] = saved0;
        p->string_len[0] = 0;
        p->nstrings = n;
        cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
        ppr_free(p);
        free(e.d);
    }
    /* And straight off the wire: a profile whose first string is not empty. */
    enc_t e = { 0 };
    e_str(&e, 6, "x");
    ppr_profile_t *p = decode_ok(&e);
    char err[256];
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), -EINVAL);
    cr_assert_not_null(strstr(err, "string_table[0]"), "%s", err);
    ppr_free(p);
    free(e.d);
}
