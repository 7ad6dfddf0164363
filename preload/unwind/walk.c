/*
 * The CFI walk (x86-64), and the thread's memory of its previous walk.
 *
 * A walk is a sequence of states (pc, sp, bp): a frame's return address,
 * the CFA of the frame below it, and rbp. One step turns a state into its
 * caller's: the rule for pc (cfi.c) gives the CFA from sp or bp, the caller's
 * rbp is either read from the stack (at CFA + rbp_off) or left as it is, and
 * the caller's pc is read at CFA - 8. So the walk from a state on is a
 * function of that state (bp only where some frame outward uses it before a
 * step reads it afresh), of the rules, of the stack bounds, and of the words
 * the steps read. Nothing else.
 *
 * The memo (base/thread.h, per-thread, touched only by its thread inside a
 * hook, so never by two walks at once) keeps the states of the thread's last
 * successful walk, outermost first, with where each step read rbp. A new
 * walk steps as usual until it reaches a state the memo holds (same sp, same
 * pc, and same bp where the memo marks bp as read further out); then it
 * checks that every word the old walk read from there outward still holds
 * the value read then (the return address at each CFA - 8, each rbp read).
 * If all do, the rest of the walk is the old one, frame for frame: the same
 * function of the same inputs. Any difference, and the walk simply goes on
 * stepping (and tries the memo no more). A walk deeper than the memo reached
 * at `max` resumes stepping from the state the memo kept after its last
 * frame. Checking a frame is two loads and two compares where stepping it is
 * a rule lookup, the CFA computed and bounds-checked, and the same loads:
 * in a program that allocates from a loop the outer part of every stack is
 * the previous one's.
 *
 * A walk also says whether its frames are all the old walk's (`same`: the
 * same depth, and the frames it stepped equal to the memo's, those it
 * joined being the memo's): the stack interned for the old walk is then the
 * new one's, and no hash or table is looked at (record/stacktab.c,
 * mtp_stack_intern_from).
 *
 * After each walk the memo holds its states, but for one thing: where a
 * walk joined with another rbp than the memo's (no frame outward reads it),
 * the frames outward keep the older rbp up to the next step that reads one.
 * Nothing reads those values: a join compares a frame's rbp only where it
 * is flagged as read further out, the check compares the words a step read
 * with what it read, and a resumed walk carries its own rbp out. A walk that
 * fails (a frame libunwind must take) leaves the memo as it was.
 */
#include <errno.h>
#include <string.h>

#include "base/util.h"
#include "unwind/cfi.h"

enum {
    END_RULE = 1,   /* the last frame's rule ends the stack (its return address is undefined) */
    END_HI,         /* the last step reached the top of the stack */
    END_MAX,        /* `max` frames taken: memo->next is the state after them */
    END_PCMIN,      /* the return address read last (memo->next.pc) is not code */
};

static inline mtp_rule_ent_t rule_of(mtp_rule_ent_t *cache, uintptr_t pc)
{
    mtp_rule_ent_t *e = &cache[(pc ^ (pc >> 9)) & (MTP_RCACHE_SLOTS - 1)];
    if (MTP_UNLIKELY(e->pc != pc))
        *e = mtp_cfi_rule(pc);
    return *e;
}

MTP_NO_SANITIZE_SCAN static inline uintptr_t word_at(uintptr_t a)
{
    return *(const uintptr_t *)a;
}

static inline uintptr_t addr_of(uintptr_t slot)
{
    return slot & ~(uintptr_t)MTP_UF_FLAGS;
}

/* One step, with pc's rule r: (*pc, *sp, *bp) becomes the caller's state,
 * and *slot where the caller's rbp was read (left alone when it was not).
 * Returns 0, END_RULE (the stack ends at this frame: nothing changed),
 * END_HI (the caller's frame is the top of the stack), or -ENOENT for a
 * frame libunwind must take. */
MTP_NO_SANITIZE_SCAN
static inline int step(mtp_rule_ent_t r, uintptr_t *pc, uintptr_t *sp, uintptr_t *bp,
                       uintptr_t lo, uintptr_t hi, uintptr_t *slot)
{
    if (r.base == MTP_CFI_END)
        return END_RULE;
    if (MTP_UNLIKELY(r.base == MTP_CFI_UNSUPPORTED))
        return -ENOENT;
    uintptr_t cfa = (r.base == MTP_CFI_RSP ? *sp : *bp) + (uintptr_t)(intptr_t)r.cfa_off;
    if (MTP_UNLIKELY(cfa <= *sp || cfa > hi || cfa < lo + 8 || (cfa & 7)))
        return -ENOENT;
    if (r.rbp_off) {
        *slot = cfa + (uintptr_t)(intptr_t)r.rbp_off;
        *bp = word_at(*slot);
    }
    *pc = word_at(cfa - 8);
    *sp = cfa;
    return cfa == hi ? END_HI : 0;
}

/* The plain walk, without a memo; without the rule cache too when cache is
 * NULL (its pages untouched: a fork child's first stacks, unwind.c). */
MTP_NO_SANITIZE_SCAN
static int walk(mtp_rule_ent_t *cache, uintptr_t pc, uintptr_t sp, uintptr_t bp, uintptr_t lo,
                uintptr_t hi, uintptr_t *pcs, uint32_t max)
{
    uint32_t n = 0;
    while (n < max && pc > MTP_PAGE_MIN) {
        pcs[n++] = pc;
        uintptr_t slot;
        int e = step(cache ? rule_of(cache, pc) : mtp_cfi_rule(pc), &pc, &sp, &bp, lo, hi, &slot);
        if (e < 0)
            return -ENOENT;
        if (e)
            break;
    }
    return (int)n;
}

/* Puts scratch frame i at memo index h and sets its MTP_UF_NEED_BP flag,
 * given whether the frame outside it needs its rbp; returns its own need. */
static inline int put(mtp_unwind_memo_t *m, uint32_t h, const mtp_uframe_t *f, int need)
{
    int rbp_cfa = (f->slot & MTP_UF_RBP_CFA) != 0;
    need = rbp_cfa || (need && !addr_of(f->slot));
    m->pc[h] = f->pc;
    m->sp[h] = f->sp;
    m->bp[h] = f->bp;
    m->slot[h] = addr_of(f->slot) | (rbp_cfa ? MTP_UF_RBP_CFA : 0) | (need ? MTP_UF_NEED_BP : 0);
    return need;
}

/* The walk in scratch[0..n) becomes the memo. */
static void memo_store(mtp_unwind_memo_t *m, uint32_t n, uint32_t end, uintptr_t pc, uintptr_t sp,
                       uintptr_t bp, uintptr_t lo, uintptr_t hi)
{
    /* A short stack is stepped whole, never joined: it too may be the
     * stack before, frame for frame (compared as the frames are put). */
    uintptr_t differ = m->n ^ n;
    int need = end == END_MAX;
    for (uint32_t h = 0; h < n; h++) {
        differ |= m->pc[h] ^ m->scratch[n - 1 - h].pc;
        need = put(m, h, &m->scratch[n - 1 - h], need);
    }
    m->n = n;
    m->end = end;
    m->lo = lo;
    m->hi = hi;
    m->next = (mtp_uframe_t){pc, sp, bp, 0};
    m->gen++;
    m->same = !differ;
    m->shared = 0;
}

/* The new walk's k frames (scratch, pcs) reached memo frame c in the same
 * state. Copies the memo's frames from c outward into pcs, as far as `max`
 * allows, checking each step's words on the way; the memo then becomes this
 * walk. Returns the walk's count, or -1 (pcs[k..] overwritten, the memo
 * unchanged) when a word differs. A memo cut at max whose frames all fit is
 * the caller's to resume. */
MTP_NO_SANITIZE_SCAN
static MTP_NOINLINE int join(mtp_unwind_memo_t *m, uint32_t c, uint32_t k, uintptr_t *pcs,
                             uint32_t max)
{
    /* Frames c down to `last` are this walk's; the steps between them are
     * checked, and the step after `last` when the walk goes on from there. */
    uint32_t last = k + c + 1 > max ? c + 1 - (max - k) : 0;
    uintptr_t *out = pcs + k;
    const uintptr_t *pc = m->pc, *sp = m->sp, *slot = m->slot;
    for (uint32_t h = c; h > last; h--) {
        *out++ = pc[h];
        if (word_at(sp[h - 1] - 8) != pc[h - 1])
            return -1;
        uintptr_t a = addr_of(slot[h]);
        if (MTP_UNLIKELY(a) && word_at(a) != m->bp[h - 1])
            return -1;
    }
    *out++ = pc[last];
    if (last == 0 && (m->end == END_MAX || m->end == END_PCMIN)) {
        if (word_at(m->next.sp - 8) != m->next.pc)
            return -1;
        uintptr_t a = addr_of(slot[0]);
        if (m->end == END_MAX && a && word_at(a) != m->next.bp)
            return -1;
    }

    /* The same frames as the walk the memo held, every one (the inner ones
     * compared as they are put below): its stack's id is this walk's
     * (record/stacktab.c: mtp_stack_intern_from). */
    uintptr_t differ = last | (m->n ^ (c + 1 + k));
    m->gen++;
    m->shared = last ? 0 : c + 1;
    if (last) {
        /* Deeper than the memo now: this walk stops inside its frames. */
        m->next = (mtp_uframe_t){pc[last - 1], sp[last - 1], m->bp[last - 1], 0};
        m->end = END_MAX;
        uint32_t keep = c + 1 - last;
        memmove(m->pc, m->pc + last, keep * sizeof(uintptr_t));
        memmove(m->sp, m->sp + last, keep * sizeof(uintptr_t));
        memmove(m->bp, m->bp + last, keep * sizeof(uintptr_t));
        memmove(m->slot, m->slot + last, keep * sizeof(uintptr_t));
        c = keep - 1;
    }
    int need = (m->slot[c] & MTP_UF_NEED_BP) != 0;
    for (uint32_t i = k; i-- > 0;) {
        differ |= m->pc[c + k - i] ^ m->scratch[i].pc;
        need = put(m, c + k - i, &m->scratch[i], need);
    }
    m->same = !differ;
    m->n = c + 1 + k;
    m->joins++;
    return (int)(out - pcs);
}

MTP_NO_SANITIZE_SCAN
int mtp_cfi_unwind_from(mtp_rule_ent_t *cache, mtp_unwind_memo_t *m, uintptr_t pc, uintptr_t sp,
                        uintptr_t bp, uintptr_t lo, uintptr_t hi, uintptr_t *pcs, uint32_t max)
{
    if (hi == 0)
        return -ENOENT;
    if (!m || max > MTP_MAX_DEPTH)
        return walk(cache, pc, sp, bp, lo, hi, pcs, max);

    mtp_uframe_t *s = m->scratch;
    uint32_t n = 0, end = 0;
    /* The memo frame the walk may join next: the innermost whose sp is not
     * below the current one (sp grows outward in both walks). */
    int c = m->n && m->lo == lo && m->hi == hi ? (int)m->n - 1 : -1;
    m->walks++;
    while (n < max && pc > MTP_PAGE_MIN) {
        if (c >= 0) {
            while (c >= 0 && m->sp[c] < sp)
                c--;
            if (c >= 0 && m->sp[c] == sp && m->pc[c] == pc &&
                (!(m->slot[c] & MTP_UF_NEED_BP) || m->bp[c] == bp)) {
                if (m->end != END_MAX || n + (uint32_t)c + 1 >= max) {
                    m->bp[c] = bp;
                    int r = join(m, (uint32_t)c, n, pcs, max);
                    if (r >= 0)
                        return r;
                    c = -1;   /* a word changed: step on, without the memo */
                } else {
                    /* The memo stopped at max and this walk goes deeper:
                     * take its frames, then step on from its next state. */
                    if (join(m, (uint32_t)c, n, pcs, max) < 0) {
                        c = -1;
                    } else {
                        uintptr_t cur = bp;
                        for (int h = (int)m->n - 1 - (int)n; h >= 0; h--) {
                            s[n] = (mtp_uframe_t){m->pc[h], m->sp[h], cur, m->slot[h]};
                            n++;
                            if (addr_of(m->slot[h]))
                                cur = h ? m->bp[h - 1] : m->next.bp;
                        }
                        pc = m->next.pc;
                        sp = m->next.sp;
                        bp = cur;
                        c = -1;
                        continue;
                    }
                }
            }
        }
        mtp_rule_ent_t r = rule_of(cache, pc);
        uintptr_t slot = 0;
        s[n] = (mtp_uframe_t){pc, sp, bp, r.base == MTP_CFI_RBP ? MTP_UF_RBP_CFA : 0};
        pcs[n++] = pc;
        int e = step(r, &pc, &sp, &bp, lo, hi, &slot);
        if (e < 0)
            return -ENOENT;
        s[n - 1].slot |= slot;
        if (e) {
            end = (uint32_t)e;
            break;
        }
    }
    if (!end)
        end = n == max ? END_MAX : END_PCMIN;
    memo_store(m, n, end, pc, sp, bp, lo, hi);
    return (int)n;
}
