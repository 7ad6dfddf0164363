/* Integration tests: faults while files are written. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static pid_t read_ready(mt_proc_t *proc)
{
    char line[256];
    int n = mt_proc_read_line(proc, line, sizeof(line), MT_WAIT_MS);
    cr_assert_gt(n, 0, "the program did not say ready (%d)", n);
    long pid = mt_number_after(line, "ready");
    cr_assert_gt(pid, 0, "the program said \"%s\"", line);
    return (pid_t)pid;
}

/* No snapshot follows the exit snapshot: lateflush goes on for a while
 * after it (its stdout is flushed after the destructors, and the test does
 * not read it for 300 ms), and interval snapshots taken then would be cut
 * short by _exit: on the named-temporary path a temporary was left behind,
 * and a full disk saw one after the run. */
Test(faults, no_snapshot_after_the_exit_snapshot, .init = mt_setup, .fini = mt_teardown,
     .timeout = MT_TEST_TIMEOUT)
{
    char *prog = mt_program("lateflush");
    const char *argv[] = {prog, NULL};
    const char *opts[] = {"--interval", "0.02", NULL};
    mt_proc_t proc;

    cr_assert_eq(mt_spawn_traced(mt_dir, opts, argv, NULL, &proc), 0);
    pid_t pid = read_ready(&proc);
    cr_assert_eq(mt_proc_write(&proc, "go\n"), 0);
    cr_assert_eq(mt_wait_snapshots(mt_dir, pid, "exit", 1, MT_WAIT_MS), 1);
    usleep(300 * 1000);   /* lateflush is blocked on its full stdout */
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "lateflush: status %#x", status);
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(mt_dir, pid, NULL, &list), 0);
    cr_assert_geq(list.n, 1);
    const char *last = strrchr(list.paths[list.n - 1], '/') + 1;   /* sorted: by seq */
    cr_expect(strstr(last, ".exit.mtsnap") != NULL, "%zu snapshots, the last is %s", list.n,
              last);
    mt_snaplist_free(&list);
    free(prog);
}
