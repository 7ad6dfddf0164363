/*
 * CPython after `memtrail attach`: the Python allocator hooks of pyhooks.c
 * installed into an interpreter that is already running, and taken out
 * again at the detach.
 *
 * The GIL. PyMem_SetAllocator on the MEM and OBJ domains, and the code
 * registry's first calls, need the GIL, and the borrowed thread that runs
 * memtrail_attach may be anywhere in the program's code, libpython's
 * included (inside pymalloc, or holding the lock of CPython's pending-call
 * queue). So nothing of CPython is called there: memtrail_attach only
 * records what it wants (`want`) and starts a short-lived thread of ours,
 * which queues sync_cb with Py_AddPendingCall (documented as callable from
 * any thread, without the GIL) and ends. CPython runs a pending call on its
 * main thread, GIL held, at the evaluation loop's next check (a call, a
 * backward jump): at once in a busy program; a main thread blocked in a C
 * call (time.sleep, a read, a lock's acquire) runs it when the call returns
 * and the thread runs Python code again. The call is not cut short:
 * queuing a pending call sends no signal. Until then the process is traced
 * as a native one (the malloc hooks, native stacks) and every snapshot says
 * that the Python hooks are not installed yet (MTSNAP_META_F_PY_WAITING);
 * from then on it says how long after the attach they started
 * (MTSNAP_META_F_PY_HOOKS, META.py_hooks_ms). A main thread that never runs
 * Python code again never installs them (docs/design.md).
 *
 * sync_cb makes the interpreter's state match `want`: it wraps the MEM and
 * OBJ domains (pyhooks.c: the RAW domain is left alone, see there) and
 * patches the Track and free-list reuse slots, or puts them back. A detach
 * queues it the same way; until it runs, the wrappers stay on top and pass
 * every call through (tracing is off), so a block allocated while attached
 * is freed by the allocator that made it whichever side of the restore its
 * free falls on: the wrapper forwards to that allocator, and the restore
 * makes it the domain's allocator again. Attach and detach in any order
 * and number: one sync_cb is queued at a time (`queued`), and the last one
 * to run sees the last `want`.
 *
 * The loader's lock: sync_cb looks symbols up and walks the loaded objects
 * (dlsym, dl_iterate_phdr) with the GIL held. CPython's imports hold the
 * GIL across their dlopen, so they cannot hold that lock waiting for us; a
 * thread that holds it while it waits for the GIL (a library's constructor
 * calling PyGILState_Ensure during a dlopen of its own) would deadlock with
 * sync_cb, as it would with any extension doing the same.
 *
 * Threads: want and queued are atomic; `have` and the binding are touched
 * only by sync_cb, on the main thread with the GIL held (so one at a time).
 * Never aborts the process.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <signal.h>
#include <time.h>

#include "base/util.h"
#include "core/core.h"
#include "hook/hook.h"

/* How long an attach or detach waits for the call to be queued. */
#define QUEUE_WAIT_S 1

typedef int (*pending_fn)(int (*func)(void *), void *arg);

static _Atomic int want;       /* atomic: 1 while attached */
static _Atomic int queued;     /* atomic: a sync_cb is queued or being queued */
static _Atomic(pending_fn) add_pending;   /* Py_AddPendingCall, found by the first attach */
static int (*finalizing)(void);           /* _Py_IsFinalizing / Py_IsFinalizing, or NULL */
static int (*initialized)(void);          /* Py_IsInitialized */
static int have;               /* main thread, GIL: the wrappers are installed */
static int bound;              /* main thread, GIL: 1 bound, -1 no usable CPython */
/* Where CPython's symbols are looked up: the global scope, or the handle
 * of a libpython the program dlopen'd into a local scope (RTLD_LOCAL: an
 * application embedding the interpreter, a plugin linking it). Set by the
 * first attach that finds one (attaches run one at a time), then
 * read-only; the handle keeps that libpython loaded (CPython is not
 * unloaded once initialized anyway). */
static void *py_handle;
static int py_found;           /* py_handle is set (RTLD_DEFAULT is NULL) */

/* Runs on CPython's main thread with the GIL held. */
static int sync_cb(void *arg)
{
    (void)arg;
    atomic_store(&queued, 0);   /* a change of `want` from now on queues another */
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_HOOK;   /* what memtrail allocates here is not traced */
    int w = atomic_load(&want);
    if (w && !have) {
        if (!bound)
            bound = mtp_py_late_bind(py_handle) == 0 ? 1 : -1;
        if (bound > 0) {
            mtp_py_late_wrap();
            have = 1;
        }
    } else if (!w && have) {
        if (mtp_py_late_unwrap() > 0)
            mtp_warn("python: an allocator was put on top of memtrail's (tracemalloc?): "
                     "memtrail's stays under it, passing every call through");
        have = 0;
    }
    if (w && atomic_load(&mtp_tracing)) {
        /* the first sync_cb of this attach: the hooks start now (or, when a
         * detach's restore had not run yet, are still there) */
        if (have && !(atomic_load(&mtp_meta_flags) & MTSNAP_META_F_PY_HOOKS)) {
            atomic_store_explicit(&mtp_py_hooks_ns, mtp_now_ns(), memory_order_relaxed);
            atomic_fetch_or_explicit(&mtp_meta_flags, MTSNAP_META_F_PY_HOOKS,
                                     memory_order_release);
        }
        atomic_fetch_and(&mtp_meta_flags, ~MTSNAP_META_F_PY_WAITING);
    }
    mtp_tls_guard = guard;
    return 0;
}

/* Our thread: queues sync_cb, retrying while the queue (32 calls) is full. */
static void *queue_thread(void *arg)
{
    (void)arg;
    mtp_tls_guard = MTP_GUARD_HOOK;
    pending_fn add = atomic_load(&add_pending);
    for (int tries = 0;; tries++) {
        if (finalizing && finalizing()) {
            atomic_store(&queued, 0);   /* the interpreter is going away: nothing to do */
            return NULL;
        }
        if (add(sync_cb, NULL) == 0)
            return NULL;
        if (tries == 2000) {
            atomic_store(&queued, 0);
            mtp_warn("python: cannot queue the hooks' installation (CPython's pending calls "
                     "stay full): Python domains are not traced");
            return NULL;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* Asks for a sync_cb unless one is already on its way. */
static void request(void)
{
    if (atomic_exchange(&queued, 1))
        return;
    pthread_t th;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the program's signals are not ours */
    int r = pthread_create(&th, NULL, queue_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        atomic_store(&queued, 0);
        mtp_warn("python: cannot start a thread to queue the hooks' installation: Python "
                 "domains are not traced");
        return;
    }
    /* Wait until it is queued (QUEUE_WAIT_NS at most: the borrowed thread
     * may be the one holding the queue's lock), so that when `memtrail
     * attach` returns the main thread's next check runs it. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += QUEUE_WAIT_S;
    if (pthread_timedjoin_np(th, NULL, &until) != 0)
        pthread_detach(th);
}

static void *sym(const char *name)
{
    void *f = dlsym(py_handle, name);
    if (!f)
        dlerror();
    return f;
}

/* dl_iterate_phdr: the first loaded object whose name says libpython. Only
 * its name is copied here: the dlopen comes after the walk, which holds
 * the loader's lock of the object list. */
static int libpython_name(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *name = info->dlpi_name, *base = name ? strrchr(name, '/') : NULL;
    if (!base || strncmp(base + 1, "libpython", 9) != 0 || strlen(name) >= PATH_MAX)
        return 0;
    memcpy(data, name, strlen(name) + 1);
    return 1;
}

/* CPython's handle into py_handle: the global scope when Py_AddPendingCall
 * is found there, else a libpython loaded in a local scope. 0, or -ENOENT. */
static int find_python(void)
{
    if (dlsym(RTLD_DEFAULT, "Py_AddPendingCall")) {
        py_handle = RTLD_DEFAULT;
        return 0;
    }
    dlerror();
    static MTP_LARGE char name[PATH_MAX];
    name[0] = 0;
    if (!dl_iterate_phdr(libpython_name, name) || !name[0])
        return -ENOENT;
    void *h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);   /* loaded: no constructor runs */
    if (h && dlsym(h, "Py_AddPendingCall")) {
        py_handle = h;
        return 0;
    }
    dlerror();
    if (h)
        dlclose(h);
    return -ENOENT;
}

void mtp_py_attach(void)
{
    if (!atomic_load(&add_pending)) {
        if (!py_found && find_python() < 0)
            return;   /* no CPython: a native process */
        py_found = 1;
        pending_fn add = (pending_fn)sym("Py_AddPendingCall");
        initialized = (int (*)(void))sym("Py_IsInitialized");
        finalizing = (int (*)(void))sym("Py_IsFinalizing");
        if (!finalizing)
            finalizing = (int (*)(void))sym("_Py_IsFinalizing");
        if (!add || !initialized || !sym("PyMem_SetAllocator"))
            return;   /* not a CPython we can hook: a native process */
        atomic_store(&add_pending, add);
    }
    atomic_fetch_and(&mtp_meta_flags, ~MTSNAP_META_F_PY_HOOKS);
    if (!initialized() || bound < 0)
        return;   /* not running Python (yet, or any more), or a version we do not know */
    atomic_fetch_or(&mtp_meta_flags, MTSNAP_META_F_PY_WAITING);
    atomic_store(&want, 1);
    request();
}

void mtp_py_detach(void)
{
    atomic_fetch_and(&mtp_meta_flags, ~(MTSNAP_META_F_PY_HOOKS | MTSNAP_META_F_PY_WAITING));
    if (!atomic_load(&add_pending) || !atomic_exchange(&want, 0))
        return;
    request();
}

/* After a dlopen (any thread): the new objects' Track and reuse slots, when
 * the wrappers are on. `have` read without the GIL: a stale view patches
 * slots that a sync_cb then patches again, or misses an object loaded while
 * the hooks were being installed (as a preloaded process would not). */
void mtp_py_attach_dlopened(void)
{
    if (have && atomic_load(&want))
        mtp_py_late_patch();
}
