/* Shared by the entry points of hook/: the libc allocator (hooks.c) and the
 * Python allocator domains (pyhooks.c). Each decides in one inline test
 * whether a call is traced; everything else is cold. */
#ifndef MTP_HOOK_H
#define MTP_HOOK_H

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "record/record.h"

/* The next definition of `name` after ours (libc's), resolved on first use
 * into *slot (atomic: any thread may be first). For the entry points outside
 * the allocator's table of hooks.c: dlopen, fopen, sigaction, signal. */
static inline void *mtp_next_symbol(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

/* A record made from the calling hook's frame: the native walk starts there
 * (unwind/unwind.c), not in its own frame with memtrail's frames between to
 * follow out; the frames taken are the same. Only around the record, the
 * hook's guard held (a hook reached meanwhile, from a signal handler,
 * records nothing), so the frame never outlives its call. */
#define MTP_RECORD_FROM_HOOK(t, record)                   \
    do {                                                  \
        (t)->hook_fp = __builtin_frame_address(0);        \
        record;                                           \
        (t)->hook_fp = NULL;                              \
    } while (0)

/* hooks.c: NULL when this call is not traced; otherwise the calling thread's
 * ring (acquired on its first call). */
mtp_thread_t *mtp_enter_cold(void);

static inline mtp_thread_t *mtp_enter(void)
{
    mtp_thread_t *t = mtp_tls_thread;
    if (MTP_LIKELY(t && !mtp_tls_guard &&
                   atomic_load_explicit(&mtp_tracing, memory_order_relaxed)))
        return t;
    return mtp_enter_cold();
}

/* A fresh traced block's first two words, cleared before it is handed
 * out: the allocator leaves its links there (glibc's tcache `next`, its
 * bins' fd and bk, pymalloc's free list), addresses in the heap that the
 * leak scan would read as the program's pointers. In Debian's python3.11,
 * whose heap lies in the low gigabytes where glibc's pointer mangling
 * changes only the low bits, a stale tcache link in a live block pointed
 * into a leaked one and made it "possibly lost" in about one run in two
 * hundred. Memory malloc returns holds nothing the program may read before
 * it writes it, so no correct program can tell. Not for calloc (zero
 * already) nor realloc (the program's data). */
static inline void mtp_clear_head(void *p, size_t size)
{
    uint64_t *w = p;   /* malloc's blocks are aligned to 16, pymalloc's to 8 at least */
    if (size >= 16) {
        w[0] = 0;
        w[1] = 0;
    } else if (size >= 8) {
        w[0] = 0;
    }
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

/* maphooks.c: resolves the next mmap, munmap and mremap and finds this
 * object's text (from the constructor, before tracing starts). */
void mtp_map_hooks_init(void);

/* signals.c: hands libc's sigaction to core/termsig.c (from the constructor). */
void mtp_signal_hooks_init(void);
/* Loaded late (hook/late.c): libc's sigaction (before the slots lead to
 * ours), the exit snapshot's handlers installed (attach) and taken out
 * (detach, the program's dispositions back). */
void mtp_signal_hooks_late_real(void *sigaction_def);
void mtp_signal_hooks_attach(void);
void mtp_signal_hooks_detach(void);
/* stackattr.c: libc's pthread_getattr_np, resolved from the constructor
 * (a thread's first stack bounds are read through it); loaded late, the
 * definition the program's slots held (NULL: kept). */
void mtp_stackattr_init(void);
void mtp_stackattr_late_real(void *def);
/* maphooks.c, loaded late: the real mmap, munmap and mremap, by name. */
void mtp_map_hooks_late(void *(*lookup)(const char *name));

/* pyhooks.c: binds to CPython if this process has it (from the constructor). */
void mtp_py_init(void);

/* pyreuse.c: objects reused from CPython's free lists. The block the Python
 * domain wrappers last recorded on this thread (per-thread: consumed by the
 * new object made in it). */
extern MTP_TLS uintptr_t mtp_py_fresh;
/* Set while this thread records a reuse from inside _Py_NewReference: the
 * interpreter called it, not an allocator, so the code registry may call
 * the allocators there (pyhooks.c's may_allocate). */
extern MTP_TLS int mtp_py_in_newref;
/* Before the interpreter initializes, bound (h: the handle the C API was
 * found through): wraps _Py_NewReference where every call can be caught;
 * returns 1, or 0 with MTSNAP_META_F_PY_NO_REUSE set. */
int mtp_py_reuse_setup(void *h);
/* After a dlopen: the new objects' slots too (nothing if setup returned 0). */
void mtp_py_reuse_patch(void);
/* Its slots for a caller that patches others in the same walk
 * (mtp_got_patch_set): appends at most MTP_PY_REUSE_TARGETS names and
 * replacements at names[n], to[n]; returns the new count. */
#define MTP_PY_REUSE_TARGETS 2
size_t mtp_py_reuse_targets(const char **names, void **to, size_t n);
/* Detach: CPython's own function back in the slots (nothing if setup returned 0). */
void mtp_py_reuse_unpatch(void);

/* pyhooks.c, after `memtrail attach` (hook/pyattach.c), GIL held: binds the
 * C API through the global scope and sets up the code registry and the
 * free-list reuse (once; 0, or -ENOENT: no usable CPython); wraps the MEM
 * and OBJ domains and patches the Track and reuse slots, Python stacks on;
 * the same slots of objects loaded since; the domains' allocators back
 * (returns how many domains keep our wrapper under another one). */
int mtp_py_late_bind(void *handle);   /* RTLD_DEFAULT, or a local libpython's handle */
void mtp_py_late_wrap(void);
void mtp_py_late_patch(void);
int mtp_py_late_unwrap(void);

/* pyattach.c: called by hook/late.c on the borrowed thread. Attach: a
 * CPython in the process gets its hooks at its next safe point; detach:
 * its allocators back, the same way. After a dlopen: the new objects. */
void mtp_py_attach(void);
void mtp_py_detach(void);
void mtp_py_attach_dlopened(void);

/* hooks.c: 1 when libmemtrail.so was loaded into a running process by
 * `memtrail attach` (not preloaded): set by the constructor, then read-only. */
extern int mtp_late;
/* hooks.c: our own entry points, whatever the program's symbols are bound to. */
#define MTP_SELF_DECL(name) extern __typeof__(name) mtp_self_##name;
MTP_SELF_DECL(malloc)
MTP_SELF_DECL(free)
MTP_SELF_DECL(calloc)
MTP_SELF_DECL(realloc)
MTP_SELF_DECL(reallocarray)
MTP_SELF_DECL(posix_memalign)
MTP_SELF_DECL(aligned_alloc)
MTP_SELF_DECL(memalign)
MTP_SELF_DECL(valloc)
MTP_SELF_DECL(pvalloc)
MTP_SELF_DECL(malloc_usable_size)
#undef MTP_SELF_DECL
/* maphooks.c and signals.c: the same for their entry points. */
extern __typeof__(mmap) mtp_self_mmap;
extern __typeof__(mmap64) mtp_self_mmap64;
extern __typeof__(munmap) mtp_self_munmap;
extern __typeof__(mremap) mtp_self_mremap;
extern __typeof__(sigaction) mtp_self_sigaction;
extern __typeof__(signal) mtp_self_signal;
extern __typeof__(pthread_getattr_np) mtp_self_pthread_getattr_np;   /* stackattr.c */

/* hooks.c, loaded late: the real functions, by name (NULL: kept). */
void mtp_hooks_late_real(void *(*lookup)(const char *name));

/* late.c: called by `memtrail attach` and `memtrail detach` in the process. */
int memtrail_attach(const char *settings);
int memtrail_detach(char *path, size_t len);

#endif /* MTP_HOOK_H */
