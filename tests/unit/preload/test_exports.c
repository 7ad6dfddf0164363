/* Unit test: libmemtrail.so defines exactly the interposed allocator, exit,
 * dlopen, fopen and signal functions and the public API in its dynamic
 * symbol table, nothing else; and the variables a fork writes (MTP_FORKED,
 * base/state.h) lie together, on at most two pages. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const expected[] = {
    "malloc",        "calloc",   "realloc", "reallocarray", "free",
    "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc",
    "malloc_usable_size", "mmap", "mmap64", "munmap", "mremap", "_exit", "_Exit", "dlopen", "fopen", "fopen64", "sigaction", "signal", "prctl", "pthread_getattr_np", "memtrail_snapshot", "memtrail_attach", "memtrail_detach",
};
#define NEXPECTED (sizeof(expected) / sizeof(expected[0]))
#define MAX_DEFINED 256

typedef struct export_list {
    size_t n;
    char *name[MAX_DEFINED];
    unsigned char type[MAX_DEFINED];
} export_list_t;

static void add_name(char **names, size_t *n, size_t max, const char *name)
{
    cr_assert_lt(*n, max, "too many names");
    names[(*n)++] = strdup(name);
}

/* Names of the version definitions (.gnu.version_d), to be ignored. */
static size_t version_names(Elf *elf, char **names, size_t max)
{
    size_t n = 0;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type != SHT_GNU_verdef)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        cr_assert_not_null(data);
        size_t off = 0;
        for (GElf_Word i = 0; i < sh.sh_info; i++) {
            GElf_Verdef vd;
            GElf_Verdaux aux;
            cr_assert_not_null(gelf_getverdef(data, (int)off, &vd));
            cr_assert_not_null(gelf_getverdaux(data, (int)(off + vd.vd_aux), &aux));
            add_name(names, &n, max, elf_strptr(elf, sh.sh_link, aux.vda_name));
            if (vd.vd_next == 0)
                break;
            off += vd.vd_next;
        }
    }
    return n;
}

/* path opened for reading with libelf (*fd its descriptor, closed by
 * close_elf). */
static Elf *open_elf(const char *path, int *fd)
{
    cr_assert_neq(elf_version(EV_CURRENT), EV_NONE);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(*fd, 0, "cannot open %s", path);
    Elf *elf = elf_begin(*fd, ELF_C_READ, NULL);
    cr_assert_not_null(elf, "%s: %s", path, elf_errmsg(-1));
    return elf;
}

static void close_elf(Elf *elf, int fd)
{
    elf_end(elf);
    close(fd);
}

/* Defined symbols of .dynsym, minus the null, section and version symbols. */
static void read_exports(const char *path, export_list_t *out)
{
    char *versions[16];
    int fd;
    memset(out, 0, sizeof(*out));
    Elf *elf = open_elf(path, &fd);
    size_t nversions = version_names(elf, versions, 16);

    Elf_Scn *scn = NULL;
    int found = 0;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type != SHT_DYNSYM)
            continue;
        found = 1;
        Elf_Data *data = elf_getdata(scn, NULL);
        cr_assert_not_null(data);
        size_t count = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 1; i < count; i++) {
            GElf_Sym sym;
            cr_assert_not_null(gelf_getsym(data, (int)i, &sym));
            if (sym.st_shndx == SHN_UNDEF || GELF_ST_TYPE(sym.st_info) == STT_SECTION)
                continue;
            const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
            cr_assert_not_null(name);
            int is_version = 0;
            for (size_t v = 0; v < nversions; v++)
                is_version |= sym.st_shndx == SHN_ABS && strcmp(name, versions[v]) == 0;
            if (is_version)
                continue;
            cr_assert_lt(out->n, MAX_DEFINED);
            out->type[out->n] = (unsigned char)GELF_ST_TYPE(sym.st_info);
            out->name[out->n++] = strdup(name);
        }
    }
    cr_assert(found, "exports: %s has no .dynsym", path);
    for (size_t v = 0; v < nversions; v++)
        free(versions[v]);
    close_elf(elf, fd);
}

static int listed(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

Test(unit, exports_exactly_the_interface)
{
    const char *lib = getenv("MEMTRAIL_LIB");
    cr_assert(lib != NULL && lib[0] != '\0', "exports: MEMTRAIL_LIB is not set");
    export_list_t ex;
    read_exports(lib, &ex);

    for (size_t i = 0; i < ex.n; i++) {
        cr_expect(listed(expected, NEXPECTED, ex.name[i]),
                  "exports: %s defines unexpected symbol %s", lib, ex.name[i]);
        cr_expect_eq(ex.type[i], STT_FUNC, "exports: %s is not a function", ex.name[i]);
    }
    for (size_t i = 0; i < NEXPECTED; i++)
        cr_expect(listed((const char *const *)ex.name, ex.n, expected[i]),
                  "exports: %s does not define %s", lib, expected[i]);
    cr_expect_eq(ex.n, NEXPECTED, "exports: %zu defined symbols, want %zu", ex.n, NEXPECTED);
    for (size_t i = 0; i < ex.n; i++)
        free(ex.name[i]);
}

/* The section named `want` (its index, 0 if none, and header) and the
 * symbol table (NULL when the library is stripped). */
typedef struct lib_sections {
    size_t index;
    GElf_Shdr sec, symtab;
    Elf_Scn *symscn;
} lib_sections_t;

static lib_sections_t find_sections(Elf *elf, const char *want)
{
    size_t shstrndx;
    cr_assert_eq(elf_getshdrstrndx(elf, &shstrndx), 0);
    lib_sections_t o = {0};
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        cr_assert_not_null(gelf_getshdr(scn, &sh));
        const char *name = elf_strptr(elf, shstrndx, sh.sh_name);
        if (name && strcmp(name, want) == 0) {
            o.sec = sh;
            o.index = elf_ndxscn(scn);
        }
        if (sh.sh_type == SHT_SYMTAB) {
            o.symtab = sh;
            o.symscn = scn;
        }
    }
    return o;
}

/* The section's header and, from .symtab when the library has one, whether
 * each name is defined in it. */
static const char *const forked[] = {
    "mtp_counter", "mtp_pid", "mtp_start_ns", "mtp_seams", "writer_lock",
    "insert_lock", "locks", "exit_done", "thread_generation", "expected",
};
#define NFORKED (sizeof(forked) / sizeof(forked[0]))

Test(unit, fork_written_variables_on_at_most_two_pages)
{
    const char *lib = getenv("MEMTRAIL_LIB");
    cr_assert(lib != NULL && lib[0] != '\0', "forked: MEMTRAIL_LIB is not set");
    int fd;
    Elf *elf = open_elf(lib, &fd);
    lib_sections_t f = find_sections(elf, "mtp_forked");
    size_t index = f.index;
    GElf_Shdr sec = f.sec, symtab = f.symtab;
    Elf_Scn *symscn = f.symscn;
    cr_assert_neq(index, 0, "forked: %s has no mtp_forked section", lib);
    cr_expect_leq(sec.sh_size, 4096, "forked: the section holds %zu bytes: more than a page",
                  (size_t)sec.sh_size);

    if (symscn) {   /* not stripped: the variables named are in it */
        Elf_Data *data = elf_getdata(symscn, NULL);
        cr_assert_not_null(data);
        size_t count = symtab.sh_entsize ? symtab.sh_size / symtab.sh_entsize : 0;
        for (size_t k = 0; k < NFORKED; k++) {
            int in = 0, seen = 0;
            for (size_t i = 1; i < count; i++) {
                GElf_Sym sym;
                cr_assert_not_null(gelf_getsym(data, (int)i, &sym));
                const char *name = elf_strptr(elf, symtab.sh_link, sym.st_name);
                if (!name || strcmp(name, forked[k]) != 0 || GELF_ST_TYPE(sym.st_info) != STT_OBJECT)
                    continue;
                seen = 1;
                in |= sym.st_shndx == index;
            }
            cr_expect(seen, "forked: %s has no variable %s", lib, forked[k]);
            cr_expect(in, "forked: %s is not in the mtp_forked section", forked[k]);
        }
    }
    close_elf(elf, fd);
}

/* MTP_LARGE (base/state.h): every zero-initialized variable of 4 KiB or
 * more is in .lbss, after the small ones, so that those share few pages;
 * .bss itself stays within four pages. */
Test(unit, large_variables_after_the_small_ones)
{
    const char *lib = getenv("MEMTRAIL_LIB");
    cr_assert(lib != NULL && lib[0] != '\0', "large: MEMTRAIL_LIB is not set");
    int fd;
    Elf *elf = open_elf(lib, &fd);
    lib_sections_t b = find_sections(elf, ".bss"), lb = find_sections(elf, ".lbss");
    size_t bss = b.index, lbss = lb.index;
    GElf_Shdr bss_sh = b.sec, symtab = b.symtab;
    Elf_Scn *symscn = b.symscn;
    cr_assert_neq(bss, 0, "large: %s has no .bss", lib);
    cr_assert_neq(lbss, 0, "large: %s has no .lbss", lib);
    cr_expect_leq(bss_sh.sh_size, 4 * 4096, "large: .bss holds %zu bytes", (size_t)bss_sh.sh_size);
    if (!symscn) {   /* stripped: the sizes above are all there is */
        close_elf(elf, fd);
        return;
    }
    Elf_Data *data = elf_getdata(symscn, NULL);
    cr_assert_not_null(data);
    size_t count = symtab.sh_entsize ? symtab.sh_size / symtab.sh_entsize : 0;
    for (size_t i = 1; i < count; i++) {
        GElf_Sym sym;
        cr_assert_not_null(gelf_getsym(data, (int)i, &sym));
        if (GELF_ST_TYPE(sym.st_info) == STT_OBJECT && sym.st_shndx == bss)
            cr_expect_lt(sym.st_size, 4096, "large: %s (%zu bytes) is in .bss, not MTP_LARGE",
                         elf_strptr(elf, symtab.sh_link, sym.st_name), (size_t)sym.st_size);
    }
    close_elf(elf, fd);
}
