/* forklate_ctor: a library whose constructor allocates 10,000 times while
 * the dynamic loader runs it (dlopen), and keeps the thread count it saw.
 * Loaded by forklate.c in a fork child. */
#include <stdlib.h>

#include "progio.h"

long forklate_ctor_threads = -1;

__attribute__((constructor)) static void churn_in_ctor(void)
{
    for (int i = 0; i < 5000; i++) {
        void *volatile p = malloc(40);
        free(p);
    }
    forklate_ctor_threads = prog_threads("/proc/self/status");
}
