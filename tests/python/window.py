"""Run traced by tests/python/window_test.py on every interpreter: measurement
windows (memtrail.Window) against figures known from the code. Prints one
JSON object; the test compares it with what it expects.

bytearray(n) is two blocks: the object (56 bytes on 64-bit CPython 3.8 to
3.13) and its buffer of n + 1 bytes. Each allocation below sits on a line
of its own, named by a marker comment.
"""
import errno
import gc
import os
import json
import re
import threading

import memtrail

def figures(stats, figure, marker):
    """(bytes, blocks) of statistics('lineno', figure) at the line marked."""
    line = LINES[marker]
    for st in stats.statistics("lineno", figure):
        f = st.traceback[0]
        if f.filename == __file__ and f.lineno == line:
            return [st.size, st.count]
    return [0, 0]


LINES = {}
for n, text in enumerate(open(__file__), 1):
    m = re.search(r"# mark: (\w+)$", text)
    if m:
        LINES[m.group(1)] = n

keep = []
out = {}
gc.collect()
before = bytearray(5000000)                     # mark: before
outer = memtrail.Window().begin()
a = bytearray(1000000)                          # mark: a
del before                                      # freed in the window: lowers nothing
inner = memtrail.Window().begin()
b = bytearray(3000000)                          # mark: b
del b
c = bytearray(500000)                           # mark: c
keep.append(c)
del c


def worker():
    keep.append(bytearray(700000))              # mark: thread


t = threading.Thread(target=worker)
t.start()
t.join()
del t
gc.collect()
si = inner.end()
del a
d = bytearray(200000)                           # mark: d
so = outer.end()

for name, st in (("inner", si), ("outer", so)):
    out[name] = {
        "peak": [st.peak_size, st.peak_count], "live": [st.size, st.count],
        "allocated": [st.allocated_size, st.allocated_count],
        "lines": {m: {f: figures(st, f, m) for f in ("peak", "live", "allocated")}
                  for m in LINES}}
with memtrail.Window() as w:
    pass
out["empty"] = [w.stats.peak_size, w.stats.size, w.stats.allocated_size]
try:
    memtrail.Window().end()
    out["end_unopened"] = "no error"
except RuntimeError:
    out["end_unopened"] = "RuntimeError"
opened = [memtrail.Window().begin() for _ in range(8)]
try:
    memtrail.Window().begin()
    out["ninth"] = "no error"
except OSError as e:
    out["ninth"] = e.errno
for x in opened:
    x.end()
# free-list reuse in a window: tuples made at one line and dropped go to
# CPython's free list; those made at another line reuse them (3.9+ with a
# shared libpython: memtrail moves them to that line). The reusing line
# allocates nothing else: it iterates an iterator made before, over ints
# made before, and stores into a list made before.
gc.collect()
idx = list(range(1000))
y = [None] * 1000
it = iter(idx)
with memtrail.Window() as w:
    x = [(i,) for i in range(1000)]             # mark: reuse_from
    del x
    for k in it: y[k] = (k,)                    # mark: reuse_to
out["reuse"] = [figures(w.stats, "live", "reuse_from"), figures(w.stats, "live", "reuse_to")]
del y

# a window open across fork: closed in the child (EINVAL), intact in the parent
w = memtrail.Window().begin()
pid = os.fork()
if pid == 0:
    try:
        w.end()
        os._exit(1)
    except OSError as e:
        os._exit(0 if e.errno == errno.EINVAL else 2)
_, status = os.waitpid(pid, 0)
out["fork_child"] = status
kept = bytearray(100000)                        # mark: after_fork
out["fork_parent"] = figures(w.end(), "live", "after_fork")
print(json.dumps(out))
