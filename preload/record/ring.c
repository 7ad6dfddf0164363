/*
 * The ring protocol, producer side (the consumer is writer/writer.c).
 *
 * Threads: each application thread is the only producer of its own ring
 * (base/thread.h); the writer thread is the only consumer. The producer
 * publishes a record with a release store of `head`; the writer frees slots
 * with a release store of `tail`. Neither side ever takes a lock, and nothing
 * is dropped: a producer facing a full ring wakes the writer and waits for
 * `tail` to move.
 *
 * The writer sleeps for long when nothing asks for it (docs/design.md), so a
 * producer wakes it when its ring is half full: once per position of `tail`
 * (`nudged`), so a writer that is busy elsewhere is not woken on every push.
 */
#include <sched.h>
#include <time.h>

#include "base/seams.h"
#include "record/record.h"

#define MTP_RING_SPINS 64                   /* yields before sleeping */
#define MTP_RING_NAP_NS (50 * 1000)         /* one nap while the ring is full */
#define MTP_RING_REWAKE_MASK 1023u          /* wake the writer again every 1024 naps */

/* Cold: the ring is half full as far as the producer knows. Wake the writer
 * once, and if the ring is full, wait until it drains. */
void mtp_ring_wait_space(mtp_thread_t *t)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    unsigned spins = 0;

    t->cached_tail = atomic_load_explicit(&t->tail, memory_order_acquire);
    if (h - t->cached_tail < MTP_RING_NUDGE)
        return;
    if (t->nudged != t->cached_tail + 1) {
        t->nudged = t->cached_tail + 1;
        mtp_seams.writer_wake();
    }
    for (;;) {
        t->cached_tail = atomic_load_explicit(&t->tail, memory_order_acquire);
        if (h - t->cached_tail < MTP_RING_SLOTS)
            return;
        if (spins++ == 0)
            mtp_seams.writer_wake();
        if (spins < MTP_RING_SPINS) {
            sched_yield();
        } else {
            struct timespec ts = {0, MTP_RING_NAP_NS};
            nanosleep(&ts, NULL);
            if ((spins & MTP_RING_REWAKE_MASK) == 0)
                mtp_seams.writer_wake();
        }
    }
}

