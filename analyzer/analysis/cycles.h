/* `memtrail cycles`: reference cycles and refcount leaks in the Python object
 * graph of a snapshot (PYGRAPH record), with the rules of docs/cycles.md
 * (found by analysis/cycles.c, written by render/cycles_render.c). */
#ifndef MTA_CYCLES_H
#define MTA_CYCLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "options.h"
#include "snapshot.h"

/* One cycle: a strongly connected component of the object graph with at
 * least two members, or one member that refers to itself. An alive
 * component that holds definition objects (mta_pytype_is_definition) is also
 * searched without them: the components found there are cycles too, nested
 * in it (an instance refers to its class, whose methods' globals refer to
 * the instance: without this, every alive cycle of a module's objects would
 * be lost in the module's own). */
typedef struct mta_pycycle {
    bool garbage;        /* every member is in the garbage set G */
    bool kept_by_leak;   /* not garbage: some member is kept alive by a refcount leak */
    bool nested;         /* found inside a larger alive cycle, without its definitions */
    bool shown;          /* passes the display rules (always, with `all`) */
    uint32_t nmembers;
    uint32_t *members;   /* indices into snap->pyobjs, ascending (by address) */
    uint64_t bytes;      /* the members' sizes summed */
} mta_pycycle_t;

/* One refcount leak: an unreached object whose refcount is higher than the
 * references the graph holds to it. */
typedef struct mta_pyleak {
    uint32_t obj;             /* index into snap->pyobjs */
    bool shown;
    uint64_t referrers;       /* references to it from graph objects */
    int64_t unexplained;      /* refcount - referrers, > 0 */
    uint64_t keep_objects;    /* unreached objects reachable from it (itself excluded) */
    uint64_t keep_bytes;
} mta_pyleak_t;

/* Per-object sets (mta_cycles_t.set). */
#define MTA_PY_UNREACHED 0x1u  /* in U: neither reached nor kept by a root */
#define MTA_PY_KEPT 0x2u       /* in K: reachable from a refcount leak (U only) */

typedef struct mta_cycles {
    const mta_snapshot_t *snap;
    bool scanned;            /* the REACHED flags decided U (else gc's own rule) */
    bool all;                /* every finding shown, not only the program's */
    uint32_t nobjects;
    uint64_t *size;          /* per object: its block's size, else the recorded size */
    uint32_t *stack;         /* per object: its block's stack, MTSNAP_NONE without one */
    uint32_t *referrers;     /* per object: in_edges, references from graph objects */
    uint8_t *set;            /* per object: MTA_PY_* */
    size_t ncycles;
    mta_pycycle_t *cycles;   /* shown first, garbage first, bytes desc, members desc,
                                address asc */
    size_t nleaks;
    mta_pyleak_t *leaks;     /* shown first, keep_bytes + own size desc, address asc */
    /* The summary, over every finding (shown or not). */
    uint64_t garbage_cycles, alive_cycles;
    uint64_t garbage_objects, garbage_bytes;  /* the set G */
    uint64_t leaked_objects, leaked_bytes;    /* the set K (the leaks included) */
    uint64_t hidden_cycles, hidden_leaks;     /* not shown by the display rules */
    uint32_t *storage;       /* the cycles' members */
    uint8_t *stack_own;      /* per stack: 0 not yet known, 1 not the program's, 2 the program's */
} mta_cycles_t;

/* Analyzes the PYGRAPH of `snap` (which must have one and outlive the
 * result). `all`: show every finding, not only the program's. Returns 0,
 * -EINVAL without a graph, or -ENOMEM. */
int mta_cycles_compute(const mta_snapshot_t *snap, bool all, mta_cycles_t **out);
void mta_cycles_free(mta_cycles_t *c);

/* Whether object i was allocated by the program's own Python code: the file
 * of the innermost Python frame of its stack is neither under the standard
 * library's directory nor a "<...>" pseudo-file. */
bool mta_pyobj_is_programs(mta_cycles_t *c, uint32_t i);
/* Whether a type name is one of the definition types (module, type,
 * function, code, descriptors, ...) whose cycles every program has. */
bool mta_pytype_is_definition(const char *type);
/* The innermost Python frame of a stack (MTSNAP_NONE: none, or no stack). */
uint32_t mta_py_frame(const mta_snapshot_t *s, uint32_t stack);

typedef struct mta_cycles_opts {
    mta_format_t format;   /* text or json */
    bool all;              /* --all */
    size_t top;            /* cycles and leaks listed; 0 = all */
    bool fail_on_leak;     /* --fail-on-leak */
} mta_cycles_opts_t;

/* What the display rules and --top leave of the findings, and the
 * --fail-on-leak decision on them. */
typedef struct mta_cycles_shown {
    size_t cycles, leaks;            /* shown (before --top) */
    size_t garbage;                  /* shown garbage cycles */
    size_t list_cycles, list_leaks;  /* listed (after --top) */
    bool failed;                     /* --fail-on-leak: a shown garbage cycle or leak */
} mta_cycles_shown_t;
void mta_cycles_count_shown(const mta_cycles_t *c, const mta_cycles_opts_t *o,
                            mta_cycles_shown_t *sh);


#endif /* MTA_CYCLES_H */
