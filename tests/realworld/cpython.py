#!/usr/bin/env python3
"""realworld_cpython: CPython's own test modules, bare and under memtrail.

For each interpreter of PYTHONS (pyenv 3.11, 3.12, 3.13) and each module of
MODULES, runs `python3.X -m test --junit-xml FILE MODULE` twice, bare and as
`memtrail run -o SNAPDIR -- python3.X -m test ...` (the defaults: exit
snapshots with their leak scan, no interval), and compares the outcome of
every test case (ok, skipped, failure, error) between the two runs. The
test fails listing each test whose outcome differs (test id, bare outcome,
traced outcome, the end of the traceback), each module whose run ended
differently without a test to show for it (exit status, regrtest's result),
and each snapshot that does not read back with `memtrail report`. Every
snapshot of the traced runs is read back, then its directory is deleted.

No allow-list: every difference fails the test (the fork warning of 3.12+
in test_threading's test_main_thread_after_fork and test_sys's
test_debugmallocstats did until memtrail fixed them; design.md,
Transparency). EXCLUDED holds only tests whose outcome changes between two
bare runs (timing), each with the evidence.

Each module is one `python -m test` process (no -j: regrtest runs it
in-process, so fork children inherit one module's state, not twelve), and
JOBS of these processes, bare or traced, run side by side; the traced ones
are started first, longest first. An interpreter that is not installed, or
installed without its `test` package, is skipped with a message; exit 77
when none could run.

Measured (meson test, 2 cores, Debian 12, JOBS=2, on a machine that
other jobs kept at load average 4 to 6): 356 s, 7.5 min of CPU (up to
740 s at load average 8). Traced test_threading (45 s per version: its
fork children each write an exit snapshot of the state they inherited),
test_asyncio.test_tasks (25 s) and test_sys (7 to 20 s: many short
subprocesses) take the longest. Each version has about 2,600 test cases
and its traced runs write about 300 snapshots. docs/design.md
(Transparency) says the same.

By hand: MEMTRAIL_EXE=build/analyzer/memtrail tests/realworld/cpython.py
  [--jobs N] [--python PATH]... [--module NAME]...   (MT_REALWORLD_KEEP=1
keeps the scratch directory)
"""

import argparse
import collections
import concurrent.futures
import glob
import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwlib  # noqa: E402
from rwlib import log  # noqa: E402

PYENV_ROOT = os.environ.get("PYENV_ROOT") or "/root/.pyenv"

# (minor, the pyenv interpreter of tests/python/pythons.h, under
# $PYENV_ROOT, default /root/.pyenv). Another patch release of the same
# minor version is used when that one is missing.
PYTHONS = [
    (11, "versions/3.11.7/bin/python3.11"),
    (12, "versions/3.12.1/bin/python3.12"),
    (13, "versions/3.13.0/bin/python3.13"),
]

# The modules, with a rough weight (seconds traced on 2 cores) to start the
# long ones first.
MODULES = [
    ("test_threading", 80),
    ("test_asyncio.test_tasks", 60),
    ("test_sys", 15),
    ("test_json", 12),
    ("test_tracemalloc", 12),
    ("test_gc", 8),
    ("test_weakref", 8),
    ("test_set", 8),
    ("test_re", 3),
    ("test_dict", 2),
    ("test_list", 2),
    ("test_generators", 1),
]

# Tests left out of the comparison, because their outcome changes between
# two bare runs: (test id, minor versions or None for all, why, evidence).
# Empty: no test of MODULES changed outcome between bare runs so far.
EXCLUDED = [
]

JOB_TIMEOUT = 900  # seconds for one module's run (bare or traced)


def find_python(minor, path):
    path = os.path.join(PYENV_ROOT, path)
    if os.access(path, os.X_OK):
        return path
    cands = sorted(glob.glob(os.path.join(PYENV_ROOT, f"versions/3.{minor}.*/bin/python3.{minor}")),
                   key=lambda p: [int(x) for x in p.split("/")[-3].split(".") if x.isdigit()])
    return cands[-1] if cands else None


def check_python(path, modules):
    """None when `path -m test` can run every module, else why not."""
    code = ("import importlib.util, sys, test.libregrtest, test.support\n"
            "for m in sys.argv[1:]:\n"
            "    if importlib.util.find_spec('test.' + m) is None:\n"
            "        sys.exit('test.' + m + ' is not installed')\n")
    r = subprocess.run([path, "-c", code] + modules,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        return "no test suite (" + (r.stdout.strip().splitlines() or ["?"])[-1] + ")"
    return None


def parse_junit(path):
    """{(test id, n): (outcome, detail)} from regrtest's JUnit XML; n counts
    repeated ids (doctests of one module may share a name)."""
    tests = {}
    seen = collections.Counter()
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        name = tc.get("name", "?")
        key = (name, seen[name])
        seen[name] += 1
        outcome, detail = "ok", ""
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                detail = ((child.get("message") or "") + "\n" + (child.text or "")).strip()
                break
        if outcome == "ok" and tc.get("status", "run") != "run":
            outcome = tc.get("status")
        if outcome == "ok" and tc.get("result", "completed") != "completed":
            outcome = tc.get("result")
        tests[key] = (outcome, detail)
    return tests


def regrtest_result(logtext):
    """regrtest's last result line ("Result: FAILURE", or "Tests result:
    SUCCESS" in some 3.11 builds): "SUCCESS", "FAILURE", ..."""
    result = "?"
    for line in logtext.splitlines():
        m = re.match(r"(?:== )?(?:Tests )?[Rr]esult: ([A-Z][A-Z ,_]*[A-Z])", line)
        if m:
            result = m.group(1)
    return result


class Job:
    def __init__(self, minor, python, module, index, weight, traced, root):
        self.minor, self.python, self.module = minor, python, module
        self.traced = traced
        self.weight = weight * (3 if traced else 1)
        mode = "traced" if traced else "bare"
        # Short paths of equal length in both runs (AF_UNIX socket paths
        # under TMPDIR are limited to 107 bytes).
        base = os.path.join(root, f"3{minor}", f"{index:02}")
        self.dir = os.path.join(base, "t" if traced else "b")
        self.snapdir = os.path.join(base, "snaps")
        self.name = f"python3.{minor} {mode:6} {module}"
        self.status = None
        self.timed_out = False
        self.tests = None           # parse_junit's dict, None without XML
        self.xml_error = ""
        self.log = ""
        self.result = "?"
        self.seconds = 0.0
        self.snapshots = 0
        self.bad_snapshots = []

    def run(self, memtrail):
        os.makedirs(os.path.join(self.dir, "tmp"))
        xml = os.path.join(self.dir, "junit.xml")
        logpath = os.path.join(self.dir, "log.txt")
        argv = [self.python, "-m", "test", "--junit-xml", xml, self.module]
        if self.traced:
            argv = rwlib.traced_argv(memtrail, self.snapdir, argv)
        env = dict(os.environ)
        # Both runs get the same kind of scratch directory, inside the job's.
        env["TMPDIR"] = os.path.join(self.dir, "tmp")
        for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD"):
            env.pop(var, None)
        t0 = time.monotonic()
        with open(logpath, "wb") as out:
            self.status, self.timed_out = rwlib.run(argv, self.dir, env, JOB_TIMEOUT,
                                                    stdout=out, stderr=subprocess.STDOUT)
        self.seconds = rwlib.elapsed(t0)
        with open(logpath, "rb") as f:
            self.log = f.read().decode("utf-8", "replace")
        self.result = regrtest_result(self.log)
        try:
            self.tests = parse_junit(xml)
        except (OSError, ET.ParseError) as e:
            self.xml_error = str(e)
        if self.traced:
            self.snapshots, self.bad_snapshots = rwlib.read_back(memtrail, self.snapdir)
            subprocess.run(["rm", "-rf", self.snapdir])
        subprocess.run(["rm", "-rf", os.path.join(self.dir, "tmp")])
        return self


def outcome_counts(tests):
    c = collections.Counter(o for o, _ in tests.values())
    return ", ".join(f"{n} {o}" for o, n in sorted(c.items()))


def excluded(test_id, minor):
    for tid, minors, _why, _evidence in EXCLUDED:
        if tid == test_id and (minors is None or minor in minors):
            return True
    return False


def compare(bare, traced):
    """Lines describing every difference between the two runs of one module;
    (number of tests compared, lines)."""
    lines = []
    v = f"python3.{bare.minor}"
    for job in (bare, traced):
        if job.tests is None:
            what = "timed out" if job.timed_out else f"exit status {job.status}"
            lines.append(f"DIFF {v} {job.module}: the {'traced' if job.traced else 'bare'} run "
                         f"wrote no JUnit XML ({what}; {job.xml_error}); its output ends:")
            lines += ["       " + l for l in rwlib.excerpt(job.log, 12)]
    if bare.tests is None or traced.tests is None:
        return 0, lines
    if not bare.tests:
        lines.append(f"DIFF {v} {bare.module}: the bare run ran no test (exit status "
                     f"{bare.status}, {bare.result}); its output ends:")
        lines += ["       " + l for l in rwlib.excerpt(bare.log, 12)]
    keys = list(bare.tests) + [k for k in traced.tests if k not in bare.tests]
    compared = 0
    ndiff = 0
    for key in keys:
        name = key[0] + (f" (#{key[1] + 1})" if key[1] else "")
        if excluded(key[0], bare.minor):
            continue
        compared += 1
        b = bare.tests.get(key, ("missing", ""))
        t = traced.tests.get(key, ("missing", ""))
        if b[0] == t[0]:
            continue
        ndiff += 1
        lines.append(f"DIFF {v} {name}: bare {b[0]}, traced {t[0]}")
        for label, (o, detail) in (("bare", b), ("traced", t)):
            if o in ("failure", "error") and detail:
                lines.append(f"       {label}:")
                lines += ["         " + l for l in rwlib.excerpt(detail, 6)]
    if ndiff == 0 and (bare.status, bare.result) != (traced.status, traced.result):
        lines.append(f"DIFF {v} {bare.module}: no test differs, but the bare run ended with "
                     f"exit status {bare.status} ({bare.result}) and the traced one with "
                     f"{traced.status} ({traced.result}); the traced output ends:")
        lines += ["       " + l for l in rwlib.excerpt(traced.log, 12)]
    if traced.snapshots == 0:
        lines.append(f"SNAP {v} {traced.module}: the traced run wrote no snapshot")
    for f, status, msg in traced.bad_snapshots:
        lines.append(f"SNAP {v} {traced.module}: {f} does not read back "
                     f"(memtrail report: status {status}: {msg})")
    return compared, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MT_REALWORLD_JOBS", "2")))
    ap.add_argument("--python", action="append", help="an interpreter (default: PYTHONS)")
    ap.add_argument("--module", action="append", help="a test module (default: MODULES)")
    args = ap.parse_args()
    memtrail = rwlib.memtrail_exe()

    pythons = []
    if args.python:
        for p in args.python:
            if not os.access(p, os.X_OK):
                log(f"{p}: not found: skipped")
                continue
            r = subprocess.run([p, "-c", "import sys; print(sys.version_info[1])"],
                               stdout=subprocess.PIPE, text=True)
            pythons.append((int(r.stdout.strip() or 0), p))
    else:
        for minor, path in PYTHONS:
            found = find_python(minor, path)
            if found is None:
                log(f"python3.{minor}: not found ({os.path.join(PYENV_ROOT, path)}): skipped")
                continue
            pythons.append((minor, found))
    modules = [(m, w) for m, w in MODULES if not args.module or m in args.module]
    if args.module:
        modules += [(m, 1) for m in args.module if m not in dict(MODULES)]
    usable = []
    for minor, path in pythons:
        why = check_python(path, [m for m, _ in modules])
        if why:
            log(f"python3.{minor}: {path}: {why}: skipped")
        else:
            usable.append((minor, path))
    if not usable:
        log("realworld_cpython: no interpreter to run: skipped")
        return rwlib.SKIP

    t0 = time.monotonic()
    with rwlib.Scratch("mt-realworld-cpython.") as root:
        pairs = []
        jobs = []
        for minor, path in usable:
            log(f"python3.{minor}: {path}")
            for index, (module, weight) in enumerate(modules):
                bare = Job(minor, path, module, index, weight, False, root)
                traced = Job(minor, path, module, index, weight, True, root)
                pairs.append((bare, traced))
                jobs += [bare, traced]
        order = sorted(jobs, key=lambda j: (-j.weight, -j.minor))
        done = [0]
        lock = threading.Lock()

        def one(job):
            if rwlib.stopping.is_set():
                return job
            job.run(memtrail)
            with lock:
                done[0] += 1
                snaps = f", {job.snapshots} snapshots read back" if job.traced else ""
                log(f"[{done[0]:3}/{len(order)}] {job.name}: {job.seconds:6.1f} s, "
                    f"exit {job.status}, {job.result}{snaps}")
            return job

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for f in [pool.submit(one, j) for j in order]:
                f.result()

        failed = False
        log("")
        for minor, _path in usable:
            total = 0
            ndiff = 0
            counts = collections.Counter()
            nsnap = 0
            out = []
            for bare, traced in pairs:
                if bare.minor != minor:
                    continue
                n, lines = compare(bare, traced)
                total += n
                ndiff += sum(1 for l in lines if l.startswith(("DIFF", "SNAP")))
                out += lines
                nsnap += traced.snapshots
                for job in (bare, traced):
                    for o, _ in (job.tests or {}).values():
                        counts[("bare" if job is bare else "traced", o)] += 1
            summary = lambda mode: ", ".join(f"{n} {o}" for (m, o), n in sorted(counts.items()) if m == mode)
            log(f"python3.{minor}: {total} tests compared in {len(modules)} modules "
                f"(bare: {summary('bare')}; traced: {summary('traced')}); "
                f"{nsnap} snapshots read back; {ndiff} differences")
            for l in out:
                log("  " + l)
            failed = failed or ndiff > 0
        for tid, minors, why, evidence in EXCLUDED:
            log(f"excluded: {tid} ({'all' if minors is None else minors}): {why} [{evidence}]")
        log(f"realworld_cpython: {rwlib.elapsed(t0):.0f} s with {args.jobs} jobs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
