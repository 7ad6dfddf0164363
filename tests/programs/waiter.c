/* waiter: a program that waits on stdin between allocation phases so the test
 * can take snapshots on demand (tests/integration/test_signal.c).
 *
 * 1. phase_one: 4 x malloc(1234), kept          -> 4936 / 4
 * 2. writes "ready <pid>\n" (write(2)), waits for a line on stdin
 * 3. phase_two: 2 x malloc(4321), kept          -> 8642 / 2
 * 4. writes "two\n", waits for a second line
 * 5. frees the phase_one blocks, returns 0
 * Expected exit snapshot: phase_one 0 / 0 (allocated 4936 / 4), phase_two
 * 8642 / 2. EOF on stdin before a line: exit status 4 (so that an abandoned
 * waiter never lingers).
 */
#include <stdlib.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_one[4], *g_two[2];

static NOINLINE void phase_one(void)
{
    for (int i = 0; i < 4; i++)
        if ((g_one[i] = malloc(1234)) == NULL)
            prog_die("waiter", "malloc failed");
}

static NOINLINE void phase_two(void)
{
    for (int i = 0; i < 2; i++)
        if ((g_two[i] = malloc(4321)) == NULL)
            prog_die("waiter", "malloc failed");
}

static void wait_line(void)
{
    char line[64];
    if (prog_read_line(line, sizeof(line)) < 0)
        exit(4);
}

int main(void)
{
    phase_one();
    prog_put(1, "ready ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");
    wait_line();

    phase_two();
    prog_put(1, "two\n");
    wait_line();

    for (int i = 0; i < 4; i++)
        free(g_one[i]);
    return 0;
}
