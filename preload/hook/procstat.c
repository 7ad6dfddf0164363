/*
 * fopen("/proc/self/stat"): the process's thread count without memtrail's
 * writer.
 *
 * CPython 3.12 and later warn at os.fork() ("This process ... is
 * multi-threaded, use of fork() may lead to deadlocks in the child", a
 * DeprecationWarning) when field 20 of /proc/self/stat, which it reads
 * through stdio right after the fork, counts more than one thread. The
 * writer thread would make every traced single-threaded Python program warn
 * at each fork (and multiprocessing's fork start method with it). These
 * wrappers serve that one file, opened for reading through fopen or fopen64,
 * from a memory file whose thread count leaves memtrail's threads out.
 * Every other call, and every failure on the way (the fallback is libc's own
 * fopen), is libc's fopen unchanged, errno included. The other ways to count
 * threads (/proc/self/task, /proc/self/status, open(2) of the stat file)
 * still show the writer: docs/design.md, Transparency.
 *
 * Threads: any thread may call these; the only shared state is the real
 * functions' pointers (hook.h: mtp_next_symbol).
 */
#undef _FILE_OFFSET_BITS   /* fopen and fopen64 are two entry points here */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "hook/hook.h"
#include "writer/writer.h"

#define SELF_STAT "/proc/self/stat"

typedef FILE *(*fopen_fn)(const char *, const char *);

static void *real_fopen_fn, *real_fopen64_fn;   /* atomic: resolved on first use */

/* The stat file as the program would see it without memtrail's threads, in
 * a memory file opened with `mode`; NULL (errno kept) when anything fails. */
static MTP_COLD FILE *stat_without_ours(const char *mode, int ours)
{
    char buf[1024], num[24];
    int fd = open(SELF_STAT, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *field = mtp_stat_field(buf, MTP_STAT_THREADS);
    if (!field)
        return NULL;
    char *end;
    long threads = strtol(field, &end, 10);
    if (end == field || threads - ours < 1)
        return NULL;
    int len = snprintf(num, sizeof(num), "%ld", threads - ours);
    fd = memfd_create("stat", strchr(mode, 'e') ? MFD_CLOEXEC : 0);
    if (fd < 0)
        return NULL;
    size_t head = (size_t)(field - buf), tail = (size_t)n - (size_t)(end - buf);
    FILE *f = NULL;
    if (write(fd, buf, head) == (ssize_t)head && write(fd, num, (size_t)len) == len &&
        write(fd, end, tail) == (ssize_t)tail && lseek(fd, 0, SEEK_SET) == 0)
        f = fdopen(fd, mode);
    if (!f)
        close(fd);
    return f;
}

static FILE *open_stat(fopen_fn real, const char *path, const char *mode)
{
    int ours;
    if (path && mode && mode[0] == 'r' && !strchr(mode, '+') && strcmp(path, SELF_STAT) == 0 &&
        (ours = mtp_writer_threads()) > 0) {
        int saved = errno;
        FILE *f = stat_without_ours(mode, ours);
        errno = saved;
        if (f)
            return f;
    }
    if (!real) {
        errno = ENOSYS;
        return NULL;
    }
    return real(path, mode);
}

MTP_EXPORT FILE *fopen(const char *path, const char *mode)
{
    return open_stat((fopen_fn)mtp_next_symbol(&real_fopen_fn, "fopen"), path, mode);
}

MTP_EXPORT FILE *fopen64(const char *path, const char *mode)
{
    return open_stat((fopen_fn)mtp_next_symbol(&real_fopen64_fn, "fopen64"), path, mode);
}
