/* `memtrail export --format pprof` of a Python process (tests/python/peak.py
 * under every interpreter of pythons.h): each Python function keeps its name
 * as system_name and gets the display name "function (file.py)", which `go
 * tool pprof` shows as it is. It used to show `<module>` as "<unknown>":
 * pprof demangles again a Function whose name equals its system_name, and
 * strips the angle brackets of a name that looks like C++. Read back with
 * tests/unit/analyzer/pprof_read.h, then with `go tool pprof -top` and
 * `-traces` (default symbolization, which demangles) when Go is installed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "anutil.h"
#include "harness.h"
#include "pprof_read.h"
#include "../python/pythons.h"

/* The Function of the profile named `name` (NULL when none). */
static const ppr_function_t *function_named(const ppr_profile_t *p, const char *name)
{
    for (size_t i = 0; i < p->nfunctions; i++)
        if (strcmp(ppr_str(p, p->functions[i].name), name) == 0)
            return &p->functions[i];
    return NULL;
}

/* go tool pprof ARGS... on `file`: its stdout (NULL when Go is missing). */
static char *go_pprof(const char *mode, const char *file)
{
    char *home = cat("HOME=", mt_dir);
    const char *go[] = {"/usr/bin/env", home, "go", "tool", "pprof", mode,
                        "-sample_index=alloc_space", file, NULL};
    mt_run_t r;
    cr_assert_eq(run_bare_capture(go, &r), 0);
    if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127) {
        mt_run_free(&r);
        return NULL;
    }
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "go tool pprof %s: %#x: %s",
              mode, r.status, r.err);
    char *out = an_keep(strdup(r.out));
    mt_run_free(&r);
    return out;
}

static void python_pprof(const mt_python_t *py)
{
    char *script = mt_source_file("tests/python/peak.py"), err[256];
    const char *argv[] = {py->path, script, NULL};
    static const char *const env[] = {"PYTHONDONTWRITEBYTECODE=1", NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, env, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "%s: %#x: %s", py->tag,
              run.status, run.err);
    mt_run_free(&run);
    mta_snapshot_t *s = mt_load_one(mt_dir, 0, "exit");
    char *out = cat(mt_dir, "/py.pb.gz");
    mt_run_t r;
    cr_assert_eq(MT(&r, "export", s->path, "-f", "pprof", "-o", out), 0, "%s", r.err);
    mt_run_free(&r);

    ppr_profile_t *p = NULL;
    cr_assert_eq(ppr_read_file(out, &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ppr_validate(p, err, sizeof(err)), 0, "%s", err);
    static const char *const names[][2] = {
        {"<module> (peak.py)", "<module>"}, {"main (peak.py)", "main"},
        {"spike (peak.py)", "spike"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const ppr_function_t *fn = function_named(p, names[i][0]);
        cr_assert_not_null(fn, "%s: no function %s", py->tag, names[i][0]);
        cr_expect_str_eq(ppr_str(p, fn->system_name), names[i][1]);
        cr_expect_str_eq(ppr_str(p, fn->filename), script);
    }
    ppr_free(p);

    char *top = go_pprof("-top", out), *traces = go_pprof("-traces", out);
    if (top == NULL || traces == NULL) {
        cr_log_info("go is not on PATH: go tool pprof not tried");
    } else {
        cr_expect(strstr(top, "  spike (peak.py)\n") != NULL, "%s: -top:\n%s", py->tag, top);
        /* the script's stack, outermost last, every frame named */
        const char *stack = "   spike (peak.py)\n             main (peak.py)\n"
                            "             <module> (peak.py)\n";
        cr_expect(strstr(traces, stack) != NULL, "%s: -traces:\n%s", py->tag, traces);
        const char *t = strstr(traces, stack), *end = t ? strstr(t, "\n-----") : NULL;
        char *trace = t && end ? an_keep(strndup(t, (size_t)(end - t))) : NULL;
        cr_expect(trace != NULL && strstr(trace, "<unknown>") == NULL, "%s: trace %s", py->tag,
                  trace);
    }
    mta_snapshot_free(s);
}

MT_PY_TESTS(pyexport, pprof_names, python_pprof, .init = mt_setup, .fini = an_fini,
            .timeout = 180)
