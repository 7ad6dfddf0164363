/* walk_cost: what following a stack by its frame pointers costs, against
 * checking that a walk taken before still holds (issue 19's second row,
 * docs/performance.md).
 *
 * A frame-pointer walk reads two words a frame, each frame's address the
 * word read in the frame before it: a chain of dependent loads. A walk that
 * remembered the frames of the walk before could instead check them: the
 * same two words a frame, but at addresses it already holds, loads the
 * processor can issue at once. This program measures both on one stack of
 * DEPTH frames (recursion, built -fno-omit-frame-pointer), each walk
 * storing its return addresses as memtrail's does:
 *
 *   walk           the frame-pointer walk of unwind/unwind.c (walk_fp's loop)
 *   check          the remembered frames' words compared, all of them, the
 *                  return addresses copied out
 *   check, early   the same, stopping at the first word that differs
 *
 * Printed: ns per walk and per frame, medians of ROUNDS rounds of ITERS
 * walks. Usage: walk_cost [DEPTH [ITERS [ROUNDS]]] (default 25 frames, about
 * bench_malloc_fp's stacks below the hook's frame, 10 M, 5). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"

#define MAX_FRAMES 256
#define MAX_ROUNDS 51
_Static_assert(MAX_ROUNDS <= BENCH_MAX_SAMPLES, "bench_median takes the rounds");

static uintptr_t pcs[MAX_FRAMES];
static uintptr_t memo_at[MAX_FRAMES], memo_ret[MAX_FRAMES], memo_next[MAX_FRAMES];
static unsigned memo_n;
static long iters = 10000000;
static int rounds = 5;

/* unwind/unwind.c's loop: a frame is read while it lies below `top`, its
 * return address looks like code, and the next frame is above it. */
static __attribute__((noinline)) unsigned walk(const uintptr_t *fp, uintptr_t top)
{
    uintptr_t *out = pcs, *end = pcs + MAX_FRAMES;
    while (out < end && (uintptr_t)fp <= top) {
        uintptr_t ret = fp[1];
        const uintptr_t *next = (const uintptr_t *)fp[0];
        if (ret < 4096)
            break;
        *out++ = ret;
        if (next <= fp || ((uintptr_t)next & 7))
            break;
        fp = next;
    }
    return (unsigned)(out - pcs);
}

static __attribute__((noinline)) int check(void)
{
    uintptr_t differ = 0;
    for (unsigned h = 0; h < memo_n; h++) {
        const uintptr_t *f = (const uintptr_t *)memo_at[h];
        differ |= (f[0] ^ memo_next[h]) | (f[1] ^ memo_ret[h]);
        pcs[h] = memo_ret[h];
    }
    return differ ? -1 : (int)memo_n;
}

static __attribute__((noinline)) int check_early(void)
{
    for (unsigned h = 0; h < memo_n; h++) {
        const uintptr_t *f = (const uintptr_t *)memo_at[h];
        if (f[0] != memo_next[h] || f[1] != memo_ret[h])
            return -1;
        pcs[h] = memo_ret[h];
    }
    return (int)memo_n;
}

static __attribute__((noinline)) void measure(void)
{
    const uintptr_t *fp = __builtin_frame_address(0);
    uintptr_t top = (uintptr_t)fp + ((uintptr_t)1 << 20);
    unsigned n = walk(fp, top);
    memo_n = 0;
    for (const uintptr_t *f = fp; memo_n < n; f = (const uintptr_t *)f[0], memo_n++) {
        memo_at[memo_n] = (uintptr_t)f;
        memo_ret[memo_n] = f[1];
        memo_next[memo_n] = f[0];
    }
    double v[3][MAX_ROUNDS];
    volatile long sink = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = bench_mono_s();
        for (long i = 0; i < iters; i++)
            sink += walk(fp, top);
        double t1 = bench_mono_s();
        for (long i = 0; i < iters; i++)
            sink += check();
        double t2 = bench_mono_s();
        for (long i = 0; i < iters; i++)
            sink += check_early();
        double t3 = bench_mono_s();
        v[0][r] = (t1 - t0) / (double)iters * 1e9;
        v[1][r] = (t2 - t1) / (double)iters * 1e9;
        v[2][r] = (t3 - t2) / (double)iters * 1e9;
    }
    static const char *const names[3] = {"walk", "check", "check, early"};
    printf("%u frames: ns per walk (per frame), medians of %d rounds of %ld\n", n, rounds, iters);
    for (int c = 0; c < 3; c++) {
        double m = bench_median(v[c], (unsigned)rounds);
        printf("  %-14s %6.2f (%.2f)\n", names[c], m, m / n);
    }
}

static __attribute__((noinline)) void recurse(int d)
{
    if (d <= 0)
        measure();
    else
        recurse(d - 1);
    __asm__ volatile("" ::: "memory");   /* not a tail call: the frame stays */
}

int main(int argc, char **argv)
{
    int depth = 25;
    if (argc > 1)
        depth = atoi(argv[1]);
    if (argc > 2)
        iters = atol(argv[2]);
    if (argc > 3)
        rounds = atoi(argv[3]);
    if (depth < 3 || depth > MAX_FRAMES - 8 || iters <= 0 || rounds <= 0 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: walk_cost [DEPTH (3..%d) [ITERS [ROUNDS (1..%d)]]]\n",
                MAX_FRAMES - 8, MAX_ROUNDS);
        return 2;
    }
    /* the walk's frames: the recursion's, main's and libc's start (two) */
    recurse(depth - 3);
    return 0;
}
