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
enum { OPT_FAIL_ABOVE = 0x2000, OPT_METRIC, OPT_FAIL_ON_PEAK };

static const char usage_head[] =
    "Usage: memtrail report FILE [--top N] [--group-by KEY] [--metric METRIC]\n"
    "                            [--format FORMAT] [--color WHEN] [FILTERS]\n"
    "                            [--fail-above SIZE] [--fail-on-peak SIZE]\n"
    "\n"
    "Shows the memory still allocated when snapshot FILE (*.mtsnap) was taken,\n"
    "by the call site that allocated it, with the process totals and the peak:\n"
    "when it happened and the site that held the most of it.\n"
    "\n"
    "Options:\n"
    "  -n, --top N          show the N largest entries (default 20; 0 = all)\n"
    "  -g, --group-by KEY   stack (default): one entry per call stack;\n"
    "                       function, line, file, module: by the key frame, the\n"
    "                       innermost frame that is not an allocator\n"
    "  -m, --metric METRIC  the figure that ranks the entries and is shown first:\n"
    "                       live (default): memory still allocated; peak: memory\n"
    "                       allocated at the process-wide peak, even when freed\n"
    "                       since; allocated: all memory allocated since tracing\n"
    "                       began\n"
    "  -f, --format FORMAT  text (default) or json (schema: docs/report-json.md)\n"
    MTA_COLOR_USAGE
    "      --fail-above SIZE  exit with status 1 when the live memory (selected\n"
    "                       by the filters) is above SIZE\n"
    "      --fail-on-peak SIZE  exit with status 1 when the memory at the peak\n"
    "                       (selected by the filters) is above SIZE\n"
    "                       SIZE: bytes, or with a unit (10MB = 10,000,000 B;\n"
    "                       512KiB = 524,288 B)\n"
    "  -h, --help           show this help\n"
    "\n";
static const char usage_tail[] =
    "\n"
    "Sizes show the exact bytes, then from 1 KiB up the size in IEC units with\n"
    "one decimal: 1,723,133 B (1.6 MiB).\n"
    "Exit status: 0 on success, 1 when --fail-above or --fail-on-peak is passed\n"
    "(the report ends with a verdict line), 2 on bad usage or an unreadable or\n"
    "invalid snapshot.\n";

static const char shortopts[] = ":n:g:m:f:h";
static const struct option longopts[] = {
    { "top", required_argument, NULL, 'n' },
    { "group-by", required_argument, NULL, 'g' },
    { "format", required_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { "fail-above", required_argument, NULL, OPT_FAIL_ABOVE },
    { "fail-on-peak", required_argument, NULL, OPT_FAIL_ON_PEAK },
    { "metric", required_argument, NULL, 'm' },
    MTA_COLOR_LONGOPT,
    MTA_FILTER_LONGOPTS,
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'g', MTA_ARG_WORD, mta_group_by_word },
    { 'm', MTA_ARG_WORD, mta_metric_word },
    { 'f', MTA_ARG_WORD, mta_text_json_word },
    MTA_COLOR_ARG,
    MTA_FILTER_ARGS,
    { 0, MTA_ARG_SNAPSHOT, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int report_main(int argc, char **argv)
{
    mta_filter_t filter = { 0 };
    mta_report_opts_t opts = { .group_by = MTA_GROUP_STACK, .top = 20, .format = MTA_FORMAT_TEXT,
                               .filter = &filter };
    int c, status = MTA_EXIT_USAGE;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
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
        case 'm':
            if (mta_cli_metric(CMD, optarg, &opts.metric))
                goto out;
            break;
        case OPT_FAIL_ABOVE:
            if (mta_cli_size(CMD, "fail-above", optarg, &opts.fail_above))
                goto out;
            opts.fail_above_set = true;
            break;
        case OPT_FAIL_ON_PEAK:
            if (mta_cli_size(CMD, "fail-on-peak", optarg, &opts.fail_on_peak))
                goto out;
            opts.fail_on_peak_set = true;
            break;
        case MTA_OPT_COLOR:
            if (mta_cli_color(CMD, optarg))
                goto out;
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
    if (mta_cli_metric_filter(CMD, &filter, opts.metric, opts.fail_on_peak_set ? "--fail-on-peak" : NULL))
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
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = report_main,
};
