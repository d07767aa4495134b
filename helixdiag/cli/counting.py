"""Work counted as it happens, for progress displays, without hooks in the library: the
frames an exchange sends and receives (client.exchange takes a frame source and a place to
save what comes back: both are wrapped), (the bytes a log scan reads are counted by
`logscan.scan_file(on_read=…)` itself)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO

from helixdiag.frames import SyntheticSource


class FrameCount:
    """An exchange's frames so far: `sent` (each frame its source makes is sent next),
    `received` and the H.264 bytes they carried (each reply is written to its save_to).
    `changed(self)` is called after every count, from the exchange's thread."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.h264_bytes = 0
        self.started = time.monotonic()
        self.changed: Callable[[FrameCount], None] = FrameCount.ignore

    @staticmethod
    def ignore(count: FrameCount) -> None:
        """What `changed` does when nothing displays the counts."""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Frames received per second so far."""
        elapsed = self.elapsed
        return self.received / elapsed if elapsed > 0 else 0.0

    def source(self, inner: SyntheticSource) -> _CountingSource:
        """`inner`, each frame it makes counted as sent (for ExchangeOptions.source)."""
        return _CountingSource(inner, self)

    def sink(self, inner: BinaryIO | None) -> _CountingSink:
        """Writes to `inner` (if any), each write counted as a received frame (for
        ExchangeOptions.save_to)."""
        return _CountingSink(inner, self)


class _CountingSource:
    def __init__(self, inner: SyntheticSource, count: FrameCount) -> None:
        self._inner, self._count = inner, count
        self.width, self.height, self.format = inner.width, inner.height, inner.format
        self.layout = inner.layout

    def frame(self, n: int) -> bytearray:
        pixels = self._inner.frame(n)
        self._count.sent += 1
        self._count.changed(self._count)
        return pixels


class _CountingSink:
    def __init__(self, inner: BinaryIO | None, count: FrameCount) -> None:
        self._inner, self._count = inner, count

    def write(self, data: bytes) -> int:
        written = self._inner.write(data) if self._inner is not None else len(data)
        self._count.received += 1
        self._count.h264_bytes += len(data)
        self._count.changed(self._count)
        return written

