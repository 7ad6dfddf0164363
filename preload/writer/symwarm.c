/*
 * The writer's symbolizer: one for the process's life (and into a fork
 * child), so a frame symbolized for one snapshot is not symbolized again
 * (writer/symbolize.c), and warmed while the writer has nothing else to do.
 *
 * Threads: the writer thread only, with the writer lock held (so that a
 * fork never copies it half-updated). Warming runs between drains, a few
 * stacks at a time: the stack table is insert-only and its stacks never
 * change (record/record.h), so a stack id below mtp_stack_count() can be
 * read at any time. Warming opens files (the symbol cache's, libdw's
 * modules) while the program runs; a fork child, which may list or close
 * its descriptors right away, waits 200 ms before it warms.
 *
 * Why warm: a snapshot names every native frame of the stacks it writes.
 * At the exit snapshot that work is on the process's way out, and a fork
 * child that exits soon (a shell's subshell, a pool's worker) would do it
 * again from nothing. Done while the program runs, on the writer's core,
 * the answers are there when the snapshot comes, and a child inherits
 * them. The answers are the same either way: a module replaced at the same
 * address between the two is noticed by the snapshot's refresh, which
 * drops what was learnt about the old one.
 */
#include <string.h>

#include "base/privheap.h"
#include "base/util.h"
#include "python/py.h"
#include "record/record.h"
#include "writer/symwarm.h"

#define CHILD_QUIET_NS (200u * 1000 * 1000)   /* a fork child warms after 200 ms */

static mtp_symbolizer_t *sym;     /* writer-only */
static uint32_t warmed = 1;       /* writer-only: stacks below this id are named */
static int unknown_module;        /* writer-only: a frame fell outside the known modules */
static MTP_FORKED uint64_t quiet_until;   /* writer-only: no warming before (monotonic ns);
                                             set in a fork child */

static mtp_symbolizer_t *open_or_refresh(int refresh)
{
    static int cache_warned;
    if (sym)
        return !refresh || mtp_sym_refresh(sym) == 0 ? sym : NULL;
    if (mtp_sym_open(&sym) < 0) {
        sym = NULL;
        return NULL;
    }
    int c = mtp_cfg.symcache[0] ? mtp_sym_set_cache(sym, mtp_cfg.symcache) : 0;
    if (c < 0 && mtp_cfg.symcache_set)
        mtp_warn_once(&cache_warned, "symbol cache %s unusable (%s); symbolizing without it",
                      mtp_cfg.symcache, strerrordesc_np(-c));
    return sym;
}

mtp_symbolizer_t *mtp_writer_sym(void)
{
    unknown_module = 0;
    return open_or_refresh(1);
}

int mtp_writer_sym_warm(uint32_t stacks)
{
    uint32_t count = mtp_stack_count();
    if (warmed >= count || (quiet_until && mtp_mono_ns() < quiet_until))
        return 0;
    mtp_symbolizer_t *s = open_or_refresh(unknown_module);
    if (!s)
        return 0;
    unknown_module = 0;
    uint32_t end = count - warmed > stacks ? warmed + stacks : count;
    uintptr_t f[MTP_STACK_MAX_WORDS];
    for (; warmed < end; warmed++) {
        uint32_t n = mtp_stack_copy(warmed, f, MTP_STACK_MAX_WORDS);
        for (uint32_t i = 0; i < n;) {
            if (mtp_is_pyword(f[i])) {
                i += mtp_frame_words(f + i, n - i);   /* named by the code registry */
                continue;
            }
            mtp_sym_t out;
            mtp_sym_lookup(s, f[i++], &out);
            unknown_module |= out.module < 0;   /* a module loaded since: refresh next time */
        }
    }
    if (warmed >= count) {
        mtp_sym_flush(s);   /* new answers to the disk cache; libdw released */
        mtp_ph_trim(MTP_PH_KEEP);      /* and its memory given back */
    }
    return warmed < count;
}

MTP_FORK_CODE void mtp_writer_sym_atfork_child(void)
{
    mtp_sym_atfork_child(sym);
    /* A child that lives briefly (a shell's subshell, a child that execs)
     * has what its parent named; warming would only open files under it
     * while it lists its descriptors or closes them all. One that goes on
     * warms its own new stacks after a while. */
    quiet_until = mtp_mono_ns() + CHILD_QUIET_NS;
}
