/* Libraries loaded when memtrail first needs them (libload.c): libdw
 * (with libelf) to name a frame the symbol cache does not hold, libzstd to
 * compress a record of a snapshot (format/encode.h), both for the writer;
 * libunwind (with liblzma) for a stack the cached CFI walk cannot follow
 * (unwind/unwind.c), on the program's thread.
 *
 * libmemtrail.so is linked with none of them: a process whose frames are
 * all in the symbol cache, whose snapshots' records are all small (stored)
 * and whose stacks the CFI walk follows to the end maps none of them.
 * Loading libdw and libelf with libz and libbz2 cost every traced process
 * about 0.9 ms and 35 page faults, libzstd about 0.3 ms, libunwind with
 * liblzma 0.15 to 0.2 ms (docs/performance.md). The functions used are one
 * list per library, once: libdw's and libunwind's below, called as
 * DW(name)(...) and mtp_unw.name(...); libzstd's in format/encode.h.
 */
#ifndef MTP_LIBLOAD_H
#define MTP_LIBLOAD_H

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <libelf.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "encode.h"

enum { MTP_LIB_DW = 0, MTP_LIB_ZSTD, MTP_LIB_UNWIND, MTP_LIB_COUNT };

#define MTP_DW_FUNCS(X)                                                                  \
    X(dwfl_begin) X(dwfl_end) X(dwfl_report_begin_add) X(dwfl_report_elf)               \
    X(dwfl_report_end) X(dwfl_offline_section_address) X(dwfl_module_info)              \
    X(dwfl_module_build_id) X(dwfl_module_getdwarf) X(dwfl_module_getsymtab)            \
    X(dwfl_module_getsym_info) X(dwfl_module_getsrc) X(dwfl_module_addrdie)             \
    X(dwfl_lineinfo) X(dwfl_line_comp_dir)                                              \
    X(dwarf_attr) X(dwarf_attr_integrate) X(dwarf_child) X(dwarf_siblingof)             \
    X(dwarf_tag) X(dwarf_haspc) X(dwarf_formudata) X(dwarf_formstring)                  \
    X(dwarf_getsrcfiles) X(dwarf_filesrc) X(dwarf_getelf) X(dwarf_next_unit)           \
    X(dwarf_offdie)                                                                     \
    X(dwelf_elf_gnu_build_id) X(dwelf_dwarf_gnu_debugaltlink)                           \
    X(elf_begin) X(elf_end) X(elf_nextscn) X(elf_getscn) X(elf_getshdrstrndx)           \
    X(elf_compress) X(elf_update) X(gelf_getshdr) X(gelf_getehdr) X(elf_strptr)         \
    X(elf_getdata) X(elf_rawfile)

typedef struct mtp_dwapi {
#define MTP_DW_FIELD(f) __typeof__(f) *f;
    MTP_DW_FUNCS(MTP_DW_FIELD)
#undef MTP_DW_FIELD
} mtp_dwapi_t;

#define MTP_UNW_FUNCS(X) X(unw_backtrace)

typedef struct mtp_unwapi {
#define MTP_UNW_FIELD(f) __typeof__(f) *f;
    MTP_UNW_FUNCS(MTP_UNW_FIELD)
#undef MTP_UNW_FIELD
} mtp_unwapi_t;

/* Filled once by mtp_lib_load; read-only after mtp_lib_ready says 1. */
extern mtp_dwapi_t mtp_dw;
extern mtf_zapi_t mtp_zapi;
extern mtp_unwapi_t mtp_unw;
#define DW(f) (mtp_dw.f)

/* 1 once library `lib`'s table is filled (acquire: its pointers are then
 * readable). */
int mtp_lib_ready(int lib);

/* Loads library `lib` (libdw.so.1 brings libelf, libunwind.so.8 liblzma)
 * and fills its table: 0, -EBUSY while another thread loads it, or -ENOENT
 * when it cannot be had, for good (one warning). Takes the loader's lock:
 * the writer calls it through mtp_lib_loader; the caller's allocations
 * meanwhile must be memtrail's, the loader's registered as roots
 * (mtp_tls_lib_loader, base/state.h). */
int mtp_lib_load(int lib);

/* How the writer's layers get a library loaded when mtp_lib_ready says 0:
 * mtp_lib_load itself by default (unit tests, a thread that holds no lock a
 * program thread could wait for); the writer installs a function that has
 * a thread of its own load it (writer/writer.c, load_beside). -ENOENT: not
 * to be had; another error: not now, ask again later. */
extern int (*mtp_lib_loader)(int lib);

/* libzstd's table for the encoder (mtf_zstd_new_api's get_api), loaded
 * through mtp_lib_loader on first need; NULL when not to be had now. */
const mtf_zapi_t *mtp_zapi_get(void);

/* A fork child: a library some thread of the parent was loading (a fork let
 * through after the writer's wait ran out, writer/writer.c, or a program
 * thread loading libunwind) may be half loaded here, so the child never uses
 * it (one warning on need). Called, for every library, by the one place
 * that resets the child's state (core/control.c). */
void mtp_lib_atfork_child(void);

/* The dlopen that loads them: memtrail's own (hook/gotpatch.c), installed by
 * the constructor, so that in an attached process the libraries' GOT slots
 * lead to the hooks as every object's do (hook/late.c: the symbolizer hands
 * libdw blocks of memtrail's heap, which libdw frees). NULL (unit tests):
 * the C library's. Set once at start-up, read-only after. */
extern void *(*mtp_lib_open)(const char *file, int mode);

#endif /* MTP_LIBLOAD_H */
