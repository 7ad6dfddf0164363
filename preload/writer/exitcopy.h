/* The last snapshot of a short process, written by a copy of the process
 * after the process ended (writer/exitcopy.c). Called by writer.c's
 * sync_inline only: the process's only thread, every signal blocked,
 * writer_lock held. */
#ifndef MTP_WRITER_EXITCOPY_H
#define MTP_WRITER_EXITCOPY_H

#include <sys/types.h>

enum { MTP_EXIT_HERE = -1, MTP_EXIT_GONE = 0, MTP_EXIT_COPY = 1 };

/* MTP_EXIT_GONE in the process when a copy of it took the snapshot over
 * (the process goes on to its end), MTP_EXIT_COPY in that copy (it takes the
 * snapshot, then ends), MTP_EXIT_HERE when the process takes it itself (no
 * waiter, or anything failed before the copy existed). */
int mtp_exit_copy(void);
/* In the copy, its original's parent; 0 elsewhere. */
pid_t mtp_exit_copy_ppid(void);

#endif /* MTP_WRITER_EXITCOPY_H */
