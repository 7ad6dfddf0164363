/*
 * memtrail's own Python blocks: the memory CPython's allocators give
 * memtrail's own Python work (the `_memtrail` module, the atexit callback,
 * what `import atexit` makes, the object graph's list: hook/pyhooks.c,
 * python/pygraph.c), which is not traced, so that it never shows in a
 * report.
 *
 * Why they are kept: such a block does not stay memtrail's. When the
 * object in it dies, CPython keeps it on a free list (a tuple, a dict, a
 * dict's keys) and hands it to the program later, without a call to the
 * allocator: a dict of the program whose object is such a block points to
 * its keys table, a traced block, and a free list's chain of dead tuples
 * runs through it. The leak scan reads neither an untraced block nor, when
 * the collector does not track the object (a dict of strings), the object
 * graph's view of it: what it points to had no pointer left and was
 * "definitely lost" (120 to 329 bytes on every clean program). So the scan
 * reads every block of this registry as a root (leak/leakscan.c), and the
 * reuse wrapper (hook/pyreuse.c), where it runs (3.9+ with CPython's calls
 * caught), takes a block out of it when the program's object is made in
 * it and records it as a block of the program's, at the line that reused
 * it, as it does for any block reused from a free list.
 *
 * Threads: the domain wrappers add and forget entries on any thread (the
 * RAW domain is called without the GIL), under a spin lock held for a few
 * instructions. The leak scan copies the table while every other thread is
 * stopped, maybe one holding the lock: it reads without it, word by word
 * (an entry being written may be read torn: its root is then some other
 * readable memory, never a fault, since roots are read through the maps).
 * lo/hi only grow: a free outside them takes no lock; nor does one whose
 * filter counter (py.h) is 0. A counter is raised under the lock before the
 * block is handed out, so a thread that frees the block later (after
 * whatever passed the block to it) reads it raised. fork: the lock is
 * held across it (mtp_py_own_atfork_*), so a child never inherits it taken.
 */
#include <stdatomic.h>

#include "base/util.h"
#include "python/py.h"

/* A power of two. memtrail's own Python work holds about 100 blocks at a
 * time (3.8 to 3.13, measured at exit): ten times that fit. The slots are
 * touched at random, so each of their pages costs a Python process a page
 * fault or two (a probe reads it, the insert writes it), and the leak scan
 * reads them all: 32 KiB, where 128 KiB cost about 60 faults. */
#define OWN_SLOTS 2048
#define OWN_MAX (OWN_SLOTS / 2)

typedef struct own_slot {
    _Atomic uintptr_t addr;   /* 0: empty */
    _Atomic uint64_t word;    /* size << 8 | domain */
} own_slot_t;

static MTP_LARGE own_slot_t slots[OWN_SLOTS];
static uint32_t nown;                   /* under lock */
static MTP_FORKED atomic_flag lock = ATOMIC_FLAG_INIT;
_Atomic uintptr_t mtp_py_own_lo = UINTPTR_MAX, mtp_py_own_hi;
MTP_LARGE _Atomic uint8_t mtp_py_own_filter[MTP_PY_OWN_FILTER];   /* counts, written under lock */
MTP_TLS int mtp_py_owning;
static int full_warned;

static void take(void)
{
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
        __builtin_ia32_pause();
}

static void give(void)
{
    atomic_flag_clear_explicit(&lock, memory_order_release);
}

static uint32_t home(uintptr_t p)
{
    return (uint32_t)(((uint64_t)p * 0x9e3779b97f4a7c15ull) >> 40) & (OWN_SLOTS - 1);
}

/* Under the lock: a's filter counter (py.h) up or down by one; 255
 * sticks, never counted down again. */
static void filter_step(uintptr_t a, int by)
{
    _Atomic uint8_t *c = &mtp_py_own_filter[mtp_py_own_filter_at(a)];
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    if (v != UINT8_MAX)
        atomic_store_explicit(c, (uint8_t)(v + by), memory_order_relaxed);
}

void mtp_py_own_add(void *p, size_t size, unsigned domain)
{
    uintptr_t a = (uintptr_t)p;
    take();
    if (nown == OWN_MAX) {
        give();
        mtp_warn_once(&full_warned, "python: too many of memtrail's own Python blocks; the "
                                    "leak scan may call some blocks lost that are not");
        return;
    }
    uint32_t i = home(a);
    while (atomic_load_explicit(&slots[i].addr, memory_order_relaxed) &&
           atomic_load_explicit(&slots[i].addr, memory_order_relaxed) != a)
        i = (i + 1) & (OWN_SLOTS - 1);
    if (!atomic_load_explicit(&slots[i].addr, memory_order_relaxed)) {
        nown++;
        filter_step(a, 1);
    }
    atomic_store_explicit(&slots[i].word, (uint64_t)size << 8 | domain, memory_order_relaxed);
    atomic_store_explicit(&slots[i].addr, a, memory_order_release);
    if (a < atomic_load_explicit(&mtp_py_own_lo, memory_order_relaxed))
        atomic_store_explicit(&mtp_py_own_lo, a, memory_order_relaxed);
    if (a >= atomic_load_explicit(&mtp_py_own_hi, memory_order_relaxed))
        atomic_store_explicit(&mtp_py_own_hi, a + 1, memory_order_relaxed);
    give();
}

int mtp_py_own_forget(const void *p, size_t *size, unsigned *domain)
{
    uintptr_t a = (uintptr_t)p;
    take();
    uint32_t i = home(a);
    uintptr_t cur;
    while ((cur = atomic_load_explicit(&slots[i].addr, memory_order_relaxed)) && cur != a)
        i = (i + 1) & (OWN_SLOTS - 1);
    if (!cur) {
        give();
        return 0;
    }
    filter_step(a, -1);
    uint64_t w = atomic_load_explicit(&slots[i].word, memory_order_relaxed);
    if (size)
        *size = (size_t)(w >> 8);
    if (domain)
        *domain = (unsigned)(w & 0xff);
    /* backward-shift deletion: the entries after it that would be found
     * before the hole move into it */
    for (uint32_t j = (i + 1) & (OWN_SLOTS - 1);; j = (j + 1) & (OWN_SLOTS - 1)) {
        uintptr_t b = atomic_load_explicit(&slots[j].addr, memory_order_relaxed);
        if (!b)
            break;
        uint32_t h = home(b);
        if (((j - h) & (OWN_SLOTS - 1)) < ((j - i) & (OWN_SLOTS - 1)))
            continue;   /* its home is between the hole and it: it stays */
        atomic_store_explicit(&slots[i].word,
                              atomic_load_explicit(&slots[j].word, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&slots[i].addr, b, memory_order_relaxed);
        i = j;
    }
    atomic_store_explicit(&slots[i].addr, 0, memory_order_relaxed);
    nown--;
    give();
    return 1;
}

size_t mtp_py_own_blocks(uintptr_t *out, size_t max)
{
    size_t n = 0;
    /* None ever registered (a native process): the 32 KiB of slots are not
     * read, twice a leak scan (0.9 ms of a traced /bin/echo's 12). */
    if (!atomic_load_explicit(&mtp_py_own_hi, memory_order_relaxed))
        return 0;
    for (uint32_t i = 0; i < OWN_SLOTS; i++) {
        uintptr_t a = atomic_load_explicit(&slots[i].addr, memory_order_relaxed);
        if (!a)
            continue;
        if (n < max) {
            out[2 * n] = a;
            out[2 * n + 1] = (uintptr_t)(atomic_load_explicit(&slots[i].word,
                                                              memory_order_relaxed) >> 8);
        }
        n++;
    }
    return n;
}

MTP_FORK_CODE void mtp_py_own_atfork_prepare(void)
{
    take();
}

MTP_FORK_CODE void mtp_py_own_atfork_parent(void)
{
    give();
}

MTP_FORK_CODE void mtp_py_own_atfork_child(void)
{
    give();
}
