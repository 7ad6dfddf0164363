/* Shared pieces of the `memtrail` command line: one-line errors, option
 * failures, number and signal-name parsing. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* "RTMIN+N" / "RTMAX-N" after the base name; an empty rest is offset 0. */
static int rt_offset(const char *rest, char sign, uint64_t *off)
{
    if (*rest == '\0') {
        *off = 0;
        return 0;
    }
    if (*rest != sign)
        return -EINVAL;
    return mta_parse_uint(rest + 1, 0, 64, off);
}

int mta_parse_signal(const char *s, int *signo)
{
    uint64_t v;
    if (!s || !*s)
        return -EINVAL;
    if (strcasecmp(s, "off") == 0) {
        *signo = 0;
        return 0;
    }
    if (s[0] >= '0' && s[0] <= '9') {
        if (mta_parse_uint(s, 1, (uint64_t)SIGRTMAX, &v) < 0)
            return -EINVAL;
        *signo = (int)v;
    } else {
        const char *n = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
        if (strcasecmp(n, "USR1") == 0) {
            *signo = SIGUSR1;
        } else if (strcasecmp(n, "USR2") == 0) {
            *signo = SIGUSR2;
        } else if (strncasecmp(n, "RTMIN", 5) == 0) {
            if (rt_offset(n + 5, '+', &v) < 0 || (int)v > SIGRTMAX - SIGRTMIN)
                return -EINVAL;
            *signo = SIGRTMIN + (int)v;
        } else if (strncasecmp(n, "RTMAX", 5) == 0) {
            if (rt_offset(n + 5, '-', &v) < 0 || (int)v > SIGRTMAX - SIGRTMIN)
                return -EINVAL;
            *signo = SIGRTMAX - (int)v;
        } else {
            return -EINVAL;
        }
    }
    if (*signo == SIGKILL || *signo == SIGSTOP)
        return -EINVAL;
    return 0;
}
