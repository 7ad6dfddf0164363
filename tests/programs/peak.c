/* peak [N]: a program whose peak is made by a site that frees everything
 * before exit, for `memtrail report --metric peak` and the peak gates
 * (tests/integration/test_peak.c). Each allocation is on its own line marked
 * SITE:name, in its own noinline function. In order:
 *
 *   site_small      3 x malloc(1000), kept to the end      3,000 B / 3
 *   site_spike      N x malloc(1 MiB), then all freed      N MiB / N at the peak
 *   site_after      malloc(2 MiB), kept to the end         2 MiB / 1
 *
 * N defaults to 16 (1 to 64). At the peak (the last block of site_spike):
 * 3,000 B + N MiB in 3 + N blocks, 16,780,216 B in 19 blocks for N = 16; at
 * exit: 2,100,152 B in 4 blocks, site_spike none. So by live bytes
 * site_after comes first and site_spike is not listed; by the memory at the
 * peak, site_spike first with N MiB. No stdio: nothing else is allocated.
 * Prints nothing, exits 0 (2 on a bad argument or a failed allocation).
 */
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define MAX_BLOCKS 64
#define SPIKE_SIZE (1024 * 1024)

static void *g_small[3], *g_after;

static void *check(void *p, size_t size)
{
    if (p == NULL)
        prog_die("peak", "allocation failed");
    memset(p, 1, size);   /* touched: the pages are really used */
    return p;
}

static NOINLINE void site_small(void)
{
    for (int i = 0; i < 3; i++)
        g_small[i] = check(malloc(1000), 1000); /* SITE:small */
}

static NOINLINE void site_spike(int n)
{
    void *blocks[MAX_BLOCKS];
    for (int i = 0; i < n; i++)
        blocks[i] = check(malloc(SPIKE_SIZE), SPIKE_SIZE); /* SITE:spike */
    for (int i = 0; i < n; i++)
        free(blocks[i]);
}

static NOINLINE void site_after(void)
{
    g_after = check(malloc(2 * SPIKE_SIZE), 2 * SPIKE_SIZE); /* SITE:after */
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 16;
    if (n < 1 || n > MAX_BLOCKS)
        prog_die("peak", "usage: peak [N], 1 <= N <= 64");
    site_small();
    site_spike(n);
    site_after();
    /* g_small and g_after stay live to the exit snapshot */
    return g_small[0] != NULL && g_after != NULL ? 0 : 2;
}
