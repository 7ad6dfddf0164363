/*
 * Writing a named output file safely (`memtrail export -o OUT`).
 *
 * memtrail may run as root on a directory others can write to (/tmp), so the
 * file is never opened by its final name. A temporary
 * `.memtrail-out.<16 random hex digits>.tmp` is created in OUT's directory
 * with O_CREAT|O_EXCL|O_NOFOLLOW (nothing planted there, symlink or file, is
 * ever opened: the open fails with EEXIST and another name is drawn), mode
 * 0600 before the umask: a profile shows the traced program's code paths and
 * file names, so it is private to its owner like the snapshot it came from
 * (the preload writes snapshots 0600 too); `chmod` widens it when wanted.
 * The directory is opened once and every later step is relative to that
 * descriptor, so renaming the directory mid-way cannot redirect the rename.
 *
 * Durability: the temporary is fsync'd before the rename, so after a crash
 * OUT is either the old file or the whole new one, never a partial one; the
 * directory is then fsync'd so the rename itself survives (best effort: the
 * file is already in place when that fails, and it is not reported). rename()
 * replaces whatever entry OUT is, a symlink included, without following it.
 * On any failure the temporary is removed: nothing is left behind.
 *
 * Stale temporaries (SIGKILL, a power cut between the open and the rename)
 * are removed by the next write into the same directory. A writer holds an
 * exclusive flock() on its temporary from creation until after the rename,
 * so a temporary whose lock can be taken has no live writer: it is unlinked
 * while locked. A new temporary is checked after locking (st_nlink > 0): a
 * cleaner that took the lock first and unlinked it makes the writer draw
 * another name. Entries are opened with O_NOFOLLOW|O_NONBLOCK and must be
 * regular files, so a planted symlink or FIFO is left alone.
 *
 * The stream is a fopencookie() over the descriptor that keeps the first
 * write error: writers only see that a write failed (-EIO), the message
 * names the cause (ENOSPC, EDQUOT...).
 */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TMP_ATTEMPTS 16
#define TMP_PREFIX ".memtrail-out."
#define TMP_SUFFIX ".tmp"
#define TMP_HEX 16

static ssize_t cookie_write(void *cookie, const char *buf, size_t len)
{
    mta_outfile_t *o = cookie;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(o->fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!o->err)
                o->err = n < 0 ? errno : EIO;
            return done ? (ssize_t)done : -1;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* The descriptor outlives the stream: it holds the lock until after the
 * rename (mta_outfile_close). */
static int cookie_close(void *cookie)
{
    (void)cookie;
    return 0;
}

/* A name of ours: TMP_PREFIX, TMP_HEX lowercase hex digits, TMP_SUFFIX. */
static bool is_tmp_name(const char *name)
{
    size_t plen = strlen(TMP_PREFIX);
    if (strncmp(name, TMP_PREFIX, plen) != 0 || strlen(name) != plen + TMP_HEX + strlen(TMP_SUFFIX))
        return false;
    for (size_t i = plen; i < plen + TMP_HEX; i++)
        if (!strchr("0123456789abcdef", name[i]))
            return false;
    return strcmp(name + plen + TMP_HEX, TMP_SUFFIX) == 0;
}

/* Removes the temporaries in o's directory that no writer holds. */
static void clean_stale(const mta_outfile_t *o)
{
    int fd = openat(o->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;   /* an unreadable directory: nothing to list */
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_tmp_name(de->d_name) || strcmp(de->d_name, o->tmp) == 0)
            continue;
        int t = openat(o->dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (t < 0)
            continue;
        if (fstat(t, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 0 &&
            flock(t, LOCK_EX | LOCK_NB) == 0)
            unlinkat(o->dirfd, de->d_name, 0);
        close(t);
    }
    closedir(d);
}

static uint64_t random_u64(unsigned attempt)
{
    uint64_t r;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
        return r;
    /* No entropy yet: O_EXCL still keeps the open safe, only guessable. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
           attempt;
}

/* Splits path into its directory (opened into o->dirfd) and o->base. */
static int open_dir(mta_outfile_t *o, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return -EISDIR;
    if (!(o->base = strdup(base)))
        return -ENOMEM;
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return -ENOMEM;
    o->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (o->dirfd < 0 && errno == EACCES)  /* write-only directory: no fsync of it */
        o->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int rc = o->dirfd < 0 ? -errno : 0;
    free(dir);
    return rc;
}

static int fail(mta_outfile_t *o, int rc)
{
    mta_cli_error(o->cmd, "cannot write %s: %s", o->path, strerror(-rc));
    if (o->dirfd >= 0)
        close(o->dirfd);
    o->dirfd = -1;
    free(o->base);
    o->base = NULL;
    return rc;
}

int mta_outfile_open(mta_outfile_t *o, const char *cmd, const char *path)
{
    *o = (mta_outfile_t){ .cmd = cmd, .path = path, .dirfd = -1, .fd = -1 };
    int rc = open_dir(o, path), fd = -1;
    for (unsigned i = 0; rc == 0 && fd < 0; i++) {
        snprintf(o->tmp, sizeof(o->tmp), TMP_PREFIX "%0*llx" TMP_SUFFIX, TMP_HEX,
                 (unsigned long long)random_u64(i));
        fd = openat(o->dirfd, o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    MTA_OUTFILE_MODE);
        struct stat st;
        if (fd >= 0 && (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0)) {
            rc = -errno;
            close(fd);
            unlinkat(o->dirfd, o->tmp, 0);
            fd = -1;
        } else if (fd >= 0 && st.st_nlink == 0) {   /* a cleaner removed it first */
            close(fd);
            fd = -1;
        } else if (fd < 0 && (errno != EEXIST || i + 1 == TMP_ATTEMPTS)) {
            rc = -errno;
        }
        if (fd < 0 && rc == 0 && i + 1 == TMP_ATTEMPTS)
            rc = -EEXIST;
    }
    if (rc < 0)
        return fail(o, rc);
    o->fd = fd;
    clean_stale(o);
    if (!(o->f = fopencookie(o, "w", (cookie_io_functions_t){ .write = cookie_write,
                                                              .close = cookie_close }))) {
        rc = -errno;
        unlinkat(o->dirfd, o->tmp, 0);
        close(fd);
        o->fd = -1;
        return fail(o, rc);
    }
    return 0;
}

int mta_outfile_close(mta_outfile_t *o, int rc)
{
    if (fflush(o->f) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && ferror(o->f))
        rc = -EIO;
    if (rc == -EIO && o->err)   /* the cause, not just "a write failed" */
        rc = -o->err;
    if (rc == 0 && fsync(o->fd) != 0)
        rc = -errno;
    if (fclose(o->f) != 0 && rc == 0)
        rc = -errno;
    o->f = NULL;
    if (rc == 0 && renameat(o->dirfd, o->tmp, o->dirfd, o->base) != 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(o->dirfd, o->tmp, 0);
    close(o->fd);   /* releases the lock, after the rename or the unlink */
    o->fd = -1;
    if (rc < 0)
        return fail(o, rc);
    (void)fsync(o->dirfd);   /* best effort, see above */
    close(o->dirfd);
    o->dirfd = -1;
    free(o->base);
    o->base = NULL;
    return 0;
}
