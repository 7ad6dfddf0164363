"""Objects reused from CPython's free lists, for memtrail and tracemalloc
(run by tests/integration/test_python.c, freelist_*).

Each kind (2-tuples, lists, dicts, floats) is made many times at a churn
line and dropped, which fills its free list (2,000 tuples of a size, 80
lists, 80 dicts, 100 floats: more are made than a list holds), then fewer
than that are made and kept at a keep line: every kept object comes from
the free list, memory first allocated at the churn line. Lists are kept
100, more than their free list holds: it is emptied, and the rest are
new (tracemalloc.take_snapshot() makes a list, which would otherwise be
the 81st reuse in the tracemalloc run only). tracemalloc (3.8+) and
memtrail report the kept objects at the keep line; the churn line keeps
the objects still waiting on the free lists, and a dict's keys block (from
the keys' own free list, not an object) stays at the line that allocated
it.

`python3 freelist.py tracemalloc`: tracemalloc.start(25) first, then the
workload, then "TM <line> <bytes> <blocks>" for every line of this file
ending with a "# FL:" marker that tracemalloc's snapshot holds blocks at
(statistics('lineno')). `python3 freelist.py` (under memtrail): the
workload, then "SNAP <path>" of memtrail.snapshot("freelist"). Nothing
else allocates on a marked line.
"""
import sys

if len(sys.argv) > 1 and sys.argv[1] == "tracemalloc":
    import tracemalloc
    tracemalloc.start(25)
    memtrail = None
else:
    tracemalloc = None
    import memtrail

CHURN = 3000
KEEP = 40
ITEM = object()


def churn_tuples():
    tmp = []
    for _ in range(CHURN):
        tmp.append((ITEM, ITEM))  # FL:churn_tuple
    del tmp


def keep_tuples():
    out = []
    for _ in range(1000):
        out.append((ITEM, ITEM))  # FL:keep_tuple
    return out


def churn_lists():
    tmp = []
    for _ in range(200):
        tmp.append([ITEM])  # FL:churn_list
    del tmp


def keep_lists():
    out = []
    for _ in range(100):
        out.append([ITEM])  # FL:keep_list
    return out


def churn_dicts():
    tmp = []
    for _ in range(200):
        tmp.append({"k": ITEM})  # FL:churn_dict
    del tmp


def keep_dicts():
    out = []
    for _ in range(KEEP):
        out.append({"k": ITEM})  # FL:keep_dict
    return out


def churn_floats(x):
    tmp = []
    for _ in range(200):
        tmp.append(x * 1.5)  # FL:churn_float
    del tmp


def keep_floats(x):
    out = []
    for _ in range(KEEP):
        out.append(x * 1.5)  # FL:keep_float
    return out


def marked_lines():
    import re
    lines = set()
    with open(__file__) as f:
        for n, text in enumerate(f, 1):
            if re.search(r"# FL:\w+$", text.rstrip()):
                lines.add(n)
    return lines


def main():
    churn_tuples()
    tuples = keep_tuples()
    churn_lists()
    lists = keep_lists()
    churn_dicts()
    dicts = keep_dicts()
    churn_floats(float(len(sys.argv)))
    floats = keep_floats(float(len(sys.argv)))
    kept = (tuples, lists, dicts, floats)
    if tracemalloc is not None:
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        marked = marked_lines()
        for stat in snap.statistics("lineno"):
            frame = stat.traceback[0]
            if frame.filename == __file__ and frame.lineno in marked:
                print("TM %d %d %d" % (frame.lineno, stat.size, stat.count))
    else:
        print("SNAP %s" % memtrail.snapshot("freelist"))
    return kept


main()
