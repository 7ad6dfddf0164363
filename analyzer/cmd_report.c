/* `memtrail report FILE`: loads a snapshot and prints its live memory by
 * call site (analyzer/report.c does the rendering). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "snapshot.h"

#define CMD "report"

static const char usage[] =
    "Usage: memtrail report FILE [--top N] [--group-by KEY] [--format FORMAT]\n"
    "\n"
    "Shows the memory still allocated when snapshot FILE (*.mtsnap) was taken,\n"
    "by the call site that allocated it, with the process totals and the peak.\n"
    "\n"
    "Options:\n"
    "  -n, --top N          show the N largest entries (default 20; 0 = all)\n"
    "  -g, --group-by KEY   stack (default): one entry per call stack;\n"
    "                       function, line, file, module: by the innermost\n"
    "                       frame that is not an allocator (operator new, ...)\n"
    "  -f, --format FORMAT  text (default) or json (schema: docs/report-json.md)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Entries are sorted by live bytes. Exit status: 0 on success, 2 on bad\n"
    "usage or an unreadable or invalid snapshot.\n";

static int report_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "top", required_argument, NULL, 'n' },
        { "group-by", required_argument, NULL, 'g' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    mta_report_opts_t opts = { .group_by = MTA_GROUP_STACK, .top = 20, .format = MTA_FORMAT_TEXT };
    uint64_t v;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:g:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (mta_parse_uint(optarg, 0, SIZE_MAX, &v) < 0) {
                mta_cli_error(CMD, "invalid --top '%s' (a number, 0 = all)", optarg);
                return MTA_EXIT_USAGE;
            }
            opts.top = (size_t)v;
            break;
        case 'g':
            if (mta_group_by_parse(optarg, &opts.group_by) < 0) {
                mta_cli_error(CMD, "unknown --group-by '%s' (stack, function, line, file, module)",
                              optarg);
                return MTA_EXIT_USAGE;
            }
            break;
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                opts.format = MTA_FORMAT_TEXT;
            } else if (strcmp(optarg, "json") == 0) {
                opts.format = MTA_FORMAT_JSON;
            } else {
                mta_cli_error(CMD, "unknown --format '%s' (text, json)", optarg);
                return MTA_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return MTA_EXIT_OK;
        default:
            return mta_cli_bad_option(CMD, c, argv);
        }
    }
    if (mta_cli_one_operand(CMD, argc, argv, optind, "snapshot FILE",
                            "memtrail report FILE [OPTIONS]"))
        return MTA_EXIT_USAGE;

    char err[1024];
    mta_snapshot_t *snap = NULL;
    if (mta_snapshot_load(argv[optind], &snap, err, sizeof(err)) < 0) {
        mta_cli_error(NULL, "%s", err);
        return MTA_EXIT_USAGE;
    }
    int rc = mta_report(stdout, snap, &opts);
    mta_snapshot_free(snap);
    if (rc < 0) {
        mta_cli_error(CMD, "%s", rc == -EIO ? "cannot write the report to standard output"
                                            : strerror(-rc));
        return MTA_EXIT_FAIL;
    }
    return MTA_EXIT_OK;
}

const mta_command_t mta_cmd_report = {
    .name = CMD,
    .summary = "show a snapshot's live memory by call site",
    .usage = usage,
    .main = report_main,
};
