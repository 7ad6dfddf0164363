"""memtrail's pytest plugin: memory limits, leaks and garbage cycles per test.

Loaded by the entry point ``memtrail`` once the package is installed
(``pytest -p no:memtrail`` turns it off), or by ``-p memtrail.pytest_plugin``
(installed or from a package on PYTHONPATH). The measurements need the tracer: run pytest
under ``memtrail run -- python -m pytest ...``, or give ``--memtrail`` and
the plugin runs pytest again under ``memtrail run`` when it is not traced.

- ``@pytest.mark.limit_memory("24 MB")``: the test fails when the memory it
  allocated reached more than that at its peak (blocks allocated by the
  test, from its start: the peak of a measurement window, exact); the
  message lists the 5 lines that held most of it at that peak (blocks
  whose stack holds only pytest's, pluggy's, memtrail's and the standard
  library's code, the hook calls around the test, are in the figure, not
  in the list).
- ``@pytest.mark.limit_leaks("1 MB")``: the test fails when the memory it
  allocated and that is still live after it (after ``gc.collect()``) is
  more than that; the message lists the leaking lines.
- ``--memtrail-fail-on-cycles``: a test fails when a collection at its end
  finds garbage reference cycles (after one at its start).
- At the end of the session, the tests with the highest peaks; when pytest
  is not traced, one line says how many tests' limits were not checked.

Sizes read as the command line's (``24 MB`` = 24,000,000 bytes, ``24 MiB``
= 25,165,824). What is measured is the test's call (``pytest_runtest_call``),
not its fixtures' setup and teardown. docs/python.md, *pytest*.
"""

import copy
import gc
import os
import shutil
import subprocess
import sys

import pytest

from . import _tracer, _window

# Set in the environment of the run --memtrail starts, so that it never
# starts another.
REEXEC_ENV = "MEMTRAIL_PYTEST_TRACED"
TOP_LINES = 5


ENTRY_POINT = "memtrail"   # python/memtrail/entry_points.txt


def pytest_addoption(parser, pluginmanager):
    # Loaded by its module name (-p memtrail.pytest_plugin) where the package
    # is installed: pytest reads -p before the entry points, and would
    # register this same module again under the entry point's name (a
    # ValueError). That name is blocked instead; it is this module.
    if pluginmanager.get_name(sys.modules[__name__]) != ENTRY_POINT and \
            pluginmanager.get_plugin(ENTRY_POINT) is None:
        pluginmanager.set_blocked(ENTRY_POINT)
    g = parser.getgroup("memtrail", "memory limits and leaks per test (memtrail)")
    g.addoption("--memtrail", action="store_true", default=False,
                help="measure the tests under memtrail: when pytest is not traced, run it "
                     "again under `memtrail run` and exit with its status")
    g.addoption("--memtrail-exe", metavar="PATH", default=None,
                help="the memtrail program --memtrail runs (default: memtrail on PATH)")
    g.addoption("--memtrail-output", metavar="DIR", default=None,
                help="with --memtrail: the snapshots' directory (memtrail run -o DIR)")
    g.addoption("--memtrail-name", metavar="BASE", default=None,
                help="with --memtrail: stable snapshot names (memtrail run --name BASE)")
    g.addoption("--memtrail-fail-on-cycles", action="store_true", default=False,
                help="fail a test that leaves garbage reference cycles behind")
    g.addoption("--memtrail-top", metavar="N", type=int, default=5,
                help="tests listed by peak memory at the end of the session (default 5, 0: none)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "limit_memory(size): fail when the memory the test allocated was above "
                   "SIZE at its peak (memtrail)")
    config.addinivalue_line(
        "markers", "limit_leaks(size): fail when the memory the test allocated and left "
                   "live after gc.collect() is above SIZE (memtrail)")
    if _tracer.is_tracing() and not config.pluginmanager.has_plugin("memtrail-measure"):
        config.pluginmanager.register(Measure(config), "memtrail-measure")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """--memtrail in a process that is not traced: this run again, traced."""
    if not config.getoption("memtrail") or _tracer.is_tracing():
        return None
    if os.environ.get(REEXEC_ENV):
        sys.stderr.write("memtrail: pytest ran under `memtrail run` but is not traced "
                         "(a static interpreter?): the limits are not checked\n")
        return None
    exe = config.getoption("memtrail_exe") or shutil.which("memtrail")
    if not exe:
        raise pytest.UsageError("--memtrail: no memtrail program on PATH (give --memtrail-exe)")
    argv = [exe, "run"]
    if config.getoption("memtrail_output"):
        argv += ["-o", config.getoption("memtrail_output")]
    if config.getoption("memtrail_name"):
        argv += ["--name", config.getoption("memtrail_name")]
    argv += ["--", sys.executable, "-m", "pytest"] + list(config.invocation_params.args)
    env = dict(os.environ)
    env[REEXEC_ENV] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    rc = subprocess.call(argv, env=env, cwd=str(config.invocation_params.dir))
    return rc if rc >= 0 else 128 - rc


def pytest_collection_modifyitems(config, items):
    if not _tracer.is_tracing():
        config._memtrail_unchecked = sum(
            1 for i in items if i.get_closest_marker("limit_memory") or
            i.get_closest_marker("limit_leaks"))


def pytest_terminal_summary(terminalreporter, config):
    n = getattr(config, "_memtrail_unchecked", 0)
    if n:
        terminalreporter.write_line(
            "memtrail: pytest is not traced: the memory limits of %d test%s were not checked "
            "(run it under `memtrail run`, or with --memtrail)" % (n, "" if n == 1 else "s"))


def _limit(item, name):
    m = item.get_closest_marker(name)
    if m is None:
        return None
    if len(m.args) != 1 or m.kwargs:
        raise pytest.UsageError("%s: @pytest.mark.%s takes one size (\"24 MB\")"
                                % (item.nodeid, name))
    from . import _reader
    try:
        return m.args[0], _reader.parse_size(m.args[0])
    except (ValueError, TypeError) as e:
        raise pytest.UsageError("%s: @pytest.mark.%s: %s" % (item.nodeid, name, e))


def _exact(n):
    s = _window.format_size(n)
    return s if s.endswith(" B") else "%s (%s B)" % (s, "{:,}".format(n))


def _blocks(n):
    return "%d block%s" % (n, "" if n == 1 else "s")


def _not_the_tests():
    """Where the code that is not the tests' lives: pytest's (`pytest` and
    `_pytest`), pluggy's and this package's directories, the standard library's, frozen modules."""
    import sysconfig
    import _pytest
    import pluggy
    dirs = [os.path.dirname(os.path.abspath(m.__file__))
            for m in (pytest, _pytest, pluggy, sys.modules[__package__])]
    paths = sysconfig.get_paths()
    dirs += [paths[k] for k in ("stdlib", "platstdlib") if paths.get(k)]
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs) + ("<frozen ",)


def _lines(stats, figure, total):
    """The lines of the test's own sites: a site whose stack holds no frame
    of code outside pytest, pluggy, memtrail and the standard library (the
    hook calls around the test, PYTEST_CURRENT_TEST) is in the figures, not
    in the list."""
    out = []
    others = _not_the_tests()
    mine = copy.copy(stats)
    mine.sites = [s for s in stats.sites
                  if any(not f.filename.startswith(others) for f in s.traceback)]
    for st in mine.statistics("lineno", figure)[:TOP_LINES]:
        f = st.traceback[0]
        out.append("    %s in %s: %s:%d%s" % (_exact(st.size), _blocks(st.count),
                                             f.filename, f.lineno,
                                             " (%s)" % f.function if f.function else ""))
    if not out:
        out.append("    (no line: %s outside Python code)" % _window.format_size(total))
    return out


def _describe_garbage(objs):
    kinds = {}
    for o in objs:
        name = type(o).__qualname__
        kinds[name] = kinds.get(name, 0) + 1
    parts = ["%d %s" % (n, k) for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ", ".join(parts[:8]) + (", ..." if len(parts) > 8 else "")


class Measure:
    """The hooks of a traced session: one window per test's call."""

    def __init__(self, config):
        self.config = config
        self.cycles = config.getoption("memtrail_fail_on_cycles")
        self.top = config.getoption("memtrail_top")
        self.failures = {}   # nodeid -> messages
        self.peaks = []      # (peak bytes, peak blocks, leaked bytes, nodeid)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        memory, leaks = _limit(item, "limit_memory"), _limit(item, "limit_leaks")
        gc.collect()   # garbage from before the test is not the test's
        window = _window.Window().begin()
        try:
            yield
        finally:
            garbage = self._garbage() if self.cycles else None
            gc.collect()
            stats = window.end()
        self.peaks.append((stats.peak_size, stats.peak_count, stats.size, item.nodeid))
        msgs = []
        if memory and stats.peak_size > memory[1]:
            msgs.append("\n".join([
                "memtrail: the test allocated %s in %s at its peak, over its limit_memory(%r) "
                "of %s" % (_exact(stats.peak_size), _blocks(stats.peak_count), memory[0],
                           _exact(memory[1])),
                "the lines that held the most at that peak:"]
                + _lines(stats, "peak", stats.peak_size)))
        if leaks and stats.size > leaks[1]:
            msgs.append("\n".join([
                "memtrail: the test leaked %s in %s (allocated by it, still live after "
                "gc.collect()), over its limit_leaks(%r) of %s"
                % (_exact(stats.size), _blocks(stats.count), leaks[0], _exact(leaks[1])),
                "the lines that allocated them:"] + _lines(stats, "live", stats.size)))
        if garbage:
            msgs.append("memtrail: the test left %s in garbage reference cycles: %s"
                        % ("%d object%s" % (garbage[0], "" if garbage[0] == 1 else "s"),
                           garbage[1]))
        if msgs:
            self.failures[item.nodeid] = msgs

    @staticmethod
    def _garbage():
        """The objects a collection finds unreachable now (gc.DEBUG_SAVEALL
        for that one collection), described; they are freed afterwards."""
        old = gc.get_debug()
        before = len(gc.garbage)
        gc.set_debug(old | gc.DEBUG_SAVEALL)
        try:
            gc.collect()
        finally:
            gc.set_debug(old)
        found = gc.garbage[before:]
        del gc.garbage[before:]
        n, text = len(found), _describe_garbage(found)
        del found
        return (n, text) if n else None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if call.when != "call":
            return
        msgs = self.failures.pop(item.nodeid, None)
        rep = outcome.get_result()
        if msgs and rep.passed:
            rep.outcome = "failed"
            rep.longrepr = "\n\n".join(msgs)

    def pytest_terminal_summary(self, terminalreporter):
        if self.top <= 0 or not self.peaks:
            return
        tr = terminalreporter
        tr.write_sep("=", "memtrail: top %d tests by peak memory" % min(self.top, len(self.peaks)))
        for peak, blocks, live, nodeid in sorted(self.peaks, key=lambda p: (-p[0], p[3]))[:self.top]:
            tr.write_line("%12s  %s  (left live: %s)" % (_window.format_size(peak), nodeid,
                                                       _window.format_size(live)))
