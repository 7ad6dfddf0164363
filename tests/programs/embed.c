/* Embeds CPython the way plugins and applications do: dlopen libpython
 * (argv[1]), initialize, run argv[2] as a script, finalize. With
 * EMBED_LOCAL=1 in the environment libpython goes into a local scope
 * (RTLD_LOCAL, as a plugin's own copy): its symbols are not global. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: embed LIBPYTHON SCRIPT\n");
        return 2;
    }
    const char *local = getenv("EMBED_LOCAL");
    void *h = dlopen(argv[1], RTLD_NOW | (local && !strcmp(local, "1") ? RTLD_LOCAL : RTLD_GLOBAL));
    if (!h) {
        fprintf(stderr, "embed: %s\n", dlerror());
        return 3;
    }
    void (*init)(int) = (void (*)(int))dlsym(h, "Py_InitializeEx");
    int (*run)(const char *) = (int (*)(const char *))dlsym(h, "PyRun_SimpleString");
    int (*fini)(void) = (int (*)(void))dlsym(h, "Py_FinalizeEx");
    if (!init || !run || !fini) {
        fprintf(stderr, "embed: %s is not libpython\n", argv[1]);
        return 3;
    }
    init(0);
    int r = run(argv[2]);
    if (fini() < 0)
        return 120;
    printf("embed: script %s\n", r == 0 ? "ok" : "failed");
    return r == 0 ? 0 : 1;
}
