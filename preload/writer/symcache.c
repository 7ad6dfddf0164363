/* The symbolizer's stores: a string arena and the shared symbol files.
 *
 * Threads: writer thread only (and the unit tests). Nothing here touches the
 * traced heap: the arena, the intern set and the buffers are mmap'd, so they
 * hold no pointer the leak scan could mistake for a reference and add nothing
 * to the live table.
 *
 * Symbol files. Symbolizing a module's return addresses with libdw costs
 * tens of milliseconds the first time (libdw inflates the compressed debug
 * sections of e.g. libc6-dbg whole), and every traced process would pay it
 * again for the same libc. So the results are kept per build id, in
 * DIR/<build id>.sym (DIR: MEMTRAIL_SYMCACHE, by default
 * $XDG_CACHE_HOME/memtrail/symbols or ~/.cache/memtrail/symbols), and a
 * process that finds an address there never opens libdw for it. A build id
 * names the bytes of the module, so an answer depends only on it and on the
 * separate debug file libdw used: the header records that file's path and
 * identity (device, inode, size, mtime; zeros when none), and a load rejects
 * the file when it changed, or when a debug file now exists under
 * /usr/lib/debug/.build-id that the file was not made from (libc6-dbg
 * installed later). A debug file found only through .gnu_debuglink and
 * installed after the cache file was made is not noticed: delete DIR.
 * DIR also holds uncompressed copies of compressed debug files,
 * <build id>.debug (debuginfo.c), which libdw maps instead of inflating the
 * original's sections in every process that misses.
 *
 *   file   := header record*
 *   header := magic "MTSYMC2\n", u32 header bytes, u32 0,
 *             u64 dev, ino, size, mtime_ns, char path[] (NUL, zero padded to 8)
 *   record := u32 bytes, u32 check (FNV-1a of what follows it),
 *             u64 addr (pc - load bias), u64 offset, u32 nframes, u32 0,
 *             nframes x frame (innermost first: the functions inlined at
 *             the address, then the symbol's function; mtp_symrec_t)
 *   frame  := u32 line, u16 function bytes, u16 file bytes (both with
 *             their NUL), function, file
 * Host byte order: the files never leave the machine. Processes append whole
 * records with one O_APPEND write(2) each flush. A reader indexes the records
 * by address (their lengths and addresses only) and checks and decodes a
 * record when a snapshot needs its address: the file of libc grows with
 * every program of the user, and a short process needs a few dozen of its
 * records. A tail shorter than its length says (torn), or a record that fails
 * its check, makes the next write of that process replace the file (header,
 * every record that checks, then its own), written under a temporary name
 * and renamed into place. The directory is created mode 0700
 * and used only when the effective user owns it and no one else can write
 * to it; files are opened O_NOFOLLOW and must belong to that user.
 */
#include "writer/symcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define SYMC_MAGIC "MTSYMC2\n"     /* 1: one frame per record, no inlining */
#define SYMC_HDR 48                      /* fixed part of the header */
#define SYMC_REC 32                      /* fixed part of a record */
#define SYMC_FRAME 8                     /* fixed part of a frame */
#define SYMC_MAX_FILE (64u << 20)        /* larger files are neither read nor grown */
#define ARENA_CHUNK (64u << 10)
#define DEBUG_BUILD_ID_DIR MTP_DEBUG_ROOT "/.build-id/"

typedef struct mtp_istr {
    const char *s;                       /* NULL = empty slot */
    uint32_t len, hash;
} mtp_istr_t;

static void *map_anon(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uint32_t fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *s++) * 16777619u;
    return h;
}

/* ---- arena ------------------------------------------------------------- */

/* Every mapping of the arena starts with this header, chained for the free. */
typedef struct arena_map {
    struct arena_map *prev;
    size_t size;
} arena_map_t;

static void *arena_map(mtp_arena_t *a, size_t size)
{
    arena_map_t *m = map_anon(size);
    if (!m)
        return NULL;
    m->prev = a->maps;
    m->size = size;
    a->maps = m;
    a->bytes += size;
    return m + 1;
}

static char *arena_copy(mtp_arena_t *a, const char *s, size_t n)
{
    char *p;
    if (n + 1 > ARENA_CHUNK / 4) {              /* a long name: its own mapping */
        p = arena_map(a, (sizeof(arena_map_t) + n + 1 + 4095) & ~(size_t)4095);
    } else {
        if (!a->chunk || a->cap - a->used < n + 1) {
            char *c = arena_map(a, ARENA_CHUNK);
            if (!c)
                return NULL;
            a->chunk = c;
            a->used = 0;
            a->cap = ARENA_CHUNK - sizeof(arena_map_t);
        }
        p = a->chunk + a->used;
        a->used += n + 1;
    }
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *mtp_arena_alloc(mtp_arena_t *a, size_t n)
{
    if (n + 8 > ARENA_CHUNK / 4)
        return NULL;
    if (a->chunk)
        a->used = (a->used + 7) & ~(size_t)7;   /* chunks start 8-aligned (16-byte header) */
    if (!a->chunk || a->used > a->cap || a->cap - a->used < n) {
        char *c = arena_map(a, ARENA_CHUNK);
        if (!c)
            return NULL;
        a->chunk = c;
        a->used = 0;
        a->cap = ARENA_CHUNK - sizeof(arena_map_t);
    }
    void *p = a->chunk + a->used;
    a->used += n;
    return p;
}

void mtp_arena_free(mtp_arena_t *a)
{
    for (arena_map_t *m = a->maps, *prev; m; m = prev) {
        prev = m->prev;
        munmap(m, m->size);
    }
    if (a->set)
        munmap(a->set, a->capset * sizeof *a->set);
    *a = (mtp_arena_t){ 0 };
}

static bool arena_grow_set(mtp_arena_t *a)
{
    size_t cap = a->capset ? a->capset * 2 : 1024;
    mtp_istr_t *nt = map_anon(cap * sizeof *nt);
    if (!nt)
        return false;
    mtp_populate(nt, cap * sizeof *nt);   /* a hash table: written all over */
    for (size_t i = 0; i < a->capset; i++) {
        if (!a->set[i].s)
            continue;
        size_t j = a->set[i].hash & (cap - 1);
        while (nt[j].s)
            j = (j + 1) & (cap - 1);
        nt[j] = a->set[i];
    }
    if (a->set) {
        munmap(a->set, a->capset * sizeof *a->set);
        a->bytes -= a->capset * sizeof *a->set;
    }
    a->bytes += cap * sizeof *nt;
    a->set = nt;
    a->capset = cap;
    return true;
}

const char *mtp_arena_intern(mtp_arena_t *a, const char *s, size_t n)
{
    if (n >= UINT32_MAX)
        return NULL;
    if (a->nset * 2 >= a->capset && !arena_grow_set(a))
        return NULL;
    uint32_t h = fnv1a(s, n);
    size_t j = h & (a->capset - 1);
    while (a->set[j].s) {
        if (a->set[j].hash == h && a->set[j].len == n && memcmp(a->set[j].s, s, n) == 0)
            return a->set[j].s;
        j = (j + 1) & (a->capset - 1);
    }
    char *p = arena_copy(a, s, n);
    if (!p)
        return NULL;
    a->set[j] = (mtp_istr_t){ p, (uint32_t)n, h };
    a->nset++;
    return p;
}

/* ---- buffers ----------------------------------------------------------- */

static bool buf_reserve(mtp_buf_t *b, size_t more)
{
    if (b->cap - b->len >= more)
        return true;
    size_t cap = b->cap ? b->cap : 16384;
    while (cap - b->len < more)
        cap *= 2;
    void *p = b->p ? mremap(b->p, b->cap, cap, MREMAP_MAYMOVE) : map_anon(cap);
    if (!p || p == MAP_FAILED)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool mtp_buf_append(mtp_buf_t *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

void mtp_buf_free(mtp_buf_t *b)
{
    mtp_unmap(b->p, b->cap);
    *b = (mtp_buf_t){ 0 };
}

bool mtp_symrec_encode(mtp_buf_t *b, const mtp_symrec_t *r)
{
    size_t len = SYMC_REC;
    if (r->nframes < 1 || r->nframes > MTP_SYM_MAX_FRAMES)
        return false;
    for (uint32_t i = 0; i < r->nframes; i++) {
        size_t fl = strlen(r->frames[i].function) + 1, sl = strlen(r->frames[i].file) + 1;
        if (fl > UINT16_MAX || sl > UINT16_MAX)
            return false;
        len += SYMC_FRAME + fl + sl;
    }
    if (len > UINT32_MAX / 2 || !buf_reserve(b, len))
        return false;
    char *p = b->p + b->len, *q = p + SYMC_REC;
    uint32_t len32 = (uint32_t)len, zero = 0;
    memcpy(p, &len32, 4);
    memcpy(p + 8, &r->addr, 8);
    memcpy(p + 16, &r->offset, 8);
    memcpy(p + 24, &r->nframes, 4);
    memcpy(p + 28, &zero, 4);
    for (uint32_t i = 0; i < r->nframes; i++) {
        const mtp_symline_t *f = &r->frames[i];
        uint16_t fl = (uint16_t)(strlen(f->function) + 1), sl = (uint16_t)(strlen(f->file) + 1);
        memcpy(q, &f->line, 4);
        memcpy(q + 4, &fl, 2);
        memcpy(q + 6, &sl, 2);
        memcpy(q + SYMC_FRAME, f->function, fl);
        memcpy(q + SYMC_FRAME + fl, f->file, sl);
        q += SYMC_FRAME + fl + sl;
    }
    uint32_t check = fnv1a(p + 8, len - 8);
    memcpy(p + 4, &check, 4);
    b->len += len;
    return true;
}

/* The frames of the record P[0..len) (checked) into R; false when they do
 * not exactly fill it. */
static bool decode_frames(const char *p, uint32_t len, mtp_symrec_t *r)
{
    uint32_t n, pad, at = SYMC_REC;
    memcpy(&n, p + 24, 4);
    memcpy(&pad, p + 28, 4);
    if (n < 1 || n > MTP_SYM_MAX_FRAMES || pad != 0)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t fl, sl;
        if (len - at < SYMC_FRAME)
            return false;
        memcpy(&r->frames[i].line, p + at, 4);
        memcpy(&fl, p + at + 4, 2);
        memcpy(&sl, p + at + 6, 2);
        at += SYMC_FRAME;
        if (fl == 0 || sl == 0 || len - at < (uint32_t)fl + sl ||
            p[at + fl - 1] != '\0' || p[at + fl + sl - 1] != '\0')
            return false;
        r->frames[i].function = p + at;
        r->frames[i].file = p + at + fl;
        at += (uint32_t)fl + sl;
    }
    r->nframes = n;
    return at == len;
}

/* ---- files --------------------------------------------------------------- */

typedef struct stamp {
    uint64_t dev, ino, size, mtime_ns;
} stamp_t;

static bool stamp_of(const char *path, stamp_t *st)
{
    struct stat sb;
    *st = (stamp_t){ 0 };
    if (!path || !path[0] || stat(path, &sb) < 0)
        return false;
    *st = (stamp_t){ (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
                     (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec };
    return true;
}

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n < 4 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

static bool file_path(char *out, size_t cap, const char *dir, const char *id, const char *tail)
{
    if (!valid_id(id))
        return false;
    int n = snprintf(out, cap, "%s/%s.sym%s", dir, id, tail);
    return n > 0 && (size_t)n < cap;
}

/* The debug file libdw would take first for ID: the build-id tree. */
static void build_id_debug_path(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, DEBUG_BUILD_ID_DIR "%.2s/%s.debug", id, id + 2);
}

static bool owned_regular(int fd, struct stat *sb)
{
    return fstat(fd, sb) == 0 && S_ISREG(sb->st_mode) && sb->st_uid == geteuid();
}

/* 1 when the header still describes the debug files there are. A header
 * naming DIR/<id>.debug (the uncompressed copy, debuginfo.c) was made from a
 * file with the same build id: what appears since changes nothing. */
static int header_current(const char *dir, const char *id, const char *buf, size_t len,
                          size_t *hdr_len)
{
    uint32_t hl;
    stamp_t want, now;
    if (len < SYMC_HDR || memcmp(buf, SYMC_MAGIC, 8) != 0)
        return 0;
    memcpy(&hl, buf + 8, 4);
    if (hl < SYMC_HDR + 1 || hl > len || hl % 8 || buf[hl - 1] != '\0')
        return 0;
    memcpy(&want, buf + 16, sizeof want);
    const char *path = buf + SYMC_HDR;
    if (path[0] && (!stamp_of(path, &now) || memcmp(&now, &want, sizeof now) != 0))
        return 0;
    char bid[PATH_MAX], copy[PATH_MAX];
    build_id_debug_path(id, bid, sizeof bid);
    snprintf(copy, sizeof copy, "%s/%s.debug", dir, id);
    if (strcmp(path, bid) != 0 && strcmp(path, copy) != 0 && stamp_of(bid, &now))
        return 0;                       /* a debug file appeared since */
    *hdr_len = hl;
    return 1;
}

static uint64_t rec_addr(const mtp_symfile_t *f, size_t off)
{
    uint64_t a;
    memcpy(&a, f->buf.p + off + 8, 8);
    return a;
}

static size_t addr_slot(uint64_t addr, size_t cap)
{
    return (size_t)((addr * MTP_HASH_MUL) >> 32) & (cap - 1);
}

/* The record at OFF (in bounds) decoded into R when it passes its check. */
static bool rec_check(const mtp_symfile_t *f, size_t off, mtp_symrec_t *r)
{
    const char *p = f->buf.p + off;
    uint32_t len, check;
    memcpy(&len, p, 4);
    memcpy(&check, p + 4, 4);
    if (fnv1a(p + 8, len - 8) != check || !decode_frames(p, len, r))
        return false;
    memcpy(&r->addr, p + 8, 8);
    memcpy(&r->offset, p + 16, 8);
    return true;
}

/* The record at OFF's length; 0 when it does not fit before the end. */
static uint32_t rec_len(const mtp_symfile_t *f, size_t off)
{
    uint32_t len;
    if (f->buf.len - off < SYMC_REC)
        return 0;
    memcpy(&len, f->buf.p + off, 4);
    return len < SYMC_REC || len > f->buf.len - off ? 0 : len;
}

/* The file's bytes and its index: both in the arena when they fit there
 * together (a quarter of a chunk), else mapped. */
static bool symfile_room(mtp_symfile_t *f, mtp_arena_t *arena, size_t bytes)
{
    size_t slots = 16;
    while (slots < 2 * (bytes / SYMC_REC + 1))
        slots *= 2;                     /* half full at most, however short the records */
    size_t room = ((bytes + 1 + 7) & ~(size_t)7) + slots * sizeof *f->slot;
    char *p = arena ? mtp_arena_alloc(arena, room) : NULL;
    if (p) {
        f->in_arena = true;
        f->buf = (mtp_buf_t){ p, 0, bytes + 1 };
        f->slot = (uint32_t *)(p + room - slots * sizeof *f->slot);
        f->cap = slots;
        return true;
    }
    if (!buf_reserve(&f->buf, bytes + 1))
        return false;
    mtp_populate(f->buf.p, bytes);      /* one call, not a fault a page inside read(2) */
    return true;
}

int mtp_symfile_open(mtp_symfile_t *f, mtp_arena_t *arena, const char *dir, const char *build_id)
{
    char path[PATH_MAX];
    struct stat sb;
    size_t at, end, n = 0;
    int rc = 0;

    *f = (mtp_symfile_t){ 0 };
    if (!file_path(path, sizeof path, dir, build_id, ""))
        return 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!owned_regular(fd, &sb) || sb.st_size > SYMC_MAX_FILE ||
        !symfile_room(f, arena, (size_t)sb.st_size))
        goto out;
    while (f->buf.len < (size_t)sb.st_size) {        /* read(2), not mmap: no SIGBUS */
        ssize_t k = read(fd, f->buf.p + f->buf.len, (size_t)sb.st_size - f->buf.len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        f->buf.len += (size_t)k;
    }
    if (!header_current(dir, build_id, f->buf.p, f->buf.len, &at))
        goto out;
    /* The records' bounds: a tail too short for its length is torn. */
    uint32_t len;
    for (end = at; end < f->buf.len && (len = rec_len(f, end)); end += len)
        n++;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (f->in_arena) {
        cap = f->cap;                                  /* sized for the file's bytes */
    } else if (n) {
        if (!(f->slot = map_anon(cap * sizeof *f->slot)))
            goto out;
        mtp_populate(f->slot, cap * sizeof *f->slot);  /* a hash table: written all over */
    }
    f->cap = n ? cap : 0;
    for (size_t off = at; off < end; off += rec_len(f, off)) {
        uint64_t a = rec_addr(f, off);
        size_t j = addr_slot(a, cap);
        while (f->slot[j] && rec_addr(f, f->slot[j]) != a)
            j = (j + 1) & (cap - 1);
        if (!f->slot[j])
            f->slot[j] = (uint32_t)off;                /* an address's first record wins */
    }
    f->records_at = at;
    f->buf.len = end;                                  /* a torn tail is dropped */
    f->current = end == (size_t)sb.st_size;
    rc = f->current;
out:
    close(fd);
    if (!f->records_at)
        mtp_symfile_close(f);
    return rc;
}

bool mtp_symfile_find(mtp_symfile_t *f, uint64_t addr, mtp_symrec_t *rec)
{
    if (!f->cap)
        return false;
    for (size_t j = addr_slot(addr, f->cap); f->slot[j]; j = (j + 1) & (f->cap - 1)) {
        if (rec_addr(f, f->slot[j]) != addr)
            continue;
        if (rec_check(f, f->slot[j], rec))
            return true;
        f->current = false;                            /* damaged: rewritten without it */
        return false;
    }
    return false;
}

bool mtp_symfile_valid(mtp_symfile_t *f, mtp_buf_t *out)
{
    mtp_symrec_t r;
    for (size_t off = f->records_at, len; off && off < f->buf.len; off += len) {
        len = rec_len(f, off);
        if (!rec_check(f, off, &r))
            continue;
        size_t j = addr_slot(r.addr, f->cap);          /* an address once: its first record */
        while (f->slot[j] && rec_addr(f, f->slot[j]) != r.addr)
            j = (j + 1) & (f->cap - 1);
        if (f->slot[j] == off && !mtp_buf_append(out, f->buf.p + off, len))
            return false;
    }
    return true;
}

size_t mtp_symfile_bytes(const mtp_symfile_t *f)
{
    return f->in_arena ? 0 : f->buf.cap + f->cap * sizeof *f->slot;   /* the arena counts its own */
}

void mtp_symfile_close(mtp_symfile_t *f)
{
    if (!f->in_arena) {
        mtp_buf_free(&f->buf);
        if (f->slot)
            mtp_unmap(f->slot, f->cap * sizeof *f->slot);
    }
    *f = (mtp_symfile_t){ 0 };
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = write(fd, s, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

int mtp_symfile_write(const char *dir, const char *build_id, bool append,
                      const char *debugfile, const void *recs, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    struct stat sb;
    int rc, fd;

    if (!file_path(path, sizeof path, dir, build_id, ""))
        return -EINVAL;
    if (append) {
        fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        rc = !owned_regular(fd, &sb) ? -EPERM
           : (uint64_t)sb.st_size + len > SYMC_MAX_FILE ? -EFBIG
           : write_all(fd, recs, len);
        close(fd);
        return rc;
    }
    char hdr[SYMC_HDR + PATH_MAX + 8];
    stamp_t st;
    if (!debugfile || !stamp_of(debugfile, &st))
        debugfile = "";
    size_t pl = strlen(debugfile) + 1;
    if (pl > PATH_MAX)
        return -ENAMETOOLONG;
    uint32_t hl = (uint32_t)((SYMC_HDR + pl + 7) & ~(size_t)7), zero = 0;
    memset(hdr, 0, hl);
    memcpy(hdr, SYMC_MAGIC, 8);
    memcpy(hdr + 8, &hl, 4);
    memcpy(hdr + 12, &zero, 4);
    memcpy(hdr + 16, &st, sizeof st);
    memcpy(hdr + SYMC_HDR, debugfile, pl);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, hdr, hl);
    if (rc == 0)
        rc = write_all(fd, recs, len);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int check_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat sb;
    int rc = fstat(fd, &sb) < 0 ? -errno
           : sb.st_uid != geteuid() || (sb.st_mode & 022) ? -EPERM : 0;
    close(fd);
    return rc;
}

int mtp_symdir_check(const char *dir)
{
    char part[PATH_MAX];
    if (dir[0] != '/')
        return -EINVAL;
    int rc = check_dir(dir);
    if (rc != -ENOENT)
        return rc;
    if (snprintf(part, sizeof part, "%s", dir) >= (int)sizeof part)
        return -ENAMETOOLONG;
    for (char *p = part + 1;; p++) {            /* mkdir -p, mode 0700 */
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(part, 0700) < 0 && errno != EEXIST)
            return -errno;
        if (!(*p = c))
            break;
    }
    return check_dir(dir);
}
