"""The in-process side: what a traced process asks its tracer.

A process run under ``memtrail run`` (or with libmemtrail.so preloaded) has
the tracer's built-in module in ``sys.modules`` (its name is
``_build.TRACER_MODULE``, defined in include/memtrail_protocol.h; the tracer
adds it in preload/hook/pyhooks.c). Every function here delegates to it, so
there is one implementation: the tracer's. In a process that is not traced
the module is absent and these functions say so without failing.
"""

import sys

from . import _build


class NotTracedError(RuntimeError):
    """``snapshot(strict=True)`` in a process memtrail does not trace."""


def _tracer():
    return sys.modules.get(_build.TRACER_MODULE)


def is_tracing():
    """Whether memtrail records this process's allocations now."""
    t = _tracer()
    return t is not None and bool(t.is_tracing())


def snapshot(label=None, strict=False):
    """Write a snapshot of this process now and return the new file's path.

    When the process is not traced, return None, or with ``strict=True``
    raise NotTracedError. A traced process that cannot write the snapshot
    raises OSError (the directory is gone, the disk is full).
    """
    if label is not None and not isinstance(label, str):
        raise TypeError("memtrail.snapshot: label must be a str or None, not %s"
                        % type(label).__name__)
    t = _tracer()
    if t is None:
        if strict:
            raise NotTracedError("memtrail.snapshot: this process is not traced "
                                 "(run it under `memtrail run`)")
        return None
    return t.snapshot(label)


def output_dir():
    """The directory this process writes its snapshots to (absolute), or
    None when it is not traced."""
    t = _tracer()
    return None if t is None else t.output_dir()
