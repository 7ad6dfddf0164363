/* `memtrail html FILE [FILE...] [-o OUT]`: one self-contained HTML page for
 * one or more snapshots (render/html.c), written through a temporary beside
 * OUT and renamed over it only when complete (outfile.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "common.h"
#include "demangle.h"
#include "html.h"
#include "outfile.h"
#include "snapshot.h"

#define CMD "html"
#define OPT_THRESHOLD 0x2000
#define OPT_MAX_NODES 0x2001

static const char usage_head[] =
    "Usage: memtrail html FILE [FILE...] [-o OUT] [--top N] [--threshold SHARE]\n"
    "                     [--max-nodes N] [FILTERS]\n"
    "\n"
    "Writes one self-contained HTML page (no network needed to view it; it opens\n"
    "from file://) for snapshot FILE, or for several: a run's interval snapshots,\n"
    "or two snapshots to compare. The page shows a flame graph of the live memory,\n"
    "of the memory at the peak, of all the memory allocated and (with a leak scan)\n"
    "of the memory definitely and possibly lost; with two snapshots or more, the\n"
    "diff between two of them; the memory timeline of the newest snapshot that\n"
    "has one; the report's table by line, function, file and module; the loss\n"
    "records and the Python garbage cycles and refcount leaks. See docs/html.md.\n"
    "\n"
    "Options:\n"
    "  -o, --output OUT     write the page to OUT (default: the first FILE's name\n"
    "                       with .html for .mtsnap, in the current directory): a\n"
    "                       new file, mode 0600, replacing OUT only once complete\n"
    "                       (a symlink at OUT is replaced, not followed)\n"
    "  -n, --top N          the table's entries per key (default 500 for one\n"
    "                       snapshot, 500 x 2 / (n + 1) for n, at least 100;\n"
    "                       0 = all); at most 100 loss records and cycles\n"
    "      --max-nodes N    the flame graph's node budget (default 60000 for one\n"
    "                       snapshot, 60000 x 2 / (n + 1) for n; at least 16;\n"
    "                       0 = none): beyond it, the call paths with the\n"
    "                       smallest share are merged into one 'other' node per\n"
    "                       caller, and the page says so\n"
    "      --threshold SHARE  also merge the call paths below SHARE of the total\n"
    "                       in every view (a fraction such as 0.001, or 0.1%)\n"
    "  -h, --help           show this help\n"
    "\n";
static const char usage_tail[] =
    "\n"
    "The filters select the memory of every view and of the table.\n"
    "Exit status: 0 on success, 2 on bad usage, an unreadable or invalid snapshot,\n"
    "or when OUT cannot be written.\n";

/* A share: a decimal fraction in [0, 1), or a percentage below 100%. */
static int parse_share(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return -EINVAL;
    if (*end == '%') {
        v /= 100;
        end++;
    }
    if (*end || v >= 1)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The default OUT: FILE's last component, ".mtsnap" replaced by ".html". */
static char *default_output(const char *snap)
{
    const char *base = mta_basename(snap);
    size_t len = strlen(base);
    if (len > 7 && strcmp(base + len - 7, ".mtsnap") == 0)
        len -= 7;
    char *out = malloc(len + 6);
    if (out)
        snprintf(out, len + 6, "%.*s.html", (int)len, base);
    return out;
}

static const char shortopts[] = ":o:n:h";
static const struct option longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "top", required_argument, NULL, 'n' },
    { "threshold", required_argument, NULL, OPT_THRESHOLD },
    { "max-nodes", required_argument, NULL, OPT_MAX_NODES },
    { "help", no_argument, NULL, 'h' },
    MTA_FILTER_LONGOPTS,
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 'o', MTA_ARG_FILE, NULL },
    MTA_FILTER_ARGS,
    { 0, MTA_ARG_SNAPSHOT, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int html_main(int argc, char **argv)
{
    mta_filter_t filter = { 0 };
    mta_html_opts_t opts = { .top = MTA_HTML_TOP, .max_nodes = MTA_HTML_MAX_NODES,
                             .filter = &filter };
    mta_html_info_t info;
    mta_snapshot_t **snaps = NULL;
    size_t nsnaps = 0;
    const char *output = NULL;
    char *default_out = NULL;
    uint64_t nodes;
    bool top_given = false, nodes_given = false;
    int c, status = MTA_EXIT_USAGE;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            output = optarg;
            break;
        case 'n':
            if (mta_cli_top(CMD, optarg, &opts.top))
                goto out;
            top_given = true;
            break;
        case OPT_THRESHOLD:
            if (parse_share(optarg, &opts.min_share) < 0) {
                mta_cli_error(CMD, "invalid --threshold '%s' (a share below 1, such as 0.001"
                              " or 0.1%%)", optarg);
                goto out;
            }
            break;
        case OPT_MAX_NODES:
            if (mta_parse_uint(optarg, 0, UINT32_MAX, &nodes) < 0 || (nodes && nodes < 16)) {
                mta_cli_error(CMD, "invalid --max-nodes '%s' (0, or a number of nodes from 16)",
                              optarg);
                goto out;
            }
            opts.max_nodes = (size_t)nodes;
            nodes_given = true;
            break;
        case 'h':
            mta_cli_usage(&mta_cmd_html, stdout);
            status = MTA_EXIT_OK;
            goto out;
        default:
            if (mta_cli_filter_option(CMD, &filter, c, argv))
                goto out;
        }
    }
    if (optind >= argc) {
        mta_cli_error(CMD, "missing snapshot FILE (usage: memtrail html FILE [FILE...] [-o OUT])");
        goto out;
    }
    if (!output && !(output = default_out = default_output(argv[optind]))) {
        mta_cli_error(CMD, "out of memory");
        goto out;
    }
    if (!(snaps = calloc((size_t)(argc - optind), sizeof(*snaps)))) {
        mta_cli_error(CMD, "out of memory");
        goto out;
    }
    for (; nsnaps < (size_t)(argc - optind); nsnaps++)
        if (mta_cli_load(argv[optind + (int)nsnaps], &snaps[nsnaps]))
            goto out;
    size_t series_nodes, series_top;
    mta_html_series_defaults(nsnaps, &series_nodes, &series_top);
    if (!nodes_given)
        opts.max_nodes = series_nodes;
    if (!top_given)
        opts.top = series_top;

    mta_outfile_t o;
    if (mta_outfile_open(&o, CMD, output) < 0)
        goto out;
    int rc = mta_html(o.f, (const mta_snapshot_t *const *)snaps, nsnaps, &opts, &info);
    if (rc == -ENOMEM)   /* outfile reports write errors itself, with OUT's name */
        mta_cli_error(CMD, "out of memory");
    if (mta_outfile_close(&o, rc) < 0)
        goto out;
    struct stat st;
    char size[64] = "?", share[32] = "";
    if (stat(output, &st) == 0)
        mta_format_bytes(st.st_size, false, size, sizeof(size));
    if (info.pruned)
        snprintf(share, sizeof(share), "%.3g%%", info.threshold * 100);
    printf("wrote %s: %s, %zu flame graph nodes%s%s%s\n", output, size, info.nodes,
           info.pruned ? " (the call paths below " : "", share,
           info.pruned ? " of every total merged into 'other' nodes)" : "");
    status = MTA_EXIT_OK;
out:
    for (size_t i = 0; i < nsnaps; i++)
        mta_snapshot_free(snaps[i]);
    free(snaps);
    free(default_out);
    mta_filter_free(&filter);
    return status;
}

const mta_command_t mta_cmd_html = {
    .name = CMD,
    .summary = "write an HTML page of flame graphs, the timeline and the tables",
    .usage = usage_head,
    .usage_tail = usage_tail,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = html_main,
};
