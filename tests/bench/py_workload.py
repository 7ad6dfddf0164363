"""Allocation-heavy, deterministic Python workload for bench_python.

usage: python py_workload.py [SCALE]

SCALE (default 90) is the number of batches; the time grows linearly with it
(about 1.5 s bare on CPython 3.11 at the default on the project's machine).
Each batch builds small trees of objects (a class with __slots__ and one
without), dicts, lists and strings (formatting, joins), round-trips them
through json.dumps/json.loads, keeps one point of about one record in 4
alive in a bounded cache of 20,000 entries (the oldest are evicted, so some
blocks are also freed late) and drops the rest. The allocating calls sit 5 to
10 Python frames deep (build_node recurses 4 levels).

The one line printed on stdout ("checksum ...") depends only on SCALE: it is
the same on CPython 3.8 to 3.13 and under any tracer. No hash()-ordered
container is iterated (str hashes are randomised per process) and random
numbers come from a fixed LCG, not the random module.
"""
import json
import sys
import zlib

MASK64 = (1 << 64) - 1
CACHE_SIZE = 20000       # entries kept alive at most
BATCH_ITEMS = 64         # records per batch tree level 0
TREE_FANOUT = 3
TREE_DEPTH = 3


class Rng(object):
    """64-bit LCG (Knuth's MMIX constants): the same numbers everywhere."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self, n):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK64
        return (self.state >> 33) % n


class Point(object):
    """No __slots__: each instance has its own __dict__."""

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag

    def norm1(self):
        return abs(self.x) + abs(self.y)


class SlotPoint(object):
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag

    def norm1(self):
        return abs(self.x) + abs(self.y)


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
         "hotel", "india", "juliet", "kilo", "lima", "mike", "november"]


# ---- the call chain: run -> run_batch -> build_tree -> build_node (x3) ->
#      make_record -> make_points / format_label -> join_words

def join_words(rng, n):
    return "-".join([WORDS[rng.next(len(WORDS))] for _ in range(n)])


def format_label(rng, level, index):
    words = join_words(rng, 1 + rng.next(4))
    return "{0}/{1:03d}:{2}#{3:x}".format(level, index, words, rng.next(1 << 20))


def make_points(rng, count, tag):
    pts = []
    for i in range(count):
        x = rng.next(2001) - 1000
        y = rng.next(2001) - 1000
        if i % 2:
            pts.append(SlotPoint(x, y, tag))
        else:
            pts.append(Point(x, y, tag))
    return pts


def make_record(rng, level, index):
    label = format_label(rng, level, index)
    pts = make_points(rng, 2 + rng.next(6), label)
    return {
        "label": label,
        "level": level,
        "index": index,
        "points": [[p.x, p.y] for p in pts],
        "norm": sum(p.norm1() for p in pts),
        "ratio": round(rng.next(100000) / 997.0, 6),
        "flags": [bool(rng.next(2)) for _ in range(3)],
        "note": None if rng.next(5) else "%s|%d|%.3f" % (label, index, index / 7.0),
    }, pts


def build_node(rng, level, index, keep):
    record, pts = make_record(rng, level, index)
    if rng.next(4) == 0:
        keep.append(pts[0])
    if level < TREE_DEPTH:
        record["children"] = [build_node(rng, level + 1, index * TREE_FANOUT + k, keep)
                              for k in range(1 + rng.next(TREE_FANOUT))]
    return record


def build_tree(rng, batch, keep):
    return {"batch": batch,
            "items": [build_node(rng, 0, i, keep) for i in range(BATCH_ITEMS)]}


def tree_summary(node):
    total = node["norm"] + len(node["label"])
    for child in node.get("children", ()):
        total += tree_summary(child)
    return total


def run_batch(rng, batch, cache, crc):
    keep = []
    tree = build_tree(rng, batch, keep)
    text = json.dumps(tree, sort_keys=True)
    back = json.loads(text)
    if back != tree:
        raise SystemExit("json round trip differs in batch %d" % batch)
    crc = zlib.crc32(text.encode("utf-8"), crc)
    total = 0
    for item in back["items"]:
        total += tree_summary(item)
    # Keep a few objects and a few strings alive, evicting the oldest.
    for obj in keep:
        cache.append((obj, obj.tag + "!" + str(total % 1000)))
    if len(cache) > CACHE_SIZE:
        del cache[:len(cache) - CACHE_SIZE]
    return crc, total


def run(scale):
    rng = Rng(20240229)
    cache = []
    crc = 0
    grand = 0
    for batch in range(scale):
        crc, total = run_batch(rng, batch, cache, crc)
        grand = (grand * 31 + total) & MASK64
    kept = 0
    for obj, tag in cache:
        kept = (kept + obj.norm1() + len(tag)) & MASK64
    return crc, grand, len(cache), kept


def main(argv):
    scale = int(argv[1]) if len(argv) > 1 else 90
    if scale < 1:
        raise SystemExit("usage: py_workload.py [SCALE >= 1]")
    crc, grand, live, kept = run(scale)
    print("checksum scale=%d crc=%08x sum=%016x live=%d kept=%x"
          % (scale, crc & 0xffffffff, grand, live, kept))


if __name__ == "__main__":
    main(sys.argv)
