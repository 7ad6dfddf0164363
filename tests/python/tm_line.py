"""A line's figures with tracemalloc on and off (run by
tests/integration/test_python.c, tracemalloc_line_*): make() builds 2,000
tuples of a str and a float at the SITE line; memtrail.snapshot("line") is
taken while they are alive. TM_MODE=start calls tracemalloc.start() right
before make(), with no audit event in between (the test also runs it with
-X tracemalloc, and with tracemalloc off). tracemalloc's own bookkeeping
for each traced block (its trace, its traceback, its hash tables' entries)
is tracemalloc's memory, not the line's: memtrail must report the same
bytes and blocks at the line in every mode.

Output: "TRACING <0|1>", then "SNAP line <path>".
"""
import os
import tracemalloc

import memtrail


def make(n):
    return [("k%d" % i, i * 1.5) for i in range(n)]  # SITE:line


if os.environ.get("TM_MODE") == "start":
    tracemalloc.start()
keep = make(2000)
path = memtrail.snapshot("line")
print("TRACING %d" % tracemalloc.is_tracing())
print("SNAP line %s" % path)
