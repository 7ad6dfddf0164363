/* The preload's runtime state (base/state.h) and its test seams
 * (base/seams.h): every process-wide variable of the preload that is not
 * private to one layer is defined here. */
#include "base/seams.h"
#include "base/state.h"
#include "base/util.h"

mtp_config_t mtp_cfg = {.depth = MTP_DEFAULT_DEPTH, .follow = 1, .cfi = 1, .warm = 1,
                       .py_reuse = 1, .py_memo = 1};
MTP_LARGE mtp_process_t mtp_proc;
MTP_FORKED uint64_t mtp_start_ns;
_Atomic uint32_t mtp_meta_flags;
_Atomic uint64_t mtp_py_hooks_ns;
MTP_FORKED mtp_counter_t mtp_counter;
_Atomic int mtp_tracing;
_Atomic int mtp_exiting;
MTP_FORKED pid_t mtp_pid;
MTP_FORKED _Atomic int mtp_ptracer_named;

int mtp_boot_argc;
char **mtp_boot_argv;

MTP_TLS int mtp_tls_guard;
MTP_TLS int mtp_tls_lib_loader;
MTP_TLS int mtp_tls_in_getattr;
MTP_LARGE mtp_loader_blocks_t mtp_loader_blocks;

void mtp_loader_block_add(const void *p, size_t size)
{
    uint32_t n = atomic_fetch_add_explicit(&mtp_loader_blocks.n, 1, memory_order_relaxed);
    if (n >= MTP_LOADER_BLOCKS)
        return;   /* (libdw and its libraries take about 40) */
    mtp_loader_blocks.b[n].addr = (uintptr_t)p;
    atomic_store_explicit(&mtp_loader_blocks.b[n].size, size, memory_order_release);
}

uint32_t mtp_loader_block_count(void)
{
    uint32_t n = atomic_load_explicit(&mtp_loader_blocks.n, memory_order_relaxed);
    return n < MTP_LOADER_BLOCKS ? n : MTP_LOADER_BLOCKS;
}

size_t mtp_loader_block(uint32_t i, uintptr_t *addr)
{
    size_t size = atomic_load_explicit(&mtp_loader_blocks.b[i].size, memory_order_acquire);
    if (size)
        *addr = mtp_loader_blocks.b[i].addr;
    return size;
}
MTP_TLS struct mtp_thread *mtp_tls_thread;

static void no_wake(void)
{
}

static int not_due(struct mtp_thread *t)
{
    (void)t;
    return 0;
}

MTP_FORKED mtp_seams_t mtp_seams = {
    .writer_wake = no_wake,
    .writer_due = not_due,
    .now_ns = mtp_real_now_ns,
    .proc_open = mtp_real_proc_open,
    .stop_ptrace = mtp_real_stop_ptrace,
};
