#!/usr/bin/env python3
"""install_completion: the shell completions of the build (BUILD/docs).

bash (BUILD/docs/memtrail), in `bash --norc`, alone and after
bash-completion's own script when it is installed:
- after sourcing it, `complete -p memtrail` names its function;
- its function, called as bash calls it (COMP_WORDS, COMP_CWORD), offers:
  every command of `memtrail --help` after `memtrail`; for `memtrail report
  --group-by <TAB>` (and `--group-by=`, `-g l`) the keys the parser itself
  lists when refused a key (`memtrail report --group-by ?`); the --format
  names of report, diff and export, the same way; every long option of
  `memtrail report --help` after `--`; *.mtsnap files and directories, not
  other files, for a snapshot operand; words after the last comma of a
  --kind list; commands after `memtrail run --`.
zsh (BUILD/docs/_memtrail, skipped when zsh is not installed): it parses, and
compinit binds it to memtrail.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instlib  # noqa: E402
from instlib import fail, log, run  # noqa: E402

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

# mt_complete WORD... : the candidates for the last word, one per line.
HARNESS = r'''
mt_complete() {
    local COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMP_LINE="$*"
    local COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _memtrail memtrail "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\n' "${COMPREPLY[@]}"
}
'''


class Bash:
    def __init__(self, script, prelude=""):
        self.script, self.prelude = script, prelude

    def run(self, body, cwd=None):
        code = f"{self.prelude}\nsource {self.script}\n{body}"
        return run(["bash", "--norc", "--noprofile", "-c", code], cwd=cwd,
                   env=instlib.clean_env(HOME=os.environ.get("HOME", "/"))).stdout

    def candidates(self, *words, cwd=None):
        quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
        out = self.run(f"{HARNESS}\nmt_complete {quoted}", cwd=cwd)
        return [line for line in out.splitlines() if line]


def refused_words(memtrail, argv, option):
    """The words memtrail lists when it refuses a value of option:
    "unknown --OPT '?' (a, b, c)"."""
    p = run([memtrail] + argv, check=False)
    m = re.search(rf"unknown --{option} '.*' \((.*)\)$", p.stderr.strip())
    if p.returncode != 2 or not m:
        fail(f"memtrail {' '.join(argv)}: expected a refusal listing the words, got {p.stderr!r}")
    return m.group(1).split(", ")


def expect(got, want, what):
    if sorted(set(got)) != sorted(set(want)):
        fail(f"{what}: completion offers {got}, expected {want}")
    log(f"{what}: {' '.join(got)}")


def check_bash(memtrail, script, work, prelude, label):
    bash = Bash(script, prelude)
    out = bash.run("complete -p memtrail").strip()
    if out != "complete -F _memtrail memtrail":
        fail(f"{label}: complete -p memtrail says {out!r}")
    log(f"{label}: {out}")

    commands = instlib.commands(memtrail)
    got = bash.candidates("memtrail", "")
    if not set(commands) <= set(got):
        fail(f"{label}: memtrail <TAB> offers {got}, not every command of {commands}")
    keys = refused_words(memtrail, ["report", "--group-by", "?", "x"], "group-by")
    expect(bash.candidates("memtrail", "report", "--group-by", ""), keys,
           "memtrail report --group-by <TAB>")
    expect(bash.candidates("memtrail", "report", "--group-by", "=", ""), keys,
           "memtrail report --group-by=<TAB>")
    expect(bash.candidates("memtrail", "diff", "-g", "l"), [k for k in keys if k.startswith("l")],
           "memtrail diff -g l<TAB>")
    for cmd in ("report", "diff", "export"):
        expect(bash.candidates("memtrail", cmd, "--format", ""),
               refused_words(memtrail, [cmd, "--format", "?", "x"], "format"),
               f"memtrail {cmd} --format <TAB>")
    longs = sorted(o for o in instlib.option_tokens(run([memtrail, "report", "--help"]).stdout)
                   if o.startswith("--"))
    got = bash.candidates("memtrail", "report", "--")
    if sorted(got) != longs:
        fail(f"{label}: memtrail report --<TAB> offers {got}, its --help has {longs}")
    kinds = bash.candidates("memtrail", "leaks", "--kind", "definite,in")
    if kinds != ["definite,indirect"]:
        fail(f"{label}: memtrail leaks --kind definite,in<TAB> offers {kinds}")

    files = os.path.join(work, "files")
    os.makedirs(os.path.join(files, "sub"), exist_ok=True)
    for name in ("a.mtsnap", "b.mtsnap", "notes.txt"):
        open(os.path.join(files, name), "w").close()
    expect(bash.candidates("memtrail", "report", "", cwd=files), ["a.mtsnap", "b.mtsnap", "sub"],
           "memtrail report <TAB> (a.mtsnap, b.mtsnap, notes.txt, sub/)")
    got = bash.candidates("memtrail", "run", "-o", "out", "--", "ech")
    if "echo" not in got:
        fail(f"{label}: memtrail run -o out -- ech<TAB> offers {got}")


def main():
    memtrail = instlib.env_path("MEMTRAIL_EXE")
    build = instlib.env_path("MEMTRAIL_BUILD_ROOT")
    work = os.path.join(build, "install-completion")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    script = os.path.join(build, "docs", "memtrail")
    check_bash(memtrail, script, work, "", "bash")
    if os.path.isfile(BASH_COMPLETION):
        check_bash(memtrail, script, work, f"source {BASH_COMPLETION}", "bash with bash-completion")
    else:
        log(f"no {BASH_COMPLETION}: checked without bash-completion only")

    zscript = os.path.join(build, "docs", "_memtrail")
    if shutil.which("zsh"):
        run(["zsh", "-n", zscript])
        zdir = os.path.join(work, "zsh")
        os.makedirs(zdir)
        shutil.copy(zscript, zdir)
        bound = run(["zsh", "-f", "-c", f"fpath=({zdir} $fpath); autoload -Uz compinit; "
                     "compinit -u -D; print -r -- $_comps[memtrail]"],
                    env=instlib.clean_env(HOME=work)).stdout.strip()
        if bound != "_memtrail":
            fail(f"zsh: compinit binds memtrail to {bound!r}")
        log("zsh: _memtrail parses, compinit binds it to memtrail")
    else:
        log("zsh not installed: its checks skipped")
    shutil.rmtree(work, ignore_errors=True)
    log("install_completion: OK")


if __name__ == "__main__":
    main()
