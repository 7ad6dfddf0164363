/*
 * Late load: libmemtrail.so dlopen'd into a process that is already running
 * (`memtrail attach PID`, analyzer/cli/inject.c), then told to start and stop
 * through two exported functions the attacher calls on a thread it borrows:
 * memtrail_attach(settings) and memtrail_detach().
 *
 * Interposition by symbol order does not apply to an object loaded after
 * the program's symbols were bound: the hooks are put in the GOT slots
 * instead. Every loaded object's slots for the allocator's entry points
 * (the ones hooks.c defines), for dlopen, for the mmap domain (maphooks.c:
 * sound here as preloaded, since the writer leaves alone the ranges it
 * never saw, such as those mapped before the attach) and for sigaction and
 * signal (signals.c: the exit snapshot on SIGTERM and SIGINT, installed
 * once the slots lead there and taken out at the detach) are rewritten, libmemtrail's own
 * included (its writer frees what libdw allocated through our malloc, as in
 * a preloaded process); the vdso and objects still inside their dlopen are
 * left alone (hook/gotpatch.c). A slot is taken when it holds the function
 * the program's references are bound to (dlsym(RTLD_DEFAULT): libc's, or an
 * allocator the program links) or still points into its own object (a lazy
 * PLT slot not resolved yet), or the definition behind that function when
 * it is a non-PIE executable's canonical PLT entry (`def` below); a slot
 * holding anything else (an object bound to another allocator:
 * RTLD_DEEPBIND, -Bsymbolic) keeps it. hooks.c's real functions are those
 * definitions, so a hooked call and a bare one reach the same allocator. Objects loaded later are patched by the dlopen wrapper
 * (through mtp_dlopen_hook, after each successful dlopen); an object loaded
 * by other means (a dlopen through a pointer taken before the attach) is
 * not, and its allocations are not seen.
 *
 * Blocks allocated before the attach are unknown to the writer: their frees
 * are passed to the allocator and change no figure (writer/live.c ignores a
 * free of an unknown address), a realloc of one records only the new block.
 * Every snapshot carries MTSNAP_META_F_ATTACHED and META.start_ns is the
 * attach time (core/control.c). CPython's allocator domains are hooked at
 * the interpreter's next safe point, with the GIL (hook/pyattach.c).
 *
 * The writer thread runs only while every slot leads to the hooks: it is
 * started once they all do and ended before any is given back. Its own
 * allocations come from memtrail's private heap (hook/hooks.c), and a
 * block of it that crossed from a module whose slot already led here to
 * one whose slot did not yet (libc's strdup, freed by libdw or by
 * libmemtrail) would reach the C library's free.
 *
 * Detach: the `detach` snapshot first (it covers every event numbered before
 * it), then tracing goes off and the writer ends (core/control.c), then
 * every slot holding a hook gets the bound function back (but
 * libmemtrail's own: its code may still run on a block of our private heap).
 * The hooks stay:
 * a thread inside one, or code that kept a pointer read from a slot while
 * attached, goes on calling them, and they forward to the real functions.
 * A block allocated while attached is a block of the real allocator, so its
 * free after the detach (bare) is right.
 *
 * Threads: memtrail_attach and memtrail_detach run on the borrowed thread,
 * the program's other threads running; one at a time (`busy`). A slot is
 * written with one atomic store (hook/gotpatch.c), so a thread calling
 * through it meanwhile reaches the old target or the new one, both valid.
 * Never aborts the process: a failure is returned as -errno to the attacher,
 * which reports it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "core/core.h"
#include "hook/gotpatch.h"
#include "hook/hook.h"

/* The entry points redirected, one row each: symbol, our definition. */
#define LATE_HOOKS(X)                          \
    X("malloc", mtp_self_malloc)               \
    X("free", mtp_self_free)                   \
    X("calloc", mtp_self_calloc)               \
    X("realloc", mtp_self_realloc)             \
    X("reallocarray", mtp_self_reallocarray)   \
    X("posix_memalign", mtp_self_posix_memalign) \
    X("aligned_alloc", mtp_self_aligned_alloc) \
    X("memalign", mtp_self_memalign)           \
    X("valloc", mtp_self_valloc)               \
    X("pvalloc", mtp_self_pvalloc)             \
    X("malloc_usable_size", mtp_self_malloc_usable_size) \
    X("dlopen", mtp_self_dlopen)               \
    X("mmap", mtp_self_mmap)                   \
    X("mmap64", mtp_self_mmap64)               \
    X("munmap", mtp_self_munmap)               \
    X("mremap", mtp_self_mremap)               \
    X("sigaction", mtp_self_sigaction)         \
    X("signal", mtp_self_signal)               \
    X("pthread_getattr_np", mtp_self_pthread_getattr_np)

#define NAME_(name, self) name,
#define SELF_(name, self) (void *)self,
static const char *const names[] = {LATE_HOOKS(NAME_)};
static void *const hooks[] = {LATE_HOOKS(SELF_)};
#undef NAME_
#undef SELF_
#define NHOOKS (sizeof(names) / sizeof(names[0]))

/* Resolved by the first attach, then read-only. bound: what dlsym(RTLD_DEFAULT)
 * gives, the address the program takes; def: the definition its calls
 * reach. They differ for a function a non-PIE executable takes the address
 * of: bound is then its canonical PLT entry in the executable, which jumps
 * through the executable's own GOT slot, and the calls of every object are
 * bound to the definition (the loader skips such an entry for calls). The
 * real functions of hooks.c are the definitions: the canonical entry would
 * jump to the executable's slot, which holds our hook. */
static void *bound[NHOOKS];
static void *def[NHOOKS];
static _Atomic int busy;      /* atomic: an attach or detach is running */
static _Atomic int patching;  /* atomic: slots are redirected to the hooks */

/* First attach: the definitions behind canonical PLT entries, read from
 * the call slots of the object holding the entry. */
static void *find_def(void *arg, const mtp_got_slot_t *s)
{
    (void)arg;
    uintptr_t b = (uintptr_t)bound[s->which], cur = (uintptr_t)s->cur;
    if (s->plt && b >= s->lo && b < s->hi && (cur < s->lo || cur >= s->hi) &&
        s->cur != hooks[s->which])
        def[s->which] = s->cur;
    return NULL;
}

static void *def_of(const char *name)
{
    for (size_t i = 0; i < NHOOKS; i++)
        if (!strcmp(names[i], name))
            return def[i];
    return NULL;   /* not redirected (_exit): hooks.c keeps what it has */
}

/* Attach: a slot holding the bound function or its definition, or lazy
 * (still in its own object), gets our hook. */
static void *to_hook(void *arg, const mtp_got_slot_t *s)
{
    (void)arg;
    uintptr_t cur = (uintptr_t)s->cur;
    if (s->cur == hooks[s->which] || !bound[s->which])
        return NULL;
    if (s->cur == bound[s->which] || s->cur == def[s->which] || (cur >= s->lo && cur < s->hi))
        return hooks[s->which];
    return NULL;
}

/* Detach: a slot holding our hook gets back what the loader put there (a
 * call slot the definition, an address slot the bound address); ours keep it. */
static void *to_bound(void *arg, const mtp_got_slot_t *s)
{
    (void)arg;
    if (s->self || s->cur != hooks[s->which])
        return NULL;
    return s->plt ? def[s->which] : bound[s->which];
}

/* Whether p is the definition of `name` (not a PLT entry that jumps to it). */
static int dladdr_is(void *p, const char *name)
{
    Dl_info di;
    return dladdr(p, &di) && di.dli_sname && di.dli_saddr == p && !strcmp(di.dli_sname, name);
}

/* After each dlopen through the wrapper: the new objects' slots too. */
static void after_dlopen(void *handle)
{
    (void)handle;
    if (atomic_load(&patching)) {
        mtp_got_rewrite(names, NHOOKS, to_hook, NULL);
        mtp_py_attach_dlopened();
    }
}

/* Returns how many slots now lead to the hooks (> 0), or -errno: -EEXIST
 * when memtrail was preloaded, -EALREADY when already attached, -EBUSY
 * when an attach or detach is running, -ENOSYS when the program's
 * allocator cannot be found. */
MTP_EXPORT int memtrail_attach(const char *settings)
{
    if (!mtp_late)
        return -EEXIST;
    if (atomic_exchange(&busy, 1))
        return -EBUSY;
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_HOOK;   /* what this thread allocates meanwhile is not traced */
    int r = 0;
    if (atomic_load(&mtp_tracing)) {
        r = -EALREADY;
        goto out;
    }
    if (!def[0]) {
        for (size_t i = 0; i < NHOOKS; i++) {
            bound[i] = def[i] = dlsym(RTLD_DEFAULT, names[i]);
            if (bound[i] == hooks[i])
                bound[i] = def[i] = NULL;   /* loaded into the global scope: nothing to redirect */
        }
        dlerror();   /* a symbol absent (reallocarray before glibc 2.26): no error left behind */
        mtp_got_rewrite(names, NHOOKS, find_def, NULL);
        for (size_t i = 0; i < NHOOKS; i++)
            if (def[i] == bound[i] && bound[i] && !dladdr_is(bound[i], names[i]))
                def[i] = dlsym(RTLD_NEXT, names[i]);   /* a canonical entry, its slot lazy */
        dlerror();
    }
    if (!def[0] || !def[1]) {
        r = -ENOSYS;
        goto out;
    }
    mtp_hooks_late_real(def_of);
    mtp_map_hooks_late(def_of);
    mtp_signal_hooks_late_real(def_of("sigaction"));
    mtp_stackattr_late_real(def_of("pthread_getattr_np"));
    r = mtp_core_attach(settings);
    if (r < 0)
        goto out;
    atomic_store(&patching, 1);
    __atomic_store_n(&mtp_dlopen_hook, after_dlopen, __ATOMIC_RELEASE);
    r = mtp_got_rewrite(names, NHOOKS, to_hook, NULL);
    if (r >= 0) {
        int slots = r;
        r = mtp_core_attach_start();   /* the writer, now that every slot leads here */
        if (r >= 0)
            r = slots;
    }
    if (r < 0) {   /* a slot could not be written, or the writer not started: back out */
        mtp_core_detach();
        atomic_store(&patching, 0);
        __atomic_store_n(&mtp_dlopen_hook, NULL, __ATOMIC_RELEASE);
        mtp_got_rewrite(names, NHOOKS, to_bound, NULL);
    } else {
        mtp_signal_hooks_attach();   /* SIGTERM, SIGINT: the exit snapshot (core/termsig.c) */
        mtp_py_attach();   /* CPython: its hooks at its next safe point (hook/pyattach.c) */
    }
out:
    mtp_tls_guard = guard;
    atomic_store(&busy, 0);
    return r;
}

/* Returns 0 and the detach snapshot's path in path[0..len) (may be NULL),
 * or -errno: -ENOENT when not attached, -EEXIST when memtrail was preloaded
 * (it cannot leave), -EBUSY as above, -EDEADLK when called on memtrail's
 * writer thread (nothing done: call it on another), or the snapshot's
 * error (tracing stops all the same). */
MTP_EXPORT int memtrail_detach(char *path, size_t len)
{
    if (!mtp_late)
        return -EEXIST;
    if (atomic_exchange(&busy, 1))
        return -EBUSY;
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_HOOK;
    int r = -ENOENT;
    if (atomic_load(&mtp_tracing)) {
        r = mtp_core_detach_snapshot(path, len);
        if (r == -EDEADLK)
            goto out;   /* called on the writer thread: nothing done */
        mtp_py_detach();   /* CPython's allocators back at its next safe point */
        mtp_signal_hooks_detach();   /* the program's dispositions back */
        /* tracing off, the writer ended; then the slots, unless the writer
         * still runs (its warning said so): they keep leading to the hooks,
         * which pass every call through */
        int w = mtp_core_detach();
        if (w < 0) {
            r = w;
            goto out;
        }
        atomic_store(&patching, 0);
        __atomic_store_n(&mtp_dlopen_hook, NULL, __ATOMIC_RELEASE);
        int g = mtp_got_rewrite(names, NHOOKS, to_bound, NULL);
        if (g < 0)
            mtp_warn("detach: a GOT slot could not be restored (%s): its calls keep going "
                     "through memtrail's hooks, untraced", strerrordesc_np(-g));
    }
out:
    mtp_tls_guard = guard;
    atomic_store(&busy, 0);
    return r;
}

/* memtrail_attach's own address (hooks.c: preloaded or loaded late). */
extern __typeof__(memtrail_attach) mtp_self_memtrail_attach
    __attribute__((alias("memtrail_attach"), visibility("hidden")));
