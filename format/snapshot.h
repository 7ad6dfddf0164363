/* Snapshot reader: loads a *.mtsnap file into memory, validating every record.
 * Used by every analyzer command and by the tests. */
#ifndef MTA_SNAPSHOT_H
#define MTA_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "memtrail_format.h"
#include "memtrail_sample.h"

typedef struct mta_module {
    uint64_t start, end, bias;
    const char *path;      /* NUL-terminated, never NULL */
    const char *build_id;  /* lower-case hex, "" if none */
} mta_module_t;

typedef struct mta_frame {
    uint64_t pc, offset;
    uint32_t module;       /* index into modules[], or MTSNAP_NONE */
    uint32_t line;         /* 0 if unknown */
    uint32_t kind;         /* enum mtsnap_frame_kind */
    uint32_t inlined;      /* 1: a function inlined into the next frame of every
                              stack that holds it (same pc; INLINED record) */
    const char *function;  /* as stored (mangled); "" if unknown */
    const char *file;      /* "" if unknown */
} mta_frame_t;

typedef struct mta_stack {
    uint32_t depth;
    const uint32_t *frames; /* indices into frames[], innermost first */
} mta_stack_t;

/* A point of the TIMELINE record (include/memtrail_format.h). */
typedef struct mta_timeline_point {
    uint64_t t_ns;        /* since tracing began in the process (META.start_ns) */
    uint64_t heap_bytes;  /* live heap bytes: the maximum over (previous t, t] */
    uint64_t heap_blocks; /* live blocks at that maximum */
    uint64_t rss_bytes;   /* resident set size, the maximum over the interval; 0 unknown */
} mta_timeline_point_t;

typedef struct mta_snapshot {
    char *path;             /* the file it was read from */
    uint32_t version;       /* the file's format version */
    mtsnap_meta_t meta;
    const char *label, *exe, *hostname;
    const char *cmdline;    /* argv joined with NUL bytes */
    size_t cmdline_len;
    mtsnap_totals_t totals;
    uint32_t nstrings;
    const char **strings;   /* NUL-terminated copies (may hold NULs too) */
    uint32_t *string_len;   /* byte length of each string, NUL not counted */
    uint32_t nmodules;
    mta_module_t *modules;
    uint32_t nframes;
    mta_frame_t *frames;
    uint32_t nstacks;
    mta_stack_t *stacks;
    uint32_t nstats;
    mtsnap_stack_stat_t *stats;
    uint64_t nblocks;
    mtsnap_block_t *blocks; /* sorted by address */
    /* SAMPLING (optional): has_sampling is 0 when every allocation was
     * recorded (the figures are exact); else they are estimates and each
     * block stands for more (mta_block_bytes, mta_block_units below). */
    int has_sampling;
    mtsnap_sampling_t sampling;
    /* LEAKS (optional): has_leaks is 0 when the file has none. */
    int has_leaks;
    mtsnap_leak_header_t leak;
    uint8_t *leak_kind;     /* nblocks entries, enum mtsnap_leak_kind, BLOCKS order */
    /* PYGRAPH (optional): has_pygraph is 0 when the file has none. */
    int has_pygraph;
    mtsnap_pygraph_header_t pygraph;
    mtsnap_pyobj_t *pyobjs; /* pygraph.objects entries, sorted by address */
    uint64_t *pyedges;      /* pygraph.edges referent addresses */
    uint64_t *pyedge_first; /* pygraph.objects + 1 entries: object i's edges are
                               pyedges[pyedge_first[i] .. pyedge_first[i + 1]) */
    /* INLINED (optional): has_inlined is 0 when the file has none (no frame
     * is inlined); else ninlined frames have their `inlined` set. */
    int has_inlined;
    uint32_t ninlined;
    /* TIMELINE (optional): has_timeline is 0 when the file has none. */
    int has_timeline;
    uint64_t timeline_step_ns;        /* resolution of the series */
    uint64_t ntimeline;
    mta_timeline_point_t *timeline;   /* by increasing t_ns */
    /* COSTS (optional): has_costs is 0 when the file has none. */
    int has_costs;
    mtsnap_costs_t costs;
    /* TIMING (optional): has_timing is 0 when the file has none. */
    int has_timing;
    mtsnap_timing_t timing;
    void *priv;             /* reader-owned storage */
} mta_snapshot_t;

/* What block b of s stands for in the figures: its size and one block in
 * an exact snapshot; in a sampled one the estimates of memtrail_sample.h,
 * which the writer added into STACK_STATS and TOTALS. Blocks come in units:
 * sum them, then turn the sum into blocks with mta_units_blocks(). */
static inline uint64_t mta_block_bytes(const mta_snapshot_t *s, const mtsnap_block_t *b)
{
    return s->has_sampling && b->domain != MTSNAP_DOMAIN_MMAP
               ? mtsample_bytes(b->size, s->sampling.mean) : b->size;
}

/* (Mappings are never sampled: one block each.) */
static inline uint64_t mta_block_units(const mta_snapshot_t *s, const mtsnap_block_t *b)
{
    if (!s->has_sampling)
        return 1;
    return b->domain != MTSNAP_DOMAIN_MMAP ? mtsample_units(b->size, s->sampling.mean)
                                           : MTSAMPLE_UNIT;
}

static inline uint64_t mta_units_blocks(const mta_snapshot_t *s, uint64_t units)
{
    return s->has_sampling ? mtsample_blocks(units) : units;
}

/* Load and validate `path`. On failure returns a negative errno, sets *out to
 * NULL and writes a one-line message (no trailing newline) such as
 * "snapshot: FILE: truncated (END record missing)" into err. */
int mta_snapshot_load(const char *path, mta_snapshot_t **out, char *err, size_t errlen);
/* The same from memory (the buffer is copied as needed; `name` is used in messages). */
int mta_snapshot_parse(const void *buf, size_t len, const char *name, mta_snapshot_t **out,
                       char *err, size_t errlen);
void mta_snapshot_free(mta_snapshot_t *snap);

/* The TIMING record of `path` without reading the rest: the record headers
 * are read and their payloads skipped. 0 and *out, -ENOENT when the file has
 * none, or another negative errno (not a snapshot, truncated, bad CRC). */
int mta_snapshot_timing(const char *path, mtsnap_timing_t *out);
/* The COSTS record of `path` the same way. */
int mta_snapshot_costs(const char *path, mtsnap_costs_t *out);
/* The bytes record `tag` takes in `path` as stored (its header included),
 * found the same way. 0, -ENOENT when the file has none, or -errno. */
int mta_snapshot_record_size(const char *path, uint32_t tag, uint64_t *bytes);

#endif /* MTA_SNAPSHOT_H */
