/* libeagain.so, preloaded beside the tracer (test_symbols): pthread_create
 * answers EAGAIN, the system short of tasks for a moment, to the first
 * $EAGAIN_TIMES calls that ask for a 512 KiB stack (the tracer's library
 * loader's, preload/writer/writer.c; the program and the tracer's writer
 * ask for none), writing "eagain: failed N" on stderr at each. Any other
 * call goes to the C library's. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "progio.h"

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static int failed;

int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static create_fn real;
    size_t stack = 0;
    const char *times = getenv("EAGAIN_TIMES");
    if (!real)
        real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (attr && pthread_attr_getstacksize(attr, &stack) == 0 && stack == 512u * 1024 && times &&
        failed < atoi(times)) {
        failed++;
        prog_put(2, "eagain: failed ");
        prog_put_u(2, (unsigned long)failed);
        prog_put(2, "\n");
        return EAGAIN;
    }
    return real ? real(th, attr, fn, arg) : ENOSYS;
}
