/* Serialization of the writer's state into one *.mtsnap file (see
 * include/memtrail_format.h). Called on the writer thread, writer lock held. */
#ifndef MTP_SNAPWRITE_H
#define MTP_SNAPWRITE_H

#include "base/state.h"

typedef struct mtp_snapinfo {
    pid_t pid, ppid;
    uint64_t time_ns, start_ns, counter;
    int trigger;            /* enum mtsnap_trigger */
    uint32_t seq;
    const char *label;
    const char *cmdline;    /* argv joined with NUL bytes */
    size_t cmdline_len;
    const char *exe, *hostname;
    const struct mtp_leakscan *leaks;   /* a scan made now: its blocks and kinds, or NULL */
    struct mtp_pygraph *graph;          /* the Python object graph, or NULL */
    /* Called between chunks of the work (a few hundred microseconds apart):
     * the writer applies the events published meanwhile, so no thread waits
     * on a full ring while a big snapshot is written. The snapshot still
     * holds the state of the moment it began (writer/snapview.c). Returns
     * the events applied. NULL: no yield (the tests). */
    size_t (*yield)(void);
    uint64_t scan_ns;                   /* the leak scan's time, for TIMING */
    const mtsnap_costs_t *costs;        /* tracing's costs so far (COSTS), or NULL */
} mtp_snapinfo_t;

/* Returns 0 and the final path, or a negative errno (nothing is left behind). */
int mtp_snapshot_write(const mtp_snapinfo_t *info, char *path, size_t pathlen);

/* Fork child: drops a snapshot the parent's writer was in the middle of
 * (fork waits for a yield, not for the end): its view, and its file's
 * descriptors, so that memtrail leaves none open in the child. */
void mtp_snapshot_atfork_child(void);

#endif /* MTP_SNAPWRITE_H */
