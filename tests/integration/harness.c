/* Integration-test harness: spawning programs bare or under `memtrail run`,
 * scratch directories, finding/loading snapshots, figures per site.
 *
 * Every criterion test runs in its own worker process; the harness keeps the
 * scratch directory of the running test in mt_dir. Children are spawned with
 * posix_spawn; their pipes are created O_CLOEXEC so only the intended copies
 * survive the exec, and stdout/stderr are drained with poll() before the
 * child is reaped so a chatty child can never block on a full pipe. Every wait
 * is bounded (MT_WAIT_MS per line or file, twice that for a whole run): on a
 * hang the spawned process is SIGKILLed and the caller gets -ETIMEDOUT
 * instead of the test hanging until criterion's timeout.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "names.h"

extern char **environ;

char *mt_dir;

/* ---- environment and scratch directory ---------------------------------- */

const char *mt_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v != NULL && v[0] != '\0', "harness: %s is not set (run through meson test)", name);
    return v;
}

char *mt_program(const char *name)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", mt_env("MT_PROGRAMS_DIR"), name) > 0);
    cr_assert(access(path, X_OK) == 0, "harness: program %s is missing", path);
    return path;
}

char *mt_source_file(const char *relpath)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", mt_env("MEMTRAIL_SOURCE_ROOT"), relpath) > 0);
    return path;
}

char *mt_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char templ[PATH_MAX], real[PATH_MAX];

    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    snprintf(templ, sizeof(templ), "%s/memtrail-it.XXXXXX", tmp);
    cr_assert(mkdtemp(templ) != NULL, "harness: mkdtemp %s: %s", templ, strerror(errno));
    cr_assert(realpath(templ, real) != NULL, "harness: realpath %s", templ);
    return strdup(real);
}

char *mt_read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fileno(f), &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    cr_assert_not_null(buf);
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

void mt_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(dir);
}

void mt_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    mt_dir = mt_mkdtemp();
}

void mt_teardown(void)
{
    if (mt_dir == NULL)
        return;
    if (getenv("MT_KEEP_TMP") == NULL)
        mt_rmtree(mt_dir);
    else
        cr_log_info("harness: kept %s", mt_dir);
    free(mt_dir);
    mt_dir = NULL;
}

/* ---- running programs ---------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* environ with extra "NAME=value" entries replacing or adding variables. */
static char **build_env(const char *const extra[])
{
    size_t n = 0, k = 0;
    while (environ[n] != NULL)
        n++;
    while (extra != NULL && extra[k] != NULL)
        k++;
    char **env = calloc(n + k + 1, sizeof(*env));
    cr_assert_not_null(env);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < k; j++) {
            size_t len = strcspn(extra[j], "=");
            if (strncmp(environ[i], extra[j], len) == 0 && environ[i][len] == '=')
                replaced = 1;
        }
        if (!replaced)
            env[out++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[out++] = (char *)extra[j];
    env[out] = NULL;
    return env;
}

/* argv for `memtrail run -o outdir [opts] -- argv...` (malloc'd array). */
static const char **traced_argv(const char *outdir, const char *const opts[],
                                const char *const argv[])
{
    size_t nopts = 0, nargs = 0;
    while (opts != NULL && opts[nopts] != NULL)
        nopts++;
    while (argv[nargs] != NULL)
        nargs++;
    const char **args = calloc(nopts + nargs + 6, sizeof(*args));
    cr_assert_not_null(args);
    size_t i = 0;
    args[i++] = mt_env("MEMTRAIL_EXE");
    args[i++] = "run";
    args[i++] = "-o";
    args[i++] = outdir;
    for (size_t j = 0; j < nopts; j++)
        args[i++] = opts[j];
    args[i++] = "--";
    for (size_t j = 0; j < nargs; j++)
        args[i++] = argv[j];
    args[i] = NULL;
    return args;
}

static int append(char **buf, size_t *len, const char *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p + *len, data, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return 0;
}

/* Spawn argv with stdin from /dev/null, capture stdout and stderr, wait. */
static int spawn_capture(const char *const argv[], const char *const extra_env[], mt_run_t *res)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    char **env = NULL;
    int rc = 0, fa_ok = 0;

    memset(res, 0, sizeof(*res));
    res->out = strdup("");
    res->err = strdup("");
    if (res->out == NULL || res->err == NULL)
        return -ENOMEM;
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = -posix_spawn_file_actions_init(&fa)) != 0)
        goto out;
    fa_ok = 1;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    env = build_env(extra_env);
    rc = -posix_spawn(&res->pid, argv[0], &fa, NULL, (char *const *)argv, env);
    if (rc != 0)
        goto out;
    close(outp[1]);
    close(errp[1]);
    outp[1] = errp[1] = -1;

    long deadline = now_ms() + 2L * MT_WAIT_MS;
    struct pollfd pfd[2] = {{.fd = outp[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
    while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
        long left = deadline - now_ms();
        if (left <= 0) {
            kill(res->pid, SIGKILL);
            waitpid(res->pid, &res->status, 0);
            rc = -ETIMEDOUT;
            goto out;
        }
        int n = poll(pfd, 2, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            char chunk[4096];
            ssize_t r = read(pfd[i].fd, chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                pfd[i].fd = -1;
                continue;
            }
            rc = i == 0 ? append(&res->out, &res->outlen, chunk, (size_t)r)
                        : append(&res->err, &res->errlen, chunk, (size_t)r);
            if (rc < 0)
                goto out;
        }
    }
    while (waitpid(res->pid, &res->status, 0) < 0) {
        if (errno != EINTR) {
            rc = -errno;
            goto out;
        }
    }
out:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    free(env);
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    return rc;
}

int run_traced_capture(const char *outdir, const char *const opts[], const char *const argv[],
                       const char *const extra_env[], mt_run_t *res)
{
    const char **args = traced_argv(outdir, opts, argv);
    int rc = spawn_capture(args, extra_env, res);
    free(args);
    if (res->errlen > 0)
        cr_log_info("harness: memtrail run stderr: %s", res->err);
    return rc;
}

int run_traced(const char *outdir, const char *const opts[], const char *const argv[],
               int *status)
{
    mt_run_t res;
    int rc = run_traced_capture(outdir, opts, argv, NULL, &res);
    *status = res.status;
    mt_run_free(&res);
    return rc;
}

int run_bare_capture(const char *const argv[], mt_run_t *res)
{
    return spawn_capture(argv, NULL, res);
}

void mt_run_free(mt_run_t *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

/* Spawns args (taken over: freed) with stdin and stdout piped. */
static int spawn_piped(const char **args, const char *const extra_env[], mt_proc_t *proc)
{
    char **env = build_env(extra_env);
    int inp[2] = {-1, -1}, outp[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    int rc = 0, fa_ok = 0;

    memset(proc, 0, sizeof(*proc));
    proc->in_fd = proc->out_fd = -1;
    if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = -posix_spawn_file_actions_init(&fa)) != 0)
        goto fail;
    fa_ok = 1;
    posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    rc = -posix_spawn(&proc->pid, args[0], &fa, NULL, (char *const *)args, env);
    if (rc != 0)
        goto fail;
    close(inp[0]);
    close(outp[1]);
    proc->in_fd = inp[1];
    proc->out_fd = outp[0];
    posix_spawn_file_actions_destroy(&fa);
    free(args);
    free(env);
    return 0;
fail:
    free(env);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (inp[i] >= 0)
            close(inp[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    free(args);
    return rc;
}

int mt_spawn_traced(const char *outdir, const char *const opts[], const char *const argv[],
                    const char *const extra_env[], mt_proc_t *proc)
{
    return spawn_piped(traced_argv(outdir, opts, argv), extra_env, proc);
}

int mt_spawn_bare(const char *const argv[], mt_proc_t *proc)
{
    size_t n = 0;
    while (argv[n])
        n++;
    const char **args = calloc(n + 1, sizeof(*args));
    if (!args)
        return -ENOMEM;
    memcpy(args, argv, n * sizeof(*args));
    return spawn_piped(args, NULL, proc);
}

int mt_proc_read_line(mt_proc_t *proc, char *line, size_t len, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(proc->buf, '\n', proc->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - proc->buf);
            size_t copy = n < len - 1 ? n : len - 1;
            memcpy(line, proc->buf, copy);
            line[copy] = '\0';
            memmove(proc->buf, nl + 1, proc->len - n - 1);
            proc->len -= n + 1;
            return (int)copy;
        }
        if (proc->len == sizeof(proc->buf))
            return -E2BIG;
        long left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = proc->out_fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        ssize_t r = read(proc->out_fd, proc->buf + proc->len, sizeof(proc->buf) - proc->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EPIPE;
        proc->len += (size_t)r;
    }
}

int mt_proc_write(mt_proc_t *proc, const char *text)
{
    size_t n = strlen(text);
    while (n > 0) {
        ssize_t w = write(proc->in_fd, text, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        text += w;
        n -= (size_t)w;
    }
    return 0;
}

int mt_proc_wait(mt_proc_t *proc, int *status)
{
    int rc = 0;
    if (proc->in_fd >= 0)
        close(proc->in_fd);
    proc->in_fd = -1;
    /* Drain stdout so the child never blocks on a full pipe. */
    long deadline = now_ms() + 2L * MT_WAIT_MS;
    while (proc->out_fd >= 0) {
        long left = deadline - now_ms();
        struct pollfd pfd = {.fd = proc->out_fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
            kill(proc->pid, SIGKILL);
            rc = -ETIMEDOUT;
            break;
        }
        char chunk[4096];
        ssize_t r = read(proc->out_fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
    }
    if (proc->out_fd >= 0)
        close(proc->out_fd);
    proc->out_fd = -1;
    while (waitpid(proc->pid, status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return rc;
}

/* ---- snapshots ----------------------------------------------------------- */

/* The writer's names (format/names.c): the file names it makes. */
const char *mt_trigger_name(uint32_t trigger)
{
    return mtf_trigger_name(trigger);
}

/* Parse memtrail.<pid>.<seq>.<trigger>.mtsnap; returns 1 if name matches. */
static int parse_name(const char *name, unsigned long *pid, unsigned long *seq, char *trigger,
                      size_t tlen)
{
    const char *p = name;
    char *end;
    if (strncmp(p, "memtrail.", 9) != 0)
        return 0;
    p += 9;
    if (*p < '0' || *p > '9')
        return 0;
    *pid = strtoul(p, &end, 10);
    if (*end != '.')
        return 0;
    p = end + 1;
    if (*p < '0' || *p > '9')
        return 0;
    *seq = strtoul(p, &end, 10);
    if (*end != '.' || end - p < 4)
        return 0;
    p = end + 1;
    size_t len = strlen(p), slen = strlen(MTSNAP_SUFFIX);
    if (len <= slen || strcmp(p + len - slen, MTSNAP_SUFFIX) != 0 || len - slen >= tlen)
        return 0;
    memcpy(trigger, p, len - slen);
    trigger[len - slen] = '\0';
    return strchr(trigger, '.') == NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mt_find_snapshots(const char *dir, pid_t pid, const char *trigger, mt_snaplist_t *out)
{
    int rc = 0;
    DIR *d = opendir(dir);
    memset(out, 0, sizeof(*out));
    if (d == NULL)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long fpid, fseq;
        char ftrig[64];
        if (!parse_name(e->d_name, &fpid, &fseq, ftrig, sizeof(ftrig)))
            continue;
        if (pid != 0 && fpid != (unsigned long)pid)
            continue;
        if (trigger != NULL && strcmp(ftrig, trigger) != 0)
            continue;
        char **paths = realloc(out->paths, (out->n + 1) * sizeof(*paths));
        if (paths == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        out->paths = paths;
        if (asprintf(&out->paths[out->n], "%s/%s", dir, e->d_name) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        out->n++;
    }
    if (out->n > 1)
        qsort(out->paths, out->n, sizeof(*out->paths), cmp_str);
out:
    closedir(d);
    if (rc < 0)
        mt_snaplist_free(out);
    return rc;
}

void mt_snaplist_free(mt_snaplist_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->paths[i]);
    free(list->paths);
    list->paths = NULL;
    list->n = 0;
}

size_t mt_wait_snapshots(const char *dir, pid_t pid, const char *trigger, size_t count,
                         int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        mt_snaplist_t list;
        size_t n = 0;
        if (mt_find_snapshots(dir, pid, trigger, &list) == 0) {
            n = list.n;
            mt_snaplist_free(&list);
        }
        if (n >= count || now_ms() >= deadline)
            return n;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

mta_snapshot_t *mt_load(const char *path)
{
    mta_snapshot_t *snap = NULL;
    char err[512] = "";
    int rc = mta_snapshot_load(path, &snap, err, sizeof(err));
    cr_assert_eq(rc, 0, "harness: cannot load %s: %s (%d)", path, err, rc);
    cr_assert_not_null(snap);

    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600, "%s: mode %o, want 0600", path,
                 (unsigned)(st.st_mode & 07777));

    char want[128];
    snprintf(want, sizeof(want), "memtrail.%u.%04u.%s%s", snap->meta.pid, snap->meta.seq,
             mt_trigger_name(snap->meta.trigger), MTSNAP_SUFFIX);
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    if (!strncmp(base, "memtrail.", 9))   /* not a --name file (test_process.c checks those) */
        cr_expect_str_eq(base, want, "%s: file name disagrees with META (%s)", path, want);
    mt_check_consistency(snap);
    return snap;
}

mta_snapshot_t *mt_load_one(const char *dir, pid_t pid, const char *trigger)
{
    mt_snaplist_t list;
    cr_assert_eq(mt_find_snapshots(dir, pid, trigger, &list), 0);
    cr_assert_eq(list.n, 1, "harness: %zu snapshots match pid %d trigger %s in %s, want 1",
                 list.n, (int)pid, trigger != NULL ? trigger : "*", dir);
    mta_snapshot_t *snap = mt_load(list.paths[0]);
    mt_snaplist_free(&list);
    return snap;
}

void mt_check_meta(const mta_snapshot_t *snap, pid_t pid, pid_t ppid, uint32_t trigger,
                   uint32_t seq, const char *label)
{
    const mtsnap_meta_t *m = &snap->meta;
    cr_expect_eq(m->pid, (uint32_t)pid, "%s: META pid %u, want %d", snap->path, m->pid, (int)pid);
    if (ppid != 0)
        cr_expect_eq(m->ppid, (uint32_t)ppid, "%s: META ppid %u, want %d", snap->path, m->ppid,
                     (int)ppid);
    cr_expect_eq(m->trigger, trigger, "%s: META trigger %u, want %u", snap->path, m->trigger,
                 trigger);
    cr_expect_eq(m->seq, seq, "%s: META seq %u, want %u", snap->path, m->seq, seq);
    cr_expect_str_eq(snap->label, label, "%s: META label \"%s\", want \"%s\"", snap->path,
                     snap->label, label);
    cr_expect(m->start_ns > 0 && m->start_ns <= m->time_ns, "%s: META start_ns %llu time_ns %llu",
              snap->path, (unsigned long long)m->start_ns, (unsigned long long)m->time_ns);
    cr_expect(snap->exe[0] == '/', "%s: META exe \"%s\" is not absolute", snap->path, snap->exe);
    cr_expect(snap->cmdline_len > 0, "%s: META cmdline is empty", snap->path);
    /* the flags: a CPython process whose free-list reuses were not followed;
     * a process memtrail attached to, and then its Python hooks (started,
     * with their delay, or not yet) */
    cr_expect_eq(m->flags & ~(MTSNAP_META_F_PY_NO_REUSE | MTSNAP_META_F_ATTACHED |
                              MTSNAP_META_F_PY_HOOKS | MTSNAP_META_F_PY_WAITING), 0,
                 "%s: META flags %#x", snap->path, m->flags);
    if (m->flags & (MTSNAP_META_F_PY_HOOKS | MTSNAP_META_F_PY_WAITING))
        cr_expect(m->flags & MTSNAP_META_F_ATTACHED, "%s: Python hooks' flags %#x, not attached",
                  snap->path, m->flags);
    cr_expect(!(m->flags & MTSNAP_META_F_PY_HOOKS) || !(m->flags & MTSNAP_META_F_PY_WAITING),
              "%s: META flags %#x: hooks both started and waiting", snap->path, m->flags);
    if (!(m->flags & MTSNAP_META_F_PY_HOOKS))
        cr_expect_eq(m->py_hooks_ms, 0);
}

uint64_t mt_check_timeline(const mta_snapshot_t *snap)
{
    cr_expect(snap->has_timeline, "%s: no TIMELINE record", snap->path);
    if (!snap->has_timeline)
        return 0;
    cr_expect(snap->ntimeline >= 1 && snap->ntimeline <= MTSNAP_TIMELINE_MAX_POINTS + 1,
              "%s: %llu timeline points", snap->path, (unsigned long long)snap->ntimeline);
    uint64_t step = snap->timeline_step_ns;
    while (step > MTSNAP_TIMELINE_STEP_NS && step % 2 == 0)
        step /= 2;
    cr_expect_eq(step, MTSNAP_TIMELINE_STEP_NS, "%s: timeline step %llu ns", snap->path,
                 (unsigned long long)snap->timeline_step_ns);
    uint64_t highest = 0;
    for (uint64_t i = 0; i < snap->ntimeline; i++) {
        if (snap->timeline[i].heap_bytes > highest)
            highest = snap->timeline[i].heap_bytes;
        if (i)
            cr_expect_gt(snap->timeline[i].t_ns, snap->timeline[i - 1].t_ns,
                         "%s: timeline point %llu not after the one before", snap->path,
                         (unsigned long long)i);
    }
    /* The writer applies every event: its series holds the peak, unless the
     * peak came in a parent before the fork (the series restarts there). */
    cr_expect_leq(highest, snap->totals.peak_bytes, "%s: timeline above the peak", snap->path);
    if (snap->ntimeline)
        cr_expect_geq(snap->timeline[snap->ntimeline - 1].heap_bytes, snap->totals.live_bytes,
                      "%s: last timeline point below the live bytes", snap->path);
    return highest;
}

void mt_check_consistency(const mta_snapshot_t *snap)
{
    uint32_t ns = snap->nstacks;
    uint64_t *bytes = calloc(ns + 1, sizeof(*bytes));
    uint64_t *count = calloc(ns + 1, sizeof(*count));
    unsigned char *seen = calloc(ns + 1, 1);
    cr_assert(bytes != NULL && count != NULL && seen != NULL);

    /* A sampled snapshot's figures are the blocks' weights (snapshot.h):
     * blocks are summed in units, and rounded per stack and in TOTALS, so
     * sums of rounded figures may differ from the rounded sum by the
     * rounding of each term. */
    int sampled = snap->has_sampling;
    uint64_t blk_bytes = 0, blk_units = 0;
    /* The mmap domain's blocks are in no figure (memtrail_format.h): they
     * do not overlap one another, and may hold heap blocks (an allocator
     * that maps its memory through mmap). */
    const mtsnap_block_t *prev_map = NULL;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        cr_assert_lt(b->stack, ns, "%s: block %llu has stack %u of %u", snap->path,
                     (unsigned long long)i, b->stack, ns);
        if (b->domain == MTSNAP_DOMAIN_MMAP) {
            cr_expect(!prev_map || prev_map->address + prev_map->size <= b->address,
                      "%s: mappings %#llx+%llu and %#llx overlap or are unsorted", snap->path,
                      (unsigned long long)prev_map->address, (unsigned long long)prev_map->size,
                      (unsigned long long)b->address);
            cr_expect(i == 0 || snap->blocks[i - 1].address < b->address,
                      "%s: blocks unsorted at %#llx", snap->path, (unsigned long long)b->address);
            prev_map = b;
            continue;
        }
        bytes[b->stack] += mta_block_bytes(snap, b);
        count[b->stack] += mta_block_units(snap, b);
        blk_bytes += mta_block_bytes(snap, b);
        blk_units += mta_block_units(snap, b);
        cr_expect_leq(b->counter, snap->meta.counter,
                      "%s: block %#llx event %llu after the snapshot's %llu", snap->path,
                      (unsigned long long)b->address, (unsigned long long)b->counter,
                      (unsigned long long)snap->meta.counter);
        uint64_t k = i;
        while (k > 0 && snap->blocks[k - 1].domain == MTSNAP_DOMAIN_MMAP)
            k--;
        if (k > 0) {
            const mtsnap_block_t *prev = &snap->blocks[k - 1];
            cr_expect(prev->address + prev->size <= b->address,
                      "%s: blocks %#llx+%llu and %#llx overlap or are unsorted", snap->path,
                      (unsigned long long)prev->address, (unsigned long long)prev->size,
                      (unsigned long long)b->address);
        }
    }

    uint64_t live_b = 0, live_n = 0, alloc_b = 0, alloc_n = 0, peak_b = 0, peak_n = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        const mtsnap_stack_stat_t *s = &snap->stats[i];
        cr_assert_lt(s->stack, ns, "%s: stat %u has stack %u of %u", snap->path, i, s->stack, ns);
        cr_expect(!seen[s->stack], "%s: stack %u has two STACK_STATS entries", snap->path,
                  s->stack);
        seen[s->stack] = 1;
        cr_expect_eq(s->live_bytes, bytes[s->stack],
                     "%s: stack %u: STACK_STATS live_bytes %llu, BLOCKS sum %llu", snap->path,
                     s->stack, (unsigned long long)s->live_bytes,
                     (unsigned long long)bytes[s->stack]);
        cr_expect_eq(s->live_blocks, mta_units_blocks(snap, count[s->stack]),
                     "%s: stack %u: STACK_STATS live_blocks %llu, BLOCKS count %llu", snap->path,
                     s->stack, (unsigned long long)s->live_blocks,
                     (unsigned long long)mta_units_blocks(snap, count[s->stack]));
        cr_expect(s->alloc_bytes >= s->live_bytes && s->alloc_blocks >= s->live_blocks,
                  "%s: stack %u allocated less than is live", snap->path, s->stack);
        /* A stack that only mapped memory (the mmap domain) has zeros. */
        cr_expect(s->alloc_blocks > 0 || (s->alloc_bytes == 0 && s->peak_bytes == 0),
                  "%s: stack %u in STACK_STATS never allocated", snap->path, s->stack);
        cr_expect_eq(s->reserved, 0);
        live_b += s->live_bytes;
        live_n += s->live_blocks;
        alloc_b += s->alloc_bytes;
        alloc_n += s->alloc_blocks;
        peak_b += s->peak_bytes;
        peak_n += s->peak_blocks;
    }
    for (uint32_t st = 0; st < ns; st++)
        cr_expect(seen[st] || count[st] == 0, "%s: stack %u has %llu blocks but no STACK_STATS",
                  snap->path, st, (unsigned long long)count[st]);

    const mtsnap_totals_t *t = &snap->totals;
    uint64_t slack = sampled ? snap->nstats / 2 + 1 : 0;   /* blocks: rounding */
#define MT_NEAR(a, b) ((a) + slack >= (b) && (b) + slack >= (a))
    cr_expect_eq(t->live_bytes, live_b, "%s: TOTALS live_bytes %llu, STACK_STATS sum %llu",
                 snap->path, (unsigned long long)t->live_bytes, (unsigned long long)live_b);
    cr_expect_eq(t->live_bytes, blk_bytes, "%s: TOTALS live_bytes %llu, BLOCKS sum %llu",
                 snap->path, (unsigned long long)t->live_bytes, (unsigned long long)blk_bytes);
    cr_expect(MT_NEAR(t->live_blocks, live_n), "%s: TOTALS live_blocks %llu, STACK_STATS sum %llu",
              snap->path, (unsigned long long)t->live_blocks, (unsigned long long)live_n);
    cr_expect_eq(t->live_blocks, mta_units_blocks(snap, blk_units),
                 "%s: TOTALS live_blocks %llu, BLOCKS %llu", snap->path,
                 (unsigned long long)t->live_blocks,
                 (unsigned long long)mta_units_blocks(snap, blk_units));
    cr_expect_eq(t->alloc_bytes, alloc_b, "%s: TOTALS alloc_bytes %llu, STACK_STATS sum %llu",
                 snap->path, (unsigned long long)t->alloc_bytes, (unsigned long long)alloc_b);
    cr_expect(MT_NEAR(t->alloc_blocks, alloc_n), "%s: TOTALS alloc_blocks %llu, STACK_STATS sum %llu",
              snap->path, (unsigned long long)t->alloc_blocks, (unsigned long long)alloc_n);
    if (sampled)   /* each of the three rounded on its own */
        cr_expect(t->alloc_blocks - t->free_blocks + 1 >= t->live_blocks &&
                  t->live_blocks + 1 >= t->alloc_blocks - t->free_blocks,
                  "%s: TOTALS alloc_blocks %llu - free_blocks %llu, live_blocks %llu", snap->path,
                  (unsigned long long)t->alloc_blocks, (unsigned long long)t->free_blocks,
                  (unsigned long long)t->live_blocks);
    else
        cr_expect_eq(t->alloc_blocks - t->free_blocks, t->live_blocks,
                     "%s: TOTALS alloc_blocks %llu - free_blocks %llu != live_blocks %llu",
                     snap->path, (unsigned long long)t->alloc_blocks,
                     (unsigned long long)t->free_blocks, (unsigned long long)t->live_blocks);
    cr_expect(t->peak_bytes >= t->live_bytes, "%s: TOTALS peak %llu below live %llu", snap->path,
              (unsigned long long)t->peak_bytes, (unsigned long long)t->live_bytes);
    cr_expect_eq(t->peak_bytes, peak_b, "%s: TOTALS peak_bytes %llu, STACK_STATS peak sum %llu",
                 snap->path, (unsigned long long)t->peak_bytes, (unsigned long long)peak_b);
    cr_expect(MT_NEAR(t->peak_blocks, peak_n),
              "%s: TOTALS peak_blocks %llu, STACK_STATS peak sum %llu", snap->path,
              (unsigned long long)t->peak_blocks, (unsigned long long)peak_n);
#undef MT_NEAR
    cr_expect_leq(t->peak_counter, snap->meta.counter);
    mt_check_timeline(snap);
    free(bytes);
    free(count);
    free(seen);
}

/* ---- figures per site ---------------------------------------------------- */

int mt_is_allocator_frame(const mta_snapshot_t *snap, const mta_frame_t *frame)
{
    static const char *const prefixes[] = {"_Znw", "_Zna", "_Zdl", "_Zda", "operator new",
                                           "operator delete"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(frame->function, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    if (frame->module != MTSNAP_NONE && frame->module < snap->nmodules) {
        const char *path = snap->modules[frame->module].path;
        const char *base = strrchr(path, '/');
        base = base != NULL ? base + 1 : path;
        if (strncmp(base, "libmemtrail", 11) == 0)
            return 1;
    }
    return 0;
}

const mta_frame_t *mt_user_frame(const mta_snapshot_t *snap, uint32_t stack)
{
    const mta_stack_t *s = &snap->stacks[stack];
    for (uint32_t d = 0; d < s->depth; d++) {
        const mta_frame_t *f = &snap->frames[s->frames[d]];
        if (!mt_is_allocator_frame(snap, f))
            return f;
    }
    return NULL;
}

static int stack_has_function(const mta_snapshot_t *snap, uint32_t stack, const char *function)
{
    const mta_stack_t *s = &snap->stacks[stack];
    for (uint32_t d = 0; d < s->depth; d++)
        if (strcmp(snap->frames[s->frames[d]].function, function) == 0)
            return 1;
    return 0;
}

static int at_site(const mta_snapshot_t *snap, uint32_t stack, const char *function)
{
    const mta_frame_t *f = mt_user_frame(snap, stack);
    return f != NULL && strcmp(f->function, function) == 0;
}

void site_live(const mta_snapshot_t *snap, const char *function, uint64_t *bytes,
               uint64_t *blocks)
{
    *bytes = *blocks = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        if (!at_site(snap, snap->stats[i].stack, function))
            continue;
        *bytes += snap->stats[i].live_bytes;
        *blocks += snap->stats[i].live_blocks;
    }
}

void site_live_any_frame(const mta_snapshot_t *snap, const char *function, uint64_t *bytes,
                         uint64_t *blocks)
{
    *bytes = *blocks = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        if (!stack_has_function(snap, snap->stats[i].stack, function))
            continue;
        *bytes += snap->stats[i].live_bytes;
        *blocks += snap->stats[i].live_blocks;
    }
}

void site_alloc_total(const mta_snapshot_t *snap, const char *function, uint64_t *bytes,
                      uint64_t *blocks)
{
    *bytes = *blocks = 0;
    for (uint32_t i = 0; i < snap->nstats; i++) {
        if (!at_site(snap, snap->stats[i].stack, function))
            continue;
        *bytes += snap->stats[i].alloc_bytes;
        *blocks += snap->stats[i].alloc_blocks;
    }
}

size_t site_stacks(const mta_snapshot_t *snap, const char *function)
{
    size_t n = 0;
    for (uint32_t i = 0; i < snap->nstats; i++)
        n += at_site(snap, snap->stats[i].stack, function);
    return n;
}

unsigned mt_marker_line(const char *relpath, const char *marker)
{
    char *path = mt_source_file(relpath);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "harness: cannot open %s", path);
    char line[1024];
    unsigned n = 0, found = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        if (strstr(line, marker) != NULL) {
            found = n;
            break;
        }
    }
    fclose(f);
    free(path);
    return found;
}

long mt_number_after(const char *text, const char *word)
{
    size_t wlen = strlen(word);
    for (const char *p = strstr(text, word); p != NULL; p = strstr(p + 1, word)) {
        if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[wlen] == ' ' && p[wlen + 1] >= '0' &&
            p[wlen + 1] <= '9')
            return strtol(p + wlen + 1, NULL, 10);
    }
    return -1;
}

/* ---- tools and C extensions ---- */

char *mt_find_on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = strdup(path), *save = NULL;
    cr_assert_not_null(copy);
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
        char *cand = NULL;
        cr_assert(asprintf(&cand, "%s/%s", dir[0] ? dir : ".", name) > 0);
        if (access(cand, X_OK) == 0) {
            free(copy);
            return cand;
        }
        free(cand);
    }
    free(copy);
    return NULL;
}

void mt_build_py_ext(const char *python, int minor, const char *name,
                     const char *const cflags[])
{
    const char *argv[] = {python, "-c",
                          "import sysconfig\n"
                          "print(sysconfig.get_paths()['include'])\n"
                          "print(sysconfig.get_config_var('EXT_SUFFIX'))\n",
                          NULL};
    mt_run_t run;
    cr_assert_eq(run_bare_capture(argv, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "%s: sysconfig: %s",
              python, run.err);
    char inc[PATH_MAX], suffix[128], header[PATH_MAX + 16];
    cr_assert_eq(sscanf(run.out, "%4095s %127s", inc, suffix), 2, "sysconfig said: %s", run.out);
    mt_run_free(&run);
    snprintf(header, sizeof(header), "%s/Python.h", inc);
    if (access(header, R_OK) != 0)
        cr_skip_test("python3.%d: no headers in %s (python3.%d-dev not installed)", minor,
                     inc, minor);

    char *cc = mt_find_on_path("cc");
    cr_assert_not_null(cc, "no C compiler (cc) on PATH");
    char *rel = NULL, *src, *incflag = NULL, *out = NULL;
    cr_assert(asprintf(&rel, "tests/python/ext/%s.c", name) > 0);
    src = mt_source_file(rel);
    cr_assert(asprintf(&incflag, "-I%s", inc) > 0);
    cr_assert(asprintf(&out, "%s/%s%s", mt_dir, name, suffix) > 0);
    const char *ccv[32] = {cc, "-shared", "-fPIC", "-O0", "-g"};
    size_t n = 5;
    for (size_t i = 0; cflags && cflags[i] && n < 28; i++)
        ccv[n++] = cflags[i];
    ccv[n++] = incflag;
    ccv[n++] = src;
    ccv[n++] = "-o";
    ccv[n++] = out;
    ccv[n] = NULL;
    cr_assert_eq(run_bare_capture(ccv, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "building %s failed:\n%s%s", out, run.out, run.err);
    mt_run_free(&run);
    free(cc);
    free(rel);
    free(src);
    free(incflag);
    free(out);
}

/* memtrail run's heading, exactly: "memtrail: no snapshots in DIR" or
 * "memtrail: N snapshot[s] in DIR:" (a warning such as "memtrail: cannot
 * write a snapshot in DIR: ..." is not one). */
static int is_run_heading(const char *p, size_t ll, const char *dir)
{
    size_t dl = strlen(dir);
    const char *q = p + 10, *end = p + ll;
    if (ll < 10 || strncmp(p, "memtrail: ", 10) != 0)
        return 0;
    if ((size_t)(end - q) == 16 + dl && strncmp(q, "no snapshots in ", 16) == 0)
        return memcmp(q + 16, dir, dl) == 0;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    if (q == p + 10)
        return 0;
    if ((size_t)(end - q) > 10 && strncmp(q, " snapshot", 9) == 0)
        q += 9;
    else
        return 0;
    if (q < end && *q == 's')
        q++;
    return (size_t)(end - q) == 5 + dl && strncmp(q, " in ", 4) == 0 &&
           memcmp(q + 4, dir, dl) == 0 && q[4 + dl] == ':';
}

char *mt_strip_run_summary(const char *err, const char *dir)
{
    char *out = calloc(1, strlen(err) + 1), prefix[PATH_MAX + 16];
    size_t n = 0, pl = (size_t)snprintf(prefix, sizeof(prefix), "%s/memtrail.", dir);
    size_t sl = strlen(MTSNAP_SUFFIX);
    static const char slow[] = "memtrail: memtrail.", took[] = MTSNAP_SUFFIX " took ";
    cr_assert_not_null(out);
    for (const char *p = err; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p + 1) : strlen(p);
        size_t ll = nl != NULL ? len - 1 : len;
        int summary = is_run_heading(p, ll, dir);
        if (ll > pl + sl && strncmp(p, prefix, pl) == 0 && memcmp(p + ll - sl, MTSNAP_SUFFIX, sl) == 0)
            summary = 1;
        if (ll > sizeof(slow) && strncmp(p, slow, sizeof(slow) - 1) == 0 &&
            memmem(p, ll, took, sizeof(took) - 1) != NULL)
            summary = 1;
        if (!summary) {
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
    }
    out[n] = '\0';
    return out;
}

