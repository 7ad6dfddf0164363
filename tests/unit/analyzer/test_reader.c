/* Reader tests: valid snapshots parse to exact fields; every kind of damage
 * (truncation, CRC, order, indices, hostile counts) is rejected with its
 * one-line message and never crashes. Images come from snapcompose.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "snapcompose.h"
#include "snapshot.h"

/* huge_counts caps the address space, so that a reader allocating from a
 * count before checking it fails. ASan reserves terabytes of shadow memory
 * at start, so under it the cap is ASan's limit on one allocation instead
 * (a larger request is reported, and fails the test). */
#if defined(__SANITIZE_ADDRESS__)
#define MT_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MT_UNDER_ASAN 1
#endif
#endif
#ifdef MT_UNDER_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=256";
}
#endif

static const uint32_t order[] = {
    MTSNAP_TAG_META,   MTSNAP_TAG_STRINGS,     MTSNAP_TAG_MODULES,
    MTSNAP_TAG_FRAMES, MTSNAP_TAG_STACKS,      MTSNAP_TAG_STACK_STATS,
    MTSNAP_TAG_TOTALS, MTSNAP_TAG_BLOCKS,
};
#define NORDER (sizeof(order) / sizeof(order[0]))

/* Two modules, three frames, two stacks, two stats, two blocks. */
static void sample(mtc_snap_t *s)
{
    mtc_snap_init(s);
    s->meta.label = mtc_str(s, "after init");
    s->meta.cmdline = mtc_strn(s, "./prog\0-v\0", 10);
    s->meta.exe = mtc_str(s, "/usr/bin/prog");
    s->meta.hostname = mtc_str(s, "box");
    uint32_t prog = mtc_module(s, 0x400000, 0x500000, 0, "/usr/bin/prog");
    uint32_t libc = mtc_module(s, 0x7f0000000000, 0x7f0000200000, 0x7f0000000000,
                               "/lib/x86_64-linux-gnu/libc.so.6");
    s->modules[libc].build_id = mtc_str(s, "0123abcd");
    uint32_t f0 = mtc_frame(s, 0x401234, prog, "make_buffer", "src/buf.c", 42);
    uint32_t f1 = mtc_frame(s, 0x401000, prog, "main", "src/main.c", 10);
    uint32_t f2 = mtc_frame(s, 0x7f0000012345, libc, "", "", 0);
    uint32_t st0 = mtc_stack(s, 3, (uint32_t[]){ f0, f1, f2 });
    uint32_t st1 = mtc_stack(s, 2, (uint32_t[]){ f1, f2 });
    mtc_stat(s, st0, 4096, 2, 16384, 4, 8192, 3);
    mtc_stat(s, st1, 100, 1, 100, 1, 0, 0);
    mtc_block(s, 0x1000, 2048, st0);
    mtc_block(s, 0x2000, 100, st1);
    mtc_block(s, 0x3000, 2048, st0);
    s->totals = (mtsnap_totals_t){ .live_bytes = 4196, .live_blocks = 3, .alloc_bytes = 16484,
                                   .alloc_blocks = 5, .free_blocks = 2, .peak_bytes = 8192,
                                   .peak_blocks = 3, .peak_counter = 7,
                                   .peak_time_ns = 1700000000000000000ull };
}

/* Parses `b` as "t"; returns the rc and leaves the message in err. */
static char err[1024];
static int parse(const mtc_buf_t *b, mta_snapshot_t **out)
{
    mta_snapshot_t *tmp = NULL;
    int rc = mta_snapshot_parse(b->data, b->len, "t", out ? out : &tmp, err, sizeof(err));
    mta_snapshot_free(tmp);
    return rc;
}

/* Composes the sample with record `tag`'s payload replaced. */
static void compose_with(const mtc_snap_t *s, uint32_t tag, const mtc_buf_t *payload, mtc_buf_t *out)
{
    mtc_buf_t pl = { 0 };
    mtc_header(out, MTSNAP_VERSION_V1);
    for (size_t i = 0; i < NORDER; i++) {
        if (order[i] == tag) {
            mtc_record(out, tag, payload->data, payload->len);
            continue;
        }
        mtc_payload(s, order[i], &pl);
        mtc_record(out, order[i], pl.data, pl.len);
    }
    mtc_end(out);
    mtc_buf_free(&pl);
}

/* Expects the sample, modified by `edit`, to fail with exactly `msg`. */
static void expect_error(const mtc_buf_t *b, int rc, const char *msg)
{
    mta_snapshot_t *snap = (void *)1;
    cr_assert_eq(mta_snapshot_parse(b->data, b->len, "t", &snap, err, sizeof(err)), rc,
                 "message: %s", err);
    cr_assert_null(snap);
    cr_assert_str_eq(err, msg);
}

Test(reader, valid_file_exact_fields)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    sample(&s);
    mtc_compose(&s, &b);
    cr_assert_eq(mta_snapshot_parse(b.data, b.len, "t", &snap, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(snap->path, "t");
    cr_assert_eq(snap->meta.pid, 4242);
    cr_assert_eq(snap->meta.ppid, 1);
    cr_assert_eq(snap->meta.seq, 1);
    cr_assert_eq(snap->meta.trigger, MTSNAP_TRIGGER_EXIT);
    cr_assert_eq(snap->meta.time_ns, 1700000000123456789ull);
    cr_assert_str_eq(snap->label, "after init");
    cr_assert_str_eq(snap->exe, "/usr/bin/prog");
    cr_assert_str_eq(snap->hostname, "box");
    cr_assert_eq(snap->cmdline_len, 10);
    cr_assert_eq(memcmp(snap->cmdline, "./prog\0-v\0", 10), 0);
    cr_assert_eq(snap->nstrings, s.nstrings);
    cr_assert_str_eq(snap->strings[0], "");
    cr_assert_eq(snap->nmodules, 2);
    cr_assert_str_eq(snap->modules[1].path, "/lib/x86_64-linux-gnu/libc.so.6");
    cr_assert_str_eq(snap->modules[1].build_id, "0123abcd");
    cr_assert_str_eq(snap->modules[0].build_id, "");
    cr_assert_eq(snap->modules[1].bias, 0x7f0000000000ull);
    cr_assert_eq(snap->nframes, 3);
    cr_assert_eq(snap->frames[0].pc, 0x401234);
    cr_assert_str_eq(snap->frames[0].function, "make_buffer");
    cr_assert_str_eq(snap->frames[0].file, "src/buf.c");
    cr_assert_eq(snap->frames[0].line, 42);
    cr_assert_eq(snap->frames[2].module, 1);
    cr_assert_str_eq(snap->frames[2].function, "");
    cr_assert_eq(snap->nstacks, 2);
    cr_assert_eq(snap->stacks[0].depth, 3);
    cr_assert_eq(snap->stacks[0].frames[0], 0);
    cr_assert_eq(snap->stacks[0].frames[2], 2);
    cr_assert_eq(snap->stacks[1].depth, 2);
    cr_assert_eq(snap->stacks[1].frames[0], 1);
    cr_assert_eq(snap->nstats, 2);
    cr_assert_eq(snap->stats[0].live_bytes, 4096);
    cr_assert_eq(snap->stats[0].peak_blocks, 3);
    cr_assert_eq(snap->stats[1].stack, 1);
    cr_assert_eq(snap->totals.live_bytes, 4196);
    cr_assert_eq(snap->totals.peak_counter, 7);
    cr_assert_eq(snap->nblocks, 3);
    cr_assert_eq(snap->blocks[1].address, 0x2000);
    cr_assert_eq(snap->blocks[1].size, 100);
    cr_assert_eq(snap->blocks[1].stack, 1);
    mta_snapshot_free(snap);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, empty_snapshot_is_valid)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    mtc_snap_init(&s);
    mtc_compose(&s, &b);
    cr_assert_eq(mta_snapshot_parse(b.data, b.len, "t", &snap, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(snap->nstrings, 1);
    cr_assert_eq(snap->nmodules + snap->nframes + snap->nstacks + snap->nstats, 0);
    cr_assert_eq(snap->nblocks, 0);
    cr_assert_eq(snap->cmdline_len, 0);
    cr_assert_str_eq(snap->label, "");
    mta_snapshot_free(snap);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, every_truncation_is_rejected)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    sample(&s);
    mtc_compose(&s, &b);
    /* Record boundaries: where a cut leaves whole records only. */
    size_t bounds[NORDER + 1], nb = 0, off = sizeof(mtsnap_file_header_t);
    while (nb < NORDER + 1) {
        bounds[nb++] = off;
        mtsnap_record_header_t rh;
        memcpy(&rh, b.data + off, sizeof(rh));
        off += sizeof(rh) + rh.length;
    }
    for (size_t len = 0; len < b.len; len++) {
        mtc_buf_t cut = { .data = b.data, .len = len };
        mta_snapshot_t *snap = (void *)1;
        int rc = mta_snapshot_parse(cut.data, cut.len, "t", &snap, err, sizeof(err));
        cr_assert_eq(rc, -EINVAL, "length %zu accepted", len);
        cr_assert_null(snap);
        cr_assert_eq(strncmp(err, "snapshot: t: truncated (", 24), 0, "length %zu: %s", len, err);
        int boundary = len < sizeof(mtsnap_file_header_t);
        for (size_t i = 0; i < nb; i++)
            boundary |= bounds[i] == len;
        if (boundary)
            cr_assert_str_eq(err, "snapshot: t: truncated (END record missing)", "length %zu", len);
    }
    cr_assert_eq(parse(&b, NULL), 0);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, bad_crc)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    sample(&s);
    mtc_compose(&s, &b);
    /* STRS starts after the header (16) and META (16 + 72). */
    b.data[104 + 16 + 8] ^= 0x20;
    cr_assert_eq(parse(&b, NULL), -EINVAL);
    cr_assert_eq(strncmp(err, "snapshot: t: STRS record at offset 104: CRC mismatch (stored 0x", 63), 0,
                 "%s", err);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, bad_magic_and_header)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    sample(&s);
    mtc_compose(&s, &b);
    b.data[1] = 'X';
    expect_error(&b, -EINVAL, "snapshot: t: not a memtrail snapshot (bad magic)");
    b.data[1] = 'M';
    mtc_buf_t two = { .data = (uint8_t *)"PK", .len = 2 };
    expect_error(&two, -EINVAL, "snapshot: t: not a memtrail snapshot (bad magic)");
    b.data[10] = 32; /* hdr_size */
    expect_error(&b, -EINVAL, "snapshot: t: file header size is 32, expected 16");
    b.data[10] = 16;
    b.data[13] = 0xff; /* flags, reserved */
    expect_error(&b, -EINVAL, "snapshot: t: file header flags 0x0000ff00, not 0");
    b.data[13] = 0;
    b.data[8] = 0;
    expect_error(&b, -EINVAL, "snapshot: t: invalid format version 0");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, newer_version)
{
    mtc_buf_t b = { 0 };
    mtc_header(&b, 4);
    mtc_put(&b, "whatever follows in v4", 22);
    expect_error(&b, -EPROTONOSUPPORT,
                 "snapshot: t: format version 4 is newer than this memtrail supports (3)");
    mtc_buf_free(&b);
}

Test(reader, indices_out_of_range)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 }, pl = { 0 };
    sample(&s);

    s.meta.label = 999;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: META record: label: string index 999 out of range (11 strings)");
    s.meta.label = 1;

    s.frames[1].file = 11;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: FRMS record: frame 1: string index 11 out of range (11 strings)");
    s.frames[1].file = 0;

    s.frames[2].module = 2;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: FRMS record: frame 2: module index 2 out of range (2 modules)");
    s.frames[2].module = MTSNAP_NONE; /* "no module" is fine */
    mtc_compose(&s, &b);
    cr_assert_eq(parse(&b, NULL), 0, "%s", err);
    s.frames[2].module = 1;

    s.modules[0].path = 77;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: MODS record: module 0: string index 77 out of range (11 strings)");
    s.modules[0].path = 3;

    /* A stack naming frame 3 of 3. */
    mtc_payload(&s, MTSNAP_TAG_STACKS, &pl);
    uint32_t bad = 3;
    memcpy(pl.data + 4 + 4 + 4, &bad, 4); /* stack 0, second frame */
    b.len = 0;
    b.records = 0;
    compose_with(&s, MTSNAP_TAG_STACKS, &pl, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: STKS record: stack 0: frame index 3 out of range (3 frames)");

    s.stats[1].stack = 2;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: STAT record: entry 1: stack index 2 out of range (2 stacks)");
    s.stats[1].stack = 0;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL, "snapshot: t: STAT record: entry 1: stack 0 has two entries");
    s.stats[1].stack = 1;

    s.blocks[2].stack = 5;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: BLKS record: block 2: stack index 5 out of range (2 stacks)");
    mtc_buf_free(&pl);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

/* Builds header + the records `tags` (sample payloads) + END. */
static void compose_tags(const mtc_snap_t *s, const uint32_t *tags, size_t n, mtc_buf_t *out)
{
    mtc_buf_t pl = { 0 };
    out->len = 0;
    out->records = 0;
    mtc_header(out, MTSNAP_VERSION_V1);
    for (size_t i = 0; i < n; i++) {
        if (tags[i] & MTSNAP_TAG_OPTIONAL || tags[i] == 0x44434241u) {
            mtc_record(out, tags[i], "opaque", 6);
            continue;
        }
        mtc_payload(s, tags[i], &pl);
        mtc_record(out, tags[i], pl.data, pl.len);
    }
    mtc_end(out);
    mtc_buf_free(&pl);
}

Test(reader, record_order)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    sample(&s);
    uint32_t dup[] = { MTSNAP_TAG_META, MTSNAP_TAG_STRINGS, MTSNAP_TAG_STRINGS };
    compose_tags(&s, dup, 3, &b);
    expect_error(&b, -EINVAL, "snapshot: t: duplicate STRS record at offset 277");

    uint32_t missing[] = { MTSNAP_TAG_META, MTSNAP_TAG_STRINGS, MTSNAP_TAG_FRAMES };
    compose_tags(&s, missing, 3, &b);
    expect_error(&b, -EINVAL, "snapshot: t: FRMS record at offset 277 out of order (expected MODS)");

    compose_tags(&s, order, NORDER - 1, &b); /* no BLKS */
    char msg[128];
    snprintf(msg, sizeof(msg), "snapshot: t: END record at offset %zu before the BLKS record",
             b.len - 32);
    expect_error(&b, -EINVAL, msg);

    uint32_t meta_twice[] = { MTSNAP_TAG_META, MTSNAP_TAG_STRINGS, MTSNAP_TAG_META };
    compose_tags(&s, meta_twice, 3, &b);
    expect_error(&b, -EINVAL, "snapshot: t: duplicate META record at offset 277");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, optional_and_mandatory_unknown_tags)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    sample(&s);
    uint32_t opt = MTSNAP_TAG_OPTIONAL | 0x12345678u;
    uint32_t with_opt[] = { opt, MTSNAP_TAG_META, MTSNAP_TAG_STRINGS, MTSNAP_TAG_MODULES, opt,
                            MTSNAP_TAG_FRAMES, MTSNAP_TAG_STACKS, MTSNAP_TAG_STACK_STATS,
                            MTSNAP_TAG_TOTALS, MTSNAP_TAG_BLOCKS, opt };
    compose_tags(&s, with_opt, 11, &b);
    cr_assert_eq(parse(&b, &snap), 0, "%s", err);
    cr_assert_eq(snap->nblocks, 3);
    cr_assert_str_eq(snap->label, "after init");
    mta_snapshot_free(snap);

    uint32_t with_unknown[] = { MTSNAP_TAG_META, 0x44434241u /* "ABCD" */ };
    compose_tags(&s, with_unknown, 2, &b);
    expect_error(&b, -EINVAL, "snapshot: t: unknown mandatory record ABCD at offset 104");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, end_record_fields)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    sample(&s);
    mtc_compose(&s, &b);
    size_t end_off = b.len - 32;
    mtsnap_end_t e = { .records = 9, .offset = end_off };
    memcpy(b.data + end_off + 16, &e, sizeof(e));
    uint32_t crc = mtsnap_crc32(0, &e, sizeof(e));
    memcpy(b.data + end_off + 4, &crc, 4);
    expect_error(&b, -EINVAL, "snapshot: t: END record: counts 9 records, the file has 8");

    e = (mtsnap_end_t){ .records = 8, .offset = 5 };
    memcpy(b.data + end_off + 16, &e, sizeof(e));
    crc = mtsnap_crc32(0, &e, sizeof(e));
    memcpy(b.data + end_off + 4, &crc, 4);
    char msg[128];
    snprintf(msg, sizeof(msg), "snapshot: t: END record: says it is at offset 5, it is at %zu",
             end_off);
    expect_error(&b, -EINVAL, msg);

    mtc_compose(&s, &b);
    mtc_put(&b, "junk", 4);
    expect_error(&b, -EINVAL, "snapshot: t: 4 bytes of trailing data after the END record");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

/* Hostile counts must be refused from the record size alone: run with a
 * small address-space limit so a count-sized allocation would fail. */
Test(reader, huge_counts)
{
#ifndef MT_UNDER_ASAN
    struct rlimit rl = { 256u << 20, 256u << 20 };
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
#endif
    mtc_snap_t s;
    mtc_buf_t b = { 0 }, pl = { 0 };
    sample(&s);
    uint32_t huge32 = 0xffffffffu;
    uint64_t huge64 = 1ull << 60;

    mtc_payload(&s, MTSNAP_TAG_STRINGS, &pl);
    memcpy(pl.data, &huge32, 4);
    compose_with(&s, MTSNAP_TAG_STRINGS, &pl, &b);
    char msg[160];
    snprintf(msg, sizeof(msg), "snapshot: t: STRS record: 4294967295 strings cannot fit in %zu bytes",
             pl.len);
    expect_error(&b, -EINVAL, msg);

    mtc_payload(&s, MTSNAP_TAG_STRINGS, &pl);
    memcpy(pl.data + 8, &huge32, 4); /* string 1's length */
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_STRINGS, &pl, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: STRS record: string 1: 4294967295 bytes past the end of the record");

    mtc_payload(&s, MTSNAP_TAG_FRAMES, &pl);
    memcpy(pl.data, &huge32, 4);
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_FRAMES, &pl, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: FRMS record: payload of 124 bytes does not hold 4294967295 entries of 40 bytes");

    mtc_payload(&s, MTSNAP_TAG_STACKS, &pl);
    memcpy(pl.data + 4, &huge32, 4); /* stack 0's depth */
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_STACKS, &pl, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: STKS record: stack 0: 4294967295 frames past the end of the record");

    mtc_payload(&s, MTSNAP_TAG_BLOCKS, &pl);
    memcpy(pl.data, &huge64, 8);
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_BLOCKS, &pl, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: BLKS record: payload of 104 bytes does not hold 1152921504606846976 blocks");
    /* count * 32 wraps around to 0 in 64 bits: still refused. */
    huge64 = 1ull << 59;
    memcpy(pl.data, &huge64, 8);
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_BLOCKS, &pl, &b);
    cr_assert_eq(parse(&b, NULL), -EINVAL);

    /* A record length near 2^64. */
    mtc_compose(&s, &b);
    uint64_t len = UINT64_MAX - 8;
    memcpy(b.data + 16 + 8, &len, 8);
    cr_assert_eq(parse(&b, NULL), -EINVAL);
    cr_assert_eq(strncmp(err, "snapshot: t: truncated (record META at offset 16 needs ", 55), 0,
                 "%s", err);
    mtc_buf_free(&pl);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, unsorted_blocks)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    sample(&s);
    s.blocks[2].address = 0x1800;
    mtc_compose(&s, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: BLKS record: block 2 at 0x1800 is not above the previous one (not sorted by address)");
    s.blocks[2].address = 0x2000; /* duplicate address */
    mtc_compose(&s, &b);
    cr_assert_eq(parse(&b, NULL), -EINVAL);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, payload_length_mismatch)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 }, pl = { 0 };
    sample(&s);
    mtc_payload(&s, MTSNAP_TAG_META, &pl);
    pl.len -= 4;
    compose_with(&s, MTSNAP_TAG_META, &pl, &b);
    expect_error(&b, -EINVAL, "snapshot: t: META record: payload is 68 bytes, expected 72");
    mtc_payload(&s, MTSNAP_TAG_MODULES, &pl);
    mtc_put(&pl, "x", 1);
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_MODULES, &pl, &b);
    expect_error(&b, -EINVAL,
                 "snapshot: t: MODS record: payload of 69 bytes does not hold 2 entries of 32 bytes");
    mtc_payload(&s, MTSNAP_TAG_STRINGS, &pl);
    mtc_put(&pl, "xy", 2);
    b.len = b.records = 0;
    compose_with(&s, MTSNAP_TAG_STRINGS, &pl, &b);
    expect_error(&b, -EINVAL, "snapshot: t: STRS record: 2 bytes left after 11 strings");
    mtc_buf_free(&pl);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(reader, load_from_file)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    char path[] = "/tmp/test_reader.XXXXXX";
    sample(&s);
    mtc_compose(&s, &b);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    cr_assert_eq(mta_snapshot_load(path, &snap, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(snap->path, path);
    cr_assert_eq(snap->totals.live_bytes, 4196);
    mta_snapshot_free(snap);
    unlink(path);

    cr_assert_eq(mta_snapshot_load(path, &snap, err, sizeof(err)), -ENOENT);
    cr_assert_null(snap);
    char msg[128];
    snprintf(msg, sizeof(msg), "snapshot: %s: No such file or directory", path);
    cr_assert_str_eq(err, msg);
    cr_assert_eq(mta_snapshot_load("/tmp", &snap, err, sizeof(err)), -EISDIR);
    cr_assert_str_eq(err, "snapshot: /tmp: Is a directory");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

/* COSTS (what tracing cost the process so far) reads back whole; a payload
 * of another size is rejected with one line. */
Test(reader, costs_record)
{
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mta_snapshot_t *snap = NULL;
    sample(&s);
    mtsnap_costs_t c = {.wait_ns = 123456789, .waits = 42, .worst_wait_ns = 9999999,
                        .writer_cpu_ns = 2000000001, .events = 77777};
    mtc_extra_t extra = {MTSNAP_TAG_COSTS, &c, sizeof(c)};
    mtc_compose_with(&s, &extra, 1, &b);
    cr_assert_eq(parse(&b, &snap), 0, "%s", err);
    cr_assert(snap->has_costs);
    cr_assert_eq(memcmp(&snap->costs, &c, sizeof(c)), 0);
    mta_snapshot_free(snap);
    snap = NULL;
    extra.len = sizeof(c) - 8;
    mtc_compose_with(&s, &extra, 1, &b);
    cr_assert_neq(parse(&b, &snap), 0);
    cr_assert_null(snap);
    cr_assert(strstr(err, "COST record: payload of 40 bytes, expected 48") != NULL, "%s", err);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}
