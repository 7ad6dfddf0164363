/* Stack capture for the recording API (record/record.h): the native stack
 * through unwind/, or the source a higher layer installed. */
#include "record/record.h"
#include "unwind/unwind.h"

_Atomic(mtp_stack_source_fn) mtp_stack_source;   /* atomic: set by hook/pyhooks.c (once, or
                                                   * at each attach and detach) */

/* A fork child's first MTP_FRESH_STACKS stacks: its caches and memos were
 * wiped at the fork (base/thread.h), each of their pages a fault to touch
 * again, and most children exec after a few stacks. The same walk and the
 * same id, from the shared rule table and the stack table alone. */
static MTP_NOINLINE uint32_t fresh_stack(mtp_thread_t *t)
{
    uintptr_t pcs[MTP_MAX_DEPTH + 16];
    const uintptr_t *frames;
    t->fresh--;
    uint32_t depth = mtp_unwind_uncached(t, pcs, mtp_cfg.depth, &frames);
    return mtp_stack_intern_uncached(frames, depth);
}

uint32_t mtp_native_stack(mtp_thread_t *t)
{
    if (MTP_UNLIKELY(t->fresh))
        return fresh_stack(t);
    uintptr_t pcs[MTP_MAX_DEPTH + 16];
    const uintptr_t *frames;
    uint64_t gen = t->umemo.gen;
    uint32_t depth = mtp_unwind(t, pcs, mtp_cfg.depth, &frames);
    return mtp_stack_intern_walk(t, frames, depth, gen);
}
