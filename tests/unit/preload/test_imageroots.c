/* Unit tests of the pages the leak scan reads in a module's writable
 * segments (preload/leak/imageroots.c, mtp_scan_written_runs):
 *   - on a pagemap written here: pages present and anonymous, and pages
 *     swapped out, are read; pages still the file's and pages never
 *     touched are not; runs are clipped to the range asked for;
 *   - a pagemap that ends early: the rest of the range is read whole; no
 *     pagemap at all: the whole range;
 *   - the callback's error stops the walk and is returned;
 *   - on this process's own pagemap: an anonymous mapping's written pages
 *     and the page a read mapped (the zero page) are read, the untouched
 *     ones are not; a private file mapping's page that was only read is
 *     the file's and is not read, a written one is. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "leak/leakscan_int.h"

#define PG 4096u
#define E_ANON (1ull << 63)
#define E_FILE ((1ull << 63) | (1ull << 61))
#define E_SWAP (1ull << 62)
#define E_NONE 0ull

typedef struct runs {
    uintptr_t lo[64], hi[64];
    int n, fail_at;
} runs_t;

static int collect(void *arg, uintptr_t lo, uintptr_t hi)
{
    runs_t *r = arg;
    cr_assert_lt(r->n, 64);
    if (r->n == r->fail_at)
        return -ENOMEM;
    r->lo[r->n] = lo;
    r->hi[r->n++] = hi;
    return 0;
}

/* A pagemap file holding entries e[0..n) for pages first.. (sparse before). */
static int fake_pagemap(uintptr_t first, const uint64_t *e, size_t n)
{
    char path[] = "/tmp/mt-pagemap-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(pwrite(fd, e, n * sizeof(*e), (off_t)(first * sizeof(*e))),
                 (ssize_t)(n * sizeof(*e)));
    return fd;
}

static void expect_runs(const runs_t *r, int n, const uintptr_t (*want)[2], const char *what)
{
    cr_expect_eq(r->n, n, "%s: %d runs, want %d", what, r->n, n);
    for (int i = 0; i < n && i < r->n; i++)
        cr_expect(r->lo[i] == want[i][0] && r->hi[i] == want[i][1],
                  "%s: run %d [%#lx, %#lx), want [%#lx, %#lx)", what, i, (unsigned long)r->lo[i],
                  (unsigned long)r->hi[i], (unsigned long)want[i][0], (unsigned long)want[i][1]);
}

Test(imageroots, runs_of_written_pages)
{
    /* pages 256..267 */
    const uint64_t e[] = {E_ANON, E_ANON, E_FILE, E_NONE, E_SWAP, E_ANON,
                          E_FILE, E_FILE, E_ANON, E_NONE, E_ANON, E_ANON};
    const uintptr_t base = 256 * PG;
    int fd = fake_pagemap(256, e, sizeof(e) / sizeof(e[0]));
    runs_t r = {.fail_at = -1};
    /* from inside page 0 to inside page 11 */
    cr_assert_eq(mtp_scan_written_runs(fd, base + 40, base + 11 * PG + 8, collect, &r), 0);
    const uintptr_t want[][2] = {{base + 40, base + 2 * PG},
                                 {base + 4 * PG, base + 6 * PG},
                                 {base + 8 * PG, base + 9 * PG},
                                 {base + 10 * PG, base + 11 * PG + 8}};
    expect_runs(&r, 4, want, "clipped");

    r = (runs_t){.fail_at = -1};   /* one page, not written: nothing */
    cr_assert_eq(mtp_scan_written_runs(fd, base + 2 * PG + 16, base + 2 * PG + 64, collect, &r), 0);
    expect_runs(&r, 0, NULL, "a file page");

    r = (runs_t){.fail_at = 1};   /* the second run fails */
    cr_expect_eq(mtp_scan_written_runs(fd, base, base + 12 * PG, collect, &r), -ENOMEM);
    cr_expect_eq(r.n, 1, "stopped at the failing run");
    close(fd);
}

Test(imageroots, without_a_pagemap_all_is_read)
{
    const uint64_t e[] = {E_ANON, E_NONE, E_ANON};   /* pages 300..302, then the file ends */
    const uintptr_t base = 300 * PG;
    int fd = fake_pagemap(300, e, 3);
    runs_t r = {.fail_at = -1};
    cr_assert_eq(mtp_scan_written_runs(fd, base, base + 6 * PG, collect, &r), 0);
    /* the file ends before the range: the batch read fails, all is read
     * from where it started */
    const uintptr_t whole[][2] = {{base, base + 6 * PG}};
    expect_runs(&r, 1, whole, "pagemap shorter than the range");
    close(fd);

    r = (runs_t){.fail_at = -1};
    cr_assert_eq(mtp_scan_written_runs(-1, base + 8, base + 5 * PG, collect, &r), 0);
    const uintptr_t none[][2] = {{base + 8, base + 5 * PG}};
    expect_runs(&r, 1, none, "no pagemap");
    r = (runs_t){.fail_at = -1};
    cr_assert_eq(mtp_scan_written_runs(-1, base, base, collect, &r), 0);
    cr_expect_eq(r.n, 0, "an empty range");
}

Test(imageroots, this_process_pages)
{
    int pm = open(MTP_PROC_PAGEMAP, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(pm, 0, "cannot open %s", MTP_PROC_PAGEMAP);

    /* anonymous: pages 1 and 2 written, 4 read (the zero page), the rest untouched */
    char *a = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(a, MAP_FAILED);
    a[PG] = 1;
    a[2 * PG + 100] = 2;
    cr_assert_eq(((volatile char *)a)[4 * PG], 0);
    runs_t r = {.fail_at = -1};
    cr_assert_eq(mtp_scan_written_runs(pm, (uintptr_t)a, (uintptr_t)a + 8 * PG, collect, &r), 0);
    const uintptr_t want[][2] = {{(uintptr_t)a + PG, (uintptr_t)a + 3 * PG},
                                 {(uintptr_t)a + 4 * PG, (uintptr_t)a + 5 * PG}};
    expect_runs(&r, 2, want, "anonymous");
    munmap(a, 8 * PG);

    /* a private file mapping: page 0 read (the file's), page 2 written */
    char path[] = "/tmp/mt-imageroots-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    static char page[PG];
    memset(page, 0x5a, sizeof(page));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(write(fd, page, PG), (ssize_t)PG);
    char *f = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    cr_assert_neq(f, MAP_FAILED);
    cr_assert_eq(((volatile char *)f)[0], 0x5a);
    f[2 * PG] = 1;
    r = (runs_t){.fail_at = -1};
    cr_assert_eq(mtp_scan_written_runs(pm, (uintptr_t)f, (uintptr_t)f + 4 * PG, collect, &r), 0);
    const uintptr_t fwant[][2] = {{(uintptr_t)f + 2 * PG, (uintptr_t)f + 3 * PG}};
    expect_runs(&r, 1, fwant, "private file mapping");
    munmap(f, 4 * PG);
    close(fd);
    close(pm);
}
