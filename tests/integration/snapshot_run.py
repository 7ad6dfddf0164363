#!/usr/bin/env python3
"""traced_snapshot_run: `memtrail snapshot PID` given the pid of `memtrail
run` itself asks the program it runs (its child): the snapshot is that
program's (its pid in the file name and in the report, the label kept), and
the run is not disturbed (it ends with the program's status). Once the
program has ended (a zombie, or reaped by a stopped `memtrail run`), the
same request fails with exit status 2 and says so. A program still starting
(tests/programs/slowstart.c: memtrail's handler not installed yet) gets its
snapshot once the handler is there, and is not killed.
About 1 s."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    memtrail = os.environ.get("MEMTRAIL_EXE")
    if not memtrail:
        print("MEMTRAIL_EXE is not set: run through meson test")
        return 77
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
    env["MEMTRAIL_SYMCACHE"] = os.environ.get("MEMTRAIL_SYMCACHE", "off")
    if os.environ.get("MEMTRAIL_LIB"):
        env["MEMTRAIL_LIB"] = os.environ["MEMTRAIL_LIB"]
    with tempfile.TemporaryDirectory() as out:
        # The program: a traced sh that waits for its stdin to close.
        run = subprocess.Popen([memtrail, "run", "-o", out, "--", "sh", "-c", "read x; exit 3"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        child = None
        for _ in range(500):
            try:
                kids = open("/proc/%d/task/%d/children" % (run.pid, run.pid)).read().split()
            except OSError:
                kids = []
            if kids and "libmemtrail" in open("/proc/%s/maps" % kids[0]).read():
                child = int(kids[0])
                break
            time.sleep(0.01)
        if child is None:
            run.kill()
            fail("memtrail run's program did not start traced")
        p = subprocess.run([memtrail, "snapshot", str(run.pid), "--label", "forwarded"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=env)
        path = p.stdout.strip()
        if p.returncode != 0 or os.path.basename(path) != \
                "memtrail.%d.0001.signal.mtsnap" % child:
            fail("memtrail snapshot %d (memtrail run): exit %d, %r %r, expected the snapshot of "
                 "its program %d" % (run.pid, p.returncode, p.stdout, p.stderr, child))
        rep = json.loads(subprocess.run([memtrail, "report", path, "--format", "json"],
                                        stdout=subprocess.PIPE, env=env,
                                        check=True).stdout)["snapshot"]
        if rep["pid"] != child or rep["label"] != "forwarded":
            fail("the forwarded snapshot: pid %d label %r" % (rep["pid"], rep["label"]))
        first = run.pid
        _, err = run.communicate(b"\n", timeout=60)
        if run.returncode != 3:
            fail("memtrail run ended with %d, not the program's 3: %s" % (run.returncode, err))
        # memtrail run whose program has ended: a stopped run, resumed after the check
        run = subprocess.Popen([memtrail, "run", "-o", out, "--", "true"], env=env,
                               stderr=subprocess.PIPE)
        os.kill(run.pid, signal.SIGSTOP)
        for _ in range(500):   # until the program is a zombie, or reaped
            kids = open("/proc/%d/task/%d/children" % (run.pid, run.pid)).read().split()
            try:
                st = open("/proc/%s/stat" % kids[0]).read().rsplit(")", 1)[1].split()[0]
            except (IndexError, OSError):
                st = "gone"
            if st in ("Z", "gone"):
                break
            time.sleep(0.01)
        p = subprocess.run([memtrail, "snapshot", str(run.pid)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, env=env)
        os.kill(run.pid, signal.SIGCONT)
        run.communicate(timeout=60)
        if p.returncode != 2 or not ("has exited" in p.stderr or "has ended" in p.stderr):
            fail("memtrail snapshot of a run whose program ended: exit %d, %r"
                 % (p.returncode, p.stderr))
        print("memtrail snapshot %d (memtrail run) -> %s; its ended program: %s"
              % (first, os.path.basename(path), p.stderr.strip()))

        # A program still starting: libmemtrail.so is mapped, but a library's
        # constructor runs before memtrail's has installed the snapshot
        # signal's handler. The request waits for the handler; it never
        # kills the program with the signal's default action.
        prog = os.path.join(os.environ["MT_PROGRAMS_DIR"], "slowstart")
        run = subprocess.Popen([memtrail, "run", "-o", out, "--", prog], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        if run.stdout.readline() != b"ctor\n":
            run.kill()
            fail("slowstart did not start")
        p = subprocess.run([memtrail, "snapshot", str(run.pid), "--label", "early"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=env)
        rest, err = run.communicate(b"\n", timeout=60)
        if run.returncode != 0 or rest != b"main\n":
            fail("slowstart, asked for a snapshot while starting: exit %d, stdout %r, %s"
                 % (run.returncode, rest, err))
        if p.returncode != 0 or not p.stdout.strip().endswith(".0001.signal.mtsnap"):
            fail("memtrail snapshot of a starting program: exit %d, %r %r"
                 % (p.returncode, p.stdout, p.stderr))
        print("a starting program's snapshot: %s" % os.path.basename(p.stdout.strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
