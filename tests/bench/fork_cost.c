/* fork_cost: what a fork costs a traced program, side by side with the same
 * program bare: the figure behind memtrail's fork-written variables and
 * wiped thread caches (docs/design.md, "fork and exec").
 *
 * The workload (one run): N times (default 300), the parent allocates a
 * block and forks; the child allocates and frees a block and execs
 * /bin/true with an environment of its own (PATH only: /bin/true runs
 * untraced); the parent waits for it and frees its block. It measures
 * microseconds per fork (fork, exec, exit and wait), the parent's minor
 * page faults per fork and the children's (their /bin/true's included).
 *
 * fork_cost [-r ROUNDS] [-n N] [LIB ...] runs the workload bare and under
 * LD_PRELOAD=LIB for each library (its snapshots in a temporary directory),
 * ROUNDS times (default 5) in turns, and prints each configuration's
 * medians and its time over bare's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

#define MAX_CONF 8
#define MAX_ROUNDS 51
_Static_assert(MAX_ROUNDS <= BENCH_MAX_SAMPLES, "bench_median takes the rounds");

/* One run, in this process: "us parent_faults children_faults" on stdout. */
static int workload(int n)
{
    static char path_var[] = "PATH=/bin:/usr/bin", prog[] = "/bin/true";
    char *env[] = {path_var, NULL};
    char *args[] = {prog, NULL};
    struct rusage r0, r1, kids;
    for (int i = 0; i < 20; i++)   /* the allocator and the tracer warm */
        free(malloc(100 + (size_t)i));
    getrusage(RUSAGE_SELF, &r0);
    double t0 = bench_mono_s();
    for (int i = 0; i < n; i++) {
        char *p = malloc(64);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork_cost: fork");
            return 1;
        }
        if (pid == 0) {
            free(malloc(32));
            execve(args[0], args, env);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork_cost: the child failed\n");
            return 1;
        }
        free(p);
    }
    double us = (bench_mono_s() - t0) * 1e6 / n;
    getrusage(RUSAGE_SELF, &r1);
    getrusage(RUSAGE_CHILDREN, &kids);
    printf("%.3f %.3f %.3f\n", us, (double)(r1.ru_minflt - r0.ru_minflt) / n,
           (double)kids.ru_minflt / n);
    return 0;
}

/* This program's workload as a child, bare (lib NULL) or under lib. */
static int run_one(const char *self, int n, const char *lib, const char *dir, double out[3])
{
    char nbuf[16], cmd[3 * 4096 + 64];
    snprintf(nbuf, sizeof(nbuf), "%d", n);
    if (lib)
        snprintf(cmd, sizeof(cmd), "LD_PRELOAD='%s' MEMTRAIL_OUTPUT='%s' '%s' --workload %s", lib,
                 dir, self, nbuf);
    else
        snprintf(cmd, sizeof(cmd), "'%s' --workload %s", self, nbuf);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int got = fscanf(f, "%lf %lf %lf", &out[0], &out[1], &out[2]);
    int st = pclose(f);
    return got == 3 && st == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    int n = 300, rounds = 5, opt;
    bench_prog = "fork_cost";
    if (argc == 3 && strcmp(argv[1], "--workload") == 0)
        return workload(atoi(argv[2]));
    while ((opt = getopt(argc, argv, "r:n:")) != -1) {
        if (opt == 'r')
            rounds = atoi(optarg);
        else if (opt == 'n')
            n = atoi(optarg);
        else
            goto usage;
    }
    int nconf = 1 + (argc - optind);
    if (n <= 0 || rounds <= 0 || rounds > MAX_ROUNDS || nconf > MAX_CONF)
        goto usage;
    const char *libs[MAX_CONF] = {NULL};
    for (int i = 1; i < nconf; i++) {
        libs[i] = argv[optind + i - 1];
        if (access(libs[i], R_OK) != 0) {   /* ld.so would only warn, and run it bare */
            fprintf(stderr, "fork_cost: %s: cannot read it\n", libs[i]);
            return 2;
        }
    }
    char self[4096], dir[] = "/tmp/fork_cost.XXXXXX";
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        perror("fork_cost: /proc/self/exe");
        return 1;
    }
    self[len] = 0;
    if (!mkdtemp(dir)) {
        perror("fork_cost: mkdtemp");
        return 1;
    }
    static double v[MAX_CONF][3][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < nconf; k++) {
            int c = (k + r) % nconf;   /* the order rotates */
            double out[3];
            if (run_one(self, n, libs[c], dir, out) < 0) {
                fprintf(stderr, "fork_cost: the run %s failed\n", libs[c] ? libs[c] : "bare");
                bench_remove_tree(dir);
                return 1;
            }
            for (int m = 0; m < 3; m++)
                v[c][m][r] = out[m];
        }
    bench_remove_tree(dir);
    printf("fork + exec of an untraced /bin/true, %d forks a run, medians of %d runs\n", n, rounds);
    printf("%-40s %12s %10s %16s %18s\n", "configuration", "us/fork", "added_us", "parent_faults",
           "children_faults");
    double bare = 0;
    for (int c = 0; c < nconf; c++) {
        double us = bench_median(v[c][0], (unsigned)rounds),
               pf = bench_median(v[c][1], (unsigned)rounds),
               cf = bench_median(v[c][2], (unsigned)rounds);
        if (c == 0)
            bare = us;
        printf("%-40s %12.1f %10.1f %16.1f %18.1f\n", libs[c] ? libs[c] : "bare", us, us - bare,
               pf, cf);
    }
    return 0;
usage:
    fprintf(stderr, "usage: fork_cost [-r ROUNDS (1..%d)] [-n N] [LIB ...] (at most %d)\n",
            MAX_ROUNDS, MAX_CONF - 1);
    return 2;
}
