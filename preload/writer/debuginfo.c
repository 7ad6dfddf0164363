/* Where the symbolizer's libdw finds separate debug files: local files only.
 *
 * elfutils' standard find_elf/find_debuginfo helpers dlopen libdebuginfod
 * (0.188, libdwfl/debuginfod-client.c) and may reach the network, and they
 * take locks an application thread blocked on the writer may hold; these
 * callbacks search only the MTP_DEBUG_ROOT build-id tree and the
 * .gnu_debuglink places, with open(2) and libelf. They never call
 * dwfl_errmsg/elf_errmsg (those go through dcgettext). Every module arrives
 * with its ELF already open (dwfl_report_elf), so find_elf declines.
 *
 * Also here: the ELF header facts the module table needs (first PT_LOAD,
 * build id), read with pread(2) so that a process whose answers are all in
 * the cache never sets up libdw.
 */
#include "writer/debuginfo.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/state.h"
#include "base/libload.h"
#include "writer/symcache.h"

#define MAX_PHDRS 256
#define MAX_NOTE 4096            /* PT_NOTE segments hold a few small notes */

static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/* Lexically drops "." and ".." components of an absolute path, in place. */
static void normalize_path(char *p)
{
    char *out = p, *in = p;
    while (*in) {
        while (*in == '/')
            in++;
        char *seg = in;
        while (*in && *in != '/')
            in++;
        size_t len = (size_t)(in - seg);
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > p && *--out != '/')
                ;
            continue;
        }
        *out++ = '/';
        memmove(out, seg, len);
        out += len;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

void mtp_hex_encode(const unsigned char *bits, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bits[i] >> 4];
        out[2 * i + 1] = digits[bits[i] & 15];
    }
    out[2 * n] = '\0';
}

/* /usr/lib/debug/.build-id/xx/rest.debug for a build id; NULL on ENOMEM. */
static char *build_id_path(const unsigned char *bits, size_t n)
{
    static const char pre[] = MTP_DEBUG_ROOT "/.build-id/";
    char *s = malloc(sizeof pre + 2 * n + sizeof ".debug" + 1);
    if (!s)
        return NULL;
    char *p = s + sizeof pre - 1;
    memcpy(s, pre, sizeof pre - 1);
    mtp_hex_encode(bits, 1, p);
    p[2] = '/';
    mtp_hex_encode(bits + 1, n - 1, p + 3);
    memcpy(p + 3 + 2 * (n - 1), ".debug", sizeof ".debug");
    return s;
}

/* Opens PATH if it is an ELF file carrying build id WANT (when want_len > 0).
 * Returns the fd or -1. */
static int open_checked(const char *path, const unsigned char *want,
                        size_t want_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || want_len == 0)
        return fd;
    bool ok = false;
    Elf *elf = DW(elf_begin)(fd, ELF_C_READ_MMAP, NULL);
    if (elf) {
        const void *id = NULL;
        ssize_t n = DW(dwelf_elf_gnu_build_id)(elf, &id);
        ok = n == (ssize_t)want_len && memcmp(id, want, want_len) == 0;
        DW(elf_end)(elf);
    }
    if (!ok) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Tries CANDIDATE (taken over); on success stores it in *namep. */
static int try_candidate(char *candidate, const unsigned char *want,
                         size_t want_len, char **namep)
{
    if (!candidate)
        return -1;
    int fd = open_checked(candidate, want, want_len);
    if (fd < 0) {
        free(candidate);
        return -1;
    }
    free(*namep);
    *namep = candidate;
    return fd;
}

/* ---- uncompressed copies -------------------------------------------------- */

/* Writer-only, set by the symbolizer: where copies live, NULL for none. */
static const char *copy_dir;

void mtp_debuginfo_set_copies(const char *dir)
{
    copy_dir = dir;
}

static bool has_compressed(int fd)
{
    bool found = false;
    Elf *elf = DW(elf_begin)(fd, ELF_C_READ_MMAP, NULL);
    size_t shstrndx;
    if (!elf || DW(elf_getshdrstrndx)(elf, &shstrndx) < 0) {
        DW(elf_end)(elf);
        return false;
    }
    for (Elf_Scn *scn = NULL; !found && (scn = DW(elf_nextscn)(elf, scn)) != NULL;) {
        GElf_Shdr sh;
        found = DW(gelf_getshdr)(scn, &sh) && (sh.sh_flags & SHF_COMPRESSED) &&
                sh.sh_type != SHT_NOBITS;
    }
    DW(elf_end)(elf);
    return found;
}

/* Writes PATH: the ELF file FD with every SHF_COMPRESSED section inflated
 * (libelf lays the file out again), under a temporary name renamed into
 * place. 0 or -1. */
static int write_copy(int fd, const char *path)
{
    char tmp[PATH_MAX + 32], buf[65536];
    int rc = -1;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return -1;
    off_t at = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                goto out;
            break;
        }
        for (ssize_t w = 0; w < n;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                goto out;
            w += k;
        }
        at += n;
    }
    Elf *elf = DW(elf_begin)(out, ELF_C_RDWR, NULL);
    if (!elf)
        goto out;
    bool ok = true;
    for (Elf_Scn *scn = NULL; ok && (scn = DW(elf_nextscn)(elf, scn)) != NULL;) {
        GElf_Shdr sh;
        if (DW(gelf_getshdr)(scn, &sh) && (sh.sh_flags & SHF_COMPRESSED) &&
            sh.sh_type != SHT_NOBITS)
            ok = DW(elf_compress)(scn, 0, 0) >= 0;
    }
    ok = ok && DW(elf_update)(elf, ELF_C_WRITE) >= 0;
    DW(elf_end)(elf);
    if (ok && fsync(out) == 0 && rename(tmp, path) == 0)
        rc = 0;
out:
    close(out);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* FD, the separate debug file of build id ID: when its DWARF is compressed,
 * an uncompressed copy in the copy directory is opened instead (made by the
 * first process that needs it), so that libdw maps the sections rather than
 * inflating them whole in every process. *namep follows. */
static int prefer_copy(int fd, const unsigned char *id, size_t id_len, char **namep)
{
    char hex[2 * 64 + 1], path[PATH_MAX];
    if (fd < 0 || !copy_dir || id_len == 0 || id_len > 64)
        return fd;
    mtp_hex_encode(id, id_len, hex);
    if (snprintf(path, sizeof path, "%s/%s.debug", copy_dir, hex) >= (int)sizeof path)
        return fd;
    int cfd = open_checked(path, id, id_len);
    if (cfd < 0 && has_compressed(fd) && write_copy(fd, path) == 0)
        cfd = open_checked(path, id, id_len);
    char *name = cfd >= 0 ? strdup(path) : NULL;
    if (!name) {
        if (cfd >= 0)
            close(cfd);
        return fd;
    }
    close(fd);
    free(*namep);
    *namep = name;
    return cfd;
}

/* Marks the module's (otherwise unused) Dwfl userdata during the alt probe. */
static char alt_probe_mark;
#define ALT_PROBE ((void *)&alt_probe_mark)

/* Dwfl find_debuginfo callback, local files only. libdwfl calls it for the
 * module's separate debug file (DEBUGLINK is .gnu_debuglink's basename with
 * its CRC, or NULL) and, once DWARF is loaded, for the dwz alternate file
 * (DEBUGLINK is .gnu_debugaltlink's path, CRC 0). A module without a build
 * id accepts a debuglink candidate by name alone (no CRC pass over it). */
static int find_debuginfo_local(Dwfl_Module *mod, void **userdata,
                                const char *modname, Dwarf_Addr base,
                                const char *file_name, const char *debuglink,
                                GElf_Word crc, char **namep)
{
    const unsigned char *id = NULL;
    GElf_Addr id_vaddr;
    size_t id_len = 0;
    int fd = -1;

    if (*userdata == ALT_PROBE)
        return -1;                  /* re-entered from getdwarf below */
    if (debuglink != NULL && crc == 0) {
        /* libdwfl has set up mod->dw before asking for the alt file, so
         * getdwarf returns it at once; the guard stops any recursion. */
        Dwarf_Addr dbias;
        *userdata = ALT_PROBE;
        Dwarf *dw = DW(dwfl_module_getdwarf)(mod, &dbias);
        *userdata = NULL;
        const char *altname = NULL;
        const void *alt_id = NULL;
        ssize_t n = dw ? DW(dwelf_dwarf_gnu_debugaltlink)(dw, &altname, &alt_id) : -1;
        if (n > 0) {
            id = alt_id;
            id_len = (size_t)n;
            fd = try_candidate(build_id_path(id, id_len), id, id_len, namep);
        }
        if (fd < 0 && debuglink[0] == '/')
            fd = try_candidate(strdup(debuglink), id, id_len, namep);
        if (fd < 0 && debuglink[0] != '/' && file_name) {
            const char *slash = strrchr(file_name, '/');
            if (slash) {
                char *dir = strndup(file_name, (size_t)(slash - file_name + 1));
                if (dir) {
                    char *p = join3(dir, debuglink, "");
                    if (p)
                        normalize_path(p);
                    fd = try_candidate(p, id, id_len, namep);
                    free(dir);
                }
            }
        }
        return fd;
    }

    int n = DW(dwfl_module_build_id)(mod, &id, &id_vaddr);
    if (n > 0) {
        id_len = (size_t)n;
        fd = try_candidate(build_id_path(id, id_len), id, id_len, namep);
    }
    if (fd >= 0 || !debuglink || !file_name || file_name[0] != '/')
        return prefer_copy(fd, id, id_len, namep);

    const char *slash = strrchr(file_name, '/');
    char *dir = strndup(file_name, (size_t)(slash - file_name + 1));
    if (!dir)
        return -1;
    fd = try_candidate(join3(dir, debuglink, ""), id, id_len, namep);
    if (fd < 0)
        fd = try_candidate(join3(dir, ".debug/", debuglink), id, id_len, namep);
    if (fd < 0) {
        char *d = join3(MTP_DEBUG_ROOT, dir, "");
        if (d)
            fd = try_candidate(join3(d, debuglink, ""), id, id_len, namep);
        free(d);
    }
    free(dir);
    return prefer_copy(fd, id, id_len, namep);
}

/* Every module arrives with its ELF already open (dwfl_report_elf). */
static int find_elf_none(Dwfl_Module *mod, void **userdata, const char *name,
                         Dwarf_Addr base, char **file_name, Elf **elfp)
{
    *elfp = NULL;
    return -1;
}

/* libdw's own, loaded with it (libload.c). */
static int section_address(Dwfl_Module *mod, void **userdata, const char *modname,
                           Dwarf_Addr base, const char *secname, GElf_Word shndx,
                           const GElf_Shdr *shdr, Dwarf_Addr *addr)
{
    return DW(dwfl_offline_section_address)(mod, userdata, modname, base, secname, shndx, shdr,
                                            addr);
}

const Dwfl_Callbacks mtp_dwfl_callbacks = {
    .find_elf = find_elf_none,
    .find_debuginfo = find_debuginfo_local,
    .section_address = section_address,
};


char *mtp_source_path(const char *comp_dir, const char *name)
{
    const char *dir = name[0] == '/' ? NULL : comp_dir;
    char *path = dir && dir[0] == '/' ? join3(dir, "/", name) : strdup(name);
    if (path && path[0] == '/')
        normalize_path(path);
    return path;
}

/* ---- ELF headers, read with pread(2) or from the image ----------------- */

static void note_build_id(const char *p, size_t n, size_t align, char *hex)
{
    size_t at = 0;
    while (n - at >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        memcpy(&nh, p + at, sizeof nh);
        size_t name_at = at + sizeof nh;
        size_t desc_at = name_at + ((nh.n_namesz + align - 1) & ~(align - 1));
        size_t next = desc_at + ((nh.n_descsz + align - 1) & ~(align - 1));
        if (nh.n_namesz > n || nh.n_descsz > n || next > n || desc_at > n)
            return;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp(p + name_at, "GNU", 4) == 0 && nh.n_descsz > 0 && nh.n_descsz <= 64) {
            mtp_hex_encode((const unsigned char *)p + desc_at, nh.n_descsz, hex);
            return;
        }
        at = next;
    }
}

/* Where mtp_elf_info reads: a file descriptor, or the module's image in
 * this process. The image holds the file's bytes [0, mem_limit) at base +
 * offset: the first page (the mapping of file offset 0, page-sized at
 * least) until the program headers say how far the segment at file offset
 * 0 goes. It is read with process_vm_readv, which fails rather than faults
 * on memory that is not mapped (another thread may unmap it meanwhile):
 * that first page in one call, which holds the headers and, in the files
 * of a usual link, the notes. */
#define IMAGE_PAGE 4096
typedef struct elf_src {
    int fd;                 /* -1: the image */
    pid_t pid;              /* this process's */
    uintptr_t base;
    uint64_t mem_limit;
    size_t have;            /* bytes of page[] read */
    char page[IMAGE_PAGE];
} elf_src_t;

static bool elf_read(elf_src_t *src, void *buf, size_t n, uint64_t off)
{
    if (src->fd >= 0)
        return pread(src->fd, buf, n, (off_t)off) == (ssize_t)n;
    if (off > src->mem_limit || n > src->mem_limit - off)
        return false;
    if (off + n <= src->have) {
        memcpy(buf, src->page + off, n);
        return true;
    }
    struct iovec local = {buf, n}, remote = {(void *)(src->base + off), n};
    return process_vm_readv(src->pid, &local, 1, &remote, 1, 0) == (ssize_t)n;
}

static int elf_info(elf_src_t *src, mtp_elf_info_t *out)
{
    ElfW(Ehdr) eh;
    ElfW(Phdr) ph[MAX_PHDRS];
    bool have_load = false;

    out->build_id[0] = '\0';
    out->text_lo = UINT64_MAX;
    out->text_hi = 0;
    if (!elf_read(src, &eh, sizeof eh, 0) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
        eh.e_phnum == PN_XNUM || eh.e_phnum > MAX_PHDRS)
        return -ENOEXEC;
    size_t want = eh.e_phnum * sizeof ph[0];
    if (!elf_read(src, ph, want, eh.e_phoff))
        return -ENOEXEC;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
            if (ph[i].p_vaddr < out->text_lo)
                out->text_lo = ph[i].p_vaddr;
            if (ph[i].p_vaddr + ph[i].p_memsz > out->text_hi)
                out->text_hi = ph[i].p_vaddr + ph[i].p_memsz;
        }
        if (ph[i].p_type == PT_LOAD && !have_load) {
            out->load = ph[i];
            have_load = true;
            if (src->fd < 0)   /* the image: as far as that segment goes, if at offset 0 */
                src->mem_limit = ph[i].p_offset == 0 ? ph[i].p_filesz : 0;
        }
    }
    for (unsigned i = 0; i < eh.e_phnum && have_load; i++) {
        if (ph[i].p_type != PT_NOTE || out->build_id[0] || ph[i].p_filesz > MAX_NOTE ||
            ph[i].p_filesz < sizeof(ElfW(Nhdr)))
            continue;
        char note[MAX_NOTE];
        if (!elf_read(src, note, ph[i].p_filesz, ph[i].p_offset)) {
            if (src->fd < 0)
                return -EFAULT;   /* not in the image: the caller reads the file */
            continue;
        }
        note_build_id(note, ph[i].p_filesz, ph[i].p_align == 8 ? 8 : 4, out->build_id);
    }
    if (out->text_hi == 0)
        out->text_lo = 0;   /* no executable segment: nothing to check against */
    return have_load ? 0 : -ENOEXEC;
}

int mtp_elf_info(int fd, mtp_elf_info_t *out)
{
    elf_src_t src = {.fd = fd};
    return elf_info(&src, out);
}

int mtp_elf_info_image(uintptr_t base, mtp_elf_info_t *out)
{
    /* the preload's pid (base/state.h): a system call less per module */
    elf_src_t src = {.fd = -1, .pid = mtp_pid > 0 ? mtp_pid : getpid(), .base = base,
                     .mem_limit = IMAGE_PAGE};
    struct iovec local = {src.page, IMAGE_PAGE}, remote = {(void *)base, IMAGE_PAGE};
    if (process_vm_readv(src.pid, &local, 1, &remote, 1, 0) != IMAGE_PAGE)
        return -EFAULT;
    src.have = IMAGE_PAGE;
    return elf_info(&src, out) == 0 ? 0 : -EFAULT;
}
