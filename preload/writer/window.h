/* Measurement windows: the memory a stretch of a process's run allocated,
 * exact (writer/window.c has the design). */
#ifndef MTP_WINDOW_H
#define MTP_WINDOW_H

#include <stdint.h>

#include "base/thread.h"

#define MTP_WINDOW_MAX 8   /* windows open at once, per process */

/* One stack's figures in a window, over the blocks the window allocated
 * (block figures in blocks, bytes in bytes; estimates when sampling). */
typedef struct mtp_window_site {
    uint32_t stack;
    uint32_t dirty;                      /* writer-only: changed since the window's last peak */
    uint64_t live_bytes, live_blocks;    /* allocated in the window and still live */
    uint64_t alloc_bytes, alloc_blocks;  /* allocated in the window */
    uint64_t peak_bytes, peak_blocks;    /* live at the window's peak */
} mtp_window_site_t;

/* A closed window's figures, owned by its slot until mtp_window_release. */
typedef struct mtp_window_result {
    uint64_t start, end;                 /* event numbers of its begin and end */
    uint64_t live_bytes, live_blocks;
    uint64_t alloc_bytes, alloc_blocks;
    uint64_t peak_bytes, peak_blocks;
    const mtp_window_site_t *sites;      /* every stack that allocated in the window */
    uint32_t nsites;
} mtp_window_result_t;

/* The events' sizes (MTP_EV_WINDOW, its slot as address). */
enum { MTP_WINDOW_BEGIN = 1, MTP_WINDOW_END = 2 };

/* The caller's side (core/control.c: mtp_api_window_begin/end push the
 * events). A FREE slot, claimed: >= 0, or -EBUSY (MTP_WINDOW_MAX open). */
int mtp_window_claim(void);
/* Whether slot is claimed (a window open, or being closed, by the caller). */
int mtp_window_claimed(int slot);
/* After END is pushed: waits until the writer applied it and points *out at
 * the figures; 0, or -ECANCELED when alive() says the writer is gone (the
 * slot is then freed). */
int mtp_window_wait(int slot, mtp_window_result_t *out, int (*alive)(void));
/* After mtp_window_wait: the slot (and *out's sites) may be reused. */
void mtp_window_release(int slot);

/* Writer side (writer/live.c, writer/writer.c). */
extern int mtp_windows_open;   /* writer-only: windows the writer has open */
void mtp_window_event(const mtp_event_t *ev);   /* MTP_EV_WINDOW */
void mtp_window_added(uint64_t addr, uint32_t stack, uint64_t bytes, uint64_t units,
                      uint64_t counter);
void mtp_window_removed(uint64_t addr, uint32_t stack, uint64_t bytes, uint64_t units);
/* PyTraceMalloc_Track re-adds a block: its allocation is undone first
 * (then it is removed and added again), so that it is counted once. */
void mtp_window_unallocated(uint64_t addr, uint32_t stack, uint64_t bytes, uint64_t units);
void mtp_window_moved(uint64_t addr, uint32_t from, uint32_t to, uint64_t bytes, uint64_t units);
void mtp_window_atfork_child(void);

#endif /* MTP_WINDOW_H */
