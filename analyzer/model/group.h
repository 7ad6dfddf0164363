/* Grouping of a snapshot's live memory by call site (stack, function, line,
 * file or module): the library behind `memtrail report` and later commands. */
#ifndef MTA_GROUP_H
#define MTA_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter.h"
#include "intern.h"
#include "snapshot.h"

typedef enum mta_group_by {
    MTA_GROUP_STACK = 0,
    MTA_GROUP_FUNCTION,
    MTA_GROUP_LINE,
    MTA_GROUP_FILE,
    MTA_GROUP_MODULE,
} mta_group_by_t;

/* The figure of a stack that ranks and is shown (--metric): its live memory
 * (the snapshot's), its memory at the process-wide peak (live then, even
 * when freed since), or all it allocated since tracing began. */
typedef enum mta_metric {
    MTA_METRIC_LIVE = 0,
    MTA_METRIC_PEAK,
    MTA_METRIC_ALLOCATED,
} mta_metric_t;

typedef struct mta_group_entry {
    char *key;             /* identity of the group (see mta_group()); for STACK
                              built on demand: read it with mta_group_key() */
    uint64_t bytes, blocks;              /* live */
    uint64_t peak_bytes, peak_blocks;    /* live at the process-wide peak */
    uint64_t alloc_bytes, alloc_blocks;  /* allocated since tracing began */
    uint32_t nstacks;      /* stacks folded into this entry */
    uint32_t stack;        /* STACK: the stack; others: lowest stack index folded in */
    uint32_t nframes;      /* frames to show (indices into snap->frames), innermost */
    uint32_t *frames;      /* first: STACK: all visible frames; others: the key frame */
} mta_group_entry_t;

typedef struct mta_group {
    const mta_snapshot_t *snap;
    mta_group_by_t by;
    mta_metric_t metric;        /* the figure that ranks the entries */
    bool filtered;              /* a filter left blocks out */
    bool live_only;             /* a domain filter: the peak and alloc figures are
                                   kept per stack, not per domain, so they are 0 */
    uint64_t bytes, blocks;     /* live, summed over the entries */
    mta_group_entry_t sum;      /* every figure summed over the selected stacks
                                   (only the counts are set) */
    size_t nentries;
    mta_group_entry_t *entries; /* sorted by the metric: bytes desc, blocks desc,
                                   then key asc */
    size_t nranked;             /* the first nranked entries have some bytes or
                                   blocks of the metric; the rest (kept only
                                   with MTA_GROUP_KEEP_EMPTY) have none */
    char **names;               /* per frame: demangled function, lazily */
    unsigned flags;             /* MTA_GROUP_* */
    /* STACK keys are sequences of frame labels ("function (file:line)", plus
     * " [module]" when portable), interned so that equal labels have equal
     * ids; the table may be shared by the two groupings of a diff. */
    mta_intern_t *labels;
    bool own_labels;
    uint32_t *label_of;         /* per snapshot frame: label id, UINT32_MAX = not yet */
} mta_group_t;

/* Keep entries with no bytes and no blocks of the metric (omitted by default). */
#define MTA_GROUP_KEEP_EMPTY 1u
/* Keys that identify the same site in another run or build: native frames
 * carry their module's basename ("f [libx.so]"), module keys are basenames.
 * Used by diff and the exports. */
#define MTA_GROUP_PORTABLE 2u
/* Keep the entries with bytes or blocks at the peak too, empty as they may
 * be by the metric (for mta_group_peak_top()). */
#define MTA_GROUP_KEEP_PEAK 4u

/* Groups the STACK_STATS of `snap`. For STACK, one entry per stack; for the
 * other groupings the key comes from the innermost *user* frame of each
 * stack (allocator frames skipped; if every frame is one, the innermost
 * visible frame), and stacks with the same key are summed. Keys:
 *   function  demangled name, or "module+0xOFF" / "0xPC" when unknown
 *   line      "file:line" ("file" if no line), else the function key
 *   file      source file, else "[module]" (basename) or "[unknown]"
 *   module    module path, or "[unknown]"
 *   stack     the visible frames' "function (file:line)" joined by " <- "
 * A stack of depth 0 (or with no visible frame) has the key "[unknown]".
 * `filter` (may be NULL) selects the stacks by their frames and the blocks
 * by their domain; with a domain filter, live figures are summed from the
 * snapshot's blocks. `snap` and `filter` must outlive the result. Returns 0
 * or -ENOMEM. */
int mta_group(const mta_snapshot_t *snap, mta_group_by_t by, unsigned flags,
              const mta_filter_t *filter, mta_group_t **out);
/* The same ranked by `metric` (mta_group: live), with a label table shared
 * with other groupings (NULL: its own), which must outlive the result:
 * entries of groupings that share it compare with mta_group_entry_cmp(). */
int mta_group_shared(const mta_snapshot_t *snap, mta_group_by_t by, mta_metric_t metric,
                     unsigned flags, const mta_filter_t *filter, mta_intern_t *labels,
                     mta_group_t **out);
void mta_group_free(mta_group_t *g);
/* A grouping with no entries, for its cache of function names
 * (mta_group_function, mta_frame_name) over `snap`; NULL on ENOMEM. */
mta_group_t *mta_group_names(const mta_snapshot_t *snap);

/* The key of entry e of g (built and cached on first use; NULL on ENOMEM). */
const char *mta_group_key(mta_group_t *g, const mta_group_entry_t *e);
/* Orders two entries by key (same grouping kind, same label table). For
 * STACK, frame by frame on the labels, then the shorter stack first. */
int mta_group_entry_cmp(const mta_group_t *ga, const mta_group_entry_t *a, const mta_group_t *gb,
                        const mta_group_entry_t *b);

/* "stack", "function", ... and back; parse returns -EINVAL for unknown names. */
const char *mta_group_by_name(mta_group_by_t by);
int mta_group_by_parse(const char *name, mta_group_by_t *out);
/* The name of key i, in the order of mta_group_by_t, NULL after the last:
 * the words of --group-by. */
const char *mta_group_by_word(unsigned i);
/* "stacks", "functions", ... */
const char *mta_group_by_plural(mta_group_by_t by);

/* "live", "peak", "allocated" and back; parse returns -EINVAL for unknown
 * names. */
const char *mta_metric_name(mta_metric_t m);
int mta_metric_parse(const char *name, mta_metric_t *out);
/* The name of metric i, in the order of mta_metric_t, NULL after the last:
 * the words of --metric. */
const char *mta_metric_word(unsigned i);
/* The bytes and blocks of entry e (or of a group's sum) by metric m. */
uint64_t mta_entry_bytes(const mta_group_entry_t *e, mta_metric_t m);
uint64_t mta_entry_blocks(const mta_group_entry_t *e, mta_metric_t m);
/* The entry with the most bytes at the peak (then blocks, then key), or
 * NULL when no entry has any: the site that contributed most to it. */
const mta_group_entry_t *mta_group_peak_top(const mta_group_t *g);
/* Bytes live at the process-wide peak: the snapshot's total, or with a
 * filter the sum over the selected stacks (0 with a domain filter, whose
 * figures are live only). */
uint64_t mta_group_peak_bytes(const mta_group_t *g);

/* Display name of frame `f`'s function: demangled (native frames), as stored
 * (Python frames), or "" when unknown. Cached in g; NULL only on ENOMEM. */
const char *mta_group_function(mta_group_t *g, uint32_t f);

/* Whether the patterns of `flt` (NULL: none) select stack `stack` of g's
 * snapshot: tracemalloc's rule, on the key frame or with all_frames on
 * every visible frame. Domains are not looked at (mta_filter_domain). */
bool mta_group_stack_selected(mta_group_t *g, uint32_t stack, const mta_filter_t *flt);

/* Frames the user never sees: those in a libmemtrail* module. */
bool mta_frame_hidden(const mta_snapshot_t *snap, uint32_t f);
/* Allocator frames (skipped when choosing the key frame): hidden frames and
 * operator new/delete (mangled _Znw*, _Zna*, _Zdl*, _Zda* or demangled). */
bool mta_frame_is_allocator(mta_group_t *g, uint32_t f);

/* The name a frame is shown and matched by: the demangled function, or
 * "module+0xOFF" / "0xPC" when unknown (newly allocated; NULL on ENOMEM). */
char *mta_frame_name(mta_group_t *g, uint32_t f);

/* "function (file:line)" of frame f ("(file)" without a line, nothing
 * without a file), the function as mta_frame_name(); with_module adds the
 * " [module]" of portable keys. The one text of a frame that stack keys and
 * flame-graph labels share. Newly allocated; NULL on ENOMEM. */
char *mta_frame_text(mta_group_t *g, uint32_t f, bool with_module);

/* Offset of frame f's pc in its module (pc - bias); 0 if no module. */
uint64_t mta_frame_module_offset(const mta_snapshot_t *snap, uint32_t f);

#endif /* MTA_GROUP_H */
