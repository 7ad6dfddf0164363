#!/usr/bin/env python3
"""python_pytest: the pytest plugin (python/memtrail/pytest_plugin.py) with
Debian's python3-pytest on /usr/bin/python3.11 (skipped without it).

A generated suite (BUILD/tests/python-pytest/suite/test_limits.py):
  test_big_over    bytearray(50,000,000) under limit_memory("24 MB"): fails,
                   naming 50,000,057 B in 2 blocks at the allocating line
  test_big_under   bytearray(10,000,000) under limit_memory("24 MB"): passes
  test_leak_over   2,000,000 bytes kept in a global under limit_leaks("1 MB"):
                   fails, naming the line (2,000,057 B and the list's slot)
  test_leak_under  the same bytes freed: passes
  test_cycle       leaves an object in a garbage reference cycle: fails
                   with --memtrail-fail-on-cycles, naming its type
  test_snapshot    memtrail.snapshot("after big") under --name: the file
                   is BASE.api.after_big.mtsnap (memtrail.PID.0001.api.mtsnap without)
Runs:
1. traced (`memtrail run --name suite -- python3.11 -m pytest -p
   memtrail.pytest_plugin --memtrail-fail-on-cycles`): exit status 1,
   exactly those three fail with the messages above, the session summary
   lists test_big_over first; the directory holds suite.exit.mtsnap,
   suite.final.mtsnap and suite.api.after_big.mtsnap, nothing else;
2. not traced, `--memtrail --memtrail-exe ... --memtrail-name ci`: pytest
   runs itself again under memtrail run, same outcome (without the cycles
   flag: test_cycle passes), ci.exit.mtsnap written;
3. not traced, without --memtrail: the markers do nothing, exit 0, and one
   line says the 4 tests' limits were not checked;
4. the entry point: the installed dist-info's files (METADATA,
   entry_points.txt from the build tree) in a directory on PYTHONPATH,
   no -p: the plugin loads itself (traced: the same failures); with
   -p memtrail.pytest_plugin too, it is loaded once (the same failures);
   with `-p no:memtrail` it does not (the markers unknown to
   --strict-markers).
"""

import os
import re
import shutil
import subprocess
import sys

PY = "/usr/bin/python3.11"


def env_path(name):
    v = os.environ.get(name)
    if not v:
        print("%s is not set: run through meson test" % name)
        sys.exit(77)
    return v


MEMTRAIL = env_path("MEMTRAIL_EXE")
PKG = env_path("MEMTRAIL_PYTHONPATH")
BUILD = env_path("MEMTRAIL_BUILD_ROOT")
WORK = os.path.join(BUILD, "tests", "python-pytest")

SUITE = '''\
import memtrail
import pytest

KEEP = []


class Node:
    def __init__(self):
        self.me = self


def make(n):
    return bytearray(n)                      # mark: make


@pytest.mark.limit_memory("24 MB")
def test_big_over():
    b = make(50000000)
    del b


@pytest.mark.limit_memory("24 MB")
def test_big_under():
    b = make(10000000)
    del b


@pytest.mark.limit_leaks("1 MB")
def test_leak_over():
    KEEP.append(bytearray(2000000))          # mark: leak


@pytest.mark.limit_leaks("1 MB")
def test_leak_under():
    b = bytearray(2000000)
    del b


def test_cycle():
    Node()


def test_snapshot():
    path = memtrail.snapshot("after big")
    assert path is None or path.endswith(("/suite.api.after_big.mtsnap",
                                          "/ci.api.after_big.mtsnap", ".0001.api.mtsnap")), path
'''
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMTRAIL_") and k not in ("PYTHONPATH", "LD_PRELOAD")}
    env["MEMTRAIL_SYMCACHE"] = os.environ.get("MEMTRAIL_SYMCACHE", "off")
    env.update(extra)
    return env


def run(argv, cwd, env):
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return p.returncode, p.stdout


def marks(path):
    return {m.group(1): n for n, text in enumerate(open(path), 1)
            for m in [re.search(r"# mark: (\w+)$", text)] if m}


def outcomes(out):
    return {m.group(2): m.group(1) for m in re.finditer(r"^(PASSED|FAILED) \S*::(\w+)", out, re.M)}


def section(out, test):
    """The failure report of one test (from its ____ header to the next)."""
    m = re.search(r"_+ %s _+\n(.*?)(?=\n_{3,} |\n=+ )" % test, out, re.S)
    return m.group(1) if m else ""


def check_failures(out, path, cycles, what):
    L = marks(path)
    big = section(out, "test_big_over")
    check(re.search(r"the test allocated 47\.7 MiB \(50,0\d\d,\d\d\d B\) in \d+ blocks at its "
                    r"peak, over its limit_memory\('24 MB'\) of 22\.9 MiB \(24,000,000 B\)", big),
          "%s: test_big_over's message:\n%s" % (what, big))
    first = re.search(r"at that peak:\n    (.*)", big)
    check(first and first.group(1) == "47.7 MiB (50,000,057 B) in 2 blocks: %s:%d (make)"
          % (path, L["make"]), "%s: test_big_over's first line: %r" % (what, first and first.group(1)))
    check("pluggy" not in big and "_pytest" not in big,
          "%s: test_big_over lists pytest's own lines:\n%s" % (what, big))
    leak = section(out, "test_leak_over")
    m = re.search(r"the test leaked 1\.9 MiB \(2,00\d,\d\d\d B\) in \d+ blocks \(allocated by "
                  r"it, still live after gc\.collect\(\)\), over its limit_leaks\('1 MB'\) of "
                  r"976\.6 KiB \(1,000,000 B\)\nthe lines that allocated them:\n    1\.9 MiB "
                  r"\(2,000,(\d\d\d) B\) in (\d) blocks: (.*)", leak)
    check(m and 57 <= int(m.group(1)) <= 57 + 64 and m.group(2) in ("2", "3") and
          m.group(3) == "%s:%d (test_leak_over)" % (path, L["leak"]),
          "%s: test_leak_over's message:\n%s" % (what, leak))
    if cycles:
        cyc = section(out, "test_cycle")
        check("memtrail: the test left 1 object in garbage reference cycles: 1 Node" in cyc or
              re.search(r"the test left \d objects in garbage reference cycles: .*\b1 Node\b", cyc),
              "%s: test_cycle's message:\n%s" % (what, cyc))
    fail = {"test_big_over", "test_leak_over"} | ({"test_cycle"} if cycles else set())
    want = {t: "FAILED" if t in fail else "PASSED" for t in
            ("test_big_over", "test_big_under", "test_leak_over", "test_leak_under", "test_cycle",
             "test_snapshot")}
    check(outcomes(out) == want, "%s: outcomes %r, want %r" % (what, outcomes(out), want))
    summary = re.search(r"=+ memtrail: top 5 tests by peak memory =+\n(.*)", out)
    check(summary and summary.group(1).split()[:3] == ["47.7", "MiB", "test_limits.py::test_big_over"],
          "%s: the session summary: %r" % (what, summary and summary.group(1)))


def names(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".mtsnap"))


def main():
    if not os.access(PY, os.X_OK) or subprocess.call([PY, "-c", "import pytest"],
                                                     stderr=subprocess.DEVNULL) != 0:
        print("%s with pytest (python3-pytest) not found, skipped" % PY)
        return 77
    shutil.rmtree(WORK, ignore_errors=True)
    suite = os.path.join(WORK, "suite")
    os.makedirs(suite)
    path = os.path.join(suite, "test_limits.py")
    open(path, "w").write(SUITE)
    open(os.path.join(suite, "pytest.ini"), "w").write("[pytest]\naddopts = -p no:cacheprovider -rA\n")
    pytest = [PY, "-m", "pytest", "-p", "memtrail.pytest_plugin"]

    # 1. traced
    out1 = os.path.join(WORK, "out1")
    rc, out = run([MEMTRAIL, "run", "-o", out1, "--name", "suite", "--"] + pytest +
                  ["--memtrail-fail-on-cycles"], suite, clean_env(PYTHONPATH=PKG))
    check(rc == 1, "traced: exit %d, want 1\n%s" % (rc, out))
    check_failures(out, path, True, "traced")
    check(names(out1) == ["suite.api.after_big.mtsnap", "suite.exit.mtsnap", "suite.final.mtsnap"],
          "traced: files %r" % names(out1))

    # 2. --memtrail: pytest runs itself again, traced
    out2 = os.path.join(WORK, "out2")
    # (the --opt=VALUE forms: pytest takes a path given as a separate
    # argument for a test path when it looks for its rootdir)
    rc, out = run(pytest + ["--memtrail", "--memtrail-exe=" + MEMTRAIL, "--memtrail-output=" + out2,
                            "--memtrail-name=ci"], suite, clean_env(PYTHONPATH=PKG))
    check(rc == 1, "--memtrail: exit %d, want 1\n%s" % (rc, out))
    check_failures(out, path, False, "--memtrail")
    check("ci.exit.mtsnap" in names(out2), "--memtrail: files %r" % names(out2))

    # 3. not traced, no --memtrail: the markers do nothing
    rc, out = run(pytest, suite, clean_env(PYTHONPATH=PKG))
    check(rc == 0 and "memtrail: top" not in out and
          "memtrail: pytest is not traced: the memory limits of 4 tests were not checked" in out,
          "untraced: exit %d\n%s" % (rc, out))

    # 4. the entry point of the installed dist-info
    dist = os.path.join(WORK, "site")
    info = os.path.join(dist, "memtrail-0.dist-info")
    os.makedirs(info)
    for f in ("METADATA", "entry_points.txt"):
        shutil.copy(os.path.join(PKG, "memtrail", f), info)
    env = clean_env(PYTHONPATH=PKG + ":" + dist)
    rc, out = run([MEMTRAIL, "run", "-o", os.path.join(WORK, "out4"), "--", PY, "-m", "pytest",
                   "--memtrail-fail-on-cycles"], suite, env)
    check(rc == 1, "entry point: exit %d, want 1\n%s" % (rc, out))
    check_failures(out, path, True, "entry point")
    # ...and -p memtrail.pytest_plugin beside it: loaded once
    rc, out = run([MEMTRAIL, "run", "-o", os.path.join(WORK, "out5"), "--"] + pytest +
                  ["--memtrail-fail-on-cycles"], suite, env)
    check(rc == 1, "entry point and -p: exit %d, want 1\n%s" % (rc, out))
    check_failures(out, path, True, "entry point and -p")
    rc, out = run([PY, "-m", "pytest", "-p", "no:memtrail", "--strict-markers"], suite, env)
    check(rc != 0 and "'limit_memory' not found in `markers`" in out,
          "-p no:memtrail: exit %d\n%s" % (rc, out))
    if failures:
        return 1
    print("pytest plugin: traced, --memtrail, untraced, entry point")
    return 0


if __name__ == "__main__":
    sys.exit(main())
