/*
 * Terminating signals: an exit snapshot before SIGTERM or SIGINT ends the
 * process, and the ending unchanged.
 *
 * At start, each signal of TERM_SIGNALS whose disposition is SIG_DFL gets
 * memtrail's handler. The program keeps its own view of the disposition:
 * hook/ routes sigaction and signal for these signals here
 * (mtp_term_sigaction), which keeps per signal what the program set
 * (`view`, read back from the kernel, so a query returns the flags and mask
 * the kernel would) while our handler is in place (`ours`). A program that
 * sets SIG_IGN or a handler gets it for real, and ours is gone; setting
 * SIG_DFL again puts ours back.
 *
 * The handler (whichever thread the signal reaches, the signal blocked
 * there): the first one asks the writer for the exit snapshot, labelled with
 * the signal's name, and waits for it at most TERM_WAIT_NS; then it sets the
 * program's SIG_DFL back and raises the signal on its own thread, unblocked:
 * the process ends by it, with the status it would have had bare. A process
 * that survives that (PID 1 of a PID namespace drops default-disposition
 * signals) gets our handler back. A terminating signal that reaches another
 * thread meanwhile waits for the first one's outcome, then does the same.
 *
 * The snapshot is taken while the program's other threads run on (as at
 * exit()), and the thread that took the signal may have been inside a hook
 * with an event number taken: the writer skips that number after its stall
 * timeout (writer/writer.c).
 *
 * Loaded late (`memtrail attach`, hook/late.c): the same, installed once
 * the program's sigaction and signal slots lead to hook/signals.c; at the
 * detach mtp_term_uninstall puts back each default disposition ours
 * replaced and turns the routing off (`enabled`), so that a call reaching
 * the wrapper through a pointer kept from then goes straight to libc.
 *
 * State: `view[]` and `ours[]` are written by the program's sigaction calls
 * (racing calls on one signal from two threads are not atomic together, as
 * they are bare); `terminating` is atomic, the handler's futex word.
 */
#include <errno.h>
#include <pthread.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"
#include "core/core.h"
#include "writer/writer.h"
#include "writer/writer.h"

/* The signals served; each must have "terminate" (no core) as default action. */
static const int term_signals[] = {SIGTERM, SIGINT};
#define NTERM (sizeof(term_signals) / sizeof(term_signals[0]))

/* How long a terminating signal waits for the exit snapshot. */
#define TERM_WAIT_NS (10ull * MTP_NS_PER_SEC)

static mtp_sigaction_fn real_sigaction;   /* set by mtp_term_install, before any use */
static MTP_FORKED struct sigaction view[NTERM]; /* the program's disposition while ours[i] */
static MTP_FORKED _Atomic int ours[NTERM]; /* our handler is installed in its place */
static MTP_FORKED _Atomic uint32_t terminating; /* 0, or 1 while a handler is serving one */
static _Atomic int enabled;               /* between mtp_term_install and mtp_term_uninstall */

static int term_index(int sig)
{
    for (size_t i = 0; i < NTERM; i++)
        if (term_signals[i] == sig)
            return (int)i;
    return -1;
}

int mtp_term_signal(int sig)
{
    return term_index(sig) >= 0;
}

static void on_term_signal(int sig, siginfo_t *si, void *uc);

static int install_ours(int i)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_term_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (real_sigaction(term_signals[i], &sa, NULL) < 0)
        return -errno;
    atomic_store(&ours[i], 1);
    return 0;
}

/* The signal's default action, now, on this thread. Returns if the process
 * survives it (the kernel dropped it). */
static void die_by(int i)
{
    int sig = term_signals[i];
    sigset_t one, old;
    atomic_store(&ours[i], 0);
    real_sigaction(sig, &view[i], NULL);
    sigemptyset(&one);
    sigaddset(&one, sig);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
    pthread_sigmask(SIG_UNBLOCK, &one, &old);
    /* Still here: the signal was dropped. Back to where we were. */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (atomic_load(&enabled))
        install_ours(i);
}

static void on_term_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    int i = term_index(sig);
    (void)si;
    if (i < 0)
        return;
    uint32_t idle = 0;
    if (atomic_compare_exchange_strong(&terminating, &idle, 1)) {
        char label[16] = "SIG";
        const char *abbrev = sigabbrev_np(sig);
        for (size_t k = 0; abbrev && abbrev[k] && k + 4 < sizeof(label); k++)
            label[3 + k] = abbrev[k];
        if (getpid() == mtp_pid)
            mtp_writer_handler_start(uc);
        int asked = mtp_term_snapshot(label, TERM_WAIT_NS);
        die_by(i);
        if (asked)
            mtp_term_survived();
        atomic_store(&terminating, 0);
        syscall(SYS_futex, &terminating, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    } else {
        while (atomic_load(&terminating) == 1)
            syscall(SYS_futex, &terminating, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
        die_by(i);
    }
    errno = saved;
}

int mtp_term_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int i = term_index(sig);
    if (i < 0 || !real_sigaction || !atomic_load(&enabled))
        return real_sigaction ? real_sigaction(sig, act, old) : (errno = ENOSYS, -1);
    struct sigaction was;
    if (atomic_load(&ours[i]))
        was = view[i];
    else if (real_sigaction(sig, NULL, &was) < 0)
        return -1;
    if (act) {
        if (real_sigaction(sig, act, NULL) < 0)
            return -1;
        if (act->sa_handler == SIG_DFL) {
            int saved = errno;
            if (real_sigaction(sig, NULL, &view[i]) == 0)   /* as the kernel keeps it */
                install_ours(i);
            errno = saved;
        } else {
            atomic_store(&ours[i], 0);
        }
    }
    if (old)
        *old = was;
    return 0;
}

/* A thread of the parent was serving a signal: not the child's. */
MTP_FORK_CODE void mtp_term_atfork_child(void)
{
    atomic_store(&terminating, 0);
}

void mtp_term_install(mtp_sigaction_fn real)
{
    real_sigaction = real;
    if (!real)
        return;
    atomic_store(&enabled, 1);
    for (size_t i = 0; i < NTERM; i++)
        if (real_sigaction(term_signals[i], NULL, &view[i]) == 0 &&
            view[i].sa_handler == SIG_DFL && install_ours((int)i) < 0)
            mtp_warn("cannot catch signal %d for its exit snapshot", term_signals[i]);
}

void mtp_term_uninstall(void)
{
    atomic_store(&enabled, 0);
    for (size_t i = 0; i < NTERM; i++)
        if (atomic_exchange(&ours[i], 0))
            real_sigaction(term_signals[i], &view[i], NULL);
}
