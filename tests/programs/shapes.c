/* shapes: allocations whose call chains change shape from one to the next
 * (recursion of random depth, longjmp out of a recursion, alloca frames,
 * the same innermost frame under a shallower chain, signal handlers,
 * coroutines on their own stacks, two threads), each made
 * by alloc_here, which then asks libunwind for its callers. The program
 * keeps every block live and writes, to the file named by its argument, one
 * line per distinct stack: "blocks bytes depth pc..." (the return addresses
 * from alloc_here's caller outward, as unw_backtrace gives them). Built with
 * -fomit-frame-pointer: only frames with an alloca keep rbp as their frame
 * pointer, and rbp passes through the others. Under
 * memtrail, every stack of the exit snapshot through alloc_here must be one
 * of these with exactly these figures (test_native: memtrail's walk, with
 * its memory of the previous walk, against libunwind's). No malloc of its
 * own besides the blocks: the table is static.
 *
 * `shapes OUT fork`: the process forks first and the child does all of the
 * above (and exits with its status); the parent waits, then forks a second
 * child that does it again, prints "child PID" of the second and exits
 * with its status. A fork child's first stacks are walked without the
 * thread's caches and memos (record/record.c), and the second child finds
 * the rules of this program's code in the table the first one filled for
 * it, shared across fork (unwind/cfi.c): every stack must still be
 * libunwind's. */
#include <alloca.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define NOINLINE __attribute__((noinline))
#define MAXF 46
#define NSTACKS 4096
#define ROUNDS 1500

typedef struct entry {
    uint32_t depth;
    uintptr_t pc[MAXF];
    uint64_t blocks, bytes;
} entry_t;

static entry_t table[NSTACKS];
static unsigned nentries;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int sink;

/* frames: alloc_here's callers outward. */
static void record(void *const *frames, uint32_t depth, size_t size)
{
    pthread_mutex_lock(&table_lock);
    unsigned i;
    for (i = 0; i < nentries; i++)
        if (table[i].depth == depth && memcmp(table[i].pc, frames, depth * sizeof(void *)) == 0)
            break;
    if (i == nentries) {
        if (nentries == NSTACKS) {
            fprintf(stderr, "shapes: more than %d stacks\n", NSTACKS);
            exit(3);
        }
        table[i].depth = depth;
        memcpy(table[i].pc, frames, depth * sizeof(void *));
        nentries++;
    }
    table[i].blocks++;
    table[i].bytes += size;
    pthread_mutex_unlock(&table_lock);
}

/* libunwind's frames: [0] in here, [1] in alloc_here, then its callers. */
NOINLINE static void take_stack(size_t size)
{
    void *frames[MAXF + 2];
    int n = unw_backtrace(frames, MAXF + 2);
    if (n > MAXF + 1 || n < 2) {
        fprintf(stderr, "shapes: a stack of %d frames\n", n);
        exit(3);
    }
    record(frames + 2, (uint32_t)n - 2, size);
}

/* Keeps only `size` across malloc (in rbx, with -fomit-frame-pointer): rbp
 * passes through untouched from the callers, as it does in leaf_a and
 * descend, so the walk from malloc reads the rbp of inner_step below. */
NOINLINE static void alloc_here(size_t size)
{
    char *p = malloc(size);
    if (!p)
        exit(4);
    p[0] = 1;
    take_stack(size);
    sink++;   /* not a tail call: alloc_here keeps its frame */
}

typedef struct rng {
    uint64_t s;
} rng_t;

static unsigned next_rand(rng_t *r, unsigned bound)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (unsigned)(r->s % bound);
}

NOINLINE static void leaf_a(size_t size) { alloc_here(size); sink++; }
NOINLINE static void leaf_b(size_t size) { alloc_here(size + 8); sink += 2; }

NOINLINE static void recurse(int depth, int which, size_t size)
{
    if (depth == 0) {
        if (which)
            leaf_b(size);
        else
            leaf_a(size);
    } else {
        recurse(depth - 1, which, size);
    }
    sink++;
}

NOINLINE static void with_alloca(size_t n, int depth, size_t size)
{
    char *buf = alloca(n);
    memset(buf, depth, n);
    sink += buf[n / 2];
    if (depth)
        with_alloca(n + 32, depth - 1, size);
    else
        recurse(2, (int)(n & 16), size);
    sink++;
}

/* The same innermost frame at the same address, under a shallower chain:
 * descend(2, b) and then descend(1, b + one level's frame) put leaf_a's
 * frame at the same place, but inner_step's (rbp-based) frame one level
 * higher. descend calls the next level and inner_step from one call
 * instruction, so every return address in the chain is the same word, and
 * inner_step's alloca is not written: each word the deeper walk read still
 * holds its value where it was, and only rbp tells the two walks apart. */
static __thread uintptr_t inner_buf;

typedef void (*step_fn)(int d, size_t b, int dry);

NOINLINE static void inner_step(int d, size_t b, int dry)
{
    (void)d;
    char *buf = alloca(b);
    inner_buf = (uintptr_t)buf;
    if (!dry)
        leaf_a(72);
    sink++;
}

NOINLINE static void descend(int d, size_t b, int dry);
static step_fn volatile steps[2] = {inner_step, descend};

NOINLINE static void descend(int d, size_t b, int dry)
{
    step_fn next = steps[d != 0];
    next(d - 1, b, dry);
    sink++;
}

/* One call site for all three calls (unoptimized, so the loop is not
 * peeled): the return address into this function is the same word in both
 * chains. */
static volatile int three_steps = 3;

NOINLINE __attribute__((optimize("O0"))) static void same_frame_shallower(void)
{
    uintptr_t deep = 0;
    size_t b = 512;
    for (int step = 0; step < three_steps; step++) {
        descend(step ? 1 : 2, b, step == 1);
        if (step == 0)
            deep = inner_buf;
        else if (step == 1)
            b = 512 - (deep - inner_buf);   /* not allocating: where the shallower chain puts it */
    }
    if (inner_buf != deep) {
        fprintf(stderr, "shapes: the shallower chain's frame is not where the deeper's was\n");
        exit(5);
    }
}

static __thread jmp_buf jump;

NOINLINE static void dive_and_jump(int depth)
{
    if (depth < 0)
        return;
    if (depth == 0) {
        alloc_here(24);
        longjmp(jump, 1);
    }
    dive_and_jump(depth - 1);
    sink++;
}

static void on_signal(int sig)
{
    (void)sig;
    recurse(3, 1, 40);   /* raised synchronously: malloc in the handler is safe here */
}

NOINLINE static void raise_at(int depth)
{
    if (depth == 0)
        raise(SIGUSR1);
    else
        raise_at(depth - 1);
    sink++;
}

/* Coroutines: one on a stack in static memory, one on a stack inside this
 * thread's own stack (an array of the caller's frame). */
static __thread ucontext_t main_ctx, co_ctx;
static __thread int co_depth;

static void co_body(void)
{
    for (;;) {
        recurse(co_depth, co_depth & 1, 56);
        swapcontext(&co_ctx, &main_ctx);
    }
}

static char static_stack[2][64 * 1024] __attribute__((aligned(16)));

NOINLINE static void run_coroutine(char *stack, size_t size, rng_t *r)
{
    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = stack;
    co_ctx.uc_stack.ss_size = size;
    co_ctx.uc_link = &main_ctx;
    makecontext(&co_ctx, co_body, 0);
    for (int i = 0; i < 3; i++) {
        co_depth = (int)next_rand(r, 6);
        swapcontext(&main_ctx, &co_ctx);
        recurse((int)next_rand(r, 4), 0, 64);   /* back on the thread's stack */
    }
}

NOINLINE static void coroutine_on_own_stack(rng_t *r)
{
    char stack[64 * 1024] __attribute__((aligned(16)));
    run_coroutine(stack, sizeof(stack), r);
    sink += stack[100];
}

static void shapes(rng_t *r, int thread)
{
    for (volatile int i = 0; i < ROUNDS; i++) {
        switch (next_rand(r, 8)) {
        case 0:
        case 1:
            recurse((int)next_rand(r, 20), (int)next_rand(r, 2), 16 + 8 * (size_t)thread);
            break;
        case 2:
            with_alloca(16 + 16 * next_rand(r, 6), (int)next_rand(r, 5), 32);
            break;
        case 3:
            if (!setjmp(jump))
                dive_and_jump((int)next_rand(r, 15));
            recurse((int)next_rand(r, 3), 1, 48);
            break;
        case 4:
            raise_at((int)next_rand(r, 8));
            break;
        case 5:
            if (i % 50 == 5)
                run_coroutine(static_stack[thread], sizeof(static_stack[thread]), r);
            else
                recurse(5, 0, 16);
            break;
        case 6:
            same_frame_shallower();
            break;
        default:
            if (i % 50 == 6)
                coroutine_on_own_stack(r);
            else
                recurse(5, 1, 16);
            break;
        }
    }
}

static void *thread_main(void *arg)
{
    rng_t r = {(uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1};
    shapes(&r, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2 && (argc != 3 || strcmp(argv[2], "fork") != 0)) {
        fprintf(stderr, "usage: shapes OUT [fork]\n");
        return 2;
    }
    if (argc == 3) {
        /* An allocation first, as a shell's fork comes after many: the
         * forking thread then has its thread block, which the child keeps. */
        void *volatile first = malloc(1);
        free(first);
        pid_t child = 0;
        for (int round = 0; round < 2; round++) {
            child = fork();
            if (child < 0)
                return 1;
            if (child == 0)
                break;
            int status;
            if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0)
                return 1;
        }
        if (child > 0) {
            printf("child %ld\n", (long)child);
            return 0;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);

    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, (void *)7) != 0)
        return 1;
    rng_t r = {88172645463325252ull};
    shapes(&r, 0);
    pthread_join(th, NULL);

    FILE *out = fopen(argv[1], "w");
    if (!out)
        return 1;
    for (unsigned i = 0; i < nentries; i++) {
        fprintf(out, "%llu %llu %u", (unsigned long long)table[i].blocks,
                (unsigned long long)table[i].bytes, table[i].depth);
        for (uint32_t d = 0; d < table[i].depth; d++)
            fprintf(out, " %lx", (unsigned long)table[i].pc[d]);
        fputc('\n', out);
    }
    fclose(out);
    printf("shapes: %u stacks\n", nentries);
    return 0;
}
