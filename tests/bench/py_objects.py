"""About OBJECTS gc-tracked objects kept alive, then exit: the workload of
bench_leaks (the object graph and the leak scan at exit).

usage: python py_objects.py [OBJECTS]

OBJECTS (default 1000000) is rounded down to a multiple of 4: the program
keeps OBJECTS // 4 records in one list, each record four gc-tracked objects:

  * an instance of Record (a class without __slots__),
  * its `children` list (two ints),
  * its `attrs` dict, which holds a str and a list (a dict of atomic
    values only would be untracked by the collector; this one is tracked),
  * that `values` list (two ints).

Then it prints one line, "py_objects: N records, M gc-tracked objects"
(M = len(gc.get_objects()): the records' plus the interpreter's own, a few
thousand) and exits with everything still alive, so that the exit snapshot
sees them. The collector stays enabled, as in a real program.
"""
import gc
import sys


class Record(object):
    def __init__(self, i):
        self.ident = i
        self.children = [i, i + 1]
        self.attrs = {"name": "r%d" % (i % 1000), "values": [i, -i]}


def build(records):
    return [Record(i) for i in range(records)]


def main():
    objects = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    if objects < 4:
        sys.exit("py_objects: OBJECTS must be at least 4")
    kept = build(objects // 4)
    tracked = len(gc.get_objects())
    print("py_objects: %d records, %d gc-tracked objects" % (len(kept), tracked))
    sys.stdout.flush()
    # `kept` stays alive until the interpreter finalizes: the exit snapshot
    # (taken when finalization begins) sees every record.
    global KEPT
    KEPT = kept


if __name__ == "__main__":
    main()
