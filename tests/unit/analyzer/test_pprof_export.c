/* The pprof export (analyzer/export/pprof.c) on snapshots composed in
 * memory, read back with the test-side reader (pprof_read.c): shapes the
 * traced programs do not make. Run sanitized too (tests/sanitize/run.sh),
 * where undefined behaviour on the way fails it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "export.h"
#include "pprof_read.h"
#include "snapcompose.h"

/* The pprof profile of snapshot s, decoded and validated. */
static ppr_profile_t *export_and_read(const mtc_snap_t *s)
{
    mtc_buf_t b = { .version = 3 };
    mtc_compose(s, &b);
    mta_snapshot_t *snap = NULL;
    char err[512];
    cr_assert_eq(mta_snapshot_parse(b.data, b.len, "x.mtsnap", &snap, err, sizeof(err)), 0, "%s",
                 err);
    char path[] = "/tmp/mt-pprof-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_eq(mta_export_pprof(f, snap, NULL), 0);
    fclose(f);
    ppr_profile_t *pp = NULL;
    cr_assert_eq(ppr_read_file(path, &pp, err, sizeof(err)), 0, "%s", err);
    unlink(path);
    cr_assert_eq(ppr_validate(pp, err, sizeof(err)), 0, "%s", err);
    mta_snapshot_free(snap);
    mtc_buf_free(&b);
    return pp;
}

/* Blocks whose stack has no frame (a stack the tracer could not walk): one
 * sample without a location, its four values exact. The export once passed
 * the empty location list's NULL buffer to memcpy (found by analyzer_fuzz). */
Test(pprof_export, a_stack_without_frames)
{
    mtc_snap_t s;
    mtc_snap_init(&s);
    s.meta.cmdline = mtc_strn(&s, "./x\0", 4);
    uint32_t st = mtc_stack(&s, 0, NULL);
    mtc_block(&s, 0x10000, 48, st);
    mtc_block(&s, 0x20000, 80, st);
    mtc_stat(&s, st, 128, 2, 128, 2, 128, 2);
    ppr_profile_t *pp = export_and_read(&s);
    cr_assert_eq(pp->nsamples, 1);
    cr_expect_eq(pp->samples[0].nlocs, 0);
    cr_assert_eq(pp->samples[0].nvalues, 4);
    cr_expect_eq(pp->samples[0].values[0], 2);
    cr_expect_eq(pp->samples[0].values[1], 128);
    cr_expect_eq(pp->samples[0].values[2], 2);
    cr_expect_eq(pp->samples[0].values[3], 128);
    cr_expect_eq(pp->nlocations, 0);
    ppr_free(pp);
    mtc_snap_free(&s);
}
