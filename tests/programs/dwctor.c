/* dwctor: a library whose constructor, run by dwlazy's dlopen (the loader's
 * lock held), keeps a block, asks for a snapshot ("ctor"), then makes
 * 100,000 more allocations (three rings' worth). Against an empty symbol
 * cache the writer needs libdw for that snapshot, and the thread that would
 * load it waits for the lock this constructor's thread holds: the writer
 * gives up on names after 5 s (one warning) rather than wait for a lock
 * whose holder waits for it, keeps the rings drained meanwhile, and names
 * the frames in the exit snapshot (test_symbols). */
#include <stdlib.h>

#define MEMTRAIL_WEAK
#include "memtrail.h"
#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define CHURN 100000

static void *kept;

NOINLINE static void ctor_site(void)
{
    kept = malloc(300);
}

NOINLINE static void churn_site(void)
{
    for (int i = 0; i < CHURN; i++)
        free(malloc(16));
}

__attribute__((constructor)) static void dwctor_init(void)
{
    ctor_site();
    if (MEMTRAIL_SNAPSHOT("ctor") != 0 && memtrail_snapshot)
        prog_die("dwctor", "snapshot ctor failed");
    churn_site();
}
