/* dwlazy [LIB]: dlopens LIB when given (libdwctor.so: its constructor
 * asks for a snapshot), then two allocating sites, an API snapshot, then one
 * line on stdout saying whether libdw is mapped in the process at that
 * point: "libdw 1" or "libdw 0". memtrail loads libdw only to name frames
 * its symbol cache does not hold (preload/writer/dwapi.h), so under memtrail
 * a run against an empty cache says 1 and a second run against the same
 * cache says 0; bare, 0 (test_symbols). Two blocks stay live for the exit
 * snapshot. Exit status 0, or 2 when LIB or /proc/self/maps cannot be had. */
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
static char maps[1 << 20];   /* /proc/self/maps, whole: no allocation */

NOINLINE static void site_one(void)
{
    keep[0] = malloc(100);
}

NOINLINE static void site_two(void)
{
    keep[1] = malloc(200);
}

static int libdw_mapped(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;
    if (fd < 0)
        prog_die("dwlazy", "cannot open /proc/self/maps");
    while (len < sizeof(maps) - 1 && (n = read(fd, maps + len, sizeof(maps) - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    maps[len] = '\0';
    return strstr(maps, "/libdw") != NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !dlopen(argv[1], RTLD_NOW | RTLD_LOCAL))
        prog_die("dwlazy", dlerror());
    site_one();
    site_two();
    MEMTRAIL_SNAPSHOT("named");   /* every live frame named now */
    prog_put(1, libdw_mapped() ? "libdw 1\n" : "libdw 0\n");
    return 0;
}
