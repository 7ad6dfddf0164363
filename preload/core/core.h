/* The top of the runtime: start-up, configuration, fork and exit handling and
 * the public API (core/control.c, core/config.c). Called by the entry points
 * of hook/ only. */
#ifndef MTP_CORE_H
#define MTP_CORE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "base/state.h"

/* config.c: start-up only. */
void mtp_config_read(void);      /* mtp_cfg from the environment (or the settings) */
/* memtrail attach: "NAME=value" lines (the MEMTRAIL_* names) read instead of
 * the environment by the next mtp_config_read. 0 or -E2BIG. */
int mtp_config_settings(const char *settings);
void mtp_config_unfollow(void);  /* drop libmemtrail from LD_PRELOAD (--no-follow) */
void mtp_process_read(void);     /* mtp_proc: command line, executable, host, start time */

/* control.c */
/* After the real allocator is resolved: configuration, layers, writer
 * thread, signal; tracing on. 0 or -errno (tracing stays off, one warning). */
int mtp_core_start(void);
/* memtrail attach (hook/late.c), in two steps: with the settings given,
 * what mtp_core_start sets up (or, after mtp_core_detach, empty tables for
 * a restart), the writer not started and tracing off; then, once every GOT
 * slot leads to the hooks, the writer thread, the snapshot signal and
 * tracing on. Every snapshot is marked MTSNAP_META_F_ATTACHED and tracing
 * begins at the second step. 0 or -errno each. */
int mtp_core_attach(const char *settings);
int mtp_core_attach_start(void);
/* memtrail detach, in two steps: the `detach` snapshot (0 or -errno; its
 * path into path[0..len) when path is not NULL), then
 * tracing off, the snapshot signal's previous disposition back and the
 * writer stopped (0, or -ETIMEDOUT when it has not ended yet). */
int mtp_core_detach_snapshot(char *path, size_t len);
int mtp_core_detach(void);
void mtp_exit_snapshot(void);        /* destructor, _exit: `exit` (or `final`) snapshot */
void mtp_python_exit_snapshot(void); /* interpreter finalization begins (GIL held) */
struct mtp_pygraph;
struct mtp_thread;
struct mtp_window_result;
/* A measurement window (writer/window.h): its slot, or -EBUSY, -ECANCELED. */
int mtp_api_window_begin(struct mtp_thread *t);
/* Closes it at this moment: 0, or -EINVAL (no such window open in this
 * process). Then mtp_api_window_wait gives its figures (0 and *out, or
 * -ECANCELED), and the caller calls mtp_window_release(slot). */
int mtp_api_window_end(struct mtp_thread *t, int slot);
int mtp_api_window_wait(int slot, struct mtp_window_result *out);
int mtp_api_snapshot(const char *label, char *path, size_t pathlen, struct mtp_pygraph *graph);

/* control.c: the exit snapshot a terminating signal asks for (from its
 * handler): 1 if it was asked for (taken, or given up after timeout_ns), 0
 * if the exit snapshot was already taken; mtp_term_survived undoes it for a
 * process the signal did not end. */
int mtp_term_snapshot(const char *label, uint64_t timeout_ns);
void mtp_term_survived(void);

/* termsig.c: SIGTERM and SIGINT with the default disposition take the exit
 * snapshot, then end the process as they would have. */
typedef int (*mtp_sigaction_fn)(int, const struct sigaction *, struct sigaction *);
void mtp_term_install(mtp_sigaction_fn real);   /* start-up: libc's sigaction */
/* Detach: each default disposition ours replaced is put back, and the
 * program's sigaction calls go straight to libc again. */
void mtp_term_uninstall(void);
int mtp_term_signal(int sig);                   /* one of the signals served */
/* The program's sigaction for one of them (its view kept while ours runs). */
int mtp_term_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
void mtp_term_atfork_child(void);

#endif /* MTP_CORE_H */
