/*
 * The memory time line: the live heap and the resident set size over time,
 * since tracing began, in a bounded series that every snapshot carries (the
 * TIMELINE record, include/memtrail_format.h).
 *
 * Threads: writer-only. mtp_timeline_tick runs in the writer's loop,
 * mtp_timeline_mark and mtp_timeline_close where a program thread marks or a
 * drain reaches a point while the writer thread is still to start
 * (writer.c, deferred_due and drain), mtp_timeline_view in the snapshot
 * writer, all with writer_lock held;
 * nothing here is atomic. A fork child inherits the series and
 * mtp_timeline_atfork_child (called from the writer's fork-child handler,
 * before the child's writer starts) starts it anew: the child's times count
 * from the fork, as its META.start_ns does.
 *
 * Invariants: pts[0..n) have strictly increasing t_ns; each point holds the
 * maxima over (previous point's t, its t]: heap_bytes the highest total of
 * live bytes (exact: writer/live.c keeps the highest since the last point
 * as it applies every event), heap_blocks the live blocks at that moment,
 * rss_bytes the highest resident set size read in the interval. A point is
 * added at most every `step` ns; when MTSNAP_TIMELINE_MAX_POINTS are held,
 * neighbours merge pairwise (the later t, the higher figures) and the step
 * doubles, so the series stays within 128 KiB and covers the whole run at
 * a resolution that halves as the run doubles.
 *
 * Sampling follows the writer: it ticks on every pass of its loop, which
 * runs while events come in and at least once a second when the program is
 * idle (writer.c's IDLE_MAX_MS). A process whose writer is still to start
 * has no such loop, and applies its events only when a ring is half full:
 * its thread marks a point at its ring's cold point once a step has passed
 * (every MTP_RING_DUE_EVERY events, record/ring.c, while it allocates; none
 * while it does not, when its heap does not change), with the time, the
 * resident set size, and the event number reached (`boundary`: every event
 * numbered below it came before). The point is pending until a drain has
 * applied the events below its boundary, and closed then, with the heap's
 * maxima up to there: as exact as the writer's, without a drain at each mark
 * (a drain writes pages of the live table, and after each fork of a shell
 * each page it writes is a fault). Pending points are in `pend`, oldest
 * first, boundaries increasing; when it is full, the marker drains
 * (writer.c) and marks again. The heap figures are exact whatever the
 * spacing; the resident set size is read only at ticks and marks, from
 * /proc/self/statm (opened and closed each time: memtrail keeps no
 * descriptor open in the program).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/state.h"
#include "base/util.h"
#include "writer/live.h"
#include "writer/timeline.h"

static mtsnap_tlpoint_t *pts;   /* writer-only: mmap'd on the first tick */
static MTP_FORKED uint32_t n;   /* points held */
static MTP_FORKED uint64_t step = MTSNAP_TIMELINE_STEP_NS;
static MTP_FORKED uint64_t origin;   /* CLOCK_MONOTONIC of tracing's start, 0 = not yet known */
static MTP_FORKED uint64_t next_tick;   /* CLOCK_MONOTONIC of the next point, 0 before the first pass */
static uint64_t held_rss;   /* writer-only: mtp_timeline_hold_rss's reading, 0 = read each time */
#define PENDING_MAX 64
static struct {
    uint64_t t_ns, rss, boundary;
} pend[PENDING_MAX];                /* writer_lock: marked points, oldest first */
static MTP_FORKED uint32_t npend;   /* writer_lock: points in pend */

/* The resident set size in bytes, or 0 when it cannot be read. */
static uint64_t rss_now(void)
{
    if (held_rss)
        return held_rss;
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0)
        return 0;
    buf[len] = 0;
    char *p = buf;
    strtoull(p, &p, 10);                 /* size */
    uint64_t pages = strtoull(p, NULL, 10); /* resident */
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Nanoseconds since tracing began (META.start_ns) at monotonic time `mono`. */
static uint64_t since_start(uint64_t mono)
{
    if (!origin) {   /* the monotonic clock's reading when the wall clock read start_ns */
        uint64_t wall = mtp_now_ns(), now = mtp_mono_ns();
        uint64_t ago = wall > mtp_start_ns ? wall - mtp_start_ns : 0;
        origin = now > ago ? now - ago : 1;
    }
    return mono > origin ? mono - origin : 0;
}

/* Halves the series: neighbours merge into the later one's time, the higher
 * heap (with its blocks) and the higher rss. */
static void merge_pairs(void)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i += 2, k++) {
        mtsnap_tlpoint_t p = pts[i];
        if (i + 1 < n) {
            const mtsnap_tlpoint_t *q = &pts[i + 1];
            p.t_ns = q->t_ns;
            if (q->heap_bytes >= p.heap_bytes) {
                p.heap_bytes = q->heap_bytes;
                p.heap_blocks = q->heap_blocks;
            }
            if (q->rss_bytes > p.rss_bytes)
                p.rss_bytes = q->rss_bytes;
        }
        pts[k] = p;
    }
    n = k;
    step *= 2;
}

/* Whether a point is due at `mono`; the first call only sets when (a
 * process that lives less than a step costs nothing more here). */
static int due(uint64_t mono)
{
    if (mono < next_tick)
        return 0;
    if (!next_tick) {
        next_tick = mono + step;
        return 0;
    }
    if (!pts) {
        void *m = mmap(NULL, MTSNAP_TIMELINE_MAX_POINTS * sizeof(*pts), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            next_tick = UINT64_MAX;   /* no time line in this process; snapshots go on */
            return 0;
        }
        pts = m;
    }
    return 1;
}

/* Appends a point of time t_ns with the heap's maxima since the last one. */
static void add(uint64_t t_ns, uint64_t rss)
{
    mtsnap_tlpoint_t p = {.t_ns = t_ns, .rss_bytes = rss};
    mtp_live_window(&p.heap_bytes, &p.heap_blocks, 1);
    if (n && p.t_ns <= pts[n - 1].t_ns)
        p.t_ns = pts[n - 1].t_ns + 1;
    if (n == MTSNAP_TIMELINE_MAX_POINTS)
        merge_pairs();
    pts[n++] = p;
}

void mtp_timeline_tick(uint64_t mono)
{
    if (npend || !due(mono))   /* points marked before the writer started come first:
                                  the drains close them */
        return;
    add(since_start(mono), rss_now());
    next_tick = mono + step;
}

int mtp_timeline_mark(uint64_t mono, uint64_t boundary)
{
    if (!due(mono))
        return 0;
    if (npend == PENDING_MAX)
        return -1;
    pend[npend].t_ns = since_start(mono);
    pend[npend].rss = rss_now();
    pend[npend].boundary = boundary;
    npend++;
    next_tick = mono + step;
    return 0;
}

uint64_t mtp_timeline_pending(void)
{
    return npend ? pend[0].boundary : UINT64_MAX;
}

void mtp_timeline_close(void)
{
    if (!npend)
        return;
    add(pend[0].t_ns, pend[0].rss);
    npend--;
    memmove(&pend[0], &pend[1], npend * sizeof(pend[0]));
}

uint32_t mtp_timeline_view(const mtsnap_tlpoint_t **points, mtsnap_tlpoint_t *last, uint64_t *step_ns)
{
    mtsnap_tlpoint_t p = {.t_ns = since_start(mtp_mono_ns()), .rss_bytes = rss_now()};
    mtp_live_window(&p.heap_bytes, &p.heap_blocks, 0);
    if (n && p.t_ns <= pts[n - 1].t_ns)
        p.t_ns = pts[n - 1].t_ns + 1;
    *points = pts;
    *last = p;
    *step_ns = step;
    return n;
}

void mtp_timeline_hold_rss(void)
{
    held_rss = rss_now();
}

MTP_FORK_CODE void mtp_timeline_atfork_child(void)
{
    if (npend)
        npend = 0;
    n = 0;
    step = MTSNAP_TIMELINE_STEP_NS;
    origin = 0;
    next_tick = 0;
    uint64_t bytes, blocks;
    mtp_live_window(&bytes, &blocks, 1);   /* the child's first interval starts now */
}
