/* Filters on a snapshot's blocks, in the spirit of tracemalloc's Filter and
 * DomainFilter: which stacks and which domains `report`, `diff` and `export` count. */
#ifndef MTA_FILTER_H
#define MTA_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a pattern is matched against. ANY: the file, the function or the module. */
typedef enum mta_match_field {
    MTA_MATCH_ANY = 0,
    MTA_MATCH_FILE,
    MTA_MATCH_FUNCTION,
    MTA_MATCH_MODULE,
} mta_match_field_t;

typedef struct mta_pattern {
    mta_match_field_t field;
    bool include;          /* --include (true) or --exclude (false) */
    const char *glob;      /* fnmatch(3) pattern, no flags: '*' matches '/' too */
} mta_pattern_t;

typedef struct mta_filter {
    size_t npatterns;
    mta_pattern_t *patterns;
    bool all_frames;       /* match on any frame instead of the key frame */
    /* Domains: counted when in `domains` (or none given), and not in `exclude_domains`. */
    size_t ndomains, nexclude_domains;
    uint32_t *domains, *exclude_domains;
} mta_filter_t;

/* Option letters shared by the commands that take filters (getopt_long values). */
enum {
    MTA_OPT_INCLUDE = 0x1000,
    MTA_OPT_EXCLUDE,
    MTA_OPT_ALL_FRAMES,
    MTA_OPT_DOMAIN,
    MTA_OPT_EXCLUDE_DOMAIN,
};
#define MTA_FILTER_LONGOPTS                                                  \
    { "include", required_argument, NULL, MTA_OPT_INCLUDE },                 \
    { "exclude", required_argument, NULL, MTA_OPT_EXCLUDE },                 \
    { "all-frames", no_argument, NULL, MTA_OPT_ALL_FRAMES },                 \
    { "domain", required_argument, NULL, MTA_OPT_DOMAIN },                   \
    { "exclude-domain", required_argument, NULL, MTA_OPT_EXCLUDE_DOMAIN }

/* The usage lines for those options. */
extern const char mta_filter_usage[];

/* Applies option `opt` (one of MTA_OPT_*) with argument `arg`. Returns 1 if
 * it was a filter option, 0 if not, or -EINVAL with a message in err
 * ("invalid --domain 'x' (native, python, raw, mem, obj or a number)"). */
int mta_filter_option(mta_filter_t *f, int opt, const char *arg, char *err, size_t errlen);

/* "[FIELD:]GLOB" with FIELD file, function or module. */
int mta_pattern_parse(const char *arg, bool include, mta_pattern_t *out);
/* "native" (0), "python" (1, 2, 3), "raw", "mem", "obj", or an extension
 * domain number N (stored as 16 + N, as in the snapshot). Appends to *v. */
int mta_domain_parse(const char *arg, uint32_t **v, size_t *n);
/* The names mta_domain_parse() takes: "native", "python", then the Python
 * domains' own ("raw", "mem", "obj"), then "mmap"; NULL after the last. */
const char *mta_domain_word(unsigned i);

bool mta_filter_has_domains(const mta_filter_t *f);
bool mta_filter_has_patterns(const mta_filter_t *f);
bool mta_filter_domain(const mta_filter_t *f, uint32_t domain);
void mta_filter_free(mta_filter_t *f);

/* Does pattern p match a frame with these names? file/function/module may be "". */
bool mta_pattern_match(const mta_pattern_t *p, const char *file, const char *function,
                       const char *module);

#endif /* MTA_FILTER_H */
