/*
 * `memtrail snapshot PID`: asks a traced process for a snapshot now.
 *
 * Protocol (include/memtrail_protocol.h; the preload implements the other
 * side): check that PID maps libmemtrail.so, read its MEMTRAIL_SIGNAL,
 * listen on the request channel named by our pid and a cookie, sigqueue()
 * the signal with the cookie as value, accept the process's connection
 * (checked with SO_PEERCRED), send the label and a newline, and read one
 * reply line: "ok PATH" or "error MESSAGE". A single deadline (--timeout)
 * covers the accept and the reply; connections from other processes are
 * dropped.
 *
 * The target may die at any point. A pidfd (pidfd_open, Linux 5.3) is opened
 * before anything is checked, so it names the process the checks saw, and
 * every wait polls it beside the socket: its exit (a zombie counts) ends the
 * wait at once. Without pidfds the waits are cut into 100 ms slices and
 * /proc/PID/stat is read between them. A process being killed closes its
 * descriptors (the connection) before it becomes a zombie: a connection
 * closed without an answer is its exit if it ends within EXITING_MS, and
 * reported as a hang-up only if it does not. When the deadline passes,
 * /proc/PID/status tells why: the signal ignored, or pending because every
 * thread blocks it.
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "memtrail_protocol.h"

#define CMD "snapshot"
#define REPLY_MAX 8192
#define OK_LEN (sizeof(MTPROTO_REPLY_OK) - 1)
#define ERROR_LEN (sizeof(MTPROTO_REPLY_ERROR) - 1)
#define SLICE_MS 100       /* between checks of /proc when there is no pidfd */
#define EXITING_MS 2000    /* how long a target that hung up may take to end */

static const char usage[] =
    "Usage: memtrail snapshot PID [--label TEXT] [--timeout SEC]\n"
    "\n"
    "Makes process PID, which runs under memtrail, write a snapshot now and\n"
    "prints the snapshot's path. The process is signalled with its\n"
    MTPROTO_ENV_SIGNAL " (default " MTPROTO_DEFAULT_SIGNAL ") and answers over a local socket.\n"
    "PID may also be that of `memtrail run` itself: the request goes to the\n"
    "program it runs.\n"
    "\n"
    "Options:\n"
    "  -l, --label TEXT     label stored in the snapshot (one line)\n"
    "  -t, --timeout SEC    how long to wait for the answer (default 30)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0 when the snapshot was written; 1 if the process reported\n"
    "an error, exited before answering or did not answer in time (the reason\n"
    "is given when /proc shows it: the signal ignored or blocked); 2 on bad\n"
    "usage or when PID does not exist, has exited, is not traced or has\n"
    "snapshots on signal turned off.\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds left before the deadline, for poll(). */
static int ms_left(double deadline)
{
    double left = deadline - now_s();
    if (left <= 0)
        return 0;
    return left > 2e9 / 1000 ? 2000000000 : (int)(left * 1000) + 1;
}

/* The state letter of PID (/proc/PID/stat: R, S, D, Z...), or 0 when there
 * is no such process. */
static char process_state(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');   /* the name may hold ')' and spaces */
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

static bool process_gone(long pid)
{
    char st = process_state(pid);
    return st == 0 || st == 'Z' || st == 'X';
}

/* A descriptor that becomes readable when PID exits, or -1 (no pidfds). */
static int open_pidfd(long pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/* When PID is a `memtrail run` (its executable is named memtrail and its
 * first argument is "run"): the pid of the program it runs, its one child,
 * or -ESRCH when it has none (the program has ended). 0 when PID is not a
 * `memtrail run`. */
static long run_child(long pid)
{
    char path[96], exe[PATH_MAX], args[64];
    snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
    ssize_t n = readlink(path, exe, sizeof(exe) - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    const char *base = strrchr(exe, '/');
    if (strcmp(base ? base + 1 : exe, "memtrail") != 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t len = fread(args, 1, sizeof(args) - 1, f);
    fclose(f);
    args[len] = '\0';
    size_t first = strlen(args) + 1;   /* argv[1] follows argv[0]'s NUL */
    if (first >= len || strcmp(args + first, "run") != 0)
        return 0;
    /* its children: the fork that runs the program (cmd_run.c) */
    snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
    f = fopen(path, "re");
    long child = 0;
    if (f) {
        if (fscanf(f, "%ld", &child) != 1)
            child = 0;
        fclose(f);
    }
    return child > 0 ? child : -ESRCH;
}

/* 1 if PID maps libmemtrail.so, 0 if not, negative errno if unreadable. */
static int maps_libmemtrail(long pid)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    int found = 0;
    snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (!found && getline(&line, &cap, f) > 0) {
        int n = 0;
        /* address perms offset dev inode, then the path. */
        if (sscanf(line, "%*s %*s %*s %*s %*s %n", &n) < 0 || n == 0 || line[n] != '/')
            continue;
        line[strcspn(line, "\n")] = '\0';
        const char *base = strrchr(line + n, '/') + 1;
        found = strncmp(base, MTPROTO_LIB_NAME, strlen(MTPROTO_LIB_NAME)) == 0;
    }
    free(line);
    fclose(f);
    return found;
}

/* The value of MEMTRAIL_SIGNAL in PID's environment, or NULL (malloc'd). */
static int environ_signal(long pid, char **value)
{
    static const char key[] = MTPROTO_ENV_SIGNAL "=";
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
    FILE *f = fopen(path, "re");
    char *entry = NULL;
    size_t cap = 0;
    *value = NULL;
    if (!f)
        return -errno;
    while (getdelim(&entry, &cap, '\0', f) > 0) {
        if (strncmp(entry, key, sizeof(key) - 1) == 0) {
            free(*value);
            *value = strdup(entry + sizeof(key) - 1);
        }
    }
    free(entry);
    fclose(f);
    return 0;
}

static int listen_socket(long *cookie)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof(r), 0) != sizeof(r))
            r = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 8 ^ (uint32_t)attempt;
        *cookie = (long)(r & 0x7fffffffu);
        if (*cookie == 0)
            *cookie = 1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
            mtproto_channel_name(sa.sun_path, sizeof(sa.sun_path), (long)getpid(), *cookie));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (bind(fd, (struct sockaddr *)&sa, salen) == 0 &&
            listen(fd, 4) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (e != EADDRINUSE)
            return -e;
    }
    return -EADDRINUSE;
}

/* The process asked, and how to notice its end. */
typedef struct target {
    long pid;
    int pidfd;   /* -1: check /proc every SLICE_MS */
} target_t;

/* Waits until fd is readable: 0, -ESRCH as soon as the target has exited
 * (what it sent before is still read first), -ETIMEDOUT at the deadline,
 * or -errno. */
static int wait_readable(int fd, const target_t *t, double deadline)
{
    for (;;) {
        struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = t->pidfd, .events = POLLIN } };
        int left = ms_left(deadline);
        int n = poll(p, t->pidfd >= 0 ? 2 : 1, t->pidfd >= 0 || left < SLICE_MS ? left : SLICE_MS);
        if (n > 0 && p[0].revents)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 || (t->pidfd < 0 && process_gone(t->pid)))
            return -ESRCH;
        if (n == 0 && ms_left(deadline) == 0)
            return -ETIMEDOUT;
    }
}

/* The target closed the connection without an answer: it may be exiting,
 * its descriptors closed before it is a zombie. Whether it ends within
 * EXITING_MS (and before the deadline). */
static bool exits_soon(const target_t *t, double deadline)
{
    double until = now_s() + EXITING_MS / 1000.0;
    if (until > deadline)
        until = deadline;
    for (;;) {
        if (process_gone(t->pid))
            return true;
        int left = ms_left(until);
        if (left == 0)
            return false;
        struct pollfd p = { .fd = t->pidfd, .events = POLLIN };
        if (poll(&p, t->pidfd >= 0 ? 1 : 0, t->pidfd >= 0 || left < SLICE_MS ? left : SLICE_MS) > 0)
            return true;
    }
}

/* bit `sig` of the hexadecimal mask after "KEY:\t" in a /proc status line. */
static bool mask_has(const char *line, const char *key, int sig)
{
    size_t klen = strlen(key);
    if (strncmp(line, key, klen) != 0 || line[klen] != ':')
        return false;
    unsigned long long mask = strtoull(line + klen + 1, NULL, 16);
    return sig >= 1 && sig <= 64 && (mask >> (sig - 1) & 1);
}

/* Signal sig's bits in /proc/PID/status: caught (SigCgt), ignored
 * (SigIgn), pending for the process (ShdPnd). 0, or -ESRCH when the file
 * cannot be read. */
typedef struct sig_state {
    bool caught, ignored, pending;
} sig_state_t;

static int signal_state(long pid, int sig, sig_state_t *st)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    *st = (sig_state_t){0};
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -ESRCH;
    while (getline(&line, &cap, f) > 0) {
        st->caught |= mask_has(line, "SigCgt", sig);
        st->ignored |= mask_has(line, "SigIgn", sig);
        st->pending |= mask_has(line, "ShdPnd", sig);
    }
    free(line);
    fclose(f);
    return 0;
}

/* Why PID has not answered signal sig: a reason (static text) or NULL when
 * nothing in its status explains it. */
static const char *why_no_answer(long pid, int sig)
{
    sig_state_t st;
    if (signal_state(pid, sig, &st) < 0)
        return NULL;
    if (st.ignored)
        return "it ignores the snapshot signal (the program changed its disposition)";
    if (st.pending)
        return "the snapshot signal is still pending: every thread of the process blocks it";
    return NULL;
}

/* Whether PID catches signal sig yet: 1 (caught), -1 when it ignores it, 0
 * when neither (the default action: a process so young that memtrail's
 * constructor has not installed its handler, although the loader has
 * mapped libmemtrail.so; a real-time signal would kill it), -ESRCH when its
 * status cannot be read. */
static int catches(long pid, int sig)
{
    sig_state_t st;
    if (signal_state(pid, sig, &st) < 0)
        return -ESRCH;
    return st.caught ? 1 : st.ignored ? -1 : 0;
}

#define READY_POLL_MS 5   /* how often a starting process is looked at again */

/* Waits for the target to connect; returns the connection, -ESRCH,
 * -ETIMEDOUT or -errno. */
static int accept_peer(int lfd, const target_t *t, double deadline)
{
    for (;;) {
        int n = wait_readable(lfd, t, deadline);
        if (n < 0)
            return n;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            return -errno;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
            cred.pid == (pid_t)t->pid)
            return fd;
        close(fd); /* somebody else: ignore */
    }
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one line (newline removed) before the deadline. */
static int read_line(int fd, char *buf, size_t cap, const target_t *t, double deadline)
{
    size_t len = 0;
    for (;;) {
        int n = wait_readable(fd, t, deadline);
        if (n < 0)
            return n;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ECONNRESET;
        len += (size_t)r;
        char *nl = memchr(buf, MTPROTO_EOL, len);
        if (nl) {
            *nl = '\0';
            return 0;
        }
        if (len == cap - 1)
            return -EMSGSIZE;
    }
}

static int request(const target_t *t, int sig, const char *label, double timeout)
{
    long pid = t->pid;
    char reply[REPLY_MAX];
    long cookie;
    int cfd = -1, rc;
    int lfd = listen_socket(&cookie);
    if (lfd < 0) {
        mta_cli_error(CMD, "cannot create the answer socket: %s", strerror(-lfd));
        return MTA_EXIT_FAIL;
    }
    double deadline = now_s() + timeout;
    /* Never the signal's default action: wait for memtrail's handler. */
    int ready;
    while ((ready = catches(pid, sig)) == 0 && now_s() < deadline) {
        struct pollfd p = {.fd = t->pidfd, .events = POLLIN};
        if (poll(&p, t->pidfd >= 0 ? 1 : 0, READY_POLL_MS) > 0) {
            ready = -ESRCH;   /* it ended meanwhile */
            break;
        }
    }
    if (ready == 0 || ready == -ESRCH) {   /* ignored (-1): harmless, the wait below says so */
        if (ready == -ESRCH)
            mta_cli_error(NULL, "process %ld exited before answering", pid);
        else
            mta_cli_error(NULL, "process %ld did not answer within %g s: memtrail's snapshot "
                          "signal handler is not installed (is it still starting?)", pid, timeout);
        rc = MTA_EXIT_FAIL;
        goto out;
    }
    if (sigqueue((pid_t)pid, sig, (union sigval){ .sival_int = (int)cookie }) < 0) {
        int e = errno;
        mta_cli_error(CMD, "cannot signal process %ld: %s", pid, strerror(e));
        rc = e == EPERM || e == ESRCH ? MTA_EXIT_USAGE : MTA_EXIT_FAIL;
        goto out;
    }
    cfd = accept_peer(lfd, t, deadline);
    int e = cfd < 0 ? cfd : send_all(cfd, label, strlen(label));
    if (e == 0)
        e = send_all(cfd, &(char){MTPROTO_EOL}, 1);
    if (e == 0)
        e = read_line(cfd, reply, sizeof(reply), t, deadline);
    if ((e == -ECONNRESET || e == -EPIPE) && exits_soon(t, deadline))
        e = -ESRCH;
    if (e == -ESRCH) {
        mta_cli_error(NULL, "process %ld exited before answering", pid);
        rc = MTA_EXIT_FAIL;
    } else if (e == -ETIMEDOUT) {
        const char *why = why_no_answer(pid, sig);
        if (why)
            mta_cli_error(NULL, "process %ld did not answer within %g s: %s", pid, timeout, why);
        else
            mta_cli_error(NULL, "process %ld did not answer within %g s", pid, timeout);
        rc = MTA_EXIT_FAIL;
    } else if (e == -ECONNRESET || e == -EPIPE) {
        mta_cli_error(CMD, "process %ld closed the connection without answering", pid);
        rc = MTA_EXIT_FAIL;
    } else if (e < 0) {
        mta_cli_error(CMD, "talking to process %ld: %s", pid, strerror(-e));
        rc = MTA_EXIT_FAIL;
    } else if (strncmp(reply, MTPROTO_REPLY_OK, OK_LEN) == 0 && reply[OK_LEN]) {
        printf("%s\n", reply + OK_LEN);
        rc = fflush(stdout) == 0 ? MTA_EXIT_OK : MTA_EXIT_FAIL;
    } else if (strncmp(reply, MTPROTO_REPLY_ERROR, ERROR_LEN) == 0) {
        mta_cli_error(CMD, "%s", reply + ERROR_LEN);
        rc = MTA_EXIT_FAIL;
    } else {
        mta_cli_error(CMD, "unexpected answer from process %ld", pid);
        rc = MTA_EXIT_FAIL;
    }
out:
    if (cfd >= 0)
        close(cfd);
    close(lfd);
    return rc;
}

static const char shortopts[] = ":l:t:h";
static const struct option longopts[] = {
    { "label", required_argument, NULL, 'l' },
    { "timeout", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t args[] = {
    { 0, MTA_ARG_PID, NULL },
    { 0, MTA_ARG_END, NULL },
};

static int snapshot_main(int argc, char **argv)
{
    const char *label = "";
    double timeout = 30;
    uint64_t pid;
    int c, sig = 0;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            label = optarg;
            if (strpbrk(label, "\n\r")) {
                mta_cli_error(CMD, "--label must be a single line");
                return MTA_EXIT_USAGE;
            }
            break;
        case 't':
            if (mta_parse_seconds(optarg, &timeout) < 0) {
                mta_cli_error(CMD, "invalid --timeout '%s' (seconds, more than 0)", optarg);
                return MTA_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return MTA_EXIT_OK;
        default:
            return mta_cli_bad_option(CMD, c, argv);
        }
    }
    if (mta_cli_one_operand(CMD, argc, argv, optind, "PID",
                            "memtrail snapshot PID [--label TEXT]"))
        return MTA_EXIT_USAGE;
    if (mta_parse_uint(argv[optind], 1, 0x7fffffff, &pid) < 0) {
        mta_cli_error(CMD, "invalid PID '%s'", argv[optind]);
        return MTA_EXIT_USAGE;
    }

    int status = MTA_EXIT_USAGE;
    long child = run_child((long)pid);
    if (child < 0) {
        mta_cli_error(NULL, "process %llu is memtrail run, and the program it ran has ended",
                      (unsigned long long)pid);
        return status;
    }
    if (child > 0)
        pid = (uint64_t)child;   /* memtrail run's program */
    /* Opened first: the checks below then see the process it names. */
    target_t t = { .pid = (long)pid, .pidfd = open_pidfd((long)pid) };
    char st = process_state((long)pid);
    int traced = st == 0 ? -ENOENT : maps_libmemtrail((long)pid);
    if (traced == -ENOENT) {
        mta_cli_error(CMD, "no process %llu", (unsigned long long)pid);
        goto out;
    }
    if (st == 'Z' || st == 'X') {   /* an empty maps file: not "untraced" */
        mta_cli_error(NULL, "process %llu has exited", (unsigned long long)pid);
        goto out;
    }
    if (traced < 0) {
        mta_cli_error(CMD, "cannot read /proc/%llu/maps: %s", (unsigned long long)pid,
                      strerror(-traced));
        goto out;
    }
    if (!traced) {
        mta_cli_error(NULL, "process %llu is not traced by memtrail", (unsigned long long)pid);
        goto out;
    }
    char *value = NULL;
    int rc = environ_signal((long)pid, &value);
    if (rc < 0) {
        mta_cli_error(CMD, "cannot read /proc/%llu/environ: %s", (unsigned long long)pid,
                      strerror(-rc));
        goto out;
    }
    rc = mta_parse_signal(value ? value : MTPROTO_DEFAULT_SIGNAL, &sig);
    if (rc < 0)
        mta_cli_error(CMD, "process %llu has an invalid MEMTRAIL_SIGNAL '%s'",
                      (unsigned long long)pid, value);
    else if (sig == 0)
        mta_cli_error(NULL, "snapshots on signal are turned off in process %llu",
                      (unsigned long long)pid);
    free(value);
    if (rc == 0 && sig != 0)
        status = request(&t, sig, label, timeout);
out:
    if (t.pidfd >= 0)
        close(t.pidfd);
    return status;
}

const mta_command_t mta_cmd_snapshot = {
    .name = CMD,
    .summary = "make a traced process write a snapshot now",
    .usage = usage,
    .shortopts = shortopts,
    .longopts = longopts,
    .args = args,
    .main = snapshot_main,
};
