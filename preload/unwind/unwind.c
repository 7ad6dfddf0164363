/* Native stack capture on the application thread: the cached DWARF-CFI walk
 * (cfi.c) with libunwind's unw_backtrace (never an unw_step loop) for the
 * stacks it cannot handle, or frame-pointer walking; memtrail's own frames
 * removed.
 *
 * libunwind is loaded on the first stack the CFI walk hands over
 * (base/libload.h), by the thread that needs it, inside its hook: most
 * processes never need it (every stack of echo, bash, git, gcc, perl and
 * CPython's start-up is followed to the end by the CFI walk), and mapping it
 * with liblzma cost every process 0.15 to 0.2 ms and 11 page faults
 * (docs/performance.md). The dlopen runs with the
 * thread's allocations memtrail's (INTERNAL), the loader's registered as
 * roots of the leak scan (as on the writer's loader thread); other threads
 * that need it meanwhile wait for that load (-EBUSY), and a fork child
 * never uses one its parent had not finished (mtp_lib_atfork_child). */
#include <errno.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/libload.h"
#include "base/util.h"
#include "unwind/cfi.h"
#include "unwind/unwind.h"

#define SKIP_MAX 8   /* hook frames above the caller: at most this many */

static uintptr_t self_lo, self_hi;  /* read-only after init: our text range */

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    uintptr_t probe = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (probe >= lo && probe < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

/* Cold, from mtp_init: called without any lock of ours held. */
int mtp_unwind_init(void)
{
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&mtp_unwind_init);
    if (!self_hi)
        return -ENOENT;
    if (mtp_cfg.unwind == MTSNAP_UNWIND_LIBUNWIND && mtp_cfg.cfi && mtp_cfi_init() < 0)
        mtp_cfg.cfi = 0;  /* no room for the rule table: libunwind alone */
    if (mtp_cfg.unwind == MTSNAP_UNWIND_LIBUNWIND && !mtp_cfg.cfi)
        mtp_unwind_lib();   /* every stack needs it: loaded now, where a constructor may */
    return 0;
}

/* libunwind's table ready, loaded by this thread if no thread has: 0, or
 * -ENOENT when it cannot be had (one warning, libload.c). Cold: the first
 * stack of a process that the CFI walk hands over. */
MTP_COLD int mtp_unwind_lib(void)
{
    for (unsigned waits = 0;; waits++) {
        if (mtp_lib_ready(MTP_LIB_UNWIND))
            return 0;
        int guard = mtp_tls_guard, loader = mtp_tls_lib_loader, saved = errno;
        mtp_tls_guard = MTP_GUARD_INTERNAL;   /* the load's allocations are memtrail's... */
        mtp_tls_lib_loader = 1;               /* ...the loader's roots of the leak scan's */
        int r = mtp_lib_load(MTP_LIB_UNWIND);
        mtp_tls_lib_loader = loader;
        mtp_tls_guard = guard;
        errno = saved;
        if (r != -EBUSY)
            return r;
        /* Another thread loads it, and may wait for the loader's lock behind
         * a long dlopen of the program's: yield, then sleep 0.1 ms a turn
         * (the system call itself: nanosleep is a cancellation point). */
        if (waits < 100) {
            sched_yield();
        } else {
            struct timespec pause = {0, 100 * 1000};
            syscall(SYS_nanosleep, &pause, NULL);
        }
    }
}

static inline int is_self(uintptr_t pc)
{
    return pc >= self_lo && pc < self_hi;
}

int mtp_unwind_is_self(uintptr_t pc)
{
    return is_self(pc);
}

/* Where a walk starts: the recording hook's frame when it gave it (the
 * frames between it and the walk are memtrail's own, each followed by its
 * frame pointer otherwise), else the walk's own. */
static inline uintptr_t *start_frame(const mtp_thread_t *t, uintptr_t *own)
{
    return t->hook_fp ? (uintptr_t *)t->hook_fp : own;
}

static MTP_NOINLINE uint32_t walk_fp(mtp_thread_t *t, uintptr_t *pcs, uint32_t max)
{
    uintptr_t *fp = start_frame(t, __builtin_frame_address(0));
    uintptr_t lo = t->stack_lo, hi = t->stack_hi;

    if (hi == 0) { /* unknown bounds: accept a window above the current frame */
        lo = (uintptr_t)fp;
        hi = lo + ((uintptr_t)8 << 20);
    }
    /* A frame is read when [fp, fp + 16) lies in [lo, hi) and fp is aligned.
     * Each frame followed is above the one before, so only the first can be
     * below lo, and the upper bound is one compare against `top`. */
    const uintptr_t align = sizeof(uintptr_t) - 1;
    if ((uintptr_t)fp < lo || ((uintptr_t)fp & align) || hi < 2 * sizeof(uintptr_t))
        return 0;
    const uintptr_t top = hi - 2 * sizeof(uintptr_t);
    uintptr_t *out = pcs, *end = pcs + max;
    while (out < end && (uintptr_t)fp <= top) {
        uintptr_t ret = fp[1];
        uintptr_t *next = (uintptr_t *)fp[0];
        if (ret < MTP_PAGE_MIN)
            break;
        *out++ = ret;
        if (next <= fp || ((uintptr_t)next & align))
            break;
        fp = next;
    }
    return (uint32_t)(out - pcs);
}

/* memtrail's own frames all keep frame pointers: follow rbp out of them,
 * then hand the first foreign frame to the CFI walk: with the thread's rule
 * cache and walk memo, but not for a fork child's first stacks (t->fresh,
 * base/thread.h): the fork wiped those pages. */
static MTP_NOINLINE int walk_cfi(mtp_thread_t *t, uintptr_t *pcs, uint32_t max)
{
    uintptr_t *fp = start_frame(t, __builtin_frame_address(0));
    for (int i = 0; i < SKIP_MAX; i++) {
        uintptr_t p = (uintptr_t)fp;
        if (p < t->stack_lo || p + 16 > t->stack_hi || (p & 7))
            return -ENOENT;
        if (is_self(fp[1])) {
            fp = (uintptr_t *)fp[0];
            continue;
        }
        if (MTP_UNLIKELY(t->fresh))
            return mtp_cfi_unwind_from(NULL, NULL, fp[1], p + 16, fp[0], t->stack_lo,
                                       t->stack_hi, pcs, max);
        return mtp_cfi_unwind_from(t->rcache, max == mtp_cfg.depth ? &t->umemo : NULL, fp[1],
                                   p + 16, fp[0], t->stack_lo, t->stack_hi, pcs, max);
    }
    return -ENOENT;
}

uint32_t mtp_unwind(mtp_thread_t *t, uintptr_t *pcs, uint32_t max, const uintptr_t **first)
{
    uint32_t n, skip = 0;

    if (mtp_cfg.unwind == MTSNAP_UNWIND_FP) {
        n = walk_fp(t, pcs, max + SKIP_MAX);
    } else {
        int r = mtp_cfg.cfi ? walk_cfi(t, pcs, max) : -ENOENT;
        if (r >= 0) {
            *first = pcs;
            return (uint32_t)r;
        }
        r = mtp_unwind_lib() == 0 ? mtp_unw.unw_backtrace((void **)pcs, (int)(max + SKIP_MAX)) : 0;
        n = r > 0 ? (uint32_t)r : 0;
    }
    while (skip < n && is_self(pcs[skip]))
        skip++;
    n -= skip;
    *first = pcs + skip;
    return n < max ? n : max;
}
