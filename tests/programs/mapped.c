/* mapped FILE: the mmap domain (tests/integration/test_mmap.c). Maps,
 * remaps and unmaps anonymous memory, maps FILE (made here, 64 KiB), and
 * takes an API snapshot named after each step. Each call is on its own line
 * marked SITE:name. The mmap domain after each step (M = 1 MiB; --mmap=all
 * adds FILE's mapping, 128 KiB in 1 block at SITE:fileremap, from "file" to
 * "raw"):
 *
 *   mapped    10 M anonymous at SITE:map                          10 M / 1 at map
 *   grown     mremap to 12 M (may move) at SITE:grow              12 M / 1 at grow
 *   reserved  12 M PROT_NONE at SITE:reserve                      + 12 M / 1 at reserve
 *   moved     mremap FIXED onto the reservation at SITE:move      12 M / 1 at move
 *   split     munmap of its middle 4 M                            8 M / 2 at move
 *   trimmed   munmap of its first 4 M                             4 M / 1 at move
 *   fixed     MAP_FIXED 1 M over its last M at SITE:fixed         3 M / 1 at move, 1 M / 1 at fixed
 *   file      FILE (64 KiB) mapped at SITE:file, then remapped    (anonymous only: the same;
 *             to 128 KiB at SITE:fileremap                        its remap stays unrecorded)
 *   large     malloc(64 M) at SITE:large: glibc maps it itself    the same; native 64 M / 1
 *   raw       a mapping made by syscall(SYS_mmap), munmap'd       the same (never seen)
 *             (and errno: a failed mmap and munmap set the real   the same
 *             call's, a mapping and its munmap keep it)
 *   unmapped  one munmap over the move and fixed mappings, FILE   0 / 0; native 0
 *             unmapped, the large block freed
 *
 * mapped FILE fork: maps 4 M at SITE:forkmap and forks; the child unmaps
 * the first half and takes the snapshot "child" (2 M / 1 at forkmap: it
 * inherited the mapping and the parent's live table with it), then the
 * parent the snapshot "parent" (4 M / 1).
 *
 * No stdio: nothing else is allocated. Exits 0 (2 when a step fails).
 */
#define MEMTRAIL_WEAK
#include <errno.h>
#include <fcntl.h>
#include <memtrail.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progio.h"

#define M ((size_t)1 << 20)
#define FILE_SIZE (64 * 1024)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)
#define RW (PROT_READ | PROT_WRITE)

static void check(int ok, const char *what)
{
    if (!ok)
        prog_die("mapped", what);
}

static void snap(const char *label)
{
    check(MEMTRAIL_SNAPSHOT(label) == 0, label);
}

static char *mapped(void *p, const char *what)
{
    check(p != MAP_FAILED, what);
    return p;
}

static int forked(void)
{
    char *m = mapped(mmap(NULL, 4 * M, RW, ANON, -1, 0), "forkmap"); /* SITE:forkmap */
    pid_t pid = fork();
    check(pid >= 0, "fork");
    if (pid == 0) {
        check(munmap(m, 2 * M) == 0, "child munmap");
        snap("child");
        _exit(0);
    }
    int status;
    check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child failed");
    snap("parent");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[2], "fork") == 0)
        return forked();
    check(argc == 2, "usage: mapped FILE [fork]");
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    check(fd >= 0 && ftruncate(fd, FILE_SIZE) == 0, "cannot make FILE");

    char *a = mapped(mmap(NULL, 10 * M, RW, ANON, -1, 0), "map"); /* SITE:map */
    memset(a, 1, 10 * M);
    snap("mapped");

    char *b = mapped(mremap(a, 10 * M, 12 * M, MREMAP_MAYMOVE), "grow"); /* SITE:grow */
    snap("grown");

    char *r = mapped(mmap(NULL, 12 * M, PROT_NONE, ANON | MAP_NORESERVE, -1, 0), "reserve"); /* SITE:reserve */
    snap("reserved");

    char *c = mapped(mremap(b, 12 * M, 12 * M, MREMAP_MAYMOVE | MREMAP_FIXED, r), "move"); /* SITE:move */
    check(c == r, "move: not at the reservation");
    snap("moved");

    check(munmap(c + 4 * M, 4 * M) == 0, "split");
    snap("split");

    check(munmap(c, 4 * M) == 0, "trim");
    snap("trimmed");

    char *f = mapped(mmap(c + 11 * M, M, RW, ANON | MAP_FIXED, -1, 0), "fixed"); /* SITE:fixed */
    check(f == c + 11 * M, "fixed: elsewhere");
    snap("fixed");

    char *file = mapped(mmap(NULL, FILE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0), "file"); /* SITE:file */
    file = mapped(mremap(file, FILE_SIZE, 2 * FILE_SIZE, MREMAP_MAYMOVE), "file remap"); /* SITE:fileremap */
    snap("file");

    char *big = malloc(64 * M); /* SITE:large */
    check(big != NULL, "large");
    memset(big, 2, M);
    snap("large");

    void *raw = (void *)syscall(SYS_mmap, NULL, M, RW, ANON, -1, 0);
    check(raw != MAP_FAILED, "raw");
    check(munmap(raw, M) == 0, "raw munmap");
    errno = 0;
    check(mmap(NULL, 0, RW, ANON, -1, 0) == MAP_FAILED && errno == EINVAL, "errno: mmap of 0");
    errno = 0;
    check(munmap(a + 1, M) == -1 && errno == EINVAL, "errno: munmap unaligned");
    errno = ERANGE;
    char *e = mmap(NULL, M, RW, ANON, -1, 0);
    check(e != MAP_FAILED && errno == ERANGE, "errno: mmap changed it");
    check(munmap(e, M) == 0 && errno == ERANGE, "errno: munmap changed it");
    snap("raw");

    check(munmap(c + 8 * M, 4 * M) == 0, "unmap");
    check(munmap(file, 2 * FILE_SIZE) == 0, "file munmap");
    free(big);
    close(fd);
    snap("unmapped");
    return 0;
}
