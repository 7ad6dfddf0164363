"""Ordinary work that leaves nothing behind, run under `memtrail run` by
tests/integration/test_cycles.c: lists, dicts, sets, classes (a dataclass
too), generators, closures, a caught exception, json, re, collections, a
worker thread that is joined, and an audit hook made inside a function (as
CPython's test runner does: the interpreter keeps it in an untracked list). Every object it makes is either freed by
reference counting or kept by a module global without a cycle, so
`memtrail cycles` must show no cycle and no refcount leak.

Output: deterministic figures, one per line, then "done".
"""
import collections
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass

WORD_RE = re.compile(r"[a-z]+")
TEXT = """the quick brown fox jumps over the lazy dog while the cat
sleeps and the dog barks at the fox in the quiet brown field"""


@dataclass
class Point:
    x: int
    y: int

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Account(object):
    def __init__(self, owner, balance=0):
        self.owner = owner
        self.balance = balance
        self.history = []

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.balance += amount
        self.history.append(("deposit", amount))


def word_counts(text):
    return collections.Counter(WORD_RE.findall(text))


def squares(n):
    for i in range(n):
        yield i * i


def make_adder(k):
    def add(v):
        return v + k
    return add


def json_round_trip():
    data = {"points": [[i, i * 2] for i in range(5)], "name": "clean", "ok": True}
    text = json.dumps(data, sort_keys=True)
    back = json.loads(text)
    return len(text), back["points"][4][1]


def accounts():
    acct = Account("ann")
    for amount in (10, 20, -5, 30):
        try:
            acct.deposit(amount)
        except ValueError:
            pass
    return acct.balance, len(acct.history)


def threaded_sum(n):
    results = []
    tids = []

    def work():
        tids.append(threading.get_native_id())
        results.append(sum(range(n)))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    # join() returns when the thread's Python state is unlinked; the thread
    # then frees it, leaves and ends. Wait until the kernel has no such
    # thread: one still running at the exit snapshot (a loaded machine) has
    # its DTV possibly lost, as memcheck says of any thread alive at exit.
    task = "/proc/self/task/%d" % tids[0]
    for _ in range(10000):
        if not os.path.exists(task):
            break
        time.sleep(0.001)
    return results[0]


def add_audit_hook():
    def _hook(event, args):
        pass
    sys.addaudithook(_hook)


def points():
    pts = [Point(i, -i) for i in range(6)]
    return sum(p.norm1() for p in pts)


counts = word_counts(TEXT)
print("the %d fox %d words %d" % (counts["the"], counts["fox"], len(counts)))
print("squares %d" % sum(squares(50)))
add5 = make_adder(5)
print("adder %d" % add5(37))
print("json %d %d" % json_round_trip())
print("account %d %d" % accounts())
print("thread %d" % threaded_sum(1000))
print("points %d" % points())
add_audit_hook()
table = {str(i): [i] * 3 for i in range(20)}
print("table %d %d" % (len(table), sum(len(v) for v in table.values())))
print("sorted %s" % ",".join(sorted({"pear", "apple", "fig"}, key=len)))
print("done")
