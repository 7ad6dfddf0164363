/* Unit tests for preload/symbolize.c, linked with that object alone: symbols,
 * lines, modules, biases and build ids checked against dladdr and libelf. */
#include "base/libload.h"
#include "writer/symbolize.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <elfutils/libdwfl.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <gelf.h>
#include <gnu/libc-version.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int call_line;

static __attribute__((noinline)) uint64_t capture_ra(void)
{
    return (uint64_t)(uintptr_t)__builtin_return_address(0);
}

static __attribute__((noinline)) uint64_t known_caller(void)
{
    uint64_t pc; call_line = __LINE__; pc = capture_ra();
    return pc;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Build id of an ELF file as lower-case hex, read with libelf. */
static void elf_build_id(const char *path, char *hex, size_t cap)
{
    hex[0] = '\0';
    elf_version(EV_CURRENT);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    cr_assert_not_null(elf);
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t off = 0, name_off, desc_off;
        GElf_Nhdr nh;
        while (d && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
            if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
                memcmp((char *)d->d_buf + name_off, "GNU", 4) != 0)
                continue;
            const unsigned char *b = (unsigned char *)d->d_buf + desc_off;
            cr_assert_lt(2 * nh.n_descsz, cap);
            for (size_t i = 0; i < nh.n_descsz; i++)
                snprintf(hex + 2 * i, 3, "%02x", b[i]);
            goto done;
        }
    }
done:
    elf_end(elf);
    close(fd);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static const mtp_module_t *module_of(mtp_symbolizer_t *s, const mtp_sym_t *r)
{
    const mtp_module_t *mods;
    size_t n = mtp_sym_modules(s, &mods);
    cr_assert_geq(r->module, 0);
    cr_assert_lt((size_t)r->module, n);
    return &mods[r->module];
}

Test(symbolize, own_function_line_module_build_id)
{
    uint64_t pc = known_caller();
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    mtp_sym_t r;
    cr_assert_eq(mtp_sym_lookup(s, pc, &r), 0);

    cr_assert_str_eq(r.function, "known_caller");
    cr_assert_eq(r.offset, pc - (uint64_t)(uintptr_t)&known_caller);
    cr_assert_eq(r.line, (uint32_t)call_line);
    cr_assert_eq(r.file[0], '/', "file not absolute: %s", r.file);
    char *copy = strdup(r.file);
    cr_assert_str_eq(basename(copy), "test_symbolize.c");
    free(copy);
    const char *root = getenv("MEMTRAIL_SOURCE_ROOT");
    if (root) {
        char src[PATH_MAX];
        struct stat a, b;
        snprintf(src, sizeof src, "%s/tests/unit/preload/test_symbolize.c", root);
        cr_assert_eq(stat(src, &a), 0);
        cr_assert_eq(stat(r.file, &b), 0, "%s", r.file);
        cr_assert_eq(a.st_ino, b.st_ino);
    }

    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    const mtp_module_t *m = module_of(s, &r);
    cr_assert_str_eq(m->path, exe);
    cr_assert(m->start <= pc && pc < m->end);
    Dl_info info;
    cr_assert_neq(dladdr((void *)&known_caller, &info), 0);
    cr_assert_eq(m->bias, (uint64_t)(uintptr_t)info.dli_fbase);

    char want[128];
    elf_build_id(exe, want, sizeof want);
    cr_assert_neq(want[0], '\0', "test executable has no build id note");
    cr_assert_str_eq(m->build_id, want);
    mtp_sym_close(s);
}

Test(symbolize, libc_function_and_bias)
{
    uint64_t pc = (uint64_t)(uintptr_t)&getpid + 1;
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    mtp_sym_t r;
    mtp_sym_lookup(s, pc, &r);
    cr_assert(strstr(r.function, "getpid") != NULL, "got '%s'", r.function);
    cr_assert_eq(r.offset, 1);

    Dl_info info;
    cr_assert_neq(dladdr((void *)&getpid, &info), 0);
    const mtp_module_t *m = module_of(s, &r);
    const int32_t libc_mod = r.module;
    char real[PATH_MAX];
    cr_assert_not_null(realpath(info.dli_fname, real));
    cr_assert_str_eq(m->path, real);
    cr_assert_eq(m->bias, (uint64_t)(uintptr_t)info.dli_fbase);
    char want[128];
    elf_build_id(m->path, want, sizeof want);
    cr_assert_str_eq(m->build_id, want);

    /* The ELF header page is mapped but inside no symbol. */
    mtp_sym_lookup(s, m->bias + 0x41, &r);
    cr_assert_eq(r.module, libc_mod);
    cr_assert_str_eq(r.function, "");
    cr_assert_eq(r.offset, 0);
    cr_assert_str_eq(r.file, "");
    cr_assert_eq(r.line, 0);
    mtp_sym_close(s);
}

Test(symbolize, unmapped_pc_and_zero)
{
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    const uint64_t pcs[] = { 0, 0x10, ~0ULL - 4096 };
    for (size_t i = 0; i < sizeof pcs / sizeof pcs[0]; i++) {
        mtp_sym_t r;
        cr_assert_eq(mtp_sym_lookup(s, pcs[i], &r), 0);
        cr_assert_eq(r.module, -1);
        cr_assert_str_eq(r.function, "");
        cr_assert_eq(r.offset, 0);
        cr_assert_str_eq(r.file, "");
        cr_assert_eq(r.line, 0);
    }
    mtp_sym_close(s);
}

Test(symbolize, module_table_sorted_and_fds_released)
{
    int before = count_fds();
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    const mtp_module_t *mods;
    size_t n = mtp_sym_modules(s, &mods);
    cr_assert_geq(n, 3);            /* exe, libc, ld.so at least */
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(mods[i].path[0], '/');
        cr_assert_lt(mods[i].start, mods[i].end);
        if (i > 0)
            cr_assert_leq(mods[i - 1].end, mods[i].start);
    }
    mtp_sym_close(s);
    cr_assert_eq(count_fds(), before);
}

/* Second opinion: elfutils' own /proc-based reporting and its linear
 * dwfl_module_addrinfo must agree with our bias, build ids, symbols and lines
 * on pcs sampled across the code sections of every module. */
Test(symbolize, agrees_with_libdwfl_proc_report)
{
    static const Dwfl_Callbacks cb = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = dwfl_standard_find_debuginfo,
    };
    unsetenv("DEBUGINFOD_URLS");    /* local files only, as the preload */
    Dwfl *d = dwfl_begin(&cb);
    cr_assert_not_null(d);
    cr_assert_eq(dwfl_linux_proc_report(d, getpid()), 0);
    cr_assert_eq(dwfl_report_end(d, NULL, NULL), 0);

    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    const mtp_module_t *mods;
    size_t nmods = mtp_sym_modules(s, &mods);
    size_t checked = 0, named = 0, lined = 0, bad = 0;
    for (size_t i = 0; i < nmods; i++) {
        Dwfl_Module *dm = dwfl_addrmodule(d, mods[i].start);
        cr_assert_not_null(dm, "libdwfl misses %s", mods[i].path);
        Dwarf_Addr bias;
        cr_assert_not_null(dwfl_module_getelf(dm, &bias));
        cr_assert_eq(mods[i].bias, bias, "%s", mods[i].path);
        const unsigned char *bits;
        GElf_Addr vaddr;
        int idlen = dwfl_module_build_id(dm, &bits, &vaddr);
        cr_assert_eq(strlen(mods[i].build_id), 2 * (size_t)(idlen > 0 ? idlen : 0));

        const uint64_t span = mods[i].end - mods[i].start, n = 3000;
        size_t bad_here = 0;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t pc = mods[i].start + 1 + span * k / n;
            Dwarf_Addr sec_off = pc - 1, sec_bias;
            Elf_Scn *scn;
            GElf_Shdr sh;
            if (dwfl_addrmodule(d, pc - 1) != dm ||
                !(scn = dwfl_module_address_section(dm, &sec_off, &sec_bias)) ||
                !gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_EXECINSTR))
                continue;           /* return addresses live in code */
            mtp_sym_t r;
            mtp_sym_lookup(s, pc, &r);
            GElf_Off off = 0;
            GElf_Sym sym;
            const char *name = dwfl_module_addrinfo(dm, pc - 1, &off, &sym,
                                                    NULL, NULL, NULL);
            Dwfl_Line *line = dwfl_module_getsrc(dm, pc - 1);
            int lineno = 0;
            if (line)
                dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
            checked++;
            named += name != NULL;
            lined += lineno > 0;
            /* the address's own line is the innermost inlined function's */
            uint32_t own_line = r.ninl ? r.inl[0].line : r.line;
            bool ok = r.module == (int32_t)i &&
                      strcmp(r.function, name ? name : "") == 0 &&
                      r.offset == (name ? off + 1 : 0) &&
                      own_line == (uint32_t)lineno;
            if (!ok && (bad++, bad_here++ < 5))
                cr_log_error("%s+%#" PRIx64 ": ours %s+%" PRIu64 ":%u, "
                             "libdw %s+%" PRIu64 ":%d", mods[i].path,
                             pc - mods[i].bias, r.function, r.offset, own_line,
                             name ? name : "", name ? off + 1 : 0, lineno);
        }
    }
    fprintf(stderr, "libdwfl cross-check: %zu pcs, %zu named, %zu with "
            "lines, %zu disagreements\n", checked, named, lined, bad);
    cr_assert_gt(named, 1000);
    cr_assert_eq(bad, 0);
    mtp_sym_close(s);
    dwfl_end(d);
}

/* The last path component of "file:line", and the line; 0 when unknown. */
static unsigned a2l_location(const char *text, char *base, size_t len)
{
    const char *colon = strrchr(text, ':'), *slash;
    base[0] = '\0';
    if (!colon)
        return 0;
    for (slash = colon; slash > text && slash[-1] != '/'; slash--)
        ;
    snprintf(base, len, "%.*s", (int)(colon - slash), slash);
    return (unsigned)strtoul(colon + 1, NULL, 10);   /* "?" and "(discriminator N)": 0, dropped */
}

static const char *base_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* Inlined functions, third opinion: binutils' addr2line -i (its own DWARF
 * reader) must give the same chain of functions and call-site lines for
 * the return addresses of the inlining-rich modules here (this program's
 * -O2 preload objects, libc with its separate debug file). */
Test(symbolize, inline_chains_agree_with_addr2line)
{
    if (access("/usr/bin/addr2line", X_OK) != 0)
        cr_skip_test("binutils' addr2line is not installed");
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    const mtp_module_t *mods;
    size_t nmods = mtp_sym_modules(s, &mods), chains = 0, levels = 0, bad = 0;
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(sl, 0);
    self[sl] = '\0';
    for (size_t i = 0; i < nmods; i++) {
        if (strcmp(mods[i].path, self) != 0 && strcmp(base_of(mods[i].path), "libc.so.6") != 0)
            continue;
        /* every 7th byte of the mapping: the pcs whose answer has inlined frames */
        enum { MAXPC = 400 };
        static uint64_t pcs[MAXPC];
        size_t npc = 0;
        for (uint64_t pc = mods[i].start + 1; pc < mods[i].end && npc < MAXPC; pc += 7) {
            mtp_sym_t r;
            mtp_sym_lookup(s, pc, &r);
            if (r.ninl && r.function[0])
                pcs[npc++] = pc;
        }
        if (npc < 20) {
            /* no DWARF here: a release build's objects, or libc without
             * libc6-dbg; the count below still needs one module that has it */
            cr_log_info("%s: %zu addresses in inlined code, skipped", mods[i].path, npc);
            continue;
        }
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "/tmp/mta2l.%d", (int)getpid());
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        for (size_t k = 0; k < npc; k++)
            fprintf(f, "0x%" PRIx64 "\n", pcs[k] - 1 - mods[i].bias);
        fclose(f);
        char cmd[3 * PATH_MAX];
        snprintf(cmd, sizeof(cmd), "/usr/bin/addr2line -a -i -f -e '%s' < %s", mods[i].path, path);
        FILE *p = popen(cmd, "r");
        cr_assert_not_null(p);
        char line[4096];
        size_t k = (size_t)-1, level = 0;
        mtp_sym_t r = {0};
        bool ok = true;
        while (fgets(line, sizeof(line), p)) {
            line[strcspn(line, "\n")] = '\0';
            if (strncmp(line, "0x", 2) == 0) {      /* the next address */
                if (k != (size_t)-1) {
                    ok = ok && level == r.ninl + 1;
                    bad += !ok;
                    if (!ok && bad < 6)
                        cr_log_error("%s+%#" PRIx64 ": %u inlined, addr2line %zu levels",
                                     mods[i].path, pcs[k] - 1 - mods[i].bias, r.ninl, level);
                }
                k++;
                cr_assert_lt(k, npc);
                mtp_sym_lookup(s, pcs[k], &r);
                level = 0;
                ok = true;
                chains++;
                continue;
            }
            char fn[4096], base[256];
            snprintf(fn, sizeof(fn), "%s", line);
            cr_assert_not_null(fgets(line, sizeof(line), p));
            line[strcspn(line, "\n")] = '\0';
            unsigned ln = a2l_location(line, base, sizeof(base));
            if (level <= r.ninl) {
                const char *our_fn = level < r.ninl ? r.inl[level].function : NULL;
                const char *our_file = level < r.ninl ? r.inl[level].file : r.file;
                uint32_t our_line = level < r.ninl ? r.inl[level].line : r.line;
                /* the outermost is the symbol's function, named by the symbol table */
                bool same = (!our_fn || strcmp(our_fn, fn) == 0) && our_line == ln &&
                            strcmp(base_of(our_file), base) == 0;
                if (!same && ok && bad < 6)
                    cr_log_error("%s+%#" PRIx64 " level %zu: ours %s %s:%u, addr2line %s %s:%u",
                                 mods[i].path, pcs[k] - 1 - mods[i].bias, level,
                                 our_fn ? our_fn : r.function, base_of(our_file), our_line, fn,
                                 base, ln);
                ok = ok && same;
                levels++;
            }
            level++;
        }
        if (k != (size_t)-1)
            bad += !(ok && level == r.ninl + 1);
        cr_assert_eq(pclose(p), 0);
        unlink(path);
        cr_assert_eq(k + 1, npc, "addr2line answered %zu of %zu addresses", k + 1, npc);
    }
    fprintf(stderr, "addr2line cross-check: %zu addresses in inlined code, %zu frames, "
            "%zu disagreements\n", chains, levels, bad);
    cr_assert_gt(chains, 40);
    cr_assert_eq(bad, 0);
    mtp_sym_close(s);
}

/* A mapped non-ELF file and a deleted ELF copy are skipped, not errors. */
Test(symbolize, skips_non_elf_and_deleted)
{
    char dir[] = "/tmp/mtsymXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char text[PATH_MAX], gone[PATH_MAX];
    snprintf(text, sizeof text, "%s/plain.txt", dir);
    snprintf(gone, sizeof gone, "%s/copy.so", dir);

    int fd = open(text, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static const char junk[4096] = "not an ELF file";
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    void *m1 = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    close(fd);

    int src = open("/proc/self/exe", O_RDONLY);
    fd = open(gone, O_RDWR | O_CREAT | O_TRUNC, 0700);
    cr_assert(src >= 0 && fd >= 0);
    char buf[65536];
    ssize_t k;
    while ((k = read(src, buf, sizeof buf)) > 0)
        cr_assert_eq(write(fd, buf, (size_t)k), k);
    close(src);
    void *m2 = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    close(fd);
    unlink(gone);
    if (m1 == MAP_FAILED || m2 == MAP_FAILED)
        cr_skip_test("cannot map executable pages under /tmp");

    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    const mtp_module_t *mods;
    size_t n = mtp_sym_modules(s, &mods);
    for (size_t i = 0; i < n; i++)
        cr_assert(strncmp(mods[i].path, dir, strlen(dir)) != 0,
                  "unexpected module %s", mods[i].path);
    mtp_sym_t r;
    mtp_sym_lookup(s, (uint64_t)(uintptr_t)m1 + 16, &r);
    cr_assert_eq(r.module, -1);
    mtp_sym_lookup(s, (uint64_t)(uintptr_t)m2 + 16, &r);
    cr_assert_eq(r.module, -1);
    mtp_sym_close(s);
    munmap(m1, 4096);
    munmap(m2, 4096);
    unlink(text);
    rmdir(dir);
}

Test(symbolize, open_and_lookup_timing)
{
    const int opens = 20;
    double t0 = now_us();
    for (int i = 0; i < opens; i++) {
        mtp_symbolizer_t *s;
        cr_assert_eq(mtp_sym_open(&s), 0);
        mtp_sym_close(s);
    }
    double t_open = (now_us() - t0) / opens;

    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    const mtp_module_t *mods;
    size_t nmods = mtp_sym_modules(s, &mods);
    uint64_t pcs[] = {
        known_caller(),
        (uint64_t)(uintptr_t)&getpid + 1,
        (uint64_t)(uintptr_t)&malloc + 7,
        (uint64_t)(uintptr_t)&qsort + 9,
        (uint64_t)(uintptr_t)&elf_begin + 3,
    };
    const size_t npcs = sizeof pcs / sizeof pcs[0];
    mtp_sym_t first[sizeof pcs / sizeof pcs[0]], r;
    t0 = now_us();
    for (size_t i = 0; i < npcs; i++)
        mtp_sym_lookup(s, pcs[i], &first[i]);
    double t_cold = (now_us() - t0) / npcs;

    const int iters = 100000;
    t0 = now_us();
    for (int i = 0; i < iters; i++) {
        mtp_sym_lookup(s, pcs[i % npcs], &r);
        cr_assert_eq(r.function, first[i % npcs].function);
    }
    double t_warm = (now_us() - t0) / iters;
    cr_assert(strstr(first[2].function, "malloc") != NULL, "%s",
              first[2].function);
    cr_log_info("sym_open: %.0f us (%zu modules); first lookups %.1f us/pc "
                "(incl. symtab/line-table build); cached %.3f us/pc",
                t_open, nmods, t_cold, t_warm);
    fprintf(stderr, "sym_open: %.0f us (%zu modules); first lookups %.1f "
            "us/pc; cached %.3f us/pc over %d lookups\n",
            t_open, nmods, t_cold, t_warm, iters);
    mtp_sym_close(s);
}

/* ---- kept answers and the symbol cache (symcache.c) ---- */

static void lookup_all(mtp_symbolizer_t *s, const uint64_t *pcs, size_t n, mtp_sym_t *out)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(mtp_sym_lookup(s, pcs[i], &out[i]), 0);
}

static void assert_same(const mtp_sym_t *a, const mtp_sym_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(a[i].function, b[i].function);
        cr_assert_eq(a[i].offset, b[i].offset);
        cr_assert_str_eq(a[i].file, b[i].file);
        cr_assert_eq(a[i].line, b[i].line);
        cr_assert_eq(a[i].module, b[i].module);
    }
}

/* Strings die with their symbolizer: keep copies (drop_copies frees them). */
static void keep_copies(mtp_sym_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        v[i].function = strdup(v[i].function);
        v[i].file = strdup(v[i].file);
    }
}

static void drop_copies(mtp_sym_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].function);
        free((char *)v[i].file);
    }
}

/* The test executable's cache file, from its build id. */
static void exe_cache_file(const char *dir, char *out, size_t cap)
{
    char exe[PATH_MAX], id[160];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    elf_build_id(exe, id, sizeof id);
    snprintf(out, cap, "%s/%s.sym", dir, id);
}

Test(symbolize, answers_kept_across_refresh_and_flush)
{
    uint64_t pcs[] = { known_caller(), (uint64_t)(uintptr_t)&getpid + 1,
                       (uint64_t)(uintptr_t)&qsort + 9 };
    const size_t n = sizeof pcs / sizeof pcs[0];
    mtp_sym_t first[3], again[3];
    mtp_sym_stats_t st;
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    lookup_all(s, pcs, n, first);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, n);
    cr_assert_eq(st.dwfl_opens, 1);
    mtp_sym_flush(s);                 /* libdw released... */
    cr_assert_eq(mtp_sym_refresh(s), 0);
    lookup_all(s, pcs, n, again);     /* ...and not needed again */
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, n);
    cr_assert_eq(st.dwfl_opens, 1);
    assert_same(first, again, n);
    mtp_sym_close(s);
}

/* libdw not loaded yet (mtp_lib_loader says -ETIMEDOUT, as the writer's when
 * its loader thread is not done): the frames keep their addresses, and the
 * answer is not kept, neither in memory nor in the cache file, so the same
 * lookups once libdw is in give the names. */
static int dw_not_yet(int lib)
{
    (void)lib;
    return -ETIMEDOUT;
}

Test(symbolize, libdw_still_loading_answers_are_not_kept)
{
    char dir[] = "/tmp/mtsymcXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    uint64_t pcs[] = { known_caller(), (uint64_t)(uintptr_t)&getpid + 1,
                       (uint64_t)(uintptr_t)&qsort + 9 };
    const size_t n = sizeof pcs / sizeof pcs[0];
    mtp_sym_t ref[3], later[3], named[3];
    mtp_sym_stats_t st;
    mtp_symbolizer_t *s;
    int (*loader)(int) = mtp_lib_loader;

    cr_assert(!mtp_lib_ready(MTP_LIB_DW), "libdw loaded before the test (criterion runs each in a child)");
    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    mtp_lib_loader = dw_not_yet;
    lookup_all(s, pcs, n, later);
    mtp_lib_loader = loader;
    mtp_sym_stats(s, &st);
    cr_expect_eq(st.dwfl_opens, 0);
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(later[i].function, "", "pc %zu named without libdw", i);
        cr_expect_eq(later[i].line, 0, "pc %zu", i);
    }
    mtp_sym_flush(s);   /* nothing to write */
    lookup_all(s, pcs, n, named);
    mtp_sym_stats(s, &st);
    cr_expect_eq(st.dwfl_opens, 1);
    keep_copies(named, n);
    mtp_sym_close(s);

    cr_assert_eq(mtp_sym_open(&s), 0);   /* the answers of a symbolizer that never waited */
    lookup_all(s, pcs, n, ref);
    assert_same(ref, named, n);
    cr_expect_neq(ref[0].function[0], '\0');
    cr_expect_neq(ref[1].function[0], '\0');
    mtp_sym_close(s);

    /* what the cache file holds names them too */
    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, n, later);
    mtp_sym_stats(s, &st);
    cr_expect_eq(st.dwfl_opens, 0);
    assert_same(named, later, n);
    mtp_sym_close(s);
    drop_copies(named, n);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(symbolize, cache_files_answer_a_new_process)
{
    char dir[] = "/tmp/mtsymcXXXXXX", file[PATH_MAX], cmd[PATH_MAX + 16];
    cr_assert_not_null(mkdtemp(dir));
    uint64_t pcs[] = { known_caller(), (uint64_t)(uintptr_t)&getpid + 1,
                       (uint64_t)(uintptr_t)&qsort + 9 };
    const size_t n = sizeof pcs / sizeof pcs[0];
    mtp_sym_t cold[3], warm[3];
    mtp_sym_stats_t st;
    mtp_symbolizer_t *s;

    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, n, cold);
    keep_copies(cold, n);
    mtp_sym_close(s);                 /* flushes */

    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, n, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 0, "%llu answers needed libdw", (unsigned long long)st.resolved);
    cr_assert_eq(st.dwfl_opens, 0);
    cr_assert_geq(st.disk_loaded, n);
    assert_same(cold, warm, n);
    mtp_sym_close(s);

    /* A torn tail: the last record is lost, answered by libdw again, and the
     * file rewritten whole. */
    exe_cache_file(dir, file, sizeof file);
    struct stat sb;
    cr_assert_eq(stat(file, &sb), 0, "%s", file);
    cr_assert_eq(truncate(file, sb.st_size - 3), 0);
    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, n, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 1);
    assert_same(cold, warm, n);
    mtp_sym_close(s);
    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, n, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 0);
    mtp_sym_close(s);

    /* A header whose debug file changed (its recorded size no longer
     * matches): the file is ignored, every answer comes from libdw. */
    int fd = open(file, O_RDWR);
    cr_assert_geq(fd, 0);
    static const char path[] = "/proc/self/exe";
    uint64_t stamp[4] = { 1, 2, 3, 4 };
    cr_assert_eq(pwrite(fd, stamp, sizeof stamp, 16), (ssize_t)sizeof stamp);
    cr_assert_eq(pwrite(fd, path, sizeof path, 48), (ssize_t)sizeof path);
    close(fd);
    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, n, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 1);     /* the executable's; libc's file still holds */
    assert_same(cold, warm, n);
    mtp_sym_close(s);
    drop_copies(cold, n);

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* libc's cache file, from its build id. */
static void libc_cache_file(const char *dir, char *out, size_t cap)
{
    Dl_info di;
    char id[160];
    cr_assert_neq(dladdr((void *)&gnu_get_libc_version, &di), 0);
    elf_build_id(di.dli_fname, id, sizeof id);
    snprintf(out, cap, "%s/%s.sym", dir, id);
}

/* A file of many answers: a new process decodes the records of the
 * addresses it asks for, no others; a damaged record is answered by libdw
 * again and the file replaced with every other record kept. */
Test(symbolize, cache_files_decode_what_is_asked)
{
    enum { N = 200 };
    char dir[] = "/tmp/mtsymlXXXXXX", file[PATH_MAX], cmd[PATH_MAX + 16];
    cr_assert_not_null(mkdtemp(dir));
    static uint64_t pcs[N];
    static mtp_sym_t cold[N], warm[N];
    uint64_t from = (uint64_t)(uintptr_t)&gnu_get_libc_version;
    for (size_t i = 0; i < N; i++)
        pcs[i] = from + 1 + 37 * i;
    mtp_sym_stats_t st;
    mtp_symbolizer_t *s;

    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, N, cold);
    keep_copies(cold, N);
    mtp_sym_close(s);

    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs + 10, 3, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 0);
    cr_assert_eq(st.disk_loaded, 3, "%llu records decoded", (unsigned long long)st.disk_loaded);
    assert_same(cold + 10, warm, 3);
    mtp_sym_close(s);

    /* Damage the function name of pcs[100]'s record (a byte the check covers). */
    libc_cache_file(dir, file, sizeof file);
    int fd = open(file, O_RDWR);
    cr_assert_geq(fd, 0, "%s", file);
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    char *img = malloc((size_t)sb.st_size);
    cr_assert_eq(pread(fd, img, (size_t)sb.st_size, 0), sb.st_size);
    uint32_t hl, len;
    memcpy(&hl, img + 8, 4);
    Dl_info di;
    cr_assert_neq(dladdr((void *)&gnu_get_libc_version, &di), 0);
    uint64_t want = pcs[100] - (uint64_t)(uintptr_t)di.dli_fbase, addr;
    off_t hit = -1;
    for (size_t at = hl; at + 32 <= (size_t)sb.st_size; at += len) {
        memcpy(&len, img + at, 4);
        memcpy(&addr, img + at + 8, 8);
        if (addr == want)
            hit = (off_t)at;
    }
    cr_assert_geq(hit, 0, "no record of pcs[100] in %s", file);
    char c = (char)(img[hit + 40] ^ 0x20);
    cr_assert_eq(pwrite(fd, &c, 1, hit + 40), 1);
    close(fd);
    free(img);

    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs + 99, 3, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 1);
    cr_assert_eq(st.disk_loaded, 2);
    assert_same(cold + 99, warm, 3);
    mtp_sym_close(s);                 /* replaces the file */

    cr_assert_eq(mtp_sym_open(&s), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    lookup_all(s, pcs, N, warm);
    mtp_sym_stats(s, &st);
    cr_assert_eq(st.resolved, 0, "%llu answers needed libdw", (unsigned long long)st.resolved);
    assert_same(cold, warm, N);
    mtp_sym_close(s);
    drop_copies(cold, N);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A module placed wrong by the map text (a mapping listed where libc is
 * not, as a map read amid a change could show it): an address outside its
 * executable segments, as that placement puts it, gets no answer and none
 * goes to the cache file every process of the module reads. */
Test(symbolize, an_address_outside_the_code_is_not_answered_nor_saved)
{
    char dir[] = "/tmp/mtsymoXXXXXX", file[PATH_MAX], cmd[PATH_MAX + 16];
    cr_assert_not_null(mkdtemp(dir));
    FILE *f = fopen("/proc/self/maps", "re");
    cr_assert_not_null(f);
    char line[PATH_MAX + 256], text[2 * PATH_MAX + 512] = "";
    Dl_info di;   /* libc's: a function no sanitizer intercepts */
    cr_assert_neq(dladdr((void *)&gnu_get_libc_version, &di), 0);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off;
        char perms[8], devs[16], path[PATH_MAX];
        unsigned long ino;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %4095s", &lo, &hi, perms, &off, devs, &ino,
                   path) == 7 &&
            off == 0 && strrchr(path, '/') && strrchr(di.dli_fname, '/') &&
            strcmp(strrchr(path, '/'), strrchr(di.dli_fname, '/')) == 0) {
            /* libc's file, listed at an address it is not mapped at */
            snprintf(text, sizeof text, "100000000000-100000400000 r-xp 00000000 %s %lu %s\n", devs,
                     ino, path);
            break;
        }
    }
    fclose(f);
    cr_assert_neq(text[0], '\0', "no mapping of %s at offset 0", di.dli_fname);
    mtp_symbolizer_t *s;
    mtp_sym_stats_t st;
    mtp_sym_t out;
    cr_assert_eq(mtp_sym_open_maps(&s, text), 0);
    cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
    cr_assert_eq(mtp_sym_lookup(s, 0x100000000000ull + 0x3ff000, &out), 0);   /* past libc's code */
    cr_expect_str_eq(out.function, "");
    cr_expect_eq(out.module, 0);
    mtp_sym_stats(s, &st);
    cr_expect_eq(st.outside, 1);
    cr_expect_eq(st.resolved, 0, "libdw asked for an address outside the code");
    mtp_sym_close(s);                 /* flushes: nothing to write */
    libc_cache_file(dir, file, sizeof file);
    struct stat sb;
    cr_expect_neq(stat(file, &sb), 0, "%s written", file);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Return addresses in libc whose calls are in inlined code (libc6-dbg's
 * DWARF), up to max; 0 found without its debug file. */
static size_t inlined_libc_pcs(uint64_t *pcs, size_t max)
{
    mtp_symbolizer_t *s;
    size_t n = 0;
    cr_assert_eq(mtp_sym_open(&s), 0);
    uint64_t from = (uint64_t)(uintptr_t)&qsort;
    for (uint64_t pc = from + 1; pc < from + 65536 && n < max; pc += 3) {
        mtp_sym_t r;
        mtp_sym_lookup(s, pc, &r);
        if (r.ninl >= 1)
            pcs[n++] = pc;
    }
    mtp_sym_close(s);
    return n;
}

/* Inline chains go through the cache file whole: a new process reads the
 * same functions, files and lines at every level, without libdw. */
Test(symbolize, cache_files_keep_inline_chains)
{
    enum { N = 16 };
    uint64_t pcs[N];
    size_t n = inlined_libc_pcs(pcs, N);
    if (n == 0)
        cr_skip_test("no inlined code found in libc (libc6-dbg not installed?)");
    char dir[] = "/tmp/mtsymiXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    static char cold[N][4096];
    mtp_symbolizer_t *s;
    mtp_sym_stats_t st;
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_eq(mtp_sym_open(&s), 0);
        cr_assert_eq(mtp_sym_set_cache(s, dir), 0);
        for (size_t i = 0; i < n; i++) {
            mtp_sym_t r;
            char text[4096];
            size_t len = 0;
            mtp_sym_lookup(s, pcs[i], &r);
            cr_assert_geq(r.ninl, 1);
            for (uint32_t k = 0; k < r.ninl; k++)
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s %s:%u; ",
                                        r.inl[k].function, r.inl[k].file, r.inl[k].line);
            snprintf(text + len, sizeof(text) - len, "%s+%" PRIu64 " %s:%u", r.function,
                     r.offset, r.file, r.line);
            if (pass == 0)
                memcpy(cold[i], text, sizeof(text));
            else
                cr_assert_str_eq(text, cold[i], "pc %zu", i);
        }
        mtp_sym_stats(s, &st);
        if (pass == 1) {
            cr_assert_eq(st.resolved, 0, "%llu answers needed libdw", (unsigned long long)st.resolved);
            cr_assert_geq(st.disk_loaded, n);
        }
        mtp_sym_close(s);
    }
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(symbolize, cache_dir_refused_when_others_can_write)
{
    char dir[] = "/tmp/mtsymdXXXXXX", sub[PATH_MAX];
    cr_assert_not_null(mkdtemp(dir));
    mtp_symbolizer_t *s;
    cr_assert_eq(mtp_sym_open(&s), 0);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    cr_assert_eq(mtp_sym_set_cache(s, sub), 0);     /* created, 0700 */
    struct stat sb;
    cr_assert_eq(stat(sub, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    cr_assert_eq(chmod(sub, 0777), 0);
    cr_assert_eq(mtp_sym_set_cache(s, sub), -EPERM);
    cr_assert_eq(mtp_sym_set_cache(s, "relative/dir"), -EINVAL);
    mtp_sym_close(s);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

/* Through the symbol cache directory, a compressed separate debug file (as
 * libc6-dbg's) is read from its uncompressed copy there: every answer over
 * libc's code equals the answer from the original, inline chains included.
 * The copy is mapped, so its units are walked in a window with the pages
 * behind handed back (symbolize.c, walk_units), and read again from the
 * file when a lookup needs them; the original is inflated into memory,
 * which is never handed back: the walk is not done there. */
Test(symbolize, uncompressed_copy_gives_the_same_answers)
{
    char dir[] = "/tmp/mtsymuXXXXXX", cmd[PATH_MAX + 16];
    cr_assert_not_null(mkdtemp(dir));
    mtp_symbolizer_t *plain, *copied;
    cr_assert_eq(mtp_sym_open(&plain), 0);
    cr_assert_eq(mtp_sym_open(&copied), 0);
    mtp_sym_t r;
    mtp_sym_lookup(plain, (uint64_t)(uintptr_t)&getpid + 1, &r);
    const mtp_module_t *mods;
    mtp_sym_modules(plain, &mods);
    const mtp_module_t *libc = &mods[r.module];

    /* The original's answers first: the copy directory, once set, is where
     * every symbolizer of the process finds separate debug files. Answers
     * are arena strings, kept as long as the symbolizer. */
    enum { N = 4000 };
    static mtp_sym_t a[N];
    const uint64_t n = N, span = libc->end - libc->start;
    for (uint64_t k = 0; k < n; k++)
        mtp_sym_lookup(plain, libc->start + 1 + span * k / n, &a[k]);
    cr_assert_eq(mtp_sym_set_cache(copied, dir), 0);
    size_t named = 0, lined = 0, inlined = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t pc = libc->start + 1 + span * k / n;
        mtp_sym_t b;
        mtp_sym_lookup(copied, pc, &b);
        cr_assert_str_eq(a[k].function, b.function, "%#llx", (unsigned long long)pc);
        cr_assert_eq(a[k].offset, b.offset);
        cr_assert_str_eq(a[k].file, b.file, "%#llx", (unsigned long long)pc);
        cr_assert_eq(a[k].line, b.line, "%#llx", (unsigned long long)pc);
        cr_assert_eq(a[k].ninl, b.ninl, "%#llx", (unsigned long long)pc);
        for (uint32_t i = 0; i < a[k].ninl; i++) {
            cr_assert_str_eq(a[k].inl[i].function, b.inl[i].function, "%#llx",
                             (unsigned long long)pc);
            cr_assert_str_eq(a[k].inl[i].file, b.inl[i].file, "%#llx", (unsigned long long)pc);
            cr_assert_eq(a[k].inl[i].line, b.inl[i].line, "%#llx", (unsigned long long)pc);
        }
        inlined += a[k].ninl != 0;
        named += a[k].function[0] != '\0';
        lined += a[k].line != 0;
    }
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s/%s.debug", dir, libc->build_id);
    int made = access(copy, R_OK) == 0;
    mtp_sym_stats_t sp, sc;
    mtp_sym_stats(plain, &sp);
    mtp_sym_stats(copied, &sc);
    fprintf(stderr, "libc through %s: %zu pcs, %zu named, %zu with lines, %zu inlined, copy %s, "
            "units walked %llu / %llu\n", dir, (size_t)n, named, lined, inlined,
            made ? "made" : "not needed", (unsigned long long)sp.units_walked,
            (unsigned long long)sc.units_walked);
    cr_assert_gt(named, n / 2);
    if (made && lined) {    /* libc6-dbg's compressed DWARF: inflated, or read from the copy */
        cr_assert_eq(sp.units_walked, 0);
        cr_assert_geq(sc.units_walked, 1);
    }
    mtp_sym_close(plain);
    mtp_sym_close(copied);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
