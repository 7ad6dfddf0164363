/* libdw and libelf, loaded when the symbolizer first needs them (dwapi.c).
 *
 * libmemtrail.so is not linked with them: a process whose frames are all in
 * the symbol cache (writer/symcache.c) never maps them, and loading the two
 * with libz and libbz2 cost every traced process about 0.9 ms and 35 page
 * faults (docs/performance.md). The functions the symbolizer calls are the
 * list below, once; a call site names one as DW(name)(...).
 */
#ifndef MTP_DWAPI_H
#define MTP_DWAPI_H

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <libelf.h>

#define MTP_DW_FUNCS(X)                                                                  \
    X(dwfl_begin) X(dwfl_end) X(dwfl_report_begin_add) X(dwfl_report_elf)               \
    X(dwfl_report_end) X(dwfl_offline_section_address) X(dwfl_module_info)              \
    X(dwfl_module_build_id) X(dwfl_module_getdwarf) X(dwfl_module_getsymtab)            \
    X(dwfl_module_getsym_info) X(dwfl_module_getsrc) X(dwfl_module_addrdie)             \
    X(dwfl_lineinfo) X(dwfl_line_comp_dir)                                              \
    X(dwarf_attr) X(dwarf_attr_integrate) X(dwarf_child) X(dwarf_siblingof)             \
    X(dwarf_tag) X(dwarf_haspc) X(dwarf_formudata) X(dwarf_formstring)                  \
    X(dwarf_getsrcfiles) X(dwarf_filesrc)                                               \
    X(dwelf_elf_gnu_build_id) X(dwelf_dwarf_gnu_debugaltlink)                           \
    X(elf_begin) X(elf_end) X(elf_nextscn) X(elf_getscn) X(elf_getshdrstrndx)           \
    X(elf_compress) X(elf_update) X(gelf_getshdr)

typedef struct mtp_dwapi {
#define MTP_DW_FIELD(f) __typeof__(f) *f;
    MTP_DW_FUNCS(MTP_DW_FIELD)
#undef MTP_DW_FIELD
} mtp_dwapi_t;

/* Filled once by mtp_dw_load; read-only after mtp_dw_ready says 1. */
extern mtp_dwapi_t mtp_dw;
#define DW(f) (mtp_dw.f)

/* 1 once the table is filled (acquire: the pointers are then readable). */
int mtp_dw_ready(void);

/* Loads libdw.so.1 (and with it libelf) and fills the table: 0, or a
 * negative errno when it cannot be had (then for good: one warning). Takes
 * the loader's lock: the writer calls it through mtp_dw_loader. */
int mtp_dw_load(void);

/* A fork child, where `loading`: the parent's loader thread was not done
 * (a fork let through after a wait ran out, writer/writer.c). libdw may be
 * half loaded there, so the child never uses it (one warning on need). */
void mtp_dw_atfork_child(int loading);

/* The dlopen that loads it: memtrail's own (hook/gotpatch.c), installed by
 * the constructor, so that in an attached process libdw's GOT slots lead to
 * the hooks as every object's do (hook/late.c: the symbolizer hands libdw
 * blocks of memtrail's heap, which libdw frees). NULL (unit tests): the C
 * library's. Set once at start-up, read-only after. */
extern void *(*mtp_dw_open)(const char *file, int mode);

/* How the symbolizer gets the table loaded when mtp_dw_ready says 0:
 * mtp_dw_load itself by default (unit tests, a thread that holds no lock a
 * program thread could wait for); the writer installs a function that first
 * lets go of its lock (writer/writer.c, "The writer away"). */
extern int (*mtp_dw_loader)(void);

#endif /* MTP_DWAPI_H */
