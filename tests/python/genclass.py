"""A method and a generator allocating (run by tests/integration/test_python.c).

Innermost frames: Box.build at `# SITE:build` (function "Box.build" on
CPython 3.11+, where frames carry co_qualname, "build" before) and gen at
`# SITE:gen`; the next frame out is main at `# CALL:build` / `# CALL:gen`.

Output: "SITE build ...", "SITE gen ..." as in alloc_sites.py, then the
snapshot "genclass" is taken and "SNAP <path>" printed.
"""
import sys

import memtrail

N_BUILD = 5000
N_GEN = 7000
K_GEN = 6


class Box(object):
    def build(self, n):
        return b"b" * n  # SITE:build


def gen(n, k):
    for _ in range(k):
        yield b"g" * n  # SITE:gen


def main():
    box = Box()
    built = box.build(N_BUILD)  # CALL:build
    made = [None] * K_GEN
    g = gen(N_GEN, K_GEN)
    for i in range(K_GEN):
        made[i] = next(g)  # CALL:gen
    print("SITE build %d 1 0" % sys.getsizeof(built))
    print("SITE gen %d %d 0" % (K_GEN * sys.getsizeof(made[0]), K_GEN))
    print("SNAP %s" % memtrail.snapshot("genclass"))


main()  # CALL:main
