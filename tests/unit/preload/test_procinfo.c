/* Unit tests of two of base/util.c's readings of the process, in the test's
 * own process: mtp_proc_threads (the link count of /proc/self/task) counts
 * what /proc/self/stat counts, as threads start and end; mtp_symbol_size
 * (a GNU hash lookup) gives dladdr1's size for symbols of libc and of this
 * program's libraries, and 0 for a name or an address that is not the
 * symbol's. */
#define _GNU_SOURCE 1
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

static long stat_threads(void)
{
    char state;
    long threads = -1;
    cr_assert_eq(mtp_proc_stat("/proc/self/stat", &state, &threads), 0);
    return threads;
}

static _Atomic int go;

static void *parked(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        usleep(1000);
    return NULL;
}

Test(procinfo, threads_as_the_stat_file_counts_them)
{
    long before = mtp_proc_threads();
    cr_assert_eq(before, stat_threads());
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, parked, NULL), 0);
        cr_expect_eq(mtp_proc_threads(), before + i + 1);
        cr_expect_eq(mtp_proc_threads(), stat_threads());
    }
    atomic_store(&go, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    /* A joined thread may still be counted a moment: its exit wakes the
     * join before the kernel drops it from the count. */
    for (int i = 0; i < 1000 && mtp_proc_threads() != before; i++)
        usleep(1000);
    cr_expect_eq(mtp_proc_threads(), before);
    cr_expect_eq(mtp_proc_threads(), stat_threads());
}

static void expect_as_dladdr1(const void *addr, const char *name)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    cr_assert(dladdr1(addr, &info, (void **)&sym, RTLD_DL_SYMENT) && sym, "%s: no dladdr1", name);
    cr_assert(sym->st_size > 0, "%s: no size", name);
    cr_expect_eq(mtp_symbol_size(addr, name), sym->st_size, "%s: %zu, dladdr1 %zu", name,
                 mtp_symbol_size(addr, name), (size_t)sym->st_size);
}

Test(procinfo, symbol_size_as_dladdr1)
{
    expect_as_dladdr1((const void *)(uintptr_t)&pthread_create, "pthread_create");
    expect_as_dladdr1((const void *)(uintptr_t)&malloc, "malloc");
    expect_as_dladdr1((const void *)(uintptr_t)&getenv, "getenv");
    expect_as_dladdr1((const void *)(uintptr_t)&qsort, "qsort");
    expect_as_dladdr1((const void *)(uintptr_t)&dladdr1, "dladdr1");
}

Test(procinfo, symbol_size_of_no_such_symbol)
{
    const char *at = (const char *)(uintptr_t)&qsort;
    cr_expect_eq(mtp_symbol_size(at, "qsort_r"), 0, "another name at qsort's address");
    cr_expect_eq(mtp_symbol_size(at + 1, "qsort"), 0, "an address inside qsort");
    cr_expect_eq(mtp_symbol_size(at, "no_such_symbol_anywhere"), 0);
    static const int here = 1;
    cr_expect_eq(mtp_symbol_size(&here, "here"), 0, "a static, not in .dynsym");
    cr_expect_eq(mtp_symbol_size((const void *)16, "qsort"), 0, "no object there");
}
