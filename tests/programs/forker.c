/* forker: allocations on both sides of a fork(); each process writes its own
 * exit snapshot. Run under memtrail by tests/integration/test_process.c.
 *
 * Parent: before_fork (5 x malloc(111)), fork(); the child runs in_child
 * (2 x malloc(222)) and exit(0)s; the parent waits for it, runs in_parent
 * (3 x malloc(333)), writes "parent <pid> child <pid>\n" on stdout (write(2))
 * and returns 0 (1 if the child did not exit with 0).
 *
 * Expected exit snapshots (live bytes / blocks):
 *   parent (pid P, seq 1): before_fork 555 / 5, in_parent 999 / 3, no in_child
 *   child  (pid C, ppid P, seq 1 of its own): before_fork 555 / 5,
 *          in_child 444 / 2, no in_parent
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_before[5], *g_child[2], *g_parent[3];

static NOINLINE void before_fork(void)
{
    for (int i = 0; i < 5; i++)
        if ((g_before[i] = malloc(111)) == NULL)
            prog_die("forker", "malloc failed");
}

static NOINLINE void in_child(void)
{
    for (int i = 0; i < 2; i++)
        if ((g_child[i] = malloc(222)) == NULL)
            prog_die("forker", "malloc failed");
}

static NOINLINE void in_parent(void)
{
    for (int i = 0; i < 3; i++)
        if ((g_parent[i] = malloc(333)) == NULL)
            prog_die("forker", "malloc failed");
}

int main(void)
{
    before_fork();
    pid_t child = fork();
    if (child < 0)
        prog_die("forker", "fork failed");
    if (child == 0) {
        in_child();
        exit(0);
    }

    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            prog_die("forker", "waitpid failed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    in_parent();

    prog_put(1, "parent ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, " child ");
    prog_put_u(1, (unsigned long)child);
    prog_put(1, "\n");
    return 0;
}
