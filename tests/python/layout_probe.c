/*
 * layout_probe.c - print, for the CPython whose headers it is compiled
 * against, the value of every field of mtp_pyabi_t (preload/python/abi.h)
 * and of every C API constant and structure that file mirrors, as those
 * headers define them. tests/unit/preload/test_pylayout.c compiles it for each
 * interpreter at test time and compares the output with mtp_pyabi_for(minor)
 * and abi.h. Nothing is linked from libpython: only offsetof, sizeof, enum
 * values, types and a few static inline functions of the headers are used.
 *
 *   cc -std=c11 -DPy_BUILD_CORE -I<include> -I<include>/internal \
 *      tests/python/layout_probe.c -o layout_probe
 *
 * (<include> = sysconfig.get_paths()['include']; the internal headers need
 * Py_BUILD_CORE, see tests/tools/cpython_offsets.c.)
 *
 * Output: one "name value" line per field, -1 for a field that does not
 * exist in this version (MTP_PY_NONE); then "capi.*" lines with the C API
 * constants and structures (the same in every version).
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
#if PY_VERSION_HEX >= 0x03090000
#  include "pycore_gc.h"            /* PyGC_Head (3.8: cpython/objimpl.h) */
#endif
#if PY_VERSION_HEX >= 0x030B0000
#  pragma GCC diagnostic push       /* 3.13's header has an unused parameter */
#  pragma GCC diagnostic ignored "-Wunused-parameter"
#  include "pycore_object.h"        /* _PyType_PreHeaderSize */
#  pragma GCC diagnostic pop
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

    /* the thread state getter (its declaration is type-checked, not linked)
     * and whether the current thread state is process-wide */
#if PY_VERSION_HEX < 0x030D0000
    {
        __typeof__(_PyThreadState_UncheckedGet) *getter = 0;
        (void)getter;
        put("tstate_getter", 0);
    }
#else
    {
        __typeof__(PyThreadState_GetUnchecked) *getter = 0;
        (void)getter;
        put("tstate_getter", 1);
    }
#endif
#if PY_VERSION_HEX < 0x030C0000
    put("tstate_global", 1);   /* one for the process, in _PyRuntime: */
    _Static_assert(SAME_TYPE(_PyRuntime.gilstate.tstate_current, _Py_atomic_address), "tstate");
    _Static_assert(SAME_TYPE(_PyRuntime.gilstate.autoTSSkey._key, pthread_key_t), "tss key");
    put("rt_tstate", OFF(_PyRuntimeState, gilstate.tstate_current));
    put("rt_auto_interp", OFF(_PyRuntimeState, gilstate.autoInterpreterState));
    put("rt_tss_key", OFF(_PyRuntimeState, gilstate.autoTSSkey) + OFF(Py_tss_t, _key));
#else
    {
        __typeof__(_Py_tss_tstate) *tls = 0;                 /* one per thread */
        (void)tls;
        put("tstate_global", 0);
    }
    put("rt_tstate", NONE);
    put("rt_auto_interp", NONE);
    put("rt_tss_key", NONE);
#endif

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
    put("f_code_any", !SAME_TYPE(((PyFrameObject *)0)->f_code, PyCodeObject *));
    put("f_pos", OFF(PyFrameObject, f_lasti));
    put("f_owner", NONE);
    put("f_is_entry", NONE);
    put("owner_generator", NONE);
    put("owner_cstack", NONE);
#else
    put("f_back", OFF(_PyInterpreterFrame, previous));
#  if PY_VERSION_HEX < 0x030D0000
    put("f_code", OFF(_PyInterpreterFrame, f_code));
    put("f_code_any", !SAME_TYPE(((_PyInterpreterFrame *)0)->f_code, PyCodeObject *));
    put("f_pos", OFF(_PyInterpreterFrame, prev_instr));
#  else
    put("f_code", OFF(_PyInterpreterFrame, f_executable));
    put("f_code_any", !SAME_TYPE(((_PyInterpreterFrame *)0)->f_executable, PyCodeObject *));
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
    put("chunk_previous", NONE);
    put("chunk_size", NONE);
    put("chunk_top", NONE);
    put("chunk_data", NONE);
#else
    put("ts_datastack_chunk", OFF(PyThreadState, datastack_chunk));
    put("ts_datastack_top", OFF(PyThreadState, datastack_top));
    _Static_assert(SAME_TYPE(((_PyStackChunk *)0)->size, size_t), "chunk size");
    _Static_assert(SAME_TYPE(((_PyStackChunk *)0)->top, size_t), "chunk top");
    _Static_assert(sizeof(((_PyStackChunk *)0)->data[0]) == sizeof(void *), "chunk slots");
    put("chunk_previous", OFF(_PyStackChunk, previous));
    put("chunk_size", OFF(_PyStackChunk, size));
    put("chunk_top", OFF(_PyStackChunk, top));
    put("chunk_data", OFF(_PyStackChunk, data));
#endif

    /* code objects */
    _Static_assert(SAME_TYPE(((PyCodeObject *)0)->co_firstlineno, int), "co_firstlineno");
    put("co_firstlineno", OFF(PyCodeObject, co_firstlineno));
    put("co_filename", OFF(PyCodeObject, co_filename));
    put("co_name", OFF(PyCodeObject, co_name));
    _Static_assert(SAME_TYPE(((PyCodeObject *)0)->co_extra, void *), "co_extra");
    put("co_extra", OFF(PyCodeObject, co_extra));
#if PY_VERSION_HEX < 0x030A0000
    put("co_linetable", OFF(PyCodeObject, co_lnotab));
#else
    put("co_linetable", OFF(PyCodeObject, co_linetable));
#endif
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

    /* object header, immortal objects */
    put("ob_refcnt", OFF(PyObject, ob_refcnt));
    put("ob_type", OFF(PyObject, ob_type));
    put("ob_size", OFF(PyVarObject, ob_size));
#if PY_VERSION_HEX < 0x030C0000
    put("immortal_bit", NONE);
#else
    {   /* the one refcount bit that makes _Py_IsImmortal true */
        long bit = NONE;
        for (int b = 0; b < 63; b++) {
            PyObject o;
            memset(&o, 0, sizeof(o));
            o.ob_refcnt = (Py_ssize_t)1 << b;
            if (_Py_IsImmortal(&o))
                bit = bit == NONE ? b : -2;
        }
        put("immortal_bit", bit);
    }
#endif

    /* the collector header and the pre-header before it */
    put("gc_head_size", (long)sizeof(PyGC_Head));
    put("gc_next", OFF(PyGC_Head, _gc_next));
#if PY_VERSION_HEX < 0x030B0000
    put("preheader_size", 0);
    put("block_preheader_size", 0);
#else
    {   /* 3.11: the managed dict's two words, which tracemalloc does not
         * count; 3.12+: the pre-header, which it does */
        PyTypeObject t;
        memset(&t, 0, sizeof(t));
        t.tp_flags = Py_TPFLAGS_HAVE_GC;
        if (_PyType_PreHeaderSize(&t) != sizeof(PyGC_Head))
            return 1;
#if PY_VERSION_HEX < 0x030C0000
        t.tp_flags = Py_TPFLAGS_MANAGED_DICT;
        put("preheader_size", 0);
#else
        t.tp_flags = Py_TPFLAGS_PREHEADER;
        put("preheader_size", (long)_PyType_PreHeaderSize(&t));
#endif
        put("block_preheader_size", (long)_PyType_PreHeaderSize(&t));
    }
#endif

    /* type objects */
    put("tp_name", OFF(PyTypeObject, tp_name));
    put("tp_basicsize", OFF(PyTypeObject, tp_basicsize));
    put("tp_itemsize", OFF(PyTypeObject, tp_itemsize));
    put("tp_traverse", OFF(PyTypeObject, tp_traverse));
    put("tp_del", OFF(PyTypeObject, tp_del));
    put("tp_finalize", OFF(PyTypeObject, tp_finalize));
    put("tp_flags", OFF(PyTypeObject, tp_flags));

    /* compact ASCII strings */
    put("str_length", OFF(PyASCIIObject, length));
    put("str_state", OFF(PyASCIIObject, state));
    put("str_ascii_data", (long)sizeof(PyASCIIObject));
    put("bytes_data", OFF(PyBytesObject, ob_sval));

    /* split dicts' values arrays after a prefix (3.11, 3.12; its last byte
     * is its size): what an object's managed-dict slot holds, less the
     * values' address (3.12 tags it) */
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    {
        _Alignas(8) char words[64];
        PyDictOrValues dorv;
        dorv.values = words + 7;   /* tagged: odd */
        put("dict_values_tag", (long)((char *)_PyDictOrValues_GetValues(dorv) - (words + 7)));
    }
#elif PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    put("dict_values_tag", 0);   /* _PyObject_ValuesPointer's slot holds the values' address */
#else
    put("dict_values_tag", NONE);
#endif
    {
        PyASCIIObject o;
        unsigned int word;
        _Static_assert(sizeof(o.state) == sizeof(word), "state is one word");
        memset(&o, 0, sizeof(o));
        o.state.compact = 1;
        memcpy(&word, &o.state, sizeof(word));
        put("str_compact", (long)word);
        memset(&o, 0, sizeof(o));
        o.state.ascii = 1;
        memcpy(&word, &o.state, sizeof(word));
        put("str_ascii", (long)word);
    }

    /* C API constants and structures memtrail fills in itself */
    put("capi.codeunit_size", (long)sizeof(_Py_CODEUNIT));
    put("capi.PYMEM_DOMAIN_RAW", PYMEM_DOMAIN_RAW);
    put("capi.PYMEM_DOMAIN_MEM", PYMEM_DOMAIN_MEM);
    put("capi.PYMEM_DOMAIN_OBJ", PYMEM_DOMAIN_OBJ);
    put("capi.METH_VARARGS", METH_VARARGS);
    put("capi.METH_NOARGS", METH_NOARGS);
    put("capi.Py_TPFLAGS_HAVE_GC", (long)Py_TPFLAGS_HAVE_GC);
#ifdef Py_TPFLAGS_PREHEADER
    put("capi.Py_TPFLAGS_PREHEADER", (long)Py_TPFLAGS_PREHEADER);
#else   /* before 3.12: no pre-header (preheader_size 0), the mask is not used */
    put("capi.Py_TPFLAGS_PREHEADER", (long)((1ul << 3) | (1ul << 4)));
#endif
    put("capi.sizeof_PyMemAllocatorEx", (long)sizeof(PyMemAllocatorEx));
    put("capi.PyMemAllocatorEx.ctx", OFF(PyMemAllocatorEx, ctx));
    put("capi.PyMemAllocatorEx.malloc", OFF(PyMemAllocatorEx, malloc));
    put("capi.PyMemAllocatorEx.calloc", OFF(PyMemAllocatorEx, calloc));
    put("capi.PyMemAllocatorEx.realloc", OFF(PyMemAllocatorEx, realloc));
    put("capi.PyMemAllocatorEx.free", OFF(PyMemAllocatorEx, free));
    put("capi.sizeof_PyMethodDef", (long)sizeof(PyMethodDef));
    put("capi.PyMethodDef.ml_name", OFF(PyMethodDef, ml_name));
    put("capi.PyMethodDef.ml_meth", OFF(PyMethodDef, ml_meth));
    put("capi.PyMethodDef.ml_flags", OFF(PyMethodDef, ml_flags));
    put("capi.PyMethodDef.ml_doc", OFF(PyMethodDef, ml_doc));
#if PY_VERSION_HEX >= 0x030A0000
    put("capi.sizeof_PyCodeAddressRange", (long)sizeof(PyCodeAddressRange));
    put("capi.PyCodeAddressRange.ar_start", OFF(PyCodeAddressRange, ar_start));
    put("capi.PyCodeAddressRange.ar_end", OFF(PyCodeAddressRange, ar_end));
    put("capi.PyCodeAddressRange.ar_line", OFF(PyCodeAddressRange, ar_line));
    put("capi.PyCodeAddressRange.opaque.computed_line",
        OFF(PyCodeAddressRange, opaque.computed_line));
    put("capi.PyCodeAddressRange.opaque.lo_next", OFF(PyCodeAddressRange, opaque.lo_next));
    put("capi.PyCodeAddressRange.opaque.limit", OFF(PyCodeAddressRange, opaque.limit));
#else   /* before 3.10: no such structure, and memtrail does not use its mirror */
    put("capi.sizeof_PyCodeAddressRange", 40);
    put("capi.PyCodeAddressRange.ar_start", 0);
    put("capi.PyCodeAddressRange.ar_end", 4);
    put("capi.PyCodeAddressRange.ar_line", 8);
    put("capi.PyCodeAddressRange.opaque.computed_line", 16);
    put("capi.PyCodeAddressRange.opaque.lo_next", 24);
    put("capi.PyCodeAddressRange.opaque.limit", 32);
#endif
    return 0;
}
