/*
 * What the program sets that memtrail must know. sigaction and signal: for
 * the terminating signals memtrail catches to take an exit snapshot
 * (core/termsig.c), the program sets and reads its own disposition through
 * mtp_term_sigaction; every other signal goes straight to libc. signal() is
 * built on sigaction as glibc builds it: BSD semantics, SA_RESTART, the
 * signal itself blocked in its handler. prctl: the system call, as glibc's
 * is; a PR_SET_PTRACER that succeeds is noted (mtp_ptracer_named), so that
 * the leak scan never replaces the program's own yama exception with its
 * helper's (leak/stopworld.c).
 *
 * Not covered (docs/design.md, Transparency): bsd_signal, sysv_signal, sigset
 * and the raw rt_sigaction and prctl system calls.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"
#include "core/core.h"
#include "hook/hook.h"

static void *real_sigaction_fn;   /* atomic: resolved on first use */

static mtp_sigaction_fn real_sigaction(void)
{
    return (mtp_sigaction_fn)mtp_next_symbol(&real_sigaction_fn, "sigaction");
}

void mtp_signal_hooks_init(void)
{
    mtp_term_install(real_sigaction());
}

/* Loaded late (hook/late.c): libc's sigaction, before the GOT slots lead
 * here; then, once they do, the exit snapshot's handlers in place of the
 * default dispositions; at the detach, the dispositions back. */
void mtp_signal_hooks_late_real(void *sigaction_def)
{
    if (sigaction_def)
        __atomic_store_n(&real_sigaction_fn, sigaction_def, __ATOMIC_RELEASE);
}

void mtp_signal_hooks_attach(void)
{
    mtp_term_install(real_sigaction());
}

void mtp_signal_hooks_detach(void)
{
    mtp_term_uninstall();
}

MTP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (mtp_term_signal(sig))
        return mtp_term_sigaction(sig, act, old);
    mtp_sigaction_fn real = real_sigaction();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(sig, act, old);
}

MTP_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
    struct sigaction act, old;
    memset(&act, 0, sizeof(act));
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&act.sa_mask, sig);
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}

MTP_EXPORT int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long),
                  a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    long r = syscall(SYS_prctl, option, a2, a3, a4, a5);
    if (r == 0 && option == PR_SET_PTRACER)
        atomic_store(&mtp_ptracer_named, a2 != 0);
    return (int)r;
}

/* Our own entry points, whatever the program's symbols are bound to
 * (hook/late.c writes these into GOT slots). */
extern __typeof__(sigaction) mtp_self_sigaction
    __attribute__((alias("sigaction"), copy(sigaction), visibility("hidden")));
extern __typeof__(signal) mtp_self_signal __attribute__((alias("signal"), copy(signal), visibility("hidden")));
