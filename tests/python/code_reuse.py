"""Code objects made, run and freed in turn, each new one often at the
address of the one before, running at the same offset of the same bytecode
in a frame at the same place, called from the same place: only the code
objects' identities differ (the two sources differ only in their file name
and first line). For the Python walk's memo (preload/python/pystack.c),
which must not take a frame of the new code object for one of the old:
with byte sampling (tests/integration/test_pymemo.c) most allocations in
between are not walked, so the walk before is often the previous round's.

usage: code_reuse.py ROUNDS
Each round allocates one bytearray of SIZE_A bytes (file <reuse-A>, line 2)
or SIZE_B bytes (file <reuse-B>, line 3), kept to the end. Prints
"REUSE <file> <line> <size> <count>" for each, the rounds whose code object
had the address of the round before ("SAME <n>"), then "DONE".
"""
import sys
import types

SIZE_A = 1 << 20
SIZE_B = (1 << 20) + 4096
BODY = "def run(n):\n    keep.append(bytearray(n))\n"
keep = []


def call(f, n):
    f(n)                                   # the same frame, the same place


def main(rounds):
    counts = [0, 0]
    same, last = 0, None
    for r in range(rounds):
        b = r % 2
        mod = compile(("\n" * b) + BODY, "<reuse-%s>" % "AB"[b], "exec")
        code = [c for c in mod.co_consts if isinstance(c, types.CodeType)][0]
        del mod
        same += id(code) == last
        last = id(code)
        f = types.FunctionType(code, {"keep": keep, "__builtins__": __builtins__})
        del code
        call(f, SIZE_B if b else SIZE_A)
        del f
        counts[b] += 1
    print("REUSE <reuse-A> 2 %d %d" % (SIZE_A, counts[0]))
    print("REUSE <reuse-B> 3 %d %d" % (SIZE_B, counts[1]))
    print("SAME %d" % same)
    print("DONE")


main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
