/*
 * Test seams: the few calls a unit test needs to replace, as function
 * pointers (jemalloc's JET_MUTABLE idea), so that no test defines a
 * production symbol at link time. Production code calls through
 * `mtp_seams`; base/state.c initializes every pointer to the real function
 * or to a safe default, and a layer above may install its own at start
 * (writer/writer.c installs writer_wake when it starts its thread).
 *
 * Ownership: written before tracing starts (or by a test before it runs the
 * code under test), and in a fork child by its handler while it is the only
 * thread (writer/writer.c); read-only otherwise.
 */
#ifndef MTP_BASE_SEAMS_H
#define MTP_BASE_SEAMS_H

#include <stdint.h>

struct mtp_thread;

typedef struct mtp_seams {
    /* A producer's ring is half full, or a new thread block was mapped: wake
     * the writer (default: nothing). */
    void (*writer_wake)(void);
    /* A producer reached its ring's cold point, inside a hook: a fork
     * child's writer that has not started yet may start now (writer/writer.c).
     * Returns 1 while the writer is still to start (the producer comes back
     * soon), 0 otherwise (default: 0). */
    int (*writer_due)(struct mtp_thread *t);
    /* Wall clock in ns since the epoch (default: CLOCK_REALTIME). */
    uint64_t (*now_ns)(void);
    /* Opens a file under /proc (default: open(2) with O_RDONLY|O_CLOEXEC);
     * returns an fd or -1 with errno set. */
    int (*proc_open)(const char *path);
    /* ptrace(2) as the leak scan's helper process makes it, for seizing a
     * thread and reading its registers (leak/stopworld.c): returns the
     * kernel's value, -errno on failure. It runs in the helper, so raw
     * system calls only (MTP_NO_SANITIZE_RAW). A replacement answering
     * -EPERM makes the scan stop threads with its signal instead, as when
     * ptrace is not allowed (mtp_stopworld_use_signal, leak/stopworld.c,
     * installs one: MEMTRAIL_STOP=signal). Default: the system call. */
    long (*stop_ptrace)(long request, long tid, long addr, long data);
} mtp_seams_t;

extern mtp_seams_t mtp_seams;

#endif /* MTP_BASE_SEAMS_H */
