/* leaky: one allocating site per function, each leaving exactly known live
 * figures at exit; run under memtrail by tests/integration/test_native.c.
 *
 * Expected exit snapshot, by innermost user frame (live bytes / live blocks):
 *   leak_dropped        300 / 3    3 x malloc(100), pointers dropped
 *   keep_global        2000 / 2    2 x malloc(1000), kept in g_kept[]
 *   drop_list           480 / 10   10-node list of 48-byte nodes, head dropped
 *   grow_chain         4096 / 1    realloc(p, 16 -> 32 -> ... -> 4096): 9 calls
 *                                  from ONE call site, the first with p == NULL
 *   use_calloc          240 / 1    calloc(10, 24)
 *   use_posix_memalign  200 / 1    posix_memalign(&p, 64, 200)
 *   use_aligned_alloc   512 / 1    aligned_alloc(256, 512)
 *   use_memalign        300 / 1    memalign(128, 300)
 *   use_valloc          100 / 1    valloc(100)
 *   use_pvalloc         100 / 1    pvalloc(100): the tracer records the
 *                                  REQUESTED size, not the rounded page
 *   use_reallocarray     77 / 1    reallocarray(NULL, 7, 11)
 *   temporaries           0 / 0    1000 x (malloc(64); free): allocated at the
 *                                  site in total: 64000 bytes / 1000 blocks
 * Totals over these sites: 8405 bytes / 23 blocks live.
 * The program allocates nothing else (no stdio), so the process totals are
 * exact too. A realloc that returns a block counts as one allocation of the
 * new size and, when it had an old block, one free, done atomically:
 *   allocated 76,485 bytes / 1,031 blocks (grow_chain: 8,176 / 9), freed
 *   1,008 blocks, peak 8,469 bytes / 24 blocks (all the kept blocks + one
 *   temporary).
 * Every aligned result is checked for its alignment (exit 3 if wrong).
 * Exit status 0. The line marked SITE:leak_dropped is looked up by the test
 * to check the file/line of the frame.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

struct node {
    struct node *next;
    char payload[40];
};
_Static_assert(sizeof(struct node) == 48, "node is 48 bytes");

static void *g_kept[2];
static void *g_chain;
static void *g_single[7];

static void check_aligned(const void *p, uintptr_t alignment)
{
    if (p == NULL)
        prog_die("leaky", "allocation failed");
    if ((uintptr_t)p % alignment != 0) {
        prog_put(2, "leaky: misaligned block\n");
        exit(3);
    }
}

static NOINLINE void leak_dropped(void)
{
    for (int i = 0; i < 3; i++) {
        char *volatile p = malloc(100); /* SITE:leak_dropped */
        if (p == NULL)
            prog_die("leaky", "malloc failed");
        p[0] = (char)i;
    }
}

static NOINLINE void keep_global(void)
{
    for (int i = 0; i < 2; i++) {
        g_kept[i] = malloc(1000);
        check_aligned(g_kept[i], 16);
    }
}

static NOINLINE void drop_list(void)
{
    struct node *volatile head = NULL;
    for (int i = 0; i < 10; i++) {
        struct node *n = malloc(sizeof(*n));
        if (n == NULL)
            prog_die("leaky", "malloc failed");
        n->next = head;
        n->payload[0] = (char)i;
        head = n;
    }
}

static NOINLINE void grow_chain(void)
{
    char *p = NULL;
    for (size_t size = 16; size <= 4096; size *= 2) {
        char *q = realloc(p, size);
        if (q == NULL)
            prog_die("leaky", "realloc failed");
        q[size - 1] = 'x';
        p = q;
    }
    g_chain = p;
}

static NOINLINE void use_calloc(void)
{
    unsigned char *p = calloc(10, 24);
    check_aligned(p, 16);
    for (int i = 0; i < 240; i++)
        if (p[i] != 0)
            prog_die("leaky", "calloc memory is not zeroed");
    g_single[0] = p;
}

static NOINLINE void use_posix_memalign(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 200) != 0)
        prog_die("leaky", "posix_memalign failed");
    check_aligned(p, 64);
    g_single[1] = p;
}

static NOINLINE void use_aligned_alloc(void)
{
    void *p = aligned_alloc(256, 512);
    check_aligned(p, 256);
    g_single[2] = p;
}

static NOINLINE void use_memalign(void)
{
    void *p = memalign(128, 300);
    check_aligned(p, 128);
    g_single[3] = p;
}

static NOINLINE void use_valloc(void)
{
    void *p = valloc(100);
    check_aligned(p, (uintptr_t)sysconf(_SC_PAGESIZE));
    g_single[4] = p;
}

static NOINLINE void use_pvalloc(void)
{
    void *p = pvalloc(100);
    check_aligned(p, (uintptr_t)sysconf(_SC_PAGESIZE));
    g_single[5] = p;
}

static NOINLINE void use_reallocarray(void)
{
    void *p = reallocarray(NULL, 7, 11);
    check_aligned(p, 16);
    g_single[6] = p;
}

static NOINLINE void temporaries(void)
{
    for (int i = 0; i < 1000; i++) {
        char *volatile p = malloc(64);
        if (p == NULL)
            prog_die("leaky", "malloc failed");
        p[63] = (char)i;
        free(p);
    }
}

int main(void)
{
    leak_dropped();
    keep_global();
    drop_list();
    grow_chain();
    use_calloc();
    use_posix_memalign();
    use_aligned_alloc();
    use_memalign();
    use_valloc();
    use_pvalloc();
    use_reallocarray();
    temporaries();
    return 0;
}
