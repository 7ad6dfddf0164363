/*
 * memtrail's private heap (base/privheap.h): the writer thread's own
 * allocations, served from memory memtrail maps itself.
 *
 * Why. Symbolizing a cold module (libdw inflating a compressed debug
 * section, building its abbreviation and CU tables), compressing a snapshot
 * (zstd's context) and the symbolizer's own tables are tens of MB of malloc
 * on the writer thread, freed at the end of each snapshot. Through the C
 * library's allocator they stayed resident in the writer's glibc arena
 * (18 MiB measured in a Python process after its first snapshot with a cold
 * symbol cache: glibc keeps freed arena memory), and the first free of a
 * block glibc had mmap'd raised glibc's mmap threshold for the whole
 * process: the traced program's next 300 KiB block came from an arena
 * where bare it is mmap'd and given back on free. Served here, neither
 * happens, and mtp_ph_trim gives the pages back after each snapshot.
 *
 * Layout. MTP_PH_RESERVE bytes of address space (MAP_NORESERVE: no memory
 * until touched), cut into runs of 64 KiB described by a parallel array of
 * run_t that grows down from the first run (same reservation, touched as
 * runs are used; `setup`). A run is free, small or the head of a large span:
 *   - small blocks (up to 8 KiB) come in 32 size classes; a run of one
 *     class hands out slots from its start (bump) and reuses freed slots
 *     (a list threaded through them by offset); runs with room are on
 *     their class's list; a run whose last block is freed becomes free;
 *   - a large block is a span of whole runs (its untouched pages cost
 *     nothing), its size kept in the head's run_t; moved by realloc when
 *     it is RELEASE_RUNS runs or more, its pages go back at once (the old
 *     copy of an array that doubled: not resident until the trim);
 *   - free spans are on one list, taken first fit (split when larger);
 *     past the last run ever used, runs are carved by bumping `nbump`.
 * Walking the runs from 0 by each head's span length visits every head
 * (the tails' run_t are never read); mtp_ph_trim walks them so, merges
 * adjacent free spans, gives the pages of those not yet given back to the
 * system (MADV_DONTNEED: they read as zeros after) and rebuilds the list;
 * a free range that ends at `nbump` lowers it instead. `clean` marks a
 * free span whose pages read as zeros: calloc need not clear them.
 *
 * Threads: everything below the lock but mtp_ph_owns. The lock is taken
 * around fork (core/control.c), so a child never inherits it held.
 * Nothing here allocates (mmap and madvise only).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "base/privheap.h"
#include "base/util.h"

#define RUN_SHIFT 16
#define RUN_BYTES (1u << RUN_SHIFT)
#define MTP_PH_RESERVE (16ull << 30)               /* 16 GiB of address space */
#define NRUNS ((uint32_t)(MTP_PH_RESERVE >> RUN_SHIFT))
#define SMALL_MAX 8192u
#define NCLASSES 32
#define RELEASE_RUNS 2u   /* a large block of this many runs (128 KiB) or more moved by realloc: its pages go back */
#define NONE 0u                                     /* run links: 1 + index, 0 = none */

enum { RUN_FREE = 1, RUN_SMALL, RUN_LARGE };

typedef struct run {
    uint8_t kind;          /* a head: RUN_*; 0 (never used) past nbump */
    uint8_t cls;           /* small: its class */
    uint8_t clean;         /* free, or small/large from such: unused bytes read as zeros */
    uint8_t unused;
    uint32_t span;         /* runs in the span (small: 1) */
    uint32_t live;         /* small: slots in use */
    uint32_t bump;         /* small: bytes of the run handed out from its start */
    uint32_t free_slot;    /* small: 1 + offset of the first freed slot, 0: none */
    uint32_t next, prev;   /* small with room: its class's list; free: the free list (next) */
    uint32_t size;         /* large: the bytes asked for */
} run_t;

static const uint16_t class_size[NCLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,  160,  192,  224,  256,  320,  384,  448,  512,
    640,  768,  896,  1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192};

_Atomic uintptr_t mtp_ph_base, mtp_ph_bytes;

static MTP_FORKED _Alignas(64) pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* under the lock: */
static char *base;
static run_t *runs_top;                /* run i described at runs_top - 1 - i */
static uint32_t nbump;                 /* runs [0, nbump) have been carved */
static uint32_t free_head;             /* free spans: 1 + index */
static uint32_t partial[NCLASSES];     /* small runs with room, per class: 1 + index */
static int failed;                     /* the reservation could not be had: serve nothing */
static uint64_t live_bytes, live_blocks;

static int class_of(size_t size)
{
    if (size <= 128)
        return size ? (int)((size + 15) / 16) - 1 : 0;
    int c = 8;
    while (class_size[c] < size)
        c++;
    return c;
}

/* The run table grows down from where the runs grow up, in one
 * reservation (mtp_pmd_middle): the first runs and their descriptions under
 * one page-table page (two reservations 8 MiB apart took two). */
#define META_BYTES ((size_t)NRUNS * sizeof(run_t))

static int setup(void)
{
    if (base)
        return 0;
    if (failed)
        return -ENOMEM;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *m = mmap(NULL, META_BYTES + MTP_PMD + MTP_PH_RESERVE, PROT_READ | PROT_WRITE, flags,
                   -1, 0);
    if (m == MAP_FAILED) {
        failed = 1;
        return -ENOMEM;
    }
    uintptr_t meet = mtp_pmd_middle((uintptr_t)m + META_BYTES);
    char *b = (char *)meet;
    base = b;
    runs_top = (run_t *)meet;
    atomic_store_explicit(&mtp_ph_base, (uintptr_t)b, memory_order_relaxed);
    atomic_store_explicit(&mtp_ph_bytes, (uintptr_t)MTP_PH_RESERVE, memory_order_release);
    return 0;
}

static inline run_t *run_at(uint32_t i)
{
    return runs_top - 1 - i;
}

static inline char *run_addr(uint32_t i)
{
    return base + ((size_t)i << RUN_SHIFT);
}

static void push_free(uint32_t i, uint32_t span, int clean)
{
    *run_at(i) = (run_t){.kind = RUN_FREE, .clean = (uint8_t)clean, .span = span, .next = free_head};
    free_head = i + 1;
}

/* A span of n runs (its head's index, `clean` set from what it was), or
 * UINT32_MAX. */
static uint32_t take_span(uint32_t n)
{
    for (uint32_t *link = &free_head; *link != NONE; link = &run_at(*link - 1)->next) {
        uint32_t i = *link - 1;
        run_t *r = run_at(i);
        if (r->span < n)
            continue;
        *link = r->next;
        if (r->span > n)
            push_free(i + n, r->span - n, r->clean);
        r->span = n;
        return i;
    }
    if (n > NRUNS - nbump)
        return UINT32_MAX;
    uint32_t i = nbump;
    nbump += n;
    *run_at(i) = (run_t){.clean = 1, .span = n};
    return i;
}

static void class_link(uint32_t i)
{
    run_t *r = run_at(i);
    r->prev = NONE;
    r->next = partial[r->cls];
    if (r->next != NONE)
        run_at(r->next - 1)->prev = i + 1;
    partial[r->cls] = i + 1;
}

static void class_unlink(uint32_t i)
{
    run_t *r = run_at(i);
    if (r->prev != NONE)
        run_at(r->prev - 1)->next = r->next;
    else
        partial[r->cls] = r->next;
    if (r->next != NONE)
        run_at(r->next - 1)->prev = r->prev;
}

static inline int run_full(const run_t *r)
{
    return r->free_slot == NONE && r->bump + class_size[r->cls] > RUN_BYTES;
}

/* Under the lock. *zero: the block reads as zeros already. */
static void *alloc_locked(size_t size, int *zero)
{
    if (setup() < 0 || size >= (1ull << 32))
        return NULL;
    if (size > SMALL_MAX) {
        uint32_t n = (uint32_t)((size + RUN_BYTES - 1) >> RUN_SHIFT);
        uint32_t i = take_span(n);
        if (i == UINT32_MAX)
            return NULL;
        run_t *r = run_at(i);
        r->kind = RUN_LARGE;
        r->size = (uint32_t)size;
        *zero = r->clean;
        live_bytes += (uint64_t)n << RUN_SHIFT;
        live_blocks++;
        return run_addr(i);
    }
    int c = class_of(size);
    uint32_t i;
    if (partial[c] == NONE) {
        if ((i = take_span(1)) == UINT32_MAX)
            return NULL;
        uint8_t clean = run_at(i)->clean;
        *run_at(i) = (run_t){.kind = RUN_SMALL, .cls = (uint8_t)c, .clean = clean, .span = 1};
        class_link(i);
    }
    i = partial[c] - 1;
    run_t *r = run_at(i);
    char *p;
    if (r->free_slot != NONE) {
        p = run_addr(i) + (r->free_slot - 1);
        r->free_slot = *(uint32_t *)p;
        *zero = 0;
    } else {
        p = run_addr(i) + r->bump;
        r->bump += class_size[c];
        *zero = r->clean;
    }
    r->live++;
    if (run_full(r))
        class_unlink(i);
    live_bytes += class_size[c];
    live_blocks++;
    return p;
}

/* release: a large block of RELEASE_RUNS runs or more gives its pages
 * back now (realloc's old copy); otherwise they wait for the trim. */
static void free_locked(void *p, int release)
{
    uint32_t i = (uint32_t)(((uintptr_t)p - (uintptr_t)base) >> RUN_SHIFT);
    run_t *r = run_at(i);
    live_blocks--;
    if (r->kind == RUN_LARGE) {
        size_t bytes = (size_t)r->span << RUN_SHIFT;
        live_bytes -= bytes;
        push_free(i, r->span,
                  release && r->span >= RELEASE_RUNS && madvise(p, bytes, MADV_DONTNEED) == 0);
        return;
    }
    int full = run_full(r);
    uint32_t off = (uint32_t)((char *)p - run_addr(i));
    live_bytes -= class_size[r->cls];
    *(uint32_t *)p = r->free_slot;
    r->free_slot = off + 1;
    if (--r->live == 0) {
        if (!full)
            class_unlink(i);
        push_free(i, 1, 0);
    } else if (full) {
        class_link(i);
    }
}

static size_t usable_locked(const void *p)
{
    const run_t *r = run_at(((uintptr_t)p - (uintptr_t)base) >> RUN_SHIFT);
    return r->kind == RUN_LARGE ? (size_t)r->span << RUN_SHIFT : class_size[r->cls];
}

void *mtp_ph_malloc(size_t size)
{
    int zero;
    pthread_mutex_lock(&lock);
    void *p = alloc_locked(size, &zero);
    pthread_mutex_unlock(&lock);
    return p;
}

void *mtp_ph_calloc(size_t n, size_t size)
{
    size_t bytes;
    int zero;
    if (__builtin_mul_overflow(n, size, &bytes))
        return NULL;
    pthread_mutex_lock(&lock);
    void *p = alloc_locked(bytes, &zero);
    pthread_mutex_unlock(&lock);
    if (p && !zero) {
        /* A reused span may hold pages never touched (the unused end of
         * an array that was made large): filled in one call, not a fault
         * each under the memset. */
        if (bytes >= RUN_BYTES)
            mtp_populate(p, bytes);
        memset(p, 0, bytes);
    }
    return p;
}

void mtp_ph_free(void *p)
{
    pthread_mutex_lock(&lock);
    free_locked(p, 0);
    pthread_mutex_unlock(&lock);
}

size_t mtp_ph_usable_size(const void *p)
{
    pthread_mutex_lock(&lock);
    size_t n = usable_locked(p);
    pthread_mutex_unlock(&lock);
    return n;
}

void *mtp_ph_realloc(void *p, size_t size)
{
    int zero;
    pthread_mutex_lock(&lock);
    size_t have = usable_locked(p);
    run_t *r = run_at(((uintptr_t)p - (uintptr_t)base) >> RUN_SHIFT);
    void *q = p;
    uint32_t i = (uint32_t)(((uintptr_t)p - (uintptr_t)base) >> RUN_SHIFT);
    if (r->kind == RUN_LARGE && size > have && size < (1ull << 32) && i + r->span == nbump) {
        /* The last span carved grows in place (an array doubling as it fills). */
        uint32_t n = (uint32_t)((size + RUN_BYTES - 1) >> RUN_SHIFT);
        if (n - r->span <= NRUNS - nbump) {
            live_bytes += (uint64_t)(n - r->span) << RUN_SHIFT;
            nbump = i + n;
            r->span = n;
            r->size = (uint32_t)size;
            pthread_mutex_unlock(&lock);
            return p;
        }
    }
    if (size > have || (r->kind == RUN_SMALL && size < have / 2 && have > 16) ||
        (r->kind == RUN_LARGE && size <= SMALL_MAX)) {
        size_t keep = r->kind == RUN_LARGE ? r->size : have;   /* a span's tail is unused */
        q = alloc_locked(size, &zero);   /* moved: grown, or a much smaller class */
        if (q) {
            memcpy(q, p, keep < size ? keep : size);
            /* The old copy of an array that doubled: its pages go back now,
             * so that a snapshot's peak does not hold every copy of its
             * growing tables. (Other frees keep their pages until the trim:
             * the next snapshot, the final one right after the exit
             * snapshot, reuses them.) */
            free_locked(p, 1);
        }
    } else if (r->kind == RUN_LARGE) {
        r->size = (uint32_t)size;
    }
    pthread_mutex_unlock(&lock);
    return q;
}

void mtp_ph_trim(size_t keep)
{
    pthread_mutex_lock(&lock);
    size_t dirty_runs = 0;
    for (uint32_t i = 0; i < nbump;) {
        const run_t *r = run_at(i);
        uint32_t n = r->kind == RUN_SMALL ? 1 : r->span;
        dirty_runs += r->kind == RUN_FREE && !r->clean ? n : 0;
        i += n;
    }
    if (dirty_runs <= keep >> RUN_SHIFT) {
        pthread_mutex_unlock(&lock);
        return;
    }
    uint32_t *tail = &free_head;
    free_head = NONE;
    for (uint32_t i = 0; i < nbump;) {
        if (run_at(i)->kind != RUN_FREE) {
            i += run_at(i)->kind == RUN_LARGE ? run_at(i)->span : 1;
            continue;
        }
        uint32_t j = i, dirty = 0;
        while (j < nbump && run_at(j)->kind == RUN_FREE) {
            dirty |= !run_at(j)->clean;
            j += run_at(j)->span;
        }
        if (dirty)
            madvise(run_addr(i), (size_t)(j - i) << RUN_SHIFT, MADV_DONTNEED);
        if (j == nbump) {   /* the end of what was carved: carve it again later */
            nbump = i;
            break;
        }
        *run_at(i) = (run_t){.kind = RUN_FREE, .clean = 1, .span = j - i};
        *tail = i + 1;   /* in address order: first fit takes the lowest */
        tail = &run_at(i)->next;
        i = j;
    }
    pthread_mutex_unlock(&lock);
}

void mtp_ph_stats(mtp_ph_stats_t *out)
{
    pthread_mutex_lock(&lock);
    *out = (mtp_ph_stats_t){.runs_reserved = nbump, .live_bytes = live_bytes,
                            .live_blocks = live_blocks};
    for (uint32_t i = 0; i < nbump;) {
        const run_t *r = run_at(i);
        uint32_t n = r->kind == RUN_SMALL ? 1 : r->span;
        if (r->kind == RUN_FREE)
            out->runs_free_dirty += r->clean ? 0 : n;
        else
            out->runs_used += n;
        i += n;
    }
    pthread_mutex_unlock(&lock);
}

MTP_FORK_CODE void mtp_ph_atfork_prepare(void)
{
    pthread_mutex_lock(&lock);
}

MTP_FORK_CODE void mtp_ph_atfork_parent(void)
{
    pthread_mutex_unlock(&lock);
}

MTP_FORK_CODE void mtp_ph_atfork_child(void)
{
    pthread_mutex_unlock(&lock);
}
