/* The writer's symbolizer, kept for the process's life and warmed while
 * the writer is idle (writer/symwarm.c). Writer thread only, writer lock
 * held. */
#ifndef MTP_WRITER_SYMWARM_H
#define MTP_WRITER_SYMWARM_H

#include <stdint.h>

#include "writer/symbolize.h"

/* The symbolizer, opened on first use or refreshed (the modules mapped
 * now); NULL when it cannot be had (frames then keep their addresses). */
mtp_symbolizer_t *mtp_writer_sym(void);
/* Names the native frames of at most `stacks` stacks interned since the
 * last call, so that the next snapshot, and a fork child (which inherits
 * the symbolizer), finds them named. Returns 1 while stacks remain. */
int mtp_writer_sym_warm(uint32_t stacks);
/* In a fork child: the inherited symbolizer's descriptors closed. */
void mtp_writer_sym_atfork_child(void);

#endif /* MTP_WRITER_SYMWARM_H */
