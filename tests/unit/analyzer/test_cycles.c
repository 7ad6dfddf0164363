/* `memtrail cycles` and diff's per-type growth on composed snapshots with a
 * PYGRAPH record: the sets U, K and G, cycles, refcount leaks, the display
 * rules, the outputs, the gate, and the command's exit statuses. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "outputs.h"
#include "cycles.h"
#include "diff.h"
#include "snapcompose.h"
#include "snapshot.h"

#define SCANNED (MTSNAP_PYGRAPH_F_SCANNED | MTSNAP_PYGRAPH_F_GC_ENABLED)
#define REACHED MTSNAP_PYOBJ_REACHED
#define NOBLOCK MTSNAP_NONE

/* A snapshot under construction with its object graph. Stacks:
 *   app     PyObject_Malloc <- make_pair (/home/u/app.py:10) <- <module> (app.py:30)
 *   lib     PyObject_Malloc <- decode (/usr/lib/python3.11/json/decoder.py:5) <- <module>
 *   frozen  PyObject_Malloc <- _load (<frozen importlib._bootstrap>:100)
 *   native  PyObject_Malloc (no Python frame)
 * The standard library's directory is /usr/lib/python3.11. */
typedef struct graph {
    mtc_snap_t s;
    uint32_t app, lib, frozen, native;
    mtsnap_pygraph_header_t h;
    mtsnap_pyobj_t *objs;
    uint64_t *edges;
    uint32_t n;
    uint64_t ne;
} graph_t;

static uint32_t pyframe(graph_t *g, const char *fn, const char *file, uint32_t line)
{
    uint32_t f = mtc_frame(&g->s, 0, MTSNAP_NONE, fn, file, line);
    g->s.frames[f].kind = MTSNAP_FRAME_PYTHON;
    return f;
}

static void graph_init(graph_t *g, uint32_t flags)
{
    memset(g, 0, sizeof(*g));
    mtc_snap_init(&g->s);
    g->s.meta.cmdline = mtc_strn(&g->s, "python3\0app.py\0", 15);
    uint32_t py = mtc_module(&g->s, 0x7f0000000000, 0x7f0000400000, 0x7f0000000000,
                             "/usr/lib/libpython3.11.so.1.0");
    uint32_t alloc = mtc_frame(&g->s, 0x7f0000001234, py, "PyObject_Malloc", "", 0);
    uint32_t make = pyframe(g, "make_pair", "/home/u/app.py", 10);
    uint32_t top = pyframe(g, "<module>", "/home/u/app.py", 30);
    uint32_t dec = pyframe(g, "decode", "/usr/lib/python3.11/json/decoder.py", 5);
    uint32_t load = pyframe(g, "_load", "<frozen importlib._bootstrap>", 100);
    g->app = mtc_stack(&g->s, 3, (uint32_t[]){ alloc, make, top });
    g->lib = mtc_stack(&g->s, 3, (uint32_t[]){ alloc, dec, top });
    g->frozen = mtc_stack(&g->s, 2, (uint32_t[]){ alloc, load });
    g->native = mtc_stack(&g->s, 1, (uint32_t[]){ alloc });
    g->h.flags = flags;
    g->h.py_minor = 11;
    g->h.capture_ns = 1500000;
    g->h.stdlib = mtc_str(&g->s, "/usr/lib/python3.11");
}

/* Adds an object at addr (in ascending order) with its references (nrefs
 * addresses). Its block (64 B from `stack`, 16 B below it) unless stack is
 * NOBLOCK; its recorded size is 32. */
static void obj(graph_t *g, uint64_t addr, const char *type, int64_t refcount, uint32_t flags,
                uint32_t stack, uint32_t nrefs, ...)
{
    g->objs = realloc(g->objs, (g->n + 1) * sizeof(*g->objs));
    g->edges = realloc(g->edges, (g->ne + nrefs + 1) * sizeof(*g->edges));
    g->objs[g->n++] = (mtsnap_pyobj_t){ .address = addr, .size = 32, .refcount = refcount,
                                        .type = mtc_str(&g->s, type), .flags = flags,
                                        .nrefs = nrefs };
    va_list ap;
    va_start(ap, nrefs);
    for (uint32_t i = 0; i < nrefs; i++)
        g->edges[g->ne++] = va_arg(ap, uint64_t);
    va_end(ap);
    if (stack != NOBLOCK)
        mtc_block(&g->s, addr - 16, 64, stack);
}

static void graph_file(graph_t *g, mtc_buf_t *file)
{
    mtc_buf_t pl = { 0 };
    g->h.objects = g->n;
    g->h.edges = g->ne;
    mtc_put(&pl, &g->h, sizeof(g->h));
    mtc_put(&pl, g->objs, g->n * sizeof(*g->objs));
    mtc_put(&pl, g->edges, g->ne * sizeof(*g->edges));
    mtc_extra_t ex = { MTSNAP_TAG_PYGRAPH, pl.data, pl.len };
    mtc_compose_with(&g->s, &ex, 1, file);
    mtc_buf_free(&pl);
}

static void graph_free(graph_t *g)
{
    mtc_snap_free(&g->s);
    free(g->objs);
    free(g->edges);
}

static mta_snapshot_t *parse(const mtc_buf_t *b, const char *name)
{
    mta_snapshot_t *snap = NULL;
    char err[512];
    cr_assert_eq(mta_snapshot_parse(b->data, b->len, name, &snap, err, sizeof(err)), 0, "%s", err);
    return snap;
}

static mta_snapshot_t *graph_load(graph_t *g)
{
    mtc_buf_t b = { 0 };
    graph_file(g, &b);
    mta_snapshot_t *snap = parse(&b, "py.mtsnap");
    mtc_buf_free(&b);
    graph_free(g);
    return snap;
}

static mta_cycles_t *analyze(mta_snapshot_t *snap, bool all)
{
    mta_cycles_t *c = NULL;
    cr_assert_eq(mta_cycles_compute(snap, all, &c), 0);
    return c;
}

/* The output of mta_cycles(); *rc gets its return value. */
static char *render(const mta_snapshot_t *snap, mta_format_t format, bool all, bool fail, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mta_cycles_opts_t o = { .format = format, .all = all, .top = 20, .fail_on_leak = fail };
    *rc = mta_cycles(f, snap, &o);
    fclose(f);
    return buf;
}

static void expect(const char *out, const char *want)
{
    cr_assert_not_null(strstr(out, want), "missing '%s' in:\n%s", want, out);
}

static void expect_not(const char *out, const char *unwanted)
{
    cr_assert_null(strstr(out, unwanted), "unexpected '%s' in:\n%s", unwanted, out);
}

Test(cycles, two_object_garbage_cycle)
{
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "module", 5, REACHED, g.app, 0);
    obj(&g, 0x2000, "Node", 1, 0, g.app, 1, (uint64_t)0x3000);
    obj(&g, 0x3000, "Node", 1, MTSNAP_PYOBJ_FINALIZER, g.app, 2, (uint64_t)0x2000,
        (uint64_t)0x9999);   /* an edge to an untracked object: ignored */
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert(c->scanned);
    cr_assert_eq(c->ncycles, 1);
    cr_assert(c->cycles[0].garbage && !c->cycles[0].kept_by_leak && c->cycles[0].shown);
    cr_assert_eq(c->cycles[0].nmembers, 2);
    cr_assert_eq(c->cycles[0].members[0], 1);
    cr_assert_eq(c->cycles[0].members[1], 2);
    cr_assert_eq(c->cycles[0].bytes, 128);   /* the blocks' sizes, not the recorded 32 */
    cr_assert_eq(c->garbage_cycles, 1);
    cr_assert_eq(c->garbage_objects, 2);
    cr_assert_eq(c->garbage_bytes, 128);
    cr_assert_eq(c->alive_cycles + c->nleaks + c->hidden_cycles, 0);
    cr_assert_eq(c->set[0], 0);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    cr_assert_eq(rc, 0);
    expect(out, "snapshot: py.mtsnap\n");
    expect(out, "command: python3 app.py\n");
    expect(out, "objects in graph: 3 gc-tracked, 3 references (python 3.11, gc enabled");
    expect(out, "garbage cycles: 1 (2 objects, 128 B of garbage)\n");
    expect(out, "\ngarbage cycle of 2 objects, 128 B (the collector will free it at its next run)\n"
                "    Node at 0x2000, 64 B, allocated at /home/u/app.py:10 in make_pair\n"
                "    Node at 0x3000, 64 B, has __del__, allocated at /home/u/app.py:10 in make_pair\n");
    expect(out, "\nno refcount leaks in the program's code\n");
    free(out);
    mta_snapshot_free(snap);
}

Test(cycles, self_loop_and_disabled_collector)
{
    graph_t g;
    graph_init(&g, MTSNAP_PYGRAPH_F_SCANNED);
    obj(&g, 0x1000, "Node", 1, 0, g.app, 1, (uint64_t)0x1000);
    obj(&g, 0x2000, "Node", 1, REACHED, g.app, 0);   /* no cycle */
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert_eq(c->ncycles, 1);
    cr_assert_eq(c->cycles[0].nmembers, 1);
    cr_assert(c->cycles[0].garbage);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    expect(out, "gc disabled");
    expect(out, "garbage cycle of 1 object, 64 B (collection is disabled: it stays)\n");
    free(out);
    mta_snapshot_free(snap);
}

Test(cycles, alive_cycle_reachable_from_a_reached_object)
{
    for (int flagged = 0; flagged < 2; flagged++) {
        /* Members flagged REACHED (as the writer does) or not: the
         * analyzer closes the roots over their references either way. */
        uint32_t f = flagged ? REACHED : 0;
        graph_t g;
        graph_init(&g, SCANNED);
        obj(&g, 0x1000, "Holder", 1, REACHED, g.app, 1, (uint64_t)0x2000);
        obj(&g, 0x2000, "Node", 2, f, g.app, 1, (uint64_t)0x3000);
        obj(&g, 0x3000, "Node", 1, f, g.app, 1, (uint64_t)0x2000);
        mta_snapshot_t *snap = graph_load(&g);
        mta_cycles_t *c = analyze(snap, false);
        cr_assert_eq(c->ncycles, 1);
        cr_assert(!c->cycles[0].garbage && !c->cycles[0].kept_by_leak && c->cycles[0].shown);
        cr_assert_eq(c->alive_cycles, 1);
        cr_assert_eq(c->garbage_cycles + c->garbage_objects + c->nleaks, 0);
        for (uint32_t i = 0; i < 3; i++)
            cr_assert_eq(c->set[i], 0);
        mta_cycles_free(c);
        int rc;
        char *out = render(snap, MTA_FORMAT_TEXT, false, true, &rc);
        cr_assert_eq(rc, 0);
        expect(out, "\nalive cycle of 2 objects, 128 B (reachable from outside)\n");
        expect(out, "verdict: ok: no garbage cycle or refcount leak in the program's code (--fail-on-leak)\n");
        free(out);
        mta_snapshot_free(snap);
    }
}

Test(cycles, refcount_leak_and_what_it_keeps_alive)
{
    graph_t g;
    graph_init(&g, SCANNED);
    /* L: refcount 2, one reference (from C): 1 unexplained. L <-> C is a
     * cycle, C -> D; both kept alive by the leak. */
    obj(&g, 0x1000, "Leaky", 2, 0, g.app, 1, (uint64_t)0x2000);
    obj(&g, 0x2000, "dict", 1, 0, g.app, 2, (uint64_t)0x1000, (uint64_t)0x3000);
    obj(&g, 0x3000, "list", 1, 0, g.app, 0);
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert_eq(c->nleaks, 1);
    const mta_pyleak_t *l = &c->leaks[0];
    cr_assert_eq(l->obj, 0);
    cr_assert_eq(l->referrers, 1);
    cr_assert_eq(l->unexplained, 1);
    cr_assert_eq(l->keep_objects, 2);
    cr_assert_eq(l->keep_bytes, 128);
    cr_assert(l->shown);
    cr_assert_eq(c->leaked_objects, 3);
    cr_assert_eq(c->leaked_bytes, 192);
    cr_assert_eq(c->garbage_objects, 0);
    cr_assert_eq(c->ncycles, 1);
    cr_assert(!c->cycles[0].garbage && c->cycles[0].kept_by_leak);
    for (uint32_t i = 0; i < 3; i++)
        cr_assert_eq(c->set[i], MTA_PY_UNREACHED | MTA_PY_KEPT);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    expect(out, "refcount leaks: 1 (3 objects, 192 B leaked)\n");
    expect(out, "\nalive cycle of 2 objects, 128 B (kept alive by a refcount leak)\n");
    expect(out, "\nrefcount leak: Leaky at 0x1000 refcount 2, 1 reference found, 1 unexplained, "
                "keeps 2 objects (128 B) alive\n    allocated at /home/u/app.py:10 in make_pair\n");
    free(out);
    mta_snapshot_free(snap);
}

Test(cycles, cycle_kept_by_a_leak_is_not_garbage)
{
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "Leaky", 1, 0, g.app, 1, (uint64_t)0x2000);   /* 0 references */
    obj(&g, 0x2000, "Node", 2, 0, g.app, 1, (uint64_t)0x3000);
    obj(&g, 0x3000, "Node", 1, 0, g.app, 1, (uint64_t)0x2000);
    obj(&g, 0x4000, "Node", 1, 0, g.app, 1, (uint64_t)0x5000);    /* real garbage */
    obj(&g, 0x5000, "Node", 1, 0, g.app, 1, (uint64_t)0x4000);
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert_eq(c->ncycles, 2);
    cr_assert(c->cycles[0].garbage);        /* garbage first */
    cr_assert_eq(c->cycles[0].members[0], 3);
    cr_assert(!c->cycles[1].garbage && c->cycles[1].kept_by_leak);
    cr_assert_eq(c->garbage_cycles, 1);
    cr_assert_eq(c->alive_cycles, 1);
    cr_assert_eq(c->nleaks, 1);
    cr_assert_eq(c->leaks[0].unexplained, 1);
    cr_assert_eq(c->leaks[0].keep_objects, 2);
    cr_assert_eq(c->garbage_objects, 2);
    cr_assert_eq(c->leaked_objects, 3);
    mta_cycles_free(c);
    mta_snapshot_free(snap);
}

Test(cycles, immortal_and_static_objects_are_roots)
{
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "str", 1000000, MTSNAP_PYOBJ_IMMORTAL, NOBLOCK, 1, (uint64_t)0x1000);
    obj(&g, 0x2000, "type", 3, MTSNAP_PYOBJ_STATIC, NOBLOCK, 1, (uint64_t)0x3000);
    obj(&g, 0x3000, "Node", 1, 0, g.app, 1, (uint64_t)0x2000);
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, true);
    for (uint32_t i = 0; i < 3; i++)
        cr_assert_eq(c->set[i], 0, "object %u in U", i);
    cr_assert_eq(c->ncycles, 2);
    cr_assert_eq(c->alive_cycles, 2);
    cr_assert_eq(c->nleaks + c->garbage_cycles, 0);
    cr_assert_eq(c->size[0], 32);           /* no block: the recorded size */
    mta_cycles_free(c);
    mta_snapshot_free(snap);
}

Test(cycles, fallback_without_scan_uses_gcs_rule)
{
    graph_t g;
    graph_init(&g, MTSNAP_PYGRAPH_F_GC_ENABLED);
    obj(&g, 0x1000, "Holder", 1, 0, g.app, 1, (uint64_t)0x2000);  /* 1 - 0 > 0: root */
    obj(&g, 0x2000, "Node", 2, 0, g.app, 1, (uint64_t)0x3000);    /* 2 - 2 */
    obj(&g, 0x3000, "Node", 1, 0, g.app, 1, (uint64_t)0x2000);    /* alive cycle */
    obj(&g, 0x4000, "Node", 1, REACHED, g.app, 1, (uint64_t)0x5000); /* REACHED ignored */
    obj(&g, 0x5000, "Node", 1, 0, g.app, 1, (uint64_t)0x4000);    /* garbage cycle */
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert(!c->scanned);
    cr_assert_eq(c->ncycles, 2);
    cr_assert(c->cycles[0].garbage);
    cr_assert_eq(c->cycles[0].members[0], 3);
    cr_assert(!c->cycles[1].garbage);
    cr_assert_eq(c->nleaks, 0);             /* not told apart without a scan */
    cr_assert_eq(c->set[0] | c->set[1] | c->set[2], 0);
    cr_assert_eq(c->set[3] & c->set[4], MTA_PY_UNREACHED);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    expect(out, "unreached objects: by gc's rule (no memory scan: refcount leaks not checked)\n");
    expect_not(out, "no refcount leaks");
    free(out);
    out = render(snap, MTA_FORMAT_JSON, false, true, &rc);
    cr_assert_eq(rc, MTA_GATE_FAILED);
    expect(out, "\"refcount_leaks_checked\": false");
    expect(out, "\"scanned\": false");
    free(out);
    mta_snapshot_free(snap);
}

/* A sampled snapshot (a SAMPLING record): the graph is whole, sites are of
 * the objects in sampled blocks only, refcount leaks are not reported (the
 * scan read the sampled blocks only), and a garbage cycle whose members have
 * no site is shown (docs/cycles.md, Sampled snapshots). */
Test(cycles, sampled_snapshot_rules)
{
    for (int sampled = 0; sampled <= 1; sampled++) {
        graph_t g;
        graph_init(&g, SCANNED);
        /* refcount 2, one reference from a cycle partner: a refcount leak when exact */
        obj(&g, 0x1000, "Leaky", 2, 0, NOBLOCK, 1, (uint64_t)0x2000);
        obj(&g, 0x2000, "dict", 1, 0, NOBLOCK, 1, (uint64_t)0x1000);
        obj(&g, 0x4000, "Node", 1, 0, NOBLOCK, 1, (uint64_t)0x5000);   /* garbage cycle */
        obj(&g, 0x5000, "Node", 1, 0, NOBLOCK, 1, (uint64_t)0x4000);
        mtc_buf_t pl = { 0 }, file = { 0 };
        g.h.objects = g.n;
        g.h.edges = g.ne;
        mtc_put(&pl, &g.h, sizeof(g.h));
        mtc_put(&pl, g.objs, g.n * sizeof(*g.objs));
        mtc_put(&pl, g.edges, g.ne * sizeof(*g.edges));
        mtsnap_sampling_t sm = { 65536, 12 };
        mtc_extra_t ex[2] = { { MTSNAP_TAG_SAMPLING, &sm, sizeof(sm) },
                              { MTSNAP_TAG_PYGRAPH, pl.data, pl.len } };
        mtc_compose_with(&g.s, ex + !sampled, 2 - (size_t)!sampled, &file);
        mta_snapshot_t *snap = parse(&file, "py.mtsnap");
        mtc_buf_free(&pl);
        mtc_buf_free(&file);
        graph_free(&g);
        mta_cycles_t *c = analyze(snap, false);
        cr_assert_eq(c->scanned, !sampled);
        cr_assert_eq(c->nleaks, sampled ? 0 : 1);
        cr_assert_eq(c->ncycles, 2, "sampled %d: %zu cycles", sampled, c->ncycles);
        const mta_pycycle_t *garbage = &c->cycles[0];
        cr_assert(garbage->garbage);
        cr_assert_eq(garbage->shown, sampled, "sampled %d", sampled);
        mta_cycles_free(c);
        int rc;
        char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
        if (sampled) {
            expect(out, "sampled: allocation sites known for 0 of the objects (those in sampled "
                        "blocks); a garbage cycle of objects without one is shown\n");
            expect(out, "unreached objects: by gc's rule (the scan read only the sampled blocks: "
                        "refcount leaks not checked)\n");
            expect(out, "\ngarbage cycle of 2 objects, 64 B");
        }
        free(out);
        mta_snapshot_free(snap);
    }
}

Test(cycles, program_code_rule_and_all)
{
    graph_t g;
    graph_init(&g, SCANNED);
    /* Four garbage cycles: app code, the standard library, a frozen module,
     * no Python frame; and a mixed one (a stdlib member and an app member);
     * two leaks, from app code and from the standard library. */
    uint32_t st[4] = { g.app, g.lib, g.frozen, g.native };
    for (uint64_t k = 0; k < 4; k++) {
        uint64_t a = 0x10000 * (k + 1);
        obj(&g, a, "Node", 1, 0, st[k], 1, a + 0x100);
        obj(&g, a + 0x100, "Node", 1, 0, st[k], 1, a);
    }
    obj(&g, 0x50000, "Node", 1, 0, g.lib, 1, (uint64_t)0x50100);
    obj(&g, 0x50100, "Node", 1, 0, g.app, 1, (uint64_t)0x50000);
    obj(&g, 0x60000, "Leaky", 1, 0, g.app, 0);
    obj(&g, 0x70000, "Leaky", 1, 0, g.lib, 0);
    /* Installed packages are not the standard library: their objects are
     * the program's, in the standard library's site-packages or in
     * Debian's dist-packages alike. */
    uint32_t alloc = mtc_frame(&g.s, 0x7f0000001234, 0, "PyObject_Malloc", "", 0);
    uint32_t site = mtc_stack(&g.s, 2, (uint32_t[]){
        alloc, pyframe(&g, "f", "/usr/lib/python3.11/site-packages/pkg/mod.py", 7) });
    uint32_t dist = mtc_stack(&g.s, 2, (uint32_t[]){
        alloc, pyframe(&g, "g", "/usr/lib/python3/dist-packages/pkg/mod.py", 8) });
    obj(&g, 0x80000, "Pkg", 1, REACHED, site, 0);   /* neither in a cycle nor leaked */
    obj(&g, 0x90000, "Pkg", 1, REACHED, dist, 0);
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert(mta_pyobj_is_programs(c, 0));
    cr_assert(!mta_pyobj_is_programs(c, 2));  /* /usr/lib/python3.11/json/decoder.py */
    cr_assert(!mta_pyobj_is_programs(c, 4));  /* <frozen importlib._bootstrap> */
    cr_assert(!mta_pyobj_is_programs(c, 6));  /* no Python frame */
    cr_assert(mta_pyobj_is_programs(c, 12));  /* .../python3.11/site-packages/pkg/mod.py */
    cr_assert(mta_pyobj_is_programs(c, 13));  /* /usr/lib/python3/dist-packages/pkg/mod.py */
    cr_assert_eq(c->ncycles, 5);
    cr_assert_eq(c->garbage_cycles, 5);
    cr_assert_eq(c->hidden_cycles, 3);
    cr_assert_eq(c->nleaks, 2);
    cr_assert_eq(c->hidden_leaks, 1);
    size_t shown = 0;
    for (size_t k = 0; k < c->ncycles; k++)
        if (c->cycles[k].shown) {
            shown++;
            cr_assert(c->cycles[k].members[0] == 0 || c->cycles[k].members[0] == 8);
        }
    cr_assert_eq(shown, 2);
    mta_cycles_free(c);
    c = analyze(snap, true);
    cr_assert_eq(c->hidden_cycles + c->hidden_leaks, 0);
    for (size_t k = 0; k < c->ncycles; k++)
        cr_assert(c->cycles[k].shown);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    expect(out, "hidden: 3 cycles and 1 refcount leak outside the program's code (--all shows them)\n");
    expect_not(out, "0x20000");              /* the standard library's cycle */
    expect_not(out, "0x30000");              /* the frozen module's */
    expect_not(out, "0x40000");              /* no Python frame */
    expect_not(out, "0x70000");              /* the standard library's leak */
    expect_not(out, "<frozen");
    free(out);
    out = render(snap, MTA_FORMAT_TEXT, true, false, &rc);
    expect(out, "allocated at /usr/lib/python3.11/json/decoder.py:5 in decode\n");
    expect(out, "allocated at <frozen importlib._bootstrap>:100 in _load\n");
    expect(out, "allocated at PyObject_Malloc [libpython3.11.so.1.0]\n");
    free(out);
    mta_snapshot_free(snap);
}

Test(cycles, definition_cycles_hidden_when_alive)
{
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "type", 2, REACHED, g.app, 1, (uint64_t)0x2000);
    obj(&g, 0x2000, "dict", 1, REACHED, g.app, 1, (uint64_t)0x1000);
    obj(&g, 0x3000, "type", 1, 0, g.app, 1, (uint64_t)0x4000);    /* garbage: shown */
    obj(&g, 0x4000, "tuple", 1, 0, g.app, 1, (uint64_t)0x3000);
    mta_snapshot_t *snap = graph_load(&g);
    cr_assert(mta_pytype_is_definition("mappingproxy"));
    cr_assert(!mta_pytype_is_definition("dict"));
    mta_cycles_t *c = analyze(snap, false);
    cr_assert_eq(c->ncycles, 2);
    cr_assert(c->cycles[0].garbage && c->cycles[0].shown);
    cr_assert(!c->cycles[1].garbage && !c->cycles[1].shown);
    cr_assert_eq(c->hidden_cycles, 1);
    mta_cycles_free(c);
    c = analyze(snap, true);
    cr_assert(c->cycles[1].shown);
    mta_cycles_free(c);
    mta_snapshot_free(snap);
}

Test(cycles, classes_of_a_metaclass_are_definitions)
{
    /* An Enum class and its member: the class's type is EnumType, not in
     * the definition types by name, but the capture flags it a class. */
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "EnumType", 2, REACHED | MTSNAP_PYOBJ_CLASS, g.app, 1, (uint64_t)0x2000);
    obj(&g, 0x2000, "Color", 1, REACHED, g.app, 1, (uint64_t)0x1000);
    obj(&g, 0x3000, "Meta", 2, REACHED, g.app, 1, (uint64_t)0x4000);   /* no flag: shown */
    obj(&g, 0x4000, "Thing", 1, REACHED, g.app, 1, (uint64_t)0x3000);
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert_eq(c->ncycles, 2);
    for (size_t k = 0; k < 2; k++) {
        bool enum_cycle = c->cycles[k].members[0] == 0;   /* objects 0 and 1 */
        cr_assert(!c->cycles[k].garbage);
        cr_assert_eq(c->cycles[k].shown, !enum_cycle, "cycle of object %u",
                     c->cycles[k].members[0]);
    }
    cr_assert_eq(c->hidden_cycles, 1);
    mta_cycles_free(c);
    mta_snapshot_free(snap);
}

Test(cycles, program_cycle_nested_in_a_definition_cycle)
{
    /* A module's globals D hold PAIR = (left, right); left <-> right; each
     * refers to its class Peer, whose method f has D as its globals: one
     * component of six, hidden (definitions), and the pair nested in it. */
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "dict", 1, REACHED, g.app, 1, (uint64_t)0x2000);           /* D */
    obj(&g, 0x2000, "tuple", 1, REACHED, g.app, 2, (uint64_t)0x3000, (uint64_t)0x4000);
    obj(&g, 0x3000, "Peer", 2, REACHED, g.app, 2, (uint64_t)0x4000, (uint64_t)0x5000);
    obj(&g, 0x4000, "Peer", 2, REACHED, g.app, 2, (uint64_t)0x3000, (uint64_t)0x5000);
    obj(&g, 0x5000, "type", 3, REACHED, g.app, 1, (uint64_t)0x6000);          /* Peer */
    obj(&g, 0x6000, "function", 1, REACHED, g.app, 1, (uint64_t)0x1000);      /* f */
    mta_snapshot_t *snap = graph_load(&g);
    mta_cycles_t *c = analyze(snap, false);
    cr_assert_eq(c->ncycles, 2);
    cr_assert_eq(c->alive_cycles, 2);
    cr_assert_eq(c->hidden_cycles, 1);
    const mta_pycycle_t *pair = &c->cycles[0], *all = &c->cycles[1];   /* shown first */
    cr_assert(pair->shown && pair->nested && !pair->garbage);
    cr_assert_eq(pair->nmembers, 2);
    cr_assert_eq(pair->members[0], 2);
    cr_assert_eq(pair->members[1], 3);
    cr_assert(!all->shown && !all->nested);
    cr_assert_eq(all->nmembers, 6);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    expect(out, "\nalive cycle of 2 objects, 128 B (reachable from outside; nested in a "
                "cycle of definitions)\n    Peer at 0x3000");
    expect_not(out, "cycle of 6");
    free(out);
    mta_snapshot_free(snap);
}

/* A chain of n objects of 48 bytes, i -> i + 1, the last one -> the first
 * when closed; the first one REACHED when not. */
static mta_snapshot_t *chain(uint32_t n, bool closed)
{
    graph_t g;
    graph_init(&g, SCANNED);
    g.objs = calloc(n, sizeof(*g.objs));
    g.edges = calloc(n, sizeof(*g.edges));
    uint32_t type = mtc_str(&g.s, "Node");
    for (uint32_t i = 0; i < n; i++) {
        g.objs[i] = (mtsnap_pyobj_t){ .address = 0x100000 + 64 * (uint64_t)i, .size = 48,
                                      .refcount = 1, .type = type,
                                      .flags = !closed && i == 0 ? REACHED : 0,
                                      .nrefs = closed || i + 1 < n };
        if (g.objs[i].nrefs)
            g.edges[g.ne++] = 0x100000 + 64 * (uint64_t)((i + 1) % n);
    }
    g.n = n;
    return graph_load(&g);
}

Test(cycles, tarjan_on_a_long_chain, .timeout = 30)
{
    enum { N = 200000 };
    mta_snapshot_t *snap = chain(N, true);
    mta_cycles_t *c = analyze(snap, true);
    cr_assert_eq(c->ncycles, 1);
    cr_assert_eq(c->cycles[0].nmembers, N);
    cr_assert_eq(c->cycles[0].bytes, 48ull * N);
    cr_assert(c->cycles[0].garbage);
    mta_cycles_free(c);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, true, false, &rc);
    expect(out, "garbage cycle of 200,000 objects, 9,600,000 B (9.2 MiB)");
    expect(out, "    ... and 199,990 more\n");
    free(out);
    mta_snapshot_free(snap);
    snap = chain(N, false);   /* no closing edge: a chain, reached, no cycle */
    c = analyze(snap, true);
    cr_assert_eq(c->ncycles, 0);
    cr_assert_eq(c->garbage_objects, 0);
    mta_cycles_free(c);
    mta_snapshot_free(snap);
}

Test(cycles, json_lists_every_member)
{
    enum { M = 12 };
    graph_t g;
    graph_init(&g, SCANNED);
    for (uint64_t i = 0; i < M; i++)
        obj(&g, 0x1000 * (i + 1), "Node", 1, 0, g.app, 1, 0x1000 * ((i + 1) % M + 1));
    obj(&g, 0x100000, "Leaky", 3, 0, g.app, 0);
    mta_snapshot_t *snap = graph_load(&g);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, false, &rc);
    expect(out, "    ... and 2 more\n");
    free(out);
    out = render(snap, MTA_FORMAT_JSON, false, false, &rc);
    cr_assert_eq(rc, 0);
    for (uint64_t i = 0; i < M; i++) {
        char addr[64];
        snprintf(addr, sizeof(addr), "\"address\": \"0x%llx\"", 0x1000ull * (i + 1));
        expect(out, addr);
    }
    expect(out, "\"graph\": {\n    \"objects\": 13,\n    \"edges\": 12,\n    \"python\": \"3.11\",\n"
                "    \"gc_enabled\": true,\n    \"scanned\": true,\n    \"capture_ns\": 1500000\n  }");
    expect(out, "\"summary\": {\n    \"garbage_cycles\": 1,\n    \"garbage_objects\": 12,\n"
                "    \"garbage_bytes\": 768,\n    \"alive_cycles\": 0,\n    \"refcount_leaks\": 1,\n"
                "    \"leaked_bytes\": 64,\n    \"hidden_cycles\": 0,\n    \"hidden_leaks\": 0\n  }");
    expect(out, "\"refcount_leaks_checked\": true");
    expect(out, "\"garbage\": true,\n      \"kept_by_leak\": false,\n      \"bytes\": 768,\n"
                "      \"size\": 12,\n      \"objects\": [");
    expect(out, "\"type\": \"Node\"");
    expect(out, "\"finalizer\": false");
    expect(out, "\"function\": \"make_pair\"");
    expect(out, "\"kind\": \"python\"");
    expect(out, "\"refcount\": 3,\n      \"referrers\": 0,\n      \"unexplained\": 3,\n"
                "      \"keeps_alive\": {\n        \"objects\": 0,\n        \"bytes\": 0\n      }");
    expect_not(out, "\"verdict\"");
    free(out);
    mta_snapshot_free(snap);
}

Test(cycles, fail_on_leak_both_ways)
{
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "Node", 1, 0, g.lib, 1, (uint64_t)0x2000);   /* stdlib garbage: hidden */
    obj(&g, 0x2000, "Node", 1, 0, g.lib, 1, (uint64_t)0x1000);
    obj(&g, 0x3000, "Node", 1, REACHED, g.app, 0);
    mta_snapshot_t *snap = graph_load(&g);
    int rc;
    char *out = render(snap, MTA_FORMAT_TEXT, false, true, &rc);
    cr_assert_eq(rc, 0);
    expect(out, "\nno reference cycles in the program's code\n");
    expect(out, "\nverdict: ok: no garbage cycle or refcount leak in the program's code (--fail-on-leak)\n");
    free(out);
    out = render(snap, MTA_FORMAT_JSON, true, true, &rc);
    cr_assert_eq(rc, MTA_GATE_FAILED);
    expect(out, "\"verdict\": {\n    \"failed\": true,\n    \"message\": \"FAIL: 1 garbage cycle "
                "and 0 refcount leaks in the snapshot (--fail-on-leak)\"\n  }\n}\n");
    free(out);
    out = render(snap, MTA_FORMAT_TEXT, true, false, &rc);
    cr_assert_eq(rc, 0);                    /* no gate without --fail-on-leak */
    expect_not(out, "verdict");
    free(out);
    mta_snapshot_free(snap);
}

/* ---- the command ------------------------------------------------------------ */

typedef struct result {
    int status;
    char out[65536], err[4096];
} result_t;

static void slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs $MEMTRAIL_EXE with the arguments (NULL-terminated). */
static void run(result_t *r, ...)
{
    const char *exe = getenv("MEMTRAIL_EXE");
    cr_assert_not_null(exe, "MEMTRAIL_EXE is not set");
    char *argv[16] = { (char *)exe };
    int argc = 1;
    va_list ap;
    va_start(ap, r);
    for (char *a; (a = va_arg(ap, char *)) && argc < 15;)
        argv[argc++] = a;
    va_end(ap);
    FILE *out = tmpfile(), *err = tmpfile();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        execv(exe, argv);
        _exit(99);
    }
    cr_assert_eq(waitpid(pid, &r->status, 0), pid);
    cr_assert(WIFEXITED(r->status));
    slurp(out, r->out, sizeof(r->out));
    slurp(err, r->err, sizeof(r->err));
}

static void write_file(char *path, const mtc_buf_t *b)
{
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, b->data, b->len), (ssize_t)b->len);
    close(fd);
}

static result_t r;

Test(cycles_cli, exit_statuses)
{
    char plain[] = "/tmp/test_cycles.XXXXXX", withgraph[] = "/tmp/test_cycles.XXXXXX";
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mtc_snap_init(&s);
    mtc_compose(&s, &b);
    write_file(plain, &b);
    mtc_snap_free(&s);
    graph_t g;
    graph_init(&g, SCANNED);
    obj(&g, 0x1000, "Node", 1, 0, g.app, 1, (uint64_t)0x1000);
    graph_file(&g, &b);
    graph_free(&g);
    write_file(withgraph, &b);
    mtc_buf_free(&b);

    run(&r, "cycles", plain, NULL);
    cr_assert_eq(WEXITSTATUS(r.status), 2);
    char want[256];
    snprintf(want, sizeof(want), "memtrail: cycles: %s: no Python object graph in this snapshot "
             "(captured at a Python process's exit snapshot)\n", plain);
    cr_assert_str_eq(r.err, want);
    cr_assert_str_eq(r.out, "");
    run(&r, "cycles", withgraph, "--fail-on-leak", NULL);
    cr_assert_eq(WEXITSTATUS(r.status), 1, "%s", r.err);
    expect(r.out, "verdict: FAIL: 1 garbage cycle and 0 refcount leaks in the program's code");
    run(&r, "cycles", withgraph, "--format", "json", "--top", "0", NULL);
    cr_assert_eq(WEXITSTATUS(r.status), 0, "%s", r.err);
    expect(r.out, "\"cycles\": [");
    run(&r, "cycles", withgraph, "--format", "xml", NULL);
    cr_assert_eq(WEXITSTATUS(r.status), 2);
    cr_assert_str_eq(r.err, "memtrail: cycles: unknown --format 'xml' (text, json)\n");
    run(&r, "cycles", NULL);
    cr_assert_eq(WEXITSTATUS(r.status), 2);
    cr_assert_str_eq(r.err, "memtrail: cycles: missing snapshot FILE (usage: memtrail cycles FILE [OPTIONS])\n");
    run(&r, "cycles", "--help", NULL);
    cr_assert_eq(WEXITSTATUS(r.status), 0);
    cr_assert_eq(strncmp(r.out, "Usage: memtrail cycles FILE", 27), 0, "%s", r.out);
    char help[sizeof(r.out)];
    strcpy(help, r.out);
    run(&r, "help", "cycles", NULL);
    cr_assert_str_eq(r.out, help);
    unlink(plain);
    unlink(withgraph);
}

/* ---- diff: Python objects by type --------------------------------------------- */

/* A snapshot whose graph holds counts[i] objects of types[i]. */
static mta_snapshot_t *typed(const char *const *types, const uint32_t *counts, size_t n,
                             const char *name)
{
    graph_t g;
    graph_init(&g, SCANNED);
    uint64_t addr = 0x1000;
    for (size_t t = 0; t < n; t++)
        for (uint32_t i = 0; i < counts[t]; i++, addr += 0x100)
            obj(&g, addr, types[t], 1, REACHED, g.app, 0);
    mtc_buf_t b = { 0 };
    graph_file(&g, &b);
    graph_free(&g);
    mta_snapshot_t *snap = parse(&b, name);
    mtc_buf_free(&b);
    return snap;
}

static char *diff_out(const mta_snapshot_t *a, const mta_snapshot_t *b, mta_format_t f, size_t top)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    mta_diff_opts_t o = { .group_by = MTA_GROUP_LINE, .format = f, .top = top };
    cr_assert_eq(mta_diff(out, a, b, &o), 0);
    fclose(out);
    return buf;
}

Test(diff_types, grown_types_text_json_markdown)
{
    static const char *const told[] = { "Node", "dict", "list", "set" };
    static const uint32_t cold[] = { 2, 3, 1, 4 };
    static const char *const tnew[] = { "dict", "Node", "list", "tuple", "set" };
    static const uint32_t cnew[] = { 4, 5, 1, 2, 1 };
    mta_snapshot_t *a = typed(told, cold, 4, "old.mtsnap"), *b = typed(tnew, cnew, 5, "new.mtsnap");
    mta_diff_opts_t o = { .group_by = MTA_GROUP_LINE };
    mta_diff_t *d = NULL;
    cr_assert_eq(mta_diff_compute(a, b, &o, &d), 0);
    cr_assert(d->has_types);
    cr_assert_eq(d->ntypes, 3);
    const struct { const char *t; uint64_t count; int64_t delta; } want[] = {
        { "Node", 5, 3 }, { "tuple", 2, 2 }, { "dict", 4, 1 } };
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(d->types[i].type, want[i].t);
        cr_assert_eq(d->types[i].count, want[i].count);
        cr_assert_eq(d->types[i].delta, want[i].delta);
    }
    mta_diff_free(d);
    char *out = diff_out(a, b, MTA_FORMAT_TEXT, 20);
    expect(out, "\nPython objects (gc-tracked) by type, grown:\n"
                "  Node                         5        +3\n"
                "  tuple                        2        +2\n"
                "  dict                         4        +1\n");
    free(out);
    out = diff_out(a, b, MTA_FORMAT_TEXT, 2);
    expect(out, "  tuple                        2        +2\n  ... 1 more types grew (--top 0 shows all)\n");
    free(out);
    out = diff_out(a, b, MTA_FORMAT_JSON, 0);
    expect(out, "\"types_grown\": [\n    {\n      \"type\": \"Node\",\n      \"count\": 5,\n"
                "      \"delta\": 3\n    },");
    expect(out, "\"type\": \"dict\",\n      \"count\": 4,\n      \"delta\": 1\n    }\n  ]\n}\n");
    free(out);
    out = diff_out(a, b, MTA_FORMAT_MARKDOWN, 0);
    expect(out, "| type | objects | change |\n|---|---:|---:|\n| `Node` | 5 | +3 |\n"
                "| `tuple` | 2 | +2 |\n| `dict` | 4 | +1 |\n");
    free(out);
    out = diff_out(a, a, MTA_FORMAT_TEXT, 0);   /* nothing grew */
    expect(out, "\nPython objects (gc-tracked) by type: none grew\n");
    free(out);
    mta_snapshot_free(a);
    mta_snapshot_free(b);
}

Test(diff_types, absent_without_both_graphs)
{
    static const char *const t[] = { "Node" };
    static const uint32_t n[] = { 3 };
    mta_snapshot_t *a = typed(t, n, 1, "old.mtsnap");
    mtc_snap_t s;
    mtc_buf_t b = { 0 };
    mtc_snap_init(&s);
    mtc_compose(&s, &b);
    mta_snapshot_t *plain = parse(&b, "plain.mtsnap");
    mtc_buf_free(&b);
    mtc_snap_free(&s);
    mta_format_t formats[] = { MTA_FORMAT_TEXT, MTA_FORMAT_JSON, MTA_FORMAT_MARKDOWN };
    for (size_t i = 0; i < 3; i++) {
        char *out = diff_out(plain, a, formats[i], 0);
        expect_not(out, "Python objects");
        expect_not(out, "types_grown");
        free(out);
        out = diff_out(a, plain, formats[i], 0);
        expect_not(out, "Python objects");
        expect_not(out, "types_grown");
        free(out);
    }
    mta_snapshot_free(a);
    mta_snapshot_free(plain);
}
