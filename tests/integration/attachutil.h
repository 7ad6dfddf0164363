/* The commands of `memtrail attach` tests (test_attach.c, test_attach_py.c):
 * memtrail run as a command with its status and stderr checked, and the
 * exchanges with a program that reads commands on stdin. */
#ifndef MT_ATTACHUTIL_H
#define MT_ATTACHUTIL_H

#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* memtrail ARGS... (NULL-ended, at most 15), captured. */
void at_memtrail(const char *const args[], mt_run_t *res);
/* memtrail attach PID -o mt_dir [more...] (up to 9 words, NULL-ended):
 * expects exit status want_status and want_err in its stderr. */
void at_attach_with(pid_t pid, const char *const more[], int want_status, const char *want_err);
void at_attach(pid_t pid, int want_status, const char *want_err);
/* memtrail detach: the detach snapshot's path (malloc'd), or NULL. */
char *at_detach(pid_t pid);
/* memtrail snapshot PID: the snapshot's path (malloc'd). */
char *at_snapshot(pid_t pid);
/* Sends a command; appends the lines it prints, up to and including `last`
 * (a line equal to it, or starting with it when it ends with ':'). */
void at_command(mt_proc_t *proc, const char *cmd, const char *last, char *out, size_t cap);
uint64_t at_realtime_ns(void);
/* The system call the main thread of pid waits in (/proc/PID/syscall), or -1. */
long at_main_syscall(pid_t pid);
/* Waits (1 s at most) until the main thread of pid waits in system call a or b. */
void at_wait_main_syscall(pid_t pid, long a, long b);

#endif /* MT_ATTACHUTIL_H */
