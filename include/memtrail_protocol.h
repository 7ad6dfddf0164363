/*
 * The control protocol between the `memtrail` CLI and libmemtrail.so, shared
 * by both sides (the format of the snapshots themselves is
 * memtrail_format.h; the snapshot signal's names, memtrail_signal.h).
 *
 * Environment: `memtrail run` sets the MEMTRAIL_* variables below, the
 * preload reads them once at start (preload/core/config.c). An unset or
 * empty variable means its default; the defaults here are the CLI's option
 * defaults too, so `memtrail run` without options and a bare LD_PRELOAD
 * behave alike.
 *
 * Request channel (`memtrail snapshot PID`, analyzer/cli/cmd_snapshot.c, and
 * the writer thread, preload/writer/writer.c): the CLI listens on the
 * abstract AF_UNIX stream socket mtproto_channel_name(its pid, cookie) and
 * sigqueue()s the process's snapshot signal with the cookie (> 0) as value;
 * the writer connects back to that name, reads the label up to a newline,
 * takes the snapshot and answers one line:
 *
 *   request := LABEL "\n"
 *   reply   := "ok " PATH "\n" | "error " MESSAGE "\n"
 */
#ifndef MEMTRAIL_PROTOCOL_H
#define MEMTRAIL_PROTOCOL_H

#include <stddef.h>
#include <stdio.h>

#define MTPROTO_STR_(x) #x
#define MTPROTO_STR(x) MTPROTO_STR_(x)   /* a number macro as a string */

/* ---- Python: the tracer's built-in module (preload/hook/pyhooks.c) ----
 * A traced interpreter gets the module MTPROTO_PY_MODULE in sys.modules
 * (snapshot, is_tracing, output_dir); the `memtrail` package (python/memtrail/)
 * delegates to it. The same module answers `import MTPROTO_PY_PACKAGE`, as the
 * last finder of sys.meta_path, when no package of that name is installed. */
#define MTPROTO_PY_MODULE "_memtrail"
#define MTPROTO_PY_PACKAGE "memtrail"

/* ---- environment: names, values, defaults ---- */
#define MTPROTO_ENV_OUTPUT "MEMTRAIL_OUTPUT"         /* snapshot directory */
#define MTPROTO_DEFAULT_OUTPUT "."                   /* the working directory */
#define MTPROTO_ENV_INTERVAL "MEMTRAIL_INTERVAL"     /* seconds between snapshots */
#define MTPROTO_DEFAULT_INTERVAL "0"                 /* 0: none */
#define MTPROTO_ENV_SIGNAL "MEMTRAIL_SIGNAL"         /* memtrail_signal.h's rules */
#define MTPROTO_DEFAULT_SIGNAL "RTMAX-3"
#define MTPROTO_ENV_FOLLOW "MEMTRAIL_FOLLOW"         /* "0": exec'd programs untraced */
#define MTPROTO_ENV_NATIVE "MEMTRAIL_NATIVE"         /* "1": native frames in Python too */
#define MTPROTO_ENV_UNWIND "MEMTRAIL_UNWIND"
#define MTPROTO_UNWIND_LIBUNWIND "libunwind"         /* the default */
#define MTPROTO_UNWIND_FP "fp"
#define MTPROTO_ENV_DEPTH "MEMTRAIL_DEPTH"           /* frames kept per stack */
#define MTPROTO_DEFAULT_DEPTH 64
#define MTPROTO_MAX_DEPTH 256
#define MTPROTO_ENV_LEAK_CHECK "MEMTRAIL_LEAK_CHECK"
#define MTPROTO_LEAK_CHECK_EXIT "exit"               /* the default: exit snapshots */
#define MTPROTO_LEAK_CHECK_ALL "all"
#define MTPROTO_LEAK_CHECK_OFF "off"
#define MTPROTO_ENV_SAMPLE "MEMTRAIL_SAMPLE"         /* byte sampling: mean bytes between samples (memtrail_sample.h) */
#define MTPROTO_SAMPLE_OFF "off"                     /* the default: every allocation (also "0") */
#define MTPROTO_SAMPLE_ON "on"                       /* the mean below */
#define MTPROTO_SAMPLE_ON_MEAN 524288                /* 512 KiB */
#define MTPROTO_SAMPLE_MAX_MEAN (1ull << 40)         /* 1 TiB */
#define MTPROTO_ENV_MMAP "MEMTRAIL_MMAP"             /* which mappings the mmap domain records */
#define MTPROTO_MMAP_ANON "anon"                     /* the default: anonymous mappings */
#define MTPROTO_MMAP_ALL "all"                       /* file-backed ones too */
#define MTPROTO_MMAP_OFF "off"                       /* none: mmap is not traced */
#define MTPROTO_ENV_SYMCACHE "MEMTRAIL_SYMCACHE"   /* symbol cache directory; "off": none */
#define MTPROTO_SYMCACHE_OFF "off"
#define MTPROTO_SYMCACHE_SUBDIR "memtrail/symbols"  /* default: under $XDG_CACHE_HOME or ~/.cache */
#define MTPROTO_ENV_CFI "MEMTRAIL_CFI"               /* diagnostic: "0" turns the CFI cache off */
#define MTPROTO_ENV_WARM "MEMTRAIL_WARM"             /* diagnostic: "0": frames named only when a snapshot is written */
#define MTPROTO_ENV_PY_REUSE "MEMTRAIL_PY_REUSE"     /* diagnostic: "0": free-list reuses are not followed */
#define MTPROTO_ENV_PY_MEMO "MEMTRAIL_PY_MEMO"       /* diagnostic: "0": every Python stack walked in full */
#define MTPROTO_ENV_STOP "MEMTRAIL_STOP"             /* diagnostic: "signal": the leak scan stops threads by signal, not ptrace */
#define MTPROTO_STOP_SIGNAL "signal"
#define MTPROTO_ENV_LIB "MEMTRAIL_LIB"               /* the CLI's: path of the library */
#define MTPROTO_ENV_NAME "MEMTRAIL_NAME"             /* stable snapshot names: BASE (below) */
#define MTPROTO_ENV_NAME_PID "MEMTRAIL_NAME_PID"     /* ...the process whose files are BASE.* */
/* The waiter's lock (`memtrail run`): a file whose flock a short process's
 * exit snapshot holds shared while a copy of the process writes it after
 * the process ended (docs/design.md, "The last snapshot of a short
 * process"); the waiter takes it exclusive before it lists the snapshots.
 * The variable's value: the waiter's pid, ':', the file's absolute path
 * ($TMPDIR, else /tmp, "/" MTPROTO_EXIT_LOCK_PREFIX and six characters:
 * mkstemp). The waiter's own child writes its snapshot itself: the waiter
 * waits for it anyway. */
#define MTPROTO_ENV_EXIT_LOCK "MEMTRAIL_EXIT_LOCK"
#define MTPROTO_EXIT_LOCK_PREFIX "memtrail-exit."

#define MTPROTO_LIB_STEM "libmemtrail"               /* the library's file name starts so */
#define MTPROTO_LIB_NAME MTPROTO_LIB_STEM ".so"      /* what a traced process maps */
#define MTPROTO_SNAP_PREFIX "memtrail."              /* memtrail.PID.SEQ.TRIGGER.mtsnap */

/* ---- stable names (`memtrail run --name BASE`, MTPROTO_ENV_NAME) ----
 * The process whose pid is MTPROTO_ENV_NAME_PID (the program `memtrail run`
 * starts, and what it execs in the same process) names its snapshots with
 * the stem BASE; every other process that inherits the variables (a fork
 * child, a program started by the traced one) with the stem BASE.PID, so
 * that none overwrites another's. Without MTPROTO_ENV_NAME_PID, every
 * process uses BASE.PID. For a stem S:
 *   exit and final snapshots:      S.exit.mtsnap, S.final.mtsnap
 *   labelled ones (API, signal):   S.TRIGGER.LABEL.mtsnap (LABEL: the label,
 *                                  each byte outside [A-Za-z0-9_+-] made '_',
 *                                  at most MTPROTO_NAME_LABEL_MAX bytes)
 *   the others (interval, ...):    S.SEQ.TRIGGER.mtsnap (SEQ: 4 digits or more)
 * A name already taken (an earlier run, the same label twice) is replaced.
 * No two processes' names meet: after BASE, the root's fields are one
 * trigger word (exit, final), SEQ then a trigger word other than exit and
 * final, or a trigger word then LABEL; another process's begin with its
 * PID, then exit or final alone, or three fields. */
#define MTPROTO_NAME_MAX 128                          /* bytes of BASE */
#define MTPROTO_NAME_LABEL_MAX 64

/* Whether s is a usable BASE: 1 to MTPROTO_NAME_MAX bytes, no '/', not
 * starting with '.' (hidden, and the temporaries' prefix). */
static inline int mtproto_name_ok(const char *s)
{
    size_t n = 0;
    if (!s || !*s || *s == '.')
        return 0;
    for (; s[n]; n++)
        if (s[n] == '/' || n >= MTPROTO_NAME_MAX)
            return 0;
    return 1;
}

/* A label as it goes into a file name (the rule above), into out (cap >=
 * MTPROTO_NAME_LABEL_MAX + 1). */
static inline void mtproto_name_label(const char *label, char *out, size_t cap)
{
    size_t n = 0;
    for (; label[n] && n < MTPROTO_NAME_LABEL_MAX && n + 1 < cap; n++) {
        char c = label[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '+' || c == '-';
        out[n] = ok ? c : '_';
    }
    out[n] = '\0';
}

/* ---- request channel ---- */
#define MTPROTO_CHANNEL_FMT "memtrail.%ld.%ld"       /* requester's pid, cookie */
#define MTPROTO_EOL '\n'                             /* ends the label and the reply */
#define MTPROTO_REPLY_OK "ok "                       /* then the snapshot's path */
#define MTPROTO_REPLY_ERROR "error "                 /* then a message */

/* Writes the channel's abstract name for (pid, cookie) into a sockaddr_un's
 * sun_path (cap bytes): a NUL, then the name, unterminated. Returns the bytes
 * of sun_path used; the address length for bind() or connect() is
 * offsetof(struct sockaddr_un, sun_path) plus that. */
static inline size_t mtproto_channel_name(char *sun_path, size_t cap, long pid, long cookie)
{
    sun_path[0] = '\0';
    int n = snprintf(sun_path + 1, cap - 1, MTPROTO_CHANNEL_FMT, pid, cookie);
    return 1 + (n < 0 ? 0 : (size_t)n);
}

#endif /* MEMTRAIL_PROTOCOL_H */
