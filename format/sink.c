/* The encoder's byte sinks (format/encode.h). The file sink is the
 * preload's: it runs on the writer thread and must not allocate, so its
 * buffer is part of the struct; writes are retried on EINTR and the first
 * error sticks. The memory sink is the test composer's. */
#include "encode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- file ---- */
static void file_flush(mtf_file_sink_t *s)
{
    size_t done = 0;
    while (!s->err && done < s->len) {
        ssize_t n = write(s->fd, s->buf + done, s->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            s->err = n < 0 ? -errno : -EIO;
        else
            done += (size_t)n;
    }
    s->flushed += s->len;
    s->len = 0;
}

static int file_write(mtf_sink_t *sink, const void *buf, size_t len)
{
    mtf_file_sink_t *s = (mtf_file_sink_t *)sink;
    const uint8_t *p = buf;
    while (len) {
        size_t k = sizeof(s->buf) - s->len;
        if (k > len)
            k = len;
        memcpy(s->buf + s->len, p, k);
        s->len += k;
        p += k;
        len -= k;
        if (s->len == sizeof(s->buf))
            file_flush(s);
    }
    return s->err;
}

static int file_patch(mtf_sink_t *sink, uint64_t offset, const void *buf, size_t len)
{
    mtf_file_sink_t *s = (mtf_file_sink_t *)sink;
    if (!s->err && offset >= s->flushed && len <= s->len && offset - s->flushed <= s->len - len) {
        memcpy(s->buf + (offset - s->flushed), buf, len);
        return 0;
    }
    file_flush(s);
    if (!s->err && pwrite(s->fd, buf, len, (off_t)offset) != (ssize_t)len)
        s->err = -EIO;
    return s->err;
}

static int file_close(mtf_sink_t *sink)
{
    mtf_file_sink_t *s = (mtf_file_sink_t *)sink;
    file_flush(s);
    int r = s->err;
    if (close(s->fd) < 0 && !r)
        r = -errno;
    s->fd = -1;
    return r;
}

void mtf_file_sink_init(mtf_file_sink_t *s, int fd)
{
    s->sink = (mtf_sink_t){file_write, file_patch, file_close};
    s->fd = fd;
    s->err = 0;
    s->len = 0;
    s->flushed = 0;
}

/* ---- memory ---- */
static int mem_write(mtf_sink_t *sink, const void *buf, size_t len)
{
    mtf_mem_sink_t *s = (mtf_mem_sink_t *)sink;
    if (len > s->cap - s->len) {
        if (len > SIZE_MAX / 2 - s->len)
            return -ENOMEM;
        size_t cap = (s->len + len) * 2 + 64;
        uint8_t *d = realloc(s->data, cap);
        if (!d)
            return -ENOMEM;
        s->data = d;
        s->cap = cap;
    }
    if (len)
        memcpy(s->data + s->len, buf, len);
    s->len += len;
    return 0;
}

static int mem_patch(mtf_sink_t *sink, uint64_t offset, const void *buf, size_t len)
{
    mtf_mem_sink_t *s = (mtf_mem_sink_t *)sink;
    if (offset > s->len || len > s->len - offset)
        return -EINVAL;
    memcpy(s->data + offset, buf, len);
    return 0;
}

static int mem_close(mtf_sink_t *sink)
{
    (void)sink;
    return 0;
}

void mtf_mem_sink_init(mtf_mem_sink_t *s, uint8_t *data, size_t len, size_t cap)
{
    s->sink = (mtf_sink_t){mem_write, mem_patch, mem_close};
    s->data = data;
    s->len = len;
    s->cap = cap;
}
