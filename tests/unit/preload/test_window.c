/* Unit tests of the measurement windows (preload/writer/window.c) through
 * the live table's events (writer/live.c), against a model that keeps each
 * block's allocation number and recomputes every window's figures the
 * plain way (a copy of every stack at each new peak).
 *
 * Random allocations, frees (of blocks allocated before, in and between
 * windows), PyTraceMalloc_Track and Untrack, free-list reuses (RETRACE),
 * with up to MTP_WINDOW_MAX windows open at once, nested and overlapping,
 * opened and closed at random; enough live blocks in a window that the
 * table of allocation numbers grows several times. Every closed window's
 * totals and per-stack figures must equal the model's. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "writer/live.h"
#include "writer/window.h"

#define POOL 20000
#define NSTACKS 30
#define STEPS 400000

typedef struct mblock {
    int live;
    uint64_t size, birth;
    uint32_t stack, domain;
} mblock_t;

typedef struct mfig {
    uint64_t live_bytes, live_blocks, alloc_bytes, alloc_blocks, peak_bytes, peak_blocks;
} mfig_t;

typedef struct mwin {
    int open;
    uint64_t start;
    mfig_t tot;
    mfig_t st[NSTACKS];
} mwin_t;

static mblock_t model[POOL];
static mwin_t mwin[MTP_WINDOW_MAX];
static uint64_t counter = 1;

static uint64_t rnd(void)
{
    static uint64_t s = 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static uint64_t addr_of(size_t i)
{
    return 0x7f0000000000ull + (uint64_t)i * 4096;
}

static int in_window(const mwin_t *w, uint64_t birth)
{
    return w->open && birth >= w->start;
}

static void m_add(size_t i)
{
    const mblock_t *b = &model[i];
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        mwin_t *w = &mwin[k];
        if (!in_window(w, b->birth))
            continue;
        mfig_t *s = &w->st[b->stack];
        s->live_bytes += b->size;
        s->live_blocks++;
        s->alloc_bytes += b->size;
        s->alloc_blocks++;
        w->tot.live_bytes += b->size;
        w->tot.live_blocks++;
        w->tot.alloc_bytes += b->size;
        w->tot.alloc_blocks++;
        if (w->tot.live_bytes > w->tot.peak_bytes) {
            w->tot.peak_bytes = w->tot.live_bytes;
            w->tot.peak_blocks = w->tot.live_blocks;
            for (int t = 0; t < NSTACKS; t++) {
                w->st[t].peak_bytes = w->st[t].live_bytes;
                w->st[t].peak_blocks = w->st[t].live_blocks;
            }
        }
    }
}

static void m_remove(size_t i)
{
    mblock_t *b = &model[i];
    for (int k = 0; k < MTP_WINDOW_MAX; k++) {
        mwin_t *w = &mwin[k];
        if (!in_window(w, b->birth))
            continue;
        w->st[b->stack].live_bytes -= b->size;
        w->st[b->stack].live_blocks--;
        w->tot.live_bytes -= b->size;
        w->tot.live_blocks--;
    }
    b->live = 0;
}

static void m_alloc(size_t i, uint64_t size, uint32_t stack, uint32_t domain, uint64_t n)
{
    if (model[i].live)
        m_remove(i);   /* a free the table never saw */
    model[i] = (mblock_t){1, size, n, stack, domain};
    m_add(i);
}

static void open_window(void)
{
    int slot = mtp_window_claim();
    if (slot < 0) {
        cr_assert_eq(slot, -EBUSY);
        return;
    }
    mtp_event_t ev = {counter, (uint64_t)slot, MTP_WINDOW_BEGIN, 0, MTP_EV_WINDOW, 0};
    mwin[slot] = (mwin_t){1, counter, {0}, {{0}}};
    counter++;
    mtp_window_event(&ev);
}

static int alive(void)
{
    return 1;
}

static void close_window(int slot)
{
    mtp_event_t ev = {counter++, (uint64_t)slot, MTP_WINDOW_END, 0, MTP_EV_WINDOW, 0};
    mtp_window_event(&ev);
    mwin_t *w = &mwin[slot];
    w->open = 0;
    if (w->tot.live_bytes == w->tot.peak_bytes)   /* the window ends at its peak */
        for (int t = 0; t < NSTACKS; t++) {
            w->st[t].peak_bytes = w->st[t].live_bytes;
            w->st[t].peak_blocks = w->st[t].live_blocks;
        }
    mtp_window_result_t r;
    cr_assert_eq(mtp_window_wait(slot, &r, alive), 0);
    cr_assert_eq(r.start, w->start);
    cr_assert_eq(r.live_bytes, w->tot.live_bytes, "window %d live bytes", slot);
    cr_assert_eq(r.live_blocks, w->tot.live_blocks, "window %d live blocks", slot);
    cr_assert_eq(r.alloc_bytes, w->tot.alloc_bytes, "window %d allocated bytes", slot);
    cr_assert_eq(r.alloc_blocks, w->tot.alloc_blocks, "window %d allocated blocks", slot);
    cr_assert_eq(r.peak_bytes, w->tot.peak_bytes, "window %d peak bytes", slot);
    cr_assert_eq(r.peak_blocks, w->tot.peak_blocks, "window %d peak blocks", slot);
    int seen[NSTACKS] = {0};
    for (uint32_t k = 0; k < r.nsites; k++) {
        const mtp_window_site_t *s = &r.sites[k];
        cr_assert_lt(s->stack, NSTACKS);
        cr_assert(!seen[s->stack], "stack %u twice", s->stack);
        seen[s->stack] = 1;
        const mfig_t *m = &w->st[s->stack];
        cr_assert_eq(s->live_bytes, m->live_bytes, "window %d stack %u live bytes", slot, s->stack);
        cr_assert_eq(s->live_blocks, m->live_blocks, "window %d stack %u live", slot, s->stack);
        cr_assert_eq(s->alloc_bytes, m->alloc_bytes, "window %d stack %u alloc", slot, s->stack);
        cr_assert_eq(s->alloc_blocks, m->alloc_blocks, "window %d stack %u", slot, s->stack);
        cr_assert_eq(s->peak_bytes, m->peak_bytes, "window %d stack %u peak bytes", slot, s->stack);
        cr_assert_eq(s->peak_blocks, m->peak_blocks, "window %d stack %u peak", slot, s->stack);
    }
    for (int t = 0; t < NSTACKS; t++)
        cr_assert(seen[t] || (!w->st[t].alloc_blocks && !w->st[t].live_blocks &&
                              !w->st[t].peak_blocks), "window %d: stack %d missing", slot, t);
    mtp_window_release(slot);
}

Test(window, events_match_the_model)
{
    int closed = 0, max_open = 0;
    uint64_t most_live = 0;
    for (int step = 0; step < STEPS; step++) {
        int r = (int)(rnd() % 1000), open = 0;
        for (int k = 0; k < MTP_WINDOW_MAX; k++)
            open += mwin[k].open;
        if (open > max_open)
            max_open = open;
        if (r < 3) {
            open_window();
            continue;
        }
        if (r < 5 && open) {
            int k = (int)(rnd() % MTP_WINDOW_MAX);
            if (mwin[k].open) {
                close_window(k);
                closed++;
            }
            continue;
        }
        for (int k = 0; k < MTP_WINDOW_MAX; k++)
            if (mwin[k].open && mwin[k].tot.live_blocks > most_live)
                most_live = mwin[k].tot.live_blocks;
        /* phases: the pool fills for a while, then drains */
        int filling = (step / 50000) % 2 == 0;
        size_t i = rnd() % POOL;
        uint64_t size = 1 + rnd() % 3000;
        uint32_t stack = (uint32_t)(rnd() % NSTACKS);
        uint32_t domain = MTSNAP_DOMAIN_NATIVE + (uint32_t)(rnd() % 4);   /* native, raw, mem, obj */
        mtp_event_t ev = {counter, addr_of(i), size, stack, 0, domain};
        r = (int)(rnd() % 100);
        if (r < (filling ? 60 : 30)) {
            ev.kind = MTP_EV_ALLOC;
            mtp_live_alloc(&ev);
            m_alloc(i, size, stack, domain, counter);
        } else if (r < 90) {
            ev.kind = MTP_EV_FREE;
            mtp_live_free(&ev);
            if (model[i].live)
                m_remove(i);
        } else if (r < 94) {   /* Track: the block re-added with this event's number */
            ev.kind = MTP_EV_TRACK;
            ev.domain = MTSNAP_DOMAIN_EXT_BASE + 7;
            mtp_live_track(&ev);
            if (model[i].live) {   /* counted once: its allocation is undone */
                for (int k = 0; k < MTP_WINDOW_MAX; k++)
                    if (in_window(&mwin[k], model[i].birth)) {
                        mwin[k].st[model[i].stack].alloc_bytes -= model[i].size;
                        mwin[k].st[model[i].stack].alloc_blocks--;
                        mwin[k].tot.alloc_bytes -= model[i].size;
                        mwin[k].tot.alloc_blocks--;
                    }
                m_remove(i);
            }
            m_alloc(i, size, stack, ev.domain, counter);
        } else if (r < 97) {   /* Untrack: only a block of that domain */
            ev.kind = MTP_EV_UNTRACK;
            ev.domain = MTSNAP_DOMAIN_EXT_BASE + 7;
            mtp_live_untrack(&ev);
            if (model[i].live && model[i].domain == ev.domain)
                m_remove(i);
        } else {               /* free-list reuse: a Python block moves to `stack` */
            ev.kind = MTP_EV_RETRACE;
            ev.domain = 0;
            mtp_live_retrace(&ev);
            mblock_t *b = &model[i];
            if (b->live && b->domain >= MTSNAP_DOMAIN_PY_RAW && b->domain <= MTSNAP_DOMAIN_PY_OBJ &&
                b->stack != stack) {
                for (int k = 0; k < MTP_WINDOW_MAX; k++) {
                    mwin_t *w = &mwin[k];
                    if (!in_window(w, b->birth))
                        continue;
                    w->st[b->stack].live_bytes -= b->size;
                    w->st[b->stack].live_blocks--;
                    w->st[stack].live_bytes += b->size;
                    w->st[stack].live_blocks++;
                }
                b->stack = stack;
            }
        }
        counter++;
    }
    for (int k = 0; k < MTP_WINDOW_MAX; k++)
        if (mwin[k].open) {
            close_window(k);
            closed++;
        }
    cr_assert_gt(closed, 100, "only %d windows closed", closed);
    cr_assert_eq(max_open, MTP_WINDOW_MAX, "never %d windows open at once", MTP_WINDOW_MAX);
    cr_assert_gt(most_live, 5000, "a window held at most %llu live blocks: the table of "
                 "allocation numbers never grew", (unsigned long long)most_live);
}
