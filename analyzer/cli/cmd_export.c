/* `memtrail export FILE --format pprof|collapsed|speedscope [-o OUT]`: a
 * snapshot for the viewers people already use (analyzer/export.c, pprof.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "export.h"
#include "outfile.h"
#include "snapshot.h"

#define CMD "export"

static const char usage_head[] =
    "Usage: memtrail export FILE --format FORMAT [-o OUT] [FILTERS]\n"
    "\n"
    "Writes snapshot FILE's live memory in a format other viewers read:\n"
    "  pprof       gzip'd profile.proto (go tool pprof, pprof's web UI): one sample\n"
    "              per call stack with alloc_objects, alloc_space, inuse_objects and\n"
    "              inuse_space (the default); mappings with build ids\n"
    "  collapsed   'root;...;leaf BYTES', one line per stack, as flamegraph.pl and\n"
    "              inferno read it\n"
    "  speedscope  speedscope's JSON file format, one profile weighted in bytes\n"
    "\n"
    "Options:\n"
    "  -f, --format FORMAT  pprof, collapsed or speedscope (required)\n"
    "  -o, --output OUT     write to OUT instead of standard output: a new file,\n"
    "                       mode 0600, replacing OUT only once complete (a\n"
    "                       symlink at OUT is replaced, not followed)\n"
    "  -h, --help           show this help\n"
    "\n";
static const char usage_tail[] =
    "\n"
    "Exit status: 0 on success, 2 on bad usage, an unreadable or invalid snapshot,\n"
    "or when OUT cannot be written.\n";

/* Writes OUT through a temporary beside it (outfile.c). */
static int export_to_file(const char *path, const mta_snapshot_t *snap, mta_export_format_t fmt,
                          const mta_filter_t *filter)
{
    mta_outfile_t o;
    int rc = mta_outfile_open(&o, CMD, path);
    if (rc < 0)
        return rc;
    return mta_outfile_close(&o, mta_export(o.f, snap, fmt, filter));
}

static const char shortopts[] = ":f:o:h";
static const struct option longopts[] = {
    { "format", required_argument, NULL, 'f' },
    { "output", required_argument, NULL, 'o' },
    { "help", no_argument, NULL, 'h' },
    MTA_FILTER_LONGOPTS,
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'f', MTA_ARG_WORD, mta_export_format_word },
    { 'o', MTA_ARG_FILE, NULL },
    MTA_FILTER_ARGS,
    { 0, MTA_ARG_SNAPSHOT, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int export_main(int argc, char **argv)
{
    mta_filter_t filter = { 0 };
    mta_export_format_t fmt = MTA_EXPORT_PPROF;
    bool have_format = false;
    const char *output = NULL;
    mta_snapshot_t *snap = NULL;
    int c, status = MTA_EXIT_USAGE;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'f': {
            int i = mta_cli_choice(CMD, "format", mta_export_format_word, optarg);
            if (i < 0)
                goto out;
            fmt = (mta_export_format_t)i;
            have_format = true;
            break;
        }
        case 'o':
            output = optarg;
            break;
        case 'h':
            mta_cli_usage(&mta_cmd_export, stdout);
            status = MTA_EXIT_OK;
            goto out;
        default:
            if (mta_cli_filter_option(CMD, &filter, c, argv))
                goto out;
        }
    }
    if (mta_cli_one_operand(CMD, argc, argv, optind, "snapshot FILE",
                            "memtrail export FILE --format FORMAT [-o OUT]"))
        goto out;
    if (!have_format) {
        mta_cli_error(CMD, "missing --format (pprof, collapsed, speedscope)");
        goto out;
    }
    if (!output && fmt == MTA_EXPORT_PPROF && isatty(STDOUT_FILENO)) {
        mta_cli_error(CMD, "not writing a gzip'd profile to a terminal (use -o OUT)");
        goto out;
    }
    if (mta_cli_load(argv[optind], &snap))
        goto out;
    if (output)   /* export_to_file reports its own errors */
        status = export_to_file(output, snap, fmt, &filter) < 0 ? MTA_EXIT_USAGE : MTA_EXIT_OK;
    else
        status = mta_cli_status(CMD, mta_export(stdout, snap, fmt, &filter),
                                "cannot write to standard output");
out:
    mta_snapshot_free(snap);
    mta_filter_free(&filter);
    return status;
}

const mta_command_t mta_cmd_export = {
    .name = CMD,
    .summary = "write a snapshot for pprof, flame graphs or speedscope",
    .usage = usage_head,
    .usage_tail = usage_tail,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = export_main,
};
