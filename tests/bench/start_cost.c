/*
 * start_cost: what a traced process's start and exit read of the process,
 * each way, as a new process pays it (issue 12, point 4: a shell's commands).
 *
 * Each reading is timed in ROUNDS fresh processes (forked from this one,
 * which has not made the reading: the child's first call pays for the pages
 * of libc and of the files it reads for the first time, as a new traced
 * process does), first call and the mean of the next 100; printed as
 * medians over the rounds, in microseconds (the first row, a call that
 * reads nothing, is the floor the others' first calls stand on):
 *   thread count: read /proc/self/stat (mtp_proc_stat), or one stat(2) of
 *                 /proc/self/task (mtp_proc_threads);
 *   pthread_create's size: dladdr1, or the GNU hash lookup (mtp_symbol_size);
 *   the initial stack's mapping: read /proc/self/maps (mtp_maps_find), or
 *                 the end from AT_EXECFN (base/thread.c);
 *   the resident size: read /proc/self/statm.
 * Usage: start_cost [ROUNDS (1..99, default 41)]
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "benchutil.h"

#define MAX_ROUNDS BENCH_MAX_SAMPLES
#define AFTER 100

extern void *__libc_stack_end;
static volatile uintptr_t sink;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void nothing(void)
{
    sink++;
}

static void stat_file(void)
{
    char state;
    long threads = 0;
    mtp_proc_stat("/proc/self/stat", &state, &threads);
    sink += (uintptr_t)threads;
}

static void task_links(void)
{
    sink += (uintptr_t)mtp_proc_threads();
}

static void by_dladdr1(void)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1((void *)(uintptr_t)&pthread_create, &info, (void **)&sym, RTLD_DL_SYMENT) && sym)
        sink += sym->st_size;
}

static void by_hash(void)
{
    sink += mtp_symbol_size((const void *)(uintptr_t)&pthread_create, "pthread_create");
}

static void maps_read(void)
{
    char buf[2048];
    uintptr_t lo, hi, prev;
    if (mtp_maps_find((uintptr_t)__libc_stack_end, buf, sizeof(buf), &lo, &hi, &prev))
        sink += hi;
}

static void execfn_end(void)
{
    const char *fn = (const char *)getauxval(AT_EXECFN);
    if (fn)
        sink += (uintptr_t)fn + strlen(fn) + 1 + sizeof(void *);
}

static void statm_read(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    sink += (uintptr_t)n;
}

static const struct {
    const char *what;
    void (*fn)(void);
} readings[] = {
    {"nothing (the floor: a child's first writes)", nothing},
    {"threads: read /proc/self/stat", stat_file},
    {"threads: stat /proc/self/task", task_links},
    {"pthread_create's size: dladdr1", by_dladdr1},
    {"pthread_create's size: GNU hash", by_hash},
    {"stack mapping: read /proc/self/maps", maps_read},
    {"stack mapping: AT_EXECFN", execfn_end},
    {"resident size: read /proc/self/statm", statm_read},
};
#define NREADINGS (sizeof(readings) / sizeof(readings[0]))

/* In a new child: the first call and the mean of the next AFTER. */
static int time_in_child(void (*fn)(void), double out[2])
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t c = fork();
    if (c < 0)
        return -1;
    if (c == 0) {
        double r[2], t0 = now_us();
        fn();
        r[0] = now_us() - t0;
        t0 = now_us();
        for (int i = 0; i < AFTER; i++)
            fn();
        r[1] = (now_us() - t0) / AFTER;
        _exit(write(p[1], r, sizeof(r)) == sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    ssize_t n = read(p[0], out, 2 * sizeof(double));
    close(p[0]);
    int status;
    waitpid(c, &status, 0);
    return n == 2 * sizeof(double) && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 41;
    if (argc > 2 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: start_cost [ROUNDS (1..%d)]\n", MAX_ROUNDS);
        return 2;
    }
    static double first[NREADINGS][MAX_ROUNDS], after[NREADINGS][MAX_ROUNDS];
    for (long r = 0; r < rounds; r++)   /* the readings interleaved: drift spread over all */
        for (size_t k = 0; k < NREADINGS; k++) {
            double t[2];
            if (time_in_child(readings[k].fn, t) < 0) {
                fprintf(stderr, "start_cost: %s: the child failed\n", readings[k].what);
                return 1;
            }
            first[k][r] = t[0];
            after[k][r] = t[1];
        }
    printf("start_cost: %ld fresh processes each, median us\n%-46s %10s %10s\n", rounds,
           "reading", "first", "after");
    for (size_t k = 0; k < NREADINGS; k++)
        printf("%-46s %10.2f %10.2f\n", readings[k].what, bench_median(first[k], (unsigned)rounds),
               bench_median(after[k], (unsigned)rounds));
    return 0;
}
