/* A snapshot's frames: each distinct frame of the stacks it writes gets a
 * dense index, and each stack becomes a list of those indices
 * (writer/framemap.c). Writer thread only; one per snapshot. */
#ifndef MTP_WRITER_FRAMEMAP_H
#define MTP_WRITER_FRAMEMAP_H

#include <stdint.h>

/* A frame's key: a native return address, or for a Python frame
 * MTP_PYWORD_TAG | its code registry index (0xffffffff when it has none),
 * or the bare word of a two-word Python frame cut short by the depth. */
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
    uint32_t mslots, mcount;
    uint32_t *pool;
    size_t npool, pool_cap;
} mtp_framemap_t;

/* Stack id's frame indices, innermost first, into out (room for
 * MTP_STACK_MAX_WORDS): how many (0 for an unknown id), or -ENOMEM. New
 * frames get the next indices. */
int mtp_framemap_stack(mtp_framemap_t *m, uint32_t id, uint32_t *out);
void mtp_framemap_free(mtp_framemap_t *m);

#endif /* MTP_WRITER_FRAMEMAP_H */
