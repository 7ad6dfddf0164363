"""Snapshot files as objects shaped like tracemalloc's.

``load(path)`` reads a ``.mtsnap`` file with the analyzer's own reader
(libmemtrail_reader.so, bound in _reader.py) and returns a Snapshot whose
``statistics``, ``compare_to``, ``filter_traces`` and ``traces`` follow
tracemalloc.Snapshot's. The figures come from the analyses of the
``memtrail`` program itself: ``statistics(key)`` is ``memtrail report
--group-by KEY --top 0 --format json``, ``compare_to`` is ``memtrail diff``,
``leaks()`` and ``cycles()`` are ``memtrail leaks`` and ``memtrail cycles``,
each read from the very JSON the program prints (docs/report-json.md). Only
``cumulative=True``, which the program has no option for, is summed here,
from the per-stack figures of that same JSON.

Filters are turned into the program's options (--include, --exclude,
--all-frames, --domain, --exclude-domain) and parsed by the program's parser.
"""

import collections
import collections.abc
import datetime
import errno
import os
import threading

from . import _reader

# tracemalloc's key types, and memtrail's --group-by words, to --group-by.
_KEY_TYPES = {"lineno": "line", "filename": "file", "traceback": "stack",
              "line": "line", "file": "file", "stack": "stack",
              "function": "function", "module": "module"}


class SnapshotError(ValueError):
    """A file that is not a readable memtrail snapshot (truncated, damaged,
    of another format). ``path`` names it; the message says what is wrong."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class Frame:
    """One frame: tracemalloc's ``filename`` and ``lineno``, plus memtrail's
    ``function``, ``module`` (the executable or library, "" for Python),
    ``kind`` ("python" or "native"), ``inlined`` and ``address``."""

    __slots__ = ("filename", "lineno", "function", "module", "kind", "inlined", "address")

    def __init__(self, filename, lineno, function="", module="", kind="python",
                 inlined=False, address=0):
        self.filename = filename
        self.lineno = lineno
        self.function = function
        self.module = module
        self.kind = kind
        self.inlined = inlined
        self.address = address

    def _key(self):
        return (self.filename, self.lineno, self.function, self.module)

    def __eq__(self, other):
        return isinstance(other, Frame) and self._key() == other._key()

    def __lt__(self, other):
        return self._key() < other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        if not self.filename:
            name = self.function or "0x%x" % self.address
            return "%s [%s]" % (name, os.path.basename(self.module)) if self.module else name
        where = "%s:%s" % (self.filename, self.lineno) if self.lineno else self.filename
        return "%s in %s" % (where, self.function) if self.function else where

    def __repr__(self):
        return "<Frame filename=%r lineno=%r function=%r>" % (self.filename, self.lineno,
                                                               self.function)


class Traceback(collections.abc.Sequence):
    """Frames, innermost first (tracemalloc's order since Python 3.7)."""

    __slots__ = ("_frames", "total_nframe")

    def __init__(self, frames, total_nframe=None):
        self._frames = tuple(frames)
        self.total_nframe = len(self._frames) if total_nframe is None else total_nframe

    def __len__(self):
        return len(self._frames)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Traceback(self._frames[i])
        return self._frames[i]

    def __eq__(self, other):
        return isinstance(other, Traceback) and self._frames == other._frames

    def __lt__(self, other):
        return self._frames < other._frames

    def __hash__(self):
        return hash(self._frames)

    def __str__(self):
        return str(self._frames[0]) if self._frames else "[unknown]"

    def __repr__(self):
        return "<Traceback %r>" % (self._frames,)

    def format(self, limit=None, most_recent_first=False):
        """Lines as tracemalloc's Traceback.format writes them."""
        frames = self._frames if most_recent_first else self._frames[::-1]
        if limit is not None:
            frames = frames[:limit] if limit > 0 else frames[limit:]
        lines = []
        for f in frames:
            lines.append('  File "%s", line %s' % (f.filename, f.lineno))
            if f.function:
                lines.append("    in %s" % f.function)
        return lines


class Statistic:
    """A group's live memory: ``traceback``, ``size`` (bytes), ``count``
    (blocks), as tracemalloc's; memtrail's ``key`` (the report's),
    ``peak_size``/``peak_count`` (held at the process-wide peak),
    ``alloc_size``/``alloc_count`` (allocated since tracing began; both
    None with a domain filter) and ``stacks``."""

    __slots__ = ("traceback", "size", "count", "key", "peak_size", "peak_count",
                 "alloc_size", "alloc_count", "stacks")

    def __init__(self, traceback, size, count, key=None, peak_size=None, peak_count=None,
                 alloc_size=None, alloc_count=None, stacks=1):
        self.traceback = traceback
        self.size = size
        self.count = count
        self.key = key if key is not None else str(traceback)
        self.peak_size = peak_size
        self.peak_count = peak_count
        self.alloc_size = alloc_size
        self.alloc_count = alloc_count
        self.stacks = stacks

    def __str__(self):
        avg = " average=%d B" % (self.size // self.count) if self.count else ""
        return "%s: size=%d B, count=%d%s" % (self.key, self.size, self.count, avg)

    def __repr__(self):
        return "<Statistic traceback=%r size=%d count=%d>" % (self.traceback, self.size,
                                                              self.count)


class StatisticDiff:
    """A group's change from an older snapshot: ``traceback``, ``size``,
    ``size_diff``, ``count``, ``count_diff`` as tracemalloc's; memtrail's
    ``key`` (the diff's portable key) and ``status`` ("both", "new" or
    "gone")."""

    __slots__ = ("traceback", "size", "size_diff", "count", "count_diff", "key", "status")

    def __init__(self, traceback, size, size_diff, count, count_diff, key=None,
                 status="both"):
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff
        self.key = key if key is not None else str(traceback)
        self.status = status

    def __str__(self):
        return "%s: size=%d B (%+d B), count=%d (%+d)" % (self.key, self.size, self.size_diff,
                                                         self.count, self.count_diff)

    def __repr__(self):
        return ("<StatisticDiff traceback=%r size=%d (%+d) count=%d (%+d)>"
                % (self.traceback, self.size, self.size_diff, self.count, self.count_diff))


Trace = collections.namedtuple("Trace", "domain size traceback address")
Trace.__doc__ = """A live block: its domain (memtrail's number: 0 native, 1 to 3
Python's raw, mem and object domains, 16 + N an extension's PyTraceMalloc_Track
domain N), its requested size, its traceback and its address."""
Peak = collections.namedtuple("Peak", "size count time_ns time")
Peak.__doc__ = "The process-wide peak of live heap bytes: bytes, blocks, when."
TimelinePoint = collections.namedtuple("TimelinePoint", "t_ns size count rss")
TimelinePoint.__doc__ = """A point of the memory timeline: ns after tracing
began, live heap bytes and blocks (the maximum over the interval), resident set
size (0 when unknown)."""


class Filter:
    """memtrail's own pattern filter: ``memtrail report --include`` (inclusive)
    or ``--exclude``. ``field`` is "file", "function", "module" or None (the
    glob is tried on all three); ``all_frames`` matches on every frame
    instead of the key frame."""

    __slots__ = ("inclusive", "pattern", "field", "all_frames")

    def __init__(self, inclusive, pattern, field=None, all_frames=False):
        if field not in (None, "file", "function", "module"):
            raise ValueError("memtrail.Filter: field must be None, 'file', 'function' or "
                             "'module', not %r" % (field,))
        self.inclusive = bool(inclusive)
        self.pattern = pattern
        self.field = field
        self.all_frames = bool(all_frames)


class DomainFilter:
    """memtrail's domain filter (``--domain`` or ``--exclude-domain``):
    ``domain`` is a name ("native", "python", "raw", "mem", "obj", "mmap") or
    a number as tracemalloc numbers them (0 is Python's own allocations, N an
    extension's PyTraceMalloc_Track domain)."""

    __slots__ = ("inclusive", "domain")

    def __init__(self, inclusive, domain):
        self.inclusive = bool(inclusive)
        self.domain = domain


def _domain_arg(domain):
    if isinstance(domain, int):
        return "python" if domain == 0 else str(domain)
    return str(domain)


def _options(filters):
    """Filters (memtrail's, tracemalloc's) as (option, argument) pairs of the
    CLI, and whether they match on all frames."""
    import tracemalloc
    opts, all_frames = [], set()
    for f in filters:
        if isinstance(f, (Filter, tracemalloc.Filter)):
            if isinstance(f, tracemalloc.Filter):
                if f.lineno is not None or f.domain is not None:
                    raise ValueError("memtrail: a tracemalloc.Filter with lineno or domain: "
                                     "memtrail's filters match files, functions and modules "
                                     "(use a DomainFilter for the domain)")
                arg = "file:" + f.filename_pattern
            else:
                arg = (f.field + ":" if f.field else "") + f.pattern
            opts.append(("include" if f.inclusive else "exclude", arg))
            all_frames.add(bool(f.all_frames))
        elif isinstance(f, (DomainFilter, tracemalloc.DomainFilter)):
            opts.append(("domain" if f.inclusive else "exclude-domain", _domain_arg(f.domain)))
        else:
            raise TypeError("memtrail: filters are memtrail.Filter, memtrail.DomainFilter, "
                            "tracemalloc.Filter or tracemalloc.DomainFilter, not %s"
                            % type(f).__name__)
    if len(all_frames) > 1:
        raise ValueError("memtrail: the filters of one snapshot match either all frames or "
                         "the key frame, not both")
    return opts, (all_frames.pop() if all_frames else None)


class _Handle:
    """The loaded file: closed when the last Snapshot using it goes."""

    def __init__(self, h, path):
        self.h = h
        self.path = path
        self.blocks = None
        self.stacks = {}
        self.frames = {}
        # ctypes lets go of the GIL in every call: the reader's lazily
        # filled name cache (frames, selections) is used under this lock.
        self.lock = threading.Lock()

    def close(self):
        if self.h is not None:
            self.blocks = None   # it points into the C snapshot
            _reader.close(self.h)
            self.h = None

    def __del__(self):
        self.close()

    def get(self):
        if self.h is None:
            raise ValueError("memtrail: snapshot %s is closed" % self.path)
        return self.h


def load(path):
    """Read a memtrail snapshot (``*.mtsnap``). Raises FileNotFoundError and
    the other OSErrors for a file that cannot be opened, SnapshotError for
    one that is not a valid snapshot."""
    path = os.fspath(path)
    h, failure = _reader.open_snapshot(path)
    if failure:
        rc, message = failure
        if -rc in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
                   errno.ELOOP, errno.ENAMETOOLONG):
            raise OSError(-rc, message, path)
        raise SnapshotError(message, path)
    return Snapshot(_Handle(h, path), (), None)


class Snapshot:
    """A snapshot file, read (``memtrail.load``). See the module's help."""

    def __init__(self, handle, options, all_frames):
        self._handle = handle
        self._options = tuple(options)      # the CLI filter options, all_frames aside
        self._all_frames = all_frames
        self._filter = None
        self._summary = None
        self._selected = None

    # ---- the file ----
    @property
    def path(self):
        return self._handle.path

    def close(self):
        """Release the file's memory now (else when the last Snapshot made
        from it is gone)."""
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _c_filter(self):
        if not self._options and not self._all_frames:
            return None
        if self._filter is None:
            opts = list(self._options)
            if self._all_frames:
                opts.append(("all-frames", None))
            self._filter = _reader.Filter(opts)
        return self._filter.handle

    def _report(self, group_by, metric="live"):
        return _reader.report(self._handle.get(), group_by, metric, self._c_filter())

    def _summarize(self):
        if self._summary is None:
            self._summary = self._report("module")
        return self._summary

    @property
    def info(self):
        """Where the snapshot comes from: the ``snapshot`` object of the
        report's JSON (pid, trigger, label, time_ns, cmdline, exe, ...)."""
        return dict(self._summarize()["snapshot"])

    @property
    def size(self):
        """Live bytes of the blocks the filters select (all without filters)."""
        return self._summarize()["selected_bytes"]

    @property
    def count(self):
        """Live blocks of the blocks the filters select."""
        return self._summarize()["selected_blocks"]

    @property
    def filtered(self):
        return bool(self._options)

    @property
    def peak(self):
        """The process-wide peak (Peak: size, count, time_ns, time). With
        filters, size is the selected stacks' bytes at that moment (None with
        a domain filter) and count the process's blocks."""
        s = self._summarize()
        size = s["selected_peak_bytes"] if s["filtered"] else s["peak_bytes"]
        t = s["peak_time_ns"]
        when = (datetime.datetime.fromtimestamp(t / 1e9, datetime.timezone.utc)
                if t else None)
        return Peak(size, s["peak_blocks"], t, when)

    @property
    def timeline(self):
        """The memory timeline (TimelinePoint per step), or None when the
        snapshot has none."""
        points, step = _reader.timeline(self._handle.get())
        if not step:
            return None
        return [TimelinePoint(p.t_ns, p.heap_bytes, p.heap_blocks, p.rss_bytes)
                for p in points]

    # ---- tracemalloc's API ----
    def filter_traces(self, filters):
        """A new Snapshot of the blocks the filters select: memtrail.Filter,
        memtrail.DomainFilter, tracemalloc.Filter (without lineno or domain)
        and tracemalloc.DomainFilter. A block is kept when it matches one of
        the inclusive pattern filters (if any) and none of the exclusive
        ones, and its domain passes the domain filters, as ``memtrail
        report --include/--exclude/--domain`` selects."""
        opts, all_frames = _options(filters)
        if self._all_frames is not None and all_frames is not None and \
                self._all_frames != all_frames:
            raise ValueError("memtrail: filter_traces: all_frames differs from the "
                             "snapshot's earlier filters")
        for inclusive in ("include", "domain"):
            if any(o == inclusive for o, _ in opts) and \
                    any(o == inclusive for o, _ in self._options):
                raise ValueError("memtrail: filter_traces on a snapshot already filtered by "
                                 "inclusive %s filters: give them all in one call"
                                 % ("pattern" if inclusive == "include" else "domain"))
        return Snapshot(self._handle, self._options + tuple(opts),
                        all_frames if all_frames is not None else self._all_frames)

    def statistics(self, key_type, cumulative=False):
        """Statistics per group, largest first: key_type "lineno",
        "filename", "traceback" (tracemalloc's), "function" or "module"
        (memtrail's; "line", "file" and "stack" are accepted too). The
        figures are ``memtrail report --group-by KEY --top 0``'s. With
        cumulative=True each frame of a stack counts the stack's memory once
        (tracemalloc's rule; not with "traceback")."""
        group_by = _group_by(key_type)
        if cumulative:
            if group_by == "stack":
                raise ValueError("cumulative mode cannot by used with key type 'traceback'")
            return self._cumulative(group_by)
        j = self._report(group_by)
        return [_statistic(e, group_by) for e in j["entries"]]

    def compare_to(self, old_snapshot, key_type, cumulative=False):
        """StatisticDiff per group, from old_snapshot to this one, largest
        change first: ``memtrail diff OLD NEW --group-by KEY --top 0``. The
        groups are matched by a key made of names, never addresses: the
        snapshots may come from different runs. This snapshot's filters are
        applied to both; old_snapshot must have none or the same."""
        if not isinstance(old_snapshot, Snapshot):
            raise TypeError("compare_to: old_snapshot must be a memtrail Snapshot")
        if old_snapshot._options and (old_snapshot._options, old_snapshot._all_frames) != \
                (self._options, self._all_frames):
            raise ValueError("compare_to: old_snapshot has other filters than this snapshot")
        group_by = _group_by(key_type)
        if cumulative:
            if group_by == "stack":
                raise ValueError("cumulative mode cannot by used with key type 'traceback'")
            return _cumulative_diff(old_snapshot._cumulative(group_by, self),
                                    self._cumulative(group_by))
        j = _reader.diff(old_snapshot._handle.get(), self._handle.get(), group_by, "live",
                         self._c_filter())
        out = []
        for e in j["entries"]:
            out.append(StatisticDiff(_traceback(e["frames"], group_by), e["bytes"],
                                     e["bytes_diff"], e["blocks"], e["blocks_diff"], e["key"],
                                     e["status"]))
        return out

    @property
    def traces(self):
        """The live blocks the filters select, as a sequence of Trace
        (built on access: a 1 M-block snapshot makes no 1 M objects until
        they are read). As in the reports, the mmap domain's blocks are in
        only when a DomainFilter names it."""
        return _Traces(self)

    # ---- memtrail's analyses ----
    def leaks(self, kinds=None):
        """``memtrail leaks --format json --kind KINDS`` as Python objects
        (``summary`` and ``leaks``; docs/leaks.md): the leak scan's loss
        records, of the kinds listed ("definite,possible" by default; "all").
        Raises ValueError when the snapshot has no leak scan."""
        try:
            return _reader.leaks(self._handle.get(), kinds, self._c_filter())
        except _reader.ReaderError as e:
            raise ValueError(str(e)) from None

    def cycles(self, all=False):
        """``memtrail cycles --format json`` as Python objects: the garbage
        and alive reference cycles and the refcount leaks of the snapshot's
        Python object graph (docs/cycles.md); all=True lists every finding,
        not only the program's. Raises ValueError when the snapshot has no
        object graph (only exit snapshots of Python processes do)."""
        try:
            return _reader.cycles(self._handle.get(), all)
        except _reader.ReaderError as e:
            raise ValueError(str(e)) from None

    # ---- helpers ----
    def _cumulative(self, group_by, filters_of=None):
        src = filters_of or self
        j = _reader.report(self._handle.get(), "stack", "live", src._c_filter())
        sums = {}
        for e in j["entries"]:
            seen = set()
            for f in e["frames"]:
                fr = _frame(f)
                if group_by == "line":
                    key = fr
                elif group_by == "file":
                    key = Frame(fr.filename, 0, "", fr.module if not fr.filename else "",
                                fr.kind)
                elif group_by == "function":
                    key = Frame("", 0, fr.function, fr.module, fr.kind)
                else:
                    key = Frame("", 0, "", fr.module, fr.kind)
                if key in seen:
                    continue
                seen.add(key)
                s = sums.get(key)
                if s is None:
                    sums[key] = [e["bytes"], e["blocks"]]
                else:
                    s[0] += e["bytes"]
                    s[1] += e["blocks"]
        stats = [Statistic(Traceback([k]), b, n) for k, (b, n) in sums.items()]
        stats.sort(key=lambda s: (-s.size, -s.count, s.traceback))
        return stats

    def __repr__(self):
        return "<memtrail.Snapshot %s%s>" % (self.path, " (filtered)" if self._options else "")


def _cumulative_diff(old, new):
    olds = {s.traceback: s for s in old}
    out = []
    for s in new:
        o = olds.pop(s.traceback, None)
        out.append(StatisticDiff(s.traceback, s.size, s.size - (o.size if o else 0), s.count,
                                 s.count - (o.count if o else 0),
                                 status="both" if o else "new"))
    for o in olds.values():
        out.append(StatisticDiff(o.traceback, 0, -o.size, 0, -o.count, status="gone"))
    out.sort(key=lambda d: (-abs(d.size_diff), -d.size, -abs(d.count_diff), -d.count,
                            d.traceback))
    return out


def _group_by(key_type):
    try:
        return _KEY_TYPES[key_type]
    except (KeyError, TypeError):
        raise ValueError("unknown key_type: %r (lineno, filename, traceback, function, module)"
                         % (key_type,)) from None


def _frame(f):
    return Frame(f["file"], f["line"], f["function"], f["module"], f["kind"],
                 bool(f.get("inlined", False)), int(f["address"], 16))


def _traceback(frames, group_by):
    fs = [_frame(f) for f in frames]
    if group_by == "file":
        for f in fs:
            f.lineno = 0
    return Traceback(fs)


def _statistic(e, group_by):
    return Statistic(_traceback(e["frames"], group_by), e["bytes"], e["blocks"], e["key"],
                     e["peak_bytes"], e["peak_blocks"], e["alloc_bytes"], e["alloc_blocks"],
                     e["stacks"])


class _Traces(collections.abc.Sequence):
    """Snapshot.traces: the selected blocks, read in place."""

    def __init__(self, snap):
        handle = snap._handle
        self._handle = handle
        if handle.blocks is None:
            handle.blocks = _reader.blocks(handle.get())
        self._blocks = handle.blocks
        with handle.lock:
            self._index = _reader.select(handle.get(), snap._c_filter())

    def __len__(self):
        return len(self._index)

    def _traceback(self, stack):
        h = self._handle
        tb = h.stacks.get(stack)
        if tb is not None:
            return tb
        with h.lock:
            frames = []
            for fi in _reader.stack(h.get(), stack):
                fr = h.frames.get(fi)
                if fr is None:
                    info = _reader.frame(h.get(), fi)
                    fr = None if info.hidden else Frame(
                        _reader.text(info.file), info.line, _reader.text(info.function),
                        _reader.text(info.module), _reader.text(info.kind),
                        bool(info.inlined), info.address)
                    h.frames[fi] = fr
                if fr is not None:
                    frames.append(fr)
            tb = h.stacks[stack] = Traceback(frames)
        return tb

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("trace index out of range")
        self._handle.get()   # ValueError once closed: the blocks are gone
        b = self._blocks[self._index[i]]
        return Trace(b.domain, b.size, self._traceback(b.stack), b.address)
