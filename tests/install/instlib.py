"""Helpers shared by the install tests (tests/install/*.py).

The tests check what a user gets from `meson install` or the Debian package:
the files at the documented paths (README.md, Installing), the installed
`memtrail` tracing a program with its installed tracer, the man pages and the
shell completions. Only the standard library is used. By hand (from a
configured and built BUILD):

    MEMTRAIL_EXE=BUILD/analyzer/memtrail MEMTRAIL_BUILD_ROOT=BUILD \
    MEMTRAIL_SOURCE_ROOT=. MT_PROGRAMS_DIR=BUILD/tests tests/install/tree.py
"""

import json
import os
import re
import shutil
import subprocess
import sys

SKIP = 77
LIB_NAME = "libmemtrail.so"


def log(msg):
    print(msg, flush=True)


def fail(msg):
    """Ends the test: one line, exit status 1."""
    log(f"FAIL: {msg}")
    sys.exit(1)


def skip(msg):
    log(f"skipped: {msg}")
    sys.exit(SKIP)


def env_path(name):
    """A path from meson's test environment (tests/meson.build: test_env)."""
    value = os.environ.get(name)
    if not value:
        fail(f"{name} is not set (run through meson test, or set it)")
    return os.path.abspath(value)


def run(argv, check=True, **kw):
    """Runs argv; its stdout and stderr as text. check: fail on a non-zero status."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(argv, text=True, **kw)
    if check and p.returncode != 0:
        fail(f"{' '.join(map(str, argv))}: exit status {p.returncode}\n"
             f"--- stdout\n{p.stdout}--- stderr\n{p.stderr}")
    return p


def clean_env(**extra):
    """The environment without what meson test sets for the build tree's
    programs (MEMTRAIL_LIB would point the installed memtrail at the build
    tree's tracer)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMTRAIL_") and k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
    env.update(extra)
    return env


def commands(memtrail):
    """The command names `memtrail --help` lists under "Commands:"."""
    out = run([memtrail, "--help"]).stdout
    names, listing = [], False
    for line in out.splitlines():
        if line == "Commands:":
            listing = True
        elif listing and line.startswith("  "):
            names.append(line.split()[0])
        elif listing:
            break
    if not names:
        fail("memtrail --help lists no command")
    return names


def option_tokens(text):
    """The option-like words of a text: --long-name and -x, not the dashes
    inside words (set-user-ID, RTMAX-3)."""
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9-]*)", text))


def layout(dirs, commands_, man_suffix=".1"):
    """The installed files, relative to the root, that README.md's
    Installing section documents. dirs: bindir, libdir, includedir, mandir,
    datadir, bashcompletiondir, zshcompletiondir, relative to the root."""
    d = dirs
    files = {
        "the program": f"{d['bindir']}/memtrail",
        "the tracer": f"{d['libdir']}/memtrail/{LIB_NAME}",
        "the C API header": f"{d['includedir']}/memtrail/memtrail.h",
        "the snapshot format header": f"{d['includedir']}/memtrail/memtrail_format.h",
        "the pkg-config file": f"{d['libdir']}/pkgconfig/memtrail.pc",
        "the bash completion": f"{d['bashcompletiondir']}/memtrail",
        "the zsh completion": f"{d['zshcompletiondir']}/_memtrail",
        "the README": f"{d['datadir']}/doc/memtrail/README.md",
        "the design document": f"{d['datadir']}/doc/memtrail/docs/design.md",
        "the man page memtrail(1)": f"{d['mandir']}/man1/memtrail{man_suffix}",
    }
    for c in commands_:
        files[f"the man page memtrail-{c}(1)"] = f"{d['mandir']}/man1/memtrail-{c}{man_suffix}"
    return files


def check_layout(root, dirs, commands_, man_suffix=".1"):
    """Fails unless every documented file is in root, and the tracer is not
    on the linker's search path (LIBDIR itself)."""
    missing = [f"{what} ({path})" for what, path in layout(dirs, commands_, man_suffix).items()
               if not os.path.isfile(os.path.join(root, path))]
    if missing:
        fail("not installed: " + "; ".join(missing))
    public = os.path.join(root, dirs["libdir"], LIB_NAME)
    if os.path.lexists(public):
        fail(f"{LIB_NAME} is on the linker's search path: {public}")
    log(f"layout: {len(layout(dirs, commands_))} files at their documented paths")


def check_traced_run(memtrail, program, workdir):
    """The installed memtrail runs program under its installed tracer
    (MEMTRAIL_LIB unset) and reads the exit snapshot back. Returns the
    snapshot directory."""
    out = os.path.join(workdir, "snapshots")
    shutil.rmtree(out, ignore_errors=True)
    p = run([memtrail, "run", "-o", out, "--", program], env=clean_env())
    snaps = sorted(f for f in os.listdir(out) if f.endswith(".exit.mtsnap"))
    if not snaps:
        fail(f"memtrail run -- {program} wrote no exit snapshot; stderr:\n{p.stderr}")
    report = run([memtrail, "report", os.path.join(out, snaps[0])], env=clean_env()).stdout
    if f"command: {program}" not in report or "\nlive: " not in report:
        fail(f"memtrail report of {snaps[0]} does not describe {program}:\n{report}")
    log(f"{memtrail} run -- {os.path.basename(program)}: {snaps[0]}, read back by its report")
    return out


def check_python_package(site, python, memtrail, snapshot):
    """The Python package installed in site (a site-packages directory
    under the scratch root) imports with python and its load() reads
    snapshot with the installed libmemtrail_reader.so: the live figures
    `memtrail report` gives."""
    pkg = os.path.join(site, "memtrail")
    for f in ("__init__.py", "_build.py", "libmemtrail_reader.so"):
        if not os.path.isfile(os.path.join(pkg, f)):
            fail(f"the Python package is not installed: {os.path.join(pkg, f)} missing")
    code = ("import json, sys, memtrail, memtrail._reader as r\n"
            "s = memtrail.load(sys.argv[1])\n"
            "print(json.dumps([r.path(), s.size, s.count]))\n")
    got = json.loads(run([python, "-c", code, snapshot], env=clean_env(PYTHONPATH=site)).stdout)
    rep = json.loads(run([memtrail, "report", snapshot, "--format", "json", "--top", "1"],
                         env=clean_env()).stdout)
    if got != [os.path.join(pkg, "libmemtrail_reader.so"), rep["total_bytes"], rep["total_blocks"]]:
        fail(f"the installed package read {snapshot} as {got}, `memtrail report`: "
             f"{rep['total_bytes']} B in {rep['total_blocks']} blocks")
    log(f"{python}: the package in {site} loads {os.path.basename(snapshot)}")
    # The distribution's entry point, through which pytest loads the plugin.
    code = ("import importlib.metadata as m\n"
            "eps = m.entry_points()\n"
            "eps = eps.select(group='pytest11') if hasattr(eps, 'select') else eps.get('pytest11', [])\n"
            "print(sorted((e.name, e.value) for e in eps if e.name == 'memtrail'))\n")
    got = run([python, "-c", code], env=clean_env(PYTHONPATH=site)).stdout.strip()
    if got != "[('memtrail', 'memtrail.pytest_plugin')]":
        fail(f"the pytest entry point is not installed in {site}: {got}")
    log(f"{python}: pytest finds the plugin's entry point in {site}")
