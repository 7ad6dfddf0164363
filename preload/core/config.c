/* The preload's configuration, read from the environment once at start
 * (names and defaults: include/memtrail_protocol.h), and the process's
 * identity for snapshot headers. Start-up only, single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/util.h"
#include "core/core.h"
#include "leak/stopworld.h"
#include "memtrail_protocol.h"
#include "memtrail_sample.h"
#include "memtrail_signal.h"

/* ---- configuration ---- */
/* Settings given to memtrail_attach (hook/late.c): "NAME=value" lines whose
 * names are the environment variables' (include/memtrail_protocol.h). Copied:
 * the caller's string lives on the injected call's stack. When set, the
 * MEMTRAIL_* variables are read from here and not from the environment
 * (fixed when the process started). */
#define SETTINGS_MAX 8192
static MTP_LARGE char settings[SETTINGS_MAX];
static int use_settings;

int mtp_config_settings(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= sizeof(settings))
        return -E2BIG;
    memcpy(settings, s ? s : "", n + 1);
    use_settings = 1;
    return 0;
}

/* A MEMTRAIL_* variable: from the settings when given, else the environment. */
static const char *cfg_get(const char *name)
{
    static MTP_LARGE char value[PATH_MAX + 64];
    if (!use_settings)
        return getenv(name);
    size_t len = strlen(name);
    for (const char *p = settings; *p;) {
        const char *end = strchr(p, '\n');
        size_t line = end ? (size_t)(end - p) : strlen(p);
        if (line > len && p[len] == '=' && memcmp(p, name, len) == 0) {
            size_t vlen = line - len - 1;
            if (vlen >= sizeof(value))
                vlen = sizeof(value) - 1;
            memcpy(value, p + len + 1, vlen);
            value[vlen] = 0;
            return value;
        }
        p += line + (end != NULL);
    }
    return NULL;
}

/* The symbol cache directory (writer/symcache.c): MEMTRAIL_SYMCACHE, else
 * $XDG_CACHE_HOME/memtrail/symbols, else ~/.cache/memtrail/symbols; none for
 * a set-id program (AT_SECURE) or without a home. Only a directory the user
 * named gets a warning when it cannot be used (a read-only home must not make
 * every traced process print one). */
static void config_symcache(const char *cwd)
{
    const char *v = cfg_get(MTPROTO_ENV_SYMCACHE), *base;
    char *out = mtp_cfg.symcache;
    size_t cap = sizeof(mtp_cfg.symcache);
    int n = 0;

    out[0] = 0;
    if (getauxval(AT_SECURE) || (v && !strcmp(v, MTPROTO_SYMCACHE_OFF)))
        return;
    mtp_cfg.symcache_set = v && *v;
    if (v && *v)
        n = v[0] == '/' ? snprintf(out, cap, "%s", v) : snprintf(out, cap, "%s/%s", cwd, v);
    else if ((base = getenv("XDG_CACHE_HOME")) && base[0] == '/')
        n = snprintf(out, cap, "%s/" MTPROTO_SYMCACHE_SUBDIR, base);
    else if ((base = getenv("HOME")) && base[0] == '/')
        n = snprintf(out, cap, "%s/.cache/" MTPROTO_SYMCACHE_SUBDIR, base);
    if (n < 0 || (size_t)n >= cap)
        out[0] = 0;
}

void mtp_config_read(void)
{
    const char *v;
    char cwd[PATH_MAX];

    if (!getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), "/tmp");
    v = cfg_get(MTPROTO_ENV_OUTPUT);
    if (!v || !*v)
        snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s", cwd);
    else if (v[0] == '/')
        snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s", v);
    else if (snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s/%s", cwd, v) >=
             (int)sizeof(mtp_cfg.outdir))
        mtp_warn(MTPROTO_ENV_OUTPUT "=%s: path too long", v);

    if ((v = cfg_get(MTPROTO_ENV_INTERVAL)) && *v) {
        char *end;
        double sec = strtod(v, &end);
        if (*end || sec < 0 || sec > 1e6)
            mtp_warn("ignoring " MTPROTO_ENV_INTERVAL "=%s (seconds expected)", v);
        else
            mtp_cfg.interval_ms = (unsigned)(sec * 1000.0 + 0.5);
    }
    mtp_cfg.signo = mtsig_parse(MTPROTO_DEFAULT_SIGNAL);
    if ((v = cfg_get(MTPROTO_ENV_SIGNAL)) && *v) {
        int s = mtsig_parse(v);
        if (s < 0)
            mtp_warn("ignoring " MTPROTO_ENV_SIGNAL "=%s (unknown signal)", v);
        else
            mtp_cfg.signo = s;
    }
    if ((v = cfg_get(MTPROTO_ENV_FOLLOW)) && !strcmp(v, "0"))
        mtp_cfg.follow = 0;
    if ((v = cfg_get(MTPROTO_ENV_UNWIND)) && *v) {
        if (!strcmp(v, MTPROTO_UNWIND_FP))
            mtp_cfg.unwind = MTSNAP_UNWIND_FP;
        else if (strcmp(v, MTPROTO_UNWIND_LIBUNWIND) != 0)
            mtp_warn("ignoring " MTPROTO_ENV_UNWIND "=%s (libunwind or fp)", v);
    }
    /* Diagnostic: MEMTRAIL_CFI=0 sends every stack through unw_backtrace. */
    if ((v = cfg_get(MTPROTO_ENV_CFI)) && !strcmp(v, "0"))
        mtp_cfg.cfi = 0;
    /* Diagnostic: MEMTRAIL_WARM=0 leaves the writer's background naming of
     * frames off (the program's own mappings then land exactly as they
     * would with nothing mapped meanwhile: tests rely on it). */
    if ((v = cfg_get(MTPROTO_ENV_WARM)) && !strcmp(v, "0"))
        mtp_cfg.warm = 0;
    /* Diagnostic: MEMTRAIL_PY_REUSE=0 leaves CPython's free-list reuses
     * unfollowed (hook/pyreuse.c): a reused object keeps the line that first
     * allocated its block, and snapshots carry MTSNAP_META_F_PY_NO_REUSE, as
     * where it cannot be done. To measure what following them costs. */
    if ((v = cfg_get(MTPROTO_ENV_PY_REUSE)) && !strcmp(v, "0"))
        mtp_cfg.py_reuse = 0;
    /* Diagnostic: MEMTRAIL_PY_MEMO=0 walks every Python stack in full
     * (python/pystack.c's memo left out): the same stacks, to compare. */
    if ((v = cfg_get(MTPROTO_ENV_PY_MEMO)) && !strcmp(v, "0"))
        mtp_cfg.py_memo = 0;
    /* Diagnostic: MEMTRAIL_STOP=signal makes the leak scan stop threads as
     * when ptrace is refused (leak/stopworld.c; tests run both ways). */
    if ((v = cfg_get(MTPROTO_ENV_STOP)) && !strcmp(v, MTPROTO_STOP_SIGNAL))
        mtp_stopworld_use_signal();
    if ((v = cfg_get(MTPROTO_ENV_NATIVE)) && *v) {
        if (!strcmp(v, "1"))
            mtp_cfg.native = 1;
        else if (strcmp(v, "0") != 0)
            mtp_warn("ignoring " MTPROTO_ENV_NATIVE "=%s (0 or 1)", v);
    }
    mtp_cfg.leak_check = MTP_LEAK_EXIT;
    if ((v = cfg_get(MTPROTO_ENV_LEAK_CHECK)) && *v) {
        if (!strcmp(v, MTPROTO_LEAK_CHECK_OFF))
            mtp_cfg.leak_check = MTP_LEAK_OFF;
        else if (!strcmp(v, MTPROTO_LEAK_CHECK_ALL))
            mtp_cfg.leak_check = MTP_LEAK_ALL;
        else if (strcmp(v, MTPROTO_LEAK_CHECK_EXIT) != 0)
            mtp_warn("ignoring " MTPROTO_ENV_LEAK_CHECK "=%s (exit, all or off)", v);
    }
    mtp_cfg.mmap = MTP_MMAP_ANON;
    if ((v = cfg_get(MTPROTO_ENV_MMAP)) && *v) {
        if (!strcmp(v, MTPROTO_MMAP_ALL))
            mtp_cfg.mmap = MTP_MMAP_ALL;
        else if (!strcmp(v, MTPROTO_MMAP_OFF))
            mtp_cfg.mmap = MTP_MMAP_OFF;
        else if (strcmp(v, MTPROTO_MMAP_ANON) != 0)
            mtp_warn("ignoring " MTPROTO_ENV_MMAP "=%s (anon, all or off)", v);
    }
    if ((v = cfg_get(MTPROTO_ENV_SAMPLE)) && mtsample_parse(v, &mtp_cfg.sample) < 0)
        mtp_warn("ignoring " MTPROTO_ENV_SAMPLE "=%s (a mean such as 512KiB, up to 1TiB; on or off)",
                 v);
    config_symcache(cwd);
    if ((v = cfg_get(MTPROTO_ENV_NAME)) && *v) {
        if (!mtproto_name_ok(v))
            mtp_warn("ignoring " MTPROTO_ENV_NAME "=%s (no '/', no leading '.', at most %d bytes)",
                     v, MTPROTO_NAME_MAX);
        else
            snprintf(mtp_cfg.name, sizeof(mtp_cfg.name), "%s", v);
    }
    if ((v = cfg_get(MTPROTO_ENV_NAME_PID)) && *v) {
        char *end;
        long pid = strtol(v, &end, 10);
        if (*end || pid < 1)
            mtp_warn("ignoring " MTPROTO_ENV_NAME_PID "=%s (a pid)", v);
        else
            mtp_cfg.name_pid = pid;
    }
    if ((v = cfg_get(MTPROTO_ENV_EXIT_LOCK)) && *v) {   /* "PID:PATH", set by `memtrail run` */
        char *end;
        long pid = strtol(v, &end, 10);
        if (pid > 0 && end[0] == ':' && end[1] == '/' &&
            strlen(end + 1) < sizeof(mtp_cfg.exit_lock)) {
            mtp_cfg.exit_waiter = pid;
            snprintf(mtp_cfg.exit_lock, sizeof(mtp_cfg.exit_lock), "%s", end + 1);
        }
    }
    if ((v = cfg_get(MTPROTO_ENV_DEPTH)) && *v) {
        char *end;
        long d = strtol(v, &end, 10);
        if (*end || d < 1 || d > MTP_MAX_DEPTH)
            mtp_warn("ignoring " MTPROTO_ENV_DEPTH "=%s (1 to %d)", v, MTP_MAX_DEPTH);
        else
            mtp_cfg.depth = (unsigned)d;
    }
}

/* --no-follow: drop our entry from LD_PRELOAD in place (no allocation), so
 * programs this one execs run untraced. */
void mtp_config_unfollow(void)
{
    char *p = getenv("LD_PRELOAD"), *w = p;
    if (!p)
        return;
    for (char *r = p; *r;) {
        while (*r == ':' || *r == ' ')
            r++;
        char *start = r;
        while (*r && *r != ':' && *r != ' ')
            r++;
        size_t len = (size_t)(r - start);
        const char *base = memrchr(start, '/', len);
        base = base ? base + 1 : start;
        if (len == 0 || !strncmp(base, MTPROTO_LIB_STEM, sizeof(MTPROTO_LIB_STEM) - 1))
            continue;
        if (w != p)
            *w++ = ':';
        memmove(w, start, len);
        w += len;
    }
    *w = 0;
}

/* The command line as /proc/self/cmdline gives it (its first bytes), from
 * the constructor's argv when preloaded: the same bytes, one file fewer to
 * open in every process. */
static void cmdline_read(void)
{
    size_t cap = sizeof(mtp_proc.cmdline) - 1, len = 0;
    if (mtp_boot_argv) {
        for (int i = 0; i < mtp_boot_argc && mtp_boot_argv[i] && len < cap; i++) {
            size_t n = strlen(mtp_boot_argv[i]) + 1;
            if (n > cap - len)
                n = cap - len;
            memcpy(mtp_proc.cmdline + len, mtp_boot_argv[i], n);
            len += n;
        }
    } else {
        int fd = mtp_seams.proc_open("/proc/self/cmdline");
        if (fd < 0)
            return;
        ssize_t n = read(fd, mtp_proc.cmdline, cap);
        len = n > 0 ? (size_t)n : 0;
        close(fd);
    }
    while (len && mtp_proc.cmdline[len - 1] == 0)
        len--;
    mtp_proc.cmdline_len = len;
}

void mtp_process_read(void)
{
    cmdline_read();
    ssize_t n = readlink("/proc/self/exe", mtp_proc.exe, sizeof(mtp_proc.exe) - 1);
    mtp_proc.exe[n > 0 ? n : 0] = 0;
    if (gethostname(mtp_proc.hostname, sizeof(mtp_proc.hostname) - 1) < 0)
        mtp_proc.hostname[0] = 0;
    mtp_start_ns = mtp_now_ns();
}

