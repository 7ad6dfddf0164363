/* pristine: pointers to blocks in pages of the program's .data and .bss
 * next to pages the program never writes; tests/integration/test_leaks.c
 * compares `memtrail leaks` and valgrind.
 *
 * The leak scan reads only the pages of a module's writable segments that
 * were written (preload/leak/imageroots.c): an initialized 128 KiB array
 * in .data whose other pages stay the file's, and an 8 MiB array in .bss
 * that is never touched but for one page, each hold the only pointer to a
 * block in one page of their middle.
 *
 * Expected leak classification at exit, by allocating function (innermost
 * user frame), as memcheck --leak-check=full reports it:
 *   keep_in_data     reachable 112 / 1    the pointer in g_data's page 16
 *   keep_in_bss      reachable 208 / 1    the pointer in g_bss's page 1024
 *   lose_one         definite   48 / 1    the pointer dropped
 * Totals: definite 48 / 1, reachable 320 / 2 (no stdio).
 * The exit snapshot's scan reads less than 4 MiB of roots (its LEAKS
 * header's root_bytes): not the untouched .bss. Before returning, main
 * scrubs 64 KiB of dead stack and calls a few functions (as leakkinds.c
 * does). Prints nothing; exit status 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "progio.h"

#define NOINLINE __attribute__((noinline))
#define PAGE_WORDS (4096 / sizeof(void *))

/* Initialized: all of it in .data, in the file. */
static void *g_data[32 * PAGE_WORDS] = {(void *)1};
/* Zero: .bss, mapped but never touched but where written below. */
static void *g_bss[2048 * PAGE_WORDS];

static void *checked(void *p)
{
    if (p == NULL)
        prog_die("pristine", "malloc failed");
    return p;
}

static NOINLINE void keep_in_data(void)
{
    void *p = checked(malloc(112)); /* SITE:keep_in_data */
    memset(p, 0, 112);
    g_data[16 * PAGE_WORDS + 5] = p;
}

static NOINLINE void keep_in_bss(void)
{
    void *p = checked(malloc(208)); /* SITE:keep_in_bss */
    memset(p, 0, 208);
    g_bss[1024 * PAGE_WORDS + 7] = p;
}

static NOINLINE void lose_one(void)
{
    char *volatile p = checked(malloc(48)); /* SITE:lose_one */
    memset(p, 1, 48);
}

int main(void)
{
    keep_in_data();
    keep_in_bss();
    lose_one();
    prog_scrub_stack();
    prog_clobber_registers("pristine");
    return (uintptr_t)g_data[0] == 1 ? 0 : 1;
}
