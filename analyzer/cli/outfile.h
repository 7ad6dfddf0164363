/* The one way the analyzer writes a named file (`export -o OUT`): a fresh
 * temporary beside OUT, renamed over OUT only when complete (outfile.c). */
#ifndef MTA_OUTFILE_H
#define MTA_OUTFILE_H

#include <stdio.h>

/* The permissions of every file the analyzer writes, before the umask. */
#define MTA_OUTFILE_MODE 0600

typedef struct mta_outfile {
    FILE *f;               /* write here between open and close */
    const char *cmd;       /* message prefix */
    const char *path;      /* the final name, as given */
    int dirfd;             /* OUT's directory */
    int fd;                /* the temporary, under f */
    int err;               /* the first write error (errno), 0 if none */
    char *base;            /* OUT's last component */
    char tmp[64];          /* the temporary's name in dirfd */
} mta_outfile_t;

/* Creates the temporary for `path` (O_CREAT|O_EXCL|O_NOFOLLOW, random name,
 * mode MTA_OUTFILE_MODE, locked) in path's directory and sets o->f; removes
 * the temporaries there that no writer holds any more. Returns 0, or
 * -errno after one line "memtrail: CMD: cannot write PATH: REASON" with
 * nothing created. */
int mta_outfile_open(mta_outfile_t *o, const char *cmd, const char *path);

/* Ends the write: when rc (the writer's result) is 0, flushes, fsyncs and
 * renames the temporary over the final name (a symlink there is replaced,
 * never followed), then fsyncs the directory; otherwise, or when any of that
 * fails, removes the temporary. Returns 0, or a negative errno (rc itself
 * when it was negative) after one line as above. */
int mta_outfile_close(mta_outfile_t *o, int rc);

#endif /* MTA_OUTFILE_H */
