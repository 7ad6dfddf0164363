"""A reference cycle that is still in use at exit, run under `memtrail run` by
tests/integration/test_cycles.c.

make_pair() links two Peer instances to each other (`# ALLOC:` markers); the
module global PAIR keeps them. The collector stays enabled. `memtrail cycles`
must show exactly one cycle, alive (not garbage): the two instances and,
before 3.11, their __dict__s; no refcount leak.

Output: "pair <name> <name>", "total <n>", "done".
"""


class Peer(object):
    def __init__(self, name):
        self.name = name
        self.other = None

    def link(self, other):
        self.other = other
        other.other = self

    def describe(self):
        return "%s<->%s" % (self.name, self.other.name)


def make_pair():
    left = Peer("left")  # ALLOC:peer_left
    right = Peer("right")  # ALLOC:peer_right
    left.link(right)
    return (left, right)


def total(n):
    return sum(i * i for i in range(n))


PAIR = make_pair()
print("pair %s %s" % (PAIR[0].describe(), PAIR[1].describe()))
print("total %d" % total(100))
print("done")
