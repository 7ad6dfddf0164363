/* A busy multi-threaded program to attach to (tests/integration/test_attach.c).
 *
 * Started bare. Before it says "ready" it allocates OLD blocks that memtrail
 * attach will not know; then NTHREADS threads allocate, fill, check and free
 * blocks in a loop (malloc, calloc, realloc, posix_memalign, aligned_alloc),
 * until told otherwise on stdin, one command a line:
 *   hold   the threads stop (joined); half of the OLD blocks are freed, the
 *          other half grown by realloc at regrow_old(); then each of the
 *          NTHREADS threads keeps KEEP blocks at each of keep_malloc(),
 *          keep_calloc() and keep_aligned(); prints what those sites hold
 *          ("held SITE BLOCKS BYTES", one line each, then "held").
 *   churn  the threads start again (what is held stays).
 *   end    the threads stop, everything is freed; prints the number of
 *          corrupted blocks seen ("done: errors 0") and exits 0.
 *   map    unmaps OLD_MAP, mapped before "ready" at make_old_map() (a range
 *          memtrail attach never saw); maps MAPS anonymous mappings of
 *          MAP_LEN at keep_map() and grows the first to MAP_GROWN with
 *          mremap at regrow_map(); prints "mapped".
 *   unmap  unmaps them; prints "unmapped".
 *   sigint the program's own SIGINT handler (sigaction), which writes
 *          "sigint" on stdout; prints "sigint set".
 *   map    unmaps OLD_MAP, mapped before "ready" at make_old_map() (a range
 *          memtrail attach never saw); maps MAPS anonymous mappings of
 *          MAP_LEN at keep_map() and grows the first to MAP_GROWN with
 *          mremap at regrow_map(); prints "mapped".
 *   unmap  unmaps them; prints "unmapped".
 *   sigint the program's own SIGINT handler (sigaction), which writes
 *          "sigint" on stdout; prints "sigint set".
 * The main thread reads the commands, blocked in read() between them; with
 * the argument "sleep" it sleeps in nanosleep() 50 ms at a time instead (a
 * sleep cut short counts as an error) and another thread reads them; with
 * "busy" it allocates, checks and frees as the other threads do, without a
 * pause until "end" (hold does not stop it: use hold without "busy"); with
 * "alarm" SIGALRM comes every millisecond to a handler (SA_RESTART).
 * Every output line is the same bare, attached, or attached and detached
 * any number of times. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NTHREADS 4
#define OLD 64
#define OLD_SIZE 200
#define REGROW_SIZE 1000
#define KEEP 50

static void *old[OLD];
static void *held[NTHREADS][3][KEEP];
static pthread_t threads[NTHREADS];
static _Atomic int churning;
static _Atomic long errors;

#define NOINLINE __attribute__((noinline))

NOINLINE static void *keep_malloc(size_t n) { return malloc(n); }
NOINLINE static void *keep_calloc(size_t n, size_t size) { return calloc(n, size); }
NOINLINE static void *keep_aligned(size_t n)
{
    void *p = NULL;
    return posix_memalign(&p, 64, n) == 0 ? p : NULL;
}
NOINLINE static void *regrow_old(void *p, size_t n) { return realloc(p, n); }
NOINLINE static void *make_old(size_t n) { return malloc(n); }

#define OLD_MAP (256 * 1024)
#define MAPS 3
#define MAP_LEN (64 * 1024)
#define MAP_GROWN (128 * 1024)
static void *old_map, *maps[MAPS];

/* mmap called from the site itself: its innermost frame. */
#define MAP_ANON_(n) mmap(NULL, (n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
NOINLINE static void *make_old_map(size_t n) { return MAP_ANON_(n); }
NOINLINE static void *keep_map(size_t n) { return MAP_ANON_(n); }
NOINLINE static void *regrow_map(void *p, size_t from, size_t n)
{
    void *q = mremap(p, from, n, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        abort();
    return q;
}

static void map_cmd(void)
{
    if (old_map)
        munmap(old_map, OLD_MAP);
    old_map = NULL;
    for (int i = 0; i < MAPS; i++) {
        maps[i] = keep_map(MAP_LEN);
        if (maps[i] == MAP_FAILED)
            abort();
        memset(maps[i], 0x3c, MAP_LEN);
    }
    maps[0] = regrow_map(maps[0], MAP_LEN, MAP_GROWN);
    printf("mapped\n");
    fflush(stdout);
}

static void unmap_cmd(void)
{
    for (int i = 0; i < MAPS; i++)
        munmap(maps[i], i ? MAP_LEN : MAP_GROWN);
    printf("unmapped\n");
    fflush(stdout);
}

static void on_sigint(int sig)
{
    (void)sig;
    (void)!write(1, "sigint\n", 7);
}

static void sigint_cmd(void)
{
    struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    printf("sigint set\n");
    fflush(stdout);
}

/* Fills a block with a pattern of its own and checks it later. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static void check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) {
            atomic_fetch_add(&errors, 1);
            return;
        }
}

/* Allocates, fills, checks and frees while *flag == want. */
static void churn_while(unsigned idx, _Atomic int *flag, int want)
{
    unsigned seed = idx * 1000u + 1u;
    void *slot[16] = {0};
    size_t size[16] = {0};
    while (atomic_load_explicit(flag, memory_order_relaxed) == want) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % 16, how = (seed >> 16) % 5;
        size_t n = 16 + (seed >> 20) % 2000;
        if (slot[k]) {
            check(slot[k], size[k], k);
            if (how == 2) {   /* grow or shrink in place of a free */
                unsigned char *q = realloc(slot[k], n);
                if (q) {
                    check(q, size[k] < n ? size[k] : n, k);
                    fill(q, n, k);
                    slot[k] = q;
                    size[k] = n;
                }
                continue;
            }
            /* free's address taken here: a GOT slot read at each call in a
             * PIE, the executable's canonical PLT entry in a non-PIE build
             * (attachee_nopie): both must lead to the hook once attached */
            void (*volatile release)(void *) = free;
            release(slot[k]);
            slot[k] = NULL;
        }
        void *p = NULL;
        switch (how) {
        case 0: p = malloc(n); break;
        case 1: p = calloc(1, n); break;
        case 2: p = realloc(NULL, n); break;
        case 3: if (posix_memalign(&p, 32, n) != 0) p = NULL; break;
        default: p = aligned_alloc(64, (n + 63) & ~(size_t)63); break;
        }
        if (!p)
            continue;
        fill(p, n, k);
        slot[k] = p;
        size[k] = n;
    }
    for (unsigned k = 0; k < 16; k++)
        if (slot[k]) {
            check(slot[k], size[k], k);
            free(slot[k]);
        }
}

static void *churn(void *arg)
{
    churn_while((unsigned)(uintptr_t)arg, &churning, 1);
    return NULL;
}

static void start(void)
{
    atomic_store(&churning, 1);
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&threads[i], NULL, churn, (void *)(uintptr_t)i);
}

static void stop(void)
{
    if (!atomic_exchange(&churning, 0))
        return;
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
}

static void *keeper(void *arg)
{
    int t = (int)(uintptr_t)arg;
    for (int i = 0; i < KEEP; i++) {
        held[t][0][i] = keep_malloc(100 + (size_t)i);
        held[t][1][i] = keep_calloc(3, 24);
        held[t][2][i] = keep_aligned(4096);
    }
    return NULL;
}

static void hold(void)
{
    stop();
    for (int i = 0; i < OLD; i++) {
        if (i % 2)
            free(old[i]);   /* allocated before any attach: passed through */
        else
            old[i] = regrow_old(old[i], REGROW_SIZE);
        if (i % 2)
            old[i] = NULL;
    }
    pthread_t k[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        pthread_create(&k[t], NULL, keeper, (void *)(uintptr_t)t);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(k[t], NULL);
    unsigned long malloc_bytes = 0;
    for (int i = 0; i < KEEP; i++)
        malloc_bytes += 100 + (unsigned long)i;
    printf("held keep_malloc %d %lu\n", NTHREADS * KEEP, NTHREADS * malloc_bytes);
    printf("held keep_calloc %d %d\n", NTHREADS * KEEP, NTHREADS * KEEP * 72);
    printf("held keep_aligned %d %d\n", NTHREADS * KEEP, NTHREADS * KEEP * 4096);
    printf("held regrow_old %d %d\n", OLD / 2, OLD / 2 * REGROW_SIZE);
    printf("held\n");
    fflush(stdout);
}

static _Atomic int finished;

/* The commands, from stdin. */
static void *commands(void *arg)
{
    (void)arg;
    char line[64];
    while (fgets(line, sizeof(line), stdin)) {
        if (!strcmp(line, "hold\n")) {
            hold();
        } else if (!strcmp(line, "churn\n")) {
            start();
            printf("churning\n");
            fflush(stdout);
        } else if (!strcmp(line, "map\n")) {
            map_cmd();
        } else if (!strcmp(line, "unmap\n")) {
            unmap_cmd();
        } else if (!strcmp(line, "sigint\n")) {
            sigint_cmd();
        } else if (!strcmp(line, "end\n")) {
            break;
        }
    }
    atomic_store(&finished, 1);
    return NULL;
}

/* With "sleep": the main thread sleeps 50 ms at a time in nanosleep, and
 * counts as an error a sleep cut short (EINTR, or less time than asked). */
static void sleep_loop(void)
{
    while (!atomic_load(&finished)) {
        struct timespec want = {0, 50 * 1000 * 1000}, t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (nanosleep(&want, NULL) != 0)
            atomic_fetch_add(&errors, 1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
        if (ns < want.tv_nsec)
            atomic_fetch_add(&errors, 1);
    }
}

/* With "busy": the main thread churns too, checking its blocks, until the end. */
static void busy_loop(void)
{
    churn_while(NTHREADS, &finished, 0);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

int main(int argc, char **argv)
{
    int sleeper = argc > 1 && !strcmp(argv[1], "sleep");
    int busy = argc > 1 && !strcmp(argv[1], "busy");
    if (argc > 1 && !strcmp(argv[1], "alarm")) {   /* SIGALRM every millisecond, handled */
        struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = {{0, 1000}, {0, 1000}};
        setitimer(ITIMER_REAL, &it, NULL);
    }
    for (int i = 0; i < OLD; i++) {
        old[i] = make_old(OLD_SIZE);
        memset(old[i], 0x5a, OLD_SIZE);
    }
    old_map = make_old_map(OLD_MAP);
    if (old_map == MAP_FAILED)
        abort();
    memset(old_map, 0x3c, OLD_MAP);
    start();
    printf("ready\n");
    fflush(stdout);
    if (sleeper || busy) {   /* another thread reads the commands */
        pthread_t reader;
        pthread_create(&reader, NULL, commands, NULL);
        if (busy)
            busy_loop();
        else
            sleep_loop();
        pthread_join(reader, NULL);
    } else {         /* the main thread waits in read() */
        commands(NULL);
    }
    stop();
    for (int t = 0; t < NTHREADS; t++)
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < KEEP; i++)
                free(held[t][s][i]);
    for (int i = 0; i < OLD; i++)
        free(old[i]);
    printf("done: errors %ld\n", atomic_load(&errors));
    return 0;
}
