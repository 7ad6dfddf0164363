/* sampled: holds about 154 MB live in 920,000 blocks from 24 sites of block
 * sizes 24 B to 250 KB (tests/programs/sampled.h), for the accuracy of byte
 * sampling (tests/integration/test_sample.c: exact run against sampled
 * ones). Each site is a function of its own that calls the allocator
 * directly: most call malloc; site_08 grows each block by realloc (a
 * quarter, a half, then its size), site_13 calls calloc, site_18
 * posix_memalign. Every third block a site also allocates one temporary of
 * the same size and frees it at once, so frees of sampled and unsampled
 * blocks alike go through the tracer. The pointers are kept in mmap'd
 * arrays (not traced). Writes "done\n" and exits with everything live. */
#include <stdlib.h>
#include <sys/mman.h>

#include "progio.h"
#include "sampled.h"

#define NOINLINE __attribute__((noinline))
#define SITE(n, call)                           \
    static NOINLINE void *site_##n(size_t s)    \
    {                                           \
        call;                                   \
    }

SITE(00, return malloc(s))
SITE(01, return malloc(s))
SITE(02, return malloc(s))
SITE(03, return malloc(s))
SITE(04, return malloc(s))
SITE(05, return malloc(s))
SITE(06, return malloc(s))
SITE(07, return malloc(s))
SITE(08, void *p = malloc(s / 4); void *q = p ? realloc(p, s / 2) : NULL;
         if (!q) return NULL; p = realloc(q, s); if (!p) free(q); return p)
SITE(09, return malloc(s))
SITE(10, return malloc(s))
SITE(11, return malloc(s))
SITE(12, return malloc(s))
SITE(13, return calloc(1, s))
SITE(14, return malloc(s))
SITE(15, return malloc(s))
SITE(16, return malloc(s))
SITE(17, return malloc(s))
SITE(18, void *p; return posix_memalign(&p, 64, s) ? NULL : p)
SITE(19, return malloc(s))
SITE(20, return malloc(s))
SITE(21, return malloc(s))
SITE(22, return malloc(s))
SITE(23, return malloc(s))

static void *(*const sites[SAMPLED_NSITES])(size_t) = {
    site_00, site_01, site_02, site_03, site_04, site_05, site_06, site_07,
    site_08, site_09, site_10, site_11, site_12, site_13, site_14, site_15,
    site_16, site_17, site_18, site_19, site_20, site_21, site_22, site_23,
};

int main(void)
{
    for (int i = 0; i < SAMPLED_NSITES; i++) {
        size_t n = sampled_blocks(i), s = SAMPLED_SIZE[i];
        void **keep = mmap(NULL, n * sizeof(*keep), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (keep == MAP_FAILED)
            prog_die("sampled", "mmap failed");
        for (size_t k = 0; k < n; k++) {
            if (!(keep[k] = sites[i](s)))
                prog_die("sampled", "out of memory");
            *(char *)keep[k] = 1;
            if (k % 3 == 0)
                free(sites[i](s));
        }
    }
    prog_put(1, "done\n");
    return 0;
}
