/* `memtrail leaks FILE`: loads a snapshot and prints its leak scan as
 * memcheck's loss records and LEAK SUMMARY (analyzer/leaks.c renders). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "outputs.h"
#include "leaks.h"
#include "snapshot.h"

#define CMD "leaks"
#define OPT_FAIL_ON_LEAK 0x2000

static const char usage_head[] =
    "Usage: memtrail leaks FILE [--kind LIST] [--top N] [--format FORMAT]\n"
    "                           [--color WHEN] [FILTERS] [--fail-on-leak]\n"
    "\n"
    "Shows the blocks the leak scan of snapshot FILE (*.mtsnap) found lost, as\n"
    "valgrind's memcheck classifies them, one loss record per allocating stack\n"
    "and kind, worst first, then the LEAK SUMMARY of every kind. The scan is made\n"
    "when the snapshot is taken: at exit by default (MEMTRAIL_LEAK_CHECK=all scans\n"
    "every snapshot). Kinds (docs/leaks.md):\n"
    "  definite   no pointer to the block was found\n"
    "  indirect   pointed to only from lost blocks\n"
    "  possible   reached only through pointers into its middle\n"
    "  reachable  a pointer to its start was found from a root\n"
    "  libc       reached only from the C library's own data (valgrind frees\n"
    "             these before its check)\n"
    "  unscanned  its memory could not be read\n"
    "\n"
    "Options:\n"
    "  -k, --kind LIST      loss records of these kinds: a comma-separated list of\n"
    "                       the kinds above, or all (default: definite,possible)\n"
    "  -n, --top N          show the N worst loss records (default 0 = all)\n"
    "  -f, --format FORMAT  text (default) or json (schema: docs/leaks.md)\n"
    MTA_COLOR_USAGE
    "      --fail-on-leak   exit with status 1 when a kind shown among definite,\n"
    "                       indirect and possible has a block\n"
    "  -h, --help           show this help\n"
    "\n";
static const char usage_tail[] =
    "\n"
    "Exit status: 0 on success, 1 when --fail-on-leak finds a leak (the output\n"
    "ends with a verdict line), 2 on bad usage, an unreadable or invalid snapshot,\n"
    "or a snapshot without a leak scan.\n";

static const char shortopts[] = ":k:n:f:h";
static const struct option longopts[] = {
    { "kind", required_argument, NULL, 'k' },
    { "top", required_argument, NULL, 'n' },
    { "format", required_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { "fail-on-leak", no_argument, NULL, OPT_FAIL_ON_LEAK },
    MTA_COLOR_LONGOPT,
    MTA_FILTER_LONGOPTS,
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'k', MTA_ARG_WORD_LIST, mta_leak_kind_word },
    { 'f', MTA_ARG_WORD, mta_text_json_word },
    MTA_COLOR_ARG,
    MTA_FILTER_ARGS,
    { 0, MTA_ARG_SNAPSHOT, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int leaks_main(int argc, char **argv)
{
    mta_filter_t filter = { 0 };
    mta_leaks_opts_t opts = { .kinds = MTA_LEAK_DEFAULT, .top = 0, .format = MTA_FORMAT_TEXT,
                              .filter = &filter };
    mta_snapshot_t *snap = NULL;
    char err[1024];
    int c, status = MTA_EXIT_USAGE;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (mta_leak_kinds_parse(optarg, &opts.kinds, err, sizeof(err)) < 0) {
                mta_cli_error(CMD, "unknown kind '%s' in --kind '%s' (definite, indirect, possible,"
                              " reachable, libc, unscanned, all; separated by commas)", err, optarg);
                goto out;
            }
            break;
        case 'n':
            if (mta_cli_top(CMD, optarg, &opts.top))
                goto out;
            break;
        case MTA_OPT_COLOR:
            if (mta_cli_color(CMD, optarg))
                goto out;
            break;
        case 'f':
            if (mta_cli_text_json(CMD, optarg, &opts.format))
                goto out;
            break;
        case OPT_FAIL_ON_LEAK:
            opts.fail_on_leak = true;
            break;
        case 'h':
            mta_cli_usage(&mta_cmd_leaks, stdout);
            status = MTA_EXIT_OK;
            goto out;
        default:
            if (mta_cli_filter_option(CMD, &filter, c, argv))
                goto out;
        }
    }
    if (mta_cli_one_operand(CMD, argc, argv, optind, "snapshot FILE",
                            "memtrail leaks FILE [OPTIONS]"))
        goto out;

    if (mta_cli_load(argv[optind], &snap))
        goto out;
    if (!snap->has_leaks) {
        mta_cli_error(CMD, "%s: no leak scan in this snapshot (taken at exit by default;"
                      " MEMTRAIL_LEAK_CHECK=all scans every snapshot)", argv[optind]);
        goto out;
    }
    status = mta_cli_status(CMD, mta_leaks(stdout, snap, &opts), "cannot write to standard output");
out:
    mta_snapshot_free(snap);
    mta_filter_free(&filter);
    return status;
}

const mta_command_t mta_cmd_leaks = {
    .name = CMD,
    .summary = "classify lost blocks as memcheck does (definite, indirect, possible, reachable)",
    .usage = usage_head,
    .usage_tail = usage_tail,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = leaks_main,
};
