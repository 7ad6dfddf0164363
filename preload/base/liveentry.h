/* The live map's compact entry (writer/livemap.c): one live block in 8
 * bytes, in the bucket of the 4 KiB page it starts in. Declared here, once,
 * because two layers read it: the live map, which owns the buckets, and the
 * leak scan (leak/scanindex.c), which reads them in place while every
 * thread is stopped instead of copying the blocks out.
 *
 * Bits, high to low: offset in the page / 8 (9) | domain (2) | size (21) |
 * stack id (32). The offset is on top, so that a page's entries compare as
 * their blocks' addresses. A block an entry cannot hold (an address not
 * 8-aligned or at 2^48 or above, a size of 2 MiB or more, a domain of 4 or
 * more: MMAP and the extensions' own) is a wide block, kept whole. */
#ifndef MTP_BASE_LIVEENTRY_H
#define MTP_BASE_LIVEENTRY_H

#include <stdint.h>

#define MTP_LE_PAGE_SHIFT 12
#define MTP_LE_PAGE_MASK ((1ull << MTP_LE_PAGE_SHIFT) - 1)
#define MTP_LE_ADDR_LIMIT (1ull << 48)
#define MTP_LE_OFF_SHIFT 55
#define MTP_LE_DOM_SHIFT 53
#define MTP_LE_SIZE_SHIFT 32
#define MTP_LE_SIZE_LIMIT (1ull << 21)
#define MTP_LE_DOM_LIMIT 4u

static inline unsigned mtp_le_off(uint64_t e) { return (unsigned)(e >> MTP_LE_OFF_SHIFT); }
/* The block's address, its page's base given. */
static inline uint64_t mtp_le_address(uint64_t page_base, uint64_t e)
{
    return page_base | (uint64_t)mtp_le_off(e) << 3;
}
static inline uint64_t mtp_le_size(uint64_t e)
{
    return (e >> MTP_LE_SIZE_SHIFT) & (MTP_LE_SIZE_LIMIT - 1);
}
static inline uint32_t mtp_le_domain(uint64_t e)
{
    return (uint32_t)(e >> MTP_LE_DOM_SHIFT) & (MTP_LE_DOM_LIMIT - 1);
}

/* A page of compact entries as the live map hands it out: the page's base
 * and its n entries (n > 0), sorted. Nonzero stops the walk. */
typedef int (*mtp_le_page_fn)(void *arg, uint64_t base, const uint64_t *entries, unsigned n);

#endif /* MTP_BASE_LIVEENTRY_H */
