/* Process-level control of the preload: start-up (configuration from the
 * environment), the snapshot signal, fork handlers, exit, and the public API. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "memtrail.h"
#include "memtrail_signal.h"
#include "leakscan.h"
#include "writer.h"

mtp_config_t mtp_cfg = {.depth = MTP_DEFAULT_DEPTH, .follow = 1, .cfi = 1};
_Atomic uint64_t mtp_counter;
_Atomic int mtp_tracing;
pid_t mtp_pid;

static _Atomic int exit_done;        /* atomic: the exit snapshot was taken */
static _Atomic int exit_by_python;   /* atomic: ...when the interpreter began to finalize */
static _Atomic int final_done;       /* atomic: the final snapshot was taken */
static uint64_t start_ns;            /* set at start and in a fork child */
static char cmdline[4096];           /* read-only after start */
static size_t cmdline_len;
static char exe[PATH_MAX];
static char hostname[256];

/* ---- messages: one line on stderr, written with write(2) (no stdio lock) ---- */
static void vwarn(const char *fmt, va_list ap)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "memtrail: ");
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, (size_t)n);
    (void)r;
}

void mtp_warn(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    errno = saved;
}

void mtp_warn_once(int *flag, const char *fmt, ...)
{
    if (__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED))
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    errno = saved;
}

uint64_t mtp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mtp_process_info(mtp_snapinfo_t *info)
{
    info->start_ns = start_ns;
    info->cmdline = cmdline;
    info->cmdline_len = cmdline_len;
    info->exe = exe;
    info->hostname = hostname;
}

/* ---- configuration ---- */
static void read_config(void)
{
    const char *v;
    char cwd[PATH_MAX];

    if (!getcwd(cwd, sizeof(cwd)))
        snprintf(cwd, sizeof(cwd), "/tmp");
    v = getenv("MEMTRAIL_OUTPUT");
    if (!v || !*v)
        snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s", cwd);
    else if (v[0] == '/')
        snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s", v);
    else if (snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s/%s", cwd, v) >=
             (int)sizeof(mtp_cfg.outdir))
        mtp_warn("MEMTRAIL_OUTPUT=%s: path too long", v);

    if ((v = getenv("MEMTRAIL_INTERVAL")) && *v) {
        char *end;
        double sec = strtod(v, &end);
        if (*end || sec < 0 || sec > 1e6)
            mtp_warn("ignoring MEMTRAIL_INTERVAL=%s (seconds expected)", v);
        else
            mtp_cfg.interval_ms = (unsigned)(sec * 1000.0 + 0.5);
    }
    mtp_cfg.signo = SIGRTMAX - 3;
    if ((v = getenv("MEMTRAIL_SIGNAL")) && *v) {
        int s = mtsig_parse(v);
        if (s < 0)
            mtp_warn("ignoring MEMTRAIL_SIGNAL=%s (unknown signal)", v);
        else
            mtp_cfg.signo = s;
    }
    if ((v = getenv("MEMTRAIL_FOLLOW")) && !strcmp(v, "0"))
        mtp_cfg.follow = 0;
    if ((v = getenv("MEMTRAIL_UNWIND")) && *v) {
        if (!strcmp(v, "fp"))
            mtp_cfg.unwind = MTSNAP_UNWIND_FP;
        else if (strcmp(v, "libunwind") != 0)
            mtp_warn("ignoring MEMTRAIL_UNWIND=%s (libunwind or fp)", v);
    }
    /* Diagnostic: MEMTRAIL_CFI=0 sends every stack through unw_backtrace. */
    if ((v = getenv("MEMTRAIL_CFI")) && !strcmp(v, "0"))
        mtp_cfg.cfi = 0;
    if ((v = getenv("MEMTRAIL_NATIVE")) && *v) {
        if (!strcmp(v, "1"))
            mtp_cfg.native = 1;
        else if (strcmp(v, "0") != 0)
            mtp_warn("ignoring MEMTRAIL_NATIVE=%s (0 or 1)", v);
    }
    mtp_cfg.leak_check = MTP_LEAK_EXIT;
    if ((v = getenv("MEMTRAIL_LEAK_CHECK")) && *v) {
        if (!strcmp(v, "off"))
            mtp_cfg.leak_check = MTP_LEAK_OFF;
        else if (!strcmp(v, "all"))
            mtp_cfg.leak_check = MTP_LEAK_ALL;
        else if (strcmp(v, "exit") != 0)
            mtp_warn("ignoring MEMTRAIL_LEAK_CHECK=%s (exit, all or off)", v);
    }
    if ((v = getenv("MEMTRAIL_DEPTH")) && *v) {
        char *end;
        long d = strtol(v, &end, 10);
        if (*end || d < 1 || d > MTP_MAX_DEPTH)
            mtp_warn("ignoring MEMTRAIL_DEPTH=%s (1 to %d)", v, MTP_MAX_DEPTH);
        else
            mtp_cfg.depth = (unsigned)d;
    }
}

/* --no-follow: drop our entry from LD_PRELOAD in place (no allocation), so
 * programs this one execs run untraced. */
static void unfollow(void)
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
        if (len == 0 || !strncmp(base, "libmemtrail", 11))
            continue;
        if (w != p)
            *w++ = ':';
        memmove(w, start, len);
        w += len;
    }
    *w = 0;
}

static void read_process_info(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
        cmdline_len = n > 0 ? (size_t)n : 0;
        while (cmdline_len && cmdline[cmdline_len - 1] == 0)
            cmdline_len--;
        close(fd);
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    if (gethostname(hostname, sizeof(hostname) - 1) < 0)
        hostname[0] = 0;
    start_ns = mtp_now_ns();
}

/* ---- signal, fork, exit ---- */
static void on_snapshot_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    (void)sig;
    (void)uc;
    if (getpid() == mtp_pid) {
        int queued = si && si->si_code == SI_QUEUE;
        mtp_snapshot_from_signal(queued ? si->si_pid : 0, queued ? si->si_value.sival_int : 0);
    }
    errno = saved;
}

static void atfork_prepare(void)
{
    if (atomic_load(&mtp_tracing))
        mtp_writer_atfork_prepare();
}

static void atfork_parent(void)
{
    if (atomic_load(&mtp_tracing))
        mtp_writer_atfork_parent();
}

static void atfork_child(void)
{
    if (!atomic_load(&mtp_tracing))
        return;
    mtp_pid = getpid();
    start_ns = mtp_now_ns();
    atomic_store(&exit_done, 0);
    atomic_store(&exit_by_python, 0);
    atomic_store(&final_done, 0);
    mtp_ring_atfork_child(mtp_tls_thread);
    mtp_writer_atfork_child();
}

/* Process exit (destructor, _exit): the `exit` snapshot, or in a Python
 * process whose interpreter already gave it, the `final` one. */
void mtp_exit_snapshot(void)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid)
        return;
    int trigger = MTSNAP_TRIGGER_EXIT;
    if (atomic_exchange(&exit_done, 1)) {
        if (!atomic_load(&exit_by_python) || atomic_exchange(&final_done, 1))
            return;
        trigger = MTSNAP_TRIGGER_FINAL;
    }
    int saved = errno;
    mtp_snapshot_sync(trigger, NULL, NULL, 0, NULL);
    atomic_store(&mtp_tracing, 0);
    errno = saved;
}

/* The interpreter begins to finalize (atexit callback, GIL held): the view
 * a Python user expects at exit, module globals still alive. Tracing goes on
 * for the `final` snapshot. */
void mtp_python_exit_snapshot(void)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid || atomic_exchange(&exit_done, 1))
        return;
    atomic_store(&exit_by_python, 1);
    int saved = errno;
    mtp_pygraph_t *graph = mtp_cfg.leak_check != MTP_LEAK_OFF ? mtp_pygraph_capture() : NULL;
    mtp_snapshot_sync(MTSNAP_TRIGGER_EXIT, NULL, NULL, 0, graph);
    mtp_pygraph_free(graph);
    errno = saved;
}

int mtp_api_snapshot(const char *label, char *path, size_t pathlen, mtp_pygraph_t *graph)
{
    if (!atomic_load(&mtp_tracing) || getpid() != mtp_pid)
        return -ECANCELED;
    return mtp_snapshot_sync(MTSNAP_TRIGGER_API, label, path, pathlen, graph);
}

MTP_EXPORT int memtrail_snapshot(const char *label)
{
    return mtp_api_snapshot(label, NULL, 0, NULL);
}

__attribute__((constructor)) static void mtp_init(void)
{
    int saved = errno;
    mtp_tls_guard = MTP_GUARD_HOOK;
    if (mtp_hooks_resolve() < 0) {
        mtp_warn("cannot find the C library's allocator: tracing disabled");
        goto out;
    }
    read_config();
    if (!mtp_cfg.follow)
        unfollow();
    mtp_pid = getpid();
    read_process_info();
    if (mtp_stacktab_init() < 0 || mtp_unwind_init() < 0) {
        mtp_warn("cannot set up the stack table: tracing disabled");
        goto out;
    }
    mtp_leakscan_init();
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    int r = mtp_writer_start();
    if (r < 0) {
        mtp_warn("cannot start the writer thread (%s): tracing disabled", strerror(-r));
        goto out;
    }
    if (mtp_cfg.signo > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_snapshot_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(mtp_cfg.signo, &sa, NULL) < 0)
            mtp_warn("cannot install the snapshot signal %d: %s", mtp_cfg.signo, strerror(errno));
    }
    atomic_store(&mtp_tracing, 1);
    mtp_py_init();
out:
    mtp_tls_guard = MTP_GUARD_NONE;
    errno = saved;
}

__attribute__((destructor)) static void mtp_fini(void)
{
    mtp_exit_snapshot();
}
