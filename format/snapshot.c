/*
 * Snapshot reader: loads a *.mtsnap file (include/memtrail_format.h),
 * version 1, 2 or 3, into an mta_snapshot_t, validating every byte it relies
 * on. This file walks the records (both kinds of record header), checks their
 * CRCs and parses version 1 payloads; snapshot_v2.c decompresses a version 2
 * or 3 record and decodes its varint payloads, into the same structures and
 * through the same checks (FRAMES, STACKS and STACK_STATS by transcoding
 * them to their version 1 payload).
 *
 * The input is hostile: every count and length comes from the file, so each
 * one is checked against the bytes that are actually present before anything
 * is allocated (arithmetic is done in 64 bits after dividing, never by
 * multiplying a count). Every allocation is therefore bounded by a small
 * multiple of the file size. The parser walks the records once, in order;
 * the expected sequence (MTSNAP_REQUIRED_RECORDS of memtrail_format.h) is
 * META STRS MODS FRMS STKS STAT TTLS BLKS END!, with
 * optional records (tag bit 31) allowed anywhere before END and skipped. A
 * record may only refer to records before it, except META whose string
 * indices are checked once STRINGS has been read. Nothing in the result
 * points into the input buffer: all arrays are owned copies, freed by
 * mta_snapshot_free().
 */
#include "snapread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* The records every file has, in their required order (memtrail_format.h). */
#define REQUIRED_TAG_(NAME, name, value) MTSNAP_TAG_##NAME,
static const uint32_t required_tags[] = {MTSNAP_REQUIRED_RECORDS(REQUIRED_TAG_)};
#undef REQUIRED_TAG_
#define NREQUIRED (sizeof(required_tags) / sizeof(required_tags[0]))
_Static_assert(NREQUIRED == MTSNAP_NREQUIRED, "one record list");

int mtr_fail(parser_t *p, int rc, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        char what[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        snprintf(p->err, p->errlen, "snapshot: %s: %s", p->name, what);
    }
    return rc;
}
#define fail mtr_fail

static int truncated(parser_t *p)
{
    return fail(p, -EINVAL, "truncated (END record missing)");
}

/* "STRS" for printable tags, "0x1234abcd" otherwise. */
static const char *tag_name(uint32_t tag, char buf[16])
{
    char c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (char)((tag >> (8 * i)) & 0xff);
        if (c[i] < 0x21 || c[i] > 0x7e) {
            snprintf(buf, 16, "0x%08x", tag);
            return buf;
        }
    }
    memcpy(buf, c, 4);
    buf[4] = '\0';
    return buf;
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Checks that a payload is "u32 count + count * elem bytes" exactly and
 * returns the count. Overflow-safe: compares count with (len - 4) / elem. */
static int fixed_array(parser_t *p, const char *what, const uint8_t *pl, uint64_t len,
                       size_t elem, uint32_t *count)
{
    if (len < 4)
        return fail(p, -EINVAL, "%s record: payload of %llu bytes has no count", what,
                    (unsigned long long)len);
    uint32_t n = get_u32(pl);
    if ((uint64_t)n > (len - 4) / elem || 4 + (uint64_t)n * elem != len)
        return fail(p, -EINVAL, "%s record: payload of %llu bytes does not hold %u entries of %zu bytes",
                    what, (unsigned long long)len, n, elem);
    *count = n;
    return 0;
}

static int check_string(parser_t *p, const char *where, uint32_t idx)
{
    if (idx >= p->snap->nstrings)
        return fail(p, -EINVAL, "%s: string index %u out of range (%u strings)", where, idx,
                    p->snap->nstrings);
    return 0;
}

static int parse_meta(parser_t *p, const uint8_t *pl, uint64_t len)
{
    if (len != sizeof(mtsnap_meta_t))
        return fail(p, -EINVAL, "META record: payload is %llu bytes, expected %zu",
                    (unsigned long long)len, sizeof(mtsnap_meta_t));
    mtsnap_meta_t *m = &p->snap->meta;
    memcpy(m, pl, sizeof(*m));
    if (m->trigger < MTSNAP_TRIGGER_EXIT || m->trigger > MTSNAP_TRIGGER_MAX)
        return fail(p, -EINVAL, "META record: unknown trigger %u", m->trigger);
    if (m->unwind != MTSNAP_UNWIND_LIBUNWIND && m->unwind != MTSNAP_UNWIND_FP)
        return fail(p, -EINVAL, "META record: unknown unwind method %u", m->unwind);
    return 0;
}

/* META refers to strings, which come after it. */
static int finish_meta(parser_t *p)
{
    mta_snapshot_t *s = p->snap;
    const mtsnap_meta_t *m = &s->meta;
    int rc;
    if ((rc = check_string(p, "META record: label", m->label)) < 0 ||
        (rc = check_string(p, "META record: cmdline", m->cmdline)) < 0 ||
        (rc = check_string(p, "META record: exe", m->exe)) < 0 ||
        (rc = check_string(p, "META record: hostname", m->hostname)) < 0)
        return rc;
    s->label = s->strings[m->label];
    s->exe = s->strings[m->exe];
    s->hostname = s->strings[m->hostname];
    s->cmdline = s->strings[m->cmdline];
    s->cmdline_len = s->string_len[m->cmdline];
    return 0;
}

static int parse_strings(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    if (len < 4)
        return fail(p, -EINVAL, "STRS record: payload of %llu bytes has no count",
                    (unsigned long long)len);
    uint32_t n = get_u32(pl);
    /* Each entry takes at least its 4-byte length. */
    if (n == 0 || (uint64_t)n > (len - 4) / 4)
        return fail(p, -EINVAL, "STRS record: %u strings cannot fit in %llu bytes%s", n,
                    (unsigned long long)len, n == 0 ? " (string 0 is required)" : "");
    /* First pass: validate the lengths. */
    uint64_t off = 4;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < 4)
            return fail(p, -EINVAL, "STRS record: string %u: length past the end of the record", i);
        uint32_t sl = get_u32(pl + off);
        off += 4;
        if (sl > len - off)
            return fail(p, -EINVAL, "STRS record: string %u: %u bytes past the end of the record",
                        i, sl);
        if (i == 0 && sl != 0)
            return fail(p, -EINVAL, "STRS record: string 0 is not empty");
        off += sl;
    }
    if (off != len)
        return fail(p, -EINVAL, "STRS record: %llu bytes left after %u strings",
                    (unsigned long long)(len - off), n);
    /* Bytes plus one NUL each: at most len - 4 + n <= 2 * len. */
    p->priv->string_blob = malloc((size_t)(len - 4 - 4 * (uint64_t)n + n));
    s->strings = calloc(n, sizeof(*s->strings));
    s->string_len = calloc(n, sizeof(*s->string_len));
    if (!p->priv->string_blob || !s->strings || !s->string_len)
        return fail(p, -ENOMEM, "out of memory");
    char *dst = p->priv->string_blob;
    off = 4;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t sl = get_u32(pl + off);
        off += 4;
        memcpy(dst, pl + off, sl);
        dst[sl] = '\0';
        s->strings[i] = dst;
        s->string_len[i] = sl;
        dst += sl + 1;
        off += sl;
    }
    s->nstrings = n;
    return finish_meta(p);
}

static int parse_modules(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    uint32_t n;
    int rc = fixed_array(p, "MODS", pl, len, sizeof(mtsnap_module_t), &n);
    if (rc < 0)
        return rc;
    s->modules = calloc(n ? n : 1, sizeof(*s->modules));
    if (!s->modules)
        return fail(p, -ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        mtsnap_module_t m;
        char where[64];
        memcpy(&m, pl + 4 + (size_t)i * sizeof(m), sizeof(m));
        snprintf(where, sizeof(where), "MODS record: module %u", i);
        if ((rc = check_string(p, where, m.path)) < 0 || (rc = check_string(p, where, m.build_id)) < 0)
            return rc;
        if (m.start > m.end)
            return fail(p, -EINVAL, "%s: start 0x%llx is above end 0x%llx", where,
                        (unsigned long long)m.start, (unsigned long long)m.end);
        s->modules[i] = (mta_module_t){ .start = m.start, .end = m.end, .bias = m.bias,
                                        .path = s->strings[m.path],
                                        .build_id = s->strings[m.build_id] };
    }
    s->nmodules = n;
    return 0;
}

static int parse_frames(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    uint32_t n;
    int rc = fixed_array(p, "FRMS", pl, len, sizeof(mtsnap_frame_t), &n);
    if (rc < 0)
        return rc;
    s->frames = calloc(n ? n : 1, sizeof(*s->frames));
    if (!s->frames)
        return fail(p, -ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        mtsnap_frame_t f;
        char where[64];
        memcpy(&f, pl + 4 + (size_t)i * sizeof(f), sizeof(f));
        snprintf(where, sizeof(where), "FRMS record: frame %u", i);
        if ((rc = check_string(p, where, f.function)) < 0 || (rc = check_string(p, where, f.file)) < 0)
            return rc;
        if (f.module != MTSNAP_NONE && f.module >= s->nmodules)
            return fail(p, -EINVAL, "%s: module index %u out of range (%u modules)", where,
                        f.module, s->nmodules);
        if (f.kind != MTSNAP_FRAME_NATIVE && f.kind != MTSNAP_FRAME_PYTHON)
            return fail(p, -EINVAL, "%s: unknown kind %u", where, f.kind);
        s->frames[i] = (mta_frame_t){ .pc = f.pc, .offset = f.offset, .module = f.module,
                                      .line = f.line, .kind = f.kind,
                                      .function = s->strings[f.function],
                                      .file = s->strings[f.file] };
    }
    s->nframes = n;
    return 0;
}

static int parse_stacks(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    if (len < 4)
        return fail(p, -EINVAL, "STKS record: payload of %llu bytes has no count",
                    (unsigned long long)len);
    uint32_t n = get_u32(pl);
    if ((uint64_t)n > (len - 4) / 4)
        return fail(p, -EINVAL, "STKS record: %u stacks cannot fit in %llu bytes", n,
                    (unsigned long long)len);
    uint64_t off = 4, total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < 4)
            return fail(p, -EINVAL, "STKS record: stack %u: depth past the end of the record", i);
        uint32_t depth = get_u32(pl + off);
        off += 4;
        if ((uint64_t)depth > (len - off) / 4)
            return fail(p, -EINVAL, "STKS record: stack %u: %u frames past the end of the record",
                        i, depth);
        for (uint32_t j = 0; j < depth; j++) {
            uint32_t f = get_u32(pl + off + 4 * (uint64_t)j);
            if (f >= s->nframes)
                return fail(p, -EINVAL, "STKS record: stack %u: frame index %u out of range (%u frames)",
                            i, f, s->nframes);
        }
        off += 4 * (uint64_t)depth;
        total += depth;
    }
    if (off != len)
        return fail(p, -EINVAL, "STKS record: %llu bytes left after %u stacks",
                    (unsigned long long)(len - off), n);
    s->stacks = calloc(n ? n : 1, sizeof(*s->stacks));
    p->priv->stack_frames = malloc(total ? (size_t)total * 4 : 4);
    if (!s->stacks || !p->priv->stack_frames)
        return fail(p, -ENOMEM, "out of memory");
    uint32_t *dst = p->priv->stack_frames;
    off = 4;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t depth = get_u32(pl + off);
        off += 4;
        memcpy(dst, pl + off, (size_t)depth * 4);
        s->stacks[i] = (mta_stack_t){ .depth = depth, .frames = dst };
        dst += depth;
        off += 4 * (uint64_t)depth;
    }
    s->nstacks = n;
    return 0;
}

static int parse_stack_stats(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    uint32_t n;
    int rc = fixed_array(p, "STAT", pl, len, sizeof(mtsnap_stack_stat_t), &n);
    if (rc < 0)
        return rc;
    s->stats = malloc(n ? (size_t)n * sizeof(*s->stats) : 1);
    uint8_t *seen = calloc(s->nstacks ? s->nstacks : 1, 1);
    if (!s->stats || !seen) {
        free(seen);
        return fail(p, -ENOMEM, "out of memory");
    }
    memcpy(s->stats, pl + 4, (size_t)n * sizeof(*s->stats));
    rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint32_t st = s->stats[i].stack;
        if (st >= s->nstacks)
            rc = fail(p, -EINVAL, "STAT record: entry %u: stack index %u out of range (%u stacks)",
                      i, st, s->nstacks);
        else if (seen[st]++)
            rc = fail(p, -EINVAL, "STAT record: entry %u: stack %u has two entries", i, st);
    }
    free(seen);
    s->nstats = n;
    return rc;
}

static int parse_totals(parser_t *p, const uint8_t *pl, uint64_t len)
{
    if (len != sizeof(mtsnap_totals_t))
        return fail(p, -EINVAL, "TTLS record: payload is %llu bytes, expected %zu",
                    (unsigned long long)len, sizeof(mtsnap_totals_t));
    memcpy(&p->snap->totals, pl, sizeof(mtsnap_totals_t));
    return 0;
}

static int parse_blocks(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    if (len < 8)
        return fail(p, -EINVAL, "BLKS record: payload of %llu bytes has no count",
                    (unsigned long long)len);
    uint64_t n = get_u64(pl);
    if (n > (len - 8) / sizeof(mtsnap_block_t) || 8 + n * sizeof(mtsnap_block_t) != len)
        return fail(p, -EINVAL, "BLKS record: payload of %llu bytes does not hold %llu blocks",
                    (unsigned long long)len, (unsigned long long)n);
    s->blocks = malloc(n ? (size_t)n * sizeof(*s->blocks) : 1);
    if (!s->blocks)
        return fail(p, -ENOMEM, "out of memory");
    memcpy(s->blocks, pl + 8, (size_t)n * sizeof(*s->blocks));
    s->nblocks = n;
    return mtr_check_blocks(p);
}

int mtr_check_blocks(parser_t *p)
{
    const mta_snapshot_t *s = p->snap;
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        if (b->stack >= s->nstacks)
            return fail(p, -EINVAL, "BLKS record: block %llu: stack index %u out of range (%u stacks)",
                        (unsigned long long)i, b->stack, s->nstacks);
        if (i > 0 && b->address <= s->blocks[i - 1].address)
            return fail(p, -EINVAL, "BLKS record: block %llu at 0x%llx is not above the previous one (not sorted by address)",
                        (unsigned long long)i, (unsigned long long)b->address);
    }
    return 0;
}

/* Known optional records come after BLOCKS, at most once each. */
static int optional_place(parser_t *p, const char *what, int seen, size_t next)
{
    if (next < NREQUIRED)
        return fail(p, -EINVAL, "%s record before the BLKS record", what);
    if (seen)
        return fail(p, -EINVAL, "duplicate %s record", what);
    return 0;
}

/* A record whose payload is one fixed struct: exactly `size` bytes copied
 * into dst. */
static int fixed_payload(parser_t *p, const char *what, const uint8_t *pl, uint64_t len,
                         void *dst, size_t size)
{
    if (len != size)
        return fail(p, -EINVAL, "%s record: payload of %llu bytes, expected %zu", what,
                    (unsigned long long)len, size);
    memcpy(dst, pl, size);
    return 0;
}

static int parse_costs(parser_t *p, const uint8_t *pl, uint64_t len)
{
    int rc = fixed_payload(p, "COST", pl, len, &p->snap->costs, sizeof(p->snap->costs));
    p->snap->has_costs = rc == 0;
    return rc;
}

static int parse_timing(parser_t *p, const uint8_t *pl, uint64_t len)
{
    int rc = fixed_payload(p, "TIME", pl, len, &p->snap->timing, sizeof(p->snap->timing));
    p->snap->has_timing = rc == 0;
    return rc;
}

static int parse_sampling(parser_t *p, const uint8_t *pl, uint64_t len)
{
    int rc = fixed_payload(p, "SMPL", pl, len, &p->snap->sampling, sizeof(p->snap->sampling));
    if (rc == 0 && p->snap->sampling.mean == 0)
        return fail(p, -EINVAL, "SMPL record: a mean of 0 bytes");
    p->snap->has_sampling = rc == 0;
    return rc;
}

static int parse_leaks(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    mtsnap_leak_header_t h;
    if (len < sizeof(h))
        return fail(p, -EINVAL, "LEAK record: payload of %llu bytes has no header",
                    (unsigned long long)len);
    memcpy(&h, pl, sizeof(h));
    if (h.blocks != s->nblocks || len - sizeof(h) != h.blocks)
        return fail(p, -EINVAL, "LEAK record: %llu payload bytes for %llu kinds, the file has %llu blocks",
                    (unsigned long long)(len - sizeof(h)), (unsigned long long)h.blocks,
                    (unsigned long long)s->nblocks);
    s->leak_kind = malloc(h.blocks ? (size_t)h.blocks : 1);
    if (!s->leak_kind)
        return fail(p, -ENOMEM, "out of memory");
    memcpy(s->leak_kind, pl + sizeof(h), (size_t)h.blocks);
    for (uint64_t i = 0; i < h.blocks; i++)
        if (s->leak_kind[i] > MTSNAP_LEAK_KIND_MAX)
            return fail(p, -EINVAL, "LEAK record: block %llu has unknown kind %u",
                        (unsigned long long)i, s->leak_kind[i]);
    s->leak = h;
    s->has_leaks = 1;
    return 0;
}

static int parse_pygraph(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    mtsnap_pygraph_header_t h;
    if (len < sizeof(h))
        return fail(p, -EINVAL, "PYGR record: payload of %llu bytes has no header",
                    (unsigned long long)len);
    memcpy(&h, pl, sizeof(h));
    uint64_t rest = len - sizeof(h);
    if (h.objects > rest / sizeof(mtsnap_pyobj_t) ||
        h.edges != (rest - (uint64_t)h.objects * sizeof(mtsnap_pyobj_t)) / 8 ||
        (rest - (uint64_t)h.objects * sizeof(mtsnap_pyobj_t)) % 8)
        return fail(p, -EINVAL, "PYGR record: payload of %llu bytes does not hold %u objects and %llu edges",
                    (unsigned long long)len, h.objects, (unsigned long long)h.edges);
    s->pyobjs = malloc(h.objects ? (size_t)h.objects * sizeof(*s->pyobjs) : 1);
    s->pyedges = malloc(h.edges ? (size_t)h.edges * 8 : 1);
    s->pyedge_first = malloc(((size_t)h.objects + 1) * sizeof(*s->pyedge_first));
    if (!s->pyobjs || !s->pyedges || !s->pyedge_first)
        return fail(p, -ENOMEM, "out of memory");
    memcpy(s->pyobjs, pl + sizeof(h), (size_t)h.objects * sizeof(*s->pyobjs));
    memcpy(s->pyedges, pl + sizeof(h) + (size_t)h.objects * sizeof(*s->pyobjs), (size_t)h.edges * 8);
    return mtr_check_pygraph(p, &h);
}

int mtr_check_pygraph(parser_t *p, const mtsnap_pygraph_header_t *hp)
{
    mta_snapshot_t *s = p->snap;
    const mtsnap_pygraph_header_t h = *hp;
    if (h.stdlib >= s->nstrings)
        return fail(p, -EINVAL, "PYGR record: string index %u out of range (%u strings)", h.stdlib,
                    s->nstrings);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < h.objects; i++) {
        const mtsnap_pyobj_t *o = &s->pyobjs[i];
        if (o->type >= s->nstrings)
            return fail(p, -EINVAL, "PYGR record: object %u: type string %u out of range (%u strings)",
                        i, o->type, s->nstrings);
        if (i > 0 && o->address <= s->pyobjs[i - 1].address)
            return fail(p, -EINVAL, "PYGR record: object %u at 0x%llx is not above the previous one (not sorted by address)",
                        i, (unsigned long long)o->address);
        s->pyedge_first[i] = sum;
        sum += o->nrefs;
        if (sum > h.edges)
            return fail(p, -EINVAL, "PYGR record: object %u's references run past the %llu edges",
                        i, (unsigned long long)h.edges);
    }
    if (sum != h.edges)
        return fail(p, -EINVAL, "PYGR record: objects hold %llu references, the record has %llu edges",
                    (unsigned long long)sum, (unsigned long long)h.edges);
    s->pyedge_first[h.objects] = sum;
    s->pygraph = h;
    s->has_pygraph = 1;
    return 0;
}

/* One parse_<record>() per required record of memtrail_format.h. */
static int parse_record(parser_t *p, uint32_t tag, const uint8_t *pl, uint64_t len)
{
    switch (tag) {
#define PARSE_CASE_(NAME, name, value) case MTSNAP_TAG_##NAME: return parse_##name(p, pl, len);
    MTSNAP_REQUIRED_RECORDS(PARSE_CASE_)
#undef PARSE_CASE_
    default: return -EINVAL; /* not reached: callers pass required tags only */
    }
}

static int required_index(uint32_t tag)
{
    for (size_t i = 0; i < NREQUIRED; i++)
        if (required_tags[i] == tag)
            return (int)i;
    return -1;
}

static int parse_header(parser_t *p)
{
    mtsnap_file_header_t h;
    size_t have = p->len < MTSNAP_MAGIC_LEN ? p->len : MTSNAP_MAGIC_LEN;
    if (memcmp(p->buf, MTSNAP_MAGIC, have) != 0)
        return fail(p, -EINVAL, "not a memtrail snapshot (bad magic)");
    if (p->len < sizeof(h))
        return truncated(p);
    memcpy(&h, p->buf, sizeof(h));
    if (h.version > MTSNAP_VERSION)
        return fail(p, -EPROTONOSUPPORT, "format version %u is newer than this memtrail supports (%d)",
                    h.version, MTSNAP_VERSION);
    if (h.version == 0)
        return fail(p, -EINVAL, "invalid format version 0");
    if (h.hdr_size != sizeof(h))
        return fail(p, -EINVAL, "file header size is %u, expected %zu", h.hdr_size, sizeof(h));
    if (h.flags != 0)   /* reserved; no CRC covers the file header */
        return fail(p, -EINVAL, "file header flags 0x%08x, not 0", h.flags);
    p->snap->version = h.version;
    return 0;
}

/* One record's header, either version's, as a v2 header (a v1 record is
 * STORED with raw_length == length). Returns its size, 0 if cut. */
static size_t record_header(const parser_t *p, uint64_t off, mtsnap_record_header_v2_t *rh)
{
    if (p->snap->version == MTSNAP_VERSION_V1) {
        mtsnap_record_header_t h1;
        if (p->len - off < sizeof(h1))
            return 0;
        memcpy(&h1, p->buf + off, sizeof(h1));
        *rh = (mtsnap_record_header_v2_t){h1.tag, h1.crc32, h1.length, h1.length,
                                          MTSNAP_CODEC_STORED, 0};
        return sizeof(h1);
    }
    if (p->len - off < sizeof(*rh))
        return 0;
    memcpy(rh, p->buf + off, sizeof(*rh));
    return sizeof(*rh);
}

static int parse_end(parser_t *p, const mtsnap_record_header_v2_t *rh, uint64_t off, uint64_t plo,
                     uint64_t records)
{
    mtsnap_end_t end;
    if (p->snap->version == MTSNAP_VERSION_V1 && rh->length != sizeof(end))
        return fail(p, -EINVAL, "END record: payload is %llu bytes, expected %zu",
                    (unsigned long long)rh->length, sizeof(end));
    if (rh->length != sizeof(end) || rh->raw_length != sizeof(end) || rh->codec != MTSNAP_CODEC_STORED)
        return fail(p, -EINVAL, "END record: payload is %llu bytes (%llu stored, codec %u), expected %zu stored",
                    (unsigned long long)rh->raw_length, (unsigned long long)rh->length, rh->codec,
                    sizeof(end));
    if (p->len - plo < sizeof(end))
        return truncated(p);
    if (mtsnap_crc32(0, p->buf + plo, sizeof(end)) != rh->crc32)
        return fail(p, -EINVAL, "END record at offset %llu: CRC mismatch", (unsigned long long)off);
    memcpy(&end, p->buf + plo, sizeof(end));
    if (end.records != records)
        return fail(p, -EINVAL, "END record: counts %llu records, the file has %llu",
                    (unsigned long long)end.records, (unsigned long long)records);
    if (end.offset != off)
        return fail(p, -EINVAL, "END record: says it is at offset %llu, it is at %llu",
                    (unsigned long long)end.offset, (unsigned long long)off);
    if (p->len - plo > sizeof(end))
        return fail(p, -EINVAL, "%llu bytes of trailing data after the END record",
                    (unsigned long long)(p->len - plo - sizeof(end)));
    return 0;
}

/* The has_<name> flag of a known optional record (MTSNAP_AFTER_RECORDS: the
 * snapshot's flags are named after the records), or NULL for another tag. */
static int *optional_seen(parser_t *p, uint32_t tag)
{
    switch (tag) {
#define SEEN_CASE_(NAME, name, value) case MTSNAP_TAG_##NAME: return &p->snap->has_##name;
    MTSNAP_AFTER_RECORDS(SEEN_CASE_)
#undef SEEN_CASE_
    default: return NULL;
    }
}

/* A known record's payload: the optional ones (PYGRAPH in either version's
 * layout); version 2 and 3 FRAMES, STACKS and STACK_STATS go through their
 * version 1 form, BLOCKS is decoded directly. */
static int parse_payload(parser_t *p, uint32_t tag, const uint8_t *pl, uint64_t len)
{
    int version1 = p->snap->version == MTSNAP_VERSION_V1;
    switch (tag) {
    case MTSNAP_TAG_LEAKS: return parse_leaks(p, pl, len);
    case MTSNAP_TAG_PYGRAPH: return version1 ? parse_pygraph(p, pl, len) : mtr_v2_pygraph(p, pl, len);
    case MTSNAP_TAG_TIMELINE: return mtr_timeline(p, pl, len);
    case MTSNAP_TAG_INLINED: return mtr_inlined(p, pl, len);
    case MTSNAP_TAG_TIMING: return parse_timing(p, pl, len);
    case MTSNAP_TAG_COSTS: return parse_costs(p, pl, len);
    case MTSNAP_TAG_SAMPLING: return parse_sampling(p, pl, len);
    default: break;
    }
    if (version1)
        return parse_record(p, tag, pl, len);
    switch (tag) {
    case MTSNAP_TAG_FRAMES:
    case MTSNAP_TAG_STACKS:
    case MTSNAP_TAG_STACK_STATS: {
        uint8_t *v1 = NULL;
        uint64_t v1len = 0;
        int rc = mtr_v2_transcode(p, tag, pl, len, &v1, &v1len);
        if (rc == 0)
            rc = parse_record(p, tag, v1, v1len);
        free(v1);
        return rc;
    }
    case MTSNAP_TAG_BLOCKS: return mtr_v2_blocks(p, pl, len);
    default: return parse_record(p, tag, pl, len);
    }
}

static int parse_all(parser_t *p)
{
    char tb[16];
    int rc = parse_header(p);
    if (rc < 0)
        return rc;
    size_t next = 0;          /* index into required_tags of the next record */
    uint64_t records = 0;     /* records before END, optional ones included */
    uint64_t off = sizeof(mtsnap_file_header_t);
    for (;;) {
        mtsnap_record_header_v2_t rh;
        size_t hl = record_header(p, off, &rh);
        if (!hl)
            return truncated(p);
        uint64_t plo = off + hl;
        if (rh.tag == MTSNAP_TAG_END) {
            if (next < NREQUIRED)
                return fail(p, -EINVAL, "END record at offset %llu before the %s record",
                            (unsigned long long)off, tag_name(required_tags[next], tb));
            return parse_end(p, &rh, off, plo, records);
        }
        if (rh.length > p->len - plo)
            return fail(p, -EINVAL, "truncated (record %s at offset %llu needs %llu bytes, %llu left)",
                        tag_name(rh.tag, tb), (unsigned long long)off,
                        (unsigned long long)rh.length, (unsigned long long)(p->len - plo));
        const uint8_t *stored = p->buf + plo;
        uint32_t crc = mtsnap_crc32(0, stored, (size_t)rh.length);
        if (crc != rh.crc32)
            return fail(p, -EINVAL, "%s record at offset %llu: CRC mismatch (stored 0x%08x, computed 0x%08x)",
                        tag_name(rh.tag, tb), (unsigned long long)off, rh.crc32, crc);
        if (rh.reserved != 0)   /* the header's one field no other check covers */
            return fail(p, -EINVAL, "%s record at offset %llu: reserved field 0x%08x, not 0",
                        tag_name(rh.tag, tb), (unsigned long long)off, rh.reserved);
        int idx = required_index(rh.tag);
        const int *seen = optional_seen(p, rh.tag);
        int known = idx >= 0 || seen;
        if (idx < 0) {
            if (!(rh.tag & MTSNAP_TAG_OPTIONAL))
                return fail(p, -EINVAL, "unknown mandatory record %s at offset %llu",
                            tag_name(rh.tag, tb), (unsigned long long)off);
            if (seen)   /* named by its four letters, the optional bit set aside */
                rc = optional_place(p, tag_name(rh.tag & ~MTSNAP_TAG_OPTIONAL, tb), *seen, next);
            /* Other optional records: skipped, not even decompressed. */
        } else if ((size_t)idx < next) {
            return fail(p, -EINVAL, "duplicate %s record at offset %llu", tag_name(rh.tag, tb),
                        (unsigned long long)off);
        } else if ((size_t)idx > next) {
            char eb[16];
            return fail(p, -EINVAL, "%s record at offset %llu out of order (expected %s)",
                        tag_name(rh.tag, tb), (unsigned long long)off,
                        tag_name(required_tags[next], eb));
        }
        if (rc < 0)
            return rc;
        if (known) {
            const uint8_t *pl = stored;
            uint8_t *owned = NULL;
            if (p->snap->version != MTSNAP_VERSION_V1 &&
                (rc = mtr_v2_inflate(p, tag_name(rh.tag, tb), off, &rh, stored, &pl, &owned)) < 0)
                return rc;
            rc = parse_payload(p, rh.tag, pl, rh.raw_length);
            free(owned);
            if (rc < 0)
                return rc;
            if (idx >= 0)
                next++;
        }
        records++;
        off = plo + rh.length;
    }
}

int mta_snapshot_parse(const void *buf, size_t len, const char *name, mta_snapshot_t **out,
                       char *err, size_t errlen)
{
    parser_t p = { .buf = buf, .len = len, .name = name ? name : "(memory)", .err = err,
                   .errlen = errlen };
    int rc;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    p.snap = calloc(1, sizeof(*p.snap));
    p.priv = calloc(1, sizeof(*p.priv));
    if (!p.snap || !p.priv) {
        free(p.priv);
        free(p.snap);
        return fail(&p, -ENOMEM, "out of memory");
    }
    p.snap->priv = p.priv;
    p.snap->path = strdup(p.name);
    if (!p.snap->path) {
        rc = fail(&p, -ENOMEM, "out of memory");
        goto fail;
    }
    rc = parse_all(&p);
    ZSTD_freeDCtx(p.dctx);
    if (rc < 0)
        goto fail;
    *out = p.snap;
    return 0;
fail:
    mta_snapshot_free(p.snap);
    return rc;
}

/* Reads a whole file; regular files are read at their size, others (pipes)
 * grow the buffer as data arrives. */
static int read_file(int fd, uint8_t **out, size_t *outlen)
{
    struct stat st;
    size_t cap = 65536, len = 0;
    uint8_t *buf;
    int rc;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (S_ISREG(st.st_mode))
        cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *out = buf;
    *outlen = len;
    return 0;
fail:
    free(buf);
    return rc;
}

int mta_snapshot_load(const char *path, mta_snapshot_t **out, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = read_file(fd, &buf, &len);
    close(fd);
    if (rc < 0)
        goto fail;
    rc = mta_snapshot_parse(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
fail:
    if (err && errlen)
        snprintf(err, errlen, "snapshot: %s: %s", path, strerror(-rc));
    return rc;
}

void mta_snapshot_free(mta_snapshot_t *snap)
{
    if (!snap)
        return;
    reader_priv_t *priv = snap->priv;
    if (priv) {
        free(priv->string_blob);
        free(priv->stack_frames);
        free(priv);
    }
    free(snap->path);
    free(snap->strings);
    free(snap->string_len);
    free(snap->modules);
    free(snap->frames);
    free(snap->stacks);
    free(snap->stats);
    free(snap->blocks);
    free(snap->leak_kind);
    free(snap->pyobjs);
    free(snap->pyedges);
    free(snap->pyedge_first);
    free(snap->timeline);
    free(snap);
}

/* Walks the record headers of an open file (payloads skipped) to the first
 * record `tag`: 0 with its header, its header's size and its payload's
 * offset; -ENOENT at END without one; -EINVAL when the file is not a
 * snapshot or is cut. */
static int find_record(int fd, uint32_t tag, mtsnap_record_header_v2_t *rh, size_t *hl,
                       uint64_t *payload)
{
    mtsnap_file_header_t fh;
    if (pread(fd, &fh, sizeof(fh), 0) != (ssize_t)sizeof(fh) ||
        memcmp(fh.magic, MTSNAP_MAGIC, MTSNAP_MAGIC_LEN) != 0 || fh.hdr_size != sizeof(fh) ||
        fh.version < MTSNAP_VERSION_V1 || fh.version > MTSNAP_VERSION)
        return -EINVAL;
    *hl = fh.version == MTSNAP_VERSION_V1 ? sizeof(mtsnap_record_header_t) : sizeof(*rh);
    for (uint64_t off = sizeof(fh);;) {
        *rh = (mtsnap_record_header_v2_t){0};
        if (pread(fd, rh, *hl, (off_t)off) != (ssize_t)*hl)
            return -EINVAL;
        if (fh.version == MTSNAP_VERSION_V1)   /* tag, crc32, length: the same first 16 bytes */
            rh->raw_length = rh->length, rh->codec = MTSNAP_CODEC_STORED;
        if (rh->tag == tag) {
            *payload = off + *hl;
            return 0;
        }
        if (rh->tag == MTSNAP_TAG_END)
            return -ENOENT;
        if (rh->length > UINT64_MAX - off - *hl)
            return -EINVAL;
        off += *hl + rh->length;
    }
}

/* A small record the writer stores uncompressed (TIMING, COSTS), read by
 * its header alone: exactly `size` bytes, its CRC checked. */
static int stored_record(const char *path, uint32_t tag, void *out, size_t size)
{
    mtsnap_record_header_v2_t rh;
    uint64_t buf[8];
    size_t hl;
    uint64_t at;
    if (size > sizeof(buf))
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = find_record(fd, tag, &rh, &hl, &at);
    if (rc == 0 && (rh.length != size || rh.codec != MTSNAP_CODEC_STORED ||
                    pread(fd, buf, size, (off_t)at) != (ssize_t)size ||
                    mtsnap_crc32(0, buf, size) != rh.crc32))
        rc = -EINVAL;
    close(fd);
    if (rc == 0)
        memcpy(out, buf, size);
    return rc;
}

int mta_snapshot_timing(const char *path, mtsnap_timing_t *out)
{
    return stored_record(path, MTSNAP_TAG_TIMING, out, sizeof(*out));
}

int mta_snapshot_costs(const char *path, mtsnap_costs_t *out)
{
    return stored_record(path, MTSNAP_TAG_COSTS, out, sizeof(*out));
}

int mta_snapshot_record_size(const char *path, uint32_t tag, uint64_t *bytes)
{
    mtsnap_record_header_v2_t rh;
    size_t hl;
    uint64_t at;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = find_record(fd, tag, &rh, &hl, &at);
    close(fd);
    if (rc == 0)
        *bytes = hl + rh.length;
    return rc;
}

