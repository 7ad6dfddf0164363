/* epollstop: the system calls a stop interrupts for good. Three threads
 * wait, the test signal blocked: epoll_wait with a 2 s timeout, epoll_wait
 * with none (-1), and sigtimedwait for 2 s on a signal nobody sends. Main
 * takes an API snapshot 300 ms in (leak-checked under --leak-check=all, so
 * the scan stops the world), then wakes the endless one by writing to the
 * pipe it waits on, and each thread prints one line: its call's return,
 * errno's name, and "full" if it waited its whole time (the endless one:
 * if it returned because of the pipe), "early" if not.
 *
 * Bare: "epoll 0 - full", "epoll-inf 1 - full", "sigtimedwait -1 EAGAIN
 * full". Under any stop Linux ends these calls with EINTR instead of
 * restarting them (signal(7), "Interruption of system calls and library
 * functions by stop signals"); memtrail's ptrace helper makes them again
 * at release, so the lines are the bare ones, and under the stop signal
 * they end "-1 EINTR early" (tests/integration/test_leaks.c; docs/design.md,
 * Transparency). Lines are printed in a fixed order, after every thread is
 * done. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MEMTRAIL_WEAK
#include "memtrail.h"

#define WAIT_MS 2000

static int pipefd[2];
static char line[3][96];

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static const char *err_name(int r, int e)
{
    return r >= 0 ? "-" : e == EINTR ? "EINTR" : e == EAGAIN ? "EAGAIN" : "other";
}

static void *epoll_thread(void *arg)
{
    long endless = (long)arg;
    int fd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN}, out;
    if (endless)
        epoll_ctl(fd, EPOLL_CTL_ADD, pipefd[0], &ev);
    double t0 = now_ms();
    int r = epoll_wait(fd, &out, 1, endless ? -1 : WAIT_MS);
    int e = errno;
    int full = endless ? r == 1 : now_ms() - t0 >= WAIT_MS - 5;
    snprintf(line[endless], sizeof(line[0]), "%s %d %s %s", endless ? "epoll-inf" : "epoll", r,
             err_name(r, e), full ? "full" : "early");
    close(fd);
    return NULL;
}

static void *sigwait_thread(void *arg)
{
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    struct timespec to = {WAIT_MS / 1000, 0};
    double t0 = now_ms();
    int r = sigtimedwait(&s, NULL, &to);
    int e = errno;
    snprintf(line[2], sizeof(line[0]), "sigtimedwait %d %s %s", r, err_name(r, e),
             now_ms() - t0 >= WAIT_MS - 5 ? "full" : "early");
    return NULL;
}

int main(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    if (pipe(pipefd) != 0)
        return 1;
    pthread_t t[3];
    pthread_create(&t[0], NULL, epoll_thread, (void *)0L);
    pthread_create(&t[1], NULL, epoll_thread, (void *)1L);
    pthread_create(&t[2], NULL, sigwait_thread, NULL);
    usleep(300 * 1000);
    MEMTRAIL_SNAPSHOT("stopped");   /* -ENOSYS bare */
    usleep((WAIT_MS + 200) * 1000);
    if (write(pipefd[1], "x", 1) != 1)
        return 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++)
        printf("%s\n", line[i]);
    return 0;
}
