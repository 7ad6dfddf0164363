/* Fast DWARF-CFI unwinding (x86-64): a cached rule per return address
 * (cfi.c) and the walk over them, remembered from one stack to the next
 * (walk.c). */
#ifndef MTP_CFI_H
#define MTP_CFI_H

#include "base/thread.h"

/* How a frame's CFA is found (mtp_rule_ent_t.base). */
enum { MTP_CFI_RSP = 0, MTP_CFI_RBP = 1, MTP_CFI_UNSUPPORTED = 2, MTP_CFI_END = 3 };

int mtp_cfi_init(void);
/* The rule for return address `pc`, from the shared table (computed and
 * inserted on a miss; MTP_CFI_UNSUPPORTED before mtp_cfi_init). */
mtp_rule_ent_t mtp_cfi_rule(uintptr_t pc);
/* Fork's prepare handler, before memtrail takes its locks (it asks the
 * loader for the modules): the first time, makes the table the process
 * shares with its fork children (cfi.c). Keeps errno. */
void mtp_cfi_atfork_prepare(void);
/* How many rules this process has computed (its misses in every table). */
unsigned long mtp_cfi_computed(void);

/* Walks from a frame whose return address is `pc`, whose caller's stack
 * pointer (the CFA of the frame that made the call) is `sp` and whose
 * caller's rbp is `bp`. Fills up to `max` return addresses, innermost first.
 * `cache` is the calling thread's MTP_RCACHE_SLOTS-entry rule cache (or
 * NULL, with `memo` NULL too: the shared table alone); `memo` the calling
 * thread's memory of its previous walk (walk.c), or NULL: the result is the
 * same with or without either. Returns the count, or -ENOENT when
 * a frame cannot be handled here (the caller falls back to libunwind). */
int mtp_cfi_unwind_from(mtp_rule_ent_t *cache, mtp_unwind_memo_t *memo, uintptr_t pc,
                        uintptr_t sp, uintptr_t bp, uintptr_t stack_lo, uintptr_t stack_hi,
                        uintptr_t *pcs, uint32_t max);

#endif /* MTP_CFI_H */
