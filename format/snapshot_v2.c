/*
 * The version 2 and 3 side of the snapshot reader (include/memtrail_format.h,
 * docs/format.md): bounded zstd decompression of a record, and the varint
 * payloads of FRAMES, STACKS (version 3: a tree, expanded), STACK_STATS
 * (transcoded into their version 1 form, which snapshot.c checks as it
 * checks a version 1 file), BLOCKS and PYGRAPH (decoded straight into the
 * snapshot, then checked by snapshot.c's mtr_check_blocks /
 * mtr_check_pygraph), and TIMELINE (the same payload in every version).
 *
 * Hostile input: the stored bytes passed their CRC, nothing else is
 * trusted. A declared raw length above MTSNAP_ZSTD_MAX_RATIO times the
 * stored length is refused before anything is allocated; the output buffer
 * grows with what the frame actually produces (never more than twice it),
 * and the frame must end exactly at the declared length and at the end of
 * the stored bytes. Every count is compared with the payload bytes left
 * (each element takes at least one byte a field) before it sizes an
 * allocation, so memory stays within a small multiple of the decompressed
 * payload. Every varint is bounds-checked (at most 10 bytes, within the
 * record, fitting in 64 bits; u32 fields in 32).
 */
#include "snapread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

int mtr_v2_inflate(parser_t *p, const char *tag, uint64_t off, const mtsnap_record_header_v2_t *rh,
                   const uint8_t *stored, const uint8_t **out, uint8_t **owned)
{
    uint64_t raw = rh->raw_length, len = rh->length;
    *owned = NULL;
    if (rh->codec == MTSNAP_CODEC_STORED) {
        if (raw != len)
            return mtr_fail(p, -EINVAL, "%s record at offset %llu: stored, but %llu raw bytes declared for %llu stored",
                            tag, (unsigned long long)off, (unsigned long long)raw,
                            (unsigned long long)len);
        *out = stored;
        return 0;
    }
    if (rh->codec != MTSNAP_CODEC_ZSTD)
        return mtr_fail(p, -EINVAL, "%s record at offset %llu: unknown codec %u", tag,
                        (unsigned long long)off, rh->codec);
    if (raw / MTSNAP_ZSTD_MAX_RATIO > len || raw >= SIZE_MAX / 2)
        return mtr_fail(p, -EINVAL, "%s record at offset %llu: %llu raw bytes cannot come from %llu compressed bytes (more than %u:1)",
                        tag, (unsigned long long)off, (unsigned long long)raw,
                        (unsigned long long)len, MTSNAP_ZSTD_MAX_RATIO);
    if (!p->dctx && !(p->dctx = ZSTD_createDCtx()))
        return mtr_fail(p, -ENOMEM, "out of memory");
    ZSTD_DCtx_reset(p->dctx, ZSTD_reset_session_only);
    /* One spare byte: output beyond raw means the length lies. */
    size_t want = (size_t)raw + 1, cap = want < (1u << 20) ? want : (1u << 20);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return mtr_fail(p, -ENOMEM, "out of memory");
    ZSTD_inBuffer in = {stored, (size_t)len, 0};
    ZSTD_outBuffer o = {buf, cap, 0};
    int rc = 0;
    for (;;) {
        size_t r = ZSTD_decompressStream(p->dctx, &o, &in);
        if (ZSTD_isError(r)) {
            rc = mtr_fail(p, -EINVAL, "%s record at offset %llu: corrupt compressed data (zstd: %s)",
                          tag, (unsigned long long)off, ZSTD_getErrorName(r));
            break;
        }
        if (o.pos > raw) {
            rc = mtr_fail(p, -EINVAL, "%s record at offset %llu: decompresses to more than the %llu bytes declared",
                          tag, (unsigned long long)off, (unsigned long long)raw);
            break;
        }
        if (r == 0) {   /* the frame is complete */
            if (in.pos != in.size)
                rc = mtr_fail(p, -EINVAL, "%s record at offset %llu: %zu bytes after the compressed frame",
                              tag, (unsigned long long)off, in.size - in.pos);
            else if (o.pos != raw)
                rc = mtr_fail(p, -EINVAL, "%s record at offset %llu: decompresses to %zu bytes, %llu declared",
                              tag, (unsigned long long)off, o.pos, (unsigned long long)raw);
            break;
        }
        if (o.pos == o.size) {   /* grow with what the frame produced */
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                rc = mtr_fail(p, -ENOMEM, "out of memory");
                break;
            }
            buf = nb;
            cap = ncap;
            o.dst = buf;
            o.size = cap;
        } else if (in.pos == in.size) {
            rc = mtr_fail(p, -EINVAL, "%s record at offset %llu: compressed data ends early (after %zu of %llu bytes)",
                          tag, (unsigned long long)off, o.pos, (unsigned long long)raw);
            break;
        }
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *owned = buf;
    return 0;
}

/* ---- varints ---- */
typedef struct rd {
    parser_t *p;
    const uint8_t *b;
    uint64_t off, len;
    const char *what;      /* "BLKS record" */
} rd_t;

static int overrun(rd_t *r, int past_end)
{
    return mtr_fail(r->p, -EINVAL, "%s: malformed varint at payload offset %llu (%s)", r->what,
                    (unsigned long long)r->off,
                    past_end ? "past the end of the record" : "longer than 10 bytes or over 64 bits");
}

static int get(rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned i = 0, shift = 0; i < MTSNAP_VARINT_MAX; i++, shift += 7) {
        if (r->off + i >= r->len)
            return overrun(r, 1);
        uint8_t c = r->b[r->off + i];
        if (i == MTSNAP_VARINT_MAX - 1 && c > 1)
            return overrun(r, 0);
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            r->off += i + 1;
            *v = x;
            return 0;
        }
    }
    return overrun(r, 0);   /* not reached: the 10th byte is 0 or 1 */
}

static int get32(rd_t *r, const char *field, uint32_t *v)
{
    uint64_t x;
    int rc = get(r, &x);
    if (rc < 0)
        return rc;
    if (x > UINT32_MAX)
        return mtr_fail(r->p, -EINVAL, "%s: %s %llu does not fit in 32 bits", r->what, field,
                        (unsigned long long)x);
    *v = (uint32_t)x;
    return 0;
}

/* A count of elements taking at least `min` bytes each: no more than fit. */
static int get_count(rd_t *r, unsigned min, uint64_t limit, uint64_t *n)
{
    int rc = get(r, n);
    if (rc < 0)
        return rc;
    if (*n > (r->len - r->off) / min || *n > limit)
        return mtr_fail(r->p, -EINVAL, "%s: %llu entries cannot fit in the %llu bytes left", r->what,
                        (unsigned long long)*n, (unsigned long long)(r->len - r->off));
    return 0;
}

static int rest(rd_t *r)
{
    if (r->off != r->len)
        return mtr_fail(r->p, -EINVAL, "%s: %llu bytes left after the last entry", r->what,
                        (unsigned long long)(r->len - r->off));
    return 0;
}

static uint64_t unzz(uint64_t v)
{
    return (v >> 1) ^ (0 - (v & 1));
}

/* ---- FRAMES, STACKS, STACK_STATS: into their version 1 payload ---- */
static int frames(rd_t *r, uint8_t **v1, uint64_t *v1len)
{
    uint64_t n, pc = 0;
    int rc = get_count(r, 7, UINT32_MAX, &n);
    if (rc < 0)
        return rc;
    *v1len = 4 + n * sizeof(mtsnap_frame_t);
    uint8_t *d = *v1 = malloc((size_t)*v1len);
    if (!d)
        return mtr_fail(r->p, -ENOMEM, "out of memory");
    uint32_t count = (uint32_t)n;
    memcpy(d, &count, 4);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t dpc, module;
        mtsnap_frame_t f = {0};
        if ((rc = get(r, &dpc)) < 0 || (rc = get(r, &f.offset)) < 0 || (rc = get(r, &module)) < 0 ||
            (rc = get32(r, "function", &f.function)) < 0 || (rc = get32(r, "file", &f.file)) < 0 ||
            (rc = get32(r, "line", &f.line)) < 0 || (rc = get32(r, "kind", &f.kind)) < 0)
            return rc;
        if (module > UINT32_MAX)
            return mtr_fail(r->p, -EINVAL, "%s: frame %llu: module %llu does not fit in 32 bits",
                            r->what, (unsigned long long)i, (unsigned long long)module - 1);
        pc += unzz(dpc);
        f.pc = pc;
        f.module = module ? (uint32_t)(module - 1) : MTSNAP_NONE;
        memcpy(d + 4 + i * sizeof(f), &f, sizeof(f));
    }
    return rest(r);
}

static int stacks(rd_t *r, uint8_t **v1, uint64_t *v1len)
{
    uint64_t n;
    int rc = get_count(r, 1, UINT32_MAX, &n);
    if (rc < 0)
        return rc;
    /* Every u32 of the v1 form comes from a varint of at least one byte. */
    uint64_t cap = 4 + 4 * (r->len - r->off);
    uint8_t *d = *v1 = malloc((size_t)cap);
    if (!d)
        return mtr_fail(r->p, -ENOMEM, "out of memory");
    uint32_t count = (uint32_t)n;
    memcpy(d, &count, 4);
    uint64_t o = 4;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t depth = 0, f = 0;
        if ((rc = get32(r, "stack depth", &depth)) < 0)
            return rc;
        memcpy(d + o, &depth, 4);
        o += 4;
        for (uint32_t j = 0; j < depth; j++) {
            if ((rc = get32(r, "frame index", &f)) < 0)
                return rc;
            memcpy(d + o, &f, 4);
            o += 4;
        }
    }
    *v1len = o;
    return rest(r);
}

/* Version 3: the tree of nodes (include/memtrail_format.h), expanded into
 * the version 1 form of its stacks. The tree is read first (each node's
 * parent, own frames and depth); the expansion's size is known before it is
 * allocated and bounded (MTSNAP_V3_MAX_FRAMES, or 256 frames a payload
 * byte). */
static int stack_tree(rd_t *r, uint8_t **v1, uint64_t *v1len)
{
    uint64_t n;
    /* A node takes at least 2 bytes. */
    int rc = get_count(r, 2, UINT32_MAX, &n);
    if (rc < 0)
        return rc;
    uint32_t *parent = malloc((n ? n : 1) * sizeof(*parent));
    uint32_t *own = malloc((n ? n : 1) * sizeof(*own));
    uint32_t *depth = malloc((n ? n : 1) * sizeof(*depth));
    uint64_t *at = malloc((n ? n : 1) * sizeof(*at));   /* payload offset of its own frames */
    uint8_t *is_stack = malloc(n ? n : 1);
    uint64_t stacks = 0, frames = 0;
    uint64_t limit = 256 * r->len > MTSNAP_V3_MAX_FRAMES ? 256 * r->len : MTSNAP_V3_MAX_FRAMES;
    if (!parent || !own || !depth || !at || !is_stack) {
        rc = mtr_fail(r->p, -ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pa, ks;
        if ((rc = get(r, &pa)) < 0 || (rc = get(r, &ks)) < 0)
            goto out;
        if (pa > i) {
            rc = mtr_fail(r->p, -EINVAL, "%s: node %llu: parent %llu is not an earlier node",
                          r->what, (unsigned long long)i, (unsigned long long)pa - 1);
            goto out;
        }
        uint64_t k = ks >> 1, d = k + (pa ? depth[pa - 1] : 0);
        is_stack[i] = ks & 1;
        if (!k && !is_stack[i]) {
            rc = mtr_fail(r->p, -EINVAL, "%s: node %llu has no frame of its own", r->what,
                          (unsigned long long)i);
            goto out;
        }
        if (d > MTSNAP_V3_MAX_DEPTH) {
            rc = mtr_fail(r->p, -EINVAL, "%s: node %llu is %llu frames deep (at most %u)", r->what,
                          (unsigned long long)i, (unsigned long long)d, MTSNAP_V3_MAX_DEPTH);
            goto out;
        }
        parent[i] = (uint32_t)pa;
        own[i] = (uint32_t)k;
        depth[i] = (uint32_t)d;
        at[i] = r->off;
        for (uint64_t j = 0; j < k; j++) {
            uint32_t f;
            if ((rc = get32(r, "frame index", &f)) < 0)
                goto out;
        }
        if (is_stack[i]) {
            stacks++;
            frames += d;
            if (frames > limit) {
                rc = mtr_fail(r->p, -EINVAL, "%s: the stacks expand to more than %llu frames",
                              r->what, (unsigned long long)limit);
                goto out;
            }
        }
    }
    if ((rc = rest(r)) < 0)
        goto out;
    uint64_t len = 4 + 4 * (stacks + frames);
    uint8_t *d = *v1 = malloc((size_t)len);
    if (!d) {
        rc = mtr_fail(r->p, -ENOMEM, "out of memory");
        goto out;
    }
    uint32_t count = (uint32_t)stacks;
    memcpy(d, &count, 4);
    uint64_t o = 4;
    for (uint64_t i = 0; i < n; i++) {
        if (!is_stack[i])
            continue;
        memcpy(d + o, &depth[i], 4);
        o += 4;
        /* Its own frames, then each ancestor's: all read once before. */
        for (uint64_t x = i + 1; x; x = parent[x - 1]) {
            rd_t fr = {r->p, r->b, at[x - 1], r->len, r->what};
            for (uint32_t j = 0; j < own[x - 1]; j++) {
                uint32_t f = 0;
                get32(&fr, "frame index", &f);
                memcpy(d + o, &f, 4);
                o += 4;
            }
        }
    }
    *v1len = o;
out:
    free(parent);
    free(own);
    free(depth);
    free(at);
    free(is_stack);
    return rc;
}

static int stack_stats(rd_t *r, uint8_t **v1, uint64_t *v1len)
{
    uint64_t n;
    int rc = get_count(r, 7, UINT32_MAX, &n);
    if (rc < 0)
        return rc;
    *v1len = 4 + n * sizeof(mtsnap_stack_stat_t);
    uint8_t *d = *v1 = malloc((size_t)*v1len);
    if (!d)
        return mtr_fail(r->p, -ENOMEM, "out of memory");
    uint32_t count = (uint32_t)n;
    memcpy(d, &count, 4);
    for (uint64_t i = 0; i < n; i++) {
        mtsnap_stack_stat_t s = {0};
        if ((rc = get32(r, "stack", &s.stack)) < 0 || (rc = get(r, &s.live_bytes)) < 0 ||
            (rc = get(r, &s.live_blocks)) < 0 || (rc = get(r, &s.alloc_bytes)) < 0 ||
            (rc = get(r, &s.alloc_blocks)) < 0 || (rc = get(r, &s.peak_bytes)) < 0 ||
            (rc = get(r, &s.peak_blocks)) < 0)
            return rc;
        memcpy(d + 4 + i * sizeof(s), &s, sizeof(s));
    }
    return rest(r);
}

int mtr_v2_transcode(parser_t *p, uint32_t tag, const uint8_t *pl, uint64_t len, uint8_t **v1,
                     uint64_t *v1len)
{
    rd_t r = {p, pl, 0, len, NULL};
    switch (tag) {
    case MTSNAP_TAG_FRAMES: r.what = "FRMS record"; return frames(&r, v1, v1len);
    case MTSNAP_TAG_STACKS:
        r.what = "STKS record";
        return p->snap->version == MTSNAP_VERSION_V2 ? stacks(&r, v1, v1len)
                                                     : stack_tree(&r, v1, v1len);
    default: r.what = "STAT record"; return stack_stats(&r, v1, v1len);
    }
}

/* An address step of BLOCKS or PYGRAPH: the first is the address, the next
 * ones at least 1 without passing 2^64. */
static int step(rd_t *r, const char *kind, uint64_t i, uint64_t *addr)
{
    uint64_t d;
    int rc = get(r, &d);
    if (rc < 0)
        return rc;
    if (i > 0 && (d == 0 || d > UINT64_MAX - *addr))
        return mtr_fail(r->p, -EINVAL, "%s: %s %llu is not above the previous one (not sorted by address)",
                        r->what, kind, (unsigned long long)i);
    *addr = i ? *addr + d : d;
    return 0;
}

int mtr_v2_blocks(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    rd_t r = {p, pl, 0, len, "BLKS record"};
    uint64_t n, addr = 0;
    int rc = get_count(&r, 4, SIZE_MAX / sizeof(mtsnap_block_t), &n);
    if (rc < 0)
        return rc;
    s->blocks = malloc(n ? (size_t)n * sizeof(*s->blocks) : 1);
    if (!s->blocks)
        return mtr_fail(p, -ENOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        mtsnap_block_t *b = &s->blocks[i];
        b->counter = 0;
        if ((rc = step(&r, "block", i, &addr)) < 0 || (rc = get(&r, &b->size)) < 0 ||
            (rc = get32(&r, "stack", &b->stack)) < 0 || (rc = get32(&r, "domain", &b->domain)) < 0)
            return rc;
        b->address = addr;
        s->nblocks = i + 1;
    }
    if ((rc = rest(&r)) < 0)
        return rc;
    s->nblocks = n;
    return mtr_check_blocks(p);
}

int mtr_v2_pygraph(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    mtsnap_pygraph_header_t h;
    if (len < sizeof(h))
        return mtr_fail(p, -EINVAL, "PYGR record: payload of %llu bytes has no header",
                        (unsigned long long)len);
    memcpy(&h, pl, sizeof(h));
    rd_t r = {p, pl, sizeof(h), len, "PYGR record"};
    /* An object takes at least 6 bytes, an edge 1. */
    uint64_t left = len - sizeof(h);
    if (h.objects > left / 6 || h.edges > left - (uint64_t)h.objects * 6)
        return mtr_fail(p, -EINVAL, "PYGR record: payload of %llu bytes cannot hold %u objects and %llu edges",
                        (unsigned long long)len, h.objects, (unsigned long long)h.edges);
    s->pyobjs = malloc(h.objects ? (size_t)h.objects * sizeof(*s->pyobjs) : 1);
    s->pyedges = malloc(h.edges ? (size_t)h.edges * 8 : 1);
    s->pyedge_first = malloc(((size_t)h.objects + 1) * sizeof(*s->pyedge_first));
    if (!s->pyobjs || !s->pyedges || !s->pyedge_first)
        return mtr_fail(p, -ENOMEM, "out of memory");
    uint64_t addr = 0, rc64, nrefs = 0;
    int rc;
    for (uint32_t i = 0; i < h.objects; i++) {
        mtsnap_pyobj_t *o = &s->pyobjs[i];
        *o = (mtsnap_pyobj_t){0};
        if ((rc = step(&r, "object", i, &addr)) < 0 || (rc = get(&r, &o->size)) < 0 ||
            (rc = get(&r, &rc64)) < 0 || (rc = get32(&r, "type", &o->type)) < 0 ||
            (rc = get32(&r, "flags", &o->flags)) < 0 || (rc = get32(&r, "nrefs", &o->nrefs)) < 0)
            return rc;
        o->address = addr;
        o->refcount = (int64_t)unzz(rc64);
        nrefs += o->nrefs;
    }
    if (nrefs != h.edges)
        return mtr_fail(p, -EINVAL, "PYGR record: objects hold %llu references, the record has %llu edges",
                        (unsigned long long)nrefs, (unsigned long long)h.edges);
    uint64_t e = 0, prev_out = 0;
    for (uint32_t i = 0; i < h.objects; i++) {
        for (uint32_t k = 0; k < s->pyobjs[i].nrefs; k++, e++) {
            uint64_t v;
            if ((rc = get(&r, &v)) < 0)
                return rc;
            if (v == 0) {
                if ((rc = get(&r, &v)) < 0)
                    return rc;
                prev_out += unzz(v);
                s->pyedges[e] = prev_out;
                continue;
            }
            uint64_t to = i + unzz(v - 1);   /* wraps below 0: caught as too large */
            if (to >= h.objects)
                return mtr_fail(p, -EINVAL, "PYGR record: object %u: edge %u names object %lld (%u objects)",
                                i, k, (long long)to, h.objects);
            s->pyedges[e] = s->pyobjs[to].address;
        }
    }
    if ((rc = rest(&r)) < 0)
        return rc;
    return mtr_check_pygraph(p, &h);
}

/* TIMELINE: the same varint payload in both versions. */
int mtr_inlined(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    rd_t r = {p, pl, 0, len, "INLN record"};
    uint64_t n, f = 0;
    int rc;
    if ((rc = get_count(&r, 1, s->nframes, &n)) < 0)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t step;
        if ((rc = get(&r, &step)) < 0)
            return rc;
        if ((i > 0 && step == 0) || step >= s->nframes || (f += step) >= s->nframes)
            return mtr_fail(p, -EINVAL, "INLN record: entry %llu: frame index out of range or not increasing",
                            (unsigned long long)i);
        if (s->frames[f].kind != MTSNAP_FRAME_NATIVE)
            return mtr_fail(p, -EINVAL, "INLN record: frame %llu is not a native frame",
                            (unsigned long long)f);
        s->frames[f].inlined = 1;
    }
    if ((rc = rest(&r)) < 0)
        return rc;
    /* Every stack goes on from an inlined frame to the function it was
     * inlined into, at the same pc: the exports rely on it. */
    for (uint32_t k = 0; k < s->nstacks; k++) {
        const mta_stack_t *st = &s->stacks[k];
        for (uint32_t i = 0; i < st->depth; i++) {
            const mta_frame_t *fr = &s->frames[st->frames[i]];
            if (fr->inlined && (i + 1 == st->depth || s->frames[st->frames[i + 1]].pc != fr->pc ||
                                s->frames[st->frames[i + 1]].kind != MTSNAP_FRAME_NATIVE))
                return mtr_fail(p, -EINVAL, "INLN record: stack %u: inlined frame %u is not followed "
                                "by a frame at its pc", k, st->frames[i]);
        }
    }
    s->ninlined = (uint32_t)n;
    s->has_inlined = 1;
    return 0;
}

int mtr_timeline(parser_t *p, const uint8_t *pl, uint64_t len)
{
    mta_snapshot_t *s = p->snap;
    rd_t r = {p, pl, 0, len, "TMLN record"};
    uint64_t step_ns, n;
    int rc;
    /* A point takes at least 4 bytes. */
    if ((rc = get(&r, &step_ns)) < 0 ||
        (rc = get_count(&r, 4, SIZE_MAX / sizeof(*s->timeline), &n)) < 0)
        return rc;
    s->timeline = malloc(n ? (size_t)n * sizeof(*s->timeline) : 1);
    if (!s->timeline)
        return mtr_fail(p, -ENOMEM, "out of memory");
    mta_timeline_point_t q = {0};
    for (uint64_t i = 0; i < n; i++) {
        uint64_t dt, dh, db, dr;
        if ((rc = get(&r, &dt)) < 0 || (rc = get(&r, &dh)) < 0 || (rc = get(&r, &db)) < 0 ||
            (rc = get(&r, &dr)) < 0)
            return rc;
        if (i > 0 && (dt == 0 || dt > UINT64_MAX - q.t_ns))
            return mtr_fail(p, -EINVAL, "TMLN record: point %llu is not after the previous one",
                            (unsigned long long)i);
        q.t_ns += dt;
        q.heap_bytes += unzz(dh);
        q.heap_blocks += unzz(db);
        q.rss_bytes += unzz(dr);
        s->timeline[i] = q;
    }
    if ((rc = rest(&r)) < 0)
        return rc;
    s->timeline_step_ns = step_ns;
    s->ntimeline = n;
    s->has_timeline = 1;
    return 0;
}
