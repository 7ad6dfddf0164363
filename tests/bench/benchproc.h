/* What the scale, stall and fixed-cost runners (bench_scale.c, bench_stall.c,
 * bench_fixed.c) share beyond benchutil: the tracers a workload runs under and
 * their command lines, a workload started in the background and waited for
 * by a line it prints, `memtrail snapshot PID` timed, and the snapshot files
 * a run wrote, counted and removed.
 *
 * Threads: none; every runner is single-threaded and runs one child (plus
 * at most one `memtrail snapshot`) at a time. A background child runs in its
 * own process group and is killed as a whole on timeout or interruption. */
#ifndef BENCHPROC_H
#define BENCHPROC_H

#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

enum bench_tracer {
    BT_BARE,
    BT_MEMTRAIL,        /* memtrail run -o OUT -- CMD (MEMTRAIL_LIB = the build's) */
    BT_MEMTRAIL_B,      /* the same with MEMTRAIL_LIB = the -B library */
    BT_HEAPTRACK,       /* heaptrack -o HT/ht CMD (native workloads) */
    BT_TRACEMALLOC,     /* CMD[0] -X tracemalloc CMD[1..] (Python workloads) */
    BT_COUNT
};
extern const char *const bench_tracer_name[BT_COUNT];

typedef struct bench_ctx {
    unsigned timeout_s;         /* per run; BENCH_TIMEOUT */
    char memtrail[PATH_MAX];    /* <build>/analyzer/memtrail */
    char lib[PATH_MAX];         /* <build>/preload/libmemtrail.so */
    char lib_b[PATH_MAX];       /* -B: another build's library ("" if none) */
    char heaptrack[PATH_MAX];   /* "" when not installed or -H none */
    char progdir[PATH_MAX];     /* <build>/tests/bench */
    char srcdir[PATH_MAX];      /* the source tests/bench (py workloads) */
    char tmpdir[PATH_MAX];      /* ours, removed by bench_ctx_done */
    char outdir[PATH_MAX];      /* memtrail run -o */
    char htdir[PATH_MAX];       /* heaptrack -o <htdir>/ht */
    char keptdir[PATH_MAX];     /* small files of finished runs (bench_collect) */
    char out[PATH_MAX];         /* stdout of the last run */
    char err[PATH_MAX];         /* stderr of the last run */
    char stop[PATH_MAX];        /* the stop file a waiting workload polls */
} bench_ctx_t;

/* Parses `[-b BUILD_ROOT] [-B LIB] [-H HEAPTRACK|none] [-h]`, reads
 * BENCH_TIMEOUT, finds the build's memtrail and library, makes the temp
 * directory, sets up stdout and the signals. Returns -1 to go on, or the
 * exit status to return (0 after -h, 1 on error, 2 on bad usage). */
int bench_ctx_init(bench_ctx_t *c, int argc, char **argv, void (*usage)(FILE *), const char *src);
/* Removes the temp directory. */
void bench_ctx_done(bench_ctx_t *c);
/* 1 if tracer t can run here (memtrail-B only with -B, heaptrack if found). */
int bench_tracer_usable(const bench_ctx_t *c, enum bench_tracer t);

/* Fills argv (cap entries) and extra (3 entries, NULL-terminated: the library
 * and a symbol cache directory of its own for each build) to run
 * cmd under tracer t; `interval` (NULL: none) is memtrail run's --interval.
 * Returns 0 or -E2BIG. */
int bench_tracer_argv(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[],
                      const char *interval, char **argv, size_t cap, char **extra,
                      char *libenv, size_t libenv_len);

/* Runs cmd under t to the end (bench_run_child with out/err to c->out and
 * c->err). Returns 0 when it exited with status 0, -EINTR when interrupted,
 * else -ECHILD after the reason and the tails of its output on stderr. */
int bench_run(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[], const char *interval,
              const char *what, double *wall_s, long *maxrss_kb);

/* A child started in the background. */
typedef struct bench_proc {
    pid_t pid;
    double t0;
    int status;                 /* once reaped */
    int reaped;
    long maxrss_kb;
    double wall_s;
} bench_proc_t;

/* Starts cmd under t with stdout to c->out and stderr to c->err, after
 * removing the stop file. Returns 0 or a negative errno. */
int bench_start(const bench_ctx_t *c, enum bench_tracer t, char *const cmd[],
                const char *interval, bench_proc_t *p);
/* Waits until a line starting with `prefix` appears in c->out; copies it.
 * Returns 0; -ECHILD if the child ended first, -ETIMEDOUT, or -EINTR. */
int bench_wait_line(const bench_ctx_t *c, bench_proc_t *p, const char *prefix, char *line,
                    size_t len);
/* Creates the stop file. */
int bench_release(const bench_ctx_t *c);
/* Waits for the child's end (killing its group after c->timeout_s or when
 * interrupted). Returns like bench_run; fills p->wall_s and p->maxrss_kb. */
int bench_finish(const bench_ctx_t *c, bench_proc_t *p, const char *what);
/* Kills the child's process group and reaps it (after a failure). */
void bench_kill(bench_proc_t *p);

/* The sum of `field` ("VmRSS" or "VmHWM", kB) over the processes of process
 * group pgid (a background child's: the tracer's own processes included, as
 * heaptrack's interpreter), or a negative errno. */
long bench_group_rss_kb(pid_t pgid, const char *field);

/* Times `memtrail snapshot PID`: 0 with *secs and the snapshot's size in
 * *bytes, or a negative errno after a message. */
int bench_snapshot_pid(const bench_ctx_t *c, long pid, double *secs, long long *bytes);

/* The snapshot files (memtrail.PID.SEQ.TRIGGER.mtsnap) of c->outdir. */
typedef struct bench_snaps {
    unsigned files;
    long long bytes;
    unsigned exit_files;        /* trigger "exit" */
    long long exit_bytes;
    unsigned interval_files;    /* trigger "interval" */
    long long interval_bytes;
    long long heaptrack_bytes;  /* heaptrack's data file(s) in c->htdir */
    int has_costs;              /* the (last) exit snapshot had a COSTS record: */
    uint64_t wait_ns, waits, worst_wait_ns, writer_cpu_ns;   /* its figures */
} bench_snaps_t;
/* Counts them and heaptrack's files, then empties c->outdir and c->htdir:
 * files under 1 MiB are moved into c->keptdir (removed with the rest by
 * bench_ctx_done), bigger ones unlinked. Unlinking thousands of small files
 * between runs would make later runs slower than a user's: ext4 without a
 * journal (this project's VM) will not reuse an inode for a minute or more
 * after its deletion, and a new file's inode search steps over every such
 * inode of its group (docs/performance.md, *Snapshot files deleted between
 * runs*). */
void bench_collect(const bench_ctx_t *c, bench_snaps_t *s);

/* The first line of c->out starting with `prefix`, into line. 0 or -ENOENT. */
int bench_out_line(const bench_ctx_t *c, const char *prefix, char *line, size_t len);
/* Prints the last 4 KiB of path on stderr, headed by `what`. */
void bench_show_tail(const char *path, const char *what);

#endif /* BENCHPROC_H */
