#!/usr/bin/env python3
"""realworld_tools: sqlite3, git and ninja (with gcc), bare and under memtrail.

Each scenario is a fixed list of steps (one command each) run twice in the
same scratch directory, bare and with every step as `memtrail run -o
SNAPDIR -- CMD` (the defaults: exit snapshots with their leak scan, no
interval; the programs a step executes, git's and gcc's helpers, are traced
too). Every step must give the same stdout, stderr and exit status both
times, and every snapshot written must read back with `memtrail report`.

- sqlite3: a SQL script (20,000 rows from a recursive CTE, an index, group
  by, window functions, JSON, VACUUM, integrity_check), a reopened
  database, .dump, and scripts that fail (an error message and status 1).
- git: init, add, commit, a branch, commits on both sides, a merge, log
  --graph, gc, fsck, count-objects, blame, grep, a failing command. Author
  and committer names and dates are fixed per step, so hashes are the same
  in both runs.
- ninja: a generated C project of 24 files plus a header built with gcc
  -j2, the program run, a no-op build, a header touched (a partial
  rebuild), `ninja -t clean`, and a build that fails to compile.

What legitimately differs is normalised, and nothing else: the listing
`memtrail run` writes on stderr after the program ended (its snapshots), and
the order in which ninja -j2 finishes its edges (those steps' stdout is
compared sorted, with NINJA_STATUS="" so the lines carry no counters).

A tool that is not installed is skipped with a message; exit 77 when none
is. Measured (meson test, 2 cores, load average 4 to 6 from other jobs): 30 s,
most of it ninja's traced gcc (about 220 snapshots; git writes about 30,
sqlite3 5).

By hand: MEMTRAIL_EXE=build/analyzer/memtrail tests/realworld/tools.py
  [--scenario sqlite3|git|ninja]...   (MT_REALWORLD_KEEP=1 keeps the
scratch directory)
"""

import argparse
import concurrent.futures
import difflib
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rwlib  # noqa: E402
from rwlib import log  # noqa: E402

STEP_TIMEOUT = 300


class Step:
    """One command. argv runs in the scenario's work directory; stdin is
    bytes or None; before(work) prepares files first (run in both modes);
    sort compares stdout as sorted lines."""

    def __init__(self, name, argv, stdin=None, before=None, sort=False, env=None):
        self.name, self.argv, self.stdin = name, argv, stdin
        self.before, self.sort, self.env = before, sort, env or {}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ---- sqlite3 ------------------------------------------------------------

SQL_MAIN = """\
.headers on
.mode list
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<20000)
INSERT INTO t SELECT x, x%17, printf('name-%05d', (x*7919)%20000), (x*31%1000)/7.0 FROM c;
CREATE INDEX t_grp ON t(grp, name);
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM c WHERE x<16)
INSERT INTO g SELECT x, 'group ' || x FROM c;
SELECT count(*), sum(grp), round(avg(val), 6), min(name), max(name) FROM t;
SELECT g.label, count(*) AS n, round(sum(val), 3) AS s
  FROM t JOIN g USING (grp) GROUP BY grp ORDER BY s DESC;
SELECT id, name, rank() OVER (PARTITION BY grp ORDER BY val DESC, id) AS r,
       round(sum(val) OVER (ORDER BY id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW), 3) AS w
  FROM t WHERE id % 997 = 0 ORDER BY id;
SELECT json_group_array(json_object('id', id, 'n', name))
  FROM (SELECT * FROM t WHERE grp = 3 ORDER BY id LIMIT 5);
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY name DESC LIMIT 8);
UPDATE t SET val = val * 2 WHERE grp IN (1, 2, 3);
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
PRAGMA integrity_check;
WITH RECURSIVE
  xaxis(x) AS (VALUES(-2.0) UNION ALL SELECT x+0.05 FROM xaxis WHERE x<1.2),
  yaxis(y) AS (VALUES(-1.0) UNION ALL SELECT y+0.1 FROM yaxis WHERE y<1.0),
  m(iter, cx, cy, x, y) AS (
    SELECT 0, x, y, 0.0, 0.0 FROM xaxis, yaxis
    UNION ALL
    SELECT iter+1, cx, cy, x*x-y*y + cx, 2.0*x*y + cy FROM m
     WHERE (x*x + y*y) < 4.0 AND iter<28),
  m2(iter, cx, cy) AS (SELECT max(iter), cx, cy FROM m GROUP BY cx, cy),
  a(t) AS (SELECT group_concat(substr(' .+*#', 1+min(iter/7,4), 1), '')
    FROM m2 GROUP BY cy)
SELECT group_concat(rtrim(t),x'0a') FROM a;
"""

SQL_BAD = """\
SELECT count(*) FROM t;
SELECT * FROM no_such_table;
SELECT 'after the error';
"""


def sqlite_scenario(tool):
    return [
        Step("script", [tool, "db.sqlite"], stdin=SQL_MAIN.encode()),
        Step("reopen", [tool, "db.sqlite",
                        "SELECT count(*), round(sum(val), 3) FROM t; PRAGMA page_count;"]),
        Step("dump", [tool, "db.sqlite", ".dump g"]),
        Step("error", [tool, "db.sqlite"], stdin=SQL_BAD.encode()),
        Step("bail", [tool, "-bail", "db.sqlite", ".read bad.sql"],
             before=lambda w: write(os.path.join(w, "bad.sql"), SQL_BAD)),
    ]


# ---- git ----------------------------------------------------------------

def git_files(work, gen):
    """Deterministic file contents for generation gen."""
    for i in range(40):
        lines = [f"file {i} line {j} gen {gen if j % (i + 2) == 0 else 0}" for j in range(60)]
        write(os.path.join(work, "repo", f"src/dir{i % 5}/f{i:02}.txt"), "\n".join(lines) + "\n")


def git_edit(work, name, text):
    with open(os.path.join(work, "repo", name), "a") as f:
        f.write(text)


def git_scenario(tool):
    n = [0]

    def date_env():
        # each step its own fixed date, the same in both runs
        n[0] += 1
        d = f"2024-01-01T00:{n[0]:02}:00+0000"
        return {"GIT_AUTHOR_DATE": d, "GIT_COMMITTER_DATE": d}

    def g(name, *args, before=None):
        return Step(name, [tool, "-C", "repo"] + list(args), before=before,
                    env=date_env())

    return [
        Step("init", [tool, "init", "-b", "main", "repo"]),
        g("add", "add", "-A", before=lambda w: git_files(w, 1)),
        g("commit", "commit", "-m", "initial"),
        g("branch", "checkout", "-b", "feature"),
        g("feature-1", "commit", "-a", "-m", "feature: gen 2",
          before=lambda w: git_files(w, 2)),
        g("feature-2", "commit", "-a", "-m", "feature: f03",
          before=lambda w: git_edit(w, "src/dir3/f03.txt", "feature line\n")),
        g("checkout-main", "checkout", "main"),
        g("main-1", "commit", "-a", "-m", "main: f07",
          before=lambda w: git_edit(w, "src/dir2/f07.txt", "main line\n")),
        g("merge", "merge", "--no-ff", "-m", "merge feature", "feature"),
        g("log", "log", "--graph", "--all", "--format=%H %an %ad %s", "--date=iso"),
        g("diff-stat", "diff", "--stat", "HEAD~1", "HEAD"),
        g("gc", "gc", "--quiet"),
        g("count-objects", "count-objects", "-v"),
        g("fsck", "fsck", "--full", "--strict"),
        g("blame", "blame", "--line-porcelain", "src/dir3/f03.txt"),
        g("grep", "grep", "-n", "gen 2", "--", "src/dir0"),
        g("rev-list", "rev-list", "--count", "--all"),
        g("show", "show", "--stat", "HEAD^2"),
        g("bad-ref", "rev-parse", "--verify", "no-such-branch"),
    ]


def git_env(home):
    return {
        "HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config"),
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.path.join(home, ".gitconfig"),
        "GIT_AUTHOR_NAME": "Real World", "GIT_AUTHOR_EMAIL": "rw@example.org",
        "GIT_COMMITTER_NAME": "Real World", "GIT_COMMITTER_EMAIL": "rw@example.org",
        "GIT_PAGER": "cat", "PAGER": "cat", "TZ": "UTC",
    }


def git_setup(work):
    home = os.path.join(work, "home")
    write(os.path.join(home, ".gitconfig"),
          "[gc]\n\tauto = 0\n\tautoDetach = false\n[maintenance]\n\tauto = false\n"
          "[advice]\n\tdetachedHead = false\n[core]\n\tpager = cat\n")


# ---- ninja --------------------------------------------------------------

NFILES = 24


def ninja_project(work):
    src = os.path.join(work, "proj")
    write(os.path.join(src, "common.h"),
          "#ifndef COMMON_H\n#define COMMON_H\n#include <stdlib.h>\n#define SCALE 3\n" +
          "".join(f"long f{i}(long);\n" for i in range(NFILES)) + "#endif\n")
    for i in range(NFILES):
        body = (f'#include "common.h"\n#include <string.h>\n'
                f"long f{i}(long n)\n{{\n"
                f"    long *a = malloc(sizeof(long) * (size_t)(n + 1)), s = 0;\n"
                f"    for (long k = 0; k <= n; k++) a[k] = (k * {i + 3}) % {97 + i};\n"
                f"    for (long k = 0; k <= n; k++) s += a[k] * SCALE;\n"
                f"    free(a);\n    return s;\n}}\n")
        write(os.path.join(src, f"f{i:02}.c"), body)
    write(os.path.join(src, "main.c"),
          '#include <stdio.h>\n#include "common.h"\nint main(void)\n{\n    long t = 0;\n' +
          "".join(f'    printf("f{i} %ld\\n", f{i}({1000 + 10 * i})); t += f{i}(7);\n'
                  for i in range(NFILES)) +
          '    printf("total %ld\\n", t);\n    return 0;\n}\n')
    objs = " ".join(f"f{i:02}.o" for i in range(NFILES))
    write(os.path.join(src, "build.ninja"),
          "cflags = -O1 -Wall -Wextra\n"
          "rule cc\n  command = gcc $cflags -MMD -MF $out.d -c $in -o $out\n"
          "  depfile = $out.d\n  deps = gcc\n  description = CC $out\n"
          "rule link\n  command = gcc $in -o $out\n  description = LINK $out\n" +
          "".join(f"build f{i:02}.o: cc f{i:02}.c\n" for i in range(NFILES)) +
          "build main.o: cc main.c\n"
          f"build app: link main.o {objs}\n"
          "default app\n")
    write(os.path.join(src, "bad.ninja"),
          "rule cc\n  command = gcc -c $in -o $out\n  description = CC $out\n"
          "build bad.o: cc bad.c\n")
    write(os.path.join(src, "bad.c"),
          "int ok(void) { return 1; }\nint broken(void) { return undeclared_name; }\n")


def touch_header(work):
    # A fixed mtime after the build's (both runs the same): a partial rebuild.
    path = os.path.join(work, "proj", "common.h")
    st = os.stat(os.path.join(work, "proj", "app"))
    os.utime(path, (st.st_mtime + 10, st.st_mtime + 10))


def ninja_scenario(tool):
    p = ["-C", "proj"]
    return [
        Step("build", [tool] + p + ["-j2"], before=ninja_project, sort=True),
        Step("run", ["proj/app"]),
        Step("no-op", [tool] + p + ["-j2"]),
        Step("rebuild", [tool] + p + ["-j2"], before=touch_header, sort=True),
        Step("targets", [tool] + p + ["-t", "targets", "all"], sort=True),
        Step("clean", [tool] + p + ["-t", "clean"]),
        Step("failing", [tool] + p + ["-j1", "-f", "bad.ninja"]),
    ]


SCENARIOS = {
    "sqlite3": ("sqlite3", sqlite_scenario, None, {}),
    "git": ("git", git_scenario, git_setup, None),
    "ninja": ("ninja", ninja_scenario, None, {"NINJA_STATUS": ""}),
}


# ---- running ------------------------------------------------------------

def run_mode(memtrail, root, name, steps, setup, extra_env, traced):
    """Run all steps in root/work (created afresh). Returns a list of
    (step, status, stdout, stderr, snapshots, bad snapshots, seconds)."""
    work = os.path.join(root, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if setup:
        setup(work)
    env = dict(os.environ)
    for var in ("LD_PRELOAD", "MAKEFLAGS", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(var, None)
    env.update({"LC_ALL": "C", "TZ": "UTC", "TMPDIR": os.path.join(work, "tmp")})
    os.makedirs(env["TMPDIR"])
    env.update(extra_env)
    results = []
    for i, step in enumerate(steps):
        if step.before:
            step.before(work)
        argv = step.argv
        snapdir = os.path.join(root, "snaps", f"{i:02}-{step.name}")
        if traced:
            argv = rwlib.traced_argv(memtrail, snapdir, argv)
        senv = dict(env)
        senv.update(step.env)
        outp = os.path.join(root, "out")
        errp = os.path.join(root, "err")
        t0 = time.monotonic()
        with open(outp, "wb") as o, open(errp, "wb") as e:
            status, timed_out = rwlib.run(argv, work, senv, STEP_TIMEOUT, stdout=o, stderr=e,
                                          input=step.stdin)
        secs = rwlib.elapsed(t0)
        with open(outp, "rb") as f:
            out = f.read().decode("utf-8", "replace")
        with open(errp, "rb") as f:
            err = f.read().decode("utf-8", "replace")
        nsnap, bad = 0, []
        if traced:
            err = rwlib.strip_run_summary(err, snapdir)
            nsnap, bad = rwlib.read_back(memtrail, snapdir)
            shutil.rmtree(snapdir, ignore_errors=True)
        if step.sort:
            out = "".join(sorted(out.splitlines(keepends=True)))
        if timed_out:
            err += f"\n[timed out after {STEP_TIMEOUT} s]\n"
        results.append((step, status, out, err, nsnap, bad, secs))
    shutil.rmtree(work, ignore_errors=True)
    return results


def diff_text(label, a, b):
    d = list(difflib.unified_diff(a.splitlines(), b.splitlines(), f"bare {label}",
                                  f"traced {label}", lineterm="", n=1))
    if len(d) > 24:
        d = d[:24] + [f"... ({len(d) - 24} more diff lines)"]
    return ["         " + l for l in d]


def run_scenario(memtrail, root, name, tool_path):
    _tool, make_steps, setup, extra_env = SCENARIOS[name]
    sroot = os.path.join(root, name)
    os.makedirs(sroot)
    if extra_env is None:
        extra_env = git_env(os.path.join(sroot, "work", "home"))
    t0 = time.monotonic()
    bare = run_mode(memtrail, sroot, name, make_steps(tool_path), setup, extra_env, False)
    tb = rwlib.elapsed(t0)
    traced = run_mode(memtrail, sroot, name, make_steps(tool_path), setup, extra_env, True)
    tt = rwlib.elapsed(t0) - tb
    lines = []
    nsnap = 0
    for (step, bs, bo, be, _, _, _), (_s, ts, to, te, n, bad, _) in zip(bare, traced):
        nsnap += n
        where = f"{name} {step.name} ({' '.join(os.path.basename(a) if k == 0 else a for k, a in enumerate(step.argv))})"
        if bs != ts:
            lines.append(f"DIFF {where}: exit status bare {bs}, traced {ts}")
        if bo != to:
            lines.append(f"DIFF {where}: stdout differs")
            lines += diff_text("stdout", bo, to)
        if be != te:
            lines.append(f"DIFF {where}: stderr differs")
            lines += diff_text("stderr", be, te)
        if n == 0:
            lines.append(f"SNAP {where}: the traced run wrote no snapshot")
        for f, status, msg in bad:
            lines.append(f"SNAP {where}: {f} does not read back "
                         f"(memtrail report: status {status}: {msg})")
    return name, len(bare), nsnap, tb, tt, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MT_REALWORLD_JOBS", "2")))
    args = ap.parse_args()
    memtrail = rwlib.memtrail_exe()
    todo = []
    for name in args.scenario or list(SCENARIOS):
        tool = shutil.which(SCENARIOS[name][0])
        if tool is None:
            log(f"{name}: {SCENARIOS[name][0]} not found: skipped")
        else:
            todo.append((name, tool))
    if not todo:
        log("realworld_tools: no tool to run: skipped")
        return rwlib.SKIP
    t0 = time.monotonic()
    failed = False
    with rwlib.Scratch("mt-realworld-tools.") as root:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futs = [pool.submit(run_scenario, memtrail, root, n, t) for n, t in todo]
            for f in futs:
                name, nsteps, nsnap, tb, tt, lines = f.result()
                log(f"{name}: {nsteps} steps, bare {tb:.1f} s, traced {tt:.1f} s, "
                    f"{nsnap} snapshots read back; {len(lines) and sum(1 for l in lines if l[:4] in ('DIFF', 'SNAP'))} differences")
                for l in lines:
                    log("  " + l)
                failed = failed or bool(lines)
    log(f"realworld_tools: {rwlib.elapsed(t0):.0f} s with {args.jobs} jobs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
