/*
 * Fast native unwinding from DWARF call-frame information (x86-64).
 *
 * For every return address seen, the rule that recovers the caller's frame
 * is computed once from the module's .eh_frame (found through
 * .eh_frame_hdr's sorted table) and cached: where the CFA is (rsp or rbp plus
 * an offset), and where the caller's rbp was saved. Walking a stack with
 * these rules (unwind/walk.c) is then a cache lookup and two loads per
 * frame. Whatever this does not model (signal frames, CFA or register
 * expressions, registers other than rsp/rbp as CFA base, a frame without
 * FDE) is the rule MTP_CFI_UNSUPPORTED, and the walk hands the stack to
 * libunwind's unw_backtrace instead: the result is the same stack either
 * way.
 *
 * Threads: each thread first looks in its own small direct-mapped copy of
 * recent rules (per-thread, in its block: a stack's rules stay in a few cache
 * lines). Behind it, any thread reads and inserts the global rule tables,
 * insert-only open-addressing tables: an inserter claims an empty
 * slot by CAS-ing its key from 0 to 1 (busy), fills the rule, then publishes
 * the key with a release store; readers skip busy slots (and simply compute
 * the rule themselves). Nothing is freed, nothing waits, and a slot left busy
 * by a thread lost in fork only costs a probe. The process's first
 * FIRST_MAX rules go to a table of one page (`first`, in memtrail's own
 * zeroed data), the others to a large one in an mmap'd reservation, used
 * from the first rule that `first` has no room for (`big_used`, set before
 * that rule is stored there): a lookup reads the large table only once it
 * is used, so a short process touches one page of rules where it touched a
 * page per stretch of code it returned into (ten for /bin/echo, each an
 * madvise call and a page zeroed). A lookup that misses in `first` while a
 * racing thread stores the same rule in the large one computes it again:
 * the same rule, stored twice. The rule computation uses
 * dl_iterate_phdr (the loader's lock); no lock of ours is ever held then.
 *
 * Fork children. A child inherits the tables as they were (copy-on-write),
 * but the rules it computes go with it: a shell's children all run the code
 * between fork and exec that the shell itself never returns into, and each
 * computed its rules anew (about two a command, each with the faults of
 * reading the module's unwind tables: docs/performance.md). So a
 * process's first fork (mtp_cfi_atfork_prepare, before the fork) makes a
 * third table in shared memory (`shared`, MAP_SHARED: the parent, its
 * children and theirs see one table, until each one's exec) and notes the
 * code its modules have at that moment (`anc`: their executable segments,
 * and the loader's count of unloads). A rule computed afterwards, in any of
 * these processes, for an address in that code goes to the shared table;
 * any other (a module loaded after that fork, which another process of the
 * tree may have at the same addresses with other code) stays in the
 * process's own tables, as does every rule once the process has unloaded a
 * module since (the addresses noted may then hold other code). The shared
 * table is probed after the process's own ones; its 64 KiB are read in
 * with one fault (the kernel maps a shared page's neighbours with it).
 * Inserting is the same CAS protocol, between processes: a slot left busy
 * by a process that died in the middle costs a probe.
 *
 * As with libunwind's own cache, rules are keyed by address: a module
 * unloaded and another mapped at the same addresses would reuse stale rules
 * (in a fork child too: the shared table holds only rules for code every
 * process of the tree had when it was made).
 */
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "base/util.h"
#include "unwind/cfi.h"

/* 4 MiB reserved, touched as used: 262,144 return addresses, and the pages
 * a process touches within two page-table pages, which every fork copies
 * and every exec frees (16 MiB spread them over eight). A program with more
 * return addresses recomputes the rules of the excess on each miss of its
 * thread's cache. */
#define RULE_SLOTS (1u << 18)
#define RULE_PAGE_BITS 8           /* 256 slots of 16 bytes: one page */
#define RULE_SPAN_BITS 14          /* the code a page's slots serve: 16 KiB */
#define KEY_BUSY 1u

typedef struct rule {
    _Atomic uint64_t key;   /* return address; 0 empty, 1 being filled */
    int32_t cfa_off;
    int16_t rbp_off;        /* caller's rbp saved at CFA + rbp_off; 0 = unchanged */
    uint8_t base;           /* MTP_CFI_* */
    uint8_t pad;
} rule_t;
_Static_assert(sizeof(rule_t) == 16, "rule layout");

static rule_t *rules;        /* read-only pointer after init */

#define FIRST_SLOTS 256u           /* one page */
#define FIRST_MAX 128u             /* rules stored there at most: half full */
static MTP_LARGE _Alignas(4096) rule_t first[FIRST_SLOTS];   /* any thread: as `rules` */
static _Atomic unsigned first_claimed;   /* any thread: rules given a place in `first` */
static _Atomic int big_used;             /* any thread: set once `rules` may hold a rule */

#define SHARED_SLOTS 4096u         /* 64 KiB, shared with fork children (MAP_SHARED) */
#define SHARED_PROBES 64u
#define ANC_MAX 128u               /* executable segments noted at the first fork */
typedef struct code_range {
    uintptr_t lo, hi;
} code_range_t;
/* Written by the first fork's prepare handler (the thread that set
 * shared_making, before `shared` is published with release), then
 * read-only; a fork child keeps them. */
static code_range_t anc[ANC_MAX];
static unsigned nanc;
static unsigned long long anc_subs;       /* the loader's dlpi_subs then */
static _Atomic(rule_t *) shared;          /* acquire: anc is set */
static _Atomic int shared_making;         /* the one thread that makes it (two may fork at once) */
static _Atomic unsigned long computed;    /* any thread: rules computed (mtp_cfi_computed) */

int mtp_cfi_init(void)
{
    void *p = mmap(NULL, RULE_SLOTS * sizeof(rule_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    rules = p;
    return 0;
}

/* ---- DWARF reading ---- */
typedef struct cursor {
    const uint8_t *p, *end;
    int bad;
} cursor_t;

static uint64_t uleb(cursor_t *c)
{
    uint64_t v = 0;
    for (unsigned shift = 0; c->p < c->end && shift < 64; shift += 7) {
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

static int64_t sleb(cursor_t *c)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0x80;
    while (c->p < c->end && shift < 64 && (b & 0x80)) {
        b = *c->p++;
        v |= (int64_t)(b & 0x7f) << shift;
        shift += 7;
    }
    if (b & 0x80)
        c->bad = 1;
    else if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

#define FIXED(type)                                   \
    static type rd_##type(cursor_t *c)                \
    {                                                 \
        type v = 0;                                   \
        if ((size_t)(c->end - c->p) < sizeof(v)) {    \
            c->bad = 1;                               \
            return 0;                                 \
        }                                             \
        memcpy(&v, c->p, sizeof(v));                  \
        c->p += sizeof(v);                            \
        return v;                                     \
    }
FIXED(uint8_t)
FIXED(uint16_t)
FIXED(uint32_t)
FIXED(uint64_t)

/* A DW_EH_PE-encoded pointer; datarel is relative to `data`. */
static uint64_t rd_ptr(cursor_t *c, uint8_t enc, uint64_t data)
{
    uint64_t here = (uintptr_t)c->p, v;
    if (enc == 0xff) /* omit */
        return 0;
    switch (enc & 0x0f) {
    case 0x00: v = rd_uint64_t(c); break;
    case 0x01: v = uleb(c); break;
    case 0x02: v = rd_uint16_t(c); break;
    case 0x03: v = rd_uint32_t(c); break;
    case 0x04: v = rd_uint64_t(c); break;
    case 0x09: v = (uint64_t)sleb(c); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_uint16_t(c); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_uint32_t(c); break;
    case 0x0c: v = rd_uint64_t(c); break;
    default: c->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += here; break;
    case 0x30: v += data; break;
    default: c->bad = 1; return 0;
    }
    if (enc & 0x80)
        c->bad = 1; /* indirect pointers do not occur in FDE addresses */
    return v;
}

/* ---- finding the FDE ---- */
typedef struct lookup {
    uintptr_t pc;
    const uint8_t *hdr;     /* .eh_frame_hdr of the module holding pc */
    size_t hdr_len;
    unsigned long long subs;   /* the loader's count of unloads, as it walked */
} lookup_t;

/* The loader's count of unloads, from a dl_iterate_phdr callback's info;
 * `unknown` when the loader's info has no such field. */
static unsigned long long loader_subs(const struct dl_phdr_info *info, size_t size,
                                      unsigned long long unknown)
{
    return size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)
               ? info->dlpi_subs
               : unknown;
}

static int find_module(struct dl_phdr_info *info, size_t size, void *data)
{
    lookup_t *l = data;
    const ElfW(Phdr) *eh = NULL;
    int inside = 0;
    l->subs = loader_subs(info, size, ~0ull);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && l->pc >= lo && l->pc < lo + ph->p_memsz)
            inside = 1;
        else if (ph->p_type == PT_GNU_EH_FRAME)
            eh = ph;
    }
    if (!inside)
        return 0;
    if (eh) {
        l->hdr = (const uint8_t *)(info->dlpi_addr + eh->p_vaddr);
        l->hdr_len = eh->p_memsz;
    }
    return 1;
}

/* Binary search of .eh_frame_hdr's table (the usual datarel|sdata4 form). */
static const uint8_t *find_fde(const lookup_t *l, uintptr_t target)
{
    cursor_t c = {l->hdr, l->hdr + l->hdr_len, 0};
    uint64_t base = (uintptr_t)l->hdr;
    if (rd_uint8_t(&c) != 1)
        return NULL;
    uint8_t ptr_enc = rd_uint8_t(&c), count_enc = rd_uint8_t(&c), table_enc = rd_uint8_t(&c);
    rd_ptr(&c, ptr_enc, base);
    uint64_t count = rd_ptr(&c, count_enc, base);
    if (c.bad || table_enc != 0x3b || (uint64_t)(c.end - c.p) < count * 8)
        return NULL;
    const int32_t *table = (const int32_t *)(const void *)c.p;
    uint64_t lo = 0, hi = count;
    while (lo < hi) {   /* last entry with initial location <= target */
        uint64_t mid = lo + (hi - lo) / 2;
        if (base + (int64_t)table[2 * mid] <= target)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    return (const uint8_t *)(uintptr_t)(base + (int64_t)table[2 * (lo - 1) + 1]);
}

/* ---- executing CFA instructions ---- */
typedef struct cfa_state {
    int cfa_reg;
    int64_t cfa_off;
    int rbp_how;   /* 0 unchanged, 1 at CFA + rbp_off, 2 unsupported */
    int64_t rbp_off;
    int ra_how;    /* 1 at CFA + ra_off, 3 undefined (end of stack), 2 unsupported */
    int64_t ra_off;
} cfa_state_t;

static void set_reg(cfa_state_t *s, uint64_t reg, int how, int64_t off)
{
    if (reg == 6) {
        s->rbp_how = how;
        s->rbp_off = off;
    } else if (reg == 16) {
        s->ra_how = how;
        s->ra_off = off;
    }
}

/* DW_CFA_restore: the register's rule goes back to the CIE's. */
static void restore_reg(cfa_state_t *s, const cfa_state_t *initial, uint64_t reg)
{
    if (reg == 6) {
        s->rbp_how = initial->rbp_how;
        s->rbp_off = initial->rbp_off;
    } else if (reg == 16) {
        s->ra_how = initial->ra_how;
        s->ra_off = initial->ra_off;
    }
}

/* Runs instructions until the location passes `target`. Returns 0, or -1. */
static int run_cfa(cursor_t *c, cfa_state_t *s, const cfa_state_t *initial, uint64_t loc,
                   uint64_t target, uint64_t code_align, int64_t data_align)
{
    cfa_state_t stack[8];
    int depth = 0;
    while (c->p < c->end && !c->bad) {
        uint8_t op = rd_uint8_t(c), low = op & 0x3f;
        uint64_t delta = 0, reg;
        switch (op >> 6) {
        case 1: delta = low * code_align; goto advance;
        case 2: set_reg(s, low, 1, (int64_t)uleb(c) * data_align); continue;
        case 3: restore_reg(s, initial, low); continue;
        }
        switch (op) {
        case 0x00: break;                                        /* nop */
        case 0x01: return -EOPNOTSUPP;                                    /* set_loc: rare, unsupported */
        case 0x02: delta = rd_uint8_t(c) * code_align; goto advance;
        case 0x03: delta = rd_uint16_t(c) * code_align; goto advance;
        case 0x04: delta = rd_uint32_t(c) * code_align; goto advance;
        case 0x05: reg = uleb(c); set_reg(s, reg, 1, (int64_t)uleb(c) * data_align); break;
        case 0x06: restore_reg(s, initial, uleb(c)); break;
        case 0x07: set_reg(s, uleb(c), 3, 0); break;             /* undefined */
        case 0x08: set_reg(s, uleb(c), 0, 0); break;             /* same_value */
        case 0x09: reg = uleb(c); uleb(c); set_reg(s, reg, 2, 0); break; /* register */
        case 0x0a: if (depth == 8) return -EOPNOTSUPP; stack[depth++] = *s; break;
        case 0x0b: if (depth == 0) return -EOPNOTSUPP; *s = stack[--depth]; break;
        case 0x0c: s->cfa_reg = (int)uleb(c); s->cfa_off = (int64_t)uleb(c); break;
        case 0x0d: s->cfa_reg = (int)uleb(c); break;
        case 0x0e: s->cfa_off = (int64_t)uleb(c); break;
        case 0x0f: return -EOPNOTSUPP;                                    /* def_cfa_expression */
        case 0x10: reg = uleb(c); c->p += uleb(c); set_reg(s, reg, 2, 0); break;
        case 0x11: reg = uleb(c); set_reg(s, reg, 1, sleb(c) * data_align); break;
        case 0x12: s->cfa_reg = (int)uleb(c); s->cfa_off = sleb(c) * data_align; break;
        case 0x13: s->cfa_off = sleb(c) * data_align; break;
        case 0x14: reg = uleb(c); uleb(c); set_reg(s, reg, 2, 0); break; /* val_offset */
        case 0x15: reg = uleb(c); sleb(c); set_reg(s, reg, 2, 0); break;
        case 0x16: reg = uleb(c); c->p += uleb(c); set_reg(s, reg, 2, 0); break;
        case 0x2e: uleb(c); break;                               /* GNU_args_size */
        case 0x2f: reg = uleb(c); set_reg(s, reg, 1, -(int64_t)uleb(c) * data_align); break;
        default: return -EOPNOTSUPP;
        }
        continue;
    advance:
        loc += delta;
        if (loc > target)
            return 0;
    }
    return c->bad ? -1 : 0;
}

/* Computes the rule for return address `pc` (looks up the call at pc - 1);
 * *subs: the loader's count of unloads as it looked (~0: unknown). */
static rule_t compute_rule(uintptr_t pc, unsigned long long *subs)
{
    rule_t r = {.base = MTP_CFI_UNSUPPORTED};
    lookup_t l = {pc, NULL, 0, ~0ull};
    uintptr_t target = pc - 1;
    atomic_fetch_add_explicit(&computed, 1, memory_order_relaxed);
    int found = dl_iterate_phdr(find_module, &l);
    *subs = l.subs;
    if (!found || !l.hdr)
        return r;
    const uint8_t *fde = find_fde(&l, target);
    if (!fde)
        return r;

    cursor_t c = {fde, fde + 8, 0};
    uint32_t len = rd_uint32_t(&c);
    if (len == 0 || len == 0xffffffffu)
        return r;
    c.end = fde + 4 + len;
    const uint8_t *cie_ptr_at = c.p;
    uint32_t cie_off = rd_uint32_t(&c);
    const uint8_t *cie = cie_ptr_at - cie_off;

    /* The CIE. */
    cursor_t k = {cie, cie + 8, 0};
    uint32_t cie_len = rd_uint32_t(&k);
    if (cie_len == 0 || cie_len == 0xffffffffu)
        return r;
    k.end = cie + 4 + cie_len;
    if (rd_uint32_t(&k) != 0)
        return r;                 /* not a CIE */
    uint8_t version = rd_uint8_t(&k);
    const char *aug = (const char *)k.p;
    size_t aug_len = strnlen(aug, (size_t)(k.end - k.p));
    k.p += aug_len + 1;
    uint64_t code_align = uleb(&k);
    int64_t data_align = sleb(&k);
    uint64_t ra_reg = version == 1 ? rd_uint8_t(&k) : uleb(&k);
    uint8_t fde_enc = 0;
    if (ra_reg != 16 || k.bad)
        return r;
    if (aug[0] == 'z') {
        uint64_t alen = uleb(&k);
        const uint8_t *aend = k.p + alen;
        for (size_t i = 1; i < aug_len && !k.bad; i++) {
            switch (aug[i]) {
            case 'R': fde_enc = rd_uint8_t(&k); break;
            case 'L': rd_uint8_t(&k); break;
            case 'P': { uint8_t e = rd_uint8_t(&k); rd_ptr(&k, e & 0x7f, 0); k.bad = 0; break; }
            case 'S': return r;   /* signal frame: leave it to libunwind */
            default: return r;
            }
        }
        k.p = aend;
    } else if (aug[0]) {
        return r;
    }

    /* The FDE's range, then its instructions. */
    uint64_t start = rd_ptr(&c, fde_enc, 0);
    uint64_t range = rd_ptr(&c, fde_enc & 0x0f, 0);
    if (c.bad || target < start || target >= start + range)
        return r;
    if (aug[0] == 'z')
        c.p += uleb(&c);

    cfa_state_t s = {.cfa_reg = 7, .cfa_off = 8, .rbp_how = 0, .ra_how = 1, .ra_off = -8};
    cfa_state_t init;
    if (run_cfa(&k, &s, &s, 0, UINT64_MAX, code_align, data_align) < 0 || k.bad)
        return r;
    init = s;
    if (run_cfa(&c, &s, &init, start, target, code_align, data_align) < 0)
        return r;

    if (s.ra_how == 3) {
        r.base = MTP_CFI_END;
        return r;
    }
    if (s.ra_how != 1 || s.ra_off != -8 || (s.cfa_reg != 7 && s.cfa_reg != 6) ||
        s.rbp_how == 2 || s.rbp_how == 3 || s.cfa_off < 0 || s.cfa_off > INT32_MAX ||
        (s.rbp_how == 1 && (s.rbp_off < INT16_MIN || s.rbp_off > INT16_MAX || s.rbp_off == 0)))
        return r;
    r.base = s.cfa_reg == 7 ? MTP_CFI_RSP : MTP_CFI_RBP;
    r.cfa_off = (int32_t)s.cfa_off;
    r.rbp_off = s.rbp_how == 1 ? (int16_t)s.rbp_off : 0;
    return r;
}

/* Return addresses in the same 16 KiB of code share a 4 KiB page of the
 * table (256 slots, by their address's bits 6 to 13): a process touches a
 * page per stretch of code it returns into, not one per rule. The table is
 * mostly untouched reservation, and each first touch of a page is a page
 * fault (several microseconds in a virtual machine): hashing every address
 * anywhere made a short-lived process fault in a page for nearly every
 * rule it computed. */
static inline size_t slot_of(uintptr_t pc)
{
    size_t page = (size_t)(((pc >> RULE_SPAN_BITS) * MTP_HASH_MUL) >> 40);
    return ((page << RULE_PAGE_BITS) | ((pc >> 6) & ((1u << RULE_PAGE_BITS) - 1))) &
           (RULE_SLOTS - 1);
}

static inline size_t first_slot(uintptr_t pc)
{
    return (size_t)((pc * MTP_HASH_MUL) >> 56);
}

static inline size_t shared_slot(uintptr_t pc)
{
    return (size_t)((pc * MTP_HASH_MUL) >> 52);
}

/* Whether pc is in the code noted at the first fork, the loader having
 * unloaded nothing since (subs: its count as the rule was computed). */
static int ancestral(uintptr_t pc, unsigned long long subs)
{
    if (subs != anc_subs)
        return 0;
    for (unsigned i = 0; i < nanc; i++)
        if (pc >= anc[i].lo && pc < anc[i].hi)
            return 1;
    return 0;
}

/* Stores rule r for pc in the first empty slot of table tab (mask: its
 * slots - 1) from slot i, within `probes` slots: 1, or 0 past them. */
static int table_store(rule_t *tab, size_t mask, size_t i, unsigned probes, uintptr_t pc,
                       rule_t r)
{
    for (unsigned probe = 0; probe < probes; probe++, i = (i + 1) & mask) {
        uint64_t expect = 0;
        if (atomic_load_explicit(&tab[i].key, memory_order_relaxed) != 0)
            continue;
        if (!atomic_compare_exchange_strong(&tab[i].key, &expect, KEY_BUSY))
            continue;
        tab[i].cfa_off = r.cfa_off;
        tab[i].rbp_off = r.rbp_off;
        tab[i].base = r.base;
        atomic_store_explicit(&tab[i].key, pc, memory_order_release);
        return 1;
    }
    return 0;
}

/* pc's rule from table tab, probed from slot i up to an empty slot, within
 * `probes` slots: 1 and *out, or 0. */
static inline int table_find(const rule_t *tab, size_t mask, size_t i, unsigned probes,
                             uintptr_t pc, rule_t *out)
{
    for (unsigned probe = 0; probe < probes; probe++, i = (i + 1) & mask) {
        uint64_t key = atomic_load_explicit(&tab[i].key, memory_order_acquire);
        if (key == pc) {
            *out = tab[i];
            return 1;
        }
        if (key == 0)
            return 0;
    }
    return 0;
}

/* Pages of the large table filled so far (any thread; fetch_or): a page is
 * filled with one madvise call before the first rule is stored in it, where
 * that store would take a fault, and a lookup whose slot lies in a page
 * not filled yet holds no rule of its own there: it goes on without reading
 * the page (a fork child, or a process whose rules went to the shared
 * table, would otherwise fill a page of the large table that no rule then
 * takes). A rule whose probe runs into the next page is stored there
 * unfilled (its write faults the page in) and found by the probe that
 * starts from its own page. */
static _Atomic uint64_t filled_pages[(RULE_SLOTS >> RULE_PAGE_BITS) / 64];

static inline int page_filled(size_t page)
{
    return (atomic_load_explicit(&filled_pages[page / 64], memory_order_relaxed) >>
            (page & 63)) & 1;
}

static MTP_NOINLINE void fill_page(size_t page)
{
    uint64_t bit = 1ull << (page & 63);
    if (!(atomic_fetch_or_explicit(&filled_pages[page / 64], bit, memory_order_relaxed) & bit))
        mtp_populate(&rules[page << RULE_PAGE_BITS], sizeof(rule_t) << RULE_PAGE_BITS);
}

static MTP_NOINLINE rule_t rule_miss(uintptr_t pc)
{
    unsigned long long subs;
    rule_t r = compute_rule(pc, &subs);
    rule_t *sh = atomic_load_explicit(&shared, memory_order_acquire);
    if (sh && ancestral(pc, subs) &&
        table_store(sh, SHARED_SLOTS - 1, shared_slot(pc), SHARED_PROBES, pc, r))
        return r;
    /* `first` while it has room: at most FIRST_MAX of its FIRST_SLOTS
     * slots are claimed, so a claimed place always finds an empty slot. */
    if (atomic_load_explicit(&first_claimed, memory_order_relaxed) < FIRST_MAX &&
        atomic_fetch_add_explicit(&first_claimed, 1, memory_order_relaxed) < FIRST_MAX) {
        table_store(first, FIRST_SLOTS - 1, first_slot(pc), FIRST_SLOTS, pc, r);
        return r;
    }
    if (!atomic_load_explicit(&big_used, memory_order_relaxed))
        atomic_store_explicit(&big_used, 1, memory_order_release);
    size_t i = slot_of(pc);
    fill_page(i >> RULE_PAGE_BITS);   /* at most one call a page */
    table_store(rules, RULE_SLOTS - 1, i, 64, pc, r);
    return r;
}

/* The shared table's answer, or a rule computed now (cold: only after a
 * miss in the process's own tables). */
static MTP_NOINLINE rule_t shared_or_miss(uintptr_t pc)
{
    rule_t r;
    const rule_t *sh = atomic_load_explicit(&shared, memory_order_relaxed);
    if (sh && table_find(sh, SHARED_SLOTS - 1, shared_slot(pc), SHARED_PROBES, pc, &r))
        return r;
    return rule_miss(pc);
}

static inline rule_t rule_for(uintptr_t pc)
{
    rule_t r;
    if (table_find(first, FIRST_SLOTS - 1, first_slot(pc), FIRST_SLOTS, pc, &r))
        return r;
    if (!atomic_load_explicit(&big_used, memory_order_acquire))
        return shared_or_miss(pc);
    size_t i = slot_of(pc);
    if (page_filled(i >> RULE_PAGE_BITS) && table_find(rules, RULE_SLOTS - 1, i, 64, pc, &r))
        return r;
    return shared_or_miss(pc);
}

/* Notes the executable segments of every module (dl_iterate_phdr). */
static int note_code(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)data;
    anc_subs = loader_subs(info, size, ~1ull);   /* unknown: never equal to a rule's (~0) */
    for (int i = 0; i < info->dlpi_phnum && nanc < ANC_MAX; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            anc[nanc].lo = info->dlpi_addr + ph->p_vaddr;
            anc[nanc].hi = anc[nanc].lo + ph->p_memsz;
            nanc++;
        }
    }
    return 0;
}

MTP_FORK_CODE void mtp_cfi_atfork_prepare(void)
{
    int no = 0;
    if (!rules || atomic_load_explicit(&shared_making, memory_order_relaxed) ||
        !atomic_compare_exchange_strong(&shared_making, &no, 1))
        return;   /* made, or being made by a thread forking now: this fork's child may share none */
    int saved = errno;
    void *p = mmap(NULL, SHARED_SLOTS * sizeof(rule_t), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        nanc = 0;
        dl_iterate_phdr(note_code, NULL);
        atomic_store_explicit(&shared, (rule_t *)p, memory_order_release);
    }
    errno = saved;
}

unsigned long mtp_cfi_computed(void)
{
    return atomic_load_explicit(&computed, memory_order_relaxed);
}

mtp_rule_ent_t mtp_cfi_rule(uintptr_t pc)
{
    if (!rules)
        return (mtp_rule_ent_t){pc, 0, 0, MTP_CFI_UNSUPPORTED, 0};
    rule_t g = rule_for(pc);
    return (mtp_rule_ent_t){pc, g.cfa_off, g.rbp_off, g.base, 0};
}
