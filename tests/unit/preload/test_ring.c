/* Unit tests of the per-thread rings (preload/ring.c): order across
 * wrap-around, a full ring blocking its producer without loss, block reuse. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "stackbounds.h"
#include "base/seams.h"
#include "base/state.h"
#include "record/record.h"

/* The writer's wake-up, replaced through its seam (base/seams.h). */
static _Atomic int wakes;
static void count_wake(void) { atomic_fetch_add(&wakes, 1); }
static void install_seams(void) { mtp_seams.writer_wake = count_wake; }
TestSuite(ring, .init = install_seams);

/* Consume like the writer: read head (acquire), copy, publish tail
 * (mtp_ring_set_tail: wakes a producer asleep on its full ring). */
static size_t consume(mtp_thread_t *t, mtp_event_t *out, size_t max)
{
    uint64_t tail = atomic_load(&t->tail), head = atomic_load_explicit(&t->head, memory_order_acquire);
    size_t n = 0;
    while (tail < head && n < max)
        out[n++] = t->slots[tail++ & (MTP_RING_SLOTS - 1)];
    mtp_ring_set_tail(t, tail);
    return n;
}

static mtp_event_t ev(uint64_t n)
{
    return (mtp_event_t){n, 0x1000 + 16 * n, n % 977, (uint32_t)(n % 13), MTP_EV_ALLOC, 0};
}

Test(ring, wraps_around_in_order)
{
    mtp_pid = getpid();
    mtp_thread_t *t = mtp_thread_acquire();
    cr_assert_not_null(t);
    atomic_store(&wakes, 0);
    static mtp_event_t got[4096];
    uint64_t next_push = 0, next_pop = 0;
    /* Push and pop in uneven chunks across three full turns of the ring. */
    while (next_pop < 3ull * MTP_RING_SLOTS + 123) {
        for (int i = 0; i < 3000; i++) {
            mtp_event_t e = ev(next_push++);
            mtp_ring_push(t, &e);
        }
        size_t n = consume(t, got, 2999);
        for (size_t i = 0; i < n; i++, next_pop++) {
            cr_assert_eq(got[i].counter, next_pop);
            cr_assert_eq(got[i].addr, 0x1000 + 16 * next_pop);
            cr_assert_eq(got[i].size, next_pop % 977);
            cr_assert_eq(got[i].stack, next_pop % 13);
        }
    }
    cr_assert_gt(atomic_load(&t->head), 3ull * MTP_RING_SLOTS);
    cr_assert_eq(atomic_load(&wakes), 0, "the ring was never half full: the writer is left alone");
}

/* The first lap fills pages ahead of the producer (record/ring.c), and the
 * one comparison of the hot path never lets a push pass the point where the
 * ring is half full unchecked: cold_at stays at or below both thresholds. */
Test(ring, first_lap_is_filled_ahead_and_half_full_is_still_checked)
{
    mtp_pid = getpid();
    mtp_thread_t *t = mtp_thread_acquire();
    cr_assert_not_null(t);
    static mtp_event_t got[4096];
    consume(t, got, MTP_RING_SLOTS);
    uint64_t start = atomic_load(&t->head);
    for (uint64_t n = 0; n < MTP_RING_SLOTS + MTP_RING_SLOTS / 2; n++) {
        mtp_event_t e = ev(n);
        mtp_ring_push(t, &e);
        uint64_t h = atomic_load(&t->head);
        cr_assert_leq(t->cold_at, t->cached_tail + MTP_RING_NUDGE, "push %llu", (unsigned long long)n);
        if (h < t->fill_end)
            cr_assert_geq(t->filled, h, "slot %llu written before it was filled", (unsigned long long)h);
        if (n % 1000 == 999)
            consume(t, got, 1000);
    }
    cr_assert_geq(t->filled, t->fill_end, "one lap filled");
    consume(t, got, MTP_RING_SLOTS);
    cr_assert_geq(atomic_load(&t->head), start + MTP_RING_SLOTS);

    /* A fork child fills one more lap (its pages are the parent's until
     * written) from the page after the head's, whose own page its first
     * record's fault copies; it goes through the cold path first. */
    mtp_thread_atfork_child(t);
    uint64_t h = atomic_load(&t->head);
    const uint64_t per_page = 4096 / sizeof(mtp_event_t);
    cr_assert(t->filled > h && t->filled <= h + per_page, "filled %llu, head %llu",
              (unsigned long long)t->filled, (unsigned long long)h);
    uint32_t at = (uint32_t)(t->filled & (MTP_RING_SLOTS - 1));
    cr_assert(at == 0 || (uintptr_t)&t->slots[at] % 4096 == 0, "filled from a page's first slot");
    cr_assert_eq(t->fill_end, h + MTP_RING_SLOTS);
    cr_assert_eq(t->cold_at, 0);
    for (uint64_t n = 0; n < 3 * per_page; n++) {
        mtp_event_t e = ev(n);
        mtp_ring_push(t, &e);
        uint64_t now = atomic_load(&t->head);
        cr_assert_leq(t->cold_at, t->filled);
        if (now > h + per_page)
            cr_assert_geq(t->filled, now, "slot %llu past the head's page written before it was filled",
                          (unsigned long long)now);
    }
    consume(t, got, MTP_RING_SLOTS);
}

/* The ring's cold point runs inside a push whose event holds its number:
 * whatever it calls out to (writer_due, which may start the writer thread:
 * pthread_create frees what it and its attribute allocated) must record
 * nothing, or that record would take the slot the push then writes over,
 * its number lost and the writer waiting for it. The guard is SILENT there
 * (base/state.h), and back to the hook's after. */
static int due_calls, due_guard_silent;
static int due_seen(mtp_thread_t *t)
{
    (void)t;
    due_calls++;
    due_guard_silent += mtp_tls_guard == MTP_GUARD_SILENT;
    return 1;   /* still to start: asked again every few events */
}

Test(ring, the_cold_point_records_nothing_nested)
{
    mtp_pid = getpid();
    mtp_thread_t *t = mtp_thread_acquire();
    cr_assert_not_null(t);
    static mtp_event_t got[256];
    consume(t, got, MTP_RING_SLOTS);
    int (*due_before)(mtp_thread_t *) = mtp_seams.writer_due;
    mtp_seams.writer_due = due_seen;
    t->cold_at = 0;   /* the next push goes through the cold point */
    mtp_tls_guard = MTP_GUARD_HOOK;
    for (uint64_t n = 0; n < 100; n++) {
        mtp_event_t e = ev(n);
        mtp_ring_push(t, &e);
        cr_assert_eq(mtp_tls_guard, MTP_GUARD_HOOK, "the hook's guard back after push %llu",
                     (unsigned long long)n);
    }
    mtp_tls_guard = MTP_GUARD_NONE;
    mtp_seams.writer_due = due_before;
    cr_assert_gt(due_calls, 1, "the cold point asked %d times", due_calls);
    cr_assert_eq(due_guard_silent, due_calls, "%d of %d calls saw SILENT", due_guard_silent,
                 due_calls);
    size_t n = consume(t, got, 256);
    cr_assert_eq(n, 100);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i].counter, i, "slot %zu holds event %llu", i,
                     (unsigned long long)got[i].counter);
}

/* A sleeping writer is woken when a ring gets half full, once per position
 * of the writer's tail, not on every push after that. */
Test(ring, half_full_ring_wakes_the_writer_once)
{
    mtp_pid = getpid();
    mtp_thread_t *t = mtp_thread_acquire();
    cr_assert_not_null(t);
    static mtp_event_t got[MTP_RING_SLOTS];
    consume(t, got, MTP_RING_SLOTS);   /* a reused block may hold records */
    t->cached_tail = atomic_load(&t->tail);
    atomic_store(&wakes, 0);
    uint64_t n = 0;
    for (; n < MTP_RING_NUDGE - 1; n++) {
        mtp_event_t e = ev(n);
        mtp_ring_push(t, &e);
    }
    cr_assert_eq(atomic_load(&wakes), 0, "below half: no wake");
    for (; n < MTP_RING_SLOTS - 1; n++) {
        mtp_event_t e = ev(n);
        mtp_ring_push(t, &e);
    }
    cr_assert_eq(atomic_load(&wakes), 1, "half full and beyond: one wake");
    cr_assert_eq(consume(t, got, 10), 10);
    mtp_event_t e = ev(n++);
    mtp_ring_push(t, &e);
    cr_assert_eq(atomic_load(&wakes), 2, "the writer moved, still over half: woken again");
    consume(t, got, MTP_RING_SLOTS);
}

/* A thread that finds no free block wakes the writer, which may be asleep
 * with blocks of exited threads to reclaim; a thread that exits wakes it too. */
static void *acquire_one(void *p)
{
    *(mtp_thread_t **)p = mtp_thread_acquire();
    return NULL;
}

Test(ring, a_new_block_and_an_exit_wake_the_writer)
{
    mtp_pid = getpid();
    mtp_thread_t *t = NULL;
    pthread_t th;
    atomic_store(&wakes, 0);
    cr_assert_eq(pthread_create(&th, NULL, acquire_one, &t), 0);
    pthread_join(th, NULL);
    cr_assert_not_null(t);
    /* one when it mapped its block, one when it exited (writer/writer.c
     * looks whether the process has a thread left) */
    cr_assert_eq(atomic_load(&wakes), 2);
}

typedef struct producer_arg {
    mtp_thread_t *t;
    uint64_t count;
    _Atomic int done;
} producer_arg_t;

static void *producer(void *p)
{
    producer_arg_t *a = p;
    a->t = mtp_thread_acquire();
    for (uint64_t i = 0; i < a->count; i++) {
        mtp_event_t e = ev(i);
        mtp_ring_push(a->t, &e);
    }
    atomic_store(&a->done, 1);
    return NULL;
}

Test(ring, full_ring_blocks_the_producer_and_loses_nothing)
{
    mtp_pid = getpid();
    atomic_store(&wakes, 0);
    producer_arg_t a = {.count = MTP_RING_SLOTS + 5000};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, producer, &a), 0);
    /* Wait until the producer has filled the ring and started waiting. */
    for (int i = 0; i < 5000 && (!a.t || atomic_load(&a.t->head) < MTP_RING_SLOTS); i++)
        usleep(1000);
    cr_assert_gt(atomic_load(&wakes), 0, "a full ring wakes the writer");
    usleep(20000);
    cr_assert_eq(atomic_load(&a.done), 0, "the producer waits on a full ring");
    cr_assert_eq(atomic_load(&a.t->head), MTP_RING_SLOTS, "exactly one ring's worth is pushed");

    static mtp_event_t got[1024];
    uint64_t next = 0;
    while (next < a.count) {
        size_t n = consume(a.t, got, 1024);
        for (size_t i = 0; i < n; i++, next++)
            cr_assert_eq(got[i].counter, next, "record %lu out of order", (unsigned long)next);
        if (!n)
            sched_yield();
    }
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&a.done), 1);
    cr_assert_eq(next, a.count);
}

static void *touch(void *p)
{
    *(mtp_thread_t **)p = mtp_thread_acquire();
    return NULL;
}

Test(ring, exited_threads_blocks_are_reused_once_drained)
{
    mtp_pid = getpid();
    mtp_thread_t *first = NULL, *second = NULL;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, touch, &first), 0);
    pthread_join(th, NULL);
    cr_assert_not_null(first);

    /* An undrained ring is kept even though its thread is gone. */
    mtp_event_t e = ev(1);
    mtp_ring_push(first, &e);
    usleep(10000); /* the kernel reaps the thread's tid asynchronously */
    mtp_thread_reclaim_dead();
    cr_assert_eq(atomic_load(&first->state), MTP_THREAD_LIVE);

    mtp_event_t got;
    cr_assert_eq(consume(first, &got, 1), 1);
    unsigned gen = mtp_thread_generation();
    mtp_thread_reclaim_dead();
    cr_assert_eq(atomic_load(&first->state), MTP_THREAD_FREE);
    cr_assert_neq(mtp_thread_generation(), gen);

    cr_assert_eq(pthread_create(&th, NULL, touch, &second), 0);
    pthread_join(th, NULL);
    cr_assert_eq(second, first, "a new thread takes the free block");
    cr_assert_eq(atomic_load(&second->state), MTP_THREAD_LIVE);
}

/* A thread's stack bounds are glibc's (pthread_getattr_np's), the initial
 * thread's read from its map without stdio (base/thread.c). */

static void *bounds_of_a_thread(void *p)
{
    uintptr_t *out = p;
    mtp_thread_t *t = mtp_thread_acquire();
    out[0] = t->stack_lo;
    out[1] = t->stack_hi;
    mt_stack_bounds(&out[2], &out[3]);
    /* Inside the program's own pthread_getattr_np (hook/stackattr.c): left
     * to a later cold point, which reads them once outside. */
    mtp_tls_in_getattr = 1;
    mtp_thread_bounds_retry(t);   /* still inside: nothing */
    t->stack_lo = t->stack_hi = 0;
    t->bounds_pending = 1;
    mtp_thread_bounds_retry(t);
    out[4] = t->stack_hi;
    mtp_tls_in_getattr = 0;
    mtp_thread_bounds_retry(t);
    out[5] = t->stack_lo;
    out[6] = t->stack_hi;
    out[7] = (uintptr_t)t->bounds_pending;
    return NULL;
}

Test(ring, stack_bounds_are_glibcs)
{
    mtp_pid = getpid();
    mtp_thread_t *t = mtp_thread_acquire();
    uintptr_t lo, hi;
    mt_stack_bounds(&lo, &hi);
    cr_expect_eq(t->stack_lo, lo, "initial thread: lo %#lx, glibc %#lx", (unsigned long)t->stack_lo,
                 (unsigned long)lo);
    cr_expect_eq(t->stack_hi, hi, "initial thread: hi %#lx, glibc %#lx", (unsigned long)t->stack_hi,
                 (unsigned long)hi);
    uintptr_t b[8];
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bounds_of_a_thread, b), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_expect(b[0] == b[2] && b[1] == b[3], "thread: [%#lx, %#lx), glibc [%#lx, %#lx)",
              (unsigned long)b[0], (unsigned long)b[1], (unsigned long)b[2], (unsigned long)b[3]);
    cr_expect_eq(b[4], 0, "read inside pthread_getattr_np");
    cr_expect(b[5] == b[2] && b[6] == b[3] && b[7] == 0, "read after it: [%#lx, %#lx)",
              (unsigned long)b[5], (unsigned long)b[6]);
}
