/* lateflush: writes "ready <pid>\n" (write(2)), waits for a line on stdin,
 * then puts 1 MiB into a fully buffered stdout and returns 0. The C library
 * writes those bytes after the destructors have run (memtrail's exit
 * snapshot among them), so when the reader is slow the process goes on
 * for a while after its exit snapshot (tests/integration/test_faults.c:
 * no snapshot follows the exit snapshot). EOF on stdin: exit status 4. */
#include <stdio.h>
#include <unistd.h>

#include "progio.h"

static char g_buf[1 << 20];

int main(void)
{
    char line[64];
    prog_put(1, "ready ");
    prog_put_u(1, (unsigned long)getpid());
    prog_put(1, "\n");
    if (prog_read_line(line, sizeof(line)) < 0)
        return 4;
    if (setvbuf(stdout, g_buf, _IOFBF, sizeof(g_buf)) != 0)
        prog_die("lateflush", "setvbuf failed");
    for (size_t i = 0; i + 64 <= sizeof(g_buf); i += 64)
        fputs("...............................................................\n", stdout);
    return 0;
}
