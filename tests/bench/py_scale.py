"""About BLOCKS live allocator blocks held by stdlib objects, dicts and json
data, then a wait and exit: the Python workload of bench_scale.

usage: python py_scale.py BLOCKS [STOPFILE]

Builds records until sys.getallocatedblocks() (the blocks the object
allocator holds) has grown by BLOCKS; each record is a dict parsed from a
json document (str, int, float, list, nested dict), a datetime, a Decimal,
a namedtuple, a tuple of strings and a bytes object, kept in one list. Then
it prints "ready PID BUILD_S BLOCKS_NOW" (BLOCKS_NOW: the growth of
sys.getallocatedblocks()), waits until STOPFILE exists (when given) and
exits with everything alive, so that the exit snapshot sees it.
"""
import collections
import datetime
import decimal
import json
import os
import sys
import time

Point = collections.namedtuple("Point", "x y label")


def record(i):
    doc = json.dumps({
        "id": i,
        "name": "user-%d" % i,
        "score": i * 0.5,
        "tags": ["t%d" % (i % 7), "t%d" % (i % 11)],
        "meta": {"active": i % 2 == 0, "group": "g%d" % (i % 100)},
    })
    r = json.loads(doc)
    r["when"] = datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=i)
    r["price"] = decimal.Decimal(i) / 100
    r["point"] = Point(i, -i, "p%d" % i)
    r["words"] = tuple(("w%d" % (i + k)) for k in range(3))
    r["raw"] = ("b%d" % i).encode() * 3
    return r


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[2])
    target = int(sys.argv[1])
    stop = sys.argv[2] if len(sys.argv) > 2 else None
    t0 = time.monotonic()
    base = sys.getallocatedblocks()
    kept = []
    i = 0
    while True:
        for _ in range(1000):
            kept.append(record(i))
            i += 1
        if sys.getallocatedblocks() - base >= target:
            break
    grown = sys.getallocatedblocks() - base
    print("ready %d %.3f %d" % (os.getpid(), time.monotonic() - t0, grown))
    sys.stdout.flush()
    while stop and not os.path.exists(stop):
        time.sleep(0.002)
    global KEPT
    KEPT = kept


if __name__ == "__main__":
    main()
