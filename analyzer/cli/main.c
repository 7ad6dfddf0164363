/* The `memtrail` program: dispatches to the commands (run, snapshot, report,
 * diff, export, html, leaks, cycles) and prints the top-level help and version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef MEMTRAIL_VERSION
#define MEMTRAIL_VERSION "unknown"
#endif

static const mta_command_t *const commands[] = { &mta_cmd_run, &mta_cmd_snapshot, &mta_cmd_report,
                                                 &mta_cmd_diff, &mta_cmd_export, &mta_cmd_html,
                                                 &mta_cmd_leaks, &mta_cmd_cycles };
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const mta_command_t *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

static void print_help(FILE *out)
{
    fputs("Usage: memtrail COMMAND [OPTIONS] [ARGS]\n"
          "       memtrail help COMMAND | --help | --version\n"
          "\n"
          "memtrail traces the memory allocations of a program and reports the\n"
          "memory still in use, by the call stack that allocated it.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\nRun 'memtrail help COMMAND' for a command's options.\n", out);
}

static const char command_list[] = "run, snapshot, report, diff, export, html, leaks, cycles";

int main(int argc, char **argv)
{
    if (argc < 2) {
        mta_cli_error(NULL, "missing command (%s; see memtrail --help)", command_list);
        return MTA_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        print_help(stdout);
        return MTA_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("memtrail %s\n", MEMTRAIL_VERSION);
        return MTA_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc == 2) {
            print_help(stdout);
            return MTA_EXIT_OK;
        }
        const mta_command_t *c = find_command(argv[2]);
        if (argc > 3) {
            mta_cli_error("help", "too many arguments (usage: memtrail help COMMAND)");
            return MTA_EXIT_USAGE;
        }
        if (!c) {
            mta_cli_error("help", "unknown command '%s' (%s)", argv[2], command_list);
            return MTA_EXIT_USAGE;
        }
        mta_cli_usage(c, stdout);
        return MTA_EXIT_OK;
    }
    const mta_command_t *c = find_command(cmd);
    if (!c) {
        if (cmd[0] == '-')
            mta_cli_error(NULL, "unknown option '%s' (see memtrail --help)", cmd);
        else
            mta_cli_error(NULL, "unknown command '%s' (%s; see memtrail --help)", cmd,
                          command_list);
        return MTA_EXIT_USAGE;
    }
    mta_cli_color(NULL, "auto");   /* --color changes it */
    return c->main(argc - 1, argv + 1);
}
