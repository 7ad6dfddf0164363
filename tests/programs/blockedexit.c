/* blockedexit: one thread, which blocks every signal before it returns from
 * main. memtrail's leak scan at exit must read this thread without sending
 * it anything: the thread asks for the exit snapshot and waits for it, and
 * so holds itself still (where ptrace is refused, a stop signal would never
 * reach it). tests/integration/test_leaks.c runs it with MEMTRAIL_STOP=signal.
 *
 * Expected leak classification at exit, by allocating function:
 *   lose_one       definite   40 / 1
 *   keep_one       reachable  72 / 1   (in g_kept)
 * Prints nothing; exit status 0.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept;

static NOINLINE void keep_one(void)
{
    g_kept = malloc(72); /* SITE:keep_one */
    if (g_kept == NULL)
        prog_die("blockedexit", "malloc failed");
    memset(g_kept, 0, 72);
}

static NOINLINE void lose_one(void)
{
    char *p = malloc(40); /* SITE:lose_one */
    if (p == NULL)
        prog_die("blockedexit", "malloc failed");
    memset(p, 'x', 40);
}

/* Overwrites the stack below main's frame, where lose_one's pointer was. */
static NOINLINE void scrub(void)
{
    volatile char pad[512];
    memset((char *)pad, 0, sizeof(pad));
}

int main(void)
{
    keep_one();
    lose_one();
    scrub();
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, NULL) != 0)
        prog_die("blockedexit", "sigprocmask failed");
    return 0;
}
