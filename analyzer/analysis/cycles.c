/*
 * `memtrail cycles`: reference cycles and refcount leaks in a snapshot's
 * Python object graph (the PYGRAPH record); render/cycles_render.c writes
 * them as text and JSON.
 *
 * The nodes are the graph's objects; an edge counts when its referent is a
 * node (binary search on the address-sorted objects). First the unreached
 * set U, by the collector's rule: the roots are the objects whose refcount
 * is above the references found to them (held from outside the graph),
 * IMMORTAL or STATIC, except that with a scan (MTSNAP_PYGRAPH_F_SCANNED) an
 * object held from outside that the scan did not REACH is not a root: no
 * pointer to it exists. U is what the roots do not reach. A member of U whose refcount is
 * above its references is a refcount leak (scanned graphs only: without a
 * scan such an object is a root); K is what the leaks reach inside U, the
 * leaks included, and G = U \ K the garbage. Cycles are the strongly
 * connected components with two members or a self edge, found by an
 * iterative Tarjan (graphs hold millions of objects: no recursion). An
 * alive component holding definition objects (classes, functions, modules:
 * an instance refers to its class, whose methods refer to the module that
 * holds the instance) is searched a second time without them, and the
 * components found there are cycles too, nested in it: the program's own
 * cycles among its module's objects.
 * Invariants: U is closed under references (nothing outside U refers into
 * it), so a cycle lies wholly inside U or wholly outside; K is closed under
 * references within U, so a cycle in U lies wholly in K or wholly in G.
 * Every walk uses explicit stacks or queues bounded by the node count.
 */
#include "cycles.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

#define NONE UINT32_MAX

/* The analysis state that does not outlive mta_cycles_compute(). */
typedef struct ctx {
    mta_cycles_t *c;
    const mta_snapshot_t *s;
    uint32_t n;
    uint32_t *tgt;      /* per edge: the referent node, or NONE */
    uint32_t *mark;     /* per node: the stamp of the last walk that reached it */
    uint32_t *queue;    /* n entries */
} ctx_t;

/* The node at `addr`, or NONE. */
static uint32_t node_at(const mta_snapshot_t *s, uint64_t addr)
{
    size_t lo = 0, hi = s->pygraph.objects;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->pyobjs[mid].address < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->pygraph.objects && s->pyobjs[lo].address == addr ? (uint32_t)lo : NONE;
}

/* Breadth-first walk from the first `len` entries of x->queue (stamped
 * already): stamps with `stamp` and appends each node they reach that is
 * not stamped with it yet (and is in U when only_u). Returns the length. */
static size_t walk(ctx_t *x, size_t len, uint32_t stamp, bool only_u)
{
    const mta_snapshot_t *s = x->s;
    for (size_t head = 0; head < len; head++) {
        uint32_t v = x->queue[head];
        for (uint64_t e = s->pyedge_first[v]; e < s->pyedge_first[v + 1]; e++) {
            uint32_t w = x->tgt[e];
            if (w == NONE || x->mark[w] == stamp || (only_u && !(x->c->set[w] & MTA_PY_UNREACHED)))
                continue;
            x->mark[w] = stamp;
            x->queue[len++] = w;
        }
    }
    return len;
}

/* Object sizes and allocation stacks: objects and blocks are both sorted by
 * address, so one merge pass finds each object's block. A mapping (the mmap
 * domain) is no object's block: it may hold the allocator's. */
static void place_objects(ctx_t *x)
{
    const mta_snapshot_t *s = x->s;
    uint64_t b = 0;
    const mtsnap_block_t *bl = NULL;   /* the last block at or below the object, if any */
    for (uint32_t i = 0; i < x->n; i++) {
        const mtsnap_pyobj_t *o = &s->pyobjs[i];
        for (; b < s->nblocks && s->blocks[b].address <= o->address; b++)
            if (s->blocks[b].domain != MTSNAP_DOMAIN_MMAP)
                bl = &s->blocks[b];
        bool in = bl && o->address - bl->address < (bl->size ? bl->size : 1);
        x->c->size[i] = in ? bl->size : o->size;
        x->c->stack[i] = in ? bl->stack : MTSNAP_NONE;
    }
}

/* U, the refcount leaks and K (steps 1 to 3 of docs/cycles.md). */
static int find_sets(ctx_t *x)
{
    mta_cycles_t *c = x->c;
    const mta_snapshot_t *s = x->s;
    size_t len = 0, nleaks = 0;
    for (uint32_t i = 0; i < x->n; i++) {
        const mtsnap_pyobj_t *o = &s->pyobjs[i];
        /* Held from outside the graph (its count is above the references
         * found): a root, unless a scan ran and found no pointer to it
         * anywhere (a refcount leak). Reference counts decide what is
         * garbage, as in the collector; the scan only tells a real outside
         * holder from a missing Py_DECREF, so a stale word in memory can
         * hide a leak but never makes garbage look alive. */
        bool external = o->refcount > (int64_t)c->referrers[i];
        bool root = (o->flags & (MTSNAP_PYOBJ_IMMORTAL | MTSNAP_PYOBJ_STATIC)) ||
                    (external && (!c->scanned || (o->flags & MTSNAP_PYOBJ_REACHED)));
        if (root) {
            x->mark[i] = 1;
            x->queue[len++] = i;
        }
    }
    walk(x, len, 1, false);
    for (uint32_t i = 0; i < x->n; i++) {
        if (x->mark[i] == 1)
            continue;
        c->set[i] = MTA_PY_UNREACHED;
        if (c->scanned && s->pyobjs[i].refcount > (int64_t)c->referrers[i])
            nleaks++;
    }
    c->leaks = calloc(nleaks ? nleaks : 1, sizeof(*c->leaks));
    if (!c->leaks)
        return -ENOMEM;
    /* K: one walk from every leak. */
    len = 0;
    for (uint32_t i = 0; i < x->n && c->nleaks < nleaks; i++) {
        if (!(c->set[i] & MTA_PY_UNREACHED) || s->pyobjs[i].refcount <= (int64_t)c->referrers[i])
            continue;
        c->leaks[c->nleaks++] = (mta_pyleak_t){
            .obj = i, .referrers = c->referrers[i],
            .unexplained = s->pyobjs[i].refcount - (int64_t)c->referrers[i] };
        x->mark[i] = 2;
        x->queue[len++] = i;
    }
    len = walk(x, len, 2, true);
    for (size_t k = 0; k < len; k++) {
        c->set[x->queue[k]] |= MTA_PY_KEPT;
        c->leaked_objects++;
        c->leaked_bytes += c->size[x->queue[k]];
    }
    /* What each leak keeps alive: its own walk, with its own stamp. */
    for (size_t l = 0; l < c->nleaks; l++) {
        mta_pyleak_t *lk = &c->leaks[l];
        uint32_t stamp = 3 + (uint32_t)l;
        x->mark[lk->obj] = stamp;
        x->queue[0] = lk->obj;
        len = walk(x, 1, stamp, true);
        for (size_t k = 1; k < len; k++) {
            lk->keep_objects++;
            lk->keep_bytes += c->size[x->queue[k]];
        }
    }
    for (uint32_t i = 0; i < x->n; i++) {
        if (c->set[i] == MTA_PY_UNREACHED) {
            c->garbage_objects++;
            c->garbage_bytes += c->size[i];
        }
    }
    return 0;
}

/* Work arrays of tarjan(), one entry per node each. */
typedef struct scc_work {
    uint32_t *idx;       /* visit order + 1; 0: not visited yet (zeroed before a pass) */
    uint32_t *low;
    uint32_t *stack;     /* the nodes of the components not finished yet */
    uint64_t *cursor;    /* per call frame: the next edge to follow */
} scc_work_t;

/* Tarjan's strongly connected components without recursion, over the nodes
 * v with allowed[v] (all nodes when NULL) and the edges between them: each
 * call frame is (node x->queue[i], next edge cursor[i]) on an explicit
 * stack. comp[v] (NONE on entry) gets base + the component's number, in
 * completion order; returns the number of components. */
static uint32_t tarjan(ctx_t *x, const uint8_t *allowed, scc_work_t *t, uint32_t *comp,
                       uint32_t base)
{
    const mta_snapshot_t *s = x->s;
    uint32_t *frame = x->queue, *idx = t->idx, *low = t->low;
    uint32_t next = 0, ncomp = 0;
    size_t sp = 0, fp = 0;
    for (uint32_t r = 0; r < x->n; r++) {
        if (idx[r] || (allowed && !allowed[r]))
            continue;
        idx[r] = low[r] = ++next;
        t->stack[sp++] = r;
        frame[fp] = r;
        t->cursor[fp++] = s->pyedge_first[r];
        while (fp > 0) {
            uint32_t v = frame[fp - 1];
            if (t->cursor[fp - 1] < s->pyedge_first[v + 1]) {
                uint32_t w = x->tgt[t->cursor[fp - 1]++];
                if (w == NONE || (allowed && !allowed[w]))
                    continue;
                if (!idx[w]) {
                    idx[w] = low[w] = ++next;
                    t->stack[sp++] = w;
                    frame[fp] = w;
                    t->cursor[fp++] = s->pyedge_first[w];
                } else if (comp[w] == NONE && idx[w] < low[v]) {
                    low[v] = idx[w];   /* w is on the component stack */
                }
                continue;
            }
            fp--;
            if (low[v] == idx[v]) {
                uint32_t w;
                do {
                    w = t->stack[--sp];
                    comp[w] = base + ncomp;
                } while (w != v);
                ncomp++;
            }
            if (fp > 0 && low[v] < low[frame[fp - 1]])
                low[frame[fp - 1]] = low[v];
        }
    }
    return ncomp;
}

static bool self_edge(const ctx_t *x, uint32_t v)
{
    for (uint64_t e = x->s->pyedge_first[v]; e < x->s->pyedge_first[v + 1]; e++)
        if (x->tgt[e] == v)
            return true;
    return false;
}

static int cmp_cycle(const void *a, const void *b)
{
    const mta_pycycle_t *x = a, *y = b;
    if (x->shown != y->shown)
        return x->shown ? -1 : 1;
    if (x->garbage != y->garbage)
        return x->garbage ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->nmembers != y->nmembers)
        return x->nmembers > y->nmembers ? -1 : 1;
    return x->members[0] < y->members[0] ? -1 : x->members[0] > y->members[0];
}

static int cmp_leak(const void *a, const void *b, void *cv)
{
    const mta_cycles_t *c = cv;
    const mta_pyleak_t *x = a, *y = b;
    uint64_t kx = x->keep_bytes + c->size[x->obj], ky = y->keep_bytes + c->size[y->obj];
    if (x->shown != y->shown)
        return x->shown ? -1 : 1;
    if (kx != ky)
        return kx > ky ? -1 : 1;
    return x->obj < y->obj ? -1 : x->obj > y->obj;
}

/* Per component: a member refers to itself; a member is a definition object. */
#define COMP_SELF 0x1u
#define COMP_DEF 0x2u

/* The cycles (step 4) and their display (step 5). Components are numbered
 * 0..ncomp-1 for the whole graph (comp[v]), then on for the nested pass
 * (comp[n + v], NONE for the nodes it leaves out). */
static int find_cycles(ctx_t *x)
{
    mta_cycles_t *c = x->c;
    const mta_snapshot_t *s = x->s;
    size_t n = x->n ? x->n : 1, total = 0, ninner = 0;
    scc_work_t t = { calloc(n, sizeof(uint32_t)), malloc(n * sizeof(uint32_t)),
                     malloc(n * sizeof(uint32_t)), malloc(n * sizeof(uint64_t)) };
    uint32_t *comp = malloc(2 * n * sizeof(*comp)), *count = calloc(2 * n, sizeof(*count));
    uint32_t *cycle_of = malloc(2 * n * sizeof(*cycle_of));
    uint8_t *info = calloc(2 * n, 1), *def = calloc(n, 1), *inner = calloc(n, 1);
    uint8_t *type_def = calloc(s->nstrings ? s->nstrings : 1, 1);   /* 0 unknown, 1 no, 2 yes */
    int rc = -ENOMEM;
    if (!t.idx || !t.low || !t.stack || !t.cursor || !comp || !count || !cycle_of || !info ||
        !def || !inner || !type_def)
        goto out;
    memset(comp, 0xff, 2 * n * sizeof(*comp));
    uint32_t ncomp = tarjan(x, NULL, &t, comp, 0), nall = ncomp;
    for (uint32_t v = 0; v < x->n; v++) {
        uint32_t type = s->pyobjs[v].type;
        if (!type_def[type])
            type_def[type] = mta_pytype_is_definition(s->strings[type]) ? 2 : 1;
        /* a class made by a metaclass (an Enum's EnumType) is a definition
         * too, whatever its type's name */
        def[v] = type_def[type] == 2 || (s->pyobjs[v].flags & MTSNAP_PYOBJ_CLASS);
        count[comp[v]]++;
        info[comp[v]] |= (def[v] ? COMP_DEF : 0) | (self_edge(x, v) ? COMP_SELF : 0);
    }
    /* Nested: alive cycles holding definitions, searched again without them. */
    for (uint32_t v = 0; v < x->n; v++) {
        uint32_t k = comp[v];
        inner[v] = (count[k] >= 2 || (info[k] & COMP_SELF)) && (info[k] & COMP_DEF) && !def[v] &&
                   c->set[v] != MTA_PY_UNREACHED;
        ninner += inner[v];
    }
    if (ninner) {
        memset(t.idx, 0, n * sizeof(uint32_t));
        nall += tarjan(x, inner, &t, comp + x->n, ncomp);
        for (uint32_t v = 0; v < x->n; v++) {
            if (!inner[v])
                continue;
            count[comp[x->n + v]]++;
            info[comp[x->n + v]] |= self_edge(x, v) ? COMP_SELF : 0;
        }
    }
    for (uint32_t k = 0; k < nall; k++) {
        bool cyclic = count[k] >= 2 || (info[k] & COMP_SELF);
        cycle_of[k] = cyclic ? (uint32_t)c->ncycles++ : NONE;
        total += cyclic ? count[k] : 0;
    }
    c->cycles = calloc(c->ncycles ? c->ncycles : 1, sizeof(*c->cycles));
    c->storage = malloc((total ? total : 1) * sizeof(*c->storage));
    if (!c->cycles || !c->storage)
        goto out;
    total = 0;
    for (uint32_t k = 0; k < nall; k++) {
        if (cycle_of[k] == NONE)
            continue;
        mta_pycycle_t *cy = &c->cycles[cycle_of[k]];
        cy->members = c->storage + total;
        cy->nested = k >= ncomp;
        cy->garbage = true;   /* until a member says otherwise */
        total += count[k];
    }
    for (uint32_t v = 0; v < x->n; v++) {   /* ascending: members by address */
        for (int pass = 0; pass < 2; pass++) {
            uint32_t k = pass ? (inner[v] ? comp[x->n + v] : NONE) : comp[v];
            if (k == NONE || cycle_of[k] == NONE)
                continue;
            mta_pycycle_t *cy = &c->cycles[cycle_of[k]];
            cy->members[cy->nmembers++] = v;
            cy->bytes += c->size[v];
            cy->garbage &= c->set[v] == MTA_PY_UNREACHED;
            cy->kept_by_leak |= (c->set[v] & MTA_PY_KEPT) != 0;
        }
    }
    for (size_t k = 0; k < c->ncycles; k++) {
        mta_pycycle_t *cy = &c->cycles[k];
        bool own = false, definition = false, unknown = false;
        for (uint32_t m = 0; m < cy->nmembers && !own; m++)
            own = mta_pyobj_is_programs(c, cy->members[m]);
        for (uint32_t m = 0; m < cy->nmembers && own && !cy->garbage && !definition; m++)
            definition = def[cy->members[m]];
        /* Sampled: a member without a block has no known origin, so a
         * garbage cycle of such members cannot be said to be the library's. */
        for (uint32_t m = 0; m < cy->nmembers && s->has_sampling && cy->garbage && !unknown; m++)
            unknown = c->stack[cy->members[m]] == MTSNAP_NONE;
        cy->shown = c->all || (own && !definition) || unknown;
        *(cy->garbage ? &c->garbage_cycles : &c->alive_cycles) += 1;
        c->hidden_cycles += !cy->shown;
    }
    qsort(c->cycles, c->ncycles, sizeof(*c->cycles), cmp_cycle);
    for (size_t l = 0; l < c->nleaks; l++) {
        c->leaks[l].shown = c->all || mta_pyobj_is_programs(c, c->leaks[l].obj);
        c->hidden_leaks += !c->leaks[l].shown;
    }
    qsort_r(c->leaks, c->nleaks, sizeof(*c->leaks), cmp_leak, c);
    rc = 0;
out:
    free(t.idx);
    free(t.low);
    free(t.stack);
    free(t.cursor);
    free(comp);
    free(count);
    free(cycle_of);
    free(info);
    free(def);
    free(inner);
    free(type_def);
    return rc;
}

int mta_cycles_compute(const mta_snapshot_t *snap, bool all, mta_cycles_t **out)
{
    *out = NULL;
    if (!snap->has_pygraph)
        return -EINVAL;
    mta_cycles_t *c = calloc(1, sizeof(*c));
    ctx_t x = { .c = c, .s = snap, .n = snap->pygraph.objects };
    size_t n = x.n ? x.n : 1;
    size_t nedges = snap->pygraph.edges ? (size_t)snap->pygraph.edges : 1;
    int rc = -ENOMEM;
    if (!c)
        return -ENOMEM;
    c->snap = snap;
    c->all = all;
    /* A sampled snapshot's scan read the sampled blocks only: a reference
     * held in a block that was not sampled (an extension's C struct) went
     * unseen, and REACHED would turn its object into a refcount leak. The
     * collector's rule decides there, as without a scan. */
    c->scanned = (snap->pygraph.flags & MTSNAP_PYGRAPH_F_SCANNED) != 0 && !snap->has_sampling;
    c->nobjects = x.n;
    c->size = malloc(n * sizeof(*c->size));
    c->stack = malloc(n * sizeof(*c->stack));
    c->referrers = calloc(n, sizeof(*c->referrers));
    c->set = calloc(n, 1);
    c->stack_own = calloc(snap->nstacks ? snap->nstacks : 1, 1);
    x.tgt = malloc(nedges * sizeof(*x.tgt));
    x.mark = calloc(n, sizeof(*x.mark));
    x.queue = malloc(n * sizeof(*x.queue));
    if (!c->size || !c->stack || !c->referrers || !c->set || !c->stack_own || !x.tgt ||
        !x.mark || !x.queue)
        goto out;
    for (uint64_t e = 0; e < snap->pygraph.edges; e++) {
        x.tgt[e] = node_at(snap, snap->pyedges[e]);
        if (x.tgt[e] != NONE && c->referrers[x.tgt[e]] < UINT32_MAX)
            c->referrers[x.tgt[e]]++;
    }
    place_objects(&x);
    if ((rc = find_sets(&x)) == 0)
        rc = find_cycles(&x);
out:
    free(x.tgt);
    free(x.mark);
    free(x.queue);
    if (rc < 0)
        mta_cycles_free(c);
    else
        *out = c;
    return rc;
}

void mta_cycles_free(mta_cycles_t *c)
{
    if (!c)
        return;
    free(c->size);
    free(c->stack);
    free(c->referrers);
    free(c->set);
    free(c->cycles);
    free(c->leaks);
    free(c->storage);
    free(c->stack_own);
    free(c);
}

uint32_t mta_py_frame(const mta_snapshot_t *s, uint32_t stack)
{
    if (stack == MTSNAP_NONE)
        return MTSNAP_NONE;
    const mta_stack_t *st = &s->stacks[stack];
    for (uint32_t i = 0; i < st->depth; i++)
        if (s->frames[st->frames[i]].kind == MTSNAP_FRAME_PYTHON)
            return st->frames[i];
    return MTSNAP_NONE;
}

bool mta_pyobj_is_programs(mta_cycles_t *c, uint32_t i)
{
    const mta_snapshot_t *s = c->snap;
    uint32_t stack = c->stack[i];
    if (stack == MTSNAP_NONE)
        return false;
    if (!c->stack_own[stack]) {
        uint32_t f = mta_py_frame(s, stack);
        const char *file = f == MTSNAP_NONE ? "<" : s->frames[f].file;
        const char *lib = s->strings[s->pygraph.stdlib];
        size_t n = strlen(lib);
        /* The standard library's directory holds the installed packages
         * too (site-packages): those are not the standard library, and
         * their findings are the program's. */
        bool in_lib = n > 0 && strncmp(file, lib, n) == 0 &&
                      (lib[n - 1] == '/' || file[n] == '/' || file[n] == '\0') &&
                      !strstr(file + n, "site-packages/") && !strstr(file + n, "dist-packages/");
        c->stack_own[stack] = file[0] == '<' || in_lib ? 1 : 2;
    }
    return c->stack_own[stack] == 2;
}

bool mta_pytype_is_definition(const char *type)
{
    static const char *const names[] = {
        "module", "type", "function", "code", "builtin_function_or_method",
        "method_descriptor", "getset_descriptor", "member_descriptor", "wrapper_descriptor",
        "mappingproxy",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(type, names[i]) == 0)
            return true;
    return false;
}

void mta_cycles_count_shown(const mta_cycles_t *c, const mta_cycles_opts_t *o,
                            mta_cycles_shown_t *sh)
{
    *sh = (mta_cycles_shown_t){ 0 };
    for (size_t k = 0; k < c->ncycles; k++) {
        sh->cycles += c->cycles[k].shown;
        sh->garbage += c->cycles[k].shown && c->cycles[k].garbage;
    }
    for (size_t l = 0; l < c->nleaks; l++)
        sh->leaks += c->leaks[l].shown;
    sh->list_cycles = o->top && o->top < sh->cycles ? o->top : sh->cycles;
    sh->list_leaks = o->top && o->top < sh->leaks ? o->top : sh->leaks;
    sh->failed = o->fail_on_leak && (sh->garbage > 0 || sh->leaks > 0);
}
