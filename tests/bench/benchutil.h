/* Helpers shared by the benchmark runners (run_bench.c, bench_python.c):
 * stop flag, paths, child environment, timing, medians, load average. */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stddef.h>

#define BENCH_MAX_SAMPLES 99   /* runs per series at most */

extern const char *bench_prog;   /* the runner's name, for messages */
extern int bench_interrupted;    /* SIGINT/SIGTERM/SIGHUP seen, or stdout went away */

/* True when the benchmark should stop: interrupted, or stdout is a closed pipe
 * (SIGPIPE is ignored so that we can still clean up). */
int bench_stopped(void);
/* "a/b" into dst; -ENAMETOOLONG if it does not fit. */
int bench_path_join(char *dst, size_t len, const char *a, const char *b);
/* rm -rf, reporting what cannot be removed ("" is ignored). */
void bench_remove_tree(const char *path);
/* This process's environment without the variables starting with one of
 * drop[] (NULL-terminated), then extra[] (may be NULL). Free the array only. */
char **bench_make_env(const char *const drop[], char *const extra[]);
double bench_mono_s(void);
/* Median of n values (n <= BENCH_MAX_SAMPLES); src is left as it is. */
double bench_median(const double *src, unsigned n);
/* Prints "load average WHEN: <contents of /proc/loadavg>". */
void bench_print_load(const char *when);

#endif /* BENCHUTIL_H */
