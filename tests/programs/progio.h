/* write(2)-based output helpers shared by the programs run under the tracer:
 * no stdio, so libc allocates nothing on their behalf in the measured parts. */
#ifndef PROGIO_H
#define PROGIO_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void prog_put(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* v in decimal at the end of buf (24 bytes); returns where it starts. */
static inline char *prog_utoa(char buf[24], unsigned long v)
{
    char *p = buf + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

static inline void prog_put_u(int fd, unsigned long v)
{
    char buf[24];
    prog_put(fd, prog_utoa(buf, v));
}

/* A small file's first size - 1 bytes into buf, NUL-terminated, with open
 * and read only (nothing allocated): the bytes read, or -1. */
static inline ssize_t prog_read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return n;
}

/* The value of a /proc/<pid>/status line ("Threads:", "State:"), blanks
 * skipped, read into buf (prog_read_small), or NULL. */
static inline const char *prog_status(const char *status_path, const char *key, char *buf,
                                      size_t size)
{
    if (prog_read_small(status_path, buf, size) < 0)
        return NULL;
    char *p = strstr(buf, key);
    if (!p)
        return NULL;
    for (p += strlen(key); *p == ' ' || *p == '\t'; p++)
        ;
    return p;
}

/* The "Threads:" line of /proc/<pid>/status, or -1. */
static inline long prog_threads(const char *status_path)
{
    char buf[4096];
    const char *v = prog_status(status_path, "\nThreads:", buf, sizeof(buf));
    return v ? strtol(v, NULL, 10) : -1;
}

/* 1 when the process is asleep ("State:" S). */
static inline int prog_sleeping(const char *status_path)
{
    char buf[4096];
    const char *v = prog_status(status_path, "\nState:", buf, sizeof(buf));
    return v && *v == 'S';
}

/* 1 when thread tid of this process is blocked in system call nr: the
 * first field of /proc/self/task/<tid>/syscall ("running" while it runs). */
static inline int prog_in_syscall(long tid, long nr)
{
    char path[64] = "/proc/self/task/", num[24], buf[256];
    strcat(path, prog_utoa(num, (unsigned long)tid));
    strcat(path, "/syscall");
    if (prog_read_small(path, buf, sizeof(buf)) < 0)
        return 0;
    char *end;
    long got = strtol(buf, &end, 10);
    return end != buf && got == nr;
}

/* Report a failed step on stderr and exit with status 2. */
static inline void prog_die(const char *prog, const char *what)
{
    prog_put(2, prog);
    prog_put(2, ": ");
    prog_put(2, what);
    prog_put(2, "\n");
    exit(2);
}

/* Whether /proc/self/maps names a file whose path holds `part` (read whole
 * into a static buffer: no allocation). Exits with status 2 when it cannot
 * be read. */
static inline int prog_mapped(const char *prog, const char *part)
{
    static char maps[1 << 20];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;
    if (fd < 0)
        prog_die(prog, "cannot open /proc/self/maps");
    while (len < sizeof(maps) - 1 && (n = read(fd, maps + len, sizeof(maps) - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    maps[len] = '\0';
    return strstr(maps, part) != NULL;
}

/* Read one line from fd 0 byte by byte (no stdio buffering). Returns the
 * line length without the newline, or -1 on EOF/error. */
static inline long prog_read_line(char *buf, size_t len)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        if (n + 1 < len)
            buf[n++] = c;
    }
    buf[n] = '\0';
    return (long)n;
}

/* Overwrite 64 KiB of the dead stack below the caller's frame, where the
 * callees before it kept their (now dropped) pointers: a leak program calls
 * it last, so that only the pointers it means to keep are left for the
 * leak scan (and valgrind) to find. */
__attribute__((noinline, unused)) static void prog_scrub_stack(void)
{
    volatile unsigned char junk[64 * 1024];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = 0;
}

/* A few calls that overwrite the caller-saved registers, where the calls
 * before them may have left a dropped pointer: a leak program calls it
 * last, after prog_scrub_stack. */
__attribute__((noinline, unused)) static uintptr_t prog_clobber(uintptr_t a, uintptr_t b,
                                                                uintptr_t c, uintptr_t d)
{
    return (a ^ b) + (c ^ d);
}

__attribute__((noinline, unused)) static void prog_clobber_registers(const char *prog)
{
    if (prog_clobber(1, 2, 3, 4) + prog_clobber(5, 6, 7, 8) + prog_clobber(9, 10, 11, 12) != 38)
        prog_die(prog, "bad arithmetic");
}

#endif /* PROGIO_H */
