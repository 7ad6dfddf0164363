/* Format round trip: the preload's snapshot writer (live table, stack table,
 * symbolizer, serializer) writes a file that the analyzer's reader loads back exactly. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "record/record.h"
#include "snapshot.h"
#include "writer/live.h"
#include "writer/snapwrite.h"
#include "writer/timeline.h"
#include "base/util.h"

/* The writer's configuration (base/state.c) as this test needs it. */
static void config(void)
{
    mtp_cfg.depth = 64;
    mtp_cfg.unwind = MTSNAP_UNWIND_LIBUNWIND;
}
TestSuite(roundtrip, .init = config);

__attribute__((noinline)) void rt_site_a(void);
__attribute__((noinline)) void rt_site_b(void);
__attribute__((noinline)) void rt_site_c(void);
__attribute__((noinline)) void rt_site_a(void) { __asm__ volatile("nop; nop; nop; nop"); }
__attribute__((noinline)) void rt_site_b(void) { __asm__ volatile("nop; nop; nop; nop"); }
__attribute__((noinline)) void rt_site_c(void) { __asm__ volatile("nop; nop; nop; nop"); }

static uint64_t counter;

static void alloc(uint64_t addr, uint64_t size, uint32_t stack)
{
    mtp_event_t e = {counter++, addr, size, stack, MTP_EV_ALLOC, MTSNAP_DOMAIN_NATIVE};
    mtp_live_alloc(&e);
}

static void release(uint64_t addr)
{
    mtp_event_t e = {counter++, addr, 0, 0, MTP_EV_FREE, 0};
    mtp_live_free(&e);
}

static const mtsnap_stack_stat_t *stat_for(const mta_snapshot_t *s, const char *fn)
{
    for (uint32_t i = 0; i < s->nstats; i++) {
        const mta_stack_t *k = &s->stacks[s->stats[i].stack];
        if (k->depth && !strcmp(s->frames[k->frames[0]].function, fn))
            return &s->stats[i];
    }
    return NULL;
}

/* A test's output directory (mtp_cfg.outdir, from the template in dir),
 * the stack table, and a thread record to intern stacks with. */
static mtp_thread_t *setup(char *dir)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(mtp_cfg.outdir, sizeof(mtp_cfg.outdir), "%s", dir);
    cr_assert_eq(mtp_stacktab_init(), 0);
    mtp_thread_t *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(t, MAP_FAILED);
    return t;
}

/* An API snapshot of process `pid` now (the events applied so far), written
 * by the writer into mtp_cfg.outdir and read back; its path into path. */
static mta_snapshot_t *write_now(uint32_t pid, char *path)
{
    mtp_snapinfo_t info = {.pid = (pid_t)pid, .ppid = 1, .time_ns = mtp_now_ns(),
                           .start_ns = mtp_start_ns, .counter = counter,
                           .trigger = MTSNAP_TRIGGER_API, .seq = 1, .label = "",
                           .cmdline = "p", .cmdline_len = 1, .exe = "p", .hostname = "h"};
    char err[512];
    cr_assert_eq(mtp_snapshot_write(&info, path, PATH_MAX), 0);
    mta_snapshot_t *s = NULL;
    cr_assert_eq(mta_snapshot_load(path, &s, err, sizeof(err)), 0, "%s", err);
    return s;
}

Test(roundtrip, writer_output_reads_back_exactly)
{
    char dir[] = "/tmp/memtrail-rt-XXXXXX";
    mtp_thread_t *t = setup(dir);
    /* Return addresses just inside each site function, then a shared caller. */
    uintptr_t main_pc = (uintptr_t)&rt_site_c + 3;
    uintptr_t sa[] = {(uintptr_t)&rt_site_a + 3, main_pc};
    uintptr_t sb[] = {(uintptr_t)&rt_site_b + 3, main_pc};
    uintptr_t sc[] = {(uintptr_t)&rt_site_c + 3};
    uint32_t A = mtp_stack_intern(t, sa, 2), B = mtp_stack_intern(t, sb, 2),
             C = mtp_stack_intern(t, sc, 1);

    alloc(0x10000, 100, A);
    alloc(0x20000, 100, A);
    alloc(0x30000, 100, A);
    alloc(0x90000, 1000, B);
    release(0x10000);
    alloc(0x50000, 500, C);   /* counter 5: the peak, 1700 B in 4 blocks */
    release(0x50000);
    release(0x90000);
    alloc(0x40000, 400, C);
    alloc(0x50000, 0, B);     /* address reuse, zero size */

    static const char cmd[] = "prog\0--flag";
    mtp_snapinfo_t info = {.pid = 4242, .ppid = 1, .time_ns = 1700000000123456789ull,
                           .start_ns = 1700000000000000000ull, .counter = counter,
                           .trigger = MTSNAP_TRIGGER_API, .seq = 7, .label = "round-trip",
                           .cmdline = cmd, .cmdline_len = sizeof(cmd) - 1,
                           .exe = "/usr/bin/prog", .hostname = "host"};
    char path[PATH_MAX];
    cr_assert_eq(mtp_snapshot_write(&info, path, sizeof(path)), 0);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s/memtrail.4242.0007.api.mtsnap", dir);
    cr_assert_str_eq(path, want);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);

    char err[512];
    mta_snapshot_t *s = NULL;
    cr_assert_eq(mta_snapshot_load(path, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s->version, 3);   /* the writer writes version 3 */
    cr_assert_eq(s->meta.pid, 4242);
    cr_assert_eq(s->meta.ppid, 1);
    cr_assert_eq(s->meta.seq, 7);
    cr_assert_eq(s->meta.trigger, MTSNAP_TRIGGER_API);
    cr_assert_eq(s->meta.time_ns, 1700000000123456789ull);
    cr_assert_eq(s->meta.counter, 10);
    cr_assert_eq(s->meta.depth, 64);
    cr_assert_str_eq(s->label, "round-trip");
    cr_assert_str_eq(s->exe, "/usr/bin/prog");
    cr_assert_str_eq(s->hostname, "host");
    cr_assert_eq(s->cmdline_len, sizeof(cmd) - 1);
    cr_assert_eq(memcmp(s->cmdline, cmd, sizeof(cmd) - 1), 0);

    cr_assert_eq(s->totals.live_bytes, 600);
    cr_assert_eq(s->totals.live_blocks, 4);
    cr_assert_eq(s->totals.alloc_bytes, 2200);
    cr_assert_eq(s->totals.alloc_blocks, 7);
    cr_assert_eq(s->totals.free_blocks, 3);
    cr_assert_eq(s->totals.peak_bytes, 1700);
    cr_assert_eq(s->totals.peak_blocks, 4);
    cr_assert_eq(s->totals.peak_counter, 5);

    cr_assert_eq(s->nstats, 3);
    const mtsnap_stack_stat_t *a = stat_for(s, "rt_site_a"), *b = stat_for(s, "rt_site_b"),
                              *c = stat_for(s, "rt_site_c");
    cr_assert(a && b && c);
    cr_assert_eq(a->live_bytes, 200); cr_assert_eq(a->live_blocks, 2);
    cr_assert_eq(a->alloc_bytes, 300); cr_assert_eq(a->alloc_blocks, 3);
    cr_assert_eq(a->peak_bytes, 200); cr_assert_eq(a->peak_blocks, 2);
    cr_assert_eq(b->live_bytes, 0); cr_assert_eq(b->live_blocks, 1);
    cr_assert_eq(b->alloc_bytes, 1000); cr_assert_eq(b->alloc_blocks, 2);
    cr_assert_eq(b->peak_bytes, 1000); cr_assert_eq(b->peak_blocks, 1);
    cr_assert_eq(c->live_bytes, 400); cr_assert_eq(c->live_blocks, 1);
    cr_assert_eq(c->alloc_bytes, 900); cr_assert_eq(c->alloc_blocks, 2);
    cr_assert_eq(c->peak_bytes, 500); cr_assert_eq(c->peak_blocks, 1);

    /* Frames: symbolized in this executable, the caller frame shared. */
    const mta_stack_t *ka = &s->stacks[a->stack], *kb = &s->stacks[b->stack];
    cr_assert_eq(ka->depth, 2);
    cr_assert_eq(ka->frames[1], kb->frames[1], "one frame for one return address");
    const mta_frame_t *f = &s->frames[ka->frames[0]];
    cr_assert_eq(f->pc, sa[0]);
    cr_assert_eq(f->offset, 3);
    cr_assert_eq(f->kind, MTSNAP_FRAME_NATIVE);
    cr_assert_neq(f->module, MTSNAP_NONE);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    cr_assert_str_eq(s->modules[f->module].path, exe);
    cr_assert_neq(strstr(f->file, "test_roundtrip.c"), NULL, "file %s", f->file);

    /* Blocks: sorted by address, stack ids renumbered consistently. */
    static const uint64_t addrs[] = {0x20000, 0x30000, 0x40000, 0x50000};
    cr_assert_eq(s->nblocks, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(s->blocks[i].address, addrs[i]);
    cr_assert_eq(s->blocks[0].stack, a->stack);
    cr_assert_eq(s->blocks[2].stack, c->stack);
    cr_assert_eq(s->blocks[2].size, 400);
    cr_assert_eq(s->blocks[2].counter, 0);   /* neither the live map nor versions 2 and 3 keep it */
    cr_assert_eq(s->blocks[3].stack, b->stack);
    cr_assert_eq(s->blocks[3].size, 0);

    /* Nothing else was left in the directory (no temporary file). */
    char cmdbuf[PATH_MAX + 64];
    snprintf(cmdbuf, sizeof(cmdbuf), "test $(ls -A %s | wc -l) = 1", dir);
    cr_assert_eq(system(cmdbuf), 0);
    mta_snapshot_free(s);
    unlink(path);
    rmdir(dir);
}

/* The time line (writer/timeline.c) as the writer's loop drives it: one tick
 * every 10 ms of a monotonic clock the test advances, a short-lived block of
 * a different size between ticks (every 50th interval only frees one made
 * in the interval before). Every point must hold exactly the highest
 * live total of the ticks it stands for, after the series filled and its
 * neighbours merged (step doubled), and the last point is the snapshot's. */
Test(roundtrip, timeline_keeps_every_interval_maximum)
{
    char dir[] = "/tmp/memtrail-rt-XXXXXX";
    mtp_thread_t *t = setup(dir);
    uintptr_t sa[] = {(uintptr_t)&rt_site_a + 3};
    uint32_t A = mtp_stack_intern(t, sa, 1);

    enum { TICKS = 5000, BASE = 1000 };
    static uint64_t size[TICKS + 1];   /* size[i]: the block made before tick i */
    const uint64_t step = MTSNAP_TIMELINE_STEP_NS;
    mtp_start_ns = mtp_now_ns();
    uint64_t m0 = mtp_mono_ns();       /* tick i at m0 + i * step: t_ns = i * step */
    alloc(0x1000, BASE, A);
    mtp_timeline_tick(m0);   /* the writer's first pass: the first point one step later */
    uint32_t x = 12345;
    for (uint32_t i = 1; i <= TICKS; i++) {
        x = x * 1103515245u + 12345u;
        if (i % 50 == 0) {
            /* Only a free: the highest total is where the interval began. */
            release(0x100000);
            size[i] = size[i - 1];
        } else {
            size[i] = 1 + (x >> 8) % 100000;
            alloc(0x100000, size[i], A);
            if (i % 50 != 49)   /* 49: still live at the tick */
                release(0x100000);
        }
        mtp_timeline_tick(m0 + i * step);
    }
    alloc(0x200000, 7, A);   /* after the last tick: the snapshot's own point */

    char path[PATH_MAX];
    mta_snapshot_t *s = write_now(4243, path);
    cr_assert(s->has_timeline);
    /* 4096 points of 10 ms filled at tick 4096; the next tick merged them
     * into 2048 of 20 ms and added one; then one every 20 ms. */
    cr_assert_eq(s->timeline_step_ns, 2 * step);
    cr_assert_eq(s->ntimeline, 2048 + 1 + (TICKS - 4097) / 2 + 1);
    uint64_t prev_tick = 0, highest = 0;
    for (uint64_t k = 0; k + 1 < s->ntimeline; k++) {
        const mta_timeline_point_t *p = &s->timeline[k];
        /* The origin is the test's clock within microseconds: round to ticks. */
        uint64_t tick = (p->t_ns + step / 2) / step;
        cr_assert(tick > prev_tick && tick <= TICKS, "point %llu at tick %llu", (unsigned long long)k,
                  (unsigned long long)tick);
        uint64_t want = 0;
        for (uint64_t i = prev_tick + 1; i <= tick; i++)
            want = size[i] > want ? size[i] : want;
        cr_assert_eq(p->heap_bytes, BASE + want, "point %llu (ticks %llu..%llu)",
                     (unsigned long long)k, (unsigned long long)prev_tick + 1,
                     (unsigned long long)tick);
        cr_assert_eq(p->heap_blocks, 2);
        cr_assert_gt(p->rss_bytes, 0);
        highest = p->heap_bytes > highest ? p->heap_bytes : highest;
        prev_tick = tick;
    }
    /* With 20 ms steps, tick 5000 came 10 ms after the last point: its
     * block and the 7-byte one are the snapshot's own point. */
    cr_assert_eq(prev_tick, TICKS - 1);
    const mta_timeline_point_t *last = &s->timeline[s->ntimeline - 1];
    cr_assert_eq(last->heap_bytes, BASE + (size[TICKS] > 7 ? size[TICKS] : 7));
    cr_assert_eq(last->heap_blocks, 2);
    highest = last->heap_bytes > highest ? last->heap_bytes : highest;
    cr_assert_eq(highest, s->totals.peak_bytes, "the series holds the peak");
    cr_assert_gt(last->t_ns, s->timeline[s->ntimeline - 2].t_ns);
    mta_snapshot_free(s);
    unlink(path);
    rmdir(dir);
}

/* Deep stacks that share their outer words (the stack table's chunks): the
 * file's STACKS tree (format version 3) expands to each stack's frames, in
 * order (preload_framemap checks that each shared chunk is one node). */
Test(roundtrip, deep_stacks_share_their_outer_frames)
{
    char dir[] = "/tmp/memtrail-rt-XXXXXX";
    mtp_thread_t *t = setup(dir);
    enum { N = 50, DEPTH = 60, SHARED = 40 };
    static uintptr_t w[N][DEPTH];
    uint32_t id[N];
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < DEPTH; d++)   /* distinct inner words, the same outer ones */
            w[i][d] = d < DEPTH - SHARED ? 0x500000 + (uintptr_t)(i * DEPTH + d) * 16
                                         : 0x600000 + (uintptr_t)d * 16;
        id[i] = mtp_stack_intern(t, w[i], DEPTH);
        alloc(0x100000 + (uint64_t)i * 64, 8, id[i]);
    }
    char path[PATH_MAX];
    mta_snapshot_t *s = write_now(4244, path);
    cr_assert_eq(s->nstacks, N);
    cr_assert_eq(s->nblocks, N);
    for (uint64_t b = 0; b < s->nblocks; b++) {
        int i = (int)((s->blocks[b].address - 0x100000) / 64);
        const mta_stack_t *k = &s->stacks[s->blocks[b].stack];
        cr_assert_eq(k->depth, DEPTH);
        for (int d = 0; d < DEPTH; d++)
            cr_assert_eq(s->frames[k->frames[d]].pc, w[i][d], "stack %d frame %d", i, d);
    }
    cr_assert_eq(s->nframes, N * (DEPTH - SHARED) + SHARED);
    mta_snapshot_free(s);
    unlink(path);
    rmdir(dir);
}
