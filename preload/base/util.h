/* Services every layer of the preload uses: one-line warnings on stderr, the
 * clock, mmap'd arrays (never the traced heap) and the address sort. */
#ifndef MTP_BASE_UTIL_H
#define MTP_BASE_UTIL_H

#include <time.h>

#include "base/state.h"

/* "memtrail: ..." as one line on stderr, written with write(2); errno kept. */
void mtp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mtp_warn_once(int *flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The process's memory map, read through the calling thread: /proc/self is
 * the thread group leader, whose maps file is empty once it has called
 * pthread_exit while other threads run on (Linux 3.17+). */
#define MTP_PROC_MAPS "/proc/thread-self/maps"
/* Its pages' states (leak/imageroots.c), through the calling thread too. */
#define MTP_PROC_PAGEMAP "/proc/thread-self/pagemap"

/* The dynamic loader's executable segments, [*lo, *hi), from its program
 * headers in memory (AT_BASE): no lock, no allocation. Both 0 when there is
 * no loader (a static program) or it is the program itself (ld.so run as a
 * command). */
void mtp_loader_code(uintptr_t *lo, uintptr_t *hi);
/* The size of the dynamic symbol `name` whose value is `addr`, from the GNU
 * hash table of the loaded object that holds addr (dl_iterate_phdr: the
 * loader's lock; not from a signal handler). 0 when there is none. */
size_t mtp_symbol_size(const void *addr, const char *name);
/* 1 when a loaded object's GNU hash table defines the dynamic symbol
 * `name`, else 0 (dl_iterate_phdr, as above): no dlsym, whose failed
 * lookup makes an error string (a malloc) and leaves it for the program's
 * next dlerror(). */
int mtp_symbol_defined(const char *name);

#define MTP_NS_PER_SEC 1000000000ull
#define MTP_NS_PER_MS 1000000ull
#define MTP_PAGE_MIN 4096u                     /* smallest page: nothing maps below it */
#define MTP_PAGE 4096u                         /* the page memtrail fills and counts in (x86-64) */
/* What one last-level page-table page maps (x86-64's PMD): a transparent
 * huge page. */
#define MTP_PMD ((uintptr_t)2 << 20)
#define MTP_HASH_MUL 0x9e3779b97f4a7c15ull     /* 2^64 / golden ratio, for multiplicative hashing */

/* The first address at or above lo halfway into an MTP_PMD region: where an
 * array growing down and one growing up keep their first pages under one
 * page-table page (and one of the level above), which every fork copies
 * and every exit or exec frees (record/stacktab.c, base/privheap.c). A
 * reservation of below + MTP_PMD + above bytes from p holds both around
 * mtp_pmd_middle(p + below). */
static inline uintptr_t mtp_pmd_middle(uintptr_t lo)
{
    uintptr_t m = (lo & ~(MTP_PMD - 1)) + MTP_PMD / 2;
    return m < lo ? m + MTP_PMD : m;
}

/* On the functions that read memory that is not theirs, word by word or
 * at offsets from a table: the leak scan (heap blocks, other threads' stacks
 * and registers, every module's data), its Python pass, the Python object
 * graph capture and the CPython ABI's readers (python/abi.h). What they read
 * is legitimately anyone's: a poisoned stack slot of a stopped thread, a
 * global's redzone, a word at an address that is not 8-aligned (the head of
 * a block that holds no Python object), memory a thread wrote before ptrace
 * stopped it (the kernel's stop orders it, which ThreadSanitizer cannot
 * see). Without it, a build with -fsanitize=address, undefined or thread
 * would report those reads; with it, a sanitized build of the preload scans
 * as the plain one does. The CFI walk (unwind/walk.c) carries it too: it
 * checks words an earlier walk read on the thread's own stack, which may lie
 * in an alloca's redzone by now. No effect without a sanitizer. GCC does not inline
 * a function across a difference in this attribute: a helper doing the
 * reading for such a function carries it too. */
#define MTP_NO_SANITIZE_SCAN \
    __attribute__((no_sanitize_address, no_sanitize("undefined"), no_sanitize("thread")))

/* On code that runs where the C library and a sanitizer's runtime must not:
 * the leak scan's ptrace helper (leak/stopworld.c), a process sharing the
 * writer's memory and thread pointer. It and what it calls carry this. */
#define MTP_NO_SANITIZE_RAW __attribute__((no_sanitize("address", "thread", "undefined")))

/* A system call without the C library: no errno, no cancellation, no
 * interceptor. Returns what the kernel returns (-errno on failure). x86-64. */
MTP_NO_SANITIZE_RAW
static inline long mtp_raw_syscall(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

uint64_t mtp_now_ns(void);   /* wall clock, through mtp_seams.now_ns */
uint64_t mtp_mono_ns(void);  /* CLOCK_MONOTONIC */
/* Any clock's reading in ns (a thread's CPU clock, say); 0 when it cannot
 * be read. */
uint64_t mtp_clock_ns(clockid_t clock);

/* The real functions behind the seams of base/seams.h. */
uint64_t mtp_real_now_ns(void);
int mtp_real_proc_open(const char *path);
long mtp_real_stop_ptrace(long request, long tid, long addr, long data);

/* /proc/PID/stat: the start of field `field` (1-based, 3 or more: the
 * state is 3, the thread count 20) in the NUL-terminated text `buf`, or NULL.
 * The name (field 2) may hold spaces and ')': fields count from the last ')'. */
#define MTP_STAT_STATE 3
#define MTP_STAT_THREADS 20
char *mtp_stat_field(char *buf, int field);
/* Reads a stat file (opened through mtp_seams.proc_open, no allocation):
 * its state letter and thread count. 0, or -1 if it cannot be read. */
int mtp_proc_stat(const char *path, char *state, long *threads);
/* The calling process's threads as its stat file counts them, from one
 * stat(2) of /proc/self/task (its link count is two more): about 3 us,
 * against 12 us or more to read /proc/self/stat. -1 if it cannot be had. */
long mtp_proc_threads(void);

/* The lower-case hex digits (as /proc writes them) from p up to the first
 * other character, or up to end (NULL: none): their value in *v. Returns
 * where they end (p when there is none). */
const char *mtp_hex(const char *p, const char *end, uint64_t *v);

/* The mapping of MTP_PROC_MAPS holding `addr`: [*lo, *hi), and the end of
 * the mapping listed before it in *prev_hi (0 when none). Read with raw
 * system calls through `buf` (cap bytes, 256 or more; a longer line is
 * judged by its head, its range): no allocation, no stdio, no lock, so a
 * signal handler or an allocation hook may call it. 1 when found, else 0. */
int mtp_maps_find(uintptr_t addr, char *buf, size_t cap, uintptr_t *lo, uintptr_t *hi,
                  uintptr_t *prev_hi);

/* Backward-shift deletion in a linear-probing table (no tombstones): the
 * entry at slot j, whose home slot is `home`, may move into the hole at slot
 * i when its home is not in (i, j] cyclically. */
static inline int mtp_probe_fills_hole(size_t i, size_t j, size_t home)
{
    return i <= j ? (home <= i || home > j) : (home <= i && home > j);
}

/* Advises transparent huge pages for [p, p + n) (an mmap'd array written
 * whole) when it spans one or more; a hint. */
void mtp_hugepages(void *p, size_t n);

/* Fills the pages of [p, p + n) now (madvise MADV_POPULATE_WRITE), for
 * memory about to be written: one call instead of a fault per page. A hint:
 * does nothing where the kernel refuses it. */
void mtp_populate(void *p, size_t n);
/* For an array written from its start, `filled` bytes of it filled so far:
 * once the writes reach past them (`used` bytes), the next `step` bytes
 * after `used` are filled too (up to `cap`), in one call. */
void mtp_populate_ahead(void *base, size_t used, size_t *filled, size_t cap, size_t step);

/* Grows an mmap'd array to at least `need` bytes (contents kept, new bytes
 * zero; *p NULL and *cap_bytes 0 at first). Never touches the traced heap,
 * so it is safe while other threads are stopped. Returns 0 or -ENOMEM. */
int mtp_mm_grow(void **p, size_t *cap_bytes, size_t need);
/* mtp_mm_grow for a big array grown a piece at a time that mtp_mm_trim
 * trims once it is done: its growth is in transparent huge pages too. */
int mtp_mm_grow_huge(void **p, size_t *cap_bytes, size_t need);
/* An array grown by mtp_mm_grow that is done growing: the pages past its
 * first `used` bytes go back to the system (they read as zero again). */
void mtp_mm_trim(void *p, size_t cap_bytes, size_t used);
/* munmap(p, bytes) (nothing for p NULL), except for a mapping of at most
 * MTP_UNMAP_LEFT bytes once the process ends (mtp_exiting): its exit takes
 * them all at once, where each munmap is a system call, a change of the
 * address space and a TLB flush on the CPUs the process ran on. */
#define MTP_UNMAP_LEFT (1u << 20)
void mtp_unmap(void *p, size_t bytes);

/* Sorts by key, keeping equal keys in their order (radix; mmap'd scratch
 * only, 16 KiB of stack). 0 or -ENOMEM. */
typedef struct mtp_keyed {
    uint64_t key, value;
} mtp_keyed_t;
int mtp_sort_keyed(mtp_keyed_t *a, size_t n);
/* Sorts words by their bits [low, top) (radix, stable; mmap'd scratch):
 * a key and a value packed in one word sort in half the memory. */
int mtp_sort_words(uint64_t *a, size_t n, unsigned low, unsigned top);

/* FNV-1a over n bytes, continuing from h (MTP_FNV_OFFSET to start). */
#define MTP_FNV_OFFSET 0xcbf29ce484222325ull
static inline uint64_t mtp_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Sizes too large for an array's size field, kept beside it by element
 * index, in increasing index order: the leak scan's blocks (16-bit sizes:
 * 64 KiB or more), the Python graph's objects (32-bit: 4 GiB or more). */
typedef struct mtp_bigsize {
    uint64_t index, size;
} mtp_bigsize_t;

/* The size kept for element `index`, or `missing` when there is none. */
static inline uint64_t mtp_bigsize_find(const mtp_bigsize_t *a, size_t n, uint64_t index,
                                        uint64_t missing)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo].index == index ? a[lo].size : missing;
}

#endif /* MTP_BASE_UTIL_H */
