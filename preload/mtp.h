/* Internal declarations shared by the preload's files: configuration, the
 * event record, per-thread state, and the entry points between hooks, rings,
 * the stack table, the writer and the snapshot code. */
#ifndef MTP_H
#define MTP_H

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memtrail_format.h"

#define MTP_LIKELY(x) __builtin_expect(!!(x), 1)
#define MTP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MTP_NOINLINE __attribute__((noinline))
#define MTP_COLD __attribute__((noinline, cold))
#define MTP_EXPORT __attribute__((visibility("default")))
#define MTP_TLS __thread __attribute__((tls_model("initial-exec")))

#define MTP_MAX_DEPTH 256
#define MTP_DEFAULT_DEPTH 64
#define MTP_LABEL_MAX 256

/* ---- configuration: written once by mtp_init before tracing starts, then read-only ---- */
typedef struct mtp_config {
    char outdir[PATH_MAX];   /* absolute output directory */
    unsigned interval_ms;    /* 0 = no interval snapshots */
    int signo;               /* snapshot signal, 0 = off */
    int follow;              /* exec'd children keep the preload */
    int unwind;              /* enum mtsnap_unwind */
    int cfi;                 /* libunwind mode: try the cached CFI walk first */
    unsigned depth;          /* frames kept per stack, 1..MTP_MAX_DEPTH */
    int native;              /* Python processes: native frames too (hybrid stacks) */
    int leak_check;          /* enum mtp_leak_check */
} mtp_config_t;

/* When the leak scan (and, in a Python process, the object graph) runs. */
enum mtp_leak_check { MTP_LEAK_OFF = 0, MTP_LEAK_EXIT = 1, MTP_LEAK_ALL = 2 };

extern mtp_config_t mtp_cfg;

/* ---- process-wide state ---- */
extern _Atomic uint64_t mtp_counter; /* atomic: next event number (dense: every number taken is pushed) */
extern _Atomic int mtp_tracing;      /* atomic: hooks record events while 1 */
extern pid_t mtp_pid;                /* pid this state belongs to (updated in the fork child) */

/* ---- ring records ---- */
/* TRACK/UNTRACK come from PyTraceMalloc_Track/Untrack: TRACK re-labels a
 * live block (or adds one) in an extension domain, UNTRACK removes the block
 * only if it carries that domain. */
enum mtp_event_kind {
    MTP_EV_ALLOC = 1, MTP_EV_FREE = 2, MTP_EV_NOP = 3, MTP_EV_TRACK = 4, MTP_EV_UNTRACK = 5
};

#define MTP_DOMAIN_MAX ((1u << 28) - 1)
typedef struct mtp_event {
    uint64_t counter;     /* global order */
    uint64_t addr;
    uint64_t size;        /* ALLOC/TRACK: requested size */
    uint32_t stack;       /* ALLOC/TRACK: stack id */
    uint32_t kind : 4;    /* enum mtp_event_kind */
    uint32_t domain : 28; /* enum mtsnap_domain (extension domains: number + 16) */
} mtp_event_t;
_Static_assert(sizeof(mtp_event_t) == 32, "ring record is 32 bytes");

/* ---- per-thread state: one mmap'd block per thread, reused after the thread dies ---- */
#define MTP_RING_SLOTS (1u << 15)   /* 32768 records = 1 MiB per thread */
#define MTP_SCACHE_SLOTS 1024u      /* per-thread stack-id cache entries */

enum mtp_thread_state { MTP_THREAD_LIVE = 1, MTP_THREAD_FREE = 2 };

typedef struct mtp_scache_ent {
    uint64_t hash;
    uint32_t id;
    uint32_t depth;
} mtp_scache_ent_t;

#define MTP_RCACHE_SLOTS 512u        /* per-thread unwind-rule cache entries */

typedef struct mtp_rule_ent {
    uint64_t pc;        /* return address, 0 = empty */
    int32_t cfa_off;
    int16_t rbp_off;
    uint8_t base;
    uint8_t pad;
} mtp_rule_ent_t;

typedef struct mtp_thread {
    /* producer side: written only by the owning thread */
    _Alignas(64) _Atomic uint64_t head;  /* release: next slot to fill */
    uint64_t cached_tail;                /* per-thread copy of tail */
    uintptr_t stack_lo, stack_hi;        /* per-thread: bounds for frame-pointer walks */
    /* consumer side: written only by the writer */
    _Alignas(64) _Atomic uint64_t tail;  /* release: next slot to read */
    /* registry: next is immutable once published; state/tid change hands with CAS */
    _Alignas(64) struct mtp_thread *next;
    _Atomic int state;                   /* enum mtp_thread_state */
    _Atomic pid_t tid;                   /* kernel thread id of the owner */
    mtp_scache_ent_t scache[MTP_SCACHE_SLOTS]; /* per-thread */
    mtp_rule_ent_t rcache[MTP_RCACHE_SLOTS];   /* per-thread */
    _Alignas(64) mtp_event_t slots[MTP_RING_SLOTS];
} mtp_thread_t;

/* ring.c */
mtp_thread_t *mtp_thread_acquire(void);          /* cold: a ring for the calling thread */
void mtp_ring_wait_space(mtp_thread_t *t);        /* cold: producer waits on a full ring */
mtp_thread_t *mtp_thread_list(void);              /* registry head (acquire) */
unsigned mtp_thread_generation(void);             /* bumps when a block is added or reused */
void mtp_thread_reclaim_dead(void);               /* writer: free the blocks of exited threads */
void mtp_ring_atfork_child(mtp_thread_t *self);

static inline void mtp_ring_push(mtp_thread_t *t, const mtp_event_t *ev)
{
    uint64_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
    if (MTP_UNLIKELY(h - t->cached_tail >= MTP_RING_SLOTS))
        mtp_ring_wait_space(t);
    t->slots[h & (MTP_RING_SLOTS - 1)] = *ev;
    atomic_store_explicit(&t->head, h + 1, memory_order_release);
}

/* stacktab.c: global insert-only stack table; id 0 is the empty/unknown stack */
int mtp_stacktab_init(void);
uint32_t mtp_stack_intern(mtp_thread_t *t, const uintptr_t *pcs, uint32_t depth);
const uintptr_t *mtp_stack_frames(uint32_t id, uint32_t *depth);
uint32_t mtp_stack_count(void); /* ids are < this */
extern void (*mtp_stack_new_hook)(const uintptr_t *pcs, uint32_t depth);

/* unwind.c */
int mtp_unwind_init(void);
void mtp_unwind_thread_init(mtp_thread_t *t);
/* Captures up to `max` caller frames into pcs (room for max + 8); *first
 * points at the innermost frame that is not memtrail's own. */
uint32_t mtp_unwind(mtp_thread_t *t, uintptr_t *pcs, uint32_t max, const uintptr_t **first);

/* live.c: grows an mmap'd array to at least `need` bytes (contents kept, new
 * bytes zero; *p NULL and *cap_bytes 0 at first). Never touches the traced
 * heap, so it is safe while other threads are stopped. Returns 0 or -1. */
int mtp_mm_grow(void **p, size_t *cap_bytes, size_t need);

/* writer.c */
enum mtp_req_origin { MTP_REQ_ASYNC = 0, MTP_REQ_WAIT = 1 };
int mtp_writer_start(void);
void mtp_writer_wake(void);
/* Ask for a snapshot and wait until it is written; returns 0 or -errno.
 * `path` (may be NULL) receives the file name. With a graph (captured by the
 * caller, who holds the GIL until this returns) the snapshot holds it, and a
 * leak scan runs whatever the configuration says. */
struct mtp_pygraph;
int mtp_snapshot_sync(int trigger, const char *label, char *path, size_t pathlen,
                      struct mtp_pygraph *graph);
/* Async-signal-safe: queue a signal snapshot (cookie/sender for the reply). */
void mtp_snapshot_from_signal(pid_t sender, int cookie);
void mtp_writer_atfork_prepare(void);
void mtp_writer_atfork_parent(void);
void mtp_writer_atfork_child(void);

/* control.c */
void mtp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mtp_warn_once(int *flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t mtp_now_ns(void);
void mtp_exit_snapshot(void);
void mtp_python_exit_snapshot(void); /* interpreter finalization begins (GIL held) */
int mtp_api_snapshot(const char *label, char *path, size_t pathlen, struct mtp_pygraph *graph);

/* pyhooks.c: binds to CPython if this process has it (from mtp_init) */
void mtp_py_init(void);

/* hooks.c */
/* mtp_tls_guard values. Inside a hook (HOOK), nested allocations pass
 * through untraced but nested frees are recorded: a block recorded when it
 * was allocated can be freed by the allocator a Python wrapper calls (debug
 * hooks, tracemalloc's tables). A hook that holds an event number it has
 * not pushed yet (realloc) sets SILENT: nothing nested is recorded, so every
 * ring stays sorted. The writer thread is INTERNAL: never recorded. */
enum { MTP_GUARD_NONE = 0, MTP_GUARD_HOOK = 1, MTP_GUARD_INTERNAL = 2, MTP_GUARD_SILENT = 3 };
extern MTP_TLS int mtp_tls_guard;            /* per-thread: enum above */
extern MTP_TLS mtp_thread_t *mtp_tls_thread; /* per-thread ring */
int mtp_hooks_resolve(void);

/* ---- recording, shared by the libc hooks and the Python domain wrappers ---- */
extern _Atomic int mtp_py_on;  /* atomic: Python support active: stacks from mtp_py_stack */
uint32_t mtp_native_stack(mtp_thread_t *t);  /* hooks.c: native stack id */
uint32_t mtp_py_stack(mtp_thread_t *t);      /* pystack.c: Python (or hybrid) stack id */
mtp_thread_t *mtp_enter_cold(void);          /* hooks.c: NULL when this call is not traced */

static inline mtp_thread_t *mtp_enter(void)
{
    mtp_thread_t *t = mtp_tls_thread;
    if (MTP_LIKELY(t && !mtp_tls_guard &&
                   atomic_load_explicit(&mtp_tracing, memory_order_relaxed)))
        return t;
    return mtp_enter_cold();
}

/* For frees: also traced inside another hook (MTP_GUARD_HOOK). */
static inline mtp_thread_t *mtp_enter_free(void)
{
    mtp_thread_t *t = mtp_tls_thread;
    if (MTP_LIKELY(t && mtp_tls_guard <= MTP_GUARD_HOOK &&
                   atomic_load_explicit(&mtp_tracing, memory_order_relaxed)))
        return t;
    return mtp_tls_guard ? NULL : mtp_enter_cold();
}

static inline uint64_t mtp_take_number(void)
{
    return atomic_fetch_add_explicit(&mtp_counter, 1, memory_order_relaxed);
}

static inline void mtp_push(mtp_thread_t *t, unsigned kind, uint64_t counter, const void *p,
                            uint64_t size, uint32_t stack, unsigned domain)
{
    mtp_event_t ev = {counter, (uintptr_t)p, size, stack, kind, domain};
    mtp_ring_push(t, &ev);
}

static inline uint32_t mtp_stack_id(mtp_thread_t *t)
{
    if (MTP_UNLIKELY(atomic_load_explicit(&mtp_py_on, memory_order_relaxed)))
        return mtp_py_stack(t);
    return mtp_native_stack(t);
}

/* After a successful allocation: stack id, then the number, then the push. */
static inline void mtp_record_alloc(mtp_thread_t *t, const void *p, size_t size, unsigned domain)
{
    int saved = errno;
    uint32_t id = mtp_stack_id(t);
    mtp_push(t, MTP_EV_ALLOC, mtp_take_number(), p, size, id, domain);
    errno = saved;
}

#endif /* MTP_H */
