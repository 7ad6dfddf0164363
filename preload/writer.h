/* Glue between the writer thread and the rest of the preload: what the writer
 * needs from control.c, and the signal-name parser shared with start-up. */
#ifndef MTP_WRITER_H
#define MTP_WRITER_H

#include "mtp.h"
#include "snapwrite.h"

/* Fills the process fields of a snapshot (start time, command line, executable, host). */
void mtp_process_info(mtp_snapinfo_t *info);
/* "USR2", "SIGUSR2", "RTMAX-3", "12", "off": signal number, 0 for off, -1 if invalid. */
int mtp_parse_signal(const char *s);

#endif /* MTP_WRITER_H */
