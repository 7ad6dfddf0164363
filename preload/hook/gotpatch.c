/*
 * GOT patching, and a dlopen wrapper that keeps dlopen's caller semantics.
 *
 * Patching walks the loaded objects with dl_iterate_phdr, which holds the
 * loader's write lock for the whole walk: two patchers, or a patcher and an
 * object being added or removed, never overlap. Objects still inside a dlopen
 * (listed, maybe not relocated, RELRO not yet read-only) are left alone: an
 * object counts as ready once _dl_find_object (glibc 2.35+, looked up at run
 * time) knows it, which glibc arranges only after relocation. The DT_* values
 * of PT_DYNAMIC are absolute for most objects (glibc relocates them in place)
 * but not for all, so each is taken as absolute if it falls inside the object
 * and as an offset from the load address otherwise. A slot is written with one
 * atomic store, so a concurrent caller jumps either to the old target or the
 * new one. Nothing here allocates.
 *
 * dlopen: glibc's dlopen looks at its return address to pick the object whose
 * DT_RPATH/DT_RUNPATH is searched (for a name without '/') and whose directory
 * is $ORIGIN. Through the wrapper that object would be libmemtrail. The
 * wrapper compares the caller's search list (dlinfo RTLD_DI_SERINFO) with
 * libmemtrail's own: the directories before their common tail (the default
 * directories, and what both inherit) are those only the caller would search.
 * If there are any, an object already loaded under that name wins (as in
 * glibc), then the first of those directories holding a readable x86-64 ELF
 * file of that name; otherwise the name goes to glibc as it is. $ORIGIN is
 * replaced with the caller's directory before the call. glibc reports every
 * search-list entry with dls_flags 0, so LA_SER_DEFAULT cannot be used to
 * tell the default directories apart. Not emulated: glibc-hwcaps
 * subdirectories of the caller's directories, and DF_1_NODEFLIB callers.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "hook/gotpatch.h"
#include "hook/hook.h"

/* ---- GOT patching ---- */
typedef int (*find_object_fn)(void *, struct dl_find_object *);

typedef struct patch_req {
    const char *symbol;
    void *replacement;
    const uintptr_t *skip;
    size_t nskip;
    uintptr_t pagesize;
    find_object_fn find;   /* _dl_find_object, or NULL (older glibc) */
    uintptr_t within;      /* count only: the object whose range holds this address */
    const char *const *names;   /* rewrite: the symbols looked for, and their visitor */
    size_t nnames;
    mtp_got_visit_fn visit;
    void *arg;
    mtp_got_seen_t *seen;  /* objects set before, left alone (mtp_got_patch_new) */
    int changed;
    int err;               /* first -errno */
    int errors;            /* how many */
} patch_req_t;

typedef struct object {
    uintptr_t base, lo, hi;          /* load address; mapped range */
    uintptr_t relro_lo, relro_hi;    /* the pages glibc made read-only */
    const ElfW(Sym) *symtab;
    const char *strtab;
    size_t strsz;
    int self;                        /* the object holding this code (libmemtrail) */
} object_t;

static find_object_fn find_object;  /* atomic: resolved on first use */
static int find_object_done;        /* atomic */

static int in_object(const object_t *o, uintptr_t a, size_t len)
{
    return a >= o->lo && a < o->hi && len <= o->hi - a;
}

/* A d_ptr value: absolute if inside the object, else relative to its base. */
static uintptr_t dyn_addr(const object_t *o, uintptr_t v)
{
    if (in_object(o, v, 1))
        return v;
    return in_object(o, v + o->base, 1) ? v + o->base : 0;
}

static void note_err(patch_req_t *rq, int err)
{
    if (!rq->err)
        rq->err = -err;
    rq->errors++;
}

/* Slots written by walks without a `seen` set (under the loader's lock,
 * which every walk holds): a set made before such a write starts again. */
static unsigned long long other_writes;

static void write_slot(patch_req_t *rq, const object_t *o, void **slot, void *value)
{
    uintptr_t a = (uintptr_t)slot;
    if (!rq->seen)
        other_writes++;
    if (a < o->relro_lo || a >= o->relro_hi) {
        __atomic_store_n(slot, value, __ATOMIC_RELEASE);
        rq->changed++;
        return;
    }
    void *page = (void *)(a & ~(rq->pagesize - 1));
    if (mprotect(page, rq->pagesize, PROT_READ | PROT_WRITE) != 0) {
        note_err(rq, errno);
        return;
    }
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    rq->changed++;
    if (mprotect(page, rq->pagesize, PROT_READ) != 0)
        note_err(rq, errno);
}

static void patch_table(patch_req_t *rq, const object_t *o, uintptr_t table, size_t bytes)
{
    if (!table || !in_object(o, table, bytes))
        return;
    const ElfW(Rela) *r = (const ElfW(Rela) *)table;
    for (size_t i = 0; i < bytes / sizeof(*r); i++) {
        unsigned long type = ELF64_R_TYPE(r[i].r_info);
        size_t sym = ELF64_R_SYM(r[i].r_info);
        if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || sym == 0)
            continue;
        ElfW(Word) name = o->symtab[sym].st_name;
        if (o->strsz && name >= o->strsz)
            continue;
        size_t which = 0;
        if (rq->visit) {
            while (which < rq->nnames && strcmp(o->strtab + name, rq->names[which]) != 0)
                which++;
            if (which == rq->nnames)
                continue;
        } else if (strcmp(o->strtab + name, rq->symbol) != 0) {
            continue;
        }
        void **slot = (void **)(o->base + r[i].r_offset);
        if (!in_object(o, (uintptr_t)slot, sizeof(*slot)))
            continue;
        void *cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
        if (rq->visit) {
            mtp_got_slot_t gs = {.which = which, .cur = cur, .lo = o->lo, .hi = o->hi,
                                 .self = o->self, .plt = type == R_X86_64_JUMP_SLOT};
            void *to = rq->visit(rq->arg, &gs);
            if (to && to != cur)
                write_slot(rq, o, slot, to);
        } else if (rq->within) {
            rq->changed++;   /* counting */
        } else if (cur != rq->replacement && cur != NULL) {
            write_slot(rq, o, slot, rq->replacement);
        }
    }
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    patch_req_t *rq = data;
    object_t o = {.base = info->dlpi_addr, .lo = UINTPTR_MAX};
    const ElfW(Phdr) *dynph = NULL;

    if (strstr(info->dlpi_name, "linux-vdso") || strstr(info->dlpi_name, "linux-gate"))
        return 0;
    mtp_got_seen_t *seen = rq->seen;
    if (seen) {
        /* An object went since (its address may be another's now), or
         * another walk wrote slots: every object is walked again. */
        if (seen->subs != info->dlpi_subs || seen->writes != other_writes) {
            seen->n = 0;
            seen->subs = info->dlpi_subs;
            seen->writes = other_writes;
        }
        for (size_t i = 0; i < seen->n; i++)
            if (seen->base[i] == o.base)
                return 0;
    }
    for (size_t i = 0; i < rq->nskip; i++)
        if (rq->skip[i] == o.base)
            return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = o.base + ph->p_vaddr, end = start + ph->p_memsz;
        if (ph->p_type == PT_LOAD) {
            o.lo = start < o.lo ? start : o.lo;
            o.hi = end > o.hi ? end : o.hi;
        } else if (ph->p_type == PT_DYNAMIC) {
            dynph = ph;
        } else if (ph->p_type == PT_GNU_RELRO) {   /* as glibc's _dl_protect_relro */
            o.relro_lo = start & ~(rq->pagesize - 1);
            o.relro_hi = end & ~(rq->pagesize - 1);
        }
    }
    uintptr_t self = (uintptr_t)&patch_object;
    o.self = self >= o.lo && self < o.hi;
    if (!dynph || o.lo >= o.hi || (o.self && !rq->visit))
        return 0;
    if (rq->within && (rq->within < o.lo || rq->within >= o.hi))
        return 0;
    if (rq->find) {
        struct dl_find_object fo;
        if (rq->find((void *)o.lo, &fo) != 0)
            return 0;   /* not (or no longer) fully loaded */
    }

    uintptr_t rela = 0, relasz = 0, jmprel = 0, pltrelsz = 0;
    long pltrel = DT_RELA;
    const ElfW(Dyn) *d = (const ElfW(Dyn) *)(o.base + dynph->p_vaddr);
    if (!in_object(&o, (uintptr_t)d, sizeof(*d)))
        return 0;
    for (; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: o.symtab = (const ElfW(Sym) *)dyn_addr(&o, d->d_un.d_ptr); break;
        case DT_STRTAB: o.strtab = (const char *)dyn_addr(&o, d->d_un.d_ptr); break;
        case DT_STRSZ: o.strsz = d->d_un.d_val; break;
        case DT_RELA: rela = dyn_addr(&o, d->d_un.d_ptr); break;
        case DT_RELASZ: relasz = d->d_un.d_val; break;
        case DT_JMPREL: jmprel = dyn_addr(&o, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
        case DT_PLTREL: pltrel = (long)d->d_un.d_val; break;
        default: break;
        }
    }
    if (!o.symtab || !o.strtab)
        return 0;
    int errors = rq->errors;
    patch_table(rq, &o, rela, relasz);
    if (pltrel == DT_RELA)
        patch_table(rq, &o, jmprel, pltrelsz);
    if (seen && rq->errors == errors && seen->n < MTP_GOT_SEEN_MAX)
        seen->base[seen->n++] = o.base;   /* ready, and its slots set: the next walks skip it */
    return 0;
}

static int walk_req(patch_req_t *rq)
{
    /* dlsym outside of dl_iterate_phdr: it takes the loader's other lock. */
    if (!__atomic_load_n(&find_object_done, __ATOMIC_ACQUIRE)) {
        int saved = errno;
        find_object_fn f = (find_object_fn)dlsym(RTLD_DEFAULT, "_dl_find_object");
        if (!f)
            dlerror();   /* glibc < 2.35: leave no error string behind */
        __atomic_store_n(&find_object, f, __ATOMIC_RELAXED);
        __atomic_store_n(&find_object_done, 1, __ATOMIC_RELEASE);
        errno = saved;
    }
    long page = sysconf(_SC_PAGESIZE);
    rq->pagesize = page > 0 ? (uintptr_t)page : 4096;
    rq->find = __atomic_load_n(&find_object, __ATOMIC_RELAXED);
    dl_iterate_phdr(patch_object, rq);
    return rq->err ? rq->err : rq->changed;
}

static int walk(const char *symbol, void *replacement, const uintptr_t *skip, size_t nskip,
                uintptr_t within)
{
    patch_req_t rq = {
        .symbol = symbol,
        .replacement = replacement,
        .skip = skip,
        .nskip = skip ? nskip : 0,
        .within = within,
    };
    return walk_req(&rq);
}

int mtp_got_rewrite(const char *const *names, size_t nnames, mtp_got_visit_fn visit, void *arg)
{
    if (!names || !nnames || !visit)
        return -EINVAL;
    patch_req_t rq = {.names = names, .nnames = nnames, .visit = visit, .arg = arg};
    return walk_req(&rq);
}

/* mtp_got_patch_set's visitor: names[which]'s slot to to[which], but in
 * libmemtrail or an unresolved weak reference (a slot already holding it
 * is not written: mtp_got_rewrite). */
static void *set_visit(void *arg, const mtp_got_slot_t *s)
{
    void *const *to = arg;
    return s->self || !s->cur ? NULL : to[s->which];
}

int mtp_got_patch_set(const char *const *names, void *const *to, size_t n)
{
    return mtp_got_patch_new(names, to, n, NULL);
}

int mtp_got_patch_new(const char *const *names, void *const *to, size_t n, mtp_got_seen_t *seen)
{
    if (!names || !to)
        return -EINVAL;
    if (!n)
        return 0;
    patch_req_t rq = {.names = names, .nnames = n, .visit = set_visit, .arg = (void *)to,
                      .seen = seen};
    return walk_req(&rq);
}

int mtp_got_patch_skip(const char *symbol, void *replacement, const uintptr_t *skip,
                       size_t nskip)
{
    if (!symbol || !replacement)
        return -EINVAL;
    return walk(symbol, replacement, skip, nskip, 0);
}

int mtp_got_count(const char *symbol, const void *within)
{
    if (!symbol || !within)
        return -EINVAL;
    return walk(symbol, NULL, NULL, 0, (uintptr_t)within);
}

int mtp_got_patch(const char *symbol, void *replacement)
{
    return mtp_got_patch_skip(symbol, replacement, NULL, 0);
}

/* ---- the dlopen wrapper ---- */
typedef void *(*dlopen_fn)(const char *, int);

void (*mtp_dlopen_hook)(void *handle);
static void *real_dlopen_fn;   /* atomic: resolved on first use */

static dlopen_fn real_dlopen(void)
{
    return (dlopen_fn)mtp_next_symbol(&real_dlopen_fn, "dlopen");
}

/* Copies `n` bytes of `s` to out+*len, keeping room for the final NUL. */
static int append(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n >= cap - *len)
        return -ENAMETOOLONG;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return 0;
}

/* Replaces $ORIGIN and ${ORIGIN} in `file` with the caller's directory, as
 * glibc would. Returns 1 if `out` holds the result, 0 to pass `file` on. */
static MTP_NOINLINE int expand_origin(const struct link_map *lm, const char *file, char *out, size_t cap)
{
    char origin[PATH_MAX];
    size_t olen, len = 0;
    if (!strstr(file, "$ORIGIN") && !strstr(file, "${ORIGIN}"))
        return 0;
    if (getauxval(AT_SECURE))
        return 0;   /* glibc's own restrictions apply */
    if (lm->l_name && lm->l_name[0] == '/') {
        olen = strlen(lm->l_name);
        if (olen >= sizeof(origin))
            return 0;
        memcpy(origin, lm->l_name, olen + 1);
    } else if (lm->l_name && lm->l_name[0] == '\0') {   /* the main program */
        ssize_t n = readlink("/proc/self/exe", origin, sizeof(origin) - 1);
        if (n <= 0)
            return 0;
        origin[n] = '\0';
        olen = (size_t)n;
    } else {
        return 0;
    }
    while (olen > 1 && origin[olen - 1] != '/')
        olen--;
    if (olen > 1)
        olen--;   /* drop the slash, except for "/" itself */
    out[0] = '\0';
    for (const char *p = file; *p;) {
        size_t tok = strncmp(p, "$ORIGIN", 7) == 0 ? 7 : strncmp(p, "${ORIGIN}", 9) == 0 ? 9 : 0;
        int rc = tok ? append(out, cap, &len, origin, olen) : append(out, cap, &len, p, 1);
        if (rc != 0)
            return 0;
        p += tok ? tok : 1;
    }
    return 1;
}

/* Reads the search list of `map` into buf. */
static Dl_serinfo *search_list(void *map, char *buf, size_t cap)
{
    Dl_serinfo size;
    if (dlinfo(map, RTLD_DI_SERINFOSIZE, &size) != 0 || size.dls_size > cap ||
        size.dls_size < sizeof(Dl_serinfo))
        return NULL;
    Dl_serinfo *si = (Dl_serinfo *)buf;
    si->dls_size = size.dls_size;
    si->dls_cnt = size.dls_cnt;
    return dlinfo(map, RTLD_DI_SERINFO, si) == 0 ? si : NULL;
}

/* An x86-64 ELF shared object we can read (glibc skips other files). */
static int loadable(const char *path)
{
    ElfW(Ehdr) eh;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, &eh, sizeof(eh));
    close(fd);
    return n == (ssize_t)sizeof(eh) && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
           eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64;
}

enum { SEARCH_DIRECT = 0, SEARCH_PATH = 1, SEARCH_LOADED = 2 };

/* Decides what the caller `lm` would have opened for a bare `file`: glibc's
 * own search (DIRECT), the already-loaded object of that name (LOADED), or
 * the file written to `path` (PATH). Noinline: its buffers are gone before
 * the final dlopen runs. */
static MTP_NOINLINE int search_as(struct link_map *lm, const char *file, char *path, size_t cap)
{
    _Alignas(16) char buf[8192];
    Dl_info info;
    struct link_map *self = NULL;
    if (!dladdr1((void *)&search_as, &info, (void **)&self, RTLD_DL_LINKMAP) || !self ||
        self == lm)
        return SEARCH_DIRECT;
    Dl_serinfo *c = search_list(lm, buf, sizeof(buf) / 2);
    Dl_serinfo *s = search_list(self, buf + sizeof(buf) / 2, sizeof(buf) / 2);
    if (!c || !s)
        return SEARCH_DIRECT;
    unsigned n = c->dls_cnt, m = s->dls_cnt;
    while (n && m && strcmp(c->dls_serpath[n - 1].dls_name, s->dls_serpath[m - 1].dls_name) == 0)
        n--, m--;
    if (n == 0)
        return SEARCH_DIRECT;   /* the caller searches nothing we would not */

    void *h = real_dlopen()(file, RTLD_LAZY | RTLD_NOLOAD);
    if (h) {
        dlclose(h);
        return SEARCH_LOADED;
    }
    size_t flen = strlen(file);
    for (unsigned i = 0; i < n; i++) {
        const char *dir = c->dls_serpath[i].dls_name;
        size_t len = 0;
        if (append(path, cap, &len, dir, strlen(dir)) == 0 &&
            append(path, cap, &len, "/", 1) == 0 && append(path, cap, &len, file, flen) == 0 &&
            loadable(path))
            return SEARCH_PATH;
    }
    return SEARCH_DIRECT;
}

MTP_EXPORT MTP_NOINLINE void *dlopen(const char *file, int mode)
{
    void *caller = __builtin_return_address(0);
    int saved = errno;
    dlopen_fn real = real_dlopen();
    if (!real) {
        errno = ENOSYS;
        return NULL;
    }
    char path[PATH_MAX];
    const char *name = file;
    struct link_map *lm = NULL;
    Dl_info info;
    if (file && (strchr(file, '/') == NULL || strchr(file, '$') != NULL)) {
        if (!dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
            lm = _r_debug.r_map;   /* glibc's choice for a caller outside any object */
    }
    if (lm && strchr(file, '$') && expand_origin(lm, file, path, sizeof(path)))
        name = path;
    else if (lm && !strchr(file, '/') && search_as(lm, file, path, sizeof(path)) == SEARCH_PATH)
        name = path;
    errno = saved;
    void *h = real(name, mode);
    void (*hook)(void *) = __atomic_load_n(&mtp_dlopen_hook, __ATOMIC_ACQUIRE);
    if (h && hook) {
        saved = errno;
        hook(h);
        dlerror();   /* the open succeeded: no error string from the hook's probing */
        errno = saved;
    }
    return h;
}

/* Our own dlopen, whatever the program's references are bound to (hook/late.c). */
extern __typeof__(dlopen) mtp_self_dlopen
    __attribute__((alias("dlopen"), copy(dlopen), visibility("hidden")));
