#!/usr/bin/env python3
"""Runs a command bare and under each given tracer library, interleaved.

usage: abrun.py [-r ROUNDS] [-n RUNS] [-L LIB]... [-R MEMTRAIL]... [--keep-stderr] -- CMD [ARGS...]

Each round runs CMD RUNS times bare, then RUNS times with each LIB preloaded
(LD_PRELOAD=LIB, MEMTRAIL_OUTPUT a fresh directory emptied after each run),
then RUNS times through each MEMTRAIL program (`MEMTRAIL run -o DIR -- CMD`,
DIR the same directory; two builds' programs compare with the same tracer
when MEMTRAIL_LIB names it), in that order; each run is a spawn of CMD (stdout, and stderr
unless --keep-stderr, to /dev/null; posix_spawn) reaped with wait4. Prints, per
configuration, the median over rounds of each round's median wall time,
CPU time (user + system of CMD and what it reaped) and minor page faults,
and the wall and CPU time added over bare. Interleaving the configurations
keeps a machine whose speed drifts from favouring one of them
(docs/performance.md uses it to compare two builds' libraries).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def run_once(cmd, env, keep_stderr):
    acts = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    if not keep_stderr:
        acts.append((os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0))
    t0 = time.monotonic()
    pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=acts)   # vfork-like: no copy of us
    _, status, ru = os.wait4(pid, 0)
    wall = (time.monotonic() - t0) * 1e3
    if not os.WIFEXITED(status):
        sys.exit("abrun: %s ended by signal %d" % (cmd[0], os.WTERMSIG(status)))
    return wall, (ru.ru_utime + ru.ru_stime) * 1e3, ru.ru_minflt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-r", "--rounds", type=int, default=10)
    ap.add_argument("-n", "--runs", type=int, default=10, help="runs of each configuration a round")
    ap.add_argument("-L", "--lib", action="append", default=[], help="a tracer library (repeatable)")
    ap.add_argument("-R", "--run", action="append", default=[],
                    help="a memtrail program: CMD through `memtrail run` (repeatable)")
    ap.add_argument("--keep-stderr", action="store_true")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd or a.rounds < 1 or a.runs < 1:
        ap.error("a command, and at least one round and one run")
    for lib in a.lib + a.run:
        if not os.path.isfile(lib):
            ap.error("no such file: %s" % lib)
    out = tempfile.mkdtemp(prefix="abrun.")
    configs = [("bare", cmd, dict(os.environ))]
    for lib in a.lib:
        env = dict(os.environ, LD_PRELOAD=os.path.abspath(lib), MEMTRAIL_OUTPUT=out)
        configs.append((lib, cmd, env))
    for prog in a.run:
        configs.append((prog + " run", [os.path.abspath(prog), "run", "-o", out, "--"] + cmd,
                        dict(os.environ)))
    rounds = {name: [] for name, _, _ in configs}
    try:
        for _ in range(a.rounds):
            for name, argv, env in configs:
                runs = []
                for _ in range(a.runs):
                    runs.append(run_once(argv, env, a.keep_stderr))
                    for f in os.listdir(out):
                        os.unlink(os.path.join(out, f))
                rounds[name].append([statistics.median(r[i] for r in runs) for i in range(3)])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    med = {n: [statistics.median(r[i] for r in v) for i in range(3)] for n, v in rounds.items()}
    print("%d rounds of %d runs: %s" % (a.rounds, a.runs, " ".join(cmd)))
    print("%-40s %10s %10s %10s %10s %10s" % ("configuration", "wall_ms", "+wall_ms", "cpu_ms",
                                              "+cpu_ms", "faults"))
    bw, bc, _ = med["bare"]
    for name, _, _ in configs:
        w, c, f = med[name]
        print("%-40s %10.2f %10s %10.2f %10s %10.0f" % (
            name[-40:], w, "-" if name == "bare" else "%+.2f" % (w - bw), c,
            "-" if name == "bare" else "%+.2f" % (c - bc), f))


if __name__ == "__main__":
    main()
