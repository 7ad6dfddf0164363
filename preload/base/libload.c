/* Libraries loaded on first need (base/libload.h).
 *
 * Threads: the loader thread (writer/writer.c, load_beside), a program
 * thread whose stack the CFI walk cannot follow (libunwind, unwind/unwind.c)
 * or a unit test's loads; the writer and the hooks read the tables. Each
 * library's `state` is atomic: one thread moves it from LIB_NONE to
 * LIB_LOADING (CAS), fills the table, then publishes LIB_READY (release), so
 * that a reader of mtp_lib_ready sees its table filled. A library is opened
 * RTLD_LOCAL (the program's scope stays as it was) through mtp_lib_open, and
 * never closed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>

#include "base/util.h"
#include "base/libload.h"

enum { LIB_NONE = 0, LIB_LOADING, LIB_READY, LIB_FAILED, LIB_FORKED };

static const char *const soname[MTP_LIB_COUNT] = {"libdw.so.1", "libzstd.so.1",
                                                  "libunwind.so.8"};
static const char *const lost[MTP_LIB_COUNT] = {
    "native frames missing from the symbol cache keep their addresses",
    "snapshots are written uncompressed",
    "stacks the CFI walk cannot follow (signal frames, frames without unwind tables) are "
    "left empty"};

mtp_dwapi_t mtp_dw;
mtf_zapi_t mtp_zapi;
mtp_unwapi_t mtp_unw;
int (*mtp_lib_loader)(int lib) = mtp_lib_load;
void *(*mtp_lib_open)(const char *file, int mode);
static _Atomic int state[MTP_LIB_COUNT];   /* atomic: LIB_* (written by the loading thread) */

int mtp_lib_ready(int lib)
{
    return atomic_load_explicit(&state[lib], memory_order_acquire) == LIB_READY;
}

MTP_FORK_CODE void mtp_lib_atfork_child(void)
{
    for (int lib = 0; lib < MTP_LIB_COUNT; lib++)
        if (atomic_load(&state[lib]) == LIB_LOADING)
            atomic_store(&state[lib], LIB_FORKED);
}

/* dlsym of every name of a list (an X-macro of base/libload.h or
 * format/encode.h) into a table of type T, copied to DST when all are
 * found; else the first name missing is returned. */
#define LIB_SYM(f)                                                     \
    if (!(t.f = (__typeof__(f) *)dlsym(h, #f)))                       \
        return #f;
#define LIB_FILL(T, LIST, DST)                                         \
    do {                                                               \
        T t;                                                           \
        LIST(LIB_SYM)                                                  \
        DST = t;                                                       \
    } while (0)

/* The library's table filled from h; the first name missing, or NULL. */
static const char *fill(int lib, void *h)
{
    switch (lib) {
    case MTP_LIB_DW: LIB_FILL(mtp_dwapi_t, MTP_DW_FUNCS, mtp_dw); break;
    case MTP_LIB_UNWIND: LIB_FILL(mtp_unwapi_t, MTP_UNW_FUNCS, mtp_unw); break;
    default: LIB_FILL(mtf_zapi_t, MTF_ZAPI_FUNCS, mtp_zapi); break;
    }
    return NULL;
}

int mtp_lib_load(int lib)
{
    static int warned[MTP_LIB_COUNT];
    int st = atomic_load_explicit(&state[lib], memory_order_acquire);
    if (st == LIB_FORKED)
        mtp_warn_once(&warned[lib], "libload: this process forked while %s was loading; %s",
                      soname[lib], lost[lib]);
    if (st == LIB_NONE && !atomic_compare_exchange_strong(&state[lib], &st, LIB_LOADING))
        st = atomic_load_explicit(&state[lib], memory_order_acquire);   /* another thread's */
    if (st != LIB_NONE)
        return st == LIB_READY ? 0 : st == LIB_LOADING ? -EBUSY : -ENOENT;
    void *(*open_fn)(const char *, int) = mtp_lib_open;
    if (!open_fn)   /* the C library's: the one after memtrail's (hook/gotpatch.c) */
        open_fn = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    void *h = open_fn ? open_fn(soname[lib], RTLD_NOW | RTLD_LOCAL) : NULL;
    const char *missing = h ? fill(lib, h) : "not found";
    if (missing) {
        atomic_store_explicit(&state[lib], LIB_FAILED, memory_order_release);
        mtp_warn_once(&warned[lib], "libload: cannot load %s (%s%s): %s", soname[lib],
                      h ? "no " : "", missing, lost[lib]);
        return -ENOENT;
    }
    atomic_store_explicit(&state[lib], LIB_READY, memory_order_release);
    return 0;
}

const mtf_zapi_t *mtp_zapi_get(void)
{
    if (mtp_lib_ready(MTP_LIB_ZSTD) || mtp_lib_loader(MTP_LIB_ZSTD) == 0)
        return &mtp_zapi;
    return NULL;
}
