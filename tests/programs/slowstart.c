/* slowstart: a program whose needed library (slowstart_ctor.c) takes a
 * second in its constructor, before memtrail's runs. `memtrail snapshot`
 * sent meanwhile must wait for memtrail's handler instead of killing it
 * (traced_snapshot_run). Prints "ctor", then "main", waits for a line on
 * stdin and exits 0. */
#include "progio.h"

int slowstart_started(void);

int main(void)
{
    char line[16];
    prog_put(1, slowstart_started() ? "main\n" : "main before its library\n");
    prog_read_line(line, sizeof(line));
    return 0;
}
