/*
 * Whether the calling thread, inside a hook, may create a thread now.
 *
 * A fork child's writer starts late (writer/writer.c, docs/design.md "A fork
 * child's writer"), and the moment comes inside a hook: an allocation the
 * program makes. pthread_create is safe there only where the program itself
 * could call it. Two places are not such places:
 *
 * - the dynamic loader's own allocations (dlopen loading a module, the TLS
 *   slow path of __tls_get_addr): pthread_create sets up the new thread's TLS
 *   from the loader's module lists under the loader's TLS lock, and from a
 *   malloc the loader called those lists can be half updated;
 * - a signal handler: the interrupted code may hold a lock pthread_create
 *   takes (the stack cache's, malloc's).
 *
 * So the answer is yes only when no frame of the calling thread's stack is in
 * ld.so's code, in memtrail's below the hook, or in pthread_create, and none
 * is a signal frame (a return into the sigreturn trampoline of an installed
 * handler). A no costs nothing but time: the
 * writer starts at a later allocation, and meanwhile producers apply their
 * own events (writer.c, deferred_wake).
 *
 * A handler's thread that never allocated through a hook has no thread
 * block: its stack's bounds are then its mapping's, found in
 * /proc/thread-self/maps with raw system calls, and the walk uses a rule
 * cache of this file's.
 *
 * Threads: any application thread; one at a time walks (`busy`), the others
 * get a no. ld_lo/ld_hi are set once by mtp_safepoint_init at start-up and
 * read-only afterwards.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/util.h"
#include "unwind/cfi.h"
#include "unwind/unwind.h"
#include "writer/safepoint.h"

#define WALK_MAX 1024        /* frames looked at: deeper ones are not */
#define RESTORERS_MAX 4
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static uintptr_t ld_lo, ld_hi;        /* read-only after init: ld.so's code */
static uintptr_t create_lo, create_hi; /* ...and pthread_create's (dynamic symbol size) */
static _Atomic int busy;              /* atomic: the walking thread's tid, or 0 */
#define BUSY_WAIT_NS (2u * 1000 * 1000)   /* a handler waits this long for another walk */
static MTP_LARGE uintptr_t pcs[WALK_MAX + 16];  /* owned by the thread that set `busy` */

/* The loader's code (base/util.h), and pthread_create's. */
void mtp_safepoint_init(void)
{
    mtp_loader_code(&ld_lo, &ld_hi);
    uintptr_t at = (uintptr_t)&pthread_create;
    size_t size = mtp_symbol_size((const void *)at, "pthread_create");
    if (size) {
        create_lo = at;
        create_hi = at + size;
        return;
    }
    Dl_info info;   /* no GNU hash table, or an interposer named otherwise */
    const ElfW(Sym) *sym = NULL;
    if (dladdr1((void *)at, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size) {
        create_lo = (uintptr_t)info.dli_saddr;
        create_hi = create_lo + sym->st_size;
    }
}

/* The kernel's view of sigaction: handler, flags, restorer, mask. */
struct kernel_sigaction {
    uintptr_t handler;
    unsigned long flags;
    uintptr_t restorer;
    uint64_t mask;
};

/* The distinct sigreturn trampolines of the handlers installed now (glibc
 * has one, __restore_rt; a program calling rt_sigaction itself may have its
 * own). Raw system calls: the program's sigaction may be interposed. */
static int restorers(uintptr_t *out)
{
    int n = 0;
    for (int sig = 1; sig < 65 && n < RESTORERS_MAX; sig++) {
        struct kernel_sigaction ka;
        if (sig == SIGKILL || sig == SIGSTOP ||
            syscall(SYS_rt_sigaction, sig, NULL, &ka, sizeof(ka.mask)) != 0)
            continue;
        if (ka.handler <= 1 || !(ka.flags & SA_RESTORER) || !ka.restorer)
            continue;   /* SIG_DFL, SIG_IGN */
        int seen = 0;
        for (int i = 0; i < n; i++)
            seen |= out[i] == ka.restorer;
        if (!seen)
            out[n++] = ka.restorer;
    }
    return n;
}

/* Whether a walk's frames allow creating a thread: none in ld.so's code,
 * in memtrail's (a hook's callees hold malloc's locks), in pthread_create
 * (the stack cache's lock) or a return into a sigreturn trampoline. Takes
 * the walk's buffer back (`busy`). */
static int frames_safe(const uintptr_t *f, size_t n)
{
    uintptr_t rt[RESTORERS_MAX];
    int nrt = restorers(rt), ok = n > 0;
    for (size_t i = 0; ok && i < n; i++) {
        uintptr_t pc = f[i];
        ok = !(pc >= ld_lo && pc < ld_hi) && !mtp_unwind_is_self(pc) &&
             !(pc > create_lo && pc <= create_hi);
        /* A return address into the trampoline points at its start or just
         * past it, depending on whether the unwinder adjusted it. */
        for (int k = 0; ok && k < nrt; k++)
            ok = !(pc + 1 >= rt[k] && pc <= rt[k] + 16);
    }
    atomic_store(&busy, 0);
    return ok;
}

int mtp_safepoint(mtp_thread_t *t)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&busy, &expect, (int)syscall(SYS_gettid)))
        return 0;
    const uintptr_t *first = pcs;
    uint32_t n = mtp_unwind(t, pcs, WALK_MAX, &first);   /* memtrail's own frames left out */
    return frames_safe(first, n);
}

/* /proc/thread-self/maps is read through this (base/util.c, mtp_maps_find). */
#define MAPS_CHUNK 4096
static MTP_LARGE char maps_buf[MAPS_CHUNK];   /* owned by the thread that set `busy` */

/* A thread that never allocated through a hook has no block: no stack
 * bounds, no rule cache of its own (this one, owned by the `busy` holder). */
static MTP_LARGE mtp_rule_ent_t blockless_rcache[MTP_RCACHE_SLOTS];

/* In a signal handler: the interrupted code must hold none of the locks
 * pthread_create takes (frames_safe; every allocation the program makes
 * runs inside memtrail's hooks, so malloc's own locks sit below a memtrail
 * frame). Walked with the CFI rules only: where they fail, the answer is no. */
int mtp_safepoint_interrupted(mtp_thread_t *t, const void *ucontext)
{
    const ucontext_t *uc = ucontext;
    if (!uc || !mtp_cfg.cfi || mtp_cfg.unwind != MTSNAP_UNWIND_LIBUNWIND)
        return 0;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t bp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    if (mtp_unwind_is_self(pc) || (t && (sp < t->stack_lo || sp >= t->stack_hi)))
        return 0;
    /* Another thread's walk ends within microseconds: waited for (a
     * termination signal answered no would end the process without its
     * snapshot). This thread's own, which the signal interrupted: no. */
    int self = (int)syscall(SYS_gettid), expect = 0;
    uint64_t until = mtp_mono_ns() + BUSY_WAIT_NS;
    while (!atomic_compare_exchange_strong(&busy, &expect, self)) {
        if (expect == self || mtp_mono_ns() >= until)
            return 0;
        syscall(SYS_sched_yield);
        expect = 0;
    }
    uintptr_t lo, hi, prev;
    mtp_rule_ent_t *cache = blockless_rcache;
    if (t) {
        lo = t->stack_lo;
        hi = t->stack_hi;
        cache = t->rcache;
    } else if (!mtp_maps_find(sp, maps_buf, sizeof(maps_buf), &lo, &hi, &prev)) {
        return frames_safe(pcs, 0);
    }
    /* pc + 1: the walk looks a return address up one byte back. */
    int n = mtp_cfi_unwind_from(cache, NULL, pc + 1, sp, bp, lo, hi, pcs, WALK_MAX);
    return frames_safe(pcs, n > 0 ? (size_t)n : 0);
}
