/* Write-time symbolization for the preload, run by the writer thread.
 *
 * Threads and locks: everything here runs on the writer thread while an
 * application thread may be blocked waiting for it, possibly holding the
 * stdio lock or the dynamic loader's lock. So the module map comes from a raw
 * read(2) of the maps file (MTP_PROC_MAPS; no stdio, no dl_iterate_phdr, no dladdr), build
 * ids are read from the ELF program headers in the module's image with
 * process_vm_readv (else from the file with pread(2)), and libdwfl gets
 * the local-only callbacks of debuginfo.c. libdw's own rwlocks are
 * per-object and only ever taken by this thread.
 *
 * What lives how long. The symbolizer lives as long as the process (the
 * writer keeps one; a fork child inherits it, the writer's lock held across
 * fork makes it consistent). Per module it keeps every answer it gave, keyed
 * by pc (mmap'd open addressing), so a frame symbolized for one snapshot is
 * not symbolized again for the next. Each snapshot starts with a refresh of
 * the module map: a module is the same module only if its path, device,
 * inode, range and file offset are unchanged; anything else (dlclose, another
 * library dlopened at the same address) is a new module with no answers, so
 * a stale answer can never be returned. libdw is the expensive part (it
 * inflates compressed debug sections whole: ~50 ms and ~20 MB for
 * libc6-dbg's libc), so it is opened only on a miss, only for the modules
 * that miss, and released at the end of each snapshot (mtp_sym_flush): no
 * file descriptor or inflated section outlives a snapshot. With a cache
 * directory (mtp_sym_set_cache), a module with a build id first loads the
 * answers other processes saved for it (symcache.c) and saves its new ones at
 * the flush, so the thousandth `echo` of a shell script never opens libdw.
 *
 * An answer is the symbol's function, offset and file:line, and when the
 * call at pc - 1 is in inlined code, the chain of inlined functions (the
 * DW_TAG_inlined_subroutine scopes holding it; resolve_inlined), innermost
 * first, the symbol's function then at the call site of the outermost one. The chain is kept, cached and shared
 * with the rest of the answer.
 *
 * Invariants: the module table is sorted by start and never overlaps (maps
 * order). A module's libdw handle, when open, has bias = runtime address -
 * p_vaddr (dwfl_report_elf, add_p_vaddr=true). Within one libdw session,
 * per-module symbol tables are built lazily (sorted, binary searched:
 * dwfl_module_addrinfo scans the whole table per call). Every string handed
 * out is an arena copy (symcache.c) that lives as long as the symbolizer; none
 * points into libdw.
 */
#include "base/util.h"
#include "writer/symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "writer/debuginfo.h"
#include "base/libload.h"
#include "writer/symcache.h"


typedef struct sym_entry {
    uint64_t addr, end;             /* end: addr + size, or section end */
    const char *name;               /* libdw's: valid while the session lasts */
    int rank;                       /* higher wins among aliases */
    bool label;                     /* sizeless symbol */
    int index;                      /* then the first in the table, as libdw */
} sym_entry_t;

typedef struct pc_slot {
    uint64_t pc;                    /* 0 = empty */
    uint64_t offset;
    const char *function, *file;    /* arena strings */
    uint32_t line;
    uint32_t ninl;                  /* functions inlined at pc - 1 (mtp_sym_t) */
    const mtp_symline_t *inl;       /* arena array, innermost first */
} pc_slot_t;

typedef struct mod_state {
    uint64_t dev, ino, low_off;     /* identity, with path and range */
    uint64_t text_lo, text_hi;      /* its executable segments' virtual addresses (0, 0: unknown) */
    /* libdw, during a session only */
    Dwfl_Module *dm;
    bool dm_tried;
    bool units_walked;              /* walk_units done (or not to be done) */
    sym_entry_t *syms;
    size_t nsyms;
    bool syms_loaded;
    /* answers, for the life of the mapping */
    pc_slot_t *pcs;                 /* mmap'd, cappcs a power of two */
    size_t npcs, cappcs;
    /* disk cache */
    bool disk_tried;
    mtp_symfile_t disk;             /* its file, indexed; disk.current: append */
    mtp_buf_t pend;                 /* new records, written at the flush */
} mod_state_t;

typedef struct file_slot {
    const char *key;                /* libdw's string, NULL = empty */
    const char *path;               /* arena: absolute, normalized */
} file_slot_t;

struct mtp_symbolizer {
    mtp_module_t *mods;
    mod_state_t *st;
    size_t nmods;
    Dwfl *dwfl;                     /* NULL between sessions */
    bool dw_later;                  /* this lookup found libdw still loading */
    file_slot_t *files;             /* per session */
    size_t nfiles, capfiles;
    mtp_arena_t arena;
    char *cachedir;                 /* NULL: no disk cache */
    mtp_sym_stats_t stats;
};

/* One run of consecutive file-backed mappings of the same path in maps. */
typedef struct map_group {
    const char *path;               /* points into the maps buffer */
    size_t pathlen;
    uint64_t start, end;
    uint64_t low_off, low_off_start; /* lowest file offset and its address */
    uint64_t dev, ino;
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

static void *map_anon(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
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

static const char *parse_dec(const char *p, uint64_t *v)
{
    uint64_t x = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        x = x * 10 + (uint64_t)(*p - '0');
    *v = x;
    return p;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

static const char *skip_field(const char *p)
{
    p = skip_spaces(p);
    while (*p && *p != ' ' && *p != '\n')
        p++;
    return p;
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
    Elf_Scn *scn = elf ? DW(elf_getscn)(elf, shndx) : NULL;
    if (!scn || !DW(gelf_getshdr)(scn, &sh) || sh.sh_size == 0)
        return 0;
    uint64_t lo = sh.sh_addr + bias, hi = lo + sh.sh_size;
    return addr >= lo && addr < hi ? hi : 0;
}

/* Builds the module's sorted symbol table (once per open), keeping what
 * dwfl_module_addrinfo would consider: named, defined, not section/file/TLS. */
static void load_syms(mod_state_t *ms)
{
    ms->syms_loaded = true;
    int n = DW(dwfl_module_getsymtab)(ms->dm);
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
        const char *name = DW(dwfl_module_getsym_info)(ms->dm, i, &sym, &addr,
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

/* ---- module table ------------------------------------------------------- */

static bool same_module(const mtp_module_t *m, const mod_state_t *ms, const map_group_t *g)
{
    return m->start == g->start && m->end == g->end && ms->dev == g->dev &&
           ms->ino == g->ino && ms->low_off == g->low_off &&
           strlen(m->path) == g->pathlen && memcmp(m->path, g->path, g->pathlen) == 0;
}

/* The table being built by a refresh, and the one it replaces. */
typedef struct rebuild {
    mtp_module_t *mods;
    mod_state_t *st;
    size_t n, cap;
    bool *kept;                     /* per old module */
} rebuild_t;

static int rebuild_push(rebuild_t *r, const mtp_module_t *m, const mod_state_t *ms)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        mtp_module_t *nm = realloc(r->mods, cap * sizeof *nm);
        if (!nm)
            return -ENOMEM;
        r->mods = nm;
        mod_state_t *ns = realloc(r->st, cap * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        r->st = ns;
        r->cap = cap;
    }
    r->mods[r->n] = *m;
    r->st[r->n++] = *ms;
    return 0;
}

/* Adds one group: the old module when it is the same mapping, else a new
 * module (bias and build id from the file). Non-ELF files are skipped
 * (returns 0); only -ENOMEM is an error. */
static int add_group(mtp_symbolizer_t *s, rebuild_t *r, const map_group_t *g)
{
    int old = find_module(s, g->start);
    if (old >= 0 && same_module(&s->mods[old], &s->st[old], g)) {
        r->kept[old] = true;
        return rebuild_push(r, &s->mods[old], &s->st[old]);
    }
    char path[PATH_MAX];
    mtp_elf_info_t ei;
    if (g->pathlen >= sizeof path)
        return 0;
    memcpy(path, g->path, g->pathlen);
    path[g->pathlen] = '\0';
    int bad = g->low_off == 0 ? mtp_elf_info_image((uintptr_t)g->low_off_start, &ei) : -EFAULT;
    if (bad == -EFAULT) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
        bad = mtp_elf_info(fd, &ei);
        close(fd);
    }
    if (bad < 0 || g->low_off > ei.load.p_offset)
        return 0;
    mtp_module_t m = {
        .start = g->start, .end = g->end,
        .bias = g->low_off_start + (ei.load.p_offset - g->low_off) - ei.load.p_vaddr,
        .path = mtp_arena_intern(&s->arena, path, g->pathlen),
        .build_id = mtp_arena_intern(&s->arena, ei.build_id, strlen(ei.build_id)),
    };
    if (!m.path || !m.build_id)
        return -ENOMEM;
    mod_state_t ms = { .dev = g->dev, .ino = g->ino, .low_off = g->low_off,
                       .text_lo = ei.text_lo, .text_hi = ei.text_hi };
    return rebuild_push(r, &m, &ms);
}

static bool is_deleted(const char *path, size_t len)
{
    static const char tag[] = " (deleted)";
    return len >= sizeof tag - 1 &&
           memcmp(path + len - (sizeof tag - 1), tag, sizeof tag - 1) == 0;
}

/* Walks the maps text, adding each exec-bearing group of mappings. */
static int scan_maps(mtp_symbolizer_t *s, rebuild_t *r, const char *text)
{
    map_group_t g = { 0 };
    bool open_group = false;
    int rc = 0;

    for (const char *p = text; *p; ) {
        const char *eol = strchr(p, '\n');
        if (!eol)
            eol = p + strlen(p);
        uint64_t start, end, off, major, minor, ino;
        const char *q = mtp_hex(p, NULL, &start);
        q = mtp_hex(q + 1, NULL, &end);
        bool exec = q[1] && q[2] && q[3] == 'x';
        q = skip_field(q);                      /* perms */
        q = mtp_hex(skip_spaces(q), NULL, &off);
        q = mtp_hex(skip_spaces(q), NULL, &major);  /* dev, major:minor */
        q = mtp_hex(*q == ':' ? q + 1 : q, NULL, &minor);
        q = parse_dec(skip_spaces(q), &ino);
        q = skip_spaces(q);
        const char *path = q < eol ? q : eol;
        size_t len = (size_t)(eol - path);
        p = *eol ? eol + 1 : eol;
        if (len == 0 || path[0] != '/')
            continue;                           /* anonymous or [special] */
        if (is_deleted(path, len))
            continue;
        uint64_t dev = major << 32 | minor;
        if (open_group && g.pathlen == len && memcmp(g.path, path, len) == 0 &&
            g.dev == dev && g.ino == ino) {
            g.end = end;
            g.exec |= exec;
            if (off < g.low_off) {
                g.low_off = off;
                g.low_off_start = start;
            }
            continue;
        }
        if (open_group && g.exec && (rc = add_group(s, r, &g)) < 0)
            return rc;
        g = (map_group_t){ .path = path, .pathlen = len, .start = start,
                           .end = end, .low_off = off, .low_off_start = start,
                           .dev = dev, .ino = ino, .exec = exec };
        open_group = true;
    }
    if (open_group && g.exec)
        rc = add_group(s, r, &g);
    return rc;
}

static void drop_module(mod_state_t *ms)
{
    if (ms->pcs)
        munmap(ms->pcs, ms->cappcs * sizeof *ms->pcs);
    mtp_buf_free(&ms->pend);
    mtp_symfile_close(&ms->disk);
}

/* mtp_sym_refresh from GIVEN, the map text, or from a read of it (NULL). */
static int refresh_maps(mtp_symbolizer_t *s, const char *given)
{
    char *maps = NULL;
    size_t len;
    rebuild_t r = { 0 };
    int rc;

    mtp_sym_flush(s);               /* no libdw session across a map change */
    if (!given && (rc = read_all(MTP_PROC_MAPS, &maps, &len)) < 0)
        return rc;
    r.kept = calloc(s->nmods + 1, sizeof *r.kept);
    if (!r.kept) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = scan_maps(s, &r, given ? given : maps)) < 0) {
        free(r.mods);               /* new modules own nothing yet (arena strings) */
        free(r.st);
        goto out;
    }
    for (size_t i = 0; i < s->nmods; i++)
        if (!r.kept[i])
            drop_module(&s->st[i]);
    free(s->mods);
    free(s->st);
    s->mods = r.mods;
    s->st = r.st;
    s->nmods = r.n;
out:
    free(r.kept);
    free(maps);
    return rc;
}

int mtp_sym_refresh(mtp_symbolizer_t *s)
{
    return refresh_maps(s, NULL);
}

int mtp_sym_open(mtp_symbolizer_t **out)
{
    return mtp_sym_open_maps(out, NULL);
}

int mtp_sym_open_maps(mtp_symbolizer_t **out, const char *maps)
{
    mtp_symbolizer_t *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return -ENOMEM;
    int rc = refresh_maps(s, maps);
    if (rc < 0) {
        mtp_sym_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int mtp_sym_set_cache(mtp_symbolizer_t *s, const char *dir)
{
    mtp_debuginfo_set_copies(NULL);
    free(s->cachedir);
    s->cachedir = NULL;
    int rc = mtp_symdir_check(dir);
    if (rc < 0)
        return rc;
    s->cachedir = strdup(dir);
    mtp_debuginfo_set_copies(s->cachedir);
    return s->cachedir ? 0 : -ENOMEM;
}

size_t mtp_sym_modules(mtp_symbolizer_t *s, const mtp_module_t **mods)
{
    *mods = s->mods;
    return s->nmods;
}

/* libdw's file name made absolute with the CU's comp dir and normalized,
 * as an arena string; memoized per libdw string for the session. */
static const char *intern_file(mtp_symbolizer_t *s, const char *name, const char *comp_dir)
{
    if (s->nfiles * 2 >= s->capfiles) {
        size_t cap = s->capfiles ? s->capfiles * 2 : 64;
        file_slot_t *nt = calloc(cap, sizeof *nt);
        if (!nt)
            return "";
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
    char *path = mtp_source_path(comp_dir, name);
    const char *in = path ? mtp_arena_intern(&s->arena, path, strlen(path)) : NULL;
    free(path);
    if (!in)
        return "";
    s->files[j] = (file_slot_t){ name, in };
    s->nfiles++;
    return in;
}

/* The module's libdw handle, reported on first use in this session. */
static Dwfl_Module *module_dm(mtp_symbolizer_t *s, size_t mi)
{
    mod_state_t *ms = &s->st[mi];
    if (ms->dm || ms->dm_tried)
        return ms->dm;
    /* libdw is loaded on its first use (libload.h): a process whose answers
     * are all in the cache never maps it. Not loaded yet, but not for good
     * (-ENOENT): the module is asked again, and the answer not kept. */
    int r = s->dwfl || mtp_lib_ready(MTP_LIB_DW) ? 0 : mtp_lib_loader(MTP_LIB_DW);
    if (r < 0 && r != -ENOENT) {
        s->dw_later = true;
        return NULL;
    }
    ms->dm_tried = true;
    if (r < 0)
        return NULL;
    if (!s->dwfl) {
        s->dwfl = DW(dwfl_begin)(&mtp_dwfl_callbacks);
        if (!s->dwfl)
            return NULL;
        s->stats.dwfl_opens++;
    }
    int fd = open(s->mods[mi].path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DW(dwfl_report_begin_add)(s->dwfl);
    ms->dm = DW(dwfl_report_elf)(s->dwfl, s->mods[mi].path, s->mods[mi].path, fd,
                                 s->mods[mi].bias, true);
    DW(dwfl_report_end)(s->dwfl, NULL, NULL);
    if (!ms->dm)
        close(fd);                  /* else libdw owns it */
    return ms->dm;
}

/* Ends the libdw session: its handles, symbol tables and file names. */
static void session_end(mtp_symbolizer_t *s)
{
    /* What is already clear is not written: in a fork child each page
     * written is a copy-on-write fault (mtp_sym_atfork_child). */
    for (size_t i = 0; i < s->nmods; i++) {
        mod_state_t *ms = &s->st[i];
        if (!ms->syms && !ms->nsyms && !ms->syms_loaded && !ms->dm && !ms->dm_tried &&
            !ms->units_walked)
            continue;
        free(ms->syms);
        ms->syms = NULL;
        ms->nsyms = 0;
        ms->syms_loaded = false;
        ms->dm = NULL;
        ms->dm_tried = false;
        ms->units_walked = false;
    }
    if (s->dwfl) {
        DW(dwfl_end)(s->dwfl);
        s->dwfl = NULL;
    }
    if (s->files || s->nfiles || s->capfiles) {
        free(s->files);
        s->files = NULL;
        s->nfiles = s->capfiles = 0;
    }
}

MTP_FORK_CODE void mtp_sym_atfork_child(mtp_symbolizer_t *s)
{
    if (s)
        session_end(s);   /* libdw's descriptors; the answers stay, unsaved ones too */
}

/* The name an inlined instance is known by: its linkage name (mangled, as
 * a symbol's) when it has one, else its name, both from its abstract
 * origin; "" if none. */
static const char *inlined_name(mtp_symbolizer_t *s, Dwarf_Die *die)
{
    static const int attrs[] = { DW_AT_linkage_name, DW_AT_MIPS_linkage_name, DW_AT_name };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        Dwarf_Attribute at;
        const char *n =
            DW(dwarf_attr_integrate)(die, attrs[i], &at) ? DW(dwarf_formstring)(&at) : NULL;
        if (n && n[0]) {
            const char *in = mtp_arena_intern(&s->arena, n, strlen(n));
            return in ? in : "";
        }
    }
    return "";
}

/* The call site of the inlined instance DIE: its DW_AT_call_file (an index
 * into the CU's file table) and DW_AT_call_line; "" / 0 when absent. */
static void call_site(mtp_symbolizer_t *s, Dwarf_Die *cu, Dwarf_Die *die,
                      const char **file, uint32_t *line)
{
    Dwarf_Attribute at;
    Dwarf_Word v;
    Dwarf_Files *files;
    size_t nfiles;
    *file = "";
    *line = 0;
    if (DW(dwarf_attr)(die, DW_AT_call_line, &at) && DW(dwarf_formudata)(&at, &v) == 0 &&
        v <= UINT32_MAX)
        *line = (uint32_t)v;
    if (!DW(dwarf_attr)(die, DW_AT_call_file, &at) || DW(dwarf_formudata)(&at, &v) != 0 ||
        DW(dwarf_getsrcfiles)(cu, &files, &nfiles) != 0 || v >= nfiles)
        goto nofile;
    const char *name = DW(dwarf_filesrc)(files, v, NULL, NULL);
    if (!name || !name[0])
        goto nofile;
    const char *comp_dir = NULL;
    if (DW(dwarf_attr)(cu, DW_AT_comp_dir, &at))
        comp_dir = DW(dwarf_formstring)(&at);
    *file = intern_file(s, name, comp_dir);
    if ((*file)[0])
        return;
nofile:
    *line = 0;
}

/* Scopes that have code ranges, and containers that have none but may hold
 * such scopes (C++ namespaces, Fortran modules). */
static bool pc_scope(int tag)
{
    return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
           tag == DW_TAG_lexical_block || tag == DW_TAG_entry_point ||
           tag == DW_TAG_try_block || tag == DW_TAG_catch_block || tag == DW_TAG_with_stmt;
}

static bool container(int tag)
{
    return tag == DW_TAG_namespace || tag == DW_TAG_module;
}

#define SCOPE_DEPTH 128   /* nesting below a CU looked into */

/* Walks down from PARENT through the scopes whose ranges hold A (a module
 * address minus the CU's bias), appending the inlined instances met to
 * chain[] (outermost first; *n of them, at most max kept). Only the scopes
 * on the way are entered, and the siblings of each: one pass over a
 * fraction of the CU, where libdw's dwarf_getscopes with
 * dwarf_getscopes_die would walk all of it twice. Returns whether a scope
 * below PARENT holds A. */
static bool inlined_chain(Dwarf_Die *parent, Dwarf_Addr a, Dwarf_Die *chain, int *n, int max,
                          int depth)
{
    Dwarf_Die child;
    if (depth >= SCOPE_DEPTH || DW(dwarf_child)(parent, &child) != 0)
        return false;
    do {
        int tag = DW(dwarf_tag)(&child);
        if (pc_scope(tag)) {
            if (DW(dwarf_haspc)(&child, a) <= 0)
                continue;
            if (tag == DW_TAG_inlined_subroutine && *n < max)
                chain[(*n)++] = child;
            inlined_chain(&child, a, chain, n, max, depth + 1);
            return true;
        }
        if (container(tag) && inlined_chain(&child, a, chain, n, max, depth + 1))
            return true;
    } while (DW(dwarf_siblingof)(&child, &child) == 0);
    return false;
}

/* The functions inlined at A (module address), innermost first, into
 * out->inl (an arena array); out->file and out->line become the call site
 * in the symbol's function. Each level's name is its own, its line the
 * call site of the level inside it (the innermost: the line table's).
 * Nothing changes when A is in no inlined code, or when libdw cannot tell. */
static void resolve_inlined(mtp_symbolizer_t *s, Dwfl_Module *dm, uint64_t a, mtp_sym_t *out)
{
    Dwarf_Addr bias;
    Dwarf_Die *cu = DW(dwfl_module_addrdie)(dm, a, &bias), chain[MTP_SYM_MAX_FRAMES - 1];
    int n = 0;
    if (!cu || !inlined_chain(cu, a - bias, chain, &n, MTP_SYM_MAX_FRAMES - 1, 0) || n == 0)
        return;
    /* past max levels the innermost are cut: the deepest one kept then
     * shows the address's own line */
    mtp_symline_t *inl = mtp_arena_alloc(&s->arena, (size_t)n * sizeof *inl);
    if (!inl)
        return;
    const char *file = out->file;
    uint32_t line = out->line;
    for (int i = n - 1, k = 0; i >= 0; i--, k++) {
        inl[k] = (mtp_symline_t){ inlined_name(s, &chain[i]), file, line };
        call_site(s, cu, &chain[i], &file, &line);
    }
    out->inl = inl;
    out->ninl = (uint32_t)n;
    out->file = file;
    out->line = file[0] ? line : 0;
}

/* ---- the units walk: libdw's first lookup in a module, in a window ------- */

/* libdw's first address lookup in a module (dwarf_getaranges, 0.188) reads
 * the header and first DIE of every unit in .debug_info, in order (its
 * __libdw_findcu interns one unit after another up to the one asked for).
 * That faults in nearly every page of the section, and they stay resident
 * while the session lasts: for libc6-dbg's libc 5.4 MiB, for pyenv's
 * libpython about 9, on top of whatever the program holds at that moment.
 * So the walk is done here first, one unit at a time (dwarf_offdie interns
 * exactly up to the unit it is given), and every UNIT_WINDOW bytes the pages
 * behind it are handed back (MADV_DONTNEED). Later lookups find every unit
 * interned and read only the pages of the units they need, faulted in again
 * from the file. Handing pages back is right only for a clean, file-backed
 * private view of the file: the section's data must be the ELF image's own
 * bytes (not an inflated or converted copy), the image a mapping of a file
 * (/proc/self/map_files has an entry only for those), and the file not
 * relocatable (libdwfl writes relocations into ET_REL images). Anything
 * else is walked by libdw as before. */
#define UNIT_WINDOW (512u << 10)

static void pages_back(const char *lo, const char *hi)
{
    uintptr_t a = ((uintptr_t)lo + MTP_PAGE - 1) & ~(uintptr_t)(MTP_PAGE - 1),
              b = (uintptr_t)hi & ~(uintptr_t)(MTP_PAGE - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Whether [p, p + n) lies in one mapping of a file. */
static bool file_view(const void *p, size_t n)
{
    char buf[512], name[64];
    uintptr_t lo, hi, prev;
    struct stat st;
    if (!mtp_maps_find((uintptr_t)p, buf, sizeof buf, &lo, &hi, &prev) ||
        (uintptr_t)p + n > hi)
        return false;
    snprintf(name, sizeof name, "/proc/self/map_files/%lx-%lx", (unsigned long)lo,
             (unsigned long)hi);
    return fstatat(AT_FDCWD, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void walk_units(mtp_symbolizer_t *s, mod_state_t *ms, Dwfl_Module *dm)
{
    ms->units_walked = true;
    Dwarf_Addr bias;
    Dwarf *dbg = DW(dwfl_module_getdwarf)(dm, &bias);
    Elf *elf = dbg ? DW(dwarf_getelf)(dbg) : NULL;
    GElf_Ehdr eh;
    size_t shstr, rawsz;
    if (!elf || !DW(gelf_getehdr)(elf, &eh) || eh.e_type == ET_REL ||
        DW(elf_getshdrstrndx)(elf, &shstr) != 0)
        return;
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = DW(elf_nextscn)(elf, scn)) != NULL) {
        const char *name = DW(gelf_getshdr)(scn, &sh) ? DW(elf_strptr)(elf, shstr, sh.sh_name) : NULL;
        if (name && strcmp(name, ".debug_info") == 0)
            break;
    }
    if (!scn || sh.sh_type == SHT_NOBITS || (sh.sh_flags & SHF_COMPRESSED))
        return;
    Elf_Data *d = DW(elf_getdata)(scn, NULL);
    const char *raw = DW(elf_rawfile)(elf, &rawsz);
    if (!d || !raw || sh.sh_offset > rawsz || d->d_size > rawsz - sh.sh_offset ||
        (const char *)d->d_buf != raw + sh.sh_offset || d->d_size < 2 * UNIT_WINDOW ||
        !file_view(d->d_buf, d->d_size))
        return;
    const char *base = d->d_buf, *done = base;
    Dwarf_Off off = 0, next;
    size_t hsize;
    while (DW(dwarf_next_unit)(dbg, off, &next, &hsize, NULL, NULL, NULL, NULL, NULL, NULL) == 0 &&
           next > off && next <= d->d_size) {
        Dwarf_Die die;
        DW(dwarf_offdie)(dbg, off + hsize, &die);
        if ((size_t)(base + next - done) >= UNIT_WINDOW) {
            pages_back(done, base + next);
            done = base + next;
        }
        off = next;
    }
    pages_back(done, base + d->d_size);
    s->stats.units_walked++;
}

static void resolve(mtp_symbolizer_t *s, size_t mi, uint64_t pc, mtp_sym_t *out)
{
    uint64_t a = pc - 1;
    mod_state_t *ms = &s->st[mi];
    Dwfl_Module *dm = module_dm(s, mi);
    s->stats.resolved++;
    if (!dm)
        return;
    if (!ms->syms_loaded)
        load_syms(ms);
    const sym_entry_t *e = find_sym(ms, a);
    if (e) {
        const char *f = mtp_arena_intern(&s->arena, e->name, strlen(e->name));
        if (f) {
            out->function = f;
            out->offset = pc - e->addr;
        }
    }
    if (!ms->units_walked)
        walk_units(s, ms, dm);
    Dwfl_Line *line = DW(dwfl_module_getsrc)(dm, a);
    int lineno = 0;
    const char *file = line ? DW(dwfl_lineinfo)(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
    if (file && file[0] && lineno > 0) {
        out->file = intern_file(s, file, DW(dwfl_line_comp_dir)(line));
        out->line = out->file[0] ? (uint32_t)lineno : 0;
    }
    if (line)   /* else no DWARF here (a stripped module): no walk */
        resolve_inlined(s, dm, a, out);
}

/* ---- answers: per module, for the life of the mapping -------------------- */

static bool grow_pcs(mod_state_t *ms)
{
    size_t cap = ms->cappcs ? ms->cappcs * 2 : 64;   /* 3 KiB: most modules have few frames */
    pc_slot_t *nt = map_anon(cap * sizeof *nt);
    if (!nt)
        return false;
    mtp_populate(nt, cap * sizeof *nt);   /* a hash table: written all over */
    for (size_t i = 0; i < ms->cappcs; i++) {
        if (!ms->pcs[i].pc)
            continue;
        size_t j = hash_u64(ms->pcs[i].pc) & (cap - 1);
        while (nt[j].pc)
            j = (j + 1) & (cap - 1);
        nt[j] = ms->pcs[i];
    }
    if (ms->pcs)
        munmap(ms->pcs, ms->cappcs * sizeof *ms->pcs);
    ms->pcs = nt;
    ms->cappcs = cap;
    return true;
}

/* The slot holding PC, or the empty slot where it goes; NULL on ENOMEM. */
static pc_slot_t *pc_slot(mod_state_t *ms, uint64_t pc)
{
    if (ms->npcs * 2 >= ms->cappcs && !grow_pcs(ms))
        return NULL;
    size_t j = hash_u64(pc) & (ms->cappcs - 1);
    while (ms->pcs[j].pc && ms->pcs[j].pc != pc)
        j = (j + 1) & (ms->cappcs - 1);
    return &ms->pcs[j];
}

/* The answer of a record of the module's file into SLOT (empty); SLOT stays
 * empty when the arena is out of memory (libdw answers then). */
static void from_record(mtp_symbolizer_t *s, mod_state_t *ms, pc_slot_t *slot, uint64_t pc,
                        const mtp_symrec_t *rec)
{
    mtp_arena_t *a = &s->arena;
    uint32_t ninl = rec->nframes - 1;
    mtp_symline_t lv[MTP_SYM_MAX_FRAMES], *inl = NULL;
    for (uint32_t i = 0; i < rec->nframes; i++) {
        const mtp_symline_t *f = &rec->frames[i];
        lv[i] = (mtp_symline_t){ mtp_arena_intern(a, f->function, strlen(f->function)),
                                 mtp_arena_intern(a, f->file, strlen(f->file)), f->line };
        if (!lv[i].function || !lv[i].file)
            return;
    }
    if (ninl && !(inl = mtp_arena_alloc(a, ninl * sizeof *inl)))
        return;
    if (ninl)
        memcpy(inl, lv, ninl * sizeof *inl);
    const mtp_symline_t *f = &lv[ninl];
    *slot = (pc_slot_t){ pc, rec->offset, f->function, f->file, f->line, ninl, inl };
    ms->npcs++;
    s->stats.disk_loaded++;
}

/* The disk record of an answer. */
static void make_record(mtp_symrec_t *rec, uint64_t addr, const pc_slot_t *e)
{
    rec->addr = addr;
    rec->offset = e->offset;
    rec->nframes = e->ninl + 1;
    for (uint32_t i = 0; i < e->ninl; i++)
        rec->frames[i] = e->inl[i];
    rec->frames[e->ninl] = (mtp_symline_t){ e->function, e->file, e->line };
}

static void load_disk(mtp_symbolizer_t *s, size_t mi)
{
    mod_state_t *ms = &s->st[mi];
    ms->disk_tried = true;
    if (s->cachedir && s->mods[mi].build_id[0])
        mtp_symfile_open(&ms->disk, &s->arena, s->cachedir, s->mods[mi].build_id);
}

int mtp_sym_lookup(mtp_symbolizer_t *s, uint64_t pc, mtp_sym_t *out)
{
    *out = (mtp_sym_t){ .function = "", .file = "", .module = -1, .inl = NULL };
    s->stats.lookups++;
    if (pc == 0)
        return 0;
    int mi = find_module(s, pc - 1);
    if (mi < 0)
        return 0;
    out->module = mi;
    mod_state_t *ms = &s->st[mi];
    /* A return address is in executable code: one that is not, as the
     * module's bias places it, says the map was read amid a change (or the
     * walk went astray). It gets no answer, and none goes to the cache file
     * that every process of the module reads. */
    uint64_t at = pc - 1 - s->mods[mi].bias;
    if (ms->text_hi && (at < ms->text_lo || at >= ms->text_hi)) {
        s->stats.outside++;
        return 0;
    }
    if (!ms->disk_tried)
        load_disk(s, (size_t)mi);
    pc_slot_t *slot = pc_slot(ms, pc);
    mtp_symrec_t rec;
    if (slot && !slot->pc && mtp_symfile_find(&ms->disk, pc - s->mods[mi].bias, &rec))
        from_record(s, ms, slot, pc, &rec);
    if (slot && slot->pc == pc) {
        out->function = slot->function;
        out->offset = slot->offset;
        out->file = slot->file;
        out->line = slot->line;
        out->ninl = slot->ninl;
        out->inl = slot->inl;
        return 0;
    }
    s->dw_later = false;
    resolve(s, (size_t)mi, pc, out);
    if (s->dw_later)   /* named once libdw is in */
        return 0;
    pc_slot_t e = { pc, out->offset, out->function, out->file, out->line, out->ninl, out->inl };
    if (slot) {
        *slot = e;
        ms->npcs++;
    }
    if (ms->dm && s->cachedir && s->mods[mi].build_id[0]) {  /* libdw answered: share it */
        make_record(&rec, pc - s->mods[mi].bias, &e);
        mtp_symrec_encode(&ms->pend, &rec);
    }
    return 0;
}

/* ---- end of a batch ------------------------------------------------------ */

/* The separate debug file libdw read the module's DWARF from, or NULL. */
static const char *debug_file(const mod_state_t *ms)
{
    const char *mainfile = NULL, *debugfile = NULL;
    if (!ms->dm)
        return NULL;
    DW(dwfl_module_info)(ms->dm, NULL, NULL, NULL, NULL, NULL, &mainfile, &debugfile);
    return debugfile && (!mainfile || strcmp(debugfile, mainfile) != 0) ? debugfile : NULL;
}

static void flush_module(mtp_symbolizer_t *s, size_t mi)
{
    mod_state_t *ms = &s->st[mi];
    if (!ms->pend.len)
        return;
    if (ms->disk.current) {
        mtp_symfile_write(s->cachedir, s->mods[mi].build_id, true, NULL,
                          ms->pend.p, ms->pend.len);
    } else {                        /* a new file: what the old one held that checks, then ours */
        mtp_buf_t all = { 0 };
        if (mtp_symfile_valid(&ms->disk, &all) && mtp_buf_append(&all, ms->pend.p, ms->pend.len) &&
            mtp_symfile_write(s->cachedir, s->mods[mi].build_id, false, debug_file(ms),
                              all.p, all.len) == 0)
            ms->disk.current = true;
        mtp_buf_free(&all);
    }
    ms->pend.len = 0;
}

void mtp_sym_flush(mtp_symbolizer_t *s)
{
    for (size_t i = 0; i < s->nmods; i++)
        flush_module(s, i);
    session_end(s);
}

void mtp_sym_stats(const mtp_symbolizer_t *s, mtp_sym_stats_t *out)
{
    *out = s->stats;
    out->bytes = s->arena.bytes;
    for (size_t i = 0; i < s->nmods; i++)
        out->bytes += s->st[i].cappcs * sizeof(pc_slot_t) + s->st[i].pend.cap +
                      mtp_symfile_bytes(&s->st[i].disk);
}

void mtp_sym_close(mtp_symbolizer_t *s)
{
    if (!s)
        return;
    mtp_sym_flush(s);
    for (size_t i = 0; i < s->nmods; i++)
        drop_module(&s->st[i]);
    mtp_arena_free(&s->arena);
    free(s->mods);
    free(s->st);
    if (s->cachedir)
        mtp_debuginfo_set_copies(NULL);
    free(s->cachedir);
    free(s);
}
