/* forkexec: fork() then execv() of another traced program (argv[1], the
 * leaky program in the tests). Run under memtrail by test_process.c.
 *
 * Parent: before_exec_parent (1 x malloc(123), kept), fork(); the child
 * execv(argv[1], {argv[1], NULL}) (exit 127 if exec fails); the parent waits,
 * writes "child <pid>\n" on stdout and returns 0 (1 if the child did not exit
 * with 0).
 *
 * Expected: the parent's exit snapshot (seq 1): before_exec_parent 123 / 1.
 * Followed (default): the exec'd program writes its own exit snapshot (pid =
 * the child, ppid = the parent, seq 1) with its own figures and no
 * before_exec_parent. With `memtrail run --no-follow`: only the parent's.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_parent_block;

static NOINLINE void before_exec_parent(void)
{
    if ((g_parent_block = malloc(123)) == NULL)
        prog_die("forkexec", "malloc failed");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        prog_die("forkexec", "usage: forkexec PROGRAM");
    before_exec_parent();

    pid_t child = fork();
    if (child < 0)
        prog_die("forkexec", "fork failed");
    if (child == 0) {
        char *args[] = {argv[1], NULL};
        execv(argv[1], args);
        prog_put(2, "forkexec: exec failed\n");
        _exit(127);
    }

    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            prog_die("forkexec", "waitpid failed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    prog_put(1, "child ");
    prog_put_u(1, (unsigned long)child);
    prog_put(1, "\n");
    return 0;
}
