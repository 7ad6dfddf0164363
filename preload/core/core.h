/* The top of the runtime: start-up, configuration, fork and exit handling and
 * the public API (core/control.c, core/config.c). Called by the entry points
 * of hook/ only. */
#ifndef MTP_CORE_H
#define MTP_CORE_H

#include <stddef.h>

#include "base/state.h"

/* config.c: start-up only. */
void mtp_config_read(void);      /* mtp_cfg from the environment */
void mtp_config_unfollow(void);  /* drop libmemtrail from LD_PRELOAD (--no-follow) */
void mtp_process_read(void);     /* mtp_proc: command line, executable, host, start time */

/* control.c */
/* After the real allocator is resolved: configuration, layers, writer
 * thread, signal; tracing on. 0 or -errno (tracing stays off, one warning). */
int mtp_core_start(void);
void mtp_exit_snapshot(void);        /* destructor, _exit: `exit` (or `final`) snapshot */
void mtp_python_exit_snapshot(void); /* interpreter finalization begins (GIL held) */
struct mtp_pygraph;
int mtp_api_snapshot(const char *label, char *path, size_t pathlen, struct mtp_pygraph *graph);

#endif /* MTP_CORE_H */
