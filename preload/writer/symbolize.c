/* Write-time symbolization for the preload, run by the writer thread.
 *
 * Threads and locks: everything here runs on the writer thread while an
 * application thread may be blocked waiting for it, possibly holding the
 * stdio lock or the dynamic loader's lock. So the module map comes from a raw
 * read(2) of /proc/self/maps (no stdio, no dl_iterate_phdr, no dladdr), and
 * libdwfl gets our own callbacks: elfutils' standard find_elf/find_debuginfo
 * helpers dlopen libdebuginfod (0.188, libdwfl/debuginfod-client.c) and may
 * reach the network, so find_debuginfo_local() below searches only the local
 * /usr/lib/debug tree and the .gnu_debuglink places. We never call
 * dwfl_errmsg/elf_errmsg either (they go through dcgettext). libdw's own
 * rwlocks are per-object and only ever taken by this thread.
 *
 * Invariants: the module table is sorted by start and never overlaps (maps
 * order); each entry owns one Dwfl_Module whose ELF libdw opened from our fd
 * with bias = runtime address - p_vaddr (dwfl_report_elf, add_p_vaddr=true).
 * Nothing survives mtp_sym_close. Within one open, per-module symbol tables
 * are built lazily (sorted, binary searched: dwfl_module_addrinfo scans the
 * whole table per call) and results are cached per pc, so a repeated pc costs
 * one hash probe. Every string handed out lives until mtp_sym_close.
 */
#include "base/util.h"
#include "writer/symbolize.h"

#include <elf.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEBUG_ROOT "/usr/lib/debug"

typedef struct sym_entry {
    uint64_t addr, end;             /* end: addr + size, or section end */
    const char *name;
    int rank;                       /* higher wins among aliases */
    bool label;                     /* sizeless symbol */
    int index;                      /* then the first in the table, as libdw */
} sym_entry_t;

typedef struct mod_state {
    Dwfl_Module *dm;
    sym_entry_t *syms;
    size_t nsyms;
    bool syms_loaded;
} mod_state_t;

typedef struct pc_slot {
    uint64_t pc;                    /* 0 = empty */
    mtp_sym_t sym;
} pc_slot_t;

typedef struct file_slot {
    const char *key;                /* libdw's string, NULL = empty */
    char *path;                     /* our absolute, normalized copy */
} file_slot_t;

struct mtp_symbolizer {
    Dwfl *dwfl;
    mtp_module_t *mods;
    mod_state_t *st;
    size_t nmods, capmods;
    pc_slot_t *pcs;
    size_t npcs, cappcs;            /* cappcs: power of two */
    file_slot_t *files;
    size_t nfiles, capfiles;        /* capfiles: power of two */
};

/* One run of consecutive file-backed mappings of the same path in maps. */
typedef struct map_group {
    const char *path;               /* points into the maps buffer */
    size_t pathlen;
    uint64_t start, end;
    uint64_t low_off, low_off_start; /* lowest file offset and its address */
    bool exec;
} map_group_t;

/* ---- small helpers ------------------------------------------------------ */

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

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

static int read_all(const char *path, char **bufp, size_t *lenp)
{
    size_t cap = 16384, len = 0;
    char *buf = NULL;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    buf = malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *bufp = buf;
    *lenp = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static const char *parse_hex(const char *p, uint64_t *v)
{
    uint64_t x = 0;
    for (;; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else
            break;
        x = x << 4 | d;
    }
    *v = x;
    return p;
}

static const char *skip_field(const char *p)
{
    while (*p == ' ')
        p++;
    while (*p && *p != ' ' && *p != '\n')
        p++;
    return p;
}

/* ---- local debuginfo search --------------------------------------------- */

static void hex_encode(const unsigned char *bits, size_t n, char *out)
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
    static const char pre[] = DEBUG_ROOT "/.build-id/";
    char *s = malloc(sizeof pre + 2 * n + sizeof ".debug" + 1);
    if (!s)
        return NULL;
    char *p = s + sizeof pre - 1;
    memcpy(s, pre, sizeof pre - 1);
    hex_encode(bits, 1, p);
    p[2] = '/';
    hex_encode(bits + 1, n - 1, p + 3);
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
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (elf) {
        const void *id = NULL;
        ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
        ok = n == (ssize_t)want_len && memcmp(id, want, want_len) == 0;
        elf_end(elf);
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
        Dwarf *dw = dwfl_module_getdwarf(mod, &dbias);
        *userdata = NULL;
        const char *altname = NULL;
        const void *alt_id = NULL;
        ssize_t n = dw ? dwelf_dwarf_gnu_debugaltlink(dw, &altname, &alt_id)
                       : -1;
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

    int n = dwfl_module_build_id(mod, &id, &id_vaddr);
    if (n > 0) {
        id_len = (size_t)n;
        fd = try_candidate(build_id_path(id, id_len), id, id_len, namep);
    }
    if (fd >= 0 || !debuglink || !file_name || file_name[0] != '/')
        return fd;

    const char *slash = strrchr(file_name, '/');
    char *dir = strndup(file_name, (size_t)(slash - file_name + 1));
    if (!dir)
        return -1;
    fd = try_candidate(join3(dir, debuglink, ""), id, id_len, namep);
    if (fd < 0)
        fd = try_candidate(join3(dir, ".debug/", debuglink), id, id_len, namep);
    if (fd < 0) {
        char *d = join3(DEBUG_ROOT, dir, "");
        if (d)
            fd = try_candidate(join3(d, debuglink, ""), id, id_len, namep);
        free(d);
    }
    free(dir);
    return fd;
}

/* Every module arrives with its ELF already open (dwfl_report_elf). */
static int find_elf_none(Dwfl_Module *mod, void **userdata, const char *name,
                         Dwarf_Addr base, char **file_name, Elf **elfp)
{
    *elfp = NULL;
    return -1;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = find_elf_none,
    .find_debuginfo = find_debuginfo_local,
    .section_address = dwfl_offline_section_address,
};

/* ---- module table ------------------------------------------------------- */

/* Reads the ELF header and the first PT_LOAD of FD. Returns 0 or -ENOEXEC. */
static int first_load(int fd, ElfW(Phdr) *load)
{
    ElfW(Ehdr) eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
        eh.e_phnum == PN_XNUM)
        return -ENOEXEC;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        off_t at = (off_t)(eh.e_phoff + (uint64_t)i * sizeof *load);
        if (pread(fd, load, sizeof *load, at) != (ssize_t)sizeof *load)
            return -ENOEXEC;
        if (load->p_type == PT_LOAD)
            return 0;
    }
    return -ENOEXEC;
}

/* Reports one group to libdwfl and appends it to the table. Non-ELF files and
 * files libdw refuses are skipped (returns 0); only -ENOMEM is an error. */
static int add_module(mtp_symbolizer_t *s, const map_group_t *g)
{
    ElfW(Phdr) load;
    char *path = NULL;
    int fd = -1, rc = 0;

    if (s->nmods == s->capmods) {
        size_t cap = s->capmods ? s->capmods * 2 : 32;
        mtp_module_t *m = realloc(s->mods, cap * sizeof *m);
        if (!m)
            return -ENOMEM;
        s->mods = m;
        mod_state_t *st = realloc(s->st, cap * sizeof *st);
        if (!st)
            return -ENOMEM;
        s->st = st;
        s->capmods = cap;
    }
    path = strndup(g->path, g->pathlen);
    if (!path)
        return -ENOMEM;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || first_load(fd, &load) < 0 || g->low_off > load.p_offset)
        goto out;
    uint64_t bias = g->low_off_start + (load.p_offset - g->low_off) - load.p_vaddr;
    Dwfl_Module *dm = dwfl_report_elf(s->dwfl, path, path, fd, bias, true);
    if (!dm)
        goto out;
    fd = -1;                        /* libdw owns it now */
    mtp_module_t *m = &s->mods[s->nmods];
    m->start = g->start;
    m->end = g->end;
    m->bias = bias;
    m->path = path;
    m->build_id = "";
    s->st[s->nmods] = (mod_state_t){ .dm = dm };
    s->nmods++;
    path = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static bool is_deleted(const char *path, size_t len)
{
    static const char tag[] = " (deleted)";
    return len >= sizeof tag - 1 &&
           memcmp(path + len - (sizeof tag - 1), tag, sizeof tag - 1) == 0;
}

/* Walks the maps text, reporting each exec-bearing group of mappings. */
static int scan_maps(mtp_symbolizer_t *s, const char *text)
{
    map_group_t g = { 0 };
    bool open_group = false;
    int rc = 0;

    for (const char *p = text; *p; ) {
        const char *eol = strchr(p, '\n');
        if (!eol)
            eol = p + strlen(p);
        uint64_t start, end, off;
        const char *q = parse_hex(p, &start);
        q = parse_hex(q + 1, &end);
        bool exec = q[1] && q[2] && q[3] == 'x';
        q = skip_field(q);                      /* perms */
        while (*q == ' ')
            q++;
        q = parse_hex(q, &off);
        q = skip_field(q);                      /* dev */
        q = skip_field(q);                      /* inode */
        while (*q == ' ')
            q++;
        const char *path = q < eol ? q : eol;
        size_t len = (size_t)(eol - path);
        p = *eol ? eol + 1 : eol;
        if (len == 0 || path[0] != '/')
            continue;                           /* anonymous or [special] */
        if (is_deleted(path, len))
            continue;
        if (open_group && g.pathlen == len && memcmp(g.path, path, len) == 0) {
            g.end = end;
            g.exec |= exec;
            if (off < g.low_off) {
                g.low_off = off;
                g.low_off_start = start;
            }
            continue;
        }
        if (open_group && g.exec && (rc = add_module(s, &g)) < 0)
            return rc;
        g = (map_group_t){ .path = path, .pathlen = len, .start = start,
                           .end = end, .low_off = off, .low_off_start = start,
                           .exec = exec };
        open_group = true;
    }
    if (open_group && g.exec)
        rc = add_module(s, &g);
    return rc;
}

static int fill_build_ids(mtp_symbolizer_t *s)
{
    for (size_t i = 0; i < s->nmods; i++) {
        const unsigned char *bits;
        GElf_Addr vaddr;
        int n = dwfl_module_build_id(s->st[i].dm, &bits, &vaddr);
        if (n <= 0)
            continue;
        char *hex = malloc(2 * (size_t)n + 1);
        if (!hex)
            return -ENOMEM;
        hex_encode(bits, (size_t)n, hex);
        s->mods[i].build_id = hex;
    }
    return 0;
}

int mtp_sym_open(mtp_symbolizer_t **out)
{
    char *maps = NULL;
    size_t len;
    int rc;
    mtp_symbolizer_t *s = calloc(1, sizeof *s);

    *out = NULL;
    if (!s)
        return -ENOMEM;
    s->dwfl = dwfl_begin(&callbacks);
    if (!s->dwfl) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = read_all(MTP_PROC_MAPS, &maps, &len)) < 0)
        goto fail;
    dwfl_report_begin(s->dwfl);
    rc = scan_maps(s, maps);
    if (dwfl_report_end(s->dwfl, NULL, NULL) != 0 && rc == 0)
        rc = -ENOMEM;
    if (rc < 0 || (rc = fill_build_ids(s)) < 0)
        goto fail;
    free(maps);
    *out = s;
    return 0;
fail:
    free(maps);
    mtp_sym_close(s);
    return rc;
}

size_t mtp_sym_modules(mtp_symbolizer_t *s, const mtp_module_t **mods)
{
    *mods = s->mods;
    return s->nmods;
}

/* ---- symbols ------------------------------------------------------------ */

static int sym_cmp(const void *a, const void *b)
{
    const sym_entry_t *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    if (x->rank != y->rank)
        return y->rank - x->rank;   /* best alias first */
    return x->index - y->index;
}

/* libdw's preference among aliases: sized, then global > weak > local. */
static int sym_rank(const GElf_Sym *sym)
{
    int bind = GELF_ST_BIND(sym->st_info);
    return (sym->st_size > 0 ? 8 : 0) +
           (bind == STB_GLOBAL ? 3 : bind == STB_WEAK ? 2 : 1);
}

/* Where a sizeless symbol (assembly label) may match: up to the end of its
 * section, as dwfl_module_addrsym's same-section rule. 0 if unusable. */
static uint64_t label_end(Elf *elf, GElf_Word shndx, uint64_t addr,
                          Dwarf_Addr bias)
{
    GElf_Shdr sh;
    Elf_Scn *scn = elf ? elf_getscn(elf, shndx) : NULL;
    if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_size == 0)
        return 0;
    uint64_t lo = sh.sh_addr + bias, hi = lo + sh.sh_size;
    return addr >= lo && addr < hi ? hi : 0;
}

/* Builds the module's sorted symbol table (once per open), keeping what
 * dwfl_module_addrinfo would consider: named, defined, not section/file/TLS. */
static void load_syms(mod_state_t *ms)
{
    ms->syms_loaded = true;
    int n = dwfl_module_getsymtab(ms->dm);
    if (n <= 1)
        return;
    sym_entry_t *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return;
    size_t k = 0;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr addr;
        GElf_Word shndx;
        Elf *elf;
        Dwarf_Addr bias;
        const char *name = dwfl_module_getsym_info(ms->dm, i, &sym, &addr,
                                                   &shndx, &elf, &bias);
        int type = GELF_ST_TYPE(sym.st_info);
        if (!name || !name[0] || shndx == SHN_UNDEF || type == STT_SECTION ||
            type == STT_FILE || type == STT_TLS)
            continue;
        uint64_t end = sym.st_size ? addr + sym.st_size
                                   : label_end(elf, shndx, addr, bias);
        if (end <= addr)
            continue;
        v[k++] = (sym_entry_t){ addr, end, name, sym_rank(&sym),
                                sym.st_size == 0, i };
    }
    qsort(v, k, sizeof *v, sym_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++)          /* keep the best of each address */
        if (w == 0 || v[w - 1].addr != v[i].addr)
            v[w++] = v[i];
    ms->syms = v;
    ms->nsyms = w;
}

/* The symbol covering A: the nearest one at or below A if it contains A (a
 * label: A in its section); else a sized one a few entries back that A is
 * nested in. */
static const sym_entry_t *find_sym(const mod_state_t *ms, uint64_t a)
{
    size_t lo = 0, hi = ms->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ms->syms[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const sym_entry_t *e = &ms->syms[lo - 1];
    if (e->label || a < e->end)
        return a < e->end ? e : NULL;
    for (size_t i = lo - 1, steps = 0; i > 0 && steps < 8; i--, steps++) {
        e = &ms->syms[i - 1];
        if (!e->label && a < e->end)
            return e;
    }
    return NULL;
}

static int find_module(const mtp_symbolizer_t *s, uint64_t a)
{
    size_t lo = 0, hi = s->nmods;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->mods[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || a >= s->mods[lo - 1].end)
        return -1;
    return (int)(lo - 1);
}

/* libdw's file name made absolute with the CU's comp dir and normalized;
 * interned per libdw string. Falls back to libdw's string on ENOMEM. */
static const char *intern_file(mtp_symbolizer_t *s, const char *name,
                               Dwfl_Line *line)
{
    if (s->nfiles * 2 >= s->capfiles) {
        size_t cap = s->capfiles ? s->capfiles * 2 : 64;
        file_slot_t *nt = calloc(cap, sizeof *nt);
        if (!nt)
            return name;
        for (size_t i = 0; i < s->capfiles; i++) {
            if (!s->files[i].key)
                continue;
            size_t j = hash_u64((uintptr_t)s->files[i].key) & (cap - 1);
            while (nt[j].key)
                j = (j + 1) & (cap - 1);
            nt[j] = s->files[i];
        }
        free(s->files);
        s->files = nt;
        s->capfiles = cap;
    }
    size_t j = hash_u64((uintptr_t)name) & (s->capfiles - 1);
    while (s->files[j].key) {
        if (s->files[j].key == name)
            return s->files[j].path;
        j = (j + 1) & (s->capfiles - 1);
    }
    const char *dir = name[0] == '/' ? NULL : dwfl_line_comp_dir(line);
    char *path = dir && dir[0] == '/' ? join3(dir, "/", name) : strdup(name);
    if (!path)
        return name;
    if (path[0] == '/')
        normalize_path(path);
    s->files[j] = (file_slot_t){ name, path };
    s->nfiles++;
    return path;
}

static void resolve(mtp_symbolizer_t *s, uint64_t pc, mtp_sym_t *out)
{
    *out = (mtp_sym_t){ .function = "", .file = "", .module = -1 };
    if (pc == 0)
        return;
    uint64_t a = pc - 1;
    int mi = find_module(s, a);
    if (mi < 0)
        return;
    out->module = mi;
    mod_state_t *ms = &s->st[mi];
    if (!ms->syms_loaded)
        load_syms(ms);
    const sym_entry_t *e = find_sym(ms, a);
    if (e) {
        out->function = e->name;
        out->offset = pc - e->addr;
    }
    Dwfl_Line *line = dwfl_module_getsrc(ms->dm, a);
    int lineno = 0;
    const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL,
                                            NULL, NULL) : NULL;
    if (file && file[0] && lineno > 0) {
        out->file = intern_file(s, file, line);
        out->line = (uint32_t)lineno;
    }
}

static bool grow_pcs(mtp_symbolizer_t *s)
{
    size_t cap = s->cappcs ? s->cappcs * 2 : 1024;
    pc_slot_t *nt = calloc(cap, sizeof *nt);
    if (!nt)
        return false;
    for (size_t i = 0; i < s->cappcs; i++) {
        if (!s->pcs[i].pc)
            continue;
        size_t j = hash_u64(s->pcs[i].pc) & (cap - 1);
        while (nt[j].pc)
            j = (j + 1) & (cap - 1);
        nt[j] = s->pcs[i];
    }
    free(s->pcs);
    s->pcs = nt;
    s->cappcs = cap;
    return true;
}

int mtp_sym_lookup(mtp_symbolizer_t *s, uint64_t pc, mtp_sym_t *out)
{
    if (pc == 0 || (s->npcs * 2 >= s->cappcs && !grow_pcs(s))) {
        resolve(s, pc, out);        /* uncacheable: answer anyway */
        return 0;
    }
    size_t j = hash_u64(pc) & (s->cappcs - 1);
    while (s->pcs[j].pc) {
        if (s->pcs[j].pc == pc) {
            *out = s->pcs[j].sym;
            return 0;
        }
        j = (j + 1) & (s->cappcs - 1);
    }
    resolve(s, pc, out);
    s->pcs[j] = (pc_slot_t){ pc, *out };
    s->npcs++;
    return 0;
}

void mtp_sym_close(mtp_symbolizer_t *s)
{
    if (!s)
        return;
    if (s->dwfl)
        dwfl_end(s->dwfl);
    for (size_t i = 0; i < s->nmods; i++) {
        free((char *)s->mods[i].path);
        if (s->mods[i].build_id[0])
            free((char *)s->mods[i].build_id);
        free(s->st[i].syms);
    }
    for (size_t i = 0; i < s->capfiles; i++)
        free(s->files[i].path);
    free(s->files);
    free(s->pcs);
    free(s->mods);
    free(s->st);
    free(s);
}
