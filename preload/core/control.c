/*
 * Process-level control of the preload: start-up of the layers below, the
 * snapshot signal, fork handlers, the exit snapshots and the public API.
 *
 * The constructor in hook/hooks.c resolves the real allocator, then calls
 * mtp_core_start. Fork: atfork_child is the one place that resets the
 * runtime state in a child; it calls each layer's own reset, lowest first
 * (base/thread.c, then writer/writer.c). The exit flags below are atomic:
 * the exit snapshot can be asked for by the destructor, by _exit on any
 * thread, and by the interpreter's atexit callback.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/libload.h"
#include "base/privheap.h"
#include "base/util.h"
#include "core/core.h"
#include "python/py.h"
#include "leak/leakscan.h"
#include "memtrail.h"
#include "python/pygraph.h"
#include "record/record.h"
#include "unwind/cfi.h"
#include "unwind/unwind.h"
#include "writer/safepoint.h"
#include "writer/snapwrite.h"
#include "writer/window.h"
#include "writer/writer.h"

static MTP_FORKED _Atomic int exit_done;        /* atomic: the exit snapshot was taken */
static MTP_FORKED _Atomic int exit_by_python;   /* atomic: ...when the interpreter began to finalize */
static MTP_FORKED _Atomic int final_done;       /* atomic: the final snapshot was taken */

/* ---- signal, fork, exit ---- */
static void on_snapshot_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    (void)sig;
    if (getpid() == mtp_pid) {
        mtp_writer_handler_start(uc);
        int queued = si && si->si_code == SI_QUEUE;
        int retry = si && si->si_code == SI_TIMER && si->si_value.sival_int == MTP_RETRY_VALUE;
        if (!retry)
            mtp_snapshot_from_signal(queued ? si->si_pid : 0, queued ? si->si_value.sival_int : 0);
        mtp_writer_handler_retry(sig, retry);   /* a writer still to start: again later */
    }
    errno = saved;
}

MTP_FORK_CODE static void atfork_prepare(void)
{
    mtp_cfi_atfork_prepare();   /* first: it asks the loader, before our locks are taken */
    if (atomic_load(&mtp_tracing))
        mtp_writer_atfork_prepare();
    mtp_stacktab_atfork_prepare();
    mtp_sampset_atfork_prepare();
    mtp_py_own_atfork_prepare();
    mtp_ph_atfork_prepare();
    mtp_thread_atfork_prepare();
    if (mtp_tls_thread)
        mtp_ring_atfork_prepare(mtp_tls_thread);
}

MTP_FORK_CODE static void atfork_parent(void)
{
    mtp_ph_atfork_parent();
    mtp_py_own_atfork_parent();
    mtp_sampset_atfork_parent();
    mtp_stacktab_atfork_parent();
    if (atomic_load(&mtp_tracing))
        mtp_writer_atfork_parent();
}

MTP_FORK_CODE static void atfork_child(void)
{
    mtp_lib_atfork_child();
    mtp_ph_atfork_child();
    mtp_py_own_atfork_child();
    mtp_sampset_atfork_child();
    mtp_stacktab_atfork_child();
    mtp_sample_atfork_child();
    mtp_ring_atfork_child();
    atomic_store(&mtp_ptracer_named, 0);   /* yama's exception is the parent's own */
    if (atomic_load(&mtp_exiting))         /* forked while the parent was exiting */
        atomic_store(&mtp_exiting, 0);
    if (!atomic_load(&mtp_tracing))
        return;
    mtp_pid = getpid();
    mtp_start_ns = mtp_now_ns();
    atomic_store(&exit_done, 0);
    atomic_store(&exit_by_python, 0);
    atomic_store(&final_done, 0);
    mtp_thread_atfork_child(mtp_tls_thread);
    mtp_writer_atfork_child();
    mtp_term_atfork_child();
}

/* Process exit (destructor, _exit): the `exit` snapshot, or in a Python
 * process whose interpreter already gave it, the `final` one. */
void mtp_exit_snapshot(void)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid)
        return;
    int trigger = MTSNAP_TRIGGER_EXIT;
    if (atomic_exchange(&exit_done, 1)) {
        if (!atomic_load(&exit_by_python) || atomic_exchange(&final_done, 1))
            return;
        trigger = MTSNAP_TRIGGER_FINAL;
    }
    int saved = errno;
    atomic_store(&mtp_exiting, 1);
    mtp_snapshot_sync(trigger, NULL, NULL, 0, NULL);
    atomic_store(&mtp_tracing, 0);
    errno = saved;
}

int mtp_term_snapshot(const char *label, uint64_t timeout_ns)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid)
        return 0;
    if (atomic_exchange(&exit_done, 1)) {
        /* The process was exiting: let the snapshot on its way be written. */
        mtp_writer_wait_requests(timeout_ns);
        return 0;
    }
    mtp_snapshot_from_handler(MTSNAP_TRIGGER_EXIT, label, timeout_ns);
    return 1;
}

void mtp_term_survived(void)
{
    atomic_store(&exit_done, 0);
}

/* The interpreter begins to finalize (atexit callback, GIL held): the view
 * a Python user expects at exit, module globals still alive. Tracing goes on
 * for the `final` snapshot. */
void mtp_python_exit_snapshot(void)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid || atomic_exchange(&exit_done, 1))
        return;
    atomic_store(&exit_by_python, 1);
    int saved = errno;
    mtp_pygraph_t *graph = mtp_cfg.leak_check != MTP_LEAK_OFF ? mtp_pygraph_capture() : NULL;
    mtp_snapshot_sync(MTSNAP_TRIGGER_EXIT, NULL, NULL, 0, graph);
    mtp_pygraph_free(graph);
    errno = saved;
}

int mtp_api_snapshot(const char *label, char *path, size_t pathlen, mtp_pygraph_t *graph)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid)
        return -ECANCELED;
    return mtp_snapshot_sync(MTSNAP_TRIGGER_API, label, path, pathlen, graph);
}

/* Measurement windows (writer/window.c): the begin and the end are events
 * of the calling thread's ring, so that they fall between the same
 * allocations as they do in the program. */
int mtp_api_window_begin(mtp_thread_t *t)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid || !mtp_writer_ready())
        return -ECANCELED;
    int slot = mtp_window_claim();
    if (slot >= 0)
        mtp_push(t, MTP_EV_WINDOW, mtp_take_number(), (const void *)(uintptr_t)slot,
                 MTP_WINDOW_BEGIN, 0, 0);
    return slot;
}

int mtp_api_window_end(mtp_thread_t *t, int slot)
{
    if (getpid() != mtp_pid || !mtp_window_claimed(slot))
        return -EINVAL;   /* never opened, or opened before a fork */
    mtp_push(t, MTP_EV_WINDOW, mtp_take_number(), (const void *)(uintptr_t)slot,
             MTP_WINDOW_END, 0, 0);
    mtp_writer_wake();
    return 0;
}

int mtp_api_window_wait(int slot, mtp_window_result_t *out)
{
    return mtp_window_wait(slot, out, mtp_writer_ready);
}

MTP_EXPORT int memtrail_snapshot(const char *label)
{
    return mtp_api_snapshot(label, NULL, 0, NULL);
}

static int atfork_installed;

/* The snapshot signal's handler; `prev` gets what it replaces. */
static void install_snapshot_signal(struct sigaction *prev)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_snapshot_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(mtp_cfg.signo, &sa, prev) < 0)
        mtp_warn("cannot install the snapshot signal %d: %s", mtp_cfg.signo, strerror(errno));
}

/* ---- memtrail attach and detach ----
 * Called on the thread `memtrail attach` borrowed, the program's other
 * threads running. The first attach sets up what mtp_core_start does; a
 * later one (after a detach) finds the layers set up and the writer gone,
 * and starts it again on empty tables (mtp_writer_session_reset). The exit
 * snapshot on SIGTERM and SIGINT (core/termsig.c) is installed and taken
 * out by hook/late.c, which redirects the program's sigaction calls. */
static int attached_before;
static struct sigaction attach_prev_action;   /* the snapshot signal's, before the attach */
static int attach_signo;
static MTP_LARGE mtp_config_t config_defaults;
static int cfi_ready;        /* the CFI cache's table exists (unwind/cfi.c, set up once) */

int mtp_core_attach(const char *settings)
{
    if (atomic_load(&mtp_tracing))
        return -EALREADY;
    if (!attached_before)
        config_defaults = mtp_cfg;
    else
        mtp_cfg = config_defaults;
    int r = mtp_config_settings(settings);
    if (r < 0)
        return r;
    mtp_config_read();
    mtp_pid = getpid();
    mtp_process_read();            /* start_ns: now, when tracing begins */
    atomic_fetch_or(&mtp_meta_flags, MTSNAP_META_F_ATTACHED);
    if (!attached_before) {
        if (mtp_stacktab_init() < 0 || mtp_unwind_init() < 0)
            return -ENOMEM;
        cfi_ready = mtp_cfg.unwind == MTSNAP_UNWIND_LIBUNWIND && mtp_cfg.cfi;
        mtp_leakscan_init();
        mtp_safepoint_init();
        if (!atfork_installed && pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0)
            atfork_installed = 1;
    } else {
        /* An earlier attach with --unwind fp did not make the CFI cache's table. */
        if (mtp_cfg.unwind == MTSNAP_UNWIND_LIBUNWIND && mtp_cfg.cfi && !cfi_ready) {
            if (mtp_cfi_init() == 0)
                cfi_ready = 1;
            else
                mtp_cfg.cfi = 0;
        }
        mtp_writer_session_reset();
    }
    attached_before = 1;
    return 0;
}

int mtp_core_attach_start(void)
{
    int r = mtp_writer_start();
    if (r < 0)
        return r;
    atomic_store(&exit_done, 0);
    atomic_store(&final_done, 0);
    attach_signo = mtp_cfg.signo;
    if (attach_signo > 0)
        install_snapshot_signal(&attach_prev_action);
    atomic_store(&mtp_tracing, 1);
    return 0;
}

int mtp_core_detach_snapshot(char *path, size_t len)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid)
        return -ENOENT;
    if (mtp_writer_on_self())
        return -EDEADLK;   /* it would wait for itself: the attacher borrows another thread */
    return mtp_snapshot_sync(MTSNAP_TRIGGER_DETACH, NULL, path, len, NULL);
}

int mtp_core_detach(void)
{
    int r = 0;
    atomic_store(&mtp_tracing, 0);
    if (attach_signo > 0)
        sigaction(attach_signo, &attach_prev_action, NULL);
    attach_signo = 0;
    if ((r = mtp_writer_stop(30ull * MTP_NS_PER_SEC)) < 0)
        mtp_warn("detach: the writer thread has not ended yet");
    return r;
}

int mtp_core_start(void)
{
    mtp_config_read();
    if (!mtp_cfg.follow)
        mtp_config_unfollow();
    mtp_pid = getpid();
    mtp_process_read();
    if (mtp_stacktab_init() < 0 || mtp_unwind_init() < 0) {
        mtp_warn("cannot set up the stack table: tracing disabled");
        return -ENOMEM;
    }
    mtp_leakscan_init();
    mtp_safepoint_init();
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) == 0)
        atfork_installed = 1;
    /* Interval snapshots count from the start; otherwise the writer thread
     * starts once the process has lived a while (writer/writer.c). */
    int r = mtp_cfg.interval_ms ? mtp_writer_start() : mtp_writer_defer();
    if (r < 0) {
        mtp_warn("cannot start the writer thread (%s): tracing disabled", strerror(-r));
        return r;
    }
    if (mtp_cfg.signo > 0)
        install_snapshot_signal(NULL);
    atomic_store(&mtp_tracing, 1);
    return 0;
}

__attribute__((destructor)) static void mtp_fini(void)
{
    mtp_exit_snapshot();
}
