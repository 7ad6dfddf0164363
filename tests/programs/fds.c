/* fds: prints every file descriptor above 2 that stays open in this
 * process, at start and after some allocations. Traced and bare, the output
 * must be the same: memtrail keeps no descriptor open in the programs it
 * traces. (Its writer thread opens files for a moment: a snapshot, a
 * module's symbols, /proc/self/statm for the time line. A descriptor counts
 * as left open when three listings 20 ms apart all show it.) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXFD 4096

/* Marks in `open` the descriptors above 2 that /proc/self/fd lists now. */
static int list_once(unsigned char *open)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd > 2 && fd != self && fd < MAXFD)
            open[fd]++;
    }
    closedir(d);
    return 0;
}

static void list_fds(const char *when)
{
    static unsigned char seen[MAXFD];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 3; i++) {
        if (i)
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        if (list_once(seen) < 0) {
            printf("%s: cannot open /proc/self/fd\n", when);
            return;
        }
    }
    printf("%s:", when);
    for (int fd = 3; fd < MAXFD; fd++)
        if (seen[fd] == 3)
            printf(" %d", fd);
    printf("\n");
}

__attribute__((noinline)) static void churn(void)
{
    for (int i = 0; i < 200000; i++)
        free(malloc((size_t)(i % 500) + 1));
}

int main(void)
{
    list_fds("start");
    churn();
    list_fds("after");
    return 0;
}
