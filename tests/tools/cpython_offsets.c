/*
 * cpython_offsets.c - print the CPython struct offsets/sizes cited in
 * docs/cpython-internals.md, compiled against one CPython version's own
 * (public + internal) headers.  Standalone: NOT part of any meson.build,
 * does not link libpython (only offsetof/sizeof/enum values are printed).
 *
 * Compile commands used (gcc 12.2.0, x86-64 Debian 12), one per version:
 *
 *   P=/root/.pyenv/versions
 *   for v in 3.8.18:3.8 3.9.18:3.9 3.10.13:3.10 3.11.7:3.11 \
 *            3.12.1:3.12 3.13.0:3.13; do
 *     d=${v%%:*}; m=${v##*:}
 *     gcc -std=c11 -Wall -Wextra -O0 -DPy_BUILD_CORE \
 *         -I$P/$d/include/python$m -I$P/$d/include/python$m/internal \
 *         tests/tools/cpython_offsets.c -o /tmp/cpython_offsets_$m
 *     /tmp/cpython_offsets_$m
 *   done
 *   # Debian's python3.11 (3.11.2, apt-get install python3.11-dev):
 *   gcc -std=c11 -Wall -Wextra -O0 -DPy_BUILD_CORE \
 *       -I/usr/include/python3.11 -I/usr/include/python3.11/internal \
 *       tests/tools/cpython_offsets.c -o /tmp/cpython_offsets_deb311
 *   /tmp/cpython_offsets_deb311
 *
 * Output format: one "name value" pair per line, stable across versions so
 * two outputs can be diffed.  Fields that do not exist in a version are not
 * printed.
 */
#include <Python.h>
#include <stddef.h>
#include <stdio.h>

#if PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>          /* PyFrameObject (3.8-3.10) */
#  include "pycore_pystate.h"       /* _PyRuntimeState, gilstate */
#else
#  include "pycore_frame.h"         /* _PyInterpreterFrame */
#  include "pycore_pystate.h"
#  include "pycore_runtime.h"
#endif

#define OFF(type, field) \
    printf("%-58s %zu\n", "offsetof(" #type ", " #field ")", \
           (size_t)offsetof(type, field))
#define SZ(type) \
    printf("%-58s %zu\n", "sizeof(" #type ")", (size_t)sizeof(type))
#define VAL(name, v) printf("%-58s %ld\n", name, (long)(v))

int main(void)
{
    printf("PY_VERSION %s (hex 0x%08lx)\n", PY_VERSION,
           (unsigned long)PY_VERSION_HEX);

    /* ---- allocator API (public, identical in all versions) ---- */
    SZ(PyMemAllocatorEx);
    OFF(PyMemAllocatorEx, ctx);
    OFF(PyMemAllocatorEx, malloc);
    OFF(PyMemAllocatorEx, calloc);
    OFF(PyMemAllocatorEx, realloc);
    OFF(PyMemAllocatorEx, free);
    VAL("PYMEM_DOMAIN_RAW", PYMEM_DOMAIN_RAW);
    VAL("PYMEM_DOMAIN_MEM", PYMEM_DOMAIN_MEM);
    VAL("PYMEM_DOMAIN_OBJ", PYMEM_DOMAIN_OBJ);

    /* ---- object header ---- */
    SZ(PyObject);
    OFF(PyObject, ob_refcnt);
    OFF(PyObject, ob_type);
#if PY_VERSION_HEX >= 0x030C0000
    VAL("_Py_IMMORTAL_REFCNT", _Py_IMMORTAL_REFCNT);
#endif
    OFF(PyTypeObject, tp_name);

    /* ---- runtime / thread state ---- */
    SZ(_PyRuntimeState);
#if PY_VERSION_HEX < 0x030C0000
    OFF(_PyRuntimeState, gilstate);
    OFF(_PyRuntimeState, gilstate.tstate_current);
    OFF(_PyRuntimeState, gilstate.autoTSSkey);
#endif
#if PY_VERSION_HEX >= 0x030D0000
    OFF(_PyRuntimeState, debug_offsets);
    OFF(_PyRuntimeState, debug_offsets.thread_state.current_frame);
#endif
#if PY_VERSION_HEX < 0x03090000
    OFF(_PyRuntimeState, finalizing);
#else
    OFF(_PyRuntimeState, _finalizing);
#endif
    OFF(PyThreadState, interp);
    OFF(PyThreadState, thread_id);
#if PY_VERSION_HEX < 0x030B0000
    OFF(PyThreadState, frame);              /* PyFrameObject * */
#elif PY_VERSION_HEX < 0x030D0000
    OFF(PyThreadState, cframe);             /* _PyCFrame * */
    OFF(_PyCFrame, current_frame);          /* _PyInterpreterFrame * */
    OFF(_PyCFrame, previous);
#else
    OFF(PyThreadState, current_frame);      /* _PyInterpreterFrame * */
#endif

    /* ---- frames ---- */
#if PY_VERSION_HEX < 0x030B0000
    OFF(PyFrameObject, f_back);
    OFF(PyFrameObject, f_code);
    OFF(PyFrameObject, f_lasti);
    OFF(PyFrameObject, f_lineno);
    OFF(PyFrameObject, f_trace);
#else
    SZ(_PyInterpreterFrame);
#  if PY_VERSION_HEX < 0x030D0000
    OFF(_PyInterpreterFrame, f_code);
    OFF(_PyInterpreterFrame, prev_instr);
#  else
    OFF(_PyInterpreterFrame, f_executable);
    OFF(_PyInterpreterFrame, instr_ptr);
#  endif
    OFF(_PyInterpreterFrame, previous);
    OFF(_PyInterpreterFrame, frame_obj);
    OFF(_PyInterpreterFrame, stacktop);
    OFF(_PyInterpreterFrame, owner);
    OFF(_PyInterpreterFrame, localsplus);
#  if PY_VERSION_HEX < 0x030C0000
    OFF(_PyInterpreterFrame, is_entry);
#  else
    OFF(_PyInterpreterFrame, return_offset);
    VAL("FRAME_OWNED_BY_CSTACK", FRAME_OWNED_BY_CSTACK);
#  endif
    VAL("FRAME_OWNED_BY_THREAD", FRAME_OWNED_BY_THREAD);
    VAL("FRAME_OWNED_BY_GENERATOR", FRAME_OWNED_BY_GENERATOR);
    VAL("FRAME_OWNED_BY_FRAME_OBJECT", FRAME_OWNED_BY_FRAME_OBJECT);
    VAL("sizeof(_Py_CODEUNIT)", sizeof(_Py_CODEUNIT));
#endif

    /* ---- code objects ---- */
    OFF(PyCodeObject, co_firstlineno);
    OFF(PyCodeObject, co_filename);
    OFF(PyCodeObject, co_name);
#if PY_VERSION_HEX < 0x030A0000
    OFF(PyCodeObject, co_lnotab);
#else
    OFF(PyCodeObject, co_linetable);
#endif
#if PY_VERSION_HEX < 0x030B0000
    OFF(PyCodeObject, co_code);
#else
    OFF(PyCodeObject, co_qualname);
    OFF(PyCodeObject, _co_firsttraceable);
    OFF(PyCodeObject, co_code_adaptive);
#endif
    OFF(PyBytesObject, ob_sval);
    OFF(PyVarObject, ob_size);
    return 0;
}
