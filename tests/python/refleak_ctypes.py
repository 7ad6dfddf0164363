"""A missing Py_DECREF made with ctypes, run under `memtrail run` by
tests/integration/test_cycles.c.

leak_one() makes a Leaky instance (`# ALLOC:leaky`) holding a list of ints,
adds a reference to it with ctypes.pythonapi.Py_IncRef that nothing ever
gives back, and drops its own: the object stays in memory with a reference
count of 1 and nothing referring to it. `memtrail cycles` must show it as
the only refcount leak (1 reference unexplained) and no garbage cycle.

Output: "leaked <n> items", "sum <n>", "done".
"""
import ctypes


class Leaky(object):
    def __init__(self, n):
        self.items = [i * 3 for i in range(n)]


def leak_one(n):
    obj = Leaky(n)  # ALLOC:leaky
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    count = len(obj.items)
    obj = None
    return count


def total(n):
    values = [i % 5 for i in range(n)]
    return sum(values)


print("leaked %d items" % leak_one(8))
print("sum %d" % total(500))
print("done")
