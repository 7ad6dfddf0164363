/* many_stacks: the workload of bench_analyzer. Leaves BLOCKS live blocks spread
 * over STACKS distinct call stacks, for snapshots that stress the analyzer.
 *
 * Usage: many_stacks BLOCKS STACKS [SEED]
 *
 * Path p (0 <= p < STACKS) is a recursion of DEPTH = ceil(log2(STACKS)) levels
 * through the two functions left() and right(), chosen by the bits of p (bit k
 * picks the function at level k + 1); the last one calls malloc. Every path is
 * thus its own sequence of return addresses: STACKS distinct stacks. Block i
 * goes to path i % STACKS with 16 + (i % 7) * 8 bytes. Nothing is freed; the
 * program exits normally, so that memtrail writes its exit snapshot.
 *
 * SEED (default 0) k > 0 changes one path in five, for a diff with real
 * changes both ways: the paths p with p % 10 == (k - 1) % 10 allocate one
 * extra block of 64 bytes, those with p % 10 == (k + 4) % 10 take
 * 16 + ((i + k) % 7) * 8 bytes per block (some grow, some shrink). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No inlining, cloning or identical-code folding: left and right must stay
 * two functions with their own call sites. */
#define PATH_FN __attribute__((noinline, noclone, no_icf))

#define MAX_DEPTH 30

static uintptr_t sink;   /* the blocks are used, not optimised away */

static void *left(unsigned level, unsigned depth, unsigned long path, size_t size);
static void *right(unsigned level, unsigned depth, unsigned long path, size_t size);

/* The allocation at the end of a path, or the next level. The empty asm after
 * each call keeps it from being a tail call, so every level keeps its frame. */
static inline void *next_level(unsigned level, unsigned depth, unsigned long path, size_t size)
{
    void *p;
    if (level == depth) {
        p = malloc(size);
        __asm__ volatile("" ::: "memory");
        return p;
    }
    if ((path >> level) & 1)
        p = right(level + 1, depth, path, size);
    else
        p = left(level + 1, depth, path, size);
    __asm__ volatile("" ::: "memory");
    return p;
}

static PATH_FN void *left(unsigned level, unsigned depth, unsigned long path, size_t size)
{
    return next_level(level, depth, path, size);
}

static PATH_FN void *right(unsigned level, unsigned depth, unsigned long path, size_t size)
{
    return next_level(level, depth, path, size);
}

/* Allocates one block of `size` bytes through path `path`. */
static int alloc_on_path(unsigned depth, unsigned long path, size_t size)
{
    /* level 0 has no bit of its own: it starts every path in left() */
    char *p = left(0, depth, path, size);
    if (!p)
        return -ENOMEM;
    p[0] = (char)path;
    sink ^= (uintptr_t)p;
    return 0;
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || x > max)
        return -EINVAL;
    *v = (unsigned long)x;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long blocks, stacks, seed = 0;
    unsigned depth = 0;

    if (argc < 3 || argc > 4 || parse_ulong(argv[1], 1ul << 32, &blocks) < 0 ||
        parse_ulong(argv[2], 1ul << MAX_DEPTH, &stacks) < 0 || stacks == 0 ||
        (argc == 4 && parse_ulong(argv[3], 1000000, &seed) < 0)) {
        fprintf(stderr, "usage: many_stacks BLOCKS STACKS [SEED]   (1 <= STACKS <= 2^%d)\n",
                MAX_DEPTH);
        return 2;
    }
    while (depth < MAX_DEPTH && (1ul << depth) < stacks)
        depth++;

    unsigned long extra_rem = (seed + 9) % 10, size_rem = (seed + 4) % 10;
    for (unsigned long i = 0; i < blocks; i++) {
        unsigned long path = i % stacks;
        size_t size = 16 + (i % 7) * 8;
        if (seed && path % 10 == size_rem)
            size = 16 + ((i + seed) % 7) * 8;
        if (alloc_on_path(depth, path, size) < 0)
            goto oom;
    }
    unsigned long extra = 0;
    if (seed)
        for (unsigned long path = extra_rem; path < stacks && path < blocks; path += 10, extra++)
            if (alloc_on_path(depth, path, 64) < 0)
                goto oom;

    printf("many_stacks: %lu blocks over %lu stacks (depth %u, seed %lu, %lu extra)\n",
           blocks + extra, stacks < blocks ? stacks : blocks, depth, seed, extra);
    return 0;
oom:
    fprintf(stderr, "many_stacks: out of memory\n");
    return 1;
}
