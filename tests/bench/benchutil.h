/* Helpers shared by the benchmark runners (run_bench.c, bench_python.c,
 * bench_analyzer.c): stop flag, paths, running a child, timing, medians, load average. */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stddef.h>
#include <stdio.h>

#define BENCH_MAX_SAMPLES 99   /* runs per series at most */

extern const char *bench_prog;   /* the runner's name, for messages */
extern int bench_interrupted;    /* SIGINT/SIGTERM/SIGHUP seen, or stdout went away */
/* The last child bench_run_child reaped: its CPU time (user + system) and
 * minor page faults, its reaped descendants' included (wait4's rusage). */
extern double bench_last_cpu_s;
extern long bench_last_minflt;
/* bench_reap_orphans(): this process becomes its descendants' subreaper, and
 * bench_run counts into a run's figures the processes that outlived their
 * parent (under `memtrail run`, the copies that write short processes'
 * exit snapshots after those ended), reaping them once the run's process
 * ended. For benchmarks whose runs leave no process running behind. */
void bench_reap_orphans(void);

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
/* Runs argv (argv[0] a path) with environment env, stdin from /dev/null,
 * stdout to out_path and stderr to err_path (NULL: the same file), in its own
 * process group, killed as a whole after timeout_s seconds or on
 * SIGINT/SIGTERM/SIGHUP (then bench_interrupted is set). Returns the wait
 * status (>= 0) with *wall_s and *maxrss_kb (wait4's rusage) filled, or a
 * negative errno; -ETIMEDOUT / -EINTR when killed. */
int bench_run_child(char *const argv[], char *const env[], const char *out_path,
                    const char *err_path, unsigned timeout_s, double *wall_s, long *maxrss_kb);
double bench_mono_s(void);
/* Median of n values (n <= BENCH_MAX_SAMPLES); src is left as it is. */
double bench_median(const double *src, unsigned n);
/* The same of any number of values, sorted in place (the mean of the
 * middle two when n is even); 0 when n is 0. */
double bench_median_sort(double *v, unsigned n);
/* The q-quantile (0 <= q <= 1) of n values by the nearest rank, sorted in
 * place; 0 when n is 0. */
double bench_quantile(double *v, unsigned n, double q);
/* The median over i < n of a[i] / b[i], pairs with a value of 0 left out
 * (a run that failed); 0 when none is left. Paired runs: a machine whose
 * speed drifts between pairs moves this less than the ratio of medians. */
double bench_median_ratio(const double *a, const double *b, unsigned n);
/* The largest of n values (n >= 1). */
double bench_max(const double *v, unsigned n);
/* Prints "load average WHEN: <contents of /proc/loadavg>". */
void bench_print_load(const char *when);

/* The build root: `arg` (a -b option) when given, else $MEMTRAIL_BUILD_ROOT,
 * else two levels above the running benchmark (<build>/tests/bench/NAME).
 * Returns 0 or a negative errno. */
int bench_build_root(const char *arg, char *dst, size_t len);

/* The first non-empty line of `path` into dst ("" if none). */
void bench_first_line(const char *path, char *dst, size_t len);

/* The runners' command line, `[-b BUILD_ROOT] [-h]`: sets *root from -b.
 * Returns -1 to go on, or the exit status (0 after -h, 2 on bad usage,
 * usage printed). */
int bench_root_option(int argc, char **argv, void (*usage)(FILE *), const char **root);

/* A positive integer from the environment variable `name`, at most max,
 * into *v (left as is when the variable is unset or empty). Returns 0, or
 * -EINVAL after one line "PROG: invalid NAME=VALUE (1 to MAX)" on stderr. */
int bench_env_uint(const char *prog, const char *name, unsigned max, unsigned *v);

/* The COSTS record of the exit snapshot memtrail wrote in dir: the
 * producers' waits on full rings (total and longest, ms, and how many) and
 * the writer thread's CPU time over the process's life (a fraction).
 * Returns 1, or 0 when there is no such snapshot or it has no record
 * (benchcosts.c; links the format library). */
typedef struct bench_costs {
    double wait_ms, worst_ms, waits, writer_busy;
} bench_costs_t;
int bench_exit_costs(const char *dir, bench_costs_t *out);

#endif /* BENCHUTIL_H */
