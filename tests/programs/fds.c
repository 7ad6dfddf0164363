/* fds: prints every file descriptor above 2 open in this process, at start
 * and after some allocations. Traced and bare, the output must be the same:
 * memtrail keeps no descriptor open in the programs it traces. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void list_fds(const char *when)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        printf("%s: cannot open /proc/self/fd\n", when);
        return;
    }
    int self = dirfd(d);
    struct dirent *e;
    printf("%s:", when);
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd > 2 && fd != self)
            printf(" %d", fd);
    }
    printf("\n");
    closedir(d);
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
