"""Two reference cycles left as garbage with the collector disabled, run under
`memtrail run` by tests/integration/test_cycles.c.

make_garbage() builds a cycle of two Node instances (no finalizer) and one of
two Fin instances (whose class has __del__), then drops every reference to
them. gc.disable() comes first and nothing calls gc.collect(), so both cycles
are still in memory when the `exit` snapshot is taken: `memtrail cycles`
must show them as garbage, each instance at the line that made it (`# ALLOC:`
markers) and, before 3.11, each instance's __dict__ in the same cycle (made
by the first attribute store in __init__, from the interpreter's free list
of dicts: its memory may come from anywhere).

Unrelated calls follow make_garbage() so that no stale pointer to the cycles
stays in the frames or on the evaluation stack.

Output: "garbage made", "size <type> <n>" (the __basicsize__ of Node, Fin and
dict: their instances' allocations are at least that and the gc header),
"checksum <n>", the sorted words of a sentence, "done".
"""
import gc

gc.disable()


class Node(object):
    def __init__(self, name):
        self.name = name
        self.other = None


class Fin(object):
    def __init__(self, name):
        self.name = name
        self.other = None

    def __del__(self):
        self.closed = True   # leaves the cycle as it is


def make_garbage():
    a = Node("a")  # ALLOC:node_a
    b = Node("b")  # ALLOC:node_b
    a.other = b
    b.other = a
    c = Fin("c")  # ALLOC:fin_c
    d = Fin("d")  # ALLOC:fin_d
    c.other = d
    d.other = c
    a = b = c = d = None
    return None


def checksum(n):
    total = 0
    values = [i * 7 % 13 for i in range(n)]
    for v in values:
        total += v
    return total


def words(text):
    return sorted(set(text.split()))


make_garbage()
print("garbage made")
for cls in (Node, Fin, dict):
    print("size %s %d" % (cls.__name__, cls.__basicsize__))
print("checksum %d" % checksum(1000))
print(" ".join(words("the quick brown fox jumps over the lazy dog")))
print("done")
