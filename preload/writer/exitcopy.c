/*
 * The last snapshot of a short process, written by a copy of the process.
 *
 * A process whose writer never started (writer.c: most processes a shell or
 * a build runs) ends in sync_inline: its only thread takes the exit
 * snapshot, and the process's parent (the shell) waits meanwhile, about
 * half of what memtrail adds to such a process. When a waiter is there
 * (`memtrail run` named its lock file in MTPROTO_ENV_EXIT_LOCK), a copy of
 * the process takes the snapshot instead and the process goes on to its end
 * at once: the parent goes on while the copy writes, on another CPU. Not
 * for the waiter's own child, which the waiter waits for anyway.
 *
 * The copy is made by _Fork: no atfork handler runs, the program's or
 * memtrail's, and it has the process's memory as it is at this moment (the
 * live table, the rings not yet drained, the stacks, the heap the leak scan
 * reads, the exiting thread's frame that sync_held holds). What the copy
 * would read differently is read here first: the parent's pid (the copy's
 * is the process), the resident set size (the copy's page tables are not
 * the process's); sync_inline gives the held thread the copy's thread id.
 * The process's pid is memtrail's own (mtp_pid); the leak scan's /proc and
 * process_vm_readv reads are the copy's, of memory equal to the process's.
 * Not for the init of a PID namespace: its end kills the copy.
 *
 * Ordering: the copy first closes every descriptor it got but stderr (for
 * memtrail's warnings; when the program closed it, whatever is there now)
 * and the lock, then writes one byte on a pipe; the process waits for that
 * byte (or the pipe's end, should the copy die) before it goes on. So once
 * the process ends, nothing of the program is held open by the copy: a
 * pipe's reader sees its end, a flock or a listening socket is free, as
 * bare. The copy holds the waiter's lock
 * shared (a flock on the open file description the process took it on,
 * which the copy shares) until it ends; the waiter takes it exclusive once
 * its child ended, before it lists the snapshots, so it sees every file.
 * LOCK_NB: a process that finds the waiter taking its lock (the waiter's
 * child ended before this one) does not wait, and takes the snapshot itself.
 *
 * Scheduling: the copy may run before the process returns from _Fork, on
 * the process's CPU (the other CPU still busy with an earlier copy: a
 * shell's commands come faster than their copies end); it then wrote its
 * whole snapshot, about 1 ms, before the process got its CPU back, and the
 * shell waited that long (in about half of 300 commands, after a change of
 * timing elsewhere: docs/performance.md). So the copy yields its CPU once
 * the handshake is written: the process, runnable on that CPU, goes on to
 * its end first.
 *
 * Threads: sync_inline's thread only (the process's only thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/state.h"
#include "writer/exitcopy.h"
#include "writer/timeline.h"

static pid_t copy_ppid;   /* set in the copy only */

pid_t mtp_exit_copy_ppid(void)
{
    return copy_ppid;
}

/* Closes every descriptor but stderr, a and b (a program may have closed
 * stderr, so that a or b is 2 now). */
static void close_all_but(int a, int b)
{
    int keep[3] = {2, a, b};
    for (int i = 1; i < 3; i++)   /* sorted */
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned from = 0;
    for (int i = 0; i < 3; i++) {
        if ((unsigned)keep[i] > from)
            close_range(from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    close_range(from, ~0u, 0);
}

int mtp_exit_copy(void)
{
    /* The waiter's own child: the waiter waits for its end anyway. A
     * namespace's init (pid 1): its end kills every process of the
     * namespace, the copy too. */
    pid_t ppid = getppid();
    if (!mtp_cfg.exit_lock[0] || ppid == (pid_t)mtp_cfg.exit_waiter || getpid() == 1)
        return MTP_EXIT_HERE;
    int p[2] = {-1, -1}, lock = open(mtp_cfg.exit_lock, O_RDONLY | O_CLOEXEC);
    if (lock < 0)
        return MTP_EXIT_HERE;
    if (flock(lock, LOCK_SH | LOCK_NB) < 0 || pipe2(p, O_CLOEXEC) < 0)
        goto here;
    mtp_timeline_hold_rss();
    pid_t pid = _Fork();
    if (pid < 0)
        goto here;
    if (pid == 0) {
        copy_ppid = ppid;
        close_all_but(lock, p[1]);
        char c = 0;
        while (write(p[1], &c, 1) < 0 && errno == EINTR) {
        }
        close(p[1]);
        sched_yield();   /* the process first, if it waits for this CPU */
        return MTP_EXIT_COPY;
    }
    close(p[1]);
    char c;
    while (read(p[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(p[0]);
    close(lock);   /* the copy's description holds the flock */
    return MTP_EXIT_GONE;
here:
    if (p[0] >= 0) {
        close(p[0]);
        close(p[1]);
    }
    close(lock);
    return MTP_EXIT_HERE;
}
