/* The decoder's insides, shared by snapshot.c (framing, version 1 payloads,
 * the checks every version's data goes through) and snapshot_v2.c (the
 * version 2 payloads: decompression, varints). Not installed, not used
 * outside format/. */
#ifndef MTF_SNAPREAD_H
#define MTF_SNAPREAD_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

/* Storage owned by the snapshot besides the public arrays. */
typedef struct reader_priv {
    char *string_blob;        /* all strings, each NUL-terminated */
    uint32_t *stack_frames;   /* all stacks' frame indices, back to back */
} reader_priv_t;

/* Parser state for one buffer. */
typedef struct parser {
    const uint8_t *buf;
    size_t len;
    const char *name;
    char *err;
    size_t errlen;
    mta_snapshot_t *snap;
    reader_priv_t *priv;
    void *dctx;               /* ZSTD_DCtx, made on the first compressed record */
} parser_t;

/* Writes "snapshot: NAME: what" into the error buffer; returns rc. */
int mtr_fail(parser_t *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* snapshot.c: the checks of decoded BLOCKS (s->blocks, s->nblocks) and
 * PYGRAPH (s->pyobjs, s->pyedges filled, s->pyedge_first allocated, header
 * h), whichever version they came from. */
int mtr_check_blocks(parser_t *p);
int mtr_check_pygraph(parser_t *p, const mtsnap_pygraph_header_t *h);

/* snapshot_v2.c. mtr_v2_inflate: the payload of a version 2 record whose
 * stored bytes passed their CRC: *out points into the stored bytes (codec
 * 0) or to a buffer it allocated (*owned, to free), bounded by
 * MTSNAP_ZSTD_MAX_RATIO before anything is allocated. */
int mtr_v2_inflate(parser_t *p, const char *tag, uint64_t off, const mtsnap_record_header_v2_t *rh,
                   const uint8_t *stored, const uint8_t **out, uint8_t **owned);
/* The version 2 payloads of FRAMES, STACKS and STACK_STATS, transcoded into
 * their version 1 payload (*v1, allocated, *v1len bytes) for the version 1
 * parser; of BLOCKS and PYGRAPH, decoded into the snapshot. */
int mtr_v2_transcode(parser_t *p, uint32_t tag, const uint8_t *pl, uint64_t len, uint8_t **v1,
                     uint64_t *v1len);
int mtr_v2_blocks(parser_t *p, const uint8_t *pl, uint64_t len);
int mtr_v2_pygraph(parser_t *p, const uint8_t *pl, uint64_t len);
/* The INLINED payload (varints in both versions): the frames' flags, checked
 * against the stacks. */
int mtr_inlined(parser_t *p, const uint8_t *pl, uint64_t len);
/* The TIMELINE payload (varints in both versions), into the snapshot. */
int mtr_timeline(parser_t *p, const uint8_t *pl, uint64_t len);

#endif /* MTF_SNAPREAD_H */
