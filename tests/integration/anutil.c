/* Helpers of the analyzer integration tests (test_analyzer.c): a small JSON
 * reader for the analyzer's output, running memtrail, and per-test cleanup. */
#include "anutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* What a test allocates (strings, parsed JSON) is freed when it ends. */
struct jv;
void jfree(struct jv *v);
static void *an_mem[1024];
static struct jv *an_json[256];
static size_t an_nmem, an_njson;

void *an_keep(void *p)
{
    cr_assert(p != NULL && an_nmem < 1024);
    return an_mem[an_nmem++] = p;
}

void an_fini(void)
{
    while (an_nmem > 0)
        free(an_mem[--an_nmem]);
    while (an_njson > 0)
        jfree(an_json[--an_njson]);
    mt_teardown();
}

/* ---- a small JSON reader (the analyzer's output only) ----------------------- */


static const char *jws(const char *p)
{
    return p + strspn(p, " \t\r\n");
}

/* A string (escapes decoded; \u above 0x7f becomes '?'); *p moves past it. */
static char *jstring(const char **p)
{
    const char *s = *p, *end = s + 1;
    cr_assert(*s == '"', "JSON: string expected at \"%.20s\"", s);
    while (*end && *end != '"')   /* the escaped length bounds the result */
        end += end[0] == '\\' && end[1] ? 2 : 1;
    char *out = malloc((size_t)(end - s) + 1), *o = out;
    cr_assert_not_null(out, "JSON: out of memory");
    for (s++; *s != '"'; s++) {
        cr_assert(*s != '\0' && (*s != '\\' || s[1] != '\0'), "JSON: unterminated string");
        if (*s != '\\') {
            *o++ = *s;
        } else if (*++s == 'u') {
            unsigned cp = 0;
            cr_assert_eq(sscanf(s + 1, "%4x", &cp), 1, "JSON: bad \\u escape");
            *o++ = cp < 0x80 ? (char)cp : '?';
            s += 4;
        } else {
            const char *esc = strchr("\"\"\\\\//b\bf\fn\nr\rt\t", *s);
            cr_assert_not_null(esc, "JSON: bad escape \\%c", *s);
            *o++ = esc[1];
        }
    }
    *o = '\0';
    *p = s + 1;
    return out;
}

static jv_t *jvalue(const char **p)
{
    jv_t *v = calloc(1, sizeof(*v));
    cr_assert_not_null(v);
    *p = jws(*p);
    if (**p == '{' || **p == '[') {
        char close = **p == '{' ? '}' : ']';
        v->type = **p == '{' ? 'o' : 'a';
        for (*p = jws(*p + 1); **p != close;) {
            v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
            v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
            cr_assert(v->items != NULL && v->keys != NULL);
            v->keys[v->n] = NULL;
            if (v->type == 'o') {
                v->keys[v->n] = jstring(p);
                *p = jws(*p);
                cr_assert_eq(**p, ':', "JSON: ':' expected at \"%.20s\"", *p);
                (*p)++;
            }
            v->items[v->n++] = jvalue(p);
            *p = jws(*p);
            cr_assert(**p == ',' || **p == close, "JSON: ',' or '%c' expected at \"%.20s\"",
                      close, *p);
            if (**p == ',')
                *p = jws(*p + 1);
        }
        (*p)++;
    } else if (**p == '"') {
        v->type = 's';
        v->str = jstring(p);
    } else if (**p == '-' || (**p >= '0' && **p <= '9')) {
        char *end;
        v->type = 'n';
        v->num = strtoll(*p, &end, 10);
        cr_assert(*end == '\0' || strchr(".eE", *end) == NULL, "JSON: non-integer number");
        *p = end;
    } else {
        static const char *const words[] = {"true", "false", "null"};
        int k = 0;
        while (k < 3 && strncmp(*p, words[k], strlen(words[k])) != 0)
            k++;
        cr_assert_lt(k, 3, "JSON: value expected at \"%.20s\"", *p);
        v->type = "tfz"[k];
        *p += strlen(words[k]);
    }
    return v;
}

jv_t *jparse(const char *text)
{
    jv_t *v = jvalue(&text);
    cr_assert_eq(*jws(text), '\0', "JSON: trailing text \"%.20s\"", text);
    return v;
}

void jfree(jv_t *v)
{
    for (size_t i = 0; v != NULL && i < v->n; i++) {
        free(v->keys[i]);
        jfree(v->items[i]);
    }
    if (v != NULL) {
        free(v->keys);
        free(v->items);
        free(v->str);
    }
    free(v);
}

/* Member `key` of an object, or NULL. */
jv_t *jget(const jv_t *o, const char *key)
{
    cr_assert_eq(o->type, 'o', "JSON: object expected for \"%s\"", key);
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return o->items[i];
    return NULL;
}

/* Member `key`, asserted present and of that type. */
jv_t *jreq(const jv_t *o, const char *key, char type)
{
    jv_t *v = jget(o, key);
    cr_assert(v != NULL && v->type == type, "JSON: no member \"%s\" of type '%c'", key, type);
    return v;
}

long long jnum(const jv_t *o, const char *key) { return jreq(o, key, 'n')->num; }
const char *jstr(const jv_t *o, const char *key) { return jreq(o, key, 's')->str; }
/* true/false member as 1/0 (asserted to be one of them) */
int jbool(const jv_t *o, const char *key)
{
    jv_t *v = jget(o, key);
    cr_assert(v != NULL && (v->type == 't' || v->type == 'f'), "JSON: \"%s\" not a bool", key);
    return v->type == 't';
}

/* ---- running memtrail -------------------------------------------------------- */

/* Runs `memtrail ARGS...` (NULL-terminated); returns its exit status. */
int mt_argv(mt_run_t *r, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = mt_env("MEMTRAIL_EXE");
    for (; *args != NULL; args++) {
        cr_assert_lt(n, 63);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    cr_assert_eq(run_bare_capture(argv, r), 0, "cannot run memtrail %s", argv[1]);
    cr_assert(WIFEXITED(r->status), "memtrail %s: wait status %#x", argv[1], r->status);
    return WEXITSTATUS(r->status);
}

/* The JSON memtrail printed, asserting its exit status. */
jv_t *json_argv(int want, const char *const *args)
{
    mt_run_t r;
    int rc = mt_argv(&r, args);
    cr_assert_eq(rc, want, "memtrail %s: exit %d, want %d; stderr: %s", args[0], rc, want, r.err);
    jv_t *v = jparse(r.out);
    mt_run_free(&r);
    cr_assert_lt(an_njson, 256);
    return an_json[an_njson++] = v;
}

/* The last line of text, without its newline. Strings these helpers return
 * are freed when the test ends (an_fini). */
char *last_line(const char *text)
{
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        len--;
    const char *p = text + len;
    while (p > text && p[-1] != '\n')
        p--;
    return an_keep(strndup(p, (size_t)(text + len - p)));
}

char *cat(const char *a, const char *b)
{
    char *s = NULL;
    cr_assert(asprintf(&s, "%s%s", a, b) > 0);
    return an_keep(s);
}

/* " arg1 arg2 ..." of a NULL-terminated list, for messages. */
char *join(const char *const *f)
{
    char *s = strdup(""), *t;
    for (; *f != NULL; f++, free(s), s = t)
        cr_assert(asprintf(&t, "%s %s", s, *f) > 0);
    return an_keep(s);
}

/* ---- the two-count collapsed form ------------------------------------------ */

/* Parses every line of `text` into v (at most max); asserts the form: a
 * stack, one space, two unsigned decimal counts, a newline. */
size_t parse_folded2(const char *text, folded2_t *v, size_t max)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0'; n++) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "collapsed output does not end with a newline");
        cr_assert_lt(n, max, "more than %zu lines", max);
        char *l = strndup(p, (size_t)(nl - p)), *b = strrchr(l, ' '), *end;
        cr_assert(b != NULL && b > l, "line \"%s\" has no counts", l);
        *b = '\0';
        char *a = strrchr(l, ' ');
        cr_assert(a != NULL && a > l, "line \"%s %s\" has one count", l, b + 1);
        *a = '\0';
        cr_assert(a[1] >= '0' && a[1] <= '9' && b[1] >= '0' && b[1] <= '9', "counts \"%s %s\"",
                  a + 1, b + 1);
        v[n].old = strtoll(a + 1, &end, 10);
        cr_assert_eq(*end, '\0', "old count \"%s\"", a + 1);
        v[n].new = strtoll(b + 1, &end, 10);
        cr_assert_eq(*end, '\0', "new count \"%s\"", b + 1);
        v[n].stack = l;
        p = nl + 1;
    }
    return n;
}

/* The collapsed stack of a diff JSON entry: its frames' "function
 * (file:line)" labels, outermost first. */
char *json_stack(const jv_t *e)
{
    const jv_t *fr = jreq(e, "frames", 'a');
    char *out = strdup("");
    for (size_t k = fr->n; k-- > 0;) {
        const jv_t *f = fr->items[k];
        char *next = NULL, line[32] = "";
        if (jnum(f, "line"))
            snprintf(line, sizeof(line), ":%lld", jnum(f, "line"));
        const char *file = jstr(f, "file");
        cr_assert_geq(asprintf(&next, "%s%s%s%s%s%s%s", out, k + 1 == fr->n ? "" : ";",
                               jstr(f, "function"), file[0] ? " (" : "", file, file[0] ? line : "",
                               file[0] ? ")" : ""), 0);
        free(out);
        out = next;
    }
    return out;
}
