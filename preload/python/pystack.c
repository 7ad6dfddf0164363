/*
 * Python stacks: walking the interpreter's frame chain at allocation time,
 * and splicing it into native stacks (--native).
 *
 * Threads: mtp_py_stack runs on any application thread, inside a hook (the
 * per-thread guard is set). It reads the frame chain only when the calling
 * thread holds the GIL (its thread state is the current one), so the chain
 * cannot change underneath. Hot path: the thread-state getter, the walk
 * (each frame's code id read from the code object), the stack table's
 * per-thread cache; it allocates nothing and takes no lock. Cold path, once
 * per code object: its registration (pycode.c), which copies its names and
 * sets its extra slot (CPython allocates that array, untraced).
 * The frames' names come from the code registry (pycode.c).
 */
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <pthread.h>
#include <string.h>

#include "python/py.h"
#include "unwind/unwind.h"

/* ---- the calling thread's state, if it holds the GIL ---- */
static inline const char *held_tstate(void)
{
    const char *rt = mtp_pyapi.runtime;
    if (MTP_LIKELY(rt)) {
        /* 3.8-3.11: what the two calls below return, read in place (their
         * three calls were a tenth of the walk): the current state, and
         * this thread's own from the gilstate key, which is NULL while
         * autoInterpreterState is. */
        const mtp_pyabi_t *A = mtp_pyapi.abi;
        const char *ts = (const char *)__atomic_load_n((const uintptr_t *)(rt + A->rt_tstate),
                                                       __ATOMIC_RELAXED);
        if (!ts || !mtp_rd_ptr(rt, A->rt_auto_interp))
            return NULL;
        return pthread_getspecific(*(const pthread_key_t *)(rt + A->rt_tss_key)) == ts ? ts : NULL;
    }
    const char *ts = mtp_pyapi.tstate_get();
    /* 3.8-3.11: the "current" thread state is process-wide; it is ours only
     * when it is this thread's own (gilstate) state. 3.12+: thread-local and
     * NULL when this thread does not hold the GIL. */
    if (ts && mtp_pyapi.gilstate_get && ts != mtp_pyapi.gilstate_get())
        return NULL;
    return ts;
}

/* ---- what a frame gives a stack: the rules, once ---- */
enum { K_WORDS = 1, K_CSTACK = 2, K_ONCE = 4 };   /* K_ONCE: never reused (the memo) */

/* A frame's position: 3.11+ its instruction pointer (prev_instr, 3.13
 * instr_ptr); before, f_lasti as stored (an int, kept in the pointer's low
 * half). o_pos: A->f_pos. */
static inline const char *frame_pos_at(const char *f, int lasti, int o_pos)
{
    return lasti ? (const char *)(uintptr_t)(uint32_t) * (const int *)(f + o_pos)
                 : mtp_rd_ptr(f, o_pos);
}

static inline const char *frame_pos(const mtp_pyabi_t *A, const char *f, int lasti)
{
    return frame_pos_at(f, lasti, A->f_pos);
}

/* K_WORDS, with the instruction offset in bytes in *off; K_CSTACK (3.12+:
 * the entry frame of a C call, no words); or 0: not shown (3.13: an
 * executable that is not a code object; a frame still in its prologue). */
static inline int frame_kind(const mtp_pyabi_t *A, const char *code, const char *pos, int owner,
                             uintptr_t *off)
{
    if (A->pos_kind <= MTP_PY_POS_LASTI_UNITS) {
        intptr_t l = (int)(uint32_t)(uintptr_t)pos;
        *off = (uintptr_t)(A->pos_kind == MTP_PY_POS_LASTI_UNITS ? l * MTP_PY_CODEUNIT_SIZE : l);
        return code ? K_WORDS : 0;
    }
    if (owner == A->owner_cstack)
        return K_CSTACK;
    if (!code || (A->f_code_any && !mtp_py_is_code(A, code, mtp_pyapi.code_type)))
        return 0;
    if (owner != A->owner_generator && pos < mtp_py_code_traceable(A, code))
        return 0;
    *off = (uintptr_t)(pos - mtp_py_code_start(A, code));
    return K_WORDS;
}

/* Whether a run of the evaluation loop (one native _PyEval_EvalFrameDefault
 * call) ends after this frame, going outward: before 3.11 every frame is
 * one; 3.11 marks a run's first frame (entry); 3.12+ puts a C call's entry
 * frame between runs. */
static inline int ends_run(int lasti, int kind, int entry)
{
    return lasti ? kind == K_WORDS : kind == K_CSTACK || entry;
}

/* Python frames of the calling thread, innermost first: one or two words
 * each (py.h), at most max_frames frames. groups[] receives, per run of the
 * evaluation loop, the word index where its frames end, gframes[] the
 * frames up to there; *ngroups their number. */
static uint32_t py_walk(const char *ts, uintptr_t *w, uint32_t max_frames, uint32_t *groups,
                        uint32_t *gframes, uint32_t *ngroups, const char **codes, uintptr_t *ids,
                        uint32_t *nframes)
{
    const mtp_pyabi_t *A = mtp_pyapi.abi;
    const int lasti = A->pos_kind <= MTP_PY_POS_LASTI_UNITS;
    uint32_t n = 0, g = 0, frames = 0;

    for (const char *f = mtp_py_ts_frame(A, ts); f && frames < max_frames;
         f = mtp_py_frame_back(A, f)) {
        const char *code = mtp_py_frame_code(A, f);
        int owner = lasti ? 0 : mtp_py_frame_owner(A, f);
        uintptr_t off = 0;
        int kind = frame_kind(A, code, frame_pos(A, f, lasti), owner, &off);
        if (kind == K_WORDS) {
            codes[frames] = code;
            ids[frames] = mtp_py_code_id(A, code);
            n += mtp_pyword_put(w + n, ids[frames], off);
            frames++;
        }
        if (ends_run(lasti, kind, !lasti && mtp_py_frame_is_entry(A, f)) &&
            (g == 0 || groups[g - 1] != n)) {
            gframes[g] = frames;
            groups[g++] = n;
        }
    }
    if (n && (g == 0 || groups[g - 1] != n)) {
        gframes[g] = frames;
        groups[g++] = n;
    }
    *ngroups = g;
    *nframes = frames;
    return n;
}

/* ---- the memo: the thread's previous walk, reused where it still holds ----
 *
 * Between two allocations on a thread, usually only the innermost frame or
 * two change: the outer frames are the same frames, at the same positions.
 * The memo keeps the previous walk's frames (outermost first, so a shared
 * outer part keeps its indices), each with everything its words depend on,
 * and the stack's words laid out from the end of a buffer (innermost
 * first), so the words of a shared outer part are already in place.
 *
 * A walk (GIL held, the chain cannot change underneath) first reads the
 * chain to its end: each frame's code object, position and owner, a few
 * loads each. From the outer end it compares them with the memo's (what a
 * frame's words depend on; not its address: the same words from another
 * frame are the same words); a frame is reused only when all three are
 * equal and, for a frame that contributes words, the code object's extra
 * slot still holds the id the memo read (a code object freed and another made at its address has no
 * id, or a new one: issue 16), after checking it is a code object (3.13:
 * f_executable may be anything). The frames inside the first difference
 * are computed as the plain walk does. So every reused word is one the
 * plain walk would write, read from the same live state; the memo itself
 * is never trusted, only compared, and needs no reset (a thread block that
 * changes hands, a fork). MEMTRAIL_PY_MEMO=0 walks in full every time, and
 * tests compare the two (traced_python).
 *
 * With --native the Python words come from it as well, and the runs of the
 * evaluation loop (py_walk's groups) from the live frames the walk read.
 * Not used while the chain is deeper than the memo holds (then a plain
 * walk, and the memo is tried again after DEEP_SKIP walks). A chain with more frames than
 * the depth keeps its innermost ones, as the plain walk does (its hash then
 * starts from the beginning: its outer words are not the memo's). */
#define PYM_RAW (MTP_MAX_DEPTH + 64)        /* frames of a chain the memo holds */
#define PYM_WORDS (2 * MTP_MAX_DEPTH + 8)
#define DEEP_SKIP 64u

/* What a frame's words depend on, besides its code object's id, in 16
 * bytes: the code object with, in its pointer's three low bits (a PyObject
 * is 8-byte aligned: CPython's allocators align to 16, a static object
 * holds pointers), the frame's owner (3.11+: FRAME_OWNED_BY_*, 0 to 3 in
 * 3.11 to 3.13) and, with --native, 3.11's entry flag. */
typedef struct pyfr {
    uintptr_t cw;            /* code | owner & OWNER_BITS | ENTRY_BIT */
    const char *pos;         /* in the memo ONCE_POS: never equal to a live one */
} pyfr_t;
#define OWNER_BITS ((uintptr_t)3)
#define ENTRY_BIT ((uintptr_t)4)
/* No live frame's position: before 3.11 a 32-bit f_lasti, then a pointer
 * into a code object. */
#define ONCE_POS ((const char *)~(uintptr_t)0)
_Static_assert(sizeof(pyfr_t) == 16, "first_change: a frame is one 16-byte compare");

static inline const char *fr_code(uintptr_t cw)
{
    return (const char *)(cw & ~(uintptr_t)7);
}

typedef struct pymemo {
    uint32_t n;              /* frames held, 0 the outermost */
    uint32_t nwords;         /* the stack's words: words[PYM_WORDS - nwords ...] */
    uint64_t gen;            /* top bit set (record.h's mtp_stack_intern_from) */
    uint32_t deep_skip;      /* plain walks left before the memo is tried again */
    uint32_t uncut;          /* the last walk's stack was the whole chain */
    uint64_t deaths;         /* mtp_py_code_deaths when its frames were last checked */
    uint32_t entries;        /* the last walk's: 1 with --native (entry flags read, rb kept) */
    uint32_t nrb;            /* --native: the frames a run of the evaluation loop ends */
    uint16_t rb[PYM_RAW];    /* ...at going outward, ascending (ends_run; memo_hybrid) */
    pyfr_t fr[PYM_RAW];
    uintptr_t slot[PYM_RAW];         /* the code's extra slot, for K_WORDS frames */
    uint8_t kind[PYM_RAW];
    uint16_t incl[PYM_RAW + 1];      /* frames with words among 0..k-1 */
    uint16_t wout[PYM_RAW + 1];      /* their words */
    const char *icode[PYM_RAW];      /* frames with words, outermost first: */
    uintptr_t iid[PYM_RAW];          /* ...their code objects and ids (mtp_pywalk_t) */
    pyfr_t sfr[PYM_RAW];     /* this walk, filled from the end: outermost first */
    uintptr_t words[PYM_WORDS];
} pymemo_t;
_Static_assert(sizeof(pymemo_t) <= MTP_PYMEMO_BYTES, "base/thread.h: MTP_PYMEMO_BYTES");

static inline int fr_differ(const pyfr_t *a, const pyfr_t *b)
{
    return ((a->cw ^ b->cw) | (uintptr_t)(a->pos - b->pos)) != 0;
}

/* A frame of the walk, stored whole: first_change's 16-byte load of it then
 * takes its bytes from this one store (a load across two 8-byte stores
 * still in the store buffer waits for both to reach the cache). */
static inline void fr_store(pyfr_t *r, uintptr_t cw, const char *pos)
{
#ifdef __SSE2__
    _mm_storeu_si128((__m128i *)r, _mm_set_epi64x((long long)(uintptr_t)pos, (long long)cw));
#else
    r->cw = cw;
    r->pos = pos;
#endif
}

#ifdef __SSE2__
/* Which of the four frames at a and b are equal: four bits a frame, frames
 * in order (each 32-bit lane's compare, 0 or all ones, packed to a byte). */
static inline unsigned eq4(const pyfr_t *a, const pyfr_t *b)
{
    const __m128i *x = (const __m128i *)a, *y = (const __m128i *)b;
    __m128i e0 = _mm_cmpeq_epi32(_mm_loadu_si128(x), _mm_loadu_si128(y));
    __m128i e1 = _mm_cmpeq_epi32(_mm_loadu_si128(x + 1), _mm_loadu_si128(y + 1));
    __m128i e2 = _mm_cmpeq_epi32(_mm_loadu_si128(x + 2), _mm_loadu_si128(y + 2));
    __m128i e3 = _mm_cmpeq_epi32(_mm_loadu_si128(x + 3), _mm_loadu_si128(y + 3));
    return (unsigned)_mm_movemask_epi8(
        _mm_packs_epi16(_mm_packs_epi32(e0, e1), _mm_packs_epi32(e2, e3)));
}
#endif

/* The first of a[0..n) (the memo's) that differs from b's (the walk just
 * read). A walk's chain and the memo's mostly differ only in their
 * innermost frames, so the compare runs over nearly all of them: four
 * frames a step (SSE2: every x86-64), each one 16-byte compare, the first
 * frame that differs found from the bits; the last step is the last four
 * frames, over some already compared, so that no frame is left to a loop
 * of one at a time unless there are fewer than four. */
static inline uint32_t first_change(const pyfr_t *a, const pyfr_t *b, uint32_t n)
{
    uint32_t k = 0;
#ifdef __SSE2__
    if (n >= 4) {
        for (;; k += 4) {
            if (k + 4 > n)
                k = n - 4;   /* frames k..n-5 are equal: the first difference is beyond */
            unsigned eq = eq4(a + k, b + k);
            if (eq != 0xffff)
                return k + (uint32_t)__builtin_ctz(~eq) / 4;
            if (k + 4 == n)
                return n;
        }
    }
#endif
    for (; k < n; k++)
        if (fr_differ(&a[k], &b[k]))
            break;
    return k;
}

/* The walk of the calling thread (ts holds the GIL) into the memo: its
 * frames m->n, its words at m->words + PYM_WORDS - m->nwords (innermost
 * first), the words it shares with the walk before from the outer end in
 * *shared (lanes: m->gen before the walk in *before). -1 when the plain walk
 * must do it (a chain deeper than the memo). Inlined into its two callers:
 * `entries` (--native) is a constant in each. */
static MTP_ALWAYS_INLINE int memo_walk(pymemo_t *m, const char *ts, int entries,
                                       uint32_t *shared, uint64_t *before)
{
    const mtp_pyabi_t *A = mtp_pyapi.abi;
    const int o_back = A->f_back, o_code = A->f_code, o_owner = A->f_owner, o_pos = A->f_pos;
    const int o_entry = entries ? A->f_is_entry : MTP_PY_NONE;
    const int lasti = A->pos_kind <= MTP_PY_POS_LASTI_UNITS, code_any = A->f_code_any;
    const ssize_t idx = mtp_py_extra_index;
    /* No code object with an extra slot has died since the memo's frames
     * were checked: each K_WORDS frame's code pointer, when equal, is the
     * same live object, its slot and type unchanged (pycode.c). Relaxed:
     * this thread holds the GIL, which the dying one's thread held. */
    const uint64_t deaths = atomic_load_explicit(&mtp_py_code_deaths, memory_order_relaxed);
    const int recheck = deaths != m->deaths;
    uint32_t n = 0, k = 0;

    if (m->deep_skip) {
        m->deep_skip--;
        return -1;
    }
    /* 1. the chain, innermost first, into sfr from its end */
    pyfr_t *top = m->sfr + PYM_RAW;
    for (const char *f = mtp_py_ts_frame(A, ts); f; f = mtp_rd_ptr(f, o_back)) {
        if (MTP_UNLIKELY(n == PYM_RAW)) {
            m->deep_skip = DEEP_SKIP;
            return -1;
        }
        uintptr_t cw = (uintptr_t)mtp_rd_ptr(f, o_code);
        if (!lasti)
            cw |= *(const uint8_t *)(f + o_owner) & OWNER_BITS;
        if (o_entry != MTP_PY_NONE && *(const uint8_t *)(f + o_entry))
            cw |= ENTRY_BIT;
        fr_store(top - 1 - n, cw, frame_pos_at(f, lasti, o_pos));
        n++;
    }
    const pyfr_t *s = top - n;   /* the chain, outermost first: s[k] is the memo's fr[k] */
    /* 2. the outer frames the memo still holds (after a code object's
     * death, each frame with words checked further, below) */
    uint32_t lim = n < m->n ? n : m->n;
    if (MTP_UNLIKELY((uint32_t)entries != m->entries))
        lim = 0;   /* the mode changed (attached again): frames read otherwise */
    if (MTP_LIKELY(!recheck))
        k = first_change(m->fr, s, lim);
    for (; recheck && k < lim; k++) {
        if (fr_differ(&m->fr[k], &s[k]))
            break;
        const char *code = fr_code(s[k].cw);
        if ((m->kind[k] & K_WORDS) &&
            ((code_any && !mtp_py_is_code(A, code, mtp_pyapi.code_type)) ||
             mtp_py_code_extra(A, code, idx) != m->slot[k]))
            break;
    }
    /* 3. the frames inside them, as py_walk does */
    uint32_t pos = PYM_WORDS - m->wout[k], shared_words = m->wout[k];
    while (entries && m->nrb && m->rb[m->nrb - 1] >= k)
        m->nrb--;
    for (uint32_t j = k; j < n; j++) {
        const char *code = fr_code(s[j].cw), *ip = s[j].pos;
        uintptr_t off = 0;
        int kind = frame_kind(A, code, ip, (int)(s[j].cw & OWNER_BITS), &off);
        m->fr[j] = s[j];
        if (!kind)
            kind = K_ONCE;   /* not shown: never reused either */
        m->incl[j + 1] = m->incl[j];
        m->wout[j + 1] = m->wout[j];
        if (kind == K_WORDS) {
            uintptr_t id = mtp_py_code_id(A, code), w[2];
            uint32_t nw = mtp_pyword_put(w, id, off);
            pos -= nw;
            m->words[pos] = w[0];
            if (nw == 2)
                m->words[pos + 1] = w[1];
            m->icode[m->incl[j]] = code;
            m->iid[m->incl[j]] = id;
            m->incl[j + 1]++;
            m->wout[j + 1] += (uint16_t)nw;
            m->slot[j] = id ? mtp_py_code_extra(A, code, idx) : 0;
            if (!id || m->slot[j] != mtp_py_id_slot(id))
                kind |= K_ONCE;   /* no id, or the registry's not seen: never reused */
        }
        m->kind[j] = (uint8_t)kind;
        if (kind & K_ONCE)
            m->fr[j].pos = ONCE_POS;
        if (entries && ends_run(lasti, kind & (K_WORDS | K_CSTACK), (s[j].cw & ENTRY_BIT) != 0))
            m->rb[m->nrb++] = (uint16_t)j;
    }
    m->n = n;
    m->entries = (uint32_t)entries;
    m->nwords = PYM_WORDS - pos;
    m->deaths = deaths;
    *before = m->gen;
    m->gen = (*before + 1) | (uint64_t)1 << 63;
    *shared = shared_words;
    return 0;
}

/* The Python stack of the calling thread through the memo; 0 with *plain
 * set when the plain walk must do it. */
static uint32_t memo_stack(mtp_thread_t *t, const char *ts, int *plain)
{
    pymemo_t *m = (pymemo_t *)t->pymemo;
    uint32_t shared_words, max = mtp_cfg.depth, words_before = m->nwords;
    uint64_t before;

    if ((*plain = memo_walk(m, ts, 0, &shared_words, &before) < 0))
        return 0;
    uint32_t frames = m->incl[m->n], words = m->nwords;
    uintptr_t pos = PYM_WORDS - words;
    if (frames == 0)
        return mtp_native_stack(t);   /* no Python frame: where in C it happened */
    mtp_pywalk_t walk = {m->icode, m->iid, frames};
    uint32_t id;
    mtp_py_cur_walk = &walk;
    if (MTP_LIKELY(frames <= max)) {
        /* every word the previous walk's, a stack of as many words */
        int same = m->uncut && shared_words == words && words_before == words;
        id = mtp_stack_intern_from(t, m->words + pos, words, m->uncut ? shared_words : 0, same,
                                   before, m->gen);
        m->uncut = 1;
    } else {
        /* The innermost max frames: those outside frame c are cut. */
        uint32_t c = 0;
        while (m->incl[c] < frames - max)
            c++;
        id = mtp_stack_intern(t, m->words + pos, words - m->wout[c]);
        m->uncut = 0;
    }
    mtp_py_cur_walk = NULL;
    return id;
}

/* --native: native frames, with each run of the evaluation loop replaced by
 * the Python frames it was executing (groups[g]: the word where run g's
 * frames end, gframes[g] how many frames that is). Frames beyond the depth
 * are cut. */
static uint32_t splice(const uintptr_t *nat, uint32_t nn, const uintptr_t *py,
                       const uint32_t *groups, const uint32_t *gframes, uint32_t ng,
                       uintptr_t *out)
{
    uint32_t n = 0, frames = 0, g = 0, pos = 0, max = mtp_cfg.depth;
    /* in the evaluation loop: eval_lo <= pc - 1 < eval_hi */
    const uintptr_t lo1 = mtp_pyapi.eval_lo + 1, span = mtp_pyapi.eval_hi - mtp_pyapi.eval_lo;
    const uintptr_t *p = nat, *nat_end = nat + nn;
    while (p < nat_end && frames < max) {
        /* the native frames up to the next evaluation-loop call, as many
         * as the depth leaves room for */
        const uintptr_t *stop =
            (size_t)(nat_end - p) < max - frames ? nat_end : p + (max - frames);
        const uintptr_t *p0 = p;
        uintptr_t *o = out + n;
        while (p < stop && *p - lo1 >= span)
            *o++ = *p++;
        n += (uint32_t)(p - p0);
        frames += (uint32_t)(p - p0);
        if (p == stop)
            break;   /* the stack's end, or the depth's */
        p++;
        if (g == ng)
            continue;   /* an evaluation call with no frame left (entering or leaving) */
        uint32_t run = gframes[g] - (g ? gframes[g - 1] : 0);
        if (frames + run <= max) {   /* the whole run: its words as they are */
            memcpy(out + n, py + pos, (groups[g] - pos) * sizeof(*py));
            n += groups[g] - pos;
            frames += run;
        } else {
            for (; pos < groups[g] && frames < max; frames++)
                for (uint32_t k = mtp_frame_words(py + pos, groups[g] - pos); k > 0; k--)
                    out[n++] = py[pos++];
        }
        pos = groups[g++];
    }
    /* Python frames whose evaluation loop was not recognized (for example a
     * .cold part split off by the compiler) go outermost. */
    uint32_t end = g < ng ? groups[ng - 1] : pos;
    for (; pos < end && frames < max; frames++)
        for (uint32_t k = mtp_frame_words(py + pos, end - pos); k > 0; k--)
            out[n++] = py[pos++];
    return n;
}

/* --native: its buffers live only in this frame, not in every Python hook's. */
static MTP_NOINLINE uint32_t hybrid_stack(mtp_thread_t *t, const uintptr_t *py,
                                          const uint32_t *groups, const uint32_t *gframes,
                                          uint32_t ng)
{
    uintptr_t pcs[MTP_MAX_DEPTH + 16], out[MTP_STACK_MAX_WORDS];
    const uintptr_t *first;
    uint32_t nn = mtp_unwind(t, pcs, mtp_cfg.depth, &first);
    return mtp_stack_intern(t, out, splice(first, nn, py, groups, gframes, ng, out));
}

/* The plain walk: every frame read and computed. */
static MTP_NOINLINE uint32_t plain_stack(mtp_thread_t *t, const char *ts)
{
    uintptr_t py[2 * MTP_MAX_DEPTH + 8], ids[MTP_MAX_DEPTH + 8];
    const char *codes[MTP_MAX_DEPTH + 8];
    uint32_t groups[MTP_MAX_DEPTH + 8], gframes[MTP_MAX_DEPTH + 8], ng = 0, n = 0, id;
    mtp_pywalk_t walk = {codes, ids, 0};

    if (ts)
        n = py_walk(ts, py, mtp_cfg.depth, groups, gframes, &ng, codes, ids, &walk.n);
    if (!n)
        return mtp_native_stack(t);   /* no Python frame: where in C it happened */
    /* mtp_pywalk_t lists them outermost first */
    for (uint32_t i = 0, j = walk.n - 1; i < j; i++, j--) {
        const char *c = codes[i];
        uintptr_t d = ids[i];
        codes[i] = codes[j];
        ids[i] = ids[j];
        codes[j] = c;
        ids[j] = d;
    }
    mtp_py_cur_walk = &walk;
    id = mtp_cfg.native ? hybrid_stack(t, py, groups, gframes, ng) : mtp_stack_intern(t, py, n);
    mtp_py_cur_walk = NULL;
    return id;
}

/* --native through the memo: the Python words from it, the runs of the
 * evaluation loop (py_walk's groups) from the live frames it read; 0 with
 * *plain set when the plain walk must do it. */
static MTP_NOINLINE uint32_t memo_hybrid(mtp_thread_t *t, const char *ts, int *plain)
{
    pymemo_t *m = (pymemo_t *)t->pymemo;
    uint32_t groups[MTP_MAX_DEPTH + 8], gframes[MTP_MAX_DEPTH + 8];
    uint32_t g = 0, max = mtp_cfg.depth;
    uint32_t shared_words;
    uint64_t before;

    if ((*plain = memo_walk(m, ts, 1, &shared_words, &before) < 0))
        return 0;
    m->uncut = 0;   /* its lanes are not kept: the stack is the spliced one */
    const uint32_t n = m->n, all_words = m->wout[n], all_frames = m->incl[n];
    if (!all_words)
        return mtp_native_stack(t);   /* no Python frame: where in C it happened */
    /* Going outward, a frame counts while fewer than max frames with words
     * lie inside it: frames jmin..n-1. The words and frames inside frame j
     * and up to it are those of the whole chain less those outside it (wout,
     * incl); the runs end at the frames rb lists, each a group unless it
     * adds no words to the one before. */
    uint32_t jmin = 0;
    while (all_frames - m->incl[jmin + 1] >= max)
        jmin++;
    for (uint32_t r = m->nrb; r > 0 && m->rb[r - 1] >= jmin; r--) {
        uint32_t j = m->rb[r - 1], nw = all_words - m->wout[j];
        if (g == 0 || groups[g - 1] != nw) {
            gframes[g] = all_frames - m->incl[j];
            groups[g++] = nw;
        }
    }
    /* frames with words lie inside jmin (all_words > 0; with jmin > 0, max
     * or more inside it), so the last group is never empty */
    uint32_t nw = all_words - m->wout[jmin];
    if (g == 0 || groups[g - 1] != nw) {
        gframes[g] = all_frames - m->incl[jmin];
        groups[g++] = nw;
    }
    mtp_pywalk_t walk = {m->icode, m->iid, m->incl[m->n]};
    mtp_py_cur_walk = &walk;
    uint32_t id = hybrid_stack(t, m->words + PYM_WORDS - m->nwords, groups, gframes, g);
    mtp_py_cur_walk = NULL;
    return id;
}

uint32_t mtp_py_stack(mtp_thread_t *t)
{
    const char *ts = held_tstate();
    if (MTP_LIKELY(ts && mtp_cfg.py_memo)) {
        int plain;
        uint32_t id = mtp_cfg.native ? memo_hybrid(t, ts, &plain) : memo_stack(t, ts, &plain);
        if (MTP_LIKELY(!plain))
            return id;
    }
    return plain_stack(t, ts);
}

