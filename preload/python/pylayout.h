/* CPython structure offsets memtrail reads (frame chain and code objects on
 * the hot path, the frames' data stacks for the leak scan), one row per minor version 3.8 to 3.13, x86-64 builds. */
#ifndef MTP_PYLAYOUT_H
#define MTP_PYLAYOUT_H

#include <stdint.h>

#define MTP_PY_NONE (-1)   /* field absent in this version */

/* How a frame's position is stored (pos_kind). */
enum mtp_py_pos {
    MTP_PY_POS_LASTI_BYTES = 0,  /* int f_lasti, bytes (3.8, 3.9) */
    MTP_PY_POS_LASTI_UNITS = 1,  /* int f_lasti, 2-byte code units (3.10) */
    MTP_PY_POS_PREV_INSTR = 2,   /* _Py_CODEUNIT *prev_instr (3.11, 3.12) */
    MTP_PY_POS_INSTR_PTR = 3,    /* _Py_CODEUNIT *instr_ptr (3.13) */
};

typedef struct mtp_pylayout {
    int minor;                /* 3.minor */
    int pos_kind;             /* enum mtp_py_pos */
    /* thread state -> innermost frame */
    int ts_frame;             /* PyThreadState.frame (3.8-3.10) or .current_frame (3.13) */
    int ts_cframe;            /* PyThreadState.cframe (3.11, 3.12) */
    int cframe_current;       /* _PyCFrame.current_frame (3.11, 3.12) */
    /* frame: PyFrameObject (3.8-3.10) or _PyInterpreterFrame (3.11+) */
    int f_back;               /* f_back / previous */
    int f_code;               /* f_code / f_executable (3.13) */
    int f_pos;                /* f_lasti / prev_instr / instr_ptr */
    int f_owner;              /* char owner (3.11+) */
    int f_is_entry;           /* bool is_entry (3.11 only) */
    int owner_generator;      /* FRAME_OWNED_BY_GENERATOR */
    int owner_cstack;         /* FRAME_OWNED_BY_CSTACK (3.12+) */
    /* code object */
    int co_firstlineno;
    int co_filename;
    int co_name;
    int co_qualname;          /* 3.11+ */
    int co_firsttraceable;    /* int _co_firsttraceable (3.11+) */
    int co_code_adaptive;     /* first code unit (3.11+) */
    /* thread state -> the frames' data stack (3.11+; the leak scan's roots) */
    int ts_datastack_chunk;   /* _PyStackChunk *datastack_chunk */
    int ts_datastack_top;     /* PyObject **datastack_top */
} mtp_pylayout_t;

/* The row for 3.minor, or NULL when memtrail does not know that version. */
const mtp_pylayout_t *mtp_pylayout_for(int minor);

#endif /* MTP_PYLAYOUT_H */
