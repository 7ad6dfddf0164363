"""memtrail keeps none of its own Python objects past finalization (run bare
and under `memtrail run` by tests/integration/test_python.c): the tracer's
module `_memtrail`, in sys.modules and sys.meta_path, must be freed when the
interpreter finalizes, like any module. Held by memtrail, it stayed in the
collector's lists after finalization, where the leak scan cannot read it (it
is memtrail's, not a traced block), and the objects linked after it lost
the pointers that make them reachable (docs/leaks.md, "CPython, against
valgrind").

A weak reference to it, kept alive past finalization by a reference of its
own, writes a line to stderr when the module is freed. Output: "done";
stderr (traced only): "_memtrail freed".
"""
import ctypes
import os
import sys
import weakref


def watch(obj, name):
    line = ("%s freed\n" % name).encode()
    ref = weakref.ref(obj, lambda r, w=os.write, line=line: w(2, line))
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(ref))   # outlives finalization


if "_memtrail" in sys.modules:
    watch(sys.modules["_memtrail"], "_memtrail")
print("done")
sys.stdout.flush()
