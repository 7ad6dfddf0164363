/* run_bench: runs bench_malloc bare, under memtrail (exact with libunwind and
 * fp, and sampled: -S, 512 KiB by default), under a second build of
 * libmemtrail.so when -B names one, and under heaptrack, interleaved, then
 * bench_live bare, traced exact and sampled; prints the ratios, of the whole
 * process (start-up and exit snapshot included) and of bench_malloc's own
 * timed loop (work_s). */
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
#include "snapshot.h"

/* Variables the workloads never inherit. */
static const char *const env_drop[] = {
    "LD_PRELOAD=", "MEMTRAIL_", "MALLOC_PERTURB_=", "MALLOC_CHECK_=", NULL,
};

extern char **environ;

#define MAX_REPEATS BENCH_MAX_SAMPLES
#define DEFAULT_PAIRS 10000000ull
#define DEFAULT_TIMEOUT_S 900u
#define LIVE_BLOCKS 1000000.0

enum tracer { TR_BARE, TR_MEMTRAIL, TR_SAMPLED, TR_FP, TR_OTHER, TR_HEAPTRACK, TR_COUNT };
static const char *const tracer_name[TR_COUNT] = {
    "bare", "memtrail", "sampled", "memtrail-fp", "memtrail-B", "heaptrack",
};

typedef struct config {
    unsigned repeats;
    unsigned long long pairs;
    unsigned timeout_s;
    int verbose;                /* -v: print every run's wall time */
    char progdir[PATH_MAX];     /* holds bench_malloc, bench_malloc_fp, bench_live */
    char lib[PATH_MAX];         /* libmemtrail.so */
    char other[PATH_MAX];       /* -B: another build of it, run beside (empty: none) */
    char heaptrack[PATH_MAX];   /* empty: not installed / disabled */
    char tmpdir[PATH_MAX];      /* ours, removed at the end */
    char outdir[PATH_MAX];      /* MEMTRAIL_OUTPUT */
    char htdir[PATH_MAX];       /* heaptrack -o <htdir>/ht */
    char log[PATH_MAX];         /* stdout+stderr of the last run */
    char sample[64];            /* -S: MEMTRAIL_SAMPLE=<mean> of `sampled` ("" : skipped) */
} config_t;

typedef struct sample {
    double wall_s;
    double work_s;              /* bench_malloc's own timed loop, < 0 if not printed */
    long maxrss_kb;
    /* The exit snapshot's COSTS record (memtrail), has_costs 0 without one:
     * the producers' waits on full rings, the writer's CPU time over the
     * process's life. */
    int has_costs;
    double wait_ms, worst_ms, waits, writer_busy;
} sample_t;

/* One configuration's runs: samples and whether any run failed. */
typedef struct series {
    sample_t s[MAX_REPEATS];
    unsigned n;
    int failed;
    int skipped;
    double median_s;            /* filled by summarise() */
    double work_s;              /* median of the work_s, < 0 unknown */
    int has_costs;              /* every run had a COSTS record: the medians below */
    double wait_ms, worst_ms, waits, writer_busy;
    long maxrss_kb;
} series_t;

typedef struct live_result {
    int ok;
    long rss_kb;
    long rss_after_kb;
    double snapshot_ms;         /* < 0: none */
    long long file_size;        /* < 0: no api snapshot found */
} live_result_t;



/* ---------------------------------------------------------------- paths */


static int locate(config_t *c, const char *root_arg)
{
    const char *root = root_arg ? root_arg : getenv("MEMTRAIL_BUILD_ROOT");
    char self[PATH_MAX], tmp[PATH_MAX];
    int rc = 0;

    if (root && *root) {
        rc = bench_path_join(c->progdir, sizeof(c->progdir), root, "tests/bench");
        if (rc == 0)
            rc = bench_path_join(c->lib, sizeof(c->lib), root, "preload/libmemtrail.so");
        if (rc < 0)
            goto out;
    } else {
        /* <build>/tests/bench/run_bench -> <build>/preload/libmemtrail.so */
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (!slash) {
            rc = -ENOENT;
            goto out;
        }
        *slash = 0;
        if (snprintf(c->progdir, sizeof(c->progdir), "%s", self) >= (int)sizeof(c->progdir) ||
            snprintf(tmp, sizeof(tmp), "%s/../../preload/libmemtrail.so", self) >= (int)sizeof(tmp)) {
            rc = -ENAMETOOLONG;
            goto out;
        }
        if (!realpath(tmp, c->lib))
            snprintf(c->lib, sizeof(c->lib), "%s", tmp);
    }
    const char *lib = getenv("MEMTRAIL_LIB");
    if (!root_arg && lib && *lib)
        snprintf(c->lib, sizeof(c->lib), "%s", lib);

    static const char *const progs[] = {"bench_malloc", "bench_malloc_fp", "bench_live"};
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        rc = bench_path_join(tmp, sizeof(tmp), c->progdir, progs[i]);
        if (rc < 0)
            goto out;
        if (access(tmp, X_OK) < 0) {
            rc = -errno;
            fprintf(stderr, "run_bench: %s: %s\n", tmp, strerror(errno));
            goto out;
        }
    }
    if (access(c->lib, R_OK) < 0) {
        rc = -errno;
        fprintf(stderr, "run_bench: %s: %s\n", c->lib, strerror(errno));
        goto out;
    }
out:
    return rc;
}

/* -------------------------------------------------------- temp files */



/* Removes the files directly inside `dir` (our output dirs have no subdirs). */
static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX];
    if (!d)
        return;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            bench_path_join(p, sizeof(p), dir, e->d_name) == 0)
            unlink(p);
    closedir(d);
}

static int make_tmp(config_t *c)
{
    int rc = 0;
    snprintf(c->tmpdir, sizeof(c->tmpdir), "/tmp/memtrail-bench.XXXXXX");
    if (!mkdtemp(c->tmpdir)) {
        rc = -errno;
        c->tmpdir[0] = 0;
        goto out;
    }
    if ((rc = bench_path_join(c->outdir, sizeof(c->outdir), c->tmpdir, "out")) < 0 ||
        (rc = bench_path_join(c->htdir, sizeof(c->htdir), c->tmpdir, "ht")) < 0 ||
        (rc = bench_path_join(c->log, sizeof(c->log), c->tmpdir, "run.log")) < 0)
        goto out;
    if (mkdir(c->outdir, 0700) < 0 || mkdir(c->htdir, 0700) < 0) {
        rc = -errno;
        goto out;
    }
out:
    return rc;
}

/* ---------------------------------------------------- running a child */



/* Runs argv with `extra` in its environment, stdout+stderr to c->log, in its own
 * process group (killed as a whole on timeout or interruption). Returns the
 * wait status (>= 0) or a negative errno; -ETIMEDOUT / -EINTR when killed. */
static int run_child(const config_t *c, char *const argv[], char *const extra[], sample_t *out)
{
    char **env = bench_make_env(env_drop, extra);
    if (!env)
        return -ENOMEM;
    int rc = bench_run_child(argv, env, c->log, NULL, c->timeout_s, &out->wall_s,
                             &out->maxrss_kb);
    free(env);
    return rc;
}

static void show_log_tail(const config_t *c)
{
    FILE *f = fopen(c->log, "re");
    char buf[4096];
    size_t n;
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    fprintf(stderr, "---- last output of the run ----\n%s\n--------------------------------\n", buf);
}

/* Reports a failed run; returns 0 for success. */
static int check_run(const config_t *c, const char *what, int rc)
{
    if (rc >= 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0)
        return 0;
    if (rc == -EINTR)
        return rc;
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "run_bench: %s: killed after the time limit (-T %u s)\n", what,
                c->timeout_s);
    else if (rc < 0)
        fprintf(stderr, "run_bench: %s: %s\n", what, strerror(-rc));
    else if (WIFEXITED(rc))
        fprintf(stderr, "run_bench: %s: exit status %d\n", what, WEXITSTATUS(rc));
    else
        fprintf(stderr, "run_bench: %s: killed by signal %d\n", what, WTERMSIG(rc));
    show_log_tail(c);
    return -ECHILD;
}

/* ------------------------------------------------------- bench_malloc */

/* The COSTS record of the exit snapshot in dir, if there is one. */
static void read_costs(const char *dir, sample_t *out)
{
    bench_costs_t k;
    if (!bench_exit_costs(dir, &k))
        return;
    out->has_costs = 1;
    out->wait_ms = k.wait_ms;
    out->worst_ms = k.worst_ms;
    out->waits = k.waits;
    out->writer_busy = k.writer_busy;
}

static int run_malloc(const config_t *c, enum tracer tr, unsigned threads, unsigned long long pairs,
                      sample_t *out)
{
    char prog[PATH_MAX], pre[PATH_MAX + 16], outenv[PATH_MAX + 32], htout[PATH_MAX];
    char targ[16], narg[32], what[64];
    char *argv[12];
    char *extra[5] = {NULL};
    int a = 0, rc;

    if ((rc = bench_path_join(prog, sizeof(prog), c->progdir,
                        tr == TR_FP ? "bench_malloc_fp" : "bench_malloc")) < 0 ||
        (rc = bench_path_join(htout, sizeof(htout), c->htdir, "ht")) < 0)
        return rc;
    snprintf(targ, sizeof(targ), "%u", threads);
    snprintf(narg, sizeof(narg), "%llu", pairs);
    snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", tr == TR_OTHER ? c->other : c->lib);
    snprintf(outenv, sizeof(outenv), "MEMTRAIL_OUTPUT=%s", c->outdir);

    if (tr == TR_HEAPTRACK) {
        argv[a++] = (char *)c->heaptrack;
        argv[a++] = (char *)"-o";
        argv[a++] = htout;
    }
    argv[a++] = prog;
    argv[a++] = (char *)"-t";
    argv[a++] = targ;
    argv[a++] = (char *)"-n";
    argv[a++] = narg;
    argv[a] = NULL;
    if (tr == TR_MEMTRAIL || tr == TR_FP || tr == TR_OTHER || tr == TR_SAMPLED) {
        extra[0] = pre;
        extra[1] = outenv;
        extra[2] = (char *)(tr == TR_FP ? "MEMTRAIL_UNWIND=fp" : "MEMTRAIL_UNWIND=libunwind");
        if (tr == TR_SAMPLED)
            extra[3] = (char *)c->sample;
    }
    rc = run_child(c, argv, extra, out);
    snprintf(what, sizeof(what), "bench_malloc -t %u (%s)", threads, tracer_name[tr]);
    rc = check_run(c, what, rc);
    out->work_s = -1;
    FILE *lf = rc == 0 ? fopen(c->log, "re") : NULL;
    char line[128];
    while (lf && fgets(line, sizeof(line), lf))
        if (sscanf(line, "work_s %lf", &out->work_s) == 1)
            break;
    if (lf)
        fclose(lf);
    out->has_costs = 0;
    if (rc == 0)
        read_costs(c->outdir, out);
    empty_dir(c->outdir);
    empty_dir(c->htdir);
    return rc;
}

/* --------------------------------------------------------- bench_live */

static int parse_live(const config_t *c, live_result_t *r)
{
    FILE *f = fopen(c->log, "re");
    char line[256];
    int rc = 0;
    r->rss_kb = r->rss_after_kb = -1;
    r->snapshot_ms = -1;
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "rss_kb %ld", &r->rss_kb);
        sscanf(line, "rss_after_snapshot_kb %ld", &r->rss_after_kb);
        sscanf(line, "snapshot_ms %lf", &r->snapshot_ms);
    }
    fclose(f);
    if (r->rss_kb < 0)
        rc = -EBADMSG;
    return rc;
}

static long long api_snapshot_size(const config_t *c)
{
    DIR *d = opendir(c->outdir);
    struct dirent *e;
    struct stat st;
    char p[PATH_MAX];
    long long size = -1;
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 11 && !strcmp(e->d_name + n - 11, ".api.mtsnap") &&
            bench_path_join(p, sizeof(p), c->outdir, e->d_name) == 0 && stat(p, &st) == 0)
            size = (long long)st.st_size;
    }
    closedir(d);
    return size;
}

/* traced: 0 bare, 1 exact, 2 sampled (c->sample). */
static int run_live(const config_t *c, int traced, live_result_t *r)
{
    static const char *const what[] = {"bench_live (bare)", "bench_live (memtrail)",
                                       "bench_live (sampled)"};
    char prog[PATH_MAX], pre[PATH_MAX + 16], outenv[PATH_MAX + 32];
    char *argv[2];
    char *extra[4] = {NULL};
    sample_t s;
    int rc;

    memset(r, 0, sizeof(*r));
    if ((rc = bench_path_join(prog, sizeof(prog), c->progdir, "bench_live")) < 0)
        goto out;
    argv[0] = prog;
    argv[1] = NULL;
    if (traced) {
        snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", c->lib);
        snprintf(outenv, sizeof(outenv), "MEMTRAIL_OUTPUT=%s", c->outdir);
        extra[0] = pre;
        extra[1] = outenv;
        if (traced == 2)
            extra[2] = (char *)c->sample;
    }
    rc = run_child(c, argv, extra, &s);
    rc = check_run(c, what[traced], rc);
    if (rc < 0)
        goto out;
    if ((rc = parse_live(c, r)) < 0) {
        fprintf(stderr, "run_bench: bench_live: unexpected output\n");
        show_log_tail(c);
        goto out;
    }
    r->file_size = api_snapshot_size(c);
    if (traced && (r->snapshot_ms < 0 || r->file_size < 0)) {
        fprintf(stderr, "run_bench: %s: no snapshot taken\n", what[traced]);
        show_log_tail(c);
        rc = -ENOENT;
        goto out;
    }
    r->ok = 1;
out:
    empty_dir(c->outdir);
    return rc;
}

/* ---------------------------------------------------------- statistics */



static void summarise(series_t *s)
{
    double v[MAX_REPEATS], w[MAX_REPEATS];
    unsigned nw = 0;
    s->median_s = 0;
    s->work_s = -1;
    s->maxrss_kb = 0;
    if (s->failed || s->skipped || s->n == 0)
        return;
    for (unsigned i = 0; i < s->n; i++) {
        v[i] = s->s[i].wall_s;
        if (s->s[i].work_s >= 0)
            w[nw++] = s->s[i].work_s;
        if (s->s[i].maxrss_kb > s->maxrss_kb)
            s->maxrss_kb = s->s[i].maxrss_kb;
    }
    s->median_s = bench_median(v, s->n);
    if (nw == s->n)
        s->work_s = bench_median(w, nw);
    s->has_costs = 1;
    for (unsigned i = 0; i < s->n; i++)
        s->has_costs &= s->s[i].has_costs;
    if (s->has_costs) {
        double a[MAX_REPEATS], b[MAX_REPEATS], cc[MAX_REPEATS], d[MAX_REPEATS];
        for (unsigned i = 0; i < s->n; i++) {
            a[i] = s->s[i].wait_ms;
            b[i] = s->s[i].worst_ms;
            cc[i] = s->s[i].waits;
            d[i] = s->s[i].writer_busy;
        }
        s->wait_ms = bench_median(a, s->n);
        s->worst_ms = bench_median(b, s->n);
        s->waits = bench_median(cc, s->n);
        s->writer_busy = bench_median(d, s->n);
    }
}

static int usable(const series_t *s)
{
    return !s->failed && !s->skipped && s->n > 0;
}


/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: run_bench [-v] [-r REPEATS] [-n PAIRS] [-b BUILD_ROOT] [-B LIB] [-S MEAN|off] [-H HEAPTRACK|none] [-T TIMEOUT_S]\n"
            "  -v  print the result of every run\n"
            "  -r  runs per configuration, the median wall time is kept (default 3)\n"
            "  -n  malloc/free pairs per bench_malloc run (default %llu)\n"
            "  -b  meson build directory (default: $MEMTRAIL_BUILD_ROOT, else found from\n"
            "      this program's location <build>/tests/bench/run_bench)\n"
            "  -B  a second libmemtrail.so (another build) traced beside the first with\n"
            "      libunwind, as memtrail-B: a change's cost measured side by side\n"
            "  -S  the mean of `sampled`, memtrail with MEMTRAIL_SAMPLE (default 512KiB;\n"
            "      'off' to skip)\n"
            "  -H  heaptrack to compare with (default /usr/bin/heaptrack; 'none' to skip)\n"
            "  -T  seconds before a single run is killed (default %u)\n",
            DEFAULT_PAIRS, DEFAULT_TIMEOUT_S);
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *v)
{
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno || *end || end == s || *v == 0 || *v > max ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
    bench_prog = "run_bench";
    static config_t cfg;
    static series_t ser[2][TR_COUNT];
    live_result_t live[3][MAX_REPEATS];   /* bare, memtrail, sampled */
    unsigned live_ok[3] = {0, 0, 0};
    const char *root = NULL, *ht = NULL;
    unsigned long long v;
    int rc = 0, opt;

    cfg.repeats = 3;
    cfg.pairs = DEFAULT_PAIRS;
    cfg.timeout_s = DEFAULT_TIMEOUT_S;
    const char *mean = "512KiB";
    while ((opt = getopt(argc, argv, "vr:n:b:B:S:H:T:h")) != -1) {
        switch (opt) {
        case 'r':
            if (parse_uint(optarg, MAX_REPEATS, &v) < 0)
                goto bad_usage;
            cfg.repeats = (unsigned)v;
            break;
        case 'n':
            if (parse_uint(optarg, 1ull << 40, &v) < 0)
                goto bad_usage;
            cfg.pairs = v;
            break;
        case 'T':
            if (parse_uint(optarg, 86400, &v) < 0)
                goto bad_usage;
            cfg.timeout_s = (unsigned)v;
            break;
        case 'v':
            cfg.verbose = 1;
            break;
        case 'b':
            root = optarg;
            break;
        case 'S':
            mean = optarg;
            break;
        case 'B':
            if (access(optarg, R_OK) < 0 || !realpath(optarg, cfg.other)) {
                fprintf(stderr, "run_bench: -B %s: %s\n", optarg, strerror(errno));
                return 2;
            }
            break;
        case 'H':
            ht = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            goto bad_usage;
        }
    }
    if (optind != argc)
        goto bad_usage;

    if ((rc = locate(&cfg, root)) < 0)
        goto out;
    if (!ht)
        ht = "/usr/bin/heaptrack";
    if (strcmp(ht, "none") && access(ht, X_OK) == 0)
        snprintf(cfg.heaptrack, sizeof(cfg.heaptrack), "%s", ht);
    if ((rc = make_tmp(&cfg)) < 0) {
        fprintf(stderr, "run_bench: cannot create a directory under /tmp: %s\n", strerror(-rc));
        goto out;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGCHLD, SIG_DFL);   /* an inherited SIG_IGN would reap our children */
    signal(SIGPIPE, SIG_IGN);   /* see bench_stopped() */

    const unsigned long long events = 2 * cfg.pairs;
    printf("memtrail benchmark\n");
    printf("programs: %s\nlibrary:  %s\n", cfg.progdir, cfg.lib);
    printf("cpus online: %ld, runs per configuration: %u (median wall time kept)\n",
           sysconf(_SC_NPROCESSORS_ONLN), cfg.repeats);
    bench_print_load("at start");
    if (strcmp(mean, "off") != 0) {
        snprintf(cfg.sample, sizeof(cfg.sample), "MEMTRAIL_SAMPLE=%s", mean);
        printf("sampled: %s\n", cfg.sample);
    } else {
        ser[0][TR_SAMPLED].skipped = ser[1][TR_SAMPLED].skipped = 1;
    }
    if (cfg.other[0])
        printf("memtrail-B: %s\n", cfg.other);
    else
        ser[0][TR_OTHER].skipped = ser[1][TR_OTHER].skipped = 1;
    if (!cfg.heaptrack[0]) {
        if (strcmp(ht, "none"))
            printf("heaptrack: not installed\n");
        else
            printf("heaptrack: skipped (-H none)\n");
        ser[0][TR_HEAPTRACK].skipped = ser[1][TR_HEAPTRACK].skipped = 1;
    }

    /* Warm-up (page cache, dynamic loader), not timed. */
    {
        sample_t s;
        for (int tr = TR_BARE; tr <= TR_OTHER; tr++)
            if (!ser[0][tr].skipped &&
                ((rc = run_malloc(&cfg, (enum tracer)tr, 1, 100000, &s)) == -EINTR || bench_stopped()))
                goto out;
        rc = 0;
    }

    /* bench_malloc: repeat { threads 1, 2 { each tracer } }, the tracer order
     * rotating from one repetition to the next. */
    printf("\nbench_malloc: %llu malloc/free pairs = %llu events per run, 1 and 2 threads\n",
           cfg.pairs, events);
    for (unsigned r = 0; r < cfg.repeats; r++) {
        for (unsigned ti = 0; ti < 2; ti++) {
            for (unsigned k = 0; k < TR_COUNT; k++) {
                enum tracer tr = (enum tracer)((k + r) % TR_COUNT);
                series_t *s = &ser[ti][tr];
                if (s->skipped || s->failed)
                    continue;
                rc = run_malloc(&cfg, tr, ti + 1, cfg.pairs, &s->s[s->n]);
                if (rc == -EINTR || bench_stopped())
                    goto out;
                if (rc < 0) {
                    s->failed = 1;
                } else {
                    if (cfg.verbose)
                        printf("    %uT %-12s %8.3f s\n", ti + 1, tracer_name[tr],
                               s->s[s->n].wall_s);
                    s->n++;
                }
                rc = 0;
            }
        }
        printf("  round %u/%u done\n", r + 1, cfg.repeats);
    }
    for (unsigned ti = 0; ti < 2; ti++)
        for (unsigned tr = 0; tr < TR_COUNT; tr++)
            summarise(&ser[ti][tr]);

    printf("\n%-7s %-12s %9s %8s %9s %10s %8s %10s %8s %7s\n", "threads", "tracer", "wall_s",
           "x_bare", "ns/event", "+ns/event", "spread%", "maxrss_MiB", "work_s", "work_x");
    for (unsigned ti = 0; ti < 2; ti++) {
        const series_t *bare = &ser[ti][TR_BARE];
        for (unsigned tr = 0; tr < TR_COUNT; tr++) {
            const series_t *s = &ser[ti][tr];
            printf("%-7u %-12s ", ti + 1, tracer_name[tr]);
            if (s->skipped) {
                printf("%9s\n", "-");
                continue;
            }
            if (!usable(s)) {
                printf("%9s\n", "failed");
                continue;
            }
            double lo = s->s[0].wall_s, hi = lo;
            for (unsigned i = 1; i < s->n; i++) {
                lo = s->s[i].wall_s < lo ? s->s[i].wall_s : lo;
                hi = s->s[i].wall_s > hi ? s->s[i].wall_s : hi;
            }
            printf("%9.3f ", s->median_s);
            if (usable(bare))
                printf("%8.2f ", s->median_s / bare->median_s);
            else
                printf("%8s ", "-");
            printf("%9.1f ", s->median_s * 1e9 / (double)events);
            if (usable(bare) && tr != TR_BARE)
                printf("%10.1f ", (s->median_s - bare->median_s) * 1e9 / (double)events);
            else
                printf("%10s ", "-");
            printf("%8.1f %10.1f ", (hi - lo) * 100 / s->median_s, (double)s->maxrss_kb / 1024);
            if (s->work_s >= 0 && bare->work_s > 0)
                printf("%8.3f %7.2f\n", s->work_s, s->work_s / bare->work_s);
            else
                printf("%8s %7s\n", "-", "-");
        }
    }
    printf("(ns/event = median wall / events, events = mallocs + frees = 2 x pairs;\n"
           " +ns/event = added over bare; spread = (max - min) / median of the runs;\n"
           " maxrss = largest process of the run, heaptrack's includes its interpreter;\n"
           " work_s = median of bench_malloc's own timed loop, without the process's\n"
           " start-up and exit (the exit snapshot), work_x its ratio to bare's)\n");

    printf("\nwhere memtrail's time goes (the exit snapshot's COSTS record, medians of the runs):\n");
    printf("%-7s %-12s %10s %10s %10s %9s %12s\n", "threads", "tracer", "wait_ms", "wait_%",
           "waits", "worst_ms", "writer_busy%");
    for (unsigned ti = 0; ti < 2; ti++) {
        for (unsigned tr = 0; tr < TR_COUNT; tr++) {
            const series_t *s = &ser[ti][tr];
            if (!usable(s) || !s->has_costs)
                continue;
            printf("%-7u %-12s %10.1f %10.1f %10.0f %9.2f %12.1f\n", ti + 1, tracer_name[tr],
                   s->wait_ms, s->wait_ms / 10 / s->median_s / (ti + 1), s->waits, s->worst_ms,
                   s->writer_busy * 100);
        }
    }
    printf("(wait_ms: time the program's threads waited on their full rings, summed over\n"
           " threads; wait_%%: the same against the run's wall time times the threads;\n"
           " waits: how many times one waited; worst_ms: the longest wait; writer_busy%%:\n"
           " the writer thread's CPU time against the process's life. A tracer without\n"
           " the record (an older build) is left out.)\n");

    printf("\n2 threads against 1 thread, per event (same total events, threads in parallel):\n");
    printf("%-12s %9s %9s %8s %11s %11s %8s\n", "tracer", "ns/ev_1T", "ns/ev_2T", "2T/1T",
           "+ns/ev_1T", "+ns/ev_2T", "2T/1T");
    for (unsigned tr = 0; tr < TR_COUNT; tr++) {
        const series_t *s1 = &ser[0][tr], *s2 = &ser[1][tr];
        const series_t *b1 = &ser[0][TR_BARE], *b2 = &ser[1][TR_BARE];
        printf("%-12s ", tracer_name[tr]);
        if (!usable(s1) || !usable(s2)) {
            printf("%9s\n", s1->skipped ? "-" : "failed");
            continue;
        }
        double e1 = s1->median_s * 1e9 / (double)events, e2 = s2->median_s * 1e9 / (double)events;
        printf("%9.1f %9.1f %8.2f ", e1, e2, e2 / e1);
        if (tr != TR_BARE && usable(b1) && usable(b2)) {
            double a1 = (s1->median_s - b1->median_s) * 1e9 / (double)events;
            double a2 = (s2->median_s - b2->median_s) * 1e9 / (double)events;
            printf("%11.1f %11.1f %8.2f\n", a1, a2, a2 / a1);
        } else {
            printf("%11s %11s %8s\n", "-", "-", "-");
        }
    }
    printf("(2T/1T < 1: the second thread adds throughput; 0.50 would be perfect scaling)\n");

    /* bench_live: bare and traced, interleaved. */
    printf("\nbench_live: 1,000,000 live blocks of 16..256 B from 100 call stacks\n");
    unsigned nlive = cfg.sample[0] ? 3 : 2;
    for (unsigned r = 0; r < cfg.repeats; r++) {
        for (unsigned k = 0; k < nlive; k++) {
            unsigned traced = (k + r) % nlive;
            rc = run_live(&cfg, (int)traced, &live[traced][live_ok[traced]]);
            if (rc == -EINTR || bench_stopped())
                goto out;
            if (rc == 0 && cfg.verbose) {
                live_result_t *lr = &live[traced][live_ok[traced]];
                printf("    %s rss %ld kB", traced == 2 ? "sampled " : traced ? "memtrail" : "bare    ",
                       lr->rss_kb);
                if (traced)
                    printf(", snapshot %.1f ms, %lld B", lr->snapshot_ms, lr->file_size);
                printf("\n");
            }
            if (rc == 0)
                live_ok[traced]++;
            rc = 0;
        }
    }

    double per_block = -1, snap_ms = -1, size_mib = -1;
    if (live_ok[0] && live_ok[1]) {
        double v0[MAX_REPEATS], v1[MAX_REPEATS], v2[MAX_REPEATS], v3[MAX_REPEATS], v4[MAX_REPEATS];
        for (unsigned i = 0; i < live_ok[0]; i++)
            v0[i] = (double)live[0][i].rss_kb;
        for (unsigned i = 0; i < live_ok[1]; i++) {
            v1[i] = (double)live[1][i].rss_kb;
            v2[i] = live[1][i].snapshot_ms;
            v3[i] = (double)live[1][i].file_size;
            v4[i] = (double)live[1][i].rss_after_kb;
        }
        double rss0 = bench_median(v0, live_ok[0]), rss1 = bench_median(v1, live_ok[1]);
        double rss1_after = bench_median(v4, live_ok[1]);
        double size = bench_median(v3, live_ok[1]);
        snap_ms = bench_median(v2, live_ok[1]);
        per_block = (rss1 - rss0) * 1024 / LIVE_BLOCKS;
        size_mib = size / (1024.0 * 1024.0);
        printf("  %-34s %12.0f kB\n", "VmRSS bare", rss0);
        printf("  %-34s %12.0f kB\n", "VmRSS traced (before snapshot)", rss1);
        printf("  %-34s %12.1f B   (rss_traced - rss_bare) * 1024 / 1e6\n",
               "tracer memory per live block", per_block);
        printf("  %-34s %12.1f B   (VmRSS read after the snapshot)\n",
               "  same, after the snapshot", (rss1_after - rss0) * 1024 / LIVE_BLOCKS);
        printf("  %-34s %12.1f ms  (memtrail_snapshot(\"live-1M\") call)\n",
               "snapshot write time", snap_ms);
        printf("  %-34s %12.0f B   = %.2f MiB, %.1f B per live block\n", "snapshot file size",
               size, size_mib, size / LIVE_BLOCKS);
        if (live_ok[2]) {   /* sampled: the tracer's memory per live block of the program */
            double v5[MAX_REPEATS], v6[MAX_REPEATS], v7[MAX_REPEATS];
            for (unsigned i = 0; i < live_ok[2]; i++) {
                v5[i] = (double)live[2][i].rss_kb;
                v6[i] = live[2][i].snapshot_ms;
                v7[i] = (double)live[2][i].file_size;
            }
            double rss2 = bench_median(v5, live_ok[2]);
            printf("  %-34s %12.0f kB\n", "VmRSS sampled (before snapshot)", rss2);
            printf("  %-34s %12.1f B   (rss_sampled - rss_bare) * 1024 / 1e6\n",
                   "sampled: memory per live block", (rss2 - rss0) * 1024 / LIVE_BLOCKS);
            printf("  %-34s %12.1f ms, %.0f B\n", "sampled: snapshot time and size",
                   bench_median(v6, live_ok[2]), bench_median(v7, live_ok[2]));
        }
    } else {
        printf("  failed (see the messages above)\n");
    }

    bench_print_load("at end");

    /* The one-line summary. */
    printf("\nsummary:");
    for (unsigned ti = 0; ti < 2; ti++) {
        const char *sep = "";
        printf(" %uT:", ti + 1);
        for (unsigned tr = TR_MEMTRAIL; tr < TR_COUNT; tr++) {
            const series_t *s = &ser[ti][tr], *b = &ser[ti][TR_BARE];
            if (s->skipped)
                continue;
            if (usable(s) && usable(b))
                printf("%s %s x%.2f (+%.0f ns/ev)", sep, tracer_name[tr],
                       s->median_s / b->median_s,
                       (s->median_s - b->median_s) * 1e9 / (double)events);
            else
                printf("%s %s failed", sep, tracer_name[tr]);
            sep = ",";
        }
        printf(";");
    }
    if (per_block >= 0)
        printf(" live 1M: %.1f B/block, snapshot %.0f ms, %.1f MiB\n", per_block, snap_ms, size_mib);
    else
        printf(" live 1M: failed\n");
    goto out;

bad_usage:
    usage(stderr);
    return 2;
out:
    bench_remove_tree(cfg.tmpdir);
    fflush(stdout);
    if (bench_stopped()) {
        fprintf(stderr, "run_bench: stopped (bench_interrupted, or stdout closed)\n");
        return 130;
    }
    if (rc < 0) {
        fprintf(stderr, "run_bench: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}
