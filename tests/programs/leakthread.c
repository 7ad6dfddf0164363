/* leakthread: a block whose only pointer lives on another thread's stack while
 * main exits; tests/integration/test_leaks.c checks it is not called lost.
 *
 * The worker thread allocates one block in worker_alloc() and keeps the only
 * pointer to it in a local variable of worker(), tells main through a pipe,
 * then blocks for good in read() on a pipe nobody writes. main drops one
 * block of its own (lose_on_main), waits for the worker's word, scrubs its
 * dead stack and returns while the worker is still blocked.
 *
 * Expected leak classification at exit, by allocating function:
 *   worker_alloc   reachable  80 / 1   (found on the worker's stack)
 *   lose_on_main   definite   32 / 1
 *   pthread_create possible    ? / 1   the worker's DTV, calloc'd by
 *                                      _dl_allocate_tls; its TCB points 16
 *                                      bytes into it. 272 bytes under valgrind
 *                                      on Debian 12, more under memtrail (its
 *                                      preload adds modules with TLS)
 * Prints nothing; exit status 0.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static int g_ready[2];  /* worker -> main: "the block is allocated" */
static int g_never[2];  /* nobody writes: the worker blocks on it */

static NOINLINE void *worker_alloc(void)
{
    void *p = malloc(80); /* SITE:worker_alloc */
    if (p == NULL)
        prog_die("leakthread", "malloc failed");
    memset(p, 0x33, 80);
    return p;
}

static void *worker(void *arg)
{
    (void)arg;
    void *volatile keep = worker_alloc();
    char c = 'r';
    if (write(g_ready[1], &c, 1) != 1)
        prog_die("leakthread", "write failed");
    for (;;)
        if (read(g_never[0], &c, 1) >= 0 && keep == NULL)
            break;
    return keep;
}

static NOINLINE void lose_on_main(void)
{
    char *volatile p = malloc(32); /* SITE:lose_on_main */
    if (p == NULL)
        prog_die("leakthread", "malloc failed");
    memset(p, 0x44, 32);
}

static NOINLINE int wait_ready(void)
{
    char c;
    ssize_t r;
    do
        r = read(g_ready[0], &c, 1);
    while (r < 0);
    return r == 1 && c == 'r';
}

int main(void)
{
    pthread_t t;

    if (pipe(g_ready) != 0 || pipe(g_never) != 0)
        prog_die("leakthread", "pipe failed");
    lose_on_main();
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        prog_die("leakthread", "pthread_create failed");
    if (!wait_ready())
        prog_die("leakthread", "worker did not start");
    prog_scrub_stack();
    return 0;
}
