/* leakext: a CPython extension with two forgotten Py_DECREFs, for
 * tests/integration/test_cycles.c (tests/python/refleak_ext.py), built at
 * test time against each interpreter's own headers:
 *
 *   cc -shared -fPIC -O0 -g -I<include> leakext.c -o <dir>/leakext<EXT_SUFFIX>
 *
 *   keep(obj)   takes a reference to obj and never gives it back (returns None)
 *   make(n)     builds the set {0, 1, ..., n-1} and drops it without a
 *               Py_DECREF (returns None): the list stays with one reference
 *               that nothing holds
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *leakext_keep(PyObject *self, PyObject *obj)
{
    (void)self;
    Py_INCREF(obj);   /* the bug: no Py_DECREF ever matches it */
    Py_RETURN_NONE;
}

static PyObject *leakext_make(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "leakext.make: negative length");
        return NULL;
    }
    /* A set: sets come from no free list, so no stale free-list slot in the
     * interpreter's data still holds the address of the one leaked (a list
     * would: memtrail's scan then finds that word and cannot call it a leak). */
    PyObject *set = PySet_New(NULL);
    if (set == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyLong_FromSsize_t(i);
        if (item == NULL || PySet_Add(set, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(set);
            return NULL;
        }
        Py_DECREF(item);
    }
    /* the bug: the set is neither returned nor released */
    Py_RETURN_NONE;
}

static PyMethodDef leakext_methods[] = {
    {"keep", leakext_keep, METH_O, "Take a reference to obj and never release it."},
    {"make", leakext_make, METH_O, "Build a set of n ints and never release it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef leakext_module = {
    PyModuleDef_HEAD_INIT, "leakext", "memtrail's refcount-leak test extension", -1,
    leakext_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_leakext(void)
{
    return PyModule_Create(&leakext_module);
}
