/* Integration-test harness: runs programs bare or under `memtrail run`, finds
 * and loads their snapshots, and sums live figures per allocating site. */
#ifndef MT_HARNESS_H
#define MT_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memtrail_format.h"
#include "snapshot.h"

/* Per-test timeout for criterion (seconds). */
#define MT_TEST_TIMEOUT 60
/* How long the harness waits for a line or a file before giving up (ms). */
#define MT_WAIT_MS 30000

/* ---- environment and scratch directory ---------------------------------- */

/* The value of an environment variable set by tests/meson.build's test_env;
 * fails the test when it is missing. */
const char *mt_env(const char *name);
/* Absolute path of a program built from tests/programs/ (malloc'd). */
char *mt_program(const char *name);
/* Path of a file in the source tree (malloc'd). */
char *mt_source_file(const char *relpath);

/* Fresh scratch directory of the running test, made by mt_setup (criterion
 * .init) and removed with its contents by mt_teardown (.fini), unless
 * MT_KEEP_TMP is set in the environment. */
extern char *mt_dir;
void mt_setup(void);
void mt_teardown(void);
/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'd absolute path. */
char *mt_mkdtemp(void);
/* The whole file at path, NUL-terminated, malloc'd (asserts it is readable). */
char *mt_read_file(const char *path);
/* Remove a directory and the files in it (one level, as the tests make). */
void mt_rmtree(const char *dir);

/* Where to find a program on PATH (/usr/local/bin:/usr/bin:/bin when PATH is
 * unset or empty), malloc'd, or NULL. */
char *mt_find_on_path(const char *name);

/* stderr of `memtrail run -o DIR` without memtrail run's own summary: the
 * line "memtrail: N snapshots in DIR:" (or "no snapshots in DIR"), one line
 * per snapshot path in DIR, and the lines naming a snapshot's slow steps
 * ("memtrail: memtrail.PID.SEQ.TRIGGER.mtsnap took ..."). Every other line
 * is kept, memtrail's warnings included. malloc'd. */
char *mt_strip_run_summary(const char *err, const char *dir);

/* Build the C extension tests/python/ext/NAME.c for the interpreter `python`
 * (3.minor) into mt_dir with cc and these extra flags (NULL-terminated; -I
 * and the module's file name come from the interpreter's sysconfig). Skips
 * the test when the interpreter has no headers. */
void mt_build_py_ext(const char *python, int minor, const char *name,
                     const char *const cflags[]);

/* ---- running programs ---------------------------------------------------- */

typedef struct mt_run {
    pid_t pid;        /* the process spawned (memtrail run, or the program) */
    int status;       /* raw wait status */
    char *out;        /* captured stdout, NUL-terminated ("" if none) */
    size_t outlen;
    char *err;        /* captured stderr, NUL-terminated ("" if none) */
    size_t errlen;
} mt_run_t;

/* Run `memtrail run -o outdir [opts...] -- argv...` to completion. opts and
 * argv are NULL-terminated (opts may be NULL). Returns 0 and the raw wait
 * status, or a negative errno when the process could not be run. */
int run_traced(const char *outdir, const char *const opts[], const char *const argv[],
               int *status);
/* The same, capturing stdout and stderr into *res (free with mt_run_free).
 * extra_env (NULL-terminated "NAME=value" strings, may be NULL) is added to
 * the environment of memtrail run. */
int run_traced_capture(const char *outdir, const char *const opts[], const char *const argv[],
                       const char *const extra_env[], mt_run_t *res);
/* Run argv directly (no tracer), capturing stdout and stderr. */
int run_bare_capture(const char *const argv[], mt_run_t *res);
void mt_run_free(mt_run_t *res);

/* An interactive traced process: stdin and stdout are pipes. */
typedef struct mt_proc {
    pid_t pid;        /* memtrail run (mt_spawn_bare: the program) */
    int in_fd;        /* write end of the child's stdin, -1 once closed */
    int out_fd;       /* read end of the child's stdout */
    char buf[4096];   /* bytes read but not yet returned as lines */
    size_t len;
} mt_proc_t;

/* Spawn `memtrail run -o outdir [opts] -- argv...` with extra_env (as for
 * run_traced_capture) added to its environment; stderr is inherited. */
int mt_spawn_traced(const char *outdir, const char *const opts[], const char *const argv[],
                    const char *const extra_env[], mt_proc_t *proc);
/* Spawn argv directly (no tracer) with stdin and stdout piped, stderr
 * inherited; proc->pid is the program's. */
int mt_spawn_bare(const char *const argv[], mt_proc_t *proc);
/* Read one line (without its newline) within timeout_ms. Returns its length,
 * -ETIMEDOUT, or -EPIPE on EOF. */
int mt_proc_read_line(mt_proc_t *proc, char *line, size_t len, int timeout_ms);
/* Write text to the child's stdin. Returns 0 or a negative errno. */
int mt_proc_write(mt_proc_t *proc, const char *text);
/* Close both pipes and wait for the process. Returns 0 or a negative errno. */
int mt_proc_wait(mt_proc_t *proc, int *status);

/* ---- snapshots ----------------------------------------------------------- */

typedef struct mt_snaplist {
    size_t n;
    char **paths;     /* sorted by file name */
} mt_snaplist_t;

/* Snapshots in dir named memtrail.<pid>.*.<trigger>.mtsnap; pid 0 and
 * trigger NULL match any. Returns 0 or a negative errno. */
int mt_find_snapshots(const char *dir, pid_t pid, const char *trigger, mt_snaplist_t *out);
void mt_snaplist_free(mt_snaplist_t *list);
/* Poll until at least `count` snapshots match (pid, trigger) or timeout_ms
 * passes. Returns the number found. */
size_t mt_wait_snapshots(const char *dir, pid_t pid, const char *trigger, size_t count,
                         int timeout_ms);

/* Load a snapshot: asserts it loads, that its file name, mode (0600) and
 * META agree, and runs mt_check_consistency. Free with mta_snapshot_free. */
mta_snapshot_t *mt_load(const char *path);
/* Assert exactly one snapshot matches (pid, trigger) in dir and load it. */
mta_snapshot_t *mt_load_one(const char *dir, pid_t pid, const char *trigger);

/* The trigger's file-name word ("exit", "signal", ...), or "unknown" */
const char *mt_trigger_name(uint32_t trigger);

/* Assert META fields: pid, ppid (0 = do not check), trigger, seq and label. */
void mt_check_meta(const mta_snapshot_t *snap, pid_t pid, pid_t ppid, uint32_t trigger,
                   uint32_t seq, const char *label);

/* Internal invariants every snapshot must satisfy (non-fatal expectations):
 * per stack, the BLOCKS sum equals the STACK_STATS live figures; TOTALS equal
 * the sums over STACK_STATS and BLOCKS; blocks sorted and non-overlapping;
 * live = allocated - freed; per-stack peaks sum to the total peak. */
void mt_check_consistency(const mta_snapshot_t *snap);
/* The TIMELINE record's invariants (part of mt_check_consistency): present,
 * a step of 10 ms times a power of two, no point above the peak, the last
 * at or above the live bytes. Returns the highest heap figure. */
uint64_t mt_check_timeline(const mta_snapshot_t *snap);

/* ---- figures per site ---------------------------------------------------- */

/* Allocator frames are skipped when looking for the innermost user frame:
 * operator new/delete (mangled _Znw*, _Zna*, _Zdl*, _Zda* or demangled) and
 * frames in a module whose basename starts with "libmemtrail". */
int mt_is_allocator_frame(const mta_snapshot_t *snap, const mta_frame_t *frame);
/* The innermost user frame of a stack, or NULL if it has none. */
const mta_frame_t *mt_user_frame(const mta_snapshot_t *snap, uint32_t stack);

/* Sum of live bytes/blocks over the STACK_STATS entries whose innermost user
 * frame is exactly `function`. */
void site_live(const mta_snapshot_t *snap, const char *function, uint64_t *bytes,
               uint64_t *blocks);
/* The same over the stacks having `function` in any frame. */
void site_live_any_frame(const mta_snapshot_t *snap, const char *function, uint64_t *bytes,
                         uint64_t *blocks);
/* Sum of alloc_bytes/alloc_blocks over the stacks of site_live. */
void site_alloc_total(const mta_snapshot_t *snap, const char *function, uint64_t *bytes,
                      uint64_t *blocks);
/* Number of STACK_STATS entries whose innermost user frame is `function`. */
size_t site_stacks(const mta_snapshot_t *snap, const char *function);

/* Assert live figures at a site (innermost user frame). */
#define mt_assert_site(snap, fn, want_bytes, want_blocks)                                   \
    do {                                                                                   \
        uint64_t mt_b_, mt_n_;                                                             \
        site_live((snap), (fn), &mt_b_, &mt_n_);                                           \
        cr_expect_eq(mt_b_, (uint64_t)(want_bytes), "%s: %s live bytes: got %llu, want %llu", \
                     (snap)->path, (fn), (unsigned long long)mt_b_,                         \
                     (unsigned long long)(want_bytes));                                     \
        cr_expect_eq(mt_n_, (uint64_t)(want_blocks),                                       \
                     "%s: %s live blocks: got %llu, want %llu", (snap)->path, (fn),         \
                     (unsigned long long)mt_n_, (unsigned long long)(want_blocks));         \
    } while (0)

/* 1-based line of the first line of a source file containing marker, 0 if none. */
unsigned mt_marker_line(const char *relpath, const char *marker);
/* Parse "WORD <number>" style output: the number after `word ` in text, or -1. */
long mt_number_after(const char *text, const char *word);

#endif /* MT_HARNESS_H */
