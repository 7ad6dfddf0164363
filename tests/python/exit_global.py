"""A module global alive when the interpreter begins finalization (run by
tests/integration/test_python.c): the `exit` snapshot, taken from an atexit
callback, must hold it at its line; the `final` one is written at process
exit, after the interpreter's teardown.

Output: "SITE big <bytes> 1 0".
"""
import sys

N_BIG = 3000000

big = b"e" * N_BIG  # SITE:big
print("SITE big %d 1 0" % sys.getsizeof(big))
