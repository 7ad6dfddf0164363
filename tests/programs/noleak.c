/* noleak: allocates and frees, keeping only one block in a global; the leak
 * gates of tests/integration/test_leaks.c must pass on it.
 *
 * Expected leak classification at exit, by allocating function:
 *   keep_one       reachable  64 / 1   (in g_kept)
 *   churn          nothing live (100 x malloc + realloc + free)
 * No definite, indirect or possible block. Prints nothing; exit status 0.
 */
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept;

static NOINLINE void keep_one(void)
{
    g_kept = malloc(64); /* SITE:keep_one */
    if (g_kept == NULL)
        prog_die("noleak", "malloc failed");
    memset(g_kept, 0, 64);
}

static NOINLINE void churn(void)
{
    for (int i = 0; i < 100; i++) {
        char *p = malloc((size_t)i + 1);
        if (p == NULL)
            prog_die("noleak", "malloc failed");
        p[i] = 'x';
        char *q = realloc(p, (size_t)i * 2 + 16);
        if (q == NULL)
            prog_die("noleak", "realloc failed");
        free(q);
    }
}

int main(void)
{
    keep_one();
    churn();
    return 0;
}
