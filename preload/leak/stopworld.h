/* Stopping the world for the leak scan (leak/stopworld.c): every thread of
 * the process but the caller held still, its registers copied, until
 * released. Writer thread only (the leak scan's). */
#ifndef MTP_STOPWORLD_H
#define MTP_STOPWORLD_H

#include <stdint.h>
#include <sys/types.h>

/* A stopped thread's registers: as many words as the kernel's
 * user_regs_struct (the ptrace path), the signal path's ucontext gregs in
 * the first NGREG (23) of them. */
#define MTP_STOP_NREGS 27

typedef struct mtp_stopped {
    pid_t tid;
    uintptr_t sp, tp;           /* stack pointer, thread pointer (0: unknown) */
    const uintptr_t *regs;      /* nregs words, valid until the next stop */
    unsigned nregs;
    int signal;                 /* ptrace: the signal its stop holds, handed back at
                                   release (it came before the stop); else 0 */
    int alone;                  /* a thread holding itself that saw no other thread in
                                   the process, none able to start (writer/writer.c,
                                   sync_inline): the scan need not count them again */
} mtp_stopped_t;

/* What mtp_stopworld_thread says of slot i. */
enum { MTP_STOP_NONE = 0,       /* ended, or not ours: nothing to scan */
       MTP_STOP_HELD,           /* stopped: *out is filled */
       MTP_STOP_MISSED };       /* did not stop in time: it runs on (tid in *out) */

/* From mtp_init (may allocate, reads /proc): the stop signal (not
 * avoid_signo, the snapshot signal) and the ptrace policy (yama). */
void mtp_stopworld_init(int avoid_signo);
int mtp_stopworld_signal(void);

/* Before a scan: maps the slots, installs the stop signal's handler, forgets
 * a refusal of ptrace seen by the previous scan. Returns 0 or -errno. */
int mtp_stopworld_prepare(void);
/* Stops every other thread (ptrace, else the stop signal), waiting at most
 * about a second for each. Returns how many did not stop (their stacks are
 * then read whole); *asked counts the threads asked to stop. */
uint32_t mtp_stopworld_stop(uint32_t *asked);
/* The next stops leave thread tid alone (0: none): it holds itself still
 * (leak/leakscan.h, `held`). */
void mtp_stopworld_skip(pid_t tid);
/* Lets them all go; returns once none is held any more. */
void mtp_stopworld_release(void);
/* The threads of the last stop: slots [0, count). */
uint32_t mtp_stopworld_count(void);
int mtp_stopworld_thread(uint32_t i, mtp_stopped_t *out);
/* Whether the last stop used ptrace (1) or the stop signal (0). */
int mtp_stopworld_by_ptrace(void);
/* Before any stop: stops go by the signal from now on, as when ptrace is
 * refused (the stop_ptrace seam answers -EPERM): MEMTRAIL_STOP=signal, and
 * the TSan test (tests/unit/preload/ringdrive.c). */
void mtp_stopworld_use_signal(void);

#endif /* MTP_STOPWORLD_H */
