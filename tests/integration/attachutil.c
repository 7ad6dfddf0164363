/* The commands of `memtrail attach` tests (attachutil.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attachutil.h"

void at_memtrail(const char *const args[], mt_run_t *res)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = mt_env("MEMTRAIL_EXE");
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert_eq(run_bare_capture(argv, res), 0, "cannot run memtrail");
}

/* memtrail attach PID -o mt_dir [more...] (more: up to 9 words, NULL-ended). */
void at_attach_with(pid_t pid, const char *const more[], int want_status, const char *want_err)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    mt_run_t res;
    const char *args[14] = {"attach", p, "-o", mt_dir};
    for (size_t i = 0; more && more[i] && i < 9; i++)
        args[4 + i] = more[i];
    at_memtrail(args, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == want_status,
              "memtrail attach %d: status %#x, want %d; stderr: %s", (int)pid, res.status,
              want_status, res.err);
    cr_expect(strstr(res.err, want_err) != NULL, "memtrail attach %d: stderr \"%s\" lacks \"%s\"",
              (int)pid, res.err, want_err);
    mt_run_free(&res);
}

void at_attach(pid_t pid, int want_status, const char *want_err)
{
    at_attach_with(pid, NULL, want_status, want_err);
}

/* memtrail detach: the detach snapshot's path (malloc'd), or NULL. */
char *at_detach(pid_t pid)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    mt_run_t res;
    at_memtrail((const char *const[]){"detach", p, NULL}, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
              "memtrail detach %d: status %#x; stderr: %s", (int)pid, res.status, res.err);
    char *path = NULL;
    if (res.out[0] == '/') {
        res.out[strcspn(res.out, "\n")] = 0;
        path = strdup(res.out);
    }
    mt_run_free(&res);
    return path;
}

char *at_snapshot(pid_t pid)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    mt_run_t res;
    at_memtrail((const char *const[]){"snapshot", p, NULL}, &res);
    cr_assert(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
              "memtrail snapshot %d: status %#x; stderr: %s", (int)pid, res.status, res.err);
    res.out[strcspn(res.out, "\n")] = 0;
    char *path = strdup(res.out);
    mt_run_free(&res);
    return path;
}

/* Sends a command; appends the lines it prints, up to and including `last`
 * (a line equal to it, or starting with it when it ends with ':'). */
void at_command(mt_proc_t *proc, const char *cmd, const char *last, char *out, size_t cap)
{
    cr_assert_eq(mt_proc_write(proc, cmd), 0);
    char line[256];
    for (;;) {
        int n = mt_proc_read_line(proc, line, sizeof(line), MT_WAIT_MS);
        cr_assert_gt(n, 0, "attachee: no answer to %s", cmd);
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s\n", line);
        size_t len = strlen(last);
        if (last[len - 1] == ':' ? strncmp(line, last, len) == 0 : strcmp(line, last) == 0)
            return;
    }
}

uint64_t at_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The system call the main thread of pid waits in (/proc/PID/syscall), or -1. */
long at_main_syscall(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
    FILE *f = fopen(path, "r");
    long nr = -1;
    if (f) {
        if (fscanf(f, "%ld", &nr) != 1)
            nr = -1;
        fclose(f);
    }
    return nr;
}

void at_wait_main_syscall(pid_t pid, long a, long b)
{
    for (int i = 0; i < 500; i++) {
        long nr = at_main_syscall(pid);
        if (nr == a || nr == b)
            return;
        usleep(2000);
    }
    cr_assert_fail("the main thread of %d never waited in system call %ld", (int)pid, a);
}

