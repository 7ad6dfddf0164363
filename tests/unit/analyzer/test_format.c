/* Format version 2 (include/memtrail_format.h, docs/format.md): round trips
 * through the encoder and decoder with edge values, version 1 files read
 * back (the golden fixtures) and re-encoded as version 2 with every field
 * kept, and damaged version 2 input rejected with one exact line, by the
 * decoder and by `memtrail report` (exit status 2). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "encode.h"
#include "snapcompose.h"
#include "snapshot.h"

static const uint32_t order[] = {
    MTSNAP_TAG_META,   MTSNAP_TAG_STRINGS,     MTSNAP_TAG_MODULES,
    MTSNAP_TAG_FRAMES, MTSNAP_TAG_STACKS,      MTSNAP_TAG_STACK_STATS,
    MTSNAP_TAG_TOTALS, MTSNAP_TAG_BLOCKS,
};
#define NORDER (sizeof(order) / sizeof(order[0]))
#define HDR2 sizeof(mtsnap_record_header_v2_t)

static char err[1024];

static int parse(const mtc_buf_t *b, mta_snapshot_t **out)
{
    mta_snapshot_t *tmp = NULL;
    int rc = mta_snapshot_parse(b->data, b->len, "t", out ? out : &tmp, err, sizeof(err));
    mta_snapshot_free(tmp);
    return rc;
}

static void expect_error(const mtc_buf_t *b, const char *msg)
{
    mta_snapshot_t *snap = (void *)1;
    cr_assert_eq(mta_snapshot_parse(b->data, b->len, "t", &snap, err, sizeof(err)), -EINVAL,
                 "message: %s", err);
    cr_assert_null(snap);
    cr_assert_str_eq(err, msg);
}

/* Edge values everywhere: addresses 0 and near 2^64, sizes 0 and 2^64-1,
 * stack 0, every domain kind, Python frames without a module, a graph whose
 * edges go forward, backward, to itself and outside it. */
static void edge_sample(mtc_snap_t *s)
{
    mtc_snap_init(s);
    s->meta.label = mtc_str(s, "edge");
    s->meta.cmdline = mtc_strn(s, "a\0b", 3);
    s->meta.counter = UINT64_MAX;
    uint32_t m = mtc_module(s, 0, UINT64_MAX, UINT64_MAX, "/lib/x.so");
    uint32_t f0 = mtc_frame(s, UINT64_MAX, m, "f0", "a.c", UINT32_MAX);
    uint32_t f1 = mtc_frame(s, 0, MTSNAP_NONE, "f1", "b.py", 0);
    uint32_t f2 = mtc_frame(s, 0x7fff00001234, m, "f2", "", 7);
    s->frames[f0].offset = UINT64_MAX;
    s->frames[f1].kind = MTSNAP_FRAME_PYTHON;
    uint32_t st0 = mtc_stack(s, 0, NULL);
    uint32_t st1 = mtc_stack(s, 3, (uint32_t[]){f0, f1, f2});
    uint32_t st2 = mtc_stack(s, 2, (uint32_t[]){f2, f0});
    uint32_t deep[700];   /* longer than the encoder's staging buffer */
    for (int i = 0; i < 700; i++)
        deep[i] = i % 3 ? f1 : f2;
    uint32_t st3 = mtc_stack(s, 700, deep);
    mtc_stat(s, st2, UINT64_MAX, 1, UINT64_MAX, UINT64_MAX, 0, UINT64_MAX);
    mtc_stat(s, st3, 1, 1, 1, 1, 1, 1);
    mtc_stat(s, st0, 0, 0, 0, 0, 0, 0);
    mtc_stat(s, st1, 5, 4, 3, 2, 1, 0);
    static const uint64_t addr[] = {0, 1, 0x10, 0x7f0000000000, UINT64_MAX - 2, UINT64_MAX};
    static const uint64_t size[] = {0, UINT64_MAX, 1, 127, 128, 1ull << 40};
    static const uint32_t dom[] = {MTSNAP_DOMAIN_NATIVE, MTSNAP_DOMAIN_PY_RAW, MTSNAP_DOMAIN_PY_MEM,
                                   MTSNAP_DOMAIN_PY_OBJ, MTSNAP_DOMAIN_EXT_BASE + 389047, UINT32_MAX};
    for (int i = 0; i < 6; i++) {
        mtc_block(s, addr[i], size[i], i % 3);
        s->blocks[i].domain = dom[i];
    }
    s->totals = (mtsnap_totals_t){UINT64_MAX, 6, 1, 2, 3, 4, 5, 6, 7};
    s->pygraph = (mtsnap_pygraph_header_t){.py_minor = 11, .capture_ns = 12345,
                                           .flags = MTSNAP_PYGRAPH_F_SCANNED,
                                           .stdlib = mtc_str(s, "/usr/lib/python3.11/"),
                                           .generation = {1, 2, 3}};
    uint32_t type = mtc_str(s, "dict");
    const uint64_t a0 = 0x1000, a1 = 0x1040, a2 = UINT64_MAX - 16;
    mtc_pyobj(s, &(mtsnap_pyobj_t){a0, 64, INT64_MAX, type, 0, 4, 0},
              (uint64_t[]){a1, a2, a0, 0x5555});     /* forward, far forward, itself, outside */
    mtc_pyobj(s, &(mtsnap_pyobj_t){a1, 0, INT64_MIN, type, MTSNAP_PYOBJ_REACHED, 3, 0},
              (uint64_t[]){a0, 0, UINT64_MAX});      /* backward, outside at 0 and 2^64-1 */
    mtc_pyobj(s, &(mtsnap_pyobj_t){a2, UINT64_MAX, -1, 0, MTSNAP_PYOBJ_STATIC, 0, 0}, NULL);
}

/* Every field of the decoded snapshot against its source (counter: only
 * version 1 keeps it). */
static void assert_same(const mta_snapshot_t *d, const mtc_snap_t *s, int version)
{
    cr_assert_eq(d->version, (uint32_t)version);
    cr_assert_eq(memcmp(&d->meta, &s->meta, sizeof(s->meta)), 0);
    cr_assert_eq(memcmp(&d->totals, &s->totals, sizeof(s->totals)), 0);
    cr_assert_eq(d->nstrings, s->nstrings);
    for (uint32_t i = 0; i < s->nstrings; i++) {
        cr_assert_eq(d->string_len[i], s->string_len[i]);
        cr_assert_eq(memcmp(d->strings[i], s->strings[i], s->string_len[i]), 0);
    }
    cr_assert_eq(d->nmodules, s->nmodules);
    for (uint32_t i = 0; i < s->nmodules; i++) {
        const mtsnap_module_t *m = &s->modules[i];
        cr_assert_eq(d->modules[i].start, m->start);
        cr_assert_eq(d->modules[i].end, m->end);
        cr_assert_eq(d->modules[i].bias, m->bias);
        cr_assert_eq(d->modules[i].path, d->strings[m->path]);
        cr_assert_eq(d->modules[i].build_id, d->strings[m->build_id]);
    }
    cr_assert_eq(d->nframes, s->nframes);
    for (uint32_t i = 0; i < s->nframes; i++) {
        const mtsnap_frame_t *f = &s->frames[i];
        const mta_frame_t *g = &d->frames[i];
        cr_assert(g->pc == f->pc && g->offset == f->offset && g->module == f->module &&
                  g->line == f->line && g->kind == f->kind, "frame %u", i);
        cr_assert(g->function == d->strings[f->function] && g->file == d->strings[f->file]);
    }
    cr_assert_eq(d->nstacks, s->nstacks);
    size_t off = 0;
    for (uint32_t i = 0; i < s->nstacks; i++) {
        uint32_t depth;
        memcpy(&depth, s->stacks.data + off, 4);
        cr_assert_eq(d->stacks[i].depth, depth);
        cr_assert_eq(memcmp(d->stacks[i].frames, s->stacks.data + off + 4, 4 * (size_t)depth), 0);
        off += 4 + 4 * (size_t)depth;
    }
    cr_assert_eq(d->nstats, s->nstats);
    cr_assert_eq(memcmp(d->stats, s->stats, s->nstats * sizeof(*s->stats)), 0);
    cr_assert_eq(d->nblocks, s->nblocks);
    for (uint64_t i = 0; i < s->nblocks; i++) {
        mtsnap_block_t b = s->blocks[i];
        if (version != MTSNAP_VERSION_V1)
            b.counter = 0;
        cr_assert_eq(memcmp(&d->blocks[i], &b, sizeof(b)), 0, "block %llu", (unsigned long long)i);
    }
    cr_assert_eq(d->has_pygraph, s->has_pygraph);
    if (!s->has_pygraph)
        return;
    cr_assert_eq(memcmp(&d->pygraph, &s->pygraph, sizeof(s->pygraph)), 0);
    cr_assert_eq(memcmp(d->pyobjs, s->pyobjs, s->pygraph.objects * sizeof(*s->pyobjs)), 0);
    cr_assert_eq(memcmp(d->pyedges, s->pyedges, s->pygraph.edges * 8), 0);
}

/* b, composed from s, reads back as s; b and its codec are freed. */
static void reads_back(mtc_buf_t *b, const mtc_snap_t *s, int version)
{
    mta_snapshot_t *d = NULL;
    cr_assert_eq(parse(b, &d), 0, "%s", err);
    assert_same(d, s, version);
    mta_snapshot_free(d);
    mtf_zstd_free(b->zstd);
    mtc_buf_free(b);
}

static void roundtrip(mtc_snap_t *s, int version, int compress)
{
    mtc_buf_t b = {.version = (uint16_t)version};
    if (compress)
        cr_assert_not_null(b.zstd = mtf_zstd_new(MTF_ZSTD_LEVEL));
    mtc_compose(s, &b);
    cr_assert_eq(b.data[8], version);
    reads_back(&b, s, version);
}

Test(format, v2_roundtrip_edge_values)
{
    mtc_snap_t s;
    edge_sample(&s);
    roundtrip(&s, MTSNAP_VERSION, 1);   /* compressed */
    roundtrip(&s, MTSNAP_VERSION, 0);   /* stored */
    roundtrip(&s, MTSNAP_VERSION_V2, 1);   /* the flat STACKS of version 2 */
    roundtrip(&s, MTSNAP_VERSION_V1, 0);
    mtc_snap_free(&s);
}

/* Big enough for many 128 KiB zstd input chunks; and exactly 8 bytes a
 * record header away from the bound the writer is held to. */
Test(format, v2_roundtrip_many_blocks)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    uint32_t st = mtc_stack(&s, 0, NULL);
    mtc_stat(&s, st, 1, 1, 1, 1, 1, 1);
    uint64_t a = 0x55550000, x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        a += 16 + (x % 64) * 16;
        mtc_block(&s, a, x % 300, st);
        s.blocks[i].domain = (uint32_t)(x >> 60) % 4;
    }
    mtc_buf_t b = {.version = MTSNAP_VERSION, .zstd = mtf_zstd_new(MTF_ZSTD_LEVEL)};
    mtc_compose(&s, &b);
    cr_assert_lt(b.len, 8 * 200000, "%zu bytes", b.len);
    reads_back(&b, &s, MTSNAP_VERSION);
    mtc_snap_free(&s);
}

/* The encoder refuses blocks out of order or more/fewer than announced. */
Test(format, encoder_block_stream_contract)
{
    for (int c = 0; c < 3; c++) {
        mtf_mem_sink_t sink;
        mtf_enc_t e;
        mtf_mem_sink_init(&sink, NULL, 0, 0);
        mtf_enc_init(&e, &sink.sink, 0, 0);
        mtf_enc_begin(&e, MTSNAP_TAG_BLOCKS);
        mtf_enc_blocks_begin(&e, 2);
        mtf_enc_block(&e, &(mtsnap_block_t){.address = 0x2000});
        if (c == 0)
            mtf_enc_block(&e, &(mtsnap_block_t){.address = 0x2000});
        if (c == 2) {
            mtf_enc_block(&e, &(mtsnap_block_t){.address = 0x3000});
            mtf_enc_block(&e, &(mtsnap_block_t){.address = 0x4000});
        }
        mtf_enc_end(&e);
        cr_assert_eq(mtf_enc_close(&e), -EINVAL, "case %d", c);
        free(sink.data);
    }
}

/* The golden fixtures are version 1 files: they load, and the same data
 * written as version 2 (compressed) loads back equal, counters aside. */
static void v1_fixture(const char *name, uint64_t nblocks, uint64_t live_bytes)
{
    char path[4096];
    mta_snapshot_t *v1 = NULL, *v2 = NULL;
    snprintf(path, sizeof(path), "%s/tests/golden/%s", getenv("MEMTRAIL_SOURCE_ROOT"), name);
    cr_assert_eq(mta_snapshot_load(path, &v1, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(v1->version, 1);
    cr_assert_eq(v1->nblocks, nblocks);
    cr_assert_eq(v1->totals.live_bytes, live_bytes);
    cr_assert_eq(v1->blocks[1].counter, 1);   /* version 1 keeps the counters */
    cr_assert(!v1->has_inlined);              /* before INLINED: every frame its own */
    for (uint32_t i = 0; i < v1->nframes; i++)
        cr_assert_eq(v1->frames[i].inlined, 0);

    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta = v1->meta;
    s.totals = v1->totals;
    /* the same strings at the same indices (mtc_strn would intern) */
    s.strings = realloc(s.strings, v1->nstrings * sizeof(*s.strings));
    s.string_len = realloc(s.string_len, v1->nstrings * sizeof(*s.string_len));
    for (uint32_t i = 1; i < v1->nstrings; i++) {
        s.strings[i] = malloc(v1->string_len[i] + 1);
        memcpy(s.strings[i], v1->strings[i], v1->string_len[i] + 1);
        s.string_len[i] = v1->string_len[i];
    }
    s.nstrings = v1->nstrings;
    s.nmodules = v1->nmodules;
    s.modules = calloc(v1->nmodules + 1, sizeof(*s.modules));
    for (uint32_t i = 0; i < v1->nmodules; i++) {
        const mta_module_t *m = &v1->modules[i];
        s.modules[i] = (mtsnap_module_t){m->start, m->end, m->bias, 0, 0};
        for (uint32_t k = 0; k < v1->nstrings; k++) {
            if (v1->strings[k] == m->path)
                s.modules[i].path = k;
            if (v1->strings[k] == m->build_id)
                s.modules[i].build_id = k;
        }
    }
    s.nframes = v1->nframes;
    s.frames = calloc(v1->nframes + 1, sizeof(*s.frames));
    for (uint32_t i = 0; i < v1->nframes; i++) {
        const mta_frame_t *f = &v1->frames[i];
        s.frames[i] = (mtsnap_frame_t){.pc = f->pc, .offset = f->offset, .module = f->module,
                                       .line = f->line, .kind = f->kind};
        for (uint32_t k = 0; k < v1->nstrings; k++) {
            if (v1->strings[k] == f->function)
                s.frames[i].function = k;
            if (v1->strings[k] == f->file)
                s.frames[i].file = k;
        }
    }
    for (uint32_t i = 0; i < v1->nstacks; i++)
        mtc_stack(&s, v1->stacks[i].depth, v1->stacks[i].frames);
    for (uint32_t i = 0; i < v1->nstats; i++) {
        const mtsnap_stack_stat_t *t = &v1->stats[i];
        mtc_stat(&s, t->stack, t->live_bytes, t->live_blocks, t->alloc_bytes, t->alloc_blocks,
                 t->peak_bytes, t->peak_blocks);
    }
    s.nblocks = v1->nblocks;
    s.blocks = malloc(v1->nblocks * sizeof(*s.blocks));
    memcpy(s.blocks, v1->blocks, v1->nblocks * sizeof(*s.blocks));
    assert_same(v1, &s, MTSNAP_VERSION_V1);

    mtc_buf_t b = {.version = MTSNAP_VERSION, .zstd = mtf_zstd_new(MTF_ZSTD_LEVEL)};
    mtc_compose(&s, &b);
    cr_assert_eq(parse(&b, &v2), 0, "%s", err);
    assert_same(v2, &s, MTSNAP_VERSION);
    mta_snapshot_free(v2);
    mta_snapshot_free(v1);
    mtf_zstd_free(b.zstd);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(format, v1_fixtures_read_back) 
{
    v1_fixture("growth2.mtsnap", 11, 11360);
    v1_fixture("growth5.mtsnap", 13, 33548);
}

/* ---- damaged version 2 input ---- */

/* A small valid snapshot. */
static void sample(mtc_snap_t *s)
{
    mtc_snap_init(s);
    uint32_t m = mtc_module(s, 0x400000, 0x500000, 0, "/usr/bin/prog");
    uint32_t f0 = mtc_frame(s, 0x401234, m, "make_buffer", "src/buf.c", 42);
    uint32_t f1 = mtc_frame(s, 0x401000, m, "main", "src/main.c", 10);
    uint32_t st = mtc_stack(s, 2, (uint32_t[]){f0, f1});
    mtc_stat(s, st, 4096, 2, 4096, 2, 4096, 2);
    for (int i = 0; i < 300; i++)
        mtc_block(s, 0x10000 + 0x40 * (uint64_t)i, 16 + i % 7, st);
    s->totals = (mtsnap_totals_t){.live_bytes = 4096, .live_blocks = 300};
}

/* Offset of the header of record `tag` in a version 2 image. */
static size_t find(const mtc_buf_t *b, uint32_t tag, mtsnap_record_header_v2_t *h)
{
    size_t off = sizeof(mtsnap_file_header_t);
    while (off + HDR2 <= b->len) {
        memcpy(h, b->data + off, HDR2);
        if (h->tag == tag)
            return off;
        off += HDR2 + h->length;
    }
    cr_assert_fail("no record %08x", tag);
    return 0;
}

static void compressed_sample(mtc_snap_t *s, mtc_buf_t *b)
{
    sample(s);
    *b = (mtc_buf_t){.version = MTSNAP_VERSION, .zstd = mtf_zstd_new(MTF_ZSTD_LEVEL)};
    mtc_compose(s, b);
}

static void done(mtc_snap_t *s, mtc_buf_t *b)
{
    mtf_zstd_free(b->zstd);
    mtc_buf_free(b);
    mtc_snap_free(s);
}

/* Rewrites the header of the record at off (CRC recomputed when fix_crc). */
static void put_header(mtc_buf_t *b, size_t off, mtsnap_record_header_v2_t *h, int fix_crc)
{
    if (fix_crc)
        h->crc32 = mtsnap_crc32(0, b->data + off + HDR2, h->length);
    memcpy(b->data + off, h, HDR2);
}

Test(format, v2_every_truncation_is_rejected)
{
    mtc_snap_t s;
    mtc_buf_t b;
    compressed_sample(&s, &b);
    cr_assert_eq(parse(&b, NULL), 0, "%s", err);
    for (size_t n = 0; n < b.len; n++) {
        mtc_buf_t cut = b;
        cut.len = n;
        cr_assert_eq(parse(&cut, NULL), -EINVAL, "length %zu", n);
        cr_assert_eq(strncmp(err, "snapshot: t: ", 13), 0);
    }
    mtsnap_record_header_v2_t h;
    size_t off = find(&b, MTSNAP_TAG_BLOCKS, &h);
    b.len = off + HDR2 + h.length - 1;
    char msg[256];
    snprintf(msg, sizeof(msg), "snapshot: t: truncated (record BLKS at offset %zu needs %llu bytes, %llu left)",
             off, (unsigned long long)h.length, (unsigned long long)h.length - 1);
    expect_error(&b, msg);
    done(&s, &b);
}

Test(format, v2_flipped_compressed_byte)
{
    mtc_snap_t s;
    mtc_buf_t b;
    compressed_sample(&s, &b);
    mtsnap_record_header_v2_t h;
    size_t off = find(&b, MTSNAP_TAG_BLOCKS, &h);
    cr_assert_eq(h.codec, MTSNAP_CODEC_ZSTD);
    uint32_t good = h.crc32;
    b.data[off + HDR2 + h.length / 2] ^= 0x10;
    uint32_t bad = mtsnap_crc32(0, b.data + off + HDR2, h.length);
    char msg[256];
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: CRC mismatch (stored 0x%08x, computed 0x%08x)",
             off, good, bad);
    expect_error(&b, msg);
    /* the same damage under a matching CRC reaches zstd, whose checksum
     * (or parser) refuses it */
    put_header(&b, off, &h, 1);
    cr_assert_eq(parse(&b, NULL), -EINVAL);
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: corrupt compressed data (zstd: ", off);
    cr_assert_eq(strncmp(err, msg, strlen(msg)), 0, "%s", err);
    done(&s, &b);
}

Test(format, v2_raw_length_lies)
{
    mtc_snap_t s;
    mtc_buf_t b;
    compressed_sample(&s, &b);
    mtsnap_record_header_v2_t h;
    size_t off = find(&b, MTSNAP_TAG_BLOCKS, &h);
    const uint64_t raw = h.raw_length;
    char msg[256];
    /* absurd: refused before anything is allocated */
    h.raw_length = 1ull << 60;
    put_header(&b, off, &h, 0);
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: %llu raw bytes cannot come from %llu compressed bytes (more than 32768:1)",
             off, 1ull << 60, (unsigned long long)h.length);
    expect_error(&b, msg);
    /* the ratio bound itself: 32768 x length is allowed through, one more is not */
    h.raw_length = (uint64_t)h.length * MTSNAP_ZSTD_MAX_RATIO + MTSNAP_ZSTD_MAX_RATIO;
    put_header(&b, off, &h, 0);
    cr_assert_eq(parse(&b, NULL), -EINVAL);
    cr_assert_neq(strstr(err, "cannot come from"), NULL, "%s", err);
    h.raw_length = raw + 1;
    put_header(&b, off, &h, 0);
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: decompresses to %llu bytes, %llu declared",
             off, (unsigned long long)raw, (unsigned long long)raw + 1);
    expect_error(&b, msg);
    h.raw_length = raw - 1;
    put_header(&b, off, &h, 0);
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: decompresses to more than the %llu bytes declared",
             off, (unsigned long long)raw - 1);
    expect_error(&b, msg);
    h.raw_length = raw;
    h.codec = 7;
    put_header(&b, off, &h, 0);
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: unknown codec 7", off);
    expect_error(&b, msg);
    /* the header's reserved word: no CRC covers it (a flipped byte there
     * once loaded as if nothing were wrong: python_package) */
    h.codec = MTSNAP_CODEC_ZSTD;
    h.reserved = 0xff0000;
    put_header(&b, off, &h, 0);
    snprintf(msg, sizeof(msg), "snapshot: t: BLKS record at offset %zu: reserved field 0x00ff0000, not 0",
             off);
    expect_error(&b, msg);
    done(&s, &b);
}

/* A version 2 image, stored (not compressed), with BLOCKS' raw payload
 * replaced by `blocks`. */
static void with_blocks(const mtc_snap_t *s, const uint8_t *blocks, size_t n, mtc_buf_t *out)
{
    mtc_buf_t pl = {.version = MTSNAP_VERSION};
    *out = (mtc_buf_t){0};
    mtc_header(out, MTSNAP_VERSION);
    for (size_t i = 0; i < NORDER; i++) {
        if (order[i] == MTSNAP_TAG_BLOCKS) {
            mtc_record(out, order[i], blocks, n);
            continue;
        }
        mtc_payload(s, order[i], &pl);
        mtc_record(out, order[i], pl.data, pl.len);
    }
    mtc_end(out);
    mtc_buf_free(&pl);
}

Test(format, v2_varints_and_order)
{
    mtc_snap_t s;
    mtc_buf_t b;
    sample(&s);
    /* the valid form of two blocks: count, then address step, size, stack, domain */
    with_blocks(&s, (const uint8_t[]){2, 0x80, 0x20, 16, 0, 0, 0x40, 16, 0, 0}, 10, &b);
    mta_snapshot_t *d = NULL;
    cr_assert_eq(parse(&b, &d), 0, "%s", err);
    cr_assert_eq(d->nblocks, 2);
    cr_assert_eq(d->blocks[0].address, 0x1000);
    cr_assert_eq(d->blocks[1].address, 0x1040);
    mta_snapshot_free(d);
    mtc_buf_free(&b);
    /* a varint running past the end */
    with_blocks(&s, (const uint8_t[]){1, 0x80, 0x20, 16, 0, 0x80}, 6, &b);
    expect_error(&b, "snapshot: t: BLKS record: malformed varint at payload offset 5 (past the end of the record)");
    mtc_buf_free(&b);
    /* eleven bytes */
    uint8_t eleven[] = {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0};
    with_blocks(&s, eleven, sizeof(eleven), &b);
    expect_error(&b, "snapshot: t: BLKS record: malformed varint at payload offset 1 (longer than 10 bytes or over 64 bits)");
    mtc_buf_free(&b);
    /* ten bytes, but over 64 bits */
    uint8_t over[] = {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0};
    with_blocks(&s, over, sizeof(over), &b);
    expect_error(&b, "snapshot: t: BLKS record: malformed varint at payload offset 1 (longer than 10 bytes or over 64 bits)");
    mtc_buf_free(&b);
    /* unsorted: a step of 0, and a step past 2^64 */
    with_blocks(&s, (const uint8_t[]){2, 0x80, 0x20, 16, 0, 0, 0, 16, 0, 0}, 10, &b);
    expect_error(&b, "snapshot: t: BLKS record: block 1 is not above the previous one (not sorted by address)");
    mtc_buf_free(&b);
    uint8_t wrap[] = {2, 0x80, 0x20, 16, 0, 0,
                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 16, 0, 0};
    with_blocks(&s, wrap, sizeof(wrap), &b);
    expect_error(&b, "snapshot: t: BLKS record: block 1 is not above the previous one (not sorted by address)");
    mtc_buf_free(&b);
    /* a hostile count, a 33-bit stack, bytes left over, a stack out of range */
    with_blocks(&s, (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0}, 9, &b);
    expect_error(&b, "snapshot: t: BLKS record: 4294967295 entries cannot fit in the 4 bytes left");
    mtc_buf_free(&b);
    with_blocks(&s, (const uint8_t[]){1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0}, 9, &b);
    expect_error(&b, "snapshot: t: BLKS record: stack 4294967296 does not fit in 32 bits");
    mtc_buf_free(&b);
    with_blocks(&s, (const uint8_t[]){1, 0, 0, 0, 0, 9}, 6, &b);
    expect_error(&b, "snapshot: t: BLKS record: 1 bytes left after the last entry");
    mtc_buf_free(&b);
    with_blocks(&s, (const uint8_t[]){1, 0, 0, 1, 0}, 5, &b);
    expect_error(&b, "snapshot: t: BLKS record: block 0: stack index 1 out of range (1 stacks)");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(format, v2_pygraph_edge_out_of_range)
{
    mtc_snap_t s;
    sample(&s);
    mtc_pyobj(&s, &(mtsnap_pyobj_t){0x1000, 16, 1, 0, 0, 1, 0}, (uint64_t[]){0x1000});
    mtc_buf_t b = {.version = MTSNAP_VERSION};
    mtc_compose(&s, &b);
    cr_assert_eq(parse(&b, NULL), 0, "%s", err);
    /* the last payload byte is the one edge: r = zz(0) + 1 = 1; make it zz(+1) + 1 = 3 */
    mtsnap_record_header_v2_t h;
    size_t off = find(&b, MTSNAP_TAG_PYGRAPH, &h);
    cr_assert_eq(b.data[off + HDR2 + h.length - 1], 1);
    b.data[off + HDR2 + h.length - 1] = 3;
    put_header(&b, off, &h, 1);
    expect_error(&b, "snapshot: t: PYGR record: object 0: edge 0 names object 1 (1 objects)");
    done(&s, &b);
}

/* The exit snapshot's PYGRAPH is encoded before the stacks are gathered and
 * spliced in its place later (preload/writer/snapwrite.c): the file is the
 * one written in a single pass, byte for byte, compressed or stored. */
Test(format, pygraph_made_first_and_spliced)
{
    mtc_snap_t s;
    sample(&s);
    for (uint64_t i = 0; i < 3000; i++) {
        uint64_t at = 0x100000 + 64 * i, refs[2] = {0x100000 + 64 * ((i * 7) % 3000), 0x42};
        mtc_pyobj(&s, &(mtsnap_pyobj_t){at, 48 + i % 5 * 8, 1 + i % 3, 0, 0, 2, 0}, refs);
    }
    for (int compress = 0; compress < 2; compress++) {
        mtc_buf_t one = {.version = MTSNAP_VERSION, .store_below = MTF_STORE_BELOW};
        mtc_buf_t two = {.version = MTSNAP_VERSION, .store_below = MTF_STORE_BELOW};
        if (compress) {
            cr_assert_not_null(one.zstd = mtf_zstd_new(MTF_ZSTD_LEVEL));
            cr_assert_not_null(two.zstd = mtf_zstd_new(MTF_ZSTD_LEVEL));
        }
        mtc_compose(&s, &one);
        mtc_compose_made(&s, &two);
        mtsnap_record_header_v2_t h;
        find(&two, MTSNAP_TAG_PYGRAPH, &h);
        cr_assert_eq(h.codec, compress ? MTSNAP_CODEC_ZSTD : MTSNAP_CODEC_STORED);
        cr_assert_eq(two.records, one.records);
        cr_assert_eq(two.len, one.len);
        cr_assert_eq(memcmp(two.data, one.data, one.len), 0);
        mtf_zstd_free(one.zstd);
        mtc_buf_free(&one);
        reads_back(&two, &s, MTSNAP_VERSION);
    }
    mtc_snap_free(&s);
}

/* `memtrail report` on damaged files: one line on stderr, exit status 2. */
static void report_fails(const mtc_buf_t *b, const char *what)
{
    char dir[] = "/tmp/test_format.XXXXXX", file[64], cmd[4096], line[1024];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/bad.mtsnap", dir);
    FILE *f = fopen(file, "wb");
    cr_assert_eq(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' report %s 2>%s/err >/dev/null", getenv("MEMTRAIL_EXE"), file, dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: status %d", what, st);
    snprintf(cmd, sizeof(cmd), "%s/err", dir);
    f = fopen(cmd, "r");
    int lines = 0;
    char first[1024] = "";
    while (fgets(line, sizeof(line), f))
        if (lines++ == 0)
            snprintf(first, sizeof(first), "%s", line);
    fclose(f);
    cr_assert_eq(lines, 1, "%s: %d lines", what, lines);
    cr_assert_neq(strstr(first, what), NULL, "%s", first);
    unlink(cmd);
    unlink(file);
    rmdir(dir);
}

Test(format, report_exits_2_on_damaged_v2)
{
    mtc_snap_t s;
    mtc_buf_t b;
    compressed_sample(&s, &b);
    mtsnap_record_header_v2_t h;
    size_t off = find(&b, MTSNAP_TAG_BLOCKS, &h);
    size_t len = b.len;
    b.len = off + 40;
    report_fails(&b, "truncated");
    b.len = len;
    b.data[off + HDR2 + 3] ^= 1;
    report_fails(&b, "CRC mismatch");
    put_header(&b, off, &h, 1);
    report_fails(&b, "corrupt compressed data");
    b.data[off + HDR2 + 3] ^= 1;
    put_header(&b, off, &h, 1);
    h.raw_length = UINT64_MAX;
    put_header(&b, off, &h, 0);
    report_fails(&b, "cannot come from");
    done(&s, &b);
    sample(&s);
    with_blocks(&s, (const uint8_t[]){1, 0x80, 0x80, 0x80, 0x80}, 5, &b);
    report_fails(&b, "malformed varint");
    mtc_buf_free(&b);
    with_blocks(&s, (const uint8_t[]){2, 0x80, 0x20, 16, 0, 0, 0, 16, 0, 0}, 10, &b);
    report_fails(&b, "not sorted by address");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

/* TIMELINE: the same varint payload in versions 1 and 2, read back exactly
 * (deltas that wrap, a first point at 0), and each kind of damage refused
 * with its own line. */
static void with_timeline(const uint8_t *pl, size_t n, uint16_t version, int twice, mtc_buf_t *out)
{
    mtc_snap_t s;
    sample(&s);
    mtc_extra_t x[2] = {{MTSNAP_TAG_TIMELINE, pl, n}, {MTSNAP_TAG_TIMELINE, pl, n}};
    *out = (mtc_buf_t){.version = version};
    mtc_compose_with(&s, x, twice ? 2 : 1, out);
    mtc_snap_free(&s);
}

Test(format, timeline_reads_back_and_damage_is_refused)
{
    /* step 10 ms; 3 points: t 0, heap 2^64-1 (zz(-1) = 1), blocks 5, rss 4096;
     * then t +1, heap back to 0 (zz(+1) = 2), blocks -5 (zz = 9), rss +0;
     * then t +300, heap +7, blocks +0, rss -4096 (zz = 8191: 0xff 0x3f). */
    const uint8_t good[] = {0x80, 0xad, 0xe2, 0x04, 3,
                            0, 1, 10, 0x80, 0x40,
                            1, 2, 9, 0,
                            0xac, 0x02, 14, 0, 0xff, 0x3f};
    for (uint16_t v = 1; v <= MTSNAP_VERSION; v++) {
        mtc_buf_t b;
        with_timeline(good, sizeof(good), v, 0, &b);
        mta_snapshot_t *d = NULL;
        cr_assert_eq(parse(&b, &d), 0, "version %u: %s", v, err);
        cr_assert(d->has_timeline);
        cr_assert_eq(d->timeline_step_ns, 10000000);
        cr_assert_eq(d->ntimeline, 3);
        const mta_timeline_point_t want[] = {{0, UINT64_MAX, 5, 4096}, {1, 0, 0, 4096},
                                             {301, 7, 0, 0}};
        for (int i = 0; i < 3; i++)
            cr_assert_eq(memcmp(&d->timeline[i], &want[i], sizeof(want[i])), 0, "point %d", i);
        mta_snapshot_free(d);
        mtc_buf_free(&b);
    }
    mtc_buf_t b;
    /* a point at the previous one's time; a time past 2^64 */
    with_timeline((const uint8_t[]){1, 2, 5, 0, 0, 0, 0, 0, 0, 0}, 10, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: TMLN record: point 1 is not after the previous one");
    mtc_buf_free(&b);
    uint8_t wrap[] = {1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0,
                      1, 0, 0, 0};
    with_timeline(wrap, sizeof(wrap), MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: TMLN record: point 1 is not after the previous one");
    mtc_buf_free(&b);
    /* a count the bytes cannot hold, bytes left over, a varint cut short */
    with_timeline((const uint8_t[]){1, 3, 0, 0, 0, 0, 1, 0, 0, 0}, 10, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: TMLN record: 3 entries cannot fit in the 8 bytes left");
    mtc_buf_free(&b);
    with_timeline((const uint8_t[]){1, 1, 0, 0, 0, 0, 9}, 7, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: TMLN record: 1 bytes left after the last entry");
    mtc_buf_free(&b);
    with_timeline((const uint8_t[]){1, 1, 0, 0, 0, 0x80}, 6, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: TMLN record: malformed varint at payload offset 5 (past the end of the record)");
    mtc_buf_free(&b);
    /* twice in one file */
    with_timeline(good, sizeof(good), MTSNAP_VERSION, 1, &b);
    expect_error(&b, "snapshot: t: duplicate TMLN record");
    mtc_buf_free(&b);
}

/* Version 3 STACKS: a tree whose nodes share their parents' frames, expanded
 * exactly; a malformed tree refused with its own line. */
static void with_stacks(const mtc_snap_t *s, const uint8_t *stacks, size_t n, mtc_buf_t *out)
{
    mtc_buf_t pl = {.version = MTSNAP_VERSION};
    *out = (mtc_buf_t){0};
    mtc_header(out, MTSNAP_VERSION);
    for (size_t i = 0; i < NORDER; i++) {
        if (order[i] == MTSNAP_TAG_STACKS) {
            mtc_record(out, order[i], stacks, n);
            continue;
        }
        mtc_payload(s, order[i], &pl);
        mtc_record(out, order[i], pl.data, pl.len);
    }
    mtc_end(out);
    mtc_buf_free(&pl);
}

Test(format, v3_stack_tree)
{
    mtc_snap_t s;
    mtc_buf_t b;
    sample(&s);   /* frames 0 make_buffer, 1 main; stack 0 = {0, 1} */
    /* node 0: {main}, not a stack; node 1: {make_buffer} + node 0 = stack 0;
     * node 2: nothing of its own + node 0 = stack 1, {main} */
    with_stacks(&s, (const uint8_t[]){3, 0, 2, 1, 1, 3, 0, 1, 1}, 9, &b);
    mta_snapshot_t *d = NULL;
    cr_assert_eq(parse(&b, &d), 0, "%s", err);
    cr_assert_eq(d->nstacks, 2);
    cr_assert_eq(d->stacks[0].depth, 2);
    cr_assert_eq(d->stacks[0].frames[0], 0);
    cr_assert_eq(d->stacks[0].frames[1], 1);
    cr_assert_eq(d->stacks[1].depth, 1);
    cr_assert_eq(d->stacks[1].frames[0], 1);
    cr_assert_eq(d->stats[0].stack, 0);
    mta_snapshot_free(d);
    mtc_buf_free(&b);

    with_stacks(&s, (const uint8_t[]){1, 1, 3, 0}, 4, &b);
    expect_error(&b, "snapshot: t: STKS record: node 0: parent 0 is not an earlier node");
    mtc_buf_free(&b);
    with_stacks(&s, (const uint8_t[]){2, 0, 0, 1, 1}, 5, &b);
    expect_error(&b, "snapshot: t: STKS record: node 0 has no frame of its own");
    mtc_buf_free(&b);
    with_stacks(&s, (const uint8_t[]){2, 0, 2, 1, 1, 3, 7}, 7, &b);
    expect_error(&b, "snapshot: t: STKS record: stack 0: frame index 7 out of range (2 frames)");
    mtc_buf_free(&b);
    with_stacks(&s, (const uint8_t[]){2, 0, 2, 1, 1, 3, 0, 9}, 8, &b);
    expect_error(&b, "snapshot: t: STKS record: 1 bytes left after the last entry");
    mtc_buf_free(&b);

    /* One node 65,536 frames deep. */
    size_t big = 5 + 65536;
    uint8_t *p = calloc(1, big);
    memcpy(p, (const uint8_t[]){1, 0, 0x81, 0x80, 0x08}, 5);   /* 65536 << 1 | 1 */
    with_stacks(&s, p, big, &b);
    expect_error(&b, "snapshot: t: STKS record: node 0 is 65536 frames deep (at most 65535)");
    mtc_buf_free(&b);
    free(p);
    /* A small tree that expands past the bound: 2,300 stacks on one node
     * of 60,000 frames (138 M frames from 65 KB; the bound is 2^24). */
    size_t len = 0;
    p = calloc(1, 70000);
    p[len++] = 0xfd, p[len++] = 0x11;                     /* 2,301 nodes */
    p[len++] = 0;                                         /* node 0: no parent */
    p[len++] = 0xc0, p[len++] = 0xa9, p[len++] = 0x07;    /* 60000 << 1 */
    len += 60000;                                         /* frame 0, 60,000 times */
    for (int i = 0; i < 2300; i++)
        p[len++] = 1, p[len++] = 1;                       /* parent node 0, a stack */
    with_stacks(&s, p, len, &b);
    expect_error(&b, "snapshot: t: STKS record: the stacks expand to more than 16777216 frames");
    mtc_buf_free(&b);
    free(p);
    mtc_snap_free(&s);
}

/* INLINED (optional, both versions): the frames of inlined functions, read
 * back in every version, and their encoder; a file without the record (an
 * older writer's) has none; each kind of damage refused with its own line. */
static void inl_sample(mtc_snap_t *s)
{
    mtc_snap_init(s);
    uint32_t m = mtc_module(s, 0x400000, 0x500000, 0, "/usr/bin/prog");
    /* one return address, 0x401234, in make_raw inlined into make_buf
     * inlined into fill; then main; then a Python frame */
    uint32_t f0 = mtc_frame(s, 0x401234, m, "make_raw", "inl.c", 31);
    uint32_t f1 = mtc_frame(s, 0x401234, m, "make_buf", "inl.c", 40);
    uint32_t f2 = mtc_frame(s, 0x401234, m, "fill", "inl.c", 47);
    uint32_t f3 = mtc_frame(s, 0x401000, m, "main", "inl.c", 58);
    uint32_t f4 = mtc_frame(s, 0x7000, MTSNAP_NONE, "run", "x.py", 3);
    s->frames[f4].kind = MTSNAP_FRAME_PYTHON;
    uint32_t st = mtc_stack(s, 4, (uint32_t[]){f0, f1, f2, f3});
    uint32_t st1 = mtc_stack(s, 2, (uint32_t[]){f4, f3});
    mtc_stat(s, st, 348, 3, 348, 3, 348, 3);
    mtc_stat(s, st1, 40, 1, 40, 1, 40, 1);
    for (int i = 0; i < 3; i++)
        mtc_block(s, 0x10000 + 0x100 * (uint64_t)i, 116, st);
    mtc_block(s, 0x20000, 40, st1);
    s->totals = (mtsnap_totals_t){.live_bytes = 388, .live_blocks = 4};
}

static void with_inlined(const uint8_t *pl, size_t n, uint16_t version, int twice, mtc_buf_t *out)
{
    mtc_snap_t s;
    inl_sample(&s);
    mtc_extra_t x[2] = {{MTSNAP_TAG_INLINED, pl, n}, {MTSNAP_TAG_INLINED, pl, n}};
    *out = (mtc_buf_t){.version = version};
    mtc_compose_with(&s, x, pl ? (twice ? 2 : 1) : 0, out);
    mtc_snap_free(&s);
}

Test(format, inlined_reads_back_and_damage_is_refused)
{
    const uint8_t good[] = {2, 0, 1};   /* frames 0 and 1 */
    for (uint16_t v = 1; v <= MTSNAP_VERSION; v++) {
        mtc_buf_t b;
        with_inlined(good, sizeof(good), v, 0, &b);
        mta_snapshot_t *d = NULL;
        cr_assert_eq(parse(&b, &d), 0, "version %u: %s", v, err);
        cr_assert(d->has_inlined);
        cr_assert_eq(d->ninlined, 2);
        const uint32_t want[] = {1, 1, 0, 0, 0};
        cr_assert_eq(d->nframes, 5);
        for (uint32_t i = 0; i < d->nframes; i++)
            cr_assert_eq(d->frames[i].inlined, want[i], "version %u: frame %u", v, i);
        cr_assert_str_eq(d->frames[1].function, "make_buf");
        cr_assert_eq(d->frames[2].line, 47);
        mta_snapshot_free(d);
        mtc_buf_free(&b);

        /* an older writer's file: no record, nothing inlined */
        with_inlined(NULL, 0, v, 0, &b);
        cr_assert_eq(parse(&b, &d), 0, "version %u: %s", v, err);
        cr_assert(!d->has_inlined);
        cr_assert_eq(d->ninlined, 0);
        for (uint32_t i = 0; i < d->nframes; i++)
            cr_assert_eq(d->frames[i].inlined, 0);
        mta_snapshot_free(d);
        mtc_buf_free(&b);
    }
    mtc_buf_t b;
    with_inlined((const uint8_t[]){1, 5}, 2, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: entry 0: frame index out of range or not increasing");
    mtc_buf_free(&b);
    with_inlined((const uint8_t[]){2, 1, 0}, 3, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: entry 1: frame index out of range or not increasing");
    mtc_buf_free(&b);
    with_inlined((const uint8_t[]){1, 4}, 2, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: frame 4 is not a native frame");
    mtc_buf_free(&b);
    /* fill is followed by main, at another pc; main ends a stack */
    with_inlined((const uint8_t[]){1, 2}, 2, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: stack 0: inlined frame 2 is not followed by a frame at its pc");
    mtc_buf_free(&b);
    with_inlined((const uint8_t[]){1, 3}, 2, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: stack 0: inlined frame 3 is not followed by a frame at its pc");
    mtc_buf_free(&b);
    with_inlined((const uint8_t[]){4, 0, 1}, 3, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: 4 entries cannot fit in the 2 bytes left");
    mtc_buf_free(&b);
    with_inlined((const uint8_t[]){1, 0, 0}, 3, MTSNAP_VERSION, 0, &b);
    expect_error(&b, "snapshot: t: INLN record: 1 bytes left after the last entry");
    mtc_buf_free(&b);
    with_inlined(good, sizeof(good), MTSNAP_VERSION, 1, &b);
    expect_error(&b, "snapshot: t: duplicate INLN record");
    mtc_buf_free(&b);

    /* The encoder writes the same bytes, and refuses indices that do not increase. */
    for (int bad = 0; bad < 2; bad++) {
        mtf_mem_sink_t sink;
        mtf_mem_sink_init(&sink, NULL, 0, 0);
        mtf_enc_t e;
        mtf_enc_init(&e, &sink.sink, 0, 0);
        mtf_enc_begin(&e, MTSNAP_TAG_INLINED);
        mtf_enc_inlined_begin(&e, 3);
        mtf_enc_inlined(&e, 2);
        mtf_enc_inlined(&e, bad ? 2 : 300);
        mtf_enc_inlined(&e, 301);
        mtf_enc_end(&e);
        if (bad) {
            cr_assert_eq(e.err, -EINVAL);
        } else {
            const uint8_t want[] = {3, 2, 0xaa, 0x02, 1};   /* 2, +298, +1 */
            cr_assert_eq(e.err, 0);
            cr_assert_eq(sink.len, HDR2 + sizeof(want));
            cr_assert_eq(memcmp(sink.data + HDR2, want, sizeof(want)), 0);
        }
        free(sink.data);
    }
}

/* The preload's encoder stores a record of fewer than MTF_STORE_BELOW
 * payload bytes and compresses a larger one; a record that reaches zstd
 * through a full input buffer stays compressed however it ends. Both kinds
 * read back as written. */
Test(format, v2_small_records_stored)
{
    mtc_snap_t s;
    sample(&s);   /* 300 blocks: every record small */
    for (int big = 0; big < 2; big++) {
        if (big)   /* BLOCKS well past the threshold and the 128 KiB input buffer */
            for (int i = 0; i < 40000; i++)
                mtc_block(&s, 0x1000000 + 0x40 * (uint64_t)i, 16 + i % 7, 0);
        mtc_buf_t b = {.version = MTSNAP_VERSION, .zstd = mtf_zstd_new(MTF_ZSTD_LEVEL),
                       .store_below = MTF_STORE_BELOW};
        mtc_compose(&s, &b);
        int stored = 0, zstd = 0;
        size_t off = sizeof(mtsnap_file_header_t);
        mtsnap_record_header_v2_t h;
        while (off + HDR2 <= b.len) {
            memcpy(&h, b.data + off, HDR2);
            if (h.raw_length < MTF_STORE_BELOW) {
                cr_assert_eq(h.codec, MTSNAP_CODEC_STORED, "record %08x of %llu bytes", h.tag,
                             (unsigned long long)h.raw_length);
                stored++;
            } else if (h.tag != MTSNAP_TAG_META && h.tag != MTSNAP_TAG_TOTALS) {
                cr_assert_eq(h.codec, MTSNAP_CODEC_ZSTD, "record %08x of %llu bytes", h.tag,
                             (unsigned long long)h.raw_length);
                zstd++;
            }
            off += HDR2 + h.length;
        }
        cr_assert_gt(stored, 5);
        cr_assert_eq(zstd, big, "only BLOCKS is large");
        reads_back(&b, &s, MTSNAP_VERSION);
    }
    mtc_snap_free(&s);
}

/* The file sink holds the bytes of a small file until close (one write) and
 * patches them there; a patch of bytes already written goes to the file.
 * Either way the file holds what a memory sink does after the same calls. */
Test(format, file_sink_patches_in_place)
{
    char path[] = "/tmp/memtrail-sinkXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    int keep = dup(fd);
    static mtf_file_sink_t fs;
    mtf_mem_sink_t ms;
    mtf_file_sink_init(&fs, fd);
    mtf_mem_sink_init(&ms, NULL, 0, 0);
    mtf_sink_t *sinks[2] = {&fs.sink, &ms.sink};
    uint64_t at = 0;   /* the file sink's flushed bytes after the second write */
    static uint8_t big[150000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 131 + 7);
    for (int k = 0; k < 2; k++) {
        mtf_sink_t *o = sinks[k];
        cr_assert_eq(o->write(o, big, 100), 0);
        cr_assert_eq(o->patch(o, 10, "abcd", 4), 0);         /* in the buffer */
        if (k == 0)
            cr_assert_eq(fs.flushed, 0, "nothing written yet");
        cr_assert_eq(o->write(o, big + 100, 70000), 0);     /* past 64 KiB: flushed */
        cr_assert_eq(o->patch(o, 96, "efghijkl", 8), 0);    /* written already */
        cr_assert_eq(o->write(o, big + 70100, 79900), 0);
        if (k == 0) {
            at = fs.flushed;
            cr_assert_gt(at, 4);
            cr_assert_gt(fs.len, 8);
        }
        cr_assert_eq(o->patch(o, at + 5, "uvw", 3), 0);        /* in the buffer again */
        if (k == 0)
            cr_assert_eq(fs.flushed, at, "patched in the buffer, not written");
        cr_assert_eq(o->patch(o, at - 4, "mnopqrst", 8), 0);   /* across the two */
        cr_assert_eq(o->write(o, big, 50), 0);
        cr_assert_eq(o->close(o), 0);
    }
    struct stat st;
    cr_assert_eq(fstat(keep, &st), 0);
    cr_assert_eq((size_t)st.st_size, ms.len);
    uint8_t *got = malloc(ms.len);
    cr_assert_eq(pread(keep, got, ms.len, 0), (ssize_t)ms.len);
    cr_assert_eq(memcmp(got, ms.data, ms.len), 0, "the file differs from the memory sink");
    free(got);
    free(ms.data);
    close(keep);
}
