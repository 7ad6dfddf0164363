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
} mta_json_t;

void mta_json_init(mta_json_t *j, FILE *out);

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
void mta_json_bool(mta_json_t *j, bool v);
void mta_json_null(mta_json_t *j);

/* Writes `len` bytes of `s` as a quoted JSON string: ", \ and control
 * characters escaped, valid UTF-8 copied, and every byte that is not part of
 * a valid UTF-8 sequence written as \u00XX (the byte's value). */
void mta_json_write_string(FILE *out, const char *s, size_t len);

#endif /* MTA_JSON_H */
