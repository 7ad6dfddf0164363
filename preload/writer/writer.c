/*
 * The writer thread: drains every ring in event-number order into the live
 * table, and writes snapshots on request.
 *
 * Threads: one writer per process (restarted in a fork child), all signals
 * blocked, its hook guard permanently set so its own allocations are not
 * traced. It never takes the dynamic loader's lock or a stdio lock: an
 * application thread blocked on a full ring may hold either. libdw, which
 * dlopen brings in on its first use, is loaded by a thread of its own
 * beside the writer (load_beside), and so is libzstd.
 *
 * Ordering: event numbers are dense and each ring is sorted, so the writer
 * processes number `expected` next, from whichever ring has it at its head.
 * When no ring has it, the number is in flight (taken, not yet pushed) and
 * the writer waits for it; numbers below `gap_floor` (taken by threads that
 * did not survive a fork) are skipped; a number that stays missing for
 * STALL_NS (a thread that left a hook through longjmp) is skipped too, and a
 * record that shows up late is applied when seen.
 *
 * The writer starts late, in a new process as in a fork child: most
 * processes a shell or a build starts live a few milliseconds, and a second
 * thread would cost them its creation and make each copy-on-write fault or
 * munmap of theirs flush the other CPU's TLB. Until it starts (`deferred`),
 * a producer whose ring is half full applies the published events itself
 * under `writer_lock` (deferred_wake), and the thread that made the
 * process marks the time line's points, which the drains close
 * (deferred_mark, writer/timeline.c); the thread starts at the first of an
 * allocation DEFER_NS or DEFER_EVENTS after the start (or the fork) made
 * where starting a thread is safe (writer/safepoint.c) by another thread
 * than the one that made the process, or by that one once a drain of its
 * own took DEFER_SHARE_PCT of its CPU time since the drain before it (the
 * program would gain by handing its events to another CPU: a shell, which
 * allocates little between forks, never does), a snapshot request from a
 * normal context (the API), or never (exec). A process still
 * deferred whose exit (or final) snapshot is asked for by its only thread
 * takes it on that thread (sync_inline), as the writer would, `writer_lock`
 * held: everything said below of the writer thread holds of it then.
 *
 * The writer starts on its creator's CPU and stays there for its first
 * SAME_CPU_NS (see `start_cpu` below).
 *
 * Requests (API, signal, exit, interval) sit in a small array of slots owned
 * by a CAS on `state`; a snapshot requested when the counter read N covers
 * every event numbered below N. `writer_lock` is held while the tables
 * change or are written; fork's prepare handler takes it, so a child always
 * inherits consistent tables.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "memtrail_protocol.h"

#include "base/privheap.h"
#include "base/seams.h"
#include "base/util.h"
#include "leak/leakscan.h"
#include "record/record.h"
#include "base/libload.h"
#include "writer/exitcopy.h"
#include "writer/live.h"
#include "writer/safepoint.h"
#include "writer/snapwrite.h"
#include "writer/symwarm.h"
#include "writer/timeline.h"
#include "writer/window.h"
#include "writer/writer.h"

#define NREQ 16
#define BATCH 65536
#define STALL_NS (500u * 1000 * 1000)
/* Idle, the writer sleeps longer each time, up to this: requests, new
 * threads and half-full rings wake it (record/ring.c), so an idle process
 * costs one wake-up a second, not a hundred. */
#define IDLE_MAX_MS 1000
/* Sampling: a pass that applied fewer events than this leaves the writer as
 * idle as one that applied none (it sleeps, and longer each time). Sampled
 * events trickle in (one every 512 KiB a thread allocates), and a writer
 * that woke every millisecond for a few of them took a core's slice from the
 * program about a thousand times a second; the rings hold 32,768 and wake it
 * when half full. */
#define SAMPLED_TRICKLE 1024
/* Exact mode: a pass that applied fewer events than TRICKLE, or that came
 * fewer than TRICKLE_PER_MS events a millisecond since the pass before,
 * sleeps after it as an idle one does, but TRICKLE_MAX_MS at most, the time
 * line's first step (its points keep their resolution). A process whose
 * events come a few at a time (a shell: a hundred allocations a command, a
 * command a millisecond) woke its writer about once a command, each wake a
 * slice of the other core and, after each fork, a copy-on-write fault at
 * every page of memtrail's the pass wrote (docs/performance.md, *A traced
 * shell's writer*). Faster, a ring still wakes the writer when it is half
 * full (record/ring.c); and a writer that loops without sleeping (a Python
 * workload: twenty thousand events a millisecond) goes on so: a pass right
 * after a busy one applies few events, but at that rate. */
#define TRICKLE 64
#define TRICKLE_PER_MS 1000u
#define TRICKLE_MAX_MS (MTSNAP_TIMELINE_STEP_NS / 1000000u)
#define RECLAIM_NS (200u * 1000 * 1000)
#define WARM_STACKS 64          /* stacks whose frames an idle pass names (writer/symwarm.c) */
/* After a thread began to exit, the idle writer looks this long whether it
 * is the last thread left (writer_alone). */
#define ALONE_WATCH_NS (2000u * 1000 * 1000)
/* A deferred writer (a new process's, a fork child's) starts after this
 * long or this many events... */
#define DEFER_NS (10u * 1000 * 1000)
#define DEFER_EVENTS 4096u
/* ...and, on the thread that made the process, only once a drain it made
 * itself of at least DEFER_SHARE_EVENTS took this share of its CPU time
 * since the drain before it (percent; a few events' drain costs a few
 * microseconds whatever their number, which a thread that mostly sleeps
 * may not spend between two drains). */
#define DEFER_SHARE_PCT 15u
#define DEFER_SHARE_EVENTS 1024u
/* A termination handler waits this long for a writer another thread starts. */
#define START_WAIT_NS (200u * 1000 * 1000)

enum { REQ_FREE = 0, REQ_FILLING, REQ_READY, REQ_DONE };

typedef struct request {
    _Atomic int state;       /* atomic: owned by whoever moved it last */
    int trigger;
    int waiting;             /* a thread waits for REQ_DONE */
    pid_t sender;            /* signal: who asked (for the reply socket) */
    int cookie;
    uint64_t target;         /* events numbered below this are included */
    int result;
    struct mtp_pygraph *graph; /* captured by the waiting thread (GIL held), or NULL */
    const mtp_stopped_t *held; /* the waiting thread holds itself for the leak scan
                                  (exit, final: mtp_snapshot_sync), or NULL */
    _Atomic int scanned;       /* atomic: the scan is over, the held thread may take
                                  its signals again (a futex wake on `state`) */
} request_t;

/* A request's label and the path of its snapshot, apart from the slots:
 * the writer polls every slot's state, and with these 4 KiB in each slot
 * every state was on a page of its own (16 page faults in each process,
 * its first poll reading them). Owned as the slot is. */
typedef struct request_text {
    char label[MTP_LABEL_MAX];
    char path[PATH_MAX + 64];
} request_text_t;

typedef struct cursor {
    mtp_thread_t *t;
    uint64_t tail, head;
} cursor_t;

static request_t requests[NREQ];
static MTP_LARGE request_text_t request_texts[NREQ];
static request_text_t *text_of(const request_t *rq)
{
    return &request_texts[rq - requests];
}
static MTP_FORKED _Atomic int signal_overflow; /* atomic: a signal found no free slot */
/* atomic: bumped to wake the writer (a futex: memtrail keeps no file
 * descriptor open, since programs close and reuse descriptors freely) */
static _Atomic uint32_t wake_seq;
static MTP_FORKED _Alignas(64) pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;
static MTP_FORKED _Atomic int writer_running; /* atomic */
static MTP_FORKED _Atomic int fork_waiting; /* atomic: threads in fork's prepare handler */
static MTP_FORKED _Atomic int deferred;   /* atomic: the writer is still to start */
static MTP_FORKED uint64_t deferred_since, deferred_floor; /* set by defer_start, then read-only */
/* Deferred drains (deferred_wake). The thread that made the process (its
 * thread id is the pid) measures its own in CPU time (CLOCK_THREAD_CPUTIME_ID:
 * time it was not running is not its cost): `drained_cpu` is its CPU clock
 * when its last drain ended, 0 before the first (a new process's main
 * thread, a fork child's thread, start from 0); `drains_pay` says one of them
 * of DEFER_SHARE_EVENTS or more took DEFER_SHARE_PCT of the CPU time since
 * the one before. `tick_at`: when the time line is next due a point
 * (monotonic). Written under writer_lock or by defer_start, read by any
 * thread's cold point. */
static MTP_FORKED _Atomic uint64_t drained_cpu, tick_at;
static MTP_FORKED _Atomic int drains_pay;
/* atomic: a handler could not start the writer; the next cold point of any
 * thread starts it without waiting for DEFER_NS or DEFER_EVENTS */
static MTP_FORKED _Atomic int start_now;
static MTP_FORKED int fork_locked;           /* atfork prepare took writer_lock (fork's own lock orders it) */
static MTP_TLS int on_writer;                /* per-thread: 1 on the writer thread */

/* writer-only */
/* The next event number to apply, written for every event: a cache line of
 * its own, away from the fields the producers read on their rings' cold
 * point (`deferred`) and in their wakes. */
static MTP_FORKED struct {
    uint64_t next;
} __attribute__((aligned(64))) expected;
static MTP_FORKED uint64_t gap_floor;        /* numbers below it may be skipped (fork child) */
/* Events numbered below it belong to an earlier attach (memtrail detach,
 * then attach again): dropped, not applied. Written while no writer runs. */
static uint64_t session_floor;
static _Atomic int stop_asked;               /* atomic: mtp_writer_stop's request */
static cursor_t *cursors;            /* mmap'd: grown while threads may be stopped */
static size_t ncursors, cursors_bytes;
static MTP_FORKED unsigned cursors_gen = ~0u;
static MTP_FORKED uint32_t seq;
static MTP_FORKED uint64_t stall_since;
static MTP_FORKED int exit_taken;    /* the exit (or final) snapshot was taken: no more intervals */

/* Async-signal-safe: an atomic add and a futex wake. */
void mtp_writer_wake(void)
{
    atomic_fetch_add_explicit(&wake_seq, 1, memory_order_release);
    syscall(SYS_futex, &wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static size_t drain(uint64_t limit, size_t max, int *stalled);

/* A deferred drain, writer_lock held; the thread that made the process
 * times its own (drained_cpu, drains_pay). */
static void deferred_drain(void)
{
    int stalled;
    mtp_thread_t *self = mtp_tls_thread;
    int maker = self && atomic_load_explicit(&self->tid, memory_order_relaxed) == mtp_pid;
    uint64_t c0 = maker ? mtp_clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    size_t n = drain(UINT64_MAX, SIZE_MAX, &stalled);
    if (maker) {
        uint64_t c1 = mtp_clock_ns(CLOCK_THREAD_CPUTIME_ID);
        uint64_t last = atomic_load_explicit(&drained_cpu, memory_order_relaxed);
        if (n >= DEFER_SHARE_EVENTS && c1 > last && (c1 - c0) * 100 >= DEFER_SHARE_PCT * (c1 - last))
            atomic_store(&drains_pay, 1);
        atomic_store_explicit(&drained_cpu, c1, memory_order_relaxed);
    }
}

/* The time line's point, marked by the thread that made the process while
 * the writer is still to start (writer/timeline.c): pending until a drain
 * has applied the events numbered below the counter's value now. */
static void deferred_mark(uint64_t now)
{
    if (atomic_load(&deferred) && pthread_mutex_trylock(&writer_lock) == 0) {
        if (atomic_load(&deferred)) {
            uint64_t boundary = atomic_load(&mtp_counter.n);
            if (mtp_timeline_mark(now, boundary) < 0) {   /* PENDING_MAX marked: apply them */
                deferred_drain();
                mtp_timeline_mark(now, boundary);
            }
        }
        pthread_mutex_unlock(&writer_lock);
    }
    atomic_store_explicit(&tick_at, now + MTSNAP_TIMELINE_STEP_NS, memory_order_relaxed);
}

/* Deferred (no writer thread yet): the wake of a producer whose ring is half
 * full applies what is published, without waiting for numbers in flight.
 * trylock: a thread that already drains (or a signal handler interrupting
 * it) goes on, and its ring waits for the next wake. */
static void deferred_wake(void)
{
    if (atomic_load(&deferred) && pthread_mutex_trylock(&writer_lock) == 0) {
        if (atomic_load(&deferred))
            deferred_drain();
        pthread_mutex_unlock(&writer_lock);
    }
}

/* The snapshot signal's retry (mtp_writer_handler_retry): a kernel timer
 * id, -1 while none; its interval in ms, doubled at each retry. Timers are
 * not inherited by a fork child (atfork_child forgets them). */
static MTP_FORKED _Atomic int retry_timer = -1;   /* atomic */
static MTP_FORKED _Atomic int retry_busy;         /* atomic: a handler arms it */
static MTP_FORKED uint32_t retry_ms, retries;     /* owned by the retry_busy holder */
#define RETRY_FIRST_MS 20
#define RETRY_MAX_MS 1000
#define RETRY_TIMES 16   /* about 12 s in all; then only an allocation starts it */

static void retry_cancel(void)
{
    int id = atomic_exchange(&retry_timer, -1);
    if (id >= 0)
        syscall(SYS_timer_delete, id);
}

/* A deferred writer; without one, tracing stops in this process. */
static void start_late_writer(void)
{
    retry_cancel();
    if (mtp_writer_start() < 0) {
        atomic_store(&mtp_tracing, 0);
        mtp_warn("cannot start the writer thread in process %d: tracing stops there",
                 (int)mtp_pid);
    }
}

/* From a context where starting a thread is safe. One caller wins; the
 * others find `starting` set until the writer runs (or could not start). */
static MTP_FORKED _Atomic int starting;   /* atomic: a thread is in start_late_writer */
static void start_deferred(void)
{
    if (atomic_load(&deferred) && atomic_exchange(&deferred, 0)) {
        atomic_store(&starting, 1);
        start_late_writer();
        atomic_store(&starting, 0);
    }
}

/* start_deferred from a normal context (the API, an exit, a window): when
 * another thread is starting the writer, waits until it runs (at most
 * START_WAIT_NS), so that a request made meanwhile is not refused. */
static void start_and_wait(void)
{
    start_deferred();
    struct timespec pause = {0, 100 * 1000};
    uint64_t until = mtp_mono_ns() + START_WAIT_NS;
    while (atomic_load(&starting) && !atomic_load(&writer_running) && mtp_mono_ns() < until)
        nanosleep(&pause, NULL);
}

/* A signal handler (the snapshot and termination signals): a writer still
 * to start starts now when the interrupted code allows it, so that the
 * handler's request is served. */
void mtp_writer_handler_start(const void *ucontext)
{
    if (!atomic_load(&deferred))
        return;
    if (mtp_safepoint_interrupted(mtp_tls_thread, ucontext))
        start_deferred();
    else
        atomic_store(&start_now, 1);   /* another thread's next cold point starts it */
}

/* From the snapshot signal's handler, after mtp_writer_handler_start: a
 * writer still to start (the signal came while the program was in ld.so or
 * in memtrail) would serve the request only at an allocation, and a program
 * that waits for input makes none. So the signal comes again, from a
 * one-shot timer of memtrail's (raw system calls: async-signal-safe),
 * RETRY_FIRST_MS later, then twice as long each time up to RETRY_MAX_MS,
 * until a handler could start the writer, at most RETRY_TIMES times after
 * a request. Its value says it is a retry (MTP_RETRY_VALUE: no request of
 * its own). */
void mtp_writer_handler_retry(int signo, int is_retry)
{
    if (!atomic_load(&deferred) || atomic_exchange(&retry_busy, 1))
        return;
    if (!is_retry)
        retries = 0;   /* a new request: the full count again */
    if (retries++ >= RETRY_TIMES) {
        atomic_store(&retry_busy, 0);
        return;
    }
    int id = atomic_load(&retry_timer);
    if (id < 0) {
        struct sigevent ev;
        memset(&ev, 0, sizeof(ev));
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = signo;
        ev.sigev_value.sival_int = MTP_RETRY_VALUE;
        if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id) < 0)
            id = -1;
        atomic_store(&retry_timer, id);
        retry_ms = 0;
    }
    if (id >= 0) {
        retry_ms = !is_retry || !retry_ms ? RETRY_FIRST_MS
                   : retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
        struct itimerspec at = {{0, 0}, {retry_ms / 1000, (long)(retry_ms % 1000) * 1000000}};
        syscall(SYS_timer_settime, id, 0, &at, NULL);
    }
    atomic_store(&retry_busy, 0);
}

/* The ring's cold point, inside a hook (base/seams.h writer_due). */
static int deferred_due(mtp_thread_t *t)
{
    if (!atomic_load_explicit(&deferred, memory_order_relaxed))
        return 0;
    if (!atomic_load(&start_now)) {
        uint64_t now = mtp_mono_ns();
        if (atomic_load_explicit(&mtp_counter.n, memory_order_relaxed) - deferred_floor <
                DEFER_EVENTS && now - deferred_since < DEFER_NS)
            return 1;
        if (!atomic_load_explicit(&drains_pay, memory_order_relaxed) &&
            atomic_load_explicit(&t->tid, memory_order_relaxed) == mtp_pid) {
            if (now >= atomic_load_explicit(&tick_at, memory_order_relaxed))
                deferred_mark(now);
            return 1;
        }
    }
    if (mtp_safepoint(t))
        start_deferred();
    return atomic_load(&deferred);
}

/* The writer starts later (a new process, a fork child). Called while no
 * other thread runs memtrail's code: the constructor, fork's child handler. */
static MTP_FORK_CODE void defer_start(void)
{
    deferred_since = mtp_mono_ns();
    deferred_floor = gap_floor;
    if (atomic_load(&drained_cpu))
        atomic_store(&drained_cpu, 0);
    if (atomic_load(&drains_pay))
        atomic_store(&drains_pay, 0);
    atomic_store(&tick_at, deferred_since + MTSNAP_TIMELINE_STEP_NS);
    mtp_seams.writer_wake = deferred_wake;
    mtp_seams.writer_due = deferred_due;
    atomic_store(&deferred, 1);
}

/* ---- draining ---- */
static void publish_tails(void)
{
    for (size_t i = 0; i < ncursors; i++)
        mtp_ring_set_tail(cursors[i].t, cursors[i].tail);
}

static void rebuild_cursors(void)
{
    publish_tails();
    cursors_gen = mtp_thread_generation();
    ncursors = 0;
    for (mtp_thread_t *t = mtp_thread_list(); t; t = t->next) {
        if (atomic_load_explicit(&t->state, memory_order_acquire) != MTP_THREAD_LIVE)
            continue;
        if (mtp_mm_grow((void **)&cursors, &cursors_bytes, (ncursors + 1) * sizeof(*cursors)) < 0)
            break;
        uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
        cursors[ncursors++] = (cursor_t){t, tail, tail};
    }
}

/* ev from t's ring (a REMAP_NEW follows its REMAP_OLD there, t keeps what
 * that one found). */
static inline void apply(const mtp_event_t *ev, mtp_thread_t *t)
{
    if (ev->kind == MTP_EV_ALLOC)
        mtp_live_alloc(ev);
    else if (ev->kind == MTP_EV_FREE)
        mtp_live_free(ev);
    else if (ev->kind == MTP_EV_TRACK)
        mtp_live_track(ev);
    else if (ev->kind == MTP_EV_UNTRACK)
        mtp_live_untrack(ev);
    else if (ev->kind == MTP_EV_UNMAP)
        mtp_live_unmap(ev);
    else if (ev->kind == MTP_EV_REMAP_OLD)
        t->remap_found = mtp_live_unmap(ev);
    else if (ev->kind == MTP_EV_REMAP_NEW)
        mtp_live_remap(ev, t->remap_found);
    else if (ev->kind == MTP_EV_RETRACE)
        mtp_live_retrace(ev);
    else if (ev->kind == MTP_EV_WINDOW)
        mtp_window_event(ev);
}

/* Applies events numbered below `limit`, at most `max` of them, and
 * closes each pending time line point (writer/timeline.c) whose events it
 * has applied, before any later one. Returns how many; *stalled is set when
 * waiting on an in-flight number. */
static size_t drain(uint64_t limit, size_t max, int *stalled)
{
    size_t done = 0, cur = 0;
    *stalled = 0;
    if (cursors_gen != mtp_thread_generation())
        rebuild_cursors();

    uint64_t mark = mtp_timeline_pending(), lim = limit < mark ? limit : mark;
    while (done < max) {
        if (MTP_UNLIKELY(expected.next >= lim)) {
            if (expected.next < mark)
                break;   /* limit reached */
            mtp_timeline_close();
            mark = mtp_timeline_pending();
            lim = limit < mark ? limit : mark;
            continue;
        }
        if (cur < ncursors) {
            cursor_t *c = &cursors[cur];
            if (c->tail < c->head) {
                const mtp_event_t *ev = &c->t->slots[c->tail & (MTP_RING_SLOTS - 1)];
                if (ev->counter <= expected.next) {
                    if (MTP_LIKELY(ev->counter >= session_floor))
                        apply(ev, c->t);
                    if (ev->counter == expected.next)
                        expected.next++;
                    c->tail++;
                    done++;
                    if ((c->tail & 1023) == 0)
                        mtp_ring_set_tail(c->t, c->tail);
                    continue;
                }
            }
        }
        /* Find the ring holding `expected.next` (or a late record). */
        size_t found = ncursors;
        uint64_t lowest = UINT64_MAX;
        for (size_t i = 0; i < ncursors; i++) {
            cursor_t *c = &cursors[i];
            if (c->tail == c->head)
                c->head = atomic_load_explicit(&c->t->head, memory_order_acquire);
            if (c->tail == c->head)
                continue;
            uint64_t n = c->t->slots[c->tail & (MTP_RING_SLOTS - 1)].counter;
            if (n <= expected.next) {
                found = i;
                break;
            }
            if (n < lowest)
                lowest = n;
        }
        if (found < ncursors) {
            cur = found;
            stall_since = 0;
            continue;
        }
        if (cursors_gen != mtp_thread_generation()) {
            rebuild_cursors();
            continue;
        }
        if (expected.next < gap_floor) {
            expected.next = lowest < gap_floor ? lowest : gap_floor;
            continue;
        }
        if (lowest == UINT64_MAX)
            break;  /* nothing published: idle, or the next number is in flight */
        /* Later numbers are waiting: `expected.next` is in flight. */
        uint64_t now = mtp_mono_ns();
        if (!stall_since)
            stall_since = now;
        if (now - stall_since > STALL_NS) {
            expected.next = lowest;  /* lost (a hook left through longjmp): skip */
            stall_since = 0;
            continue;
        }
        *stalled = 1;
        break;
    }
    publish_tails();
    return done;
}

/* Drains until every event numbered below `target` is applied. */
static void drain_until(uint64_t target)
{
    int stalled;
    uint64_t start = mtp_mono_ns();
    while (expected.next < target) {
        size_t n = drain(target, SIZE_MAX, &stalled);
        if (expected.next >= target)
            break;
        if (!n && !stalled) {
            /* Nothing published below target: the numbers are in flight. */
            if (mtp_mono_ns() - start > STALL_NS) {
                expected.next = target;
                break;
            }
        }
        sched_yield();
    }
}

/* ---- snapshots ---- */
/* For the leak scan, threads stopped: applies what is published; 1 when no
 * event number taken is still in flight. */
static int settle(void)
{
    int stalled;
    drain(UINT64_MAX, SIZE_MAX, &stalled);
    return expected.next >= atomic_load(&mtp_counter.n);
}

/* Between chunks of a snapshot (mtp_snapinfo_t.yield): the events published
 * since are applied, so that no thread waits on a full ring while a big
 * snapshot is written; the file still holds the moment the snapshot began
 * (writer/snapview.c). Requests wait for the snapshot's end. A thread in
 * fork's prepare handler gets the lock now rather than after the snapshot:
 * the tables are consistent between two events, and the child discards the
 * unfinished snapshot (mtp_writer_atfork_child). */
static size_t snapshot_yield(void)
{
    int stalled;
    if (atomic_load_explicit(&fork_waiting, memory_order_acquire)) {
        pthread_mutex_unlock(&writer_lock);
        while (atomic_load_explicit(&fork_waiting, memory_order_acquire))
            sched_yield();
        pthread_mutex_lock(&writer_lock);
    }
    return drain(UINT64_MAX, BATCH, &stalled);
}

/* ---- libraries loaded beside the writer ----
 * Loading libdw or libzstd (base/libload.h) takes the dynamic loader's
 * lock, which a program thread holds through a whole dlopen, constructors
 * included, and those may allocate until their ring is full: the writer
 * must not wait for that lock. So a thread of its own (the loader) calls
 * dlopen, and the writer waits for it draining the rings, for LIB_WAIT_NS at
 * most. Past that (a thread that holds the loader's lock waits for this very
 * snapshot: exit called from a constructor), the frames that needed libdw
 * keep their addresses in this snapshot, the records that needed libzstd
 * are stored, and later snapshots have them once the library is in.
 * Creating the loader takes only locks held briefly and with few
 * allocations under them (the stack cache's, the loader's TLS lock), with
 * the rings just drained. The writer keeps writer_lock meanwhile: a fork
 * waits for the load, so that no child has a library half loaded (one that
 * forks past a LIB_WAIT_NS wait while it loads never uses that one:
 * mtp_lib_atfork_child).
 * One loader at a time; the writer joins it once it is done, so that
 * nothing counts it afterwards. `loader_live` (atomic) says it exists
 * (mtp_writer_threads); the rest is writer-only. */
#define LIB_WAIT_NS (5000ull * 1000 * 1000)
#define LOADER_STACK (512u << 10)
#define LOADER_TRIES 5              /* pthread_create calls while it says EAGAIN */
static _Atomic int loader_live;     /* atomic: a loader thread exists (set by the writer) */
static _Atomic int loader_done;     /* atomic: its dlopen returned (a futex word) */
static pthread_t loader_th;         /* writer-only */
static int loader_lib;              /* writer-only: the library it loads */
static int loader_waited_out;       /* writer-only: a wait for it ran out */

static void *loader_main(void *arg)
{
    mtp_tls_guard = MTP_GUARD_INTERNAL;   /* its allocations are memtrail's, untraced */
    mtp_tls_lib_loader = 1;                /* the loader's: roots of the leak scan's */
    mtp_lib_load((int)(intptr_t)arg);
    atomic_store(&loader_done, 1);
    syscall(SYS_futex, &loader_done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return NULL;
}

/* Waits for the loader, draining, until `deadline`: 1 when it is done
 * (joined), else 0. */
static int loader_wait(uint64_t deadline)
{
    int stalled;
    struct timespec tick = {0, 1000 * 1000};
    while (!atomic_load(&loader_done)) {
        if (mtp_mono_ns() >= deadline)
            return 0;
        drain(UINT64_MAX, BATCH, &stalled);
        syscall(SYS_futex, &loader_done, FUTEX_WAIT_PRIVATE, 0, &tick, NULL, 0);
    }
    pthread_join(loader_th, NULL);
    atomic_store(&loader_live, 0);
    loader_waited_out = 0;
    return 1;
}

/* mtp_lib_loader on the writer thread, which symbolizes and compresses with
 * writer_lock held at points where a yield may run (writer/symwarm.c,
 * snapwrite.c). */
static int load_beside(int lib)
{
    static int failed_warned, wait_warned;
    int stalled;
    if (!on_writer)
        return mtp_lib_load(lib);
    uint64_t deadline = loader_waited_out ? 0 : mtp_mono_ns() + LIB_WAIT_NS;
    if (atomic_load(&loader_live) && loader_lib != lib && !loader_wait(deadline))
        goto waited_out;   /* the other library still loads */
    if (mtp_lib_ready(lib))
        return 0;
    if (!atomic_load(&loader_live)) {
        pthread_attr_t attr;
        drain(UINT64_MAX, SIZE_MAX, &stalled);   /* the rings drained before the thread is made */
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, LOADER_STACK);
        atomic_store(&loader_done, 0);
        atomic_store(&loader_live, 1);
        loader_lib = lib;
        /* EAGAIN is the system's tasks or memory short for a moment: tried
         * again a few times, 20 ms apart */
        int r;
        for (int tries = 0;; tries++) {
            r = pthread_create(&loader_th, &attr, loader_main, (void *)(intptr_t)lib);
            if (r != EAGAIN || tries == LOADER_TRIES - 1)
                break;
            struct timespec pause = {0, 20 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        pthread_attr_destroy(&attr);
        if (r != 0) {
            atomic_store(&loader_live, 0);
            mtp_warn_once(&failed_warned, "libload: cannot start a thread to load a library (%s); "
                          "frames missing from the symbol cache keep their addresses and "
                          "snapshots are stored uncompressed meanwhile", strerrordesc_np(r));
            return -r;
        }
    }
    if (loader_wait(deadline))
        return mtp_lib_ready(lib) ? 0 : -ENOENT;
waited_out:
    loader_waited_out = 1;   /* later calls do not wait for it again */
    mtp_warn_once(&wait_warned, "libload: a library is still loading after %llu s (the "
                  "loader's lock is held); frames it would name keep their addresses and "
                  "records it would compress are stored until it is in",
                  LIB_WAIT_NS / MTP_NS_PER_SEC);
    return -ETIMEDOUT;
}

/* The writer thread's CPU time so far, 0 without one (writer_clock: set by
 * the writer thread when it starts, cleared in a fork child until its own
 * writer starts). */
static clockid_t writer_clock;
static MTP_FORKED _Atomic int writer_clock_set;
static uint64_t writer_cpu_ns(void)
{
    return atomic_load(&writer_clock_set) ? mtp_clock_ns(writer_clock) : 0;
}

static int wants_scan(int trigger, const struct mtp_pygraph *graph)
{
    if (mtp_cfg.leak_check == MTP_LEAK_OFF)
        return 0;
    return graph || mtp_cfg.leak_check == MTP_LEAK_ALL || trigger == MTSNAP_TRIGGER_EXIT ||
           trigger == MTSNAP_TRIGGER_FINAL;
}

/* The held requester may take its signals again. */
static void release_held(request_t *rq)
{
    if (rq && rq->held && !atomic_exchange(&rq->scanned, 1))
        syscall(SYS_futex, &rq->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* While an exit snapshot is taken on the exiting thread (sync_inline), that
 * thread, holding itself: every snapshot taken meanwhile scans it so.
 * Written and read with writer_lock held. */
static const mtp_stopped_t *inline_self;

/* rq: the request served, or NULL. */
static int take_snapshot(int trigger, const char *label, char *path, size_t pathlen,
                         struct mtp_pygraph *graph, request_t *rq)
{
    static int warned, scan_warned;
    mtp_leakscan_t ls;
    int scanned = 0;
    uint64_t scan_ns = 0;
    if (trigger == MTSNAP_TRIGGER_EXIT || trigger == MTSNAP_TRIGGER_FINAL)
        exit_taken = 1;
    if (wants_scan(trigger, graph)) {
        uint64_t t0 = mtp_mono_ns();
        static const mtp_block_source_t live = {mtp_live_count, mtp_live_pages, mtp_live_wide};
        int r = mtp_leakscan_run(&ls, graph, settle, &live,
                                 rq && rq->held ? rq->held : inline_self);
        scan_ns = mtp_mono_ns() - t0;
        if (r == 0)
            scanned = 1;
        else
            mtp_warn_once(&scan_warned, "leak scan failed (%s); snapshots go on without it",
                          strerrordesc_np(-r));
    }
    release_held(rq);
    mtsnap_costs_t costs = {
        .wait_ns = atomic_load(&mtp_ring_costs.wait_ns), .waits = atomic_load(&mtp_ring_costs.waits),
        .worst_wait_ns = atomic_load(&mtp_ring_costs.worst_ns), .writer_cpu_ns = writer_cpu_ns(),
        .events = atomic_load(&mtp_counter.n)};
    pid_t ppid = mtp_exit_copy_ppid();   /* a copy's: its original's parent */
    mtp_snapinfo_t info = {
        .yield = snapshot_yield, .scan_ns = scan_ns, .costs = &costs,
        .pid = mtp_pid, .ppid = ppid ? ppid : getppid(), .counter = expected.next,
        .trigger = trigger,
        .seq = ++seq, .label = label, .time_ns = mtp_now_ns(),
        .leaks = scanned ? &ls : NULL, .graph = graph,
        .start_ns = mtp_start_ns, .cmdline = mtp_proc.cmdline,
        .cmdline_len = mtp_proc.cmdline_len, .exe = mtp_proc.exe, .hostname = mtp_proc.hostname};
    int r = mtp_snapshot_write(&info, path, pathlen);
    if (scanned)
        mtp_leakscan_free(&ls);
    if (!exit_taken)   /* the process goes on: libdw's memory back to the system */
        mtp_ph_trim(MTP_PH_KEEP);
    if (r < 0)
        mtp_warn_once(&warned, "cannot write a snapshot in %s: %s (later failures are not reported)",
                      mtp_cfg.outdir, strerrordesc_np(-r));
    return r;
}

/* The connection to `memtrail snapshot` while its snapshot is written, -1
 * when none (writer-only): a child forked meanwhile closes it. */
static MTP_FORKED int reply_fd = -1;

/* Signal from `memtrail snapshot`: connect back, read the label, reply with the path. */
static void serve_signal(request_t *rq)
{
    int fd = -1;
    char label[MTP_LABEL_MAX] = "";
    if (rq->cookie > 0 && rq->sender > 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
            mtproto_channel_name(sa.sun_path, sizeof(sa.sun_path), (long)rq->sender, (long)rq->cookie));
        struct timeval tv = {2, 0};
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
                close(fd);
                fd = -1;
            }
        }
        size_t len = 0;
        while (fd >= 0 && len + 1 < sizeof(label)) {
            ssize_t k = read(fd, label + len, 1);
            if (k <= 0 || label[len] == MTPROTO_EOL)
                break;
            len++;
        }
        label[len] = 0;
    }
    reply_fd = fd;
    drain_until(rq->target);
    char path[PATH_MAX + 64];
    int r = take_snapshot(MTSNAP_TRIGGER_SIGNAL, label, path, sizeof(path), NULL, NULL);
    reply_fd = -1;
    if (fd >= 0) {
        char reply[PATH_MAX + 128];
        int n = r == 0 ? snprintf(reply, sizeof(reply), MTPROTO_REPLY_OK "%s\n", path)
                       : snprintf(reply, sizeof(reply), MTPROTO_REPLY_ERROR "cannot write in %s: %s\n",
                                  mtp_cfg.outdir, strerrordesc_np(-r));
        ssize_t w = write(fd, reply, (size_t)n);
        (void)w;
        close(fd);
    }
}

static void serve_requests(void)
{
    if (atomic_exchange(&signal_overflow, 0)) {
        request_t rq = {.target = atomic_load(&mtp_counter.n)};
        serve_signal(&rq);
    }
    for (;;) {
        request_t *rq = NULL;
        for (int i = 0; i < NREQ; i++) {
            request_t *q = &requests[i];
            if (atomic_load_explicit(&q->state, memory_order_acquire) == REQ_READY &&
                (!rq || q->target < rq->target))
                rq = q;
        }
        if (!rq)
            return;
        if (rq->trigger == MTSNAP_TRIGGER_SIGNAL) {
            serve_signal(rq);
        } else {
            drain_until(rq->target);
            request_text_t *tx = text_of(rq);
            rq->result = take_snapshot(rq->trigger, tx->label, tx->path, sizeof(tx->path),
                                       rq->graph, rq);
        }
        int waiting = rq->waiting;
        atomic_store_explicit(&rq->state, waiting ? REQ_DONE : REQ_FREE, memory_order_release);
        if (waiting)   /* the requester sleeps on the state word (mtp_snapshot_sync) */
            syscall(SYS_futex, &rq->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

static request_t *claim_slot(void)
{
    for (int i = 0; i < NREQ; i++) {
        int expect = REQ_FREE;
        if (atomic_compare_exchange_strong(&requests[i].state, &expect, REQ_FILLING))
            return &requests[i];
    }
    return NULL;
}

void mtp_snapshot_from_signal(pid_t sender, int cookie)
{
    request_t *rq = claim_slot();
    if (!rq) {
        atomic_store(&signal_overflow, 1);
    } else {
        rq->trigger = MTSNAP_TRIGGER_SIGNAL;
        rq->waiting = 0;
        rq->graph = NULL;
        rq->held = NULL;
        rq->sender = sender;
        rq->cookie = cookie;
        rq->target = atomic_load(&mtp_counter.n);
        atomic_store_explicit(&rq->state, REQ_READY, memory_order_release);
    }
    mtp_writer_wake();
}

/* Queues a request and sleeps on its state word until the writer marks it
 * done (it wakes us) or `deadline` (CLOCK_MONOTONIC ns) passes; the futex
 * timeout only rechecks both. Async-signal-safe: atomics, futex, nanosleep,
 * pthread_sigmask and a byte copy. -ETIMEDOUT leaves the request to the
 * writer. With `held` (no deadline then), the caller has blocked every
 * signal: the mask `unblock` is set back once the writer's scan is over. */
static int request_and_wait(int trigger, const char *label, struct mtp_pygraph *graph,
                            uint64_t deadline, char *path, size_t pathlen,
                            const mtp_stopped_t *held, const sigset_t *unblock)
{
    struct timespec pause = {0, 100 * 1000};
    request_t *rq;
    while (!(rq = claim_slot())) {
        if (mtp_mono_ns() >= deadline)
            return -ETIMEDOUT;
        nanosleep(&pause, NULL);
    }
    rq->trigger = trigger;
    rq->waiting = 1;
    rq->graph = graph;
    rq->held = held;
    atomic_store(&rq->scanned, 0);
    rq->sender = 0;
    rq->cookie = 0;
    request_text_t *tx = text_of(rq);
    size_t n = 0;
    for (; label && label[n] && n + 1 < sizeof(tx->label); n++)
        tx->label[n] = label[n];
    tx->label[n] = '\0';
    rq->target = atomic_load(&mtp_counter.n);
    atomic_store_explicit(&rq->state, REQ_READY, memory_order_release);
    mtp_writer_wake();
    struct timespec recheck = {0, 10 * 1000 * 1000};
    while (atomic_load_explicit(&rq->state, memory_order_acquire) != REQ_DONE) {
        if (held && unblock && atomic_load(&rq->scanned)) {
            pthread_sigmask(SIG_SETMASK, unblock, NULL);
            unblock = NULL;
        }
        if (!atomic_load(&writer_running)) {
            atomic_store(&rq->state, REQ_FREE);
            return -ECANCELED;
        }
        if (mtp_mono_ns() >= deadline)
            return -ETIMEDOUT;
        syscall(SYS_futex, &rq->state, FUTEX_WAIT_PRIVATE, REQ_READY, &recheck, NULL, 0);
    }
    int r = rq->result;
    if (path)
        snprintf(path, pathlen, "%s", r == 0 ? tx->path : "");
    atomic_store_explicit(&rq->state, REQ_FREE, memory_order_release);
    return r == 0 ? 0 : (r == -ENOMEM ? r : -EIO);
}

int mtp_writer_ready(void)
{
    start_and_wait();
    return atomic_load(&writer_running);
}

/* The writer takes the snapshot: started first if still deferred. */
static int ask_writer(int trigger, const char *label, struct mtp_pygraph *graph, char *path,
                      size_t pathlen, const mtp_stopped_t *held, const sigset_t *unblock)
{
    start_and_wait();
    if (!atomic_load(&writer_running))
        return -ECANCELED;
    return request_and_wait(trigger, label, graph, UINT64_MAX, path, pathlen, held, unblock);
}

/* Whether the calling thread is the process's only one (memtrail's
 * /proc reader: the program's view of /proc/self/stat leaves memtrail's
 * threads out, hook/procstat.c). From /proc/self/stat, not
 * mtp_proc_threads: with a stat(2) of
 * /proc/self/task here, just before the exit copy's fork, a traced shell's
 * 1,000 commands took 0.5 ms more each (× 2.6 of bare against × 2.0, five
 * runs of each, docs/performance.md), the answers all the same; the cause
 * is not known. */
static int alone(void)
{
    char state;
    long threads;
    return mtp_proc_stat("/proc/self/stat", &state, &threads) == 0 && threads == 1;
}

/* Takes `sig` if it is pending now (every signal blocked) and was not in
 * `before`. */
static void drop_raised(int sig, const sigset_t *before)
{
    sigset_t now, one;
    struct timespec zero = {0, 0};
    if (sigismember(before, sig) || sigpending(&now) != 0 || !sigismember(&now, sig))
        return;
    sigemptyset(&one);
    sigaddset(&one, sig);
    while (sigtimedwait(&one, NULL, &zero) < 0 && errno == EINTR) {
    }
}

/* The exit (or final) snapshot of a process whose writer never started,
 * asked for by its only thread (sync_held's frame holds it, `self`): taken
 * here, on this thread, with writer_lock held, as the writer thread would
 * take it. Nothing else runs memtrail's code meanwhile: no other thread
 * exists and every signal is blocked. The thread's own allocations are
 * memtrail's (MTP_GUARD_INTERNAL, as on the writer thread), and a library
 * the symbolizer needs is loaded by this thread itself (load_beside), which
 * holds no lock a program thread could wait for. A snapshot signal's
 * request still queued (its handler could not start the writer) is served
 * first, this thread held for it too (inline_self). -EAGAIN: not so (another
 * thread exists, or the writer started); the caller asks the writer.
 * -EDEADLK: this thread holds writer_lock already (below). */
static __attribute__((noinline)) int sync_inline(int trigger, const char *label, char *path,
                                                 size_t pathlen, struct mtp_pygraph *graph,
                                                 mtp_stopped_t *self)
{
    static int warned;
    if (!atomic_load(&deferred) || !alone())
        return -EAGAIN;
    /* Alone, the lock can be held only by this thread, in the code a signal
     * interrupted (a producer draining its ring, deferred_wake) whose
     * handler is exiting: the snapshot is not taken (the writer would wait
     * for the same lock, forever). */
    if (pthread_mutex_trylock(&writer_lock) != 0) {
        mtp_warn_once(&warned, "no exit snapshot: the process exits from a signal handler "
                      "that interrupted memtrail");
        return -EDEADLK;
    }
    if (!atomic_load(&deferred)) {
        pthread_mutex_unlock(&writer_lock);
        return -EAGAIN;
    }
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_INTERNAL;
    /* The process's last snapshot (mtp_exiting: the process ends after it)
     * may be written by a copy of the process (writer/exitcopy.c). */
    int copy = atomic_load(&mtp_exiting) ? mtp_exit_copy() : MTP_EXIT_HERE;
    if (copy == MTP_EXIT_GONE) {
        mtp_tls_guard = guard;
        pthread_mutex_unlock(&writer_lock);
        if (path)
            snprintf(path, pathlen, "%s", "");
        return 0;
    }
    if (copy == MTP_EXIT_COPY)   /* the held thread is the copy's own now */
        self->tid = (pid_t)syscall(SYS_gettid);
    sigset_t pending;
    if (sigpending(&pending) != 0)
        sigfillset(&pending);
    drain_until(atomic_load(&mtp_counter.n));
    self->alone = 1;   /* as alone() saw: no thread can start before the unlock */
    inline_self = self;
    serve_requests();   /* a snapshot signal's, queued while no writer could start */
    request_t rq = {.trigger = trigger, .graph = graph, .held = self};
    char done[PATH_MAX + 64];
    int r = take_snapshot(trigger, label, done, sizeof(done), graph, &rq);
    if (copy == MTP_EXIT_COPY)   /* its work is done; nothing of the program's runs here */
        syscall(SYS_exit_group, r == 0 ? 0 : 1);
    inline_self = NULL;
    self->alone = 0;
    /* A write past RLIMIT_FSIZE raised SIGXFSZ at this thread, blocked here
     * (on the writer thread it stays blocked for good): memtrail's, not the
     * program's, so it is taken before the mask comes back, unless one was
     * pending already. */
    drop_raised(SIGXFSZ, &pending);
    mtp_tls_guard = guard;
    pthread_mutex_unlock(&writer_lock);
    if (path)
        snprintf(path, pathlen, "%s", r == 0 ? done : "");
    return r == 0 ? 0 : (r == -ENOMEM ? r : -EIO);
}

/* An exit (or final) snapshot: the process is ending, and this thread, the
 * only one left in most processes, holds itself still while the writer
 * scans, rather than being stopped (leak/leakscan.c): every signal blocked
 * (the stop held them too: they come once the scan is over), its registers
 * copied here, its stack scanned from this frame up. The frames below,
 * request_and_wait's, are memtrail's and go on running. The frames above,
 * mtp_snapshot_sync's and its callers', are scanned as a stopped thread's
 * would be. */
static __attribute__((noinline)) int sync_held(int trigger, const char *label, char *path,
                                               size_t pathlen, struct mtp_pygraph *graph)
{
    /* This frame is scanned: its words are all written here, none is left
     * over from earlier calls (sigfillset and the kernel write only part of
     * a sigset_t). */
    struct {
        sigset_t all, old;
        ucontext_t uc;
        mtp_stopped_t self;
    } h;
    memset(&h, 0, sizeof(h));
    sigfillset(&h.all);
    if (pthread_sigmask(SIG_SETMASK, &h.all, &h.old) != 0)
        return ask_writer(trigger, label, graph, path, pathlen, NULL, NULL);
    __asm__ volatile("mov %%fs:0, %0" : "=r"(h.self.tp));
    int r;
    if (getcontext(&h.uc) < 0) {
        r = ask_writer(trigger, label, graph, path, pathlen, NULL, NULL);
    } else {
        /* The registers a call may change hold nothing of the caller's: what
         * getcontext copied of them is left over from earlier calls. */
        static const int scratch[] = {REG_RAX, REG_RCX, REG_RDX, REG_RSI, REG_RDI,
                                      REG_R8, REG_R9, REG_R10, REG_R11};
        for (size_t i = 0; i < sizeof(scratch) / sizeof(scratch[0]); i++)
            h.uc.uc_mcontext.gregs[scratch[i]] = 0;
        h.self.tid = (pid_t)syscall(SYS_gettid);
        /* From h up: below it, this frame holds only spills of our own. */
        h.self.sp = (uintptr_t)&h;
        h.self.regs = (const uintptr_t *)h.uc.uc_mcontext.gregs;
        h.self.nregs = NGREG;
        r = atomic_load(&deferred) ? sync_inline(trigger, label, path, pathlen, graph, &h.self)
                                   : -EAGAIN;
        if (r == -EAGAIN)
            r = ask_writer(trigger, label, graph, path, pathlen, &h.self, &h.old);
    }
    pthread_sigmask(SIG_SETMASK, &h.old, NULL);
    return r;
}

/* The writer ends the process (the last thread): served here. A function
 * of its own, so that mtp_snapshot_sync's frame, which a held thread's scan
 * reads, has no buffer in it. */
static __attribute__((noinline)) int sync_on_writer(int trigger, const char *label, char *path,
                                                    size_t pathlen, struct mtp_pygraph *graph)
{
    pthread_mutex_lock(&writer_lock);
    drain_until(atomic_load(&mtp_counter.n));
    char done[PATH_MAX + 64];
    int r = take_snapshot(trigger, label, done, sizeof(done), graph, NULL);
    pthread_mutex_unlock(&writer_lock);
    if (path)
        snprintf(path, pathlen, "%s", r == 0 ? done : "");
    return r == 0 ? 0 : (r == -ENOMEM ? r : -EIO);
}

int mtp_snapshot_sync(int trigger, const char *label, char *path, size_t pathlen,
                      struct mtp_pygraph *graph)
{
    int ending = trigger == MTSNAP_TRIGGER_EXIT || trigger == MTSNAP_TRIGGER_FINAL;
    if (ending && !on_writer && atomic_load(&deferred))
        return sync_held(trigger, label, path, pathlen, graph);   /* maybe on this thread */
    start_and_wait();
    if (!atomic_load(&writer_running))
        return -ECANCELED;
    if (on_writer)
        return sync_on_writer(trigger, label, path, pathlen, graph);
    if (!ending)
        return request_and_wait(trigger, label, graph, UINT64_MAX, path, pathlen, NULL, NULL);
    return sync_held(trigger, label, path, pathlen, graph);
}

void mtp_writer_wait_requests(uint64_t timeout_ns)
{
    struct timespec pause = {0, 1000 * 1000};
    uint64_t deadline = mtp_mono_ns() + timeout_ns;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < NREQ && !busy; i++) {
            int st = atomic_load_explicit(&requests[i].state, memory_order_acquire);
            busy = st == REQ_FILLING || st == REQ_READY;
        }
        if (!busy || !atomic_load(&writer_running) || mtp_mono_ns() >= deadline)
            return;
        nanosleep(&pause, NULL);
    }
}

int mtp_snapshot_from_handler(int trigger, const char *label, uint64_t timeout_ns)
{
    /* A writer another thread is starting, or that this handler could not
     * start (mtp_writer_handler_start): another thread's next allocation
     * may start it (start_now). Waited for, at most START_WAIT_NS, unless
     * this is the process's only thread: then nothing can. */
    uint64_t now = mtp_mono_ns(), until = now + START_WAIT_NS;
    if (atomic_load(&deferred) && mtp_proc_threads() < 2)
        until = now;
    while (!atomic_load(&writer_running) && atomic_load(&mtp_tracing) && now < until) {
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
        now = mtp_mono_ns();
    }
    if (!atomic_load(&writer_running))
        return -ECANCELED;
    return request_and_wait(trigger, label, NULL, mtp_mono_ns() + timeout_ns, NULL, 0, NULL, NULL);
}

/* ---- the last thread ---- */
/* 1 when every application thread has exited and the writer alone keeps the
 * process alive (the main thread called pthread_exit, or a child forked from
 * a thread saw that thread return). glibc ends a process with exit(0) when
 * its last thread ends; the writer counts as a thread, so it must do that
 * itself. mtp_proc_threads counts the threads; the thread group leader stays
 * counted as a zombie after pthread_exit until the process ends, so with two
 * threads the leader's state says whether it is still running. */
static int writer_alone(void)
{
    char leader_state;
    long threads = mtp_proc_threads(), unused;
    char path[64];
    if (threads < 0 || threads > 2)
        return 0;
    if (threads <= 1)
        return 1;
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)mtp_pid);
    return mtp_proc_stat(path, &leader_state, &unused) == 0 &&
           (leader_state == 'Z' || leader_state == 'X');
}

/* ---- the thread ---- */
/* The writer's first moments on its creator's CPU. Most processes are short
 * (a shell's commands, `python3 -c`) and spend their life starting up, and a
 * writer running beside such a program on another CPU costs it more than it
 * saves: each copy-on-write fault of the program must then flush that CPU's
 * TLB too (an interprocessor interrupt), each wake of the writer is one, and
 * the ring slots the writer reads move between the CPUs' caches. Bound to
 * the program's CPU, the writer runs when the program blocks or is
 * preempted, on slots still in the cache: Debian's `python3 -c pass` took 6
 * to 12 ms less CPU (docs/performance.md). So the writer starts bound to
 * the CPU its creator runs on, and takes its creator's CPU set after
 * SAME_CPU_NS, or as soon as a producer has waited on a full ring (then it
 * does not keep up on a CPU it shares). Both written by mtp_writer_start
 * before it creates the thread, read by the thread. */
#define SAME_CPU_NS (200 * MTP_NS_PER_MS)
static int start_cpu = -1;          /* -1: not bound */
static cpu_set_t start_cpus;

/* The creator, before it creates the thread: start_cpu set (or -1), and
 * attr made to start the thread bound to it (glibc binds the new thread
 * before it runs). Returns whether it is. */
static int bind_start_cpu(pthread_attr_t *attr)
{
    cpu_set_t one;
    int cpu = sched_getcpu();
    start_cpu = -1;
    if (cpu < 0 || cpu >= CPU_SETSIZE ||
        sched_getaffinity(0, sizeof(start_cpus), &start_cpus) < 0 || CPU_COUNT(&start_cpus) < 2)
        return 0;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (pthread_attr_setaffinity_np(attr, sizeof(one), &one) != 0)
        return 0;
    start_cpu = cpu;
    return 1;
}

/* The writer, its time on start_cpu over: its creator's CPU set, unless
 * someone else set its CPUs meanwhile (`taskset -a -p` on the process):
 * then theirs stay. */
static void unbind_start_cpu(void)
{
    cpu_set_t cur;
    if (sched_getaffinity(0, sizeof(cur), &cur) == 0 && CPU_COUNT(&cur) == 1 &&
        CPU_ISSET(start_cpu, &cur))
        sched_setaffinity(0, sizeof(start_cpus), &start_cpus);
}

static void *writer_main(void *arg)
{
    mtp_tls_guard = MTP_GUARD_INTERNAL;
    on_writer = 1;
    if (pthread_getcpuclockid(pthread_self(), &writer_clock) == 0)
        atomic_store(&writer_clock_set, 1);
    uint64_t interval = (uint64_t)mtp_cfg.interval_ms * 1000000u;
    uint64_t now = mtp_mono_ns();
    uint64_t next_interval = interval ? now + interval : UINT64_MAX;
    uint64_t next_reclaim = now + RECLAIM_NS;
    uint64_t unbind_at = start_cpu >= 0 ? now + SAME_CPU_NS : 0;   /* bound from the start */
    int idle_ms = 1;
    uint64_t last_pass = now;   /* the end of the pass before (monotonic ns) */
    /* Counted by mtp_writer_start before this thread existed: a thread that
     * ends before this one first runs (a fork child's only thread can) is
     * still seen as an exit. */
    unsigned exits_seen = (unsigned)(uintptr_t)arg;
    uint64_t watch_until = 0;

    for (;;) {
        int stalled;
        uint32_t seen = atomic_load_explicit(&wake_seq, memory_order_acquire);
        pthread_mutex_lock(&writer_lock);
        size_t n = drain(UINT64_MAX, BATCH, &stalled);
        serve_requests();
        /* Idle: name the frames of new stacks before a snapshot needs them. */
        int warming = !n && !stalled && !exit_taken && mtp_cfg.warm &&
                      mtp_writer_sym_warm(WARM_STACKS);
        now = mtp_mono_ns();
        if (MTP_UNLIKELY(unbind_at) &&
            (now >= unbind_at || atomic_load_explicit(&mtp_ring_costs.waits, memory_order_relaxed))) {
            unbind_start_cpu();
            unbind_at = 0;
        }
        mtp_timeline_tick(now);
        if (now >= next_interval) {
            /* None after the exit snapshot: the process is ending, and
             * _exit would cut the file short. */
            if (!exit_taken) {
                uint64_t target = atomic_load(&mtp_counter.n);
                drain_until(target);
                take_snapshot(MTSNAP_TRIGGER_INTERVAL, "", NULL, 0, NULL, NULL);
            }
            next_interval = mtp_mono_ns() + interval;
        }
        if (now >= next_reclaim) {
            mtp_thread_reclaim_dead();
            next_reclaim = now + RECLAIM_NS;
        }
        /* The last thread: only after a thread began to exit, and with the
         * lock held, so that no fork inherits the /proc file it reads. */
        unsigned exits = mtp_thread_exits();
        if (exits != exits_seen) {
            exits_seen = exits;
            watch_until = now + ALONE_WATCH_NS;
        }
        if (!n && !stalled && now < watch_until && writer_alone()) {
            pthread_mutex_unlock(&writer_lock);
            exit(0);   /* as glibc does when the last thread ends: the exit snapshot follows */
        }
        if (atomic_load(&stop_asked)) {   /* memtrail detach: no request is left */
            publish_tails();
            mtp_ring_orphan(1);
            atomic_store(&writer_clock_set, 0);
            atomic_store(&writer_running, 0);
            pthread_mutex_unlock(&writer_lock);
            syscall(SYS_futex, &writer_running, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
            return NULL;
        }
        pthread_mutex_unlock(&writer_lock);

        int trickle = n && (n < (mtp_cfg.sample ? SAMPLED_TRICKLE : TRICKLE) ||
                            (!mtp_cfg.sample &&
                             (uint64_t)n * MTP_NS_PER_MS < TRICKLE_PER_MS * (now - last_pass)));
        last_pass = now;
        if ((n && !trickle) || stalled || warming) {
            idle_ms = 1;
            if (stalled)
                sched_yield();
            continue;
        }
        if (trickle && !mtp_cfg.sample && idle_ms > (int)TRICKLE_MAX_MS)
            idle_ms = TRICKLE_MAX_MS;
        int timeout = idle_ms;
        if (next_interval != UINT64_MAX) {
            uint64_t left = (next_interval - now) / 1000000u;
            if ((uint64_t)timeout > left)
                timeout = (int)left;
        }
        if (unbind_at && (uint64_t)timeout > (unbind_at - now) / 1000000u + 1)
            timeout = (int)((unbind_at - now) / 1000000u) + 1;   /* (now < unbind_at here) */
        /* Sleeps unless a wake came since `seen` was read (then EAGAIN at once). */
        struct timespec ts = {timeout / 1000, (long)(timeout % 1000) * 1000000};
        if (syscall(SYS_futex, &wake_seq, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0) == 0 ||
            atomic_load_explicit(&wake_seq, memory_order_relaxed) != seen)
            idle_ms = 1;
        else if (idle_ms < IDLE_MAX_MS)
            idle_ms = idle_ms * 2 < IDLE_MAX_MS ? idle_ms * 2 : IDLE_MAX_MS;
    }
    return NULL;
}

static void writer_attr(pthread_attr_t *attr)   /* detached */
{
    pthread_attr_init(attr);
    pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED);
}

int mtp_writer_start(void)
{
    pthread_t th;
    pthread_attr_t attr;
    sigset_t all, old;

    mtp_seams.writer_wake = mtp_writer_wake;   /* full rings wake this thread */
    mtp_lib_loader = load_beside;
    mtp_seams.writer_due = deferred_due;
    sigfillset(&all);
    writer_attr(&attr);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The thread's stack and TLS are memtrail's, not the program's: a fork
     * child's writer may start outside a hook (a handler, the exit path),
     * and then pthread_create's allocations and mapping are made as inside
     * one (untraced; a free it makes is recorded, as in any hook). */
    int guard = mtp_tls_guard;
    if (guard == MTP_GUARD_NONE)
        mtp_tls_guard = MTP_GUARD_HOOK;
    int bound = bind_start_cpu(&attr);   /* its first moments on this CPU (writer_main) */
    int r = pthread_create(&th, &attr, writer_main, (void *)(uintptr_t)mtp_thread_exits());
    if (r != 0 && bound) {   /* the CPU cannot be had now: started unbound */
        start_cpu = -1;
        pthread_attr_destroy(&attr);
        writer_attr(&attr);
        r = pthread_create(&th, &attr, writer_main, (void *)(uintptr_t)mtp_thread_exits());
    }
    mtp_tls_guard = guard;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r != 0)
        return -r;
    atomic_store(&writer_running, 1);
    return 0;
}

/* A new process (core/control.c): the writer starts later (defer_start). */
int mtp_writer_defer(void)
{
    mtp_lib_loader = load_beside;
    defer_start();
    return 0;
}

/* memtrail detach: the writer serves what is queued, then ends; returns
 * once it has (at most timeout_ns; -ETIMEDOUT then, and it ends later).
 * Producers whose rings are full no longer wait (mtp_ring_orphan). */
int mtp_writer_stop(uint64_t timeout_ns)
{
    if (!atomic_load(&writer_running))
        return 0;
    atomic_store(&stop_asked, 1);
    mtp_writer_wake();
    uint64_t deadline = mtp_mono_ns() + timeout_ns;
    struct timespec ts = {0, 10 * 1000 * 1000};
    while (atomic_load(&writer_running)) {
        if (mtp_mono_ns() >= deadline)
            return -ETIMEDOUT;
        syscall(SYS_futex, &writer_running, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);
    }
    return 0;
}

/* memtrail attach again, before mtp_writer_start: what the rings still hold
 * is an earlier attach's (dropped), numbering goes on from the counter. */
void mtp_writer_session_reset(void)
{
    pthread_mutex_lock(&writer_lock);
    uint64_t now = atomic_load(&mtp_counter.n);
    for (mtp_thread_t *t = mtp_thread_list(); t; t = t->next)
        mtp_ring_set_tail(t, atomic_load_explicit(&t->head, memory_order_acquire));
    expected.next = gap_floor = session_floor = now;
    cursors_gen = ~0u;
    stall_since = 0;
    exit_taken = 0;
    for (int i = 0; i < NREQ; i++)
        atomic_store(&requests[i].state, REQ_FREE);
    atomic_store(&signal_overflow, 0);
    atomic_store(&stop_asked, 0);
    mtp_live_reset();
    mtp_timeline_atfork_child();
    mtp_ring_orphan(0);
    pthread_mutex_unlock(&writer_lock);
}

int mtp_writer_on_self(void)
{
    return on_writer;
}

int mtp_writer_threads(void)
{
    return (atomic_load(&writer_running) ? 1 : 0) + (atomic_load(&loader_live) ? 1 : 0);
}

MTP_FORK_CODE void mtp_writer_atfork_prepare(void)
{
    fork_locked = 0;
    if (atomic_load(&writer_running) || atomic_load(&deferred)) {
        atomic_fetch_add(&fork_waiting, 1);   /* a snapshot in progress lets go at its next yield */
        pthread_mutex_lock(&writer_lock);
        atomic_fetch_sub(&fork_waiting, 1);
        fork_locked = 1;
    }
}

MTP_FORK_CODE void mtp_writer_atfork_parent(void)
{
    if (fork_locked)
        pthread_mutex_unlock(&writer_lock);
}

/* The child has no writer thread and one application thread. */
MTP_FORK_CODE void mtp_writer_atfork_child(void)
{
    int was_running = atomic_load(&writer_running) || atomic_load(&deferred);
    pthread_mutex_init(&writer_lock, NULL);
    atomic_store(&writer_clock_set, 0);   /* the parent's writer thread */
    atomic_store(&fork_waiting, 0);
    if (atomic_load(&loader_live)) {   /* the loader thread is the parent's (what it was
                                          loading: mtp_lib_atfork_child, core/control.c) */
        atomic_store(&loader_live, 0);
        loader_waited_out = 0;
    }
    mtp_snapshot_atfork_child();   /* a snapshot the parent's writer was in the middle of */
    mtp_window_atfork_child();     /* and its windows */
    mtp_timeline_atfork_child();
    if (reply_fd >= 0)
        close(reply_fd);           /* ...and its requester's connection */
    reply_fd = -1;
    atomic_store(&writer_running, 0);
    /* Stored only where it changes: a page written is a copy-on-write
     * fault in a child that mostly execs a moment later. */
    for (int i = 0; i < NREQ; i++)
        if (atomic_load(&requests[i].state) != REQ_FREE)
            atomic_store(&requests[i].state, REQ_FREE);
    atomic_store(&signal_overflow, 0);
    gap_floor = atomic_load(&mtp_counter.n);
    seq = 0;
    exit_taken = 0;
    cursors_gen = ~0u;
    stall_since = 0;
    atomic_store(&deferred, 0);
    if (atomic_load(&start_now))
        atomic_store(&start_now, 0);
    if (atomic_load(&starting))
        atomic_store(&starting, 0);       /* a parent thread was starting its writer */
    if (atomic_load(&retry_timer) >= 0)
        atomic_store(&retry_timer, -1);   /* the parent's */
    if (atomic_load(&retry_busy))
        atomic_store(&retry_busy, 0);     /* a parent thread's handler was arming it */
    if (!was_running)
        return;
    if (mtp_cfg.interval_ms) {   /* interval snapshots count from the fork */
        start_late_writer();
        return;
    }
    defer_start();
}
