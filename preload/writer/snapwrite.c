/*
 * Writes one snapshot file from the writer's tables (format: memtrail_format.h).
 * This file gathers what goes in; the bytes are laid out by the format
 * library's encoder (format/encode.h), one payload writer per record, into
 * a file sink that allocates nothing, compressed with a zstd context made for
 * the snapshot (kept from the exit snapshot for the final one only).
 *
 * Runs on the writer thread with the writer lock held, so the live table and
 * the aggregates cannot change underneath. Its own allocations are untraced
 * (the writer's guard is always set). Stacks are renumbered densely, return
 * addresses are deduplicated into frames and symbolized once each, strings are
 * interned. A return address inside inlined code becomes one FRAMES entry per
 * function (the inlined ones first, listed in INLINED), all at its pc: the
 * frame map knows addresses, so its stack tree is written with each of its
 * frames expanded into those entries. The file is created without a name
 * (O_TMPFILE, mode 0600) and linked under its final name only when
 * complete, so a reader never sees a partial snapshot and a process killed
 * while writing leaves nothing behind. Where the file system has no O_TMPFILE, or something already holds
 * the final name, a temporary name (O_EXCL|O_NOFOLLOW) is renamed over it;
 * the writer holds a flock() on it until then. A process killed meanwhile
 * leaves that temporary behind: the next traced process to write through a
 * temporary name in that directory removes, before it makes its own, the
 * ones whose process is gone (clean_stale, once per process). Only such a
 * process lists the directory: a process whose snapshots are unnamed files
 * does not read a directory of a thousand snapshots.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memtrail_protocol.h"

#include "base/addrindex.h"
#include "base/util.h"
#include "encode.h"
#include "leak/leakscan.h"
#include "names.h"
#include "python/py.h"
#include "python/pygraph.h"
#include "writer/framemap.h"
#include "writer/timeline.h"
#include "base/libload.h"
#include "writer/live.h"
#include "writer/snapview.h"
#include "writer/snapwrite.h"
#include "writer/symbolize.h"
#include "writer/symwarm.h"

/* ---- string interning ---- */
typedef struct strtab {
    const char **str;      /* index -> string (borrowed) */
    uint32_t *len;
    uint32_t count, cap;
    uint32_t *slots;       /* hash set of index+1 */
    uint32_t nslots;
    uint64_t bytes;
} strtab_t;

static int strtab_grow(strtab_t *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 1024;
    const char **s = realloc(t->str, ncap * sizeof(*s));
    uint32_t *l = s ? realloc(t->len, ncap * sizeof(*l)) : NULL;
    if (s)
        t->str = s;
    if (!l)
        return -ENOMEM;
    t->len = l;
    t->cap = ncap;
    uint32_t *slots = calloc((size_t)ncap * 2, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    free(t->slots);
    t->slots = slots;
    t->nslots = ncap * 2;
    for (uint32_t i = 0; i < t->count; i++) {
        uint32_t j = (uint32_t)mtp_fnv1a(MTP_FNV_OFFSET, t->str[i], t->len[i]) & (t->nslots - 1);
        while (t->slots[j])
            j = (j + 1) & (t->nslots - 1);
        t->slots[j] = i + 1;
    }
    return 0;
}

/* Returns the string's index, or MTSNAP_NONE when out of memory. */
static uint32_t strtab_add(strtab_t *t, const char *s, size_t n)
{
    if (!s)
        s = "", n = 0;
    if (t->count + 1 >= t->cap && strtab_grow(t) < 0)
        return MTSNAP_NONE;
    uint32_t j = (uint32_t)mtp_fnv1a(MTP_FNV_OFFSET, s, n) & (t->nslots - 1);
    while (t->slots[j]) {
        uint32_t i = t->slots[j] - 1;
        if (t->len[i] == n && memcmp(t->str[i], s, n) == 0)
            return i;
        j = (j + 1) & (t->nslots - 1);
    }
    t->str[t->count] = s;
    t->len[t->count] = (uint32_t)n;
    t->bytes += 4 + n;
    t->slots[j] = t->count + 1;
    return t->count++;
}

static uint32_t strtab_cstr(strtab_t *t, const char *s)
{
    return strtab_add(t, s, s ? strlen(s) : 0);
}

static void strtab_free(strtab_t *t)
{
    free(t->str);
    free(t->len);
    free(t->slots);
}

/* ---- the snapshot ---- */
#define YIELD_FRAMES 64        /* frames symbolized between yields */
#define YIELD_STACKS 4096      /* stacks written between yields */
#define YIELD_OBJECTS 65536    /* graph objects written between yields */
#define BLOCK_CHUNK 128        /* blocks read from the view between yields (3 KiB of stack) */
#define SMALL_SNAPSHOT 262144  /* live blocks + stacks below which... */
#define SMALL_WINDOW_LOG 16    /* ...zstd's window is 64 KiB (see mtp_snapshot_write) */
typedef struct gather {
    strtab_t strs;
    mtp_framemap_t fm;     /* frame key -> dense frame index; the stacks' indices */
    uint32_t *remap;       /* global stack id -> dense index, MTSNAP_NONE if unused */
    uint32_t nstats;       /* global ids considered */
    uint32_t nstacks;      /* dense stacks (nodes of fm's tree that are stacks) */
    mtsnap_frame_t *frames;
    uint32_t nframes, frames_cap;   /* FRAMES entries: fm.count, plus the inlined ones */
    uint32_t *xfirst;      /* fm.count + 1: fm's frame i is entries [xfirst[i], xfirst[i + 1]) */
    uint32_t *inlined;     /* the entries of inlined functions, increasing */
    uint32_t ninlined;
    uint32_t *xbuf;        /* a node's frames, expanded (emit_stacks) */
    size_t xcap;
    mtsnap_module_t *mods;
    size_t nmods;
    mtp_symbolizer_t *sym;
    size_t (*yield)(void); /* mtp_snapinfo_t's, or NULL */
    uint64_t applied;      /* events the yields applied */
    uint32_t *type_str;    /* graph type index -> string index */
    uint32_t stdlib_str;
    uint64_t *pyaddr;      /* the graph's object addresses, sorted (edge -> index) */
    mtp_addrindex_t pyidx; /* over pyaddr */
} gather_t;

static int gather_stacks(gather_t *g)
{
    g->remap = malloc(((size_t)g->nstats + 1) * sizeof(*g->remap));
    if (!g->remap)
        return -ENOMEM;
    /* The stacks written and their own words first: the tree's room, made
     * at once (a node each, and a quarter more for the shared chunks; the
     * pool a frame index per own word, and as much again for the chunks'
     * frames). Only what is used is touched; without the room, the arrays
     * grow as they fill. */
    uint32_t nused = 0;
    size_t words = 0;
    for (uint32_t id = 0; id < g->nstats; id++) {
        const mtp_stack_stats_t *st = mtp_live_stat_frozen(id);
        if (!st->alloc_blocks && !st->mapped) {
            g->remap[id] = MTSNAP_NONE;
            continue;
        }
        const uintptr_t *w;
        uint32_t chunk;
        g->remap[id] = 0;
        nused++;
        words += mtp_stack_own(id, &w, &chunk);
    }
    (void)mtp_framemap_reserve(&g->fm, nused + nused / 4 + 64, 2 * words + 1024);   /* or grown */
    /* The tree's stack nodes come in this order: dense index = node order. */
    for (uint32_t id = 0; id < g->nstats; id++) {
        if (g->remap[id] == MTSNAP_NONE)
            continue;
        int64_t node = mtp_framemap_add_stack(&g->fm, id);
        if (node < 0)
            return (int)node;
        g->remap[id] = g->nstacks++;
    }
    return 0;
}

/* A Python frame: function, file and line from the code registry; pc and
 * offset keep the code object's address and the instruction offset. */
static void python_frame(gather_t *g, uint32_t i, uint64_t key)
{
    mtsnap_frame_t *fr = &g->frames[i];
    *fr = (mtsnap_frame_t){.module = MTSNAP_NONE, .kind = MTSNAP_FRAME_PYTHON};
    mtp_pyentry_t e;
    if (mtp_py_entry((int64_t)(key & ~MTP_PYWORD_TAG), &e) < 0) {
        fr->function = fr->file = strtab_cstr(&g->strs, "<unknown>");
        return;
    }
    fr->pc = e.code;
    fr->offset = e.offset;
    fr->function = strtab_add(&g->strs, e.loc.function, e.loc.function_len);
    fr->file = strtab_add(&g->strs, e.loc.file, e.loc.file_len);
    fr->line = e.loc.line > 0 ? (uint32_t)e.loc.line : 0;
}

/* Room for n more FRAMES entries (and as many INLINED ones). */
static int frames_reserve(gather_t *g, uint32_t n)
{
    if (g->frames_cap - g->nframes >= n)
        return 0;
    if (n > UINT32_MAX / 4 - g->nframes)
        return -ENOMEM;
    uint32_t cap = g->frames_cap * 2;
    while (cap - g->nframes < n)
        cap *= 2;
    mtsnap_frame_t *f = realloc(g->frames, (size_t)cap * sizeof(*f));
    if (f)
        g->frames = f;
    uint32_t *in = realloc(g->inlined, (size_t)cap * sizeof(*in));
    if (in)
        g->inlined = in;
    if (!f || !in)
        return -ENOMEM;
    g->frames_cap = cap;
    return 0;
}

static int gather_symbols(gather_t *g)
{
    const mtp_module_t *mods = NULL;
    g->sym = mtp_writer_sym();   /* NULL: no symbols, frames keep their addresses */
    if (g->sym)
        g->nmods = mtp_sym_modules(g->sym, &mods);
    g->mods = calloc(g->nmods + 1, sizeof(*g->mods));
    /* Room for as many inlined functions as frames: a native frame often
     * has some; what is not used is not touched. */
    g->frames_cap = 2 * g->fm.count + 64;
    g->frames = malloc(g->frames_cap * sizeof(*g->frames));
    if (!g->frames) {   /* what the frames need at least; more as they come */
        g->frames_cap = g->fm.count + 1;
        g->frames = malloc(g->frames_cap * sizeof(*g->frames));
    }
    /* Each frame takes an entry at least: those pages in one call, not a
     * fault each (base/util.h, mtp_populate); entries are written whole. */
    if (g->frames)
        mtp_populate(g->frames, (size_t)g->fm.count * sizeof(*g->frames));
    g->inlined = malloc(g->frames_cap * sizeof(*g->inlined));
    g->xfirst = malloc(((size_t)g->fm.count + 1) * sizeof(*g->xfirst));
    if (!g->mods || !g->frames || !g->inlined || !g->xfirst)
        return -ENOMEM;
    for (size_t i = 0; i < g->nmods; i++) {
        g->mods[i] = (mtsnap_module_t){mods[i].start, mods[i].end, mods[i].bias,
                                       strtab_cstr(&g->strs, mods[i].path),
                                       strtab_cstr(&g->strs, mods[i].build_id)};
    }
    for (uint32_t i = 0; i < g->fm.count; i++) {
        if (g->yield && i % YIELD_FRAMES == YIELD_FRAMES - 1)
            g->applied += g->yield();
        if (frames_reserve(g, 1) < 0)
            return -ENOMEM;
        g->xfirst[i] = g->nframes;
        if (mtp_is_pyword(g->fm.order[i])) {
            python_frame(g, g->nframes++, g->fm.order[i]);
            continue;
        }
        mtp_sym_t s = {"", 0, "", 0, -1, 0, NULL};
        if (g->sym)
            mtp_sym_lookup(g->sym, g->fm.order[i], &s);
        if (s.ninl && frames_reserve(g, s.ninl + 1) < 0)
            return -ENOMEM;
        mtsnap_frame_t fr = {
            .pc = g->fm.order[i], .offset = s.offset,
            .module = s.module < 0 ? MTSNAP_NONE : (uint32_t)s.module,
            .kind = MTSNAP_FRAME_NATIVE};
        for (uint32_t k = 0; k < s.ninl; k++) {   /* the inlined functions, innermost first */
            fr.function = strtab_add(&g->strs, s.inl[k].function, strcspn(s.inl[k].function, "@"));
            fr.file = strtab_cstr(&g->strs, s.inl[k].file);
            fr.line = s.inl[k].line;
            g->inlined[g->ninlined++] = g->nframes;
            g->frames[g->nframes++] = fr;
        }
        /* "memcpy@@GLIBC_2.14" -> "memcpy": the version is not part of the name */
        fr.function = strtab_add(&g->strs, s.function, strcspn(s.function, "@"));
        fr.file = strtab_cstr(&g->strs, s.file);
        fr.line = s.line;
        g->frames[g->nframes++] = fr;
    }
    g->xfirst[g->fm.count] = g->nframes;
    if (g->sym)
        mtp_sym_flush(g->sym);   /* new answers to the disk cache; libdw released */
    return 0;
}

/* The graph's type names and the stdlib directory, as strings. (The graph is
 * written only when the leak scan sorted it: gr->order.) */
static int gather_graph(gather_t *g, mtp_pygraph_t *gr)
{
    g->type_str = malloc(((size_t)gr->ntypes + 1) * sizeof(*g->type_str));
    if (!g->type_str)
        return -ENOMEM;
    for (uint32_t i = 0; i < gr->ntypes; i++)
        g->type_str[i] = strtab_add(&g->strs, gr->names + gr->types[i].name_off,
                                    gr->types[i].name_len);
    g->stdlib_str = strtab_cstr(&g->strs, gr->stdlib);
    return 0;
}

/* The objects' addresses in order and their index, for the edges: made
 * when PYGRAPH is, and freed with the graph's objects (make_pygraph). */
static int graph_addresses(gather_t *g, const mtp_pygraph_t *gr)
{
    g->pyaddr = malloc(((size_t)gr->nnodes + 1) * sizeof(*g->pyaddr));
    if (!g->pyaddr)
        return -ENOMEM;
    for (uint32_t i = 0; i < gr->nnodes; i++)
        g->pyaddr[i] = gr->nodes[gr->order[i]].address;
    /* Each edge is looked up; without the index (no memory), a search. */
    mtp_addrindex_build(&g->pyidx, g->pyaddr, gr->nnodes, 1, NULL, NULL);
    return 0;
}

/* The index of the graph object at addr, or MTSNAP_NONE. */
static uint32_t graph_index(const gather_t *g, uint64_t addr)
{
    ssize_t j = mtp_addrindex_find(&g->pyidx, addr);
    return j >= 0 && g->pyaddr[j] == addr ? (uint32_t)j : MTSNAP_NONE;
}

/* ---- the records, written by the format library's encoder ---- */
typedef struct emit_ctx {
    gather_t *g;
    const mtsnap_meta_t *meta;
    const mtsnap_totals_t *totals; /* likewise */
    size_t nblocks;        /* the live blocks when the snapshot began */
    uint64_t start_ns, symbolize_ns;   /* for TIMING (monotonic clock) */
    const mtp_snapinfo_t *info;
    /* TIMELINE: the series (stable while the file is written: only the
     * writer's loop adds to it) and the point of the snapshot's moment. */
    const mtsnap_tlpoint_t *tl;
    uint32_t ntl;
    mtsnap_tlpoint_t tl_last;
    uint64_t tl_step;
    uint64_t samples;      /* SAMPLING: allocations recorded when the snapshot began */
} emit_ctx_t;

static void emit_meta(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    mtf_enc_put(e, c->meta, sizeof(*c->meta));
}

static void emit_strings(mtf_enc_t *e, void *ctx)
{
    const strtab_t *t = &((emit_ctx_t *)ctx)->g->strs;
    mtf_enc_strings(e, t->count, t->str, t->len);
}

static void emit_modules(mtf_enc_t *e, void *ctx)
{
    const gather_t *g = ((emit_ctx_t *)ctx)->g;
    mtf_enc_array(e, (uint32_t)g->nmods, g->mods, sizeof(*g->mods));
}

static void emit_frames(mtf_enc_t *e, void *ctx)
{
    const gather_t *g = ((emit_ctx_t *)ctx)->g;
    mtf_enc_frames(e, g->nframes, g->frames);
}

/* INLINED: the entries of inlined functions (only when there are some). */
static void emit_inlined(mtf_enc_t *e, void *ctx)
{
    const gather_t *g = ((emit_ctx_t *)ctx)->g;
    mtf_enc_inlined_begin(e, g->ninlined);
    for (uint32_t i = 0; i < g->ninlined; i++)
        mtf_enc_inlined(e, g->inlined[i]);
}

/* A node's own frames as FRAMES entries: each of the map's frames becomes
 * its entries (more than one for an address in inlined code). NULL when out
 * of memory. */
static const uint32_t *expand(gather_t *g, const uint32_t *f, uint32_t len, uint32_t *outlen)
{
    size_t n = 0;
    for (uint32_t i = 0; i < len; i++)
        n += g->xfirst[f[i] + 1] - g->xfirst[f[i]];
    if (n > g->xcap) {
        size_t cap = g->xcap ? g->xcap : 256;
        while (cap < n)
            cap *= 2;
        uint32_t *b = realloc(g->xbuf, cap * sizeof(*b));
        if (!b)
            return NULL;
        g->xbuf = b;
        g->xcap = cap;
    }
    n = 0;
    for (uint32_t i = 0; i < len; i++)
        for (uint32_t x = g->xfirst[f[i]]; x < g->xfirst[f[i] + 1]; x++)
            g->xbuf[n++] = x;
    *outlen = (uint32_t)n;
    return g->xbuf;
}

/* STACKS (version 3): the tree gather_stacks built, parents first. */
static void emit_stacks(mtf_enc_t *e, void *ctx)
{
    gather_t *g = ((emit_ctx_t *)ctx)->g;
    const mtp_framemap_t *m = &g->fm;
    mtf_enc_uint(e, m->nnodes);
    for (uint32_t i = 0; i < m->nnodes; i++) {
        if (g->yield && i % YIELD_STACKS == YIELD_STACKS - 1)
            g->applied += g->yield();
        const mtp_fmnode_t *n = &m->nodes[i];
        uint32_t len = n->len;
        const uint32_t *f = m->pool + n->off;
        if (g->ninlined && !(f = expand(g, f, n->len, &len))) {
            if (!e->err)
                e->err = -ENOMEM;
            return;
        }
        mtf_enc_stack_node(e, n->parent, n->is_stack, len, f);
    }
    /* The tree and the frames are written: their memory goes back before
     * the blocks and the leaks are (PYGRAPH was made before the tree). */
    mtp_framemap_free(&g->fm);
    free(g->frames);
    free(g->xfirst);
    free(g->xbuf);
    g->frames = NULL;
    g->xfirst = g->xbuf = NULL;
    g->xcap = 0;
}

static void emit_stack_stats(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    const gather_t *g = c->g;
    mtf_enc_uint(e, g->nstacks);
    for (uint32_t id = 0; id < g->nstats; id++) {
        if (g->remap[id] == MTSNAP_NONE)
            continue;
        const mtp_stack_stats_t *st = mtp_live_stat_frozen(id);   /* the snapshot's moment */
        mtsnap_stack_stat_t s = {g->remap[id], 0, st->live_bytes, mtp_live_blocks(st->live_blocks),
                                 st->alloc_bytes, mtp_live_blocks(st->alloc_blocks),
                                 st->peak_bytes, mtp_live_blocks(st->peak_blocks)};
        mtf_enc_stack_stat(e, &s);
    }
}

static void emit_timeline(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    mtf_enc_timeline_begin(e, c->tl_step, c->ntl + 1);
    for (uint32_t i = 0; i < c->ntl; i++)
        mtf_enc_tlpoint(e, &c->tl[i]);
    mtf_enc_tlpoint(e, &c->tl_last);
}

/* SAMPLING: the mean, when this process samples (the figures are estimates). */
static void emit_sampling(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    mtsnap_sampling_t sm = {mtp_cfg.sample, c->samples};
    mtf_enc_put(e, &sm, sizeof(sm));
}

static void emit_totals(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    mtf_enc_put(e, c->totals, sizeof(*c->totals));
}

/* BLOCKS: the live set of the moment the snapshot began, by address, from
 * the snapshot's view of the live map (no copy, no sort), a chunk at a time
 * with a yield between chunks. */
static void emit_blocks(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    gather_t *g = c->g;
    mtsnap_block_t buf[BLOCK_CHUNK];
    size_t written = 0;
    long n;
    mtf_enc_blocks_begin(e, c->nblocks);
    while ((n = mtp_snapview_next(buf, BLOCK_CHUNK)) > 0) {
        for (long i = 0; i < n; i++) {
            mtsnap_block_t b = buf[i];
            b.stack = b.stack < g->nstats ? g->remap[b.stack] : MTSNAP_NONE;
            if (b.stack == MTSNAP_NONE)
                b.stack = 0;  /* cannot happen: a live block's stack has allocated */
            mtf_enc_block(e, &b);
        }
        written += (size_t)n;
        if (g->yield)
            g->applied += g->yield();
    }
    if (n < 0 && !e->err)
        e->err = (int)n;   /* the view lost track: the file is not named */
    else if (written != c->nblocks && !e->err)
        e->err = -EIO;     /* cannot happen (the view's invariant) */
}

/* COSTS: what tracing has cost the process so far (the writer's figures). */
static void emit_costs(mtf_enc_t *e, void *ctx)
{
    mtf_enc_put(e, ((emit_ctx_t *)ctx)->info->costs, sizeof(mtsnap_costs_t));
}

/* TIMING, last before END: what this file cost (its own write time up to here). */
static void emit_timing(mtf_enc_t *e, void *ctx)
{
    const emit_ctx_t *c = ctx;
    const mtp_pygraph_t *gr = c->info->graph;
    mtsnap_timing_t t = {
        .scan_ns = c->info->scan_ns, .graph_ns = gr ? gr->capture_ns : 0,
        .symbolize_ns = c->symbolize_ns,
        .write_ns = mtp_mono_ns() - c->start_ns - c->symbolize_ns, .applied = c->g->applied};
    mtf_enc_put(e, &t, sizeof(t));
}

/* LEAKS: the scan's header, then a kind per block (BLOCKS order). */
static void emit_leaks(mtf_enc_t *e, void *ctx)
{
    const mtp_leakscan_t *ls = ((emit_ctx_t *)ctx)->info->leaks;
    mtf_enc_put(e, &ls->hdr, sizeof(ls->hdr));
    mtf_enc_put(e, ls->kind, ls->nblocks);
}

/* PYGRAPH: the objects by address, then their referents in that order. */
static void emit_pygraph(mtf_enc_t *e, void *ctx)
{
    gather_t *g = ((emit_ctx_t *)ctx)->g;
    const mtp_pygraph_t *gr = ((emit_ctx_t *)ctx)->info->graph;
    mtsnap_pygraph_header_t h = {
        .objects = gr->nnodes, .py_minor = (uint32_t)gr->minor, .edges = gr->nedges,
        .capture_ns = gr->capture_ns,
        .flags = (gr->scanned ? MTSNAP_PYGRAPH_F_SCANNED : 0) |
                 (gr->gc_enabled ? MTSNAP_PYGRAPH_F_GC_ENABLED : 0),
        .stdlib = g->stdlib_str,
        .generation = {gr->generation[0], gr->generation[1], gr->generation[2]}};
    mtf_enc_pygraph_begin(e, &h);
    for (uint32_t i = 0; i < gr->nnodes; i++) {
        uint32_t k = gr->order[i];
        const mtp_pynode_t *n = &gr->nodes[k];
        mtsnap_pyobj_t ob = {n->address, mtp_pynode_size(gr, k), mtp_pynode_refcount(gr, k),
                             g->type_str[n->type], n->flags, mtp_pynode_nrefs(gr, k), 0};
        mtf_enc_pyobj(e, &ob);
    }
    if (graph_addresses(g, gr) < 0) {
        if (!e->err)
            e->err = -ENOMEM;
        return;
    }
    for (uint32_t i = 0; i < gr->nnodes; i++) {
        const mtp_pynode_t *n = &gr->nodes[gr->order[i]];
        if (g->yield && i % YIELD_OBJECTS == YIELD_OBJECTS - 1)
            g->applied += g->yield();
        for (uint32_t k = n->edge_first, end = n[1].edge_first; k < end; k++) {
            uint64_t to = mtp_pyedge(gr, n->address, k);
            mtf_enc_pyedge(e, i, graph_index(g, to), to);
        }
    }
}

/* ---- the file ---- */
/* The temporary name: TMP_PREFIX "<pid>.<seq, 4 digits or more>" TMP_SUFFIX. */
#define TMP_PREFIX ".memtrail."
#define TMP_SUFFIX ".tmp"

static void clean_stale(void);
/* Writer-only: this process has looked for temporaries to remove (a fork
 * child looks again: it writes its own). */
static MTP_FORKED int cleaned;

/* Creates `tmp` and locks it (a cleaner takes only unlocked temporaries). A
 * cleaner that opened it before the lock and removed it leaves it without
 * a name (st_nlink 0): then it is made again. Returns the descriptor or
 * -errno. */
static int create_tmp(const char *tmp)
{
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    clean_stale();
    for (int tries = 0; tries < 3; tries++) {
        struct stat st;
        int fd = open(tmp, flags, 0600);
        if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
            fd = open(tmp, flags, 0600);   /* a stale one of this pid, or a symlink: not followed */
        if (fd < 0)
            return -errno;
        if (flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 && st.st_nlink == 0) {
            close(fd);   /* removed by a cleaner before the lock */
            continue;
        }
        return fd;       /* a file system without flock: unlocked, and never cleaned */
    }
    return -EEXIST;
}

/* Opens the file to write: unnamed in the output directory when the file
 * system allows it (*named = 0), else under `tmp` (*named = 1). Returns the
 * descriptor or -errno. */
static int open_file(const char *tmp, int *named)
{
    int fd = open(mtp_cfg.outdir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    *named = fd < 0;
    if (fd >= 0 || errno == ENOENT || errno == EACCES || errno == EROFS || errno == ENOSPC ||
        errno == EDQUOT)
        return fd >= 0 ? fd : -errno;
    return create_tmp(tmp);
}

/* Gives the complete unnamed file `fd` its final name. When the name is
 * taken (a stale file, a planted symlink: never followed), the file is
 * linked under `tmp` and renamed over it. */
static int publish(int fd, const char *tmp, const char *final)
{
    char self[64];
    snprintf(self, sizeof(self), "/proc/thread-self/fd/%d", fd);
    if (linkat(AT_FDCWD, self, AT_FDCWD, final, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != EEXIST)
        return -errno;
    clean_stale();
    flock(fd, LOCK_EX);   /* before it has a name a cleaner could find */
    errno = EEXIST;
    for (int tries = 0; errno == EEXIST && tries < 2; tries++) {
        if (linkat(AT_FDCWD, self, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
            if (rename(tmp, final) == 0)
                return 0;
            int e = errno;
            unlink(tmp);
            return -e;
        }
        if (errno == EEXIST && unlink(tmp) < 0)
            break;
    }
    return -errno;
}

/* The file's final name, in the output directory: memtrail.PID.SEQ.TRIGGER,
 * or with a stable name (`memtrail run --name`) the forms of
 * memtrail_protocol.h. */
static void final_name(char *out, size_t cap, const mtp_snapinfo_t *info)
{
    const char *trig = mtf_trigger_name((uint32_t)info->trigger);
    if (!mtp_cfg.name[0]) {
        snprintf(out, cap, "%s/" MTPROTO_SNAP_PREFIX "%d.%04u.%s" MTSNAP_SUFFIX, mtp_cfg.outdir,
                 (int)info->pid, info->seq, trig);
        return;
    }
    char stem[MTPROTO_NAME_MAX + 32], label[MTPROTO_NAME_LABEL_MAX + 1];
    if (mtp_cfg.name_pid && (long)info->pid == mtp_cfg.name_pid)
        snprintf(stem, sizeof(stem), "%s", mtp_cfg.name);
    else
        snprintf(stem, sizeof(stem), "%s.%d", mtp_cfg.name, (int)info->pid);
    mtproto_name_label(info->label ? info->label : "", label, sizeof(label));
    if (info->trigger == MTSNAP_TRIGGER_EXIT || info->trigger == MTSNAP_TRIGGER_FINAL)
        snprintf(out, cap, "%s/%s.%s" MTSNAP_SUFFIX, mtp_cfg.outdir, stem, trig);
    else if (label[0])
        snprintf(out, cap, "%s/%s.%s.%s" MTSNAP_SUFFIX, mtp_cfg.outdir, stem, trig, label);
    else
        snprintf(out, cap, "%s/%s.%04u.%s" MTSNAP_SUFFIX, mtp_cfg.outdir, stem, info->seq, trig);
}

/* The compression context: the writer thread's only (writer lock held).
 * Made for a snapshot and dropped after it, but for the exit snapshot's,
 * which the final snapshot uses again: a process that goes on does not keep
 * zstd's 1.3 MiB between snapshots (nor at the exit path's peak, the leak
 * scan's, which comes before the exit snapshot's records are compressed).
 * Making it again did not show in a snapshot's time (performance.md, *zstd's
 * context made for each snapshot*). A forked child inherits the parent's, if
 * any. */
static mtf_zstd_t *zstd;

/* zstd's work space (about 650 KiB for records of 128 KiB) is written all
 * over by the first records: mmap'd and filled at once rather than a fault
 * per page. A header before the block keeps its mapped size. */
#define ZMEM_HDR 64
static void *zmem_alloc(void *opaque, size_t n)
{
    (void)opaque;
    size_t *p = mmap(NULL, n + ZMEM_HDR, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    mtp_populate(p, n + ZMEM_HDR);
    p[0] = n + ZMEM_HDR;
    return (char *)p + ZMEM_HDR;
}

static void zmem_free(void *opaque, void *q)
{
    (void)opaque;
    if (q) {
        size_t *p = (size_t *)((char *)q - ZMEM_HDR);
        munmap(p, p[0]);
    }
}


/* The descriptors of the file being written, -1 when none (writer-only). */
static int open_fds[2] = {-1, -1};

MTP_FORK_CODE void mtp_snapshot_atfork_child(void)
{
    if (cleaned)   /* stores only what changes: a page written is a fault here */
        cleaned = 0;
    mtp_snapview_end();
    mtp_live_stats_thaw();
    mtp_writer_sym_atfork_child();
    for (int i = 0; i < 2; i++) {
        if (open_fds[i] >= 0) {
            close(open_fds[i]);
            open_fds[i] = -1;
        }
    }
}

/* PYGRAPH made before the stacks are gathered, into memory (`made`, from
 * the private heap), and the graph's objects and references given back at
 * once: at the exit snapshot's peak the graph (about 24 bytes an object and
 * 4 a reference) would otherwise stand beside the stacks' tree, the names
 * and zstd's work space, which all come after it. The record is written in
 * its place later (mtf_enc_splice): the same bytes. 0, or a negative errno
 * with the graph left whole (then PYGRAPH is written in its place as
 * before). */
/* An encoder of the snapshot's records into sink: the context and the
 * size below which a record is stored are the same for every record. */
static void snap_encoder(mtf_enc_t *e, mtf_sink_t *sink)
{
    mtf_enc_init(e, sink, 0, 0);
    mtf_enc_codec(e, zstd);
    e->store_below = MTF_STORE_BELOW;
}

static int make_pygraph(gather_t *g, const mtp_snapinfo_t *info, mtf_mem_sink_t *made)
{
    emit_ctx_t ctx = {.g = g, .info = info};
    mtf_enc_t e;
    mtf_mem_sink_init(made, NULL, 0, 0);
    snap_encoder(&e, &made->sink);
    mtf_enc_begin(&e, MTSNAP_TAG_PYGRAPH);
    emit_pygraph(&e, &ctx);
    mtf_enc_end(&e);
    mtp_addrindex_free(&g->pyidx);
    free(g->pyaddr);
    g->pyaddr = NULL;
    if (e.err) {
        free(made->data);
        *made = (mtf_mem_sink_t){0};
        return e.err;
    }
    mtp_pygraph_drop_objects(info->graph);
    return 0;
}

int mtp_snapshot_write(const mtp_snapinfo_t *info, char *path, size_t pathlen)
{
    gather_t g = {0};
    mtf_file_sink_t *o = NULL;
    char tmp[PATH_MAX + 64], final[PATH_MAX + MTPROTO_NAME_MAX + 128];
    int r, keep = -1;
    uint64_t start_ns = mtp_mono_ns(), symbolize_ns = 0;

    /* The moment the snapshot holds: the live blocks (the view), the
     * per-stack figures (frozen: live.c) and the totals (a copy), the stacks
     * interned so far.
     * Everything after may yield, and the writer then changes the tables. */
    (void)mtp_live_stats(&g.nstats);
    uint32_t known = mtp_stack_count();
    if (g.nstats > known)
        g.nstats = known;
    mtp_live_stats_freeze(g.nstats);
    mtsnap_totals_t totals = *mtp_live_totals();
    totals.live_blocks = mtp_live_blocks(totals.live_blocks);
    totals.alloc_blocks = mtp_live_blocks(totals.alloc_blocks);
    totals.free_blocks = mtp_live_blocks(totals.free_blocks);
    totals.peak_blocks = mtp_live_blocks(totals.peak_blocks);
    uint64_t samples = mtp_live_samples();
    size_t nblocks = mtp_live_count();
    const mtsnap_tlpoint_t *tl;
    mtsnap_tlpoint_t tl_last;
    uint64_t tl_step;
    uint32_t ntl = mtp_timeline_view(&tl, &tl_last, &tl_step);
    mtp_snapview_begin(mtp_live_next);
    g.yield = info->yield;
    if ((r = strtab_grow(&g.strs)) < 0)
        goto out;
    strtab_add(&g.strs, "", 0);
    mtsnap_meta_t meta = {
        .pid = (uint32_t)info->pid, .ppid = (uint32_t)info->ppid, .time_ns = info->time_ns,
        .start_ns = info->start_ns, .counter = info->counter, .trigger = (uint32_t)info->trigger,
        .seq = info->seq, .label = strtab_cstr(&g.strs, info->label),
        .cmdline = strtab_add(&g.strs, info->cmdline, info->cmdline_len),
        .exe = strtab_cstr(&g.strs, info->exe), .hostname = strtab_cstr(&g.strs, info->hostname),
        .unwind = (uint32_t)mtp_cfg.unwind, .depth = mtp_cfg.depth,
        .flags = atomic_load_explicit(&mtp_meta_flags, memory_order_acquire)};
    if (meta.flags & MTSNAP_META_F_PY_HOOKS) {
        uint64_t at = atomic_load_explicit(&mtp_py_hooks_ns, memory_order_relaxed);
        meta.py_hooks_ms = at > info->start_ns ? (uint32_t)((at - info->start_ns) / 1000000u) : 0;
    }
    if (!zstd)   /* NULL: records stored */
        zstd = mtf_zstd_new_api(MTF_ZSTD_LEVEL, &(mtf_zstd_mem_t){zmem_alloc, zmem_free, NULL},
                                mtp_zapi_get);   /* libzstd loaded on first need */
    /* A small snapshot in a small window: its records compress as well
     * (a traced `python3 -c pass`'s two files: 670 KB either way), and
     * zstd's work space, the whole of it touched, is 0.7 MB smaller at the
     * peak of such a process; a large one gets the level's (at 64 KiB,
     * 8% more bytes for 1 M native blocks, 24% for 1 M Python ones). */
    if (zstd)
        mtf_zstd_window_log(zstd, nblocks + g.nstats < SMALL_SNAPSHOT ? SMALL_WINDOW_LOG : 0);
    mtf_mem_sink_t made = {0};
    if (info->graph && info->graph->order) {
        if ((r = gather_graph(&g, info->graph)) < 0)
            goto out;
        (void)make_pygraph(&g, info, &made);   /* or PYGRAPH is written in its place */
    }
    if ((r = gather_stacks(&g)) < 0)
        goto out;
    uint64_t sym_start = mtp_mono_ns();
    r = gather_symbols(&g);
    symbolize_ns = mtp_mono_ns() - sym_start;
    if (r < 0)
        goto out;

    /* The scan's kinds are in the order of the view, which began right after it. */
    const mtp_leakscan_t *leaks = info->leaks && info->leaks->nblocks == nblocks ? info->leaks : NULL;

    snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "%d.%04u" TMP_SUFFIX, mtp_cfg.outdir,
             (int)info->pid, info->seq);
    final_name(final, sizeof(final), info);
    o = malloc(sizeof(*o));   /* the 64 KiB buffer: not on the writer's stack */
    if (!o) {
        r = -ENOMEM;
        goto out;
    }
    int named, fd = open_file(tmp, &named);
    if (fd < 0) {
        r = fd;
        goto out;
    }
    /* the sink closes fd; an unnamed file is linked through a copy */
    if (!named && (keep = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        r = -errno;
        close(fd);
        goto out;
    }
    open_fds[0] = fd;
    open_fds[1] = keep;
    mtf_file_sink_init(o, fd);
    emit_ctx_t ctx = {&g, &meta, &totals, nblocks, start_ns, symbolize_ns, info,
                      tl, ntl, tl_last, tl_step, samples};
    mtf_source_t src = {
        .meta = emit_meta, .strings = emit_strings, .modules = emit_modules,
        .frames = emit_frames, .stacks = emit_stacks, .stack_stats = emit_stack_stats,
        .totals = emit_totals, .blocks = emit_blocks,
        .sampling = mtp_cfg.sample ? emit_sampling : NULL,
        .inlined = g.ninlined ? emit_inlined : NULL,
        .leaks = leaks ? emit_leaks : NULL,
        .pygraph = !made.len && info->graph && info->graph->order ? emit_pygraph : NULL,
        .timeline = emit_timeline, .costs = info->costs ? emit_costs : NULL,
        .timing = emit_timing,
        .made_tag = MTSNAP_TAG_PYGRAPH, .made = made.data, .made_len = made.len};
    mtf_enc_t enc;
    snap_encoder(&enc, &o->sink);
    mtf_encode(&enc, &src, &ctx);
    r = mtf_enc_close(&enc);
    open_fds[0] = -1;   /* the sink closed it */
    if (named) {
        if (!r && rename(tmp, final) < 0)
            r = -errno;
        if (r)
            unlink(tmp);
    } else if (!r) {
        r = publish(keep, tmp, final);
    }
    if (!r && path)
        snprintf(path, pathlen, "%s", final);
out:
    mtp_snapview_end();
    mtp_live_stats_thaw();
    open_fds[0] = open_fds[1] = -1;
    if (keep >= 0)
        close(keep);
    free(o);
    free(g.remap);
    mtp_framemap_free(&g.fm);
    free(g.frames);
    free(g.inlined);
    free(g.xfirst);
    free(g.xbuf);
    free(g.mods);
    free(g.type_str);
    free(made.data);
    mtp_addrindex_free(&g.pyidx);
    free(g.pyaddr);
    strtab_free(&g.strs);
    if (zstd && info->trigger != MTSNAP_TRIGGER_EXIT) {
        mtf_zstd_free(zstd);
        zstd = NULL;
    }
    return r;
}

/* ---- stale temporaries ---- */
/* The pid in a temporary's name, or 0 when name is not exactly one. */
static long tmp_owner(const char *name)
{
    const char *p = name + strlen(TMP_PREFIX);
    long pid = 0;
    int n = 0;
    if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0 || *p == '0')
        return 0;
    for (; *p >= '0' && *p <= '9' && n < 10; p++, n++)
        pid = pid * 10 + (*p - '0');
    if (!n || *p++ != '.')
        return 0;
    for (n = 0; *p >= '0' && *p <= '9' && n < 10; p++)
        n++;
    return n >= 4 && strcmp(p, TMP_SUFFIX) == 0 && pid <= INT32_MAX ? pid : 0;
}

/* Removes dirfd/name if it is a regular file of ours, with a name, that no
 * writer holds (flock). Never follows a symlink; opens nothing but a
 * regular file. */
static void remove_stale(int dirfd, const char *name)
{
    struct stat before, st;
    if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(before.st_mode) ||
        before.st_uid != geteuid())
        return;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == before.st_ino &&
        st.st_dev == before.st_dev && st.st_nlink > 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        unlinkat(dirfd, name, 0);
    close(fd);
}

static void clean_stale(void)
{
    if (cleaned)
        return;
    cleaned = 1;
    int saved = errno;
    char buf[4096] __attribute__((aligned(8)));
    ssize_t n;
    int dirfd = open(mtp_cfg.outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        goto out;   /* missing or unreadable: the first snapshot will say so */
    while ((n = getdents64(dirfd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *de = (struct dirent64 *)(buf + off);
            off += de->d_reclen;
            long pid = tmp_owner(de->d_name);
            if (!pid || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
                continue;
            if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
                remove_stale(dirfd, de->d_name);
        }
    }
    close(dirfd);
out:
    errno = saved;
}
