/*
 * Objects CPython reuses from its free lists. A tuple, list, dict, float,
 * frame (3.8-3.10), ... that dies may be kept on a free list and handed out
 * again without a call to the allocator, so its block would keep the stack
 * of its first allocation. tracemalloc moves the block's trace to the line
 * that reused it: every new object, fresh or reused, passes through
 * _Py_NewReference, which calls tracemalloc when it traces (3.8-3.12
 * _PyTraceMalloc_NewReference behind `_Py_tracemalloc_config.tracing`,
 * 3.13 the PyRefTracer tracemalloc installs). memtrail does the same without
 * touching tracemalloc's state or the reference tracer's one slot: it
 * wraps _Py_NewReference itself (and 3.12+'s _Py_NewReferenceNoTotal) in
 * the GOT slots through which libpython and extension modules call it.
 *
 * Where it can be done: libpython calls its own exported functions through
 * its PLT when it is built with semantic interposition (pyenv's and
 * python.org's shared builds of 3.9-3.13); then every call is caught. When
 * the calls are bound at link time (a static libpython, as Debian's
 * /usr/bin/python3.11, which LTO also inlines at 286 places; a
 * -fno-semantic-interposition build), or the function does not exist (3.8:
 * a static inline function of the headers), nothing is patched, not even
 * extension modules' calls (a mix would move some reuses and not others),
 * and every snapshot says so (MTSNAP_META_F_PY_NO_REUSE). MEMTRAIL_PY_REUSE=0
 * (a diagnostic, to measure the cost) turns it off the same way.
 *
 * Fresh or reused: the Python domain wrappers (pyhooks.c) note on their
 * thread the block they last recorded (mtp_py_fresh). A new object whose
 * block is that one was just allocated: the note is consumed and nothing
 * is recorded (the hot path: a type load, a compare, a TLS store). Any
 * other object is a reuse (or an allocation another one came between: then
 * the RETRACE names the stack it already has, and the writer changes
 * nothing): its current stack is recorded as a RETRACE of its block, which
 * the writer applies only to a live block of a Python domain, as
 * tracemalloc only finds the blocks of its domains.
 *
 * A reuse may be the first place a code object is seen (a module whose
 * code makes nothing but objects from free lists): the code registry then
 * gives it its id on the spot, as from an allocation wrapper
 * (mtp_py_in_newref). _Py_NewReference is called by the interpreter on an
 * object it is making, never from inside an allocator, so the allocators
 * may be called there (when memtrail's wrapper is the MEM domain's top:
 * not under tracemalloc's, which would trace the slot's block). Holding the code object until an allocation sees it
 * (what the registry does where it may not allocate) kept it alive for
 * good when none ever did: 400 of 400 such code objects under memtrail, 0
 * bare (tests/python/code_lifetime.py), and at exit their constants and
 * names as possibly lost blocks valgrind does not see.
 *
 * Threads: _Py_NewReference runs with the GIL held. The wrappers keep errno
 * and take the guard for the push; nested allocations (registering a code
 * object) pass through as in any hook. The slots are written before the
 * interpreter initializes (pyhooks.c's setup), or after `memtrail attach`
 * with the GIL held (hook/pyattach.c, which puts CPython's function back
 * at the detach), and after each dlopen, one
 * atomic store each (hook/gotpatch.c), so a thread calling meanwhile goes
 * either to CPython's function or to the wrapper, which calls it.
 */
#include <dlfcn.h>
#include <errno.h>

#include "hook/gotpatch.h"
#include "hook/hook.h"
#include "python/py.h"

typedef void (*newref_fn)(void *op);
static newref_fn real_newref, real_nototal;   /* pre-init, then read-only */
static const mtp_pyabi_t *abi;                /* pre-init, then read-only */
static int reuse_on;                          /* pre-init, then read-only */

MTP_TLS uintptr_t mtp_py_fresh;
MTP_TLS int mtp_py_in_newref;

/* A block of memtrail's own (python/pyown.c) the program's object is made
 * in: from now on a block of the program's, allocated here (when sampling,
 * if the sampler picks it, as an allocation of its size). */
static MTP_NOINLINE int adopt(uintptr_t block)
{
    size_t size;
    unsigned domain;
    if (!mtp_py_own_forget((const void *)block, &size, &domain))
        return 0;
    if (MTP_UNLIKELY(mtp_cfg.sample) && !mtp_sampled(size))
        return 1;
    int saved = errno;
    mtp_thread_t *t = mtp_enter();
    if (t) {
        mtp_tls_guard = MTP_GUARD_HOOK;
        mtp_py_in_newref = 1;
        mtp_record_alloc(t, (void *)block, size, domain);
        mtp_py_in_newref = 0;
        mtp_tls_guard = MTP_GUARD_NONE;
    }
    errno = saved;
    return 1;
}

/* Not a fresh object: its block (when recorded) moves to the current stack. */
static MTP_NOINLINE void retrace(uintptr_t block)
{
    if (MTP_UNLIKELY(mtp_py_own_maybe((const void *)block)) && adopt(block))
        return;
    if (MTP_UNLIKELY(mtp_cfg.sample) && !(mtp_sampset_maybe(block) && mtp_sampset_has(block)))
        return;
    int saved = errno;
    mtp_thread_t *t = mtp_enter();
    if (t) {
        mtp_tls_guard = MTP_GUARD_HOOK;
        mtp_py_in_newref = 1;
        mtp_record_retrace(t, (const void *)block);
        mtp_py_in_newref = 0;
        mtp_tls_guard = MTP_GUARD_NONE;
    }
    errno = saved;
}

static inline void seen(void *op)
{
    if (MTP_UNLIKELY(mtp_tls_guard != MTP_GUARD_NONE))
        return;
    uintptr_t block = mtp_py_obj_block(abi, op);
    if (MTP_LIKELY(block == mtp_py_fresh)) {
        mtp_py_fresh = 0;   /* one new object per allocation */
        return;
    }
    retrace(block);
}

static void w_newref(void *op)
{
    seen(op);
    real_newref(op);
}

static void w_nototal(void *op)
{
    seen(op);
    real_nototal(op);
}

static void *lookup(void *h, const char *name)
{
    void *f = dlsym(h, name);
    if (!f)
        dlerror();   /* leave no error string behind */
    return f;
}

size_t mtp_py_reuse_targets(const char **names, void **to, size_t n)
{
    if (!reuse_on)
        return n;
    names[n] = "_Py_NewReference";
    to[n++] = (void *)w_newref;
    if (real_nototal) {
        names[n] = "_Py_NewReferenceNoTotal";
        to[n++] = (void *)w_nototal;
    }
    return n;
}

void mtp_py_reuse_patch(void)
{
    const char *names[MTP_PY_REUSE_TARGETS];
    void *to[MTP_PY_REUSE_TARGETS];
    mtp_got_patch_set(names, to, mtp_py_reuse_targets(names, to, 0));
}

void mtp_py_reuse_unpatch(void)
{
    if (!reuse_on)
        return;
    mtp_got_patch("_Py_NewReference", (void *)real_newref);
    if (real_nototal)
        mtp_got_patch("_Py_NewReferenceNoTotal", (void *)real_nototal);
}

int mtp_py_reuse_setup(void *h)
{
    abi = mtp_pyapi.abi;
    newref_fn f = (newref_fn)lookup(h, "_Py_NewReference");
    if (!mtp_cfg.py_reuse || !abi || !f ||
        mtp_got_count("_Py_NewReference", (const void *)f) <= 0) {
        atomic_fetch_or(&mtp_meta_flags, MTSNAP_META_F_PY_NO_REUSE);
        return 0;
    }
    real_newref = f;
    real_nototal = (newref_fn)lookup(h, "_Py_NewReferenceNoTotal");
    reuse_on = 1;
    mtp_py_reuse_patch();
    return 1;
}
