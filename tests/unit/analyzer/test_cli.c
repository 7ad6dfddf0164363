/* Runs the built `memtrail` program ($MEMTRAIL_EXE) and checks exit statuses
 * and the exact one-line messages of bad usage, bad input and `run`. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "memtrail_protocol.h"
#include "memtrail_signal.h"
#include "snapcompose.h"
#include "snapshot.h"

typedef struct result {
    int status;       /* raw wait status */
    char out[65536];
    char err[65536];
} result_t;

static void slurp(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* When set, called in the child just before it execs memtrail (with the
 * pid memtrail will have). */
static void (*before_exec)(void);

/* Runs memtrail with the given arguments (NULL-terminated). stderr goes to
 * a file so a full stdout pipe cannot deadlock us. */
static void run(result_t *r, ...)
{
    const char *exe = getenv("MEMTRAIL_EXE");
    cr_assert_not_null(exe, "MEMTRAIL_EXE is not set");
    char *argv[32] = { (char *)exe };
    int argc = 1;
    va_list ap;
    va_start(ap, r);
    char *a;
    while ((a = va_arg(ap, char *)) && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    FILE *errf = tmpfile();
    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(fileno(errf), 2);
        close(out[0]);
        close(out[1]);
        if (before_exec)
            before_exec();
        execv(exe, argv);
        _exit(99);
    }
    close(out[1]);
    slurp(out[0], r->out, sizeof(r->out));
    close(out[0]);
    cr_assert_eq(waitpid(pid, &r->status, 0), pid);
    rewind(errf);
    slurp(fileno(errf), r->err, sizeof(r->err));
    fclose(errf);
}

static void expect_exit(const result_t *r, int code)
{
    cr_assert(WIFEXITED(r->status), "did not exit (status 0x%x); stderr: %s", r->status, r->err);
    cr_assert_eq(WEXITSTATUS(r->status), code, "exit %d, want %d; stderr: %s",
                 WEXITSTATUS(r->status), code, r->err);
}

static result_t r;

/* The snapshot signal's names (include/memtrail_signal.h), as both sides
 * read them: case-insensitive in ASCII, "SIG" optional, numbers whole. */
Test(cli, signal_names)
{
    const struct { const char *in; int want; } cases[] = {
        {"USR1", SIGUSR1}, {"sigusr2", SIGUSR2}, {"SigInt", SIGINT}, {"pwr", SIGPWR},
        {"rtmin", SIGRTMIN}, {"RTMIN+3", SIGRTMIN + 3}, {"rtmax-3", SIGRTMAX - 3},
        {"SIGRTMAX", SIGRTMAX}, {MTPROTO_DEFAULT_SIGNAL, SIGRTMAX - 3},
        {"RTMIN+0", SIGRTMIN}, {"RTMAX-30", SIGRTMAX - 30}, {"10", 10}, {"SIG10", 10},
        {"010", 10}, {"64", 64}, {"0", 0}, {"off", 0}, {"NONE", 0},
        {"RTMAX+1", -1}, {"RTMIN-1", -1}, {"RTMAX-", -1}, {"RTMAX-31", -1}, {"RTMIN+x", -1},
        {"RTMAX-3x", -1}, {"9", -1}, {"KILL", -1}, {"sigstop", -1}, {"19", -1}, {"65", -1},
        {"12a", -1}, {"", -1}, {"SIG", -1}, {"SIG0", -1}, {"USR", -1}, {"usr1x", -1},
        {"+5", -1}, {"99999999999999999999", -1}, {"offx", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(mtsig_parse(cases[i].in), cases[i].want, "\"%s\": %d, want %d",
                     cases[i].in, mtsig_parse(cases[i].in), cases[i].want);
    cr_expect_eq(mtsig_parse(NULL), -1);
}

Test(cli, no_command)
{
    run(&r, NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: missing command (run, attach, detach, snapshot, report, diff, export, html, leaks, cycles; see memtrail --help)\n");
    cr_assert_str_eq(r.out, "");
}

Test(cli, bad_usage_is_one_line)
{
    run(&r, "frobnicate", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: unknown command 'frobnicate' (run, attach, detach, snapshot, report, diff, export, html, leaks, cycles; see memtrail --help)\n");
    run(&r, "report", "--group-by", "foo", "x.mtsnap", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: report: unknown --group-by 'foo' (stack, function, line, file, module)\n");
    run(&r, "report", "--bogus", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: report: unknown option '--bogus' (see memtrail help report)\n");
    run(&r, "report", "--top", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: report: option '--top' needs a value (see memtrail help report)\n");
    run(&r, "report", "--top", "-3", "x", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: report: invalid --top '-3' (a number, 0 = all)\n");
    run(&r, "report", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: report: missing snapshot FILE (usage: memtrail report FILE [OPTIONS])\n");
    run(&r, "run", "--signal", "KILL", "--", "true", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: run: invalid --signal 'KILL' (USR1, USR2, RTMIN+N, RTMAX-N, a number, off)\n");
    run(&r, "run", "--depth", "300", "--", "true", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: run: invalid --depth '300' (1 to 256)\n");
    run(&r, "run", "--sample", "2TiB", "--", "true", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: run: invalid --sample '2TiB' (a mean such as 512KiB or 64K, "
                            "up to 1TiB; on, off)\n");
    run(&r, "run", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: run: missing command (usage: memtrail run [OPTIONS] -- CMD [ARGS...])\n");
    run(&r, "snapshot", "12x", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: snapshot: invalid PID '12x'\n");
}

Test(cli, help)
{
    run(&r, "--help", NULL);
    expect_exit(&r, 0);
    cr_assert_eq(strncmp(r.out, "Usage: memtrail COMMAND", 23), 0, "%s", r.out);
    cr_assert_str_eq(r.err, "");
    const char *cmds[] = { "run", "snapshot", "report" };
    for (size_t i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof(want), "Usage: memtrail %s ", cmds[i]);
        run(&r, cmds[i], "--help", NULL);
        expect_exit(&r, 0);
        cr_assert_eq(strncmp(r.out, want, strlen(want)), 0, "%s", r.out);
        char copy[sizeof(r.out)];
        strcpy(copy, r.out);
        run(&r, "help", cmds[i], NULL);
        expect_exit(&r, 0);
        cr_assert_str_eq(r.out, copy);
    }
    run(&r, "report", "--help", NULL);
    const char *opts[] = { "--top", "--group-by", "--format", "--help" };
    for (size_t i = 0; i < 4; i++)
        cr_assert_not_null(strstr(r.out, opts[i]), "report help lacks %s", opts[i]);
    run(&r, "run", "--help", NULL);
    const char *ropts[] = { "--output", "--interval", "--signal", "--no-follow", "--unwind", "--depth",
                            "--sample" };
    for (size_t i = 0; i < 7; i++)
        cr_assert_not_null(strstr(r.out, ropts[i]), "run help lacks %s", ropts[i]);
    run(&r, "--version", NULL);
    expect_exit(&r, 0);
    cr_assert_eq(strncmp(r.out, "memtrail ", 9), 0);
}

Test(cli, missing_and_corrupt_files)
{
    run(&r, "report", "/nonexistent/memtrail.1.0001.exit.mtsnap", NULL);
    expect_exit(&r, 2);
    cr_assert_str_eq(r.err, "memtrail: snapshot: /nonexistent/memtrail.1.0001.exit.mtsnap: No such file or directory\n");

    char path[] = "/tmp/test_cli.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mtc_snap_init(&s);
    mtc_compose(&s, &b);
    cr_assert_eq(write(fd, b.data, b.len - 5), (ssize_t)b.len - 5);
    close(fd);
    run(&r, "report", path, NULL);
    expect_exit(&r, 2);
    char want[256];
    snprintf(want, sizeof(want), "memtrail: snapshot: %s: truncated (END record missing)\n", path);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");

    /* The whole file is fine: exit 0, the report on stdout. */
    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_eq(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    run(&r, "report", path, "--format", "json", NULL);
    expect_exit(&r, 0);
    cr_assert_str_eq(r.err, "");
    cr_assert_eq(strncmp(r.out, "{\n  \"snapshot\": {\n", 18), 0, "%s", r.out);
    unlink(path);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

Test(cli, snapshot_of_untraced_process)
{
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    run(&r, "snapshot", pid, NULL);
    expect_exit(&r, 2);
    char want[96];
    snprintf(want, sizeof(want), "memtrail: process %s is not traced by memtrail\n", pid);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
}

Test(cli, run_environment_and_status)
{
    char dir[] = "/tmp/test_cli_run.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char out[600];
    snprintf(out, sizeof(out), "%s/sub/dir", dir);
    run(&r, "run", "-o", out, "--signal", "SIGUSR1", "--depth", "8", "--",
        "sh", "-c", "echo \"$MEMTRAIL_OUTPUT|$MEMTRAIL_SIGNAL|$MEMTRAIL_DEPTH|$MEMTRAIL_FOLLOW|"
                    "$MEMTRAIL_UNWIND|$MEMTRAIL_INTERVAL|${LD_PRELOAD%%:*}\"; exit 3", NULL);
    expect_exit(&r, 3);
    char real[700], lib[4096];
    cr_assert_not_null(realpath(out, real), "output directory not created");
    cr_assert_not_null(realpath(getenv("MEMTRAIL_LIB"), lib));
    char want[8192];
    snprintf(want, sizeof(want), "%s|10|8|1|libunwind|0|%s\n", real, lib);
    cr_assert_str_eq(r.out, want);
    /* The listing goes to stderr, never stdout. */
    cr_assert_not_null(strstr(r.err, real), "%s", r.err);

    run(&r, "run", "-o", dir, "--no-follow", "--unwind", "fp", "--", "sh", "-c", "exit 0", NULL);
    expect_exit(&r, 0);
    /* --sample: the mean in bytes (off: 0, the default) */
    const struct { const char *arg, *env; } samples[] = {
        { NULL, "0" }, { "64KiB", "65536" }, { "512K", "512000" }, { "on", "524288" }, { "off", "0" } };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        if (samples[i].arg)
            run(&r, "run", "-o", dir, "--sample", samples[i].arg, "--", "sh", "-c",
                "echo \"$MEMTRAIL_SAMPLE\"", NULL);
        else
            run(&r, "run", "-o", dir, "--", "sh", "-c", "echo \"$MEMTRAIL_SAMPLE\"", NULL);
        expect_exit(&r, 0);
        snprintf(want, sizeof(want), "%s\n", samples[i].env);
        cr_assert_str_eq(r.out, want, "--sample %s", samples[i].arg ? samples[i].arg : "(none)");
    }
    run(&r, "run", "-o", dir, "--", "sh", "-c", "kill -TERM $$", NULL);
    cr_assert(WIFSIGNALED(r.status), "status 0x%x, stderr %s", r.status, r.err);
    cr_assert_eq(WTERMSIG(r.status), SIGTERM);

    run(&r, "run", "-o", dir, "--", "/nonexistent/cmd", NULL);
    expect_exit(&r, 127);
    cr_assert_str_eq(r.err, "memtrail: run: /nonexistent/cmd: No such file or directory\n");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(cli, run_lists_new_snapshots)
{
    char dir[] = "/tmp/test_cli_list.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char old[600];
    snprintf(old, sizeof(old), "%s/memtrail.1.0001.exit.mtsnap", dir);
    int fd = open(old, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    struct timespec past[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    cr_assert_eq(utimensat(AT_FDCWD, old, past, 0), 0);
    /* A fake "traced" program that writes two snapshots and another file. */
    run(&r, "run", "-o", dir, "--", "sh", "-c",
        "cd \"$MEMTRAIL_OUTPUT\" && touch memtrail.77.0002.api.mtsnap memtrail.77.0001.signal.mtsnap "
        "notes.txt", NULL);
    expect_exit(&r, 0);
    char want[2048];
    snprintf(want, sizeof(want),
             "memtrail: 2 snapshots in %s:\n%s/memtrail.77.0001.signal.mtsnap\n"
             "%s/memtrail.77.0002.api.mtsnap\n", dir, dir, dir);
    /* Snapshots of sh itself (real tracer) would be listed too: only check
     * ours when the tracer wrote none. */
    if (!strstr(r.err, ".exit.mtsnap"))
        cr_assert_str_eq(r.err, want);
    else
        cr_assert_not_null(strstr(r.err, "memtrail.77.0001.signal.mtsnap\n"), "%s", r.err);
    cr_assert_null(strstr(r.err, "memtrail.1.0001"), "old snapshot listed: %s", r.err);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A snapshot whose writing took a second or more in some step gets one line
 * after the listing, naming those steps (from its TIMING record), and the
 * TIMING record reads back whole. */
Test(cli, run_names_slow_steps)
{
    char dir[] = "/tmp/test_cli_slow.XXXXXX", src[700];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/composed", dir);
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mtc_snap_init(&s);
    mtsnap_timing_t t = {.scan_ns = 1400000000, .graph_ns = 500000000,
                         .symbolize_ns = 100000000, .write_ns = 2000000000, .applied = 77};
    mtc_extra_t extra = {MTSNAP_TAG_TIMING, &t, sizeof(t)};
    mtc_compose_with(&s, &extra, 1, &b);
    int fd = open(src, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    mtsnap_timing_t got;
    cr_assert_eq(mta_snapshot_timing(src, &got), 0);
    cr_assert_eq(memcmp(&got, &t, sizeof(t)), 0);
    mta_snapshot_t *snap = NULL;
    char err[512];
    cr_assert_eq(mta_snapshot_load(src, &snap, err, sizeof(err)), 0, "%s", err);
    cr_assert(snap->has_timing);
    cr_assert_eq(snap->timing.write_ns, 2000000000);
    cr_assert_eq(snap->timing.applied, 77);
    mta_snapshot_free(snap);

    char script[1024];
    snprintf(script, sizeof(script), "cp '%s' \"$MEMTRAIL_OUTPUT\"/memtrail.77.0001.exit.mtsnap", src);
    run(&r, "run", "-o", dir, "--", "sh", "-c", script, NULL);
    expect_exit(&r, 0);
    cr_assert_not_null(strstr(r.err, "\nmemtrail: memtrail.77.0001.exit.mtsnap took 4.0 s: "
                                     "leak scan 1.4 s, writing 2.0 s\n"), "%s", r.err);
    /* sh's own snapshot took no second anywhere: no line for it */
    const char *p = r.err;
    int lines = 0;
    while ((p = strstr(p, " took ")) != NULL)
        p++, lines++;
    cr_assert_eq(lines, 1, "%s", r.err);
    mtc_snap_free(&s);
    mtc_buf_free(&b);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A program killed before its exit snapshot leaves none: the listing says
 * so (and sorts no empty list: qsort(NULL, 0) is undefined, which the
 * sanitizer build of this test catches). */
Test(cli, run_without_snapshots)
{
    char dir[] = "/tmp/test_cli_none.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    run(&r, "run", "-o", dir, "--", "sh", "-c", "kill -KILL $$", NULL);
    cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL, "status 0x%x, stderr %s",
              r.status, r.err);
    char want[256];
    snprintf(want, sizeof(want), "memtrail: no snapshots in %s\n", dir);
    cr_assert_str_eq(r.err, want);
    cr_assert_eq(rmdir(dir), 0);
}

/* ---- run: programs the tracer cannot enter ----------------------------- */

static char untraced_dir[] = "/tmp/test_cli_untraced.XXXXXX";

/* `memtrail run -o untraced_dir -- PROG ARG1 [ARG2]`: CMD's status and
 * stdout are those of the bare run; stderr is exactly the explanation and
 * the empty listing. */
static void expect_untraceable(const char *why, const char *out, int code, const char *prog,
                               const char *arg1, const char *arg2)
{
    char want[16384];
    run(&r, "run", "-o", untraced_dir, "--", prog, arg1, arg2, NULL);
    expect_exit(&r, code);
    cr_assert_str_eq(r.out, out);
    snprintf(want, sizeof(want), "memtrail: run: %s: it will write no snapshot\n"
             "memtrail: no snapshots in %s\n", why, untraced_dir);
    cr_assert_str_eq(r.err, want);
}

Test(cli, run_explains_static_programs)
{
    char prog[4096], why[8192], script[700], out[8192];
    snprintf(prog, sizeof(prog), "%s/staticprog", getenv("MT_PROGRAMS_DIR"));
    if (access(prog, X_OK) != 0)
        cr_skip_test("%s not built (no static C library)", prog);
    cr_assert_not_null(mkdtemp(untraced_dir));
    snprintf(why, sizeof(why), "%s is statically linked (no dynamic loader to preload the "
             "tracer)", prog);
    expect_untraceable(why, "staticprog a b\n", 7, prog, "a b", NULL);

    /* A script run by it: the interpreter is named. */
    snprintf(script, sizeof(script), "%s/script", untraced_dir);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fprintf(f, "#!%s\n", prog);
    fclose(f);
    cr_assert_eq(chmod(script, 0755), 0);
    snprintf(why, sizeof(why), "%s, the interpreter of %s, is statically linked (no dynamic "
             "loader to preload the tracer)", prog, script);
    snprintf(out, sizeof(out), "staticprog %s x\n", script);
    expect_untraceable(why, out, 7, script, "x", NULL);

    /* A static PIE has a dynamic section, and no loader either. */
    snprintf(prog, sizeof(prog), "%s/staticpie", getenv("MT_PROGRAMS_DIR"));
    if (access(prog, X_OK) == 0) {
        snprintf(why, sizeof(why), "%s is statically linked (no dynamic loader to preload the "
                 "tracer)", prog);
        expect_untraceable(why, "staticprog y\n", 7, prog, "y", NULL);
    }

    /* The dynamic loader run as a program is not "static": it preloads (a
     * shared object run as a program). */
    run(&r, "run", "-o", untraced_dir, "--", "/lib64/ld-linux-x86-64.so.2", "/bin/true", NULL);
    if (access("/lib64/ld-linux-x86-64.so.2", X_OK) == 0)
        cr_assert_null(strstr(r.err, "statically linked"), "%s", r.err);

    char cmd[800];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", untraced_dir);
    cr_assert_eq(system(cmd), 0);
}

/* As root: a copy of id(1), a dynamic program, set-user-ID to nobody
 * (65534): it prints its effective uid, so the bit did take effect. */
Test(cli, run_explains_setuid_programs)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to make a set-user-ID file of another user");
    cr_assert_not_null(mkdtemp(untraced_dir));
    char prog[700], why[2048], cmd[2600];
    snprintf(prog, sizeof(prog), "%s/suid_id", untraced_dir);
    snprintf(cmd, sizeof(cmd), "cp \"$(command -v id)\" '%s' && chown 65534 '%s' && "
             "chmod 4755 '%s'", prog, prog, prog);
    cr_assert_eq(system(cmd), 0);
    snprintf(why, sizeof(why), "%s is set-user-ID (the loader ignores LD_PRELOAD there)", prog);
    expect_untraceable(why, "65534\n", 0, prog, "-u", NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", untraced_dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- export -o: the temporary and the final name ----------------------- */

static char export_dir[] = "/tmp/test_cli_export.XXXXXX";

/* Plants symlinks to victim files at the names an unsafe writer would use:
 * OUT.tmp.PID (the old predictable temporary) and OUT itself. */
static void plant_symlinks(void)
{
    char link[700], victim[700];
    snprintf(link, sizeof(link), "%s/out.txt.tmp.%ld", export_dir, (long)getpid());
    snprintf(victim, sizeof(victim), "%s/victim_tmp", export_dir);
    if (symlink(victim, link) != 0)
        _exit(98);
}

static void read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    cr_assert_geq(fd, 0, "%s: %m", path);
    slurp(fd, buf, cap);
    close(fd);
}

/* The names in export_dir, sorted, space-separated. */
static void dir_names(char *buf, size_t cap)
{
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | LC_ALL=C sort | tr '\\n' ' '", export_dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = '\0';
    pclose(p);
}

/* Writes a composed one-site snapshot to path: `bytes` live in one block,
 * in format `version` (1, or 2 stored). */
static void write_snapshot_as(const char *path, uint16_t version, uint64_t bytes)
{
    mtc_snap_t s;
    mtc_buf_t b = { .version = version };
    mtc_snap_init(&s);
    uint32_t f = mtc_frame(&s, 0x1000, MTSNAP_NONE, "leaf", "a.c", 3);
    uint32_t st = mtc_stack(&s, 1, &f);
    mtc_block(&s, 0x10000, bytes, st);
    mtc_stat(&s, st, bytes, 1, bytes, 1, bytes, 1);
    s.totals.live_bytes = bytes;
    s.totals.live_blocks = 1;
    mtc_compose(&s, &b);
    FILE *out = fopen(path, "w");
    cr_assert_not_null(out);
    cr_assert_eq(fwrite(b.data, 1, b.len, out), b.len);
    fclose(out);
    mtc_buf_free(&b);
    mtc_snap_free(&s);
}

static void write_snapshot(const char *path)
{
    write_snapshot_as(path, MTSNAP_VERSION_V1, 100);
}

/* A baseline kept from an older release (format version 1) compares with a
 * snapshot of today's format: the versions differ only in their encoding. */
Test(cli, diff_compares_a_version_1_baseline_with_a_version_2_snapshot)
{
    char dir[] = "/tmp/test_cli_diff.XXXXXX", old[700], new[700];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(old, sizeof(old), "%s/old.mtsnap", dir);
    snprintf(new, sizeof(new), "%s/new.mtsnap", dir);
    write_snapshot_as(old, MTSNAP_VERSION_V1, 100);
    write_snapshot_as(new, MTSNAP_VERSION, 300);
    run(&r, "diff", old, new, "--format", "json", "--fail-on-growth", "150", NULL);
    expect_exit(&r, 1);
    cr_assert_str_eq(r.err, "");
    cr_assert_not_null(strstr(r.out, "\"bytes_diff\": 200"), "%s", r.out);
    run(&r, "diff", new, old, "--fail-on-growth", "1", NULL);
    expect_exit(&r, 0);
    cr_assert_str_eq(r.err, "");
    unlink(old);
    unlink(new);
    rmdir(dir);
}

Test(cli, export_output_is_private_and_never_follows_symlinks)
{
    cr_assert_not_null(mkdtemp(export_dir));
    char snap[700], out[700], victim_tmp[700], victim_out[700], buf[4096];
    snprintf(snap, sizeof(snap), "%s/in.mtsnap", export_dir);
    snprintf(out, sizeof(out), "%s/out.txt", export_dir);
    snprintf(victim_tmp, sizeof(victim_tmp), "%s/victim_tmp", export_dir);
    snprintf(victim_out, sizeof(victim_out), "%s/victim_out", export_dir);
    write_snapshot(snap);
    int fd;
    for (int i = 0; i < 2; i++) {
        fd = open(i ? victim_out : victim_tmp, O_CREAT | O_WRONLY | O_EXCL, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "precious\n", 9), 9);
        close(fd);
    }
    cr_assert_eq(symlink(victim_out, out), 0);

    umask(0);
    before_exec = plant_symlinks;
    run(&r, "export", snap, "--format", "collapsed", "-o", out, NULL);
    before_exec = NULL;
    expect_exit(&r, 0);
    cr_assert_str_eq(r.err, "");
    cr_assert_str_eq(r.out, "");
    /* Neither victim was written through its symlink. */
    read_small(victim_tmp, buf, sizeof(buf));
    cr_assert_str_eq(buf, "precious\n");
    read_small(victim_out, buf, sizeof(buf));
    cr_assert_str_eq(buf, "precious\n");
    /* OUT is now a regular file, private whatever the umask, and complete. */
    struct stat sb;
    cr_assert_eq(lstat(out, &sb), 0);
    cr_assert(S_ISREG(sb.st_mode), "OUT is not a regular file (mode 0%o)", sb.st_mode);
    cr_assert_eq(sb.st_mode & 07777, 0600, "mode 0%o", sb.st_mode & 07777);
    read_small(out, buf, sizeof(buf));
    cr_assert_str_eq(buf, "leaf (a.c:3) 100\n");
    /* No temporary is left; the planted link is untouched. */
    char want[256];
    dir_names(buf, sizeof(buf));
    cr_assert_eq(strncmp(buf, "in.mtsnap out.txt out.txt.tmp.", 30), 0, "%s", buf);
    cr_assert_str_eq(strchr(buf + 30, ' '), " victim_out victim_tmp ", "%s", buf);

    /* A failed write (OUT is a directory) leaves nothing behind. */
    cr_assert_eq(unlink(out), 0);
    cr_assert_eq(mkdir(out, 0700), 0);
    char inside[800];
    snprintf(inside, sizeof(inside), "%s/x", out);
    fd = open(inside, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    dir_names(want, sizeof(want));
    run(&r, "export", snap, "--format", "collapsed", "-o", out, NULL);
    expect_exit(&r, 2);
    snprintf(buf, sizeof(buf), "memtrail: export: cannot write %s: Is a directory\n", out);
    cr_assert_str_eq(r.err, buf);
    dir_names(buf, sizeof(buf));
    cr_assert_str_eq(buf, want);
    /* So does a missing directory. */
    snprintf(inside, sizeof(inside), "%s/nodir/x.txt", export_dir);
    run(&r, "export", snap, "--format", "collapsed", "-o", inside, NULL);
    expect_exit(&r, 2);
    snprintf(buf, sizeof(buf), "memtrail: export: cannot write %s: No such file or directory\n",
             inside);
    cr_assert_str_eq(r.err, buf);
    dir_names(buf, sizeof(buf));
    cr_assert_str_eq(buf, want);

    char cmd[800];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", export_dir);
    cr_assert_eq(system(cmd), 0);
}

/* Temporaries left by a killed export are removed by the next export into
 * the directory; one a live writer holds (locked), a symlink and a FIFO
 * with the same kind of name are left alone. */
Test(cli, export_cleans_stale_temporaries)
{
    cr_assert_not_null(mkdtemp(export_dir));
    char snap[700], out[700], stale[700], held[700], link[700], fifo[700], victim[700];
    char buf[4096], want[4096];
    snprintf(snap, sizeof(snap), "%s/in.mtsnap", export_dir);
    snprintf(out, sizeof(out), "%s/out.txt", export_dir);
    snprintf(stale, sizeof(stale), "%s/.memtrail-out.0123456789abcdef.tmp", export_dir);
    snprintf(held, sizeof(held), "%s/.memtrail-out.fedcba9876543210.tmp", export_dir);
    snprintf(link, sizeof(link), "%s/.memtrail-out.1111111111111111.tmp", export_dir);
    snprintf(fifo, sizeof(fifo), "%s/.memtrail-out.2222222222222222.tmp", export_dir);
    snprintf(victim, sizeof(victim), "%s/victim", export_dir);
    write_snapshot(snap);
    int fd = open(stale, O_CREAT | O_WRONLY | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "partial", 7), 7);
    close(fd);
    int hfd = open(held, O_CREAT | O_WRONLY | O_EXCL, 0600);
    cr_assert_geq(hfd, 0);
    cr_assert_eq(flock(hfd, LOCK_EX), 0);
    fd = open(victim, O_CREAT | O_WRONLY | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(symlink(victim, link), 0);
    cr_assert_eq(mkfifo(fifo, 0600), 0);

    run(&r, "export", snap, "--format", "collapsed", "-o", out, NULL);
    expect_exit(&r, 0);
    cr_assert_str_eq(r.err, "");
    dir_names(buf, sizeof(buf));
    snprintf(want, sizeof(want), ".memtrail-out.1111111111111111.tmp "
             ".memtrail-out.2222222222222222.tmp .memtrail-out.fedcba9876543210.tmp in.mtsnap "
             "out.txt victim ");
    cr_assert_str_eq(buf, want);
    close(hfd);
    /* Released: the next export removes it too. */
    run(&r, "export", snap, "--format", "collapsed", "-o", out, NULL);
    expect_exit(&r, 0);
    dir_names(buf, sizeof(buf));
    cr_assert_str_eq(buf, ".memtrail-out.1111111111111111.tmp "
                     ".memtrail-out.2222222222222222.tmp in.mtsnap out.txt victim ");
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", export_dir);
    cr_assert_eq(system(cmd), 0);
}

/* Disk full: `export -o` into a full 16 KiB tmpfs (mounted in a private mount
 * namespace) fails with ENOSPC in one line and leaves no temporary behind. */
Test(cli, export_on_a_full_disk)
{
    if (geteuid() != 0 || system("unshare -m true 2>/dev/null") != 0)
        cr_skip_test("needs root and unshare -m for a private tmpfs");
    cr_assert_not_null(mkdtemp(export_dir));
    char snap[700], full[700], cmd[4096], buf[4096];
    snprintf(snap, sizeof(snap), "%s/in.mtsnap", export_dir);
    snprintf(full, sizeof(full), "%s/full", export_dir);
    cr_assert_eq(mkdir(full, 0700), 0);
    write_snapshot(snap);
    snprintf(cmd, sizeof(cmd),
             "unshare -m sh -c 'mount -t tmpfs -o size=16k none \"$1\" && "
             "head -c 1M /dev/zero >\"$1/fill\" 2>/dev/null; "
             "\"$MEMTRAIL_EXE\" export \"$2\" -f collapsed -o \"$1/out.txt\" 2>&1; "
             "echo status $?; ls -A \"$1\"' sh '%s' '%s'", full, snap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s", buf);
    char want[2048];
    snprintf(want, sizeof(want), "memtrail: export: cannot write %s/out.txt: No space left on "
             "device\nstatus 2\nfill\n", full);
    cr_assert_str_eq(buf, want);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", export_dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- snapshot PID: targets that exit or cannot answer ------------------- */

typedef enum fake { FAKE_DIES, FAKE_EXITED, FAKE_BLOCKS, FAKE_STARTING } fake_t;

static void die_on_request(int sig)
{
    (void)sig;
    _exit(0);
}

static void ignore_request(int sig)
{
    (void)sig;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p ? p[2] : 0;
}

/* A child that looks traced to `memtrail snapshot` (it maps a file named
 * libmemtrail.so, so /proc/PID/maps shows it) but holds no tracer. FAKE_DIES
 * catches the snapshot signal and ends in its handler, FAKE_EXITED exits at
 * once (and stays a zombie: we reap it only at the end), FAKE_BLOCKS catches
 * it but blocks every signal, FAKE_STARTING leaves it its default action
 * (ending the process), as a traced process does until memtrail's
 * constructor has run. */
static pid_t fake_target(fake_t how, char *dir)
{
    cr_assert_not_null(mkdtemp(dir));
    char lib[600];
    snprintf(lib, sizeof(lib), "%s/" MTPROTO_LIB_NAME, dir);
    int fd = open(lib, O_CREAT | O_RDWR | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 4096), 0);
    int sig, ready[2];
    cr_assert_eq(mta_parse_signal(MTPROTO_DEFAULT_SIGNAL, &sig), 0);
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sigset_t all;
        sigfillset(&all);
        signal(sig, how == FAKE_DIES ? die_on_request
                    : how == FAKE_BLOCKS ? ignore_request : SIG_DFL);
        if (how == FAKE_BLOCKS)
            sigprocmask(SIG_BLOCK, &all, NULL);
        if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
            _exit(97);
        if (write(ready[1], "r", 1) != 1 || how == FAKE_EXITED)
            _exit(0);
        for (;;)
            pause();
    }
    close(fd);
    close(ready[1]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the fake target did not start");
    close(ready[0]);
    if (how == FAKE_EXITED)
        for (int i = 0; i < 500 && proc_state(pid) != 'Z'; i++)
            usleep(10000);
    return pid;
}

static void end_fake(pid_t pid, const char *dir)
{
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(cli, snapshot_target_dies_on_request)
{
    char dir[] = "/tmp/test_cli_snap.XXXXXX", pid[32], want[128];
    pid_t p = fake_target(FAKE_DIES, dir);
    snprintf(pid, sizeof(pid), "%d", (int)p);
    double t0 = now_s();
    run(&r, "snapshot", pid, "--timeout", "20", NULL);
    double took = now_s() - t0;
    expect_exit(&r, 1);
    snprintf(want, sizeof(want), "memtrail: process %s exited before answering\n", pid);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    cr_assert_lt(took, 5.0, "took %.1f s: the whole timeout was waited out", took);
    end_fake(p, dir);
}

Test(cli, snapshot_of_exited_process)
{
    char dir[] = "/tmp/test_cli_snap.XXXXXX", pid[32], want[128];
    pid_t p = fake_target(FAKE_EXITED, dir);
    cr_assert_eq(proc_state(p), 'Z');
    snprintf(pid, sizeof(pid), "%d", (int)p);
    run(&r, "snapshot", pid, NULL);
    expect_exit(&r, 2);
    snprintf(want, sizeof(want), "memtrail: process %s has exited\n", pid);
    cr_assert_str_eq(r.err, want);
    end_fake(p, dir);
}

/* A fake target that answers like the preload up to the label, then hangs
 * up and ends 300 ms later, as a process being killed does (its descriptors
 * are closed before it becomes a zombie): the command waits for its end and
 * says it exited before answering, not that it hung up. */
static volatile sig_atomic_t hangup_sender, hangup_cookie;

static void on_request(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    hangup_sender = si->si_pid;
    hangup_cookie = si->si_value.sival_int;
}

Test(cli, snapshot_target_hangs_up_then_exits)
{
    char dir[] = "/tmp/test_cli_snap.XXXXXX", lib[600], pid[32], want[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(lib, sizeof(lib), "%s/" MTPROTO_LIB_NAME, dir);
    int fd = open(lib, O_CREAT | O_RDWR | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 4096), 0);
    int sig, ready[2];
    cr_assert_eq(mta_parse_signal(MTPROTO_DEFAULT_SIGNAL, &sig), 0);
    cr_assert_eq(pipe(ready), 0);
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        struct sigaction sa = { .sa_sigaction = on_request, .sa_flags = SA_SIGINFO };
        sigaction(sig, &sa, NULL);
        if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
            _exit(97);
        if (write(ready[1], "r", 1) != 1)
            _exit(96);
        while (!hangup_cookie)
            pause();
        struct sockaddr_un sa_un = { .sun_family = AF_UNIX };
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
            mtproto_channel_name(sa_un.sun_path, sizeof(sa_un.sun_path), (long)hangup_sender,
                                 (long)hangup_cookie));
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        char c;
        if (s < 0 || connect(s, (struct sockaddr *)&sa_un, len) < 0)
            _exit(95);
        while (read(s, &c, 1) == 1 && c != MTPROTO_EOL)
            ;   /* the label */
        close(s);
        usleep(300 * 1000);
        _exit(0);
    }
    close(fd);
    close(ready[1]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the fake target did not start");
    close(ready[0]);
    snprintf(pid, sizeof(pid), "%d", (int)p);
    double t0 = now_s();
    run(&r, "snapshot", pid, "--timeout", "20", NULL);
    double took = now_s() - t0;
    expect_exit(&r, 1);
    snprintf(want, sizeof(want), "memtrail: process %s exited before answering\n", pid);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    cr_assert_lt(took, 5.0, "took %.1f s", took);
    end_fake(p, dir);
}

/* Until the snapshot signal is caught, the command waits: it never sends a
 * signal whose default action would end the process. */
Test(cli, snapshot_of_a_starting_process_waits_for_the_handler)
{
    char dir[] = "/tmp/test_cli_snap.XXXXXX", pid[32], want[256];
    pid_t p = fake_target(FAKE_STARTING, dir);
    snprintf(pid, sizeof(pid), "%d", (int)p);
    run(&r, "snapshot", pid, "--timeout", "0.3", NULL);
    expect_exit(&r, 1);
    snprintf(want, sizeof(want), "memtrail: process %s did not answer within 0.3 s: memtrail's "
             "snapshot signal handler is not installed (is it still starting?)\n", pid);
    cr_assert_str_eq(r.err, want);
    cr_assert_eq(proc_state(p), 'S', "the process was killed");
    end_fake(p, dir);
}

Test(cli, snapshot_signal_blocked)
{
    char dir[] = "/tmp/test_cli_snap.XXXXXX", pid[32], want[256];
    pid_t p = fake_target(FAKE_BLOCKS, dir);
    snprintf(pid, sizeof(pid), "%d", (int)p);
    run(&r, "snapshot", pid, "--timeout", "0.3", NULL);
    expect_exit(&r, 1);
    snprintf(want, sizeof(want), "memtrail: process %s did not answer within 0.3 s: the snapshot "
             "signal is still pending: every thread of the process blocks it\n", pid);
    cr_assert_str_eq(r.err, want);
    end_fake(p, dir);
}
