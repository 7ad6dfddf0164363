/* Helpers shared by the benchmark runners; see benchutil.h. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

extern char **environ;

const char *bench_prog = "bench";
int bench_interrupted;

int bench_stopped(void)
{
    if (ferror(stdout))
        bench_interrupted = 1;
    return bench_interrupted;
}

int bench_path_join(char *dst, size_t len, const char *a, const char *b)
{
    int n = snprintf(dst, len, "%s/%s", a, b);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        fprintf(stderr, "%s: cannot remove %s: %s\n", bench_prog, path, strerror(errno));
    return 0;
}

void bench_remove_tree(const char *path)
{
    if (*path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int dropped(const char *v, const char *const drop[])
{
    for (size_t i = 0; drop[i]; i++)
        if (!strncmp(v, drop[i], strlen(drop[i])))
            return 1;
    return 0;
}

char **bench_make_env(const char *const drop[], char *const extra[])
{
    size_t n = 0, k = 0, x = 0;
    while (environ[n])
        n++;
    while (extra && extra[x])
        x++;
    char **env = calloc(n + x + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!dropped(environ[i], drop))
            env[k++] = environ[i];
    for (size_t i = 0; i < x; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    return env;
}

double bench_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(const double *src, unsigned n)
{
    double v[BENCH_MAX_SAMPLES];
    memcpy(v, src, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_print_load(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "re");
    char buf[128] = "?";
    if (f) {
        if (fgets(buf, sizeof(buf), f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
    printf("load average %s: %s\n", when, buf);
}
