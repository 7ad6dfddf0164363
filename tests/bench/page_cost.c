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
 *             rows are the 4 KiB ones.
 * Microseconds per (4 KiB) page. Usage: page_cost [PAGES [ROUNDS]] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

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

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    long pages = argc > 1 ? atol(argv[1]) : 1024, rounds = argc > 2 ? atol(argv[2]) : 5;
    if (pages < 1 || pages > (1l << 20) || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: page_cost [PAGES (1..1048576) [ROUNDS (1..%d)]]\n", MAX_ROUNDS);
        return 2;
    }
    double fault[MAX_ROUNDS], pop[MAX_ROUNDS], then[MAX_ROUNDS], one[MAX_ROUNDS], rd[MAX_ROUNDS],
        rdw[MAX_ROUNDS], hpop[MAX_ROUNDS], hthen[MAX_ROUNDS], hfault[MAX_ROUNDS];
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
    }
    int k = (int)rounds;
    printf("page_cost: %ld fresh pages, %ld rounds, median us per page\n", pages, rounds);
    printf("  first write (a fault)                  %7.2f\n", median(fault, k));
    printf("  MADV_POPULATE_WRITE over the range     %7.2f\n", median(pop, k));
    printf("    then the first write                 %7.2f\n", median(then, k));
    printf("  one madvise per page, then the write   %7.2f\n", median(one, k));
    printf("  first read (the zero page)             %7.2f\n", median(rd, k));
    printf("    then the first write                 %7.2f\n", median(rdw, k));
    printf("  huge pages: MADV_POPULATE_WRITE        %7.2f\n", median(hpop, k));
    printf("    then the first write                 %7.2f\n", median(hthen, k));
    printf("  huge pages: first write (a fault)      %7.2f\n", median(hfault, k));
    return 0;
}
