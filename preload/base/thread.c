/*
 * The registry of per-thread blocks (base/thread.h).
 *
 * Threads: each application thread owns one block and is its only writer
 * of the producer fields; the writer thread owns `tail` and reclaims blocks.
 *
 * Registry: blocks are mmap'd (never from the traced heap) and pushed on a
 * lock-free singly linked list that only grows. A block outlives its thread:
 * the writer marks it FREE only once the kernel says the owner's tid is gone
 * and every record has been drained; a new thread then claims a FREE block
 * with a CAS instead of mapping a new one. `generation` changes whenever the
 * set of LIVE blocks does, so the writer knows to rescan.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/thread.h"
#include "base/util.h"

static _Atomic(mtp_thread_t *) thread_list;  /* atomic: registry head */
static MTP_FORKED _Atomic unsigned thread_generation;   /* atomic */
static pthread_key_t exit_key;                /* set once (pthread_once) */
static _Atomic unsigned thread_exits;         /* atomic: threads with a block that began to exit */
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

/* A thread with a block is exiting: the writer looks whether it is the last
 * thread left (writer/writer.c). Nothing else: the block stays LIVE, so frees
 * made by the TLS destructors that run after this one are still recorded. */
static void thread_exiting(void *block)
{
    int saved = errno;   /* other destructors run after this one */
    (void)block;
    atomic_fetch_add_explicit(&thread_exits, 1, memory_order_release);
    mtp_seams.writer_wake();
    errno = saved;
}

unsigned mtp_thread_exits(void)
{
    return atomic_load_explicit(&thread_exits, memory_order_acquire);
}

static void make_exit_key(void)
{
    if (pthread_key_create(&exit_key, thread_exiting) != 0)
        exit_key = (pthread_key_t)-1;
}

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

extern void *__libc_stack_end;   /* ld.so's: the initial thread's stack at the start */

/* The end of the initial thread's stack mapping, or 0: the kernel puts the
 * executable's name (AT_EXECFN) at the top of the stack, followed by one
 * null word before the mapping's end. Checked: page-aligned, above `top`. */
static uintptr_t initial_stack_end(uintptr_t top, uintptr_t page)
{
    const char *fn = (const char *)getauxval(AT_EXECFN);
    if (!fn)
        return 0;
    uintptr_t e = (uintptr_t)fn + strlen(fn) + 1 + sizeof(void *);
    return e >= top && !(e & (page - 1)) ? e : 0;
}

/* The initial thread's bounds as glibc's pthread_getattr_np gives them (the
 * mapping holding __libc_stack_end, the stack size limit, the mapping
 * below). The mapping's end from the auxiliary vector and the limit's room
 * below it need no file read: with a finite limit the kernel leaves at
 * least that much room below the stack (mmap_base's gap), so the mapping
 * below caps nothing a program did not map there itself (or after raising
 * the limit); a bound below such a mapping is harmless: walks read only
 * above the current frame, the leak scan only what is mapped. With no limit, or
 * the end not found, the map is read (raw calls rather than stdio: no
 * allocation, no lock). Reading it cost a new process about 70 us
 * (tests/bench/start_cost). 0 when this thread does not run on that stack
 * (a fork child of another thread). */
static int initial_stack_bounds(mtp_thread_t *t)
{
    char here = 0;
    uintptr_t end = (uintptr_t)__libc_stack_end, prev = 0;
    struct rlimit rl;
    if (self_tid() != getpid() || !end || getrlimit(RLIMIT_STACK, &rl) != 0)
        return 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t top = (end & -page) + page;
    uintptr_t hi = initial_stack_end(top, page);
    /* The map when the end is unknown or the limit leaves no finite room
     * (none, smaller than what lies above top, larger than top itself). */
    if (!hi || rl.rlim_cur == RLIM_INFINITY || hi - top >= (uintptr_t)rl.rlim_cur ||
        (uintptr_t)rl.rlim_cur > top) {
        char buf[2048];
        uintptr_t lo;
        if (!mtp_maps_find(end, buf, sizeof(buf), &lo, &hi, &prev) || (uintptr_t)&here < lo ||
            (uintptr_t)&here >= hi)
            return 0;
    }
    uintptr_t size = ((uintptr_t)rl.rlim_cur - (hi - top)) & -page;
    if (size > top - prev)
        size = top - prev;
    if ((uintptr_t)&here < top - size || (uintptr_t)&here >= top)
        return 0;
    t->stack_lo = top - size;
    t->stack_hi = top;
    return 1;
}

/* Cold, once per thread block: stack bounds for the walks. glibc's
 * pthread_getattr_np holds the thread's descriptor lock while it allocates
 * (the CPU set it returns; the main thread's /proc/self/maps FILE): when
 * that allocation is the thread's first, this runs inside it, and asking
 * again would wait for the lock forever. Then the bounds stay unknown (the
 * walks go through libunwind) and `bounds_pending` has the ring's cold
 * point read them at a push outside the call (record/ring.c). */
static void thread_stack_bounds(mtp_thread_t *t)
{
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;

    t->stack_lo = t->stack_hi = 0;
    t->bounds_pending = 0;
    if (initial_stack_bounds(t))
        return;
    t->bounds_pending = mtp_tls_in_getattr > 0;
    if (t->bounds_pending || pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        t->stack_lo = (uintptr_t)addr;
        t->stack_hi = (uintptr_t)addr + size;
    }
    pthread_attr_destroy(&attr);
}

void mtp_thread_bounds_retry(mtp_thread_t *t)
{
    if (!mtp_tls_in_getattr)
        thread_stack_bounds(t);
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
            t->cold_at = 0;
            goto found;
        }
    }

    /* No free block: the writer may be asleep with blocks of exited threads
     * to reclaim; wake it so that the next thread finds one. */
    mtp_seams.writer_wake();
    t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    atomic_init(&t->state, MTP_THREAD_LIVE);
    atomic_init(&t->tid, tid);
    t->fill_end = MTP_RING_SLOTS;   /* a new ring's pages are filled ahead of its first lap */
    /* The header's page is in since the stores above (a call to fill it
     * first cost more than their fault); the caches are used at random. */
    mtp_populate(t->scache, sizeof(t->scache) + sizeof(t->rcache));
    mtp_thread_t *old = atomic_load_explicit(&thread_list, memory_order_relaxed);
    do {
        t->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&thread_list, &old, t, memory_order_release,
                                                    memory_order_relaxed));
found:
    pthread_once(&exit_key_once, make_exit_key);
    if (exit_key != (pthread_key_t)-1)
        pthread_setspecific(exit_key, t);
    thread_stack_bounds(t);
    t->umemo.n = 0;   /* a reused block: the last owner's walk is not this thread's */
    t->fresh = 0;
    atomic_fetch_add_explicit(&thread_generation, 1, memory_order_release);
    return t;
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

/* Fork's prepare handler: a fork child finds every block's caches and memos
 * zero, a new block's state (base/thread.h), and the parent's next writes
 * to them are no copy-on-write faults; without it (a kernel before 4.14)
 * the child copies them. Asked here, once a block, rather than when the
 * block is made: most processes never fork (3 us of every new thread's
 * start). A block made while this runs may miss it for this fork: its
 * caches are then the parent's in the child, still right for the child's
 * stacks (the same tables) and rules (the same mappings). */
MTP_FORK_CODE void mtp_thread_atfork_prepare(void)
{
    int saved = errno;   /* a refused call's is not the program's fork's */
    for (mtp_thread_t *t = mtp_thread_list(); t; t = t->next)
        if (!atomic_load_explicit(&t->wiped, memory_order_relaxed) &&
            !atomic_exchange_explicit(&t->wiped, 1, memory_order_relaxed))
            (void)madvise((char *)t + MTP_THREAD_WIPED, sizeof(*t) - MTP_THREAD_WIPED,
                          MADV_WIPEONFORK);
    errno = saved;
}

_Static_assert(MTP_PAGE % sizeof(mtp_event_t) == 0 &&
                   offsetof(mtp_thread_t, slots) % sizeof(mtp_event_t) == 0,
               "a ring's slots never straddle a page (mtp_thread_atfork_child)");

/* Fork child: only the calling thread survives. Its block gets the new tid;
 * the others keep their records (they are drained, then reclaimed, since
 * their tids do not exist in this process). */
MTP_FORK_CODE void mtp_thread_atfork_child(mtp_thread_t *self)
{
    if (self) {
        atomic_store(&self->tid, self_tid());
        /* The ring's pages are the parent's until written: one more lap of
         * filling ahead copies them in a few calls rather than a fault each,
         * from the page after the head's (fork's prepare handler gave back
         * every page past it): the head's own page is copied by the first
         * record's fault, and a child that execs after a few records (a
         * shell's) fills no page ahead that it never writes. */
        uint64_t h = atomic_load_explicit(&self->head, memory_order_relaxed);
        uintptr_t at = (uintptr_t)&self->slots[h & (MTP_RING_SLOTS - 1)];
        self->filled = h + ((at | (MTP_PAGE - 1)) + 1 - at) / sizeof(self->slots[0]);
        self->fill_end = h + MTP_RING_SLOTS;
        self->cold_at = 0;
        self->fresh = MTP_FRESH_STACKS;   /* its caches and memos are zero pages now */
    }
    atomic_fetch_add_explicit(&thread_generation, 1, memory_order_release);
}
