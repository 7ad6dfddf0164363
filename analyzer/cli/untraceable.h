/* Why `memtrail run` cannot trace a program (untraceable.c). */
#ifndef MTA_UNTRACEABLE_H
#define MTA_UNTRACEABLE_H

#include <stddef.h>

/* Looks at the file execvp(cmd) would run (through "#!" interpreters) and
 * at the library `lib` to be preloaded: when the dynamic loader will not
 * load `lib` into it, writes the reason into why ("/bin/x is statically
 * linked") and returns why; NULL when nothing stops the tracer or the file
 * cannot be read (exec then reports the error). */
const char *mta_untraceable(const char *cmd, const char *lib, char *why, size_t len);

#endif /* MTA_UNTRACEABLE_H */
