/* libdw and libelf loaded on first need (writer/dwapi.h).
 *
 * Threads: the loader thread (writer/writer.c, load_dw_beside) or a unit
 * test's loads; the writer reads the table; `state` is atomic so that a
 * reader of mtp_dw_ready sees the table filled. The library is opened
 * RTLD_LOCAL (the program's scope stays as it was) through mtp_dw_open, and
 * never closed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>

#include "base/util.h"
#include "writer/dwapi.h"

#define MTP_DW_SONAME "libdw.so.1"

enum { DW_NONE = 0, DW_READY, DW_FAILED, DW_FORKED };

mtp_dwapi_t mtp_dw;
int (*mtp_dw_loader)(void) = mtp_dw_load;
void *(*mtp_dw_open)(const char *file, int mode);
static _Atomic int state;    /* atomic: DW_* (written by the loading thread) */

int mtp_dw_ready(void)
{
    return atomic_load_explicit(&state, memory_order_acquire) == DW_READY;
}

void mtp_dw_atfork_child(int loading)
{
    if (loading && atomic_load(&state) != DW_READY)
        atomic_store(&state, DW_FORKED);
}

int mtp_dw_load(void)
{
    static int warned, forked_warned;
    int st = atomic_load_explicit(&state, memory_order_acquire);
    if (st == DW_FORKED)
        mtp_warn_once(&forked_warned, "symbolize: this process forked while libdw was loading; "
                      "native frames missing from the symbol cache keep their addresses");
    if (st != DW_NONE)
        return st == DW_READY ? 0 : -ENOENT;
    void *(*open_fn)(const char *, int) = mtp_dw_open;
    if (!open_fn)   /* the C library's: the one after memtrail's (hook/gotpatch.c) */
        open_fn = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    void *h = open_fn ? open_fn(MTP_DW_SONAME, RTLD_NOW | RTLD_LOCAL) : NULL;
    const char *missing = h ? NULL : MTP_DW_SONAME;
    mtp_dwapi_t t;
#define MTP_DW_SYM(f)                                                   \
    if (!missing && !(t.f = (__typeof__(f) *)dlsym(h, #f)))            \
        missing = #f;
    MTP_DW_FUNCS(MTP_DW_SYM)
#undef MTP_DW_SYM
    if (missing) {
        atomic_store_explicit(&state, DW_FAILED, memory_order_release);
        mtp_warn_once(&warned, "symbolize: cannot load %s (%s): native frames keep their addresses",
                      MTP_DW_SONAME, h ? missing : "not found");
        return -ENOENT;
    }
    mtp_dw = t;
    atomic_store_explicit(&state, DW_READY, memory_order_release);
    return 0;
}
