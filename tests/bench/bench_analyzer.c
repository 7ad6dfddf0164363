/* bench_analyzer: the analyzer at scale. The requirement measured: "the
 * analyzer reads snapshots with 1 million live blocks and 100,000 distinct
 * stacks: report, diff and export each finish in about a second and use memory
 * proportional to the input."
 *
 * It traces many_stacks twice under `memtrail run` (BENCH_BLOCKS live blocks
 * over BENCH_STACKS distinct call stacks, seed 0 then seed 1, which changes a
 * fifth of the paths) and keeps the two exit snapshots A and B. Then every
 * command of the table below (report, diff, export in their main forms) runs
 * once untimed, its stdout to a file, to learn the size of what it writes,
 * then BENCH_ROUNDS times with stdout to /dev/null (exports write their -o
 * file). One line per command: median wall time, peak RSS of the memtrail
 * process (wait4's ru_maxrss, largest run), that RSS divided by the input size
 * (the snapshot, A + B for diff) and the output size. A command that exits
 * with another status than 0 (0 or 1 for diff: 1 means "grew") is FAILED, with
 * the first line of its stderr, and the runner then exits 1.
 *
 * Environment:
 *   MEMTRAIL_BUILD_ROOT  meson build dir: analyzer/memtrail, preload/libmemtrail.so,
 *                        tests/bench/many_stacks (default: found from this
 *                        program's location)
 *   BENCH_BLOCKS         live blocks per snapshot (default 1000000)
 *   BENCH_STACKS         distinct stacks (default 100000)
 *   BENCH_ROUNDS         runs of each command (default 3; the median is kept)
 *   BENCH_TIMEOUT        seconds before a single run is killed (default 900) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

/* Variables the children never inherit. */
static const char *const env_drop[] = {
    "LD_PRELOAD=", "MEMTRAIL_", "MALLOC_PERTURB_=", "MALLOC_CHECK_=", NULL,
};

#define MAX_ROUNDS BENCH_MAX_SAMPLES
#define DEFAULT_ROUNDS 3
#define DEFAULT_BLOCKS 1000000u
#define DEFAULT_STACKS 100000u
#define DEFAULT_TIMEOUT_S 900u
#define MAX_ARGS 12
#define MIB (1024.0 * 1024.0)

typedef struct config {
    unsigned rounds;
    unsigned blocks;
    unsigned stacks;
    unsigned timeout_s;
    char memtrail[PATH_MAX];    /* the memtrail CLI */
    char lib[PATH_MAX];         /* libmemtrail.so, passed as MEMTRAIL_LIB */
    char workload[PATH_MAX];    /* many_stacks */
    char tmpdir[PATH_MAX];      /* ours, removed at the end */
    char snap[2][PATH_MAX];     /* A and B: the exit snapshots */
    long long snap_bytes[2];
    char export_out[PATH_MAX];  /* -o of the exports */
    char out[PATH_MAX];         /* stdout of the runs that keep it */
    char err[PATH_MAX];         /* stderr of the last run */
} config_t;

/* A command, as the arguments after `memtrail`: "@A", "@B" and "@OUT" stand
 * for the snapshots and the export output. */
typedef struct command {
    const char *name;
    const char *args[MAX_ARGS];
} command_t;

static const command_t commands[] = {
    { "report A", { "report", "@A", NULL } },
    { "report A --group-by line", { "report", "@A", "--group-by", "line", NULL } },
    { "report A --format json --top 0", { "report", "@A", "--format", "json", "--top", "0", NULL } },
    { "diff A B", { "diff", "@A", "@B", NULL } },
    { "diff A B --group-by function --format json",
      { "diff", "@A", "@B", "--group-by", "function", "--format", "json", NULL } },
    { "diff A B --format collapsed", { "diff", "@A", "@B", "--format", "collapsed", NULL } },
    { "export A --format pprof", { "export", "@A", "--format", "pprof", "-o", "@OUT", NULL } },
    { "export A --format collapsed", { "export", "@A", "--format", "collapsed", "-o", "@OUT", NULL } },
    { "export A --format speedscope", { "export", "@A", "--format", "speedscope", "-o", "@OUT", NULL } },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

typedef struct result {
    double wall[MAX_ROUNDS];
    unsigned n;
    long maxrss_kb;
    long long input_bytes;
    long long out_bytes;        /* size of the output: stdout, or -o for exports */
    double median_s;
    int failed;
    char why[256];              /* failed: status and first stderr line */
} result_t;

/* ---------------------------------------------------------------- paths */


static int locate(config_t *c, const char *root_arg)
{
    char root[PATH_MAX];
    int rc;

    if ((rc = bench_build_root(root_arg, root, sizeof(root))) < 0 ||
        (rc = bench_path_join(c->memtrail, sizeof(c->memtrail), root, "analyzer/memtrail")) < 0 ||
        (rc = bench_path_join(c->lib, sizeof(c->lib), root, "preload/libmemtrail.so")) < 0 ||
        (rc = bench_path_join(c->workload, sizeof(c->workload), root, "tests/bench/many_stacks")) < 0)
        return rc;
    const char *const need[][2] = {
        { c->memtrail, "x" }, { c->workload, "x" }, { c->lib, "r" },
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (access(need[i][0], need[i][1][0] == 'x' ? X_OK : R_OK) < 0) {
            rc = -errno;
            fprintf(stderr, "bench_analyzer: %s: %s\n", need[i][0], strerror(errno));
            return rc;
        }
    return 0;
}

static int make_tmp(config_t *c)
{
    int rc;
    snprintf(c->tmpdir, sizeof(c->tmpdir), "/tmp/memtrail-anbench.XXXXXX");
    if (!mkdtemp(c->tmpdir)) {
        c->tmpdir[0] = 0;
        return -errno;
    }
    if ((rc = bench_path_join(c->export_out, sizeof(c->export_out), c->tmpdir, "export.out")) < 0 ||
        (rc = bench_path_join(c->out, sizeof(c->out), c->tmpdir, "stdout")) < 0 ||
        (rc = bench_path_join(c->err, sizeof(c->err), c->tmpdir, "stderr")) < 0)
        return rc;
    return 0;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The *.exit.mtsnap file in `dir` into dst (the largest if there are several). */
static int find_exit_snapshot(const char *dir, char *dst, size_t len)
{
    static const char suffix[] = ".exit.mtsnap";
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];
    long long best = -1;
    int rc = -ENOENT;
    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= sizeof(suffix) - 1 || strcmp(e->d_name + n - (sizeof(suffix) - 1), suffix) ||
            bench_path_join(p, sizeof(p), dir, e->d_name) < 0)
            continue;
        long long size = file_size(p);
        if (size > best) {
            best = size;
            rc = snprintf(dst, len, "%s", p) >= (int)len ? -ENAMETOOLONG : 0;
        }
    }
    closedir(d);
    return rc;
}

/* ---------------------------------------------------- running a child */

/* Runs argv (argv[0] a path) with `extra` in its environment, stdout to
 * `out_path` and stderr to c->err, in its own process group (killed as a whole
 * on timeout or interruption). Returns the wait status (>= 0) or a negative
 * errno; -ETIMEDOUT / -EINTR when killed. */
static int run_child(const config_t *c, char *const argv[], char *const extra[],
                     const char *out_path, double *wall_s, long *maxrss_kb)
{
    char **env = bench_make_env(env_drop, extra);
    if (!env)
        return -ENOMEM;
    int rc = bench_run_child(argv, env, out_path, c->err, c->timeout_s, wall_s, maxrss_kb);
    free(env);
    return rc;
}

/* Copies `path` to stdout, each line indented. */
static void print_file(const char *path, const char *indent)
{
    FILE *f = fopen(path, "re");
    char line[1024];
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        printf("%s%s", indent, line);
    fclose(f);
}

/* Describes a status that is not `ok` (0 or 1 allowed when ok1) into why;
 * returns 0 when the status is fine. */
static int describe_status(const config_t *c, int rc, int ok1, char *why, size_t len)
{
    char line[200];
    if (rc >= 0 && WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || (ok1 && WEXITSTATUS(rc) == 1)))
        return 0;
    if (rc == -EINTR)
        return rc;
    bench_first_line(c->err, line, sizeof(line));
    if (rc == -ETIMEDOUT)
        snprintf(why, len, "killed after the time limit (BENCH_TIMEOUT=%u s)", c->timeout_s);
    else if (rc < 0)
        snprintf(why, len, "%s", strerror(-rc));
    else if (WIFEXITED(rc))
        snprintf(why, len, "exit status %d: %s", WEXITSTATUS(rc), line[0] ? line : "(no stderr)");
    else
        snprintf(why, len, "killed by signal %d: %s", WTERMSIG(rc), line[0] ? line : "(no stderr)");
    return -ECHILD;
}

/* -------------------------------------------------------- the snapshots */

/* memtrail run -o TMP/<name> -- many_stacks BLOCKS STACKS SEED; the exit
 * snapshot's path into c->snap[idx]. */
static int trace(config_t *c, unsigned idx, const char *name, unsigned seed)
{
    char dir[PATH_MAX], nb[16], ns[16], nseed[16], libenv[PATH_MAX + 16], why[256];
    char *extra[] = { libenv, NULL };
    double wall;
    long rss;
    int rc;

    if ((rc = bench_path_join(dir, sizeof(dir), c->tmpdir, name)) < 0)
        return rc;
    snprintf(nb, sizeof(nb), "%u", c->blocks);
    snprintf(ns, sizeof(ns), "%u", c->stacks);
    snprintf(nseed, sizeof(nseed), "%u", seed);
    snprintf(libenv, sizeof(libenv), "MEMTRAIL_LIB=%s", c->lib);
    char *argv[] = {
        c->memtrail, (char *)"run", (char *)"-o", dir, (char *)"--",
        c->workload, nb, ns, nseed, NULL,
    };
    rc = run_child(c, argv, extra, c->out, &wall, &rss);
    if ((rc = describe_status(c, rc, 0, why, sizeof(why))) < 0) {
        if (rc != -EINTR)
            fprintf(stderr, "bench_analyzer: memtrail run -- many_stacks %s %s %s: %s\n",
                    nb, ns, nseed, why);
        return rc;
    }
    if ((rc = find_exit_snapshot(dir, c->snap[idx], sizeof(c->snap[idx]))) < 0) {
        fprintf(stderr, "bench_analyzer: no *.exit.mtsnap in %s: %s\n", dir, strerror(-rc));
        return rc;
    }
    c->snap_bytes[idx] = file_size(c->snap[idx]);
    bench_first_line(c->out, why, sizeof(why));
    printf("%s: %s\n", name, why);
    printf("%s: traced in %.3f s (max RSS %.1f MiB), snapshot %.2f MiB: %s\n", name, wall,
           (double)rss / 1024, (double)c->snap_bytes[idx] / MIB, c->snap[idx]);
    return 0;
}

/* `memtrail report A --top 1` once, untimed: its totals show what A holds. */
static void show_totals(const config_t *c)
{
    char why[256];
    char *argv[] = { (char *)c->memtrail, (char *)"report", (char *)c->snap[0],
                     (char *)"--top", (char *)"1", NULL };
    double wall;
    long rss;
    int rc = run_child(c, argv, NULL, c->out, &wall, &rss);
    if (describe_status(c, rc, 0, why, sizeof(why)) < 0) {
        if (rc != -EINTR)
            printf("memtrail report A --top 1: %s\n", why);
        return;
    }
    printf("memtrail report A --top 1:\n");
    print_file(c->out, "    ");
}

/* ------------------------------------------------------------ commands */

static int run_command(const config_t *c, const command_t *cmd, result_t *r)
{
    char *argv[MAX_ARGS + 2];
    int a = 0, is_diff = !strcmp(cmd->args[0], "diff"), has_out = 0;

    memset(r, 0, sizeof(*r));
    argv[a++] = (char *)c->memtrail;
    for (size_t i = 0; cmd->args[i]; i++) {
        const char *s = cmd->args[i];
        if (!strcmp(s, "@A")) {
            s = c->snap[0];
            r->input_bytes += c->snap_bytes[0];
        } else if (!strcmp(s, "@B")) {
            s = c->snap[1];
            r->input_bytes += c->snap_bytes[1];
        } else if (!strcmp(s, "@OUT")) {
            s = c->export_out;
            has_out = 1;
        }
        argv[a++] = (char *)s;
    }
    argv[a] = NULL;

    /* Warm-up, untimed, stdout to a file: the size of what the command writes. */
    double wall;
    long rss;
    unlink(c->export_out);
    int rc = run_child(c, argv, NULL, c->out, &wall, &rss);
    if (rc == -EINTR || bench_stopped())
        return -EINTR;
    if (describe_status(c, rc, is_diff, r->why, sizeof(r->why)) < 0) {
        r->failed = 1;
        return -ECHILD;
    }
    r->out_bytes = file_size(has_out ? c->export_out : c->out);
    unlink(c->out);
    if (r->out_bytes < 0) {
        snprintf(r->why, sizeof(r->why), "exit status 0 but no output file");
        r->failed = 1;
        return -ECHILD;
    }

    for (unsigned round = 0; round < c->rounds; round++) {
        if (has_out)
            unlink(c->export_out);
        rc = run_child(c, argv, NULL, "/dev/null", &wall, &rss);
        if (rc == -EINTR || bench_stopped())
            return -EINTR;
        if (describe_status(c, rc, is_diff, r->why, sizeof(r->why)) < 0) {
            r->failed = 1;
            return -ECHILD;
        }
        r->wall[r->n++] = wall;
        if (rss > r->maxrss_kb)
            r->maxrss_kb = rss;
    }
    r->median_s = bench_median(r->wall, r->n);
    return 0;
}

static void print_result(const command_t *cmd, const result_t *r)
{
    if (r->failed) {
        printf("%-44s FAILED: %s\n", cmd->name, r->why);
        return;
    }
    double lo = r->wall[0], hi = lo;
    for (unsigned i = 1; i < r->n; i++) {
        lo = r->wall[i] < lo ? r->wall[i] : lo;
        hi = r->wall[i] > hi ? r->wall[i] : hi;
    }
    printf("%-44s %9.3f %8.1f %10.1f %9.2f", cmd->name, r->median_s,
           (hi - lo) * 100 / r->median_s, (double)r->maxrss_kb / 1024,
           (double)r->maxrss_kb * 1024 / (double)r->input_bytes);
    printf("%9.2f\n", (double)r->out_bytes / MIB);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_analyzer [-b BUILD_ROOT]\n"
            "Traces many_stacks twice (BENCH_BLOCKS live blocks over BENCH_STACKS stacks),\n"
            "then times memtrail report, diff and export on the two snapshots and\n"
            "reports their peak RSS against the input size.\n"
            "Environment: MEMTRAIL_BUILD_ROOT, BENCH_BLOCKS (default %u), BENCH_STACKS\n"
            "(default %u), BENCH_ROUNDS (default %u), BENCH_TIMEOUT (default %u s).\n",
            DEFAULT_BLOCKS, DEFAULT_STACKS, DEFAULT_ROUNDS, DEFAULT_TIMEOUT_S);
}

int main(int argc, char **argv)
{
    bench_prog = "bench_analyzer";
    static config_t cfg;
    static result_t res[NCOMMANDS];
    const char *root = NULL;
    int rc = 0, failed = 0;

    if ((rc = bench_root_option(argc, argv, usage, &root)) >= 0)
        return rc;
    rc = 0;

    cfg.rounds = DEFAULT_ROUNDS;
    cfg.blocks = DEFAULT_BLOCKS;
    cfg.stacks = DEFAULT_STACKS;
    cfg.timeout_s = DEFAULT_TIMEOUT_S;
    if (bench_env_uint("bench_analyzer", "BENCH_ROUNDS", MAX_ROUNDS, &cfg.rounds) < 0 ||
        bench_env_uint("bench_analyzer", "BENCH_BLOCKS", 1000000000, &cfg.blocks) < 0 ||
        bench_env_uint("bench_analyzer", "BENCH_STACKS", 1u << 24, &cfg.stacks) < 0 ||
        bench_env_uint("bench_analyzer", "BENCH_TIMEOUT", 86400, &cfg.timeout_s) < 0)
        return 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGCHLD, SIG_DFL);   /* an inherited SIG_IGN would reap our children */
    signal(SIGPIPE, SIG_IGN);   /* see bench_stopped() */

    if ((rc = locate(&cfg, root)) < 0)
        goto out;
    if ((rc = make_tmp(&cfg)) < 0) {
        fprintf(stderr, "bench_analyzer: cannot create a directory under /tmp: %s\n",
                strerror(-rc));
        goto out;
    }

    printf("memtrail analyzer benchmark\n");
    printf("memtrail: %s\nworkload: %s %u %u (seed 0 -> A, seed 1 -> B)\n", cfg.memtrail,
           cfg.workload, cfg.blocks, cfg.stacks);
    printf("cpus online: %ld, rounds: %u (median wall time kept)\n",
           sysconf(_SC_NPROCESSORS_ONLN), cfg.rounds);
    bench_print_load("at start");

    if ((rc = trace(&cfg, 0, "A", 0)) < 0 || (rc = trace(&cfg, 1, "B", 1)) < 0)
        goto out;
    show_totals(&cfg);
    if (bench_stopped())
        goto out;

    printf("\n%-44s %9s %8s %10s %9s %9s\n", "command", "median_s", "spread%", "maxrss_MiB",
           "rss/input", "out_MiB");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        rc = run_command(&cfg, &commands[i], &res[i]);
        if (rc == -EINTR)
            goto out;
        failed |= rc < 0;
        rc = 0;
        print_result(&commands[i], &res[i]);
    }
    printf("(median of %u runs after an untimed warm-up; spread = (max - min) / median;\n"
           " maxrss = memtrail's peak RSS, largest run; rss/input = maxrss / snapshot bytes,\n"
           " A + B for diff; out = what the command writes: stdout, or the -o file)\n",
           cfg.rounds);
    bench_print_load("after these runs");

    double worst_s = -1, worst_ratio = -1;
    size_t ws = 0, wr = 0;
    unsigned nfailed = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const result_t *r = &res[i];
        if (r->failed) {
            nfailed++;
            continue;
        }
        double ratio = (double)r->maxrss_kb * 1024 / (double)r->input_bytes;
        if (r->median_s > worst_s) {
            worst_s = r->median_s;
            ws = i;
        }
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            wr = i;
        }
    }
    if (worst_s >= 0)
        printf("worst: median %.3f s (%s), RSS/input %.2f (%s); %u of %zu commands failed\n",
               worst_s, commands[ws].name, worst_ratio, commands[wr].name, nfailed, NCOMMANDS);
    else
        printf("worst: - (all %zu commands failed)\n", NCOMMANDS);
    if (failed)
        fprintf(stderr, "bench_analyzer: some commands failed (FAILED above)\n");

out:
    bench_remove_tree(cfg.tmpdir);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "bench_analyzer: stopped (interrupted, or stdout closed)\n");
        return 130;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_analyzer: %s\n", strerror(-rc));
        return 1;
    }
    return failed ? 1 : 0;
}
