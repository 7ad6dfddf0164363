/* stackfirst: each thread's first allocation is made inside
 * pthread_getattr_np, which holds the thread's descriptor lock while it
 * allocates (the main thread's FILE for /proc/self/maps, every thread's
 * CPU set). memtrail reads a new thread's stack bounds with that function:
 * asked from inside it, the thread waited for itself forever (the run
 * never ended). Language runtimes ask for their stack this early.
 *
 * main asks for its own stack attributes first thing, then keeps a
 * 100-byte block from keep_main (called through outer_main); a thread
 * does the same and keeps a 200-byte block from keep_thread (called
 * through thread_main). Both blocks stay reachable from g_kept.
 *
 * Expected exit snapshot, by innermost user frame:
 *   keep_main    live 100 bytes / 1 block, its stack through outer_main
 *   keep_thread  live 200 bytes / 1 block, its stack through thread_main
 * Prints "stack 1 1" (both attribute reads succeeded, with a size); exit
 * status 0. */
#include <pthread.h>
#include <stdlib.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *volatile g_kept[2];

static int stack_known(void)
{
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 0;
    int ok = pthread_attr_getstacksize(&attr, &size) == 0 && size > 0;
    pthread_attr_destroy(&attr);
    return ok;
}

static NOINLINE void keep_main(void)
{
    g_kept[0] = malloc(100);
}

static NOINLINE void outer_main(void)
{
    keep_main();
}

static NOINLINE void keep_thread(void)
{
    g_kept[1] = malloc(200);
}

static NOINLINE void *thread_main(void *arg)
{
    int *ok = arg;
    *ok = stack_known();
    keep_thread();
    return NULL;
}

int main(void)
{
    int main_ok = stack_known(), thread_ok = 0;
    outer_main();
    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, &thread_ok) != 0 || pthread_join(th, NULL) != 0)
        return 1;
    prog_put(1, "stack ");
    prog_put_u(1, (unsigned long)main_ok);
    prog_put(1, " ");
    prog_put_u(1, (unsigned long)thread_ok);
    prog_put(1, "\n");
    return 0;
}
