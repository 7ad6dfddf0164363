/* unwlazy DIR LIB: says whether libunwind is mapped after allocations whose
 * stacks memtrail's CFI walk follows to the end, then again after one made
 * in a signal handler (a signal frame, which the walk hands to libunwind),
 * then dlopens LIBCOPIES copies of LIB (libunwlazydep.so, linked with
 * liblzma, which libunwind brought in) that it writes into DIR: each
 * RTLD_LOCAL dlopen of a module that needs liblzma, loaded by then, puts the
 * module's scope in liblzma's link map, and past four of them glibc moves
 * that list into a block of the program's (dl-open.c, resize_scopes).
 * Prints "libunwind 0 1" under memtrail, which loads libunwind on the first
 * stack the walk cannot follow (preload/unwind/unwind.c), "libunwind 0 0"
 * bare. Every block stays live for the exit snapshot (test_native: the
 * handler's stack, exact; no definite leak). Exit status 0, or 2 when a file
 * cannot be had. */
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define LIBCOPIES 6

static void *keep[3];
static void *handles[LIBCOPIES];

NOINLINE static void plain_site(void)
{
    keep[0] = malloc(300);
    keep[1] = malloc(310);
}

NOINLINE static void handler_site(void)
{
    keep[2] = malloc(4242);
}

static void on_usr1(int sig)
{
    (void)sig;
    handler_site();
}

/* LIB copied to DIR/unwlazydep-K.so, then dlopened: a module of its own. */
static void load_copy(const char *dir, const char *lib, int k)
{
    char path[4096], buf[65536];
    snprintf(path, sizeof(path), "%s/unwlazydep-%d.so", dir, k);
    int in = open(lib, O_RDONLY | O_CLOEXEC);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ssize_t n;
    if (in < 0 || out < 0)
        prog_die("unwlazy", "cannot copy the library");
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            prog_die("unwlazy", "cannot write the copy");
    close(in);
    close(out);
    if (!(handles[k] = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
        prog_die("unwlazy", dlerror());
}

int main(int argc, char **argv)
{
    if (argc != 3)
        prog_die("unwlazy", "usage: unwlazy DIR LIB");
    plain_site();
    int before = prog_mapped("unwlazy", "/libunwind.so");
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    int after = prog_mapped("unwlazy", "/libunwind.so");
    for (int k = 0; k < LIBCOPIES; k++)
        load_copy(argv[1], argv[2], k);
    prog_put(1, before ? "libunwind 1" : "libunwind 0");
    prog_put(1, after ? " 1\n" : " 0\n");
    return 0;
}
