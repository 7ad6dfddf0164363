/* Fast DWARF-CFI unwinder with a cached rule per return address (x86-64);
 * see cfi.c. Returns -1 where libunwind must take over. */
#ifndef MTP_CFI_H
#define MTP_CFI_H

#include "base/thread.h"

int mtp_cfi_init(void);
/* Walks from a frame whose return address is `pc`, whose caller's stack
 * pointer (the CFA of the frame that made the call) is `sp` and whose
 * caller's rbp is `bp`. Fills up to `max` return addresses, innermost first.
 * `cache` is the calling thread's MTP_RCACHE_SLOTS-entry rule cache.
 * Returns the count, or -ENOENT when a frame cannot be handled here (the
 * caller falls back to libunwind). */
int mtp_cfi_unwind_from(mtp_rule_ent_t *cache, uintptr_t pc, uintptr_t sp, uintptr_t bp,
                        uintptr_t stack_lo, uintptr_t stack_hi, uintptr_t *pcs, uint32_t max);

#endif /* MTP_CFI_H */
