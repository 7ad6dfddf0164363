/* forkring: fork children taken with the parent's ring at many places, its
 * records still to be read at the fork. Run under memtrail by
 * tests/integration/test_process.c (integration::forkring).
 *
 * Fork's prepare handler gives back the pages of the forking thread's ring
 * that hold no record still to be read (record/ring.c,
 * mtp_ring_atfork_prepare); a page it gave back wrongly loses records the
 * child has to apply. Each of ROUNDS rounds moves the ring's head by a
 * different number of events (churn: malloc and free pairs, 5,003 more
 * pairs a round, so that head lands at many places of the 32,768-slot ring,
 * on both sides of its end, and the ring wraps), waits 30 ms (the writer
 * applies the churn and sleeps), then allocates HELD blocks of 1,000 +
 * round bytes at held_blocks and forks at once: their 300 records, on three
 * pages of the ring, are likely still to be read (giving back the page
 * where they begin fails this test). The child exits at once; its exit snapshot
 * must hold exactly those HELD blocks at held_blocks and none at churn.
 * The parent frees them after the child ended, and prints
 * "child <round> <pid>\n" for each child, "parent <pid>\n" at the end.
 * Exits 1 if a child did not exit with 0.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define ROUNDS 12
#define HELD 300

static void *volatile sink;
static void *held[HELD];

static NOINLINE void churn(unsigned pairs)
{
    for (unsigned i = 0; i < pairs; i++) {
        sink = malloc(16);
        free(sink);
    }
}

static NOINLINE void held_blocks(size_t size)
{
    for (int i = 0; i < HELD; i++)
        if ((held[i] = malloc(size)) == NULL)
            prog_die("forkring", "malloc failed");
}

int main(void)
{
    for (unsigned r = 0; r < ROUNDS; r++) {
        churn(1000 + r * 5003);
        struct timespec nap = {0, 30 * 1000 * 1000};
        nanosleep(&nap, NULL);   /* the writer drains the churn and sleeps */
        held_blocks(1000 + r);
        pid_t child = fork();
        if (child < 0)
            prog_die("forkring", "fork failed");
        if (child == 0)
            exit(0);
        int status;
        while (waitpid(child, &status, 0) < 0)
            if (errno != EINTR)
                prog_die("forkring", "waitpid failed");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
        for (int i = 0; i < HELD; i++)
            free(held[i]);
        prog_put(1, "child ");
        prog_put_u(1, r);
        prog_put(1, " ");
        prog_put_u(1, (unsigned long)child);
        prog_put(1, "\n");
    }
    prog_put(1, "parent ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");
    return 0;
}
