/* growth N [M]: a program whose live memory at exit depends on N in known
 * ways, for the `memtrail diff` / report / export tests
 * (tests/integration/test_analyzer.c). Every allocation is on its own line
 * marked SITE:name, in its own noinline function; nothing of what the sites
 * allocate is freed (kept reachable in g_keep[]).
 *
 * Live at exit, by innermost user frame (bytes / blocks):
 *   site_fixed         300 / 3     3 x malloc(100), always
 *   site_grows      1000*N / N     N x malloc(1000)
 *   site_bytes      4096*N / 1     malloc(N * 4096)
 *   site_only_small    100 / 2     2 x malloc(50), only when N < 3
 *   site_only_big     7000 / 1     malloc(7000), only when N >= 3
 *   helper_lib_like  256*3M / 3M   malloc(256), called M times from caller_a
 *                                  and 2*M times from caller_b (two stacks)
 *   temporary            0 / 0     malloc(64); free, between the sites
 * M defaults to 1. growth 2: 11,360 B in 11 blocks; growth 5: 33,548 B in
 * 13 blocks. No stdio: nothing else is allocated. Prints nothing, exits 0
 * (2 on bad arguments or a failed allocation).
 */
#include <stdlib.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define MAX_KEEP 4096

static void *g_keep[MAX_KEEP];
static size_t g_nkeep;

static void keep(void *p)
{
    if (p == NULL)
        prog_die("growth", "allocation failed");
    if (g_nkeep == MAX_KEEP)
        prog_die("growth", "too many blocks");
    g_keep[g_nkeep++] = p;
}

static NOINLINE void site_fixed(void)
{
    for (int i = 0; i < 3; i++) {
        void *p = malloc(100); /* SITE:fixed */
        keep(p);
    }
}

static NOINLINE void site_grows(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        void *p = malloc(1000); /* SITE:grows */
        keep(p);
    }
}

static NOINLINE void site_bytes(unsigned long n)
{
    void *p = malloc(n * 4096); /* SITE:bytes */
    keep(p);
}

static NOINLINE void site_only_small(void)
{
    for (int i = 0; i < 2; i++) {
        void *p = malloc(50); /* SITE:only_small */
        keep(p);
    }
}

static NOINLINE void site_only_big(void)
{
    void *p = malloc(7000); /* SITE:only_big */
    keep(p);
}

static NOINLINE void temporary(void)
{
    char *volatile p = malloc(64); /* SITE:temporary */
    if (p == NULL)
        prog_die("growth", "malloc failed");
    p[63] = 1;
    free(p);
}

static NOINLINE void helper_lib_like(void)
{
    void *p = malloc(256); /* SITE:helper */
    keep(p);
}

static NOINLINE void caller_a(unsigned long m)
{
    for (unsigned long i = 0; i < m; i++)
        helper_lib_like(); /* CALL:caller_a */
}

static NOINLINE void caller_b(unsigned long m)
{
    for (unsigned long i = 0; i < 2 * m; i++)
        helper_lib_like(); /* CALL:caller_b */
}

static unsigned long arg(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || v > 1000)
        prog_die("growth", "usage: growth N [M] (0 <= N, M <= 1000)");
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        prog_die("growth", "usage: growth N [M]");
    unsigned long n = arg(argv[1]), m = argc == 3 ? arg(argv[2]) : 1;
    site_fixed();
    temporary();
    site_grows(n);
    site_bytes(n);
    temporary();
    if (n < 3)
        site_only_small();
    else
        site_only_big();
    caller_a(m);
    caller_b(m);
    return 0;
}
