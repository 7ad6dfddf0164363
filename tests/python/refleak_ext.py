"""Missing Py_DECREFs in a C extension (tests/python/ext/leakext.c), run
under `memtrail run` by tests/integration/test_cycles.c, which builds
leakext for this interpreter and puts it on PYTHONPATH.

leakext.keep() takes a reference to a fresh Handle (`# ALLOC:handle`) and
never gives it back; leakext.make() builds a set (`# ALLOC:set`) and
forgets it. Both objects stay in memory with one reference that nothing
holds: `memtrail cycles` must show exactly these two refcount leaks (1
reference unexplained each) and no garbage cycle.

Output: "handle <name>", "made", "sum <n>", "done".
"""
import leakext


class Handle(object):
    def __init__(self, name):
        self.name = name
        self.data = [name] * 4


def use_handle(name):
    handle = Handle(name)  # ALLOC:handle
    leakext.keep(handle)
    return handle.name


def make_set():
    leakext.make(6)  # ALLOC:set


def total(n):
    values = [i % 7 for i in range(n)]
    return sum(values)


print("handle %s" % use_handle("h1"))
make_set()
print("made")
print("sum %d" % total(500))
print("done")
