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
#define OPT_FAIL_ABOVE 0x2000

static const char usage_head[] =
    "Usage: memtrail report FILE [--top N] [--group-by KEY] [--format FORMAT]\n"
    "                            [FILTERS] [--fail-above SIZE]\n"
    "\n"
    "Shows the memory still allocated when snapshot FILE (*.mtsnap) was taken,\n"
    "by the call site that allocated it, with the process totals and the peak.\n"
    "\n"
    "Options:\n"
    "  -n, --top N          show the N largest entries (default 20; 0 = all)\n"
    "  -g, --group-by KEY   stack (default): one entry per call stack;\n"
    "                       function, line, file, module: by the key frame, the\n"
    "                       innermost frame that is not an allocator\n"
    "  -f, --format FORMAT  text (default) or json (schema: docs/report-json.md)\n"
    "      --fail-above SIZE  exit with status 1 when the live memory (selected\n"
    "                       by the filters) is above SIZE: bytes, or with a unit\n"
    "                       (10MB = 10,000,000 B; 512KiB = 524,288 B)\n"
    "  -h, --help           show this help\n"
    "\n";
static const char usage_tail[] =
    "\n"
    "Entries are sorted by live bytes. Exit status: 0 on success, 1 when\n"
    "--fail-above is passed (the report ends with a verdict line), 2 on bad\n"
    "usage or an unreadable or invalid snapshot.\n";

static int report_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "top", required_argument, NULL, 'n' },
        { "group-by", required_argument, NULL, 'g' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { "fail-above", required_argument, NULL, OPT_FAIL_ABOVE },
        MTA_FILTER_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    mta_filter_t filter = { 0 };
    mta_report_opts_t opts = { .group_by = MTA_GROUP_STACK, .top = 20, .format = MTA_FORMAT_TEXT,
                               .filter = &filter };
    int c, status = MTA_EXIT_USAGE;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:g:f:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (mta_cli_top(CMD, optarg, &opts.top))
                goto out;
            break;
        case 'g':
            if (mta_cli_group_by(CMD, optarg, &opts.group_by))
                goto out;
            break;
        case 'f':
            if (mta_cli_text_json(CMD, optarg, &opts.format))
                goto out;
            break;
        case OPT_FAIL_ABOVE:
            if (mta_parse_size(optarg, &opts.fail_above) < 0) {
                mta_cli_error(CMD, "invalid --fail-above '%s' (a size such as 1048576, 10MB or 512KiB)",
                              optarg);
                goto out;
            }
            opts.fail_above_set = true;
            break;
        case 'h':
            mta_cli_usage(&mta_cmd_report, stdout);
            status = MTA_EXIT_OK;
            goto out;
        default:
            if (mta_cli_filter_option(CMD, &filter, c, argv))
                goto out;
        }
    }
    if (mta_cli_one_operand(CMD, argc, argv, optind, "snapshot FILE",
                            "memtrail report FILE [OPTIONS]"))
        goto out;

    mta_snapshot_t *snap = NULL;
    if (mta_cli_load(argv[optind], &snap))
        goto out;
    status = mta_cli_status(CMD, mta_report(stdout, snap, &opts),
                            "cannot write the report to standard output");
    mta_snapshot_free(snap);
out:
    mta_filter_free(&filter);
    return status;
}

const mta_command_t mta_cmd_report = {
    .name = CMD,
    .summary = "show a snapshot's live memory by call site",
    .usage = usage_head,
    .usage_tail = usage_tail,
    .main = report_main,
};
