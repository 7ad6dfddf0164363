/* forklate_ctor: a library whose constructor allocates 100,000 times while
 * the dynamic loader runs it (dlopen), and keeps the thread count it saw:
 * enough for the writer to be due (its drains take more than 15% of the
 * thread's time, writer/writer.c), so that it starts at the first
 * allocation after the constructor.
 * Loaded by forklate.c in a fork child. */
#include <stdlib.h>

#include "progio.h"

long forklate_ctor_threads = -1;

__attribute__((constructor)) static void churn_in_ctor(void)
{
    for (int i = 0; i < 50000; i++) {
        void *volatile p = malloc(40);
        free(p);
    }
    forklate_ctor_threads = prog_threads("/proc/self/status");
}
