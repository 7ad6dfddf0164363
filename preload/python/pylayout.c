/* The CPython offsets table. Every value was printed by compiling against
 * that version's own headers; tests/unit/preload/test_pylayout.c checks them again. */
#include <stddef.h>

#include "python/pylayout.h"

#define NO MTP_PY_NONE

static const mtp_pylayout_t layouts[] = {
    /* minor pos_kind               ts_frame ts_cframe cf_cur back code pos owner entry gen cstack  fl  file name qual  1st  code  dsc  dstop */
    {8,  MTP_PY_POS_LASTI_BYTES,    24,      NO,       NO,    24,  32,  104, NO,   NO,   NO, NO,     40, 104, 112, NO,   NO,  NO, NO,  NO},
    {9,  MTP_PY_POS_LASTI_BYTES,    24,      NO,       NO,    24,  32,  104, NO,   NO,   NO, NO,     40, 104, 112, NO,   NO,  NO, NO,  NO},
    {10, MTP_PY_POS_LASTI_UNITS,    24,      NO,       NO,    24,  32,  96,  NO,   NO,   NO, NO,     40, 104, 112, NO,   NO,  NO, NO,  NO},
    {11, MTP_PY_POS_PREV_INSTR,     NO,      56,       8,     48,  32,  56,  69,   68,   1,  NO,     72, 112, 120, 128,  168, 184, 296, 304},
    {12, MTP_PY_POS_PREV_INSTR,     NO,      56,       0,     8,   0,   56,  70,   NO,   1,  3,      68, 112, 120, 128,  176, 192, 232, 240},
    {13, MTP_PY_POS_INSTR_PTR,      72,      NO,       NO,    8,   0,   56,  70,   NO,   1,  3,      68, 112, 120, 128,  184, 200, 232, 240},
};

const mtp_pylayout_t *mtp_pylayout_for(int minor)
{
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
        if (layouts[i].minor == minor)
            return &layouts[i];
    return NULL;
}
