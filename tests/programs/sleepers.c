/* sleepers: threads asleep in system calls while the leak scan stops the
 * world; tests/integration/test_leaks.c checks that they see nothing of it
 * (docs/design.md, Leaks: stopping the world).
 *
 * Five threads, each in one call for WAIT_MS (a second), the test signal
 * blocked: nanosleep (a raw system call, with the only pointer to a block in
 * the callee-saved register r12), poll and select on a pipe nobody writes
 * (the only pointer to another block on the poll thread's stack), a futex
 * wait with a timeout, and read() on a pipe main writes to once the others
 * are done (restartable, SA_RESTART or not). Meanwhile main takes an API
 * snapshot (a leak-checked one under --leak-check=all) while a child process
 * sends it SIG_TEST, queued, every 50 us until the snapshot is over; main's
 * handler counts them. Then each thread's line: its return value and errno,
 * and whether it lasted its full time; /proc/self/status's TracerPid; that
 * the process has no child left (waitpid __WALL); whether every signal sent
 * came once. The threads go back to sleep (a line "NAME: EINTR at exit" if
 * one returns early) and main returns: the exit snapshot's scan stops them
 * again.
 *
 * Expected leak classification (both snapshots), by allocating function:
 *   in_register   reachable  72 / 1   (only in the nanosleep thread's r12)
 *   on_stack      reachable  88 / 1   (only on the poll thread's stack)
 *   lose_on_main  definite   32 / 1
 *   pthread_create possible   ? / 5   the threads' DTVs (leakthread.c)
 * Bare stdout:
 *   nanosleep: 0 full
 *   poll: 0 full
 *   select: 0 full
 *   futex: ETIMEDOUT full
 *   read: 1 full
 *   tracer: 0
 *   children: none
 *   signals: each once
 *
 * `sleepers N` instead starts N threads asleep in nanosleep and returns at
 * once: the exit scan's stop of N threads (docs/performance.md).
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MEMTRAIL_WEAK
#include "memtrail.h"
#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define WAIT_MS 1000
#define SLACK_MS 5            /* a timeout may end this much before its time */
#define MASK 0x5a5a5a5a5a5a5a5aull
#define SIG_TEST (SIGRTMIN + 2)
#define MAX_SENT 20000

enum { T_NANOSLEEP, T_POLL, T_SELECT, T_FUTEX, T_READ, NTHREADS };
static const char *const names[NTHREADS] = {"nanosleep", "poll", "select", "futex", "read"};

typedef struct result {
    long ret;
    int err;
    uint64_t ms;
} result_t;

static result_t results[NTHREADS];
static _Atomic long g_sleeper_tid;   /* the nanosleep thread's */
static int g_ready[2], g_done[2], g_data[2], g_never[2];
static _Atomic uint32_t g_word;     /* the futex: nobody wakes it */
static _Atomic long g_received;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(int fd)
{
    char c = 'x';
    if (write(fd, &c, 1) != 1)
        prog_die("sleepers", "write failed");
}

static void hear(int fd)
{
    char c;
    ssize_t r;
    do
        r = read(fd, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        prog_die("sleepers", "read failed");
}

static void finish(int t, long ret, uint64_t t0)
{
    results[t] = (result_t){ret < 0 ? -1 : ret, ret < 0 ? errno : 0, now_ms() - t0};
    say(g_done[1]);
}

static void at_exit_eintr(int t)
{
    prog_put(1, names[t]);
    prog_put(1, ": EINTR at exit\n");
}

/* The block's address, masked: no word of memory holds it. */
static NOINLINE uintptr_t in_register(void)
{
    char *p = malloc(72); /* SITE:in_register */
    if (p == NULL)
        prog_die("sleepers", "malloc failed");
    memset(p, 0x11, 72);
    return (uintptr_t)p ^ MASK;
}

/* nanosleep with the block's address in r12 (callee-saved: the kernel's
 * saved registers, ucontext and ptrace, hold it while the thread sleeps),
 * and in no memory. Returns the kernel's value (-errno). */
static NOINLINE long nanosleep_holding(uintptr_t masked, const struct timespec *ts,
                                       struct timespec *rem)
{
    long ret;
    __asm__ volatile("mov %[h], %%r12\n\t"
                     "xor %[m], %%r12\n\t"
                     "syscall\n\t"
                     "xor %%r12, %%r12\n\t"
                     : "=a"(ret)
                     : "a"((long)SYS_nanosleep), "D"(ts), "S"(rem), [h] "r"(masked),
                       [m] "r"(MASK)
                     : "rcx", "r11", "r12", "memory");
    return ret;
}

static void *t_nanosleep(void *arg)
{
    (void)arg;
    uintptr_t masked = in_register();
    prog_scrub_stack();
    struct timespec ts = {WAIT_MS / 1000, 0}, rem;
    atomic_store(&g_sleeper_tid, (long)syscall(SYS_gettid));
    say(g_ready[1]);
    uint64_t t0 = now_ms();
    long r = nanosleep_holding(masked, &ts, &rem);
    if (r < 0)
        errno = (int)-r;
    finish(T_NANOSLEEP, r < 0 ? -1 : r, t0);
    for (;;) {
        ts = (struct timespec){3600, 0};
        if (nanosleep_holding(masked, &ts, &rem) == -EINTR)
            at_exit_eintr(T_NANOSLEEP);
    }
    return NULL;
}

static NOINLINE void *on_stack(void)
{
    char *p = malloc(88); /* SITE:on_stack */
    if (p == NULL)
        prog_die("sleepers", "malloc failed");
    memset(p, 0x22, 88);
    return p;
}

/* Until the nanosleep thread is inside nanosleep (10 s at most): only
 * then is the block's only pointer in r12. Its "ready" comes just before
 * the call, and on a loaded machine the call can come much later. */
static void wait_in_nanosleep(void)
{
    for (int i = 0; i < 10000 && !prog_in_syscall(atomic_load(&g_sleeper_tid), SYS_nanosleep); i++)
        usleep(1000);
}

static void *t_poll(void *arg)
{
    (void)arg;
    void *volatile keep = on_stack();
    struct pollfd pfd = {g_never[0], POLLIN, 0};
    say(g_ready[1]);
    uint64_t t0 = now_ms();
    finish(T_POLL, poll(&pfd, 1, WAIT_MS), t0);
    for (;;)
        if (poll(&pfd, 1, -1) < 0 && errno == EINTR && keep != NULL)
            at_exit_eintr(T_POLL);
    return NULL;
}

static void *t_select(void *arg)
{
    (void)arg;
    fd_set set;
    struct timeval tv = {WAIT_MS / 1000, 0};
    FD_ZERO(&set);
    FD_SET(g_never[0], &set);
    say(g_ready[1]);
    uint64_t t0 = now_ms();
    finish(T_SELECT, select(g_never[0] + 1, &set, NULL, NULL, &tv), t0);
    for (;;) {
        FD_ZERO(&set);
        FD_SET(g_never[0], &set);
        if (select(g_never[0] + 1, &set, NULL, NULL, NULL) < 0 && errno == EINTR)
            at_exit_eintr(T_SELECT);
    }
    return NULL;
}

static void *t_futex(void *arg)
{
    (void)arg;
    struct timespec ts = {WAIT_MS / 1000, 0};
    say(g_ready[1]);
    uint64_t t0 = now_ms();
    finish(T_FUTEX, syscall(SYS_futex, &g_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0), t0);
    for (;;)
        if (syscall(SYS_futex, &g_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0) < 0 &&
            errno == EINTR)
            at_exit_eintr(T_FUTEX);
    return NULL;
}

static void *t_read(void *arg)
{
    (void)arg;
    char c;
    say(g_ready[1]);
    uint64_t t0 = now_ms();
    finish(T_READ, read(g_data[0], &c, 1), t0);
    for (;;)
        if (read(g_never[0], &c, 1) < 0 && errno == EINTR)
            at_exit_eintr(T_READ);
    return NULL;
}

static void count_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_received, 1);
}

/* The child: SIG_TEST to its parent every 50 us from "go" until "stop",
 * then the count sent on the pipe. It leaves by exit_group, without
 * memtrail's exit snapshot (the test wants the parent's only). */
static NOINLINE void sender(pid_t parent, int go, int stop, int count)
{
    long sent = 0;
    hear(go);
    for (;;) {
        struct pollfd pfd = {stop, POLLIN, 0};
        if (poll(&pfd, 1, 0) == 1)
            break;
        if (sent < MAX_SENT && sigqueue(parent, SIG_TEST, (union sigval){0}) == 0)
            sent++;
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    if (write(count, &sent, sizeof(sent)) != sizeof(sent))
        prog_die("sleepers", "write failed");
    syscall(SYS_exit_group, 0);
}

static NOINLINE void lose_on_main(void)
{
    char *volatile p = malloc(32); /* SITE:lose_on_main */
    if (p == NULL)
        prog_die("sleepers", "malloc failed");
    memset(p, 0x44, 32);
}

static void *sleep_long(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static int many(long n)
{
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, sleep_long, NULL) != 0)
            prog_die("sleepers", "pthread_create failed");
    }
    while (prog_threads("/proc/self/status") < n + 1)
        usleep(1000);
    usleep(100 * 1000);   /* all in pause() */
    return 0;
}

static void report(void)
{
    for (int t = 0; t < NTHREADS; t++) {
        const result_t *r = &results[t];
        prog_put(1, names[t]);
        prog_put(1, ": ");
        if (r->ret < 0)
            prog_put(1, r->err == EINTR ? "EINTR" : r->err == ETIMEDOUT ? "ETIMEDOUT" : "error");
        else
            prog_put_u(1, (unsigned long)r->ret);
        prog_put(1, r->ms + SLACK_MS >= WAIT_MS ? " full\n" : " early\n");
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return many(atol(argv[1]));
    static void *(*const fn[NTHREADS])(void *) = {t_nanosleep, t_poll, t_select, t_futex,
                                                  t_read};
    int go[2], stop[2], count[2];
    if (pipe(g_ready) || pipe(g_done) || pipe(g_data) || pipe(g_never) || pipe(go) ||
        pipe(stop) || pipe(count))
        prog_die("sleepers", "pipe failed");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = count_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIG_TEST, &sa, NULL);
    pid_t parent = getpid(), child = fork();
    if (child < 0)
        prog_die("sleepers", "fork failed");
    if (child == 0)
        sender(parent, go[0], stop[0], count[1]);

    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIG_TEST);
    pthread_sigmask(SIG_BLOCK, &block, &old);   /* the threads never take it */
    lose_on_main();
    for (int t = 0; t < NTHREADS; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, fn[t], NULL) != 0)
            prog_die("sleepers", "pthread_create failed");
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int t = 0; t < NTHREADS; t++)
        hear(g_ready[0]);
    struct timespec settle = {0, 200 * 1000000};   /* all asleep */
    nanosleep(&settle, NULL);
    wait_in_nanosleep();

    say(go[1]);
    settle.tv_nsec = 20 * 1000000;
    nanosleep(&settle, NULL);
    int r = MEMTRAIL_SNAPSHOT("asleep");
    if (r != 0 && r != -ENOSYS)
        prog_die("sleepers", "memtrail_snapshot failed");
    nanosleep(&settle, NULL);
    say(stop[1]);

    for (int t = 0; t < NTHREADS - 1; t++)   /* the timed waits */
        hear(g_done[0]);
    say(g_data[1]);
    hear(g_done[0]);
    report();
    wait_in_nanosleep();   /* back in its long sleep for the exit snapshot's scan */

    char buf[4096];
    const char *tracer = prog_status("/proc/self/status", "\nTracerPid:", buf, sizeof(buf));
    prog_put(1, "tracer: ");
    if (tracer)
        prog_put_u(1, strtoul(tracer, NULL, 10));
    else
        prog_put(1, "?");
    prog_put(1, "\n");

    long sent = 0;
    ssize_t k;
    while ((k = read(count[0], &sent, sizeof(sent))) < 0 && errno == EINTR)
        ;
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    prog_put(1, waitpid(-1, &status, WNOHANG | __WALL) < 0 && errno == ECHILD ? "children: none\n"
                                                                             : "children: left\n");
    if (k == sizeof(sent) && sent > 0 && atomic_load(&g_received) == sent) {
        prog_put(1, "signals: each once\n");
    } else {
        prog_put(1, "signals: sent ");
        prog_put_u(1, (unsigned long)sent);
        prog_put(1, ", received ");
        prog_put_u(1, (unsigned long)atomic_load(&g_received));
        prog_put(1, "\n");
    }
    prog_scrub_stack();
    return 0;
}
