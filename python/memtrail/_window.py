"""Measurement windows: what a stretch of a traced program allocated.

A window is opened and closed by the thread that measures (``begin`` and
``end``); between the two, the tracer counts every block allocated, by any
thread, and follows it until it is freed (preload/writer/window.c; design
in docs/python.md, *Measurement windows*). At the end it gives, exactly:

- ``peak_size``/``peak_count``: the highest total of the window's own
  blocks that was live at once (blocks allocated before the window and
  freed in it lower nothing);
- ``size``/``count``: the window's blocks still live at its end (what it
  leaked, if the caller ran ``gc.collect()`` first);
- ``allocated_size``/``allocated_count``: every block it allocated;
- the same per stack (``sites``), and per line, file, function or stack
  with ``statistics()``.

Figures are heap bytes and blocks as in the snapshots (the mmap domain is
left out); with ``memtrail run --sample`` they are estimates. Up to 8
windows may be open at once in a process, nested or overlapping.

Importing this module loads neither ctypes nor the snapshot reader.
"""

import collections

from . import _tracer

Frame = collections.namedtuple("WindowFrame", "filename lineno function")
Frame.__str__ = lambda f: "%s:%d" % (f.filename, f.lineno)
_UNKNOWN = Frame("<unknown>", 0, "")


class WindowSite:
    """One stack's figures: ``traceback`` (tuple of frames, innermost first:
    ``filename``, ``lineno``, ``function``; Python frames only),
    ``size``/``count`` (still live at the end), ``peak_size``/``peak_count``
    (live at the window's peak), ``allocated_size``/``allocated_count``."""

    __slots__ = ("traceback", "size", "count", "peak_size", "peak_count",
                 "allocated_size", "allocated_count")

    def __init__(self, raw):
        frames, self.size, self.count, self.peak_size, self.peak_count, \
            self.allocated_size, self.allocated_count = raw
        self.traceback = tuple(Frame(*f) for f in frames)

    def __repr__(self):
        return "<WindowSite %s size=%d peak_size=%d allocated_size=%d>" % (
            self.traceback[0] if self.traceback else _UNKNOWN, self.size, self.peak_size,
            self.allocated_size)


class WindowStatistic:
    """A group of sites: ``traceback`` (the key's frames), ``size``, ``count``
    (of the figure asked for), largest first, as tracemalloc's Statistic."""

    __slots__ = ("traceback", "size", "count")

    def __init__(self, traceback, size, count):
        self.traceback, self.size, self.count = traceback, size, count

    def __str__(self):
        where = str(self.traceback[0]) if self.traceback else str(_UNKNOWN)
        if self.traceback and self.traceback[0].lineno == 0:
            where = self.traceback[0].filename
        return "%s: size=%s, count=%d" % (where, format_size(self.size), self.count)

    def __repr__(self):
        return "<WindowStatistic %s>" % self


_FIGURES = {"peak": ("peak_size", "peak_count"), "live": ("size", "count"),
            "allocated": ("allocated_size", "allocated_count")}


def _key(site, key_type):
    tb = site.traceback
    top = tb[0] if tb else _UNKNOWN
    if key_type == "lineno":
        return (top,)
    if key_type == "filename":
        return (Frame(top.filename, 0, ""),)
    if key_type == "function":
        return (Frame(top.filename, 0, top.function),)
    if key_type == "traceback":
        return tb or (_UNKNOWN,)
    raise ValueError("memtrail: unknown key_type %r (lineno, filename, function, traceback)"
                     % (key_type,))


class WindowStats:
    """A closed window's figures (the module's docstring)."""

    def __init__(self, raw):
        (self.peak_size, self.peak_count, self.size, self.count, self.allocated_size,
         self.allocated_count, sites) = raw
        self.sites = [WindowSite(s) for s in sites]

    def statistics(self, key_type="lineno", figure="peak"):
        """WindowStatistic per key, largest first, groups of 0 bytes left
        out. key_type: "lineno" (the innermost Python frame), "filename",
        "function", "traceback". figure: "peak" (live at the window's
        peak), "live" (still live at its end), "allocated"."""
        if figure not in _FIGURES:
            raise ValueError("memtrail: unknown figure %r (peak, live, allocated)" % (figure,))
        fsize, fcount = _FIGURES[figure]
        groups = {}
        for s in self.sites:
            k = _key(s, key_type)
            g = groups.get(k)
            if g is None:
                g = groups[k] = [0, 0]
            g[0] += getattr(s, fsize)
            g[1] += getattr(s, fcount)
        stats = [WindowStatistic(k, b, n) for k, (b, n) in groups.items() if b > 0]
        stats.sort(key=lambda st: (-st.size, -st.count, tuple(map(tuple, st.traceback))))
        return stats

    def __repr__(self):
        return "<WindowStats peak_size=%d size=%d allocated_size=%d sites=%d>" % (
            self.peak_size, self.size, self.allocated_size, len(self.sites))


class Window:
    """A measurement window of this process: ``begin()`` ... ``end()``, or
    ``with memtrail.Window() as w: ...`` and then ``w.stats``.

    ``begin()`` raises NotTracedError when the process is not traced, and
    OSError (EBUSY) when 8 windows are open already. ``end()`` returns the
    WindowStats (also kept as ``stats``)."""

    def __init__(self):
        self._slot = None
        self.stats = None

    def begin(self):
        if self._slot is not None:
            raise RuntimeError("memtrail: this window is open already")
        t = _tracer._tracer()
        if t is None or not hasattr(t, "window_begin"):
            raise _tracer.NotTracedError("memtrail.Window: this process is not traced "
                                         "(run it under `memtrail run`)")
        self.stats = None
        self._slot = t.window_begin()
        return self

    def end(self):
        if self._slot is None:
            raise RuntimeError("memtrail: this window is not open")
        slot, self._slot = self._slot, None
        self.stats = WindowStats(_tracer._tracer().window_end(slot))
        return self.stats

    def __enter__(self):
        return self.begin()

    def __exit__(self, *exc):
        self.end()
        return False


def format_size(n):
    """Bytes for people: 1,234 B below 10 KiB, else KiB, MiB, GiB with one
    decimal (powers of 1024, named so)."""
    if n < 10 * 1024:
        return "{:,} B".format(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024.0
        if n < 1024 or unit == "TiB":
            return "%.1f %s" % (n, unit)
