/*
 * The CPython ABI table (python/abi.h): one constant row per minor version.
 * Every value was printed by compiling against that version's own headers;
 * tests/unit/test_pylayout.c checks each of them again for every installed
 * interpreter (tests/python/layout_probe.c prints the headers' values).
 */
#include <stddef.h>

#include "python/abi.h"

#define NO MTP_PY_NONE

/* The same in 3.8 to 3.13 (x86-64): the object and type headers, the
 * collector header, PyASCIIObject's length and state. */
#define OBJECTS                                                                               \
    .ob_refcnt = 0, .ob_type = 8, .ob_size = 16, .gc_head_size = 16, .gc_next = 0,            \
    .tp_name = 24, .tp_basicsize = 32, .tp_itemsize = 40, .tp_flags = 168, .tp_traverse = 184, \
    .tp_del = 376, .tp_finalize = 392, .str_length = 16, .str_state = 32, .str_compact = 0x20, \
    .str_ascii = 0x40, .bytes_data = 32

/* 3.8 to 3.10: PyFrameObject, no data stack, no immortal objects, no pre-header. */
#define FRAME_OBJECTS(lasti_kind, lasti)                                                      \
    .tstate_getter = MTP_PY_TSTATE_UNDERSCORE, .tstate_global = 1, .ts_frame = 24,            \
    .ts_cframe = NO, .cframe_current = NO, .ts_datastack_chunk = NO, .ts_datastack_top = NO,  \
    .chunk_previous = NO, .chunk_size = NO, .chunk_top = NO, .chunk_data = NO,                \
    .pos_kind = lasti_kind, .f_back = 24, .f_code = 32, .f_code_any = 0, .f_pos = lasti,      \
    .f_owner = NO, .f_is_entry = NO, .owner_generator = NO, .owner_cstack = NO,               \
    .co_firstlineno = 40, .co_filename = 104, .co_name = 112, .co_qualname = NO,              \
    .co_linetable = 120,                                                                      \
    .co_firsttraceable = NO, .co_code_adaptive = NO, .co_extra = 144, .immortal_bit = NO,     \
    .preheader_size = 0, .block_preheader_size = 0, .str_ascii_data = 48,            \
    .dict_values_tag = NO

/* 3.11+: _PyStackChunk */
#define CHUNKS .chunk_previous = 0, .chunk_size = 8, .chunk_top = 16, .chunk_data = 24

static const mtp_pyabi_t rows[] = {
    {.minor = 8, OBJECTS, FRAME_OBJECTS(MTP_PY_POS_LASTI_BYTES, 104),
     .rt_tstate = 0x558, .rt_auto_interp = 0x568, .rt_tss_key = 0x574},
    {.minor = 9, OBJECTS, FRAME_OBJECTS(MTP_PY_POS_LASTI_BYTES, 104),
     .rt_tstate = 0x238, .rt_auto_interp = 0x240, .rt_tss_key = 0x24c},
    {.minor = 10, OBJECTS, FRAME_OBJECTS(MTP_PY_POS_LASTI_UNITS, 96),
     .rt_tstate = 0x238, .rt_auto_interp = 0x240, .rt_tss_key = 0x24c},
    {.minor = 11, OBJECTS, CHUNKS,
     .tstate_getter = MTP_PY_TSTATE_UNDERSCORE, .tstate_global = 1, .ts_frame = NO,
     .rt_tstate = 0x240, .rt_auto_interp = 0x248, .rt_tss_key = 0x254,
     .ts_cframe = 56, .cframe_current = 8, .ts_datastack_chunk = 296, .ts_datastack_top = 304,
     .pos_kind = MTP_PY_POS_PREV_INSTR, .f_back = 48, .f_code = 32, .f_code_any = 0, .f_pos = 56,
     .f_owner = 69, .f_is_entry = 68, .owner_generator = 1, .owner_cstack = NO,
     .co_firstlineno = 72, .co_filename = 112, .co_name = 120, .co_qualname = 128,
     .co_firsttraceable = 168, .co_code_adaptive = 184, .co_extra = 176, .co_linetable = 136,
     .immortal_bit = NO,
     .preheader_size = 0, .block_preheader_size = 16, .str_ascii_data = 48,
     .dict_values_tag = 0},
    {.minor = 12, OBJECTS, CHUNKS,
     .tstate_getter = MTP_PY_TSTATE_UNDERSCORE, .tstate_global = 0, .ts_frame = NO,
     .rt_tstate = NO, .rt_auto_interp = NO, .rt_tss_key = NO,
     .ts_cframe = 56, .cframe_current = 0, .ts_datastack_chunk = 232, .ts_datastack_top = 240,
     .pos_kind = MTP_PY_POS_PREV_INSTR, .f_back = 8, .f_code = 0, .f_code_any = 0, .f_pos = 56,
     .f_owner = 70, .f_is_entry = NO, .owner_generator = 1, .owner_cstack = 3,
     .co_firstlineno = 68, .co_filename = 112, .co_name = 120, .co_qualname = 128,
     .co_firsttraceable = 176, .co_code_adaptive = 192, .co_extra = 184, .co_linetable = 136,
     .immortal_bit = 31,
     .preheader_size = 16, .block_preheader_size = 16, .str_ascii_data = 40,
     .dict_values_tag = 1},
    {.minor = 13, OBJECTS, CHUNKS,
     .tstate_getter = MTP_PY_TSTATE_UNCHECKED, .tstate_global = 0, .ts_frame = 72,
     .rt_tstate = NO, .rt_auto_interp = NO, .rt_tss_key = NO,
     .ts_cframe = NO, .cframe_current = NO, .ts_datastack_chunk = 232, .ts_datastack_top = 240,
     .pos_kind = MTP_PY_POS_INSTR_PTR, .f_back = 8, .f_code = 0, .f_code_any = 1, .f_pos = 56,
     .f_owner = 70, .f_is_entry = NO, .owner_generator = 1, .owner_cstack = 3,
     .co_firstlineno = 68, .co_filename = 112, .co_name = 120, .co_qualname = 128,
     .co_firsttraceable = 184, .co_code_adaptive = 200, .co_extra = 192, .co_linetable = 136,
     .immortal_bit = 31,
     .preheader_size = 16, .block_preheader_size = 16, .str_ascii_data = 40,
     .dict_values_tag = NO},
};

const mtp_pyabi_t *mtp_pyabi_for(int minor)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (rows[i].minor == minor)
            return &rows[i];
    return NULL;
}

const char *mtp_pyabi_tstate_getter(const mtp_pyabi_t *A)
{
    return A->tstate_getter == MTP_PY_TSTATE_UNCHECKED ? "PyThreadState_GetUnchecked"
                                                       : "_PyThreadState_UncheckedGet";
}
