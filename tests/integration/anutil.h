/* Helpers of the analyzer integration tests (test_analyzer.c): a small JSON
 * reader for the analyzer's output, running memtrail, and per-test cleanup. */
#ifndef MT_ANUTIL_H
#define MT_ANUTIL_H

#include <stddef.h>

#include "harness.h"

typedef struct jv {
    char type;            /* 'o'bject, 'a'rray, 's'tring, 'n'umber, 't'rue, 'f'alse, 'z' null */
    long long num;
    char *str;
    size_t n;             /* members or elements */
    char **keys;          /* objects */
    struct jv **items;    /* objects and arrays */
} jv_t;

/* Strings and parsed JSON the helpers return are freed when the test ends
 * (an_fini, the tests' .fini). */
void *an_keep(void *p);
void an_fini(void);
jv_t *jparse(const char *text);
void jfree(jv_t *v);
jv_t *jget(const jv_t *o, const char *key);
jv_t *jreq(const jv_t *o, const char *key, char type);
long long jnum(const jv_t *o, const char *key);
const char *jstr(const jv_t *o, const char *key);
int jbool(const jv_t *o, const char *key);
int mt_argv(mt_run_t *r, const char *const *args);
jv_t *json_argv(int want, const char *const *args);
char *last_line(const char *text);
char *cat(const char *a, const char *b);
char *join(const char *const *f);

/* A line of the two-count collapsed form, "frame;...;frame OLD NEW", as
 * FlameGraph's difffolded.pl writes it (`memtrail diff --format collapsed`). */
typedef struct folded2 {
    char *stack;          /* malloc'ed */
    long long old, new;
} folded2_t;
/* Parses every line of `text` into v (at most max lines), asserting the
 * form; returns the number of lines. */
size_t parse_folded2(const char *text, folded2_t *v, size_t max);
/* The collapsed stack of a diff or report JSON entry: its frames'
 * "function (file:line)" labels, outermost first (malloc'ed). */
char *json_stack(const jv_t *e);

#define MT(r, ...) mt_argv((r), (const char *const[]){__VA_ARGS__, NULL})
#define JSON(want, ...) json_argv((want), (const char *const[]){__VA_ARGS__, NULL})

#endif /* MT_ANUTIL_H */
