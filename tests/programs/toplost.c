/* toplost: a lost block whose last bytes hold the header of the chunk after
 * it. glibc's malloc serves malloc(24) from a 32-byte chunk whose last 8
 * bytes are the next chunk's size field; the next chunk here is the heap's
 * top, and malloc's own state (main_arena.top, in the C library's data)
 * points at its header, 16 bytes into this block. That pointer is
 * malloc's, not a reference to the block: the leak scan must not count it
 * (test_leaks.c, against valgrind's memcheck).
 *
 * Expected leak classification at exit, by allocating function:
 *   lose_last      definite   24 / 1
 *   keep_one       reachable  72 / 1   (in g_kept)
 * Prints nothing; exit status 0.
 */
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept;

static NOINLINE void keep_one(void)
{
    g_kept = malloc(72); /* SITE:keep_one */
    if (g_kept == NULL)
        prog_die("toplost", "malloc failed");
    memset(g_kept, 0, 72);
}

/* The process's last allocation: split from the top chunk. */
static NOINLINE void lose_last(void)
{
    char *p = malloc(24); /* SITE:lose_last */
    if (p == NULL)
        prog_die("toplost", "malloc failed");
    memset(p, 'x', 24);
}

/* Overwrites the stack below main's frame, where lose_last's pointer was. */
static NOINLINE void scrub(void)
{
    volatile char pad[512];
    memset((char *)pad, 0, sizeof(pad));
}

int main(void)
{
    keep_one();
    lose_last();
    scrub();
    return 0;
}
