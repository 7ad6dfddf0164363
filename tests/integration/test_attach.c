/* `memtrail attach PID` and `memtrail detach PID` on tests/programs/attachee.c,
 * started bare: attached while its threads allocate and free, exact live
 * figures per site for what it allocated after the attach (it prints its
 * own), the detach snapshot, its output and exit status unchanged; a target
 * blocked in read() and one asleep in nanosleep() see no EINTR; attach and
 * detach in a loop; the refusals, each with its message, the target
 * running on unchanged. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attachutil.h"
#include "harness.h"
#include "inject.h"
#include "memtrail_protocol.h"

TestSuite(integration, .init = mt_setup, .fini = mt_teardown, .timeout = 240);

/* Attach/detach cycles of attach_detach_loop: the 100 (about 26 s
 * on the 2-core test machine, measured alone; each cycle stops a thread,
 * loads or finds the library, starts and stops the writer, writes a
 * snapshot). */
#define LOOP_CYCLES 100

static const char *program = "attachee";

static void spawn(mt_proc_t *proc, const char *arg)
{
    char *prog = mt_program(program);
    const char *argv[] = {prog, arg, NULL};
    cr_assert_eq(mt_spawn_bare(argv, proc), 0);
    char line[256];
    cr_assert_gt(mt_proc_read_line(proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_assert_str_eq(line, "ready");
    free(prog);
}

/* Ends the program: its last line and exit status 0. */
static void finish(mt_proc_t *proc, char *out, size_t cap)
{
    at_command(proc, "end\n", "done:", out, cap);
    int status;
    cr_assert_eq(mt_proc_wait(proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "attachee: status %#x", status);
}

/* What attachee prints for "hold" and "end", run bare from start to end. */
static const char *bare_output(void)
{
    static char out[1024];
    if (out[0])
        return out;
    mt_proc_t proc;
    spawn(&proc, NULL);
    at_command(&proc, "hold\n", "held", out, sizeof(out));
    finish(&proc, out, sizeof(out));
    return out;
}

/* The held figures the program printed, checked against the snapshot. */
static void expect_held(const mta_snapshot_t *snap, const char *printed)
{
    static const char *const sites[] = {"keep_malloc", "keep_calloc", "keep_aligned",
                                        "regrow_old"};
    uint64_t total_bytes = 0, total_blocks = 0;
    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
        char key[64];
        snprintf(key, sizeof(key), "held %s ", sites[i]);
        const char *at = strstr(printed, key);
        cr_assert_not_null(at, "attachee did not print %s", key);
        unsigned long blocks, bytes;
        cr_assert_eq(sscanf(at + strlen(key), "%lu %lu", &blocks, &bytes), 2);
        mt_assert_site(snap, sites[i], bytes, blocks);
        total_bytes += bytes;
        total_blocks += blocks;
    }
    /* Nothing else: the blocks allocated before the attach are not there,
     * freeing or growing them changed no figure, the churn freed its own. */
    mt_assert_site(snap, "make_old", 0, 0);
    mt_assert_site(snap, "churn", 0, 0);
    cr_expect_eq(snap->totals.live_bytes, total_bytes, "%s: live bytes %llu, want %llu",
                 snap->path, (unsigned long long)snap->totals.live_bytes,
                 (unsigned long long)total_bytes);
    cr_expect_eq(snap->totals.live_blocks, total_blocks, "%s: live blocks %llu, want %llu",
                 snap->path, (unsigned long long)snap->totals.live_blocks,
                 (unsigned long long)total_blocks);
}

static void expect_attached_meta(const mta_snapshot_t *snap, pid_t pid, uint32_t trigger,
                                 uint64_t attached_after)
{
    cr_expect_eq(snap->meta.pid, (uint32_t)pid);
    cr_expect_eq(snap->meta.trigger, trigger, "%s: trigger %u", snap->path, snap->meta.trigger);
    cr_expect(snap->meta.flags & MTSNAP_META_F_ATTACHED, "%s: META flags %#x lack ATTACHED",
              snap->path, snap->meta.flags);
    cr_expect_geq(snap->meta.start_ns, attached_after, "%s: start_ns is before the attach",
                  snap->path);
}

static void exact_sites(void);

Test(integration, attach_exact_sites)
{
    exact_sites();
}

/* Not position-independent: free's canonical PLT entry in the executable
 * is what dlsym gives, the calls of every object reach libc's free. */
Test(integration, attach_exact_sites_nopie)
{
    program = "attachee_nopie";
    exact_sites();
}

static void exact_sites(void)
{
    const char *bare = bare_output();
    mt_proc_t proc;
    spawn(&proc, NULL);
    at_wait_main_syscall(proc.pid, 0, 0);   /* blocked in read(): restarted, no EINTR */
    uint64_t before = at_realtime_ns();
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    at_command(&proc, "hold\n", "held", out, sizeof(out));

    char *path = at_snapshot(proc.pid);
    mta_snapshot_t *snap = mt_load(path);
    expect_attached_meta(snap, proc.pid, MTSNAP_TRIGGER_SIGNAL, before);
    expect_held(snap, out);
    mta_snapshot_free(snap);

    /* report says when tracing began and what is left out */
    mt_run_t res;
    at_memtrail((const char *const[]){"report", path, NULL}, &res);
    cr_expect(strstr(res.out, "note: tracing began at ") &&
              strstr(res.out, "when memtrail attached to the running process; blocks allocated "
                              "before then are not included"),
              "report lacks the attach note:\n%s", res.out);
    mt_run_free(&res);

    char *last = at_detach(proc.pid);
    cr_assert_not_null(last);
    cr_expect(strstr(last, ".detach.mtsnap") != NULL, "detach snapshot %s", last);
    snap = mt_load(last);
    expect_attached_meta(snap, proc.pid, MTSNAP_TRIGGER_DETACH, before);
    expect_held(snap, out);
    mta_snapshot_free(snap);
    /* diff reads two snapshots of an attached process as any others: the
     * held blocks were there in both, so the gate on growth passes */
    at_memtrail((const char *const[]){"diff", path, last, "--fail-on-growth", "1MiB", NULL}, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "diff: %#x\n%s%s",
              res.status, res.out, res.err);
    cr_expect(strstr(res.out, "attachee.c") != NULL, "diff names no line of the program:\n%s",
              res.out);
    mt_run_free(&res);
    free(path);
    free(last);

    finish(&proc, out, sizeof(out));
    cr_expect_str_eq(out, bare, "output attached:\n%s\nbare:\n%s", out, bare);
    /* Nothing written after the detach: the exit wrote no snapshot. */
    mt_snaplist_t l;
    cr_assert_eq(mt_find_snapshots(mt_dir, proc.pid, NULL, &l), 0);
    cr_expect_eq(l.n, 2, "%zu snapshots", l.n);
    mt_snaplist_free(&l);
}

Test(integration, attach_nanosleep_uncut)
{
    mt_proc_t proc;
    spawn(&proc, "sleep");
    /* glibc's nanosleep is clock_nanosleep (230); nanosleep is 35 */
    at_wait_main_syscall(proc.pid, 230, 35);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    usleep(200 * 1000);
    at_wait_main_syscall(proc.pid, 230, 35);
    char *last = at_detach(proc.pid);
    cr_expect_not_null(last);
    free(last);
    char out[1024] = "";
    at_command(&proc, "hold\n", "held", out, sizeof(out));
    finish(&proc, out, sizeof(out));
    cr_expect_str_eq(out, bare_output(), "output:\n%s", out);   /* "done: errors 0": no sleep cut */
}

/* The main thread churns too ("busy"): the thread borrowed is stopped in
 * the middle of its work (the program's own code, or a system call), and a
 * register or a stack byte not put back would show as a block that fails
 * its check ("done: errors N") or as a crash. */
Test(integration, attach_detach_loop)
{
    mt_proc_t proc;
    spawn(&proc, "busy");
    for (int i = 0; i < LOOP_CYCLES; i++) {
        at_attach(proc.pid, 0, "memtrail: attached to process");
        char *last = at_detach(proc.pid);
        cr_assert_not_null(last, "cycle %d", i);
        free(last);
    }
    /* Attached once more, left attached: the process's exit writes the
     * exit snapshot, numbered after the cycles' detach snapshots. */
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    finish(&proc, out, sizeof(out));
    cr_expect_str_eq(out, "done: errors 0\n");
    mta_snapshot_t *snap = mt_load_one(mt_dir, proc.pid, "exit");
    cr_expect_eq(snap->meta.seq, LOOP_CYCLES + 1u, "seq %u: one detach snapshot a cycle, then "
                 "this one", snap->meta.seq);
    cr_expect(snap->meta.flags & MTSNAP_META_F_ATTACHED);
    mta_snapshot_free(snap);
}

/* The settings reach the process: --interval writes interval snapshots
 * until the detach, --depth and --unwind are in META, --leak-check all
 * scans the detach snapshot; `leaks` and `html` read it. */
Test(integration, attach_settings)
{
    mt_proc_t proc;
    spawn(&proc, NULL);
    at_attach_with(proc.pid,
                   (const char *const[]){"-i", "0.1", "-d", "12", "-u", "fp", "-l", "all", NULL}, 0,
                   "memtrail: attached to process");
    cr_assert_geq(mt_wait_snapshots(mt_dir, proc.pid, "interval", 2, MT_WAIT_MS), 2);
    char *last = at_detach(proc.pid);
    cr_assert_not_null(last);
    mta_snapshot_t *snap = mt_load(last);
    cr_expect_eq(snap->meta.depth, 12u);
    cr_expect_eq(snap->meta.unwind, (uint32_t)MTSNAP_UNWIND_FP);
    mta_snapshot_free(snap);
    mt_run_t res;
    at_memtrail((const char *const[]){"leaks", last, NULL}, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "leaks: %#x %s",
              res.status, res.err);
    cr_expect(strstr(res.out, "definitely lost: 0 B in 0 blocks") != NULL, "leaks:\n%s", res.out);
    mt_run_free(&res);
    char html[PATH_MAX];
    snprintf(html, sizeof(html), "%s/attached.html", mt_dir);
    at_memtrail((const char *const[]){"html", last, "-o", html, NULL}, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0, "html: %#x %s",
              res.status, res.err);
    mt_run_free(&res);
    char *page = mt_read_file(html);
    cr_assert_not_null(page, "%s", html);
    cr_expect(strstr(page, "when memtrail attached to the running process; blocks allocated "
                           "before then are not included") != NULL, "%s lacks the attach note", html);
    free(page);
    free(last);
    mt_snaplist_t before, after;
    cr_assert_eq(mt_find_snapshots(mt_dir, proc.pid, "interval", &before), 0);
    usleep(400 * 1000);   /* four intervals: none after the detach */
    cr_assert_eq(mt_find_snapshots(mt_dir, proc.pid, "interval", &after), 0);
    cr_expect_eq(after.n, before.n, "interval snapshots after the detach: %zu -> %zu", before.n,
                 after.n);
    mt_snaplist_free(&before);
    mt_snaplist_free(&after);
    /* Attached again with the defaults: libunwind now, its CFI cache made
     * then (the first attach, with fp, had none); exact figures. */
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    at_command(&proc, "hold\n", "held", out, sizeof(out));
    last = at_detach(proc.pid);
    cr_assert_not_null(last);
    snap = mt_load(last);
    cr_expect_eq(snap->meta.unwind, (uint32_t)MTSNAP_UNWIND_LIBUNWIND);
    cr_expect_eq(snap->meta.depth, (uint32_t)MTPROTO_DEFAULT_DEPTH);
    expect_held(snap, out);
    mta_snapshot_free(snap);
    free(last);
    finish(&proc, out, sizeof(out));
    cr_expect_str_eq(out, bare_output(), "output:\n%s", out);
}

/* SIGALRM every millisecond to a handler: signals reaching the borrowed
 * thread during the injected calls are delivered to it there, and the
 * read() it was blocked in goes on. */
Test(integration, attach_under_signals)
{
    mt_proc_t proc;
    spawn(&proc, "alarm");
    for (int i = 0; i < 20; i++) {
        at_attach(proc.pid, 0, "memtrail: attached to process");
        free(at_detach(proc.pid));
    }
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    at_command(&proc, "hold\n", "held", out, sizeof(out));
    char *last = at_detach(proc.pid);
    cr_assert_not_null(last);
    mta_snapshot_t *snap = mt_load(last);
    expect_held(snap, out);
    mta_snapshot_free(snap);
    free(last);
    finish(&proc, out, sizeof(out));
    cr_expect_str_eq(out, bare_output(), "output:\n%s", out);
}

/* Attached again after a detach: the tables start empty, the figures are exact. */
Test(integration, attach_again_exact)
{
    mt_proc_t proc;
    spawn(&proc, NULL);
    for (int i = 0; i < 3; i++) {
        at_attach(proc.pid, 0, "memtrail: attached to process");
        free(at_detach(proc.pid));
    }
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    at_command(&proc, "hold\n", "held", out, sizeof(out));
    char *path = at_snapshot(proc.pid);
    mta_snapshot_t *snap = mt_load(path);
    expect_held(snap, out);
    mta_snapshot_free(snap);
    free(path);
    free(at_detach(proc.pid));
    finish(&proc, out, sizeof(out));
    cr_expect_str_eq(out, bare_output(), "output:\n%s", out);
}

/* Mappings of the mmap domain whose innermost user frame is `fn`. */
static void map_site(const mta_snapshot_t *snap, const char *fn, uint64_t *bytes,
                     uint64_t *blocks)
{
    *bytes = *blocks = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_frame_t *f = mt_user_frame(snap, b->stack);
        if (b->domain == MTSNAP_DOMAIN_MMAP && f && !strcmp(f->function, fn)) {
            *bytes += b->size;
            (*blocks)++;
        }
    }
}

static void expect_map_site(const mta_snapshot_t *snap, const char *fn, uint64_t want_bytes,
                            uint64_t want_blocks)
{
    uint64_t bytes, blocks;
    map_site(snap, fn, &bytes, &blocks);
    cr_expect(bytes == want_bytes && blocks == want_blocks,
              "%s: mmap domain at %s: %llu B in %llu mappings, want %llu in %llu", snap->path, fn,
              (unsigned long long)bytes, (unsigned long long)blocks,
              (unsigned long long)want_bytes, (unsigned long long)want_blocks);
}

/* The mmap domain after an attach (attachee's "map" and "unmap"): the
 * mappings made then, exact, the mremap'd one at its new size; the range
 * mapped before the attach and unmapped after it changes nothing; the
 * unmapped ones are gone; nothing after the detach. */
Test(integration, attach_mmap)
{
    mt_proc_t proc;
    spawn(&proc, NULL);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    at_command(&proc, "map\n", "mapped", out, sizeof(out));
    char *path = at_snapshot(proc.pid);
    mta_snapshot_t *snap = mt_load(path);
    expect_map_site(snap, "keep_map", 2 * 64 * 1024, 2);
    expect_map_site(snap, "regrow_map", 128 * 1024, 1);
    expect_map_site(snap, "make_old_map", 0, 0);
    uint64_t all_bytes = 0, all_blocks = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++)
        if (snap->blocks[i].domain == MTSNAP_DOMAIN_MMAP) {
            all_bytes += snap->blocks[i].size;
            all_blocks++;
        }
    cr_expect(all_bytes == 256 * 1024 && all_blocks == 3, "%s: mmap domain %llu B in %llu",
              path, (unsigned long long)all_bytes, (unsigned long long)all_blocks);
    mta_snapshot_free(snap);
    free(path);
    at_command(&proc, "unmap\n", "unmapped", out, sizeof(out));
    char *last = at_detach(proc.pid);
    cr_assert_not_null(last);
    snap = mt_load(last);
    expect_map_site(snap, "keep_map", 0, 0);
    expect_map_site(snap, "regrow_map", 0, 0);
    mta_snapshot_free(snap);
    free(last);
    /* mapped and unmapped after the detach: untraced, unharmed */
    at_command(&proc, "map\n", "mapped", out, sizeof(out));
    at_command(&proc, "unmap\n", "unmapped", out, sizeof(out));
    finish(&proc, out, sizeof(out));
    cr_expect(strstr(out, "done: errors 0\n"), "%s", out);
}

/* Whether signal sig is caught (a handler) in pid: /proc/PID/status SigCgt. */
static int sig_caught(pid_t pid, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long mask = 0;
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "SigCgt: %llx", &mask) == 1)
            break;
    fclose(f);
    return (int)(mask >> (sig - 1) & 1);
}

/* SIGTERM while attached: the exit snapshot (label SIGTERM, the held
 * blocks exact), then the process ends by the signal, as it would bare. */
Test(integration, attach_sigterm_snapshot)
{
    mt_proc_t proc;
    spawn(&proc, NULL);
    cr_expect(!sig_caught(proc.pid, SIGTERM));
    at_attach(proc.pid, 0, "memtrail: attached to process");
    cr_expect(sig_caught(proc.pid, SIGTERM), "SIGTERM not caught after the attach");
    cr_expect(sig_caught(proc.pid, SIGINT), "SIGINT not caught after the attach");
    char out[1024] = "";
    at_command(&proc, "hold\n", "held", out, sizeof(out));
    kill(proc.pid, SIGTERM);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    mta_snapshot_t *snap = mt_load_one(mt_dir, proc.pid, "exit");
    cr_expect_str_eq(snap->label, "SIGTERM");
    expect_held(snap, out);
    mta_snapshot_free(snap);
}

/* The program's own handler set while attached is the one that runs, and
 * stays after the detach; the default disposition memtrail replaced is
 * back after the detach: SIGTERM then ends the process with no snapshot. */
Test(integration, attach_signals_detach)
{
    mt_proc_t proc;
    spawn(&proc, NULL);
    at_attach(proc.pid, 0, "memtrail: attached to process");
    char out[1024] = "";
    at_command(&proc, "sigint\n", "sigint set", out, sizeof(out));
    kill(proc.pid, SIGINT);
    char line[64];
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_expect_str_eq(line, "sigint", "the program's SIGINT handler did not run");
    free(at_detach(proc.pid));
    cr_expect(!sig_caught(proc.pid, SIGTERM), "SIGTERM still caught after the detach");
    cr_expect(sig_caught(proc.pid, SIGINT), "the program's SIGINT handler is gone");
    kill(proc.pid, SIGINT);
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    cr_expect_str_eq(line, "sigint");
    kill(proc.pid, SIGTERM);
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    mt_snaplist_t l;
    cr_assert_eq(mt_find_snapshots(mt_dir, proc.pid, NULL, &l), 0);
    cr_expect_eq(l.n, 1, "%zu snapshots: the detach's only", l.n);
    mt_snaplist_free(&l);
}

/* A refused attach leaves the program running as before. */
static void expect_unchanged(mt_proc_t *proc)
{
    char out[1024] = "";
    at_command(proc, "hold\n", "held", out, sizeof(out));
    finish(proc, out, sizeof(out));
    cr_expect_str_eq(out, bare_output(), "output:\n%s", out);
}

Test(integration, attach_refusals)
{
    at_attach(0x7ffffff0, 1, "memtrail: attach: no process 2147483632");

    mt_proc_t proc;
    spawn(&proc, NULL);
    char p[16];
    snprintf(p, sizeof(p), "%d", (int)proc.pid);
    mt_run_t res;
    at_memtrail((const char *const[]){"detach", p, NULL}, &res);
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 1);
    cr_expect(strstr(res.err, "memtrail is not attached to it"), "%s", res.err);
    mt_run_free(&res);

    /* stopped */
    kill(proc.pid, SIGSTOP);
    for (int i = 0; i < 500; i++) {
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)proc.pid);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = 0;
        if (strstr(buf, ") T "))
            break;
        usleep(2000);
    }
    at_attach(proc.pid, 1, "is stopped: resume it first (kill -CONT");
    kill(proc.pid, SIGCONT);

    /* traced by another tracer: this test process */
    cr_assert_eq(ptrace(PTRACE_SEIZE, proc.pid, NULL, NULL), 0);
    char want[128];
    snprintf(want, sizeof(want), "is already traced by process %d", (int)getpid());
    at_attach(proc.pid, 1, want);
    cr_assert_eq(ptrace(PTRACE_INTERRUPT, proc.pid, NULL, NULL), 0);
    int st;
    cr_assert_eq(waitpid(proc.pid, &st, __WALL), proc.pid);
    cr_assert_eq(ptrace(PTRACE_DETACH, proc.pid, NULL, NULL), 0);

    /* another user (as root: the command run as nobody) */
    if (geteuid() == 0) {
        char errpath[PATH_MAX];
        snprintf(errpath, sizeof(errpath), "%s/nobody.err", mt_dir);
        pid_t child = fork();
        if (child == 0) {
            int devnull = open("/dev/null", O_WRONLY), err = open(errpath, O_WRONLY | O_CREAT, 0600);
            dup2(devnull, 1);
            dup2(err, 2);
            if (setgid(65534) < 0 || setuid(65534) < 0)
                _exit(99);
            execl(mt_env("MEMTRAIL_EXE"), "memtrail", "attach", p, "-o", "/tmp", NULL);
            _exit(98);
        }
        int cst;
        cr_assert_eq(waitpid(child, &cst, 0), child);
        cr_expect(WIFEXITED(cst) && WEXITSTATUS(cst) == 1, "as nobody: status %#x", cst);
        char msg[1024] = "";
        FILE *ef = fopen(errpath, "r");
        if (ef) {
            msg[fread(msg, 1, sizeof(msg) - 1, ef)] = 0;
            fclose(ef);
        }
        cr_expect(strstr(msg, "memtrail: attach: not permitted to trace process") &&
                  strstr(msg, "it belongs to user 0 and memtrail runs as user 65534 (run "
                              "memtrail as that user, or as root)"), "as nobody: %s", msg);
    }

    /* a library that cannot be loaded: the call is made, fails, and the
     * thread goes back to where it was */
    char *lib = strdup(mt_env("MEMTRAIL_LIB"));
    setenv("MEMTRAIL_LIB", "/etc/hostname", 1);
    at_attach(proc.pid, 1, "could not load /etc/hostname: /etc/hostname: ");
    setenv("MEMTRAIL_LIB", lib, 1);
    free(lib);

    /* attached twice */
    at_attach(proc.pid, 0, "memtrail: attached to process");
    at_attach(proc.pid, 1, "memtrail is already attached to it (memtrail detach PID first)");
    free(at_detach(proc.pid));
    expect_unchanged(&proc);
}

Test(integration, attach_refuses_memtrail_run)
{
    char *prog = mt_program("attachee");
    const char *argv[] = {prog, NULL};
    mt_proc_t proc;
    cr_assert_eq(mt_spawn_traced(mt_dir, NULL, argv, NULL, &proc), 0);
    char line[256];
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)proc.pid, (int)proc.pid);
    FILE *f = fopen(path, "r");
    int child = 0;
    cr_assert_not_null(f);
    cr_assert_eq(fscanf(f, "%d", &child), 1);
    fclose(f);
    at_attach(child, 1, "already runs under memtrail (memtrail run or LD_PRELOAD)");
    char p[16];
    snprintf(p, sizeof(p), "%d", child);
    mt_run_t res;
    at_memtrail((const char *const[]){"detach", p, NULL}, &res);
    cr_expect(strstr(res.err, "a preloaded tracer cannot be detached"), "%s", res.err);
    mt_run_free(&res);
    char out[1024] = "";
    at_command(&proc, "end\n", "done:", out, sizeof(out));
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(prog);
}

Test(integration, attach_refuses_static)
{
    char *prog = mt_program("staticprog");
    if (access(prog, X_OK) != 0)
        cr_skip_test("no static build of staticprog here");
    const char *argv[] = {prog, "wait", NULL};
    mt_proc_t proc;
    cr_assert_eq(mt_spawn_bare(argv, &proc), 0);
    char line[256];
    cr_assert_gt(mt_proc_read_line(&proc, line, sizeof(line), MT_WAIT_MS), 0);
    at_attach(proc.pid, 1, "is statically linked: memtrail loads its tracer with the dynamic loader");
    int status;
    cr_assert_eq(mt_proc_wait(&proc, &status), 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    free(prog);
}

/* The refusal's reason under each kernel.yama.ptrace_scope (no yama here:
 * the scope is read from a file of the test's through the seam), for a
 * process of memtrail's own user. */
Test(integration, attach_yama_messages)
{
    static const struct {
        const char *scope, *says;
    } rows[] = {
        {"1\n", "kernel.yama.ptrace_scope is 1 (only its ancestors may): run memtrail as root, "
                "or sysctl kernel.yama.ptrace_scope=0"},
        {"2\n", "kernel.yama.ptrace_scope is 2 (only with CAP_SYS_PTRACE: run memtrail as root)"},
        {"3\n", "kernel.yama.ptrace_scope is 3, which forbids ptrace until reboot"},
        {"0\n", "(it is not dumpable, memtrail lacks CAP_SYS_PTRACE, or a security module "
                "refuses): run memtrail as root"},
    };
    char path[PATH_MAX], want[512], why[512];
    snprintf(path, sizeof(path), "%s/ptrace_scope", mt_dir);
    mta_yama_scope_path = path;
    pid_t self = getpid();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(rows[i].scope, f);
        fclose(f);
        why[0] = 0;
        mta_not_permitted(self, why, sizeof(why));
        snprintf(want, sizeof(want), "not permitted to trace process %d: %s", (int)self, rows[i].says);
        if (rows[i].scope[0] == '0')
            snprintf(want, sizeof(want), "not permitted to trace process %d %s", (int)self, rows[i].says);
        cr_expect_str_eq(why, want, "scope %c", rows[i].scope[0]);
    }
    /* no yama at all: as scope 0 */
    mta_yama_scope_path = "/nonexistent/ptrace_scope";
    mta_not_permitted(self, why, sizeof(why));
    cr_expect(strstr(why, "it is not dumpable") != NULL, "%s", why);
}

/* The ELF class check behind the 32-bit refusal (no 32-bit program can be
 * built here to run). */
Test(integration, attach_elf_kind)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/elf32", mt_dir);
    unsigned char h[64] = {0x7f, 'E', 'L', 'F', 1, 1, 1};
    h[18] = 3;   /* EM_386 */
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fwrite(h, 1, sizeof(h), f);
    fclose(f);
    cr_expect_eq(mta_elf_kind(path), 32);
    h[4] = 2;
    h[18] = 62;   /* EM_X86_64 */
    f = fopen(path, "w");
    fwrite(h, 1, sizeof(h), f);
    fclose(f);
    cr_expect_eq(mta_elf_kind(path), 64);
    h[18] = 183;  /* EM_AARCH64 */
    f = fopen(path, "w");
    fwrite(h, 1, sizeof(h), f);
    fclose(f);
    cr_expect_eq(mta_elf_kind(path), 0);
    cr_expect_eq(mta_elf_kind("/etc/hostname"), -ENOEXEC);
}
