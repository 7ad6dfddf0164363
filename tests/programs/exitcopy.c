/* exitcopy: a short process's last snapshot written by a copy of it
 * (preload/writer/exitcopy.c) must leave nothing of the program's held once
 * the program ended.
 *
 *   exitcopy hold FILE    takes FILE's flock (exclusive), keeps 3 blocks of
 *                         100 bytes from held_blocks, and exits
 *   exitcopy check FILE   runs `exitcopy hold FILE` (fork, exec: traced too
 *                         under `memtrail run`), prints "parent PID child
 *                         PID", waits for it, then tries FILE's flock
 *                         without waiting and prints "free" or "held"; exits
 *                         with the child's status
 *
 * Bare, the lock is free once the child is waited for. Traced, so must it
 * be: the copy that writes the child's exit snapshot closes the child's
 * descriptors before the child ends. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept[3];

__attribute__((noinline)) static void held_blocks(void)
{
    for (int i = 0; i < 3; i++)
        kept[i] = malloc(100);
}

static int hold(const char *file)
{
    int fd = open(file, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        perror(file);
        return 1;
    }
    held_blocks();
    return 0;   /* fd stays open: the process's end releases the lock */
}

static int check(const char *self, const char *file)
{
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        execl(self, self, "hold", file, (char *)NULL);
        _exit(127);
    }
    printf("parent %ld child %ld\n", (long)getpid(), (long)pid);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 1;
    int fd = open(file, O_RDWR);
    if (fd < 0)
        return 1;
    int r = flock(fd, LOCK_EX | LOCK_NB);
    printf("%s\n", r == 0 ? "free" : errno == EWOULDBLOCK ? "held" : strerror(errno));
    close(fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "hold"))
        return hold(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "check"))
        return check(argv[0], argv[2]);
    fprintf(stderr, "usage: exitcopy hold|check FILE\n");
    return 2;
}
