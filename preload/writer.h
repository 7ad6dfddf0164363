/* Glue between the writer thread and the rest of the preload: what the writer
 * needs from control.c. */
#ifndef MTP_WRITER_H
#define MTP_WRITER_H

#include "mtp.h"
#include "snapwrite.h"

/* Fills the process fields of a snapshot (start time, command line, executable, host). */
void mtp_process_info(mtp_snapinfo_t *info);

#endif /* MTP_WRITER_H */
