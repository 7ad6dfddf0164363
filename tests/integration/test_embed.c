/* A C program that embeds CPython by dlopen'ing libpython (tests/programs/
 * embed.c): memtrail must notice the interpreter at the dlopen and record its
 * domains with Python stacks, as in a python3 process. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(embed, .init = mt_setup, .fini = mt_teardown, .timeout = MT_TEST_TIMEOUT);

/* Seven bytes objects of 100,000 bytes, made on line 2 of the script. A
 * bytes object of length n is one object-domain block of n + 33 bytes. */
static const char script[] = "def f():\n"
                             "    return [bytes(100000) for i in range(7)]\n"
                             "keep = f()\n"
                             "import memtrail\n"
                             "memtrail.snapshot('embedded')\n";

static void check_embedded(const char *version, const char *minor)
{
    char home[256], lib[512], env_home[300];
    snprintf(home, sizeof(home), "/root/.pyenv/versions/%s", version);
    snprintf(lib, sizeof(lib), "%s/lib/libpython%s.so.1.0", home, minor);
    if (access(lib, R_OK) != 0)
        cr_skip("%s not found", lib);
    snprintf(env_home, sizeof(env_home), "PYTHONHOME=%s", home);
    char *prog = mt_program("embed");
    const char *argv[] = {prog, lib, script, NULL};
    const char *env[] = {env_home, NULL};
    mt_run_t run;
    cr_assert_eq(run_traced_capture(mt_dir, NULL, argv, env, &run), 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0,
              "embed failed: status %d, stderr: %s", run.status, run.err);
    cr_expect(strstr(run.out, "embed: script ok") != NULL, "stdout: %s", run.out);

    mta_snapshot_t *snap = mt_load_one(mt_dir, 0, "api");
    cr_assert_str_eq(snap->label, "embedded");
    uint64_t blocks = 0;
    for (uint64_t i = 0; i < snap->nblocks; i++) {
        const mtsnap_block_t *b = &snap->blocks[i];
        const mta_stack_t *st = &snap->stacks[b->stack];
        if (b->size != 100033 || st->depth == 0)
            continue;
        const mta_frame_t *fr = &snap->frames[st->frames[0]];
        cr_expect_eq(fr->kind, MTSNAP_FRAME_PYTHON);
        cr_expect_str_eq(fr->file, "<string>");
        cr_expect_eq(fr->line, 2);
        cr_expect_eq(b->domain, MTSNAP_DOMAIN_PY_OBJ);
        blocks++;
    }
    cr_expect_eq(blocks, 7, "%s: %llu bytes blocks of 100,033 B at <string>:2, want 7", lib,
                 (unsigned long long)blocks);
    mta_snapshot_free(snap);
    /* The exit snapshot comes when Py_FinalizeEx begins, the final at exit. */
    mt_snaplist_t l;
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, "exit", &l), 0);
    cr_expect_eq(l.n, 1);
    mt_snaplist_free(&l);
    cr_assert_eq(mt_find_snapshots(mt_dir, 0, "final", &l), 0);
    cr_expect_eq(l.n, 1);
    mt_snaplist_free(&l);
    mt_run_free(&run);
    free(prog);
}

Test(embed, python311)
{
    check_embedded("3.11.7", "3.11");
}

Test(embed, python38)
{
    check_embedded("3.8.18", "3.8");
}

Test(embed, python313)
{
    check_embedded("3.13.0", "3.13");
}
