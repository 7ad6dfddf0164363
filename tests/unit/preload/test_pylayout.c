/* Unit test of preload/python/abi.c, the CPython ABI table: for every
 * CPython of tests/python/pythons.h that is installed, compile
 * tests/python/layout_probe.c against that interpreter's own headers (public
 * and internal), run it, and compare each value it prints with the field of
 * mtp_pyabi_for(minor) of that name, or, for "capi.*" lines, with the C API
 * constants and structure mirrors of python/abi.h. Every field and every
 * constant must be printed. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "python/abi.h"
#include "pythons.h"

#define FIELD(name) {#name, offsetof(mtp_pyabi_t, name)}
static const struct {
    const char *name;
    size_t off;
} fields[] = {
    FIELD(minor),
    /* thread state */
    FIELD(tstate_getter),      FIELD(tstate_global),      FIELD(rt_tstate),
    FIELD(rt_auto_interp),     FIELD(rt_tss_key),         FIELD(ts_frame),
    FIELD(ts_cframe),          FIELD(cframe_current),     FIELD(ts_datastack_chunk),
    FIELD(ts_datastack_top),
    /* _PyStackChunk */
    FIELD(chunk_previous),     FIELD(chunk_size),         FIELD(chunk_top),
    FIELD(chunk_data),
    /* frames */
    FIELD(pos_kind),           FIELD(f_back),             FIELD(f_code),
    FIELD(f_code_any),         FIELD(f_pos),              FIELD(f_owner),
    FIELD(f_is_entry),         FIELD(owner_generator),    FIELD(owner_cstack),
    /* code objects */
    FIELD(co_firstlineno),     FIELD(co_filename),        FIELD(co_name),
    FIELD(co_qualname),        FIELD(co_firsttraceable),  FIELD(co_code_adaptive),
    FIELD(co_extra),           FIELD(co_linetable),
    /* object header, collector header, pre-header */
    FIELD(ob_refcnt),          FIELD(ob_type),            FIELD(ob_size),
    FIELD(immortal_bit),       FIELD(gc_head_size),       FIELD(gc_next),
    FIELD(preheader_size),
    FIELD(block_preheader_size),
    /* type objects */
    FIELD(tp_name),            FIELD(tp_basicsize),       FIELD(tp_itemsize),
    FIELD(tp_traverse),        FIELD(tp_del),             FIELD(tp_finalize),
    FIELD(tp_flags),
    /* str */
    FIELD(str_length),         FIELD(str_state),          FIELD(str_compact),
    FIELD(str_ascii),          FIELD(str_ascii_data),
    /* bytes */
    FIELD(bytes_data),
    FIELD(dict_values_tag),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
/* A field added to mtp_pyabi_t must be added here (and to the probe). */
_Static_assert(sizeof(mtp_pyabi_t) == NFIELDS * sizeof(int), "every field is checked");

/* The C API constants and structures python/abi.h mirrors (the same in
 * every version): "capi.<name>" lines of the probe. */
#define MEMBER(type, ctype, m, cm) {"capi." #ctype "." #cm, (long)offsetof(type, m)}
static const struct {
    const char *name;
    long value;
} constants[] = {
    {"capi.codeunit_size", MTP_PY_CODEUNIT_SIZE},
    {"capi.PYMEM_DOMAIN_RAW", MTP_PY_DOMAIN_RAW},
    {"capi.PYMEM_DOMAIN_MEM", MTP_PY_DOMAIN_MEM},
    {"capi.PYMEM_DOMAIN_OBJ", MTP_PY_DOMAIN_OBJ},
    {"capi.METH_VARARGS", MTP_PY_METH_VARARGS},
    {"capi.METH_NOARGS", MTP_PY_METH_NOARGS},
    {"capi.Py_TPFLAGS_HAVE_GC", (long)MTP_PY_TPFLAGS_HAVE_GC},
    {"capi.Py_TPFLAGS_PREHEADER", (long)MTP_PY_TPFLAGS_PREHEADER},
    {"capi.sizeof_PyMemAllocatorEx", (long)sizeof(mtp_pyalloc_t)},
    MEMBER(mtp_pyalloc_t, PyMemAllocatorEx, ctx, ctx),
    MEMBER(mtp_pyalloc_t, PyMemAllocatorEx, malloc, malloc),
    MEMBER(mtp_pyalloc_t, PyMemAllocatorEx, calloc, calloc),
    MEMBER(mtp_pyalloc_t, PyMemAllocatorEx, realloc, realloc),
    MEMBER(mtp_pyalloc_t, PyMemAllocatorEx, free, free),
    {"capi.sizeof_PyMethodDef", (long)sizeof(mtp_pymethod_t)},
    MEMBER(mtp_pymethod_t, PyMethodDef, name, ml_name),
    MEMBER(mtp_pymethod_t, PyMethodDef, meth, ml_meth),
    MEMBER(mtp_pymethod_t, PyMethodDef, flags, ml_flags),
    MEMBER(mtp_pymethod_t, PyMethodDef, doc, ml_doc),
    {"capi.sizeof_PyCodeAddressRange", (long)sizeof(mtp_pyrange_t)},
    MEMBER(mtp_pyrange_t, PyCodeAddressRange, ar_start, ar_start),
    MEMBER(mtp_pyrange_t, PyCodeAddressRange, ar_end, ar_end),
    MEMBER(mtp_pyrange_t, PyCodeAddressRange, ar_line, ar_line),
    MEMBER(mtp_pyrange_t, PyCodeAddressRange, opaque.computed_line, opaque.computed_line),
    MEMBER(mtp_pyrange_t, PyCodeAddressRange, opaque.lo_next, opaque.lo_next),
    MEMBER(mtp_pyrange_t, PyCodeAddressRange, opaque.limit, opaque.limit),
};
#define NCONSTANTS (sizeof(constants) / sizeof(constants[0]))
_Static_assert(MTP_PY_NDOMAINS == MTP_PY_DOMAIN_OBJ + 1, "three domains");

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
    const mtp_pyabi_t *A = mtp_pyabi_for(py->minor);
    cr_assert_not_null(A, "abi.c has no row for 3.%d", py->minor);

    size_t seen = 0, nconst = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char name[64];
        long value;
        cr_assert_eq(sscanf(line, "%63s %ld", name, &value), 2, "bad probe line \"%s\"", line);
        if (strncmp(name, "capi.", 5) == 0) {
            size_t i = 0;
            while (i < NCONSTANTS && strcmp(constants[i].name, name) != 0)
                i++;
            cr_assert_lt(i, NCONSTANTS, "probe printed an unknown constant %s", name);
            cr_expect_eq(value, constants[i].value, "%s (3.%d): %s is %ld, abi.h has %ld",
                         py->path, py->minor, name, value, constants[i].value);
            nconst++;
            continue;
        }
        size_t i = 0;
        while (i < NFIELDS && strcmp(fields[i].name, name) != 0)
            i++;
        cr_assert_lt(i, NFIELDS, "probe printed an unknown field %s", name);
        int ours = *(const int *)((const char *)A + fields[i].off);
        cr_expect_eq(ours, value, "%s (3.%d): abi.c has %s = %d, the headers say %ld",
                     py->path, py->minor, name, ours, value);
        seen++;
    }
    cr_expect_eq(seen, NFIELDS, "the probe printed %zu of the %zu fields", seen, NFIELDS);
    cr_expect_eq(nconst, NCONSTANTS, "the probe printed %zu of the %zu C API constants", nconst,
                 NCONSTANTS);
    free(out);
    free(inc);
}

MT_PY_TESTS(pylayout, matches_headers, check_layout, .timeout = 60)

/* Versions without a row are refused. */
Test(pylayout, unknown_versions)
{
    for (int minor = 8; minor <= 13; minor++) {
        const mtp_pyabi_t *L = mtp_pyabi_for(minor);
        cr_assert_not_null(L, "no row for 3.%d", minor);
        cr_expect_eq(L->minor, minor);
    }
    cr_expect_null(mtp_pyabi_for(7));
    cr_expect_null(mtp_pyabi_for(14));
    cr_expect_null(mtp_pyabi_for(-1));
    cr_expect_null(mtp_pyabi_for(0));
}
