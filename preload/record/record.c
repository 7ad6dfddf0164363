/* Stack capture for the recording API (record/record.h): the native stack
 * through unwind/, or the source a higher layer installed. */
#include "record/record.h"
#include "unwind/unwind.h"

_Atomic(mtp_stack_source_fn) mtp_stack_source;   /* atomic: set by hook/pyhooks.c (once, or
                                                   * at each attach and detach) */

uint32_t mtp_native_stack(mtp_thread_t *t)
{
    uintptr_t pcs[MTP_MAX_DEPTH + 16];
    const uintptr_t *frames;
    uint64_t gen = t->umemo.gen;
    uint32_t depth = mtp_unwind(t, pcs, mtp_cfg.depth, &frames);
    return mtp_stack_intern_walk(t, frames, depth, gen);
}
