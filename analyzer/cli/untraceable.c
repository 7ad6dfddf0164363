/*
 * Why `memtrail run` cannot trace a program: the cases where the dynamic
 * loader never maps libmemtrail.so into it, so it writes no snapshot and
 * the user would otherwise only read "no snapshots in DIR" at the end.
 *
 * - No dynamic loader: an ELF executable without PT_INTERP (static or
 *   static-pie). The loader itself run as a program (`ld.so CMD`) has no
 *   PT_INTERP either but honours LD_PRELOAD: it is recognised as a shared
 *   object run as a program (a DT_SONAME, which no executable has; memtrail
 *   itself may be a static PIE, so its own PT_INTERP cannot name it).
 * - Secure execution (AT_SECURE), where the loader ignores LD_PRELOAD
 *   entries holding a slash (memtrail's is absolute): the kernel's rule,
 *   the new effective uid differs from our real uid or the new effective
 *   gid from our real gid, with set-user-ID and set-group-ID (group execute
 *   bit set) bits honoured unless the file system is mounted nosuid or
 *   no_new_privs is set; for a user other than root, file capabilities too.
 * - Another ELF class or machine than libmemtrail.so: the loader skips the
 *   library ("wrong ELF class").
 *
 * The file is the one execvp() would run (PATH searched the same way), and
 * "#!" scripts are followed to their interpreter as the kernel does (at
 * most 4 levels). Anything unreadable or unusual gives no reason: exec then
 * reports real errors itself. Only the native byte order is parsed; a
 * file of the other one differs from libmemtrail.so in its class or
 * machine bytes or is reported as such.
 */
#include "untraceable.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_SHEBANG 4
#define CLAUSE ": it will write no snapshot"

/* The file execvp(cmd) runs, into path; false when there is none. */
static bool resolve(const char *cmd, char *path, size_t len)
{
    if (strchr(cmd, '/'))
        return (size_t)snprintf(path, len, "%s", cmd) < len;
    const char *p = getenv("PATH");
    if (!p)
        p = "/bin:/usr/bin";   /* glibc's default (confstr _CS_PATH) */
    for (;;) {
        size_t n = strcspn(p, ":");
        struct stat st;
        if ((size_t)snprintf(path, len, "%.*s%s%s", (int)n, p, n ? "/" : "", cmd) < len &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
            return true;
        if (p[n] == '\0')
            return false;
        p += n + 1;
    }
}

/* What an ELF file's headers say. */
typedef struct elf_info {
    unsigned char cls;   /* ELFCLASS32 or ELFCLASS64 */
    unsigned machine;
    bool interp;         /* has PT_INTERP */
    bool soname;         /* its dynamic section has DT_SONAME: a shared object */
} elf_info_t;

/* Whether the dynamic section at off (size bytes) has a DT_SONAME entry. */
static bool has_soname(int fd, bool is64, uint64_t off, uint64_t size)
{
    size_t entsize = is64 ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
    for (uint64_t i = 0; i < size / entsize && i < 4096; i++) {
        union { Elf64_Dyn d64; Elf32_Dyn d32; } d;
        if (pread(fd, &d, entsize, (off_t)(off + i * entsize)) < (ssize_t)entsize)
            return false;
        int64_t tag = is64 ? d.d64.d_tag : d.d32.d_tag;
        if (tag == DT_SONAME)
            return true;
        if (tag == DT_NULL)
            return false;
    }
    return false;
}

/* Reads the ELF header and program headers of an open file: 0, or -1 when
 * it is not an ELF file of the native byte order. */
static int elf_read(int fd, elf_info_t *e)
{
    union { Elf64_Ehdr h64; Elf32_Ehdr h32; unsigned char id[EI_NIDENT]; } h;
    memset(e, 0, sizeof(*e));
    if (pread(fd, &h, sizeof(h), 0) < (ssize_t)sizeof(h.h32) || memcmp(h.id, ELFMAG, SELFMAG) != 0)
        return -1;
    const unsigned char native =
        __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
    e->cls = h.id[EI_CLASS];
    bool is64 = e->cls == ELFCLASS64;
    if ((!is64 && e->cls != ELFCLASS32) || h.id[EI_DATA] != native)
        return -1;
    e->machine = is64 ? h.h64.e_machine : h.h32.e_machine;
    uint64_t phoff = is64 ? h.h64.e_phoff : h.h32.e_phoff;
    unsigned phnum = is64 ? h.h64.e_phnum : h.h32.e_phnum;
    unsigned phentsize = is64 ? h.h64.e_phentsize : h.h32.e_phentsize;
    if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)))
        return phnum ? -1 : 0;
    uint64_t dyn_off = 0, dyn_size = 0;
    for (unsigned i = 0; i < phnum && i < 4096; i++) {
        union { Elf64_Phdr p64; Elf32_Phdr p32; } ph;
        if (pread(fd, &ph, is64 ? sizeof(ph.p64) : sizeof(ph.p32),
                  (off_t)(phoff + (uint64_t)i * phentsize)) <
            (ssize_t)(is64 ? sizeof(ph.p64) : sizeof(ph.p32)))
            return -1;
        uint32_t type = is64 ? ph.p64.p_type : ph.p32.p_type;
        if (type == PT_INTERP) {
            e->interp = true;
            return 0;
        }
        if (type == PT_DYNAMIC) {
            dyn_off = is64 ? ph.p64.p_offset : ph.p32.p_offset;
            dyn_size = is64 ? ph.p64.p_filesz : ph.p32.p_filesz;
        }
    }
    e->soname = dyn_size && has_soname(fd, is64, dyn_off, dyn_size);
    return 0;
}

static int elf_read_path(const char *path, elf_info_t *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = elf_read(fd, e);
    close(fd);
    return rc;
}

/* The interpreter of a "#!" script open as fd, into interp; false when fd
 * is not a script. */
static bool shebang(int fd, char *interp, size_t len)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 3 || buf[0] != '#' || buf[1] != '!')
        return false;
    buf[n] = '\0';
    char *p = buf + 2 + strspn(buf + 2, " \t");
    size_t k = strcspn(p, " \t\n");
    if (k == 0 || k >= len)
        return false;
    memcpy(interp, p, k);
    interp[k] = '\0';
    return true;
}

/* Why exec'ing this file runs in secure mode, or NULL. */
static const char *secure_reason(int fd, const struct stat *st)
{
    struct statvfs vfs;
    bool honoured = !(fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_NOSUID)) &&
                    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1;
    bool suid = honoured && (st->st_mode & S_ISUID);
    bool sgid = honoured && (st->st_mode & S_ISGID) && (st->st_mode & S_IXGRP);
    if ((suid ? st->st_uid : geteuid()) != getuid())
        return suid ? "is set-user-ID" : "runs with another effective user";
    if ((sgid ? st->st_gid : getegid()) != getgid())
        return sgid ? "is set-group-ID" : "runs with another effective group";
    if (honoured && getuid() != 0 && fgetxattr(fd, "security.capability", NULL, 0) > 0)
        return "has file capabilities";
    return NULL;
}

const char *mta_untraceable(const char *cmd, const char *lib, char *why, size_t len)
{
    char path[PATH_MAX], script[PATH_MAX] = "";
    elf_info_t e, l;
    if (!resolve(cmd, path, sizeof(path)))
        return NULL;
    for (int level = 0; level <= MAX_SHEBANG; level++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        char of[PATH_MAX + 32] = "";
        if (script[0])
            snprintf(of, sizeof(of), ", the interpreter of %s,", script);
        char interp[PATH_MAX];
        if (shebang(fd, interp, sizeof(interp))) {   /* its set-ID bits are never honoured */
            close(fd);
            snprintf(script, sizeof(script), "%s", path);
            snprintf(path, sizeof(path), "%s", interp);
            continue;
        }
        int rc = elf_read(fd, &e);
        const char *secure = rc == 0 ? secure_reason(fd, &st) : NULL;
        close(fd);
        if (rc < 0)
            return NULL;   /* not ELF: execvp hands it to /bin/sh */
        if (secure) {
            snprintf(why, len, "%s%s %s (the loader ignores LD_PRELOAD there)" CLAUSE, path, of,
                     secure);
            return why;
        }
        if (elf_read_path(lib, &l) == 0 && (l.cls != e.cls || l.machine != e.machine)) {
            snprintf(why, len, "%s%s is built for another architecture than %s (the loader "
                     "skips the tracer)" CLAUSE, path, of, lib);
            return why;
        }
        if (!e.interp && !e.soname) {
            snprintf(why, len, "%s%s is statically linked (no dynamic loader to preload the "
                     "tracer)" CLAUSE, path, of);
            return why;
        }
        return NULL;
    }
    return NULL;
}
