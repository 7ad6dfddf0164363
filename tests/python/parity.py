"""memtrail against tracemalloc on a mixed workload (run by
tests/integration/test_python.c under `memtrail run`).

tracemalloc.start(1) is the first thing the script does, so both tracers see
every allocation the workload makes (tracemalloc's hooks sit on top of
memtrail's). The workload builds dicts, lists, strings, instances of classes
with and without __slots__, and json round trips, keeping part of each alive.
Then, with everything still alive, tracemalloc.take_snapshot() and
memtrail.snapshot("parity") are taken back to back.

Output: "TM <file>:<line> <bytes> <blocks>" for the top 20 lines of the
tracemalloc snapshot by size (statistics('lineno')), leaving out tracemalloc's
own module and the frozen import machinery (filtered the same way on
memtrail's side by the test), then "SNAP <path>".
"""
import tracemalloc
tracemalloc.start(1)

import json  # noqa: E402
import sys  # noqa: E402

import memtrail  # noqa: E402

MASK = (1 << 32) - 1


class Lcg(object):
    def __init__(self, seed):
        self.state = seed

    def next(self, n):
        self.state = (self.state * 1103515245 + 12345) & MASK
        return (self.state >> 8) % n


class Point(object):
    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag


class Slot(object):
    __slots__ = ("key", "value", "children")

    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.children = []


def make_points(rng, n):
    return [Point(rng.next(1000), rng.next(1000), "p%d" % i) for i in range(n)]


def make_tree(rng, depth):
    node = Slot("n%d" % rng.next(100000), rng.next(10) * 1.5)
    if depth > 0:
        for _ in range(3):
            node.children.append(make_tree(rng, depth - 1))
    return node


def make_records(rng, n):
    out = []
    for i in range(n):
        rec = {"id": i, "name": "record-%06d" % i, "score": rng.next(100) / 7.0,
               "tags": ["t%d" % rng.next(50) for _ in range(3)]}
        out.append(rec)
    return out


def text_blob(rng, n):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    return " ".join(words[rng.next(len(words))] for _ in range(n))


def main():
    rng = Lcg(12345)
    points = make_points(rng, 5000)
    trees = [make_tree(rng, 4) for _ in range(20)]
    records = make_records(rng, 2000)
    encoded = json.dumps(records)
    decoded = json.loads(encoded)
    blobs = [text_blob(rng, 400) for _ in range(100)]
    index = {}
    for rec in decoded:
        index.setdefault(rec["tags"][0], []).append(rec["id"])
    upper = [b.upper() for b in blobs[:50]]
    matrix = [[rng.next(1000) * 1000003 for _ in range(50)] for _ in range(100)]
    names = ["name-%05d" % i for i in range(3000)]
    squares = {i: i * i * 1000 for i in range(300, 3300)}
    words = blobs[0].split() + blobs[1].split()
    chunks = [bytes(64 + i % 200) for i in range(1500)]
    big_set = set(range(1000, 6000))
    joined = ",".join(names)
    lookup = dict(zip(names, range(3000, 6000)))
    arrays = [bytearray(256) for _ in range(400)]
    nested = [{"k%d" % j: j * 1001 for j in range(12)} for _ in range(300)]
    kept = (points, trees, records, encoded, decoded, blobs, index, upper, matrix, names,
            squares, words, chunks, big_set, joined, lookup, arrays, nested)

    snap = tracemalloc.take_snapshot()
    path = memtrail.snapshot("parity")
    snap = snap.filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
    ])
    for stat in snap.statistics("lineno")[:20]:
        frame = stat.traceback[0]
        print("TM %s:%d %d %d" % (frame.filename, frame.lineno, stat.size, stat.count))
    print("SNAP %s" % path)
    return kept


main()
