/*
 * Calling a function inside another running process, without a debugger:
 * what `memtrail attach` uses to dlopen libmemtrail.so and call
 * memtrail_attach, and `memtrail detach` to call memtrail_detach.
 *
 * One thread, the others running. Only the thread that makes the call is
 * stopped (PTRACE_SEIZE, PTRACE_INTERRUPT): stopping every thread could
 * hold one inside malloc or the loader with a lock taken, and the injected
 * dlopen would wait for it forever. The thread is chosen at a point where
 * calling into the C library is safe: in the program's own code (not inside
 * libc, the loader, libmemtrail or a library named like an allocator
 * (libjemalloc, libtcmalloc...), where it may hold one of their locks),
 * or blocked in a system call other than futex (read, nanosleep, poll...);
 * a thread that is not there is let go and another tried, a few thousand
 * times over the threads, and only then one blocked in futex is accepted.
 * Its stack must have 256 KiB below the stack pointer.
 *
 * The call. No code is written into the target: the arguments go in
 * registers, the strings below the thread's red zone (the bytes there are
 * saved first), and the return address pushed is 0. When the function
 * returns, the thread faults at address 0 and the SIGSEGV's delivery stop
 * comes to us: rax is the result, and the signal is never delivered. Other
 * signals the thread gets meanwhile are delivered to it as usual (a handler
 * runs on top of the call, as it would on top of any code). The direction
 * flag and the trap flag are cleared for the call, orig_rax is -1 so that
 * the kernel does not take the call for an interrupted system call.
 *
 * The end. Every general register (orig_rax included), the whole extended
 * state (x87, SSE, AVX...) and the stack bytes written are put back, then
 * the thread is detached. A thread that was blocked in a system call was
 * stopped with rax = -ERESTARTSYS (or another restart code) and orig_rax
 * the call's number; detached with those, the kernel restarts the call on
 * its way back to user space exactly as after a signal without a handler
 * (nanosleep, through restart_syscall, with the time it had left), and the
 * program sees no EINTR. A signal whose delivery stop came before our
 * interrupt's is handed back at the detach.
 *
 * Failures. Before the call, any failure lets the thread go unchanged. A
 * fault inside the call (anything but the return to 0) is reported, and the
 * thread is put back all the same: what the call had done stays done. If
 * this process dies while a call runs, the kernel lets the thread go and
 * its return to 0 kills the target: the commands block SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT meanwhile (SIGKILL cannot be blocked).
 */
#include "inject.h"

#include <stdarg.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memtrail_protocol.h"

#define RED_ZONE 128
#define STACK_NEEDED (256 * 1024)   /* below the stack pointer, for dlopen and our start-up */
#define TRIES_SAFE 3000             /* stops looked at before a futex wait is accepted */
#define TRIES_MAX 6000
#define STOP_WAIT_NS (2ull * 1000 * 1000 * 1000)
#define XSTATE_MAX (64 * 1024)
/* The kernel's restart codes, seen in rax at a stop inside a system call. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

_Static_assert(sizeof(struct user_regs_struct) == 27 * 8, "mta_inject_t.regs");

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* ---- /proc ---- */
static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return (int)n;
}

/* The number after "Key:" in /proc/PID/status (or a task's), -1 if absent. */
static long status_field(const char *path, const char *key)
{
    char buf[4096];
    if (read_file(path, buf, sizeof(buf)) < 0)
        return -1;
    size_t klen = strlen(key);
    for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, klen) == 0 && p[klen] == ':')
            return strtol(p + klen + 1, NULL, 10);
    return -1;
}

/* Whether tracer is memtrail's own leak-scan helper in process pid: a
 * clone of it (its parent) that holds threads for a scan of a fraction of a
 * second (preload/leak/stopworld.c), not another debugger. */
static int own_scan_helper(pid_t pid, long tracer)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", tracer);
    return tracer > 0 && status_field(path, "PPid") == (long)pid;
}

/* Waits (5 s at most) while pid's threads are held by its own leak scan;
 * returns the tracer left: 0, another process, or the helper still. */
static long wait_own_scan(pid_t pid, const char *status_path)
{
    long tracer = status_field(status_path, "TracerPid");
    for (int i = 0; i < 500 && own_scan_helper(pid, tracer); i++) {
        struct timespec ms = {0, 10 * 1000 * 1000};
        nanosleep(&ms, NULL);
        tracer = status_field(status_path, "TracerPid");
    }
    return tracer;
}

/* State letter of /proc/PID/stat (R, S, D, T, t, Z...), 0 if unreadable. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static int is_libc(const char *base)
{
    return strncmp(base, "libc.so.", 8) == 0 || (strncmp(base, "libc-", 5) == 0 &&
                                                 strstr(base, ".so") != NULL);
}

/* Notes a mapping of object m: the bias from its first page, its text. */
static void note_mapping(mta_mapped_t *m, const char *path, uintptr_t lo, uintptr_t hi,
                         uintptr_t off, const char *perms)
{
    if (!m->path[0])
        snprintf(m->path, sizeof(m->path), "%s", path);
    else if (strcmp(m->path, path) != 0)
        return;   /* a second copy under another name: the first counts */
    if (off == 0 && !m->bias)
        m->bias = lo;   /* corrected by the ELF's first PT_LOAD in mta_target_symbol */
    if (perms[2] == 'x') {
        if (!m->text_lo || lo < m->text_lo)
            m->text_lo = lo;
        if (hi > m->text_hi)
            m->text_hi = hi;
    }
}

static int read_maps(mta_target_t *t)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)t->pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    memset(&t->libc, 0, sizeof(t->libc));
    memset(&t->loader, 0, sizeof(t->loader));
    memset(&t->memtrail, 0, sizeof(t->memtrail));
    memset(t->allocator, 0, sizeof(t->allocator));
    t->nallocators = 0;
    t->memtrail_deleted = 0;
    while (getline(&line, &cap, f) > 0) {
        unsigned long lo, hi, off;
        char perms[8];
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %n", &lo, &hi, perms, &off, &n) < 4 || !n ||
            line[n] != '/')
            continue;
        line[strcspn(line, "\n")] = 0;
        const char *p = line + n, *b = base_name(p);
        if (strstr(p, " (deleted)")) {
            if (strncmp(b, MTPROTO_LIB_NAME, sizeof(MTPROTO_LIB_NAME) - 1) == 0)
                t->memtrail_deleted = 1;
            continue;
        }
        if (is_libc(b))
            note_mapping(&t->libc, p, lo, hi, off, perms);
        else if (strncmp(b, "ld-linux", 8) == 0 || strncmp(b, "ld-musl", 7) == 0)
            note_mapping(&t->loader, p, lo, hi, off, perms);
        else if (strcmp(b, MTPROTO_LIB_NAME) == 0)
            note_mapping(&t->memtrail, p, lo, hi, off, perms);
        else if (strstr(b, "malloc")) {   /* an allocator's lock may be held in its code */
            int k = 0;
            while (k < t->nallocators && strcmp(t->allocator[k].path, p) != 0)
                k++;
            if (k < (int)(sizeof(t->allocator) / sizeof(t->allocator[0]))) {
                note_mapping(&t->allocator[k], p, lo, hi, off, perms);
                if (k == t->nallocators)
                    t->nallocators++;
            }
        }
    }
    free(line);
    fclose(f);
    return 0;
}

int mta_target_refresh(mta_target_t *t)
{
    return read_maps(t);
}

/* Whether LD_PRELOAD in /proc/PID/environ names libmemtrail. */
static int environ_preloads(pid_t pid)
{
    char path[64], buf[65536];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    int n = read_file(path, buf, sizeof(buf));
    for (int i = 0; i < n; i += (int)strlen(buf + i) + 1)
        if (strncmp(buf + i, "LD_PRELOAD=", 11) == 0 && strstr(buf + i, MTPROTO_LIB_NAME))
            return 1;
    return 0;
}

int mta_elf_kind(const char *path)
{
    unsigned char id[20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, id, sizeof(id));
    close(fd);
    if (n < (ssize_t)sizeof(id) || memcmp(id, ELFMAG, SELFMAG) != 0)
        return -ENOEXEC;
    uint16_t machine = (uint16_t)(id[18] | id[19] << 8);   /* e_machine, little-endian */
    if (id[EI_CLASS] == ELFCLASS32)
        return 32;
    return id[EI_CLASS] == ELFCLASS64 && machine == EM_X86_64 ? 64 : 0;
}

const char *mta_yama_scope_path = "/proc/sys/kernel/yama/ptrace_scope";

void mta_not_permitted(pid_t pid, char *why, size_t len)
{
    char buf[16], path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    int scope = read_file(mta_yama_scope_path, buf, sizeof(buf)) > 0 ? buf[0] - '0' : 0;
    if (stat(path, &st) == 0 && st.st_uid != geteuid())
        say(why, len, "not permitted to trace process %d: it belongs to user %u and memtrail runs "
            "as user %u (run memtrail as that user, or as root)", (int)pid, (unsigned)st.st_uid,
            (unsigned)geteuid());
    else if (scope == 3)
        say(why, len, "not permitted to trace process %d: kernel.yama.ptrace_scope is 3, which "
            "forbids ptrace until reboot", (int)pid);
    else if (scope == 2)
        say(why, len, "not permitted to trace process %d: kernel.yama.ptrace_scope is 2 (only "
            "with CAP_SYS_PTRACE: run memtrail as root)", (int)pid);
    else if (scope == 1)
        say(why, len, "not permitted to trace process %d: kernel.yama.ptrace_scope is 1 (only its "
            "ancestors may): run memtrail as root, or sysctl kernel.yama.ptrace_scope=0", (int)pid);
    else
        say(why, len, "not permitted to trace process %d (it is not dumpable, memtrail lacks "
            "CAP_SYS_PTRACE, or a security module refuses): run memtrail as root", (int)pid);
}

int mta_target_inspect(pid_t pid, mta_target_t *t, char *why, size_t len)
{
    char path[96];
    memset(t, 0, sizeof(*t));
    t->pid = pid;
    char st = proc_state(pid);
    if (!st) {
        say(why, len, "no process %d", (int)pid);
        return -ESRCH;
    }
    if (st == 'Z' || st == 'X') {
        say(why, len, "process %d has exited", (int)pid);
        return -ESRCH;
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    /* after its own leak scan's stop, if it was in one (or the next one
     * began meanwhile: --leak-check all scans at every snapshot) */
    long tracer;
    for (int i = 0;; i++) {
        tracer = wait_own_scan(pid, path);
        st = proc_state(pid);
        if (i == 20 || st != 't' || !own_scan_helper(pid, status_field(path, "TracerPid")))
            break;
    }
    if (tracer > 0) {
        char comm[64] = "?";
        char cpath[64];
        snprintf(cpath, sizeof(cpath), "/proc/%ld/comm", tracer);
        if (read_file(cpath, comm, sizeof(comm)) > 0)
            comm[strcspn(comm, "\n")] = 0;
        say(why, len, "process %d is already traced by process %ld (%s): a process has one "
            "tracer at a time; detach the debugger or tracer first", (int)pid, tracer, comm);
        return -EBUSY;
    }
    if (st == 'T' || st == 't') {
        say(why, len, "process %d is stopped: resume it first (kill -CONT %d)", (int)pid, (int)pid);
        return -EAGAIN;
    }
    if (pid == getpid()) {
        say(why, len, "process %d is memtrail itself", (int)pid);
        return -EINVAL;
    }
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    int kind = mta_elf_kind(path);
    if (kind == -EACCES || kind == -EPERM) {
        mta_not_permitted(pid, why, len);
        return -EPERM;
    }
    if (kind == 32) {
        say(why, len, "process %d is a 32-bit program: memtrail traces 64-bit x86 programs only",
            (int)pid);
        return -ENOEXEC;
    }
    if (kind == 0) {
        say(why, len, "process %d is not an x86-64 program", (int)pid);
        return -ENOEXEC;
    }
    int r = read_maps(t);
    if (r == -EACCES || r == -EPERM) {
        mta_not_permitted(pid, why, len);
        return -EPERM;
    }
    if (r < 0) {
        say(why, len, "cannot read /proc/%d/maps: %s", (int)pid, strerror(-r));
        return r;
    }
    if (!t->libc.path[0] || !t->loader.path[0]) {
        if (!t->loader.path[0])
            say(why, len, "process %d is statically linked: memtrail loads its tracer with the "
                "dynamic loader, which a static program does not have", (int)pid);
        else
            say(why, len, "process %d has no GNU C library mapped (%s): memtrail needs glibc's "
                "dlopen", (int)pid, base_name(t->loader.path));
        return -ENOEXEC;
    }
    t->preloaded = environ_preloads(pid);
    if (t->memtrail_deleted && !t->memtrail.path[0]) {
        say(why, len, "process %d maps a %s that has been deleted or replaced since it was "
            "loaded: memtrail cannot attach to or detach from it any more", (int)pid,
            MTPROTO_LIB_NAME);
        return -ESTALE;
    }
    return 0;
}

/* ---- ELF symbols ---- */
int mta_target_symbol(pid_t pid, const mta_mapped_t *m, const char *name, uintptr_t *addr)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, m->path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
        close(fd);
        return -ENOEXEC;
    }
    size_t size = (size_t)st.st_size;
    const unsigned char *img = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (img == MAP_FAILED)
        return -errno;
    int r = -ENOENT;
    const Elf64_Ehdr *eh = (const void *)img;
#define IN_FILE(off, n) ((uint64_t)(off) <= size && (uint64_t)(n) <= size - (uint64_t)(off))
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        !IN_FILE(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)) ||
        !IN_FILE(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr))) {
        r = -ENOEXEC;
        goto out;
    }
    /* The bias: the mapping of file offset 0 minus its PT_LOAD's address. */
    const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff);
    uintptr_t first = 0;
    for (unsigned i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) {
            first = ph[i].p_vaddr & ~(uintptr_t)0xfff;
            break;
        }
    uintptr_t bias = m->bias - first;
    const Elf64_Shdr *sh = (const void *)(img + eh->e_shoff);
    const Elf64_Shdr *dynsym = NULL, *versym = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type == SHT_DYNSYM)
            dynsym = &sh[i];
        else if (sh[i].sh_type == SHT_GNU_versym)
            versym = &sh[i];
    }
    if (!dynsym || dynsym->sh_link >= eh->e_shnum || !IN_FILE(dynsym->sh_offset, dynsym->sh_size)) {
        r = -ENOEXEC;
        goto out;
    }
    const Elf64_Shdr *strs = &sh[dynsym->sh_link];
    if (!IN_FILE(strs->sh_offset, strs->sh_size))
        goto out;
    const Elf64_Sym *sym = (const void *)(img + dynsym->sh_offset);
    size_t nsym = dynsym->sh_size / sizeof(*sym);
    const uint16_t *ver = versym && IN_FILE(versym->sh_offset, nsym * 2)
                              ? (const void *)(img + versym->sh_offset) : NULL;
    const char *strtab = (const char *)img + strs->sh_offset;
    size_t nlen = strlen(name);
    for (size_t i = 1; i < nsym; i++) {
        if (sym[i].st_shndx == SHN_UNDEF || sym[i].st_name + nlen >= strs->sh_size ||
            ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC || strcmp(strtab + sym[i].st_name, name) != 0)
            continue;
        *addr = bias + sym[i].st_value;
        r = 0;
        if (!ver || !(ver[i] & 0x8000))
            break;   /* the default version; else keep looking for it */
    }
#undef IN_FILE
out:
    munmap((void *)img, size);
    return r;
}

/* ---- ptrace ---- */
static struct user_regs_struct *regs_of(mta_inject_t *s)
{
    return (struct user_regs_struct *)(void *)s->regs;
}

/* Waits for tid's next stop (or end) at most STOP_WAIT_NS: 1 and *status,
 * 0 on timeout, -errno. */
static int wait_stop(pid_t tid, int *status, uint64_t timeout_ns)
{
    uint64_t deadline = now_ns() + timeout_ns;
    long us = 20;
    for (;;) {
        pid_t r = waitpid(tid, status, __WALL | WNOHANG);
        if (r == tid)
            return 1;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (now_ns() >= deadline)
            return 0;
        nap_us(us);
        if (us < 2000)
            us *= 2;
    }
}

/* The start of the mapping holding addr in the target (0 when none; 1 for
 * the main thread's [stack], which grows on demand). */
static uintptr_t mapping_start(pid_t pid, uintptr_t addr)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    uintptr_t start = 0;
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    while (getline(&line, &cap, f) > 0) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) {
            start = strstr(line, "[stack]") ? 1 : lo;
            break;
        }
    }
    free(line);
    fclose(f);
    return start;
}

static int in_text(const mta_mapped_t *m, uintptr_t pc)
{
    return m->text_lo && pc >= m->text_lo && pc < m->text_hi;
}

/* How safe a stopped thread is to call from: 2 safe, 1 only as a last
 * resort (blocked in futex), 0 not now. */
static int safety(const mta_target_t *t, const struct user_regs_struct *r)
{
    long ax = (long)r->rax;
    int restarting = ax == -ERESTARTSYS || ax == -ERESTARTNOINTR || ax == -ERESTARTNOHAND ||
                     ax == -ERESTART_RESTARTBLOCK || ax == -EINTR;
    uintptr_t stack = mapping_start(t->pid, r->rsp);
    if (!stack || r->rsp - stack < STACK_NEEDED)
        return 0;
    if ((long)r->orig_rax >= 0 && restarting)
        return r->orig_rax == SYS_futex ? 1 : 2;
    if (in_text(&t->libc, r->rip) || in_text(&t->loader, r->rip) || in_text(&t->memtrail, r->rip))
        return 0;
    for (int i = 0; i < t->nallocators; i++)
        if (in_text(&t->allocator[i], r->rip))
            return 0;
    return 2;
}

static int list_tids(pid_t pid, pid_t *tids, int cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int n = 0;
    tids[n++] = pid;   /* the main thread first */
    struct dirent *de;
    while ((de = readdir(d)) && n < cap) {
        pid_t tid = (pid_t)atoi(de->d_name);
        if (tid > 0 && tid != pid)
            tids[n++] = tid;
    }
    closedir(d);
    return n;
}

/* Seizes and stops tid. 1 held (regs read, *sig: a signal whose delivery
 * stop came first), 0 gone or never stopped, -errno refused. */
static int hold(mta_inject_t *s, pid_t tid, int *sig)
{
    *sig = 0;
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0)
        return errno == ESRCH ? 0 : -errno;
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0)
        return 0;   /* ended: the kernel let it go */
    int status;
    int w = wait_stop(tid, &status, STOP_WAIT_NS);
    if (w <= 0 || !WIFSTOPPED(status))
        return 0;   /* never stopped (dropped when we exit), or ended */
    if ((status >> 16) != PTRACE_EVENT_STOP)
        *sig = WSTOPSIG(status);
    if (ptrace(PTRACE_GETREGS, tid, NULL, s->regs) < 0) {
        ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)*sig);
        return 0;
    }
    return 1;
}

int mta_inject_begin(mta_inject_t *s, const mta_target_t *t, char *why, size_t len)
{
    pid_t tids[4096];
    pid_t exclude = s->exclude;
    memset(s, 0, sizeof(*s));
    s->exclude = exclude;
    s->pid = t->pid;
    s->memfd = -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)t->pid);
    int idle_rounds = 0, round_busy = 0;   /* rounds in which every thread waited in futex */
    for (int attempt = 0; attempt < TRIES_MAX; attempt++) {
        int n = list_tids(t->pid, tids, (int)(sizeof(tids) / sizeof(tids[0])));
        if (n <= 0) {
            say(why, len, "process %d has exited", (int)t->pid);
            return -ESRCH;
        }
        pid_t tid = tids[attempt % n];
        if (tid == s->exclude) {
            if (n == 1)
                break;
            continue;
        }
        int sig;
        int h = hold(s, tid, &sig);
        if (h < 0) {
            if (h == -EPERM) {
                char tpath[96];
                snprintf(tpath, sizeof(tpath), "/proc/%d/task/%d/status", (int)t->pid, (int)tid);
                long tracer = status_field(tpath, "TracerPid");
                if (own_scan_helper(t->pid, tracer) && wait_own_scan(t->pid, tpath) == 0)
                    continue;   /* held by the process's own leak scan, now over: try again */
                if (tracer > 0)
                    say(why, len, "thread %d of process %d is already traced by process %ld: "
                        "detach that tracer first", (int)tid, (int)t->pid, tracer);
                else
                    mta_not_permitted(t->pid, why, len);
            } else {
                say(why, len, "cannot trace process %d: %s", (int)t->pid, strerror(-h));
            }
            return h;
        }
        if (h == 0)
            continue;
        int safe = safety(t, regs_of(s));
        round_busy |= safe == 0;
        if (safe == 2 || (safe == 1 && (attempt >= TRIES_SAFE || idle_rounds >= 3))) {
            s->tid = tid;
            s->pending_sig = sig;
            break;
        }
        ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig);
        if (attempt % n == n - 1) {   /* a round over every thread: let them move on */
            idle_rounds = round_busy ? 0 : idle_rounds + 1;
            round_busy = 0;
            nap_us(200);
        }
    }
    if (!s->tid) {
        say(why, len, "no thread of process %d came to a point where memtrail can call into it "
            "(all busy inside the C library, or with too little stack)", (int)t->pid);
        return -EAGAIN;
    }
    s->xstate = malloc(XSTATE_MAX);
    s->memfd = open(path, O_RDWR | O_CLOEXEC);
    struct iovec iov = {s->xstate, XSTATE_MAX};
    if (!s->xstate || s->memfd < 0 ||
        ptrace(PTRACE_GETREGSET, s->tid, (void *)NT_X86_XSTATE, &iov) < 0) {
        int e = s->xstate ? errno : ENOMEM;
        say(why, len, "cannot read the state of thread %d: %s", (int)s->tid, strerror(e));
        mta_inject_end(s);
        return -e;
    }
    s->xstate_len = iov.iov_len;
    return 0;
}

int mta_inject_data(mta_inject_t *s, const void *data, size_t len, uintptr_t *addr)
{
    if (s->saved_stack)
        return -EBUSY;
    uintptr_t at = (regs_of(s)->rsp - RED_ZONE - len) & ~(uintptr_t)15;
    size_t span = regs_of(s)->rsp - RED_ZONE - (at - 16);   /* the return slot too */
    s->saved_stack = malloc(span);
    if (!s->saved_stack)
        return -ENOMEM;
    if (pread(s->memfd, s->saved_stack, span, (off_t)(at - 16)) != (ssize_t)span) {
        free(s->saved_stack);
        s->saved_stack = NULL;
        return -EIO;
    }
    s->scratch = at - 16;
    s->scratch_len = span;
    if (pwrite(s->memfd, data, len, (off_t)at) != (ssize_t)len)
        return -EIO;
    *addr = at;
    return 0;
}

int mta_inject_read_string(mta_inject_t *s, uintptr_t addr, char *out, size_t len)
{
    ssize_t n = pread(s->memfd, out, len - 1, (off_t)addr);
    if (n <= 0)
        return -EIO;
    out[n] = 0;
    out[strnlen(out, (size_t)n)] = 0;
    return 0;
}

int mta_inject_call(mta_inject_t *s, uintptr_t fn, const uintptr_t *args, int nargs,
                    uintptr_t *ret, char *why, size_t len)
{
    struct user_regs_struct r = *regs_of(s);
    uintptr_t top = s->saved_stack ? s->scratch + 16 : (r.rsp - RED_ZONE) & ~(uintptr_t)15;
    if (!s->saved_stack) {   /* no data: the return slot alone */
        uintptr_t unused;
        int e = mta_inject_data(s, "", 0, &unused);
        if (e < 0) {
            say(why, len, "cannot write the stack of thread %d: %s", (int)s->tid, strerror(-e));
            return e;
        }
        top = s->scratch + 16;
    }
    uint64_t zero = 0;
    if (pwrite(s->memfd, &zero, sizeof(zero), (off_t)(top - 8)) != (ssize_t)sizeof(zero)) {
        say(why, len, "cannot write the stack of thread %d: %s", (int)s->tid, strerror(errno));
        return -EIO;
    }
    unsigned long long *slots[6] = {&r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9};
    for (int i = 0; i < nargs && i < 6; i++)
        *slots[i] = args[i];
    r.rip = fn;
    r.rsp = top - 8;          /* as after a call: (rsp + 8) % 16 == 0 */
    r.rax = 0;
    r.orig_rax = (unsigned long long)-1;   /* not a system call to restart */
    r.eflags &= ~0x500ull;    /* DF and TF */
    if (ptrace(PTRACE_SETREGS, s->tid, NULL, &r) < 0 ||
        ptrace(PTRACE_CONT, s->tid, NULL, NULL) < 0) {
        say(why, len, "cannot start the call in thread %d: %s", (int)s->tid, strerror(errno));
        return -errno;
    }
    for (;;) {
        int status;
        int w = wait_stop(s->tid, &status, 3600ull * 1000000000u);
        if (w < 0 || (w > 0 && (WIFEXITED(status) || WIFSIGNALED(status)))) {
            say(why, len, "process %d ended during the call", (int)s->pid);
            return -ESRCH;
        }
        if (w == 0)
            continue;
        int sig = WSTOPSIG(status);
        if ((status >> 16) == PTRACE_EVENT_STOP) {   /* our interrupt, or a group stop */
            ptrace(PTRACE_CONT, s->tid, NULL, NULL);
            continue;
        }
        if (sig == SIGSEGV) {
            struct user_regs_struct now;
            siginfo_t si;
            if (ptrace(PTRACE_GETREGS, s->tid, NULL, &now) == 0 && now.rip == 0 &&
                ptrace(PTRACE_GETSIGINFO, s->tid, NULL, &si) == 0 && si.si_addr == NULL) {
                *ret = now.rax;
                return 0;   /* returned to 0: held in the SIGSEGV's delivery stop */
            }
            say(why, len, "the call faulted in thread %d (SIGSEGV at %#llx): the process may be "
                "left inconsistent", (int)s->tid, (unsigned long long)now.rip);
            return -EFAULT;
        }
        if (sig == SIGBUS || sig == SIGILL || sig == SIGFPE) {
            say(why, len, "the call faulted in thread %d (signal %d)", (int)s->tid, sig);
            return -EFAULT;
        }
        ptrace(PTRACE_CONT, s->tid, NULL, (void *)(long)sig);   /* the program's: delivered */
    }
}

void mta_inject_end(mta_inject_t *s)
{
    if (s->tid) {
        if (s->saved_stack && s->memfd >= 0)
            (void)!pwrite(s->memfd, s->saved_stack, s->scratch_len, (off_t)s->scratch);
        if (s->xstate_len) {
            struct iovec iov = {s->xstate, s->xstate_len};
            ptrace(PTRACE_SETREGSET, s->tid, (void *)NT_X86_XSTATE, &iov);
        }
        ptrace(PTRACE_SETREGS, s->tid, NULL, s->regs);
        ptrace(PTRACE_DETACH, s->tid, NULL, (void *)(long)s->pending_sig);
        s->tid = 0;
    }
    if (s->memfd >= 0)
        close(s->memfd);
    s->memfd = -1;
    free(s->saved_stack);
    s->saved_stack = NULL;
    free(s->xstate);
    s->xstate = NULL;
}
