/* page_cost: what a first touch of anonymous memory costs on this machine,
 * the figure behind memtrail's filling of its own pages ahead of use
 * (base/util.c: mtp_populate; docs/design.md, "memtrail's own pages").
 *
 * For PAGES fresh pages (default 1024), ROUNDS times (default 5), medians:
 *   fault     the first write to each page (a page fault each);
 *   populate  one madvise(MADV_POPULATE_WRITE) over the range...
 *   then      ...and the first write to each page after it;
 *   one       one madvise call per page (as for the CFI table's pages), then
 *             the first write;
 *   read      the first read of each page (the zero page), then its first
 *             write (a second fault);
 *   huge      the same range advised MADV_HUGEPAGE (transparent huge pages,
 *             as memtrail's big exit-path arrays are: "memtrail's own
 *             pages"): populated then written, and written alone (a fault
 *             per 2 MiB). Where THP is off the advice does nothing and these
 *             rows are the 4 KiB ones;
 *   cow       the first write to each page of a range written before a fork,
 *             in the parent while the child (asleep) still shares it: a
 *             copy-on-write fault each, what every page memtrail writes
 *             after a fork costs (docs/design.md, "fork and exec").
 * Microseconds per (4 KiB) page; and
 *   munmap    microseconds per call: unmapping a 64 KiB mapping with one
 *             page written, a second thread alive (as the writer is), what
 *             each of the leak scan's scratch arrays cost at exit before
 *             they were left to it (base/util.h, mtp_unmap);
 *   tables    microseconds a fork, the child's _exit and the wait take, and
 *             what each page-table page more adds to that: FORK_GIB pages
 *             written one a GiB in a reservation (a page-table page and a
 *             page-middle-directory page each), as memtrail's reservations
 *             are touched at their starts: what every fork of a traced
 *             process, its child's exec or exit, pays for them.
 * Usage: page_cost [PAGES [ROUNDS]] */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define POPULATE_WRITE 23   /* MADV_POPULATE_WRITE, Linux 5.14 */
#define PAGE 4096ul
#define MAX_ROUNDS 101

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static volatile char sink;

static char *fresh(size_t pages)
{
    char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "page_cost: mmap: %s\n", strerror(errno));
        exit(2);
    }
    return p;
}

static void touch(char *p, size_t pages)
{
    for (size_t i = 0; i < pages; i++)
        p[i * PAGE] = 1;
}

/* The first write to each of n pages written before a fork, in the parent
 * while its child still shares them: microseconds per page. */
static double cow_write(size_t n)
{
    char *g = fresh(n);
    int gate[2];
    touch(g, n);
    if (pipe(gate) < 0) {
        fprintf(stderr, "page_cost: pipe: %s\n", strerror(errno));
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "page_cost: fork: %s\n", strerror(errno));
        exit(2);
    }
    if (pid == 0) {   /* holds the pages shared until the parent is done */
        char c;
        close(gate[1]);
        while (read(gate[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(gate[0]);
    double t0 = now_us();
    for (size_t i = 0; i < n; i++)
        g[i * PAGE] = 2;
    double t1 = now_us();
    close(gate[1]);
    waitpid(pid, NULL, 0);
    munmap(g, n * PAGE);
    return (t1 - t0) / (double)n;
}

static int sleeper_gate[2];

static void *sleeper(void *arg)
{
    char c;
    (void)arg;
    while (read(sleeper_gate[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* munmap of `calls` 64 KiB mappings with a page written each, a second
 * thread alive: microseconds per call. */
static double unmap_calls(size_t calls)
{
    char **m = malloc(calls * sizeof(*m));
    pthread_t th;
    if (!m || pipe(sleeper_gate) < 0 || pthread_create(&th, NULL, sleeper, NULL) != 0) {
        fprintf(stderr, "page_cost: cannot set up the munmap row\n");
        exit(2);
    }
    for (size_t i = 0; i < calls; i++) {
        m[i] = fresh(16);
        m[i][0] = 1;
    }
    double t0 = now_us();
    for (size_t i = 0; i < calls; i++)
        munmap(m[i], 16 * PAGE);
    double t1 = now_us();
    close(sleeper_gate[1]);
    pthread_join(th, NULL);
    close(sleeper_gate[0]);
    free(m);
    return (t1 - t0) / (double)calls;
}

#define FORK_GIB 16
#define FORKS 100

/* Microseconds a fork, its child's _exit and the wait take, FORKS times. */
static double fork_cycles(void)
{
    double t0 = now_us();
    for (int i = 0; i < FORKS; i++) {
        pid_t c = fork();
        if (c == 0)
            _exit(0);
        if (c < 0 || waitpid(c, NULL, 0) != c)
            return -1;
    }
    return (now_us() - t0) / FORKS;
}

/* The same with FORK_GIB GiB reserved and a page written in each GiB:
 * (with - without) / (2 * FORK_GIB) per page-table page. */
static int fork_tables(double *base, double *per_page)
{
    size_t len = (size_t)FORK_GIB << 30;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    *base = fork_cycles();
    for (size_t g = 0; g < FORK_GIB; g++)
        p[g << 30] = 1;
    double with = fork_cycles();
    munmap(p, len);
    if (*base < 0 || with < 0)
        return -1;
    *per_page = (with - *base) / (2.0 * FORK_GIB);
    return 0;
}


int main(int argc, char **argv)
{
    long pages = argc > 1 ? atol(argv[1]) : 1024, rounds = argc > 2 ? atol(argv[2]) : 5;
    if (pages < 1 || pages > (1l << 20) || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: page_cost [PAGES (1..1048576) [ROUNDS (1..%d)]]\n", MAX_ROUNDS);
        return 2;
    }
    double fault[MAX_ROUNDS], pop[MAX_ROUNDS], then[MAX_ROUNDS], one[MAX_ROUNDS], rd[MAX_ROUNDS],
        rdw[MAX_ROUNDS], hpop[MAX_ROUNDS], hthen[MAX_ROUNDS], hfault[MAX_ROUNDS], cow[MAX_ROUNDS],
        unmap[MAX_ROUNDS];
    size_t n = (size_t)pages;
    for (long r = 0; r < rounds; r++) {
        char *a = fresh(n), *b = fresh(n), *c = fresh(n), *d = fresh(n);
        double t0 = now_us();
        touch(a, n);
        double t1 = now_us();
        if (madvise(b, n * PAGE, POPULATE_WRITE) < 0) {
            fprintf(stderr, "page_cost: MADV_POPULATE_WRITE: %s (Linux 5.14 or later)\n",
                    strerror(errno));
            return 1;
        }
        double t2 = now_us();
        touch(b, n);
        double t3 = now_us();
        for (size_t i = 0; i < n; i++) {
            madvise(c + i * PAGE, PAGE, POPULATE_WRITE);
            c[i * PAGE] = 1;
        }
        double t4 = now_us();
        for (size_t i = 0; i < n; i++)
            sink = d[i * PAGE];
        double t5 = now_us();
        touch(d, n);
        double t6 = now_us();
        char *e = fresh(n), *f = fresh(n);
        madvise(e, n * PAGE, MADV_HUGEPAGE);
        madvise(f, n * PAGE, MADV_HUGEPAGE);
        double t7 = now_us();
        madvise(e, n * PAGE, POPULATE_WRITE);
        double t8 = now_us();
        touch(e, n);
        double t9 = now_us();
        touch(f, n);
        double t10 = now_us();
        hpop[r] = (t8 - t7) / (double)n;
        hthen[r] = (t9 - t8) / (double)n;
        hfault[r] = (t10 - t9) / (double)n;
        munmap(e, n * PAGE);
        munmap(f, n * PAGE);
        fault[r] = (t1 - t0) / (double)n;
        pop[r] = (t2 - t1) / (double)n;
        then[r] = (t3 - t2) / (double)n;
        one[r] = (t4 - t3) / (double)n;
        rd[r] = (t5 - t4) / (double)n;
        rdw[r] = (t6 - t5) / (double)n;
        munmap(a, n * PAGE);
        munmap(b, n * PAGE);
        munmap(c, n * PAGE);
        munmap(d, n * PAGE);
        cow[r] = cow_write(n);
    }
    double fbase[MAX_ROUNDS], fpage[MAX_ROUNDS];
    for (long r = 0; r < rounds; r++)
        if (fork_tables(&fbase[r], &fpage[r]) < 0) {
            fprintf(stderr, "page_cost: fork: %s\n", strerror(errno));
            return 1;
        }
    for (long r = 0; r < rounds; r++)   /* last: from here on there are two threads */
        unmap[r] = unmap_calls(n);
    int k = (int)rounds;
    printf("page_cost: %ld fresh pages, %ld rounds, median us per page\n", pages, rounds);
    printf("  first write (a fault)                  %7.2f\n", bench_median_sort(fault, (unsigned)k));
    printf("  MADV_POPULATE_WRITE over the range     %7.2f\n", bench_median_sort(pop, (unsigned)k));
    printf("    then the first write                 %7.2f\n", bench_median_sort(then, (unsigned)k));
    printf("  one madvise per page, then the write   %7.2f\n", bench_median_sort(one, (unsigned)k));
    printf("  first read (the zero page)             %7.2f\n", bench_median_sort(rd, (unsigned)k));
    printf("    then the first write                 %7.2f\n", bench_median_sort(rdw, (unsigned)k));
    printf("  huge pages: MADV_POPULATE_WRITE        %7.2f\n", bench_median_sort(hpop, (unsigned)k));
    printf("    then the first write                 %7.2f\n", bench_median_sort(hthen, (unsigned)k));
    printf("  huge pages: first write (a fault)      %7.2f\n", bench_median_sort(hfault, (unsigned)k));
    printf("  write after a fork (copy-on-write)     %7.2f\n", bench_median_sort(cow, (unsigned)k));
    printf("munmap of 64 KiB, a page written, 2 threads: %.2f us per call\n", bench_median_sort(unmap, (unsigned)k));
    printf("fork, the child's _exit, the wait: %.1f us; each page-table page more: %.2f us\n",
           bench_median_sort(fbase, (unsigned)k), bench_median_sort(fpage, (unsigned)k));
    return 0;
}
