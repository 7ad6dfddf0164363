/*
 * The preload's one runtime state: configuration, the process's identity and
 * the tracing switch, the global event counter, and the per-thread guard.
 *
 * Ownership, field by field:
 *   mtp_cfg    written by core/config.c before tracing starts, then read-only
 *              (unwind/unwind.c may clear `cfi` during init, before tracing);
 *   mtp_proc, mtp_start_ns  written by core/ at start (and the time in a
 *              fork child), read by the writer when it writes a snapshot;
 *   mtp_counter, mtp_tracing  atomic, any thread;
 *   mtp_tls_*  per-thread.
 * The one place that resets this state in a fork child is core/control.c's
 * atfork_child, which also calls each layer's own reset in order.
 */
#ifndef MTP_BASE_STATE_H
#define MTP_BASE_STATE_H

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memtrail_format.h"
#include "memtrail_protocol.h"

#define MTP_LIKELY(x) __builtin_expect(!!(x), 1)
#define MTP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MTP_NOINLINE __attribute__((noinline))
#define MTP_ALWAYS_INLINE inline __attribute__((always_inline))
#define MTP_COLD __attribute__((noinline, cold))
#define MTP_EXPORT __attribute__((visibility("default")))
#define MTP_TLS __thread __attribute__((tls_model("initial-exec")))
/* On a variable that a fork writes in the parent or the child: the fork
 * handlers' locks and flags, the counter the first event after it takes a
 * number from, what a fork child resets. They share one section, so that
 * the copy-on-write faults a fork costs on them (a page each, in the parent
 * and in the child, about 17 us apiece on a virtual machine:
 * tests/bench/page_cost) are one or two
 * pages' instead of one for each .bss page they would be spread over.
 * preload_exports (test_exports.c) checks that the section holds at most
 * 4 KiB, so it spans two pages at most, and has the main ones. */
#define MTP_FORKED __attribute__((section("mtp_forked")))
/* On a zero-initialized variable of 4 KiB or more: linked after all the
 * others (.lbss follows .bss in the same segment, x86-64's section for
 * large data), so that the small variables a new process writes at start
 * share a few pages instead of lying between large arrays, a page each (a
 * first write of a page costs 2 us on a virtual machine:
 * tests/bench/page_cost). preload_exports checks that .bss holds no
 * variable of 4 KiB or more. */
#define MTP_LARGE __attribute__((section(".lbss")))
/* On the fork handlers and what the child's call: cold, so they are linked
 * together in .text.unlikely. A fork copies no page table entry of a file
 * mapping, so the child faults on each 64 KiB window of memtrail's code it
 * runs: spread over the library they cost it four faults, together one. */
#define MTP_FORK_CODE __attribute__((cold))

#define MTP_MAX_DEPTH MTPROTO_MAX_DEPTH
#define MTP_DEFAULT_DEPTH MTPROTO_DEFAULT_DEPTH
#define MTP_LABEL_MAX 256

/* ---- configuration: written once by core/ before tracing starts, then read-only ---- */
typedef struct mtp_config {
    char outdir[PATH_MAX];   /* absolute output directory */
    unsigned interval_ms;    /* 0 = no interval snapshots */
    int signo;               /* snapshot signal, 0 = off */
    int follow;              /* exec'd children keep the preload */
    int unwind;              /* enum mtsnap_unwind */
    int cfi;                 /* libunwind mode: try the cached CFI walk first */
    int warm;                /* the idle writer names new stacks' frames (writer/symwarm.c) */
    int py_reuse;            /* follow CPython's free-list reuses (hook/pyreuse.c) */
    int py_memo;             /* Python walks reuse the previous walk (python/pystack.c) */
    unsigned depth;          /* frames kept per stack, 1..MTP_MAX_DEPTH */
    int native;              /* Python processes: native frames too (hybrid stacks) */
    int leak_check;          /* enum mtp_leak_check */
    uint64_t sample;         /* byte sampling: mean bytes between samples, 0 = every allocation */
    int mmap;                /* enum mtp_mmap_mode: which mappings hook/maphooks.c records */
    char symcache[PATH_MAX]; /* absolute symbol cache directory, "" = none */
    int symcache_set;        /* ...named by MEMTRAIL_SYMCACHE (else the default: no warning) */
    char name[MTPROTO_NAME_MAX + 1]; /* stable names' BASE (memtrail_protocol.h), "" = none */
    long name_pid;           /* the process whose stem is BASE alone; 0 = none */
    char exit_lock[PATH_MAX]; /* the waiter's lock file (MTPROTO_ENV_EXIT_LOCK), "" = none */
    long exit_waiter;        /* ...and the waiter's pid */
} mtp_config_t;

/* When the leak scan (and, in a Python process, the object graph) runs. */
enum mtp_leak_check { MTP_LEAK_OFF = 0, MTP_LEAK_EXIT = 1, MTP_LEAK_ALL = 2 };
/* Which mappings the mmap domain records (MEMTRAIL_MMAP). */
enum mtp_mmap_mode { MTP_MMAP_OFF = 0, MTP_MMAP_ANON = 1, MTP_MMAP_ALL = 2 };

extern mtp_config_t mtp_cfg;

/* ---- the process: written by core/ at start and in a fork child ---- */
#define MTP_CMDLINE_MAX 4096
#define MTP_HOSTNAME_MAX 256
/* Written at start: the short fields first, so that the start's writes
 * (each string's first bytes) touch two pages, not three. */
typedef struct mtp_process {
    size_t cmdline_len;
    char hostname[MTP_HOSTNAME_MAX];
    char exe[PATH_MAX];
    char cmdline[MTP_CMDLINE_MAX];   /* argv joined with NUL bytes */
} mtp_process_t;
extern mtp_process_t mtp_proc;
/* The arguments glibc passed the constructor when preloaded (NULL loaded
 * late): the command line without opening /proc/self/cmdline. */
extern int mtp_boot_argc;
extern char **mtp_boot_argv;
extern uint64_t mtp_start_ns;        /* wall clock at start, or at the fork (with mtp_proc) */

/* META.flags of every snapshot (MTSNAP_META_F_*): set by hook/ when Python
 * support comes on (before the interpreter runs), read by the writer. atomic. */
extern _Atomic uint32_t mtp_meta_flags;
/* With MTSNAP_META_F_PY_HOOKS: when (wall clock, as mtp_start_ns) the
 * Python allocator hooks started in an attached process (hook/pyattach.c),
 * stored before the flag is set (release). */
extern _Atomic uint64_t mtp_py_hooks_ns;

/* atomic: the next event number (dense: every number taken is pushed). A
 * cache line of its own: every event's fetch-and-add writes it, and the
 * hooks read mtp_tracing and the configuration on every call. */
typedef struct mtp_counter {
    _Atomic uint64_t n;
} __attribute__((aligned(64))) mtp_counter_t;
extern mtp_counter_t mtp_counter;
extern _Atomic int mtp_tracing;      /* atomic: hooks record events while 1 */
/* atomic: the process ends (core/control.c sets it before the exit and the
 * final snapshot, from the destructor or _exit): base/util.h's mtp_unmap
 * leaves small mappings to the exit. */
extern _Atomic int mtp_exiting;
extern pid_t mtp_pid;                /* pid this state belongs to (updated in the fork child) */
/* The blocks the dynamic loader allocated on the thread that loads libdw
 * and libzstd (writer/writer.c): their link maps (and libelf's, libz's and
 * libbz2's) and their arrays, untraced (hook/hooks.c). A dlopen of the program's later
 * stores traced pointers in them (a module depending on libz grows libz's
 * scope: glibc's dl-open.c, resize_scopes), so the leak scan reads them as
 * roots of the loader's (leak/leakscan.c). Appended by the thread that loads
 * (the writer's loader thread, or a program thread loading libunwind: two
 * may append at once): a slot is claimed by an atomic add on `n`, its
 * address written, then its size stored with release; a reader takes an
 * entry whose size it sees (acquire) and skips one still being written
 * (size 0). Read by the writer. Never removed: one the loader frees later is
 * read all the same, which can only make a block look reachable. */
#define MTP_LOADER_BLOCKS 256
typedef struct mtp_loader_blocks {
    _Atomic uint32_t n;   /* slots claimed (may pass MTP_LOADER_BLOCKS) */
    struct { uintptr_t addr; _Atomic size_t size; } b[MTP_LOADER_BLOCKS];
} mtp_loader_blocks_t;
extern mtp_loader_blocks_t mtp_loader_blocks;
void mtp_loader_block_add(const void *p, size_t size);
/* Entries below this may be filled. */
uint32_t mtp_loader_block_count(void);
/* Entry i's size (0: none, or not written yet) and, when not 0, its address. */
size_t mtp_loader_block(uint32_t i, uintptr_t *addr);
extern _Atomic int mtp_ptracer_named; /* atomic: the program named a ptracer for yama
                                        (prctl PR_SET_PTRACER, hook/signals.c), so the leak
                                        scan must not (leak/stopworld.c); 0 in a fork child */

/* ---- per-thread ---- */
/* mtp_tls_guard values. Inside a hook (HOOK), nested allocations pass
 * through untraced but nested frees are recorded: a block recorded when it
 * was allocated can be freed by the allocator a Python wrapper calls (debug
 * hooks, tracemalloc's tables). A hook that holds an event number it has
 * not pushed yet (realloc) sets SILENT: nothing nested is recorded, so every
 * ring stays sorted. The writer thread is INTERNAL: never recorded. */
enum { MTP_GUARD_NONE = 0, MTP_GUARD_HOOK = 1, MTP_GUARD_INTERNAL = 2, MTP_GUARD_SILENT = 3 };
struct mtp_thread;
extern MTP_TLS int mtp_tls_guard;                   /* per-thread: enum above */
extern MTP_TLS int mtp_tls_lib_loader;              /* per-thread: 1 while the thread
                                                       loads a library (base/libload.h):
                                                       the loader thread of
                                                       writer/writer.c, or a program
                                                       thread loading libunwind */
extern MTP_TLS struct mtp_thread *mtp_tls_thread;   /* per-thread ring (base/thread.h) */
extern MTP_TLS int mtp_tls_in_getattr;              /* per-thread: > 0 inside the program's
                                                       pthread_getattr_np (hook/stackattr.c) */

#endif /* MTP_BASE_STATE_H */
