/*
 * The leak scan's roots in the modules' images: each loaded object's
 * writable PT_LOAD segments (its .data and .bss), less two kinds of bytes
 * that cannot hold a pointer the program stored.
 *
 * Pages never written. A page of a writable segment that no one wrote since
 * the loader mapped it holds what the file says (or zeros, past the file's
 * bytes): link-time values, never the address of a block, since blocks
 * exist only at run time. The loader's relocations and every store of the
 * program write the page, and a written page of a private mapping is an
 * anonymous copy from then on; so /proc/self/pagemap tells them apart:
 *   - present and still the file's page (PM_FILE): never written;
 *   - not present and not swapped: never touched (an untouched .bss page,
 *     or a .data page never even read);
 *   - present and anonymous (a copy, or the zero page a read of .bss
 *     mapped), or swapped out: read as before.
 * In Debian's python3.11 at exit a quarter of its 1.5 MB of image data is
 * such pages; its untouched .bss was read through the zero page, a page
 * fault each (about 70 a scan, 10 µs each in the machines measured).
 * Without the file (no /proc, or refused), every page is read.
 *
 * Inert text (pyinert.c): within what is read, the text of a module's
 * static str and bytes objects and the bytecode of its code objects.
 *
 * Threads: the writer thread, inside the scan, every other thread stopped
 * or held (leakscan.c), so no page changes state while it is looked at.
 * In a scan whose threads did not all stop (sc->safe) a running thread may
 * write a page after its state was read: its words may be missed, as any
 * word such a thread writes while the scan runs may be (the scan is then
 * marked partial).
 */
#include <elf.h>
#include <string.h>
#include <unistd.h>

#include "leak/leakscan_int.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)   /* a file page (or shared anonymous memory) */
#define PM_BATCH 256           /* entries read at once (2 KiB of the writer's stack) */
#define PAGE 4096u

static inline int page_written(uint64_t e)
{
    return (e & PM_SWAPPED) || ((e & PM_PRESENT) && !(e & PM_FILE));
}

int mtp_scan_written_runs(int pagemap, uintptr_t lo, uintptr_t hi,
                          int (*fn)(void *arg, uintptr_t lo, uintptr_t hi), void *arg)
{
    if (pagemap < 0 || hi <= lo)
        return hi > lo ? fn(arg, lo, hi) : 0;
    uint64_t e[PM_BATCH];
    uintptr_t run = 0;   /* start of the written run being gathered, 0: none */
    for (uintptr_t p = lo & ~(uintptr_t)(PAGE - 1); p < hi;) {
        size_t n = (size_t)((hi - p + PAGE - 1) / PAGE);
        n = n < PM_BATCH ? n : PM_BATCH;
        ssize_t got = pread(pagemap, e, n * sizeof(e[0]), (off_t)(p / PAGE * sizeof(e[0])));
        if (got != (ssize_t)(n * sizeof(e[0])))   /* the rest read whole */
            return fn(arg, run ? run : (p > lo ? p : lo), hi);
        for (size_t i = 0; i < n; i++, p += PAGE) {
            if (page_written(e[i])) {
                if (!run)
                    run = p > lo ? p : lo;
            } else if (run) {
                int r = fn(arg, run, p);
                run = 0;
                if (r < 0)
                    return r;
            }
        }
    }
    return run ? fn(arg, run, hi) : 0;
}

static int is_libc(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return !strncmp(base, "libc.so", 7) || !strncmp(base, "ld-linux", 8) ||
           !strncmp(base, "libc-", 5) || !strncmp(base, "ld-2.", 5);
}

typedef struct segment {
    mtp_scan_t *sc;
    uintptr_t lim;    /* the segment's end: a static object found in a run may end past it */
    uintptr_t next;   /* where the next run may start: past the text of the last object */
    unsigned flags;
} segment_t;

/* A written run [lo, hi) of a segment as roots, but for the inert text in
 * it (an object's text may run on into the pages after it: they are
 * skipped up to its end). */
static int run_roots(void *arg, uintptr_t lo, uintptr_t hi)
{
    segment_t *s = arg;
    if (s->flags & MTP_ROOT_LIBC)
        return mtp_scan_add_root(s->sc, lo, hi, s->flags);
    if (lo < s->next)
        lo = s->next;
    while (lo < hi) {
        uintptr_t end, text = mtp_scan_image_inert(s->sc, lo, hi, s->lim, &end);
        int r = mtp_scan_add_root(s->sc, lo, text < hi ? text : hi, s->flags);
        if (text > hi)   /* an object at the run's end, its text past it */
            s->next = end;
        if (r < 0 || text >= hi)
            return r;
        s->next = lo = end;
    }
    return 0;
}

MTP_NO_SANITIZE_SCAN
int mtp_scan_module_roots(mtp_scan_t *sc, const mtp_map_t *m, uintptr_t self_base, int pagemap)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(uintptr_t)m->start;
    if (m->end - m->start < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
        eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > m->end - m->start)
        return 0;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(uintptr_t)(m->start + eh->e_phoff);
    uint64_t first = UINT64_MAX;
    for (unsigned i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first)
            first = ph[i].p_vaddr & ~(uint64_t)(PAGE - 1);
    if (first == UINT64_MAX)
        return 0;
    uintptr_t bias = (uintptr_t)(m->start - first);
    if (bias == self_base && self_base)
        return 0;   /* memtrail's own tables are never roots */
    unsigned flags = is_libc(m->path) ? MTP_ROOT_LIBC : 0;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_W))
            continue;
        uintptr_t lo = bias + ph[i].p_vaddr, hi = lo + ph[i].p_memsz;
        segment_t s = {sc, hi, lo, flags};
        int r = mtp_scan_written_runs(pagemap, lo, hi, run_roots, &s);
        if (r < 0)
            return r;
    }
    return 0;
}
