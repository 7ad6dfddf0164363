/* Unit tests of mtp_mm_grow, mtp_mm_trim and mtp_unmap (preload/base/util.c), the
 * mmap'd arrays of the writer, the leak scan and the Python graph: contents
 * kept and new bytes zero through growth; an array of a huge page or more at
 * its first mapping is mapped to its size (no huge page reaching past what
 * is filled: its resident size is its size) and advised for transparent
 * huge pages (smaps' THPeligible, where the system has THP in `madvise` or
 * `always` mode), as is one grown by mtp_mm_grow_huge, which its owner
 * trims; a trim gives back what is past the bytes used, which read as zero
 * after. mtp_unmap unmaps, except a mapping of at most MTP_UNMAP_LEFT bytes
 * once the process is exiting (base/state.h's mtp_exiting). The figures come
 * from /proc/self/smaps, the kernel's own account of the mapping. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/util.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

typedef struct vma {
    unsigned long start, end;
    long rss_kb;
    int thp_eligible;   /* -1: the field is absent */
} vma_t;

/* The smaps entry of the mapping that holds p. */
static vma_t vma_of(const void *p)
{
    vma_t v = {0, 0, -1, -1};
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert(f != NULL);
    char line[512];
    int in = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long a, b;
        char perms[8];
        /* A mapping's first line starts with its address (lowercase hex);
         * its fields' names start with a capital. */
        if (((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) &&
            sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3) {
            in = (uintptr_t)p >= a && (uintptr_t)p < b;
            if (in) {
                v.start = a;
                v.end = b;
            }
            continue;
        }
        long n;
        if (in && sscanf(line, "Rss: %ld kB", &n) == 1)
            v.rss_kb = n;
        if (in && sscanf(line, "THPeligible: %ld", &n) == 1)
            v.thp_eligible = (int)n;
    }
    fclose(f);
    cr_assert(v.end > v.start, "no mapping holds %p", p);
    return v;
}

/* The system's THP mode, as /sys shows it selected: "always", "madvise",
 * "never", or "" when it has none. */
static const char *thp_mode(void)
{
    static const char *const modes[] = {"always", "madvise", "never"};
    char buf[128] = "", sel[16];
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return "";
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        snprintf(sel, sizeof(sel), "[%s]", modes[i]);
        if (strstr(buf, sel))
            return modes[i];
    }
    return "";
}

/* Mappings advised MADV_HUGEPAGE get huge pages. */
static int thp_advisable(void)
{
    return !strcmp(thp_mode(), "always") || !strcmp(thp_mode(), "madvise");
}

/* Only the advice decides (in "always" mode every mapping is eligible). */
static int thp_madvise_mode(void)
{
    return !strcmp(thp_mode(), "madvise");
}

/* The kernel fills pages on MADV_POPULATE_WRITE (Linux 5.14+; EINVAL
 * before), as mtp_populate asks. */
static int populate_works(void)
{
    void *p = mmap(NULL, 4 * KIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    int ok = madvise(p, 4 * KIB, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(p, 4 * KIB);
    return ok;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

Test(mmgrow, small_arrays_double_and_keep_their_contents)
{
    unsigned char *p = NULL;
    size_t cap = 0;
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, 1000), 0);
    cr_assert_eq(cap, 64 * KIB, "first mapping %zu", cap);
    cr_assert(all_zero(p, cap));
    memset(p, 0xa5, 1000);
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, 64 * KIB), 0);
    cr_assert_eq(cap, 64 * KIB, "no growth when the room is there");
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, 200 * KIB), 0);
    cr_assert_eq(cap, 256 * KIB);
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(p[i], 0xa5, "byte %zu lost in the growth", i);
    cr_assert(all_zero(p + 1000, cap - 1000));
    munmap(p, cap);
}

Test(mmgrow, a_big_first_mapping_is_its_size_in_huge_pages)
{
    size_t need = 6 * MIB + 4 * KIB + 100;   /* not a multiple of a page */
    unsigned char *p = NULL;
    size_t cap = 0;
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, need), 0);
    cr_assert_eq(cap, 6 * MIB + 8 * KIB, "mapped %zu for %zu", cap, need);
    cr_assert(all_zero(p, cap));
    vma_t v = vma_of(p);
    cr_assert_eq(v.end - v.start, cap, "the mapping is %lu bytes", v.end - v.start);
    /* Filled at once (where the kernel has MADV_POPULATE_WRITE, 5.14+), and
     * no further than its end. */
    if (populate_works())
        cr_assert_eq(v.rss_kb, (long)(cap / KIB), "resident %ld kB of %zu", v.rss_kb, cap / KIB);
    else
        cr_assert_leq(v.rss_kb, (long)(cap / KIB), "resident %ld kB of %zu", v.rss_kb, cap / KIB);
    if (thp_advisable() && v.thp_eligible >= 0)
        cr_assert_eq(v.thp_eligible, 1, "not advised for huge pages");
    memset(p, 0x5a, need);
    /* Growing on: contents kept, the new bytes zero. */
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, cap + 1), 0);
    cr_assert_eq(cap, 2 * (6 * MIB + 8 * KIB));
    for (size_t i = 0; i < need; i += 4093)
        cr_assert_eq(p[i], 0x5a, "byte %zu lost in the growth", i);
    cr_assert(all_zero(p + need, cap - need));
    munmap(p, cap);
}

/* A small array, and one that grew past a huge page, are not advised: the
 * last huge page of an array grown in part would count up to 2 MiB it never
 * uses (+1.7 MiB at the peak of a 1 M-block Python program). */
Test(mmgrow, small_and_grown_arrays_are_not_advised)
{
    unsigned char *p = NULL;
    size_t cap = 0;
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, MIB), 0);
    cr_assert_eq(cap, MIB);
    vma_t v = vma_of(p);
    if (thp_madvise_mode() && v.thp_eligible >= 0)
        cr_assert_eq(v.thp_eligible, 0, "a 1 MiB array was advised for huge pages");
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, 3 * MIB), 0);
    cr_assert_eq(cap, 4 * MIB);
    v = vma_of(p);
    if (thp_madvise_mode() && v.thp_eligible >= 0)
        cr_assert_eq(v.thp_eligible, 0, "a grown array was advised for huge pages");
    munmap(p, cap);
}

Test(mmgrow, a_trim_gives_back_what_is_past_the_bytes_used)
{
    unsigned char *p = NULL;
    size_t cap = 0;
    /* Grown a piece at a time, as the graph's references are. */
    for (size_t need = 4 * KIB; need <= 5 * MIB; need += 64 * KIB)
        cr_assert_eq(mtp_mm_grow_huge((void **)&p, &cap, need), 0);
    cr_assert_eq(cap, 8 * MIB);
    vma_t g = vma_of(p);
    if (thp_advisable() && g.thp_eligible >= 0)
        cr_assert_eq(g.thp_eligible, 1, "grown for a trim, not advised for huge pages");
    memset(p, 0x77, cap);   /* every page resident */
    cr_assert_eq(vma_of(p).rss_kb, (long)(cap / KIB));
    size_t used = 5 * MIB + 100;
    mtp_mm_trim(p, cap, used);
    long want = (long)((used + 4 * KIB - 1) / (4 * KIB) * 4);
    vma_t v = vma_of(p);
    cr_assert_eq(v.end - v.start, cap, "the mapping keeps its size");
    cr_assert_eq(v.rss_kb, want, "resident %ld kB after the trim, want %ld", v.rss_kb, want);
    for (size_t i = 0; i < used; i += 4093)
        cr_assert_eq(p[i], 0x77, "byte %zu lost in the trim", i);
    cr_assert_eq(p[used - 1], 0x77);
    /* The rest of the last page used is kept; past it, zero. */
    size_t from = (used + 4 * KIB - 1) & ~(size_t)(4 * KIB - 1);
    cr_assert(all_zero(p + from, cap - from));
    /* And it grows on as before. */
    cr_assert_eq(mtp_mm_grow((void **)&p, &cap, cap + 1), 0);
    cr_assert_eq(p[0], 0x77);
    cr_assert(all_zero(p + from, cap - from));
    mtp_mm_trim(NULL, 0, 0);   /* nothing mapped: nothing done */
    munmap(p, cap);
}

/* Whether [p, p + n) is mapped (mincore fails with ENOMEM on a hole). */
static int mapped(void *p, size_t n)
{
    unsigned char vec[2 * MIB / 4096 + 1];
    return mincore(p, n, vec) == 0;
}

static void *map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, 1, 4096);
    return p;
}

Test(mmgrow, unmap_leaves_small_mappings_to_an_exiting_process)
{
    void *a = map(64 * KIB), *b = map(MTP_UNMAP_LEFT), *c = map(MTP_UNMAP_LEFT + 4096);
    mtp_unmap(NULL, 64 * KIB);   /* nothing */
    mtp_unmap(a, 64 * KIB);
    cr_expect(!mapped(a, 64 * KIB), "a mapping is unmapped while the process runs");

    atomic_store(&mtp_exiting, 1);
    mtp_unmap(b, MTP_UNMAP_LEFT);
    mtp_unmap(c, MTP_UNMAP_LEFT + 4096);
    atomic_store(&mtp_exiting, 0);
    cr_expect(mapped(b, MTP_UNMAP_LEFT), "exiting: a mapping of MTP_UNMAP_LEFT bytes is left");
    cr_expect(!mapped(c, MTP_UNMAP_LEFT + 4096), "exiting: a bigger one is unmapped");
    cr_expect_eq(*(unsigned char *)b, 1, "what is left keeps its contents");
    munmap(b, MTP_UNMAP_LEFT);
}
