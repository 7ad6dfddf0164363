/* The symbolizer's stores (writer thread only): an mmap'd string arena whose
 * strings live as long as the process, and the per-build-id symbol files that
 * every traced process of a user shares (symcache.c explains the file). */
#ifndef MTP_SYMCACHE_H
#define MTP_SYMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTP_DEBUG_ROOT "/usr/lib/debug"  /* the one tree of separate debug files searched */

/* ---- strings: interned, never freed, never on the traced heap ---- */
typedef struct mtp_arena {
    struct arena_map *maps;      /* every mapping, newest first */
    char *chunk;                 /* current chunk */
    size_t used, cap;
    struct mtp_istr *set;        /* intern set (mmap'd), power-of-two slots */
    size_t nset, capset;
    size_t bytes;                /* mapped bytes, for the memory figure */
} mtp_arena_t;

/* The interned, NUL-terminated copy of S[0..n), or NULL when out of memory.
 * The same bytes give the same pointer. */
const char *mtp_arena_intern(mtp_arena_t *a, const char *s, size_t n);
/* N bytes, 8-aligned, not interned; NULL when out of memory. */
void *mtp_arena_alloc(mtp_arena_t *a, size_t n);
void mtp_arena_free(mtp_arena_t *a);     /* unmaps everything: strings die */

/* ---- growable mmap'd byte buffer (pending records) ---- */
typedef struct mtp_buf {
    char *p;
    size_t len, cap;
} mtp_buf_t;
bool mtp_buf_append(mtp_buf_t *b, const void *p, size_t n);
void mtp_buf_free(mtp_buf_t *b);

/* ---- symbol files ---- */
/* One resolved return address of a module: key addr = pc - load bias. Its
 * frames, innermost first: the functions inlined at the address (each with
 * the line it is at), then the function of the symbol, at the line of the
 * call site of the first inlined one (or the address's own line). */
#define MTP_SYM_MAX_FRAMES 16            /* 15 levels of inlining kept; more are cut */
typedef struct mtp_symline {
    const char *function;        /* NUL-terminated; mangled as found */
    const char *file;
    uint32_t line;
} mtp_symline_t;
typedef struct mtp_symrec {
    uint64_t addr;
    uint64_t offset;
    uint32_t nframes;            /* 1..MTP_SYM_MAX_FRAMES */
    mtp_symline_t frames[MTP_SYM_MAX_FRAMES];
} mtp_symrec_t;

/* Appends REC to B in the file's record layout. Returns false (nothing
 * appended) when out of memory or a name is too long to keep. */
bool mtp_symrec_encode(mtp_buf_t *b, const mtp_symrec_t *rec);

/* A module's symbol file, read whole and indexed by address: a record is
 * checked and decoded only when asked for, so a process pays for the
 * addresses it needs, not for all that every process of the user saved. */
typedef struct mtp_symfile {
    mtp_buf_t buf;               /* the file's bytes */
    size_t records_at;           /* the first record; 0: nothing usable */
    uint32_t *slot;              /* a record's offset, 0 = empty */
    size_t cap;                  /* slots, a power of two */
    bool current;                /* complete and valid: appending keeps it so */
    bool in_arena;               /* buf and slot are the arena's (never unmapped) */
} mtp_symfile_t;

/* Reads DIR/<build_id>.sym into F (which it clears first) and indexes its
 * records; a small file and its index go in ARENA (no mapping of their
 * own: a short process reads several such files), a big one is mmap'd. Returns 1 when the file is valid and complete as far as its
 * records' bounds show (new records may be appended), 0 when it is absent,
 * stale (the debug files it was made from changed), torn or from another
 * version (F then answers nothing or what lies before the tear, and the
 * next write replaces the file), or -errno when the directory is unusable. */
int mtp_symfile_open(mtp_symfile_t *f, mtp_arena_t *arena, const char *dir, const char *build_id);

/* The record of ADDR into REC (its strings point into F's buffer, valid
 * until mtp_symfile_close). false when F has none, or when the record fails
 * its check: that record is forgotten and F is no longer current. */
bool mtp_symfile_find(mtp_symfile_t *f, uint64_t addr, mtp_symrec_t *rec);

/* Appends F's records that pass their checks to OUT, as they are: what a
 * replacement of the file keeps. false when out of memory. */
bool mtp_symfile_valid(mtp_symfile_t *f, mtp_buf_t *out);

/* Bytes F holds mapped. */
size_t mtp_symfile_bytes(const mtp_symfile_t *f);

void mtp_symfile_close(mtp_symfile_t *f);

/* Writes RECS (encoded records) to DIR/<build_id>.sym: appended when
 * APPEND, else as a new file (header, then RECS) renamed over the old one.
 * DEBUGFILE is the separate debug file the records were read from (NULL or
 * "" for none): the header keeps its identity so a later load can tell when
 * it changed. Returns 0 or -errno. */
int mtp_symfile_write(const char *dir, const char *build_id, bool append,
                      const char *debugfile, const void *recs, size_t len);

/* Creates DIR (and its parent) mode 0700 if missing; 0 when DIR is a
 * directory owned by the effective user and writable by no one else, else
 * -errno (-EPERM for a directory someone else could write into). */
int mtp_symdir_check(const char *dir);

#endif /* MTP_SYMCACHE_H */
