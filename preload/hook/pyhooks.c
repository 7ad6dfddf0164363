/*
 * CPython support: the RAW, MEM and OBJ allocator domains, the moments of an
 * interpreter's life memtrail needs, PyTraceMalloc_Track, and the `memtrail`
 * module.
 *
 * Binding: nothing links libpython. The constructor (or, for a program that
 * dlopens libpython, the dlopen wrapper) binds the C API table (python/capi.h,
 * looked up with dlsym). If it is there and the interpreter is not
 * initialized yet, each domain is wrapped with PyMem_SetAllocator; the
 * wrapper calls the allocator that was in place, so tracemalloc, debug hooks
 * or a custom allocator underneath keep working.
 *
 * Once per call: a domain wrapper sets the per-thread guard around the
 * allocator it wraps, so what that allocator does underneath (pymalloc asks
 * RAW for large blocks, RAW calls malloc) passes through untraced: every
 * block is recorded once, with the domain it was requested from. A nested
 * wrapper (ours wrapped again on top of tracemalloc) passes through the same way.
 *
 * Moments: PYTHONMALLOC and -X dev replace the allocators during
 * pre-initialization, after our constructor. An audit hook, registered before
 * initialization, runs at every audit event with the GIL held; until the
 * interpreter is initialized, and at every event after that, it puts our
 * wrappers back on top if they are no longer there. At the first event after
 * initialization (before the main script runs) it registers an atexit
 * callback, which takes the `exit` snapshot when finalization begins (after
 * non-daemon threads are joined, before modules are cleared), adds the
 * built-in module (MTPROTO_PY_MODULE, include/memtrail_protocol.h: snapshot,
 * is_tracing, output_dir, and window_begin/window_end, the measurement
 * windows of writer/window.c) to sys.modules and wraps
 * sys._debugmallocstats. The `memtrail` package
 * (python/memtrail/) delegates to that module; when no such package is on
 * the interpreter's path, the module itself answers `import memtrail`: it is
 * also a finder and loader, appended last to sys.meta_path, that only ever
 * finds that one name. CPython frees its audit-hook entries with
 * the RAW allocator of that time; our entry, allocated before a debug
 * allocator was set up, is unlinked from the list at exit so that it is
 * never freed by the wrong allocator.
 *
 * After `memtrail attach` (hook/pyattach.c) the interpreter is running: the
 * MEM and OBJ domains are wrapped with the GIL held, the RAW domain is not
 * (mtp_py_late_bind below), and no audit hook, atexit callback or module is
 * added.
 *
 * State: everything here is written with the GIL held or before
 * initialization (single-threaded), except the wrappers' per-call work.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "core/core.h"
#include "memtrail_protocol.h"
#include "hook/gotpatch.h"
#include "hook/hook.h"
#include "python/py.h"
#include "python/pygraph.h"
#include "writer/window.h"

typedef struct pydom {
    mtp_pyalloc_t prev;   /* the allocator we wrapped */
    unsigned domain;      /* MTSNAP_DOMAIN_PY_* */
} pydom_t;

#define MAX_WRAPS 48
static pydom_t doms[MAX_WRAPS];      /* GIL or pre-init: never reused */
static int ndoms;
static int post_init_state;          /* GIL: 0 no, 1 in progress, 2 done */
static void *audit_entry;            /* our audit-hook entry, allocated by... */
static mtp_pyalloc_t audit_alloc;    /* ...this RAW allocator (set pre-init) */
static int wrap_warned;
/* The wrapper recording on this thread, NULL outside them: whether it is
 * the top of its domain tells the code registry whether it may call the
 * allocators (may_allocate). */
static MTP_TLS const pydom_t *recording;

/* ---- the domain wrappers (hot) ---- */
static void rewrap_if_under(const pydom_t *d);
static int setalloc_caught;   /* pre-init, then read-only: libpython's calls to
                               * PyMem_SetAllocator come through our GOT slot */

/* Records block p of d's domain, `recording` set meanwhile. */
static inline void record(const pydom_t *d, mtp_thread_t *t, void *p, size_t size)
{
    if (MTP_UNLIKELY(!setalloc_caught) && d->domain != MTSNAP_DOMAIN_PY_RAW)
        rewrap_if_under(d);
    recording = d;
    MTP_RECORD_FROM_HOOK(t, mtp_record_alloc(t, p, size, d->domain));   /* --native's walk */
    recording = NULL;
    mtp_py_fresh = (uintptr_t)p;   /* the object made in it is no reuse (pyreuse.c) */
}

/* memtrail's own Python work (mtp_py_owning, guard set): the block is not
 * traced but registered (python/pyown.c); what the allocator asks for
 * underneath is its own, as always. */
static MTP_NOINLINE void *own_malloc(const pydom_t *d, size_t n, size_t size, int zero)
{
    mtp_py_owning = 0;
    void *p = zero ? d->prev.calloc(d->prev.ctx, n, size) : d->prev.malloc(d->prev.ctx, size);
    mtp_py_owning = 1;
    if (p)
        mtp_py_own_add(p, zero ? n * size : size, d->domain);
    return p;
}

/* As hooks.c's entry points, the sampler decides from the size first
 * (record/sample.h); an allocation it skips costs the guard around the call
 * underneath (whatever that allocator does is its own: it must not decide
 * again) and nothing else. A nested call (the guard set) passes through,
 * undecided. The picked path, out of line, does what the wrappers always
 * did. */
static MTP_NOINLINE void *w_malloc_picked(const pydom_t *d, size_t size)
{
    mtp_thread_t *t = mtp_enter();
    if (MTP_UNLIKELY(!t))
        return d->prev.malloc(d->prev.ctx, size);
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = d->prev.malloc(d->prev.ctx, size);
    if (MTP_LIKELY(p)) {
        mtp_clear_head(p, size);
        record(d, t, p, size);
    }
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

static void *w_malloc(void *ctx, size_t size)
{
    const pydom_t *d = ctx;
    if (MTP_UNLIKELY(mtp_tls_guard != MTP_GUARD_NONE))
        return MTP_UNLIKELY(mtp_py_owning) ? own_malloc(d, 1, size, 0)
                                           : d->prev.malloc(d->prev.ctx, size);
    if (MTP_UNLIKELY(mtp_sampled(size)))
        return w_malloc_picked(d, size);
    mtp_tls_guard = MTP_GUARD_HOOK;   /* what it allocates underneath is its own */
    void *p = d->prev.malloc(d->prev.ctx, size);
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

static MTP_NOINLINE void *w_calloc_picked(const pydom_t *d, size_t n, size_t size)
{
    mtp_thread_t *t = mtp_enter();
    if (MTP_UNLIKELY(!t))
        return d->prev.calloc(d->prev.ctx, n, size);
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = d->prev.calloc(d->prev.ctx, n, size);
    if (MTP_LIKELY(p))
        record(d, t, p, n * size);
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

static void *w_calloc(void *ctx, size_t n, size_t size)
{
    const pydom_t *d = ctx;
    if (MTP_UNLIKELY(mtp_tls_guard != MTP_GUARD_NONE))
        return MTP_UNLIKELY(mtp_py_owning) ? own_malloc(d, n, size, 1)
                                           : d->prev.calloc(d->prev.ctx, n, size);
    if (MTP_UNLIKELY(mtp_sampled(n * size)))
        return w_calloc_picked(d, n, size);
    mtp_tls_guard = MTP_GUARD_HOOK;
    void *p = d->prev.calloc(d->prev.ctx, n, size);
    mtp_tls_guard = MTP_GUARD_NONE;
    return p;
}

/* Python's realloc never frees: realloc(p, 0) returns a minimal block.
 * When sampling, the rule of hooks.c's realloc: the old half is recorded
 * when the old block was sampled, the new block when the sampler picks it. */
static void *w_realloc(void *ctx, void *old, size_t size)
{
    const pydom_t *d = ctx;
    mtp_thread_t *t = mtp_enter_free();
    if (MTP_UNLIKELY(!t))
        return d->prev.realloc(d->prev.ctx, old, size);
    int guard = mtp_tls_guard;
    int saved = errno;
    int held = old && mtp_free_recorded(old);
    /* memtrail's own block: registered again below when it stays ours */
    int owning = mtp_py_owning;
    size_t own_size = 0;
    int was_own = old && mtp_py_own_maybe(old) && mtp_py_own_forget(old, &own_size, NULL);
    mtp_py_owning = 0;
    /* SILENT: holds number n until the push (exact mode: always) */
    mtp_tls_guard = held || !mtp_cfg.sample ? MTP_GUARD_SILENT : MTP_GUARD_HOOK;
    uint64_t n = held ? mtp_record_realloc_begin() : 0;
    void *p = d->prev.realloc(d->prev.ctx, old, size);
    mtp_py_owning = owning;
    if (held)
        mtp_record_realloc_end(t, n, (uintptr_t)old, p != NULL, d->domain);
    if (p && guard == MTP_GUARD_NONE && mtp_sampled(size))
        record(d, t, p, size);
    else if (p && guard != MTP_GUARD_NONE && owning)
        mtp_py_own_add(p, size, d->domain);
    if (!p && was_own)
        mtp_py_own_add(old, own_size, d->domain);   /* failed: old is as it was */
    errno = saved;
    mtp_tls_guard = guard;
    return p;
}

/* Every free but a sampling process's unsampled one, out of line. */
static MTP_NOINLINE void w_free_slow(const pydom_t *d, void *p)
{
    mtp_thread_t *t;
    /* Not a free of NULL: audit_entry is NULL where memtrail added no audit
     * hook (attached late: audit_alloc then holds no function) or once the
     * entry is freed, and free(NULL) is common (CPython's own type setup). */
    if (MTP_UNLIKELY(p == audit_entry) && p) {
        audit_alloc.free(audit_alloc.ctx, p);   /* not the allocator of today */
        audit_entry = NULL;
        return;
    }
    if (p && MTP_UNLIKELY(mtp_py_own_maybe(p)))
        mtp_py_own_forget(p, NULL, NULL);
    if (MTP_UNLIKELY(!p || !(t = mtp_enter_free()))) {
        d->prev.free(d->prev.ctx, p);
        return;
    }
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_HOOK;
    int saved = errno;
    if (mtp_free_recorded(p))
        mtp_record_free(t, p, d->domain);
    d->prev.free(d->prev.ctx, p);   /* what it frees underneath is recorded too */
    errno = saved;
    mtp_tls_guard = guard;
}

static void w_free(void *ctx, void *p)
{
    const pydom_t *d = ctx;
    /* Not sampled: nothing to record, and a tail call (what it frees
     * underneath is recorded as it would be under the guard: the guard
     * only keeps nested allocations, which a free does not make, from
     * being decided on). */
    if (MTP_LIKELY(mtp_cfg.sample) && !mtp_sampset_maybe((uintptr_t)p) &&
        MTP_LIKELY(p != audit_entry) && !mtp_py_own_maybe(p)) {
        d->prev.free(d->prev.ctx, p);
        return;
    }
    w_free_slow(d, p);
}

/* ---- PyTraceMalloc_Track / Untrack (reached through patched GOT slots) ----
 * When sampling, only a sampled block is re-labelled or untracked: the
 * block numpy tracks was malloc'd, and the sampler decided then (a Track of
 * a block that is not in the sampled set is not recorded: one that came
 * from no allocator memtrail sees is missed, where exact mode adds it). An
 * untracked block stays in the set, so that its free is recorded (the
 * writer ignores a free of a block it no longer holds). */
static int w_track(unsigned int domain, uintptr_t ptr, size_t size)
{
    mtp_thread_t *t = mtp_enter();
    if (t && domain <= MTP_DOMAIN_MAX - MTSNAP_DOMAIN_EXT_BASE && mtp_block_recorded((void *)ptr)) {
        mtp_tls_guard = MTP_GUARD_HOOK;
        mtp_record_track(t, (void *)ptr, size, MTSNAP_DOMAIN_EXT_BASE + domain);
        mtp_tls_guard = MTP_GUARD_NONE;
    }
    return mtp_pyapi.track ? mtp_pyapi.track(domain, ptr, size) : -2;
}

static int w_untrack(unsigned int domain, uintptr_t ptr)
{
    mtp_thread_t *t = mtp_enter();
    if (t && domain <= MTP_DOMAIN_MAX - MTSNAP_DOMAIN_EXT_BASE && mtp_block_recorded((void *)ptr)) {
        mtp_tls_guard = MTP_GUARD_HOOK;
        mtp_record_untrack(t, (void *)ptr, MTSNAP_DOMAIN_EXT_BASE + domain);
        mtp_tls_guard = MTP_GUARD_NONE;
    }
    return mtp_pyapi.untrack ? mtp_pyapi.untrack(domain, ptr) : -2;
}

static void ensure_wrapped(int first);
static int is_ours(const mtp_pyalloc_t *a);

/* ---- PyMem_SetAllocator (reached through patched GOT slots) ----
 * tracemalloc.start() puts its hooks on top of ours, domain by domain, and
 * keeps ours (the allocators it found) for its own bookkeeping: the trace
 * of each block and its traceback (RAW), its hash tables' entries. Until
 * ours were put back on top (at the next audit event), every allocation of
 * the program came to our wrapper from tracemalloc's and the bookkeeping
 * tracemalloc did after it came to ours unguarded: recorded at the
 * program's line, about as many blocks again as the line's own. Now ours
 * go back on top as soon as an allocator is set after initialization:
 * tracemalloc's work then runs inside our top wrapper, whose guard passes
 * it through untraced, as anything an allocator under ours does (it is
 * tracemalloc's memory, not the program's line's). Before initialization
 * (PYTHONMALLOC, -X dev: the debug hooks set over the allocators just set)
 * the audit hook re-wraps, as before. Where libpython's own calls are
 * bound at link time (Debian's static python3.11), nothing is patched:
 * rewrap_if_under below, and the audit hook at the next event, re-wrap.
 * GIL held (tracemalloc.start, tracemalloc.stop; a custom allocator set by
 * an extension). */
static void w_set_alloc(int domain, mtp_pyalloc_t *a)
{
    mtp_pyapi.set_alloc(domain, a);
    if (post_init_state == 2 && atomic_load_explicit(&mtp_tracing, memory_order_relaxed))
        ensure_wrapped(MTP_PY_DOMAIN_RAW);   /* a preloaded process (an attached one: no post_init) */
}

/* Where those calls are bound at link time, the first allocation our
 * wrapper records from under another allocator (MEM or OBJ: GIL held)
 * puts ours back on top: the bookkeeping that allocator does for that one
 * allocation, after our wrapper returns, is still recorded at its line. */
static MTP_NOINLINE void rewrap_if_under(const pydom_t *d)
{
    mtp_pyalloc_t top;
    if (post_init_state != 2)
        return;
    mtp_pyapi.get_alloc((int)(d->domain - MTSNAP_DOMAIN_PY_RAW), &top);
    if (!is_ours(&top))
        ensure_wrapped(MTP_PY_DOMAIN_RAW);   /* post_init ran: a preloaded process */
}

#define TRACK_TARGETS 3
static size_t track_targets(const char **names, void **to)
{
    size_t n = 0;
    if (mtp_pyapi.track) {
        names[n] = "PyTraceMalloc_Track";
        to[n++] = (void *)w_track;
    }
    if (mtp_pyapi.untrack) {
        names[n] = "PyTraceMalloc_Untrack";
        to[n++] = (void *)w_untrack;
    }
    names[n] = "PyMem_SetAllocator";
    to[n++] = (void *)w_set_alloc;
    return n;
}

static void patch_track(void)
{
    const char *names[TRACK_TARGETS];
    void *to[TRACK_TARGETS];
    mtp_got_patch_set(names, to, track_targets(names, to));
}

/* patch_track and mtp_py_reuse_patch in one walk of the loaded objects
 * they were not put in yet (a walk reads every relocation of every object:
 * after each dlopen of an extension module, five walks of them all were 7%
 * of a traced pyenv `python3.11 -c pass`'s instructions). */
static MTP_LARGE mtp_got_seen_t patched;   /* the objects patch_all has set (gotpatch.h) */

static void patch_all(void)
{
    const char *names[TRACK_TARGETS + MTP_PY_REUSE_TARGETS];
    void *to[TRACK_TARGETS + MTP_PY_REUSE_TARGETS];
    mtp_got_patch_new(names, to, mtp_py_reuse_targets(names, to, track_targets(names, to)),
                      &patched);
}

/* Whether libpython (found through h) calls PyMem_SetAllocator through its
 * PLT: then w_set_alloc sees tracemalloc.start(). */
static void check_setalloc(void)
{
    setalloc_caught = mtp_got_count("PyMem_SetAllocator", (const void *)mtp_pyapi.set_alloc) > 0;
}

static void unpatch_track(void)
{
    if (mtp_pyapi.track)
        mtp_got_patch("PyTraceMalloc_Track", (void *)mtp_pyapi.track);
    if (mtp_pyapi.untrack)
        mtp_got_patch("PyTraceMalloc_Untrack", (void *)mtp_pyapi.untrack);
}

/* ---- installing the wrappers ---- */
static int is_ours(const mtp_pyalloc_t *a)
{
    return a->malloc == w_malloc && (pydom_t *)a->ctx >= doms &&
           (pydom_t *)a->ctx < doms + MAX_WRAPS;
}

/* The code registry's question (python/py.h, mtp_py_may_allocate), GIL
 * held: may this thread call the allocators from inside the recording it is
 * doing? Only from the top wrapper of the MEM or OBJ domain, called by the
 * program itself, after the allocation underneath returned. From malloc or
 * RAW, the caller may be an allocator in the middle of its own work
 * (pymalloc grows its arena table with RAW realloc; tracemalloc holds its
 * tables' lock while it allocates a traceback with malloc or RAW), and so
 * may anything below another allocator layer. And from the reuse wrapper
 * (pyreuse.c), which the interpreter calls on an object it makes, outside
 * any allocator, when our wrapper is the MEM domain's top (where the code
 * object's extra slot is allocated): with tracemalloc's on top it would
 * trace memtrail's block. */
static int may_allocate(void)
{
    if (mtp_py_in_newref) {
        mtp_pyalloc_t top;
        mtp_pyapi.get_alloc(MTP_PY_DOMAIN_MEM, &top);
        return is_ours(&top);
    }
    const pydom_t *d = recording;
    if (!d || d->domain == MTSNAP_DOMAIN_PY_RAW)
        return 0;
    mtp_pyalloc_t top;
    mtp_pyapi.get_alloc((int)(d->domain - MTSNAP_DOMAIN_PY_RAW), &top);
    return top.ctx == d && is_ours(&top);
}

/* Puts a wrapper on top of each domain from `first` on whose top allocator
 * is not ours. */
static void ensure_wrapped(int first)
{
    for (int dom = first; dom < MTP_PY_NDOMAINS; dom++) {
        mtp_pyalloc_t cur;
        mtp_pyapi.get_alloc(dom, &cur);
        if (is_ours(&cur))
            continue;
        pydom_t *d = NULL;
        for (int i = 0; i < ndoms && !d; i++)   /* the same chain seen before */
            if (doms[i].domain == MTSNAP_DOMAIN_PY_RAW + (unsigned)dom &&
                !memcmp(&doms[i].prev, &cur, sizeof(cur)))
                d = &doms[i];
        if (d) {
            mtp_pyalloc_t w = {d, w_malloc, w_calloc, w_realloc, w_free};
            mtp_pyapi.set_alloc(dom, &w);
            continue;
        }
        if (ndoms == MAX_WRAPS) {
            if (!wrap_warned++)
                mtp_warn("python: allocators replaced too often; no longer following");
            return;
        }
        d = &doms[ndoms++];
        d->prev = cur;
        d->domain = MTSNAP_DOMAIN_PY_RAW + (unsigned)dom;
        mtp_pyalloc_t w = {d, w_malloc, w_calloc, w_realloc, w_free};
        mtp_pyapi.set_alloc(dom, &w);
    }
}

/* ---- the exit moment and the `memtrail` module ---- */
static void *exit_cb(void *self, void *unused)
{
    (void)self;
    (void)unused;
    mtp_python_exit_snapshot();
    mtp_pyapi.incref(mtp_pyapi.none);
    return mtp_pyapi.none;
}

static void *snapshot_cb(void *self, void *args)
{
    const char *label = NULL;
    char path[PATH_MAX + 64];
    (void)self;
    if (!mtp_pyapi.parse_tuple(args, "|z:snapshot", &label))
        return NULL;
    /* MEMTRAIL_LEAK_CHECK=all: the object graph too, and the GIL is kept
     * until the writer has scanned it; otherwise other threads run. */
    mtp_pygraph_t *graph = mtp_cfg.leak_check == MTP_LEAK_ALL ? mtp_pygraph_capture() : NULL;
    int r;
    if (graph) {
        r = mtp_api_snapshot(label, path, sizeof(path), graph);
        mtp_pygraph_free(graph);
    } else {
        void *ts = mtp_pyapi.save_thread();
        r = mtp_api_snapshot(label, path, sizeof(path), NULL);
        mtp_pyapi.restore_thread(ts);
    }
    if (r < 0) {
        errno = -r;
        return mtp_pyapi.err_from_errno(*mtp_pyapi.exc_oserror);
    }
    return mtp_pyapi.str_from(path);
}

/* ---- measurement windows (writer/window.c) ---- */
static void *window_begin_cb(void *self, void *unused)
{
    (void)self;
    (void)unused;
    mtp_thread_t *t = mtp_enter();
    int r = t ? mtp_api_window_begin(t) : -ECANCELED;
    if (r < 0) {
        errno = -r;
        return mtp_pyapi.err_from_errno(*mtp_pyapi.exc_oserror);
    }
    return mtp_pyapi.build_value("i", r);
}

/* A stack's Python frames, innermost first: a list of (file, line, function). */
static void *py_frames(uint32_t stack)
{
    static MTP_LARGE uintptr_t words[MTP_STACK_MAX_WORDS];   /* GIL held */
    uint32_t n = mtp_stack_copy(stack, words, MTP_STACK_MAX_WORDS);
    void *list = mtp_pyapi.list_new(0);
    for (uint32_t i = 0; list && i < n;) {
        uintptr_t code, offset;
        mtp_pyloc_t loc;
        if (!mtp_is_pyword(words[i])) {
            i++;
            continue;
        }
        i += mtp_pyword_get(&words[i], n - i, &code, &offset);
        if (mtp_py_lookup(code, offset, &loc) < 0)
            continue;
        char file[PATH_MAX], fn[256];
        snprintf(file, sizeof(file), "%.*s", (int)loc.file_len, loc.file);
        snprintf(fn, sizeof(fn), "%.*s", (int)loc.function_len, loc.function);
        void *f = mtp_pyapi.build_value("(sis)", file, (int)loc.line, fn);
        int bad = !f || mtp_pyapi.list_append(list, f) < 0;
        if (f)
            mtp_pyapi.decref(f);
        if (bad) {
            mtp_pyapi.decref(list);
            list = NULL;
        }
    }
    return list;
}

/* window_end(slot) -> (peak_bytes, peak_blocks, live_bytes, live_blocks,
 * alloc_bytes, alloc_blocks, sites); a site is (frames, live_bytes,
 * live_blocks, peak_bytes, peak_blocks, alloc_bytes, alloc_blocks). */
static void *window_end_cb(void *self, void *args)
{
    int slot;
    mtp_window_result_t res;
    (void)self;
    if (!mtp_pyapi.parse_tuple(args, "i:window_end", &slot))
        return NULL;
    mtp_thread_t *t = mtp_enter();
    int r = t ? mtp_api_window_end(t, slot) : -ECANCELED;   /* the end: now, GIL held */
    if (r == 0) {
        void *ts = mtp_pyapi.save_thread();   /* other threads run while the writer catches up */
        r = mtp_api_window_wait(slot, &res);
        mtp_pyapi.restore_thread(ts);
    }
    if (r < 0) {
        errno = -r;
        return mtp_pyapi.err_from_errno(*mtp_pyapi.exc_oserror);
    }
    void *sites = mtp_pyapi.list_new(0), *out = NULL;
    for (uint32_t i = 0; sites && i < res.nsites; i++) {
        const mtp_window_site_t *s = &res.sites[i];
        if (!s->alloc_blocks && !s->live_blocks && !s->peak_blocks)
            continue;   /* a stack that only lost a block moved by a free-list reuse */
        void *frames = py_frames(s->stack), *e = NULL;
        if (frames)
            e = mtp_pyapi.build_value("(NKKKKKK)", frames,
                (unsigned long long)s->live_bytes, (unsigned long long)s->live_blocks,
                (unsigned long long)s->peak_bytes, (unsigned long long)s->peak_blocks,
                (unsigned long long)s->alloc_bytes, (unsigned long long)s->alloc_blocks);
        int bad = !e || mtp_pyapi.list_append(sites, e) < 0;
        if (e)
            mtp_pyapi.decref(e);
        if (bad) {
            mtp_pyapi.decref(sites);
            sites = NULL;
        }
    }
    if (sites)
        out = mtp_pyapi.build_value("(KKKKKKN)",
            (unsigned long long)res.peak_bytes, (unsigned long long)res.peak_blocks,
            (unsigned long long)res.live_bytes, (unsigned long long)res.live_blocks,
            (unsigned long long)res.alloc_bytes, (unsigned long long)res.alloc_blocks, sites);
    mtp_window_release(slot);
    return out;
}

static void *is_tracing_cb(void *self, void *unused)
{
    (void)self;
    (void)unused;
    return mtp_pyapi.bool_from(atomic_load_explicit(&mtp_tracing, memory_order_relaxed));
}

static void *output_dir_cb(void *self, void *unused)
{
    (void)self;
    (void)unused;
    return mtp_pyapi.str_from(mtp_cfg.outdir);
}

/* ---- `import memtrail` without the package: the module as its own
 * finder and loader (importlib's find_spec, create_module, exec_module).
 * The module's functions have the module as their `self`, as a built-in
 * module's do, and memtrail keeps no reference to it: it dies in
 * finalization like any module. Held by memtrail, it stayed in the
 * collector's lists after finalization, a node the leak scan does not read
 * (memtrail's own objects are not traced blocks), so the objects after it
 * in those lists lost the start pointers the links give them: 1,094 blocks
 * possibly lost more than valgrind finds on 3.8's final snapshot. ---- */
static void *find_spec_cb(void *self, void *args)
{
    const char *name = NULL;
    void *path = NULL, *target = NULL, *bootstrap = NULL, *spec_type = NULL, *name_obj = NULL;
    void *spec = NULL, *origin = NULL;
    if (!mtp_pyapi.parse_tuple(args, "s|OO:find_spec", &name, &path, &target))
        return NULL;
    if (strcmp(name, MTPROTO_PY_PACKAGE) != 0 || !self) {
        mtp_pyapi.incref(mtp_pyapi.none);
        return mtp_pyapi.none;
    }
    /* importlib's own ModuleSpec (importlib.machinery's is the same type) */
    bootstrap = mtp_pyapi.import("_frozen_importlib");
    if (bootstrap)
        spec_type = mtp_pyapi.getattr(bootstrap, "ModuleSpec");
    if (spec_type)
        name_obj = mtp_pyapi.str_from(MTPROTO_PY_PACKAGE);
    if (name_obj)
        spec = mtp_pyapi.call(spec_type, name_obj, self, NULL);
    /* an origin, for the module's repr (else it would print its loader: itself) */
    if (spec)
        origin = mtp_pyapi.str_from("memtrail tracer");
    if (spec && (!origin || mtp_pyapi.setattr(spec, "origin", origin) < 0)) {
        mtp_pyapi.decref(spec);
        spec = NULL;
    }
    void *objs[] = {origin, name_obj, spec_type, bootstrap};
    for (size_t i = 0; i < 4; i++)
        if (objs[i])
            mtp_pyapi.decref(objs[i]);
    return spec;
}

static void *create_module_cb(void *self, void *spec)
{
    (void)spec;
    mtp_pyapi.incref(self);
    return self;
}

static void *exec_module_cb(void *self, void *module)
{
    (void)self;
    (void)module;
    mtp_pyapi.incref(mtp_pyapi.none);
    return mtp_pyapi.none;
}

static mtp_pymethod_t exit_def = {"_memtrail_exit", exit_cb, MTP_PY_METH_NOARGS,
                              "memtrail: the exit snapshot, when finalization begins"};
static mtp_pymethod_t module_defs[] = {
    {"snapshot", snapshot_cb, MTP_PY_METH_VARARGS,
     "snapshot(label=None) -> str\n\nWrite a memtrail snapshot now and return its path."},
    {"window_begin", window_begin_cb, MTP_PY_METH_NOARGS,
     "window_begin() -> int\n\nOpen a measurement window at this moment (at most "
     MTPROTO_STR(MTP_WINDOW_MAX) " at once)."},
    {"window_end", window_end_cb, MTP_PY_METH_VARARGS,
     "window_end(slot) -> (peak_bytes, peak_blocks, live_bytes, live_blocks, alloc_bytes,\n"
     "alloc_blocks, sites)\n\nClose the window; each site is (frames, live_bytes, live_blocks,\n"
     "peak_bytes, peak_blocks, alloc_bytes, alloc_blocks), frames (file, line, function)\n"
     "innermost first."},
    {"is_tracing", is_tracing_cb, MTP_PY_METH_NOARGS,
     "is_tracing() -> bool\n\nWhether memtrail records this process's allocations."},
    {"output_dir", output_dir_cb, MTP_PY_METH_NOARGS,
     "output_dir() -> str\n\nThe directory this process writes its snapshots to."},
    {"find_spec", find_spec_cb, MTP_PY_METH_VARARGS,
     "find_spec(name, path=None, target=None)\n\nimportlib finder: this module, for `import "
     MTPROTO_PY_PACKAGE "` when no package of that name is installed."},
    {"create_module", create_module_cb, MTP_PY_METH_O, "importlib loader: this module."},
    {"exec_module", exec_module_cb, MTP_PY_METH_O, "importlib loader: nothing to run."},
};
#define NMODULE_DEFS (sizeof(module_defs) / sizeof(module_defs[0]))

static void register_atexit(void)
{
    void *mod = mtp_pyapi.import("atexit"), *reg = NULL, *fn = NULL, *r = NULL;
    if (mod)
        reg = mtp_pyapi.getattr(mod, "register");
    if (reg)
        fn = mtp_pyapi.cfunction_new(&exit_def, NULL, NULL);
    if (fn)
        r = mtp_pyapi.call(reg, fn, NULL);
    if (!r)
        mtp_warn("python: cannot register the exit snapshot; it will be taken at process exit");
    else if (mtp_py_nown < MTP_PY_OWN_MAX)
        mtp_py_own[mtp_py_nown++] = (uintptr_t)fn;   /* atexit keeps it */
    void *objs[] = {r, fn, reg, mod};
    for (size_t i = 0; i < 4; i++)
        if (objs[i])
            mtp_pyapi.decref(objs[i]);
}

/* sys.modules[MTPROTO_PY_MODULE], and the module appended to sys.meta_path. */
static void add_module(void)
{
    void *mod = mtp_pyapi.module_new(MTPROTO_PY_MODULE), *doc = NULL;
    void *sys = NULL, *meta_path = NULL, *append = NULL, *r = NULL;
    void *modules = mtp_pyapi.modules_dict();   /* borrowed */
    int ok = mod != NULL;
    for (size_t i = 0; ok && i < NMODULE_DEFS; i++) {
        void *fn = mtp_pyapi.cfunction_new(&module_defs[i], mod, NULL);
        ok = fn && mtp_pyapi.setattr(mod, module_defs[i].name, fn) == 0;
        if (fn)
            mtp_pyapi.decref(fn);
    }
    if (ok)
        doc = mtp_pyapi.str_from("memtrail's tracer, preloaded into this process (the `"
                                 MTPROTO_PY_PACKAGE "` package delegates to it).");
    if (!doc || mtp_pyapi.setattr(mod, "__doc__", doc) < 0 ||
        !modules || mtp_pyapi.dict_set(modules, MTPROTO_PY_MODULE, mod) < 0) {
        mtp_warn("python: cannot add the " MTPROTO_PY_MODULE " module");
    } else {
        sys = mtp_pyapi.import("sys");
        if (sys)
            meta_path = mtp_pyapi.getattr(sys, "meta_path");
        if (meta_path)
            append = mtp_pyapi.getattr(meta_path, "append");
        if (append)
            r = mtp_pyapi.call(append, mod, NULL);
        if (!r)
            mtp_warn("python: cannot add the " MTPROTO_PY_MODULE " finder: `import "
                     MTPROTO_PY_PACKAGE "` needs the package");
    }
    void *objs[] = {r, append, meta_path, sys, doc, mod};
    for (size_t i = 0; i < 6; i++)
        if (objs[i])
            mtp_pyapi.decref(objs[i]);
}

/* ---- sys._debugmallocstats ----
 * CPython prints pymalloc's section only when the object domain's top
 * allocator is pymalloc itself (or the debug hooks over it), which our
 * wrapper on top hides. The replacement takes our wrapper off the object
 * domain for the length of the original call, GIL held: that call only
 * prints, and no other thread may use the object domain meanwhile. With
 * tracemalloc or a custom allocator on top of ours the original sees what
 * it sees bare. The original is the replacement's `self`, so that only the
 * replacement holds it, and it dies with it when finalization clears the
 * sys module's dict: held by memtrail, it kept the sys module (its `self`)
 * and the module's dict alive past finalization (the dict was a possibly
 * lost block at exit that valgrind does not see, docs/leaks.md). */
static void *debugmallocstats_cb(void *self, void *unused)
{
    mtp_pyalloc_t top;
    (void)unused;
    mtp_pyapi.get_alloc(MTP_PY_DOMAIN_OBJ, &top);
    int ours = is_ours(&top);
    if (ours)
        mtp_pyapi.set_alloc(MTP_PY_DOMAIN_OBJ, &((pydom_t *)top.ctx)->prev);
    void *r = mtp_pyapi.call(self, NULL);
    if (ours)
        mtp_pyapi.set_alloc(MTP_PY_DOMAIN_OBJ, &top);
    return r;
}

static mtp_pymethod_t debugmallocstats_def = {
    "_debugmallocstats", debugmallocstats_cb, MTP_PY_METH_NOARGS,
    "_debugmallocstats()\n--\n\nPrint pymalloc's and the free lists' statistics to stderr.\n\n"
    "(memtrail's wrapper: CPython's own function, called with memtrail's\n"
    "allocator hook set aside so that pymalloc's section is printed.)"};

static void wrap_debugmallocstats(void)
{
    void *sys = mtp_pyapi.import("sys"), *orig = NULL, *name = NULL, *fn = NULL;
    if (sys)
        orig = mtp_pyapi.getattr(sys, "_debugmallocstats");
    if (orig)
        name = mtp_pyapi.str_from("sys");
    if (name)
        fn = mtp_pyapi.cfunction_new(&debugmallocstats_def, orig, name);
    if (!fn || mtp_pyapi.setattr(sys, "_debugmallocstats", fn) < 0)
        mtp_pyapi.err_clear();   /* a build without it: nothing to do */
    void *objs[] = {fn, name, orig, sys};
    for (size_t i = 0; i < 4; i++)
        if (objs[i])
            mtp_pyapi.decref(objs[i]);
}

static void post_init(void)
{
    void *et, *ev, *etb;
    post_init_state = 1;
    mtp_pyapi.err_fetch(&et, &ev, &etb);
    int guard = mtp_tls_guard;
    mtp_tls_guard = MTP_GUARD_HOOK;      /* memtrail's own objects are not traced, */
    mtp_py_owning = 1;                   /* but registered (python/pyown.c) */
    register_atexit();
    add_module();
    wrap_debugmallocstats();
    mtp_py_owning = 0;
    mtp_tls_guard = guard;
    mtp_pyapi.err_clear();   /* a failure of ours must not reach the program */
    mtp_pyapi.err_restore(et, ev, etb);
    post_init_state = 2;
}

static int audit_cb(const char *event, void *args, void *ud)
{
    (void)event;
    (void)args;
    (void)ud;
    if (post_init_state == 1 || !atomic_load_explicit(&mtp_tracing, memory_order_relaxed))
        return 0;
    ensure_wrapped(MTP_PY_DOMAIN_RAW);
    if (post_init_state == 0 && mtp_pyapi.is_initialized())
        post_init();
    return 0;
}

/* PySys_AddAuditHook allocates its entry from RAW; CPython frees it at
 * finalization with the RAW allocator of that time, which PYTHONMALLOC=debug
 * or -X dev will have changed. Remember the block and who allocated it. */
static void *capture_malloc(void *ctx, size_t size)
{
    (void)ctx;
    void *p = audit_alloc.malloc(audit_alloc.ctx, size);
    audit_entry = p;
    return p;
}

static int add_audit_hook(void)
{
    mtp_pyalloc_t ours, capture;
    mtp_pyapi.get_alloc(MTP_PY_DOMAIN_RAW, &ours);
    audit_alloc = is_ours(&ours) ? ((pydom_t *)ours.ctx)->prev : ours;
    capture = audit_alloc;
    capture.ctx = NULL;
    capture.malloc = capture_malloc;
    mtp_pyapi.set_alloc(MTP_PY_DOMAIN_RAW, &capture);
    int r = mtp_pyapi.add_audit_hook(audit_cb, NULL);
    mtp_pyapi.set_alloc(MTP_PY_DOMAIN_RAW, &ours);
    return r;
}

/* Binds to the interpreter found through h and, if it is not initialized
 * yet, installs everything. Returns 1 when Python support is on. */
static int setup(void *h)
{
    int r = mtp_pyapi_bind(h);
    if (r == -ENOENT) {
        if (mtp_pyapi.get_alloc)
            mtp_warn("python: the C API is incomplete: Python domains are not traced");
        return 0;
    }
    if (r < 0)
        return 0;
    if (mtp_pyapi.is_initialized()) {
        mtp_warn("python: the interpreter was initialized before memtrail was loaded: "
                 "Python domains are not traced");
        return 0;
    }
    mtp_py_may_allocate = may_allocate;
    mtp_py_stack_setup();
    ensure_wrapped(MTP_PY_DOMAIN_RAW);
    if (add_audit_hook() < 0)
        mtp_warn("python: cannot add an audit hook; no exit snapshot before finalization");
    patch_track();
    check_setalloc();
    mtp_py_reuse_setup(h);
    atomic_store(&mtp_stack_source, mtp_py_stack);   /* Python support is on */
    return 1;
}

/* ---- after `memtrail attach` (hook/pyattach.c): GIL held, the interpreter
 * running. The RAW domain is left alone: it is called without the GIL
 * (PyMem_RawMalloc is thread-safe), so another thread could read its
 * allocator half-replaced (our function with the old context); its blocks
 * reach malloc and are recorded there, with the same stacks. ---- */
int mtp_py_late_bind(void *handle)
{
    if (mtp_pyapi_bind(handle) < 0)
        return -ENOENT;
    mtp_py_may_allocate = may_allocate;
    mtp_py_stack_setup();
    mtp_py_reuse_setup(handle);
    return 0;
}

void mtp_py_late_wrap(void)
{
    ensure_wrapped(MTP_PY_DOMAIN_MEM);
    patch_all();
    atomic_store(&mtp_stack_source, mtp_py_stack);
}

/* After a dlopen while the wrappers are on: the new objects' slots. */
void mtp_py_late_patch(void)
{
    patch_all();
}

/* Each domain whose top is our wrapper gets the allocator it wrapped back; a
 * domain where another allocator was put on top of ours (tracemalloc
 * started while attached) keeps ours under it, inert (it forwards). Returns
 * how many domains keep one. */
int mtp_py_late_unwrap(void)
{
    int kept = 0;
    for (int dom = MTP_PY_DOMAIN_MEM; dom < MTP_PY_NDOMAINS; dom++) {
        mtp_pyalloc_t cur;
        mtp_pyapi.get_alloc(dom, &cur);
        if (!is_ours(&cur)) {
            kept++;
            continue;
        }
        while (is_ours(&cur))
            cur = ((pydom_t *)cur.ctx)->prev;
        mtp_pyapi.set_alloc(dom, &cur);
    }
    unpatch_track();
    mtp_py_reuse_unpatch();
    atomic_store(&mtp_stack_source, NULL);   /* a later attach: native until its hooks start */
    return kept;
}

static void after_dlopen(void *handle)
{
    if (atomic_load(&mtp_stack_source)) {
        patch_all();
        return;
    }
    if (handle && mtp_pyapi_found(handle) && atomic_load(&mtp_tracing))
        setup(handle);
}

void mtp_py_init(void)
{
    mtp_dlopen_hook = after_dlopen;
    if (mtp_pyapi_found(RTLD_DEFAULT))
        setup(RTLD_DEFAULT);
}
