/*
 * Measurement windows: what the program allocated between two moments, and
 * the highest total of it that was live at once, exactly.
 *
 * A window's begin and end are events (MTP_EV_WINDOW) pushed into the
 * calling thread's ring with numbers of their own, so they take their place
 * in the one order every allocation and free has: a block belongs to the
 * window when its allocation's number lies between the two. The writer
 * applies them like any event (mtp_window_event):
 *
 * - While any window is open, every block allocated is entered in `born`
 *   (address -> allocation number), and taken out when freed: a free looks
 *   there to know which windows its block belongs to (those open before
 *   its number). The live map keeps no numbers; this set exists only while
 *   a window is open, and is emptied when the last one closes.
 * - Each window keeps its live total (blocks it allocated, still live), its
 *   peak (the highest that total reached: the same lazy per-stack copy as
 *   the process-wide peak in writer/live.c, a dirty list of the stacks that
 *   changed since the window's last peak) and a table of its stacks.
 * - The mmap domain is left out, as from every heap figure.
 * - A block allocated before the window and freed in it lowers no figure of
 *   the window; a free-list reuse (RETRACE) moves a window's block to its
 *   new stack, and leaves an older block out of the window.
 *
 * Threads: slots change hands through `state` (atomic). The caller claims a
 * FREE slot (CLAIMED) and pushes BEGIN; the writer, applying it, resets the
 * slot's tables and opens it. The caller pushes END and sleeps on `state`;
 * the writer, applying END, turns block units into blocks, stores DONE
 * (release) and wakes it. The caller reads the figures, then stores FREE.
 * Between BEGIN and DONE the tables are the writer's alone. A fork child
 * has no window open: its slots are freed.
 */
#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "writer/live.h"
#include "writer/window.h"

enum { WIN_FREE = 0, WIN_CLAIMED, WIN_DONE };

typedef struct window {
    _Atomic uint32_t state;        /* atomic: the slot's owner (above) */
    /* writer-only between BEGIN and DONE */
    int open;
    mtp_window_result_t res;       /* figures; block figures in units until DONE */
    mtp_window_site_t *sites;
    size_t sites_cap;              /* bytes */
    uint32_t *index;               /* stack -> site + 1, open addressing */
    size_t index_map, index_n;     /* bytes mapped; slots (a power of two) */
    uint32_t *dirty;
    size_t dirty_len, dirty_cap;
} window_t;

static MTP_LARGE window_t slots[MTP_WINDOW_MAX];
static MTP_FORKED _Atomic int slots_used;   /* a slot was ever claimed: else all are zero,
                                               and a fork child need not read their pages */
MTP_FORKED int mtp_windows_open;   /* writer-only */

/* born: address -> allocation number, open addressing (key 0 = empty;
 * no block is at address 0), backward-shift deletion. writer-only. */
typedef struct born_ent {
    uint64_t addr, counter;
} born_ent_t;
static MTP_FORKED born_ent_t *born;           /* reset in a fork child: with the other */
static MTP_FORKED size_t born_map, born_n, born_count;   /* bytes mapped; slots (a power of
                                                          two); entries */

static inline size_t hash_addr(uint64_t a)
{
    return (size_t)((a >> 4) * 0x9e3779b97f4a7c15ull >> 17);
}

static size_t born_slots(void)
{
    return born_n;
}

static void born_free(void)
{
    if (born)
        munmap(born, born_map);
    born = NULL;
    born_map = born_n = born_count = 0;
}

static int born_grow(void)
{
    size_t n = born_n ? 2 * born_n : 4096;
    born_ent_t *old = born;
    size_t old_n = born_n, old_map = born_map;
    void *p = NULL;
    size_t cap = 0;
    if (mtp_mm_grow(&p, &cap, n * sizeof(*born)) < 0)
        return -ENOMEM;
    born = p;
    born_map = cap;
    born_n = n;
    size_t mask = n - 1;
    for (size_t i = 0; i < old_n; i++) {
        if (!old[i].addr)
            continue;
        size_t j = hash_addr(old[i].addr) & mask;
        while (born[j].addr)
            j = (j + 1) & mask;
        born[j] = old[i];
    }
    if (old)
        munmap(old, old_map);
    return 0;
}

static void born_put(uint64_t addr, uint64_t counter)
{
    if ((born_count + 1) * 2 > born_slots() && born_grow() < 0)
        return;   /* out of memory: the block counts as allocated before the windows */
    size_t mask = born_slots() - 1, i = hash_addr(addr) & mask;
    while (born[i].addr && born[i].addr != addr)
        i = (i + 1) & mask;
    if (!born[i].addr)
        born_count++;
    born[i] = (born_ent_t){addr, counter};
}

/* Takes addr out; returns its number, or UINT64_MAX when it is not there. */
static uint64_t born_take(uint64_t addr)
{
    if (!born_count)
        return UINT64_MAX;
    size_t mask = born_slots() - 1, i = hash_addr(addr) & mask;
    while (born[i].addr != addr) {
        if (!born[i].addr)
            return UINT64_MAX;
        i = (i + 1) & mask;
    }
    uint64_t counter = born[i].counter;
    /* backward shift: move up each later entry that may sit at i */
    for (size_t j = (i + 1) & mask; born[j].addr; j = (j + 1) & mask) {
        size_t home = hash_addr(born[j].addr) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            born[i] = born[j];
            i = j;
        }
    }
    born[i].addr = 0;
    born_count--;
    return counter;
}

static uint64_t born_find(uint64_t addr)
{
    if (!born_count)
        return UINT64_MAX;
    size_t mask = born_slots() - 1, i = hash_addr(addr) & mask;
    for (; born[i].addr; i = (i + 1) & mask)
        if (born[i].addr == addr)
            return born[i].counter;
    return UINT64_MAX;
}

/* ---- a window's stacks ---- */
static size_t index_slots(const window_t *w)
{
    return w->index_n;
}

static int index_grow(window_t *w)
{
    size_t n = index_slots(w) ? 2 * index_slots(w) : 1024;
    void *p = NULL;
    size_t cap = 0;
    if (mtp_mm_grow(&p, &cap, n * sizeof(*w->index)) < 0)
        return -ENOMEM;
    if (w->index)
        munmap(w->index, w->index_map);
    w->index = p;
    w->index_map = cap;
    w->index_n = n;
    size_t mask = n - 1;
    for (uint32_t k = 0; k < w->res.nsites; k++) {
        size_t j = hash_addr((uint64_t)w->sites[k].stack << 4) & mask;
        while (w->index[j])
            j = (j + 1) & mask;
        w->index[j] = k + 1;
    }
    return 0;
}

static mtp_window_site_t *site_of(window_t *w, uint32_t stack)
{
    if (((size_t)w->res.nsites + 1) * 2 > index_slots(w) && index_grow(w) < 0)
        return NULL;
    size_t mask = index_slots(w) - 1, i = hash_addr((uint64_t)stack << 4) & mask;
    for (; w->index[i]; i = (i + 1) & mask)
        if (w->sites[w->index[i] - 1].stack == stack)
            return &w->sites[w->index[i] - 1];
    void *p = w->sites;
    if (mtp_mm_grow(&p, &w->sites_cap, ((size_t)w->res.nsites + 1) * sizeof(*w->sites)) < 0)
        return NULL;
    w->sites = p;
    mtp_window_site_t *s = &w->sites[w->res.nsites];
    memset(s, 0, sizeof(*s));
    s->stack = stack;
    w->index[i] = ++w->res.nsites;
    return s;
}

static void mark_dirty(window_t *w, mtp_window_site_t *s)
{
    if (s->dirty)
        return;
    void *p = w->dirty;
    if (mtp_mm_grow(&p, &w->dirty_cap, (w->dirty_len + 1) * sizeof(*w->dirty)) < 0)
        return;   /* out of memory: this stack's figure at the peak may lag */
    w->dirty = p;
    s->dirty = 1;
    w->dirty[w->dirty_len++] = (uint32_t)(s - w->sites);
}

static void commit_peak(window_t *w)
{
    for (size_t i = 0; i < w->dirty_len; i++) {
        mtp_window_site_t *s = &w->sites[w->dirty[i]];
        s->peak_bytes = s->live_bytes;
        s->peak_blocks = s->live_blocks;
        s->dirty = 0;
    }
    w->dirty_len = 0;
    w->res.peak_bytes = w->res.live_bytes;
    w->res.peak_blocks = w->res.live_blocks;
}

/* ---- the writer's side ---- */
void mtp_window_added(uint64_t addr, uint32_t stack, uint64_t bytes, uint64_t units,
                      uint64_t counter)
{
    born_put(addr, counter);
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        window_t *w = &slots[k];
        if (!w->open || counter < w->res.start)
            continue;
        mtp_window_site_t *s = site_of(w, stack);
        if (s) {
            s->live_bytes += bytes;
            s->live_blocks += units;
            s->alloc_bytes += bytes;
            s->alloc_blocks += units;
            mark_dirty(w, s);
        }
        w->res.live_bytes += bytes;
        w->res.live_blocks += units;
        w->res.alloc_bytes += bytes;
        w->res.alloc_blocks += units;
        if (w->res.live_bytes > w->res.peak_bytes)
            commit_peak(w);
    }
}

void mtp_window_removed(uint64_t addr, uint32_t stack, uint64_t bytes, uint64_t units)
{
    uint64_t counter = born_take(addr);
    if (counter == UINT64_MAX)
        return;   /* allocated before every open window */
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        window_t *w = &slots[k];
        if (!w->open || counter < w->res.start)
            continue;
        mtp_window_site_t *s = site_of(w, stack);
        if (s) {
            s->live_bytes -= bytes;
            s->live_blocks -= units;
            mark_dirty(w, s);
        }
        w->res.live_bytes -= bytes;
        w->res.live_blocks -= units;
    }
}

void mtp_window_unallocated(uint64_t addr, uint32_t stack, uint64_t bytes, uint64_t units)
{
    uint64_t counter = born_find(addr);
    if (counter == UINT64_MAX)
        return;
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        window_t *w = &slots[k];
        if (!w->open || counter < w->res.start)
            continue;
        mtp_window_site_t *s = site_of(w, stack);
        if (s) {
            s->alloc_bytes -= bytes;
            s->alloc_blocks -= units;
        }
        w->res.alloc_bytes -= bytes;
        w->res.alloc_blocks -= units;
    }
}

void mtp_window_moved(uint64_t addr, uint32_t from, uint32_t to, uint64_t bytes, uint64_t units)
{
    uint64_t counter = born_find(addr);
    if (counter == UINT64_MAX)
        return;
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        window_t *w = &slots[k];
        if (!w->open || counter < w->res.start)
            continue;
        /* site_of may move the sites array: the second call first */
        mtp_window_site_t *d = site_of(w, to);
        size_t di = d ? (size_t)(d - w->sites) : 0;
        mtp_window_site_t *s = d ? site_of(w, from) : NULL;
        if (!s)
            continue;
        d = &w->sites[di];
        s->live_bytes -= bytes;
        s->live_blocks -= units;
        d->live_bytes += bytes;
        d->live_blocks += units;
        mark_dirty(w, s);
        mark_dirty(w, d);
    }
}

static void close_window(window_t *w, uint64_t counter)
{
    w->open = 0;
    w->res.end = counter;
    if (--mtp_windows_open == 0)
        born_free();   /* no window left to ask about these blocks */
    w->res.live_blocks = mtp_live_blocks(w->res.live_blocks);
    w->res.alloc_blocks = mtp_live_blocks(w->res.alloc_blocks);
    w->res.peak_blocks = mtp_live_blocks(w->res.peak_blocks);
    for (uint32_t i = 0; i < w->res.nsites; i++) {
        mtp_window_site_t *s = &w->sites[i];
        if (s->dirty && w->res.live_bytes == w->res.peak_bytes) {
            s->peak_bytes = s->live_bytes;   /* the window ends at its peak */
            s->peak_blocks = s->live_blocks;
        }
        s->live_blocks = mtp_live_blocks(s->live_blocks);
        s->alloc_blocks = mtp_live_blocks(s->alloc_blocks);
        s->peak_blocks = mtp_live_blocks(s->peak_blocks);
    }
    w->res.sites = w->sites;
    atomic_store_explicit(&w->state, WIN_DONE, memory_order_release);
    syscall(SYS_futex, &w->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void mtp_window_event(const mtp_event_t *ev)
{
    if (ev->addr >= MTP_WINDOW_MAX)
        return;
    window_t *w = &slots[ev->addr];
    if (ev->size == MTP_WINDOW_BEGIN && !w->open) {
        memset(&w->res, 0, sizeof(w->res));
        w->res.start = ev->counter;
        if (w->index)
            memset(w->index, 0, w->index_n * sizeof(*w->index));
        w->dirty_len = 0;
        w->open = 1;
        mtp_windows_open++;
    } else if (ev->size == MTP_WINDOW_END && w->open) {
        close_window(w, ev->counter);
    }
}

MTP_FORK_CODE void mtp_window_atfork_child(void)
{
    if (atomic_load(&slots_used)) {
        for (int k = 0; k < MTP_WINDOW_MAX; k++) {   /* stored where it changes (writer.c) */
            if (slots[k].open)
                slots[k].open = 0;
            if (atomic_load(&slots[k].state) != WIN_FREE)
                atomic_store(&slots[k].state, WIN_FREE);
        }
    }
    mtp_windows_open = 0;
    born_free();
}

/* ---- the caller's side (core/control.c pushes the events) ---- */
int mtp_window_claim(void)
{
    if (!atomic_load(&slots_used))
        atomic_store(&slots_used, 1);   /* before any slot changes */
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        uint32_t expect = WIN_FREE;
        if (atomic_compare_exchange_strong(&slots[k].state, &expect, WIN_CLAIMED))
            return k;
    }
    return -EBUSY;
}

int mtp_window_claimed(int slot)
{
    return slot >= 0 && slot < MTP_WINDOW_MAX &&
           atomic_load_explicit(&slots[slot].state, memory_order_acquire) == WIN_CLAIMED;
}

int mtp_window_wait(int slot, mtp_window_result_t *out, int (*alive)(void))
{
    window_t *w = &slots[slot];
    struct timespec recheck = {0, 10 * 1000 * 1000};
    while (atomic_load_explicit(&w->state, memory_order_acquire) != WIN_DONE) {
        if (!alive()) {
            atomic_store(&w->state, WIN_FREE);
            return -ECANCELED;
        }
        syscall(SYS_futex, &w->state, FUTEX_WAIT_PRIVATE, WIN_CLAIMED, &recheck, NULL, 0);
    }
    *out = w->res;
    return 0;
}

void mtp_window_release(int slot)
{
    if (slot >= 0 && slot < MTP_WINDOW_MAX)
        atomic_store_explicit(&slots[slot].state, WIN_FREE, memory_order_release);
}
