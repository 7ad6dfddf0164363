#!/usr/bin/env python3
"""install_package: the Debian packages, built and installed into a scratch root.

1. Copies the source tree (git's files, tracked and untracked but not
   ignored; without git, everything but build directories) to a scratch
   directory and runs `dpkg-buildpackage -us -uc -b` there (debian/rules:
   -Dtests=false -Dbench=false).
2. Checks the packages: memtrail_VERSION_ARCH.deb and
   memtrail-dev_VERSION_ARCH.deb, VERSION being debian/changelog's and the
   same as `memtrail --version`'s; the package build configured neither
   criterion nor a C++ compiler (meson introspect); memtrail depends on
   libdw1 and libunwind8, which libmemtrail.so loads with dlopen (no
   DT_NEEDED for dpkg-shlibdeps to find); the memtrail program is linked statically and
   its Built-Using names glibc, libzstd and zlib.
3. `dpkg -x`s both into a scratch root: every file README.md's Installing
   section lists is there (with the packages' directories: /usr, the
   multiarch LIBDIR, compressed man pages, the zsh completion in
   /usr/share/zsh/vendor-completions, which Debian's zsh reads; the bash one
   where bash-completion's pkg-config file says, when it is installed).
4. The installed memtrail runs tests/programs/leaky under the installed
   tracer (found from its own location) and its `memtrail report` reads the
   exit snapshot.
5. The Python package is in /usr/lib/python3/dist-packages (debian/rules:
   -Dpython=/usr/bin/python3) and /usr/bin/python3 loads that snapshot with
   it, as `memtrail report` reads it.

Skipped (77) without dpkg-buildpackage or debhelper (dh). Scratch directory:
BUILD/install-package (removed at the end unless MT_INSTALL_KEEP=1). About
30 s on 2 cores (the build uses 2 jobs).
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instlib  # noqa: E402
from instlib import fail, log, run  # noqa: E402


def copy_source(source, dest):
    """The source tree as a clone would have it, plus untracked files."""
    git = shutil.which("git")
    if git and os.path.exists(os.path.join(source, ".git")):
        files = run([git, "-C", source, "ls-files", "-z", "--cached", "--others",
                     "--exclude-standard"]).stdout.split("\0")
        for f in filter(None, files):
            src = os.path.join(source, f)
            if not os.path.isfile(src):   # deleted in the work tree
                continue
            os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, f))
        return

    def ignore(directory, names):
        return [n for n in names if n == ".git" or
                os.path.exists(os.path.join(directory, n, "meson-private"))]
    shutil.copytree(source, dest, ignore=ignore, dirs_exist_ok=True)


def main():
    build = instlib.env_path("MEMTRAIL_BUILD_ROOT")
    source = instlib.env_path("MEMTRAIL_SOURCE_ROOT")
    programs = instlib.env_path("MT_PROGRAMS_DIR")
    built = instlib.env_path("MEMTRAIL_EXE")
    for tool in ("dpkg-buildpackage", "dh", "dpkg-architecture"):
        if not shutil.which(tool):
            instlib.skip(f"{tool} not found (apt-get install debhelper)")
    work = os.path.join(build, "install-package")
    shutil.rmtree(work, ignore_errors=True)
    src = os.path.join(work, "memtrail")
    copy_source(source, src)

    changelog = run(["dpkg-parsechangelog", "-l", os.path.join(src, "debian", "changelog"),
                     "-S", "Version"]).stdout.strip()
    version = run([built, "--version"]).stdout.split()[-1]
    if changelog.split("-")[0] != version:
        fail(f"debian/changelog is at {changelog}, memtrail --version says {version}: "
             "add a changelog entry (dch -v)")
    arch = run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.strip()
    multiarch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).stdout.strip()

    env = instlib.clean_env(DEB_BUILD_OPTIONS="parallel=2")
    env.pop("DESTDIR", None)
    p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(os.path.join(work, "dpkg-buildpackage.log"), "w") as f:
        f.write(p.stdout)
    if p.returncode != 0:
        fail(f"dpkg-buildpackage -us -uc -b: exit status {p.returncode}; its last lines:\n" +
             "\n".join(p.stdout.splitlines()[-40:]))
    debs = {}
    for name in ("memtrail", "memtrail-dev"):
        deb = os.path.join(work, f"{name}_{changelog}_{arch}.deb")
        if not os.path.isfile(deb):
            fail(f"no {os.path.basename(deb)} in {sorted(os.listdir(work))}")
        debs[name] = deb
    log("built " + ", ".join(os.path.basename(d) for d in debs.values()))

    # The package build needed no test dependency.
    obj = os.path.join(src, f"obj-{multiarch}")
    deps = [d["name"] for d in json.loads(run(["meson", "introspect", obj, "--dependencies"]).stdout)]
    cpp = [o["name"] for o in json.loads(run(["meson", "introspect", obj, "--buildoptions"]).stdout)
           if o["name"].startswith("cpp_")]
    if "criterion" in deps or cpp:
        fail(f"the package build configured criterion or C++: dependencies {deps}, options {cpp}")

    # libdw and libunwind are dlopened (preload/base/libload.h): named in the
    # control file.
    depends = run(["dpkg-deb", "-f", debs["memtrail"], "Depends"]).stdout
    names = [d.split()[0] for d in depends.replace("|", ",").split(",") if d.strip()]
    for lib in ("libdw1", "libunwind8"):
        if lib not in names:
            fail(f"memtrail's Depends has no {lib}: {depends.strip()}")

    # The program is a static PIE (-Dstatic_cli=auto): no interpreter, and
    # Built-Using names the sources of the archives linked into it.
    obj_memtrail = os.path.join(obj, "analyzer", "memtrail")
    if "INTERP" in run(["readelf", "-lW", obj_memtrail]).stdout:
        fail(f"{obj_memtrail} has a program interpreter: not linked statically")
    built_using = run(["dpkg-deb", "-f", debs["memtrail"], "Built-Using"]).stdout
    sources = [d.split()[0] for d in built_using.split(",") if d.strip()]
    if sorted(sources) != ["glibc", "libzstd", "zlib"]:
        fail(f"memtrail's Built-Using is not glibc, libzstd and zlib: {built_using.strip()}")

    root = os.path.join(work, "root")
    for deb in debs.values():
        run(["dpkg", "-x", deb, root])
    dirs = {"bindir": "usr/bin", "libdir": f"usr/lib/{multiarch}", "includedir": "usr/include",
            "mandir": "usr/share/man", "datadir": "usr/share",
            "bashcompletiondir": "usr/share/bash-completion/completions",
            "zshcompletiondir": "usr/share/zsh/vendor-completions"}
    if subprocess.run(["pkg-config", "--exists", "bash-completion"]).returncode == 0:
        where = run(["pkg-config", "--variable=completionsdir", "bash-completion"]).stdout.strip()
        if where.strip("/") != dirs["bashcompletiondir"]:
            fail(f"bash-completion reads {where}, the package installs into /{dirs['bashcompletiondir']}")
    if shutil.which("zsh"):
        fpath = run(["zsh", "-f", "-c", "print -l $fpath"]).stdout.split()
        if "/" + dirs["zshcompletiondir"] not in fpath:
            fail(f"zsh's $fpath has no /{dirs['zshcompletiondir']}: {fpath}")
    memtrail = os.path.join(root, dirs["bindir"], "memtrail")
    instlib.check_layout(root, dirs, instlib.commands(memtrail), man_suffix=".1.gz")
    snaps = instlib.check_traced_run(memtrail, os.path.join(programs, "leaky"), work)
    exit_snap = [f for f in os.listdir(snaps) if f.endswith(".exit.mtsnap")][0]
    instlib.check_python_package(os.path.join(root, "usr/lib/python3/dist-packages"),
                                 "/usr/bin/python3", memtrail, os.path.join(snaps, exit_snap))

    if os.environ.get("MT_INSTALL_KEEP") != "1":
        shutil.rmtree(work, ignore_errors=True)
    log("install_package: OK")


if __name__ == "__main__":
    main()
