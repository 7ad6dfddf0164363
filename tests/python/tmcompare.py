"""Run by tests/python/package.py twice on each interpreter: memtrail's line
statistics against tracemalloc's own on the same script.

- `tmcompare.py tracemalloc`, not traced: tracemalloc traces the workload
  from its start; prints tracemalloc's statistics("lineno") for this file,
  [file, line, size, count] each, largest first.
- `tmcompare.py memtrail`, traced: the same workload, then
  memtrail.snapshot("tm"); prints the snapshot's path.

Two processes, not one: with tracemalloc on, its own tables (an entry per
traced block, allocated from the raw domain underneath its hooks) would be
memory memtrail sees at the program's lines. Each line of work() allocates
its own kind of memory and keeps it.
"""
import json
import sys
import tracemalloc

import memtrail

keep = {}


def work():
    keep[1] = [str(i) for i in range(20000)]
    keep[2] = [i * 1.5 for i in range(15000)]
    keep[3] = {i: str(i) for i in range(6000)}
    keep[4] = bytearray(300000)
    keep[5] = [bytes(100) for _ in range(3000)]
    keep[6] = "x" * 250000
    keep[7] = list(range(30000))
    keep[8] = tuple(range(20000))
    keep[9] = [[j] for j in range(5000)]
    keep[10] = set(range(8000))
    keep[11] = [(j, j + 1) for j in range(7000)]
    keep[12] = b"y" * 180000
    keep[13] = [{"k": j} for j in range(2000)]
    keep[14] = frozenset(range(3000, 9000))
    keep[15] = ["%d-%d" % (j, j) for j in range(9000)]
    keep[16] = bytearray(120000)
    keep[17] = [object() for _ in range(6000)]
    keep[18] = list(range(12000, 20000))
    keep[19] = [j * 1000003 for j in range(11000)]
    keep[20] = "z" * 90000
    keep[21] = [bytearray(50) for _ in range(1500)]
    keep[22] = tuple(str(j) for j in range(4000))


if sys.argv[1] == "memtrail":
    work()
    print(json.dumps({"snapshot": memtrail.snapshot("tm", strict=True), "file": __file__}))
else:
    tracemalloc.start()
    work()
    tm = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = tm.filter_traces([tracemalloc.Filter(True, __file__)]).statistics("lineno")
    print(json.dumps({"file": __file__, "tracemalloc": [
        [s.traceback[0].filename, s.traceback[0].lineno, s.size, s.count] for s in stats]}))
