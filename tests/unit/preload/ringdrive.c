/*
 * The rings and the writer's drain path under several producer threads, as
 * a plain C program: criterion's runner does not start under
 * ThreadSanitizer ("Could not initialize inheritable arena"), so this is
 * what tests/sanitize/run.sh runs under TSan, and under ASan and UBSan too.
 * In the plain build it runs as the test preload_ringdrive.
 *
 * 1. The ring protocol alone (record/ring.c, base/thread.c), consumed by
 *    this thread the way the writer does it (acquire head, copy, release
 *    tail): NPROD threads push more than two rings' worth each; every ring
 *    fills before anything is consumed, so every producer wakes the writer
 *    and waits on its full ring, and every ring wraps; each record comes out
 *    in order. Then the blocks of the exited producers are reclaimed and
 *    taken again by new threads (the CAS on `state`), none mapped anew.
 * 2. The writer (writer/writer.c, started as core/ starts it) while NPROD
 *    threads allocate, reallocate and free real blocks and push their
 *    records with numbers from mtp_counter.n, as hook/hooks.c does, interning
 *    the same new stacks at the same time in the shared stack table; this
 *    thread asks for snapshots (mtp_snapshot_sync) before any event, then
 *    meanwhile, one of them while every producer runs. The last snapshot,
 *    read back with the format library's reader, holds exactly the blocks
 *    left live.
 *    --leak-scan: every snapshot also runs the leak scan (leak/leakscan.c),
 *    which stops the producers and reads their stacks, its own and the
 *    modules' data (MTP_NO_SANITIZE_SCAN, base/util.h): by ptrace, or under
 *    ThreadSanitizer with its signal. TSan makes each atomic operation a
 *    critical section of its own runtime, under a lock kept per atomic
 *    variable; a producer that ptrace stopped inside one (its ring's
 *    position) holds that lock, and the writer's next atomic load of the
 *    same variable waits for it for ever (seen: the writer in settle ->
 *    drain -> __tsan_atomic64_load -> Mutex::ReadLock, every producer in
 *    ptrace_stop). Without TSan an atomic is one instruction and no lock is
 *    held. TSan delivers a signal only outside its runtime, so the signal
 *    stops a producer where it holds none; TSan's own thread blocks every
 *    signal and does not stop, so those scans read through
 *    process_vm_readv (the stop's `safe` path, which runs under TSan too).
 *
 * Exit status 0 when every check holds; 1 with one line on stderr if not.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/util.h"
#include "leak/leakscan.h"
#include "leak/stopworld.h"
#include "record/record.h"
#include "snapshot.h"
#include "writer/writer.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#define NPROD 4
#define RING_EVENTS (2 * MTP_RING_SLOTS + 777)   /* per producer, part 1 */
#define OPS 20000                                /* allocations per producer, part 2 */
#define KEEP 64                                  /* blocks each producer leaves live */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ringdrive: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- 1. the ring protocol ---- */
static _Atomic int wakes;
static void count_wake(void)
{
    atomic_fetch_add(&wakes, 1);
}

typedef struct ring_producer {
    pthread_t th;
    _Atomic(mtp_thread_t *) t;   /* published once the block is taken */
    uint64_t next;               /* consumer: the next counter expected */
} ring_producer_t;

static uint64_t ring_addr(int p, uint64_t n)
{
    return ((uint64_t)(p + 1) << 40) + 16 * n;
}

static ring_producer_t ring[NPROD];

static void *ring_producer(void *arg)
{
    int p = (int)(intptr_t)arg;
    mtp_thread_t *t = mtp_thread_acquire();
    if (!t)
        fail("ring: no block for producer %d", p);
    atomic_store_explicit(&ring[p].t, t, memory_order_release);
    for (uint64_t n = 0; n < RING_EVENTS; n++) {
        mtp_event_t e = {n, ring_addr(p, n), n % 977, (uint32_t)(n % 13), MTP_EV_ALLOC, 0};
        mtp_ring_push(t, &e);
    }
    return NULL;
}

/* Consume like the writer: read head (acquire), copy, publish tail
 * (mtp_ring_set_tail: wakes a producer asleep on its full ring). */
static size_t consume(mtp_thread_t *t, int p, uint64_t *next)
{
    uint64_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&t->head, memory_order_acquire);
    size_t n = 0;
    for (; tail < head; tail++, n++) {
        mtp_event_t e = t->slots[tail & (MTP_RING_SLOTS - 1)];
        if (e.counter != *next || e.addr != ring_addr(p, *next) || e.size != *next % 977)
            fail("ring %d: record %llu came out as %llu", p, (unsigned long long)*next,
                 (unsigned long long)e.counter);
        ++*next;
    }
    mtp_ring_set_tail(t, tail);
    return n;
}

static size_t registry_size(void)
{
    size_t n = 0;
    for (mtp_thread_t *t = mtp_thread_list(); t; t = t->next)
        n++;
    return n;
}

static void *take_block(void *arg)
{
    *(mtp_thread_t **)arg = mtp_thread_acquire();
    return NULL;
}

static void part_rings(void)
{
    mtp_seams.writer_wake = count_wake;
    for (int p = 0; p < NPROD; p++)
        if (pthread_create(&ring[p].th, NULL, ring_producer, (void *)(intptr_t)p) != 0)
            fail("ring: pthread_create");
    /* Every ring fills up before anything is consumed: each producer wakes
     * the writer at half full and then waits on its full ring. */
    for (int p = 0; p < NPROD; p++) {
        for (int i = 0;; i++) {
            mtp_thread_t *t = atomic_load_explicit(&ring[p].t, memory_order_acquire);
            if (t && atomic_load_explicit(&t->head, memory_order_acquire) == MTP_RING_SLOTS)
                break;
            if (i == 10000)
                fail("ring %d: not full after 10 s", p);
            nap_ms(1);
        }
    }
    if (atomic_load(&wakes) < NPROD)
        fail("ring: %d wake-ups for %d half-full rings", atomic_load(&wakes), NPROD);
    /* Each producer then sleeps on its futex (it does not spin). */
    for (int p = 0; p < NPROD; p++) {
        mtp_thread_t *t = atomic_load_explicit(&ring[p].t, memory_order_acquire);
        for (int i = 0; !atomic_load(&t->waiting); i++) {
            if (i == 10000)
                fail("ring %d: full, its producer not asleep after 10 s", p);
            nap_ms(1);
        }
    }
    uint64_t left = (uint64_t)NPROD * RING_EVENTS;
    while (left) {
        size_t got = 0;
        for (int p = 0; p < NPROD; p++) {
            mtp_thread_t *t = atomic_load_explicit(&ring[p].t, memory_order_acquire);
            if (t)
                got += consume(t, p, &ring[p].next);
        }
        left -= got;
        if (!got)
            sched_yield();
    }
    for (int p = 0; p < NPROD; p++)
        pthread_join(ring[p].th, NULL);
    /* Every producer waited at least once, and the waits were counted. */
    uint64_t waits = atomic_load(&mtp_ring_costs.waits), wait_ns = atomic_load(&mtp_ring_costs.wait_ns),
             worst = atomic_load(&mtp_ring_costs.worst_ns);
    if (waits < NPROD || !worst || wait_ns < worst)
        fail("ring: costs: %llu waits, %llu ns, worst %llu ns for %d producers that waited",
             (unsigned long long)waits, (unsigned long long)wait_ns, (unsigned long long)worst, NPROD);

    /* The producers are gone and their rings drained: their blocks become
     * free (the kernel reaps a tid asynchronously), and new threads take
     * them instead of mapping new ones. */
    size_t blocks = registry_size();
    for (int i = 0; i < 5000; i++) {
        mtp_thread_reclaim_dead();
        int freed = 0;
        for (int p = 0; p < NPROD; p++)
            freed += atomic_load(&atomic_load(&ring[p].t)->state) == MTP_THREAD_FREE;
        if (freed == NPROD)
            break;
        nap_ms(1);
    }
    for (int p = 0; p < NPROD; p++)
        if (atomic_load(&atomic_load(&ring[p].t)->state) != MTP_THREAD_FREE)
            fail("ring: the block of exited producer %d was not reclaimed", p);
    mtp_thread_t *again[NPROD];
    pthread_t th[NPROD];
    for (int p = 0; p < NPROD; p++)
        if (pthread_create(&th[p], NULL, take_block, &again[p]) != 0)
            fail("ring: pthread_create");
    for (int p = 0; p < NPROD; p++)
        pthread_join(th[p], NULL);
    if (registry_size() != blocks)
        fail("ring: %zu blocks after reuse, %zu before", registry_size(), blocks);
    for (int p = 0; p < NPROD; p++)
        if (!again[p] || atomic_load(&again[p]->state) != MTP_THREAD_LIVE)
            fail("ring: thread %d took no free block", p);
}

/* ---- 2. the writer ---- */
__attribute__((noinline)) void rd_site_a(void);
__attribute__((noinline)) void rd_site_b(void);
__attribute__((noinline)) void rd_site_a(void) { __asm__ volatile("nop; nop; nop; nop"); }
__attribute__((noinline)) void rd_site_b(void) { __asm__ volatile("nop; nop; nop; nop"); }

typedef struct producer {
    pthread_t th;
    int index;
    void *keep[KEEP];      /* the blocks left live, and their sizes */
    size_t keep_size[KEEP];
    uint64_t live_bytes;   /* of keep[] at the end */
} producer_t;

static producer_t prod[NPROD];
static void part_writer(const char *dir, int leak_scan);
static _Atomic int producers_done;
static _Atomic int first_snapshot_done;   /* producers wait for it halfway */

/* About 1,300 stacks, the same sequence in every producer: the producers
 * often insert the same new stack at once (record/stacktab.c's CAS). */
static uint32_t stack_of(mtp_thread_t *t, int i)
{
    uintptr_t pcs[3] = {(uintptr_t)&rd_site_a + 1 + (uintptr_t)(i % 61),
                        (uintptr_t)&rd_site_b + 1 + (uintptr_t)(i / 61 % 7),
                        (uintptr_t)&part_writer + 1};
    return mtp_stack_intern(t, pcs, 1 + (uint32_t)(i % 3));
}

/* malloc, realloc and free as hook/hooks.c records them. */
static void *traced_malloc(mtp_thread_t *t, size_t size, uint32_t stack)
{
    void *p = malloc(size);
    if (!p)
        fail("out of memory");
    memset(p, 0xab, size);
    mtp_push(t, MTP_EV_ALLOC, mtp_take_number(), p, size, stack, MTSNAP_DOMAIN_NATIVE);
    return p;
}

static void traced_free(mtp_thread_t *t, void *p)
{
    mtp_record_free(t, p, MTSNAP_DOMAIN_NATIVE);
    free(p);
}

static void *traced_realloc(mtp_thread_t *t, void *old, size_t size, uint32_t stack)
{
    uintptr_t was = (uintptr_t)old;   /* an address only, once released */
    uint64_t n = mtp_record_realloc_begin();
    void *p = realloc(old, size);
    if (!p)
        fail("out of memory");
    mtp_record_realloc_end(t, n, was, 1, MTSNAP_DOMAIN_NATIVE);
    mtp_push(t, MTP_EV_ALLOC, mtp_take_number(), p, size, stack, MTSNAP_DOMAIN_NATIVE);
    return p;
}

static void *producer(void *arg)
{
    producer_t *pr = arg;
    mtp_thread_t *t = mtp_thread_acquire();
    if (!t)
        fail("writer: no block for producer %d", pr->index);
    unsigned seed = 77u + (unsigned)pr->index;
    for (int i = 0; i < OPS; i++) {
        int k = i % KEEP;
        if (i == OPS / 2)   /* so that a snapshot (and a scan) finds every producer running */
            while (!atomic_load(&first_snapshot_done))
                sched_yield();
        size_t size = 8 + (size_t)(rand_r(&seed) % 200);
        uint32_t stack = stack_of(t, i);
        if (pr->keep[k] && i % 7 == 0) {
            pr->keep[k] = traced_realloc(t, pr->keep[k], size, stack);
        } else {
            if (pr->keep[k])
                traced_free(t, pr->keep[k]);
            pr->keep[k] = traced_malloc(t, size, stack);
        }
        pr->keep_size[k] = size;
    }
    for (int k = 0; k < KEEP; k++)
        pr->live_bytes += pr->keep_size[k];
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

static void snapshot(const char *label, char *path, size_t len)
{
    int r = mtp_snapshot_sync(MTSNAP_TRIGGER_API, label, path, len, NULL);
    if (r < 0)
        fail("writer: snapshot %s: %s", label, strerror(-r));
}

static void part_writer(const char *dir, int leak_scan)
{
    snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s", dir);
    mtp_cfg.depth = 64;
    mtp_cfg.unwind = MTSNAP_UNWIND_LIBUNWIND;
    mtp_cfg.leak_check = leak_scan ? MTP_LEAK_ALL : MTP_LEAK_OFF;
    mtp_proc.cmdline_len =
        (size_t)snprintf(mtp_proc.cmdline, sizeof(mtp_proc.cmdline), "ringdrive");
    ssize_t n = readlink("/proc/self/exe", mtp_proc.exe, sizeof(mtp_proc.exe) - 1);
    mtp_proc.exe[n > 0 ? n : 0] = 0;
    mtp_start_ns = mtp_now_ns();
    if (mtp_stacktab_init() < 0)
        fail("writer: no stack table");
    mtp_leakscan_init();
    int r = mtp_writer_start();
    if (r < 0)
        fail("writer: cannot start: %s", strerror(-r));
    char path[PATH_MAX + 64];
    snapshot("empty", path, sizeof(path));   /* before any event: empty tables */

    for (int p = 0; p < NPROD; p++) {
        prod[p].index = p;
        if (pthread_create(&prod[p].th, NULL, producer, &prod[p]) != 0)
            fail("writer: pthread_create");
    }
    for (int i = 0; i < 3 && atomic_load(&producers_done) < NPROD; i++) {
        snapshot("during", path, sizeof(path));
        atomic_store(&first_snapshot_done, 1);
        nap_ms(5);
    }
    uint64_t bytes = 0;
    for (int p = 0; p < NPROD; p++) {
        pthread_join(prod[p].th, NULL);
        bytes += prod[p].live_bytes;
    }
    snapshot("end", path, sizeof(path));

    char err[512];
    mta_snapshot_t *s = NULL;
    if (mta_snapshot_load(path, &s, err, sizeof(err)) < 0)
        fail("writer: %s", err);
    if (s->nblocks != (uint64_t)NPROD * KEEP || s->totals.live_blocks != (uint64_t)NPROD * KEEP ||
        s->totals.live_bytes != bytes)
        fail("writer: the last snapshot holds %llu blocks (totals %llu blocks, %llu B), "
             "%d blocks of %llu B are live", (unsigned long long)s->nblocks,
             (unsigned long long)s->totals.live_blocks, (unsigned long long)s->totals.live_bytes,
             NPROD * KEEP, (unsigned long long)bytes);
    for (uint64_t i = 0; i < s->nblocks; i++) {
        const mtsnap_block_t *b = &s->blocks[i];
        int found = 0;
        for (int p = 0; p < NPROD && !found; p++)
            for (int k = 0; k < KEEP && !found; k++)
                found = (uintptr_t)prod[p].keep[k] == b->address && prod[p].keep_size[k] == b->size;
        if (!found)
            fail("writer: block 0x%llx (%llu B) in the snapshot is not live",
                 (unsigned long long)b->address, (unsigned long long)b->size);
    }
    if (leak_scan && (!s->has_leaks || s->leak.blocks != s->nblocks))
        fail("writer: the leak scan did not classify the %llu blocks",
             (unsigned long long)s->nblocks);
    mta_snapshot_free(s);
    for (int p = 0; p < NPROD; p++)
        for (int k = 0; k < KEEP; k++)
            free(prod[p].keep[k]);
}

int main(int argc, char **argv)
{
    int leak_scan = argc > 1 && !strcmp(argv[1], "--leak-scan");
    if (argc > 2 || (argc == 2 && !leak_scan)) {
        fprintf(stderr, "usage: ringdrive [--leak-scan]\n");
        return 2;
    }
    mtp_pid = getpid();
#ifdef UNDER_TSAN
    mtp_stopworld_use_signal();   /* see the top */
#endif
    part_rings();

    char dir[] = "/tmp/memtrail-ringdrive-XXXXXX";
    if (!mkdtemp(dir))
        fail("mkdtemp: %s", strerror(errno));
    part_writer(dir, leak_scan);
    char cmd[sizeof(dir) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fail("cannot remove %s", dir);
    return 0;
}
