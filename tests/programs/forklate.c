/* forklate: a fork child's writer thread starts late (writer/writer.c).
 * Run under memtrail by tests/integration/test_process.c (forklate).
 *
 * The parent keeps before_fork_late (4 x malloc(77)) and forks three children:
 *   quiet: reads its own thread count before anything else (no allocation
 *          since the fork: the writer has not started), then keeps
 *          child_quiet (3 x malloc(100)) and exit(0)s: the exit snapshot
 *          starts the writer and holds before_fork_late 308/4, child_quiet 300/3;
 *   busy:  50,000 malloc/free pairs (errno kept across them: the writer
 *          starts inside one, once the drains the child makes itself take
 *          more than 15% of its time, writer/writer.c) and child_busy
 *          (5 x malloc(200)) kept, then reads its thread count (the writer
 *          started along the way: 2), exit(0): child_busy 1000/5;
 *   slow:  keeps child_slow (160 x malloc(1000)), one a millisecond, then
 *          reads its thread count: its drains take little of its time, and
 *          the writer never starts (1); its exit snapshot's time line has
 *          the points its drains added on the way, exit(0): child_slow
 *          160000/160;
 *   idle:  allocates nothing, tells the parent it is ready and waits in
 *          pause(); the parent reads its thread count from /proc (1) and
 *          sends SIGTERM: the handler starts the writer, and the exit
 *          snapshot (label SIGTERM) holds before_fork_late 308/4.
 *   handler: 100,000 events in a signal handler (one thread: no thread is
 *          started from a handler's allocation), then 20 allocations after
 *          it returns (two threads);
 *   ctor:  dlopens ARGV[1] (tests/programs/forklate_ctor.c), whose
 *          constructor makes 100,000 events while the loader runs it (one
 *          thread), then 20 allocations (two threads).
 * The parent prints "parent <pid>", "quiet <pid> <threads>", "busy <pid> <threads>",
 * "slow <pid> <threads>",
 * "idle <pid> <threads> <signal>" (write(2), no stdio) and returns 0, or 1
 * when a child ended otherwise.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_before[4], *g_quiet[3], *g_busy[5], *g_slow[160];

#define threads_of prog_threads

/* The thread count of a process whose writer runs, once memtrail's library
 * loader has gone: the writer makes that thread for a moment when it needs
 * libdw, libzstd or libunwind (writer/writer.c, load_beside), so a count
 * read just then is 3 (seen once in 60 runs of this program beside two busy
 * loops). Read again every millisecond while above 2, for 200 ms at most:
 * the loader ends once its library is in, and a thread of any other kind
 * stays counted. */
static long threads_settled(void)
{
    long n = threads_of("/proc/self/status");
    for (int i = 0; n > 2 && i < 200; i++) {
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
        n = threads_of("/proc/self/status");
    }
    return n;
}

static NOINLINE void before_fork_late(void)
{
    for (int i = 0; i < 4; i++)
        if (!(g_before[i] = malloc(77)))
            prog_die("forklate", "malloc failed");
}

static NOINLINE void child_quiet(void)
{
    for (int i = 0; i < 3; i++)
        if (!(g_quiet[i] = malloc(100)))
            prog_die("forklate", "malloc failed");
}

static NOINLINE void child_churn(void)
{
    for (int i = 0; i < 50000; i++) {
        void *volatile p = malloc(48);
        free(p);
    }
}

static NOINLINE void child_busy(void)
{
    for (int i = 0; i < 5; i++)
        if (!(g_busy[i] = malloc(200)))
            prog_die("forklate", "malloc failed");
}

static NOINLINE void child_slow(void)
{
    for (int i = 0; i < 160; i++) {
        if (!(g_slow[i] = malloc(1000)))
            prog_die("forklate", "malloc failed");
        usleep(1000);
    }
}

/* A pipe and a fork: the child writes on fds[1], the parent reads fds[0]. */
static pid_t pipe_fork(int fds[2])
{
    if (pipe(fds) < 0)
        prog_die("forklate", "pipe failed");
    pid_t pid = fork();
    if (pid < 0)
        prog_die("forklate", "fork failed");
    close(fds[pid == 0 ? 0 : 1]);
    return pid;
}

/* Waits for the child, then prints "NAME PID " and the line it wrote on fd. */
static int report(const char *name, pid_t pid, int fd)
{
    char buf[64];
    size_t len = 0;
    ssize_t k;
    while (len + 1 < sizeof(buf) && (k = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)k;
    buf[len] = 0;
    close(fd);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 1;
    prog_put(1, name);
    prog_put(1, " ");
    prog_put_u(1, (unsigned long)pid);
    prog_put(1, " ");
    prog_put(1, buf);
    return 0;
}

static volatile long in_handler = -1;
static void *g_after[20];

static NOINLINE void child_after(void)
{
    for (int i = 0; i < 20; i++)
        if (!(g_after[i] = malloc(16)))
            prog_die("forklate", "malloc failed");
}

static void on_usr1(int sig)
{
    (void)sig;
    child_churn();
    in_handler = threads_of("/proc/self/status");
}

/* "NAME PID BEFORE AFTER": the thread counts inside the handler or the
 * constructor, and after 20 allocations in main. */
static int spawn_late(const char *name, const char *lib)
{
    int fds[2];
    pid_t pid = pipe_fork(fds);
    if (pid == 0) {
        long before = -1;
        if (lib) {
            void *h = dlopen(lib, RTLD_NOW);
            long *v = h ? dlsym(h, "forklate_ctor_threads") : NULL;
            if (!v)
                prog_die("forklate", "dlopen failed");
            before = *v;
        } else {
            struct sigaction sa;
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = on_usr1;
            sigemptyset(&sa.sa_mask);
            sigaction(SIGUSR1, &sa, NULL);
            raise(SIGUSR1);
            before = in_handler;
        }
        child_after();
        long after = threads_settled();
        prog_put_u(fds[1], (unsigned long)before);
        prog_put(fds[1], " ");
        prog_put_u(fds[1], (unsigned long)after);
        prog_put(fds[1], "\n");
        exit(0);
    }
    return report(name, pid, fds[0]);
}

/* Forks the quiet (0), busy (1) or slow (2) child, which writes its thread count on
 * fds[1] and exits 0; the parent reads fds[0]. */
static pid_t spawn(int which, int fds[2])
{
    pid_t pid = pipe_fork(fds);
    if (pid > 0)
        return pid;
    int out = fds[1];
    long n = 0;
    if (which == 0) {
        n = threads_of("/proc/self/status");
        child_quiet();
    } else if (which == 2) {
        child_slow();
        n = threads_of("/proc/self/status");
    } else {
        errno = EDOM;   /* the writer starts inside one of these calls: errno stays */
        child_churn();
        if (errno != EDOM)
            prog_die("forklate", "errno changed by malloc");
        child_busy();
        n = threads_settled();
    }
    prog_put_u(out, (unsigned long)n);
    prog_put(out, "\n");
    exit(0);
}

static long read_number(int fd)
{
    char buf[32];
    size_t len = 0;
    while (len + 1 < sizeof(buf)) {
        ssize_t k = read(fd, buf + len, 1);
        if (k <= 0 || buf[len] == '\n')
            break;
        len++;
    }
    buf[len] = 0;
    return strtol(buf, NULL, 10);
}


int main(int argc, char **argv)
{
    int fds[2], bad = 0;
    before_fork_late();
    prog_put(1, "parent ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");

    static const char *const names[] = {"quiet", "busy", "slow"};
    for (int which = 0; which < 3; which++) {
        pid_t pid = spawn(which, fds);
        bad |= report(names[which], pid, fds[0]);
    }

    bad |= spawn_late("handler", NULL);
    if (argc > 1)
        bad |= spawn_late("ctor", argv[1]);

    pid_t idle = pipe_fork(fds);
    if (idle == 0) {
        prog_put(fds[1], "1\n");
        for (;;)
            pause();
    }
    read_number(fds[0]);
    close(fds[0]);
    char path[64] = "/proc/", num[24];
    strcat(path, prog_utoa(num, (unsigned long)idle));
    strcat(path, "/status");
    long threads = threads_of(path);
    /* Killed where it sleeps, in pause(): the handler walks the interrupted
     * stack, which a signal landing in a PLT stub on the way there could
     * leave unwalkable (docs/design.md). */
    while (!prog_sleeping(path))
        usleep(1000);
    kill(idle, SIGTERM);
    int st;
    if (waitpid(idle, &st, 0) != idle || !WIFSIGNALED(st))
        bad = 1;
    prog_put(1, "idle ");
    prog_put_u(1, (unsigned long)idle);
    prog_put(1, " ");
    prog_put_u(1, (unsigned long)threads);
    prog_put(1, " ");
    prog_put_u(1, WIFSIGNALED(st) ? (unsigned long)WTERMSIG(st) : 0);
    prog_put(1, "\n");
    return bad;
}
