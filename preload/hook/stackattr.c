/*
 * pthread_getattr_np: the program's calls marked, so that a thread's first
 * allocation made inside one does not ask for the thread's stack bounds.
 *
 * memtrail reads a thread's stack bounds (base/thread.c) with
 * pthread_getattr_np when the thread's first allocation reaches a hook.
 * glibc's pthread_getattr_np takes the thread's descriptor lock and, holding
 * it, allocates: the CPU set it returns (realloc), and for the main thread
 * the FILE and line buffer it reads /proc/self/maps with. When one of those
 * is the thread's first allocation (a program that asks for its stack
 * before allocating anything, as language runtimes do for their guard
 * pages), the hook ran inside the call and asked again: the lock is not
 * recursive, and the thread waited for itself forever. This wrapper counts
 * the calls in progress on the thread (mtp_tls_in_getattr); inside one,
 * the bounds are read at a later push (record/ring.c, the cold point).
 *
 * Threads: any thread; the count is per-thread, the real function's
 * pointer atomic (resolved on first use, or given by the late attach).
 * errno and the return value are the real function's.
 */
#include <pthread.h>

#include "base/state.h"
#include "base/util.h"
#include "hook/hook.h"

typedef int (*getattr_fn)(pthread_t, pthread_attr_t *);

static void *real_getattr_fn;   /* atomic: resolved by the constructor, else on first use */

/* From the constructor: resolved before any thread's first bounds, whose
 * read comes through the wrapper (a dlsym there would run inside the
 * dlsym of the wrapper's own first call, if that allocated first). */
void mtp_stackattr_init(void)
{
    mtp_next_symbol(&real_getattr_fn, "pthread_getattr_np");
}

/* Loaded late (hook/late.c): libc's definition, before the GOT slots lead here. */
void mtp_stackattr_late_real(void *def)
{
    if (def)
        __atomic_store_n(&real_getattr_fn, def, __ATOMIC_RELEASE);
}

MTP_EXPORT int pthread_getattr_np(pthread_t th, pthread_attr_t *attr)
{
    mtp_tls_in_getattr++;
    getattr_fn real = (getattr_fn)mtp_next_symbol(&real_getattr_fn, "pthread_getattr_np");
    int r = real ? real(th, attr) : ENOSYS;
    mtp_tls_in_getattr--;
    return r;
}

/* Our own entry point (hook/late.c writes it into GOT slots). */
extern __typeof__(pthread_getattr_np) mtp_self_pthread_getattr_np
    __attribute__((alias("pthread_getattr_np"), copy(pthread_getattr_np), visibility("hidden")));
