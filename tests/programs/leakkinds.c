/* leakkinds: a known mix of memcheck's leak kinds, one allocating function per
 * site; tests/integration/test_leaks.c compares `memtrail leaks` and valgrind.
 *
 * Expected leak classification at exit, by allocating function (innermost
 * user frame), as memcheck --leak-check=full reports it:
 *   lose_small       definite   48 / 3    3 x malloc(16), pointers dropped
 *   lose_tree        definite   64 / 1    malloc(64) holding the only pointers
 *   tree_leaf        indirect   64 / 2      to 2 x malloc(32), all dropped
 *   lose_cycle       definite   48 / 1    2 x malloc(48) pointing to each
 *                   +indirect   48 / 1      other, both dropped: memcheck calls
 *                                           the lower address definite and the
 *                                           other indirect (same size: the
 *                                           totals do not depend on which)
 *   keep_interior    possible   96 / 1    malloc(96), zeroed; the only pointer
 *                                           (g_interior) points 40 bytes in,
 *                                           which matches none of memcheck's
 *                                           heuristics (length64 and newarray
 *                                           need offset 8, stdstring 24,
 *                                           multipleinheritance vtable pointers)
 *   keep_global      reachable 256 / 1    malloc(256) in g_kept
 *   keep_list        reachable  32 / 1    list head malloc(32) in g_list ...
 *   list_node        reachable 144 / 3      ... and its 3 nodes malloc(48)
 * Totals: definite 160 / 5, indirect 112 / 3, possible 96 / 1,
 *         reachable 432 / 5 (nothing is left to libc: no stdio).
 * Every size is a multiple of 16, so no glibc chunk header (the arena's
 * pointers to the top chunk and to free chunks) lies inside a block.
 * Before returning, main scrubs 64 KiB of dead stack and calls a few
 * functions, so no stale copy of a dropped pointer survives in a dead stack
 * slot or a register. Prints nothing; exit status 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

struct pair {
    void *left, *right;
    char pad[48];
};
_Static_assert(sizeof(struct pair) == 64, "pair is 64 bytes");

struct cyc {
    struct cyc *other;
    char pad[40];
};
_Static_assert(sizeof(struct cyc) == 48, "cyc is 48 bytes");

struct node {
    struct node *next;
    char payload[40];
};
_Static_assert(sizeof(struct node) == 48, "node is 48 bytes");

struct list {
    struct node *first;
    size_t count;
    char pad[16];
};
_Static_assert(sizeof(struct list) == 32, "list is 32 bytes");

static char *g_interior;
static void *g_kept;
static struct list *g_list;

static void *checked(void *p)
{
    if (p == NULL)
        prog_die("leakkinds", "malloc failed");
    return p;
}

static NOINLINE void lose_small(void)
{
    for (int i = 0; i < 3; i++) {
        char *volatile p = checked(malloc(16)); /* SITE:lose_small */
        memset(p, i, 16);
    }
}

static NOINLINE void *tree_leaf(void)
{
    void *p = checked(malloc(32)); /* SITE:tree_leaf */
    memset(p, 0x5a, 32);
    return p;
}

static NOINLINE void lose_tree(void)
{
    struct pair *volatile root = checked(malloc(sizeof(*root))); /* SITE:lose_tree */
    memset(root->pad, 0, sizeof(root->pad));
    root->left = tree_leaf();
    root->right = tree_leaf();
}

static NOINLINE void lose_cycle(void)
{
    struct cyc *volatile a = checked(malloc(sizeof(*a)));
    struct cyc *volatile b = checked(malloc(sizeof(*b)));
    memset(a->pad, 0, sizeof(a->pad));
    memset(b->pad, 0, sizeof(b->pad));
    a->other = b;
    b->other = a;
}

static NOINLINE void keep_interior(void)
{
    char *p = checked(malloc(96)); /* SITE:keep_interior */
    memset(p, 0, 96);
    g_interior = p + 40;
}

static NOINLINE void keep_global(void)
{
    g_kept = checked(malloc(256)); /* SITE:keep_global */
    memset(g_kept, 0x11, 256);
}

static NOINLINE struct node *list_node(struct node *next)
{
    struct node *n = checked(malloc(sizeof(*n))); /* SITE:list_node */
    memset(n->payload, 0, sizeof(n->payload));
    n->next = next;
    return n;
}

static NOINLINE void keep_list(void)
{
    struct list *l = checked(malloc(sizeof(*l))); /* SITE:keep_list */
    memset(l, 0, sizeof(*l));
    for (int i = 0; i < 3; i++) {
        l->first = list_node(l->first);
        l->count++;
    }
    g_list = l;
}

int main(void)
{
    lose_small();
    lose_tree();
    lose_cycle();
    keep_interior();
    keep_global();
    keep_list();
    prog_scrub_stack();
    prog_clobber_registers("leakkinds");
    return 0;
}
