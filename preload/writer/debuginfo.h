/* libdwfl callbacks for the symbolizer that search local files only: the
 * /usr/lib/debug build-id tree and the .gnu_debuglink places (debuginfo.c). */
#ifndef MTP_DEBUGINFO_H
#define MTP_DEBUGINFO_H

#include <elfutils/libdwfl.h>
#include <link.h>
#include <stddef.h>

extern const Dwfl_Callbacks mtp_dwfl_callbacks;

/* Keep uncompressed copies of compressed separate debug files in DIR (the
 * symbol cache directory, as <build id>.debug) and read those; NULL: never.
 * Writer thread only; DIR must outlive its use. */
void mtp_debuginfo_set_copies(const char *dir);

/* s[0..2n] := lower-case hex of bits[0..n), NUL-terminated. */
void mtp_hex_encode(const unsigned char *bits, size_t n, char *out);

/* A line table's file NAME made absolute with COMP_DIR (may be NULL) and
 * lexically normalized; malloc'd, NULL on ENOMEM. */
char *mtp_source_path(const char *comp_dir, const char *name);

/* The first PT_LOAD and the GNU build id of the ELF file FD (pread(2) only,
 * no libelf). 0 or -ENOEXEC. */
typedef struct mtp_elf_info {
    ElfW(Phdr) load;
    uint64_t text_lo, text_hi;      /* virtual addresses its executable segments span */
    char build_id[2 * 64 + 1];      /* lower-case hex, "" if none */
} mtp_elf_info_t;
int mtp_elf_info(int fd, mtp_elf_info_t *out);
/* The same from the module's image in this process, base being where its
 * file offset 0 is mapped (no file opened: the thousandth `echo` of a shell
 * script reads the build ids of its ten modules without ten opens). 0, or
 * -EFAULT when the image does not hold them (then read the file). */
int mtp_elf_info_image(uintptr_t base, mtp_elf_info_t *out);

#endif /* MTP_DEBUGINFO_H */
