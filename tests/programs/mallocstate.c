/* mallocstate: memtrail's own work must leave the C library's allocator as
 * the program would find it bare. glibc raises its mmap threshold for the
 * whole process the first time a block it had mmap'd is freed (up to 32
 * MiB), so a tracer whose writer freed one (libdw inflating a debug
 * section, zstd's context) changed where the program's next large blocks
 * come from: from an arena, kept after free, where bare they are mmap'd
 * and given back.
 *
 * A block allocated in libc (strdup) puts a libc frame in a recorded stack;
 * the snapshot names it (libdw opens libc's debug information when the
 * symbol cache is cold); then a 300 KiB block, which glibc 2.36 serves
 * with mmap at its default threshold (128 KiB), is checked through its
 * chunk header's IS_MMAPPED bit. Prints "mmapped 1" (bare: always) or
 * "mmapped 0". Nothing allocated is freed before the check. */
#include <stdlib.h>
#include <string.h>

#define MEMTRAIL_WEAK
#include <memtrail.h>

#include "progio.h"

static int is_mmapped(const void *p)
{
    return (((const size_t *)p)[-1] & 2) != 0;   /* glibc's chunk header: IS_MMAPPED */
}

int main(void)
{
    char *keep = strdup("in libc");   /* SITE:strdup */
    MEMTRAIL_SNAPSHOT("named");
    void *big = malloc(300 * 1024);
    prog_put(1, is_mmapped(big) ? "mmapped 1\n" : "mmapped 0\n");
    free(big);
    free(keep);
    return 0;
}
