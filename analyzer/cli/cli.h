/* Shared pieces of the `memtrail` command line: the commands' entry points
 * and usage texts, one-line error reporting, number and signal parsing. */
#ifndef MTA_CLI_H
#define MTA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "group.h"
#include "options.h"
#include "snapshot.h"

/* Exit statuses of the commands. */
#define MTA_EXIT_OK 0
#define MTA_EXIT_FAIL 1   /* the operation failed (e.g. no answer) */
#define MTA_EXIT_USAGE 2  /* bad usage, missing or invalid input */

/* The i-th word an option accepts (its value names, in the parser's order),
 * NULL after the last. */
typedef const char *mta_words_fn(unsigned i);

/* What an option's value, or a command's operands, are: what the shell
 * completions offer. Options that take a value and have no row take free
 * text (a number, a size, a label, a glob). */
typedef enum mta_arg_kind {
    MTA_ARG_END = 0,      /* ends a command's table */
    MTA_ARG_WORD,         /* one of `words` */
    MTA_ARG_WORD_LIST,    /* words of `words` separated by commas */
    MTA_ARG_FILE,         /* a file to write */
    MTA_ARG_DIR,          /* a directory */
    MTA_ARG_SNAPSHOT,     /* a snapshot file, *.mtsnap */
    MTA_ARG_PID,          /* a process traced by memtrail */
    MTA_ARG_COMMAND,      /* a command line to run */
} mta_arg_kind_t;

typedef struct mta_arg {
    int opt;              /* the option's getopt_long value; 0: the operands */
    mta_arg_kind_t kind;
    mta_words_fn *words;  /* MTA_ARG_WORD and MTA_ARG_WORD_LIST */
} mta_arg_t;

struct option;
/* A command. Its parser reads `shortopts` and `longopts` (getopt_long's
 * tables), and the man pages and shell completions are written from the same
 * tables, `args` and the help text (cli/docgen.c, at build time): every
 * option in the tables must appear in the help, and every option of the help
 * in the tables, or the build fails. */
typedef struct mta_command {
    const char *name;
    const char *summary;  /* one line for `memtrail --help` */
    const char *usage;    /* full text for `memtrail help CMD` / CMD --help */
    const char *usage_tail; /* non-NULL: the command takes filters, and its help
                               is usage, the filter options, then usage_tail */
    const char *shortopts;          /* getopt_long's optstring */
    const struct option *longopts;  /* getopt_long's options, ending with a NULL name */
    const mta_arg_t *args;          /* option values and operands, ending with MTA_ARG_END */
    int (*main)(int argc, char **argv); /* argv[0] is the command name */
} mta_command_t;

extern const mta_command_t mta_cmd_run, mta_cmd_snapshot, mta_cmd_report, mta_cmd_diff,
    mta_cmd_export, mta_cmd_html, mta_cmd_leaks, mta_cmd_cycles, mta_cmd_attach, mta_cmd_detach;

/* cmd_run.c, shared with cmd_attach.c: the words of --unwind and
 * --leak-check (defaults first); mkdir -p (0 or -errno); the absolute path
 * of libmemtrail.so (malloc'd), or NULL after a one-line error. */
const char *mta_unwind_word(unsigned i);
const char *mta_leak_check_word(unsigned i);
const char *mta_mmap_word(unsigned i);
int mta_cli_make_dirs(const char *path);
char *mta_cli_find_library(const char *cmd);

/* Every command, in the order `memtrail --help` lists them. */
extern const mta_command_t *const mta_commands[];
extern const size_t mta_ncommands;

/* The command named `name`, or NULL. */
const mta_command_t *mta_cli_find(const char *name);
/* Writes "run, snapshot, ..." (every command's name) into buf. */
void mta_cli_command_list(char *buf, size_t len);
/* Writes `memtrail --help`: usage, then every command with its summary. */
void mta_cli_help(FILE *out);

/* Writes the help of command c (`memtrail help CMD`, CMD --help). */
void mta_cli_usage(const mta_command_t *c, FILE *out);

/* The index of `arg` among the words of `words`, or a one-line error
 * "unknown --OPT 'ARG' (w1, w2, ...)" and -1. */
int mta_cli_choice(const char *cmd, const char *opt, mta_words_fn *words, const char *arg);

/* Loads snapshot `path` into *snap: 0, or the reader's one-line error and
 * MTA_EXIT_USAGE. */
int mta_cli_load(const char *path, mta_snapshot_t **snap);

/* The exit status of a command whose output call returned rc: MTA_EXIT_OK,
 * MTA_EXIT_FAIL for MTA_GATE_FAILED, or MTA_EXIT_USAGE after a one-line
 * error (`io_error` for -EIO). */
int mta_cli_status(const char *cmd, int rc, const char *io_error);

/* Prints "memtrail: CMD: message" (or "memtrail: message" when cmd is NULL)
 * as one line on stderr. */
void mta_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a getopt failure ('?' or ':' from getopt_long with a leading ':')
 * in one line and returns MTA_EXIT_USAGE. */
int mta_cli_bad_option(const char *cmd, int c, char **argv);

/* Checks that exactly one operand follows the options: otherwise reports
 * "missing WHAT (usage: USAGE)" or "too many arguments: 'X' (one WHAT)" and
 * returns MTA_EXIT_USAGE; returns 0 when there is exactly one. */
int mta_cli_one_operand(const char *cmd, int argc, char **argv, int optind, const char *what,
                        const char *usage);

/* Handles getopt result c that is not one of the command's own options: a
 * filter option (filter.h) is applied to *f and 0 returned; a bad filter
 * value or an unknown option is reported in one line and MTA_EXIT_USAGE
 * returned. */
struct mta_filter;
int mta_cli_filter_option(const char *cmd, struct mta_filter *f, int c, char **argv);

/* --top N and --group-by KEY, shared by report and diff: 0, or a one-line
 * error and MTA_EXIT_USAGE. */
int mta_cli_top(const char *cmd, const char *arg, size_t *top);
int mta_cli_group_by(const char *cmd, const char *arg, mta_group_by_t *by);
/* --format text|json, shared by report, leaks and cycles: 0, or a one-line
 * error and MTA_EXIT_USAGE. */
int mta_cli_text_json(const char *cmd, const char *arg, mta_format_t *format);
/* "text", "json": the words of mta_cli_text_json(). */
const char *mta_text_json_word(unsigned i);

/* --metric live|peak|allocated, shared by report and diff: 0, or a one-line
 * error and MTA_EXIT_USAGE. A metric other than live, or a gate on the peak
 * (`gate`: its option, NULL when not given), needs the per-stack figures,
 * which a domain filter does not give: mta_cli_metric_filter() says so and
 * returns MTA_EXIT_USAGE, else 0. */
int mta_cli_metric(const char *cmd, const char *arg, mta_metric_t *metric);
struct mta_filter;
int mta_cli_metric_filter(const char *cmd, const struct mta_filter *f, mta_metric_t metric,
                          const char *gate);

/* A size option (--fail-above SIZE ...): 0, or a one-line error naming
 * --OPT and MTA_EXIT_USAGE. */
int mta_cli_size(const char *cmd, const char *opt, const char *arg, uint64_t *out);

/* --color WHEN, on every command that prints text (report, diff, leaks,
 * cycles): always, never, or auto (the default, set by main() before the
 * command runs): colour when standard output is a terminal and NO_COLOR is
 * unset or empty. Turns the palette (render/common.h) on or off: 0, or a
 * one-line error and MTA_EXIT_USAGE. */
#define MTA_OPT_COLOR 0x3000
#define MTA_COLOR_LONGOPT { "color", required_argument, NULL, MTA_OPT_COLOR }
int mta_cli_color(const char *cmd, const char *when);
/* "auto", "always", "never": the words of --color. */
const char *mta_color_word(unsigned i);
#define MTA_COLOR_ARG { MTA_OPT_COLOR, MTA_ARG_WORD, mta_color_word }
/* The values of the filter options (MTA_FILTER_LONGOPTS, filter.h). */
#define MTA_FILTER_ARGS                                  \
    { MTA_OPT_DOMAIN, MTA_ARG_WORD, mta_domain_word },   \
    { MTA_OPT_EXCLUDE_DOMAIN, MTA_ARG_WORD, mta_domain_word }
/* The help line of --color, as the usage texts show it. */
#define MTA_COLOR_USAGE \
    "      --color WHEN     colour on a terminal: auto (default: when standard\n" \
    "                       output is a terminal and NO_COLOR is unset), always,\n" \
    "                       never\n"

/* Decimal unsigned integer in [min, max]; -EINVAL otherwise. */
int mta_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A size in bytes by the rules of include/memtrail_size.h (the preload's):
 * a decimal number (fraction allowed with a unit) with an optional unit,
 * case-insensitive: B, K/KB, M/MB, G/GB, T/TB (powers of 1000), KiB, MiB,
 * GiB, TiB (powers of 1024). "10MB" = 10,000,000, "512KiB" = 524,288.
 * Returns 0 or -EINVAL (also on overflow). */
int mta_parse_size(const char *s, uint64_t *out);

/* Positive decimal number of seconds (e.g. "30", "0.5"); -EINVAL otherwise. */
int mta_parse_seconds(const char *s, double *out);

/* Signal for snapshots, by the rules of include/memtrail_signal.h (the same
 * as the preload's): *signo = 0 for "off". Returns 0 or -EINVAL. */
int mta_parse_signal(const char *s, int *signo);

#endif /* MTA_CLI_H */
