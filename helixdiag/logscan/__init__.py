"""Scan vsockenc GST_DEBUG logs, QEMU `[HELIX]` logs, desktop-bridge's output and
helix-drm-manager's journal for the known signatures.

One declarative table (`SIGNATURES`) holds every known log string (vsockenc, including its
historical formats; the host's init/transport, legacy FRAME_REQUEST and scanout strings;
desktop-bridge's; helix-drm-manager's and the desktop's lease helpers'), each with its log
kind, its meaning, the failure id it proves
(or None for informational and healthy markers), the facts it extracts (the regex's named
groups, plus an init `step` for host lines) and what a matching line does (its `effect`s,
or for the few that need state across lines, the scanner method named as its `handler`).
It is compiled per kind into `RULES` (dispatch and a plan per row). Two scanners run them:

* `scan_gst_log(lines)` → `GstLogSummary`: the per-frame sequence, frame counts, connect
  targets, and the vsockenc findings.
* `scan_qemu_log(lines)` → `QemuLogSummary`: init steps, version banner, listener, clients,
  the scanout frame path (captured, encoded, errors), and the host findings.
* `scan_lines(lines, "bridge")` → `BridgeLogSummary`: desktop-bridge (`docker logs DESKTOP`:
  `[desktop-bridge] ` slog text, zerolog JSON, printf lines): video mode, the scanout id and
  where it came from, the subscriptions and their frames, the reader's end.
* `scan_lines(lines, "drm")` → `DrmLogSummary`: helix-drm-manager (`journalctl -u
  helix-drm-manager`, short or short-iso, or bare slog lines): QEMU address, socket,
  connectors, pool, leases held, in the daemon's last run.

Both stream: they look at one line at a time and keep only counters and bounded samples, so
a 100 MB log is scanned in bounded memory. `scan_file(path, kind="auto")` opens a file (or
a gzip file) with `errors="replace"`, caps every line at `MAX_LINE_CHARS`, and picks the kind
from the first line that only one kind can produce (a desktop-bridge log that turns out to
hold vsockenc GST_DEBUG lines is judged as a vsockenc log). `scan_path(name, kind)` is the
same for a path or `-`, standard input, which is read once per process and kept (several
logs may name it). No scanner raises on any input line.

Matching: a GST_DEBUG line is split into time, level, category, function and message (file
line numbers change between versions and are ignored); the message is matched at its start,
and a signature that names a function only matches lines from that function. Host lines are
matched after the `helix: ` stderr prefix (helix-debug.log has none). Within one dispatch
bucket the table order decides, so more specific strings come first.

Judgement notes (the places where a log alone is ambiguous):

* The HEAD element is pipelined: the reply to frame N is read only when
  frame N+1 arrives. So a healthy log that stops mid-stream ends with "Sent frame N" and one
  frame unanswered. `vsockenc-no-reply` is reported only when the log shows that the next
  frame already started (its resource-id lines, or "Draining last pending frame on stop")
  and no reply came, or, for the synchronous element of 9ea0179fb–0908db89d, when earlier
  frames were answered but the last one was not.
* helix-debug.log is appended across QEMU runs; every "Initializing frame export" after a
  completed init starts a new run, and only the last run is judged (earlier runs are listed).

The package: `signature` (a row), `signatures` (the table; its bridge and drm parts in
`signatures_bridge`, `signatures_drm`), `dispatch` (the table compiled: line → signature →
plan), `summary` (the result types), `scanner` (constants, effect kinds, the shared scanner
base), `gst`, `qemu`, `bridge` and `drm` (the scanners, their effect kinds and stateful
handlers; `slog` takes the Go daemons' lines apart), `stdin` (standard input, read once);
this module holds the entry points.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from helixdiag.errors import ConfigError, UsageError
from helixdiag.logscan import stdin
from helixdiag.logscan.bridge import _BridgeScanner
from helixdiag.logscan.dispatch import RULES, Rules, compile_rules
from helixdiag.logscan.drm import _DrmScanner
from helixdiag.logscan.gst import _GstScanner
from helixdiag.logscan.qemu import _QemuScanner
from helixdiag.logscan.scanner import (
    EVIDENCE_CHARS,
    INIT_STEPS,
    KINDS,
    MAX_LINE_CHARS,
    Effect,
    _Scanner,
)
from helixdiag.logscan.signatures import SIGNATURES, Signature, signatures_for
from helixdiag.logscan.summary import (
    BridgeLogSummary,
    DrmLogSummary,
    GstLogSummary,
    LogSummary,
    Note,
    QemuLogSummary,
    UnknownLogSummary,
)

__all__ = [
    "STDIN",
    "BridgeLogSummary",
    "DrmLogSummary",
    "EVIDENCE_CHARS",
    "INIT_STEPS",
    "KINDS",
    "MAX_LINE_CHARS",
    "RULES",
    "SIGNATURES",
    "Effect",
    "GstLogSummary",
    "LogSummary",
    "Note",
    "QemuLogSummary",
    "Rules",
    "Signature",
    "UnknownLogSummary",
    "compile_rules",
    "scan_file",
    "scan_gst_log",
    "scan_lines",
    "scan_path",
    "scan_qemu_log",
    "scan_stream",
    "signatures_for",
]

# ════════════════════════════════════════════════════════════════════ entry points


def _prepared(lines: Iterable[str | bytes], cut: list[int]) -> Iterator[str]:
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS]
            cut[0] += 1
        yield line.rstrip("\r\n")


def scan_gst_log(lines: Iterable[str]) -> GstLogSummary:
    """Scan vsockenc GST_DEBUG lines (an iterable: consumed lazily, one line at a time)."""
    summary = scan_lines(lines, "gst")
    assert isinstance(summary, GstLogSummary)
    return summary


def scan_qemu_log(lines: Iterable[str]) -> QemuLogSummary:
    """Scan QEMU stderr / helix-debug.log lines (consumed lazily)."""
    summary = scan_lines(lines, "qemu")
    assert isinstance(summary, QemuLogSummary)
    return summary


STDIN = stdin.STDIN
_SCANNERS: dict[str, type[_Scanner]] = {"gst": _GstScanner, "qemu": _QemuScanner,
                                        "bridge": _BridgeScanner, "drm": _DrmScanner}


def _check_kind(kind: str) -> None:
    if kind not in (*KINDS, "auto"):
        raise UsageError(f"unknown log kind {kind!r}: choose auto, {', '.join(KINDS)}")


def scan_lines(lines: Iterable[str | bytes], kind: str = "auto",
               source: str | None = None) -> LogSummary:
    """Scan lines of one kind ("gst", "qemu", "bridge", "drm"), or "auto": decided by the
    first line that only one kind produces (on a tie the order of `KINDS`); with no such line
    the result is an `UnknownLogSummary`. A log taken for desktop-bridge's is also read as a
    vsockenc log, and judged as one when it holds vsockenc GST_DEBUG lines (vsockenc runs
    inside desktop-bridge, so its lines carry the same prefix)."""
    _check_kind(kind)
    cut = [0]
    it = iter(lines) if isinstance(lines, _CappedLines) else _prepared(lines, cut)
    no = 0
    scanners: list[_Scanner]
    if kind == "auto":
        candidates = [_SCANNERS[k](RULES[k]) for k in KINDS]
        chosen: _Scanner | None = None
        for line in it:
            no += 1
            scores = [sc.feed(no, line) for sc in candidates]
            best = max(scores)
            if best:
                chosen = candidates[scores.index(best)]
                break
        if chosen is None:
            unknown = UnknownLogSummary(source=source, lines=no,
                                        binary_lines=candidates[0].binary_lines,
                                        long_lines=cut[0] + getattr(lines, "long_lines", 0))
            unknown.notes.append(Note("unrecognised", "no vsockenc GST_DEBUG line, no QEMU [HELIX] "
                                      "line, no desktop-bridge or helix-drm-manager line: not a "
                                      "log this tool knows (use --kind to force one)"))
            return unknown
        scanners = [chosen]
        if chosen.kind == "bridge":
            scanners.append(next(sc for sc in candidates if sc.kind == "gst"))
    else:
        scanners = [_SCANNERS[kind](RULES[kind])]
    if len(scanners) == 1:
        feed = scanners[0].feed
        for line in it:
            no += 1
            feed(no, line)
    else:
        for line in it:
            no += 1
            for sc in scanners:
                sc.feed(no, line)
    summary = _judged(scanners)
    summary.source = source
    summary.long_lines = cut[0] + getattr(lines, "long_lines", 0)
    return summary


def _judged(scanners: list[_Scanner]) -> LogSummary:
    """The summary of the one scanner, or of a bridge log that holds vsockenc lines: gst."""
    if len(scanners) == 2 and getattr(scanners[1], "vsockenc_lines", 0):
        summary = scanners[1].finish()  # type: ignore[attr-defined]
        summary.notes.append(Note("bridge-lines", "desktop-bridge's own lines are in this log "
                                  "too: scan it with --kind bridge for them"))
        return summary
    return scanners[0].finish()  # type: ignore[attr-defined]


class _CappedLines:
    """Lines of a text stream, each at most `limit` characters; a longer line is cut and its
    rest skipped in `limit`-sized reads, so it is never held whole in memory."""

    def __init__(self, stream: TextIO, limit: int = MAX_LINE_CHARS) -> None:
        self.stream = stream
        self.limit = limit
        self.long_lines = 0

    def __iter__(self) -> Iterator[str]:
        readline = self.stream.readline
        limit = self.limit
        while True:
            line = readline(limit)
            if not line:
                return
            if len(line) >= limit and not line.endswith("\n"):
                self.long_lines += 1
                while True:
                    rest = readline(limit)
                    if not rest or rest.endswith("\n"):
                        break
            yield line


def _reason(exc: BaseException) -> str:
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, (zlib.error, EOFError)):
        return "corrupt or truncated gzip data"
    return str(exc) or type(exc).__name__


def scan_stream(stream: TextIO, kind: str = "auto", source: str | None = None) -> LogSummary:
    """Scan an open text stream (a file, stdin) line by line.

    A read error (I/O error, corrupt gzip data) is a `ConfigError` naming the source."""
    _check_kind(kind)
    try:
        return scan_lines(_CappedLines(stream), kind, source)
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"cannot read {source or 'the log'}: {_reason(exc)}") from None


def scan_file(path: str | os.PathLike[str], kind: str = "auto", *,
              on_read: Callable[[int], None] | None = None) -> LogSummary:
    """Scan one log file (plain text or gzip) in bounded memory. `on_read(n)` is called with
    the bytes of each read, for a progress display (for gzip: the compressed file's bytes, so
    they add up to its size).

    Raises `ConfigError` (exit 2, one line) for a missing file, a directory, no permission or
    a read error; `UsageError` for an unknown kind.
    """
    _check_kind(kind)
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ConfigError(f"cannot read {name}: is a directory")
    try:
        raw = open(name, "rb")  # noqa: SIM115 - closed by the ExitStack below
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {_reason(exc)}") from None
    with contextlib.ExitStack() as stack:
        stack.enter_context(raw)
        try:
            mtime = os.fstat(raw.fileno()).st_mtime
            head = raw.peek(2)[:2]
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {_reason(exc)}") from None
        binary: Any = raw if on_read is None else io.BufferedReader(CountingReader(raw, on_read), READ_CHUNK)
        if head == b"\x1f\x8b":
            binary = stack.enter_context(gzip.GzipFile(fileobj=binary))
        text = stack.enter_context(io.TextIOWrapper(binary, encoding="utf-8", errors="replace"))
        summary = scan_stream(text, kind, name)
    summary.source_age_s = round(max(0.0, time.time() - mtime), 1)
    return summary


def scan_path(name: str, kind: str = "auto", *,
              on_read: Callable[[int], None] | None = None) -> LogSummary:
    """`scan_file` for a path, or for `-`: standard input, read once per process and kept in
    a private temporary file, so several scans (several logs given as `-`, a re-run) all see
    it. `on_read(n)` counts the bytes as they are read (stdin's as they arrive)."""
    _check_kind(kind)
    if name != STDIN:
        return scan_file(name, kind, on_read=on_read)
    try:
        copy = stdin.copy(on_read)
    except (OSError, ValueError) as exc:  # ValueError: stdin already closed
        raise ConfigError(f"cannot read {stdin.SOURCE}: {_reason(exc)}") from None
    summary = scan_file(copy, kind)
    summary.source, summary.source_age_s = stdin.SOURCE, None
    return summary


READ_CHUNK = 1 << 16  # bytes per read: one progress update each


class CountingReader(io.RawIOBase):
    """A binary stream read through, `read(n)` called with the bytes of each read. Closing it
    leaves the stream it reads open (its owner closes that)."""

    def __init__(self, stream: Any, read: Callable[[int], None]) -> None:
        self._stream = stream
        self._read = read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._stream.readinto(buffer) or 0
        if n:
            self._read(n)
        return n
