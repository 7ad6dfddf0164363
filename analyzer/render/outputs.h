/* One call per analyzing command: the analysis (analysis/) and then its
 * rendering in the format the options ask for. Defined in render/, where
 * each output lives; a command (cli/) or a test includes this one header. */
#ifndef MTA_RENDER_OUTPUTS_H
#define MTA_RENDER_OUTPUTS_H

#include <stdio.h>

#include "cycles.h"
#include "diff.h"
#include "leaks.h"

/* The `memtrail diff` output (render/diff_render.c): computes, gates and
 * renders the diff to `out` in o->format. Returns 0, MTA_GATE_FAILED when a
 * limit was passed (the verdict is in the output), -ENOMEM or -EIO. */
int mta_diff(FILE *out, const mta_snapshot_t *old, const mta_snapshot_t *new,
             const mta_diff_opts_t *o);

/* The `memtrail leaks` output (render/leaks_render.c): writes the loss records and the leak summary of `snap`, which must have a
 * LEAKS record (snap->has_leaks). Returns 0, MTA_GATE_FAILED when
 * fail_on_leak is set and a shown kind among definite, indirect and
 * possible has blocks (the verdict is in the output), -ENODATA without a
 * LEAKS record, -ENOMEM, or -EIO if writing failed. */
int mta_leaks(FILE *out, const mta_snapshot_t *snap, const mta_leaks_opts_t *opts);

/* The `memtrail cycles` output (render/cycles_render.c): analyzes and
 * renders to `out`. Returns 0, MTA_GATE_FAILED when --fail-on-leak found a
 * shown garbage cycle or refcount leak (the verdict is in the output),
 * -EINVAL without a graph, -ENOMEM or -EIO. */
int mta_cycles(FILE *out, const mta_snapshot_t *snap, const mta_cycles_opts_t *o);

#endif /* MTA_RENDER_OUTPUTS_H */
