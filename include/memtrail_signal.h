/*
 * Snapshot-signal names, shared by both sides: the preload reads
 * MEMTRAIL_SIGNAL with it, and `memtrail run --signal` and `memtrail
 * snapshot` (which reads a process's MEMTRAIL_SIGNAL) use the same rules, so
 * a value one side accepts is never refused by the other.
 *
 * Accepted, case-insensitive, "SIG" prefix optional: a name (USR1, USR2,
 * PWR, ...), RTMIN, RTMIN+N, RTMAX, RTMAX-N, a number from 1 to 64; "off",
 * "none" or "0" for no signal. SIGKILL and SIGSTOP cannot be caught and are
 * refused.
 */
#ifndef MEMTRAIL_SIGNAL_H
#define MEMTRAIL_SIGNAL_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Returns the signal number, 0 for "no signal", -1 when invalid. */
static inline int mtsig_parse(const char *s)
{
    static const struct { const char *name; int signo; } names[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM},
        {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
        {"TTOU", SIGTTOU}, {"URG", SIGURG}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
        {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
        {"PWR", SIGPWR}, {"SYS", SIGSYS},
    };
    char *end;
    if (!s || !*s)
        return -1;
    if (!strcasecmp(s, "off") || !strcasecmp(s, "none") || !strcmp(s, "0"))
        return 0;
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    if (*s >= '0' && *s <= '9') {
        long v = strtol(s, &end, 10);
        return !*end && v > 0 && v < NSIG && v != SIGKILL && v != SIGSTOP ? (int)v : -1;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcasecmp(s, names[i].name))
            return names[i].signo;
    int base, dir;
    if (!strncasecmp(s, "RTMIN", 5))
        base = SIGRTMIN, dir = 1;
    else if (!strncasecmp(s, "RTMAX", 5))
        base = SIGRTMAX, dir = -1;
    else
        return -1;
    s += 5;
    if (!*s)
        return base;
    if (*s != (dir > 0 ? '+' : '-') || s[1] < '0' || s[1] > '9')
        return -1;
    long v = strtol(s + 1, &end, 10);
    if (*end || v > SIGRTMAX - SIGRTMIN)
        return -1;
    return base + dir * (int)v;
}

#endif /* MEMTRAIL_SIGNAL_H */
