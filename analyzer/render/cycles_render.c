/* `memtrail cycles` renderers: the summary, cycles and refcount leaks that
 * analysis/cycles.c found, as text or JSON (docs/cycles.md), each object
 * with where it was allocated, and the --fail-on-leak verdict. */
#include "cycles.h"
#include "outputs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "group.h"
#include "json.h"

/* The --fail-on-leak verdict: the shown garbage cycles and refcount leaks. */
static void cycles_verdict(const mta_cycles_t *c, const mta_cycles_opts_t *o,
                           const mta_cycles_shown_t *sh, mta_verdict_t *v)
{
    const char *where = c->all ? "in the snapshot" : "in the program's code";
    *v = (mta_verdict_t){ .set = o->fail_on_leak, .failed = sh->failed };
    if (!v->set)
        return;
    if (!v->failed)
        snprintf(v->message, sizeof(v->message), "ok: no garbage cycle%s %s%s (--fail-on-leak)",
                 c->scanned ? " or refcount leak" : "", where,
                 c->scanned ? "" : c->snap->has_sampling
                                       ? "; refcount leaks not checked (sampled snapshot)"
                                       : "; refcount leaks not checked (no memory scan)");
    else
        snprintf(v->message, sizeof(v->message),
                 "FAIL: %zu garbage %s and %zu refcount %s %s (--fail-on-leak)", sh->garbage,
                 mta_plural(sh->garbage, "cycle", "cycles"), sh->leaks,
                 mta_plural(sh->leaks, "leak", "leaks"), where);
}

/* "file:line in function" of the innermost Python frame, else the
 * innermost visible frame as the report shows it. */
static int put_origin(FILE *out, mta_group_t *g, uint32_t stack)
{
    const mta_snapshot_t *s = g->snap;
    uint32_t f = mta_py_frame(s, stack);
    if (f != MTSNAP_NONE) {
        const mta_frame_t *fr = &s->frames[f];
        mta_put_str(out, fr->file[0] ? fr->file : "?");
        fprintf(out, ":%" PRIu32 " in ", fr->line);
        mta_put_str(out, fr->function[0] ? fr->function : "?");
        return 0;
    }
    const mta_stack_t *st = stack == MTSNAP_NONE ? NULL : &s->stacks[stack];
    for (uint32_t i = 0; st && i < st->depth; i++)
        if (!mta_frame_hidden(s, st->frames[i]))
            return mta_put_frame(out, g, st->frames[i], 1);
    fputs("[unknown]", out);
    return 0;
}

static const char *type_of(const mta_cycles_t *c, uint32_t i)
{
    return c->snap->strings[c->snap->pyobjs[i].type];
}

static void text_summary(FILE *out, const mta_cycles_t *c)
{
    const mtsnap_pygraph_header_t *h = &c->snap->pygraph;
    char a[32], b[MTA_SIZE_LEN];
    mta_format_count(h->objects, a, sizeof(a));
    mta_format_count(h->edges, b, sizeof(b));
    fprintf(out, "\nobjects in graph: %s gc-tracked, %s references (python 3.%" PRIu32
            ", gc %s, captured in %.1f ms)\n", a, b, h->py_minor,
            h->flags & MTSNAP_PYGRAPH_F_GC_ENABLED ? "enabled" : "disabled",
            (double)h->capture_ns / 1e6);
    if (c->snap->has_sampling) {
        uint32_t sited = 0;
        for (uint32_t i = 0; i < c->nobjects; i++)
            sited += c->stack[i] != MTSNAP_NONE;
        mta_format_count(sited, a, sizeof(a));
        fprintf(out, "sampled: allocation sites known for %s of the objects (those in sampled "
                "blocks); a garbage cycle of objects without one is shown\n", a);
        fputs("unreached objects: by gc's rule (the scan read only the sampled blocks: "
              "refcount leaks not checked)\n", out);
    } else if (!c->scanned) {
        fputs("unreached objects: by gc's rule (no memory scan: refcount leaks not checked)\n", out);
    } else if (c->snap->has_leaks && (c->snap->leak.flags & MTSNAP_LEAK_F_PARTIAL)) {
        fprintf(out, "partial scan: %s did not stop in time (its memory was read while it ran)\n",
                c->snap->leak.threads_missed == 1 ? "a thread" : "threads");
    }
    mta_format_count(c->garbage_objects, a, sizeof(a));
    mta_format_size(c->garbage_bytes, b, sizeof(b));
    fprintf(out, "garbage cycles: %" PRIu64 " (%s objects, %s of garbage)\n",
            c->garbage_cycles, a, b);
    fprintf(out, "alive cycles: %" PRIu64 "\n", c->alive_cycles);
    if (c->scanned) {
        mta_format_count(c->leaked_objects, a, sizeof(a));
        mta_format_size(c->leaked_bytes, b, sizeof(b));
        fprintf(out, "refcount leaks: %zu (%s objects, %s leaked)\n", c->nleaks, a, b);
    }
    fprintf(out, "hidden: %" PRIu64 " %s and %" PRIu64 " refcount %s outside the program's code%s\n",
            c->hidden_cycles, mta_plural(c->hidden_cycles, "cycle", "cycles"), c->hidden_leaks,
            mta_plural(c->hidden_leaks, "leak", "leaks"),
            c->hidden_cycles + c->hidden_leaks ? " (--all shows them)" : "");
}

static int text_cycle(FILE *out, const mta_cycles_t *c, mta_group_t *g, const mta_pycycle_t *cy)
{
    enum { MAX_MEMBERS = 10 };
    const mtsnap_pyobj_t *objs = c->snap->pyobjs;
    char a[MTA_SIZE_LEN], n[32];
    mta_format_size(cy->bytes, a, sizeof(a));
    mta_format_count(cy->nmembers, n, sizeof(n));
    fputc('\n', out);
    if (cy->garbage)
        mta_put_painted(out, MTA_PAINT_WARN, "garbage cycle");
    else
        fputs("alive cycle", out);
    fprintf(out, " of %s %s, %s (%s)\n", n,
            mta_plural(cy->nmembers, "object", "objects"), a,
            !cy->garbage ? (cy->kept_by_leak ? "kept alive by a refcount leak"
                            : cy->nested ? "reachable from outside; nested in a cycle of definitions"
                                         : "reachable from outside")
            : c->snap->pygraph.flags & MTSNAP_PYGRAPH_F_GC_ENABLED
                ? "the collector will free it at its next run"
                : "collection is disabled: it stays");
    for (uint32_t m = 0; m < cy->nmembers && m < MAX_MEMBERS; m++) {
        uint32_t i = cy->members[m];
        mta_format_size(c->size[i], a, sizeof(a));
        fputs("    ", out);
        mta_put_str(out, type_of(c, i));
        fprintf(out, " at 0x%" PRIx64 ", %s%s, allocated at ", objs[i].address, a,
                objs[i].flags & MTSNAP_PYOBJ_FINALIZER ? ", has __del__" : "");
        if (put_origin(out, g, c->stack[i]) < 0)
            return -ENOMEM;
        fputc('\n', out);
    }
    if (cy->nmembers > MAX_MEMBERS) {
        mta_format_count(cy->nmembers - MAX_MEMBERS, n, sizeof(n));
        fprintf(out, "    ... and %s more\n", n);
    }
    return 0;
}

static int text_leak(FILE *out, const mta_cycles_t *c, mta_group_t *g, const mta_pyleak_t *lk)
{
    const mtsnap_pyobj_t *o = &c->snap->pyobjs[lk->obj];
    char a[32], b[MTA_SIZE_LEN];
    mta_format_count(lk->keep_objects, a, sizeof(a));
    mta_format_size(lk->keep_bytes, b, sizeof(b));
    fputc('\n', out);
    mta_put_painted(out, MTA_PAINT_BAD, "refcount leak:");
    fputc(' ', out);
    mta_put_str(out, type_of(c, lk->obj));
    fprintf(out, " at 0x%" PRIx64 " refcount %" PRId64 ", %" PRIu64 " %s found, %" PRId64
            " unexplained, keeps %s %s (%s) alive\n    allocated at ", o->address,
            o->refcount, lk->referrers, mta_plural(lk->referrers, "reference", "references"),
            lk->unexplained, a, mta_plural(lk->keep_objects, "object", "objects"), b);
    if (put_origin(out, g, c->stack[lk->obj]) < 0)
        return -ENOMEM;
    fputc('\n', out);
    return 0;
}

static int cycles_text(FILE *out, const mta_cycles_t *c, mta_group_t *g, const mta_cycles_shown_t *sh,
                       const mta_verdict_t *v)
{
    const char *where = c->all ? "" : " in the program's code";
    mta_put_snapshot_header(out, c->snap, MTA_HEADER_LINES_NOEXE, "snapshot");
    text_summary(out, c);
    if (sh->cycles == 0)
        fprintf(out, "\nno reference cycles%s\n", where);
    for (size_t k = 0; k < sh->list_cycles; k++)   /* the shown ones come first */
        if (text_cycle(out, c, g, &c->cycles[k]) < 0)
            return -ENOMEM;
    if (sh->list_cycles < sh->cycles)
        fprintf(out, "\n... %zu more cycles (--top 0 shows all)\n", sh->cycles - sh->list_cycles);
    if (c->scanned && sh->leaks == 0)
        fprintf(out, "\nno refcount leaks%s\n", where);
    for (size_t l = 0; l < sh->list_leaks; l++)   /* the shown ones come first */
        if (text_leak(out, c, g, &c->leaks[l]) < 0)
            return -ENOMEM;
    if (sh->list_leaks < sh->leaks)
        fprintf(out, "\n... %zu more refcount leaks (--top 0 shows all)\n",
                sh->leaks - sh->list_leaks);
    mta_put_verdict(out, v);
    return 0;
}

/* The visible frames of an object's allocation stack. */
static int json_frames(mta_json_t *j, const mta_cycles_t *c, mta_group_t *g, uint32_t i)
{
    const mta_snapshot_t *s = c->snap;
    const mta_stack_t *st = c->stack[i] == MTSNAP_NONE ? NULL : &s->stacks[c->stack[i]];
    mta_json_key(j, "frames");
    return mta_json_frames(j, g, st ? st->frames : NULL, st ? st->depth : 0, true);
}

static void json_u64(mta_json_t *j, const char *key, uint64_t v)
{
    mta_json_key(j, key);
    mta_json_u64(j, v);
}

/* The members every object has: type, address, size and refcount. */
static void json_object_head(mta_json_t *j, const mta_cycles_t *c, uint32_t i)
{
    const mtsnap_pyobj_t *o = &c->snap->pyobjs[i];
    char addr[24];
    snprintf(addr, sizeof(addr), "0x%" PRIx64, o->address);
    mta_json_key(j, "type");
    mta_json_string(j, type_of(c, i));
    mta_json_key(j, "address");
    mta_json_string(j, addr);
    json_u64(j, "size", c->size[i]);
    mta_json_key(j, "refcount");
    mta_json_i64(j, o->refcount);
}

static int json_cycle(mta_json_t *j, const mta_cycles_t *c, mta_group_t *g, const mta_pycycle_t *cy)
{
    mta_json_begin_object(j);
    mta_json_key(j, "garbage");
    mta_json_bool(j, cy->garbage);
    mta_json_key(j, "kept_by_leak");
    mta_json_bool(j, cy->kept_by_leak);
    json_u64(j, "bytes", cy->bytes);
    json_u64(j, "size", cy->nmembers);
    mta_json_key(j, "objects");
    mta_json_begin_array(j);
    for (uint32_t m = 0; m < cy->nmembers; m++) {
        uint32_t i = cy->members[m];
        mta_json_begin_object(j);
        json_object_head(j, c, i);
        mta_json_key(j, "finalizer");
        mta_json_bool(j, (c->snap->pyobjs[i].flags & MTSNAP_PYOBJ_FINALIZER) != 0);
        if (json_frames(j, c, g, i) < 0)
            return -ENOMEM;
        mta_json_end_object(j);
    }
    mta_json_end_array(j);
    mta_json_end_object(j);
    return 0;
}

static int json_leak(mta_json_t *j, const mta_cycles_t *c, mta_group_t *g, const mta_pyleak_t *lk)
{
    mta_json_begin_object(j);
    json_object_head(j, c, lk->obj);
    json_u64(j, "referrers", lk->referrers);
    mta_json_key(j, "unexplained");
    mta_json_i64(j, lk->unexplained);
    mta_json_key(j, "keeps_alive");
    mta_json_begin_object(j);
    json_u64(j, "objects", lk->keep_objects);
    json_u64(j, "bytes", lk->keep_bytes);
    mta_json_end_object(j);
    if (json_frames(j, c, g, lk->obj) < 0)
        return -ENOMEM;
    mta_json_end_object(j);
    return 0;
}

static int cycles_json(FILE *out, const mta_cycles_t *c, mta_group_t *g, const mta_cycles_shown_t *sh,
                       const mta_verdict_t *v)
{
    const mtsnap_pygraph_header_t *h = &c->snap->pygraph;
    char ver[16];
    mta_json_t j;
    mta_json_init(&j, out);
    mta_json_begin_object(&j);
    mta_json_key(&j, "snapshot");
    mta_json_snapshot(&j, c->snap);
    mta_json_key(&j, "graph");
    mta_json_begin_object(&j);
    json_u64(&j, "objects", h->objects);
    json_u64(&j, "edges", h->edges);
    snprintf(ver, sizeof(ver), "3.%" PRIu32, h->py_minor);
    mta_json_key(&j, "python");
    mta_json_string(&j, ver);
    mta_json_key(&j, "gc_enabled");
    mta_json_bool(&j, (h->flags & MTSNAP_PYGRAPH_F_GC_ENABLED) != 0);
    mta_json_key(&j, "scanned");
    mta_json_bool(&j, c->scanned);
    json_u64(&j, "capture_ns", h->capture_ns);
    mta_json_end_object(&j);
    mta_json_key(&j, "summary");
    mta_json_begin_object(&j);
    const struct { const char *k; uint64_t v; } sum[] = {
        { "garbage_cycles", c->garbage_cycles }, { "garbage_objects", c->garbage_objects },
        { "garbage_bytes", c->garbage_bytes },   { "alive_cycles", c->alive_cycles },
        { "refcount_leaks", c->nleaks },         { "leaked_bytes", c->leaked_bytes },
        { "hidden_cycles", c->hidden_cycles },   { "hidden_leaks", c->hidden_leaks },
    };
    for (size_t i = 0; i < sizeof(sum) / sizeof(sum[0]); i++)
        json_u64(&j, sum[i].k, sum[i].v);
    mta_json_end_object(&j);
    mta_json_key(&j, "refcount_leaks_checked");
    mta_json_bool(&j, c->scanned);
    mta_json_key(&j, "partial_scan");
    mta_json_bool(&j, c->scanned && c->snap->has_leaks && (c->snap->leak.flags & MTSNAP_LEAK_F_PARTIAL));
    mta_json_key(&j, "cycles");
    mta_json_begin_array(&j);
    for (size_t k = 0; k < sh->list_cycles; k++)   /* the shown ones come first */
        if (json_cycle(&j, c, g, &c->cycles[k]) < 0)
            return -ENOMEM;
    mta_json_end_array(&j);
    mta_json_key(&j, "refcount_leaks");
    mta_json_begin_array(&j);
    for (size_t l = 0; l < sh->list_leaks; l++)   /* the shown ones come first */
        if (json_leak(&j, c, g, &c->leaks[l]) < 0)
            return -ENOMEM;
    mta_json_end_array(&j);
    mta_json_verdict(&j, v);
    mta_json_end_object(&j);
    return 0;
}

int mta_cycles(FILE *out, const mta_snapshot_t *snap, const mta_cycles_opts_t *o)
{
    mta_cycles_t *c = NULL;
    mta_group_t *g = NULL;
    mta_cycles_shown_t sh;
    mta_verdict_t v;
    int rc = mta_cycles_compute(snap, o->all, &c);
    if (rc < 0)
        return rc;
    if (!(g = mta_group_names(snap))) {
        rc = -ENOMEM;
        goto out;
    }
    mta_cycles_count_shown(c, o, &sh);
    cycles_verdict(c, o, &sh, &v);
    rc = o->format == MTA_FORMAT_JSON ? cycles_json(out, c, g, &sh, &v)
                                      : cycles_text(out, c, g, &sh, &v);
    rc = mta_render_end(out, rc, &v);
out:
    mta_group_free(g);
    mta_cycles_free(c);
    return rc;
}

