/* Name <-> number tables for triggers, leak kinds and domains, generated
 * from the X-macros of include/memtrail_format.h. Used by the preload's
 * writer (the trigger in a snapshot's file name), so nothing here
 * allocates. */
#include "names.h"

#include <errno.h>
#include <string.h>

typedef struct name_entry {
    uint32_t value;
    const char *name;
} name_entry_t;

#define MTF_ENTRY_(NAME, value, name) {value, name},
static const name_entry_t triggers[] = {MTSNAP_TRIGGERS(MTF_ENTRY_)};
static const name_entry_t leak_kinds[] = {MTSNAP_LEAK_KINDS(MTF_ENTRY_)};
static const name_entry_t domains[] = {MTSNAP_DOMAINS(MTF_ENTRY_)};
#undef MTF_ENTRY_
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(NELEM(triggers) == MTSNAP_TRIGGER_MAX, "triggers are 1..MAX");
_Static_assert(NELEM(leak_kinds) == MTSNAP_LEAK_KIND_MAX + 1, "leak kinds are 0..MAX");

static const char *lookup_name(const name_entry_t *t, size_t n, uint32_t value)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].value == value)
            return t[i].name;
    return NULL;
}

static int lookup_value(const name_entry_t *t, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(t[i].name) == len && memcmp(t[i].name, s, len) == 0)
            return (int)t[i].value;
    return -EINVAL;
}

const char *mtf_trigger_name(uint32_t trigger)
{
    const char *n = lookup_name(triggers, NELEM(triggers), trigger);
    return n ? n : "unknown";
}

int mtf_trigger_parse(const char *s, size_t n)
{
    return lookup_value(triggers, NELEM(triggers), s, n);
}

const char *mtf_leak_kind_name(unsigned kind)
{
    const char *n = lookup_name(leak_kinds, NELEM(leak_kinds), kind);
    return n ? n : "?";
}

int mtf_leak_kind_parse(const char *s, size_t n)
{
    return lookup_value(leak_kinds, NELEM(leak_kinds), s, n);
}

const char *mtf_domain_name(uint32_t domain)
{
    return lookup_name(domains, NELEM(domains), domain);
}

int mtf_domain_parse(const char *s)
{
    return lookup_value(domains, NELEM(domains), s, strlen(s));
}
