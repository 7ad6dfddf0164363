/* `--color=auto|always|never` and NO_COLOR as a person meets them: the
 * memtrail program run on a terminal (a pseudo-terminal from forkpty) and
 * on a pipe, on a golden snapshot. auto colours only a terminal, and not
 * when NO_COLOR is set to something; always and never win over both. (The
 * coloured text itself is checked by analyzer_golden.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <utmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct out {
    char text[65536];
    size_t len;
    int status;
} out_t;

/* Runs `memtrail CMD GOLDEN [GOLDEN] [OPT]` (diff compares the snapshot with
 * itself) with NO_COLOR as given (NULL: unset), its standard output and
 * error a terminal (tty) or a pipe; collects what it wrote. */
static void run(out_t *o, int tty, const char *no_color, const char *cmd, const char *opt)
{
    char golden[4096];
    snprintf(golden, sizeof(golden), "%s/tests/golden/growth2.mtsnap",
             getenv("MEMTRAIL_SOURCE_ROOT"));
    const char *exe = getenv("MEMTRAIL_EXE");
    cr_assert_not_null(exe);
    int fd = -1, slave = -1, p[2] = {-1, -1};
    pid_t pid;
    if (tty) {
        /* The slave stays open here too until everything is read: once the
         * child's last descriptor on it closes, a read of the master may
         * fail with EIO before the last bytes have reached it. */
        cr_assert_eq(openpty(&fd, &slave, NULL, NULL, NULL), 0, "%s", strerror(errno));
        pid = fork();
    } else {
        cr_assert_eq(pipe(p), 0);
        pid = fork();
        fd = p[0];
    }
    cr_assert_geq(pid, 0, "%s", strerror(errno));
    if (pid == 0) {
        if (tty) {
            close(fd);
            if (login_tty(slave) < 0)
                _exit(126);
        } else {
            dup2(p[1], 1);
            dup2(p[1], 2);
            close(p[0]);
            close(p[1]);
        }
        if (no_color)
            setenv("NO_COLOR", no_color, 1);
        else
            unsetenv("NO_COLOR");
        const char *argv[] = {exe, cmd, golden, golden, opt, NULL};
        if (strcmp(cmd, "diff") != 0) {   /* one snapshot */
            argv[3] = opt;
            argv[4] = NULL;
        }
        execv(exe, (char **)argv);
        _exit(127);
    }
    if (!tty)
        close(p[1]);
    o->len = 0;
    int reaped = 0;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (!reaped && waitpid(pid, &o->status, WNOHANG) == pid)
            reaped = 1;
        int r = poll(&pf, 1, reaped ? 100 : 20);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {
            ssize_t n = read(fd, o->text + o->len, sizeof(o->text) - 1 - o->len);
            if (n <= 0)   /* the pipe's end */
                break;
            o->len += (size_t)n;
            continue;
        }
        if (reaped)       /* nothing more for 100 ms after the child ended */
            break;
    }
    o->text[o->len] = 0;
    close(fd);
    if (slave >= 0)
        close(slave);
    if (!reaped)
        cr_assert_eq(waitpid(pid, &o->status, 0), pid);
}

static int coloured(const out_t *o)
{
    return strstr(o->text, "\033[") != NULL;
}

Test(color, auto_always_never_and_no_color)
{
    static const struct {
        int tty;
        const char *no_color, *opt;
        int want;
    } cases[] = {
        {1, NULL, NULL, 1},               /* auto on a terminal */
        {0, NULL, NULL, 0},               /* auto on a pipe */
        {1, "1", NULL, 0},                /* NO_COLOR set */
        {1, "", NULL, 1},                 /* NO_COLOR set but empty: ignored */
        {1, NULL, "--color=never", 0},
        {0, NULL, "--color=always", 1},
        {1, "1", "--color=always", 1},    /* always wins over NO_COLOR */
        {1, NULL, "--color=auto", 1},
        {0, NULL, "--color=auto", 0},
    };
    static const char *const cmds[] = {"report", "diff"};
    static out_t o;
    for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            run(&o, cases[i].tty, cases[i].no_color, cmds[c], cases[i].opt);
            cr_assert(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
                      "%s case %zu: status %#x: %s", cmds[c], i, o.status, o.text);
            cr_assert_gt(o.len, 0, "%s case %zu: no output", cmds[c], i);
            cr_assert_eq(coloured(&o), cases[i].want, "%s case %zu (tty %d, NO_COLOR %s, %s)",
                         cmds[c], i, cases[i].tty, cases[i].no_color ? cases[i].no_color : "unset",
                         cases[i].opt ? cases[i].opt : "no option");
        }
    }
}

Test(color, a_bad_value_is_one_line_and_status_2)
{
    static out_t o;
    run(&o, 0, NULL, "report", "--color=sometimes");
    cr_assert(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 2, "status %#x", o.status);
    cr_assert_str_eq(o.text, "memtrail: report: unknown --color 'sometimes' (auto, always, never)\n");
}
