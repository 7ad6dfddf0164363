#!/usr/bin/env python3
"""install_man: the man pages say what --help says.

The man pages are written at build time (docs/meson.build, memtrail-docgen)
into BUILD/docs/man1. For the built memtrail:
- there is one page per command `memtrail --help` lists, memtrail-CMD.1,
  plus memtrail.1, and no other;
- each page renders with groff without a warning, and names its command and
  summary in NAME;
- every option of `memtrail CMD --help` (and `memtrail help CMD`, the same
  text) appears in memtrail-CMD(1) as rendered, and those of `memtrail
  --help` in memtrail(1).

Skipped (77) without groff (groff-base).
"""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import instlib  # noqa: E402
from instlib import fail, log, run  # noqa: E402


def render(page):
    """The page as text: no hyphenation, no line breaks inside a paragraph
    (a long line length), plain ASCII dashes (Debian's man.local)."""
    p = run(["groff", "-man", "-Tutf8", "-ww", "-rLL=2000n", "-rHY=0", "-P-c", page],
            env=instlib.clean_env(GROFF_SGR=""))
    if p.stderr.strip():
        fail(f"groff warns on {os.path.basename(page)}:\n{p.stderr}")
    return re.sub(r".\x08", "", p.stdout)


def main():
    memtrail = instlib.env_path("MEMTRAIL_EXE")
    build = instlib.env_path("MEMTRAIL_BUILD_ROOT")
    if not shutil.which("groff"):
        instlib.skip("groff not found (apt-get install groff-base)")
    mandir = os.path.join(build, "docs", "man1")
    commands = instlib.commands(memtrail)
    pages = sorted(os.listdir(mandir))
    expected = sorted(["memtrail.1"] + [f"memtrail-{c}.1" for c in commands])
    if pages != expected:
        fail(f"{mandir} holds {pages}, expected {expected}")

    top = run([memtrail, "--help"]).stdout
    checks = [("memtrail.1", top, "memtrail", None)]
    for c in commands:
        helptext = run([memtrail, c, "--help"]).stdout
        if run([memtrail, "help", c]).stdout != helptext:
            fail(f"memtrail {c} --help and memtrail help {c} differ")
        summary = re.search(rf"^  {re.escape(c)} +(.*)$", top, re.M).group(1)
        checks.append((f"memtrail-{c}.1", helptext, f"memtrail-{c}", summary))

    total = 0
    for page, helptext, name, summary in checks:
        text = render(os.path.join(mandir, page))
        name_line = re.search(r"^NAME\n\s+(.*)$", text, re.M)
        if not name_line or not name_line.group(1).startswith(f"{name} - "):
            fail(f"{page}: NAME is {name_line.group(1) if name_line else 'missing'}")
        if summary and name_line.group(1) != f"{name} - {summary}":
            fail(f"{page}: NAME '{name_line.group(1)}', the summary is '{summary}'")
        options = instlib.option_tokens(helptext)
        missing = sorted(options - instlib.option_tokens(text))
        if missing:
            fail(f"{page} lacks {', '.join(missing)} of its --help")
        total += len(options)
        log(f"{page}: {len(options)} options of --help, all in the page")
    log(f"install_man: OK ({len(checks)} pages, {total} options)")


if __name__ == "__main__":
    main()
