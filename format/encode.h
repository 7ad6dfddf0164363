/*
 * The snapshot encoder: writes include/memtrail_format.h files through a
 * byte sink.
 *
 * Invariants: the encoder keeps the file offset and the open record's CRC
 * itself, so every record header it writes holds the CRC and length of the
 * payload bytes that followed it, and END counts the records written and
 * names its own offset. A record header is written as zeros first and
 * patched when the record ends (payloads are streamed, their length is not
 * known in advance). Errors are sticky: after the first one nothing more is
 * asked of the sink and mtf_enc_close() returns it (a negative errno). The
 * encoder allocates nothing; the sinks below say what they allocate.
 *
 * Versions: the encoder writes version 2 (MTSNAP_VERSION) unless
 * mtf_enc_header() was given 1 (the tests write v1 files that way). The
 * record-specific calls below (mtf_enc_uint, _frames, _stack_stat,
 * _blocks_begin/_block, _pygraph_begin/_pyobj/_pyedge) write the layout of
 * that version, so one payload writer serves both. Version 2 records are
 * compressed when the encoder has an mtf_zstd_t (mtf_enc_codec()): payload
 * bytes are staged in its input buffer and compressed 128 KiB at a time as
 * one zstd frame per record; the record's CRC covers the compressed bytes.
 * Without one, version 2 records are stored (codec 0).
 *
 * Ownership: the caller creates the mtf_zstd_t (mtf_zstd_new: an
 * allocation of two 128 KiB buffers; the zstd context is made when a record
 * first needs it, and a snapshot whose records are all stored never asks
 * for libzstd), may reuse it for any number of files, one encoder at a time
 * (it holds one record's stream), and frees it with mtf_zstd_free().
 *
 * mtf_encode() writes a whole file in the order of the record lists of
 * memtrail_format.h, one callback per record; the lower-level calls exist
 * for the tests, which compose broken files on purpose.
 */
#ifndef MTF_ENCODE_H
#define MTF_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "memtrail_format.h"

/* A byte sink. write appends; patch overwrites bytes written before (a
 * record header); close flushes and releases what the sink holds. Each
 * returns 0 or a negative errno. */
typedef struct mtf_sink mtf_sink_t;
struct mtf_sink {
    int (*write)(mtf_sink_t *sink, const void *buf, size_t len);
    int (*patch)(mtf_sink_t *sink, uint64_t offset, const void *buf, size_t len);
    int (*close)(mtf_sink_t *sink);
};

/* File sink: a 64 KiB buffer in front of fd, which the sink writes from its
 * offset 0 on (a new file). patch overwrites bytes still in the buffer in
 * place, else flushes and pwrite()s: a small file is one write(2). Makes no
 * allocation (the preload's writer allocates the struct itself); close
 * flushes and closes fd. */
#define MTF_FILE_SINK_BUF (1u << 16)
typedef struct mtf_file_sink {
    mtf_sink_t sink;
    int fd;
    int err;               /* first -errno */
    size_t len;            /* bytes in buf */
    uint64_t flushed;      /* bytes written to fd before buf's first */
    uint8_t buf[MTF_FILE_SINK_BUF];
} mtf_file_sink_t;
void mtf_file_sink_init(mtf_file_sink_t *s, int fd);

/* Memory sink: a buffer grown with realloc() (data, len, cap may start with
 * bytes already there; the caller owns data, close keeps it). */
typedef struct mtf_mem_sink {
    mtf_sink_t sink;
    uint8_t *data;
    size_t len, cap;
} mtf_mem_sink_t;
void mtf_mem_sink_init(mtf_mem_sink_t *s, uint8_t *data, size_t len, size_t cap);

/* The compression context (encode.c). level: zstd's (1..19). */
typedef struct mtf_zstd mtf_zstd_t;
/* The zstd functions the encoder calls, one table: the analyzer and the
 * tests link libzstd (mtf_zapi_linked, zapi.c, which mtf_zstd_new and
 * mtf_zstd_new_mem use); the preload loads it on its first compressed
 * snapshot (preload/base/libload.h), so that linking the encoder alone
 * needs no libzstd. */
#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_createCCtx_advanced: exported by libzstd 1.4+ */
#include <zstd.h>
#include <zstd_errors.h>
#define MTF_ZAPI_FUNCS(X)                                                       \
    X(ZSTD_createCCtx) X(ZSTD_createCCtx_advanced) X(ZSTD_CCtx_setParameter)    \
    X(ZSTD_CCtx_reset) X(ZSTD_compressStream2) X(ZSTD_freeCCtx) X(ZSTD_isError)  \
    X(ZSTD_getErrorCode)
typedef struct mtf_zapi {
#define MTF_ZAPI_FIELD(f) __typeof__(f) *f;
    MTF_ZAPI_FUNCS(MTF_ZAPI_FIELD)
#undef MTF_ZAPI_FIELD
} mtf_zapi_t;
extern const mtf_zapi_t mtf_zapi_linked;
/* The preload's mtf_enc_t store_below: a record of fewer payload bytes is
 * stored, not compressed (at most ZIN_SIZE, the bytes staged at once). */
#define MTF_STORE_BELOW 4096
#define MTF_ZSTD_LEVEL 1    /* the preload's: about 65 ms of CPU and 3.1 B a block for 1 M native blocks (level 3: twice the time, 2.6 B) */
mtf_zstd_t *mtf_zstd_new(int level);   /* NULL when out of memory */
/* The same, with zstd's own memory (its context and work space, made again
 * when a larger record needs more) from `mem` (the preload fills those pages
 * at once); NULL mem: malloc. */
typedef struct mtf_zstd_mem {
    void *(*alloc)(void *opaque, size_t n);
    void (*free)(void *opaque, void *p);
    void *opaque;
} mtf_zstd_mem_t;
mtf_zstd_t *mtf_zstd_new_mem(int level, const mtf_zstd_mem_t *mem);
/* The same, with libzstd's functions from get_api, called when a record
 * first needs compressing (the two above: mtf_zapi_linked). NULL from it:
 * that record is stored, and the next one asks again. */
mtf_zstd_t *mtf_zstd_new_api(int level, const mtf_zstd_mem_t *mem,
                             const mtf_zapi_t *(*get_api)(void));
/* The largest distance a match may reach back in the records written from
 * now on, 2^log bytes (0: the level's, 512 KiB at level 1). zstd's work
 * space follows it (level 1: about 1.4 MB at the level's, 0.6 MB at 16);
 * it grows again when a later record needs more, never shrinks. Between
 * records only. 0 or -EINVAL. */
int mtf_zstd_window_log(mtf_zstd_t *z, int log);
void mtf_zstd_free(mtf_zstd_t *z);

typedef struct mtf_enc {
    mtf_sink_t *sink;
    mtf_zstd_t *z;         /* borrowed; NULL: version 2 records are stored */
    int err;               /* first -errno */
    uint16_t version;      /* of the records written: 1 or 2 */
    uint32_t codec;        /* the open record's enum mtsnap_codec */
    int zfed;              /* the open record's bytes went to zstd (its frame begun) */
    size_t store_below;    /* a record of fewer payload bytes is stored (0: none) */
    uint64_t offset;       /* file offset of the next byte */
    uint64_t rec_off;      /* offset of the open record's header */
    uint64_t records;      /* records written (END not counted) */
    uint64_t raw;          /* payload bytes of the open record so far */
    uint32_t crc;          /* of the open record's stored bytes so far */
    uint32_t tag;          /* the open record's */
    /* the open record's delta state (v2) and announced count */
    uint64_t prev;         /* previous frame pc / block or object address */
    uint64_t prev_out;     /* PYGRAPH: previous referent outside the graph */
    uint64_t count, done;  /* BLOCKS: announced, written */
    int blocks_open;       /* mtf_enc_blocks_begin() called in this record */
    mtsnap_tlpoint_t tl_prev; /* TIMELINE: the previous point (deltas) */
} mtf_enc_t;

/* An encoder at `offset` of a file that already holds `records` records
 * (0, 0 for a new file), writing version MTSNAP_VERSION records, stored. */
void mtf_enc_init(mtf_enc_t *e, mtf_sink_t *sink, uint64_t offset, uint64_t records);
/* Version 2 records compressed with z (NULL: stored). */
void mtf_enc_codec(mtf_enc_t *e, mtf_zstd_t *z);
/* The file header; version 1 or 2 also selects the records' layout. */
void mtf_enc_header(mtf_enc_t *e, uint16_t version);
void mtf_enc_begin(mtf_enc_t *e, uint32_t tag);        /* opens a record */
void mtf_enc_put(mtf_enc_t *e, const void *p, size_t n); /* payload bytes */
void mtf_enc_u32(mtf_enc_t *e, uint32_t v);
void mtf_enc_u64(mtf_enc_t *e, uint64_t v);
void mtf_enc_varint(mtf_enc_t *e, uint64_t v);
/* A count, depth or index of STACKS and STACK_STATS: u32 (v1), varint (v2). */
void mtf_enc_uint(mtf_enc_t *e, uint32_t v);
/* The fixed-size arrays (MODULES, and in v1 FRAMES and STACK_STATS): u32
 * count, then count entries of `size` bytes. */
void mtf_enc_array(mtf_enc_t *e, uint32_t count, const void *items, size_t size);
/* The FRAMES payload. */
void mtf_enc_frames(mtf_enc_t *e, uint32_t count, const mtsnap_frame_t *frames);
/* One STACKS entry, after mtf_enc_uint(count): its depth and frame indices,
 * innermost first (one staging copy, not a call per frame). In version 3 a
 * stack node without a parent. */
void mtf_enc_stack(mtf_enc_t *e, uint32_t depth, const uint32_t *frames);
/* Version 3 only: one node of the STACKS tree, after mtf_enc_uint(count of
 * nodes): `parent` (an earlier node's index, or MTSNAP_NONE), whether it is a
 * stack, and its `own` frames, innermost first. */
void mtf_enc_stack_node(mtf_enc_t *e, uint32_t parent, int is_stack, uint32_t own,
                        const uint32_t *frames);
/* One STACK_STATS entry, after mtf_enc_uint(count). */
void mtf_enc_stack_stat(mtf_enc_t *e, const mtsnap_stack_stat_t *s);
/* The BLOCKS payload, streamed: the count, then exactly `count` blocks in
 * strictly increasing address order (else the encoder fails with -EINVAL
 * when the record ends). v2 drops b->counter. */
void mtf_enc_blocks_begin(mtf_enc_t *e, uint64_t count);
void mtf_enc_block(mtf_enc_t *e, const mtsnap_block_t *b);
/* The PYGRAPH payload: the header, h->objects objects by increasing address,
 * then each object's edges in object order. An edge from object `from` (its
 * index) to the referent at `address`: object `to` of the graph, or
 * MTSNAP_NONE when the referent is not in the graph. */
void mtf_enc_pygraph_begin(mtf_enc_t *e, const mtsnap_pygraph_header_t *h);
void mtf_enc_pyobj(mtf_enc_t *e, const mtsnap_pyobj_t *o);
void mtf_enc_pyedge(mtf_enc_t *e, uint32_t from, uint32_t to, uint64_t address);
/* The TIMELINE payload (the same in both versions), streamed: the step and
 * the count, then exactly `count` points by strictly increasing t_ns (else
 * the encoder fails with -EINVAL). */
void mtf_enc_timeline_begin(mtf_enc_t *e, uint64_t step_ns, uint32_t count);
void mtf_enc_tlpoint(mtf_enc_t *e, const mtsnap_tlpoint_t *pt);
/* The STRINGS payload: u32 count, then each string's u32 length and bytes. */
/* INLINED: count, then the listed frame indices one by one, increasing. */
void mtf_enc_inlined_begin(mtf_enc_t *e, uint32_t count);
void mtf_enc_inlined(mtf_enc_t *e, uint32_t frame);
void mtf_enc_strings(mtf_enc_t *e, uint32_t count, const char *const *str, const uint32_t *len);
void mtf_enc_end(mtf_enc_t *e);                        /* closes it: CRC, length */
void mtf_enc_record(mtf_enc_t *e, uint32_t tag, const void *payload, size_t len);
void mtf_enc_finish(mtf_enc_t *e);                     /* the END record */
int mtf_enc_close(mtf_enc_t *e);                       /* closes the sink */

/* One payload writer per record of memtrail_format.h (the member is the
 * record's lower-case name): each writes its record's payload with
 * mtf_enc_put(); the encoder writes the record around it. Required records
 * need one; a NULL optional one is left out. `extra` (may be NULL) writes
 * whole records of its own just before END. */
typedef void mtf_payload_fn(mtf_enc_t *e, void *ctx);
typedef struct mtf_source {
#define MTF_MEMBER_(NAME, name, value) mtf_payload_fn *name;
    MTSNAP_REQUIRED_RECORDS(MTF_MEMBER_)
    MTSNAP_AFTER_RECORDS(MTF_MEMBER_)
#undef MTF_MEMBER_
    mtf_payload_fn *extra;
    /* A record made earlier by another encoder (mtf_enc_splice): written as
     * it is in the place of its tag, made_tag, whose writer is then NULL. */
    uint32_t made_tag;
    const void *made;
    size_t made_len;
} mtf_source_t;

/* A whole record, header and payload, as another encoder of the same
 * version wrote it (into a memory sink, say), written as it is: a record's
 * bytes hold no offset, so it may be made before the records it follows. */
void mtf_enc_splice(mtf_enc_t *e, const void *rec, size_t len);

/* The payload writer of `tag` in src, or NULL (unknown tag, or not given). */
mtf_payload_fn *mtf_source_fn(const mtf_source_t *src, uint32_t tag);
/* Writes the whole file: header, the records in order, END. Returns 0,
 * -EINVAL when a required record has no writer (nothing written), or the
 * first error so far (the sink is not closed). */
int mtf_encode(mtf_enc_t *e, const mtf_source_t *src, void *ctx);

#endif /* MTF_ENCODE_H */
