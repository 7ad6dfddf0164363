/* killed: takes an API snapshot then dies by SIGKILL (test_process.c).
 *
 * kept_before_kill: 3 x malloc(300), kept -> 900 / 3. Then
 * MEMTRAIL_SNAPSHOT("before-kill") (weak reference to memtrail_snapshot).
 * Traced (no argument): the call must return 0 (else exit 9), then
 * raise(SIGKILL): one api snapshot, label "before-kill", seq 1, 900 / 3 at
 * kept_before_kill, and no exit snapshot.
 * Bare (argv[1] == "bare"): libmemtrail is absent so the macro yields -ENOSYS:
 * exit 0 if it returned -38, else 9; never raises SIGKILL.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MEMTRAIL_WEAK
#include <memtrail.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))

static void *g_kept[3];

static NOINLINE void kept_before_kill(void)
{
    for (int i = 0; i < 3; i++)
        if ((g_kept[i] = malloc(300)) == NULL)
            prog_die("killed", "malloc failed");
}

int main(int argc, char **argv)
{
    int bare = argc > 1 && strcmp(argv[1], "bare") == 0;

    kept_before_kill();
    int rc = MEMTRAIL_SNAPSHOT("before-kill");
    if (bare)
        return rc == -38 ? 0 : 9;
    if (rc != 0)
        return 9;
    raise(SIGKILL);
    return 10;
}
