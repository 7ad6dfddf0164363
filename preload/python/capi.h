/*
 * The CPython C API memtrail calls, as ONE table of function and data
 * pointers resolved with dlsym (the preload never links libpython): the
 * allocator domains and the `memtrail` module (hook/pyhooks.c), the stack
 * walker and code registry (pystack.c, pycode.c), the object graph
 * (pygraph.c).
 *
 * Who writes it: mtp_pyapi_bind, once, called by hook/pyhooks.c before
 * Python support is switched on (before initialization: single-threaded).
 * Read-only afterwards.
 */
#ifndef MTP_PY_CAPI_H
#define MTP_PY_CAPI_H

#include <stdint.h>
#include <sys/types.h>

#include "python/abi.h"

/* The types whose collector state or contents the leak scan looks at. */
#define MTP_PY_EXTRA_GCTYPES 3    /* frame, tuple, dict: collectable, even untracked */
#define MTP_PY_ATOMIC_TYPES 6     /* str, bytes, int, float, complex, bytearray: no references */

typedef struct mtp_pyapi {
    int minor;
    const mtp_pyabi_t *abi;            /* the row of this interpreter (python/abi.h) */
    /* ---- allocator domains, moments (required) ---- */
    void (*get_alloc)(int domain, mtp_pyalloc_t *a);
    void (*set_alloc)(int domain, mtp_pyalloc_t *a);
    int (*is_initialized)(void);
    const char *(*get_version)(void);
    int (*add_audit_hook)(int (*hook)(const char *, void *, void *), void *ud);
    /* ---- objects, modules, errors (required) ---- */
    void *(*import)(const char *name);
    void *(*getattr)(void *o, const char *name);
    int (*setattr)(void *o, const char *name, void *v);
    void *(*call)(void *callable, ...);                  /* PyObject_CallFunctionObjArgs */
    void *(*cfunction_new)(mtp_pymethod_t *def, void *self, void *module);
    void (*incref)(void *o);
    void (*decref)(void *o);
    void *(*module_new)(const char *name);
    void *(*modules_dict)(void);
    int (*dict_set)(void *d, const char *key, void *v);
    void *(*str_from)(const char *s);
    void *(*bool_from)(long v);
    const char *(*as_utf8)(void *str, ssize_t *len);
    int (*parse_tuple)(void *args, const char *fmt, ...);
    void *(*build_value)(const char *fmt, ...);          /* Py_BuildValue (no '#' formats) */
    void *(*list_new)(ssize_t n);
    int (*list_append)(void *list, void *item);
    void *(*save_thread)(void);
    void (*restore_thread)(void *ts);
    void *(*err_from_errno)(void *exc);
    void (*err_fetch)(void **t, void **v, void **tb);
    void (*err_restore)(void *t, void *v, void *tb);
    void (*err_clear)(void);
    void **exc_oserror;
    void *none;
    /* ---- stacks and code objects (required) ---- */
    void *(*tstate_get)(void);         /* mtp_pyabi_tstate_getter(abi) */
    void *(*gilstate_get)(void);       /* PyGILState_GetThisThreadState (abi->tstate_global) */
    const char *runtime;               /* &_PyRuntime (optional; abi->tstate_global): the
                                        * two above read in place (python/pystack.c) */
    int (*addr2line)(void *code, int offset);
    /* _PyCode_CheckLineNumber (3.10+: optional; 3.8 and 3.9's differs) */
    int (*check_line)(int offset, mtp_pyrange_t *bounds);
    /* PEP 523's per-code slots (the code registry's ids): 3.12+ names them
     * PyUnstable_Eval_RequestCodeExtraIndex and PyUnstable_Code_SetExtra */
    ssize_t (*request_extra_index)(void (*free_extra)(void *));
    int (*code_set_extra)(void *code, ssize_t index, void *extra);
    void *(*main_interp)(void);        /* PyInterpreterState_Main (optional) */
    void *(*current_interp)(void);     /* PyInterpreterState_Get (optional; 3.8: _Py...) */
    void *code_type;                   /* &PyCode_Type */
    uintptr_t eval_lo, eval_hi;        /* _PyEval_EvalFrameDefault's code (optional) */
    /* ---- PyTraceMalloc_Track / Untrack (optional) ---- */
    int (*track)(unsigned int domain, uintptr_t ptr, size_t size);
    int (*untrack)(unsigned int domain, uintptr_t ptr);
    /* ---- the object graph (optional: graph_ok says all are there) ---- */
    int graph_ok;
    ssize_t (*list_size)(void *);
    void *(*list_item)(void *, ssize_t);
    int (*is_true)(void *);
    void *(*tuple_item)(void *, ssize_t);
    long (*as_long)(void *);
    void *(*interp_head)(void);
    void *(*interp_next)(void *);
    void *(*thread_head)(void *);
    void *(*thread_next)(void *);
    void *extra_gctypes[MTP_PY_EXTRA_GCTYPES];   /* each may be NULL */
    void *atomic_types[MTP_PY_ATOMIC_TYPES];     /* each may be NULL */
} mtp_pyapi_t;

extern mtp_pyapi_t mtp_pyapi;

/* Whether the handle h reaches a CPython (its allocator API). */
int mtp_pyapi_found(void *h);

/* Binds mtp_pyapi to the interpreter found through the dlopen handle h
 * (RTLD_DEFAULT for a program linked with libpython). Returns 0, -ENOENT
 * if a required symbol is missing (mtp_pyapi.get_alloc says whether any
 * was found), -ENOTSUP for an interpreter version memtrail does not know
 * (after one warning). */
int mtp_pyapi_bind(void *h);

#endif /* MTP_PY_CAPI_H */
