/* libFuzzer target: the snapshot reader (format/snapshot.c, snapshot_v2.c)
 * on arbitrary bytes, as `memtrail report` would read a hostile file.
 *
 * Built only in a fuzz build (meson option `fuzz`, clang): tests/fuzz/run.sh
 * configures one, seeds the corpus with real snapshots (versions 1 and 2) and
 * runs this for a fixed time under ASan and UBSan. Besides "no crash, no
 * leak, no undefined behaviour", it checks the reader's contract: a file is
 * either loaded whole, with every index in range and the blocks strictly
 * increasing, or refused with one line "snapshot: NAME: ...". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

#define NAME "fuzz"

static void check_loaded(const mta_snapshot_t *s)
{
    for (uint64_t i = 1; i < s->nblocks; i++)
        if (s->blocks[i].address <= s->blocks[i - 1].address)
            abort();
    for (uint64_t i = 0; i < s->nblocks; i++)
        if (s->blocks[i].stack >= s->nstacks)
            abort();
    for (uint32_t i = 0; i < s->nstats; i++)
        if (s->stats[i].stack >= s->nstacks)
            abort();
    if (s->has_leaks)
        for (uint64_t i = 0; i < s->nblocks; i++)
            if (s->leak_kind[i] > MTSNAP_LEAK_KIND_MAX)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mta_snapshot_t *s = NULL;
    char err[512] = "";
    int r = mta_snapshot_parse(data, size, NAME, &s, err, sizeof(err));
    if (r == 0) {
        if (!s)
            abort();
        check_loaded(s);
        mta_snapshot_free(s);
        return 0;
    }
    /* refused: a negative errno, nothing returned, one line naming the file */
    if (r > 0 || s || strncmp(err, "snapshot: " NAME ": ", sizeof("snapshot: " NAME ": ") - 1) != 0 ||
        strchr(err, '\n'))
        abort();
    return 0;
}
