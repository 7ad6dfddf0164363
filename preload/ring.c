/*
 * Per-thread rings and their registry.
 *
 * Threads: each application thread owns one mtp_thread_t (ring + stack-id
 * cache) and is its ring's only producer; the writer thread is the only
 * consumer. The producer publishes a record with a release store of `head`;
 * the writer frees slots with a release store of `tail`. Neither side ever
 * takes a lock, and nothing is dropped: a producer facing a full ring wakes
 * the writer and waits for `tail` to move.
 *
 * Registry: blocks are mmap'd (never from the traced heap) and pushed on a
 * lock-free singly linked list that only grows. A block outlives its thread:
 * the writer marks it FREE only once the kernel says the owner's tid is gone
 * and every record has been drained; a new thread then claims a FREE block
 * with a CAS instead of mapping a new one. `generation` changes whenever the
 * set of LIVE blocks does, so the writer knows to rescan.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mtp.h"

static _Atomic(mtp_thread_t *) thread_list;  /* atomic: registry head */
static _Atomic unsigned thread_generation;   /* atomic */

mtp_thread_t *mtp_thread_list(void)
{
    return atomic_load_explicit(&thread_list, memory_order_acquire);
}

unsigned mtp_thread_generation(void)
{
    return atomic_load_explicit(&thread_generation, memory_order_acquire);
}

static pid_t self_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Cold: called once per thread, with the hook guard set. */
mtp_thread_t *mtp_thread_acquire(void)
{
    pid_t tid = self_tid();
    mtp_thread_t *t;

    for (t = mtp_thread_list(); t; t = t->next) {
        int expect = MTP_THREAD_FREE;
        if (atomic_load_explicit(&t->state, memory_order_relaxed) == MTP_THREAD_FREE &&
            atomic_compare_exchange_strong(&t->state, &expect, MTP_THREAD_LIVE)) {
            atomic_store(&t->tid, tid);
            t->cached_tail = atomic_load_explicit(&t->tail, memory_order_acquire);
            goto found;
        }
    }

    t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    atomic_init(&t->state, MTP_THREAD_LIVE);
    atomic_init(&t->tid, tid);
    mtp_thread_t *old = atomic_load_explicit(&thread_list, memory_order_relaxed);
    do {
        t->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&thread_list, &old, t, memory_order_release,
                                                    memory_order_relaxed));
found:
    mtp_unwind_thread_init(t);
    atomic_fetch_add_explicit(&thread_generation, 1, memory_order_release);
    return t;
}

/* Cold: the ring is full. Wake the writer and wait until it drains. */
void mtp_ring_wait_space(mtp_thread_t *t)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    unsigned spins = 0;

    for (;;) {
        t->cached_tail = atomic_load_explicit(&t->tail, memory_order_acquire);
        if (h - t->cached_tail < MTP_RING_SLOTS)
            return;
        if (spins++ == 0)
            mtp_writer_wake();
        if (spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50 * 1000};
            nanosleep(&ts, NULL);
            if ((spins & 1023) == 0)
                mtp_writer_wake();
        }
    }
}

/* Writer: a LIVE block whose owner has exited and whose ring is empty becomes
 * FREE. tgkill(pid, tid, 0) fails with ESRCH only once the thread is gone. */
void mtp_thread_reclaim_dead(void)
{
    pid_t pid = mtp_pid;
    int changed = 0;

    for (mtp_thread_t *t = mtp_thread_list(); t; t = t->next) {
        if (atomic_load_explicit(&t->state, memory_order_acquire) != MTP_THREAD_LIVE)
            continue;
        uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
        if (atomic_load_explicit(&t->head, memory_order_acquire) != tail)
            continue;
        pid_t tid = atomic_load_explicit(&t->tid, memory_order_relaxed);
        if (syscall(SYS_tgkill, pid, tid, 0) == 0 || errno != ESRCH)
            continue;
        /* The owner is gone, so head can no longer move. */
        if (atomic_load_explicit(&t->head, memory_order_acquire) != tail)
            continue;
        atomic_store_explicit(&t->state, MTP_THREAD_FREE, memory_order_release);
        changed = 1;
    }
    if (changed)
        atomic_fetch_add_explicit(&thread_generation, 1, memory_order_release);
}

/* Fork child: only the calling thread survives. Its block gets the new tid;
 * the others keep their records (they are drained, then reclaimed, since
 * their tids do not exist in this process). */
void mtp_ring_atfork_child(mtp_thread_t *self)
{
    if (self)
        atomic_store(&self->tid, self_tid());
    atomic_fetch_add_explicit(&thread_generation, 1, memory_order_release);
}
