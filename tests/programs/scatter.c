/* scatter: keeps N blocks (argv[1], default 20000) of pseudo-random sizes
 * (1 to 2048 bytes, a fixed LCG) allocated at the bottom of a recursion
 * 1 to 150 calls deep, so its snapshots and exports are large for their
 * block count: 150 distinct stacks, up to 150 frames each, and sizes and
 * addresses that compress poorly. A snapshot of the default N is some
 * tens of KB, its collapsed export some hundreds
 * (tests/integration/test_faults.c: full disks).
 *
 * With "wait" as argv[2] it writes "ready <pid>\n" and waits for a line on
 * stdin (EOF: exit status 4), then exits 0. Without it, it writes
 * "scatter: kept N blocks\n" and exits with status 3, a status of its own
 * that a test can tell apart from memtrail's.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define MAX_DEPTH 150

static void **g_blocks;
static unsigned long g_seed = 12345;

static unsigned long next_rand(void)
{
    g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
    return g_seed >> 33;
}

static NOINLINE void *scatter_alloc(void)
{
    void *p = malloc(1 + next_rand() % 2048);
    if (!p)
        prog_die("scatter", "malloc failed");
    return p;
}

/* Recurses `depth` more times, then allocates; volatile keeps each level a
 * real call. */
static NOINLINE void *descend(int depth)
{
    volatile int d = depth;
    if (d == 0)
        return scatter_alloc();
    return descend(d - 1);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    if (n <= 0)
        prog_die("scatter", "N must be positive");
    g_blocks = calloc((size_t)n, sizeof(*g_blocks));
    if (!g_blocks)
        prog_die("scatter", "calloc failed");
    for (long i = 0; i < n; i++)
        g_blocks[i] = descend((int)(i % MAX_DEPTH));
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char line[64];
        prog_put(1, "ready ");
        prog_put_u(1, (unsigned long)getpid());
        prog_put(1, "\n");
        return prog_read_line(line, sizeof(line)) < 0 ? 4 : 0;
    }
    prog_put(1, "scatter: kept ");
    prog_put_u(1, (unsigned long)n);
    prog_put(1, " blocks\n");
    return 3;
}
