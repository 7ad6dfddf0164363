/* A statically linked program (built with -static when the C library's
 * static archive is installed): `memtrail run` cannot preload the tracer
 * into it, says so, and runs it unchanged. Prints its arguments, exits 7.
 * With the first argument "wait", first says "waiting" and reads its input
 * to the end (`memtrail attach` refuses it meanwhile: test_attach). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        printf("waiting\n");
        fflush(stdout);
        while (getchar() != EOF)
            ;
    }
    printf("staticprog");
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    return 7;
}
