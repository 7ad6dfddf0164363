/* Whether a thread inside a hook may create a thread (writer/safepoint.c). */
#ifndef MTP_WRITER_SAFEPOINT_H
#define MTP_WRITER_SAFEPOINT_H

#include "base/thread.h"

/* Cold, at start-up (no lock of ours held): finds ld.so's code. */
void mtp_safepoint_init(void);
/* 1 when no frame of the calling thread's stack (below the hook) is in
 * ld.so's code, memtrail's or pthread_create, or is a signal frame; 0
 * otherwise, or while another thread asks. Inside a hook. */
int mtp_safepoint(mtp_thread_t *t);
/* The same for the code a signal interrupted (`ucontext` as a handler gets
 * it), from that handler. */
int mtp_safepoint_interrupted(mtp_thread_t *t, const void *ucontext);

#endif /* MTP_WRITER_SAFEPOINT_H */
