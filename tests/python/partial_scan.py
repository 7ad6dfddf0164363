"""A leak scan with a thread that does not stop, run under `memtrail run`
by tests/integration/test_cycles.c.

faulthandler's watchdog thread (dump_traceback_later) blocks every signal
the scan could stop it with, and is still waiting at exit: where the scan
stops threads by its signal (MEMTRAIL_STOP=signal, as where ptrace is
refused) it is partial, memory is read through process_vm_readv; by ptrace
(the default) the watchdog is stopped too and the scan is whole. The scan must still read
the objects' own blocks: a heap type's subclasses dict (Base's, made when
Left is defined) is referred to by no traversal, only by the word in the
type's block, and was a false refcount leak (with every other such dict of
the interpreter) when a partial scan skipped those blocks. The one real
refcount leak, a Leaky instance given an extra reference with ctypes
(`# ALLOC:leaky`), must still be found.

Output: "leaked <n> items", "subclasses 2", "done".
"""
import ctypes
import faulthandler
import os
import time


def watchdog_waits(tids_before):
    """Whether the thread faulthandler started (the one task not there
    before) waits in its lock with the scan's stop signal (SIGRTMAX - 4, as
    every signal) blocked. Until it has run its first lines (late on a
    loaded machine) the signal would stop it, and the scan would be whole;
    a thread glibc is still starting has every signal blocked for a moment
    too, but runs."""
    for tid in os.listdir("/proc/self/task"):
        if tid in tids_before:
            continue
        blocked = sleeping = False
        try:
            with open("/proc/self/task/%s/status" % tid) as f:
                for line in f:
                    if line.startswith("SigBlk:"):
                        blocked = int(line.split()[1], 16) >> 59 & 1 == 1
                    elif line.startswith("State:"):
                        sleeping = line.split()[1] == "S"
        except OSError:
            continue
        if blocked and sleeping:
            return True
    return False


tids_before = set(os.listdir("/proc/self/task"))
faulthandler.dump_traceback_later(600)
for _ in range(1000):
    if watchdog_waits(tids_before):
        break
    time.sleep(0.01)


class Base(object):
    pass


class Left(Base):
    pass


class Right(Base):
    pass


class Leaky(object):
    def __init__(self, n):
        self.items = [i * 3 for i in range(n)]


def leak_one(n):
    obj = Leaky(n)  # ALLOC:leaky
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    count = len(obj.items)
    obj = None
    return count


print("leaked %d items" % leak_one(8))
print("subclasses %d" % len(Base.__subclasses__()))
print("done")
