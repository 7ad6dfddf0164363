#!/usr/bin/env python3
"""Runs a command bare and under each given tracer library, interleaved.

usage: abrun.py [-r ROUNDS] [-n RUNS] [-L LIB]... [-E K=V[,K=V...]]... [-R MEMTRAIL]...
                [--control] [--rotate] [--keep-files] [--keep-stderr] -- CMD [ARGS...]

Each round runs CMD RUNS times bare, then RUNS times with each LIB preloaded
(LD_PRELOAD=LIB, MEMTRAIL_OUTPUT a fresh directory emptied after each run),
then RUNS times with the first LIB and each -E environment added to its
(one configuration per -E: MEMTRAIL_FOLLOW=0, MEMTRAIL_LEAK_CHECK=off...),
then RUNS times through each MEMTRAIL program (`MEMTRAIL run -o DIR -- CMD`,
DIR the same directory; two builds' programs compare with the same tracer
when MEMTRAIL_LIB names it), in that order; each run is a spawn of CMD (stdout, and stderr
unless --keep-stderr, to /dev/null; posix_spawn) reaped with wait4. Prints, per
configuration, the median over rounds of each round's median wall time,
CPU time (user + system of CMD and what it reaped) and minor page faults,
and the wall and CPU time added over bare. Interleaving the configurations
keeps a machine whose speed drifts from favouring one of them
(docs/performance.md uses it to compare two builds' libraries).
--control runs the first LIB a second time, as a configuration of its own
right after the others: the two are the same library, so the difference
between their medians is the noise the comparison cannot see through; it
is printed at the end (this machine has had slow spells of a minute that
put 200 ms between two copies over 15 rounds).
--rotate starts each round's traced configurations one further along
(bare always first): a configuration that runs second in every round can
lose to its place (2026-12-07: +601 against +472 ms and +604 against +452,
whichever library ran second, in both orders). With two or more
configurations besides bare, the output ends with each one's time against
the first's, paired within each round (the median of the rounds' ratios),
which a machine whose speed drifts from round to round moves less than it
moves their medians.
--keep-files moves each run's snapshots aside and deletes them only at the
end: on a journal-less ext4 a file deleted in the last minutes makes each
new file's inode search longer (docs/performance.md), which would count
against a command that writes many.
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
    ap.add_argument("-E", "--env", action="append", default=[],
                    help="K=V[,K=V...]: the first LIB with this environment added (repeatable)")
    ap.add_argument("--control", action="store_true",
                    help="the first LIB again as a last configuration: the noise floor")
    ap.add_argument("--rotate", action="store_true",
                    help="each round, start the traced configurations one further along")
    ap.add_argument("--keep-files", action="store_true",
                    help="move snapshots aside after each run, delete them at the end")
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
    if (a.env or a.control) and not a.lib:
        ap.error("-E and --control need a library (-L)")
    extra = []
    for spec in a.env:
        kv = [p.split("=", 1) for p in spec.split(",") if p]
        if not kv or any(len(p) != 2 or not p[0] for p in kv):
            ap.error("-E: K=V[,K=V...], not %r" % spec)
        extra.append((spec, dict(kv)))
    out = tempfile.mkdtemp(prefix="abrun.")
    def preloaded(lib, **more):
        return dict(os.environ, LD_PRELOAD=os.path.abspath(lib), MEMTRAIL_OUTPUT=out, **more)
    configs = [("bare", cmd, dict(os.environ))]
    for lib in a.lib:
        configs.append((lib, cmd, preloaded(lib)))
    for spec, kv in extra:
        configs.append((os.path.basename(a.lib[0]) + " " + spec, cmd, preloaded(a.lib[0], **kv)))
    if a.control:
        configs.append((a.lib[0] + " (control)", cmd, preloaded(a.lib[0])))
    for prog in a.run:
        configs.append((prog + " run", [os.path.abspath(prog), "run", "-o", out, "--"] + cmd,
                        dict(os.environ)))
    if len({name for name, _, _ in configs}) != len(configs):
        ap.error("two configurations with the same name")
    aside = tempfile.mkdtemp(prefix="abrun.kept.") if a.keep_files else None
    kept = 0
    rounds = {name: [] for name, _, _ in configs}
    try:
        for rnd in range(a.rounds):
            traced = configs[1:]
            if a.rotate and traced:
                k = rnd % len(traced)
                traced = traced[k:] + traced[:k]
            for name, argv, env in configs[:1] + traced:
                runs = []
                for _ in range(a.runs):
                    runs.append(run_once(argv, env, a.keep_stderr))
                    for f in os.listdir(out):
                        if aside:
                            kept += 1   # numbered: the same name again in a later run
                            os.rename(os.path.join(out, f), os.path.join(aside, "%d.%s" % (kept, f)))
                        else:
                            os.unlink(os.path.join(out, f))
                rounds[name].append([statistics.median(r[i] for r in runs) for i in range(3)])
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if aside:
            shutil.rmtree(aside, ignore_errors=True)
    med = {n: [statistics.median(r[i] for r in v) for i in range(3)] for n, v in rounds.items()}
    print("%d rounds of %d runs: %s" % (a.rounds, a.runs, " ".join(cmd)))
    wd = min(60, max(40, max(len(n) for n, _, _ in configs)))
    print("%-*s %10s %10s %10s %10s %10s" % (wd, "configuration", "wall_ms", "+wall_ms", "cpu_ms",
                                             "+cpu_ms", "faults"))
    bw, bc, _ = med["bare"]
    for name, _, _ in configs:
        w, c, f = med[name]
        print("%-*s %10.2f %10s %10.2f %10s %10.0f" % (
            wd, name[-wd:], w, "-" if name == "bare" else "%+.2f" % (w - bw), c,
            "-" if name == "bare" else "%+.2f" % (c - bc), f))
    if len(configs) > 2:
        ref = configs[1][0]
        print("paired with %s (median of the rounds' wall time ratios):" % ref[-wd:])
        for name, _, _ in configs[2:]:
            ratios = [r[0] / q[0] for r, q in zip(rounds[name], rounds[ref]) if q[0] > 0]
            print("  %-*s %8.4f" % (wd, name[-wd:], statistics.median(ratios)))
    if a.control:
        first, again = med[configs[1][0]][0], med[a.lib[0] + " (control)"][0]
        print("noise: the control differs from the first library by %+.2f ms (%.1f%% of its "
              "added time): differences smaller than that are not measured" %
              (again - first, 100.0 * abs(again - first) / max(first - bw, 1e-9)))


if __name__ == "__main__":
    main()
