/* Minimal streaming JSON writer: pretty-printed output with exact string
 * escaping of arbitrary bytes (see docs/report-json.md, "Strings"), and the
 * compact HTML-safe form `memtrail html` embeds in its page (docs/html.md). */
#include "json.h"

#include <inttypes.h>
#include <string.h>

void mta_json_init(mta_json_t *j, FILE *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
}

void mta_json_init_html(mta_json_t *j, FILE *out)
{
    mta_json_init(j, out);
    j->compact_depth = 1;
    j->html = true;
}

static void write_string(FILE *out, const char *s, size_t len, bool html);

static void indent(mta_json_t *j)
{
    if (j->html || (j->compact_depth && j->depth >= j->compact_depth))
        return;   /* the HTML form is all on one line */
    static const char spaces[] = "                                                                ";
    fputc_unlocked('\n', j->out);
    fwrite_unlocked(spaces, 1, (size_t)(2 * j->depth) < sizeof(spaces) - 1 ? (size_t)(2 * j->depth) : sizeof(spaces) - 1, j->out);
}

/* Separator and indentation before a value or a key. */
static void before_item(mta_json_t *j)
{
    if (j->pending_key) {
        j->pending_key = false;
        return;
    }
    if (j->depth == 0)
        return;
    if (!j->first[j->depth])
        fputc(',', j->out);
    j->first[j->depth] = false;
    indent(j);
}

static void open_container(mta_json_t *j, char c)
{
    before_item(j);
    fputc(c, j->out);
    if (j->depth + 1 < MTA_JSON_MAX_DEPTH)
        j->depth++;
    j->first[j->depth] = true;
}

static void close_container(mta_json_t *j, char c)
{
    bool empty = j->first[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (!empty)
        indent(j);
    fputc(c, j->out);
    if (j->depth == 0)
        fputc('\n', j->out);
}

void mta_json_begin_object(mta_json_t *j) { open_container(j, '{'); }
void mta_json_end_object(mta_json_t *j) { close_container(j, '}'); }
void mta_json_begin_array(mta_json_t *j) { open_container(j, '['); }
void mta_json_end_array(mta_json_t *j) { close_container(j, ']'); }

void mta_json_key(mta_json_t *j, const char *key)
{
    before_item(j);
    write_string(j->out, key, strlen(key), j->html);
    fputs(j->compact_depth && j->depth >= j->compact_depth ? ":" : ": ", j->out);
    j->pending_key = true;
}

size_t mta_utf8_seq(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void mta_json_write_string(FILE *out, const char *s, size_t len)
{
    write_string(out, s, len, false);
}

static void write_string(FILE *out, const char *str, size_t len, bool html)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc_unlocked('"', out);
    for (size_t i = 0; i < len;) {
        /* A run of printable ASCII needing no escape is written at once. */
        size_t run = i;
        while (run < len && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\' &&
               s[run] != '<')
            run++;
        if (run > i) {
            fwrite_unlocked(s + i, 1, run - i, out);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        size_t n = mta_utf8_seq(s + i, len - i);
        if (n == 0) {
            if (html)
                fputs("\\ufffd", out);
            else
                fprintf(out, "\\u%04x", c);
            i++;
            continue;
        }
        if (n > 1) {
            fwrite(s + i, 1, n, out);
            i += n;
            continue;
        }
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '<':
            fputs(html ? "\\u003c" : "<", out);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(out, "\\u%04x", c);
            else
                fputc_unlocked(c, out);
        }
        i++;
    }
    fputc_unlocked('"', out);
}

void mta_json_string_len(mta_json_t *j, const char *s, size_t len)
{
    before_item(j);
    write_string(j->out, s, len, j->html);
}

void mta_json_splice(mta_json_t *j, const char *text, size_t len)
{
    bool in_string = false, escaped = false;
    before_item(j);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        }
        if (c == '<' && j->html)
            fputs("\\u003c", j->out);
        else
            fputc_unlocked(c, j->out);
    }
}

void mta_json_string(mta_json_t *j, const char *s)
{
    mta_json_string_len(j, s, strlen(s));
}

void mta_json_u64(mta_json_t *j, uint64_t v)
{
    before_item(j);
    fprintf(j->out, "%" PRIu64, v);
}

void mta_json_i64(mta_json_t *j, int64_t v)
{
    before_item(j);
    fprintf(j->out, "%" PRId64, v);
}

void mta_json_double(mta_json_t *j, double v)
{
    before_item(j);
    fprintf(j->out, "%.17g", v);
}

void mta_json_seconds(mta_json_t *j, uint64_t ns)
{
    char frac[16];
    int n = snprintf(frac, sizeof(frac), "%09" PRIu64, ns % 1000000000u);
    while (n > 0 && frac[n - 1] == '0')
        frac[--n] = '\0';
    before_item(j);
    fprintf(j->out, "%" PRIu64 "%s%s", ns / 1000000000u, n ? "." : "", frac);
}

void mta_json_bool(mta_json_t *j, bool v)
{
    before_item(j);
    fputs(v ? "true" : "false", j->out);
}

void mta_json_null(mta_json_t *j)
{
    before_item(j);
    fputs("null", j->out);
}
