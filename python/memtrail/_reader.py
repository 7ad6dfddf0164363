"""ctypes binding of libmemtrail_reader.so (reader.c beside this file).

PROTOTYPES is the whole interface: every function the library exports
(reader.map) with its ctypes signature; the python_exports test checks that
the three lists agree. The library is loaded on first use, so importing the
package costs no dlopen; it sits beside this file, in the build tree
(BUILD/python/memtrail/) and once installed.
"""

import array
import codecs
import ctypes
import errno
import json
import os
import threading

from ctypes import (POINTER, Structure, c_char_p, c_int, c_int64, c_size_t, c_uint32,
                    c_uint64, c_void_p)

LIBRARY = "libmemtrail_reader.so"
ABI = 2   # reader.c's MTRD_ABI


class Block(Structure):
    """mtsnap_block_t (include/memtrail_format.h)."""
    _fields_ = [("address", c_uint64), ("size", c_uint64), ("counter", c_uint64),
                ("stack", c_uint32), ("domain", c_uint32)]


class TimelinePoint(Structure):
    """mta_timeline_point_t (format/snapshot.h)."""
    _fields_ = [("t_ns", c_uint64), ("heap_bytes", c_uint64), ("heap_blocks", c_uint64),
                ("rss_bytes", c_uint64)]


class FrameInfo(Structure):
    """mtrd_frame_t (reader.c)."""
    _fields_ = [("function", c_char_p), ("symbol", c_char_p), ("file", c_char_p),
                ("module", c_char_p), ("kind", c_char_p), ("address", c_uint64),
                ("line", c_uint32), ("inlined", c_uint32), ("hidden", c_uint32)]


_ERR = (ctypes.c_char_p, c_size_t)
PROTOTYPES = {
    "mtrd_abi": (c_int, ()),
    "mtrd_open": (c_int, (c_char_p, POINTER(c_void_p)) + _ERR),
    "mtrd_close": (None, (c_void_p,)),
    "mtrd_free": (None, (c_void_p,)),
    "mtrd_filter_new": (c_void_p, ()),
    "mtrd_filter_add": (c_int, (c_void_p, c_char_p, c_char_p) + _ERR),
    "mtrd_filter_free": (None, (c_void_p,)),
    "mtrd_report_json": (c_int, (c_void_p, c_char_p, c_char_p, c_void_p, POINTER(c_void_p))
                        + _ERR),
    "mtrd_diff_json": (c_int, (c_void_p, c_void_p, c_char_p, c_char_p, c_void_p,
                              POINTER(c_void_p)) + _ERR),
    "mtrd_leaks_json": (c_int, (c_void_p, c_char_p, c_void_p, POINTER(c_void_p)) + _ERR),
    "mtrd_cycles_json": (c_int, (c_void_p, c_int, POINTER(c_void_p)) + _ERR),
    "mtrd_blocks": (c_uint64, (c_void_p, POINTER(POINTER(Block)))),
    "mtrd_select": (c_int, (c_void_p, c_void_p, POINTER(POINTER(c_uint64)), POINTER(c_uint64))),
    "mtrd_nstacks": (c_uint32, (c_void_p,)),
    "mtrd_stack": (c_int64, (c_void_p, c_uint32, POINTER(POINTER(c_uint32)))),
    "mtrd_frame": (c_int, (c_void_p, c_uint32, POINTER(FrameInfo))),
    "mtrd_timeline": (c_uint64, (c_void_p, POINTER(POINTER(TimelinePoint)), POINTER(c_uint64))),
    "mtrd_parse_size": (c_int, (c_char_p, POINTER(c_uint64))),
}

_lib = None
_lock = threading.Lock()


def _json_bytes(err):
    """Bytes that are not UTF-8 read as U+00XX, as the JSON outputs write
    them (docs/report-json.md, Strings)."""
    return "".join(chr(b) for b in err.object[err.start:err.end]), err.end


codecs.register_error("memtrail-bytes", _json_bytes)


def text(b):
    return b.decode("utf-8", "memtrail-bytes") if b is not None else ""


def path():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY)


def lib():
    """The library, loaded and its prototypes set on first use."""
    global _lib
    with _lock:
        if _lib is None:
            where = path()
            try:
                dll = ctypes.CDLL(where)
            except OSError as e:
                raise ImportError("memtrail: cannot load the snapshot reader %s: %s"
                                  % (where, e)) from None
            for name, (restype, argtypes) in PROTOTYPES.items():
                fn = getattr(dll, name)
                fn.restype = restype
                fn.argtypes = list(argtypes)
            if dll.mtrd_abi() != ABI:
                raise ImportError("memtrail: %s has interface %d, this package wants %d "
                                  "(a build mixed with another)" % (where, dll.mtrd_abi(), ABI))
            _lib = dll
    return _lib


class ReaderError(Exception):
    def __init__(self, rc, message):
        super().__init__(message)
        self.errno = -rc


def _err():
    return ctypes.create_string_buffer(1024)


def _fail(rc, err):
    raise ReaderError(rc, text(err.value) or os.strerror(-rc))


def open_snapshot(file):
    """(handle, None) or (None, (rc, message))."""
    h = c_void_p()
    err = _err()
    rc = lib().mtrd_open(os.fsencode(file), ctypes.byref(h), err, len(err))
    if rc < 0:
        return None, (rc, text(err.value) or os.strerror(-rc))
    return h, None


def close(h):
    lib().mtrd_close(h)


def _take_json(rc, out, err):
    if rc < 0:
        _fail(rc, err)
    try:
        data = ctypes.string_at(out.value)
    finally:
        lib().mtrd_free(out)
    return json.loads(data.decode("utf-8"))


def report(h, group_by, metric, flt):
    out, err = c_void_p(), _err()
    rc = lib().mtrd_report_json(h, group_by.encode(), metric.encode(), flt, ctypes.byref(out),
                               err, len(err))
    return _take_json(rc, out, err)


def diff(old, new, group_by, metric, flt):
    out, err = c_void_p(), _err()
    rc = lib().mtrd_diff_json(old, new, group_by.encode(), metric.encode(), flt,
                             ctypes.byref(out), err, len(err))
    return _take_json(rc, out, err)


def leaks(h, kinds, flt):
    out, err = c_void_p(), _err()
    rc = lib().mtrd_leaks_json(h, kinds.encode() if kinds else None, flt, ctypes.byref(out),
                              err, len(err))
    return _take_json(rc, out, err)


def cycles(h, all_):
    out, err = c_void_p(), _err()
    rc = lib().mtrd_cycles_json(h, 1 if all_ else 0, ctypes.byref(out), err, len(err))
    return _take_json(rc, out, err)


class Filter:
    """A C filter built from the CLI's (option, argument) pairs."""

    def __init__(self, options):
        L = lib()
        self._h = L.mtrd_filter_new()
        if not self._h:
            raise MemoryError("memtrail: filter")
        err = _err()
        for opt, arg in options:
            rc = L.mtrd_filter_add(self._h, opt.encode(),
                                  None if arg is None else os.fsencode(arg), err, len(err))
            if rc < 0:
                raise ValueError("memtrail: " + text(err.value))

    @property
    def handle(self):
        return self._h

    def __del__(self):
        if getattr(self, "_h", None) and _lib is not None:
            _lib.mtrd_filter_free(self._h)
            self._h = None


def blocks(h):
    """The snapshot's blocks in place: a ctypes array of Block (kept alive by
    the handle's owner)."""
    p = POINTER(Block)()
    n = lib().mtrd_blocks(h, ctypes.byref(p))
    if n == 0:
        return (Block * 0)()
    return ctypes.cast(p, POINTER(Block * n)).contents


def select(h, flt):
    """Indices of the blocks flt (None: no filter) selects, as an array('Q')."""
    p, n = POINTER(c_uint64)(), c_uint64()
    rc = lib().mtrd_select(h, flt, ctypes.byref(p), ctypes.byref(n))
    if rc < 0:
        raise MemoryError("memtrail: selecting blocks")
    try:
        out = array.array("Q", bytes(8 * n.value))
        if n.value:
            ctypes.memmove(out.buffer_info()[0], p, 8 * n.value)
        return out
    finally:
        lib().mtrd_free(p)


def stack(h, i):
    p = POINTER(c_uint32)()
    depth = lib().mtrd_stack(h, i, ctypes.byref(p))
    if depth < 0:
        raise IndexError("memtrail: no stack %d" % i)
    return p[:depth] if depth else []


def frame(h, f):
    fi = FrameInfo()
    rc = lib().mtrd_frame(h, f, ctypes.byref(fi))
    if rc < 0:
        raise IndexError(f) if rc == -errno.EINVAL else MemoryError("memtrail: frame %d" % f)
    return fi


def timeline(h):
    p, step = POINTER(TimelinePoint)(), c_uint64()
    n = lib().mtrd_timeline(h, ctypes.byref(p), ctypes.byref(step))
    return (p[:n] if n else []), step.value


def parse_size(text_or_int):
    """Bytes from a size as the command line writes them ("24 MB" =
    24,000,000, "512KiB", "64K": include/memtrail_size.h, the one parser);
    an int is taken as it is. ValueError for anything else."""
    if isinstance(text_or_int, int) and not isinstance(text_or_int, bool):
        if text_or_int < 0:
            raise ValueError("memtrail: a size cannot be negative: %d" % text_or_int)
        return text_or_int
    if not isinstance(text_or_int, str):
        raise TypeError("memtrail: a size is a str or an int, not %s" % type(text_or_int).__name__)
    out = c_uint64()
    if lib().mtrd_parse_size(text_or_int.strip().encode(), ctypes.byref(out)) != 0:
        raise ValueError("memtrail: %r is not a size (a number with an optional unit: B, KB, "
                         "MB, GB, TB in powers of 1000, KiB, MiB, GiB, TiB in powers of 1024)"
                         % text_or_int)
    return out.value
