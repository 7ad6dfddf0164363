/*
 * The ring protocol, producer side (the consumer is writer/writer.c).
 *
 * Threads: each application thread is the only producer of its own ring
 * (base/thread.h); the writer thread is the only consumer. The producer
 * publishes a record with a release store of `head`; the writer frees slots
 * with a store of `tail` (mtp_ring_set_tail). Neither side ever takes a
 * lock, and nothing is dropped: a producer facing a full ring wakes the
 * writer, yields a few times, then sleeps on a futex, tail's low half, with
 * `waiting` set, until the writer moves tail and wakes it: its core goes to
 * the writer (on 2 cores, two producers and the writer share them) instead
 * of being spent yielding and napping.
 *
 * The writer sleeps for long when nothing asks for it (docs/design.md), so a
 * producer wakes it when its ring is half full: once per position of `tail`
 * (`nudged`), so a writer that is busy elsewhere is not woken on every push.
 *
 * Filling ahead: during a ring's first lap (and the first lap after a fork,
 * whose pages are the parent's until written) the producer fills the pages
 * of its next MTP_RING_FILL slots with one madvise call before writing them,
 * where each page would otherwise fault on its first record. The hot path
 * keeps one comparison: `cold_at` is the nearer of the two head values that
 * need this file, half a ring past `cached_tail` and `filled`; and while a
 * fork child's writer is still to start, every MTP_RING_DUE_EVERY events,
 * where the writer layer decides whether to start it (`writer_due` seam).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/state.h"
#include "base/util.h"
#include "record/record.h"

#define MTP_RING_SPINS 16                   /* yields before sleeping */
#define MTP_RING_SLEEP_NS (1000 * 1000)     /* the longest sleep on the futex: then look again */
#define MTP_RING_REWAKE_MASK 63u            /* wake the writer again every 64 sleeps */
#define MTP_RING_FILL 128u                  /* slots filled ahead at a time: a page */
#define MTP_RING_DUE_EVERY 16u              /* a writer still to start is asked this often */

/* The ring is half full as far as the producer knows. Wake the writer
 * once, and if the ring is full, wait until it drains. */
mtp_ring_costs_t mtp_ring_costs;

MTP_FORK_CODE void mtp_ring_atfork_child(void)
{
    if (atomic_load(&mtp_ring_costs.waits) || atomic_load(&mtp_ring_costs.wait_ns) ||
        atomic_load(&mtp_ring_costs.worst_ns)) {   /* else no page written (a fork child's faults) */
        atomic_store(&mtp_ring_costs.wait_ns, 0);
        atomic_store(&mtp_ring_costs.waits, 0);
        atomic_store(&mtp_ring_costs.worst_ns, 0);
    }
}

/* A wait that began at t0 ended. */
static MTP_NOINLINE void count_wait(uint64_t t0)
{
    uint64_t d = mtp_mono_ns() - t0, w = atomic_load_explicit(&mtp_ring_costs.worst_ns,
                                                              memory_order_relaxed);
    atomic_fetch_add_explicit(&mtp_ring_costs.wait_ns, d, memory_order_relaxed);
    atomic_fetch_add_explicit(&mtp_ring_costs.waits, 1, memory_order_relaxed);
    while (d > w && !atomic_compare_exchange_weak_explicit(&mtp_ring_costs.worst_ns, &w, d,
                                                           memory_order_relaxed,
                                                           memory_order_relaxed))
        ;
}

static _Atomic int orphaned;   /* atomic: mtp_ring_orphan */

void mtp_ring_orphan(int o)
{
    atomic_store(&orphaned, o);
}

static void wait_space(mtp_thread_t *t)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    uint64_t t0 = 0;
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
        if (MTP_UNLIKELY(atomic_load_explicit(&orphaned, memory_order_relaxed))) {
            t->cached_tail = h;   /* nobody reads them: room for a whole ring */
            return;
        }
        if (h - t->cached_tail < MTP_RING_SLOTS) {
            if (t0)
                count_wait(t0);
            return;
        }
        if (spins++ == 0) {
            t0 = mtp_mono_ns();
            mtp_seams.writer_wake();
        }
        if (spins < MTP_RING_SPINS) {
            sched_yield();
            continue;
        }
        /* Sleep until the writer moves tail (mtp_ring_set_tail). */
        atomic_store_explicit(&t->waiting, 1, memory_order_seq_cst);
        uint64_t tail = atomic_load_explicit(&t->tail, memory_order_seq_cst);
        if (h - tail >= MTP_RING_SLOTS) {
            struct timespec ts = {0, MTP_RING_SLEEP_NS};
            syscall(SYS_futex, (uint32_t *)&t->tail, FUTEX_WAIT_PRIVATE, (uint32_t)tail, &ts,
                    NULL, 0);
        }
        atomic_store_explicit(&t->waiting, 0, memory_order_relaxed);
        if ((spins & MTP_RING_REWAKE_MASK) == 0)
            mtp_seams.writer_wake();
    }
}

/* Fork's prepare handler, on the forking thread. The pages of its ring
 * that hold no record still to be read are given back (MADV_DONTNEED):
 * fork does not copy them, the child's exec or exit does not unmap them,
 * and the parent's next writes there fault a zero page in, where they
 * would have faulted a copy-on-write one. A traced shell's ring is all
 * written after a few hundred commands: 256 such pages each fork copied
 * (docs/performance.md, *A new process's readings of itself, a forking
 * thread's ring, ...*).
 * Kept: the pages of positions [tail, head], tail read now (it only grows,
 * and the writer reads no position below it again), head this thread's own
 * (nothing is pushed during fork), and the pages the block's other fields
 * share. Other threads' rings are written meanwhile: left as they are. */
MTP_FORK_CODE void mtp_ring_atfork_prepare(mtp_thread_t *t)
{
    enum { PAGE = MTP_PAGE_MIN, PER_PAGE = PAGE / sizeof(mtp_event_t) };
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    uint64_t tl = atomic_load_explicit(&t->tail, memory_order_acquire);
    if (h - tl >= MTP_RING_SLOTS - 2 * PER_PAGE)
        return;   /* nearly full: nothing worth a call */
    int saved = errno;   /* the program's fork: a refused madvise changes nothing it sees */
    uintptr_t lo = ((uintptr_t)t->slots + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
    uintptr_t hi = ((uintptr_t)(t->slots + MTP_RING_SLOTS)) & ~(uintptr_t)(PAGE - 1);
    /* The kept span, circular over the slots: from tail's page to head's. */
    uintptr_t k0 = (uintptr_t)&t->slots[tl & (MTP_RING_SLOTS - 1)] & ~(uintptr_t)(PAGE - 1);
    uintptr_t k1 = ((uintptr_t)&t->slots[h & (MTP_RING_SLOTS - 1)] & ~(uintptr_t)(PAGE - 1)) + PAGE;
    if (k0 < k1) {   /* [lo, k0) and [k1, hi) go */
        if (k0 > lo)
            madvise((void *)lo, k0 - lo, MADV_DONTNEED);
        if (hi > k1)
            madvise((void *)k1, hi - k1, MADV_DONTNEED);
    } else if (k0 > k1) {   /* the kept span wraps: [k1, k0) goes */
        uintptr_t a = k1 > lo ? k1 : lo, b = k0 < hi ? k0 : hi;
        if (b > a)
            madvise((void *)a, b - a, MADV_DONTNEED);
    }
    errno = saved;
}

/* The futex word is tail's low half: little-endian, the first 4 bytes. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tail's low half is its first word");

void mtp_ring_wake_producer(mtp_thread_t *t)
{
    syscall(SYS_futex, (uint32_t *)&t->tail, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}


/* Fills the pages of the slots for head values [filled, filled + FILL),
 * cut at fill_end and at the ring's end. */
static void fill_ahead(mtp_thread_t *t)
{
    uint64_t from = t->filled, to = from + MTP_RING_FILL;
    uint32_t at = (uint32_t)(from & (MTP_RING_SLOTS - 1));
    if (to > t->fill_end)
        to = t->fill_end;
    if (to - from > MTP_RING_SLOTS - at)
        to = from + (MTP_RING_SLOTS - at);
    mtp_populate(&t->slots[at], (size_t)(to - from) * sizeof(t->slots[0]));
    t->filled = to;
}

void mtp_ring_cold(mtp_thread_t *t)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    if (h >= t->filled && t->filled < t->fill_end)
        fill_ahead(t);
    /* The event being pushed holds its number: nothing nested is recorded
     * (base/state.h, SILENT), or its record would take slot h and the
     * push would write over it. A writer started here (writer_due) frees
     * what pthread_create and its attribute allocated; the stack bounds
     * read here (base/thread.c) what pthread_getattr_np allocated. */
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_SILENT;
    if (MTP_UNLIKELY(t->bounds_pending))
        mtp_thread_bounds_retry(t);
    int due = mtp_seams.writer_due(t);
    mtp_tls_guard = guard;
    if (h - t->cached_tail >= MTP_RING_NUDGE)
        wait_space(t);
    uint64_t at = t->cached_tail + MTP_RING_NUDGE;
    if (t->filled < t->fill_end && t->filled < at)
        at = t->filled;
    if (due && h + MTP_RING_DUE_EVERY < at)
        at = h + MTP_RING_DUE_EVERY;
    if (t->bounds_pending)
        at = h + 1;   /* the next push asks again */
    t->cold_at = at;
}
