"""One real leak among ordinary work, run under `memtrail run` by
tests/integration/test_leaks.c (python_exit_leak_*): lose_bytes() makes a
5,000-byte bytes object, adds a reference to it with ctypes.pythonapi.Py_IncRef
that nothing ever gives back (a C extension's missing Py_DECREF) and drops its
own. Nothing points to the object any more: the exit snapshot's leak scan must
call its block (5,033 bytes: the object's header, its 5,000 bytes and the
terminating NUL) definitely lost, at the SITE line, and find nothing else lost.
The rest (json, re, collections, a joined thread, waited for until it has
ended) is tests/python/clean.py's kind of work, which leaves nothing lost.

lose_bytes(0) runs after the leak: on 3.8 to 3.10 a code object keeps the
frame of its last call for the next one (its "zombie frame"), and the slots
of that frame's value stack keep the last values they held, the leaked
object among them; memtrail reads that block as valgrind would, so the
object would be still reachable until the function runs again. The second
call leaves only the empty bytes object, a static singleton, there (its
reference added is not a leak: that object is never freed).

Output: "leaked <n>", "json <n>", "done".
"""
import collections
import ctypes
import json
import os
import re
import threading
import time

N_LEAK = 5000


def lose_bytes(n):
    obj = bytes(n)  # SITE:lost
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    size = len(obj)
    obj = None
    return size


def ordinary():
    words = collections.Counter(re.findall(r"[a-z]+", "the fox and the dog and the cat"))
    text = json.dumps({"words": sorted(words.items()), "n": len(words)}, sort_keys=True)
    results = []
    tids = []

    def work():
        tids.append(threading.get_native_id())
        results.append(len(json.loads(text)["words"]))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    # As in clean.py: join() returns before the thread has ended; one still
    # running at the exit snapshot has its DTV (336 B) possibly lost.
    task = "/proc/self/task/%d" % tids[0]
    for _ in range(10000):
        if not os.path.exists(task):
            break
        time.sleep(0.001)
    return results[0]


print("leaked %d" % (lose_bytes(N_LEAK) + lose_bytes(0)))
print("json %d" % ordinary())
table = {str(i): [i] * 3 for i in range(20)}
print("done")
