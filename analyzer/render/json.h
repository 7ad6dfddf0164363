/* Minimal streaming JSON writer (pretty-printed, 2-space indent) used by the
 * JSON report and later exporters. Escaping rules: docs/report-json.md. */
#ifndef MTA_JSON_H
#define MTA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MTA_JSON_MAX_DEPTH 32

typedef struct mta_json {
    FILE *out;
    int depth;
    bool first[MTA_JSON_MAX_DEPTH]; /* no member written yet at this level */
    bool pending_key;               /* a key was written, its value comes next */
    int compact_depth;              /* > 0: containers at this depth and deeper are
                                       written on one line (big machine-read arrays) */
    bool html;                      /* for a <script> element: '<' written as \u003c and
                                       each invalid UTF-8 byte as U+FFFD (mta_json_html) */
} mta_json_t;

void mta_json_init(mta_json_t *j, FILE *out);
/* The same for JSON embedded in an HTML <script> element (`memtrail html`):
 * compact (one line), every '<' written as \u003c so that neither "</script"
 * nor "<!--" can appear, and every byte that is not part of a valid UTF-8
 * sequence written as \ufffd (U+FFFD) instead of \u00XX. */
void mta_json_init_html(mta_json_t *j, FILE *out);

/* Containers. Inside an object, call mta_json_key() before each value. */
void mta_json_begin_object(mta_json_t *j);
void mta_json_end_object(mta_json_t *j);
void mta_json_begin_array(mta_json_t *j);
void mta_json_end_array(mta_json_t *j);
void mta_json_key(mta_json_t *j, const char *key);

/* Values. */
void mta_json_string(mta_json_t *j, const char *s);
void mta_json_string_len(mta_json_t *j, const char *s, size_t len);
void mta_json_u64(mta_json_t *j, uint64_t v);
void mta_json_i64(mta_json_t *j, int64_t v);
void mta_json_double(mta_json_t *j, double v);
/* ns nanoseconds as a number of seconds, exactly: "12.3456" (no trailing
 * zeros, no exponent). */
void mta_json_seconds(mta_json_t *j, uint64_t ns);
void mta_json_bool(mta_json_t *j, bool v);
void mta_json_null(mta_json_t *j);

/* Writes `len` bytes of JSON text (another writer's output) as the next
 * value: whitespace outside strings dropped and, when j->html, every '<'
 * written as \u003c (a '<' of JSON text is always inside a string, where
 * that escape means the same character). The text is not validated. */
void mta_json_splice(mta_json_t *j, const char *text, size_t len);

/* Writes `len` bytes of `s` as a quoted JSON string: ", \ and control
 * characters escaped, valid UTF-8 copied, and every byte that is not part of
 * a valid UTF-8 sequence written as \u00XX (the byte's value). */
void mta_json_write_string(FILE *out, const char *s, size_t len);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the byte at s
 * does not start one within `left` bytes (overlong forms, surrogates and
 * code points above U+10FFFF are invalid). */
size_t mta_utf8_seq(const unsigned char *s, size_t left);

#endif /* MTA_JSON_H */
