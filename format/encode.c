/* The snapshot encoder (format/encode.h): record framing, CRCs, END, and
 * the one place that walks the record lists of memtrail_format.h to write
 * a file. */
#include "encode.h"

#include <errno.h>
#include <string.h>

void mtf_enc_init(mtf_enc_t *e, mtf_sink_t *sink, uint64_t offset, uint64_t records)
{
    *e = (mtf_enc_t){.sink = sink, .offset = offset, .records = records};
}

/* Bytes outside any CRC (headers). */
static void raw(mtf_enc_t *e, const void *p, size_t n)
{
    e->offset += n;
    if (!e->err)
        e->err = e->sink->write(e->sink, p, n);
}

void mtf_enc_header(mtf_enc_t *e, uint16_t version)
{
    mtsnap_file_header_t h = {.version = version, .hdr_size = sizeof(h)};
    memcpy(h.magic, MTSNAP_MAGIC, MTSNAP_MAGIC_LEN);
    raw(e, &h, sizeof(h));
}

void mtf_enc_put(mtf_enc_t *e, const void *p, size_t n)
{
    e->crc = mtsnap_crc32(e->crc, p, n);
    raw(e, p, n);
}

void mtf_enc_u32(mtf_enc_t *e, uint32_t v) { mtf_enc_put(e, &v, sizeof(v)); }
void mtf_enc_u64(mtf_enc_t *e, uint64_t v) { mtf_enc_put(e, &v, sizeof(v)); }

void mtf_enc_array(mtf_enc_t *e, uint32_t count, const void *items, size_t size)
{
    mtf_enc_u32(e, count);
    mtf_enc_put(e, items, (size_t)count * size);
}

void mtf_enc_strings(mtf_enc_t *e, uint32_t count, const char *const *str, const uint32_t *len)
{
    mtf_enc_u32(e, count);
    for (uint32_t i = 0; i < count; i++) {
        mtf_enc_u32(e, len[i]);
        mtf_enc_put(e, str[i], len[i]);
    }
}

void mtf_enc_begin(mtf_enc_t *e, uint32_t tag)
{
    mtsnap_record_header_t h = {tag, 0, 0};
    e->rec_off = e->offset;
    e->tag = tag;
    e->crc = 0;
    raw(e, &h, sizeof(h));
}

void mtf_enc_end(mtf_enc_t *e)
{
    mtsnap_record_header_t h = {e->tag, e->crc, e->offset - e->rec_off - sizeof(h)};
    if (!e->err)
        e->err = e->sink->patch(e->sink, e->rec_off, &h, sizeof(h));
    e->records++;
}

void mtf_enc_record(mtf_enc_t *e, uint32_t tag, const void *payload, size_t len)
{
    mtf_enc_begin(e, tag);
    mtf_enc_put(e, payload, len);
    mtf_enc_end(e);
}

void mtf_enc_finish(mtf_enc_t *e)
{
    mtsnap_end_t end = {e->records, e->offset};
    mtf_enc_begin(e, MTSNAP_TAG_END);
    mtf_enc_put(e, &end, sizeof(end));
    mtf_enc_end(e);
}

int mtf_enc_close(mtf_enc_t *e)
{
    int r = e->sink->close(e->sink);
    return e->err ? e->err : r;
}

mtf_payload_fn *mtf_source_fn(const mtf_source_t *src, uint32_t tag)
{
    switch (tag) {
#define MTF_CASE_(NAME, name, value) case MTSNAP_TAG_##NAME: return src->name;
    MTSNAP_REQUIRED_RECORDS(MTF_CASE_)
    MTSNAP_AFTER_RECORDS(MTF_CASE_)
#undef MTF_CASE_
    default: return NULL;
    }
}

int mtf_encode(mtf_enc_t *e, const mtf_source_t *src, void *ctx)
{
#define MTF_CHECK_(NAME, name, value) if (!src->name) return -EINVAL;
    MTSNAP_REQUIRED_RECORDS(MTF_CHECK_)
#undef MTF_CHECK_
    mtf_enc_header(e, MTSNAP_VERSION);
#define MTF_WRITE_(NAME, name, value)           \
    if (src->name) {                            \
        mtf_enc_begin(e, MTSNAP_TAG_##NAME);    \
        src->name(e, ctx);                      \
        mtf_enc_end(e);                         \
    }
    MTSNAP_REQUIRED_RECORDS(MTF_WRITE_)
    MTSNAP_AFTER_RECORDS(MTF_WRITE_)
#undef MTF_WRITE_
    if (src->extra)
        src->extra(e, ctx);
    mtf_enc_finish(e);
    return e->err;
}
