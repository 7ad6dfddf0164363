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

/* Reads DIR/<build_id>.sym and calls CB for each record. Returns 1 when the
 * file is valid and complete (new records may be appended), 0 when it is
 * absent, stale (the debug files it was made from changed), torn or from
 * another version (the next write replaces it), or -errno when the
 * directory is unusable. Strings passed to CB live until CB returns. */
int mtp_symfile_load(const char *dir, const char *build_id,
                     void (*cb)(void *ctx, const mtp_symrec_t *rec), void *ctx);

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
