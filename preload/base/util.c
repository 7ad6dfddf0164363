/* Services every layer of the preload uses: one-line warnings, the clock,
 * mmap'd arrays and the address sort. None of them touches the traced heap. */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/seams.h"
#include "base/util.h"

#define MTP_WARN_MAX 1024        /* one warning line, "memtrail: " included */
#define MTP_MM_MIN (64 * 1024)   /* first mapping of a growing array */
#define MTP_MM_AHEAD_MIN (256 * 1024)   /* pages filled beyond `need` when an array grows... */
#define MTP_MM_AHEAD_SHIFT 3            /* ...or need/8 of them, whichever is more */
#define MTP_MADV_POPULATE_WRITE 23      /* Linux 5.14; not in every libc's headers */
#define MTP_RADIX_BITS 11        /* bits of the key sorted per pass */
#define MTP_RADIX_BUCKETS (1u << MTP_RADIX_BITS)

/* ---- messages: one line on stderr, written with write(2) (no stdio lock) ---- */
static void vwarn(const char *fmt, va_list ap)
{
    char buf[MTP_WARN_MAX];
    int n = snprintf(buf, sizeof(buf), "memtrail: ");
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, (size_t)n);
    (void)r;
}

void mtp_warn(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    errno = saved;
}

void mtp_warn_once(int *flag, const char *fmt, ...)
{
    if (__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED))
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    errno = saved;
}

uint64_t mtp_now_ns(void)
{
    return mtp_seams.now_ns();
}

uint64_t mtp_clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * MTP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t mtp_real_now_ns(void)
{
    return mtp_clock_ns(CLOCK_REALTIME);
}

uint64_t mtp_mono_ns(void)
{
    return mtp_clock_ns(CLOCK_MONOTONIC);
}

/* A fault costs about 10 us in the virtual machines this runs on, filling a
 * page through madvise about 1 us: memory about to be written is filled in
 * one call. Kernels before 5.14 refuse the advice (EINVAL): then never again,
 * and the pages fault in as used. Atomic: any thread may be the first. */
static _Atomic int populate_refused;

static inline size_t page_up(size_t n)
{
    return (n + MTP_PAGE - 1) & ~(size_t)(MTP_PAGE - 1);
}

/* A transparent huge page is one fault where 4 KiB pages are 512: populating
 * 64 MiB and writing it cost 0.88 + 4.83 us a 4 KiB page here in small
 * pages, 0.19 + 0.03 in huge ones (tests/bench/page_cost). Only arrays of a
 * huge page or more that are written from start to end are advised (a
 * sparse table would have whole huge pages filled for a few words); a huge
 * page goes only where a 2 MiB range lies wholly inside the mapping, and
 * where THP is off ("never") the advice does nothing. */
void mtp_hugepages(void *p, size_t n)
{
    if (n >= MTP_PMD)
        madvise(p, n, MADV_HUGEPAGE);
}

void mtp_populate(void *p, size_t n)
{
    if (!n || atomic_load_explicit(&populate_refused, memory_order_relaxed))
        return;
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(MTP_PAGE - 1);
    uintptr_t hi = page_up((uintptr_t)p + n);
    if (madvise((void *)lo, hi - lo, MTP_MADV_POPULATE_WRITE) < 0 && errno == EINVAL)
        atomic_store_explicit(&populate_refused, 1, memory_order_relaxed);
}

void mtp_populate_ahead(void *base, size_t used, size_t *filled, size_t cap, size_t step)
{
    if (used <= *filled || *filled >= cap)
        return;
    size_t to = used + step < cap ? used + step : cap;
    mtp_populate((char *)base + *filled, to - *filled);
    *filled = to;
}

static int mm_grow(void **p, size_t *cap_bytes, size_t need, int huge)
{
    if (need <= *cap_bytes)
        return 0;
    if (!*cap_bytes && need >= MTP_PMD) {
        /* An array this big at its first mapping is sized at once (the
         * scan's and the graph's, by their counts): mapped to its size, so
         * that no huge page reaches past what is filled now, and in huge
         * pages. */
        size_t n = page_up(need);
        void *q = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
            return -ENOMEM;
        mtp_hugepages(q, n);
        mtp_populate(q, n);
        *p = q;
        *cap_bytes = n;
        return 0;
    }
    size_t n = *cap_bytes ? *cap_bytes : MTP_MM_MIN;
    while (n < need)
        n *= 2;
    void *q = *p ? mremap(*p, *cap_bytes, n, MREMAP_MAYMOVE)
                 : mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return -ENOMEM;
    /* Huge pages only where the caller trims the array when it is done:
     * the last one filled reaches up to 2 MiB past what is used. */
    if (huge)
        mtp_hugepages(q, n);
    /* The new bytes up to `need` are filled now. An array that outgrew its
     * first mapping is likely to go on growing (most grow by one element at
     * a time): a little beyond is filled too. The rest of a doubling faults
     * in as used, so an array that stops short does not count it, and a
     * short-lived process's small arrays fill only what they use. */
    size_t ahead = 0;
    if (*cap_bytes) {
        ahead = need >> MTP_MM_AHEAD_SHIFT;
        if (ahead < MTP_MM_AHEAD_MIN)
            ahead = MTP_MM_AHEAD_MIN;
    }
    size_t upto = need + ahead < n ? need + ahead : n;
    mtp_populate((char *)q + *cap_bytes, upto - *cap_bytes);
    *p = q;
    *cap_bytes = n;
    return 0;
}

int mtp_mm_grow(void **p, size_t *cap_bytes, size_t need)
{
    return mm_grow(p, cap_bytes, need, 0);
}

int mtp_mm_grow_huge(void **p, size_t *cap_bytes, size_t need)
{
    return mm_grow(p, cap_bytes, need, 1);
}

void mtp_unmap(void *p, size_t bytes)
{
    if (!p || (bytes <= MTP_UNMAP_LEFT && atomic_load_explicit(&mtp_exiting, memory_order_relaxed)))
        return;
    munmap(p, bytes);
}

void mtp_mm_trim(void *p, size_t cap_bytes, size_t used)
{
    size_t from = page_up(used);
    if (p && from < cap_bytes)
        madvise((char *)p + from, cap_bytes - from, MADV_DONTNEED);
}

/* ---- keys sorted (LSD radix, 11 bits a pass) ---- */

/* A radix pass's counts per digit become each digit's first position. */
static inline void counts_to_offsets(size_t count[MTP_RADIX_BUCKETS])
{
    size_t sum = 0;
    for (size_t d = 0; d < MTP_RADIX_BUCKETS; d++) {
        size_t c = count[d];
        count[d] = sum;
        sum += c;
    }
}

/* Only the bits in which the keys differ are sorted on: addresses of one
 * heap share their top bits. 2,048 counters stay in the L1 cache, and each
 * pass writes to 2,048 places at most. Scratch memory is mmap'd: the leak
 * scan sorts while threads are stopped. */
int mtp_sort_keyed(mtp_keyed_t *a, size_t n)
{
    if (n < 2)
        return 0;
    uint64_t differ = 0;
    for (size_t i = 1; i < n; i++)
        differ |= a[i].key ^ a[0].key;
    if (!differ)
        return 0;
    unsigned top = 64 - (unsigned)__builtin_clzll(differ), low = (unsigned)__builtin_ctzll(differ);
    size_t bytes = n * sizeof(*a);
    mtp_keyed_t *tmp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED)
        return -ENOMEM;
    mtp_hugepages(tmp, bytes);
    mtp_populate(tmp, bytes);   /* the first pass writes all of it: one call, not a fault a page */
    size_t count[MTP_RADIX_BUCKETS];
    mtp_keyed_t *src = a, *dst = tmp;
    for (unsigned shift = low; shift < top; shift += MTP_RADIX_BITS) {
        memset(count, 0, sizeof(count));
        for (size_t i = 0; i < n; i++)
            count[(src[i].key >> shift) & (MTP_RADIX_BUCKETS - 1)]++;
        counts_to_offsets(count);
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i].key >> shift) & (MTP_RADIX_BUCKETS - 1)]++] = src[i];
        mtp_keyed_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, bytes);
    munmap(tmp, bytes);
    return 0;
}

int mtp_sort_words(uint64_t *a, size_t n, unsigned low, unsigned top)
{
    if (n < 2 || low >= top)
        return 0;
    uint64_t mask = (top - low < 64 ? (1ull << (top - low)) - 1 : ~0ull) << low, differ = 0;
    for (size_t i = 1; i < n; i++)
        differ |= (a[i] ^ a[0]) & mask;
    if (!differ)
        return 0;
    top = 64 - (unsigned)__builtin_clzll(differ);
    low = (unsigned)__builtin_ctzll(differ);
    size_t bytes = n * sizeof(*a);
    uint64_t *tmp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED)
        return -ENOMEM;
    mtp_hugepages(tmp, bytes);
    mtp_populate(tmp, bytes);
    size_t count[MTP_RADIX_BUCKETS];
    uint64_t *src = a, *dst = tmp;
    for (unsigned shift = low; shift < top; shift += MTP_RADIX_BITS) {
        /* the last digit may be narrower: bits at or above top are not the key's */
        uint64_t dmask = top - shift < MTP_RADIX_BITS ? (1ull << (top - shift)) - 1
                                                      : MTP_RADIX_BUCKETS - 1;
        memset(count, 0, sizeof(count));
        for (size_t i = 0; i < n; i++)
            count[(src[i] >> shift) & dmask]++;
        counts_to_offsets(count);
        for (size_t i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & dmask]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, bytes);
    munmap(tmp, bytes);
    return 0;
}

char *mtp_stat_field(char *buf, int field)
{
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || field < MTP_STAT_STATE)
        return NULL;
    p += 2;                                /* field 3 */
    for (int f = MTP_STAT_STATE; f < field; f++) {
        p = strchr(p, ' ');
        if (!p)
            return NULL;
        p++;
    }
    return *p ? p : NULL;
}

const char *mtp_hex(const char *p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    for (; !end || p < end; p++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else
            break;
        x = x << 4 | d;
    }
    *v = x;
    return p;
}

/* A maps line's first field, lo-hi in hex, from [p, end): 1 when it holds
 * addr (then *lo, *hi). *prev becomes its hi. */
static int maps_line(const char *p, const char *end, uintptr_t addr, uintptr_t *lo, uintptr_t *hi,
                     uintptr_t *prev)
{
    uint64_t a, b = 0;
    p = mtp_hex(p, end, &a);
    if (p < end)
        mtp_hex(p + 1, end, &b);   /* past the '-' */
    *prev = b;
    if (addr < a || addr >= b)
        return 0;
    *lo = a;
    *hi = b;
    return 1;
}

int mtp_maps_find(uintptr_t addr, char *buf, size_t cap, uintptr_t *lo, uintptr_t *hi,
                  uintptr_t *prev_hi)
{
    int fd = (int)syscall(SYS_open, MTP_PROC_MAPS, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t have = 0;
    int found = 0, at_line = 1;
    uintptr_t prev = 0, before = 0;
    for (;;) {
        ssize_t n = syscall(SYS_read, fd, buf + have, cap - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have && !found; i++) {
            if (buf[i] != '\n')
                continue;
            if (at_line) {
                before = prev;
                found = maps_line(buf + start, buf + i, addr, lo, hi, &prev);
            }
            at_line = 1;
            start = i + 1;
        }
        if (found)
            break;
        if (start == 0 && have == cap) {   /* a line longer than the buffer: its head, then its tail */
            if (at_line) {
                before = prev;
                found = maps_line(buf, buf + cap, addr, lo, hi, &prev);
                if (found)
                    break;
            }
            at_line = 0;
            have = 0;
            continue;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    syscall(SYS_close, fd);
    if (found)
        *prev_hi = before;
    return found;
}

int mtp_proc_stat(const char *path, char *state, long *threads)
{
    char buf[1024];
    int fd = mtp_seams.proc_open(path);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *st = mtp_stat_field(buf, MTP_STAT_STATE);
    const char *th = mtp_stat_field(buf, MTP_STAT_THREADS);
    if (!st || !th)
        return -1;
    *state = *st;
    *threads = atol(th);
    return 0;
}

/* mtp_symbol_size: dladdr1 would do, but it scans every symbol of the
 * object for the nearest one: for pthread_create in libc, about 45 us in a
 * new process (its pages read for the first time), 11 us after; a hash
 * lookup reads a few words (tests/bench/start_cost). */
typedef struct sym_object {
    uintptr_t addr, base, lo, hi;   /* lo, hi: the object's loaded extent */
    const ElfW(Dyn) *dyn;
} sym_object_t;

/* o's fields from info's program headers: 1 when the object holds o->addr. */
static int sym_object_fill(struct dl_phdr_info *info, sym_object_t *o)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    const ElfW(Dyn) *dyn = NULL;
    int holds = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (ph->p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)a;
        if (ph->p_type != PT_LOAD)
            continue;
        lo = a < lo ? a : lo;
        hi = b > hi ? b : hi;
        holds |= o->addr >= a && o->addr < b;
    }
    o->base = info->dlpi_addr;
    o->lo = lo;
    o->hi = hi;
    o->dyn = dyn;
    return holds;
}

static int sym_object_of(struct dl_phdr_info *info, size_t size, void *data)
{
    sym_object_t o = {.addr = ((sym_object_t *)data)->addr};
    (void)size;
    if (!sym_object_fill(info, &o))
        return 0;
    *(sym_object_t *)data = o;
    return 1;
}

/* A d_ptr: the loader makes most absolute; one it left is base-relative. */
static const void *sym_dyn_ptr(const sym_object_t *o, uintptr_t v)
{
    if (v >= o->lo && v < o->hi)
        return (const void *)v;
    return v + o->base >= o->lo && v + o->base < o->hi ? (const void *)(v + o->base) : NULL;
}

/* The dynamic symbol `name` that object o defines (at address `at`, unless
 * at is 0), from its GNU hash table; NULL when there is none. */
static const ElfW(Sym) *sym_find(const sym_object_t *o, const char *name, uintptr_t at)
{
    if (!o->dyn)
        return NULL;
    const uint32_t *gnu = NULL;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    for (const ElfW(Dyn) *d = o->dyn; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_GNU_HASH)
            gnu = sym_dyn_ptr(o, d->d_un.d_ptr);
        else if (d->d_tag == DT_SYMTAB)
            symtab = sym_dyn_ptr(o, d->d_un.d_ptr);
        else if (d->d_tag == DT_STRTAB)
            strtab = sym_dyn_ptr(o, d->d_un.d_ptr);
    }
    if (!gnu || !symtab || !strtab || !gnu[0])
        return NULL;
    uint32_t h = 5381;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = h * 33 + *c;
    uint32_t nbuckets = gnu[0], symoffset = gnu[1], bloom_words = gnu[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(gnu + 4) + bloom_words);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset)
        return NULL;
    for (;; i++) {   /* every version of the name is in the chain: any at `at` */
        uint32_t h2 = chain[i - symoffset];
        const ElfW(Sym) *sym = &symtab[i];
        if ((h2 | 1) == (h | 1) && sym->st_shndx != SHN_UNDEF &&
            (!at || o->base + sym->st_value == at) && !strcmp(strtab + sym->st_name, name))
            return sym;
        if (h2 & 1)
            return NULL;
    }
}

size_t mtp_symbol_size(const void *addr, const char *name)
{
    sym_object_t o = {.addr = (uintptr_t)addr};
    if (dl_iterate_phdr(sym_object_of, &o) != 1)
        return 0;
    const ElfW(Sym) *sym = sym_find(&o, name, (uintptr_t)addr);
    return sym ? sym->st_size : 0;
}

static int sym_defined_in(struct dl_phdr_info *info, size_t size, void *name)
{
    sym_object_t o = {.addr = 0};
    (void)size;
    sym_object_fill(info, &o);
    return sym_find(&o, name, 0) != NULL;
}

int mtp_symbol_defined(const char *name)
{
    return dl_iterate_phdr(sym_defined_in, (void *)name) != 0;
}

long mtp_proc_threads(void)
{
    struct stat st;
    if (stat("/proc/self/task", &st) != 0 || st.st_nlink < 3)
        return -1;
    return (long)st.st_nlink - 2;   /* procfs: 2 + get_nr_threads(), the stat file's field */
}

MTP_NO_SANITIZE_RAW
long mtp_real_stop_ptrace(long request, long tid, long addr, long data)
{
    return mtp_raw_syscall(SYS_ptrace, request, tid, addr, data, 0, 0);
}

int mtp_real_proc_open(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

void mtp_loader_code(uintptr_t *lo, uintptr_t *hi)
{
    *lo = *hi = 0;
    uintptr_t base = (uintptr_t)getauxval(AT_BASE);
    if (!base)
        return;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
    uintptr_t a_min = UINTPTR_MAX, b_max = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
            continue;
        uintptr_t a = base + ph[i].p_vaddr, b = a + ph[i].p_memsz;
        a_min = a < a_min ? a : a_min;
        b_max = b > b_max ? b : b_max;
    }
    if (b_max) {
        *lo = a_min;
        *hi = b_max;
    }
}
