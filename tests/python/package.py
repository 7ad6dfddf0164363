#!/usr/bin/env python3
"""python_package: the `memtrail` Python package (python/memtrail/) from the
build tree, on every interpreter of tests/python/pythons.h (missing ones
are skipped, and said so).

Per interpreter:
- untraced: `import memtrail` works; is_tracing() is False, snapshot()
  returns None, snapshot(strict=True) raises NotTracedError, output_dir() is
  None; importing the package loaded neither ctypes nor the reader.
- traced (`memtrail run -- PY pkgprog.py`, the package on PYTHONPATH): the
  package, not the tracer's fallback module, answers `import memtrail`;
  is_tracing() is True, output_dir() is the -o directory, snapshot("one")
  returns the path of the api snapshot that appears there.
- traced without the package on the path: `import memtrail` still gives
  the tracer's own module (snapshot, is_tracing, output_dir).
- load() of those snapshots: statistics("lineno") equals the entries of
  `memtrail report --group-by line --top 0 --format json`, the traces sum to
  the report's live figures; on py38, py313 and py311deb (FULL) also:
  statistics() for every key type equals the
  entries of `memtrail report --group-by KEY --top 0 --format json`,
  compare_to() those of `memtrail diff`, filter_traces() with a
  tracemalloc.Filter, a tracemalloc.DomainFilter and memtrail's own filters
  those of `memtrail report --include/--exclude/--domain`, leaks() and
  cycles() equal `memtrail leaks/cycles --format json`; the traces sum to the
  report's live figures, filtered and not; pkgprog.py's 100 blocks of
  100,001 bytes are 100 traces at their line.
- the traces of a closed snapshot raise ValueError (their blocks are gone);
  a truncated and a damaged copy of a snapshot raise SnapshotError in the
  interpreter (a child process: a crash would show as a signal), a missing
  file FileNotFoundError.
- tracemalloc: tests/python/tmcompare.py's 20 largest lines by
  tracemalloc's own statistics("lineno") (an untraced run) are within 2%
  of Snapshot.statistics("lineno") of a traced run (Python's domains).

Scratch files under BUILD/tests/python-package. About 1 to 2 s per
interpreter.
"""

import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The interpreters on which every figure is compared (the oldest, the
# newest, Debian's with libpython linked in); the others compare the line
# statistics and the traces' totals (the reader is the same C code: what
# differs per interpreter is the snapshot and the Python running the package).
FULL = ("py38", "py313", "py311deb")
failures = []


def env_path(name):
    v = os.environ.get(name)
    if not v:
        print("%s is not set: run through meson test" % name)
        sys.exit(77)
    return v


MEMTRAIL = env_path("MEMTRAIL_EXE")
PKG = env_path("MEMTRAIL_PYTHONPATH")
BUILD = env_path("MEMTRAIL_BUILD_ROOT")
WORK = os.path.join(BUILD, "tests", "python-package")


def pythons():
    """(tag, path) of tests/python/pythons.h: the one list of interpreters."""
    text = open(os.path.join(HERE, "pythons.h")).read()
    return re.findall(r'\{"(\w+)", "(/[^"]+)", \d+[^}]*\}', text)


def run(argv, env=None, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMTRAIL_") and k not in ("PYTHONPATH", "LD_PRELOAD")}
    env["MEMTRAIL_SYMCACHE"] = os.environ.get("MEMTRAIL_SYMCACHE", "off")
    env.update(extra)
    return env


def cli_json(*args):
    return json.loads(run([MEMTRAIL] + list(args) + ["--format", "json"],
                          env=clean_env()).stdout)


UNTRACED = r"""
import sys
import memtrail
assert memtrail.__file__.startswith(sys.argv[1]), memtrail.__file__
assert memtrail.is_tracing() is False
assert memtrail.snapshot("x") is None
assert memtrail.output_dir() is None
try:
    memtrail.snapshot("x", strict=True)
except memtrail.NotTracedError:
    pass
else:
    raise AssertionError("snapshot(strict=True) did not raise")
assert "ctypes" not in sys.modules, "import memtrail loaded ctypes"
print("untraced ok")
"""

FALLBACK = r"""
import memtrail, sys
assert memtrail is sys.modules["_memtrail"], memtrail
assert memtrail.is_tracing() is True
assert memtrail.output_dir() == sys.argv[1], memtrail.output_dir()
print("SNAP", memtrail.snapshot("fallback"))
"""

# Run by the interpreter under test: the Python side of the comparison. It
# prints one JSON object, the test compares it with the CLI's outputs.
LOADER = r"""
import json, sys, tracemalloc
import memtrail
api, exit_, expected_line, full = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
old, new = memtrail.load(api), memtrail.load(exit_)
out = {}
def stats(snap, key):
    return [[s.key, s.size, s.count, s.peak_size, s.alloc_size, s.stacks,
             [[f.filename, f.lineno, f.function, f.module] for f in s.traceback]]
            for s in snap.statistics(key)]
out["stats_lineno"] = stats(new, "lineno")
if not full:
    out["traces"] = [new.size, new.count, sum(t.size for t in new.traces), len(new.traces)]
    print(json.dumps(out))
    sys.exit(0)
for key in ("filename", "traceback", "function", "module"):
    out["stats_" + key] = stats(new, key)
out["diff"] = [[d.key, d.size, d.size_diff, d.count, d.count_diff, d.status]
               for d in new.compare_to(old, "lineno")]
filters = {
    "tm_file": [tracemalloc.Filter(True, "*pkgprog.py")],
    "tm_domain": [tracemalloc.DomainFilter(False, 0)],
    "mt": [memtrail.Filter(False, "*importlib*", "file"), memtrail.DomainFilter(True, "python")],
}
for name, fl in filters.items():
    f = new.filter_traces(fl)
    out["filter_" + name] = [stats(f, "lineno"), f.size, f.count,
                             sum(t.size for t in f.traces), len(f.traces)]
out["traces"] = [new.size, new.count, sum(t.size for t in new.traces), len(new.traces)]
out["line_traces"] = sum(1 for t in new.traces
                         if t.size == 100001 and t.traceback[0].lineno == expected_line
                         and t.traceback[0].filename.endswith("pkgprog.py"))
out["leaks"] = new.leaks("all")
out["cycles"] = new.cycles()
out["peak"] = list(new.peak[:3])
out["timeline"] = len(new.timeline or [])
out["cum"] = [[str(s.traceback), s.size] for s in new.statistics("lineno", cumulative=True)[:3]]
traces = new.traces
new.close()
try:
    traces[0]
    out["closed"] = "read a trace after close()"
except ValueError as e:
    out["closed"] = str(e)
print(json.dumps(out))
"""

CORRUPT = r"""
import sys, memtrail
for path in sys.argv[1:]:
    try:
        memtrail.load(path)
    except memtrail.SnapshotError as e:
        print("SnapshotError", path, e)
    except FileNotFoundError as e:
        print("FileNotFoundError", path, e)
    else:
        print("LOADED", path)
"""


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def entries(j):
    return [[e["key"], e["bytes"], e["blocks"], e["peak_bytes"], e["alloc_bytes"], e["stacks"],
             [[f["file"], f["line"], f["function"], f["module"]] for f in e["frames"]]]
            for e in j["entries"]]


def prog_line():
    for n, line in enumerate(open(os.path.join(HERE, "pkgprog.py")), 1):
        if "# THE LINE" in line:
            return n
    raise AssertionError("pkgprog.py has no '# THE LINE'")


TM_LINES = r"""
import json, sys, tracemalloc, memtrail
snap = memtrail.load(sys.argv[1]).filter_traces([tracemalloc.Filter(True, sys.argv[2]),
                                                 tracemalloc.DomainFilter(True, 0)])
print(json.dumps([[s.traceback[0].filename, s.traceback[0].lineno, s.size, s.count]
                  for s in snap.statistics("lineno")]))
"""


def tracemalloc_parity(tag, py, work):
    """tests/python/tmcompare.py: tracemalloc's statistics("lineno") of an
    untraced run against Snapshot.statistics("lineno") of a traced one
    (Python's domains, the script's lines): the top 20 lines within 2%."""
    prog = os.path.join(HERE, "tmcompare.py")
    tm = json.loads(run([py, prog, "tracemalloc"], env=clean_env(PYTHONPATH=PKG)).stdout)
    traced = json.loads(run([MEMTRAIL, "run", "-o", os.path.join(work, "tm"), "--", py, prog,
                             "memtrail"], env=clean_env(PYTHONPATH=PKG)).stdout)
    mine = json.loads(run([py, "-c", TM_LINES, traced["snapshot"], tm["file"]],
                          env=clean_env(PYTHONPATH=PKG)).stdout)
    got = {(f, l): size for f, l, size, count in mine}
    top = tm["tracemalloc"][:20]
    check(len(top) == 20, "tracemalloc gave %d lines, not 20" % len(top))
    worst = 0.0
    for f, l, size, count in top:
        off = abs(got.get((f, l), 0) - size) / float(size)
        worst = max(worst, off)
        check(off <= 0.02, "%s:%d: memtrail %d B, tracemalloc %d B (%.2f%%)"
              % (f, l, got.get((f, l), 0), size, 100 * off))
    return worst


def one(tag, py, full):
    work = os.path.join(WORK, tag)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # untraced
    out = run([py, "-c", UNTRACED, PKG], env=clean_env(PYTHONPATH=PKG)).stdout
    check("untraced ok" in out, out)
    # traced, the package from the build tree
    snaps = os.path.join(work, "snaps")
    p = run([MEMTRAIL, "run", "-o", snaps, "--", py, os.path.join(HERE, "pkgprog.py"), PKG],
            env=clean_env(PYTHONPATH=PKG))
    check("PKG traced ok" in p.stdout, p.stdout + p.stderr)
    api = [l.split(" ", 1)[1] for l in p.stdout.splitlines() if l.startswith("SNAP ")]
    check(len(api) == 1 and os.path.isfile(api[0]) and
          os.path.dirname(api[0]) == os.path.realpath(snaps), "api snapshot: %r" % api)
    exits = [os.path.join(snaps, f) for f in os.listdir(snaps) if f.endswith(".exit.mtsnap")]
    check(len(exits) == 1, "exit snapshots: %r" % exits)
    # traced, no package on the path: the tracer's module answers
    fb = os.path.join(work, "fallback")
    p = run([MEMTRAIL, "run", "-o", fb, "--", py, "-c", FALLBACK, os.path.realpath(fb)],
            env=clean_env())
    check("SNAP " + os.path.realpath(fb) in p.stdout, p.stdout + p.stderr)

    # load() against the CLI
    got = json.loads(run([py, "-c", LOADER, api[0], exits[0], str(prog_line()),
                          "1" if full else "0"], env=clean_env(PYTHONPATH=PKG)).stdout)
    new = exits[0]
    size, count, trace_bytes, ntraces = got["traces"]
    j = cli_json("report", new, "--top", "1")
    check((size, count) == (j["total_bytes"], j["total_blocks"]) == (trace_bytes, ntraces),
          "traces %r vs report %r" % (got["traces"], (j["total_bytes"], j["total_blocks"])))
    keys = (("lineno", "line"), ("filename", "file"), ("traceback", "stack"),
            ("function", "function"), ("module", "module"))
    for key, group in keys if full else keys[:1]:
        want = entries(cli_json("report", new, "--group-by", group, "--top", "0"))
        check(want, "report --group-by %s: no entries" % group)
        if key == "filename":   # tracemalloc's filename statistics have lineno 0
            for w in want:
                for f in w[6]:
                    f[1] = 0
        check(got["stats_" + key] == want, "statistics(%r) differs from report --group-by %s"
              % (key, group))
    if full:
        compare_all(got, api[0], new)
    damaged(py, work, new)
    worst = tracemalloc_parity(tag, py, work)
    print("%s: untraced, traced, fallback, load == CLI (%d line stats%s), damaged files, "
          "tracemalloc's top 20 lines within %.2f%%"
          % (tag, len(got["stats_lineno"]), "; all key types, diff, filters, traces, leaks, "
             "cycles" if full else "", 100 * worst))


def compare_all(got, api, new):
    d = cli_json("diff", api, new, "--group-by", "line", "--top", "0")
    want = [[e["key"], e["bytes"], e["bytes_diff"], e["blocks"], e["blocks_diff"], e["status"]]
            for e in d["entries"]]
    check(got["diff"] == want and want, "compare_to differs from diff")
    for name, args in (("tm_file", ["--include", "file:*pkgprog.py"]),
                       ("tm_domain", ["--exclude-domain", "python"]),
                       ("mt", ["--exclude", "file:*importlib*", "--domain", "python"])):
        j = cli_json("report", new, "--group-by", "line", "--top", "0", *args)
        stats, size, count, trace_bytes, ntraces = got["filter_" + name]
        check(stats == entries(j), "filter %s: statistics differ from report %s" % (name, args))
        check((size, count) == (j["selected_bytes"], j["selected_blocks"]),
              "filter %s: %r != report's %r" % (name, (size, count),
                                                (j["selected_bytes"], j["selected_blocks"])))
        check((trace_bytes, ntraces) == (size, count),
              "filter %s: traces sum to %r, not %r" % (name, (trace_bytes, ntraces),
                                                       (size, count)))
    j = cli_json("report", new, "--top", "1")
    check(got["peak"] == [j["peak_bytes"], j["peak_blocks"], j["peak_time_ns"]],
          "peak %r" % got["peak"])
    check(got["line_traces"] == 100, "%d traces of 100,001 B at pkgprog.py:%d, not 100"
          % (got["line_traces"], prog_line()))
    check(got["leaks"] == cli_json("leaks", new, "--kind", "all"), "leaks() differs")
    check(got["cycles"] == cli_json("cycles", new), "cycles() differs")
    check(got["cycles"]["summary"]["garbage_cycles"] >= 1, "pkgprog.py's garbage cycle missing")
    check(got["timeline"] > 0, "no timeline")
    check(got["closed"].endswith("is closed"), "traces after close(): %s" % got["closed"])



def damaged(py, work, new):
    data = open(new, "rb").read()
    trunc, flip = os.path.join(work, "trunc.mtsnap"), os.path.join(work, "flip.mtsnap")
    open(trunc, "wb").write(data[:len(data) // 2])
    damaged = bytearray(data)
    damaged[len(data) // 3] ^= 0xff
    open(flip, "wb").write(bytes(damaged))
    p = run([py, "-c", CORRUPT, trunc, flip, os.path.join(work, "missing.mtsnap")],
            env=clean_env(PYTHONPATH=PKG), check=False)
    check(p.returncode == 0, "loading damaged files: exit %d\n%s" % (p.returncode, p.stderr))
    lines = p.stdout.splitlines()
    check(len(lines) == 3 and lines[0].startswith("SnapshotError " + trunc) and
          lines[1].startswith("SnapshotError " + flip) and
          lines[2].startswith("FileNotFoundError"), p.stdout)


def main():
    ran = 0
    for tag, py in pythons():
        if not os.access(py, os.X_OK):
            print("%s: %s not found, skipped" % (tag, py))
            continue
        try:
            one(tag, py, tag in FULL)
            ran += 1
        except AssertionError as e:
            failures.append(tag)
            print("FAIL %s: %s" % (tag, e))
    if failures:
        print("failed on: " + ", ".join(failures))
        return 1
    if not ran:
        print("no interpreter of tests/python/pythons.h is installed")
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
