/* Write-time symbolization for the preload: module map from /proc/self/maps,
 * function/offset/file:line/build id for native return addresses (libdw),
 * kept for the life of the process and shared across processes by build id. */
#ifndef MTP_SYMBOLIZE_H
#define MTP_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "writer/symcache.h"

typedef struct mtp_module {
    uint64_t start, end;   /* lowest mapped address, one past the highest */
    uint64_t bias;         /* runtime address - ELF virtual address */
    const char *path;      /* never NULL */
    const char *build_id;  /* lower-case hex, "" if none */
} mtp_module_t;

/* What a return address is: the function of its symbol, and when the call
 * instruction belongs to code inlined into it, the inlined functions too
 * (inl[0] the innermost, whose line is the address's own; each inl[i] was
 * called from inl[i + 1], the last from the symbol's function at
 * file:line). */
typedef struct mtp_sym {
    const char *function;  /* mangled symbol name, "" if unknown */
    uint64_t offset;       /* pc - symbol start (0 if unknown) */
    const char *file;      /* source file, "" if no line info */
    uint32_t line;         /* 0 if no line info */
    int32_t module;        /* index into the module table, -1 if none */
    uint32_t ninl;         /* inlined functions at pc - 1, 0 if none */
    const mtp_symline_t *inl;   /* ninl entries, innermost first */
} mtp_sym_t;

typedef struct mtp_symbolizer mtp_symbolizer_t;

/* Reads /proc/self/maps (raw read(2), no stdio) into the module table. Never
 * takes the dynamic loader's lock and never calls dl_iterate_phdr or dlopen;
 * libdw is opened only when a lookup misses every cache. Returns 0 or a
 * negative errno. */
int mtp_sym_open(mtp_symbolizer_t **out);
/* The same from MAPS, /proc/self/maps's text read by the caller
 * (NUL-terminated; not kept), or read here when NULL. */
int mtp_sym_open_maps(mtp_symbolizer_t **out, const char *maps);
/* Also keep and reuse results in DIR/<build id>.sym (symcache.c); DIR is
 * created mode 0700 if missing. 0, or -errno and no disk cache. */
int mtp_sym_set_cache(mtp_symbolizer_t *s, const char *dir);
/* Re-reads /proc/self/maps. A module still mapped where it was (same file,
 * device, inode, offset and range) keeps its results; the results of one
 * unmapped or replaced are forgotten, so an address is never answered from
 * the module that was there before. Module indices change. 0 or -errno. */
int mtp_sym_refresh(mtp_symbolizer_t *s);
/* The module table, in address order; valid until the next refresh. */
size_t mtp_sym_modules(mtp_symbolizer_t *s, const mtp_module_t **mods);
/* Symbolize a return address (looks up pc - 1 for the line, reports offset from
 * pc). Strings live until mtp_sym_close (an mmap'd arena). Always fills
 * *out (unknowns are "" / 0 / -1); returns 0. A pc answered once is answered
 * from memory until its module is unmapped. */
int mtp_sym_lookup(mtp_symbolizer_t *s, uint64_t pc, mtp_sym_t *out);
/* End of a batch of lookups (a snapshot): appends the new results to the
 * disk cache and releases libdw (its inflated debug sections, its file
 * descriptors). Lookups may follow; libdw is reopened on the next miss. */
void mtp_sym_flush(mtp_symbolizer_t *s);
/* Fork child, inherited in the middle of a snapshot: ends the libdw session
 * (closes its files) without saving anything; the next snapshot opens one
 * again when it misses. */
void mtp_sym_atfork_child(mtp_symbolizer_t *s);
/* Counters, for tests and the memory figure. */
typedef struct mtp_sym_stats {
    uint64_t lookups, resolved;   /* calls; of those, answered by libdw */
    uint64_t disk_loaded;         /* records read from the disk cache */
    uint64_t outside;             /* lookups outside the module's executable segments */
    uint64_t dwfl_opens;          /* times libdw was set up */
    uint64_t units_walked;        /* modules whose units were walked in a window (walk_units) */
    size_t bytes;                 /* mapped by the tables and the arena */
} mtp_sym_stats_t;
void mtp_sym_stats(const mtp_symbolizer_t *s, mtp_sym_stats_t *out);
void mtp_sym_close(mtp_symbolizer_t *s);   /* flushes first */

#endif /* MTP_SYMBOLIZE_H */
