#!/usr/bin/env python3
"""python_window: measurement windows (memtrail.Window, preload/writer/
window.c) on every interpreter of tests/python/pythons.h (missing ones are
skipped, and said so).

tests/python/window.py runs traced (`memtrail run -- PY window.py`, the
package on PYTHONPATH) and prints its windows' figures. Expected, exactly
(bytearray(n) is two blocks: its 56-byte object and n + 1 bytes):

- an inner window where b = bytearray(3,000,000) was made and freed, then
  c = bytearray(500,000) kept and a thread's bytearray(700,000) kept: its
  peak is b's 3,000,057 B in 2 blocks exactly (nothing else of the window
  was live then); at b's line: peak 3,000,057/2, live 0, allocated
  3,000,057/2; at c's and the thread's lines: live and allocated 500,057/2
  and 700,057/2, peak 0;
- the outer window, opened before a = bytearray(1,000,000) and after
  bytearray(5,000,000) was made (freed inside it: that lowers nothing):
  a's line at the peak 1,000,057/2 and live 0 (a freed after the inner
  window), b's line 3,000,057/2 at the peak, d's line (made after the
  inner window closed) live 200,057/2; its peak at least a + b and less
  than 4 KiB above;
- the 5,000,000 bytes made before both windows appear in neither;
- a window open across fork: end() in the child raises OSError EINVAL, the
  parent's goes on (bytearray(100,000) after the fork: 100,057 B live);
- 1,000 tuples dropped to CPython's free list and 1,000 made at a line
  that allocates nothing else: where memtrail follows reuses (3.9 to 3.13
  of pyenv) that line holds at least 990 live blocks of the window and
  the first at most 2 (the comprehension's own odd block); on 3.8 and
  Debian's 3.11 the other way round (the exact split of the 1,000 depends
  on what the free list held before);
- an empty window: under 1 KiB everywhere; end() of a window never begun
  raises RuntimeError; a ninth window open at once raises OSError EBUSY.

Scratch files under BUILD/tests/python-window. About 1 s per interpreter.
"""

import errno
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def env_path(name):
    v = os.environ.get(name)
    if not v:
        print("%s is not set: run through meson test" % name)
        sys.exit(77)
    return v


MEMTRAIL = env_path("MEMTRAIL_EXE")
PKG = env_path("MEMTRAIL_PYTHONPATH")
BUILD = env_path("MEMTRAIL_BUILD_ROOT")
WORK = os.path.join(BUILD, "tests", "python-window")


def pythons():
    text = open(os.path.join(HERE, "pythons.h")).read()
    return re.findall(r'\{"(\w+)", "(/[^"]+)", \d+', text)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMTRAIL_") and k not in ("PYTHONPATH", "LD_PRELOAD")}
    env["MEMTRAIL_SYMCACHE"] = os.environ.get("MEMTRAIL_SYMCACHE", "off")
    env.update(extra)
    return env


def line(n, peak=(0, 0), live=(0, 0), allocated=(0, 0)):
    return {"peak": list(peak), "live": list(live), "allocated": list(allocated)}


def one(tag, py):
    work = os.path.join(WORK, tag)
    os.makedirs(work, exist_ok=True)
    p = subprocess.run([MEMTRAIL, "run", "-o", work, "--", py, os.path.join(HERE, "window.py")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=clean_env(PYTHONPATH=PKG))
    if p.returncode != 0:
        raise AssertionError("exit %d\n%s" % (p.returncode, p.stderr))
    got = json.loads(p.stdout)
    errs = []

    def check(cond, what):
        if not cond:
            errs.append(what)

    B, C, T, A, D = 3000057, 500057, 700057, 1000057, 200057
    inner, outer = got["inner"], got["outer"]
    want_inner = {"before": line(0), "a": line(0), "b": line(0, (B, 2), (0, 0), (B, 2)),
                  "c": line(0, (0, 0), (C, 2), (C, 2)), "thread": line(0, (0, 0), (T, 2), (T, 2)),
                  "d": line(0)}
    want_outer = {"before": line(0), "a": line(0, (A, 2), (0, 0), (A, 2)),
                  "b": line(0, (B, 2), (0, 0), (B, 2)), "c": line(0, (0, 0), (C, 2), (C, 2)),
                  "thread": line(0, (0, 0), (T, 2), (T, 2)),
                  "d": line(0, (0, 0), (D, 2), (D, 2))}
    for m, w in want_inner.items():
        check(inner["lines"][m] == w, "inner window, line %s: %r, want %r"
              % (m, inner["lines"][m], w))
    for m, w in want_outer.items():
        check(outer["lines"][m] == w, "outer window, line %s: %r, want %r"
              % (m, outer["lines"][m], w))
    check(inner["peak"] == [B, 2], "inner window's peak %r, want [%d, 2]" % (inner["peak"], B))
    check(A + B <= outer["peak"][0] < A + B + 4096, "outer window's peak %r, want %d + < 4 KiB"
          % (outer["peak"], A + B))
    check(inner["live"][0] >= C + T and outer["live"][0] >= C + T + D,
          "live %r %r" % (inner["live"], outer["live"]))
    check(inner["allocated"][0] >= B + C + T and outer["allocated"][0] >= A + B + C + T + D,
          "allocated %r %r" % (inner["allocated"], outer["allocated"]))
    check(all(0 <= x < 1024 for x in got["empty"]), "empty window %r" % got["empty"])
    check(got["end_unopened"] == "RuntimeError", "end() unopened: %r" % got["end_unopened"])
    check(got["ninth"] == errno.EBUSY, "ninth window: %r" % got["ninth"])
    # reuse: where memtrail follows free-list reuses (not 3.8, not Debian's
    # static 3.11: docs/design.md, Free lists), the reusing line holds the
    # tuples (a stack that only received moved blocks is still reported)
    # tuples (a stack that only received moved blocks is still reported);
    # elsewhere the first line keeps them, and the second allocated nothing
    frm, to = got["reuse"]
    if tag not in ("py38", "py311deb"):
        check(to[1] >= 990 and frm[1] <= 2, "free-list reuse: %r at the first line, %r at "
              "the reusing one, want <= 2 and >= 990 blocks" % (frm, to))
    else:
        check(to[1] <= 2 and frm[1] >= 990, "no free-list reuse: %r at the first line, %r "
              "at the second, want >= 990 and <= 2 blocks" % (frm, to))
    check(got["fork_child"] == 0, "end() in a fork child: status %#x (1: no error, 2: not "
          "EINVAL)" % got["fork_child"])
    check(got["fork_parent"] == [100057, 2], "the parent's window after fork: %r"
          % got["fork_parent"])
    if errs:
        raise AssertionError("\n  ".join(errs))
    print("%s: windows exact (inner peak %d, outer peak %d)" % (tag, inner["peak"][0],
                                                              outer["peak"][0]))


def main():
    ran, failures = 0, []
    for tag, py in pythons():
        if not os.access(py, os.X_OK):
            print("%s: %s not found, skipped" % (tag, py))
            continue
        try:
            one(tag, py)
            ran += 1
        except AssertionError as e:
            failures.append(tag)
            print("FAIL %s: %s" % (tag, e))
    if failures:
        print("failed on: " + ", ".join(failures))
        return 1
    return 0 if ran else 77


if __name__ == "__main__":
    sys.exit(main())
