/* quick_exit: leaves through _exit(3), which skips atexit handlers; the tracer
 * still writes its exit snapshot (test_process.c).
 *
 * before_underscore_exit: 2 x malloc(500), pointers dropped -> 1000 / 2.
 * Exit status 3; exactly one snapshot, trigger exit, seq 1.
 */
#include <stdlib.h>
#include <unistd.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static NOINLINE void before_underscore_exit(void)
{
    for (int i = 0; i < 2; i++) {
        char *volatile p = malloc(500);
        if (p == NULL)
            prog_die("quick_exit", "malloc failed");
        p[0] = 1;
    }
}

int main(void)
{
    before_underscore_exit();
    _exit(3);
}
