/* nothread: a process that ends alone before memtrail's writer thread has
 * started (preload/writer/writer.c, `deferred`), and that cannot create a
 * thread at all: main forbids clone and clone3 (a seccomp filter that
 * answers EPERM) before it allocates. Its exit snapshot must still be
 * written, taken on its own exiting thread, with exact leak kinds.
 *
 * It prints how many threads the process had when main began ("threads N",
 * from /proc/self/task read with raw getdents64: no allocation), 1 when
 * memtrail's writer has not started; tests/integration/test_leaks.c runs it
 * under memtrail.
 *
 * Expected leak classification at exit, by allocating function:
 *   lose_one       definite   40 / 1
 *   keep_one       reachable  72 / 1   (in g_kept)
 * Exit status 0.
 */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept;

/* Entries of /proc/self/task, less "." and "..". */
static long count_threads(void)
{
    char buf[4096];
    long n = 0;
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        prog_die("nothread", "cannot open /proc/self/task");
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (got <= 0)
            break;
        for (long at = 0; at < got;) {
            unsigned short reclen;
            memcpy(&reclen, buf + at + 16, sizeof(reclen));   /* d_reclen */
            const char *name = buf + at + 19;                  /* d_name */
            if (name[0] != '.')
                n++;
            at += reclen;
        }
    }
    close(fd);
    return n;
}

/* clone and clone3 fail with EPERM from now on (x86-64 only: other
 * architectures are killed, which the test would see). */
static void forbid_threads(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1 /* EPERM */),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof(f) / sizeof(f[0])), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        prog_die("nothread", "cannot install the seccomp filter");
}

static NOINLINE void keep_one(void)
{
    g_kept = malloc(72); /* SITE:keep_one */
    if (g_kept == NULL)
        prog_die("nothread", "malloc failed");
    memset(g_kept, 0, 72);
}

static NOINLINE void lose_one(void)
{
    char *p = malloc(40); /* SITE:lose_one */
    if (p == NULL)
        prog_die("nothread", "malloc failed");
    memset(p, 'x', 40);
}

/* Overwrites the stack below main's frame, where lose_one's pointer was. */
static NOINLINE void scrub(void)
{
    volatile char pad[512];
    memset((char *)pad, 0, sizeof(pad));
}

int main(void)
{
    long threads = count_threads();
    forbid_threads();
    keep_one();
    lose_one();
    scrub();
    char num[24];
    prog_put(1, "threads ");
    prog_put(1, prog_utoa(num, (unsigned long)threads));
    prog_put(1, "\n");
    return 0;
}
