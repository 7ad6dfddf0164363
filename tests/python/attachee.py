"""A Python program run bare, then attached to by `memtrail attach`
(tests/integration/test_attach.c, python_* tests).

It prints "ready" and then serves one command a line on stdin:
  busy    loop (objects made and dropped, stdin polled between rounds) until
          the next command: the main thread runs Python code all along;
  sleep S time.sleep(S), then "slept <seconds>": the main thread blocked in
          a C call;
  read    a blocking read of the next line of stdin, then "read": the same,
          in read();
  alloc   makes N_KEEP bytes objects of KEEP_LEN bytes at the line marked
          SITE:keep (nothing else is allocated there: the list is made
          before, `i & 0` keeps the product from being folded into one
          constant) and keeps them; prints "SITE keep <bytes> <blocks> 0",
          then "allocated";
  drop    drops them, "dropped";
  worker  starts a daemon thread that makes WORKER_LEN-byte bytes objects
          at the line marked SITE:worker in a loop, keeping the last
          WORKER_KEEP (large: pymalloc asks the raw domain, malloc, for
          them), a millisecond apart; "worker started";
  freenull  frees NULL in the raw, mem and object domains (through ctypes:
          no Python code frees NULL of itself, CPython's C code often does),
          then "freed null";
  end     "done: <checksum>", exit status 0.
A bytes object is one block of the object domain: sys.getsizeof counts it.
Run through tests/programs/embed.c with libpython in a local scope too
(runpy), where no extension module loads: only `busy` needs one.
"""
import os
import sys
import threading
import time

N_KEEP = 1000
KEEP_LEN = 100
kept = []


def churn(rounds):
    total = 0
    for i in range(rounds):
        tmp = [str(i) * 3 for _ in range(20)]
        total += len(tmp[-1])
    return total


WORKER_LEN = 1000
WORKER_KEEP = 10


def worker():
    recent = [None] * WORKER_KEEP
    i = 0
    while True:
        recent[i % WORKER_KEEP] = b"w" * (WORKER_LEN + (i & 0))  # SITE:worker
        i += 1
        time.sleep(0.001)


def alloc():
    global kept
    kept = [None] * N_KEEP
    for i in range(N_KEEP):
        kept[i] = b"k" * (KEEP_LEN + (i & 0))  # SITE:keep
    blocks = len(kept)
    size = sum(sys.getsizeof(o) for o in kept)
    print("SITE keep %d %d 0" % (size, blocks))
    print("allocated", flush=True)


def read_line():
    """The next line of stdin, read a byte at a time. sys.stdin reads ahead
    into its buffer: a command sent while the previous one was not read yet
    would wait there, unseen by busy's select(), until stdin closed (the
    test then failed with "no answer", the attachee with BrokenPipeError)."""
    got = bytearray()
    while True:
        b = os.read(0, 1)
        got += b
        if not b or b == b"\n":
            return got.decode()


def main():
    checksum = 0
    print("ready", flush=True)
    line = read_line()
    while line:
        cmd = line.split()
        if cmd[0] == "busy":
            # imported here: select is an extension module, which a
            # libpython dlopen'd into a local scope cannot load (embed.c)
            import select
            while True:
                checksum += churn(50)
                r, _, _ = select.select([0], [], [], 0.001)
                if r:
                    break
        elif cmd[0] == "sleep":
            print("sleeping", flush=True)
            t0 = time.monotonic()
            time.sleep(float(cmd[1]))
            print("slept %.3f" % (time.monotonic() - t0), flush=True)
        elif cmd[0] == "read":
            print("reading", flush=True)
            got = read_line()
            print("read %s" % got.strip(), flush=True)
        elif cmd[0] == "alloc":
            alloc()
        elif cmd[0] == "worker":
            threading.Thread(target=worker, daemon=True).start()
            print("worker started", flush=True)
        elif cmd[0] == "drop":
            kept.clear()
            print("dropped", flush=True)
        elif cmd[0] == "freenull":
            import ctypes
            for name in ("PyMem_RawFree", "PyMem_Free", "PyObject_Free"):
                getattr(ctypes.pythonapi, name)(None)
            print("freed null", flush=True)
        elif cmd[0] == "end":
            break
        line = read_line()
    print("done: %d" % (checksum % 1000), flush=True)


main()
