/* String interning for the exporters: an open-addressing table (FNV-1a,
 * linear probing, load at most 1/2) over copies of the strings. */
#include "intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mta_intern_init(mta_intern_t *t)
{
    memset(t, 0, sizeof(*t));
}

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static int grow_slots(mta_intern_t *t)
{
    size_t n = t->nslots ? t->nslots * 2 : 1024;
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->count; i++) {
        size_t k = hash(t->strings[i], t->lens[i]) & (n - 1);
        while (slots[k])
            k = (k + 1) & (n - 1);
        slots[k] = (uint32_t)i + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    return 0;
}

int64_t mta_intern(mta_intern_t *t, const char *s, size_t len)
{
    if ((t->count + 1) * 2 > t->nslots && grow_slots(t) < 0)
        return -ENOMEM;
    size_t k = hash(s, len) & (t->nslots - 1);
    for (; t->slots[k]; k = (k + 1) & (t->nslots - 1)) {
        size_t i = t->slots[k] - 1;
        if (t->lens[i] == len && memcmp(t->strings[i], s, len) == 0)
            return (int64_t)i;
    }
    if (t->count == UINT32_MAX - 1)
        return -ENOMEM;
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char **ns = realloc(t->strings, cap * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        t->strings = ns;
        size_t *nl = realloc(t->lens, cap * sizeof(*nl));
        if (!nl)
            return -ENOMEM;
        t->lens = nl;
        t->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->strings[t->count] = copy;
    t->lens[t->count] = len;
    t->slots[k] = (uint32_t)t->count + 1;
    return (int64_t)t->count++;
}

int64_t mta_intern_str(mta_intern_t *t, const char *s)
{
    return mta_intern(t, s, strlen(s));
}

void mta_intern_free(mta_intern_t *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->strings[i]);
    free(t->strings);
    free(t->lens);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}
