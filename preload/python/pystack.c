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
#include "python/py.h"
#include "unwind/unwind.h"

/* ---- the calling thread's state, if it holds the GIL ---- */
static inline const char *held_tstate(void)
{
    const char *ts = mtp_pyapi.tstate_get();
    /* 3.8-3.11: the "current" thread state is process-wide; it is ours only
     * when it is this thread's own (gilstate) state. 3.12+: thread-local and
     * NULL when this thread does not hold the GIL. */
    if (ts && mtp_pyapi.gilstate_get && ts != mtp_pyapi.gilstate_get())
        return NULL;
    return ts;
}

/* Python frames of the calling thread, innermost first: one or two words
 * each (py.h), at most max_frames frames. groups[] receives, per run of the evaluation loop
 * (one native _PyEval_EvalFrameDefault call), the word index where its frames
 * end; *ngroups their number. */
static uint32_t py_walk(const char *ts, uintptr_t *w, uint32_t max_frames, uint32_t *groups,
                        uint32_t *ngroups, const char **codes, uintptr_t *ids,
                        uint32_t *nframes)
{
    const mtp_pyabi_t *A = mtp_pyapi.abi;
    const int code_any = A->f_code_any;   /* loop-invariant: kept in a register */
    const char *f;
    uint32_t n = 0, g = 0, frames = 0;

    for (f = mtp_py_ts_frame(A, ts); f && frames < max_frames; f = mtp_py_frame_back(A, f)) {
        const char *code = mtp_py_frame_code(A, f);
        if (A->pos_kind <= MTP_PY_POS_LASTI_UNITS) {
            codes[frames] = code;
            ids[frames] = mtp_py_code_id(A, code);
            n += mtp_pyword_put(w + n, ids[frames], (uintptr_t)mtp_py_frame_lasti(A, f));
            frames++;
            groups[g++] = n;           /* one evaluation-loop call per frame */
            continue;
        }
        int owner = mtp_py_frame_owner(A, f);
        if (owner == A->owner_cstack) {  /* 3.12+: the entry frame of a C call */
            if (g == 0 || groups[g - 1] != n)
                groups[g++] = n;
            continue;
        }
        int entry = mtp_py_frame_is_entry(A, f);
        if (!code || (code_any && !mtp_py_is_code(A, code, mtp_pyapi.code_type)))
            goto next;  /* 3.13: f_executable is not always a code object */
        const char *ip = mtp_py_frame_instr(A, f);
        /* Incomplete frames are still in their prologue: not visible yet. */
        if (owner != A->owner_generator && ip < mtp_py_code_traceable(A, code))
            goto next;
        codes[frames] = code;
        ids[frames] = mtp_py_code_id(A, code);
        n += mtp_pyword_put(w + n, ids[frames],
                            (uintptr_t)(ip - mtp_py_code_start(A, code)));   /* in bytes */
        frames++;
    next:
        if (entry && (g == 0 || groups[g - 1] != n))
            groups[g++] = n;   /* 3.11: the first frame its eval call ran */
    }
    if (n && (g == 0 || groups[g - 1] != n))
        groups[g++] = n;
    *ngroups = g;
    *nframes = frames;
    return n;
}

static inline int in_eval(uintptr_t pc)
{
    return pc - 1 >= mtp_pyapi.eval_lo && pc - 1 < mtp_pyapi.eval_hi;
}

/* --native: native frames, with each run of the evaluation loop replaced by
 * the Python frames it was executing. Frames beyond the depth are cut. */
static uint32_t splice(const uintptr_t *nat, uint32_t nn, const uintptr_t *py,
                       const uint32_t *groups, uint32_t ng, uintptr_t *out)
{
    uint32_t n = 0, frames = 0, g = 0, pos = 0, max = mtp_cfg.depth;
    for (uint32_t i = 0; i < nn && frames < max; i++) {
        if (!in_eval(nat[i])) {
            out[n++] = nat[i];
            frames++;
            continue;
        }
        if (g == ng)
            continue;   /* an evaluation call with no frame left (entering or leaving) */
        for (; pos < groups[g] && frames < max; frames++)
            for (uint32_t k = mtp_frame_words(py + pos, groups[g] - pos); k > 0; k--)
                out[n++] = py[pos++];
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
                                          const uint32_t *groups, uint32_t ng)
{
    uintptr_t pcs[MTP_MAX_DEPTH + 16], out[MTP_STACK_MAX_WORDS];
    const uintptr_t *first;
    uint32_t nn = mtp_unwind(t, pcs, mtp_cfg.depth, &first);
    return mtp_stack_intern(t, out, splice(first, nn, py, groups, ng, out));
}

uint32_t mtp_py_stack(mtp_thread_t *t)
{
    uintptr_t py[2 * MTP_MAX_DEPTH + 8], ids[MTP_MAX_DEPTH + 8];
    const char *codes[MTP_MAX_DEPTH + 8];
    uint32_t groups[MTP_MAX_DEPTH + 8], ng = 0, n = 0, id;
    mtp_pywalk_t walk = {codes, ids, 0};
    const char *ts = held_tstate();

    if (ts)
        n = py_walk(ts, py, mtp_cfg.depth, groups, &ng, codes, ids, &walk.n);
    if (!n)
        return mtp_native_stack(t);   /* no Python frame: where in C it happened */
    mtp_py_cur_walk = &walk;
    id = mtp_cfg.native ? hybrid_stack(t, py, groups, ng) : mtp_stack_intern(t, py, n);
    mtp_py_cur_walk = NULL;
    return id;
}

