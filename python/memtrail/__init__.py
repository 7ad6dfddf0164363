"""memtrail: memory profiler and leak tracer (docs/python.md).

In a process run under ``memtrail run`` (traced):

    import memtrail
    memtrail.is_tracing()            # True
    path = memtrail.snapshot("after-warmup")
    memtrail.output_dir()

What a stretch of the program allocated, exactly (a measurement window;
the pytest plugin memtrail.pytest_plugin measures each test so):

    with memtrail.Window() as w:
        run_the_job()
    print(w.stats.peak_size, w.stats.size)      # at its peak; still live
    for stat in w.stats.statistics("lineno", "peak")[:5]:
        print(stat)

Everywhere (traced or not): snapshots read as tracemalloc-like objects,

    snap = memtrail.load(path)
    for stat in snap.statistics("lineno")[:10]:
        print(stat)
    diffs = snap.compare_to(memtrail.load(older), "lineno")

``load`` and the classes are imported on first use: importing the package
in a traced process loads neither ctypes nor the snapshot reader.
"""

from . import _build
from ._tracer import NotTracedError, is_tracing, output_dir, snapshot
from ._window import Window, WindowStats, WindowSite, WindowStatistic, format_size

__version__ = _build.VERSION

_LAZY = ("load", "Snapshot", "SnapshotError", "Statistic", "StatisticDiff", "Trace", "Frame",
         "Traceback", "Filter", "DomainFilter", "Peak", "TimelinePoint")

__all__ = ["is_tracing", "snapshot", "output_dir", "NotTracedError", "Window", "WindowStats",
           "WindowSite", "WindowStatistic", "format_size", "parse_size"] + list(_LAZY)


def __getattr__(name):
    if name == "parse_size":
        from ._reader import parse_size
        globals()[name] = parse_size
        return parse_size
    if name in _LAZY:
        from . import _snapshot
        value = getattr(_snapshot, name)
        globals()[name] = value
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
