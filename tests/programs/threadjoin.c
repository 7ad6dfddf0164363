/* threadjoin: threads created and joined before exit; test_leaks.c checks
 * that what glibc keeps of them is not called lost.
 *
 * main starts and joins three threads (each allocates and frees a block),
 * keeps one block in a global (keep_global) and drops one (lose_after_join),
 * scrubs its dead stack and returns. glibc keeps an exited thread's stack
 * for reuse, and in the thread descriptor at its top the thread's DTV, a
 * block pthread_create calloc'd that nothing else points to.
 *
 * Expected leak classification at exit, by allocating function:
 *   lose_after_join  definite   32 / 1
 *   keep_global      reachable  64 / 1
 *   pthread_create   one DTV (each thread reuses the stack, and the DTV, the
 *                    one before it left in the cache): the C library's own
 *                    under memtrail (reached from the stack cache only); not
 *                    reported by valgrind, whose __libc_freeres frees the
 *                    cache first
 * Prints nothing; exit status 0.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define NTHREADS 3

static void *volatile g_keep;

static void *worker(void *arg)
{
    char *p = malloc(24);
    if (p == NULL)
        prog_die("threadjoin", "malloc failed");
    memset(p, 0x55, 24);
    free(p);
    return arg;
}

static NOINLINE void keep_global(void)
{
    g_keep = malloc(64); /* SITE:keep_global */
    if (g_keep == NULL)
        prog_die("threadjoin", "malloc failed");
    memset(g_keep, 0x66, 64);
}

static NOINLINE void lose_after_join(void)
{
    char *volatile p = malloc(32); /* SITE:lose_after_join */
    if (p == NULL)
        prog_die("threadjoin", "malloc failed");
    memset(p, 0x77, 32);
}

int main(void)
{
    for (int i = 0; i < NTHREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0 || pthread_join(t, NULL) != 0)
            prog_die("threadjoin", "cannot run a thread");
    }
    keep_global();
    lose_after_join();
    prog_scrub_stack();
    return 0;
}
