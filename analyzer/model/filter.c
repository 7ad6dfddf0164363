/* Filters on a snapshot's blocks: parsing of --include/--exclude patterns
 * and --domain/--exclude-domain values, and matching one frame's names. */
#include "filter.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memtrail_format.h"
#include "demangle.h"
#include "names.h"

const char mta_filter_usage[] =
    "Filters (as tracemalloc's Filter and DomainFilter; may be repeated):\n"
    "      --include [FIELD:]GLOB  count only blocks whose key frame matches one\n"
    "                              --include; FIELD is file, function or module\n"
    "                              (default: any of the three); '*' matches '/'\n"
    "      --exclude [FIELD:]GLOB  leave out blocks whose key frame matches\n"
    "      --all-frames            match the patterns on every frame of the stack\n"
    "                              instead of the key frame\n"
    "      --domain D              count only domain D: native, python (raw, mem\n"
    "                              and obj), raw, mem, obj, mmap, or an\n"
    "                              extension's number (PyTraceMalloc_Track's\n"
    "                              domain); mmap (the program's own mappings)\n"
    "                              is counted only when named\n"
    "      --exclude-domain D      leave out domain D\n";

int mta_pattern_parse(const char *arg, bool include, mta_pattern_t *out)
{
    static const struct { const char *prefix; mta_match_field_t field; } fields[] = {
        { "file:", MTA_MATCH_FILE },
        { "function:", MTA_MATCH_FUNCTION },
        { "module:", MTA_MATCH_MODULE },
    };
    *out = (mta_pattern_t){ .field = MTA_MATCH_ANY, .include = include, .glob = arg };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        size_t n = strlen(fields[i].prefix);
        if (strncmp(arg, fields[i].prefix, n) == 0) {
            out->field = fields[i].field;
            out->glob = arg + n;
            break;
        }
    }
    return out->glob[0] ? 0 : -EINVAL;
}

static int push_domain(uint32_t **v, size_t *n, uint32_t d)
{
    uint32_t *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    nv[(*n)++] = d;
    *v = nv;
    return 0;
}

/* The name of the Python domains together. */
static const char python_domains[] = "python";

const char *mta_domain_word(unsigned i)
{
    if (i == 0)
        return mtf_domain_name(MTSNAP_DOMAIN_NATIVE);
    if (i == 1)
        return python_domains;
    return i - 2 <= MTSNAP_DOMAIN_MMAP - MTSNAP_DOMAIN_PY_RAW
               ? mtf_domain_name(MTSNAP_DOMAIN_PY_RAW + (i - 2)) : NULL;
}

int mta_domain_parse(const char *arg, uint32_t **v, size_t *n)
{
    int rc;
    if (strcmp(arg, python_domains) == 0) {
        for (uint32_t d = MTSNAP_DOMAIN_PY_RAW; d <= MTSNAP_DOMAIN_PY_OBJ; d++)
            if ((rc = push_domain(v, n, d)) < 0)
                return rc;
        return 0;
    }
    int named = mtf_domain_parse(arg);
    if (named >= 0)
        return push_domain(v, n, (uint32_t)named);
    /* An extension domain: the number the extension gave PyTraceMalloc_Track. */
    char *end;
    if (arg[0] < '0' || arg[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long d = strtoull(arg, &end, 10);
    if (errno || *end || d > UINT32_MAX - MTSNAP_DOMAIN_EXT_BASE)
        return -EINVAL;
    return push_domain(v, n, (uint32_t)d + MTSNAP_DOMAIN_EXT_BASE);
}

int mta_filter_option(mta_filter_t *f, int opt, const char *arg, char *err, size_t errlen)
{
    const char *name = NULL;
    int rc = 0;
    switch (opt) {
    case MTA_OPT_INCLUDE:
    case MTA_OPT_EXCLUDE: {
        mta_pattern_t p;
        name = opt == MTA_OPT_INCLUDE ? "--include" : "--exclude";
        if (mta_pattern_parse(arg, opt == MTA_OPT_INCLUDE, &p) < 0) {
            snprintf(err, errlen, "invalid %s '%s' (a glob, optionally after file:, function: or module:)",
                     name, arg);
            return -EINVAL;
        }
        mta_pattern_t *np = realloc(f->patterns, (f->npatterns + 1) * sizeof(*np));
        if (!np) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        np[f->npatterns++] = p;
        f->patterns = np;
        return 1;
    }
    case MTA_OPT_ALL_FRAMES:
        f->all_frames = true;
        return 1;
    case MTA_OPT_DOMAIN:
        name = "--domain";
        rc = mta_domain_parse(arg, &f->domains, &f->ndomains);
        break;
    case MTA_OPT_EXCLUDE_DOMAIN:
        name = "--exclude-domain";
        rc = mta_domain_parse(arg, &f->exclude_domains, &f->nexclude_domains);
        break;
    default:
        return 0;
    }
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "invalid %s '%s' (native, python, raw, mem, obj, mmap or an extension's domain number)",
                 name, arg);
        return rc;
    }
    return 1;
}

bool mta_filter_has_domains(const mta_filter_t *f)
{
    return f && (f->ndomains || f->nexclude_domains);
}

bool mta_filter_has_patterns(const mta_filter_t *f)
{
    return f && f->npatterns;
}

static bool in(const uint32_t *v, size_t n, uint32_t d)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == d)
            return true;
    return false;
}

/* The mmap domain is not heap: counted only when a --domain names it. */
bool mta_filter_domain(const mta_filter_t *f, uint32_t domain)
{
    if (!f || !f->ndomains)
        return domain != MTSNAP_DOMAIN_MMAP &&
               !(f && in(f->exclude_domains, f->nexclude_domains, domain));
    if (!in(f->domains, f->ndomains, domain))
        return false;
    return !in(f->exclude_domains, f->nexclude_domains, domain);
}

bool mta_pattern_match(const mta_pattern_t *p, const char *file, const char *function,
                       const char *module)
{
    bool any = p->field == MTA_MATCH_ANY;
    if ((any || p->field == MTA_MATCH_FILE) && file[0] && fnmatch(p->glob, file, 0) == 0)
        return true;
    if ((any || p->field == MTA_MATCH_FUNCTION) && function[0] &&
        fnmatch(p->glob, function, 0) == 0)
        return true;
    if ((any || p->field == MTA_MATCH_MODULE) && module[0] &&
        (fnmatch(p->glob, module, 0) == 0 || fnmatch(p->glob, mta_basename(module), 0) == 0))
        return true;
    return false;
}

void mta_filter_free(mta_filter_t *f)
{
    if (!f)
        return;
    free(f->patterns);
    free(f->domains);
    free(f->exclude_domains);
    *f = (mta_filter_t){ 0 };
}
