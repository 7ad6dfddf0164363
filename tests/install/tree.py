#!/usr/bin/env python3
"""install_tree: `meson install` of the build into a scratch DESTDIR.

- Every file README.md's Installing section lists is at its path (the
  configured prefix and directories, read from `meson introspect`), and the
  tracer is in LIBDIR/memtrail, not on the linker's search path.
- The Python package is in the site-packages meson chose, and its load()
  reads leaky's exit snapshot with the installed reader as `memtrail report`
  does.
- The installed memtrail runs tests/programs/leaky under its installed
  tracer (MEMTRAIL_LIB unset: it finds LIBDIR/memtrail/libmemtrail.so from
  its own location) and its `memtrail report` reads the exit snapshot.
- `pkg-config --cflags --libs memtrail` works against the installed tree
  (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR into the DESTDIR) and names no
  library; examples/demo.c compiled with those flags alone runs bare (its
  weak memtrail_snapshot is absent) and, under the installed memtrail, takes
  its labelled snapshot; `pkg-config --variable=tracer` names the installed
  tracer.

Scratch directory: BUILD/install-tree (removed at the end unless
MT_INSTALL_KEEP=1); BUILD/meson-logs/install-log.txt, which `ninja uninstall`
reads, is left as it was. About 5 s.
"""

import json
import os
import re
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instlib  # noqa: E402
from instlib import fail, log, run  # noqa: E402


def main():
    build = instlib.env_path("MEMTRAIL_BUILD_ROOT")
    source = instlib.env_path("MEMTRAIL_SOURCE_ROOT")
    programs = instlib.env_path("MT_PROGRAMS_DIR")
    work = os.path.join(build, "install-tree")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    dest = os.path.join(work, "dest")

    # `meson install` rewrites the log `ninja uninstall` reads: keep the
    # user's (their own install's) in place.
    install_log = os.path.join(build, "meson-logs", "install-log.txt")
    saved = open(install_log, "rb").read() if os.path.exists(install_log) else None
    try:
        run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild", "--quiet"])
    finally:
        if saved is None:
            if os.path.exists(install_log):
                os.unlink(install_log)
        else:
            with open(install_log, "wb") as f:
                f.write(saved)
    opts = {o["name"]: o["value"] for o in
            json.loads(run(["meson", "introspect", build, "--buildoptions"]).stdout)}
    prefix = opts["prefix"].strip("/")

    def under_prefix(d):
        return d.strip("/") if d.startswith("/") else f"{prefix}/{d}"

    dirs = {k: under_prefix(opts[k]) for k in ("bindir", "libdir", "includedir", "mandir", "datadir")}
    dirs["bashcompletiondir"] = under_prefix(opts["bashcompletiondir"] or
                                             f"{opts['datadir']}/bash-completion/completions")
    dirs["zshcompletiondir"] = under_prefix(opts["zshcompletiondir"] or
                                            f"{opts['datadir']}/zsh/site-functions")
    memtrail = os.path.join(dest, dirs["bindir"], "memtrail")
    instlib.check_layout(dest, dirs, instlib.commands(memtrail))
    snaps = instlib.check_traced_run(memtrail, os.path.join(programs, "leaky"), work)

    # The Python package, where the install put it (the chosen interpreter's
    # site-packages: docs/python.md), read by this interpreter.
    inits = [p for p in json.loads(run(["meson", "introspect", build, "--installed"]).stdout).values()
             if p.endswith("/memtrail/__init__.py")]
    if opts.get("python_package", True):
        if len(inits) != 1:
            fail(f"the Python package's __init__.py installed {len(inits)} times: {inits}")
        site = os.path.join(dest, os.path.dirname(os.path.dirname(inits[0])).lstrip("/"))
        exit_snap = [f for f in os.listdir(snaps) if f.endswith(".exit.mtsnap")][0]
        instlib.check_python_package(site, sys.executable, memtrail,
                                     os.path.join(snaps, exit_snap))

    # pkg-config against the installed tree.
    if not shutil.which("pkg-config"):
        fail("pkg-config not found")
    pc_env = instlib.clean_env(PKG_CONFIG_PATH=os.path.join(dest, dirs["libdir"], "pkgconfig"),
                               PKG_CONFIG_SYSROOT_DIR=dest, PKG_CONFIG_LIBDIR="")
    flags = run(["pkg-config", "--cflags", "--libs", "memtrail"], env=pc_env).stdout.split()
    include = os.path.join(dest, dirs["includedir"], "memtrail")
    if flags != [f"-I{include}"]:
        fail(f"pkg-config --cflags --libs memtrail: {flags}, expected only -I{include}")
    tracer = run(["pkg-config", "--variable=tracer", "memtrail"], env=pc_env).stdout.strip()
    if os.path.realpath(tracer) != os.path.realpath(
            os.path.join(dest, dirs["libdir"], "memtrail", instlib.LIB_NAME)):
        fail(f"pkg-config --variable=tracer memtrail: {tracer}")
    log(f"pkg-config --cflags --libs memtrail: {' '.join(flags)}")

    demo_src = os.path.join(source, "examples", "demo.c")
    label = re.search(r'MEMTRAIL_SNAPSHOT\("([^"]+)"\)', open(demo_src).read()).group(1)
    demo = os.path.join(work, "demo")
    cc = shlex.split(os.environ.get("CC", "cc"))
    # memtrail.h under DESTDIR is on no default path: the flags alone find it.
    run(cc + [demo_src, "-o", demo] + flags, env=pc_env)
    bare = run([demo], env=instlib.clean_env())
    if bare.stdout or bare.stderr:
        fail(f"demo without memtrail printed: {bare.stdout}{bare.stderr}")
    snaps = instlib.check_traced_run(memtrail, demo, work)
    api = [f for f in os.listdir(snaps) if f.endswith(".api.mtsnap")]
    if len(api) != 1:
        fail(f"demo under memtrail wrote {sorted(os.listdir(snaps))}: expected one .api.mtsnap")
    report = run([memtrail, "report", os.path.join(snaps, api[0])], env=instlib.clean_env()).stdout
    if f"label: {label}\n" not in report:
        fail(f"the API snapshot's report has no 'label: {label}':\n{report}")
    log(f"demo.c built with pkg-config's flags alone: snapshot {api[0]} labelled '{label}'")

    if os.environ.get("MT_INSTALL_KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)
    log("install_tree: OK")


if __name__ == "__main__":
    main()
