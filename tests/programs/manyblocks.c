/* manyblocks: keeps N blocks of 48 bytes (argv[1], default 300000) and the
 * array of their N pointers in keep_blocks (56 N bytes in N + 1 blocks), writes "ready <pid>\n", waits for a line on stdin, then exits
 * with the blocks still allocated. A snapshot of it takes a while to write
 * (tests/integration/test_output.c: a snapshot is never seen half-written). */
#include <stdlib.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void **g_blocks;

static NOINLINE void keep_blocks(long n)
{
    g_blocks = calloc((size_t)n, sizeof(*g_blocks));
    if (!g_blocks)
        prog_die("manyblocks", "calloc failed");
    for (long i = 0; i < n; i++)
        if ((g_blocks[i] = malloc(48)) == NULL)
            prog_die("manyblocks", "malloc failed");
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 300000;
    keep_blocks(n);
    prog_put(1, "ready ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");
    char line[64];
    if (prog_read_line(line, sizeof(line)) < 0)
        return 4;
    return 0;
}
