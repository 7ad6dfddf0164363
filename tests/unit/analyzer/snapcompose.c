/* Test-side snapshot composer: an mtc_snap_t's records written by the
 * format library's encoder (format/encode.h) into a memory sink, plus the
 * raw calls the reader tests use to build broken files. Out of memory
 * aborts: these are tests. */
#include "snapcompose.h"

#include <stdlib.h>
#include <string.h>

#include "encode.h"

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

/* Room for element n of an array of n elements: the capacity doubles (it is
 * the power of two at or above the count), so composing a snapshot of
 * 100,000 stacks stays linear, under ASan's copying realloc too. */
static void *grow(void *p, size_t n, size_t size)
{
    return n & (n - 1) ? p : xrealloc(p, (n ? 2 * n : 1) * size);
}

/* An encoder continuing at the end of b, over a memory sink holding b's bytes. */
typedef struct enc_on_buf {
    mtf_mem_sink_t sink;
    mtf_enc_t enc;
    mtc_buf_t *b;
} enc_on_buf_t;

static mtf_enc_t *enc_open(enc_on_buf_t *eb, mtc_buf_t *b)
{
    eb->b = b;
    mtf_mem_sink_init(&eb->sink, b->data, b->len, b->cap);
    mtf_enc_init(&eb->enc, &eb->sink.sink, b->len, b->records);
    eb->enc.version = b->version >= MTSNAP_VERSION_V2 && b->version <= MTSNAP_VERSION
                          ? b->version : MTSNAP_VERSION_V1;
    mtf_enc_codec(&eb->enc, b->zstd);
    eb->enc.store_below = b->store_below;
    return &eb->enc;
}

static void enc_close(enc_on_buf_t *eb)
{
    if (mtf_enc_close(&eb->enc) < 0)
        abort();
    eb->b->data = eb->sink.data;
    eb->b->len = eb->sink.len;
    eb->b->cap = eb->sink.cap;
    eb->b->records = eb->enc.records;
    eb->b->version = eb->enc.version;
}

void mtc_put(mtc_buf_t *b, const void *p, size_t n)
{
    mtf_mem_sink_t sink;
    mtf_mem_sink_init(&sink, b->data, b->len, b->cap);
    if (sink.sink.write(&sink.sink, p, n) < 0)
        abort();
    b->data = sink.data;
    b->len = sink.len;
    b->cap = sink.cap;
}

void mtc_header(mtc_buf_t *b, uint16_t version)
{
    enc_on_buf_t eb;
    mtf_enc_header(enc_open(&eb, b), version);
    enc_close(&eb);
}

void mtc_record(mtc_buf_t *b, uint32_t tag, const void *payload, size_t len)
{
    enc_on_buf_t eb;
    mtf_enc_record(enc_open(&eb, b), tag, payload, len);
    enc_close(&eb);
}

void mtc_end(mtc_buf_t *b)
{
    enc_on_buf_t eb;
    mtf_enc_finish(enc_open(&eb, b));
    enc_close(&eb);
}

void mtc_buf_free(mtc_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void mtc_snap_init(mtc_snap_t *s)
{
    memset(s, 0, sizeof(*s));
    mtc_strn(s, "", 0);
    s->meta = (mtsnap_meta_t){ .pid = 4242, .ppid = 1, .time_ns = 1700000000123456789ull,
                               .start_ns = 1699999990000000000ull, .counter = 10,
                               .trigger = MTSNAP_TRIGGER_EXIT, .seq = 1, .depth = 64 };
}

void mtc_snap_free(mtc_snap_t *s)
{
    for (uint32_t i = 0; i < s->nstrings; i++)
        free(s->strings[i]);
    free(s->strings);
    free(s->string_len);
    free(s->modules);
    free(s->frames);
    mtc_buf_free(&s->stacks);
    free(s->stats);
    free(s->blocks);
    free(s->pyobjs);
    free(s->pyedges);
    memset(s, 0, sizeof(*s));
}

uint32_t mtc_strn(mtc_snap_t *s, const char *p, size_t n)
{
    for (uint32_t i = 0; i < s->nstrings; i++)
        if (s->string_len[i] == n && memcmp(s->strings[i], p, n) == 0)
            return i;
    s->strings = grow(s->strings, s->nstrings, sizeof(*s->strings));
    s->string_len = grow(s->string_len, s->nstrings, sizeof(*s->string_len));
    s->strings[s->nstrings] = xrealloc(NULL, n + 1);
    memcpy(s->strings[s->nstrings], p, n);
    s->strings[s->nstrings][n] = '\0';
    s->string_len[s->nstrings] = (uint32_t)n;
    return s->nstrings++;
}

uint32_t mtc_str(mtc_snap_t *s, const char *p)
{
    return mtc_strn(s, p, strlen(p));
}

uint32_t mtc_module(mtc_snap_t *s, uint64_t start, uint64_t end, uint64_t bias, const char *path)
{
    s->modules = grow(s->modules, s->nmodules, sizeof(*s->modules));
    s->modules[s->nmodules] = (mtsnap_module_t){ .start = start, .end = end, .bias = bias,
                                                 .path = mtc_str(s, path) };
    return s->nmodules++;
}

uint32_t mtc_frame(mtc_snap_t *s, uint64_t pc, uint32_t module, const char *function,
                   const char *file, uint32_t line)
{
    s->frames = grow(s->frames, s->nframes, sizeof(*s->frames));
    s->frames[s->nframes] = (mtsnap_frame_t){ .pc = pc, .module = module,
                                              .function = mtc_str(s, function),
                                              .file = mtc_str(s, file), .line = line };
    return s->nframes++;
}

uint32_t mtc_stack(mtc_snap_t *s, uint32_t depth, const uint32_t *frames)
{
    mtc_put(&s->stacks, &depth, sizeof(depth));
    mtc_put(&s->stacks, frames, depth * sizeof(uint32_t));
    return s->nstacks++;
}

void mtc_stat(mtc_snap_t *s, uint32_t stack, uint64_t live_bytes, uint64_t live_blocks,
              uint64_t alloc_bytes, uint64_t alloc_blocks, uint64_t peak_bytes,
              uint64_t peak_blocks)
{
    s->stats = grow(s->stats, s->nstats, sizeof(*s->stats));
    s->stats[s->nstats++] = (mtsnap_stack_stat_t){
        .stack = stack, .live_bytes = live_bytes, .live_blocks = live_blocks,
        .alloc_bytes = alloc_bytes, .alloc_blocks = alloc_blocks,
        .peak_bytes = peak_bytes, .peak_blocks = peak_blocks };
}

void mtc_block(mtc_snap_t *s, uint64_t address, uint64_t size, uint32_t stack)
{
    /* Geometric growth (capacity: the power of two at or above nblocks):
     * tests add 200,000 blocks one at a time, and ASan's realloc always
     * copies. */
    uint64_t n = s->nblocks;
    if (!s->blocks || (n & (n - 1)) == 0)
        s->blocks = xrealloc(s->blocks, (n ? 2 * n : 1) * sizeof(*s->blocks));
    s->blocks[s->nblocks] = (mtsnap_block_t){ .address = address, .size = size,
                                              .counter = s->nblocks + 1, .stack = stack };
    s->nblocks++;
}

void mtc_pyobj(mtc_snap_t *s, const mtsnap_pyobj_t *o, const uint64_t *edges)
{
    uint32_t n = s->pygraph.objects;
    s->has_pygraph = 1;
    s->pyobjs = grow(s->pyobjs, n, sizeof(*s->pyobjs));
    s->pyobjs[n] = *o;
    s->pyedges = xrealloc(s->pyedges, (s->pygraph.edges + o->nrefs) * sizeof(*s->pyedges));
    if (o->nrefs)   /* edges may be NULL then: memcpy's arguments may never be */
        memcpy(s->pyedges + s->pygraph.edges, edges, o->nrefs * sizeof(*edges));
    s->pygraph.edges += o->nrefs;
    s->pygraph.objects = n + 1;
}

/* ---- the records' payloads, for the encoder ---- */
typedef struct compose_ctx {
    const mtc_snap_t *s;
    const mtc_extra_t *extra;
    size_t nextra;
} compose_ctx_t;

static void put_meta(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_put(e, &s->meta, sizeof(s->meta));
}

static void put_strings(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_strings(e, s->nstrings, (const char *const *)s->strings, s->string_len);
}

static void put_modules(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_array(e, s->nmodules, s->modules, sizeof(*s->modules));
}

static void put_frames(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_frames(e, s->nframes, s->frames);
}

static void put_stacks(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_uint(e, s->nstacks);
    /* stored as v1 entries: u32 depth, depth x u32 frame */
    for (size_t off = 0; off < s->stacks.len;) {
        uint32_t depth;
        memcpy(&depth, s->stacks.data + off, 4);
        off += 4;
        uint32_t *f = malloc(depth ? (size_t)depth * 4 : 1);
        if (!f)
            abort();
        memcpy(f, s->stacks.data + off, (size_t)depth * 4);
        off += (size_t)depth * 4;
        mtf_enc_stack(e, depth, f);
        free(f);
    }
}

static void put_stack_stats(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_uint(e, s->nstats);
    for (uint32_t i = 0; i < s->nstats; i++)
        mtf_enc_stack_stat(e, &s->stats[i]);
}

static void put_totals(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_put(e, &s->totals, sizeof(s->totals));
}

static void put_blocks(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    if (e->version == MTSNAP_VERSION_V1) {   /* as given, even unsorted */
        mtf_enc_u64(e, s->nblocks);
        mtf_enc_put(e, s->blocks, s->nblocks * sizeof(*s->blocks));
        return;
    }
    mtf_enc_blocks_begin(e, s->nblocks);
    for (uint64_t i = 0; i < s->nblocks; i++)
        mtf_enc_block(e, &s->blocks[i]);
}

/* The index of the object at addr, or MTSNAP_NONE. */
static uint32_t pyobj_index(const mtc_snap_t *s, uint64_t addr)
{
    uint32_t lo = 0, hi = s->pygraph.objects;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->pyobjs[mid].address < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->pygraph.objects && s->pyobjs[lo].address == addr ? lo : MTSNAP_NONE;
}

static void put_pygraph(mtf_enc_t *e, void *ctx)
{
    const mtc_snap_t *s = ((compose_ctx_t *)ctx)->s;
    mtf_enc_pygraph_begin(e, &s->pygraph);
    for (uint32_t i = 0; i < s->pygraph.objects; i++)
        mtf_enc_pyobj(e, &s->pyobjs[i]);
    uint64_t k = 0;
    for (uint32_t i = 0; i < s->pygraph.objects; i++)
        for (uint32_t j = 0; j < s->pyobjs[i].nrefs; j++, k++)
            mtf_enc_pyedge(e, i, pyobj_index(s, s->pyedges[k]), s->pyedges[k]);
}

static void put_extra(mtf_enc_t *e, void *ctx)
{
    const compose_ctx_t *c = ctx;
    for (size_t i = 0; i < c->nextra; i++)
        mtf_enc_record(e, c->extra[i].tag, c->extra[i].payload, c->extra[i].len);
}

static const mtf_source_t compose_source = {
    .meta = put_meta, .strings = put_strings, .modules = put_modules,
    .frames = put_frames, .stacks = put_stacks, .stack_stats = put_stack_stats,
    .totals = put_totals, .blocks = put_blocks, .extra = put_extra,
};

void mtc_payload(const mtc_snap_t *s, uint32_t tag, mtc_buf_t *out)
{
    mtf_payload_fn *fn = mtf_source_fn(&compose_source, tag);
    compose_ctx_t ctx = {s, NULL, 0};
    enc_on_buf_t eb;
    if (!fn)
        abort();
    out->len = 0;
    fn(enc_open(&eb, out), &ctx);
    enc_close(&eb);
}

void mtc_compose(const mtc_snap_t *s, mtc_buf_t *out)
{
    mtc_compose_with(s, NULL, 0, out);
}

/* The whole file from src into out, which it replaces. */
static void encode_whole(const mtf_source_t *src, compose_ctx_t *ctx, mtc_buf_t *out)
{
    enc_on_buf_t eb;
    out->len = 0;
    out->records = 0;
    if (mtf_encode(enc_open(&eb, out), src, ctx) < 0)
        abort();
    enc_close(&eb);
}

void mtc_compose_made(const mtc_snap_t *s, mtc_buf_t *out)
{
    compose_ctx_t ctx = {s, NULL, 0};
    mtc_buf_t made = {.version = out->version, .zstd = out->zstd, .store_below = out->store_below};
    enc_on_buf_t eb;
    mtf_enc_t *e = enc_open(&eb, &made);
    mtf_enc_begin(e, MTSNAP_TAG_PYGRAPH);
    put_pygraph(e, &ctx);
    mtf_enc_end(e);
    enc_close(&eb);
    mtf_source_t src = compose_source;
    src.made_tag = MTSNAP_TAG_PYGRAPH;
    src.made = made.data;
    src.made_len = made.len;
    encode_whole(&src, &ctx, out);
    free(made.data);
}

void mtc_compose_with(const mtc_snap_t *s, const mtc_extra_t *extra, size_t nextra, mtc_buf_t *out)
{
    compose_ctx_t ctx = {s, extra, nextra};
    mtf_source_t src = compose_source;
    if (s->has_pygraph)
        src.pygraph = put_pygraph;
    encode_whole(&src, &ctx, out);
}
