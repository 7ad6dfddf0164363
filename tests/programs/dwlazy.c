/* dwlazy [LIB]: dlopens LIB when given (libdwctor.so: its constructor
 * asks for a snapshot), then two allocating sites (and site_many with
 * $DWLAZY_BLOCKS blocks of 16 bytes, default none), an API snapshot, then
 * one line on stdout saying whether libdw and libzstd are mapped in the
 * process at that point: "libdw 1 libzstd 0". memtrail loads libdw only to
 * name frames its symbol cache does not hold and libzstd only to compress a
 * record too big to be stored (preload/base/libload.h), so under memtrail
 * a run against an empty cache says libdw 1 and a second run against the
 * same cache libdw 0; libzstd 1 only with thousands of blocks; bare, 0 0
 * (test_symbols). The blocks stay live for the exit snapshot. Exit status
 * 0, or 2 when LIB or /proc/self/maps cannot be had. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MEMTRAIL_WEAK
#include <memtrail.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *keep[2];
static void **kept_many;

NOINLINE static void site_one(void)
{
    keep[0] = malloc(100);
}

NOINLINE static void site_two(void)
{
    keep[1] = malloc(200);
}

NOINLINE static void site_many(long n)
{
    void **v = malloc((size_t)n * sizeof(*v));
    for (long i = 0; v && i < n; i++)
        v[i] = malloc(16);
    kept_many = v;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !dlopen(argv[1], RTLD_NOW | RTLD_LOCAL))
        prog_die("dwlazy", dlerror());
    site_one();
    site_two();
    const char *many = getenv("DWLAZY_BLOCKS");
    if (many)
        site_many(strtol(many, NULL, 10));
    MEMTRAIL_SNAPSHOT("named");   /* every live frame named now */
    int dw = prog_mapped("dwlazy", "/libdw"), zstd = prog_mapped("dwlazy", "/libzstd");
    prog_put(1, dw ? "libdw 1" : "libdw 0");
    prog_put(1, zstd ? " libzstd 1\n" : " libzstd 0\n");
    return 0;
}
