/* Test library for test_gotpatch: calls dlopen from its own code, so that
 * its DT_RUNPATH (or DT_RPATH) and $ORIGIN are the ones that apply. Built
 * with -fno-optimize-sibling-calls: the call must not become a tail call. */
#include <dlfcn.h>

void *gc_open(const char *file, int mode);

void *gc_open(const char *file, int mode)
{
    return dlopen(file, mode);
}
