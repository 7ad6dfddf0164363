/* A snapshot's frames: each distinct frame of the stacks it writes gets a
 * dense index, and the stacks become a tree of nodes of those indices that
 * share their outer parts (writer/framemap.c; the STACKS record of format
 * version 3). Writer thread only; one per snapshot. */
#ifndef MTP_WRITER_FRAMEMAP_H
#define MTP_WRITER_FRAMEMAP_H

#include <stdint.h>

#include "memtrail_format.h"

/* A frame's key: a native return address, or for a Python frame
 * MTP_PYWORD_TAG | its code registry index (0xffffffff when it has none),
 * or the bare word of a two-word Python frame cut short by the depth. */
/* A node of the snapshot's STACKS tree (format version 3): `len` frame
 * indices at pool[off], then its parent's frames (MTSNAP_NONE: none). */
typedef struct mtp_fmnode {
    uint32_t off;          /* in pool */
    uint32_t parent;       /* node index, or MTSNAP_NONE */
    uint16_t len;
    uint16_t is_stack;     /* 1: a stack (its own frames), 0: a shared chunk */
} mtp_fmnode_t;

/* A Python frame's words (one packed word, or two) and its frame index
 * (framemap.c's py_frame). */
typedef struct mtp_fmpy {
    uintptr_t w0, w1;      /* w0 0: an empty entry */
    uint32_t frame;
} mtp_fmpy_t;

typedef struct mtp_framemap {
    uint64_t *key;         /* slots: frame key, 0 = empty */
    uint32_t *idx;
    uint32_t nslots;
    uint64_t *order;       /* frame index -> key */
    uint32_t count;        /* frames */
    /* Chunks already turned into frame indices (see framemap.c). */
    uint64_t *mkey;        /* slots: (chunk << 1 | words skipped) + 1, 0 = empty */
    uint32_t *moff;        /* its indices in pool */
    uint8_t *mlen;         /* how many */
    uint8_t *mskip;        /* words the chunk outside it starts with that belong to its last frame */
    uint32_t *mouter;      /* the chunk outside it */
    uint32_t *mnode;       /* its node index + 1, 0 before it has one */
    uint32_t mslots, mcount;
    mtp_fmpy_t *pyc;       /* Python frames by their words, direct-mapped (PYC_SLOTS) */
    int pyc_failed;        /* its memory was refused: not asked for again */
    uint32_t *pool;        /* chunks' and stacks' own frame indices */
    size_t npool, pool_cap, pool_filled;   /* pool_cap, pool_filled: bytes */
    /* The tree, parents before children, in the order the stacks were added. */
    mtp_fmnode_t *nodes;
    uint32_t nnodes, nodes_cap;
    size_t nodes_filled;   /* bytes */
} mtp_framemap_t;

/* Adds stack id to the tree: a node of its own frames (new frames get the
 * next indices) whose parent is the node of the chunks outside it, made
 * first when new (each shared chunk becomes one node, once). An unknown id
 * is a stack of no frame. Returns the stack's node index, or -ENOMEM. */
int64_t mtp_framemap_add_stack(mtp_framemap_t *m, uint32_t id);
/* Room for `nodes` nodes and `pool` frame indices, made before the stacks
 * are added when their number is known: the arrays then grow by no copy
 * (each doubling is a copy, and in memory never touched before, a page
 * fault a page). More is added as needed. 0 or -ENOMEM. */
int mtp_framemap_reserve(mtp_framemap_t *m, uint32_t nodes, size_t pool);
void mtp_framemap_free(mtp_framemap_t *m);

#endif /* MTP_WRITER_FRAMEMAP_H */
