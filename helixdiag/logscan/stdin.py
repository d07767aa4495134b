"""Standard input as a log (`-`), read once per process.

Standard input can be read only once, yet a run may name it for more than one log (`--qemu-log
- --bridge-log -`) or ask for it again (`watch`). `copy()` reads it the first time into a
private temporary file (mode 0600, removed at exit) and hands out that file's path from then
on, so every scan streams it from disk in bounded memory. A different `sys.stdin` object (a
test harness replacing it) is read afresh.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable

STDIN = "-"
SOURCE = "<stdin>"
_CHUNK = 1 << 16
_lock = threading.Lock()
_copies: dict[int, tuple[object, str]] = {}  # id(sys.stdin) -> (that stdin, its copy's path)


def copy(on_read: Callable[[int], None] | None = None) -> str:
    """The path of standard input's copy (read now, the first time). An I/O error reading it
    is an OSError (the caller names the source)."""
    stream = sys.stdin
    if stream is None:
        raise OSError("standard input is closed")
    with _lock:
        known = _copies.get(id(stream))
        if known is not None and known[0] is stream and os.path.exists(known[1]):
            return known[1]
        fd, path = tempfile.mkstemp(prefix="helixdiag-stdin-", suffix=".log")
        try:
            with os.fdopen(fd, "wb") as out:
                _drain(stream, out, on_read)
        except BaseException:
            _remove(path)
            raise
        _copies[id(stream)] = (stream, path)
        if len(_copies) == 1:
            atexit.register(_cleanup)
        return path


def _drain(stream, out, on_read: Callable[[int], None] | None) -> None:
    raw = getattr(stream, "buffer", None)
    if raw is None:  # stdin replaced by a text-only stream
        while text := stream.read(_CHUNK):
            data = text.encode("utf-8", "replace")
            out.write(data)
            if on_read is not None:
                on_read(len(data))
        return
    read = getattr(raw, "read1", raw.read)
    while data := read(_CHUNK):
        out.write(data)
        if on_read is not None:
            on_read(len(data))


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _cleanup() -> None:
    with _lock:
        for _, path in _copies.values():
            _remove(path)
        _copies.clear()
