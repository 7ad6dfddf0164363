/* Shared pieces of the `memtrail` command line: the command table and the
 * top-level help, one-line errors, option failures, option words, number and
 * signal-name parsing. */
#include "cli.h"
#include "common.h"
#include "filter.h"
#include "memtrail_signal.h"
#include "memtrail_size.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void mta_cli_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Keep it one line whatever the message holds. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (cmd)
        fprintf(stderr, "memtrail: %s: %s\n", cmd, msg);
    else
        fprintf(stderr, "memtrail: %s\n", msg);
}

const mta_command_t *const mta_commands[] = { &mta_cmd_run, &mta_cmd_attach, &mta_cmd_detach,
                                               &mta_cmd_snapshot, &mta_cmd_report,
                                               &mta_cmd_diff, &mta_cmd_export, &mta_cmd_html,
                                               &mta_cmd_leaks, &mta_cmd_cycles };
const size_t mta_ncommands = sizeof(mta_commands) / sizeof(mta_commands[0]);

const mta_command_t *mta_cli_find(const char *name)
{
    for (size_t i = 0; i < mta_ncommands; i++)
        if (strcmp(mta_commands[i]->name, name) == 0)
            return mta_commands[i];
    return NULL;
}

void mta_cli_command_list(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < mta_ncommands && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 mta_commands[i]->name);
}

void mta_cli_help(FILE *out)
{
    fputs("Usage: memtrail COMMAND [OPTIONS] [ARGS]\n"
          "       memtrail help COMMAND | --help | --version\n"
          "\n"
          "memtrail is a memory profiler and leak tracer for Linux programs. It\n"
          "traces the memory allocations of a program and reports the memory still\n"
          "in use, by the call stack that allocated it.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < mta_ncommands; i++)
        fprintf(out, "  %-10s %s\n", mta_commands[i]->name, mta_commands[i]->summary);
    fputs("\nRun 'memtrail help COMMAND' for a command's options.\n", out);
}

int mta_cli_choice(const char *cmd, const char *opt, mta_words_fn *words, const char *arg)
{
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (unsigned i = 0; words(i); i++) {
        if (strcmp(arg, words(i)) == 0)
            return (int)i;
        if (used < sizeof(list))
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
                                     words(i));
    }
    mta_cli_error(cmd, "unknown --%s '%s' (%s)", opt, arg, list);
    return -1;
}

void mta_cli_usage(const mta_command_t *c, FILE *out)
{
    fputs(c->usage, out);
    if (c->usage_tail) {
        fputs(mta_filter_usage, out);
        fputs(c->usage_tail, out);
    }
}

int mta_cli_load(const char *path, mta_snapshot_t **snap)
{
    char err[1024];
    if (mta_snapshot_load(path, snap, err, sizeof(err)) < 0) {
        mta_cli_error(NULL, "%s", err);
        return MTA_EXIT_USAGE;
    }
    return 0;
}

int mta_cli_status(const char *cmd, int rc, const char *io_error)
{
    if (rc < 0) {   /* an error, not a verdict */
        mta_cli_error(cmd, "%s", rc == -EIO ? io_error : strerror(-rc));
        return MTA_EXIT_USAGE;
    }
    return rc == MTA_GATE_FAILED ? MTA_EXIT_FAIL : MTA_EXIT_OK;
}

int mta_cli_one_operand(const char *cmd, int argc, char **argv, int optind, const char *what,
                        const char *usage)
{
    if (optind >= argc) {
        mta_cli_error(cmd, "missing %s (usage: %s)", what, usage);
        return MTA_EXIT_USAGE;
    }
    if (argc - optind > 1) {
        mta_cli_error(cmd, "too many arguments: '%s' (one %s)", argv[optind + 1], what);
        return MTA_EXIT_USAGE;
    }
    return 0;
}

int mta_cli_bad_option(const char *cmd, int c, char **argv)
{
    extern int optind, optopt;
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    char shortopt[3] = { '-', (char)optopt, '\0' };
    /* Long options are named as written; short ones by their letter. */
    const char *name = strncmp(arg, "--", 2) == 0 || !optopt ? arg : shortopt;
    if (strncmp(arg, "--", 2) == 0)
        name = strndupa(arg, strcspn(arg, "="));
    if (c == ':')
        mta_cli_error(cmd, "option '%s' needs a value (see memtrail help %s)", name, cmd);
    else
        mta_cli_error(cmd, "unknown option '%s' (see memtrail help %s)", name, cmd);
    return MTA_EXIT_USAGE;
}

int mta_cli_filter_option(const char *cmd, struct mta_filter *f, int c, char **argv)
{
    extern char *optarg;
    char err[512];
    int rc = mta_filter_option(f, c, optarg, err, sizeof(err));
    if (rc < 0)
        mta_cli_error(cmd, "%s", err);
    else if (rc == 0)
        mta_cli_bad_option(cmd, c, argv);
    return rc > 0 ? 0 : MTA_EXIT_USAGE;
}

int mta_cli_top(const char *cmd, const char *arg, size_t *top)
{
    uint64_t v;
    if (mta_parse_uint(arg, 0, SIZE_MAX, &v) < 0) {
        mta_cli_error(cmd, "invalid --top '%s' (a number, 0 = all)", arg);
        return MTA_EXIT_USAGE;
    }
    *top = (size_t)v;
    return 0;
}

const char *mta_text_json_word(unsigned i)
{
    static const char *const names[] = { [MTA_FORMAT_TEXT] = "text", [MTA_FORMAT_JSON] = "json" };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

int mta_cli_text_json(const char *cmd, const char *arg, mta_format_t *format)
{
    int i = mta_cli_choice(cmd, "format", mta_text_json_word, arg);
    if (i < 0)
        return MTA_EXIT_USAGE;
    *format = (mta_format_t)i;
    return 0;
}

int mta_cli_group_by(const char *cmd, const char *arg, mta_group_by_t *by)
{
    int i = mta_cli_choice(cmd, "group-by", mta_group_by_word, arg);
    if (i < 0)
        return MTA_EXIT_USAGE;
    *by = (mta_group_by_t)i;
    return 0;
}

int mta_cli_metric(const char *cmd, const char *arg, mta_metric_t *metric)
{
    int i = mta_cli_choice(cmd, "metric", mta_metric_word, arg);
    if (i < 0)
        return MTA_EXIT_USAGE;
    *metric = (mta_metric_t)i;
    return 0;
}

int mta_cli_metric_filter(const char *cmd, const struct mta_filter *f, mta_metric_t metric,
                          const char *gate)
{
    if (!mta_filter_has_domains(f) || (metric == MTA_METRIC_LIVE && !gate))
        return 0;
    if (metric != MTA_METRIC_LIVE)
        mta_cli_error(cmd, "--metric %s needs the figures of each stack, and with --domain or "
                      "--exclude-domain only live figures are known", mta_metric_name(metric));
    else
        mta_cli_error(cmd, "%s needs the figures at the peak of each stack, and with --domain or "
                      "--exclude-domain only live figures are known", gate);
    return MTA_EXIT_USAGE;
}

int mta_cli_size(const char *cmd, const char *opt, const char *arg, uint64_t *out)
{
    if (mta_parse_size(arg, out) < 0) {
        mta_cli_error(cmd, "invalid --%s '%s' (a size such as 1048576, 10MB or 512KiB)", opt,
                      arg);
        return MTA_EXIT_USAGE;
    }
    return 0;
}

enum { COLOR_AUTO, COLOR_ALWAYS, COLOR_NEVER };

const char *mta_color_word(unsigned i)
{
    static const char *const names[] = {
        [COLOR_AUTO] = "auto", [COLOR_ALWAYS] = "always", [COLOR_NEVER] = "never",
    };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

int mta_cli_color(const char *cmd, const char *when)
{
    const char *no = getenv("NO_COLOR");
    switch (mta_cli_choice(cmd, "color", mta_color_word, when)) {
    case COLOR_ALWAYS:
        mta_color_use(true);
        return 0;
    case COLOR_NEVER:
        mta_color_use(false);
        return 0;
    case COLOR_AUTO:
        mta_color_use(isatty(STDOUT_FILENO) && !(no && no[0]));
        return 0;
    default:
        return MTA_EXIT_USAGE;
    }
}

int mta_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (!s || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The preload's own rules (memtrail_size.h), so both sides agree. */
int mta_parse_size(const char *s, uint64_t *out)
{
    return mtsize_parse(s, out) < 0 ? -EINVAL : 0;
}

int mta_parse_seconds(const char *s, double *out)
{
    char *end;
    if (!s || ((s[0] < '0' || s[0] > '9') && s[0] != '.'))
        return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v <= 0 || v > 1e7)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The preload's own rules (memtrail_signal.h), so both sides agree. */
int mta_parse_signal(const char *s, int *signo)
{
    int r = mtsig_parse(s);
    if (r < 0)
        return -EINVAL;
    *signo = r;
    return 0;
}
