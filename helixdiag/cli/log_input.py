"""A log named on the command line (a file or `-`), scanned with its bytes counted as they
are read (`logscan.scan_file(on_read=…)`; stdin through the same counting reader). For a gzip
file the bytes counted are the compressed file's, so they add up to its size."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable

from helixdiag import logscan
from helixdiag.errors import ConfigError

STDIN = "-"


def source_name(name: str) -> str:
    """The name a log goes by in the output."""
    return "<stdin>" if name == STDIN else name


def size_of(name: str) -> int | None:
    """The bytes there are to read: a file's size (also when stdin is one); None for a pipe,
    or when it cannot be told."""
    try:
        st = os.fstat(sys.stdin.fileno()) if name == STDIN else os.stat(name)
    except (OSError, ValueError, AttributeError):  # no such file; stdin closed or replaced
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def scan(name: str, kind: str, read: Callable[[int], None]) -> logscan.LogSummary:
    """Scan one log; `read(n)` is called with the bytes of each read. A file that is missing,
    a directory or unreadable is a `ConfigError` (one line)."""
    if name == STDIN:
        return _scan_stdin(kind, read)
    if not os.path.lexists(name):
        raise ConfigError(f"no such file: {name}")
    if os.path.isdir(name):
        raise ConfigError(f"{name} is a directory, not a log file")
    return logscan.scan_file(name, kind, on_read=read)


def _scan_stdin(kind: str, read: Callable[[int], None]) -> logscan.LogSummary:
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # stdin replaced by a text-only stream: nothing to count
        return logscan.scan_stream(sys.stdin, kind, source_name(STDIN))
    text = io.TextIOWrapper(io.BufferedReader(logscan.CountingReader(raw, read), logscan.READ_CHUNK), encoding="utf-8",
                            errors="replace")
    try:
        return logscan.scan_stream(text, kind, source_name(STDIN))
    finally:
        text.detach()  # leave stdin itself open
