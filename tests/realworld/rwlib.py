"""Helpers shared by the real-world transparency tests (cpython.py, tools.py).

Both run real programs bare and under `memtrail run`, compare what the
programs can tell, and read every snapshot written back with `memtrail
report`. Only the standard library is used: the drivers run on whatever
python3 meson found, untraced.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77


def log(msg):
    print(msg, flush=True)


def memtrail_exe():
    """The memtrail program: $MEMTRAIL_EXE (meson's test_env), else the
    build tree next to this checkout (by hand: MEMTRAIL_EXE=build/analyzer/memtrail)."""
    exe = os.environ.get("MEMTRAIL_EXE")
    if not exe:
        here = os.path.dirname(os.path.abspath(__file__))
        exe = os.path.join(here, "..", "..", "build", "analyzer", "memtrail")
    exe = os.path.abspath(exe)
    if not os.access(exe, os.X_OK):
        log(f"memtrail not found at {exe} (set MEMTRAIL_EXE)")
        sys.exit(2)
    return exe


def traced_argv(memtrail, snapdir, argv):
    """`memtrail run -o SNAPDIR -- ARGV` with the defaults (no interval,
    exit snapshots with their leak scan): what a user would type."""
    return [memtrail, "run", "-o", snapdir, "--"] + list(argv)


def strip_run_summary(err, snapdir):
    """stderr of `memtrail run` without the listing it writes after the
    program ended (tests/integration/harness.c: mt_strip_run_summary): the
    heading "memtrail: N snapshot[s] in DIR:" or "memtrail: no snapshots in
    DIR", one DIR/memtrail.*.mtsnap line per file, and the "memtrail:
    memtrail.*.mtsnap took ..." slow-step lines.
    Anything else memtrail writes (a warning) stays and is a difference."""
    prefix = snapdir.rstrip("/") + "/memtrail."
    heading = re.compile(r"memtrail: (no snapshots|1 snapshot|[0-9]+ snapshots) in " +
                         re.escape(snapdir) + r"(:?)")
    keep = []
    for line in err.splitlines(keepends=True):
        text = line.rstrip("\n")
        m = heading.fullmatch(text)
        if m and (m.group(2) == ":") == (m.group(1) != "no snapshots"):
            continue
        if text.startswith(prefix) and text.endswith(".mtsnap"):
            continue
        if re.match(r"memtrail: memtrail\.\S+\.mtsnap took ", text):
            continue
        keep.append(line)
    return "".join(keep)


def snapshots(snapdir):
    if not os.path.isdir(snapdir):
        return []
    return sorted(os.path.join(snapdir, f) for f in os.listdir(snapdir)
                  if f.endswith(".mtsnap"))


def read_back(memtrail, snapdir):
    """`memtrail report F --top 1` on every snapshot of snapdir. Returns
    (count, [(file, status, first stderr line)] of those that failed);
    temporary files (a snapshot being written) count as failures too."""
    bad = []
    files = snapshots(snapdir)
    for f in files:
        if stopping.is_set():
            break
        r = subprocess.run([memtrail, "report", f, "--top", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, errors="replace")
        if r.returncode != 0:
            first = (r.stderr.strip().splitlines() or [""])[0]
            bad.append((os.path.basename(f), r.returncode, first))
    if os.path.isdir(snapdir):
        for f in sorted(os.listdir(snapdir)):
            if not f.endswith(".mtsnap"):
                bad.append((f, None, "left in the snapshot directory"))
    return len(files), bad


# The commands running now (each in a session of its own, so that a
# timeout kills all it started), killed when the driver is terminated.
_children = set()
_children_lock = threading.Lock()
stopping = threading.Event()


def kill_all():
    """Stop: no new command starts, the running ones are killed."""
    stopping.set()
    with _children_lock:
        for p in list(_children):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run(argv, cwd, env, timeout, stdout=None, stderr=None, input=None):
    """Run argv in its own process group (stdin: the bytes `input`, or
    /dev/null); on timeout kill the group. Returns (exit status or -signal,
    timed out?)."""
    if stopping.is_set():
        return -signal.SIGTERM, False
    p = subprocess.Popen(argv, cwd=cwd, env=env,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=stdout, stderr=stderr, start_new_session=True)
    with _children_lock:
        _children.add(p)
    if stopping.is_set():
        kill_all()
    timed_out = False
    try:
        p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        if timed_out or p.returncode is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        with _children_lock:
            _children.discard(p)
    return p.returncode, timed_out


class Scratch:
    """A temporary directory removed at exit (and on SIGTERM from meson's
    timeout), unless MT_REALWORLD_KEEP=1."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.keep = os.environ.get("MT_REALWORLD_KEEP") == "1"

    def __enter__(self):
        def term(signum, frame):
            kill_all()
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, term)
        signal.signal(signal.SIGINT, term)
        return self.path

    def __exit__(self, *exc):
        if self.keep:
            log(f"kept {self.path} (MT_REALWORLD_KEEP=1)")
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def excerpt(text, lines=8, width=200):
    """The last `lines` non-empty lines of text, each cut to `width`."""
    rows = [l for l in text.splitlines() if l.strip()][-lines:]
    return [l if len(l) <= width else l[:width] + "..." for l in rows]


def elapsed(t0):
    return time.monotonic() - t0
