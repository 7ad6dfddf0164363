/* reload PLUGIN_A PLUGIN_B: a module unloaded and another loaded where it was,
 * between two snapshots.
 *
 *   dlopen A, plugin_site_a() keeps 1111 B, snapshot "a",
 *   free it, dlclose A, dlopen B, plugin_site_b() keeps 2222 B, snapshot "b".
 *
 * Prints "same" or "moved": whether B was mapped at A's address (then the
 * return address in plugin_site_b equals the one in plugin_site_a, and only
 * a symbolizer that forgot A's answers names it right). Exit status 0. */
#include <dlfcn.h>
#include <stdlib.h>

#define MEMTRAIL_WEAK
#include "memtrail.h"
#include "progio.h"

static void *load(const char *path, const char *sym, void **fn)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        prog_die("reload", dlerror());
    *fn = dlsym(h, sym);
    if (*fn == NULL)
        prog_die("reload", dlerror());
    return h;
}

int main(int argc, char **argv)
{
    void *fa, *fb;
    if (argc != 3)
        prog_die("reload", "usage: reload PLUGIN_A PLUGIN_B");
    void *ha = load(argv[1], "plugin_site_a", &fa);
    void *a = ((void *(*)(void))fa)();
    if (MEMTRAIL_SNAPSHOT("a") != 0)
        prog_die("reload", "snapshot a failed");
    free(a);
    dlclose(ha);
    void *hb = load(argv[2], "plugin_site_b", &fb);
    void *b = ((void *(*)(void))fb)();
    if (MEMTRAIL_SNAPSHOT("b") != 0)
        prog_die("reload", "snapshot b failed");
    prog_put(1, fa == fb ? "same\n" : "moved\n");
    free(b);
    dlclose(hb);
    return 0;
}
