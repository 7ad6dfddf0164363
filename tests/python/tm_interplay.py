"""memtrail under tracemalloc.start() / stop() (run by tests/integration/test_python.c).

tracemalloc puts its hooks on top of memtrail's and restores the previous
allocators when it stops; memtrail must see every allocation either way.
Sites: `before` (before start), `during` (while tracing), `after` (after
stop). Snapshots "during" (taken while tracemalloc traces) and "after".

Output: "SITE <name> <bytes> <blocks> 0" for the three sites,
"TRACED <bytes>" (what tracemalloc reports for the `during` object), then
"SNAP during <path>" and "SNAP after <path>".
"""
import sys
import tracemalloc

import memtrail


def main():
    n_before, n_during, n_after = 40000, 60000, 80000
    before = b"a" * n_before  # SITE:before
    tracemalloc.start()
    during = b"b" * n_during  # SITE:during
    traced = tracemalloc.get_object_traceback(during)
    snap_during = memtrail.snapshot("during")
    tracemalloc.stop()
    after = b"c" * n_after  # SITE:after
    snap_after = memtrail.snapshot("after")
    for name, obj in (("before", before), ("during", during), ("after", after)):
        print("SITE %s %d 1 0" % (name, sys.getsizeof(obj)))
    print("TRACED %d" % (traced is not None))
    print("SNAP during %s" % snap_during)
    print("SNAP after %s" % snap_after)


main()  # CALL:main
