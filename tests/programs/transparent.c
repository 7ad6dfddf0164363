/* transparent: the tracer must not change what the allocation functions do:
 * results, errno on success (preserved) and on failure (ENOMEM / EINVAL).
 *
 * Sets errno = 1234 before every call and checks it afterwards. Prints one
 * line per check on stdout, "ok <check>" or "FAIL <check>" (write(2); no
 * stdio); exit status 0 if every check passed, 1 otherwise. The test runs it
 * bare and traced and expects the same stdout and status. The first check:
 * dlerror() has nothing to say at the start of main (the tracer's start
 * leaves no error string of its own). Expected: 52 checks,
 * all "ok", status 0 (glibc 2.36 semantics: malloc(0) gives a unique
 * pointer, realloc(p, 0) frees p and returns NULL).
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progio.h"

#define MAGIC_ERRNO 1234

static int g_failed;
static unsigned g_checks;
/* Sizes that cannot be allocated; volatile so the compiler cannot see them. */
static volatile size_t g_huge = SIZE_MAX;
static volatile size_t g_half = SIZE_MAX / 2 + 1;
/* Failing reallocs are called through these so that gcc's -Wuse-after-free
 * does not flag the (valid) use of the block they leave untouched. */
static void *(*volatile g_realloc)(void *, size_t) = realloc;
static void *(*volatile g_reallocarray)(void *, size_t, size_t) = reallocarray;

static void check(const char *what, int ok)
{
    prog_put(1, ok ? "ok " : "FAIL ");
    prog_put(1, what);
    prog_put(1, "\n");
    g_checks++;
    if (!ok)
        g_failed = 1;
}

static int aligned(const void *p, uintptr_t alignment)
{
    return p != NULL && (uintptr_t)p % alignment == 0;
}

static int filled(const unsigned char *p, size_t n, unsigned char c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != c)
            return 0;
    return 1;
}

/* free() and check that errno survived it. */
static void checked_free(const char *what, void *p)
{
    errno = MAGIC_ERRNO;
    free(p);
    check(what, errno == MAGIC_ERRNO);
}

static void successes(void)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

    errno = MAGIC_ERRNO;
    unsigned char *m = malloc(100);
    check("malloc(100) succeeds and keeps errno", m != NULL && errno == MAGIC_ERRNO);
    if (m == NULL)
        return;
    memset(m, 0xab, 100);
    errno = MAGIC_ERRNO;
    size_t usable = malloc_usable_size(m);
    check("malloc_usable_size >= 100 and keeps errno", usable >= 100 && errno == MAGIC_ERRNO);

    errno = MAGIC_ERRNO;
    void *zero = malloc(0);
    check("malloc(0) returns a pointer and keeps errno", zero != NULL && errno == MAGIC_ERRNO);
    checked_free("free(malloc(0)) keeps errno", zero);

    errno = MAGIC_ERRNO;
    unsigned char *c = calloc(10, 10);
    check("calloc(10, 10) succeeds and keeps errno", c != NULL && errno == MAGIC_ERRNO);
    check("calloc memory is zeroed", c != NULL && filled(c, 100, 0));
    checked_free("free(calloc) keeps errno", c);

    errno = MAGIC_ERRNO;
    unsigned char *r = realloc(NULL, 50);
    check("realloc(NULL, 50) succeeds and keeps errno", r != NULL && errno == MAGIC_ERRNO);
    if (r == NULL)
        return;
    memset(r, 0x5a, 50);
    errno = MAGIC_ERRNO;
    unsigned char *r2 = realloc(r, 5000);
    check("realloc grow succeeds and keeps errno", r2 != NULL && errno == MAGIC_ERRNO);
    check("realloc grow keeps the contents", r2 != NULL && filled(r2, 50, 0x5a));
    if (r2 == NULL)
        return;
    errno = MAGIC_ERRNO;
    unsigned char *r3 = realloc(r2, 10);
    check("realloc shrink succeeds and keeps errno", r3 != NULL && errno == MAGIC_ERRNO);
    check("realloc shrink keeps the contents", r3 != NULL && filled(r3, 10, 0x5a));
    if (r3 == NULL)
        return;
    errno = MAGIC_ERRNO;
    unsigned char *r4 = reallocarray(r3, 20, 30);
    check("reallocarray(p, 20, 30) succeeds and keeps errno", r4 != NULL && errno == MAGIC_ERRNO);
    check("reallocarray keeps the contents", r4 != NULL && filled(r4, 10, 0x5a));
    if (r4 == NULL)
        return;
    errno = MAGIC_ERRNO;
    void *r5 = realloc(r4, 0);
    check("realloc(p, 0) frees and returns NULL, keeps errno", r5 == NULL && errno == MAGIC_ERRNO);

    void *pm = NULL;
    errno = MAGIC_ERRNO;
    int rc = posix_memalign(&pm, 64, 100);
    check("posix_memalign(64, 100) returns 0 and keeps errno", rc == 0 && errno == MAGIC_ERRNO);
    check("posix_memalign result is 64-aligned", rc == 0 && aligned(pm, 64));
    if (rc == 0)
        checked_free("free(posix_memalign) keeps errno", pm);

    errno = MAGIC_ERRNO;
    void *aa = aligned_alloc(128, 256);
    check("aligned_alloc(128, 256) succeeds and keeps errno", aa != NULL && errno == MAGIC_ERRNO);
    check("aligned_alloc result is 128-aligned", aligned(aa, 128));
    checked_free("free(aligned_alloc) keeps errno", aa);

    errno = MAGIC_ERRNO;
    void *ma = memalign(32, 50);
    check("memalign(32, 50) succeeds and keeps errno", ma != NULL && errno == MAGIC_ERRNO);
    check("memalign result is 32-aligned", aligned(ma, 32));
    checked_free("free(memalign) keeps errno", ma);

    errno = MAGIC_ERRNO;
    void *va = valloc(10);
    check("valloc(10) succeeds and keeps errno", va != NULL && errno == MAGIC_ERRNO);
    check("valloc result is page-aligned", aligned(va, page));
    checked_free("free(valloc) keeps errno", va);

    errno = MAGIC_ERRNO;
    void *pv = pvalloc(10);
    check("pvalloc(10) succeeds and keeps errno", pv != NULL && errno == MAGIC_ERRNO);
    check("pvalloc result is page-aligned", aligned(pv, page));
    check("pvalloc usable size is at least a page", pv != NULL && malloc_usable_size(pv) >= page);
    checked_free("free(pvalloc) keeps errno", pv);

    check("malloc block intact after the other calls", filled(m, 100, 0xab));
    checked_free("free(malloc) keeps errno", m);
    checked_free("free(NULL) keeps errno", NULL);
}

static void failures(void)
{
    errno = MAGIC_ERRNO;
    void *p = malloc(g_huge);
    check("malloc(SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);

    errno = MAGIC_ERRNO;
    p = calloc(g_half, 2);
    check("calloc overflow fails with ENOMEM", p == NULL && errno == ENOMEM);

    errno = MAGIC_ERRNO;
    p = memalign(64, g_huge);
    check("memalign(64, SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);

    errno = MAGIC_ERRNO;
    p = aligned_alloc(64, g_huge);
    check("aligned_alloc(64, SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);

    errno = MAGIC_ERRNO;
    p = valloc(g_huge);
    check("valloc(SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);

    errno = MAGIC_ERRNO;
    p = pvalloc(g_huge);
    check("pvalloc(SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);

    unsigned char *keep = malloc(64);
    check("malloc(64) succeeds", keep != NULL);
    if (keep == NULL)
        return;
    memset(keep, 0x77, 64);
    errno = MAGIC_ERRNO;
    p = g_realloc(keep, g_huge);
    check("realloc(p, SIZE_MAX) fails with ENOMEM", p == NULL && errno == ENOMEM);
    check("failed realloc keeps the block", filled(keep, 64, 0x77));

    errno = MAGIC_ERRNO;
    p = g_reallocarray(keep, g_half, 2);
    check("reallocarray overflow fails with ENOMEM", p == NULL && errno == ENOMEM);
    check("failed reallocarray keeps the block", filled(keep, 64, 0x77));

    void *sentinel = &g_checks;
    void *out = sentinel;
    errno = MAGIC_ERRNO;
    int rc = posix_memalign(&out, 3, 100);
    check("posix_memalign(3, 100) returns EINVAL", rc == EINVAL);
    check("posix_memalign EINVAL keeps errno", errno == MAGIC_ERRNO);
    check("posix_memalign EINVAL leaves the pointer", out == sentinel);

    out = sentinel;
    rc = posix_memalign(&out, 64, g_huge);
    check("posix_memalign(64, SIZE_MAX) returns ENOMEM", rc == ENOMEM);
    check("posix_memalign ENOMEM leaves the pointer", out == sentinel);

    checked_free("free after failures keeps errno", keep);
}

int main(void)
{
    check("dlerror_at_start", dlerror() == NULL);
    successes();
    failures();
    prog_put(1, "checks ");
    prog_put_u(1, g_checks);
    prog_put(1, "\n");
    return g_failed ? 1 : 0;
}
