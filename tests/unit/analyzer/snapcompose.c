/* Test-side snapshot composer: serializes an mtc_snap_t into the v1 format
 * of include/memtrail_format.h, independently of the preload's writer. */
#include "snapcompose.h"

#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

void mtc_put(mtc_buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->data = xrealloc(b->data, b->cap);
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u32(mtc_buf_t *b, uint32_t v) { mtc_put(b, &v, 4); }
static void put_u64(mtc_buf_t *b, uint64_t v) { mtc_put(b, &v, 8); }

void mtc_header(mtc_buf_t *b, uint16_t version)
{
    mtsnap_file_header_t h = { .version = version, .hdr_size = sizeof(h) };
    memcpy(h.magic, MTSNAP_MAGIC, MTSNAP_MAGIC_LEN);
    mtc_put(b, &h, sizeof(h));
}

void mtc_record(mtc_buf_t *b, uint32_t tag, const void *payload, size_t len)
{
    mtsnap_record_header_t rh = { .tag = tag, .crc32 = mtsnap_crc32(0, payload, len),
                                  .length = len };
    mtc_put(b, &rh, sizeof(rh));
    mtc_put(b, payload, len);
    b->records++;
}

void mtc_end(mtc_buf_t *b)
{
    mtsnap_end_t e = { .records = b->records, .offset = b->len };
    mtsnap_record_header_t rh = { .tag = MTSNAP_TAG_END, .crc32 = mtsnap_crc32(0, &e, sizeof(e)),
                                  .length = sizeof(e) };
    mtc_put(b, &rh, sizeof(rh));
    mtc_put(b, &e, sizeof(e));
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
    memset(s, 0, sizeof(*s));
}

uint32_t mtc_strn(mtc_snap_t *s, const char *p, size_t n)
{
    for (uint32_t i = 0; i < s->nstrings; i++)
        if (s->string_len[i] == n && memcmp(s->strings[i], p, n) == 0)
            return i;
    s->strings = xrealloc(s->strings, (s->nstrings + 1) * sizeof(*s->strings));
    s->string_len = xrealloc(s->string_len, (s->nstrings + 1) * sizeof(*s->string_len));
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
    s->modules = xrealloc(s->modules, (s->nmodules + 1) * sizeof(*s->modules));
    s->modules[s->nmodules] = (mtsnap_module_t){ .start = start, .end = end, .bias = bias,
                                                 .path = mtc_str(s, path) };
    return s->nmodules++;
}

uint32_t mtc_frame(mtc_snap_t *s, uint64_t pc, uint32_t module, const char *function,
                   const char *file, uint32_t line)
{
    s->frames = xrealloc(s->frames, (s->nframes + 1) * sizeof(*s->frames));
    s->frames[s->nframes] = (mtsnap_frame_t){ .pc = pc, .module = module,
                                              .function = mtc_str(s, function),
                                              .file = mtc_str(s, file), .line = line };
    return s->nframes++;
}

uint32_t mtc_stack(mtc_snap_t *s, uint32_t depth, const uint32_t *frames)
{
    put_u32(&s->stacks, depth);
    mtc_put(&s->stacks, frames, depth * sizeof(uint32_t));
    return s->nstacks++;
}

void mtc_stat(mtc_snap_t *s, uint32_t stack, uint64_t live_bytes, uint64_t live_blocks,
              uint64_t alloc_bytes, uint64_t alloc_blocks, uint64_t peak_bytes,
              uint64_t peak_blocks)
{
    s->stats = xrealloc(s->stats, (s->nstats + 1) * sizeof(*s->stats));
    s->stats[s->nstats++] = (mtsnap_stack_stat_t){
        .stack = stack, .live_bytes = live_bytes, .live_blocks = live_blocks,
        .alloc_bytes = alloc_bytes, .alloc_blocks = alloc_blocks,
        .peak_bytes = peak_bytes, .peak_blocks = peak_blocks };
}

void mtc_block(mtc_snap_t *s, uint64_t address, uint64_t size, uint32_t stack)
{
    s->blocks = xrealloc(s->blocks, (s->nblocks + 1) * sizeof(*s->blocks));
    s->blocks[s->nblocks] = (mtsnap_block_t){ .address = address, .size = size,
                                              .counter = s->nblocks + 1, .stack = stack };
    s->nblocks++;
}

void mtc_payload(const mtc_snap_t *s, uint32_t tag, mtc_buf_t *out)
{
    out->len = 0;
    switch (tag) {
    case MTSNAP_TAG_META: mtc_put(out, &s->meta, sizeof(s->meta)); break;
    case MTSNAP_TAG_STRINGS:
        put_u32(out, s->nstrings);
        for (uint32_t i = 0; i < s->nstrings; i++) {
            put_u32(out, s->string_len[i]);
            mtc_put(out, s->strings[i], s->string_len[i]);
        }
        break;
    case MTSNAP_TAG_MODULES:
        put_u32(out, s->nmodules);
        mtc_put(out, s->modules, s->nmodules * sizeof(*s->modules));
        break;
    case MTSNAP_TAG_FRAMES:
        put_u32(out, s->nframes);
        mtc_put(out, s->frames, s->nframes * sizeof(*s->frames));
        break;
    case MTSNAP_TAG_STACKS:
        put_u32(out, s->nstacks);
        mtc_put(out, s->stacks.data, s->stacks.len);
        break;
    case MTSNAP_TAG_STACK_STATS:
        put_u32(out, s->nstats);
        mtc_put(out, s->stats, s->nstats * sizeof(*s->stats));
        break;
    case MTSNAP_TAG_TOTALS: mtc_put(out, &s->totals, sizeof(s->totals)); break;
    case MTSNAP_TAG_BLOCKS:
        put_u64(out, s->nblocks);
        mtc_put(out, s->blocks, s->nblocks * sizeof(*s->blocks));
        break;
    default: abort();
    }
}

void mtc_compose(const mtc_snap_t *s, mtc_buf_t *out)
{
    mtc_compose_with(s, NULL, 0, out);
}

void mtc_compose_with(const mtc_snap_t *s, const mtc_extra_t *extra, size_t nextra, mtc_buf_t *out)
{
    static const uint32_t order[] = {
        MTSNAP_TAG_META,   MTSNAP_TAG_STRINGS,     MTSNAP_TAG_MODULES,
        MTSNAP_TAG_FRAMES, MTSNAP_TAG_STACKS,      MTSNAP_TAG_STACK_STATS,
        MTSNAP_TAG_TOTALS, MTSNAP_TAG_BLOCKS,
    };
    mtc_buf_t pl = { 0 };
    out->len = 0;
    out->records = 0;
    mtc_header(out, MTSNAP_VERSION);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        mtc_payload(s, order[i], &pl);
        mtc_record(out, order[i], pl.data, pl.len);
    }
    for (size_t i = 0; i < nextra; i++)
        mtc_record(out, extra[i].tag, extra[i].payload, extra[i].len);
    mtc_end(out);
    mtc_buf_free(&pl);
}
