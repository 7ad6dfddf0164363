/*
 * layout_probe.c - print, for the CPython whose headers it is compiled
 * against, the value of every field of mtp_pylayout_t (preload/pylayout.h)
 * as those headers define it. tests/unit/preload/test_pylayout.c compiles it for
 * each interpreter at test time and compares the output with
 * mtp_pylayout_for(minor). Nothing is linked from libpython: only offsetof,
 * enum values and types are used.
 *
 *   cc -std=c11 -DPy_BUILD_CORE -I<include> -I<include>/internal \
 *      tests/python/layout_probe.c -o layout_probe
 *
 * (<include> = sysconfig.get_paths()['include']; the internal headers need
 * Py_BUILD_CORE, see tests/tools/cpython_offsets.c.)
 *
 * Output: one "name value" line per field, -1 for a field that does not
 * exist in this version (MTP_PY_NONE); then "ascii.*" lines with the
 * PyASCIIObject layout that preload/pycode.c reads directly (compact ASCII
 * names), which mtp_pylayout_t does not hold.
 */
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>          /* PyFrameObject (3.8-3.10) */
#  include "pycore_pystate.h"
#else
#  include "pycore_frame.h"         /* _PyInterpreterFrame */
#  include "pycore_pystate.h"
#  include "pycore_runtime.h"
#endif

#define NONE (-1L)
#define OFF(type, field) ((long)offsetof(type, field))
#define SAME_TYPE(expr, type) __builtin_types_compatible_p(__typeof__(expr), type)

static void put(const char *name, long value)
{
    printf("%s %ld\n", name, value);
}

int main(void)
{
    /* How a frame's position is stored: enum mtp_py_pos. The types are
     * checked, so that a header change in what the field means breaks the
     * build rather than the test. */
    long pos_kind;
#if PY_VERSION_HEX < 0x030A0000
    _Static_assert(SAME_TYPE(((PyFrameObject *)0)->f_lasti, int), "f_lasti");
    pos_kind = 0;   /* int f_lasti, in bytes */
#elif PY_VERSION_HEX < 0x030B0000
    _Static_assert(SAME_TYPE(((PyFrameObject *)0)->f_lasti, int), "f_lasti");
    pos_kind = 1;   /* int f_lasti, in code units (PEP 626) */
#elif PY_VERSION_HEX < 0x030D0000
    _Static_assert(SAME_TYPE(((_PyInterpreterFrame *)0)->prev_instr, _Py_CODEUNIT *), "prev_instr");
    _Static_assert(sizeof(_Py_CODEUNIT) == 2, "code unit");
    pos_kind = 2;
#else
    _Static_assert(SAME_TYPE(((_PyInterpreterFrame *)0)->instr_ptr, _Py_CODEUNIT *), "instr_ptr");
    _Static_assert(sizeof(_Py_CODEUNIT) == 2, "code unit");
    pos_kind = 3;
#endif

    put("minor", PY_MINOR_VERSION);
    put("pos_kind", pos_kind);

    /* thread state -> innermost frame */
#if PY_VERSION_HEX < 0x030B0000
    put("ts_frame", OFF(PyThreadState, frame));
    put("ts_cframe", NONE);
    put("cframe_current", NONE);
#elif PY_VERSION_HEX < 0x030D0000
    put("ts_frame", NONE);
    put("ts_cframe", OFF(PyThreadState, cframe));
    put("cframe_current", OFF(_PyCFrame, current_frame));
#else
    put("ts_frame", OFF(PyThreadState, current_frame));
    put("ts_cframe", NONE);
    put("cframe_current", NONE);
#endif

    /* frames */
#if PY_VERSION_HEX < 0x030B0000
    put("f_back", OFF(PyFrameObject, f_back));
    put("f_code", OFF(PyFrameObject, f_code));
    put("f_pos", OFF(PyFrameObject, f_lasti));
    put("f_owner", NONE);
    put("f_is_entry", NONE);
    put("owner_generator", NONE);
    put("owner_cstack", NONE);
#else
    put("f_back", OFF(_PyInterpreterFrame, previous));
#  if PY_VERSION_HEX < 0x030D0000
    put("f_code", OFF(_PyInterpreterFrame, f_code));
    put("f_pos", OFF(_PyInterpreterFrame, prev_instr));
#  else
    put("f_code", OFF(_PyInterpreterFrame, f_executable));
    put("f_pos", OFF(_PyInterpreterFrame, instr_ptr));
#  endif
    _Static_assert(sizeof(((_PyInterpreterFrame *)0)->owner) == 1, "owner is one byte");
    put("f_owner", OFF(_PyInterpreterFrame, owner));
#  if PY_VERSION_HEX < 0x030C0000
    _Static_assert(sizeof(((_PyInterpreterFrame *)0)->is_entry) == 1, "is_entry is one byte");
    put("f_is_entry", OFF(_PyInterpreterFrame, is_entry));
#  else
    put("f_is_entry", NONE);
#  endif
    put("owner_generator", FRAME_OWNED_BY_GENERATOR);
#  if PY_VERSION_HEX < 0x030C0000
    put("owner_cstack", NONE);
#  else
    put("owner_cstack", FRAME_OWNED_BY_CSTACK);
#  endif
#endif

    /* the frames' data stack */
#if PY_VERSION_HEX < 0x030B0000
    put("ts_datastack_chunk", NONE);
    put("ts_datastack_top", NONE);
#else
    put("ts_datastack_chunk", OFF(PyThreadState, datastack_chunk));
    put("ts_datastack_top", OFF(PyThreadState, datastack_top));
#endif

    /* code objects */
    _Static_assert(SAME_TYPE(((PyCodeObject *)0)->co_firstlineno, int), "co_firstlineno");
    put("co_firstlineno", OFF(PyCodeObject, co_firstlineno));
    put("co_filename", OFF(PyCodeObject, co_filename));
    put("co_name", OFF(PyCodeObject, co_name));
#if PY_VERSION_HEX < 0x030B0000
    put("co_qualname", NONE);
    put("co_firsttraceable", NONE);
    put("co_code_adaptive", NONE);
#else
    put("co_qualname", OFF(PyCodeObject, co_qualname));
    _Static_assert(SAME_TYPE(((PyCodeObject *)0)->_co_firsttraceable, int), "firsttraceable");
    put("co_firsttraceable", OFF(PyCodeObject, _co_firsttraceable));
    put("co_code_adaptive", OFF(PyCodeObject, co_code_adaptive));
#endif

    /* Also read by memtrail without a layout row: the type of an object
     * (3.13: is f_executable a code object?) and compact ASCII strings. */
    put("ob_type", OFF(PyObject, ob_type));
    put("ascii.length", OFF(PyASCIIObject, length));
    put("ascii.state", OFF(PyASCIIObject, state));
    put("ascii.data", (long)sizeof(PyASCIIObject));
    {
        PyASCIIObject o;
        unsigned int word;
        _Static_assert(sizeof(o.state) == sizeof(word), "state is one word");
        memset(&o, 0, sizeof(o));
        o.state.compact = 1;
        memcpy(&word, &o.state, sizeof(word));
        put("ascii.compact_bit", __builtin_ctz(word));
        memset(&o, 0, sizeof(o));
        o.state.ascii = 1;
        memcpy(&word, &o.state, sizeof(word));
        put("ascii.ascii_bit", __builtin_ctz(word));
    }
    return 0;
}
