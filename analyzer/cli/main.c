/* The `memtrail` program: dispatches to the commands of mta_commands (cli.c:
 * run, snapshot, report, diff, export, html, leaks, cycles) and prints the
 * top-level help and version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef MEMTRAIL_VERSION
#define MEMTRAIL_VERSION "unknown"
#endif

int main(int argc, char **argv)
{
    char commands[256];
    mta_cli_command_list(commands, sizeof(commands));
    if (argc < 2) {
        mta_cli_error(NULL, "missing command (%s; see memtrail --help)", commands);
        return MTA_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        mta_cli_help(stdout);
        return MTA_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("memtrail %s\n", MEMTRAIL_VERSION);
        return MTA_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc == 2) {
            mta_cli_help(stdout);
            return MTA_EXIT_OK;
        }
        const mta_command_t *c = mta_cli_find(argv[2]);
        if (argc > 3) {
            mta_cli_error("help", "too many arguments (usage: memtrail help COMMAND)");
            return MTA_EXIT_USAGE;
        }
        if (!c) {
            mta_cli_error("help", "unknown command '%s' (%s)", argv[2], commands);
            return MTA_EXIT_USAGE;
        }
        mta_cli_usage(c, stdout);
        return MTA_EXIT_OK;
    }
    const mta_command_t *c = mta_cli_find(cmd);
    if (!c) {
        if (cmd[0] == '-')
            mta_cli_error(NULL, "unknown option '%s' (see memtrail --help)", cmd);
        else
            mta_cli_error(NULL, "unknown command '%s' (%s; see memtrail --help)", cmd, commands);
        return MTA_EXIT_USAGE;
    }
    mta_cli_color(NULL, "auto");   /* --color changes it */
    return c->main(argc - 1, argv + 1);
}
