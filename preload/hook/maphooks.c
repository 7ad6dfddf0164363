/*
 * The mmap domain: mmap, mmap64, munmap and mremap, interposed.
 *
 * What is recorded (MEMTRAIL_MMAP, mtp_cfg.mmap): anonymous mappings (the
 * default), file-backed ones too (all), or nothing (off). A mapping is a
 * block of the mmap domain at its address, its length rounded up to whole
 * pages (what the kernel maps, so that a munmap of some of its pages ends
 * exactly those); the writer (writer/live.c) ends or splits the recorded
 * mappings a munmap, a MAP_FIXED mapping or an mremap covers, whether the
 * call named them whole or not, and leaves alone the ranges it never saw.
 * mremap is an unmap of the old range and a new mapping at the mremap's
 * stack (as realloc is a free and an allocation), made only when the old
 * range held a recorded mapping: a remap of a file mapping the default does
 * not record stays unrecorded. Mappings are never sampled.
 *
 * Who is not recorded: memtrail itself (its own calls come from this
 * object's text: the return address says so, whatever the guard), calls
 * made inside another hook (mtp_enter() is NULL there: pymalloc's arenas
 * under the Python domain wrappers are the blocks' allocator's own), and the
 * C library's own mappings (glibc's malloc, its thread stacks and stdio call
 * the kernel through internal aliases, never through this symbol: a large
 * malloc's mapping is its native block only). An unmap inside another hook
 * is recorded, as a free is (it may end a recorded mapping), and so is the
 * old range of an mremap there (its new range is not).
 *
 * Ordering: record/record.h's protocol (numbers for what is handed back
 * before the call, for what is mapped after it). errno is kept: the real
 * call's, around everything recorded. Before the constructor has resolved
 * the next definitions (another library's constructor mapping memory), the
 * calls go to the kernel directly and nothing is recorded.
 */
/* The build asks for 64-bit file offsets, under which glibc's header names
 * mmap "mmap64": this file defines both names itself (off_t is 64 bits on
 * x86-64 either way). */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hook/hook.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

/* Written once by mtp_map_hooks_init (the constructor, before tracing
 * starts) or mtp_map_hooks_late (the first attach, before the GOT slots
 * lead here), read-only after. */
static mmap_fn real_mmap, real_mmap64;
static munmap_fn real_munmap;
static mremap_fn real_mremap;
static uintptr_t own_lo, own_len;   /* this object's executable segment */
static uintptr_t page_mask;

static inline size_t pages(size_t len)
{
    return (len + page_mask) & ~page_mask;
}

/* A call from memtrail's own code (or before the constructor). */
static inline int own_call(const void *ra)
{
    return (uintptr_t)ra - own_lo < own_len || !real_munmap;
}

static inline int recorded(int flags)
{
    return (flags & MAP_ANONYMOUS) || mtp_cfg.mmap == MTP_MMAP_ALL;
}

static void *call_mmap(mmap_fn f, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (f)
        return f(addr, len, prot, flags, fd, off);
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static int call_munmap(void *addr, size_t len)
{
    if (real_munmap)
        return real_munmap(addr, len);
    return (int)syscall(SYS_munmap, addr, len);
}

static void *call_mremap(void *old, size_t old_size, size_t new_size, int flags, void *to)
{
    if (real_mremap)
        return real_mremap(old, old_size, new_size, flags, to);
    return (void *)syscall(SYS_mremap, old, old_size, new_size, flags, to);
}

static MTP_NOINLINE void *map_traced(mmap_fn f, void *addr, size_t len, int prot, int flags,
                                     int fd, off_t off)
{
    mtp_thread_t *t = mtp_enter();
    if (!t)
        return call_mmap(f, addr, len, prot, flags, fd, off);
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = call_mmap(f, addr, len, prot, flags, fd, off);
    int saved = errno;
    if (p != MAP_FAILED) {
        if (recorded(flags))
            mtp_record_map(t, p, pages(len), MTP_EV_ALLOC);
        else   /* MAP_FIXED: what it replaced is gone */
            mtp_record_unmapped(t, p, pages(len));
    }
    errno = saved;
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

static inline void *map_hook(mmap_fn f, const void *ra, void *addr, size_t len, int prot,
                             int flags, int fd, off_t off)
{
    if (mtp_cfg.mmap == MTP_MMAP_OFF || own_call(ra) ||
        (!recorded(flags) && !(flags & MAP_FIXED)))
        return call_mmap(f, addr, len, prot, flags, fd, off);
    return map_traced(f, addr, len, prot, flags, fd, off);
}

MTP_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return map_hook(real_mmap, __builtin_return_address(0), addr, len, prot, flags, fd, off);
}

/* The large-file name of the same call (off_t is 64 bits on x86-64). */
MTP_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return map_hook(real_mmap64, __builtin_return_address(0), addr, len, prot, flags, fd, off);
}

static MTP_NOINLINE int unmap_traced(void *addr, size_t len)
{
    mtp_thread_t *t = mtp_enter_free();
    if (!t)
        return call_munmap(addr, len);
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_SILENT;
    uint64_t n = mtp_record_unmap_begin();
    int r = call_munmap(addr, len);
    int saved = errno;
    mtp_record_unmap_end(t, n, MTP_EV_UNMAP, addr, pages(len), r == 0, 0);
    errno = saved;
    mtp_tls_guard = guard;
    return r;
}

MTP_EXPORT int munmap(void *addr, size_t len)
{
    if (mtp_cfg.mmap == MTP_MMAP_OFF || own_call(__builtin_return_address(0)))
        return call_munmap(addr, len);
    return unmap_traced(addr, len);
}

static MTP_NOINLINE void *remap_traced(void *old, size_t old_size, size_t new_size, int flags,
                                       void *to)
{
    mtp_thread_t *t = mtp_enter_free();
    if (!t)
        return call_mremap(old, old_size, new_size, flags, to);
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_SILENT;
    uint64_t n = mtp_record_unmap_begin();
    void *p = call_mremap(old, old_size, new_size, flags, to);
    int saved = errno;
    /* old_size 0 (a second mapping of shared pages) and MREMAP_DONTUNMAP
     * leave the old range mapped: it is only looked at. Inside another
     * hook only the old range is recorded, as an unmap: the new one is the
     * allocator's own, as a mapping made there is. */
    int look = old_size == 0 || (flags & MREMAP_DONTUNMAP);
    unsigned kind = guard == MTP_GUARD_NONE ? MTP_EV_REMAP_OLD : MTP_EV_UNMAP;
    mtp_record_unmap_end(t, n, kind, old, pages(old_size), p != MAP_FAILED, look);
    if (p != MAP_FAILED && guard == MTP_GUARD_NONE)
        mtp_record_map(t, p, pages(new_size), MTP_EV_REMAP_NEW);
    errno = saved;
    mtp_tls_guard = guard;
    return p;
}

MTP_EXPORT void *mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
    void *to = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        to = va_arg(ap, void *);
        va_end(ap);
    }
    if (mtp_cfg.mmap == MTP_MMAP_OFF || own_call(__builtin_return_address(0)))
        return call_mremap(old, old_size, new_size, flags, to);
    return remap_traced(old, old_size, new_size, flags, to);
}

/* ---- start-up ---- */
static int find_own(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t self = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && self - lo < ph->p_memsz) {
            own_lo = lo;
            own_len = ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* Our own entry points, whatever the program's symbols are bound to
 * (hook/late.c writes these into GOT slots). */
extern __typeof__(mmap) mtp_self_mmap __attribute__((alias("mmap"), copy(mmap), visibility("hidden")));
extern __typeof__(mmap64) mtp_self_mmap64
    __attribute__((alias("mmap64"), copy(mmap64), visibility("hidden")));
extern __typeof__(munmap) mtp_self_munmap
    __attribute__((alias("munmap"), copy(munmap), visibility("hidden")));
extern __typeof__(mremap) mtp_self_mremap
    __attribute__((alias("mremap"), copy(mremap), visibility("hidden")));

static void find_text(void)
{
    unsigned long ps = getauxval(AT_PAGESZ);
    page_mask = (ps ? ps : 4096) - 1;
    dl_iterate_phdr(find_own, (void *)(uintptr_t)mtp_map_hooks_init);
}

/* Loaded late (hook/late.c, the first attach, before any slot leads here):
 * the definitions the program's calls reach. */
void mtp_map_hooks_late(void *(*lookup)(const char *name))
{
    if (real_munmap)
        return;
    find_text();
    real_mmap = (mmap_fn)lookup("mmap");
    real_mmap64 = (mmap_fn)lookup("mmap64");
    if (!real_mmap64)
        real_mmap64 = real_mmap;
    real_mremap = (mremap_fn)lookup("mremap");
    __atomic_store_n(&real_munmap, (munmap_fn)lookup("munmap"), __ATOMIC_RELEASE);
}

void mtp_map_hooks_init(void)
{
    find_text();
    real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
    real_mmap64 = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
    if (!real_mmap64)
        real_mmap64 = real_mmap;
    real_mremap = (mremap_fn)dlsym(RTLD_NEXT, "mremap");
    /* Last: a non-NULL munmap means "resolved" (own_call). */
    real_munmap = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
}
