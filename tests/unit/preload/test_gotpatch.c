/* Unit test: mtp_got_patch on small libraries (lazy PLT, GOT, full RELRO),
 * and the dlopen wrapper keeping the caller's RUNPATH/RPATH and $ORIGIN. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hook/gotpatch.h"

#ifndef GOT_DIR
#error "GOT_DIR (the build directory of the test libraries) must be defined"
#endif
#define DEP_DIR GOT_DIR "/gotdep"

typedef int (*int_fn)(void);
typedef int_fn (*addr_fn)(void);
typedef void *(*open_fn)(const char *, int);

static int repl(void)
{
    return 2;
}

/* ---- /proc/self/maps ---- */
typedef struct mapping {
    uintptr_t lo, hi;
    char perms[5];
    char path[PATH_MAX];
} mapping_t;

static int next_mapping(FILE *f, mapping_t *m)
{
    char line[PATH_MAX + 128];
    if (!fgets(line, sizeof(line), f))
        return 0;
    int off = 0;
    m->path[0] = '\0';
    if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %*s %*s %*s %n", &m->lo, &m->hi, m->perms,
               &off) < 3)
        return 0;
    if (off > 0)
        sscanf(line + off, "%4095s", m->path);
    return 1;
}

/* Permissions of the mapping holding addr. */
static void perms_at(uintptr_t addr, char perms[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    mapping_t m;
    strcpy(perms, "none");
    while (next_mapping(f, &m))
        if (addr >= m.lo && addr < m.hi)
            strcpy(perms, m.perms);
    fclose(f);
}

/* Counts the words equal to value in the non-executable mappings of the
 * file `lib`; *at receives the last one. */
static int find_word(const char *lib, uintptr_t value, uintptr_t *at)
{
    char real[PATH_MAX];
    cr_assert_not_null(realpath(lib, real), "realpath %s", lib);
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    mapping_t m;
    int n = 0;
    while (next_mapping(f, &m)) {
        if (strcmp(m.path, real) != 0 || m.perms[0] != 'r' || m.perms[2] == 'x')
            continue;
        for (uintptr_t a = m.lo; a + sizeof(uintptr_t) <= m.hi; a += sizeof(uintptr_t))
            if (*(const uintptr_t *)a == value) {
                *at = a;
                n++;
            }
    }
    fclose(f);
    return n;
}

static void *open_lib(const char *path)
{
    void *h = dlopen(path, RTLD_NOW);
    cr_assert_not_null(h, "dlopen %s: %s", path, dlerror());
    return h;
}

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    cr_assert_not_null(p, "dlsym %s: %s", name, dlerror());
    return p;
}

static uintptr_t load_address(void *h)
{
    struct link_map *lm = NULL;
    cr_assert_eq(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
    return lm->l_addr;
}

/* ---- GOT patching ---- */
Test(gotpatch, jump_slot_after_first_call)
{
    const char *lib = GOT_DIR "/libgotvictim.so";
    void *v = open_lib(lib);
    int_fn call = (int_fn)sym(v, "gv_call");
    int_fn target = (int_fn)sym(v, "gv_target");
    cr_assert_eq(call(), 1);
    uintptr_t slot = 0;
    cr_assert_eq(find_word(lib, (uintptr_t)repl, &slot), 0);

    cr_assert_eq(mtp_got_patch("gv_target", (void *)repl), 1);
    cr_assert_eq(call(), 2, "the call does not reach the replacement");
    cr_assert_eq(find_word(lib, (uintptr_t)repl, &slot), 1, "one slot holds the replacement");
    char perms[5];
    perms_at(slot, perms);
    cr_assert_str_eq(perms, "rw-p", "a lazy .got.plt slot stays writable");

    cr_assert_eq(mtp_got_patch("gv_target", (void *)repl), 0, "not idempotent");
    cr_assert_eq(mtp_got_patch("gv_target", (void *)target), 1);
    cr_assert_eq(call(), 1, "cannot patch back");
}

Test(gotpatch, jump_slot_before_first_call)
{
    void *v = open_lib(GOT_DIR "/libgotvictim.so");
    int_fn call = (int_fn)sym(v, "gv_call");
    cr_assert_eq(mtp_got_patch("gv_target", (void *)repl), 1);
    cr_assert_eq(call(), 2);
    cr_assert_eq(mtp_got_patch("gv_target", (void *)repl), 0);
}

Test(gotpatch, glob_dat_in_relro)
{
    const char *lib = GOT_DIR "/libgotvictim.so";
    void *v = open_lib(lib);
    addr_fn addr = (addr_fn)sym(v, "gv_data_addr");
    int_fn target = (int_fn)sym(v, "gv_data_target");
    cr_assert_eq(addr(), target);

    cr_assert_eq(mtp_got_patch("gv_data_target", (void *)repl), 1);
    cr_assert_eq(addr(), repl, "the GOT slot does not hold the replacement");
    cr_assert_eq(addr()(), 2);
    uintptr_t slot = 0;
    cr_assert_eq(find_word(lib, (uintptr_t)repl, &slot), 1);
    char perms[5];
    perms_at(slot, perms);
    cr_assert_str_eq(perms, "r--p", "the RELRO page is not read-only again");
    cr_assert_eq(mtp_got_patch("gv_data_target", (void *)repl), 0);
}

Test(gotpatch, full_relro)
{
    const char *lib = GOT_DIR "/libgotvictim_now.so";
    void *v = open_lib(lib);
    int_fn call = (int_fn)sym(v, "gv_call");
    int_fn target = (int_fn)sym(v, "gv_target");
    uintptr_t slot = 0;
    char perms[5];
    cr_assert_eq(find_word(lib, (uintptr_t)target, &slot), 1, "bound GOT slot not found");
    perms_at(slot, perms);
    cr_assert_str_eq(perms, "r--p", "the victim is not full RELRO");

    cr_assert_eq(mtp_got_patch("gv_target", (void *)repl), 1);
    cr_assert_eq(call(), 2);
    uintptr_t patched = 0;
    cr_assert_eq(find_word(lib, (uintptr_t)repl, &patched), 1);
    cr_assert_eq(patched, slot);
    perms_at(slot, perms);
    cr_assert_str_eq(perms, "r--p", "the RELRO page is not read-only again");
    cr_assert_eq(mtp_got_patch("gv_target", (void *)repl), 0);
}

Test(gotpatch, skip_and_unknown)
{
    void *v = open_lib(GOT_DIR "/libgotvictim.so");
    int_fn call = (int_fn)sym(v, "gv_call");
    uintptr_t skip[2] = {12345, load_address(v)};
    cr_assert_eq(mtp_got_patch_skip("gv_target", (void *)repl, skip, 2), 0);
    cr_assert_eq(call(), 1, "a skipped object was patched");
    cr_assert_eq(mtp_got_patch_skip("gv_target", (void *)repl, skip, 1), 1);
    cr_assert_eq(call(), 2);
    cr_assert_eq(mtp_got_patch("gv_no_such_symbol", (void *)repl), 0);
    cr_assert_eq(mtp_got_patch(NULL, (void *)repl), -EINVAL);
}

/* Several symbols in one walk: each name's slots get its own replacement;
 * a name no object imports changes nothing. */
static int repl_data(void)
{
    return 3;
}

Test(gotpatch, a_set_in_one_walk)
{
    void *v = open_lib(GOT_DIR "/libgotvictim.so");
    int_fn call = (int_fn)sym(v, "gv_call");
    addr_fn addr = (addr_fn)sym(v, "gv_data_addr");
    int_fn target = (int_fn)sym(v, "gv_target"), data = (int_fn)sym(v, "gv_data_target");
    const char *names[3] = {"gv_target", "gv_no_such_symbol", "gv_data_target"};
    void *to[3] = {(void *)repl, (void *)repl, (void *)repl_data};
    cr_assert_eq(mtp_got_patch_set(names, to, 3), 2);
    cr_assert_eq(call(), 2);
    cr_assert_eq(addr(), repl_data, "the GOT slot does not hold its own replacement");
    cr_assert_eq(mtp_got_patch_set(names, to, 3), 0, "not idempotent");
    void *back[3] = {(void *)target, (void *)repl, (void *)data};
    cr_assert_eq(mtp_got_patch_set(names, back, 3), 2);
    cr_assert_eq(call(), 1);
    cr_assert_eq(addr(), data);
    cr_assert_eq(mtp_got_patch_set(names, to, 0), 0);
    cr_assert_eq(mtp_got_patch_set(NULL, to, 1), -EINVAL);
}

/* With a `seen` set, an object walked before is not walked again (its slot,
 * put back behind the walk's back, stays put back), an object loaded since
 * is; after another walk writes a slot, or after an unload, every object is
 * walked again. */
Test(gotpatch, a_set_walks_new_objects_only)
{
    static mtp_got_seen_t seen;
    const char *lib = GOT_DIR "/libgotvictim.so";
    void *v = open_lib(lib);
    int_fn call = (int_fn)sym(v, "gv_call");
    int_fn target = (int_fn)sym(v, "gv_target");
    const char *names[1] = {"gv_target"};
    void *to[1] = {(void *)repl};
    cr_assert_eq(mtp_got_patch_new(names, to, 1, &seen), 1);
    cr_assert_eq(call(), 2);
    uintptr_t slot = 0;
    cr_assert_eq(find_word(lib, (uintptr_t)repl, &slot), 1);
    *(void **)slot = (void *)target;   /* a lazy .got.plt slot: writable */
    cr_assert_eq(mtp_got_patch_new(names, to, 1, &seen), 0, "an object seen was walked again");
    cr_assert_eq(call(), 1);

    void *w = open_lib(GOT_DIR "/libgotvictim_now.so");
    int_fn call_now = (int_fn)sym(w, "gv_call");
    cr_assert_eq(mtp_got_patch_new(names, to, 1, &seen), 1, "only the new object");
    cr_assert_eq(call_now(), 2);
    cr_assert_eq(call(), 1);

    cr_assert_eq(mtp_got_patch("gv_data_target", (void *)repl), 2);   /* another walk writes */
    cr_assert_eq(mtp_got_patch_new(names, to, 1, &seen), 1, "not every object walked again");
    cr_assert_eq(call(), 2);

    *(void **)slot = (void *)target;
    cr_assert_eq(dlclose(w), 0);   /* an unload */
    cr_assert_eq(mtp_got_patch_new(names, to, 1, &seen), 1, "not every object walked again");
    cr_assert_eq(call(), 2);
}

/* ---- the dlopen wrapper ---- */
static void *hook_handle;
static int hook_calls;

/* Like the Python support's hook, probes with a dlsym that fails: the
 * wrapper must not leave that error for the application's dlerror(). */
static void record_hook(void *h)
{
    hook_handle = h;
    hook_calls++;
    cr_assert_null(dlsym(h, "gv_no_such_symbol"));
    errno = EBADF;
}

static void copy_file(const char *from, const char *to)
{
    char tmp[PATH_MAX], buf[65536];
    snprintf(tmp, sizeof(tmp), "%s.%d", to, (int)getpid());
    int in = open(from, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(in, 0, "open %s", from);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    cr_assert_geq(out, 0, "create %s", tmp);
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    cr_assert_eq(n, 0);
    close(in);
    cr_assert_eq(close(out), 0);
    cr_assert_eq(rename(tmp, to), 0, "rename %s: %s", to, strerror(errno));
}

/* gotdep/ holds libgotdep.so (found through the callers' RUNPATH/RPATH) and
 * libgotorigin.so (a copy, found through $ORIGIN). */
static void setup_dir(void)
{
    cr_assert(mkdir(DEP_DIR, 0755) == 0 || errno == EEXIST);
    copy_file(GOT_DIR "/staged-libgotdep.so", DEP_DIR "/libgotdep.so");
    copy_file(GOT_DIR "/staged-libgotdep.so", DEP_DIR "/libgotorigin.so");
    copy_file(GOT_DIR "/libgotcaller.so", DEP_DIR "/libgotcaller-origin.so");
    mtp_dlopen_hook = record_hook;
}

static const char *name_of(void *h)
{
    struct link_map *lm = NULL;
    cr_assert_eq(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
    return lm->l_name;
}

static void check_found(void *caller_lib, const char *file, const char *want)
{
    open_fn gc_open = (open_fn)sym(caller_lib, "gc_open");
    int calls = hook_calls;
    errno = 0;
    void *h = gc_open(file, RTLD_NOW);
    cr_assert_not_null(h, "%s not found for the caller: %s", file, dlerror());
    cr_assert_neq(errno, EBADF, "errno changed by the hook");
    cr_assert_null(dlerror(), "a dlerror string is left after a successful dlopen");
    cr_assert_str_eq(name_of(h), want);
    cr_assert_eq(((int_fn)sym(h, "gd_value"))(), 42);
    cr_assert_eq(hook_calls, calls + 1, "mtp_dlopen_hook not called");
    cr_assert_eq(hook_handle, h, "mtp_dlopen_hook got another handle");
}

Test(dlopen, runpath_of_the_caller)
{
    setup_dir();
    void *caller = open_lib(GOT_DIR "/libgotcaller.so");
    cr_assert_eq(hook_handle, caller, "hook not called for a dlopen by path");
    check_found(caller, "libgotdep.so", DEP_DIR "/libgotdep.so");
}

Test(dlopen, rpath_of_the_caller)
{
    setup_dir();
    void *caller = open_lib(GOT_DIR "/libgotcaller_rpath.so");
    check_found(caller, "libgotdep.so", DEP_DIR "/libgotdep.so");
}

Test(dlopen, origin_of_the_caller)
{
    setup_dir();
    void *caller = open_lib(DEP_DIR "/libgotcaller-origin.so");
    check_found(caller, "$ORIGIN/libgotorigin.so", DEP_DIR "/libgotorigin.so");
    check_found(caller, "${ORIGIN}/libgotorigin.so", DEP_DIR "/libgotorigin.so");
}

/* The test program has no RUNPATH: the same name must fail from here, or
 * the tests above prove nothing. */
Test(dlopen, not_found_without_the_caller_paths)
{
    setup_dir();
    cr_assert_null(dlopen("libgotdep.so", RTLD_NOW));
    cr_assert_not_null(dlerror());
    cr_assert_null(dlopen("$ORIGIN/libgotorigin.so", RTLD_NOW));
    cr_assert_not_null(dlerror());
}

/* An object already loaded under that name (staged-libgotdep.so has the
 * soname libgotdep.so) wins over the caller's RUNPATH, as in glibc: no
 * second copy from gotdep/. */
Test(dlopen, loaded_name_wins)
{
    setup_dir();
    void *first = open_lib(GOT_DIR "/staged-libgotdep.so");
    void *caller = open_lib(GOT_DIR "/libgotcaller.so");
    check_found(caller, "libgotdep.so", GOT_DIR "/staged-libgotdep.so");
    cr_assert_eq(hook_handle, first);
}

Test(dlopen, failure_and_null)
{
    setup_dir();
    void *caller = open_lib(GOT_DIR "/libgotcaller.so");
    open_fn gc_open = (open_fn)sym(caller, "gc_open");
    int calls = hook_calls;
    cr_assert_null(gc_open("libgotnothere.so", RTLD_NOW));
    const char *err = dlerror();
    cr_assert(err && strstr(err, "libgotnothere.so"), "dlerror: %s", err ? err : "(null)");
    cr_assert_eq(hook_calls, calls, "hook called for a failed dlopen");
    void *self = gc_open(NULL, RTLD_NOW);
    cr_assert_not_null(self);
    cr_assert_eq(hook_handle, self);
    cr_assert_eq(dlsym(self, "gv_no_such_symbol"), NULL);
}

/* ---- mtp_got_rewrite: the visitor sees each slot once, with its kind ---- */
typedef struct seen {
    int plt, dat, self;
    void *to;         /* what the visitor puts in every slot (NULL: nothing) */
} seen_t;

static void *count_slots(void *arg, const mtp_got_slot_t *s)
{
    seen_t *n = arg;
    cr_assert_lt(s->which, 2u);
    cr_assert(s->lo < s->hi);
    if (s->self)
        n->self++;
    else if (s->plt)
        n->plt++;
    else
        n->dat++;
    return n->to;
}

Test(gotpatch, rewrite_visits_and_writes)
{
    const char *lib = GOT_DIR "/libgotvictim_now.so";
    void *v = open_lib(lib);
    int_fn call = (int_fn)sym(v, "gv_call");
    addr_fn addr = (addr_fn)sym(v, "gv_data_addr");
    int_fn target = (int_fn)sym(v, "gv_target");
    static const char *const names[] = {"gv_target", "gv_data_target"};

    seen_t n = {0};
    cr_assert_eq(mtp_got_rewrite(names, 2, count_slots, &n), 0, "a visitor returning NULL wrote");
    cr_assert_geq(n.plt, 1, "the call slot (JUMP_SLOT) was not seen as one");
    cr_assert_geq(n.dat, 1, "the address slot (GLOB_DAT) was not seen as one");

    seen_t w = {.to = (void *)repl};
    int changed = mtp_got_rewrite(names, 2, count_slots, &w);
    cr_assert_eq(changed, w.plt + w.dat, "every slot visited is written: %d of %d", changed,
                 w.plt + w.dat);
    cr_assert_eq(call(), 2);
    cr_assert_eq(addr(), repl);
    cr_assert_eq(mtp_got_rewrite(names, 2, count_slots, &w), 0, "a slot already holding it");

    seen_t back = {.to = (void *)target};
    mtp_got_rewrite(names, 2, count_slots, &back);
    cr_assert_eq(call(), 1, "cannot rewrite back");
    cr_assert_eq(mtp_got_rewrite(NULL, 2, count_slots, &n), -EINVAL);
}
