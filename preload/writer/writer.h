/* The writer thread: drains the rings into the live table, writes snapshots
 * on request (signal, timer, API, exit) and runs the leak scan. */
#ifndef MTP_WRITER_H
#define MTP_WRITER_H

#include <stddef.h>
#include <sys/types.h>

#include "base/state.h"

enum mtp_req_origin { MTP_REQ_ASYNC = 0, MTP_REQ_WAIT = 1 };
int mtp_writer_start(void);      /* 0 or -errno; installs mtp_seams.writer_wake */
/* A new process: the writer thread starts later (writer.c, `deferred`);
 * installs the deferred mtp_seams.writer_wake. Returns 0. */
int mtp_writer_defer(void);
void mtp_writer_wake(void);
/* memtrail detach and attach again (core/control.c): writer.c's comments. */
int mtp_writer_stop(uint64_t timeout_ns);
void mtp_writer_session_reset(void);
int mtp_writer_on_self(void);   /* 1 on the writer thread */
/* Starts a writer still to start (from a normal context); returns whether
 * the writer runs. */
int mtp_writer_ready(void);
/* How many threads of memtrail's this process has now: 1 while the writer
 * runs, 1 more while libdw or libzstd loads (writer.c, load_beside), else 0
 * (hook/procstat.c leaves them out of the thread count). */
int mtp_writer_threads(void);
/* Ask for a snapshot and wait until it is written; returns 0 or -errno.
 * `path` (may be NULL) receives the file name. With a graph (captured by the
 * caller, who holds the GIL until this returns) the snapshot holds it, and a
 * leak scan runs whatever the configuration says. */
struct mtp_pygraph;
int mtp_snapshot_sync(int trigger, const char *label, char *path, size_t pathlen,
                      struct mtp_pygraph *graph);
/* Async-signal-safe, from a signal handler of an application thread: ask
 * for a snapshot and wait for it at most timeout_ns. 0, -ETIMEDOUT (the
 * writer goes on with it), -ECANCELED (no writer) or -EIO. */
/* From a signal handler: a writer still to start (writer.c) starts if the
 * interrupted code allows it. */
void mtp_writer_handler_start(const void *ucontext);
/* From the snapshot signal's handler: while the writer is still to start,
 * the signal comes again a little later (a timer), its value
 * MTP_RETRY_VALUE, so that a request is served in a program that makes no
 * allocation (writer.c). */
#define MTP_RETRY_VALUE 0x6d747274
void mtp_writer_handler_retry(int signo, int is_retry);
int mtp_snapshot_from_handler(int trigger, const char *label, uint64_t timeout_ns);
/* Async-signal-safe: waits until every snapshot asked for is written (no
 * request queued or being served), at most timeout_ns. */
void mtp_writer_wait_requests(uint64_t timeout_ns);
/* Async-signal-safe: queue a signal snapshot (cookie/sender for the reply). */
void mtp_snapshot_from_signal(pid_t sender, int cookie);
void mtp_writer_atfork_prepare(void);
void mtp_writer_atfork_parent(void);
void mtp_writer_atfork_child(void);

#endif /* MTP_WRITER_H */
