/* The memory time line (writer/timeline.c): the live heap's highest total
 * and the resident set size over time, bounded; written into every
 * snapshot as the TIMELINE record. Writer thread only, writer_lock held. */
#ifndef MTP_WRITER_TIMELINE_H
#define MTP_WRITER_TIMELINE_H

#include <stdint.h>

#include "memtrail_format.h"

/* Adds a point when the step has passed since the last one (`mono`:
 * CLOCK_MONOTONIC now); called on every pass of the writer's loop. */
void mtp_timeline_tick(uint64_t mono);
/* While the writer thread is still to start, a program thread's cold point
 * (`mono`: now): when the step has passed, a point of this time and
 * resident set size is pending until the events numbered below `boundary`
 * are applied; -1 when PENDING_MAX are pending already (drain them, then
 * mark again). */
int mtp_timeline_mark(uint64_t mono, uint64_t boundary);
/* The boundary of the oldest pending point, UINT64_MAX when none; a drain
 * that applied every event below it calls mtp_timeline_close, which adds
 * that point with the heap's maxima since the point before. */
uint64_t mtp_timeline_pending(void);
void mtp_timeline_close(void);
/* The series so far (*points, the return value's count; NULL and 0 before
 * the first tick), the point of this moment for a snapshot to end it with
 * (*last, after every held point) and the current step. */
uint32_t mtp_timeline_view(const mtsnap_tlpoint_t **points, mtsnap_tlpoint_t *last,
                           uint64_t *step_ns);
/* The resident set size is read once, now, and every later reading is that
 * one: a copy of the process that writes its last snapshot
 * (writer/exitcopy.c) reports the size of the process, not its own. */
void mtp_timeline_hold_rss(void);
/* Fork child: the series starts anew (times count from the fork). */
void mtp_timeline_atfork_child(void);

#endif /* MTP_WRITER_TIMELINE_H */
