/* Symbol demangling for display (C++ and Rust via libiberty) and path
 * helpers shared by the report renderers. */
#include "demangle.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <libiberty/demangle.h>

bool mta_is_mangled(const char *name)
{
    if (name[0] == '_' && name[1] == '_' && (name[2] == 'Z' || name[2] == 'R'))
        return true; /* extra underscore some platforms add */
    return name[0] == '_' && (name[1] == 'Z' || name[1] == 'R');
}

/* Removes a trailing Rust legacy hash "::h" + 16 hex digits, in place, in
 * case the demangler kept it. */
static void strip_rust_hash(char *s)
{
    size_t n = strlen(s);
    if (n < 19)
        return;
    char *h = s + n - 19;
    if (h[0] != ':' || h[1] != ':' || h[2] != 'h')
        return;
    for (int i = 3; i < 19; i++)
        if (!isxdigit((unsigned char)h[i]))
            return;
    *h = '\0';
}

char *mta_demangle(const char *sym)
{
    if (!mta_is_mangled(sym))
        return strdup(sym);
    const char *m = sym[1] == '_' ? sym + 1 : sym;
    /* DMGL_AUTO tries Rust (legacy and v0) first, then the Itanium C++ ABI. */
    char *d = cplus_demangle(m, DMGL_PARAMS | DMGL_ANSI | DMGL_AUTO);
    if (!d)
        return strdup(sym);
    strip_rust_hash(d);
    return d;
}

const char *mta_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}
