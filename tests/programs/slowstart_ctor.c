/* The library slowstart needs: its constructor runs before libmemtrail.so's
 * (the loader initializes a program's needed libraries before the
 * preloaded ones), so for the second it sleeps here the process maps
 * libmemtrail.so but has not installed memtrail's snapshot signal handler
 * yet: a snapshot signal then would take its default action and kill the
 * process. Prints "ctor" (write(2)) first. */
#include <errno.h>
#include <time.h>

#include "progio.h"

int slowstart_started(void);

static int started;

__attribute__((constructor)) static void slow_start(void)
{
    prog_put(1, "ctor\n");
    struct timespec ts = {1, 0};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    started = 1;
}

int slowstart_started(void)
{
    return started;
}
