/*
 * memtrail-docgen: writes memtrail's man pages and shell completions at build
 * time from what the `memtrail` program itself uses: the command table
 * (mta_commands), each command's getopt tables and option words (cli.h), and
 * the help texts (mta_cli_help, mta_cli_usage). Not installed.
 *
 *   memtrail-docgen man DIR    DIR/memtrail.1 and DIR/memtrail-CMD.1 per command
 *   memtrail-docgen bash FILE  the bash completion (bash-completion's `memtrail`)
 *   memtrail-docgen zsh FILE   the zsh completion (`_memtrail`)
 *
 * First it checks that the tables and the help texts agree, and fails (one
 * line on stderr, exit status 1: the build stops) when they do not: every
 * option entry of a help names an option of the command's table, with the
 * short letter the table gives it and an argument exactly when the option
 * takes one; every option of the table has its entry; every option word row
 * names an option that takes a value.
 *
 * A help text is read as the terminal shows it: blocks separated by empty
 * lines; "Usage:" lines; headings ("Options:", "Commands:", "Filters (...):");
 * entries indented by at most 8 columns (an option "-x, --name ARG  text", or
 * a term and its text after two spaces) whose text goes on in lines indented
 * further; prose. The man page keeps all of it: NAME from the summary,
 * SYNOPSIS from the usage lines, DESCRIPTION, OPTIONS, EXIT STATUS and
 * ENVIRONMENT from the lines that begin with "Exit status:" and
 * "Environment:", then SEE ALSO.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "memtrail_protocol.h"

#ifndef MEMTRAIL_VERSION
#define MEMTRAIL_VERSION "unknown"
#endif

#define PROG "memtrail-docgen"
#define MAX_INDENT 8   /* entries are indented at most this much */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        die("out of memory");
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- the help texts, parsed ---------------------------------------------- */

typedef enum { L_BLANK, L_USAGE, L_HEADING, L_PROSE, L_OPTION, L_ENTRY, L_CONT } line_kind_t;

typedef struct line {
    line_kind_t kind;
    char *text;       /* without its indentation */
    /* L_OPTION: the option, its short letter (0: none), its argument's name
     * (NULL: none), and its text on this line; L_ENTRY: the term and its
     * text. */
    const struct option *opt;
    char shortc;
    char *arg, *term, *rest;
} line_t;

typedef struct help {
    const mta_command_t *cmd;   /* NULL: the top-level help */
    char *text;
    size_t nlines;
    line_t *lines;
} help_t;

/* Per option of a command: what the completions need. */
typedef struct optdoc {
    const struct option *opt;
    char shortc;
    const char *arg;      /* the help's name for its value, NULL if none */
    char *desc;           /* its help text, joined into one line */
    const mta_arg_t *value;   /* the args row of the option, NULL if none */
} optdoc_t;

static char *help_text(const mta_command_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        die("open_memstream: %s", strerror(errno));
    if (c)
        mta_cli_usage(c, f);
    else
        mta_cli_help(f);
    if (fclose(f) != 0)
        die("out of memory");
    return buf;
}

static const struct option *find_long(const mta_command_t *c, const char *name, size_t n)
{
    for (const struct option *o = c->longopts; o->name; o++)
        if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
            return o;
    return NULL;
}

/* The short letter of option o: its val when shortopts holds it. */
static char short_of(const mta_command_t *c, const struct option *o)
{
    if (o->val <= ' ' || o->val > '~' || o->val == ':' || o->val == '+')
        return 0;
    return strchr(c->shortopts, o->val) ? (char)o->val : 0;
}

/* "Options:", "Commands:", "Filters (...):": one word, then ':' or " (...):". */
static int is_heading(const char *s)
{
    size_t w = strcspn(s, " :");
    size_t n = strlen(s);
    if (w == 0 || n == 0 || s[n - 1] != ':')
        return 0;
    return s[w] == ':' ? w == n - 1 : strncmp(s + w, " (", 2) == 0 && s[n - 2] == ')';
}

/* "-x, --name ARG  text": the option, checked against the table. */
static void parse_option(help_t *h, line_t *l)
{
    const mta_command_t *c = h->cmd;
    const char *p = l->text;
    if (p[1] != '-') {
        if (!p[1] || p[2] != ',' || p[3] != ' ')
            die("%s: help line '%s': expected '-x, --name'", c->name, l->text);
        l->shortc = p[1];
        p += 4;
    }
    if (strncmp(p, "--", 2) != 0)
        die("%s: help line '%s': expected '--name'", c->name, l->text);
    size_t n = strcspn(p + 2, " ");
    l->opt = find_long(c, p + 2, n);
    if (!l->opt)
        die("%s: --%.*s is in the help but not in the option table", c->name, (int)n, p + 2);
    p += 2 + n;
    if (l->shortc != short_of(c, l->opt))
        die("%s: the help gives --%s the short option '%c', the table '%c'", c->name,
            l->opt->name, l->shortc ? l->shortc : ' ', short_of(c, l->opt) ? short_of(c, l->opt) : ' ');
    if (l->opt->has_arg == required_argument) {
        if (*p != ' ' || p[1] == ' ' || !p[1])
            die("%s: --%s takes a value, and its help line names none", c->name, l->opt->name);
        size_t a = strcspn(p + 1, " ");
        l->arg = xstrndup(p + 1, a);
        p += 1 + a;
    } else if (l->opt->has_arg != no_argument) {
        die("%s: --%s: optional arguments are not described", c->name, l->opt->name);
    }
    if (*p && *p != ' ')
        die("%s: help line '%s': unexpected text after the option", c->name, l->text);
    while (*p == ' ')
        p++;
    l->rest = xstrndup(p, strlen(p));
}

static void parse_help(help_t *h, const mta_command_t *c)
{
    h->cmd = c;
    h->text = help_text(c);
    size_t cap = 1;
    for (const char *p = h->text; *p; p++)
        cap += *p == '\n';
    h->lines = xcalloc(cap, sizeof(*h->lines));
    int in_usage = 0, after_entry = 0;
    for (char *p = h->text; *p;) {
        char *end = strchr(p, '\n');
        if (end)
            *end = '\0';
        line_t *l = &h->lines[h->nlines++];
        size_t indent = strspn(p, " ");
        l->text = p + indent;
        if (!*l->text) {
            l->kind = L_BLANK;
            in_usage = after_entry = 0;
        } else if (indent == 0 && strncmp(p, "Usage: ", 7) == 0) {
            l->kind = L_USAGE;
            l->text = p + 7;
            in_usage = 1;
        } else if (in_usage) {
            l->kind = L_USAGE;   /* aligned under the text after "Usage: " */
            l->text = p + (indent >= 7 ? 7 : indent);
        } else if (indent == 0) {
            l->kind = is_heading(l->text) && !after_entry ? L_HEADING : L_PROSE;
            after_entry = 0;
        } else if (indent <= MAX_INDENT && l->text[0] == '-' && c) {
            l->kind = L_OPTION;
            parse_option(h, l);
            after_entry = 1;
        } else if (indent <= MAX_INDENT) {
            l->kind = L_ENTRY;
            char *gap = strstr(l->text, "  ");
            l->term = xstrndup(l->text, gap ? (size_t)(gap - l->text) : strlen(l->text));
            l->rest = gap ? gap + strspn(gap, " ") : l->text + strlen(l->text);
            after_entry = 1;
        } else {
            l->kind = after_entry ? L_CONT : L_PROSE;
        }
        if (!end)
            break;
        p = end + 1;
    }
}

/* The options of command c in the order of its table, with their help. */
static optdoc_t *command_options(const help_t *h, size_t *nout)
{
    const mta_command_t *c = h->cmd;
    size_t n = 0;
    while (c->longopts[n].name)
        n++;
    optdoc_t *d = xcalloc(n, sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        const struct option *o = &c->longopts[i];
        d[i].opt = o;
        d[i].shortc = short_of(c, o);
        for (size_t k = 0; k < h->nlines; k++) {
            const line_t *l = &h->lines[k];
            if (l->kind != L_OPTION || l->opt != o)
                continue;
            if (d[i].desc)
                die("%s: --%s has two entries in the help", c->name, o->name);
            d[i].arg = l->arg;
            size_t len = strlen(l->rest) + 1;
            for (size_t j = k + 1; j < h->nlines && h->lines[j].kind == L_CONT; j++)
                len += strlen(h->lines[j].text) + 1;
            char *s = xcalloc(len, 1);
            strcpy(s, l->rest);
            for (size_t j = k + 1; j < h->nlines && h->lines[j].kind == L_CONT; j++) {
                if (*s)
                    strcat(s, " ");
                strcat(s, h->lines[j].text);
            }
            d[i].desc = s;
        }
        if (!d[i].desc)
            die("%s: --%s is in the option table but not in the help", c->name, o->name);
        for (const mta_arg_t *a = c->args; a->kind != MTA_ARG_END; a++)
            if (a->opt && a->opt == o->val)
                d[i].value = a;
    }
    for (const char *s = c->shortopts; *s; s++) {
        if (*s == ':' || *s == '+')
            continue;
        size_t i = 0;
        while (i < n && d[i].shortc != *s)
            i++;
        if (i == n)
            die("%s: -%c is in the short options but no long option has it", c->name, *s);
    }
    for (const mta_arg_t *a = c->args; a->kind != MTA_ARG_END; a++) {
        if (!a->opt)
            continue;
        size_t i = 0;
        while (i < n && d[i].opt->val != a->opt)
            i++;
        if (i == n || d[i].opt->has_arg != required_argument)
            die("%s: an option value row names option %#x, which takes no value", c->name, a->opt);
        if ((a->kind == MTA_ARG_WORD || a->kind == MTA_ARG_WORD_LIST) && (!a->words || !a->words(0)))
            die("%s: --%s has no words", c->name, d[i].opt->name);
    }
    *nout = n;
    return d;
}

/* The operands' kind of command c (MTA_ARG_END: none). */
static mta_arg_kind_t operand_kind(const mta_command_t *c)
{
    for (const mta_arg_t *a = c->args; a->kind != MTA_ARG_END; a++)
        if (!a->opt)
            return a->kind;
    return MTA_ARG_END;
}

/* ---- man pages ------------------------------------------------------------ */

/* Text for roff: backslashes and dashes escaped, a leading control
 * character neutralized. */
static void roff_put(FILE *f, const char *s, size_t n, int line_start)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && line_start && (s[0] == '.' || s[0] == '\''))
            fputs("\\&", f);
        if (s[i] == '\\')
            fputs("\\e", f);
        else if (s[i] == '-')
            fputs("\\-", f);
        else
            fputc(s[i], f);
    }
}

static void roff_line(FILE *f, const char *s)
{
    roff_put(f, s, strlen(s), 1);
    fputc('\n', f);
}

static void man_option_tag(FILE *f, const line_t *l)
{
    fputs(".TP\n", f);
    if (l->shortc)
        fprintf(f, "\\fB\\-%c\\fR, ", l->shortc);
    fputs("\\fB\\-\\-", f);
    roff_put(f, l->opt->name, strlen(l->opt->name), 0);
    fputs("\\fR", f);
    if (l->arg) {
        fputs(" \\fI", f);
        roff_put(f, l->arg, strlen(l->arg), 0);
        fputs("\\fR", f);
    }
    fputc('\n', f);
}

/* A usage line: the leading words naming the program in bold. */
static void man_usage_line(FILE *f, const char *s)
{
    size_t bold = 0;
    for (const char *p = s; *p >= 'a' && *p <= 'z';) {
        size_t w = strspn(p, "abcdefghijklmnopqrstuvwxyz");
        if (p[w] != ' ' && p[w] != '\0')
            break;
        bold = (size_t)(p + w - s);
        p += w + (p[w] == ' ');
    }
    if (bold) {
        fputs("\\fB", f);
        roff_put(f, s, bold, 0);
        fputs("\\fR", f);
    } else if (*s == '.' || *s == '\'') {
        fputs("\\&", f);
    }
    roff_put(f, s + bold, strlen(s + bold), 0);
    fputc('\n', f);
}

/* Writes one page: `page` is "memtrail" or "memtrail-CMD". */
static void write_page(const char *dir, const help_t *h, const char *page, const char *summary)
{
    char path[4096], upper[128];
    snprintf(path, sizeof(path), "%s/%s.1", dir, page);
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    size_t i;
    for (i = 0; page[i] && i < sizeof(upper) - 1; i++)
        upper[i] = (char)(page[i] >= 'a' && page[i] <= 'z' ? page[i] - 'a' + 'A' : page[i]);
    upper[i] = '\0';
    fprintf(f, ".\\\" Written by " PROG " (analyzer/cli/docgen.c) from `memtrail %s%s`:\n"
               ".\\\" do not edit.\n",
            h->cmd ? h->cmd->name : "--help", h->cmd ? " --help" : "");
    fputs(".TH ", f);
    roff_put(f, upper, strlen(upper), 0);
    fputs(" 1 \"\" \"memtrail " MEMTRAIL_VERSION "\" \"User Commands\"\n.SH NAME\n", f);
    roff_put(f, page, strlen(page), 0);
    fputs(" \\- ", f);
    roff_put(f, summary, strlen(summary), 0);
    fputc('\n', f);

    const char *section = NULL;   /* the .SH open, by name */
    int in_list = 0, in_nf = 0, para = 0;
#define SECTION(name) do { \
        if (in_nf) { fputs(".fi\n", f); in_nf = 0; } \
        if (!section || strcmp(section, name) != 0) { fputs(".SH " name "\n", f); section = name; } \
        para = 0; in_list = 0; \
    } while (0)
    for (i = 0; i < h->nlines; i++) {
        const line_t *l = &h->lines[i];
        switch (l->kind) {
        case L_BLANK:
            if (in_nf) {
                fputs(".fi\n", f);
                in_nf = 0;
            }
            para = 0;
            in_list = 0;
            break;
        case L_USAGE:
            if (!in_nf) {
                SECTION("SYNOPSIS");
                fputs(".nf\n", f);
                in_nf = 1;
            }
            man_usage_line(f, l->text);
            break;
        case L_HEADING: {
            size_t w = strcspn(l->text, " :");
            if (strncmp(l->text, "Options:", 8) == 0) {
                SECTION("OPTIONS");
            } else if (strncmp(l->text, "Commands:", 9) == 0) {
                SECTION("COMMANDS");
            } else {
                if (!section || strcmp(section, "OPTIONS") != 0)
                    SECTION("OPTIONS");
                fputs(".SS ", f);
                roff_put(f, l->text, w, 0);
                fputc('\n', f);
                if (l->text[w] == ' ') {   /* " (...):" */
                    roff_line(f, xstrndup(l->text + w + 1, strlen(l->text) - w - 2));
                }
                para = 1;
            }
            break;
        }
        case L_PROSE: {
            const char *t = l->text;
            if (strncmp(t, "Exit status:", 12) == 0) {
                SECTION("EXIT STATUS");
                t += 12 + strspn(t + 12, " ");
            } else if (strncmp(t, "Environment:", 12) == 0) {
                SECTION("ENVIRONMENT");
                t += 12 + strspn(t + 12, " ");
            } else if (!section || strcmp(section, "SYNOPSIS") == 0) {
                SECTION("DESCRIPTION");
            }
            if (!para || in_list) {
                fputs(".PP\n", f);
                para = 1;
                in_list = 0;
            }
            roff_line(f, t);
            break;
        }
        case L_OPTION:
            if (!section || (strcmp(section, "OPTIONS") != 0))
                SECTION("OPTIONS");
            man_option_tag(f, l);
            if (*l->rest)
                roff_line(f, l->rest);
            in_list = para = 1;
            break;
        case L_ENTRY:
            if (!section || strcmp(section, "SYNOPSIS") == 0)
                SECTION("DESCRIPTION");
            fputs(".TP\n\\fB", f);
            roff_put(f, l->term, strlen(l->term), 0);
            fputs("\\fR\n", f);
            if (*l->rest)
                roff_line(f, l->rest);
            if (!h->cmd) {   /* a command of memtrail --help */
                fputs("\\%(\\fBmemtrail\\-", f);
                roff_put(f, l->term, strlen(l->term), 0);
                fputs("\\fR(1))\n", f);
            }
            in_list = para = 1;
            break;
        case L_CONT:
            roff_line(f, l->text);
            break;
        }
    }
    SECTION("SEE ALSO");
    int first = 1;
    if (h->cmd) {
        fputs("\\fBmemtrail\\fR(1)", f);
        first = 0;
    }
    for (size_t k = 0; k < mta_ncommands; k++) {
        if (mta_commands[k] == h->cmd)
            continue;
        fprintf(f, "%s\\fB\\%%memtrail\\-", first ? "" : ",\n");
        roff_put(f, mta_commands[k]->name, strlen(mta_commands[k]->name), 0);
        fputs("\\fR(1)", f);
        first = 0;
    }
    fputs("\n", f);
#undef SECTION
    if (fclose(f) != 0)
        die("%s: %s", path, strerror(errno));
}

/* The first sentence of the top-level help's description without "memtrail
 * is a": memtrail(1)'s NAME line. */
static char *top_summary(const help_t *h)
{
    for (size_t i = 0; i < h->nlines; i++) {
        if (h->lines[i].kind != L_PROSE)
            continue;
        size_t len = 0;
        for (size_t j = i; j < h->nlines && h->lines[j].kind == L_PROSE; j++)
            len += strlen(h->lines[j].text) + 1;
        char *s = xcalloc(len + 1, 1);
        for (size_t j = i; j < h->nlines && h->lines[j].kind == L_PROSE; j++) {
            if (*s)
                strcat(s, " ");
            strcat(s, h->lines[j].text);
        }
        char *dot = strstr(s, ". ");
        if (dot || (dot = strrchr(s, '.')))
            *dot = '\0';
        static const char *const skip[] = { "memtrail ", "is ", "a ", "an " };
        for (size_t k = 0; k < sizeof(skip) / sizeof(skip[0]); k++)
            if (strncmp(s, skip[k], strlen(skip[k])) == 0)
                s += strlen(skip[k]);
        return s;
    }
    die("memtrail --help has no description");
}

static void write_man(const char *dir, help_t *top, help_t *cmds)
{
    /* Pages of commands that no longer exist go. */
    if (mkdir(dir, 0777) < 0 && errno != EEXIST)
        die("%s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        die("%s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, "memtrail", 8) == 0 && n > 2 && strcmp(de->d_name + n - 2, ".1") == 0)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    write_page(dir, top, "memtrail", top_summary(top));
    for (size_t i = 0; i < mta_ncommands; i++) {
        char page[128];
        snprintf(page, sizeof(page), "memtrail-%s", mta_commands[i]->name);
        write_page(dir, &cmds[i], page, mta_commands[i]->summary);
    }
}

/* ---- completions ------------------------------------------------------------ */

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    return f;
}

static void close_out(FILE *f, const char *path)
{
    if (fclose(f) != 0)
        die("%s: %s", path, strerror(errno));
}

/* The words of v, separated by spaces. */
static void put_words(FILE *f, const mta_arg_t *v)
{
    for (unsigned i = 0; v->words(i); i++)
        fprintf(f, "%s%s", i ? " " : "", v->words(i));
}

static void write_bash(const char *path, help_t *cmds)
{
    FILE *f = open_out(path);
    fputs("# bash completion for memtrail(1): commands, options, option values and\n"
          "# snapshot files. Written by " PROG " (analyzer/cli/docgen.c) from the\n"
          "# option tables of memtrail " MEMTRAIL_VERSION ": do not edit.\n"
          "\n"
          "# The processes that map the tracer (memtrail snapshot PID).\n"
          "_memtrail_traced()\n"
          "{\n"
          "    local f\n"
          "    for f in $(grep -ls -- '" MTPROTO_LIB_NAME "' /proc/[0-9]*/maps 2>/dev/null); do\n"
          "        f=${f#/proc/}\n"
          "        printf '%s\\n' \"${f%/maps}\"\n"
          "    done\n"
          "}\n"
          "\n"
          "_memtrail()\n"
          "{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= pre= w i start=\n"
          "    COMPREPLY=()\n"
          "    if ((COMP_CWORD == 1)); then\n"
          "        COMPREPLY=($(compgen -W 'help --help --version",
          f);
    for (size_t i = 0; i < mta_ncommands; i++)
        fprintf(f, " %s", mta_commands[i]->name);
    fputs("' -- \"$cur\"))\n"
          "        return 0\n"
          "    fi\n"
          "    cmd=${COMP_WORDS[1]}\n"
          "    if [[ $cmd == help ]]; then\n"
          "        ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W '",
          f);
    for (size_t i = 0; i < mta_ncommands; i++)
        fprintf(f, "%s%s", i ? " " : "", mta_commands[i]->name);
    fputs("' -- \"$cur\"))\n"
          "        return 0\n"
          "    fi\n"
          "    # --opt=value: split at '=' by bash (COMP_WORDBREAKS), or in cur.\n"
          "    ((COMP_CWORD > 1)) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    if [[ $cur == = ]]; then\n"
          "        cur=\n"
          "    elif [[ $prev == = ]] && ((COMP_CWORD > 2)); then\n"
          "        prev=${COMP_WORDS[COMP_CWORD-2]}\n"
          "    elif [[ $cur == --*=* ]]; then\n"
          "        prev=${cur%%=*} pre=${cur%%=*}= cur=${cur#*=}\n"
          "    elif [[ $prev == -* ]]; then\n"
          "        :\n"
          "    else\n"
          "        prev=\n"
          "    fi\n"
          "    case $cmd:$prev in\n",
          f);
    /* Option values: words, files, directories, or nothing (free text). */
    for (size_t i = 0; i < mta_ncommands; i++) {
        size_t n;
        optdoc_t *d = command_options(&cmds[i], &n);
        const char *name = mta_commands[i]->name;
        int any_free = 0;
        for (size_t k = 0; k < n; k++) {
            if (d[k].opt->has_arg != required_argument)
                continue;
            if (!d[k].value) {
                any_free = 1;
                continue;
            }
            fprintf(f, "    %s:--%s", name, d[k].opt->name);
            if (d[k].shortc)
                fprintf(f, "|%s:-%c", name, d[k].shortc);
            fputs(")\n", f);
            switch (d[k].value->kind) {
            case MTA_ARG_WORD:
                fputs("        COMPREPLY=($(compgen -P \"$pre\" -W '", f);
                put_words(f, d[k].value);
                fputs("' -- \"$cur\"))\n", f);
                break;
            case MTA_ARG_WORD_LIST:   /* after the last comma */
                fputs("        pre+=${cur%\"${cur##*,}\"}\n"
                      "        COMPREPLY=($(compgen -P \"$pre\" -W '", f);
                put_words(f, d[k].value);
                fputs("' -- \"${cur##*,}\"))\n"
                      "        compopt -o nospace 2>/dev/null\n", f);
                break;
            case MTA_ARG_DIR:
                fputs("        COMPREPLY=($(compgen -P \"$pre\" -d -- \"$cur\"))\n"
                      "        compopt -o filenames 2>/dev/null\n", f);
                break;
            default:
                fputs("        COMPREPLY=($(compgen -P \"$pre\" -f -- \"$cur\"))\n"
                      "        compopt -o filenames 2>/dev/null\n", f);
                break;
            }
            fputs("        return 0\n"
                  "        ;;\n", f);
        }
        if (any_free) {   /* a number, a size, a label: nothing to offer */
            const char *sep = "    ";
            for (size_t k = 0; k < n; k++) {
                if (d[k].opt->has_arg != required_argument || d[k].value)
                    continue;
                fprintf(f, "%s%s:--%s", sep, name, d[k].opt->name);
                if (d[k].shortc)
                    fprintf(f, "|%s:-%c", name, d[k].shortc);
                sep = "|";
            }
            fputs(")\n"
                  "        return 0\n"
                  "        ;;\n", f);
        }
    }
    fputs("    esac\n"
          "    case $cmd in\n", f);
    /* Options, then operands. A command line to run (run) begins at the
     * first operand, or after "--". */
    for (size_t i = 0; i < mta_ncommands; i++) {
        size_t n;
        optdoc_t *d = command_options(&cmds[i], &n);
        mta_arg_kind_t operands = operand_kind(mta_commands[i]);
        fprintf(f, "    %s)\n", mta_commands[i]->name);
        if (operands == MTA_ARG_COMMAND) {
            fputs("        for ((i = 2; i < COMP_CWORD; i++)); do\n"
                  "            w=${COMP_WORDS[i]}\n"
                  "            case $w in\n"
                  "            --) start=$((i + 1)); break ;;\n"
                  "            ", f);
            const char *sep = "";
            for (size_t k = 0; k < n; k++) {
                if (d[k].opt->has_arg != required_argument)
                    continue;
                fprintf(f, "%s--%s", sep, d[k].opt->name);
                if (d[k].shortc)
                    fprintf(f, "|-%c", d[k].shortc);
                sep = "|";
            }
            fputs(") [[ ${COMP_WORDS[i+1]} == = ]] && ((i++)); ((i++)) ;;\n"
                  "            -*) ;;\n"
                  "            =) ((i++)) ;;\n"
                  "            *) start=$i; break ;;\n"
                  "            esac\n"
                  "        done\n"
                  "        if [[ -n $start ]]; then\n"
                  "            if declare -F _command_offset >/dev/null; then\n"
                  "                _command_offset \"$start\"\n"
                  "            elif ((COMP_CWORD == start)); then\n"
                  "                COMPREPLY=($(compgen -c -- \"$cur\"))\n"
                  "            else\n"
                  "                COMPREPLY=($(compgen -f -- \"$cur\"))\n"
                  "                compopt -o filenames 2>/dev/null\n"
                  "            fi\n"
                  "            return 0\n"
                  "        fi\n", f);
        }
        fputs("        if [[ $cur == -* ]]; then\n"
              "            COMPREPLY=($(compgen -W '", f);
        for (size_t k = 0; k < n; k++)
            fprintf(f, "%s--%s", k ? " " : "", d[k].opt->name);
        fputs("' -- \"$cur\"))\n"
              "            return 0\n"
              "        fi\n", f);
        switch (operands) {
        case MTA_ARG_SNAPSHOT:
            fputs("        COMPREPLY=($(compgen -f -X '!*.mtsnap' -- \"$cur\") $(compgen -d -- \"$cur\"))\n"
                  "        compopt -o filenames 2>/dev/null\n", f);
            break;
        case MTA_ARG_PID:
            fputs("        COMPREPLY=($(compgen -W \"$(_memtrail_traced)\" -- \"$cur\"))\n", f);
            break;
        case MTA_ARG_COMMAND:
            fputs("        COMPREPLY=($(compgen -c -- \"$cur\"))\n", f);
            break;
        default:
            break;
        }
        fputs("        ;;\n", f);
    }
    fputs("    esac\n"
          "    return 0\n"
          "}\n"
          "complete -F _memtrail memtrail\n", f);
    close_out(f, path);
}

/* Text inside a zsh single-quoted _arguments spec: quotes closed and
 * reopened, and the characters _arguments gives a meaning escaped. */
static void zsh_put(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else if (*s == ':' || *s == '[' || *s == ']' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    }
}

/* An option's description for zsh: its help text up to the first "; " or
 * ". " outside parentheses. */
static void zsh_desc(FILE *f, const char *desc)
{
    char *s = xstrndup(desc, strlen(desc));
    int depth = 0;
    for (char *p = s; *p; p++) {
        depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
        if (depth == 0 && (*p == ';' || *p == '.') && p[1] == ' ') {
            *p = '\0';
            break;
        }
    }
    zsh_put(f, s);
    free(s);
}

static void write_zsh(const char *path, help_t *cmds)
{
    FILE *f = open_out(path);
    fputs("#compdef memtrail\n"
          "# zsh completion for memtrail(1): commands, options, option values and\n"
          "# snapshot files. Written by " PROG " (analyzer/cli/docgen.c) from the\n"
          "# option tables of memtrail " MEMTRAIL_VERSION ": do not edit.\n"
          "\n"
          "_memtrail_snapshots() { _files -g '*.mtsnap(-.)' }\n"
          "\n"
          "# The processes that map the tracer (memtrail snapshot PID).\n"
          "_memtrail_traced() {\n"
          "  local -a pids\n"
          "  pids=(${${${(f)\"$(grep -ls -- '" MTPROTO_LIB_NAME "' /proc/<->/maps 2>/dev/null)\"}#/proc/}%/maps})\n"
          "  _describe -t processes 'traced process' pids\n"
          "}\n",
          f);
    for (size_t i = 0; i < mta_ncommands; i++) {
        size_t n;
        optdoc_t *d = command_options(&cmds[i], &n);
        mta_arg_kind_t operands = operand_kind(mta_commands[i]);
        fprintf(f, "\n_memtrail_%s() {\n  _arguments -s -S%s : \\\n", mta_commands[i]->name,
                operands == MTA_ARG_COMMAND ? " -A '-*'" : "");
        for (size_t k = 0; k < n; k++) {
            const optdoc_t *o = &d[k];
            int has_arg = o->opt->has_arg == required_argument;
            int help = strcmp(o->opt->name, "help") == 0;
            /* '*': may be repeated (the filters are; the last of the others
             * counts); --help ends the line. */
            const char *mark = help ? "(- *)" : "*";
            if (o->shortc)
                fprintf(f, "    '%s'{-%c%s,--%s%s}'[", mark, o->shortc, has_arg ? "+" : "",
                        o->opt->name, has_arg ? "=" : "");
            else
                fprintf(f, "    '%s--%s%s[", mark, o->opt->name, has_arg ? "=" : "");
            zsh_desc(f, o->desc);
            fputc(']', f);
            if (has_arg) {
                fputc(':', f);
                zsh_put(f, o->arg);
                fputc(':', f);
                if (!o->value) {
                    fputc(' ', f);
                } else if (o->value->kind == MTA_ARG_WORD) {
                    fputc('(', f);
                    put_words(f, o->value);
                    fputc(')', f);
                } else if (o->value->kind == MTA_ARG_WORD_LIST) {
                    fputs("_sequence compadd - ", f);
                    put_words(f, o->value);
                } else if (o->value->kind == MTA_ARG_DIR) {
                    fputs("_directories", f);
                } else {
                    fputs("_files", f);
                }
            }
            fputs("' \\\n", f);
        }
        switch (operands) {
        case MTA_ARG_SNAPSHOT:
            fputs("    '*:snapshot file:_memtrail_snapshots'\n", f);
            break;
        case MTA_ARG_PID:
            fputs("    '1:traced process:_memtrail_traced'\n", f);
            break;
        case MTA_ARG_COMMAND:
            fputs("    '(-)1:command:_command_names -e' \\\n"
                  "    '*::arguments:_normal'\n", f);
            break;
        default:
            fputs("\n", f);
            break;
        }
        fputs("}\n", f);
    }
    fputs("\n_memtrail() {\n"
          "  local curcontext=$curcontext state state_descr line ret=1\n"
          "  typeset -A opt_args\n"
          "  local -a extra=('help:show the help of a command') commands=(\n", f);
    for (size_t i = 0; i < mta_ncommands; i++) {
        fputs("    '", f);
        zsh_put(f, mta_commands[i]->name);
        fputc(':', f);
        zsh_put(f, mta_commands[i]->summary);
        fputs("'\n", f);
    }
    fputs("  )\n"
          "  _arguments -C : \\\n"
          "    '(- *)--help[show the commands]' \\\n"
          "    '(- *)--version[show the version]' \\\n"
          "    '1:command:->command' \\\n"
          "    '*::argument:->argument' && ret=0\n"
          "  case $state in\n"
          "  command)\n"
          "    _describe -t commands 'memtrail command' commands -- extra && ret=0\n"
          "    ;;\n"
          "  argument)\n"
          "    curcontext=${curcontext%:*:*}:memtrail-$words[1]:\n"
          "    case $words[1] in\n"
          "    help) _describe -t commands 'memtrail command' commands && ret=0 ;;\n",
          f);
    for (size_t i = 0; i < mta_ncommands; i++)
        fprintf(f, "    %s) _memtrail_%s && ret=0 ;;\n", mta_commands[i]->name,
                mta_commands[i]->name);
    fputs("    esac\n"
          "    ;;\n"
          "  esac\n"
          "  return ret\n"
          "}\n"
          "\n"
          "_memtrail \"$@\"\n", f);
    close_out(f, path);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "man") != 0 && strcmp(argv[1], "bash") != 0 &&
                      strcmp(argv[1], "zsh") != 0)) {
        fputs("usage: " PROG " man DIR | bash FILE | zsh FILE\n", stderr);
        return 2;
    }
    help_t top = { 0 }, *cmds = xcalloc(mta_ncommands, sizeof(*cmds));
    /* The top-level words main.c takes, as its help names them. */
    char *text = help_text(NULL);
    if (!strstr(text, "memtrail help COMMAND | --help | --version"))
        die("memtrail --help no longer names 'help COMMAND', --help and --version");
    free(text);
    parse_help(&top, NULL);
    for (size_t i = 0; i < mta_ncommands; i++) {
        size_t n;
        parse_help(&cmds[i], mta_commands[i]);
        free(command_options(&cmds[i], &n));   /* the checks */
    }
    if (strcmp(argv[1], "man") == 0)
        write_man(argv[2], &top, cmds);
    else if (strcmp(argv[1], "bash") == 0)
        write_bash(argv[2], cmds);
    else
        write_zsh(argv[2], cmds);
    return 0;
}
