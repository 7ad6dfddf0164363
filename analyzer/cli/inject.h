/* Calling functions inside another running process with ptrace, for
 * `memtrail attach` and `memtrail detach` (inject.c). x86-64 Linux only. */
#ifndef MTA_INJECT_H
#define MTA_INJECT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A mapped object of the target: its path as mapped, its load bias, and
 * its executable range (lowest to highest r-x mapping). */
typedef struct mta_mapped {
    char path[PATH_MAX];    /* "" when not mapped */
    uintptr_t bias;
    uintptr_t text_lo, text_hi;
} mta_mapped_t;

/* What /proc says of the target before anything is touched. */
typedef struct mta_target {
    pid_t pid;
    mta_mapped_t libc;      /* libc.so.6 */
    mta_mapped_t loader;    /* ld-linux-x86-64.so.2 */
    mta_mapped_t memtrail;  /* libmemtrail.so, when mapped */
    int preloaded;          /* LD_PRELOAD in its environment names libmemtrail */
    int memtrail_deleted;   /* a libmemtrail.so mapped whose file is gone */
    mta_mapped_t allocator[4];   /* other allocators mapped (jemalloc, tcmalloc, mimalloc...) */
    int nallocators;
} mta_target_t;

/* Reads /proc/PID: the checks that need no ptrace (exists, not a zombie or
 * stopped, not traced by another tracer, 64-bit x86, dynamically linked
 * with glibc, /proc readable). 0 and *t filled, or -errno with `why`
 * holding the reason and the fix (one line, no trailing period). */
int mta_target_inspect(pid_t pid, mta_target_t *t, char *why, size_t len);

/* Reads the target's mappings again (after a dlopen): 0 or -errno. */
int mta_target_refresh(mta_target_t *t);

/* Why ptrace of pid would be refused, into why[0..len), for the EPERM
 * message: another user's process, or kernel.yama.ptrace_scope (read from
 * mta_yama_scope_path: a test seam, the /proc file by default) 1, 2 or 3,
 * else the remaining causes; each with its fix. */
extern const char *mta_yama_scope_path;
void mta_not_permitted(pid_t pid, char *why, size_t len);

/* The ELF class of the file at path: 64 for an x86-64 ELF file, 32 for a
 * 32-bit one, 0 for another machine, -errno when unreadable or not ELF. */
int mta_elf_kind(const char *path);

/* The address in the target of the dynamic symbol `name` of object m (its
 * file read through /proc/PID/root, its default version preferred): 0, or
 * -ENOENT / -errno. */
int mta_target_symbol(pid_t pid, const mta_mapped_t *m, const char *name, uintptr_t *addr);

/* An injection session: one thread of the target held in a ptrace stop,
 * its registers, extended state and the stack bytes written saved. */
typedef struct mta_inject {
    pid_t pid, tid;
    pid_t exclude;          /* set before mta_inject_begin: a thread not to borrow (0: none) */
    int memfd;              /* /proc/PID/mem */
    uintptr_t scratch;      /* lowest address of the stack area written */
    size_t scratch_len;
    unsigned char *saved_stack;
    unsigned char regs[27 * 8];          /* struct user_regs_struct */
    unsigned char *xstate;               /* NT_X86_XSTATE, xstate_len bytes */
    size_t xstate_len;
    int pending_sig;        /* a signal whose delivery stop was taken as ours */
} mta_inject_t;

/* Seizes threads of the target one at a time (but s->exclude, which the
 * caller sets or zeroes first) until one is stopped at a
 * point where calling the C library is safe (in its own code, or blocked
 * in a system call, not inside libc's or the loader's code, with stack to
 * spare); the other threads run on throughout. 0, or -errno and `why`. */
int mta_inject_begin(mta_inject_t *s, const mta_target_t *t, char *why, size_t len);
/* Writes `len` bytes below the held thread's stack (under its red zone);
 * *addr gets their address in the target. Call before mta_inject_call;
 * at most once per session. 0 or -errno. */
int mta_inject_data(mta_inject_t *s, const void *data, size_t len, uintptr_t *addr);
/* Calls fn(args...) (at most 6 integer arguments) on the held thread and
 * waits for it to return (signals the thread gets meanwhile are delivered
 * to it). *ret: its rax. 0, -ESRCH when the process ended, -EFAULT when the
 * call faulted, or -errno; `why` says it. */
int mta_inject_call(mta_inject_t *s, uintptr_t fn, const uintptr_t *args, int nargs,
                    uintptr_t *ret, char *why, size_t len);
/* Reads a NUL-terminated string of the target (at most len - 1 bytes). */
int mta_inject_read_string(mta_inject_t *s, uintptr_t addr, char *out, size_t len);
/* Puts back every register and byte, hands back a signal taken meanwhile,
 * and lets the thread go: it resumes where it was (a system call it was
 * blocked in restarts, as after a signal without a handler). */
void mta_inject_end(mta_inject_t *s);

#endif /* MTA_INJECT_H */
