/* `memtrail cycles FILE`: loads a snapshot and prints the reference cycles
 * and refcount leaks of its Python object graph, as text or JSON
 * (docs/cycles.md); analysis/cycles.c finds them, render/cycles_render.c
 * writes them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "outputs.h"
#include "cycles.h"
#include "snapshot.h"

#define CMD "cycles"

enum { OPT_FAIL_ON_LEAK = 0x2000 };

static const char usage[] =
    "Usage: memtrail cycles FILE [--format text|json] [--all] [--top N] [--color WHEN]\n"
    "                            [--fail-on-leak]\n"
    "\n"
    "Finds the reference cycles and the refcount leaks in the Python object graph\n"
    "of snapshot FILE (*.mtsnap). The graph is captured at a Python process's exit\n"
    "snapshot: every gc-tracked object, its references, and whether a scan of\n"
    "memory reached it.\n"
    "\n"
    "  garbage cycle   nothing outside refers to it: the collector frees it at\n"
    "                  its next run (or never, when collection is disabled)\n"
    "  alive cycle     still reachable from the program, or kept by a leak\n"
    "  refcount leak   an unreached object whose refcount is higher than the\n"
    "                  references to it: an extension forgot a Py_DECREF; it\n"
    "                  and what it refers to are never freed\n"
    "\n"
    "By default only the findings of the program's own code are shown: objects\n"
    "allocated by Python code outside the standard library (installed packages\n"
    "included), and not the cycles every program has between modules, classes\n"
    "and functions.\n"
    "\n"
    "Options:\n"
    "  -f, --format FORMAT  text (default) or json (schema: docs/cycles.md)\n"
    "  -a, --all            show every cycle and leak, the standard library's and\n"
    "                       the interpreter's too\n"
    "  -n, --top N          list the N first cycles and N first leaks (default 20;\n"
    "                       0 = all); garbage cycles first, then the largest\n"
    MTA_COLOR_USAGE
    "      --fail-on-leak   exit with status 1 when a garbage cycle or a refcount\n"
    "                       leak is shown (a verdict line says which)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 on success, 1 when --fail-on-leak found one, 2 on bad usage,\n"
    "an unreadable or invalid snapshot, or one without a Python object graph.\n";

static const char shortopts[] = ":f:an:h";
static const struct option longopts[] = {
    { "format", required_argument, NULL, 'f' },
    { "all", no_argument, NULL, 'a' },
    { "top", required_argument, NULL, 'n' },
    { "fail-on-leak", no_argument, NULL, OPT_FAIL_ON_LEAK },
    { "help", no_argument, NULL, 'h' },
    MTA_COLOR_LONGOPT,
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'f', MTA_ARG_WORD, mta_text_json_word },
    MTA_COLOR_ARG,
    { 0, MTA_ARG_SNAPSHOT, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int cycles_main(int argc, char **argv)
{
    mta_cycles_opts_t opts = { .format = MTA_FORMAT_TEXT, .top = 20 };
    mta_snapshot_t *snap = NULL;
    int c, status = MTA_EXIT_USAGE;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (mta_cli_text_json(CMD, optarg, &opts.format))
                goto out;
            break;
        case 'a':
            opts.all = true;
            break;
        case MTA_OPT_COLOR:
            if (mta_cli_color(CMD, optarg))
                goto out;
            break;
        case 'n':
            if (mta_cli_top(CMD, optarg, &opts.top))
                goto out;
            break;
        case OPT_FAIL_ON_LEAK:
            opts.fail_on_leak = true;
            break;
        case 'h':
            mta_cli_usage(&mta_cmd_cycles, stdout);
            status = MTA_EXIT_OK;
            goto out;
        default:
            mta_cli_bad_option(CMD, c, argv);
            goto out;
        }
    }
    if (mta_cli_one_operand(CMD, argc, argv, optind, "snapshot FILE",
                            "memtrail cycles FILE [OPTIONS]"))
        goto out;
    if (mta_cli_load(argv[optind], &snap))
        goto out;
    if (!snap->has_pygraph) {
        mta_cli_error(CMD, "%s: no Python object graph in this snapshot (captured at a Python "
                      "process's exit snapshot)", argv[optind]);
        goto out;
    }
    status = mta_cli_status(CMD, mta_cycles(stdout, snap, &opts),
                            "cannot write to standard output");
out:
    mta_snapshot_free(snap);
    return status;
}

const mta_command_t mta_cmd_cycles = {
    .name = CMD,
    .summary = "find Python reference cycles and refcount leaks in a snapshot",
    .usage = usage,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = cycles_main,
};
