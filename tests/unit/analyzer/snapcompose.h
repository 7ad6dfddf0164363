/* Test-side snapshot composer: builds *.mtsnap images in memory (correct
 * CRCs and END record) so the reader and report tests control every byte. */
#ifndef MT_SNAPCOMPOSE_H
#define MT_SNAPCOMPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "memtrail_format.h"

/* A growing byte buffer holding a file image. Records are written in the
 * layout of `version` (0 or 1: version 1; 2 or 3: that version, compressed
 * with `zstd` when not NULL, else stored; version 3's STACKS as nodes
 * without parents); mtc_header() sets it. */
struct mtf_zstd;
typedef struct mtc_buf {
    uint8_t *data;
    size_t len, cap;
    uint64_t records; /* records appended since the header */
    uint16_t version;
    struct mtf_zstd *zstd;
    size_t store_below;   /* the encoder's: smaller records stored (0: none) */
} mtc_buf_t;

void mtc_put(mtc_buf_t *b, const void *p, size_t n);
void mtc_header(mtc_buf_t *b, uint16_t version);          /* magic + header */
/* Appends a record with the payload's correct CRC. */
void mtc_record(mtc_buf_t *b, uint32_t tag, const void *payload, size_t len);
void mtc_end(mtc_buf_t *b);                               /* a correct END */
void mtc_buf_free(mtc_buf_t *b);

/* A logical snapshot; mtc_payload() serializes its records (through the
 * format library's encoder). */
typedef struct mtc_snap {
    mtsnap_meta_t meta;
    mtsnap_totals_t totals;
    uint32_t nstrings;
    char **strings;
    uint32_t *string_len;
    uint32_t nmodules;
    mtsnap_module_t *modules;
    uint32_t nframes;
    mtsnap_frame_t *frames;
    mtc_buf_t stacks;     /* serialized entries (depth + frames) */
    uint32_t nstacks;
    uint32_t nstats;
    mtsnap_stack_stat_t *stats;
    uint64_t nblocks;
    mtsnap_block_t *blocks;
    /* PYGRAPH (written when has_pygraph): objects by address, edges as
     * referent addresses, object i's nrefs at a time. */
    int has_pygraph;
    mtsnap_pygraph_header_t pygraph;
    mtsnap_pyobj_t *pyobjs;
    uint64_t *pyedges;
} mtc_snap_t;

/* Starts a snapshot: pid 4242, ppid 1, seq 1, trigger exit, string 0 "". */
void mtc_snap_init(mtc_snap_t *s);
void mtc_snap_free(mtc_snap_t *s);
uint32_t mtc_strn(mtc_snap_t *s, const char *p, size_t n); /* interned */
uint32_t mtc_str(mtc_snap_t *s, const char *p);
uint32_t mtc_module(mtc_snap_t *s, uint64_t start, uint64_t end, uint64_t bias, const char *path);
uint32_t mtc_frame(mtc_snap_t *s, uint64_t pc, uint32_t module, const char *function,
                   const char *file, uint32_t line);
uint32_t mtc_stack(mtc_snap_t *s, uint32_t depth, const uint32_t *frames);
void mtc_stat(mtc_snap_t *s, uint32_t stack, uint64_t live_bytes, uint64_t live_blocks,
              uint64_t alloc_bytes, uint64_t alloc_blocks, uint64_t peak_bytes,
              uint64_t peak_blocks);
void mtc_block(mtc_snap_t *s, uint64_t address, uint64_t size, uint32_t stack);
/* Appends an object (before any edge of a later object) and its edges. */
void mtc_pyobj(mtc_snap_t *s, const mtsnap_pyobj_t *o, const uint64_t *edges);

/* The payload of record `tag` (a required tag) into *out (reset first), in
 * out->version's layout (uncompressed). */
void mtc_payload(const mtc_snap_t *s, uint32_t tag, mtc_buf_t *out);
/* The whole valid file: header, the eight records in order, END, of
 * out->version (version 1 by default). */
void mtc_compose(const mtc_snap_t *s, mtc_buf_t *out);
/* The same with extra records (optional ones: LEAKS, PYGRAPH) after BLOCKS. */
typedef struct mtc_extra {
    uint32_t tag;
    const void *payload;
    size_t len;
} mtc_extra_t;
void mtc_compose_with(const mtc_snap_t *s, const mtc_extra_t *extra, size_t nextra, mtc_buf_t *out);
/* The same file as mtc_compose, its PYGRAPH record made first by an encoder
 * of its own and spliced in its place (mtf_enc_splice), as the preload's
 * exit snapshot does. */
void mtc_compose_made(const mtc_snap_t *s, mtc_buf_t *out);

#endif /* MT_SNAPCOMPOSE_H */
