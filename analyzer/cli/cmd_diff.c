/* `memtrail diff OLD NEW`: loads two snapshots and prints what changed per
 * group, with the CI gate (analyzer/diff.c does the work). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "outputs.h"
#include "diff.h"
#include "snapshot.h"

#define CMD "diff"

enum { OPT_GROWTH = 0x2000, OPT_SITE, OPT_BLOCKS, OPT_PEAK_GROWTH };

static const char usage_head[] =
    "Usage: memtrail diff OLD NEW [--group-by KEY] [--top N] [--metric METRIC]\n"
    "                             [--format FORMAT] [--color WHEN] [FILTERS]\n"
    "                             [--fail-on-growth SIZE] [--fail-on-growth-per-site SIZE]\n"
    "                             [--fail-on-blocks N] [--fail-on-peak-growth SIZE]\n"
    "\n"
    "Shows what changed in live memory between snapshots OLD and NEW, per group\n"
    "(tracemalloc's Snapshot.compare_to): each group's bytes and blocks in NEW and\n"
    "their change; groups only in OLD appear with negative changes. Sorted by the\n"
    "size of the change. The snapshots may come from different runs: groups are\n"
    "matched by function, file, line and module name, never by address.\n"
    "\n"
    "Options:\n"
    "  -g, --group-by KEY   stack (default), function, line, file or module\n"
    "  -n, --top N          show the N largest changes (default 20; 0 = all)\n"
    "  -m, --metric METRIC  the figures compared: live (default); peak: memory\n"
    "                       allocated at each process's peak; allocated: all\n"
    "                       memory allocated since tracing began\n"
    "  -f, --format FORMAT  text (default); json; markdown (a CI job summary:\n"
    "                       verdict, then a table of the top changes);\n"
    "                       collapsed (\"root;...;leaf OLD NEW\" per stack, bytes\n"
    "                       in each snapshot: flamegraph.pl's input for\n"
    "                       differential flame graphs)\n"
    MTA_COLOR_USAGE
    "      --fail-on-growth SIZE  fail when the bytes (of the metric) grew by\n"
    "                       more than SIZE\n"
    "      --fail-on-growth-per-site SIZE\n"
    "                       fail when one group grew by more than SIZE\n"
    "      --fail-on-blocks N     fail when the blocks (of the metric) grew by\n"
    "                       more than N\n"
    "      --fail-on-peak-growth SIZE\n"
    "                       fail when the process-wide peak (of the blocks\n"
    "                       selected by the filters) grew by more than SIZE\n"
    "                       SIZE: bytes, or with a unit (10MB = 10,000,000 B;\n"
    "                       512KiB = 524,288 B)\n"
    "  -h, --help           show this help\n"
    "\n";
static const char usage_tail[] =
    "\n"
    "Exit status: 0, or 1 when a --fail-on-* limit is passed (a verdict line says\n"
    "which: at the end of text, at the top of markdown, in JSON's \"verdict\", on\n"
    "stderr for collapsed); 2 on bad usage or an unreadable or invalid snapshot.\n";

/* The words of --format, in the order of mta_format_t. */
static const char *format_word(unsigned i)
{
    static const char *const names[] = {
        [MTA_FORMAT_TEXT] = "text",
        [MTA_FORMAT_JSON] = "json",
        [MTA_FORMAT_MARKDOWN] = "markdown",
        [MTA_FORMAT_COLLAPSED] = "collapsed",
    };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

static const char shortopts[] = ":n:g:m:f:h";
static const struct option longopts[] = {
    { "top", required_argument, NULL, 'n' },
    { "group-by", required_argument, NULL, 'g' },
    { "format", required_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { "fail-on-growth", required_argument, NULL, OPT_GROWTH },
    { "fail-on-growth-per-site", required_argument, NULL, OPT_SITE },
    { "fail-on-blocks", required_argument, NULL, OPT_BLOCKS },
    { "fail-on-peak-growth", required_argument, NULL, OPT_PEAK_GROWTH },
    { "metric", required_argument, NULL, 'm' },
    MTA_COLOR_LONGOPT,
    MTA_FILTER_LONGOPTS,
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'g', MTA_ARG_WORD, mta_group_by_word },
    { 'm', MTA_ARG_WORD, mta_metric_word },
    { 'f', MTA_ARG_WORD, format_word },
    MTA_COLOR_ARG,
    MTA_FILTER_ARGS,
    { 0, MTA_ARG_SNAPSHOT, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int diff_main(int argc, char **argv)
{
    mta_filter_t filter = { 0 };
    mta_diff_opts_t opts = { .group_by = MTA_GROUP_STACK, .top = 20, .format = MTA_FORMAT_TEXT,
                             .filter = &filter };
    mta_snapshot_t *old = NULL, *new = NULL;
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
        case 'f': {
            int i = mta_cli_choice(CMD, "format", format_word, optarg);
            if (i < 0)
                goto out;
            opts.format = (mta_format_t)i;
            break;
        }
        case 'm':
            if (mta_cli_metric(CMD, optarg, &opts.metric))
                goto out;
            break;
        case OPT_GROWTH:
        case OPT_SITE:
            if (mta_cli_size(CMD, c == OPT_GROWTH ? "fail-on-growth" : "fail-on-growth-per-site",
                             optarg, c == OPT_GROWTH ? &opts.growth : &opts.site_growth))
                goto out;
            *(c == OPT_GROWTH ? &opts.growth_set : &opts.site_set) = true;
            break;
        case OPT_PEAK_GROWTH:
            if (mta_cli_size(CMD, "fail-on-peak-growth", optarg, &opts.peak_growth))
                goto out;
            opts.peak_growth_set = true;
            break;
        case MTA_OPT_COLOR:
            if (mta_cli_color(CMD, optarg))
                goto out;
            break;
        case OPT_BLOCKS:
            if (mta_parse_uint(optarg, 0, UINT64_MAX, &opts.block_growth) < 0) {
                mta_cli_error(CMD, "invalid --fail-on-blocks '%s' (a number of blocks)", optarg);
                goto out;
            }
            opts.blocks_set = true;
            break;
        case 'h':
            mta_cli_usage(&mta_cmd_diff, stdout);
            status = MTA_EXIT_OK;
            goto out;
        default:
            if (mta_cli_filter_option(CMD, &filter, c, argv))
                goto out;
        }
    }
    if (argc - optind != 2) {
        if (argc - optind < 2)
            mta_cli_error(CMD, "missing snapshot %s (usage: memtrail diff OLD NEW [OPTIONS])",
                          argc == optind ? "files OLD and NEW" : "file NEW");
        else
            mta_cli_error(CMD, "too many arguments: '%s' (two snapshot files, OLD and NEW)",
                          argv[optind + 2]);
        goto out;
    }
    if (mta_cli_metric_filter(CMD, &filter, opts.metric, opts.peak_growth_set ? "--fail-on-peak-growth" : NULL))
        goto out;
    if (mta_cli_load(argv[optind], &old) || mta_cli_load(argv[optind + 1], &new))
        goto out;
    /* Format versions differ only in how the same figures are encoded: a
     * version 1 baseline compares with a version 2 snapshot. */
    status = mta_cli_status(CMD, mta_diff(stdout, old, new, &opts),
                            "cannot write to standard output");
out:
    mta_snapshot_free(old);
    mta_snapshot_free(new);
    mta_filter_free(&filter);
    return status;
}

const mta_command_t mta_cmd_diff = {
    .name = CMD,
    .summary = "compare two snapshots; fail a CI job when memory grows",
    .usage = usage_head,
    .usage_tail = usage_tail,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = diff_main,
};
