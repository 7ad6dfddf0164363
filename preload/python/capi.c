/*
 * Binding the C API table (python/capi.h): every CPython function and
 * object memtrail uses, looked up once with dlsym through the handle of the
 * interpreter, and the ABI row of its version (python/abi.h).
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "python/capi.h"

mtp_pyapi_t mtp_pyapi;   /* written once by mtp_pyapi_bind before the stack source is set */

static int parse_minor(const char *version)
{
    int major = 0, minor = 0;
    if (!version || sscanf(version, "%d.%d", &major, &minor) != 2 || major != 3)
        return -1;
    return minor;
}

/* Looks `name` up into *slot; a symbol that is missing counts in *missing. */
static void lookup(void *h, const char *name, void *slot, int *missing)
{
    void *v = dlsym(h, name);
    memcpy(slot, &v, sizeof(v));
    *missing += !v;
}

/* The object graph's part: optional, mtp_pyapi.graph_ok says it is complete. */
static void bind_graph(void *h, mtp_pyapi_t *p)
{
    int missing = 0, ignored = 0;
#define G(field, name) lookup(h, name, &p->field, &missing)
    G(list_size, "PyList_Size");
    G(list_item, "PyList_GetItem");
    G(is_true, "PyObject_IsTrue");
    G(tuple_item, "PyTuple_GetItem");
    G(as_long, "PyLong_AsLong");
    G(interp_head, "PyInterpreterState_Head");
    G(interp_next, "PyInterpreterState_Next");
    G(thread_head, "PyInterpreterState_ThreadHead");
    G(thread_next, "PyThreadState_Next");
#undef G
    static const char *const extra[MTP_PY_EXTRA_GCTYPES] = {"PyFrame_Type", "PyTuple_Type",
                                                            "PyDict_Type"};
    static const char *const atomic[MTP_PY_ATOMIC_TYPES] = {
        "PyUnicode_Type", "PyBytes_Type", "PyLong_Type", "PyFloat_Type", "PyComplex_Type",
        "PyByteArray_Type"};
    for (int i = 0; i < MTP_PY_EXTRA_GCTYPES; i++)
        lookup(h, extra[i], &p->extra_gctypes[i], &ignored);
    for (int i = 0; i < MTP_PY_ATOMIC_TYPES; i++)
        lookup(h, atomic[i], &p->atomic_types[i], &ignored);
    p->graph_ok = !missing;
}

static const char set_alloc_name[] = "PyMem_SetAllocator";   /* CPython's mark */

int mtp_pyapi_found(void *h)
{
    /* The whole process (the preloaded start): the loaded objects' hash
     * tables, not dlsym, whose failed lookup in every process without
     * CPython left its error string for the program's first dlerror(). A
     * handle's lookup follows a dlopen, whose wrapper clears it
     * (hook/gotpatch.c). */
    if (h == RTLD_DEFAULT)
        return mtp_symbol_defined(set_alloc_name);
    return dlsym(h, set_alloc_name) != NULL;
}

int mtp_pyapi_bind(void *h)
{
    mtp_pyapi_t *p = &mtp_pyapi;
    int missing = 0, optional = 0;
#define REQ(field, name) lookup(h, name, &p->field, &missing)
#define OPT(field, name) lookup(h, name, &p->field, &optional)
    REQ(get_alloc, "PyMem_GetAllocator");
    REQ(set_alloc, set_alloc_name);
    REQ(is_initialized, "Py_IsInitialized");
    REQ(get_version, "Py_GetVersion");
    if (missing)
        return -ENOENT;
    int minor = parse_minor(p->get_version());
    const mtp_pyabi_t *A = mtp_pyabi_for(minor);
    if (!A) {
        const char *v = p->get_version();
        mtp_warn("python: CPython %.*s is not supported (3.8 to 3.13): Python domains are "
                 "not traced", (int)strcspn(v, " "), v);
        return -ENOTSUP;
    }
    p->minor = minor;
    p->abi = A;
    REQ(add_audit_hook, "PySys_AddAuditHook");
    REQ(import, "PyImport_ImportModule");
    REQ(getattr, "PyObject_GetAttrString");
    REQ(setattr, "PyObject_SetAttrString");
    REQ(call, "PyObject_CallFunctionObjArgs");
    REQ(cfunction_new, "PyCFunction_NewEx");
    REQ(incref, "Py_IncRef");
    REQ(decref, "Py_DecRef");
    REQ(module_new, "PyModule_New");
    REQ(modules_dict, "PyImport_GetModuleDict");
    REQ(dict_set, "PyDict_SetItemString");
    REQ(str_from, "PyUnicode_FromString");
    REQ(bool_from, "PyBool_FromLong");
    REQ(as_utf8, "PyUnicode_AsUTF8AndSize");
    REQ(parse_tuple, "PyArg_ParseTuple");
    REQ(build_value, "Py_BuildValue");
    REQ(list_new, "PyList_New");
    REQ(list_append, "PyList_Append");
    REQ(save_thread, "PyEval_SaveThread");
    REQ(restore_thread, "PyEval_RestoreThread");
    REQ(err_from_errno, "PyErr_SetFromErrno");
    REQ(err_fetch, "PyErr_Fetch");
    REQ(err_restore, "PyErr_Restore");
    REQ(err_clear, "PyErr_Clear");
    REQ(exc_oserror, "PyExc_OSError");
    REQ(none, "_Py_NoneStruct");
    REQ(tstate_get, mtp_pyabi_tstate_getter(A));
    if (A->tstate_global) {   /* the current thread state is process-wide: compare with ours */
        REQ(gilstate_get, "PyGILState_GetThisThreadState");
        if (A->rt_tstate != MTP_PY_NONE)
            OPT(runtime, "_PyRuntime");
    }
    REQ(addr2line, "PyCode_Addr2Line");
    if (minor >= 10)
        OPT(check_line, "_PyCode_CheckLineNumber");
    REQ(request_extra_index, minor >= 12 ? "PyUnstable_Eval_RequestCodeExtraIndex"
                                         : "_PyEval_RequestCodeExtraIndex");
    REQ(code_set_extra, minor >= 12 ? "PyUnstable_Code_SetExtra" : "_PyCode_SetExtra");
    OPT(main_interp, "PyInterpreterState_Main");
    OPT(current_interp, minor >= 9 ? "PyInterpreterState_Get" : "_PyInterpreterState_Get");
    REQ(code_type, "PyCode_Type");
    OPT(track, "PyTraceMalloc_Track");
    OPT(untrack, "PyTraceMalloc_Untrack");
#undef REQ
#undef OPT
    void *eval = dlsym(h, "_PyEval_EvalFrameDefault");
    Dl_info info;
    const ElfW(Sym) *es = NULL;
    if (eval && dladdr1(eval, &info, (void **)&es, RTLD_DL_SYMENT) && es) {
        p->eval_lo = (uintptr_t)eval;
        p->eval_hi = (uintptr_t)eval + es->st_size;
    }
    bind_graph(h, p);
    return missing ? -ENOENT : 0;
}
