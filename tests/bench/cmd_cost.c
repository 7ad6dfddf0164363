/*
 * cmd_cost: what memtrail adds to one short command, as a shell pays it
 * (issue 12, point 4: a script of 1,000 commands at most twice its bare
 * time). bench_fixed times the whole script; this times the command alone,
 * from fork to reap, without the shell's own tracing in the figure.
 *
 * Processes: this process is the waiter, as `memtrail run` is (its pid and
 * a lock file in MEMTRAIL_EXIT_LOCK); a launcher, its child, is the
 * commands' parent, as the shell is under `memtrail run`, so a traced
 * command's exit snapshot is written by a copy of it (docs/design.md, *The
 * last snapshot of a short process, written by a copy*) that runs on after
 * the command ended. The launcher is the copies' subreaper.
 *
 * Each round runs every configuration once, in an order rotated by one at
 * each round (so none is always first after another): bare, the build's
 * library, -B's library, then the build's library with each -E's
 * variables. A run is timed from the fork to the wait4 that reaps the
 * command; then, untimed, the launcher takes the lock file exclusive (the
 * copy's end, as `memtrail run` waits for it) and reaps the copy, so each
 * run starts on a quiet machine; -p leaves the copies running, as a shell
 * does (they are reaped when the round ends). Three warm-up rounds first
 * (the symbol caches, one per library, are filled there).
 *
 * Printed for each configuration: the median, first and third quartile of
 * the wall time, the median's excess over bare's median, the command's
 * minor faults (median, its rusage), how many copies were reaped (fewer
 * than the runs: some commands wrote their snapshot themselves, their
 * writer thread having started) and their CPU time and faults (medians;
 * none when not traced or -p).
 *
 * Usage: cmd_cost [-b BUILD] [-B LIB] [-E K=V[,K=V...]]... [-n RUNS] [-p]
 *                 [--] [CMD [ARG...]]      (CMD: /bin/true by default)
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "memtrail_protocol.h"

#define MAX_CONFIGS 8
#define MAX_RUNS 5000
#define MAX_ENV 16
#define WARMUP 3

typedef struct config {
    char name[64];
    const char *lib;            /* NULL: bare */
    char *env[MAX_ENV];         /* extra variables, NULL-terminated */
    char cache[PATH_MAX];       /* MEMTRAIL_SYMCACHE of this library */
    double *wall_us, *copy_us;
    double *faults, *copy_faults;
    unsigned n, copies;
} config_t;

static config_t cfg[MAX_CONFIGS];
static unsigned ncfg;
static char outdir[PATH_MAX], lockpath[PATH_MAX], lockvar[PATH_MAX + 64], outvar[PATH_MAX + 32];

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [-b BUILD_ROOT] [-B LIB] [-E K=V[,K=V...]]... [-n RUNS] [-p] "
               "[--] [CMD [ARG...]]\n"
               "  Times CMD (default /bin/true) bare and traced, each run forked from an\n"
               "  untraced parent as a shell's command is; configurations rotated.\n"
               "  -B LIB   another build's libmemtrail.so beside the build's\n"
               "  -E VARS  the build's library with these variables (one more configuration)\n"
               "  -n RUNS  runs of each configuration (default 300, at most %d)\n"
               "  -p       leave each command's copy running (as a shell does)\n",
            bench_prog, MAX_RUNS);
}

static double cpu_us(const struct rusage *ru)
{
    return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e6 +
           (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);
}

static int add_config(const char *name, const char *lib, const char *vars, const char *tmp)
{
    if (ncfg == MAX_CONFIGS) {
        fprintf(stderr, "%s: at most %d configurations\n", bench_prog, MAX_CONFIGS);
        return -1;
    }
    config_t *c = &cfg[ncfg];
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->lib = lib;
    unsigned k = 0;
    if (lib) {
        static char preload[MAX_CONFIGS][PATH_MAX + 16], cachevar[MAX_CONFIGS][PATH_MAX + 32];
        snprintf(c->cache, sizeof(c->cache), "%s/cache%u", tmp, ncfg);
        snprintf(preload[ncfg], sizeof(preload[ncfg]), "LD_PRELOAD=%s", lib);
        snprintf(cachevar[ncfg], sizeof(cachevar[ncfg]), MTPROTO_ENV_SYMCACHE "=%s", c->cache);
        c->env[k++] = preload[ncfg];
        c->env[k++] = cachevar[ncfg];
        c->env[k++] = outvar;
        c->env[k++] = lockvar;
    }
    if (vars) {
        char *copy = strdup(vars);
        for (char *kv = strtok(copy, ","); kv; kv = strtok(NULL, ",")) {
            if (!strchr(kv, '=') || k + 1 >= MAX_ENV) {
                fprintf(stderr, "%s: -E %s: expected K=V[,K=V...]\n", bench_prog, vars);
                return -1;
            }
            c->env[k++] = kv;
        }
    }
    c->env[k] = NULL;
    ncfg++;
    return 0;
}

/* Reaps the copies of commands already reaped (the launcher's only other
 * children), waiting for them when `block`; records each one's CPU and
 * faults in the configuration that made it. */
static void reap_copies(config_t *c, int block)
{
    for (;;) {
        int st;
        struct rusage ru;
        pid_t p = wait4(-1, &st, block ? 0 : WNOHANG, &ru);
        if (p <= 0)
            return;
        if (c && c->copies < MAX_RUNS) {
            c->copy_us[c->copies] = cpu_us(&ru);
            c->copy_faults[c->copies++] = (double)ru.ru_minflt;
        }
    }
}

static int one_run(config_t *c, char *const cmd[], int record, int pile)
{
    static const char *const drop[] = {"MEMTRAIL_", "LD_PRELOAD=", NULL};
    char **env = bench_make_env(drop, c->env);
    if (!env)
        return -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        free(env);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execve(cmd[0], cmd, env);
        _exit(127);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(env);
    if (!WIFEXITED(st) || WEXITSTATUS(st) == 127) {
        fprintf(stderr, "%s: %s (%s) did not run\n", bench_prog, cmd[0], c->name);
        return -1;
    }
    if (record && c->n < MAX_RUNS) {
        c->wall_us[c->n] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 +
                           (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
        c->faults[c->n++] = (double)ru.ru_minflt;
    }
    if (c->lib && !pile) {
        int fd = open(lockpath, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {   /* the copy's end, as memtrail run waits for it */
            while (flock(fd, LOCK_EX) < 0 && errno == EINTR) {
            }
            close(fd);
        }
        reap_copies(record ? c : NULL, 1);
    }
    return 0;
}

static int launcher(char *const cmd[], unsigned runs, int pile)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("cmd_cost: PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    for (unsigned i = 0; i < ncfg; i++) {
        config_t *c = &cfg[i];
        c->wall_us = calloc(runs, sizeof(double));
        c->faults = calloc(runs, sizeof(double));
        c->copy_us = calloc(runs, sizeof(double));
        c->copy_faults = calloc(runs, sizeof(double));
        if (!c->wall_us || !c->faults || !c->copy_us || !c->copy_faults)
            return 1;
    }
    for (unsigned r = 0; r < runs + WARMUP && !bench_stopped(); r++)
        for (unsigned k = 0; k < ncfg; k++) {
            config_t *c = &cfg[(k + r) % ncfg];
            if (one_run(c, cmd, r >= WARMUP, pile) < 0)
                return 1;
            if (pile && k + 1 == ncfg)
                reap_copies(NULL, 1);
        }
    double bare = 0;
    printf("%-28s %9s %9s %9s %9s %8s %7s %10s %8s\n", "configuration", "median us", "p25",
           "p75", "added", "faults", "copies", "copy cpu", "faults");
    for (unsigned i = 0; i < ncfg; i++) {
        config_t *c = &cfg[i];
        double med = bench_quantile(c->wall_us, c->n, 0.5);
        if (i == 0)
            bare = med;
        printf("%-28s %9.1f %9.1f %9.1f %+9.1f %8.0f", c->name, med,
               bench_quantile(c->wall_us, c->n, 0.25), bench_quantile(c->wall_us, c->n, 0.75), med - bare,
               bench_quantile(c->faults, c->n, 0.5));
        if (c->copies)
            printf(" %7u %10.1f %8.0f\n", c->copies, bench_quantile(c->copy_us, c->copies, 0.5),
                   bench_quantile(c->copy_faults, c->copies, 0.5));
        else
            printf(" %7s %10s %8s\n", "-", "-", "-");
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_prog = "cmd_cost";
    const char *root = NULL, *lib_b = NULL, *vars[MAX_CONFIGS];
    unsigned nvars = 0, runs = 300;
    int pile = 0, o;
    while ((o = getopt(argc, argv, "+b:B:E:n:ph")) != -1) {
        switch (o) {
        case 'b': root = optarg; break;
        case 'B': lib_b = optarg; break;
        case 'E':
            if (nvars == MAX_CONFIGS - 3) {
                usage(stderr);
                return 2;
            }
            vars[nvars++] = optarg;
            break;
        case 'n': runs = (unsigned)atoi(optarg); break;
        case 'p': pile = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS) {
        usage(stderr);
        return 2;
    }
    static char truecmd[] = "/bin/true";
    char *defcmd[] = {truecmd, NULL};
    char *const *cmd = optind < argc ? argv + optind : defcmd;
    if (cmd[0][0] != '/') {
        fprintf(stderr, "%s: CMD must be an absolute path: %s\n", bench_prog, cmd[0]);
        return 2;
    }
    char build[PATH_MAX], lib[PATH_MAX + 32], tmp[] = "/tmp/cmd_cost.XXXXXX";
    if (bench_build_root(root, build, sizeof(build)) < 0) {
        fprintf(stderr, "%s: no build root\n", bench_prog);
        return 1;
    }
    snprintf(lib, sizeof(lib), "%s/preload/" MTPROTO_LIB_NAME, build);
    if (access(lib, R_OK) != 0 || (lib_b && access(lib_b, R_OK) != 0)) {
        fprintf(stderr, "%s: cannot read %s\n", bench_prog, access(lib, R_OK) ? lib : lib_b);
        return 1;
    }
    if (!mkdtemp(tmp)) {
        perror("cmd_cost: mkdtemp");
        return 1;
    }
    snprintf(outdir, sizeof(outdir), "%s/out", tmp);
    snprintf(lockpath, sizeof(lockpath), "%s/lock", tmp);
    snprintf(outvar, sizeof(outvar), MTPROTO_ENV_OUTPUT "=%s", outdir);
    snprintf(lockvar, sizeof(lockvar), MTPROTO_ENV_EXIT_LOCK "=%ld:%s", (long)getpid(), lockpath);
    int fd = open(lockpath, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (mkdir(outdir, 0700) != 0 || fd < 0) {
        perror("cmd_cost: setup");
        bench_remove_tree(tmp);
        return 1;
    }
    close(fd);
    int bad = add_config("bare", NULL, NULL, tmp) || add_config("memtrail", lib, NULL, tmp) ||
              (lib_b && add_config("memtrail -B", lib_b, NULL, tmp));
    for (unsigned i = 0; i < nvars && !bad; i++) {
        char name[64];
        snprintf(name, sizeof(name), "memtrail %s", vars[i]);
        bad = add_config(name, lib, vars[i], tmp);
    }
    if (bad) {
        bench_remove_tree(tmp);
        return 2;
    }
    printf("cmd_cost: %s, %u runs of each configuration%s; library %s", cmd[0], runs,
           pile ? ", copies left running" : "", lib);
    if (lib_b)
        printf(", -B %s", lib_b);
    printf("\n");
    bench_print_load("before");
    fflush(stdout);
    pid_t pid = fork();   /* the launcher: the commands' parent, not the waiter */
    if (pid == 0) {
        int r = launcher(cmd, runs, pile);
        fflush(stdout);
        _exit(r);
    }
    int st = 1;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    bench_print_load("after");
    bench_remove_tree(tmp);
    return pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
