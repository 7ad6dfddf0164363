/* inl: allocation helpers inlined into their callers, built with -O2
 * (tests/meson.build); run under memtrail by tests/integration/test_inline.c.
 *
 * make_raw (the malloc) is always inlined into make_buf, and make_buf into
 * fill: the return address of fill's malloc call is one address holding
 * three functions. fill_direct inlines make_raw only (one level). Each
 * SITE marker names the line of its frame in a stack:
 *   make_raw     the malloc call            (inlined)
 *   make_buf     make_raw's call in it      (inlined)
 *   fill         make_buf's call in it      (a real frame)
 *   fill_direct  make_raw's call in it      (a real frame)
 *   main_fill, main_direct: main's calls.
 * Expected exit snapshot (live bytes / blocks, exactly, nothing else):
 *   fill -> make_buf -> make_raw   3 x malloc(100 + 16) = 348 / 3
 *   fill_direct -> make_raw        malloc(40)           =  40 / 1
 * Exit status 0; no stdio (nothing else is allocated).
 */
#include <stddef.h>
#include <stdlib.h>

#include "progio.h"

#define NOINLINE __attribute__((noipa))   /* not inlined, cloned nor specialized */
#define INLINE static inline __attribute__((always_inline))

static void *g_kept[3];
static void *g_direct;

INLINE void *make_raw(size_t n)
{
    char *p = malloc(n); /* SITE:make_raw */
    if (p == NULL)
        prog_die("inl", "malloc failed");
    p[0] = 1;             /* (not memset: -O2 would make malloc + memset a calloc) */
    return p;
}

INLINE void *make_buf(size_t n)
{
    char *p = make_raw(n + 16); /* SITE:make_buf */
    p[1] = 2;
    return p;
}

static NOINLINE void fill(int i)
{
    g_kept[i] = make_buf(100); /* SITE:fill */
}

static NOINLINE void fill_direct(void)
{
    g_direct = make_raw(40); /* SITE:fill_direct */
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        fill(i); /* SITE:main_fill */
    fill_direct(); /* SITE:main_direct */
    return 0;
}
