/*
 * Test seams: the few calls a unit test needs to replace, as function
 * pointers (jemalloc's JET_MUTABLE idea), so that no test defines a
 * production symbol at link time. Production code calls through
 * `mtp_seams`; base/state.c initializes every pointer to the real function
 * or to a safe default, and a layer above may install its own at start
 * (writer/writer.c installs writer_wake when it starts its thread).
 *
 * Ownership: written before tracing starts (or by a test before it runs the
 * code under test), read-only afterwards.
 */
#ifndef MTP_BASE_SEAMS_H
#define MTP_BASE_SEAMS_H

#include <stdint.h>

typedef struct mtp_seams {
    /* A producer's ring is half full, or a new thread block was mapped: wake
     * the writer (default: nothing). */
    void (*writer_wake)(void);
    /* Wall clock in ns since the epoch (default: CLOCK_REALTIME). */
    uint64_t (*now_ns)(void);
    /* Opens a file under /proc (default: open(2) with O_RDONLY|O_CLOEXEC);
     * returns an fd or -1 with errno set. */
    int (*proc_open)(const char *path);
} mtp_seams_t;

extern mtp_seams_t mtp_seams;

#endif /* MTP_BASE_SEAMS_H */
