/*
 * The interposed allocator entry points.
 *
 * Hot path, one screen per function: guard, call the real function, the
 * sampling decision (record/sample.h: always yes in exact mode), stack id,
 * counter, push. Everything else (resolving the real functions, the bootstrap
 * pool, a thread's first call, pass-through when not tracing) is in cold,
 * noinline functions.
 *
 * Ordering: events are recorded only through record/record.h, which holds
 * the numbering protocol (when each kind of event takes its number, and why
 * every number taken is pushed).
 *
 * Inside a hook nothing may call a libc function that can allocate: the
 * per-thread guard turns any nested call (from libunwind, dlsym, or our cold
 * paths) into a plain pass-through. errno is preserved across every hook.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/libload.h"
#include "base/privheap.h"
#include "base/util.h"
#include "core/core.h"
#include "hook/gotpatch.h"
#include "hook/hook.h"

/* The libc functions memtrail calls through, one row each: field, symbol,
 * type. The exported entry points themselves are listed in libmemtrail.map
 * (tests/unit/test_exports.c checks that list against the shared object). */
#define MTP_REAL_FUNCTIONS(X)                                          \
    X(calloc, "calloc", void *(*)(size_t, size_t))                      \
    X(malloc, "malloc", void *(*)(size_t))                              \
    X(realloc, "realloc", void *(*)(void *, size_t))                    \
    X(posix_memalign, "posix_memalign", int (*)(void **, size_t, size_t)) \
    X(aligned_alloc, "aligned_alloc", void *(*)(size_t, size_t))        \
    X(memalign, "memalign", void *(*)(size_t, size_t))                  \
    X(valloc, "valloc", void *(*)(size_t))                              \
    X(pvalloc, "pvalloc", void *(*)(size_t))                            \
    X(malloc_usable_size, "malloc_usable_size", size_t (*)(void *))     \
    X(exit_, "_exit", void (*)(int))                                    \
    X(Exit_, "_Exit", void (*)(int))                                    \
    X(free, "free", void (*)(void *))

typedef struct mtp_real {
#define X(field, name, type) __typeof__(type) field;
    MTP_REAL_FUNCTIONS(X)
#undef X
} mtp_real_t;

static mtp_real_t real;           /* written once by mtp_hooks_resolve */
static _Atomic int resolving;     /* atomic: dlsym in progress */

/* ---- bootstrap pool: serves the allocations dlsym makes while we resolve ---- */
#define BOOT_SIZE (64 * 1024)
static MTP_LARGE _Alignas(64) char boot_pool[BOOT_SIZE];
static _Atomic size_t boot_used;

static inline int is_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)boot_pool < BOOT_SIZE;
}

static MTP_COLD void *boot_alloc(size_t size)
{
    size_t need = ((size + 15) & ~(size_t)15) + 16;
    size_t off = atomic_fetch_add(&boot_used, need);
    if (off + need > BOOT_SIZE)
        return NULL;
    *(size_t *)(boot_pool + off) = size;
    return boot_pool + off + 16;   /* zeroed: static storage, never reused */
}

static size_t boot_size(const void *p)
{
    return *(const size_t *)((const char *)p - 16);
}

/* ---- the writer thread's own allocations: memtrail's private heap ----
 * (base/privheap.h), or the C library's when it cannot serve. Its blocks
 * are freed and reallocated here whichever thread does it. */
static inline int is_ours(const void *p)
{
    return is_boot(p) || mtp_ph_owns(p);
}

/* ...but never the dynamic loader's own (a thread's dynamic TLS blocks and
 * DTV, a dlopen'd module's link map), though the loader asks on the
 * writer's thread: glibc frees them with its own free, past every slot, when
 * it gives a dead thread's cached stack to a new thread (allocatestack.c,
 * get_cached_stack), and reallocates a DTV with its own realloc. The caller
 * is the loader when the hook's return address is in its code (`ra`, the
 * exported function's). Set once by mtp_init, read-only afterwards. */
static uintptr_t loader_lo, loader_hi;

static inline int from_loader(const void *ra)
{
    return (uintptr_t)ra - loader_lo < loader_hi - loader_lo;
}

static MTP_COLD void *internal_malloc(size_t size, const void *ra)
{
    if (from_loader(ra)) {
        void *p = real.malloc(size);
        if (p && mtp_tls_lib_loader)
            mtp_loader_block_add(p, size);   /* a root of the scan's (base/state.h) */
        return p;
    }
    void *p = mtp_ph_malloc(size);
    return p ? p : real.malloc(size);
}

static MTP_COLD void *internal_calloc(size_t n, size_t size, const void *ra)
{
    if (from_loader(ra)) {
        void *p = real.calloc(n, size);
        if (p && mtp_tls_lib_loader)
            mtp_loader_block_add(p, n * size);
        return p;
    }
    void *p = mtp_ph_calloc(n, size);
    return p ? p : real.calloc(n, size);
}

static MTP_COLD void *realloc_private(void *old, size_t size)
{
    if (size == 0) {   /* glibc: realloc(p, 0) frees p */
        mtp_ph_free(old);
        return NULL;
    }
    void *p = mtp_ph_realloc(old, size);
    if (!p && (p = real.malloc(size)) != NULL) {
        size_t have = mtp_ph_usable_size(old);
        memcpy(p, old, have < size ? have : size);
        mtp_ph_free(old);
    }
    return p;
}

/* Loaded by `memtrail attach` into a running process (hook/late.c): set by
 * the constructor, then read-only. */
int mtp_late;

static int mtp_hooks_resolve(void)
{
    if (real.free)
        return 0;
    atomic_store(&resolving, 1);
    /* In the table's order: free last, since a non-NULL free means "resolved".
     * Preloaded, the next definition after ours; loaded late, the one the
     * program's own references are bound to (RTLD_DEFAULT: libc's, or an
     * allocator the program links), which the GOT slots hold. */
#define X(field, name, type) real.field = (type)dlsym(mtp_late ? RTLD_DEFAULT : RTLD_NEXT, name);
    MTP_REAL_FUNCTIONS(X)
#undef X
    atomic_store(&resolving, 0);
    return real.malloc && real.free && real.calloc && real.realloc ? 0 : -ENOSYS;
}

/* Returns the calling thread's ring when this call should be traced. */
MTP_COLD mtp_thread_t *mtp_enter_cold(void)
{
    if (!real.free && !atomic_load(&resolving))
        mtp_hooks_resolve();
    if (mtp_tls_guard || !atomic_load_explicit(&mtp_tracing, memory_order_relaxed) ||
        !real.free)
        return NULL;
    if (MTP_UNLIKELY(getpid() != mtp_pid))   /* a vfork child: shares our memory */
        return NULL;
    mtp_tls_guard = MTP_GUARD_HOOK;
    int saved = errno;
    mtp_thread_t *t = mtp_tls_thread;
    if (!t)
        t = mtp_tls_thread = mtp_thread_acquire();
    errno = saved;
    mtp_tls_guard = MTP_GUARD_NONE;
    return t;
}

/* ---- the interposed functions ---- */

/* The sampler decides from the size alone (record/sample.h), first thing:
 * an allocation it skips is a tail call to the real function, and so is a
 * free whose address the sampled set's filter does not hold. Neither needs
 * the thread's ring, its guard or the tracing switch: what is not sampled
 * is not recorded in any context (a guarded call's bytes count for the
 * sampler all the same, which biases nothing: the points stay a Poisson
 * process over the bytes, and a point that falls in a guarded call is
 * lost). In exact mode the sampler picks everything, and the functions
 * below, out of line, do what the hooks always did: guard, real call, and
 * the recording. A picked allocation that fails is not recorded. Before the
 * configuration is read (bootstrap), the mean is 0: everything takes the
 * picked path, which knows the real functions may not be resolved yet. */
static MTP_NOINLINE void *malloc_picked(size_t size, const void *ra)
{
    mtp_thread_t *t = mtp_enter();
    if (MTP_UNLIKELY(!t)) {
        if (mtp_tls_guard == MTP_GUARD_INTERNAL)
            return internal_malloc(size, ra);
        return real.malloc ? real.malloc(size) : boot_alloc(size);
    }
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = real.malloc(size);
    if (MTP_LIKELY(p)) {
        mtp_clear_head(p, size);
        MTP_RECORD_FROM_HOOK(t, mtp_record_alloc(t, p, size, MTSNAP_DOMAIN_NATIVE));
    }
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

MTP_EXPORT void *malloc(size_t size)
{
    if (MTP_LIKELY(!mtp_sampled(size)))
        return real.malloc(size);
    return malloc_picked(size, __builtin_return_address(0));
}

static MTP_NOINLINE void free_slow(void *p)
{
    if (MTP_UNLIKELY(!p || is_boot(p)))
        return;
    if (MTP_UNLIKELY(mtp_ph_owns(p))) {
        mtp_ph_free(p);
        return;
    }
    mtp_thread_t *t = mtp_enter_free();
    if (MTP_LIKELY(t) && mtp_free_recorded(p)) {
        int guard = mtp_tls_guard;
        mtp_tls_guard = MTP_GUARD_HOOK;
        int saved = errno;
        mtp_record_free(t, p, MTSNAP_DOMAIN_NATIVE);
        real.free(p);
        errno = saved;
        mtp_tls_guard = guard;
        return;
    }
    if (MTP_LIKELY(real.free != NULL))
        real.free(p);   /* not traced, or not sampled */
}

MTP_EXPORT void free(void *p)
{
    if (MTP_LIKELY(mtp_cfg.sample) && !mtp_sampset_maybe((uintptr_t)p) && !is_ours(p)) {
        real.free(p);   /* not sampled (free(NULL) included) */
        return;
    }
    free_slow(p);
}

static MTP_NOINLINE void *calloc_picked(size_t n, size_t size, const void *ra)
{
    mtp_thread_t *t = mtp_enter();
    if (MTP_UNLIKELY(!t)) {
        if (mtp_tls_guard == MTP_GUARD_INTERNAL)
            return internal_calloc(n, size, ra);
        return real.calloc ? real.calloc(n, size) : boot_alloc(n * size);
    }
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = real.calloc(n, size);
    if (MTP_LIKELY(p))
        MTP_RECORD_FROM_HOOK(t, mtp_record_alloc(t, p, n * size, MTSNAP_DOMAIN_NATIVE));
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

MTP_EXPORT void *calloc(size_t n, size_t size)
{
    if (MTP_LIKELY(!mtp_sampled(n * size)))
        return real.calloc(n, size);
    return calloc_picked(n, size, __builtin_return_address(0));
}

/* Inside another hook only the old half is recorded (the new block is
 * that hook's to record). When sampling, a realloc is a free of the old
 * block and an allocation of the new size: the old half is recorded when
 * the old block was sampled, the new block when the sampler picks it for
 * its size, whether the old one was sampled or not (a block that grows out
 * of an unsampled one into a sampled size shows all of it at the realloc's
 * stack; one that shrinks out of a sampled block may no longer be sampled). */
static MTP_NOINLINE void *realloc_new_picked(void *old, size_t size)
{
    mtp_thread_t *t = mtp_enter();   /* NULL inside another hook: the new block is its */
    if (MTP_UNLIKELY(!t))
        return real.realloc(old, size);
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = real.realloc(old, size);
    if (p)
        mtp_record_alloc(t, p, size, MTSNAP_DOMAIN_NATIVE);
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

static inline void *realloc_traced(mtp_thread_t *t, void *old, size_t size)
{
    int guard = mtp_tls_guard;
    if (!mtp_free_recorded(old)) {   /* an unsampled block: only the new one may be recorded */
        if (guard != MTP_GUARD_NONE || !mtp_sampled(size))
            return real.realloc(old, size);
        return realloc_new_picked(old, size);
    }
    mtp_tls_guard = MTP_GUARD_SILENT;
    uint64_t n = mtp_record_realloc_begin();
    void *p = real.realloc(old, size);
    int saved = errno;
    /* glibc: realloc(p, 0) frees p; a failed realloc leaves it. */
    mtp_record_realloc_end(t, n, (uintptr_t)old, p != NULL || size == 0, MTSNAP_DOMAIN_NATIVE);
    if (p && guard == MTP_GUARD_NONE && mtp_sampled(size))
        mtp_record_alloc(t, p, size, MTSNAP_DOMAIN_NATIVE);
    errno = saved;
    mtp_tls_guard = guard;
    return p;
}

static MTP_COLD void *realloc_boot(void *old, size_t size)
{
    void *p = malloc(size);
    if (p) {
        size_t have = boot_size(old);
        memcpy(p, old, have < size ? have : size);
    }
    return p;
}

static MTP_NOINLINE void *realloc_slow(void *old, size_t size)
{
    mtp_thread_t *t = mtp_enter_free();
    if (MTP_UNLIKELY(!t))
        return real.realloc(old, size);
    return realloc_traced(t, old, size);
}

MTP_EXPORT void *realloc(void *old, size_t size)
{
    if (MTP_UNLIKELY(!old))
        return malloc(size);
    if (MTP_UNLIKELY(is_boot(old)))
        return realloc_boot(old, size);
    if (MTP_UNLIKELY(mtp_ph_owns(old)))
        return realloc_private(old, size);
    if (MTP_LIKELY(mtp_cfg.sample) && !mtp_sampset_maybe((uintptr_t)old)) {
        if (MTP_LIKELY(!mtp_sampled(size)))
            return real.realloc(old, size);   /* neither block recorded */
        return realloc_new_picked(old, size);
    }
    return realloc_slow(old, size);
}

/* reallocarray is realloc after glibc's overflow check. */
MTP_EXPORT void *reallocarray(void *old, size_t nmemb, size_t size)
{
    size_t bytes;
    if (MTP_UNLIKELY(__builtin_mul_overflow(nmemb, size, &bytes))) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, bytes);
}

static MTP_NOINLINE int posix_memalign_picked(void **out, size_t align, size_t size)
{
    mtp_thread_t *t = mtp_enter();
    if (MTP_UNLIKELY(!t))
        return real.posix_memalign ? real.posix_memalign(out, align, size) : ENOMEM;
    mtp_tls_guard = MTP_GUARD_HOOK;
    int saved = errno;
    int r = real.posix_memalign(out, align, size);
    if (r == 0) {
        mtp_clear_head(*out, size);
        mtp_record_alloc(t, *out, size, MTSNAP_DOMAIN_NATIVE);
    }
    errno = saved;
    mtp_tls_guard = MTP_GUARD_NONE;
    return r;
}

MTP_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (MTP_LIKELY(!mtp_sampled(size)))
        return real.posix_memalign(out, align, size);
    return posix_memalign_picked(out, align, size);
}

/* aligned_alloc, memalign, valloc and pvalloc: the requested size is recorded. */
#define ALIGNED_HOOK(name, params, args, size_expr)                           \
    static MTP_NOINLINE void *name##_picked params                            \
    {                                                                         \
        mtp_thread_t *t = mtp_enter();                                        \
        if (MTP_UNLIKELY(!t))                                                 \
            return real.name ? real.name args : NULL;                         \
        mtp_tls_guard = MTP_GUARD_HOOK;                                       \
        void *p = real.name args;                                             \
        if (MTP_LIKELY(p)) {                                                  \
            mtp_clear_head(p, size_expr);                                     \
            mtp_record_alloc(t, p, size_expr, MTSNAP_DOMAIN_NATIVE);          \
        }                                                                     \
        mtp_tls_guard = MTP_GUARD_NONE;                                       \
        return p;                                                             \
    }                                                                         \
    MTP_EXPORT void *name params                                              \
    {                                                                         \
        if (MTP_LIKELY(!mtp_sampled(size_expr)))                              \
            return real.name args;                                            \
        return name##_picked args;                                            \
    }

ALIGNED_HOOK(aligned_alloc, (size_t align, size_t size), (align, size), size)
ALIGNED_HOOK(memalign, (size_t align, size_t size), (align, size), size)
ALIGNED_HOOK(valloc, (size_t size), (size), size)
ALIGNED_HOOK(pvalloc, (size_t size), (size), size)

MTP_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (is_boot(p))
        return boot_size(p);
    if (mtp_ph_owns(p))
        return mtp_ph_usable_size(p);
    if (!real.malloc_usable_size)
        mtp_hooks_resolve();
    return real.malloc_usable_size ? real.malloc_usable_size(p) : 0;
}

/* _exit and _Exit skip atexit handlers and destructors: write the exit
 * snapshot here, then leave. */
MTP_EXPORT void _exit(int status)
{
    mtp_exit_snapshot();
    if (!real.exit_)
        mtp_hooks_resolve();
    if (real.exit_)
        real.exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

MTP_EXPORT void _Exit(int status)
{
    mtp_exit_snapshot();
    if (!real.Exit_)
        mtp_hooks_resolve();
    if (real.Exit_)
        real.Exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

/* Loaded late: the real functions are those `lookup` names (hook/late.c:
 * the definitions the program's calls reach). */
void mtp_hooks_late_real(void *(*lookup)(const char *name))
{
#define X(field, name, type)                            \
    {                                                   \
        void *f = lookup(name);                         \
        if (f)                                          \
            real.field = (type)f;                       \
    }
    MTP_REAL_FUNCTIONS(X)
#undef X
}

/* Our own definitions, whatever the program's references are bound to
 * (hook/late.c writes these into GOT slots). */
#define MTP_SELF_ALIAS(name) \
    extern __typeof__(name) mtp_self_##name                                \
        __attribute__((alias(#name), copy(name), visibility("hidden")));
MTP_SELF_ALIAS(malloc)
MTP_SELF_ALIAS(free)
MTP_SELF_ALIAS(calloc)
MTP_SELF_ALIAS(realloc)
MTP_SELF_ALIAS(reallocarray)
MTP_SELF_ALIAS(posix_memalign)
MTP_SELF_ALIAS(aligned_alloc)
MTP_SELF_ALIAS(memalign)
MTP_SELF_ALIAS(valloc)
MTP_SELF_ALIAS(pvalloc)
MTP_SELF_ALIAS(malloc_usable_size)

/* Start-up: the real allocator first (everything after it may allocate),
 * then the runtime (core/), then CPython if this process has it. Loaded
 * late (not in the global scope: dlopen'd by `memtrail attach`),
 * only the real allocator: memtrail_attach (hook/late.c) starts the rest. */
extern __typeof__(memtrail_attach) mtp_self_memtrail_attach;
__attribute__((constructor)) static void mtp_init(int argc, char **argv, char **envp)
{
    int saved = errno;
    (void)envp;
    mtp_tls_guard = MTP_GUARD_HOOK;
    mtp_lib_open = mtp_self_dlopen;   /* the libraries loaded on need: as the program's modules */
    mtp_loader_code(&loader_lo, &loader_hi);
    if (mtp_hooks_resolve() == 0) {
        /* Preloaded, this object is in the global scope, which the main
         * program's handle searches, and our own memtrail_attach is found
         * there; dlopen'd RTLD_LOCAL by memtrail attach, it is not.
         * (RTLD_DEFAULT would search our own local scope too; and malloc
         * would not do: a non-PIE executable that takes malloc's address
         * makes dlsym give its canonical PLT entry, preloaded or not.) */
        void *main_handle = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);
        void *found = main_handle ? dlsym(main_handle, "memtrail_attach") : NULL;
        if (!found)
            dlerror();
        if (found != (void *)mtp_self_memtrail_attach) {
            mtp_late = 1;
            memset(&real, 0, sizeof(real));
            if (mtp_hooks_resolve() < 0)
                mtp_warn("attach: cannot find the program's allocator");
            mtp_tls_guard = MTP_GUARD_NONE;
            errno = saved;
            return;
        }
    }
    mtp_boot_argc = argc;   /* preloaded: glibc's argv is the process's */
    mtp_boot_argv = argv;
    if (mtp_hooks_resolve() < 0)
        mtp_warn("cannot find the C library's allocator: tracing disabled");
    else if (mtp_map_hooks_init(), mtp_stackattr_init(), mtp_core_start() == 0) {
        mtp_signal_hooks_init();
        mtp_py_init();
    }
    mtp_tls_guard = MTP_GUARD_NONE;
    errno = saved;
}
