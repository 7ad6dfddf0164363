/* Write-time symbolization for the preload: module map from /proc/self/maps,
 * function/offset/file:line/build id for native return addresses (libdw). */
#ifndef MTP_SYMBOLIZE_H
#define MTP_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mtp_module {
    uint64_t start, end;   /* lowest mapped address, one past the highest */
    uint64_t bias;         /* runtime address - ELF virtual address */
    const char *path;      /* never NULL */
    const char *build_id;  /* lower-case hex, "" if none */
} mtp_module_t;

typedef struct mtp_sym {
    const char *function;  /* mangled symbol name, "" if unknown */
    uint64_t offset;       /* pc - symbol start (0 if unknown) */
    const char *file;      /* source file, "" if no line info */
    uint32_t line;         /* 0 if no line info */
    int32_t module;        /* index into the module table, -1 if none */
} mtp_sym_t;

typedef struct mtp_symbolizer mtp_symbolizer_t;

/* Reads /proc/self/maps (raw read(2), no stdio) and prepares libdw for every
 * file-backed ELF module. Never takes the dynamic loader's lock and never
 * calls dl_iterate_phdr or dlopen. Returns 0 or a negative errno. */
int mtp_sym_open(mtp_symbolizer_t **out);
/* The module table, in address order; valid until mtp_sym_close. */
size_t mtp_sym_modules(mtp_symbolizer_t *s, const mtp_module_t **mods);
/* Symbolize a return address (looks up pc - 1 for the line, reports offset from
 * pc). Strings stay valid until mtp_sym_close. Always fills *out (unknowns are
 * "" / 0 / -1); returns 0. */
int mtp_sym_lookup(mtp_symbolizer_t *s, uint64_t pc, mtp_sym_t *out);
void mtp_sym_close(mtp_symbolizer_t *s);

#endif /* MTP_SYMBOLIZE_H */
