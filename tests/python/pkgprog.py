"""Run by tests/python/package.py under `memtrail run`, with the memtrail
package of the build tree on PYTHONPATH (its directory is argv[1]): the
package answers `import memtrail`, reaches the tracer, writes an api
snapshot; then 100 blocks of 100,001 bytes at THE LINE and a garbage cycle
are left for the exit snapshot."""
import gc
import os
import sys

import memtrail

assert memtrail.__file__.startswith(sys.argv[1]), memtrail.__file__
assert sys.modules["_memtrail"] is not memtrail
assert memtrail.is_tracing() is True
assert memtrail.output_dir() == os.path.realpath(os.environ.get("MEMTRAIL_OUTPUT", ".")) or \
    os.path.isdir(memtrail.output_dir())
path = memtrail.snapshot("one")
assert os.path.dirname(path) == memtrail.output_dir(), (path, memtrail.output_dir())
print("SNAP " + path)

keep = []


def grow():
    for _ in range(100):
        keep.append(bytearray(100000))   # THE LINE


class Node:
    pass


grow()
gc.disable()
a, b = Node(), Node()
a.other, b.other = b, a
del a, b
print("PKG traced ok")
