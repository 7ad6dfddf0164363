/* Test-side reader of pprof profiles (github.com/google/pprof proto/profile.proto,
 * gzip'd or raw): strict wire decoding plus pprof's own consistency checks. */
#ifndef MT_PPROF_READ_H
#define MT_PPROF_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* String fields (type, unit, name, filename, ...) are indexes into strings[]. */
typedef struct ppr_value_type {
    int64_t type, unit;
} ppr_value_type_t;

typedef struct ppr_label {
    int64_t key, str, num, num_unit;
} ppr_label_t;

typedef struct ppr_sample {
    size_t nlocs;
    uint64_t *location_ids;
    size_t nvalues;
    int64_t *values;
    size_t nlabels;
    ppr_label_t *labels;
} ppr_sample_t;

typedef struct ppr_mapping {
    uint64_t id, memory_start, memory_limit, file_offset;
    int64_t filename, build_id;
    bool has_functions, has_filenames, has_line_numbers, has_inline_frames;
} ppr_mapping_t;

typedef struct ppr_line {
    uint64_t function_id;
    int64_t line;
} ppr_line_t;

typedef struct ppr_location {
    uint64_t id, mapping_id, address;
    size_t nlines;
    ppr_line_t *lines;
    bool is_folded;
} ppr_location_t;

typedef struct ppr_function {
    uint64_t id;
    int64_t name, system_name, filename, start_line;
} ppr_function_t;

typedef struct ppr_profile {
    size_t nsample_types;
    ppr_value_type_t *sample_types;
    size_t nsamples;
    ppr_sample_t *samples;
    size_t nmappings;
    ppr_mapping_t *mappings;
    size_t nlocations;
    ppr_location_t *locations;
    size_t nfunctions;
    ppr_function_t *functions;
    size_t nstrings;
    char **strings;     /* each NUL-terminated; string_len[i] bytes (may hold NULs) */
    size_t *string_len;
    int64_t time_nanos, duration_nanos, period, default_sample_type;
    ppr_value_type_t period_type;
    size_t ncomments;
    int64_t *comments;
    int64_t drop_frames, keep_frames; /* string indexes, 0 when absent */
} ppr_profile_t;

/* Decodes an uncompressed profile.proto message. 0 or negative errno; err gets one line. */
int ppr_decode(const void *buf, size_t len, ppr_profile_t **out, char *err, size_t errlen);
/* Reads a file: gzip'd (magic 1f 8b, inflated with zlib, any size) or raw.
 * A gzip'd file must be consumed exactly: a truncated stream or trailing bytes
 * other than further gzip members are errors. */
int ppr_read_file(const char *path, ppr_profile_t **out, char *err, size_t errlen);
void ppr_free(ppr_profile_t *p);

const char *ppr_str(const ppr_profile_t *p, int64_t idx); /* NULL when out of range */
const ppr_location_t *ppr_location(const ppr_profile_t *p, uint64_t id); /* by id, NULL if none */
const ppr_function_t *ppr_function(const ppr_profile_t *p, uint64_t id);
const ppr_mapping_t *ppr_mapping(const ppr_profile_t *p, uint64_t id);

/* Checks pprof's own consistency rules and returns 0 or -EINVAL with a message:
 * string_table[0] == ""; every string index in range; ids nonzero and unique per
 * table; every sample has exactly nsample_types values; every location_id,
 * mapping_id, function_id refers to an existing entry (mapping_id 0 = none). */
int ppr_validate(const ppr_profile_t *p, char *err, size_t errlen);

#endif
