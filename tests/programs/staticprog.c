/* A statically linked program (built with -static when the C library's
 * static archive is installed): `memtrail run` cannot preload the tracer
 * into it, says so, and runs it unchanged. Prints its arguments, exits 7. */
#include <stdio.h>

int main(int argc, char **argv)
{
    printf("staticprog");
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    return 7;
}
