/* Unit test of preload/pylayout.c: for every CPython of tests/python/pythons.h
 * that is installed, compile tests/python/layout_probe.c against that
 * interpreter's own headers (public and internal), run it, and compare each
 * offset and constant it prints with mtp_pylayout_for(minor). Also the
 * PyASCIIObject layout and ob_type offset that preload/pycode.c and
 * preload/pystack.c read without a layout row. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "python/pylayout.h"
#include "pythons.h"

#define FIELD(name) {#name, offsetof(mtp_pylayout_t, name)}
static const struct {
    const char *name;
    size_t off;
} fields[] = {
    FIELD(minor),          FIELD(pos_kind),        FIELD(ts_frame),
    FIELD(ts_cframe),      FIELD(cframe_current),  FIELD(f_back),
    FIELD(f_code),         FIELD(f_pos),           FIELD(f_owner),
    FIELD(f_is_entry),     FIELD(owner_generator), FIELD(owner_cstack),
    FIELD(co_firstlineno), FIELD(co_filename),     FIELD(co_name),
    FIELD(co_qualname),    FIELD(co_firsttraceable), FIELD(co_code_adaptive),
    FIELD(ts_datastack_chunk), FIELD(ts_datastack_top),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
/* A field added to mtp_pylayout_t must be added here (and to the probe). */
_Static_assert(sizeof(mtp_pylayout_t) == NFIELDS * sizeof(int), "every field is checked");

/* Read outside mtp_pylayout_t: pycode.c reads compact ASCII strings directly
 * (length at 16, state at 32, data right after the PyASCIIObject header: 48
 * bytes before 3.12, 40 since; compact and ascii are bits 5 and 6 of state),
 * and pystack.c reads ob_type at 8 (3.13: is f_executable a code object?). */
static long fixed_value(const char *name, int minor)
{
    if (strcmp(name, "ob_type") == 0)
        return 8;
    if (strcmp(name, "ascii.length") == 0)
        return 16;
    if (strcmp(name, "ascii.state") == 0)
        return 32;
    if (strcmp(name, "ascii.data") == 0)
        return minor >= 12 ? 40 : 48;
    if (strcmp(name, "ascii.compact_bit") == 0)
        return 5;
    if (strcmp(name, "ascii.ascii_bit") == 0)
        return 6;
    return LONG_MIN;
}

/* Run a shell command; returns its stdout (malloc'd) or fails the test. */
static char *run_cmd(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s", cmd);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    cr_assert_eq(st, 0, "command failed (status %#x): %s\n%s", st, cmd, buf);
    return buf;
}

static void check_layout(const mt_python_t *py)
{
    const char *src_root = getenv("MEMTRAIL_SOURCE_ROOT");
    cr_assert(src_root != NULL && src_root[0] != '\0',
              "MEMTRAIL_SOURCE_ROOT is not set (run through meson test)");
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX], cmd[4 * PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/memtrail-pylayout.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));

    snprintf(cmd, sizeof(cmd),
             "'%s' -c \"import sysconfig; print(sysconfig.get_paths()['include'])\"", py->path);
    char *inc = run_cmd(cmd);
    inc[strcspn(inc, "\n")] = '\0';
    snprintf(cmd, sizeof(cmd), "%s/Python.h", inc);
    if (access(cmd, R_OK) != 0) {
        rmdir(dir);
        cr_skip_test("python3.%d: no headers in %s (python3.%d-dev not installed)", py->minor,
                     inc, py->minor);
    }
    snprintf(cmd, sizeof(cmd),
             "cc -std=c11 -Wall -Wextra -Werror -O0 -DPy_BUILD_CORE -I'%s' -I'%s/internal' "
             "'%s/tests/python/layout_probe.c' -o '%s/probe' 2>&1 && '%s/probe'",
             inc, inc, src_root, dir, dir);
    char *out = run_cmd(cmd);
    snprintf(cmd, sizeof(cmd), "%s/probe", dir);
    unlink(cmd);
    rmdir(dir);

    long probe_minor = -1;   /* its first line */
    cr_assert_eq(sscanf(out, "minor %ld", &probe_minor), 1, "probe output:\n%s", out);
    cr_assert_eq(probe_minor, py->minor, "%s: headers of 3.%ld", py->path, probe_minor);
    const mtp_pylayout_t *L = mtp_pylayout_for(py->minor);
    cr_assert_not_null(L, "pylayout.c has no row for 3.%d", py->minor);

    size_t seen = 0, nfixed = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char name[64];
        long value;
        cr_assert_eq(sscanf(line, "%63s %ld", name, &value), 2, "bad probe line \"%s\"", line);
        long fixed = fixed_value(name, py->minor);
        if (fixed != LONG_MIN) {
            cr_expect_eq(value, fixed, "%s (3.%d): %s is %ld, memtrail assumes %ld", py->path,
                         py->minor, name, value, fixed);
            nfixed++;
            continue;
        }
        size_t i = 0;
        while (i < NFIELDS && strcmp(fields[i].name, name) != 0)
            i++;
        cr_assert_lt(i, NFIELDS, "probe printed an unknown field %s", name);
        int ours = *(const int *)((const char *)L + fields[i].off);
        cr_expect_eq(ours, value, "%s (3.%d): pylayout.c has %s = %d, the headers say %ld",
                     py->path, py->minor, name, ours, value);
        seen++;
    }
    cr_expect_eq(seen, NFIELDS, "the probe printed %zu of the %zu fields", seen, NFIELDS);
    cr_expect_eq(nfixed, 6, "the probe printed %zu of the 6 fixed values", nfixed);
    free(out);
    free(inc);
}

MT_PY_TESTS(pylayout, matches_headers, check_layout, .timeout = 60)

/* Versions without a row are refused. */
Test(pylayout, unknown_versions)
{
    for (int minor = 8; minor <= 13; minor++) {
        const mtp_pylayout_t *L = mtp_pylayout_for(minor);
        cr_assert_not_null(L, "no row for 3.%d", minor);
        cr_expect_eq(L->minor, minor);
    }
    cr_expect_null(mtp_pylayout_for(7));
    cr_expect_null(mtp_pylayout_for(14));
    cr_expect_null(mtp_pylayout_for(-1));
    cr_expect_null(mtp_pylayout_for(0));
}
