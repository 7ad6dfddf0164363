/* forkfd: forks over and over while snapshots of its 300,000 blocks are
 * written (tests/integration/test_signal.c). fork waits only for a yield of
 * the writer, not for the end of a snapshot, so a child can be born in the
 * middle of one; it must inherit no descriptor of memtrail's.
 *
 * Notes the descriptors it inherited, writes "ready <pid>\n", then forks
 * until a line arrives on stdin. Each child counts the entries of
 * /proc/self/fd that are neither inherited nor the directory's own, sends
 * the count to its parent through a pipe made for it,
 * and kills itself (SIGKILL: no exit snapshot). At the end: "forks N bad M"
 * (M: children that saw another descriptor). */
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define NBLOCKS 300000

static void **g_blocks;
static unsigned char g_inherited[1024];   /* descriptors open at start */

static NOINLINE void keep_blocks(void)
{
    g_blocks = malloc(NBLOCKS * sizeof(*g_blocks));
    if (!g_blocks)
        prog_die("forkfd", "malloc failed");
    for (int i = 0; i < NBLOCKS; i++)
        if ((g_blocks[i] = malloc(40)) == NULL)
            prog_die("forkfd", "malloc failed");
}

/* The open descriptors other than the directory's own and `skip`: marked in
 * g_inherited (note), or counted when not marked there. */
static unsigned char scan_fds(int note, int skip)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 255;
    int self = dirfd(d);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self || fd == skip)
            continue;
        if (note && fd < 1024)
            g_inherited[fd] = 1;
        else if (fd >= 1024 || !g_inherited[fd]) {
            char link[64], target[256];
            snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
            ssize_t k = readlink(link, target, sizeof(target) - 1);
            target[k > 0 ? k : 0] = 0;
            prog_put(2, "forkfd: child has descriptor ");
            prog_put_u(2, (unsigned long)fd);
            prog_put(2, " -> ");
            prog_put(2, target);
            prog_put(2, "\n");
            n++;
        }
    }
    closedir(d);
    return (unsigned char)(n < 255 ? n : 254);
}

int main(void)
{
    keep_blocks();
    scan_fds(1, -1);
    prog_put(1, "ready ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");
    unsigned long forks = 0, bad = 0;
    for (;;) {
        struct pollfd in = {0, POLLIN, 0};
        if (poll(&in, 1, 0) > 0)
            break;
        int p[2];
        if (pipe(p) < 0)
            prog_die("forkfd", "pipe failed");
        pid_t pid = fork();
        if (pid < 0)
            prog_die("forkfd", "fork failed");
        if (pid == 0) {
            close(p[0]);
            unsigned char n = scan_fds(0, p[1]);
            ssize_t w = write(p[1], &n, 1);
            (void)w;
            kill(getpid(), SIGKILL);
        }
        close(p[1]);
        unsigned char n = 255;
        if (read(p[0], &n, 1) != 1)
            n = 255;
        close(p[0]);
        waitpid(pid, NULL, 0);
        forks++;
        bad += n != 0;
    }
    prog_put(1, "forks ");
    prog_put_u(1, forks);
    prog_put(1, " bad ");
    prog_put_u(1, bad);
    prog_put(1, "\n");
    return 0;
}
