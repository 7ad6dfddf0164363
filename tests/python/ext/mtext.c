/* mtext: a small CPython extension for tests/integration/test_python.c, built
 * at test time against each interpreter's own headers:
 *
 *   cc -shared -fPIC -O0 -g -fno-omit-frame-pointer -I<include> mtext.c \
 *      -o <dir>/mtext<EXT_SUFFIX>
 *
 * Every allocation happens in its own noinline function (mtext_*_site), so
 * with `memtrail run --native` that function is a native frame of the stack,
 * below the Python line that called into the module. The blocks are kept in
 * a static array until release() frees them all.
 *
 *   pymem_alloc(n)        PyMem_Malloc(n)                       (domain MEM)
 *   c_alloc(n)            malloc(n)                             (native, GIL held)
 *   tracked_alloc(d, n)   malloc(n), then PyTraceMalloc_Track(d, ptr, n)
 *   nogil_alloc(n)        malloc(n) with the GIL released
 *   other_start(n)        a thread of its own that mallocs n bytes...
 *   other_done()          ...True once it has (the block kept), while the
 *                         caller, holding the GIL, runs Python code
 *   release()             frees them all (PyTraceMalloc_Untrack first)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define MTEXT_MAX 64

static struct {
    void *ptr;
    int kind;              /* 0 PyMem, 1 malloc, 2 tracked malloc */
    unsigned int domain;   /* tracked: the PyTraceMalloc domain */
} kept[MTEXT_MAX];
static int nkept;

static int keep(void *p, int kind, unsigned int domain)
{
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (nkept == MTEXT_MAX) {
        PyErr_SetString(PyExc_RuntimeError, "mtext: too many blocks");
        return -1;
    }
    kept[nkept].ptr = p;
    kept[nkept].kind = kind;
    kept[nkept].domain = domain;
    nkept++;
    return 0;
}

__attribute__((noinline)) void *mtext_pymem_site(size_t n);
__attribute__((noinline)) void *mtext_malloc_site(size_t n);
__attribute__((noinline)) void *mtext_tracked_site(unsigned int domain, size_t n);
__attribute__((noinline)) void *mtext_other_site(size_t n);

__attribute__((noinline)) void *mtext_pymem_site(size_t n)
{
    void *p = PyMem_Malloc(n);
    __asm__ volatile("" ::: "memory");   /* not a tail call */
    return p;
}

__attribute__((noinline)) void *mtext_malloc_site(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *mtext_tracked_site(unsigned int domain, size_t n)
{
    void *p = malloc(n);
    if (p != NULL && PyTraceMalloc_Track(domain, (uintptr_t)p, n) == -1) {
        free(p);
        return NULL;
    }
    __asm__ volatile("" ::: "memory");
    return p;
}

static PyObject *mtext_pymem_alloc(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred())
        return NULL;
    if (keep(mtext_pymem_site((size_t)n), 0, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mtext_c_alloc(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred())
        return NULL;
    if (keep(mtext_malloc_site((size_t)n), 1, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mtext_tracked_alloc(PyObject *self, PyObject *args)
{
    unsigned int domain;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "In:tracked_alloc", &domain, &n))
        return NULL;
    if (keep(mtext_tracked_site(domain, (size_t)n), 2, domain) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mtext_nogil_alloc(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    void *p;
    if (n < 0 && PyErr_Occurred())
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    p = mtext_malloc_site((size_t)n);
    Py_END_ALLOW_THREADS
    if (keep(p, 1, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

__attribute__((noinline)) void *mtext_other_site(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}

static struct {
    pthread_t thread;
    size_t n;
    void *block;
    int done;   /* atomic: the block is made */
} other;

static void *other_main(void *unused)
{
    (void)unused;
    other.block = mtext_other_site(other.n);
    __atomic_store_n(&other.done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static PyObject *mtext_other_start(PyObject *self, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred())
        return NULL;
    other.n = (size_t)n;
    other.done = 0;
    if (pthread_create(&other.thread, NULL, other_main, NULL) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "mtext: pthread_create failed");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *mtext_other_done(PyObject *self, PyObject *unused)
{
    if (!__atomic_load_n(&other.done, __ATOMIC_ACQUIRE))
        Py_RETURN_FALSE;
    pthread_join(other.thread, NULL);
    if (keep(other.block, 1, 0) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *mtext_release(PyObject *self, PyObject *unused)
{
    for (int i = 0; i < nkept; i++) {
        if (kept[i].kind == 0) {
            PyMem_Free(kept[i].ptr);
            continue;
        }
        if (kept[i].kind == 2)
            PyTraceMalloc_Untrack(kept[i].domain, (uintptr_t)kept[i].ptr);
        free(kept[i].ptr);
    }
    nkept = 0;
    Py_RETURN_NONE;
}

static PyMethodDef mtext_methods[] = {
    {"pymem_alloc", mtext_pymem_alloc, METH_O, "Keep a PyMem_Malloc(n) block."},
    {"c_alloc", mtext_c_alloc, METH_O, "Keep a malloc(n) block."},
    {"tracked_alloc", mtext_tracked_alloc, METH_VARARGS,
     "Keep a malloc(n) block reported with PyTraceMalloc_Track(domain, ptr, n)."},
    {"nogil_alloc", mtext_nogil_alloc, METH_O, "Keep a malloc(n) block made without the GIL."},
    {"other_start", mtext_other_start, METH_O, "Start a thread that mallocs n bytes."},
    {"other_done", mtext_other_done, METH_NOARGS, "Whether it has (its block then kept)."},
    {"release", mtext_release, METH_NOARGS, "Free every block kept."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mtext_module = {
    PyModuleDef_HEAD_INIT, "mtext", "memtrail's test extension", -1, mtext_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_mtext(void)
{
    return PyModule_Create(&mtext_module);
}
