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
    "memtrail: N snapshots in DIR:" line, one DIR/memtrail.*.mtsnap line per
    file, and the "memtrail: memtrail.*.mtsnap took ..." slow-step lines.
    Anything else memtrail writes (a warning) stays and is a difference."""
    prefix = snapdir.rstrip("/") + "/memtrail."
    keep = []
    for line in err.splitlines(keepends=True):
        text = line.rstrip("\n")
        if text.startswith("memtrail: ") and snapdir in text and (
                " snapshots in " in text or " snapshot in " in text):
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


def run(argv, cwd, env, timeout, stdout=None, stderr=None, stdin=subprocess.DEVNULL):
    """Run argv in its own process group; on timeout kill the group.
    Returns (exit status or -signal, timed out?)."""
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout,
                         stderr=stderr, start_new_session=True)
    try:
        return p.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        return p.returncode, True
    except BaseException:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise


class Scratch:
    """A temporary directory removed at exit (and on SIGTERM from meson's
    timeout), unless MT_REALWORLD_KEEP=1."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.keep = os.environ.get("MT_REALWORLD_KEEP") == "1"

    def __enter__(self):
        def term(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, term)
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
