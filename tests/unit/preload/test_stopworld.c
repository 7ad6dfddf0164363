/* Unit tests of stopping the world (preload/leak/stopworld.c), in the test's
 * own process: threads asleep in nanosleep are held by ptrace, their stack
 * and thread pointers read, and let go with their sleep whole, no tracer
 * and no child left; the stop signal holds them when ptrace is refused (the
 * stop_ptrace seam) or when yama would need the ptracer name the program
 * gave; a signal that reaches a thread between its seize and its stop is
 * handed back once. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/state.h"
#include "base/util.h"
#include "leak/stopworld.h"

#define NSLEEPERS 3
#define SLEEP_MS 400

typedef struct sleeper {
    pthread_t th;
    _Atomic pid_t tid;
    uintptr_t tp, stack_lo, stack_hi;
    long ret;
    int err;
    uint64_t ms;
} sleeper_t;

static sleeper_t sleepers[NSLEEPERS];
static _Atomic int usr1_count;
static _Atomic pid_t usr1_tid;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&usr1_count, 1);
    atomic_store(&usr1_tid, (pid_t)syscall(SYS_gettid));
}

static void *sleep_fn(void *arg)
{
    sleeper_t *s = arg;
    pthread_attr_t attr;
    void *lo;
    size_t size;
    pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &lo, &size);
    pthread_attr_destroy(&attr);
    s->stack_lo = (uintptr_t)lo;
    s->stack_hi = (uintptr_t)lo + size;
    s->tp = (uintptr_t)pthread_self();
    uint64_t t0 = mtp_mono_ns();
    atomic_store(&s->tid, (pid_t)syscall(SYS_gettid));
    struct timespec ts = {0, SLEEP_MS * 1000000L};
    s->ret = nanosleep(&ts, NULL);
    s->err = s->ret < 0 ? errno : 0;
    s->ms = (mtp_mono_ns() - t0) / 1000000;
    return NULL;
}

/* Process state letter of thread tid ('S' asleep, 't' in a ptrace stop). */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] ? p[2] : '?';
}

static long tracer_of(pid_t tid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;   /* the thread has ended */
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = n < 0 ? errno : 0;
    close(fd);
    /* A thread that ends between the open and the read (a signalled
     * sleeper returns at once) reads as nothing: ESRCH or an empty file. */
    if (n < 0 && err == ESRCH)
        return 0;
    cr_assert_geq(n, 0, "%s: %s", path, strerror(err));
    if (n == 0)
        return 0;
    buf[n] = 0;
    const char *p = strstr(buf, "\nTracerPid:");
    cr_assert_not_null(p, "%s: no TracerPid in %zd bytes", path, n);
    return strtol(p + 11, NULL, 10);
}

static void start_sleepers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    mtp_stopworld_init(0);
    for (int i = 0; i < NSLEEPERS; i++) {
        memset(&sleepers[i], 0, sizeof(sleepers[i]));
        cr_assert_eq(pthread_create(&sleepers[i].th, NULL, sleep_fn, &sleepers[i]), 0);
    }
    for (int i = 0; i < NSLEEPERS; i++)   /* all asleep */
        while (!atomic_load(&sleepers[i].tid) || thread_state(atomic_load(&sleepers[i].tid)) != 'S')
            usleep(1000);
}

static sleeper_t *sleeper_of(pid_t tid)
{
    for (int i = 0; i < NSLEEPERS; i++)
        if (atomic_load(&sleepers[i].tid) == tid)
            return &sleepers[i];
    return NULL;
}

/* Stops the world; every sleeper must be held with its own stack and thread
 * pointers. Returns the number of sleepers seen. */
static int stop_and_check(int want_ptrace)
{
    uint32_t asked = 0;
    cr_assert_eq(mtp_stopworld_prepare(), 0);
    uint32_t missed = mtp_stopworld_stop(&asked);
    /* ptrace stops every thread; the signal not one that blocks it (the
     * test runner's own may). */
    if (want_ptrace)
        cr_expect_eq(missed, 0, "%u threads did not stop", missed);
    cr_expect_eq(mtp_stopworld_by_ptrace(), want_ptrace, "stopped by %s",
                 mtp_stopworld_by_ptrace() ? "ptrace" : "the signal");
    int seen = 0;
    for (uint32_t i = 0; i < mtp_stopworld_count(); i++) {
        mtp_stopped_t t;
        int st = mtp_stopworld_thread(i, &t);
        sleeper_t *s = sleeper_of(t.tid);
        if (!s)
            continue;
        seen++;
        cr_expect_eq(st, MTP_STOP_HELD, "sleeper %d: state %d", (int)t.tid, st);
        cr_expect(t.sp > s->stack_lo && t.sp < s->stack_hi, "sleeper %d: sp %#lx outside [%#lx, %#lx)",
                  (int)t.tid, (unsigned long)t.sp, (unsigned long)s->stack_lo,
                  (unsigned long)s->stack_hi);
        cr_expect_eq(t.tp, s->tp, "sleeper %d: thread pointer %#lx, want %#lx", (int)t.tid,
                     (unsigned long)t.tp, (unsigned long)s->tp);
        cr_expect_eq(t.nregs, want_ptrace ? MTP_STOP_NREGS : NGREG);
        if (want_ptrace)
            cr_expect_neq(tracer_of(t.tid), 0, "sleeper %d: no tracer while held", (int)t.tid);
    }
    if (want_ptrace)
        cr_expect_eq(asked, mtp_stopworld_count(), "asked %u of %u", asked, mtp_stopworld_count());
    return seen;
}

/* Lets them go; no tracer, no child left. */
static void release_and_join(void)
{
    mtp_stopworld_release();
    for (int i = 0; i < NSLEEPERS; i++)
        cr_expect_eq(tracer_of(atomic_load(&sleepers[i].tid)), 0, "a tracer after release");
    int status;
    errno = 0;
    cr_expect_eq(waitpid(-1, &status, __WALL | WNOHANG), -1, "a child left");
    cr_expect_eq(errno, ECHILD);
    for (int i = 0; i < NSLEEPERS; i++)
        pthread_join(sleepers[i].th, NULL);
}

Test(stopworld, ptrace_keeps_sleeps_whole)
{
    start_sleepers();
    cr_expect_eq(stop_and_check(1), NSLEEPERS);
    release_and_join();
    for (int i = 0; i < NSLEEPERS; i++) {
        cr_expect_eq(sleepers[i].ret, 0, "nanosleep: %s", strerror(sleepers[i].err));
        cr_expect_geq(sleepers[i].ms, SLEEP_MS, "nanosleep ended after %llu ms",
                      (unsigned long long)sleepers[i].ms);
    }
}

/* The fallback: the signal's handler holds them, and their sleeps end with
 * EINTR (which is what the ptrace path avoids). */
Test(stopworld, refused_ptrace_falls_back_to_the_signal)
{
    mtp_stopworld_use_signal();
    start_sleepers();
    cr_expect_eq(stop_and_check(0), NSLEEPERS);
    release_and_join();
    for (int i = 0; i < NSLEEPERS; i++)
        cr_expect(sleepers[i].ret == -1 && sleepers[i].err == EINTR, "nanosleep: %ld (%s)",
                  sleepers[i].ret, strerror(sleepers[i].err));
}

static int fake_yama(const char *path)
{
    if (strcmp(path, "/proc/sys/kernel/yama/ptrace_scope") != 0)
        return mtp_real_proc_open(path);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "1\n", 2), 2);
    close(p[1]);
    return p[0];
}

/* yama's ptrace_scope 1: the helper is named the process's ptracer, unless
 * the program named one (it cannot be read back, nor kept): then the signal. */
Test(stopworld, yama_with_a_ptracer_named_falls_back)
{
    mtp_seams.proc_open = fake_yama;
    atomic_store(&mtp_ptracer_named, 1);
    start_sleepers();
    cr_expect_eq(stop_and_check(0), NSLEEPERS);
    release_and_join();
}

Test(stopworld, yama_without_a_ptracer_named_uses_ptrace)
{
    mtp_seams.proc_open = fake_yama;
    atomic_store(&mtp_ptracer_named, 0);
    start_sleepers();
    cr_expect_eq(stop_and_check(1), NSLEEPERS);
    release_and_join();
}

/* The seize of the first sleeper is followed by a SIGUSR1 to it, and the
 * helper waits until the thread has stopped on it (signal-delivery-stop,
 * 't'): raw system calls only, this runs in the helper. */
static pid_t target;

MTP_NO_SANITIZE_RAW
static long seize_then_signal(long request, long tid, long addr, long data)
{
    long r = mtp_real_stop_ptrace(request, tid, addr, data);
    if (request != PTRACE_SEIZE || r < 0 || tid != target)
        return r;
    pid_t pid = (pid_t)mtp_raw_syscall(SYS_getppid, 0, 0, 0, 0, 0, 0);
    mtp_raw_syscall(SYS_tgkill, pid, tid, SIGUSR1, 0, 0, 0);
    char path[] = "/proc/0000000000/task/0000000000/stat", buf[512];
    char *w = path + 6;   /* "/proc/" then the pid, "/task/", the tid, "/stat" */
    long v[2] = {pid, tid};
    for (int k = 0; k < 2; k++) {
        char digits[16];
        int n = 0;
        for (long x = v[k]; x; x /= 10)
            digits[n++] = (char)('0' + x % 10);
        while (n)
            *w++ = digits[--n];
        const char *part = k == 0 ? "/task/" : "/stat";
        while (*part)
            *w++ = *part++;
    }
    *w = 0;
    for (int tries = 0; tries < 1000; tries++) {
        long fd = mtp_raw_syscall(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0, 0, 0);
        long n = fd >= 0 ? mtp_raw_syscall(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0, 0, 0) : 0;
        if (fd >= 0)
            mtp_raw_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
        char state = 0;
        for (long i = n - 1; i > 0; i--)
            if (buf[i] == ')') {
                state = i + 2 < n ? buf[i + 2] : 0;
                break;
            }
        if (state == 't')
            break;
        struct timespec ms = {0, 1000000};
        mtp_raw_syscall(SYS_nanosleep, (long)&ms, 0, 0, 0, 0, 0);
    }
    return r;
}

Test(stopworld, signal_before_the_stop_is_handed_back_once)
{
    start_sleepers();
    target = atomic_load(&sleepers[0].tid);
    atomic_store(&usr1_count, 0);
    mtp_seams.stop_ptrace = seize_then_signal;
    cr_expect_eq(stop_and_check(1), NSLEEPERS);
    int held = 0;
    for (uint32_t i = 0; i < mtp_stopworld_count(); i++) {
        mtp_stopped_t t;
        if (mtp_stopworld_thread(i, &t) == MTP_STOP_HELD && t.tid == target) {
            held = 1;
            cr_expect_eq(t.signal, SIGUSR1, "the target holds signal %d", t.signal);
        }
    }
    cr_expect(held);
    cr_expect_eq(atomic_load(&usr1_count), 0, "SIGUSR1 handled while held");
    release_and_join();
    cr_expect_eq(atomic_load(&usr1_count), 1, "SIGUSR1 handled %d times", atomic_load(&usr1_count));
    cr_expect_eq(atomic_load(&usr1_tid), target);
}

/* Threads made while the world stops: a spawner starts short-lived threads
 * as fast as it can; once stopped, every thread in /proc/self/task but this
 * one is held (or has ended): one made by a thread stopped inside clone is
 * found when the list is read again. */
static _Atomic int spawning;

static void *short_lived(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    return NULL;
}

static void *spawner(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (atomic_load(&spawning)) {
        pthread_t t;
        if (pthread_create(&t, &attr, short_lived, NULL) != 0)
            usleep(1000);
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

static int held_tid(pid_t tid)
{
    for (uint32_t i = 0; i < mtp_stopworld_count(); i++) {
        mtp_stopped_t t;
        if (mtp_stopworld_thread(i, &t) == MTP_STOP_HELD && t.tid == tid)
            return 1;
    }
    return 0;
}

Test(stopworld, threads_made_during_the_stop_are_held)
{
    mtp_stopworld_init(0);
    atomic_store(&spawning, 1);
    pthread_t sp;
    cr_assert_eq(pthread_create(&sp, NULL, spawner, NULL), 0);
    usleep(20 * 1000);
    pid_t self = (pid_t)syscall(SYS_gettid);
    int unheld = 0;
    for (int round = 0; round < 30; round++) {
        uint32_t asked;
        cr_assert_eq(mtp_stopworld_prepare(), 0);
        mtp_stopworld_stop(&asked);
        cr_expect(mtp_stopworld_by_ptrace());
        /* Nothing allocated while they are held (one may hold malloc's
         * lock): the list read with getdents64, the finds logged after. */
        pid_t found[64];
        int nfound = 0;
        char buf[8192];
        int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY);
        cr_assert_geq(fd, 0);
        for (long len; (len = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0;)
            for (long off = 0; off < len;) {
                struct dirent64 *e = (struct dirent64 *)(buf + off);
                off += e->d_reclen;
                pid_t tid = (pid_t)atoi(e->d_name);
                if (tid <= 0 || tid == self || held_tid(tid))
                    continue;
                char st = thread_state(tid);
                if (st != 'Z' && st != 'X' && st != '?' && nfound < 64)
                    found[nfound++] = tid;
            }
        close(fd);
        mtp_stopworld_release();
        for (int k = 0; k < nfound; k++)
            cr_log_error("round %d: thread %d was not held", round, (int)found[k]);
        unheld += nfound;
        usleep(2000);
    }
    atomic_store(&spawning, 0);
    pthread_join(sp, NULL);
    cr_expect_eq(unheld, 0, "%d threads ran on while the world was stopped", unheld);
}

/* A process that ends while its threads are held (killed, or exiting from
 * the scanning thread): the helper dies with it, so its held threads are
 * let go and reaped, and the process is reported to its parent. */
Test(stopworld, a_process_ending_while_held_is_reaped)
{
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        start_sleepers();
        uint32_t asked;
        if (mtp_stopworld_prepare() < 0 || mtp_stopworld_stop(&asked) != 0 ||
            !mtp_stopworld_by_ptrace())
            _exit(3);
        _exit(0);   /* held: never released */
    }
    int status = 0;
    pid_t got = 0;
    for (int ms = 0; ms < 3000 && got == 0; ms += 10) {
        got = waitpid(child, &status, WNOHANG);
        if (got == 0)
            usleep(10 * 1000);
    }
    if (got == 0)
        kill(child, SIGKILL);
    cr_expect_eq(got, child, "the process did not end in 3 s");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status %#x", status);
}
