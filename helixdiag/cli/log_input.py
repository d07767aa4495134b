"""A log named on the command line (a file or `-`), scanned with its bytes counted as they
are read (`logscan.scan_path(on_read=…)`: standard input is read once into a private copy,
the same path `run --qemu-log -` takes). For a gzip file the bytes counted are the compressed
file's, so they add up to its size."""

from __future__ import annotations

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
    if name != STDIN:
        if not os.path.lexists(name):
            raise ConfigError(f"no such file: {name}")
        if os.path.isdir(name):
            raise ConfigError(f"{name} is a directory, not a log file")
    return logscan.scan_path(name, kind, on_read=read)
