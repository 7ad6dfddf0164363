/*
 * Stopping the world for the leak scan: every thread of the process but the
 * caller is held still, with its registers, stack pointer and thread pointer
 * copied into its slot, until released; the program must not see it.
 *
 * Two ways. ptrace first, as a debugger attaches: a thread in a ptrace stop
 * runs no handler, so a system call it was blocked in (nanosleep, poll,
 * select, a futex wait with a timeout) is restarted by the kernel with the
 * time left, and the program sees no EINTR. ptrace within one thread group
 * is refused, so the tracer is a helper process: clone(CLONE_VM | CLONE_FS |
 * CLONE_FILES | CLONE_UNTRACED) with exit signal 0, on a stack of ours. It
 * shares the process's memory but not its thread group, sends it no SIGCHLD,
 * and wait(2) without __WALL or __WCLONE does not see it; the writer reaps
 * it. It runs no C library code (it shares the writer's thread pointer, so
 * errno would be the writer's, and a sanitizer's runtime would take it for
 * the writer): raw system calls (mtp_raw_syscall) and plain loads and stores
 * only. It PTRACE_SEIZEs and PTRACE_INTERRUPTs each listed thread, waits
 * (__WALL) for its stop, copies its registers (PTRACE_GETREGSET
 * NT_PRSTATUS: fs_base is the thread pointer); at release it PTRACE_DETACHes
 * each, handing back the signal of a signal-delivery-stop (one that came
 * between the seize and the interrupt's stop), so that the program gets it
 * once; a group-stop (SIGSTOP from outside) is put back by the kernel at
 * detach. The fallback, whenever ptrace is refused (EPERM: yama, seccomp, no
 * permission; a thread already traced by a debugger or strace), clone fails
 * or the helper dies: the stop signal, whose handler copies the registers
 * (ucontext) and waits on a futex; there a call that is never restarted
 * returns EINTR. The ptrace path also restarts, at release, the few calls
 * any stop ends with EINTR (epoll_wait, sigtimedwait, semop: helper_restart),
 * as the kernel restarts the others.
 *
 * Threads: the writer calls everything here. The helper writes the slots of
 * the ptrace path between the writer's order and its report (ctl.order,
 * ctl.done: futexes); the signal handler writes its own slot before marking
 * it STOPPED. A thread created while the others stop is found when
 * /proc/self/task is read again once they are held (ptrace path; the signal
 * path leaves it running, and the scan's settle loop stops again).
 *
 * Invariants: no allocation and no lock while threads are held (one may hold
 * an arena lock): the slots and the helper's stack are mmap'd before. A
 * thread the helper seized is detached by it or, if it never stopped, by the
 * kernel when the helper exits; the helper dies with the writer thread
 * (PR_SET_PDEATHSIG), so a process killed while its threads are held does
 * not leave it waiting, nor its threads unreaped; the helper is reaped before release
 * returns, so no zombie is left and /proc/self/status shows TracerPid 0.
 * With yama's ptrace_scope 1 the tracer must be an ancestor or named by
 * PR_SET_PTRACER: the process names the helper, and the kernel forgets the
 * name when the helper exits. A name the program gave cannot be read back,
 * so the signal stops the threads of a program that gave one
 * (mtp_ptracer_named: its prctl calls go through hook/signals.c).
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/state.h"
#include "base/util.h"
#include "leak/stopworld.h"

#define STOP_WAIT_MS 1000
#define STOP_POLL_MS 10        /* the writer checks the stopped count this often */
#define RELIST_MAX 8           /* /proc/self/task read again at most this often */
#define MAX_SLOTS 16384
#define HELPER_STACK (64 * 1024)
#define HELPER_SIGNAL_MS 10    /* the helper looks for stops at least this often */
#define HELPER_DEADLINE_MS 10000 /* an order not carried out by then: the helper is killed */

_Static_assert(sizeof(struct user_regs_struct) == MTP_STOP_NREGS * sizeof(uintptr_t),
               "a slot holds user_regs_struct");
_Static_assert(NGREG <= MTP_STOP_NREGS, "a slot holds the ucontext's registers");

enum { SLOT_FREE = 0, SLOT_SENT, SLOT_STOPPED, SLOT_LEFT, SLOT_GONE, SLOT_REFUSED };

typedef struct stop_slot {
    _Atomic pid_t tid;       /* set by the writer before the thread is asked */
    _Atomic int state;       /* SLOT_*: SENT -> STOPPED by the handler or the helper */
    int seized;              /* ptrace: the helper seized it and has not let it go */
    int held;                /* ptrace: it is in a ptrace stop */
    int sig;                 /* ptrace: the signal of its signal-delivery-stop, or 0 */
    int trap;                /* ptrace: its stop is the interrupt's (PTRACE_EVENT_STOP,
                              * SIGTRAP), its registers read into regs */
    uintptr_t sp, tp;        /* written before STOPPED */
    uintptr_t regs[MTP_STOP_NREGS];
} stop_slot_t;

/* The helper's orders (ctl.kind). */
enum { ORDER_STOP = 1, ORDER_RELEASE };

typedef struct helper_ctl {
    _Atomic uint32_t order;  /* futex: the writer's order number */
    _Atomic uint32_t done;   /* futex: the last order carried out */
    _Atomic pid_t helper;    /* the helper's id (CLONE_PARENT_SETTID: before it runs);
                                0 once it ended (CLONE_CHILD_CLEARTID) */
    pid_t process;           /* the process's id: the helper's parent */
    int kind;                /* ORDER_*, written before order */
    uint32_t from, to;       /* ORDER_STOP: the slots to stop */
} helper_ctl_t;

/* Reserved once, never moved (a late handler may read it at any time). */
static stop_slot_t *slots;
static _Atomic uint32_t nslots;          /* atomic: slots in use this round */
static _Atomic uint32_t stopped_count;   /* atomic: futex the writer waits on */
static _Atomic uint32_t release_gen;     /* atomic: futex the stopped threads wait on */
static _Atomic int stop_active;          /* atomic */
static struct sigaction prev_action;     /* the handler ours replaced (chained) */
static int handler_installed;            /* writer-only */
static int stop_signo;                   /* written once by init */
static int yama_scope = -1;              /* -1 until a stop reads it; 0 when yama is absent */
static char *helper_stack;               /* writer-only: HELPER_STACK bytes, mmap'd once */
static helper_ctl_t ctl;                 /* the writer and the helper */
static pid_t helper_pid;                 /* writer-only: the helper to reap, 0 when none */
static int by_ptrace;                    /* writer-only: the current stop is ptrace's */
static int ptrace_refused;               /* writer-only: this scan saw ptrace refused */
static pid_t skip_tid;                   /* writer-only: a thread that holds itself, not asked */

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

int mtp_stopworld_signal(void)
{
    return stop_signo;
}

void mtp_stopworld_init(int avoid_signo)
{
    stop_signo = SIGRTMAX - 4;
    if (stop_signo == avoid_signo)
        stop_signo = SIGRTMAX - 5;
    yama_scope = -1;
}

/* yama's ptrace_scope, read by the first stop by ptrace (the scanning
 * thread, under the writer's lock): a process that never stops another
 * thread never opens the file. */
static int yama(void)
{
    if (yama_scope < 0) {
        char buf[16];
        int fd = mtp_seams.proc_open("/proc/sys/kernel/yama/ptrace_scope");
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
        if (fd >= 0)
            close(fd);
        yama_scope = n > 0 ? buf[0] - '0' : 0;
    }
    return yama_scope;
}

int mtp_stopworld_by_ptrace(void)
{
    return by_ptrace;
}

/* The stop_ptrace seam's answer when stops go by the signal: ptrace refused,
 * as yama or a seccomp filter would. Runs in the helper process: plain code
 * only. */
MTP_NO_SANITIZE_RAW
static long refuse_ptrace(long request, long tid, long addr, long data)
{
    (void)request, (void)tid, (void)addr, (void)data;
    return -EPERM;
}

void mtp_stopworld_use_signal(void)
{
    mtp_seams.stop_ptrace = refuse_ptrace;
}

/* ---- the signal ---- */
static void stop_handler(int sig, siginfo_t *si, void *ucv)
{
    int saved = errno;
    pid_t pid = getpid();
    if (!si || si->si_code != SI_TKILL || si->si_pid != pid) {
        /* not ours: the application's handler, if it had one */
        if ((prev_action.sa_flags & SA_SIGINFO) && prev_action.sa_sigaction)
            prev_action.sa_sigaction(sig, si, ucv);
        else if (!(prev_action.sa_flags & SA_SIGINFO) && prev_action.sa_handler != SIG_DFL &&
                 prev_action.sa_handler != SIG_IGN)
            prev_action.sa_handler(sig);
        errno = saved;
        return;
    }
    uint32_t gen = atomic_load(&release_gen);
    if (!atomic_load(&stop_active)) {   /* a late signal of a scan that is over */
        errno = saved;
        return;
    }
    pid_t tid = (pid_t)syscall(SYS_gettid);
    uint32_t n = atomic_load(&nslots);
    stop_slot_t *s = NULL;
    for (uint32_t i = 0; i < n && !s; i++)
        if (atomic_load_explicit(&slots[i].tid, memory_order_relaxed) == tid)
            s = &slots[i];
    if (!s || atomic_load(&s->state) != SLOT_SENT) {
        errno = saved;
        return;
    }
    const ucontext_t *uc = ucv;
    for (int i = 0; i < NGREG; i++)
        s->regs[i] = (uintptr_t)uc->uc_mcontext.gregs[i];
    s->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t tp;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
    s->tp = tp;
    atomic_store(&s->state, SLOT_STOPPED);
    atomic_fetch_add(&stopped_count, 1);
    futex(&stopped_count, FUTEX_WAKE_PRIVATE, 1, NULL);
    while (atomic_load(&release_gen) == gen)
        futex(&release_gen, FUTEX_WAIT_PRIVATE, gen, NULL);
    atomic_store(&s->state, SLOT_LEFT);
    errno = saved;
}

int mtp_stopworld_prepare(void)
{
    ptrace_refused = 0;
    if (handler_installed)
        return 0;
    if (!slots) {
        void *p = mmap(NULL, MAX_SLOTS * sizeof(stop_slot_t), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return -ENOMEM;
        slots = p;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = stop_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);   /* nothing else runs on a stopped thread */
    if (sigaction(stop_signo, &sa, &prev_action) < 0)
        return -errno;
    handler_installed = 1;
    return 0;
}

/* Appends the thread ids of this process but the caller's that are not in
 * slots[0, n) yet; returns the new count. */
static uint32_t list_threads(uint32_t n)
{
    char buf[4096];
    pid_t self = (pid_t)syscall(SYS_gettid);
    uint32_t old = n;
    int fd = mtp_seams.proc_open("/proc/self/task");
    if (fd < 0)
        return n;
    for (;;) {
        long len = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (len <= 0)
            break;
        for (long off = 0; off < len;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            pid_t tid = 0;
            for (const char *c = d->d_name; *c >= '0' && *c <= '9'; c++)
                tid = tid * 10 + (*c - '0');
            if (tid <= 0 || tid == self || tid == skip_tid || n == MAX_SLOTS)
                continue;
            uint32_t k = 0;
            while (k < old && atomic_load_explicit(&slots[k].tid, memory_order_relaxed) != tid)
                k++;
            if (k < old)
                continue;
            stop_slot_t *s = &slots[n++];
            atomic_store(&s->tid, tid);
            atomic_store(&s->state, SLOT_FREE);
            s->seized = s->held = s->sig = s->trap = 0;
            s->sp = s->tp = 0;
        }
    }
    close(fd);
    return n;
}

/* Whether thread tid has exited (zombie or dead): it will never answer. A
 * thread stays listed for a while after it ended (after pthread_join has
 * returned, or a leader that called pthread_exit until the process ends). */
static int thread_ended(pid_t tid)
{
    char path[64], state;
    long threads;
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    if (mtp_proc_stat(path, &state, &threads) < 0)
        return 1;   /* gone from the list */
    return state == 'Z' || state == 'X';
}

/* Releases the threads the signal stopped; waits until they left the handler. */
static void signal_release(void)
{
    atomic_store(&stop_active, 0);
    atomic_fetch_add(&release_gen, 1);
    futex(&release_gen, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL);
    uint64_t start = mtp_mono_ns();
    uint32_t n = atomic_load(&nslots);
    for (uint32_t i = 0; i < n; i++)
        while (atomic_load(&slots[i].state) == SLOT_STOPPED && mtp_mono_ns() - start < 2000000000u)
            sched_yield();
}

/* Stops every other thread with the signal. Returns how many did not stop. */
static uint32_t signal_stop(uint32_t *sent_out)
{
    pid_t pid = getpid();
    uint32_t n = list_threads(0), sent = 0;
    atomic_store(&stopped_count, 0);
    atomic_store(&nslots, n);
    atomic_store(&stop_active, 1);
    for (uint32_t i = 0; i < n; i++) {
        atomic_store(&slots[i].state, SLOT_SENT);
        if (syscall(SYS_tgkill, pid, atomic_load(&slots[i].tid), stop_signo) == 0)
            sent++;
        else
            atomic_store(&slots[i].state, SLOT_GONE);
    }
    uint64_t deadline = mtp_mono_ns() + STOP_WAIT_MS * MTP_NS_PER_MS;
    for (;;) {
        uint32_t c = atomic_load(&stopped_count);
        if (c >= sent)
            break;
        uint64_t now = mtp_mono_ns();
        if (now >= deadline)
            break;
        struct timespec ts = {0, STOP_POLL_MS * MTP_NS_PER_MS};
        futex(&stopped_count, FUTEX_WAIT_PRIVATE, c, &ts);
        /* Threads that ended never answer: stop waiting for them. */
        for (uint32_t i = 0; i < n; i++) {
            int want = SLOT_SENT;
            if (atomic_load(&slots[i].state) == SLOT_SENT &&
                thread_ended(atomic_load(&slots[i].tid)) &&
                atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_GONE))
                sent--;
        }
    }
    *sent_out = sent;
    uint32_t stopped = 0;
    for (uint32_t i = 0; i < n; i++)
        stopped += atomic_load(&slots[i].state) == SLOT_STOPPED;
    return sent - stopped;
}

/* ---- the helper: raw system calls only ---- */
#define HELPER_CODE __attribute__((noinline)) MTP_NO_SANITIZE_RAW

HELPER_CODE static uint64_t helper_now_ns(void)
{
    struct timespec ts;
    mtp_raw_syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
    return (uint64_t)ts.tv_sec * MTP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

HELPER_CODE static void helper_wake(_Atomic uint32_t *word)
{
    mtp_raw_syscall(SYS_futex, (long)word, FUTEX_WAKE_PRIVATE, INT32_MAX, 0, 0, 0);
}

/* A stop or the end of the thread of slot s, as wait4 reported it. */
HELPER_CODE static void helper_event(stop_slot_t *s, int status)
{
    if (!WIFSTOPPED(status)) {   /* exited or killed: the kernel let it go */
        s->seized = s->held = 0;
        atomic_store(&s->state, SLOT_GONE);
        return;
    }
    if (s->held)
        return;
    s->held = 1;
    /* PTRACE_EVENT_STOP: the interrupt, or a group-stop (given back by
     * the kernel at detach); else a signal-delivery-stop, whose signal is
     * handed back at detach. */
    s->sig = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
    s->trap = 0;
    struct iovec iov = {s->regs, sizeof(s->regs)};
    pid_t tid = atomic_load_explicit(&s->tid, memory_order_relaxed);
    if (mtp_seams.stop_ptrace(PTRACE_GETREGSET, tid, NT_PRSTATUS, (long)&iov) < 0)
        return;   /* held but unread: scanned as a thread that did not stop */
    s->trap = (status >> 16) == PTRACE_EVENT_STOP && WSTOPSIG(status) == SIGTRAP;
    s->sp = s->regs[offsetof(struct user_regs_struct, rsp) / sizeof(uintptr_t)];
    s->tp = s->regs[offsetof(struct user_regs_struct, fs_base) / sizeof(uintptr_t)];
    atomic_store(&s->state, SLOT_STOPPED);
}

HELPER_CODE static stop_slot_t *helper_slot(pid_t tid, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (atomic_load_explicit(&slots[i].tid, memory_order_relaxed) == tid)
            return &slots[i];
    return NULL;
}

/* Seizes and interrupts slots [from, to), then waits for their stops until
 * every seized thread is held or the deadline. */
HELPER_CODE static void helper_stop(uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++) {
        stop_slot_t *s = &slots[i];
        pid_t tid = atomic_load_explicit(&s->tid, memory_order_relaxed);
        long r = mtp_seams.stop_ptrace(PTRACE_SEIZE, tid, 0, 0);
        if (r < 0) {
            atomic_store(&s->state, r == -ESRCH ? SLOT_GONE : SLOT_REFUSED);
            continue;
        }
        s->seized = 1;
        atomic_store(&s->state, SLOT_SENT);
        mtp_raw_syscall(SYS_ptrace, PTRACE_INTERRUPT, tid, 0, 0, 0, 0);
    }
    uint64_t deadline = helper_now_ns() + STOP_WAIT_MS * MTP_NS_PER_MS;
    for (;;) {
        int status;
        long r = mtp_raw_syscall(SYS_wait4, -1, (long)&status, __WALL | WNOHANG, 0, 0, 0);
        if (r > 0) {
            stop_slot_t *s = helper_slot((pid_t)r, to);
            if (s)
                helper_event(s, status);
            continue;
        }
        uint32_t waiting = 0;
        for (uint32_t i = 0; i < to; i++)
            waiting += slots[i].seized && !slots[i].held;
        uint64_t now = helper_now_ns();
        if (!waiting || r < 0 || now >= deadline)
            return;
        /* A tracee's stop sends this process SIGCHLD (blocked here, at its
         * default action, so queued): wait for one. */
        uint64_t left = deadline - now < HELPER_SIGNAL_MS * MTP_NS_PER_MS
                            ? deadline - now : HELPER_SIGNAL_MS * MTP_NS_PER_MS;
        struct timespec ts = {0, (long)left};
        uint64_t chld = 1ull << (SIGCHLD - 1);
        mtp_raw_syscall(SYS_rt_sigtimedwait, (long)&chld, 0, (long)&ts, 8, 0, 0);
    }
}

/* The calls a stop ends with EINTR instead of a restart code (signal(7),
 * "Interruption of system calls and library functions by stop signals"):
 * the interrupt sets the thread's pending flag, they see it and return
 * -EINTR themselves, and the kernel's restart (for the others) never
 * applies. */
HELPER_CODE static int ends_with_eintr(long nr)
{
    switch (nr) {
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
#endif
    case SYS_rt_sigtimedwait:
    case SYS_semop:
    case SYS_semtimedop:
        return 1;
    default:
        return 0;
    }
}

/* Whether thread tid has a signal pending that its mask lets through (in
 * its own queue or the process's): that signal ends its call bare too. */
HELPER_CODE static int signal_pending(pid_t tid)
{
    uint64_t blocked = 0;
    if (mtp_raw_syscall(SYS_ptrace, PTRACE_GETSIGMASK, tid, sizeof(blocked), (long)&blocked,
                        0, 0) < 0)
        return 1;
    static const unsigned flags[2] = {0, PTRACE_PEEKSIGINFO_SHARED};
    for (int q = 0; q < 2; q++) {
        siginfo_t si[8];
        struct { uint64_t off; uint32_t flags; int32_t nr; } args = {0, flags[q], 8};
        long n = mtp_raw_syscall(SYS_ptrace, PTRACE_PEEKSIGINFO, tid, (long)&args, (long)si, 0, 0);
        if (n < 0 || n == 8)
            return 1;   /* unknown, or more than we looked at */
        for (long i = 0; i < n; i++)
            if (si[i].si_signo < 1 || si[i].si_signo > 64 ||
                !(blocked & (1ull << (si[i].si_signo - 1))))
                return 1;
    }
    return 0;
}

/* A thread the interrupt took out of one of those calls, which therefore
 * returns -EINTR (rax) where bare it would still wait: its registers are
 * set to make the call again, as the kernel does for a restartable one
 * (rax back to the call's number, rip back over the 2-byte `syscall`). Not
 * when a signal its mask lets through is pending (it ends the call bare
 * too), nor for any stop but the interrupt's (a SIGSTOP's group-stop ends
 * it bare too). The call starts over with the arguments it had: a timeout
 * counts again from the release, so the wait is longer by the time spent
 * in it before the stop. */
HELPER_CODE static void helper_restart(stop_slot_t *s, pid_t tid)
{
    enum {
        RAX = offsetof(struct user_regs_struct, rax) / sizeof(uintptr_t),
        ORIG = offsetof(struct user_regs_struct, orig_rax) / sizeof(uintptr_t),
        RIP = offsetof(struct user_regs_struct, rip) / sizeof(uintptr_t),
    };
    if (!s->trap || (long)s->regs[RAX] != -EINTR || !ends_with_eintr((long)s->regs[ORIG]))
        return;
    long insn = 0;
    if (mtp_raw_syscall(SYS_ptrace, PTRACE_PEEKTEXT, tid, (long)(s->regs[RIP] - 2), (long)&insn,
                        0, 0) < 0 ||
        (insn & 0xffff) != 0x050f)   /* syscall */
        return;
    if (signal_pending(tid))
        return;
    uintptr_t regs[MTP_STOP_NREGS];
    for (int i = 0; i < MTP_STOP_NREGS; i++)
        regs[i] = s->regs[i];
    regs[RAX] = regs[ORIG];
    regs[RIP] -= 2;
    struct iovec iov = {regs, sizeof(regs)};
    mtp_raw_syscall(SYS_ptrace, PTRACE_SETREGSET, tid, NT_PRSTATUS, (long)&iov, 0, 0);
}

/* Lets every seized thread go: a held one with the signal it held; one
 * that never stopped is let go by the kernel when the helper exits. */
HELPER_CODE static void helper_release(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        stop_slot_t *s = &slots[i];
        if (!s->seized)
            continue;
        pid_t tid = atomic_load_explicit(&s->tid, memory_order_relaxed);
        int status;
        if (!s->held &&
            mtp_raw_syscall(SYS_wait4, tid, (long)&status, __WALL | WNOHANG, 0, 0, 0) == tid)
            helper_event(s, status);
        if (s->held) {
            helper_restart(s, tid);
            mtp_raw_syscall(SYS_ptrace, PTRACE_DETACH, tid, 0, s->sig, 0, 0);
        }
        s->seized = s->held = 0;
    }
}

HELPER_CODE static int helper_main(void *arg)
{
    helper_ctl_t *c = arg;
    /* Killed when the thread that made it ends (the process exiting or
     * killed while its threads are held): the kernel then lets them go, and
     * the helper does not wait on for an order that never comes. */
    mtp_raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0, 0);
    if (mtp_raw_syscall(SYS_getppid, 0, 0, 0, 0, 0, 0) != c->process)
        return 0;   /* it ended before */
    /* No core file of the helper if a seccomp filter kills it; SIGCHLD at
     * its default action in this process's own copy of the handlers (the
     * program may ignore it), so that a tracee's stop queues one. */
    struct rlimit none = {0, 0};
    mtp_raw_syscall(SYS_prlimit64, 0, RLIMIT_CORE, (long)&none, 0, 0, 0);
    long dfl[4] = {0, 0, 0, 0};   /* the kernel's sigaction: SIG_DFL */
    mtp_raw_syscall(SYS_rt_sigaction, SIGCHLD, (long)dfl, 0, 8, 0, 0);
    uint32_t seen = 0;
    for (;;) {
        uint32_t o;
        while ((o = atomic_load(&c->order)) == seen)
            mtp_raw_syscall(SYS_futex, (long)&c->order, FUTEX_WAIT_PRIVATE, seen, 0, 0, 0);
        seen = o;
        if (c->kind == ORDER_RELEASE) {
            helper_release(c->to);
            atomic_store(&c->done, o);
            helper_wake(&c->done);
            return 0;
        }
        helper_stop(c->from, c->to);
        atomic_store(&c->done, o);
        helper_wake(&c->done);
    }
}

/* clone(2) without the C library's wrapper (a sanitizer intercepts that
 * one): the child runs fn(arg) on the stack ending at top, then exits. */
static long raw_clone(unsigned long flags, char *top, _Atomic pid_t *tid, int (*fn)(void *),
                      void *arg)
{
    uintptr_t *sp = (uintptr_t *)((uintptr_t)top & ~(uintptr_t)15);
    *--sp = (uintptr_t)arg;
    *--sp = (uintptr_t)fn;
    long ret;
    register long r10 __asm__("r10") = (long)tid;   /* child_tid; parent_tid in rdx */
    register long r8 __asm__("r8") = 0;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"   /* the child: fn(arg), then exit */
                     "pop %%rax\n\t"
                     "pop %%rdi\n\t"
                     "call *%%rax\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov %[nr_exit], %%eax\n\t"
                     "syscall\n\t"
                     "hlt\n\t"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"(SYS_clone), "D"(flags), "S"(sp), "d"(tid), "r"(r10), "r"(r8),
                       [nr_exit] "i"(SYS_exit)
                     : "rcx", "r11", "memory");
    return ret;
}

/* ---- the ptrace path, the writer's side ---- */
/* Gives the helper an order and waits until it is carried out. Returns 0,
 * or -ECHILD when the helper ended first. A helper that takes far longer
 * than its own deadline (stopped from outside) is killed: the kernel then
 * lets its threads go. */
static int helper_order(int kind, uint32_t from, uint32_t to)
{
    uint64_t deadline = mtp_mono_ns() + HELPER_DEADLINE_MS * MTP_NS_PER_MS;
    ctl.kind = kind;
    ctl.from = from;
    ctl.to = to;
    uint32_t o = atomic_load(&ctl.order) + 1;
    atomic_store(&ctl.order, o);
    futex(&ctl.order, FUTEX_WAKE_PRIVATE, 1, NULL);
    for (;;) {
        uint32_t d = atomic_load(&ctl.done);
        if (d == o)
            return 0;
        if (!atomic_load(&ctl.helper))
            return -ECHILD;
        if (mtp_mono_ns() > deadline)
            kill(helper_pid, SIGKILL);
        struct timespec ts = {0, STOP_POLL_MS * MTP_NS_PER_MS};
        futex(&ctl.done, FUTEX_WAIT_PRIVATE, d, &ts);
    }
}

/* Releases every thread the helper holds and reaps it. */
static void ptrace_release(void)
{
    if (atomic_load(&ctl.helper))
        helper_order(ORDER_RELEASE, 0, atomic_load(&nslots));
    int status;   /* reaped even when it died early (ctl.helper is then 0) */
    while (helper_pid && waitpid(helper_pid, &status, __WALL) < 0 && errno == EINTR)
        ;
    helper_pid = 0;
    /* The kernel has let go what the helper still traced (it ended). */
    uint32_t n = atomic_load(&nslots);
    for (uint32_t i = 0; i < n; i++) {
        slots[i].seized = slots[i].held = 0;
        if (atomic_load(&slots[i].state) == SLOT_STOPPED)
            atomic_store(&slots[i].state, SLOT_LEFT);
    }
}

/* Stops every other thread through the helper. Returns how many did not
 * stop, or -errno when ptrace cannot be used (nothing is held then). */
static long ptrace_stop(uint32_t *asked)
{
    int saved = errno;
    if (!helper_stack) {
        void *p = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p == MAP_FAILED)
            return -ENOMEM;
        helper_stack = p;
    }
    /* yama 1: only an ancestor, or the one the process names, may trace
     * it. The name is one per process and cannot be read back: a program
     * that named its own keeps it, and its threads get the signal. */
    if (yama() == 1 && atomic_load(&mtp_ptracer_named))
        return -EPERM;
    uint32_t n = list_threads(0);
    atomic_store(&nslots, n);
    atomic_store(&ctl.order, 0);
    atomic_store(&ctl.done, 0);
    ctl.process = getpid();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the helper starts with every signal blocked */
    long helper = raw_clone(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED |
                                CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID,
                            helper_stack + HELPER_STACK, &ctl.helper, helper_main, &ctl);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    if (helper < 0)
        return helper;
    helper_pid = (pid_t)helper;   /* ctl.helper too, by the kernel */
    if (yama() == 1)
        mtp_raw_syscall(SYS_prctl, PR_SET_PTRACER, helper, 0, 0, 0, 0);
    int r = helper_order(ORDER_STOP, 0, n);
    /* A thread created meanwhile: stopped too, once the others are held. */
    for (int k = 0; r == 0 && k < RELIST_MAX; k++) {
        uint32_t m = list_threads(n);
        if (m == n)
            break;
        atomic_store(&nslots, m);
        r = helper_order(ORDER_STOP, n, m);
        n = m;
    }
    /* A refusal is ptrace's unless the thread ended (a zombie cannot be
     * seized): then every thread goes back, and the signal stops them. */
    for (uint32_t i = 0; i < n && r == 0; i++)
        if (atomic_load(&slots[i].state) == SLOT_REFUSED) {
            if (thread_ended(atomic_load(&slots[i].tid)))
                atomic_store(&slots[i].state, SLOT_GONE);
            else
                r = -EPERM;
        }
    if (r < 0) {
        ptrace_release();
        errno = saved;
        return r;
    }
    uint32_t sent = 0, missed = 0;
    for (uint32_t i = 0; i < n; i++) {
        int st = atomic_load(&slots[i].state);
        sent += st == SLOT_SENT || st == SLOT_STOPPED;
        missed += st == SLOT_SENT;
    }
    *asked = sent;
    errno = saved;
    return missed;
}

/* ---- the interface ---- */
void mtp_stopworld_skip(pid_t tid)
{
    skip_tid = tid;
}

uint32_t mtp_stopworld_stop(uint32_t *asked)
{
    if (!ptrace_refused) {
        long r = ptrace_stop(asked);
        if (r >= 0) {
            by_ptrace = 1;
            return (uint32_t)r;
        }
        ptrace_refused = 1;   /* for the rest of this scan */
    }
    by_ptrace = 0;
    return signal_stop(asked);
}

void mtp_stopworld_release(void)
{
    if (by_ptrace)
        ptrace_release();
    else
        signal_release();
}

uint32_t mtp_stopworld_count(void)
{
    return atomic_load(&nslots);
}

int mtp_stopworld_thread(uint32_t i, mtp_stopped_t *out)
{
    stop_slot_t *s = &slots[i];
    int st = atomic_load(&s->state);
    *out = (mtp_stopped_t){.tid = atomic_load(&s->tid)};
    if (st == SLOT_SENT)
        return MTP_STOP_MISSED;
    if (st != SLOT_STOPPED)
        return MTP_STOP_NONE;
    out->sp = s->sp;
    out->tp = s->tp;
    out->regs = s->regs;
    out->nregs = by_ptrace ? MTP_STOP_NREGS : NGREG;
    out->signal = by_ptrace ? s->sig : 0;
    return MTP_STOP_HELD;
}
