/* Native stack capture: frame pointers, or libunwind behind a per-thread
 * cache of CFI rules (unwind/cfi.c). Runs on application threads inside a
 * hook: no allocation, no lock, but once per process, on the first stack
 * the CFI walk hands over, libunwind's load (mtp_unwind_lib). */
#ifndef MTP_UNWIND_H
#define MTP_UNWIND_H

#include "base/thread.h"

/* Cold, from start-up, no lock of ours held. 0 or -ENOENT (own module not found). */
int mtp_unwind_init(void);
/* libunwind loaded (base/libload.h) by the calling thread unless another
 * did: 0, or -ENOENT when it cannot be had. */
int mtp_unwind_lib(void);
/* 1 when pc is in memtrail's own code. */
int mtp_unwind_is_self(uintptr_t pc);
/* Captures up to `max` caller frames into pcs (room for max + 8); *first
 * points at the innermost frame that is not memtrail's own. */
uint32_t mtp_unwind(mtp_thread_t *t, uintptr_t *pcs, uint32_t max, const uintptr_t **first);

#endif /* MTP_UNWIND_H */
