/*
 * `memtrail attach PID` and `memtrail detach PID`: start and stop tracing a
 * process that is already running, without a debugger.
 *
 * attach: the checks /proc allows first (inject.c, mta_target_inspect: a
 * refusal says why and what to do, and nothing is touched); then one thread
 * of the target is borrowed (mta_inject_begin) to call, in the target,
 * dlopen(the absolute path of libmemtrail.so, RTLD_NOW) and then
 * memtrail_attach(settings) with the settings as "MEMTRAIL_NAME=value"
 * lines (the environment variables' names, include/memtrail_protocol.h),
 * written on the borrowed thread's stack. The library's constructor sees it
 * was loaded late and stays inert until memtrail_attach (preload/hook/late.c).
 * dlopen and the symbols are found in the target's own files and mappings,
 * never at this process's addresses. A library already mapped (an earlier
 * attach, detached since) is dlopen'd again: the loader returns it as it is.
 *
 * detach: memtrail_detach(path buffer) in the mapped library, which writes
 * the `detach` snapshot and puts the GOT slots back; its path is printed.
 *
 * Both block SIGINT, SIGTERM, SIGHUP and SIGQUIT while a call runs in the
 * target (inject.c: the target would not survive our death then).
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "inject.h"
#include "memtrail_protocol.h"

#define WHY_LEN 1024

static const char attach_usage[] =
    "Usage: memtrail attach PID [OPTIONS]\n"
    "\n"
    "Starts tracing process PID, which is already running, without a debugger:\n"
    "memtrail stops one of its threads with ptrace for a moment, makes it load\n"
    "libmemtrail.so and start the tracer, and lets it go; the other threads run\n"
    "on. From then on the process writes snapshots as under memtrail run:\n"
    "memtrail snapshot PID for one now, --interval, one when it exits, and one\n"
    "(trigger detach) at memtrail detach PID, which stops tracing. Only what is\n"
    "allocated after the attach is traced: every snapshot says when tracing\n"
    "began, and blocks allocated before are not in it. SIGTERM and SIGINT,\n"
    "where the process leaves them to their default action, write an exit\n"
    "snapshot first. A CPython process gets its Python allocator hooks, and\n"
    "Python stacks, when its main thread next runs Python code (a snapshot\n"
    "says how long after the attach that was). Needs permission to ptrace PID\n"
    "(the same user, or root; kernel.yama.ptrace_scope).\n"
    "\n"
    "Options:\n"
    "  -o, --output DIR      directory for the snapshots (default: .; created)\n"
    "  -i, --interval SEC    also write a snapshot every SEC seconds (decimals\n"
    "                        allowed; 0 = never, the default)\n"
    "  -u, --unwind METHOD   libunwind (default, exact) or fp (frame pointers,\n"
    "                        faster, needs -fno-omit-frame-pointer)\n"
    "  -d, --depth N         record at most N frames per stack (1-" MTPROTO_STR(MTPROTO_MAX_DEPTH)
    ", default " MTPROTO_STR(MTPROTO_DEFAULT_DEPTH) ")\n"
    "  -l, --leak-check WHEN when to classify lost blocks: exit (default), all\n"
    "                        or off\n"
    "      --mmap WHICH      which mappings made after the attach the mmap\n"
    "                        domain records: anon (default), all or off\n"
    "  -h, --help            show this help\n"
    "\n"
    "Environment: " MTPROTO_ENV_LIB " overrides the path of " MTPROTO_LIB_NAME ".\n"
    "Exit status: 0 when tracing started; 1 when the process could not be\n"
    "attached to (the reason and what to do are printed); 2 on bad usage.\n";

static const char detach_usage[] =
    "Usage: memtrail detach PID\n"
    "\n"
    "Stops tracing process PID, which memtrail attach PID started: the process\n"
    "writes a last snapshot (trigger detach), whose path is printed, puts its\n"
    "allocator calls back as they were and runs on untraced. libmemtrail.so\n"
    "stays loaded, inert; memtrail attach PID may start tracing again.\n"
    "\n"
    "Options:\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 when tracing stopped; 1 when it could not be stopped (the\n"
    "reason is printed); 2 on bad usage.\n";

static const char attach_shortopts[] = ":o:i:u:d:l:h";
static const struct option attach_longopts[] = {
    { "output", required_argument, NULL, 'o' },
    { "interval", required_argument, NULL, 'i' },
    { "unwind", required_argument, NULL, 'u' },
    { "depth", required_argument, NULL, 'd' },
    { "leak-check", required_argument, NULL, 'l' },
    { "mmap", required_argument, NULL, 'M' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t attach_args[] = {
    { 'o', MTA_ARG_DIR, NULL },
    { 'u', MTA_ARG_WORD, mta_unwind_word },
    { 'l', MTA_ARG_WORD, mta_leak_check_word },
    { 'M', MTA_ARG_WORD, mta_mmap_word },
    { 0, MTA_ARG_PID, NULL },
    { 0, MTA_ARG_END, NULL },
};
static const char detach_shortopts[] = ":h";
static const struct option detach_longopts[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};
static const mta_arg_t detach_args[] = {
    { 0, MTA_ARG_PID, NULL },
    { 0, MTA_ARG_END, NULL },
};

/* The signals that would end us while a call runs in the target. */
static void block_endings(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigprocmask(SIG_BLOCK, &set, old);
}

static int parse_pid(const char *cmd, int argc, char **argv, const char *usage, pid_t *pid)
{
    uint64_t v;
    if (mta_cli_one_operand(cmd, argc, argv, optind, "PID", usage))
        return MTA_EXIT_USAGE;
    if (mta_parse_uint(argv[optind], 1, 0x7fffffff, &v) < 0) {
        mta_cli_error(cmd, "invalid PID '%s'", argv[optind]);
        return MTA_EXIT_USAGE;
    }
    *pid = (pid_t)v;
    return 0;
}

/* Appends "NAME=value\n". */
static void setting(char *buf, size_t cap, const char *name, const char *value)
{
    size_t used = strlen(buf);
    if (value && used < cap)
        snprintf(buf + used, cap - used, "%s=%s\n", name, value);
}

/* Why memtrail_attach or memtrail_detach refused, from its -errno. */
static const char *lib_refusal(long r)
{
    switch (r) {
    case -EEXIST: return "it already runs under memtrail (memtrail run or LD_PRELOAD): use "
                         "memtrail snapshot PID; a preloaded tracer cannot be detached";
    case -EALREADY: return "memtrail is already attached to it (memtrail detach PID first)";
    case -ENOENT: return "memtrail is not attached to it";
    case -EBUSY: return "another memtrail attach or detach is running on it";
    case -EDEADLK: return "no thread but memtrail's own could be borrowed to stop it";
    case -ENOSYS: return "its allocator (malloc, free) cannot be found";
    case -ETIMEDOUT: return "memtrail's writer thread has not ended within 30 s: tracing is "
                            "off, and memtrail's hooks stay in place, passing every call through";
    default: return NULL;
    }
}

static int attach_main(int argc, char **argv)
{
    const char *output = MTPROTO_DEFAULT_OUTPUT, *interval = MTPROTO_DEFAULT_INTERVAL,
               *unwind = MTPROTO_UNWIND_LIBUNWIND, *depth = MTPROTO_STR(MTPROTO_DEFAULT_DEPTH),
               *leak_check = MTPROTO_LEAK_CHECK_EXIT, *mmap = MTPROTO_MMAP_ANON;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, attach_shortopts, attach_longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'i': interval = optarg; break;
        case 'u': unwind = optarg; break;
        case 'd': depth = optarg; break;
        case 'l': leak_check = optarg; break;
        case 'M': mmap = optarg; break;
        case 'h': fputs(attach_usage, stdout); return MTA_EXIT_OK;
        default: return mta_cli_bad_option("attach", c, argv);
        }
    }
    pid_t pid;
    if (parse_pid("attach", argc, argv, "memtrail attach PID [OPTIONS]", &pid))
        return MTA_EXIT_USAGE;
    double sec;
    uint64_t v;
    char *end;
    sec = strtod(interval, &end);
    if (end == interval || *end || !(sec >= 0 && sec <= 1e6) || (sec > 0 && sec < 0.001)) {
        mta_cli_error("attach", "invalid --interval '%s' (seconds, at least 0.001; 0 = off)",
                      interval);
        return MTA_EXIT_USAGE;
    }
    if (mta_cli_choice("attach", "unwind", mta_unwind_word, unwind) < 0 ||
        mta_cli_choice("attach", "leak-check", mta_leak_check_word, leak_check) < 0 ||
        mta_cli_choice("attach", "mmap", mta_mmap_word, mmap) < 0)
        return MTA_EXIT_USAGE;
    if (mta_parse_uint(depth, 1, MTPROTO_MAX_DEPTH, &v) < 0) {
        mta_cli_error("attach", "invalid --depth '%s' (1 to " MTPROTO_STR(MTPROTO_MAX_DEPTH) ")",
                      depth);
        return MTA_EXIT_USAGE;
    }
    if (!output[0]) {
        mta_cli_error("attach", "empty --output directory");
        return MTA_EXIT_USAGE;
    }

    char why[WHY_LEN];
    mta_target_t t;
    if (mta_target_inspect(pid, &t, why, sizeof(why)) < 0) {
        mta_cli_error("attach", "%s", why);
        return MTA_EXIT_FAIL;
    }
    if (t.preloaded) {
        mta_cli_error("attach", "process %d: %s", (int)pid, lib_refusal(-EEXIST));
        return MTA_EXIT_FAIL;
    }
    int rc = mta_cli_make_dirs(output);
    if (rc < 0) {
        mta_cli_error("attach", "cannot create %s: %s", output, strerror(-rc));
        return MTA_EXIT_USAGE;
    }
    char *dir = realpath(output, NULL);
    char *lib = dir ? mta_cli_find_library("attach") : NULL;
    int status = MTA_EXIT_FAIL;
    if (!dir)
        mta_cli_error("attach", "%s: %s", output, strerror(errno));
    if (!lib)
        goto out_free;
    if (t.memtrail.path[0] && strcmp(t.memtrail.path, lib) != 0) {
        mta_cli_error("attach", "process %d maps another %s (%s): use the memtrail it belongs to",
                      (int)pid, MTPROTO_LIB_NAME, t.memtrail.path);
        goto out_free;
    }

    /* The data written into the target: the library's path, then the settings. */
    char data[PATH_MAX + 4096];
    size_t plen = strlen(lib) + 1;
    char *settings = data + plen;
    memcpy(data, lib, plen);
    settings[0] = 0;
    size_t cap = sizeof(data) - plen;
    setting(settings, cap, MTPROTO_ENV_OUTPUT, dir);
    setting(settings, cap, MTPROTO_ENV_INTERVAL, interval);
    setting(settings, cap, MTPROTO_ENV_UNWIND, unwind);
    setting(settings, cap, MTPROTO_ENV_DEPTH, depth);
    setting(settings, cap, MTPROTO_ENV_LEAK_CHECK, leak_check);
    setting(settings, cap, MTPROTO_ENV_MMAP, mmap);
    /* Passed on from our environment when set: where symbols are cached,
     * and the diagnostics the tests use. */
    static const char *const passed[] = { MTPROTO_ENV_SYMCACHE, MTPROTO_ENV_WARM, MTPROTO_ENV_CFI,
                                          MTPROTO_ENV_STOP };
    for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
        setting(settings, cap, passed[i], getenv(passed[i]));

    uintptr_t fn_dlopen, fn_dlerror;
    if (mta_target_symbol(pid, &t.libc, "dlopen", &fn_dlopen) < 0 ||
        mta_target_symbol(pid, &t.libc, "dlerror", &fn_dlerror) < 0) {
        mta_cli_error("attach", "process %d: no dlopen in %s (glibc 2.34 or later is needed)",
                      (int)pid, t.libc.path);
        goto out_free;
    }
    sigset_t old;
    block_endings(&old);
    mta_inject_t s;
    if (mta_inject_begin(&s, &t, why, sizeof(why)) < 0) {
        mta_cli_error("attach", "%s", why);
        goto out_unblock;
    }
    uintptr_t at, ret = 0;
    rc = mta_inject_data(&s, data, plen + strlen(settings) + 1, &at);
    if (rc < 0) {
        mta_cli_error("attach", "cannot write into process %d: %s", (int)pid, strerror(-rc));
        goto out_end;
    }
    uintptr_t args[2] = { at, RTLD_NOW };
    if (mta_inject_call(&s, fn_dlopen, args, 2, &ret, why, sizeof(why)) < 0) {
        mta_cli_error("attach", "%s", why);
        goto out_end;
    }
    if (!ret) {
        char msg[512] = "";
        uintptr_t m = 0;
        if (mta_inject_call(&s, fn_dlerror, NULL, 0, &m, why, sizeof(why)) == 0 && m)
            mta_inject_read_string(&s, m, msg, sizeof(msg));
        mta_cli_error("attach", "process %d could not load %s: %s", (int)pid, lib,
                      msg[0] ? msg : "dlopen failed");
        goto out_end;
    }
    uintptr_t fn_attach;
    if (mta_target_refresh(&t) < 0 ||
        mta_target_symbol(pid, &t.memtrail, "memtrail_attach", &fn_attach) < 0) {
        mta_cli_error("attach", "process %d: memtrail_attach not found in %s", (int)pid, lib);
        goto out_end;
    }
    args[0] = at + plen;
    if (mta_inject_call(&s, fn_attach, args, 1, &ret, why, sizeof(why)) < 0) {
        mta_cli_error("attach", "%s", why);
        goto out_end;
    }
    int r = (int)(int32_t)ret;
    if (r < 0) {
        const char *reason = lib_refusal(r);
        mta_cli_error("attach", "process %d: %s", (int)pid, reason ? reason : strerror(-r));
        goto out_end;
    }
    fprintf(stderr, "memtrail: attached to process %d (%d allocator, mmap and signal calls redirected); "
            "snapshots go to %s; memtrail detach %d stops tracing\n", (int)pid, r, dir, (int)pid);
    status = MTA_EXIT_OK;
out_end:
    mta_inject_end(&s);
out_unblock:
    sigprocmask(SIG_SETMASK, &old, NULL);
out_free:
    free(lib);
    free(dir);
    return status;
}

static int detach_main(int argc, char **argv)
{
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, detach_shortopts, detach_longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(detach_usage, stdout);
            return MTA_EXIT_OK;
        }
        return mta_cli_bad_option("detach", c, argv);
    }
    pid_t pid;
    if (parse_pid("detach", argc, argv, "memtrail detach PID", &pid))
        return MTA_EXIT_USAGE;
    char why[WHY_LEN];
    mta_target_t t;
    if (mta_target_inspect(pid, &t, why, sizeof(why)) < 0) {
        mta_cli_error("detach", "%s", why);
        return MTA_EXIT_FAIL;
    }
    uintptr_t fn_detach;
    if (!t.memtrail.path[0] || t.preloaded) {
        mta_cli_error("detach", "process %d: %s", (int)pid,
                      lib_refusal(t.preloaded ? -EEXIST : -ENOENT));
        return MTA_EXIT_FAIL;
    }
    if (mta_target_symbol(pid, &t.memtrail, "memtrail_detach", &fn_detach) < 0) {
        mta_cli_error("detach", "process %d: %s has no memtrail_detach (another version of "
                      "memtrail?)", (int)pid, t.memtrail.path);
        return MTA_EXIT_FAIL;
    }
    int status = MTA_EXIT_FAIL;
    sigset_t old;
    block_endings(&old);
    mta_inject_t s = { .exclude = 0 };
    char path[PATH_MAX + 64];
    uintptr_t at, ret = 0;
    int r;
    for (;;) {
        if (mta_inject_begin(&s, &t, why, sizeof(why)) < 0) {
            mta_cli_error("detach", "%s", why);
            goto out_unblock;
        }
        memset(path, 0, sizeof(path));
        int rc = mta_inject_data(&s, path, sizeof(path), &at);
        uintptr_t args[2] = { at, sizeof(path) };
        if (rc < 0) {
            mta_cli_error("detach", "cannot write into process %d: %s", (int)pid, strerror(-rc));
            goto out_end;
        }
        if (mta_inject_call(&s, fn_detach, args, 2, &ret, why, sizeof(why)) < 0) {
            mta_cli_error("detach", "%s", why);
            goto out_end;
        }
        r = (int)(int32_t)ret;
        if (r != -EDEADLK || s.exclude)
            break;
        /* The thread borrowed was memtrail's writer: another one. */
        s.exclude = s.tid;
        mta_inject_end(&s);
    }
    if (r == -ENOENT || r == -EEXIST || r == -EBUSY || r == -EDEADLK) {
        mta_cli_error("detach", "process %d: %s", (int)pid, lib_refusal(r));
        goto out_end;
    }
    mta_inject_read_string(&s, at, path, sizeof(path));
    if (r < 0)   /* tracing stopped all the same */
        mta_cli_error("detach", "process %d: tracing stopped, but its last snapshot could not be "
                      "written: %s", (int)pid, strerror(-r));
    else
        printf("%s\n", path);
    status = r < 0 ? MTA_EXIT_FAIL : MTA_EXIT_OK;
out_end:
    mta_inject_end(&s);
out_unblock:
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (fflush(stdout) != 0)
        status = MTA_EXIT_FAIL;
    return status;
}

const mta_command_t mta_cmd_attach = {
    .name = "attach",
    .summary = "start tracing a running process",
    .usage = attach_usage,
    .shortopts = attach_shortopts,
    .longopts = attach_longopts,
    .args = attach_args,
    .main = attach_main,
};

const mta_command_t mta_cmd_detach = {
    .name = "detach",
    .summary = "stop tracing a process memtrail attach started",
    .usage = detach_usage,
    .shortopts = detach_shortopts,
    .longopts = detach_longopts,
    .args = detach_args,
    .main = detach_main,
};
