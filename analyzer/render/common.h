/* What every renderer prints the same way: the snapshot header, the command
 * line, byte counts with their units, plurals, frames (function, file:line,
 * module) and stacks, flame-graph frame labels and the CI verdict. `report`,
 * `diff`, `leaks`, `cycles` and `export` all print these through here, so
 * they agree byte for byte. */
#ifndef MTA_RENDER_COMMON_H
#define MTA_RENDER_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "group.h"
#include "snapshot.h"

struct mta_json;

/* ---- strings and numbers ---------------------------------------------------- */

/* Writes a string for some output (a terminal, a markdown cell). */
typedef void mta_put_fn(FILE *out, const char *s);
/* A string for a terminal: control characters become '?'. */
void mta_put_str(FILE *out, const char *s);
/* The command line, arguments separated by spaces, for a terminal. */
void mta_put_cmdline(FILE *out, const mta_snapshot_t *s);
/* "2024-11-21T05:08:00.123Z" (iso) or "2024-11-21 05:08:00.123 UTC". */
void mta_format_time(uint64_t ns, int iso, char *buf, size_t len);
/* 1234567 -> "1,234,567". buf needs 27 bytes. */
void mta_format_count(uint64_t v, char *buf, size_t len);
/* A size for people, the one unit rule of the text outputs: 1723133 ->
 * "1,723,133 B (1.6 MiB)" (IEC units, one decimal), below 1 KiB just
 * "512 B". buf needs MTA_SIZE_LEN bytes. */
#define MTA_SIZE_LEN 48
void mta_format_size(uint64_t v, char *buf, size_t len);
/* The same for a signed change: a negative v gets a leading '-' in both
 * figures ("-2,048 B (-2.0 KiB)"), and `sign` adds '+' to positive ones. */
void mta_format_bytes(int64_t v, bool sign, char *buf, size_t len);
/* "1,234 B (1.2 KiB) in 5 blocks" (buf: MTA_SIZE_LEN + 40 bytes). */
void mta_format_bytes_in(uint64_t bytes, uint64_t blocks, char *buf, size_t len);
/* What a metric's figures are, in prose: "live memory", "memory at the
 * peak", "allocated memory". */
const char *mta_metric_memory(mta_metric_t m);
/* `one` when n is 1, else `many`. */
const char *mta_plural(uint64_t n, const char *one, const char *many);
/* "block" for 1, "blocks" otherwise. */
const char *mta_blocks_word(uint64_t n);

/* ---- colour ---------------------------------------------------------------- */

/* The palette of the text outputs, used sparingly: headings, changes in a
 * diff, the kinds of leaks, verdict lines. Off until mta_color_use(true)
 * (the command line decides: --color, a terminal, NO_COLOR); JSON, markdown
 * and the exports never paint. */
typedef enum mta_paint {
    MTA_PAINT_HEADING,   /* bold: the heading of a list or summary */
    MTA_PAINT_GROWTH,    /* red: memory that grew */
    MTA_PAINT_SHRINK,    /* green: memory that shrank */
    MTA_PAINT_BAD,       /* bold red: a failed verdict, definitely lost memory */
    MTA_PAINT_WARN,      /* yellow: memory possibly or indirectly lost */
    MTA_PAINT_GOOD,      /* green: a verdict that passed */
} mta_paint_t;

/* Turns the palette on or off for the whole process. */
void mta_color_use(bool on);
bool mta_color_on(void);
/* The escape sequence that starts paint p, and the one that ends any
 * paint; "" when colour is off. */
const char *mta_paint_on(mta_paint_t p);
const char *mta_paint_off(void);
/* Writes s (through mta_put_str) in paint p. */
void mta_put_painted(FILE *out, mta_paint_t p, const char *s);
/* Writes s in the paint of a change: GROWTH when v > 0, SHRINK when v < 0. */
void mta_put_change(FILE *out, int64_t v, const char *s);

/* ---- the snapshot ------------------------------------------------------------ */

typedef enum mta_header_style {
    /* "WHAT: PATH", then process:, command:, executable:, taken: and label:
     * lines, each ending in a newline (report) */
    MTA_HEADER_LINES,
    /* the same without executable:, and "command:" alone for an empty
     * command line (cycles) */
    MTA_HEADER_LINES_NOEXE,
    /* one line: "WHAT: PATH (pid P, #SEQ TRIGGER, TIME, label L)\n" (diff) */
    MTA_HEADER_ONE_LINE,
    /* "WHAT: PATH (pid P, TRIGGER)", "  command: ...", "  taken: TIME, #SEQ,
     * label L", without a final newline (leaks) */
    MTA_HEADER_INDENTED,
} mta_header_style_t;

/* Writes who and when a snapshot is, in one of the styles above; a sampled
 * snapshot adds "estimated: sampled by bytes, mean M, N allocations
 * sampled" (a line of its own, or in the parentheses of ONE_LINE). */
void mta_put_snapshot_header(FILE *out, const mta_snapshot_t *s, mta_header_style_t style,
                             const char *what);
/* The JSON object of docs/report-json.md for a snapshot's metadata. */
void mta_json_snapshot(struct mta_json *j, const mta_snapshot_t *s);

/* ---- frames and stacks --------------------------------------------------------- */

/* "function (file:line) [module]" (with_line: the line too); -ENOMEM. */
int mta_put_frame(FILE *out, mta_group_t *g, uint32_t f, int with_line);
/* "file" or "file:line" of a frame, through `put`. */
void mta_put_location(FILE *out, const mta_frame_t *fr, mta_put_fn *put);
/* " [module]" of a frame (nothing without one), with "+0xOFF" when offset. */
void mta_put_module(FILE *out, const mta_snapshot_t *s, uint32_t f, bool offset, mta_put_fn *put);
/* The innermost user frame of an entry (its key frame), or MTSNAP_NONE. */
uint32_t mta_entry_key_frame(mta_group_t *g, const mta_group_entry_t *e);
/* The site of a non-stack entry as the report's table shows it. */
int mta_put_site(FILE *out, mta_group_t *g, const mta_group_entry_t *e);
/* A stack, one frame a line: "    at FRAME", then "    by FRAME" (memcheck)
 * or "       FRAME" (`by`: false); frames hidden by mta_frame_hidden()
 * skipped when skip_hidden; "    [unknown stack]" when none is shown. */
int mta_put_stack(FILE *out, mta_group_t *g, const uint32_t *frames, uint32_t n, bool by,
                  bool skip_hidden);
/* The JSON object of docs/report-json.md for a frame, and an array of them
 * (hidden frames skipped when skip_hidden). */
int mta_json_frame(struct mta_json *j, mta_group_t *g, uint32_t f);
int mta_json_frames(struct mta_json *j, mta_group_t *g, const uint32_t *frames, uint32_t n,
                    bool skip_hidden);

/* ---- collapsed stacks ------------------------------------------------------------ */

/* The label a frame gets in flame graphs: mta_frame_text() without the
 * module, ';' and control characters replaced so that the collapsed form
 * stays parseable. Newly allocated; NULL on ENOMEM. */
char *mta_frame_label(mta_group_t *g, uint32_t f);
/* A cache of frame labels, one slot per snapshot frame. */
char **mta_collapsed_labels(const mta_group_t *g);
void mta_collapsed_labels_free(const mta_group_t *g, char **labels);
/* The frames of a collapsed line, "root;...;leaf", for entry e of g. */
int mta_collapsed_stack(FILE *out, mta_group_t *g, const mta_group_entry_t *e, char **labels);
/* One collapsed line, "root;...;leaf WEIGHT", for entry e of g. */
int mta_collapsed_line(FILE *out, mta_group_t *g, const mta_group_entry_t *e, char **labels,
                       int64_t weight);

/* ---- the CI verdict ---------------------------------------------------------------- */

typedef struct mta_verdict {
    bool set;              /* a --fail-* option was given */
    bool failed;
    char message[1300];    /* "FAIL: ..." or "ok: ..." */
} mta_verdict_t;

/* "\nverdict: MESSAGE\n" when set. */
void mta_put_verdict(FILE *out, const mta_verdict_t *v);
/* "verdict": { "failed": ..., [what the caller adds,] "message": ... }
 * when set: begin writes up to "failed", end the message and the close. */
void mta_json_verdict_begin(struct mta_json *j, const mta_verdict_t *v);
void mta_json_verdict_end(struct mta_json *j, const mta_verdict_t *v);
/* Both, when the caller adds nothing. */
void mta_json_verdict(struct mta_json *j, const mta_verdict_t *v);

/* The end of a command's output: rc if it is an error, -EIO if `out` could
 * not be written, MTA_GATE_FAILED when the verdict failed, else 0. */
int mta_render_end(FILE *out, int rc, const mta_verdict_t *v);

/* "\n... N more WHAT with B in M blocks (--top 0 shows all)\n": what --top
 * left out of a list. */
void mta_put_more(FILE *out, size_t n, const char *what, uint64_t bytes, uint64_t blocks);

#endif /* MTA_RENDER_COMMON_H */
