/* htmlpeak: a site that dominates the process-wide peak and is freed before
 * exit (issue 14), for `memtrail html` (tests/integration/test_html.c).
 *
 *   keep_site   1,048,576 B / 1   allocated first, kept to the end
 *   MEMTRAIL_SNAPSHOT("start")    api snapshot #1: keep_site only
 *   peak_site   8,388,608 B / 8   8 x malloc(1 MiB), then all freed: the
 *                                 peak, 9,437,184 B in 9 blocks, is
 *                                 keep_site + peak_site
 *   late_site      65,536 B / 1   allocated after the peak, kept
 *   exit snapshot #2: keep_site + late_site = 1,114,112 B in 2 blocks live;
 *   peak_site has 0 live and 8,388,608 B / 8 at the peak.
 * Every site is its own noinline function; no stdio. Exits 0 (9 when the
 * snapshot call fails, 2 when an allocation fails).
 */
#include <stdlib.h>
#include <string.h>

#define MEMTRAIL_WEAK
#include <memtrail.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define MIB (1024 * 1024)

static void *g_keep, *g_late;

static NOINLINE void *keep_site(void)
{
    return malloc(MIB);
}

static NOINLINE void peak_site(void **blocks, int n)
{
    for (int i = 0; i < n; i++)
        if ((blocks[i] = malloc(MIB)) == NULL)
            prog_die("htmlpeak", "malloc failed");
        else
            memset(blocks[i], i, MIB);   /* resident: RSS follows the heap */
}

static NOINLINE void *late_site(void)
{
    return malloc(64 * 1024);
}

int main(void)
{
    void *blocks[8];
    if ((g_keep = keep_site()) == NULL)
        prog_die("htmlpeak", "malloc failed");
    if (MEMTRAIL_SNAPSHOT("start") != 0)
        return 9;
    peak_site(blocks, 8);
    for (int i = 0; i < 8; i++)
        free(blocks[i]);
    if ((g_late = late_site()) == NULL)
        prog_die("htmlpeak", "malloc failed");
    return 0;
}
