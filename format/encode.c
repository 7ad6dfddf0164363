/* The snapshot encoder (format/encode.h): record framing, CRCs, END,
 * the payload layouts of versions 1 to 3, zstd streaming, and the one place that
 * walks the record lists of memtrail_format.h to write a file. */
#include "encode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ZIN_SIZE (1u << 17)    /* raw bytes staged before each compression call */
#define ZOUT_SIZE (1u << 17)

/* The context is made when a record first needs it (zready): a snapshot
 * whose records are all stored (store_below) never asks for libzstd. */
struct mtf_zstd {
    const mtf_zapi_t *api;     /* libzstd's functions (encode.h), NULL until asked for */
    const mtf_zapi_t *(*get_api)(void);
    int level, window_log;
    int no_zstd;               /* get_api gave none: records are stored */
    mtf_zstd_mem_t mem;
    int has_mem;
    ZSTD_CCtx *cctx;
    size_t used;               /* bytes staged in in[] */
    uint8_t in[ZIN_SIZE];
    uint8_t out[ZOUT_SIZE];
};

mtf_zstd_t *mtf_zstd_new_api(int level, const mtf_zstd_mem_t *mem,
                             const mtf_zapi_t *(*get_api)(void))
{
    mtf_zstd_t *z = malloc(sizeof(*z));
    if (!z)
        return NULL;
    z->api = NULL;
    z->get_api = get_api;
    z->level = level;
    z->window_log = 0;
    z->no_zstd = 0;
    z->has_mem = mem != NULL;
    if (mem)
        z->mem = *mem;
    z->cctx = NULL;
    z->used = 0;
    return z;
}

/* The context, made on first need: 1, or 0 without one (no libzstd, no
 * memory: the record is stored). */
static int zready(mtf_zstd_t *z)
{
    if (z->cctx)
        return 1;
    if (z->no_zstd)
        return 0;
    if (!z->api && !(z->api = z->get_api ? z->get_api() : NULL))
        return 0;   /* asked again for the next record */
    const mtf_zapi_t *a = z->api;
    z->cctx = z->has_mem ? a->ZSTD_createCCtx_advanced((ZSTD_customMem){z->mem.alloc, z->mem.free,
                                                                        z->mem.opaque})
                         : a->ZSTD_createCCtx();
    if (!z->cctx)
        return 0;
    if (a->ZSTD_isError(a->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level)) ||
        a->ZSTD_isError(a->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1)) ||
        a->ZSTD_isError(a->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, z->window_log))) {
        a->ZSTD_freeCCtx(z->cctx);
        z->cctx = NULL;
        z->no_zstd = 1;
        return 0;
    }
    return 1;
}

int mtf_zstd_window_log(mtf_zstd_t *z, int log)
{
    if (log && (log < ZSTD_WINDOWLOG_MIN || log > ZSTD_WINDOWLOG_MAX))
        return -EINVAL;
    z->window_log = log;
    if (!z->cctx)
        return 0;   /* set when the context is made */
    size_t r = z->api->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, log);
    return z->api->ZSTD_isError(r) ? -EINVAL : 0;
}

void mtf_zstd_free(mtf_zstd_t *z)
{
    if (!z)
        return;
    if (z->cctx)
        z->api->ZSTD_freeCCtx(z->cctx);
    free(z);
}

void mtf_enc_init(mtf_enc_t *e, mtf_sink_t *sink, uint64_t offset, uint64_t records)
{
    *e = (mtf_enc_t){.sink = sink, .offset = offset, .records = records,
                     .version = MTSNAP_VERSION};
}

void mtf_enc_codec(mtf_enc_t *e, mtf_zstd_t *z)
{
    e->z = z;
}

/* Bytes outside any CRC (headers). */
static void raw(mtf_enc_t *e, const void *p, size_t n)
{
    e->offset += n;
    if (!e->err)
        e->err = e->sink->write(e->sink, p, n);
}

/* Stored bytes of the open record: under its CRC. */
static void stored(mtf_enc_t *e, const void *p, size_t n)
{
    e->crc = mtsnap_crc32(e->crc, p, n);
    raw(e, p, n);
}

/* Compresses the staged bytes; mode ZSTD_e_end closes the record's frame.
 * Without a context (zready) the record is stored instead: its staged bytes
 * now, the rest as they come (e->codec). */
static void zflush(mtf_enc_t *e, ZSTD_EndDirective mode)
{
    mtf_zstd_t *z = e->z;
    if (!e->zfed && !zready(z)) {
        e->codec = MTSNAP_CODEC_STORED;
        stored(e, z->in, z->used);
        z->used = 0;
        return;
    }
    ZSTD_inBuffer in = {z->in, z->used, 0};
    z->used = 0;
    e->zfed = 1;
    while (!e->err) {
        ZSTD_outBuffer out = {z->out, sizeof(z->out), 0};
        size_t r = z->api->ZSTD_compressStream2(z->cctx, &out, &in, mode);
        if (z->api->ZSTD_isError(r)) {
            e->err = z->api->ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
            return;
        }
        stored(e, z->out, out.pos);
        if (mode == ZSTD_e_end ? r == 0 : in.pos == in.size)
            return;
    }
}

void mtf_enc_header(mtf_enc_t *e, uint16_t version)
{
    mtsnap_file_header_t h = {.version = version, .hdr_size = sizeof(h)};
    memcpy(h.magic, MTSNAP_MAGIC, MTSNAP_MAGIC_LEN);
    if (version >= MTSNAP_VERSION_V1 && version <= MTSNAP_VERSION)
        e->version = version;
    raw(e, &h, sizeof(h));
}

void mtf_enc_put(mtf_enc_t *e, const void *p, size_t n)
{
    e->raw += n;
    if (e->codec != MTSNAP_CODEC_ZSTD) {
        stored(e, p, n);
        return;
    }
    mtf_zstd_t *z = e->z;
    const uint8_t *s = p;
    while (n) {
        size_t k = sizeof(z->in) - z->used;
        if (k > n)
            k = n;
        memcpy(z->in + z->used, s, k);
        z->used += k;
        s += k;
        n -= k;
        if (z->used == sizeof(z->in)) {
            zflush(e, ZSTD_e_continue);
            if (e->codec != MTSNAP_CODEC_ZSTD) {   /* no zstd after all: stored */
                stored(e, s, n);
                return;
            }
        }
    }
}

void mtf_enc_u32(mtf_enc_t *e, uint32_t v) { mtf_enc_put(e, &v, sizeof(v)); }
void mtf_enc_u64(mtf_enc_t *e, uint64_t v) { mtf_enc_put(e, &v, sizeof(v)); }

/* LEB128 into d (MTSNAP_VARINT_MAX bytes); returns the bytes used. */
static size_t leb(uint8_t *d, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t)v;
    return n;
}

static uint64_t zz(uint64_t delta)
{
    return (delta << 1) ^ (uint64_t)((int64_t)delta >> 63);
}

void mtf_enc_varint(mtf_enc_t *e, uint64_t v)
{
    uint8_t d[MTSNAP_VARINT_MAX];
    mtf_enc_put(e, d, leb(d, v));
}

void mtf_enc_uint(mtf_enc_t *e, uint32_t v)
{
    if (e->version == MTSNAP_VERSION_V1)
        mtf_enc_u32(e, v);
    else
        mtf_enc_varint(e, v);
}

/* The frames of a STACKS entry or node after its first `n` bytes in d. */
static void stack_frames(mtf_enc_t *e, uint8_t *d, size_t cap, size_t n, uint32_t depth,
                         const uint32_t *frames)
{
    for (uint32_t i = 0; i < depth; i++) {
        if (n > cap - 5) {
            mtf_enc_put(e, d, n);
            n = 0;
        }
        n += leb(d + n, frames[i]);
    }
    mtf_enc_put(e, d, n);
}

void mtf_enc_stack(mtf_enc_t *e, uint32_t depth, const uint32_t *frames)
{
    if (e->version == MTSNAP_VERSION_V1) {
        mtf_enc_u32(e, depth);
        mtf_enc_put(e, frames, (size_t)depth * sizeof(*frames));
        return;
    }
    if (e->version != MTSNAP_VERSION_V2) {
        mtf_enc_stack_node(e, MTSNAP_NONE, 1, depth, frames);
        return;
    }
    uint8_t d[64 * 5];   /* 64 varints of at most 5 bytes (u32) */
    stack_frames(e, d, sizeof(d), leb(d, depth), depth, frames);
}

void mtf_enc_stack_node(mtf_enc_t *e, uint32_t parent, int is_stack, uint32_t own,
                        const uint32_t *frames)
{
    uint8_t d[64 * 5];
    size_t n = leb(d, parent == MTSNAP_NONE ? 0 : (uint64_t)parent + 1);
    n += leb(d + n, (uint64_t)own << 1 | (is_stack != 0));
    stack_frames(e, d, sizeof(d), n, own, frames);
}

void mtf_enc_array(mtf_enc_t *e, uint32_t count, const void *items, size_t size)
{
    mtf_enc_u32(e, count);
    mtf_enc_put(e, items, (size_t)count * size);
}

void mtf_enc_frames(mtf_enc_t *e, uint32_t count, const mtsnap_frame_t *frames)
{
    if (e->version == MTSNAP_VERSION_V1) {
        mtf_enc_array(e, count, frames, sizeof(*frames));
        return;
    }
    mtf_enc_varint(e, count);
    for (uint32_t i = 0; i < count; i++) {
        const mtsnap_frame_t *f = &frames[i];
        uint8_t d[7 * MTSNAP_VARINT_MAX];
        size_t n = leb(d, zz(f->pc - e->prev));
        n += leb(d + n, f->offset);
        n += leb(d + n, f->module == MTSNAP_NONE ? 0 : (uint64_t)f->module + 1);
        n += leb(d + n, f->function);
        n += leb(d + n, f->file);
        n += leb(d + n, f->line);
        n += leb(d + n, f->kind);
        mtf_enc_put(e, d, n);
        e->prev = f->pc;
    }
}

void mtf_enc_stack_stat(mtf_enc_t *e, const mtsnap_stack_stat_t *s)
{
    if (e->version == MTSNAP_VERSION_V1) {
        mtf_enc_put(e, s, sizeof(*s));
        return;
    }
    uint8_t d[7 * MTSNAP_VARINT_MAX];
    size_t n = leb(d, s->stack);
    n += leb(d + n, s->live_bytes);
    n += leb(d + n, s->live_blocks);
    n += leb(d + n, s->alloc_bytes);
    n += leb(d + n, s->alloc_blocks);
    n += leb(d + n, s->peak_bytes);
    n += leb(d + n, s->peak_blocks);
    mtf_enc_put(e, d, n);
}

void mtf_enc_blocks_begin(mtf_enc_t *e, uint64_t count)
{
    e->count = count;
    e->done = 0;
    e->prev = 0;
    e->blocks_open = 1;
    if (e->version == MTSNAP_VERSION_V1)
        mtf_enc_u64(e, count);
    else
        mtf_enc_varint(e, count);
}

void mtf_enc_block(mtf_enc_t *e, const mtsnap_block_t *b)
{
    if ((e->done && b->address <= e->prev) || e->done >= e->count) {
        if (!e->err)
            e->err = -EINVAL;
        return;
    }
    if (e->version == MTSNAP_VERSION_V1) {
        mtf_enc_put(e, b, sizeof(*b));
    } else {
        uint8_t d[4 * MTSNAP_VARINT_MAX];
        size_t n = leb(d, b->address - e->prev);   /* the first: prev is 0 */
        n += leb(d + n, b->size);
        n += leb(d + n, b->stack);
        n += leb(d + n, b->domain);
        mtf_enc_put(e, d, n);
    }
    e->prev = b->address;
    e->done++;
}

void mtf_enc_pygraph_begin(mtf_enc_t *e, const mtsnap_pygraph_header_t *h)
{
    e->done = 0;
    e->prev = e->prev_out = 0;
    mtf_enc_put(e, h, sizeof(*h));
}

void mtf_enc_pyobj(mtf_enc_t *e, const mtsnap_pyobj_t *o)
{
    if (e->version == MTSNAP_VERSION_V1) {
        mtf_enc_put(e, o, sizeof(*o));
        return;
    }
    if (e->done && o->address <= e->prev && !e->err)
        e->err = -EINVAL;
    uint8_t d[6 * MTSNAP_VARINT_MAX];
    size_t n = leb(d, o->address - e->prev);
    n += leb(d + n, o->size);
    n += leb(d + n, zz((uint64_t)o->refcount));
    n += leb(d + n, o->type);
    n += leb(d + n, o->flags);
    n += leb(d + n, o->nrefs);
    mtf_enc_put(e, d, n);
    e->prev = o->address;
    e->done++;
}

void mtf_enc_pyedge(mtf_enc_t *e, uint32_t from, uint32_t to, uint64_t address)
{
    if (e->version == MTSNAP_VERSION_V1) {
        mtf_enc_u64(e, address);
        return;
    }
    uint8_t d[2 * MTSNAP_VARINT_MAX];
    size_t n;
    if (to != MTSNAP_NONE) {
        n = leb(d, zz((uint64_t)to - from) + 1);
    } else {
        d[0] = 0;
        n = 1 + leb(d + 1, zz(address - e->prev_out));
        e->prev_out = address;
    }
    mtf_enc_put(e, d, n);
}

void mtf_enc_timeline_begin(mtf_enc_t *e, uint64_t step_ns, uint32_t count)
{
    e->done = 0;
    e->count = count;
    e->tl_prev = (mtsnap_tlpoint_t){0};
    mtf_enc_varint(e, step_ns);
    mtf_enc_varint(e, count);
}

void mtf_enc_tlpoint(mtf_enc_t *e, const mtsnap_tlpoint_t *pt)
{
    const mtsnap_tlpoint_t *q = &e->tl_prev;
    if (((e->done && pt->t_ns <= q->t_ns) || e->done >= e->count) && !e->err)
        e->err = -EINVAL;
    uint8_t d[4 * MTSNAP_VARINT_MAX];
    size_t n = leb(d, pt->t_ns - q->t_ns);
    n += leb(d + n, zz(pt->heap_bytes - q->heap_bytes));
    n += leb(d + n, zz(pt->heap_blocks - q->heap_blocks));
    n += leb(d + n, zz(pt->rss_bytes - q->rss_bytes));
    mtf_enc_put(e, d, n);
    e->tl_prev = *pt;
    e->done++;
}

void mtf_enc_inlined_begin(mtf_enc_t *e, uint32_t count)
{
    e->done = 0;
    e->count = count;
    e->prev = 0;
    mtf_enc_varint(e, count);
}

void mtf_enc_inlined(mtf_enc_t *e, uint32_t frame)
{
    if (((e->done && frame <= e->prev) || e->done >= e->count) && !e->err)
        e->err = -EINVAL;
    mtf_enc_varint(e, frame - (e->done ? e->prev : 0));
    e->prev = frame;
    e->done++;
}

void mtf_enc_strings(mtf_enc_t *e, uint32_t count, const char *const *str, const uint32_t *len)
{
    mtf_enc_u32(e, count);
    for (uint32_t i = 0; i < count; i++) {
        mtf_enc_u32(e, len[i]);
        mtf_enc_put(e, str[i], len[i]);
    }
}

/* Small fixed records are stored: a zstd frame would only add bytes. */
static int compressed(uint32_t tag)
{
    return tag != MTSNAP_TAG_META && tag != MTSNAP_TAG_TOTALS && tag != MTSNAP_TAG_TIMING &&
           tag != MTSNAP_TAG_COSTS &&
           tag != MTSNAP_TAG_SAMPLING && tag != MTSNAP_TAG_END;
}

void mtf_enc_begin(mtf_enc_t *e, uint32_t tag)
{
    mtsnap_record_header_v2_t h = {0};
    e->rec_off = e->offset;
    e->tag = tag;
    e->crc = 0;
    e->raw = 0;
    e->prev = e->prev_out = 0;
    e->blocks_open = 0;
    e->count = e->done = 0;
    e->codec = MTSNAP_CODEC_STORED;
    e->zfed = 0;
    if (e->version != MTSNAP_VERSION_V1 && e->z && compressed(tag)) {
        e->codec = MTSNAP_CODEC_ZSTD;
        e->z->used = 0;
        const mtf_zapi_t *a = e->z->api;   /* a context not made yet starts a session anyway */
        if (e->z->cctx && a->ZSTD_isError(a->ZSTD_CCtx_reset(e->z->cctx, ZSTD_reset_session_only)) &&
            !e->err)
            e->err = -EIO;
    }
    raw(e, &h, e->version == MTSNAP_VERSION_V1 ? sizeof(mtsnap_record_header_t) : sizeof(h));
}

void mtf_enc_end(mtf_enc_t *e)
{
    /* A record that never reached zstd and is small is stored (store_below):
     * its frame would save a few hundred bytes at most, and a snapshot whose
     * records are all small (a short-lived process's) never makes zstd's
     * work space, some 650 KiB to map and clear. */
    if (e->codec == MTSNAP_CODEC_ZSTD && !e->zfed && e->z->used < e->store_below) {
        e->codec = MTSNAP_CODEC_STORED;
        stored(e, e->z->in, e->z->used);
        e->z->used = 0;
    }
    if (e->codec == MTSNAP_CODEC_ZSTD)
        zflush(e, ZSTD_e_end);
    if ((e->blocks_open || e->tag == MTSNAP_TAG_TIMELINE || e->tag == MTSNAP_TAG_INLINED) &&
        e->done != e->count && !e->err)
        e->err = -EINVAL;
    if (e->version == MTSNAP_VERSION_V1) {
        mtsnap_record_header_t h = {e->tag, e->crc, e->offset - e->rec_off - sizeof(h)};
        if (!e->err)
            e->err = e->sink->patch(e->sink, e->rec_off, &h, sizeof(h));
    } else {
        mtsnap_record_header_v2_t h = {e->tag, e->crc, e->offset - e->rec_off - sizeof(h),
                                       e->raw, e->codec, 0};
        if (!e->err)
            e->err = e->sink->patch(e->sink, e->rec_off, &h, sizeof(h));
    }
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

void mtf_enc_splice(mtf_enc_t *e, const void *rec, size_t len)
{
    raw(e, rec, len);
    e->records++;
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
    mtf_enc_header(e, e->version);
#define MTF_WRITE_(NAME, name, value)                               \
    if (src->name) {                                                \
        mtf_enc_begin(e, MTSNAP_TAG_##NAME);                        \
        src->name(e, ctx);                                          \
        mtf_enc_end(e);                                             \
    } else if (src->made_len && src->made_tag == MTSNAP_TAG_##NAME) { \
        mtf_enc_splice(e, src->made, src->made_len);                \
    }
    MTSNAP_REQUIRED_RECORDS(MTF_WRITE_)
    MTSNAP_AFTER_RECORDS(MTF_WRITE_)
#undef MTF_WRITE_
    if (src->extra)
        src->extra(e, ctx);
    mtf_enc_finish(e);
    return e->err;
}
