/* lastthread: the process ends when its last thread ends, not through exit()
 * from main (tests/integration/test_process.c). glibc then calls exit(0) in
 * that thread; memtrail's writer thread must not keep the process alive.
 *
 * lastthread main   main starts a thread and calls pthread_exit; the thread
 *                   waits 100 ms (main is gone by then), keeps 3 x
 *                   malloc(777) in after_main, prints "thread done", returns.
 *                   Expected: status 0, exit snapshot after_main 2331 / 3.
 * lastthread fork   main starts a thread that forks; in the child, that
 *                   thread (the child's only one) keeps 2 x malloc(555) in
 *                   child_thread, prints "child <pid>" and returns from its
 *                   start routine; the parent waits for the child, prints
 *                   "child status <n>", and exits 0.
 *                   Expected: the child exits 0 with child_thread 1110 / 2.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept[3];

static NOINLINE void after_main(void)
{
    for (int i = 0; i < 3; i++)
        if ((g_kept[i] = malloc(777)) == NULL)
            prog_die("lastthread", "malloc failed");
}

static NOINLINE void child_thread(void)
{
    for (int i = 0; i < 2; i++)
        if ((g_kept[i] = malloc(555)) == NULL)
            prog_die("lastthread", "malloc failed");
}

static void *outlive_main(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    after_main();
    prog_put(1, "thread done\n");
    return NULL;
}

static void *fork_here(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0)
        prog_die("lastthread", "fork failed");
    if (pid == 0) {
        child_thread();
        prog_put(1, "child ");
        prog_put_u(1, (unsigned long)getpid());
        prog_put(1, "\n");
        return NULL;   /* the child's only thread ends */
    }
    int status;
    if (waitpid(pid, &status, 0) != pid)
        prog_die("lastthread", "waitpid failed");
    prog_put(1, "child status ");
    prog_put_u(1, WIFEXITED(status) ? (unsigned long)WEXITSTATUS(status) : 1000ul + (unsigned long)status);
    prog_put(1, "\n");
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t th;
    if (argc == 2 && strcmp(argv[1], "main") == 0) {
        if (pthread_create(&th, NULL, outlive_main, NULL) != 0)
            prog_die("lastthread", "pthread_create failed");
        pthread_exit(NULL);
    }
    if (argc == 2 && strcmp(argv[1], "fork") == 0) {
        if (pthread_create(&th, NULL, fork_here, NULL) != 0 || pthread_join(th, NULL) != 0)
            prog_die("lastthread", "thread failed");
        return 0;
    }
    prog_die("lastthread", "usage: lastthread main|fork");
    return 2;
}
