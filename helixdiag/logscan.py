"""Scan vsockenc GST_DEBUG logs and QEMU `[HELIX]` logs for the known signatures.

One declarative table (`SIGNATURES`) holds every log string of FAILURES.md §3 (vsockenc,
including the historical formats), §4 (host: 4.1 init/transport, 4.2 legacy FRAME_REQUEST,
4.3 scanout) and §4.4 (guest Go strings), each with its log kind, its meaning, the failure id
it proves (or None for informational and healthy markers) and the facts it extracts (the
regex's named groups, plus an init `step` for host lines). Two scanners read it:

* `scan_gst_log(lines)` → `GstLogSummary`: the per-frame sequence, frame counts, connect
  targets, and the vsockenc findings.
* `scan_qemu_log(lines)` → `QemuLogSummary`: init steps, version banner, listener, clients,
  and the host findings.

Both stream: they look at one line at a time and keep only counters and bounded samples, so
a 100 MB log is scanned in bounded memory. `scan_file(path, kind="auto")` opens a file (or
a gzip file) with `errors="replace"`, caps every line at `MAX_LINE_CHARS`, and picks the kind
from the first line that only one kind can produce. No scanner raises on any input line.

Matching follows FAILURES.md §0: a GST_DEBUG line is split into time, level, category,
function and message (file line numbers change between versions and are ignored); the
message is matched at its start, and a signature that names a function only matches lines
from that function. Host lines are matched after the `helix: ` stderr prefix (helix-debug.log
has none). Within one dispatch bucket the table order decides, so more specific strings come
first.

Judgement notes (the places where a log alone is ambiguous):

* The HEAD element is pipelined (PROTOCOL.md §10.4): the reply to frame N is read only when
  frame N+1 arrives. So a healthy log that stops mid-stream ends with "Sent frame N" and one
  frame unanswered. `vsockenc-no-reply` is reported only when the log shows that the next
  frame already started (its resource-id lines, or "Draining last pending frame on stop")
  and no reply came, or, for the synchronous element of 9ea0179fb–0908db89d, when earlier
  frames were answered but the last one was not.
* helix-debug.log is appended across QEMU runs; every "Initializing frame export" after a
  completed init starts a new run, and only the last run is judged (earlier runs are listed).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from helixdiag.errors import ConfigError, UsageError
from helixdiag.failures import CATALOG
from helixdiag.findings import Finding, worst_status

__all__ = [
    "EVIDENCE_CHARS",
    "INIT_STEPS",
    "KINDS",
    "MAX_LINE_CHARS",
    "SIGNATURES",
    "GstLogSummary",
    "LogSummary",
    "Note",
    "QemuLogSummary",
    "Signature",
    "UnknownLogSummary",
    "scan_file",
    "scan_gst_log",
    "scan_lines",
    "scan_qemu_log",
    "scan_stream",
    "signatures_for",
]

MAX_LINE_CHARS = 64 * 1024  # longer lines are cut here; the rest of the line is skipped
EVIDENCE_CHARS = 240  # evidence lines are trimmed to this
KINDS = ("gst", "qemu")
_SAMPLES = 20  # bounded lists (connect targets, subscribes, earlier runs …)

# Host progress ladder: where a QEMU run got to. "reply" exists only on the legacy
# FRAME_REQUEST path; a healthy scanout run ends at "encode".
INIT_STEPS = ("init", "version", "listening", "accepting", "client", "request", "encode", "reply")
_STEP_INDEX = {s: i for i, s in enumerate(INIT_STEPS)}

# vsockenc generations (FAILURES.md §3 "historical strings", PROTOCOL.md §0).
_ERAS = {
    "head": "HEAD (65042b748 or later: pipelined, one request in flight)",
    "sync": "9ea0179fb–0908db89d (synchronous request/reply)",
    "pre-pipelining": "9aa275186–0908db89d (TCP, before pipelining)",
    "recv-thread": "b608802f0–9aa275186 (receive thread)",
    "p0": "8eaee4cf9 (P0 'simple' protocol)",
    "old-connect": "8eaee4cf9–b608802f0",
    "gem-handle": "65042b748 or earlier (GEM handle used as resource id)",
}
_NOT_PIPELINED = {"sync", "pre-pipelining", "recv-thread", "p0", "old-connect"}

_MSG_TYPES = {
    1: "FRAME_REQUEST", 2: "FRAME_RESPONSE", 3: "KEYFRAME_REQ", 4: "CONFIG_REQ", 5: "CONFIG_RESP",
    16: "PING", 17: "PONG", 32: "ENABLE_SCANOUT", 33: "DISABLE_SCANOUT", 34: "SCANOUT_RESP",
    48: "SUBSCRIBE", 49: "SUBSCRIBE_RESP", 255: "ERROR",
}


# ════════════════════════════════════════════════════════════════════ the signature table


@dataclass(frozen=True)
class Signature:
    """One known log string.

    `failure_id` None means informational or a healthy marker. `when` says that the id applies
    only under a condition the scanner checks (e.g. a non-zero status). `note` makes the line
    an informational note (with `related` as the id to read about). `era` dates a vsockenc
    string; `gen` says which host generations print it. `anywhere` signatures are searched
    for anywhere in a line (Go log lines, which carry their own prefixes) via `needle`.
    """

    name: str
    kind: str  # "gst" | "qemu"
    regex: re.Pattern[str]
    meaning: str
    failure_id: str | None = None
    func: str | None = None  # gst: the function the message comes from (e.g. "connect")
    level: str | None = None  # documented level
    step: str | None = None  # qemu: the INIT_STEPS rung this line proves
    era: str | None = None  # gst: element generation key (_ERAS)
    gen: str | None = None  # qemu: host generations that print it (H0–H4)
    source: str = "§3"  # where in FAILURES.md the string is listed
    when: str | None = None  # the failure id applies only when this holds
    note: bool = False
    related: str | None = None
    anywhere: bool = False
    needle: str | None = None
    detect: bool = True  # may decide the log kind in auto mode

    @property
    def extracts(self) -> tuple[str, ...]:
        """The facts this signature extracts (named groups), plus the init step if any."""
        names = tuple(self.regex.groupindex)
        return (*names, "step") if self.step else names

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "pattern": self.regex.pattern,
            "meaning": self.meaning, "failure_id": self.failure_id, "when": self.when,
            "extracts": list(self.extracts), "step": self.step, "func": self.func,
            "level": self.level, "era": self.era, "gen": self.gen, "source": self.source,
            "related": self.related,
        }


def _sig(kind: str, name: str, pattern: str, meaning: str, failure_id: str | None = None,
         **kw: Any) -> Signature:
    return Signature(name=f"{kind}.{name}", kind=kind, regex=re.compile(pattern, re.ASCII),
                     meaning=meaning, failure_id=failure_id, **kw)


def _g(name: str, pattern: str, meaning: str, failure_id: str | None = None, **kw: Any) -> Signature:
    return _sig("gst", name, pattern, meaning, failure_id, **kw)


def _q(name: str, pattern: str, meaning: str, failure_id: str | None = None, **kw: Any) -> Signature:
    kw.setdefault("source", "§4.1")
    return _sig("qemu", name, pattern, meaning, failure_id, **kw)


_N = r"-?\d{1,20}"  # a (possibly negative) decimal, bounded so int() is always safe
_U = r"\d{1,20}"
_HEX = r"0x[0-9a-fA-F]{1,16}"
_PTR = r"\S{1,40}"
_H = r"\[HELIX\] "
_IP = r"[^\s:]{1,255}"
_ERR = r"(?P<error>.*)"

CONNECT_FAILED = "vsockenc-connect-failed"
NO_REPLY = "vsockenc-no-reply"
DESYNC = "vsockenc-desync"
HOST_ERROR = "vsockenc-host-error"
PEER_CLOSED = "vsockenc-peer-closed"

_GST: tuple[Signature, ...] = (
    # ── connect (gst_vsockenc_connect) ──
    _g("unix-socket-failed", rf"Failed to create UNIX socket: {_ERR}",
       "socket-path mode: socket() failed", CONNECT_FAILED, func="connect", level="ERROR", detect=False),
    _g("vsock-connect-failed", rf"Failed to connect to vsock (?P<cid>{_U}):(?P<port>{_U}): {_ERR}",
       "no vsock device or listener (vsock never worked on macOS)", CONNECT_FAILED,
       func="connect", level="ERROR"),
    _g("tcp-connect-failed", rf"Failed to connect to (?P<host>{_IP}):(?P<port>{_U}): {_ERR}",
       "TCP connect failed: nothing listening / wrong port (Connection refused), routing "
       "(Network is unreachable)", CONNECT_FAILED, func="connect", level="ERROR"),
    _g("unix-connect-failed", rf"Failed to connect to (?P<path>.+?): {_ERR}",
       "Unix socket path missing or nobody listening", CONNECT_FAILED, func="connect", level="ERROR"),
    _g("unix-connected", r"Connected via UNIX socket: (?P<path>.*)",
       "connected over the Unix socket (socket-path)", func="connect", level="INFO"),
    _g("tcp-socket-failed", rf"Failed to create TCP socket: {_ERR}",
       "socket() failed for TCP", CONNECT_FAILED, func="connect", level="ERROR", detect=False),
    _g("tcp-invalid-host", r"Invalid TCP host address: (?P<host>.*)",
       "tcp-host must be a numeric IPv4 literal (inet_pton, no DNS)", CONNECT_FAILED,
       func="connect", level="ERROR"),
    _g("tcp-connected",
       rf"Connected via TCP to (?P<host>{_IP}):(?P<port>{_U}) \(TCP_NODELAY, sndbuf=1MB\)",
       "TCP connection established (does not prove a live backend, see socat)",
       func="connect", level="INFO", era="head"),
    _g("vsock-socket-failed", rf"Failed to create vsock socket: {_ERR}",
       "no AF_VSOCK support", CONNECT_FAILED, func="connect", level="ERROR"),
    _g("vsock-connected", rf"Connected via vsock to (?P<cid>{_U}):(?P<port>{_U})",
       "connected over AF_VSOCK", func="connect", level="INFO"),
    # ── DRM / resource id (open_drm, get_resource_id) ──
    _g("drm-open-failed", r"Failed to open DRM device: (?P<error>.+)",
       "neither /dev/dri/renderD128 nor /dev/dri/card0 openable (DMA-BUF input only)",
       func="open_drm", level="WARNING", note=True),
    _g("drm-opened", rf"Opened DRM device fd=(?P<fd>{_N})", "DRM device opened",
       func="open_drm", level="INFO"),
    _g("not-dmabuf", r"Buffer is not DMA-BUF backed",
       "SHM input: resource_id=0, the frame's pixels go over TCP (normal on UTM)",
       func="get_resource_id", level="WARNING", related="pipewire-shm-buffers"),
    _g("dmabuf-fd-failed", r"Failed to get DMA-BUF fd", "DMA-BUF fd lookup failed",
       func="get_resource_id", level="WARNING"),
    _g("prime-failed", rf"PRIME_FD_TO_HANDLE failed \(fd=(?P<fd>{_N})\): {_ERR}",
       "DMA-BUF from another driver, or permissions", func="get_resource_id", level="WARNING"),
    _g("resource-info-failed", rf"VIRTGPU_RESOURCE_INFO failed \(gem=(?P<gem>{_U})\): {_ERR}",
       "not a virtio-gpu buffer object", func="get_resource_id", level="WARNING"),
    _g("dmabuf-resource",
       rf"DMA-BUF fd=(?P<fd>{_N}) -> GEM handle=(?P<gem>{_U}) -> resource_id=(?P<resource_id>{_U})"
       rf" \(size=(?P<size>{_U}), blob_mem=(?P<blob_mem>{_U})\)",
       "zero-copy virtio-gpu resource id found", func="get_resource_id", level="INFO", era="head"),
    # ── replies (finish_pending) ──
    _g("read-header-failed", r"Failed to read response header for pending frame",
       "EOF/reset while waiting for a reply: the host closed the connection; frame dropped",
       PEER_CLOSED, func="finish_pending", level="ERROR", era="head"),
    _g("bad-magic", rf"Invalid response magic for pending frame: (?P<magic>{_HEX})",
       "reply does not start with HXFR: stream desync, frame dropped, no resync", DESYNC,
       func="finish_pending", level="ERROR", era="head"),
    _g("host-error", rf"Host encoder error (?P<code>{_N}): (?P<text>.*)",
       "the host answered with an ERROR message; frame dropped", HOST_ERROR,
       func="finish_pending", level="ERROR"),
    _g("unexpected-type", rf"Unexpected message type: (?P<msg_type>{_N})",
       "a non-FRAME_RESPONSE was consumed as the reply (e.g. 17 PONG, 49 SUBSCRIBE_RESP): "
       "one frame dropped, then one frame behind", DESYNC, func="finish_pending", level="WARNING"),
    _g("short-body", r"Failed to read frame response body",
       "short read of the 24-byte response body", DESYNC, func="finish_pending", level="ERROR"),
    _g("short-nal-size", r"Failed to read NAL size", "short read of a NAL size", DESYNC,
       func="finish_pending", level="WARNING"),
    _g("short-nal-data", r"Failed to read NAL data", "short read of NAL data", DESYNC,
       level="WARNING"),  # also the P0 element's string (other function)
    _g("finished",
       rf"Finished pending frame pts=(?P<pts>{_N}) keyframe=(?P<keyframe>{_U}) "
       rf"nal_count=(?P<nal_count>{_U}) total_size=(?P<total_size>{_U})",
       "reply consumed, H.264 pushed downstream (pts is the response's)",
       "stream-nal-count", when="nal_count > 1", func="finish_pending", level="DEBUG", era="head"),
    _g("drain", r"Draining last pending frame on stop",
       "blocking read of the last reply at pipeline stop (hangs if the host never replies)",
       func="stop", level="DEBUG", era="head"),
    # ── requests (handle_frame) ──
    _g("not-connected", r"Not connected to host encoder",
       "connect failed earlier: every frame returns GST_FLOW_ERROR", CONNECT_FAILED,
       func="handle_frame", level="ERROR"),
    _g("no-resource-id", r"Failed to get resource ID for frame",
       "the request will carry pixels (resource_id=0)", func="handle_frame", level="WARNING"),
    _g("write-request-failed", rf"Failed to write frame request: {_ERR}",
       "56-byte request write failed (Broken pipe …): pipeline error", PEER_CLOSED,
       func="handle_frame", level="ERROR"),
    _g("write-pixels-failed", rf"Failed to write pixel data: {_ERR}",
       "pixel payload write failed: pipeline error, marked disconnected", PEER_CLOSED,
       func="handle_frame", level="ERROR"),
    _g("sent-pixels", rf"Sent (?P<bytes>{_U}) bytes of pixel data",
       "pixel payload size of this request", "gst-bgra-bandwidth",
       when="4 bytes/pixel and over 1 MB", func="handle_frame", level="DEBUG"),
    _g("sent-frame",
       rf"Sent frame (?P<frame>{_U}), resource_id=(?P<resource_id>{_U}), "
       rf"size=(?P<width>{_U})x(?P<height>{_U}), keyframe=(?P<keyframe>{_U})",
       "request sent; the number is the running frame count", func="handle_frame", level="DEBUG"),
    # ── historical element strings (FAILURES.md §3, "not at HEAD") ──
    _g("old.connected", r"Connected to host encoder$", "connected (old element)",
       level="INFO", era="old-connect"),
    _g("old.drm-open-failed", r"Failed to open DRM device$",
       "DRM device not openable (old element)", level="WARNING", era="gem-handle", note=True),
    _g("old.gem-failed", rf"Failed to get GEM handle from DMA-BUF: {_ERR}",
       "DMA-BUF to GEM handle failed (old element)", level="WARNING", era="gem-handle"),
    _g("old.gem-resource", rf"DMA-BUF fd (?P<fd>{_N}) -> GEM handle/resource ID (?P<resource_id>{_U})",
       "old element sends the process-local GEM handle as the resource id (FAILURES.md #10): "
       "the ids do not name the frame's resource", level="DEBUG", era="gem-handle", note=True),
    _g("old.write-header-failed", r"Failed to write header$", "write failed (P0 element)",
       PEER_CLOSED, level="ERROR", era="p0"),
    _g("old.write-request-failed", r"Failed to write frame request$", "write failed (P0 element)",
       PEER_CLOSED, level="ERROR", era="p0"),
    _g("old.connection-lost", r"Connection lost$", "connection lost (P0 element)", PEER_CLOSED,
       level="WARNING", era="p0"),
    _g("old.read-header-failed", r"Failed to read response header$",
       "EOF/reset while waiting for the reply (P0 / synchronous element)", PEER_CLOSED,
       level="ERROR"),
    _g("old.recv-started", r"Receive thread started", "receive thread running (old element)",
       level="DEBUG", era="recv-thread"),
    _g("old.recv-exiting", r"Receive thread exiting", "receive thread stopped (old element)",
       level="DEBUG", era="recv-thread"),
    _g("old.pong", r"Received pong", "PONG received (old element)", level="DEBUG", era="recv-thread"),
    _g("old.finished",
       rf"Finished frame pts=(?P<pts>{_N}) keyframe=(?P<keyframe>{_U}) "
       rf"nal_count=(?P<nal_count>{_U}) total_size=(?P<total_size>{_U})",
       "reply consumed (receive-thread or synchronous element)", "stream-nal-count",
       when="nal_count > 1", level="DEBUG"),
    _g("old.connection-lost-header", r"Connection lost reading header",
       "the host closed the connection (receive-thread element)", PEER_CLOSED, level="WARNING",
       era="recv-thread"),
    _g("old.invalid-message-magic", rf"Invalid message magic: (?P<magic>{_HEX})",
       "reply does not start with HXFR (receive-thread element)", DESYNC, level="WARNING",
       era="recv-thread", detect=False),
    _g("old.read-frame-response-failed", r"Failed to read frame response$",
       "short read of the response (receive-thread / synchronous element)", DESYNC, level="WARNING"),
    _g("old.no-pending-frame", rf"No pending frame for pts=(?P<pts>{_N})",
       "a reply matched no pending request (receive-thread element)", DESYNC, level="WARNING",
       era="recv-thread"),
    _g("old.unknown-type", rf"Unknown message type: (?P<msg_type>{_N})",
       "unexpected message type (receive-thread element)", DESYNC, level="WARNING",
       era="recv-thread", detect=False),
    _g("old.tcp-connected", rf"Connected via TCP to (?P<host>{_IP}):(?P<port>{_U})$",
       "TCP connection established (element before pipelining)", level="INFO",
       era="pre-pipelining"),
    _g("old.invalid-response-magic", rf"Invalid response magic: (?P<magic>{_HEX})",
       "reply does not start with HXFR (synchronous element)", DESYNC, level="ERROR", era="sync"),
    # ── desktop-bridge (FAILURES.md §0) and guest Go strings (§4.4): anywhere in a line ──
    _g("bridge.pipeline", r"\[SHARED_VIDEO\] Pipeline: (?P<pipeline>.*)",
       "the full GStreamer pipeline string", source="§0", anywhere=True,
       needle="[SHARED_VIDEO] Pipeline:"),
    _g("bridge.native-source", r"\[STREAM\] macOS ARM virtio-gpu detected, using native "
       r"pipewiresrc with NV12", "source choice on macOS ARM", source="§0", anywhere=True,
       needle="[STREAM] macOS ARM virtio-gpu detected"),
    _g("go.bad-magic", rf"bad magic: (?P<magic>{_HEX})", "Go scanout reader: reply is not HXFR",
       "stream-bad-magic", source="§4.4", anywhere=True, needle="bad magic: 0x"),
    _g("go.unexpected-type", rf"unexpected msg_type: (?P<msg_type>{_HEX})",
       "Go scanout reader: a message of the wrong type", "stream-protocol-error", source="§4.4",
       anywhere=True, needle="unexpected msg_type: "),
    _g("go.read-nal-size", rf"read nal_size: {_ERR}", "Go scanout reader: short read",
       source="§4.4", anywhere=True, needle="read nal_size: ", note=True, related="stream-closed"),
    _g("go.read-nal-data", rf"read nal_data: {_ERR}", "Go scanout reader: short read",
       source="§4.4", anywhere=True, needle="read nal_data: ", note=True, related="stream-closed"),
    _g("go.disable-connect-failed", r"connect to QEMU for disable failed",
       "helix-drm-manager could not connect to disable a scanout", source="§4.4", anywhere=True,
       needle="connect to QEMU for disable failed", note=True),
    _g("go.connect-failed", rf"connect to QEMU (?P<addr>\S{{1,300}}:\d{{1,5}}): {_ERR}",
       "the scanout client could not connect to QEMU", "stream-connect-failed", source="§4.4",
       anywhere=True, needle="connect to QEMU "),
    _g("go.subscribed", r"subscribed to QEMU scanout", "scanout subscription accepted",
       source="§4.4", anywhere=True, needle="subscribed to QEMU scanout"),
    _g("go.frame-read-error", r"QEMU frame read error", "the scanout reader stopped on an error",
       source="§4.4", anywhere=True, needle="QEMU frame read error", note=True,
       related="stream-closed"),
    _g("go.frame-dropped", r"scanout frame dropped \(channel full\)",
       "encoded scanout frame dropped: up to ~1 s of corruption until the next keyframe (#56)",
       source="§4.4", anywhere=True, needle="scanout frame dropped (channel full)"),
    _g("go.stats", r"scanout stream stats", "periodic scanout statistics", source="§4.4",
       anywhere=True, needle="scanout stream stats"),
    _g("go.config-sent", r"sent CONFIG_REQ to QEMU", "bitrate change sent", source="§4.4",
       anywhere=True, needle="sent CONFIG_REQ to QEMU"),
    _g("go.config-failed", r"failed to send CONFIG_REQ", "bitrate change could not be sent",
       source="§4.4", anywhere=True, needle="failed to send CONFIG_REQ", note=True),
    _g("go.subscribe-failed", rf"subscribe to scanout (?P<scanout>{_U}): {_ERR}",
       "SUBSCRIBE could not be sent", source="§4.4", anywhere=True,
       needle="subscribe to scanout ", note=True, related="stream-closed"),
    _g("go.subscribe-response", rf"subscribe response: {_ERR}",
       "no valid SUBSCRIBE_RESP (the Go client waits 5 s)", source="§4.4", anywhere=True,
       needle="subscribe response: ", note=True, related="stream-no-reply"),
    _g("go.subscribe-rejected", rf"subscribe rejected for scanout (?P<scanout>{_U})",
       "the host rejected the subscription", source="§4.4", anywhere=True,
       needle="subscribe rejected for scanout", note=True),
    _g("go.drm-lease", rf"request DRM lease: {_ERR}", "DRM lease request failed (#61)",
       source="§4.4", anywhere=True, needle="request DRM lease: ", note=True),
    _g("go.qemu-error", r"QEMU error: (?P<text>.*)", "the host sent ERROR on the scanout path",
       source="§4.4", anywhere=True, needle="QEMU error: ", note=True),
    _g("go.scanout-enabled", r"QEMU confirmed scanout enabled", "scanout enabled",
       source="§4.4", anywhere=True, needle="QEMU confirmed scanout enabled"),
    _g("go.scanout-refused", rf"QEMU refused to enable scanout (?P<scanout>{_U})",
       "the host refused to enable a scanout", source="§4.4", anywhere=True,
       needle="QEMU refused to enable scanout", note=True),
    _g("go.disable-no-response", r"read disable response failed",
       "no reply to DISABLE_SCANOUT: the host never sends one (10 s stall, #62)", source="§4.4",
       anywhere=True, needle="read disable response failed", note=True),
    _g("go.scanout-disabled", r"QEMU confirmed scanout disabled", "scanout disabled",
       source="§4.4", anywhere=True, needle="QEMU confirmed scanout disabled"),
    _g("go.using-vsockenc", r"using vsockenc \((?P<why>macOS VideoToolbox via vsock|forced via "
       r"HELIX_ENCODER)\)", "desktop-bridge chose the vsockenc encoder", source="§4.4",
       anywhere=True, needle="using vsockenc ("),
    _g("go.scanout-mode", r"starting scanout mode \(QEMU H\.264 via TCP\)",
       "desktop-bridge uses scanout mode: vsockenc is not used (#60)", source="§4.4",
       anywhere=True, needle="starting scanout mode"),
)

_QEMU: tuple[Signature, ...] = (
    # ── §4.1 init ──
    _q("h0-init", rf"Helix frame export initialized on vsock port (?P<port>{_U})",
       "H0 placeholder init: no listener exists", "qemu-not-listening", step="init", gen="H0"),
    _q("init", rf"{_H}Initializing frame export on vsock port (?P<port>{_U})",
       "init entered (the number is the TCP/proxy port despite the word vsock)", step="init",
       gen="H1–H4"),
    _q("banner", r"={10,200}$", "banner around the version", gen="H2–H4", anywhere=True,
       needle="==========", detect=False),
    _q("version", rf"{_H}VERSION: (?P<version>.+)", "host build identity", step="version",
       gen="H2–H4"),
    _q("build", rf"{_H}BUILD: (?P<build>.+)", "host build description", gen="H2–H4"),
    _q("alloc-failed-debug", r"\[HELIX-DEBUG\] Failed to allocate HelixFrameExport",
       "out of memory at init", "qemu-init-failed", gen="H1–H2"),
    _q("alloc-failed", rf"{_H}Failed to allocate HelixFrameExport", "out of memory at init",
       "qemu-init-failed", gen="H3–H4"),
    _q("already-initialized", rf"{_H}Already initialized, updating virtio_gpu pointer",
       "second init call (reset/resize): expected, harmless after the fix (#37)", gen="H3–H4"),
    _q("unix-socket-failed", rf"Failed to create UNIX socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H1", detect=False),
    _q("unix-bind-failed", rf"Failed to bind UNIX socket: {_ERR}",
       "the socket path is taken (stale socket file): no frame export", "qemu-bind-failed", gen="H1"),
    _q("unix-listen-failed", rf"Failed to listen on UNIX socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H1"),
    _q("ready-unix", rf"{_H}Frame export ready: socket=(?P<path>.*), proxy=(?P<proxy_host>{_IP})"
       rf":(?P<port>{_U})", "Unix listener up; socat must forward the port", step="listening",
       gen="H1"),
    _q("tcp-socket-failed", rf"Failed to create TCP socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H2–H4", detect=False),
    _q("tcp-bind-failed", rf"Failed to bind TCP socket on port (?P<port>{_U}): {_ERR}",
       "another process (often a stale QEMU) holds the port: no frame export", "qemu-bind-failed",
       gen="H2–H4"),
    _q("tcp-listen-failed", rf"Failed to listen on TCP socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H2–H4"),
    _q("accept-thread-failed", rf"Failed to create accept thread: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H2–H4"),
    _q("ready-tcp", rf"{_H}Frame export ready: TCP (?P<host>{_IP}):(?P<port>{_U}) "
       rf"\(guest: (?P<guest_host>{_IP}):(?P<guest_port>{_U})\)", "listener up on this port",
       step="listening", gen="H2–H4"),
    _q("waiting", rf"{_H}Waiting for (?P<who>guest|client) connection\.\.\.",
       "accept loop idle (printed before every accept)", step="accepting", gen="H1–H4"),
    _q("guest-connected", rf"{_H}Guest connected!", "TCP/Unix accept", step="client", gen="H1–H2"),
    _q("client-connected", rf"{_H}Client connected \(fd=(?P<fd>{_N})\)", "TCP accept",
       step="client", gen="H3–H4"),
    _q("accept-failed", rf"{_H}Accept failed: {_ERR}",
       "the accept loop has exited: listener dead until QEMU restarts", "qemu-init-failed"),
    _q("guest-disconnected", rf"{_H}Guest disconnected", "client gone (EOF, error, timeout)",
       gen="H1–H2"),
    _q("recv-timeout", rf"{_H}Client recv timeout \((?P<idle>[^)]{{1,40}}) idle\), disconnecting",
       "SO_RCVTIMEO fired: idle client dropped (#14, #20)", gen="H2/H3"),
    _q("recv-error", rf"{_H}vsock recv error: {_ERR}", "socket error on the client connection",
       gen="H2", note=True),
    _q("recv-error-h1", rf"vsock recv error: {_ERR}", "socket error on the client connection",
       gen="H0–H1", note=True),
    _q("invalid-magic", rf"{_H}Invalid message magic: (?P<magic>{_HEX})",
       "desync or non-HXFR client: the host closes the connection", "stream-closed", gen="H2"),
    _q("invalid-magic-h1", rf"Invalid message magic: (?P<magic>{_HEX})",
       "desync or non-HXFR client: the host answers ERROR -1 (H1 framing, #28)", HOST_ERROR,
       gen="H0–H1", detect=False),
    _q("unknown-type", rf"{_H}Unknown message type: (?P<msg_type>{_N})",
       "message type skipped (e.g. 3 KEYFRAME_REQ, 48 SUBSCRIBE on an H2 host)", gen="H2"),
    _q("unknown-type-h1", rf"Unknown message type: (?P<msg_type>{_N})",
       "message type unknown: the host answers ERROR -1 (#28)", HOST_ERROR, gen="H0–H1",
       detect=False),
    _q("read-body-failed", rf"{_H}Failed to read (?P<what>frame request|config request) body",
       "short read: the host drops the client", "stream-closed", gen="H2"),
    _q("pixel-alloc-failed", rf"{_H}Failed to allocate (?P<bytes>{_U}) bytes for pixel data",
       "pixel buffer allocation failed: the host drops the client", "stream-closed", gen="H2"),
    _q("pixel-read-failed", rf"{_H}Failed to read pixel data \((?P<bytes>{_U}) bytes\)",
       "short pixel read: the host drops the client", "stream-closed", gen="H2"),
    _q("received-pixels", rf"{_H}Received (?P<bytes>{_U}) bytes of pixel data",
       "pixel payload read", step="request", gen="H2"),
    _q("added-client", rf"{_H}Added client (?P<client>{_U}) \(fd=(?P<fd>{_N})\)",
       "client slot assigned", step="client", gen="H3–H4"),
    _q("no-slots", rf"{_H}No client slots available, rejecting",
       "all 16 client slots in use: the new client is closed", "stream-closed", gen="H3–H4"),
    _q("client-thread-failed", rf"{_H}Failed to create client thread",
       "no handler thread: the client is dropped", "stream-closed", gen="H3–H4"),
    _q("client-arg-failed", rf"{_H}Failed to allocate client thread arg",
       "no handler thread: the client is dropped", "stream-closed", gen="H3–H4"),
    _q("fcntl-failed", rf"{_H}CRITICAL: fcntl O_NONBLOCK failed \(fd=(?P<fd>{_N})\): "
       r"(?P<error>.*?) \S{1,3} rejecting client to prevent potential deadlock",
       "client rejected", "stream-closed", gen="H4"),
    _q("handler-started", rf"{_H}Client (?P<client>{_U}) handler started \(fd=(?P<fd>{_N})\)",
       "per-client thread running", step="client", gen="H3–H4"),
    _q("client-invalid-magic", rf"{_H}Client (?P<client>{_U}): invalid magic (?P<magic>{_HEX})",
       "desync or non-HXFR client: client dropped", "stream-closed", gen="H3–H4"),
    _q("subscribe", rf"{_H}Client (?P<client>{_U}) subscribing to scanout (?P<scanout>{_U}) "
       rf"\(fe=(?P<fe>[^\s)]{{1,40}}) g_fe=(?P<g_fe>[^\s)]{{1,40}})\)",
       "SUBSCRIBE received; differing pointers mean a double init (#37): subscribers invisible",
       "stream-no-reply", when="fe != g_fe", step="request", gen="H3–H4"),
    _q("after-subscribe", rf"{_H}After subscribe: client\[(?P<client>{_U})\]\.active=(?P<active>{_U})"
       rf" \.subscribed=(?P<subscribed>{_U}) \.scanout=(?P<scanout>{_U})", "subscription state",
       gen="H3–H4"),
    _q("config-req", rf"{_H}Client (?P<client>{_U}) CONFIG_REQ: scanout=(?P<scanout>{_U}) "
       rf"bitrate=(?P<bitrate>{_N})", "bitrate change request", step="request", gen="H3–H4"),
    _q("enable-scanout", rf"{_H}ENABLE_SCANOUT: id=(?P<scanout>{_U}), (?P<width>{_U})x"
       rf"(?P<height>{_U})(?:@(?P<refresh>{_U}))?", "scanout enabled by helix-drm-manager",
       gen="H3"),
    _q("enable-read-failed", rf"{_H}Failed to read enable_scanout payload",
       "short read of ENABLE_SCANOUT: client dropped", "stream-closed", gen="H3"),
    _q("control-send-failed", rf"{_H}Client (?P<client>{_U}): failed to send "
       r"(?P<what>SUBSCRIBE_RESP|SCANOUT_RESP|PONG)",
       "control reply not deliverable within 10 s: client dropped", "stream-closed", gen="H4"),
    _q("client-disconnected", rf"{_H}Client (?P<client>{_U}) disconnected", "client gone",
       gen="H3–H4"),
    _q("removing-client", rf"{_H}Removing client (?P<client>{_U}) \(fd=(?P<fd>{_N}), "
       rf"scanout=(?P<scanout>{_U})\)", "client slot freed", gen="H3–H4"),
    _q("send-failed", rf"{_H}Failed to send to client (?P<client>{_U}) \(scanout (?P<scanout>{_U})"
       rf"\): {_ERR}", "frame push failed (client gone or not draining)", gen="H3", note=True),
    _q("send-error", rf"{_H}Send error client (?P<client>{_U}) \(scanout (?P<scanout>{_U})\): "
       rf"{_ERR}", "frame push failed (non-EAGAIN)", gen="H3-late/H4", note=True),
    _q("partial-send-close", rf"{_H}Partial send to client (?P<client>{_U}): (?P<sent>{_N})/"
       rf"(?P<total>{_U}) bytes.*closing to prevent stream corruption",
       "congestion: the host closes the client after a partial frame (#56)", "stream-closed",
       gen="H4"),
    _q("partial-send", rf"{_H}Partial send to client (?P<client>{_U}): (?P<sent>{_N})/"
       rf"(?P<total>{_U}) bytes", "congestion: frame dropped after encoding, corruption up to the "
       "next keyframe (#56)", gen="H3-late", note=True),
    _q("client-dropping", rf"{_H}Client (?P<client>{_U}): dropping frame \((?P<detail>.*)\)",
       "client not draining: frames dropped (#56)", gen="later than H4"),
    # ── §4.2 legacy FRAME_REQUEST (H1–H3) ──
    _q("frame-request-pixels", rf"{_H}Frame request: resource_id=(?P<resource_id>{_U}), "
       rf"(?P<width>{_U})x(?P<height>{_U}), pts=(?P<pts>{_N}), pixel_data=(?P<pixel_data>YES|NO) "
       rf"\((?P<pixel_bytes>{_U}) bytes\)",
       "request parsed; pixel_data=NO means the VM console is encoded (#39)",
       "stream-wrong-picture", when="pixel_data=NO", step="request", gen="H2–H3", source="§4.2"),
    _q("frame-request", rf"{_H}Frame request: resource_id=(?P<resource_id>{_U}), (?P<width>{_U})x"
       rf"(?P<height>{_U}), pts=(?P<pts>{_N})$", "request parsed", step="request", gen="H1",
       source="§4.2"),
    _q("frame-request-raw", rf"{_H}Frame request RAW: resource_id=(?P<resource_id>{_U}), "
       rf"width=(?P<width>{_U}) \({_HEX}\), height=(?P<height>{_U}) \({_HEX}\), pts=(?P<pts>{_N})",
       "request parsed (with hex for layout checks)", step="request", gen="H1b", source="§4.2"),
    _q("configuring-encoder", rf"{_H}Configuring encoder: (?P<width>{_U})x(?P<height>{_U}), "
       r"8Mbps, realtime", "new VideoToolbox session (first frame / size change)", step="encode",
       gen="H1–H3", source="§4.2"),
    _q("encoder-session-failed", rf"{_H}Failed to create encoder session",
       "VideoToolbox session not created: ERROR -99", "encoder-unavailable", gen="H1–H3",
       source="§4.2"),
    _q("resource0-rejected", rf"{_H}resource_id=0 not supported - guest must provide explicit "
       r"resource ID from DmaBuf", "this build rejects resource_id=0: ERROR -2", HOST_ERROR,
       gen="H1b", source="§4.2"),
    _q("scanout0-resource", rf"{_H}Current scanout\[0\] resource_id=(?P<resource_id>{_U})",
       "resource_id=0 replaced by scanout 0: the VM console is encoded (#39)",
       "stream-wrong-picture", gen="H1", source="§4.2"),
    _q("using-scanout-resource", rf"{_H}Using scanout resource_id=(?P<resource_id>{_U})",
       "resource_id=0 replaced by scanout 0: the VM console is encoded (#39)",
       "stream-wrong-picture", gen="H1", source="§4.2"),
    _q("no-scanout-resource", rf"{_H}No scanout resource (?:set|available)",
       "no scanout to substitute for resource_id=0", gen="H1", source="§4.2", note=True),
    _q("looking-up", rf"{_H}Looking up resource_id=(?P<resource_id>{_U})", "resource lookup",
       gen="H1–H3", source="§4.2"),
    _q("get-info-failed", rf"{_H}virgl_renderer_resource_get_info_ext failed: ret=(?P<ret>{_N})",
       "resource lookup failed", gen="H1–H3", source="§4.2", note=True),
    _q("resource-info", rf"{_H}Resource (?P<resource_id>{_U}): native_type=(?P<native_type>{_N}), "
       rf"width=(?P<width>{_U}), height=(?P<height>{_U}), depth=(?P<depth>{_U})",
       "resource details", gen="H1", source="§4.2"),
    _q("no-metal-texture", rf"{_H}Resource (?P<resource_id>{_U}) doesn't have Metal texture, "
       r"creating one\.\.\.", "zero-copy Metal attempt", gen="H1", source="§4.2"),
    _q("create-handle-failed", rf"{_H}create_handle_for_scanout failed: type=(?P<type>{_N}) "
       rf"\(expected (?P<expected>{_N})\)", "zero-copy Metal attempt failed (ANGLE)", gen="H1",
       source="§4.2", note=True),
    _q("metal-created", rf"{_H}Successfully created Metal texture for resource "
       rf"(?P<resource_id>{_U})", "Metal texture created", gen="H1", source="§4.2"),
    _q("metal-null", rf"{_H}Resource (?P<resource_id>{_U}) has NULL Metal texture",
       "no Metal texture", gen="H1", source="§4.2", note=True),
    _q("metal-got", rf"{_H}Got Metal texture (?P<texture>{_PTR}) for resource (?P<resource_id>{_U})",
       "Metal texture found", gen="H1", source="§4.2"),
    _q("metal-no-iosurface", rf"{_H}Metal texture has no IOSurface backing - virglrenderer must "
       r"create IOSurface-backed textures", "zero-copy impossible under ANGLE", gen="H1",
       source="§4.2", note=True),
    _q("iosurface-got", rf"{_H}Got IOSurface (?P<surface>{_PTR}) \(width=(?P<width>{_U}), "
       rf"height=(?P<height>{_U})\)", "IOSurface found", gen="H1", source="§4.2"),
    _q("iosurface-resource-failed", rf"{_H}Failed to get IOSurface for resource "
       rf"(?P<resource_id>{_U})", "no IOSurface for the resource: ERROR -2", HOST_ERROR, gen="H1",
       source="§4.2"),
    _q("metal-note", rf"{_H}NOTE: Only scanout resources have Metal texture backing",
       "explains the ERROR -2", gen="H1", source="§4.2"),
    _q("invalid-dimensions", rf"{_H}Invalid resource dimensions", "resource rejected",
       gen="H1b+", source="§4.2", note=True),
    _q("too-small", rf"{_H}Resource (?P<resource_id>{_U}) dimensions too small \((?P<width>{_U})x"
       rf"(?P<height>{_U})\), skipping", "resources under 64x64 rejected", gen="H1b+",
       source="§4.2", note=True),
    _q("map-attempt", rf"{_H}Attempting direct resource map for resource (?P<resource_id>{_U})",
       "readback path 1", gen="H1b+", source="§4.2"),
    _q("map-ok", rf"{_H}Successfully mapped resource (?P<resource_id>{_U}): (?P<ptr>{_PTR}), "
       rf"size=(?P<size>{_U})", "readback path 1", gen="H1b+", source="§4.2"),
    _q("map-copied", rf"{_H}Copied (?P<bytes>{_U}) bytes from mapped resource", "readback path 1",
       gen="H1b+", source="§4.2"),
    _q("copy-alloc-failed", rf"{_H}Failed to allocate copy buffer", "readback allocation failed",
       gen="H1b+", source="§4.2", note=True),
    _q("map-failed", rf"{_H}Resource map failed \(ret=(?P<ret>{_N})\), trying transfer_read_iov",
       "readback falls back to path 2", gen="H1b+", source="§4.2"),
    _q("transfer-reading", rf"{_H}Reading pixel data from resource (?P<resource_id>{_U}) "
       rf"\((?P<width>{_U})x(?P<height>{_U})\) via transfer",
       "readback path 2 (hangs forever without virgl_renderer_force_ctx_0, #41)", gen="H1b+",
       source="§4.2"),
    _q("revalidating", rf"{_H}Re-validating resource (?P<resource_id>{_U}) before transfer",
       "race check", gen="H1b+", source="§4.2"),
    _q("revalidation", rf"{_H}Re-validation: ret=(?P<ret>{_N}),", "race check", gen="H1b+",
       source="§4.2"),
    _q("resource-freed", rf"{_H}ERROR: Resource (?P<resource_id>{_U}) no longer valid "
       rf"\(ret=(?P<ret>{_N})\) - likely freed by compositor",
       "the compositor freed the scanout between lookup and transfer (#40)", gen="H1b+",
       source="§4.2", note=True),
    _q("race-condition", rf"{_H}This is the race condition - scanout was freed between lookup "
       r"and transfer", "readback race (#40)", gen="H1b+", source="§4.2"),
    _q("still-valid", rf"{_H}Resource (?P<resource_id>{_U}) still valid, proceeding with transfer",
       "race check passed", gen="H1b+", source="§4.2"),
    _q("transfer-about", rf"{_H}About to call virgl_renderer_transfer_read_iov",
       "transfer starts; without a later COMPLETED this is the crash/hang signature (#40, #41)",
       gen="H1b+", source="§4.2"),
    _q("transfer-params", rf"{_H}Transfer params: resource=(?P<resource_id>{_U}), ctx=0, "
       rf"stride=(?P<stride>{_U})", "transfer parameters", gen="H1b+", source="§4.2"),
    _q("transfer-completed", rf"{_H}\S{{0,4}} ?virgl_renderer_transfer_read_iov COMPLETED "
       rf"successfully: ret=(?P<ret>{_N})", "transfer done", gen="H1b+", source="§4.2"),
    _q("transfer-failed", rf"{_H}virgl_renderer_transfer_read_iov failed: ret=(?P<ret>{_N})",
       "transfer failed", gen="H1b+", source="§4.2", note=True),
    _q("transfer-read", rf"{_H}Successfully read (?P<bytes>{_U}) bytes via transfer",
       "readback path 2 done", gen="H1b+", source="§4.2"),
    _q("iosurface-create-failed", rf"{_H}Failed to create IOSurface$", "IOSurface not created",
       gen="H1b+", source="§4.2", note=True),
    _q("iosurface-locking", rf"{_H}Locking IOSurface (?P<surface>{_PTR}) to copy (?P<bytes>{_U}) "
       r"bytes of pixel data", "copy into IOSurface", gen="H1b+", source="§4.2"),
    _q("iosurface-base", rf"{_H}IOSurface base address: (?P<ptr>{_PTR}), copying pixel data",
       "copy into IOSurface", gen="H1b+", source="§4.2"),
    _q("iosurface-unlocked", rf"{_H}IOSurface unlocked, pixel data copied successfully",
       "copy into IOSurface done", gen="H1b+", source="§4.2"),
    _q("iosurface-from-displaysurface", rf"{_H}\S{{0,4}} ?Successfully created IOSurface "
       rf"(?P<surface>{_PTR}) \((?P<width>{_U})x(?P<height>{_U})\) from DisplaySurface "
       rf"\(scanout (?P<scanout>{_U})\)", "the VM console (DisplaySurface) is encoded (#39)",
       "stream-wrong-picture", gen="H1-v3–H3", source="§4.2"),
    _q("iosurface-from-resource", rf"{_H}\S{{0,4}} ?Successfully created IOSurface "
       rf"(?P<surface>{_PTR}) \((?P<width>{_U})x(?P<height>{_U})\) from resource "
       rf"(?P<resource_id>{_U})", "IOSurface from the resource", gen="H1b+", source="§4.2"),
    _q("iosurface-created-short", rf"{_H}Created IOSurface (?P<surface>{_PTR}) \((?P<width>{_U})x"
       rf"(?P<height>{_U})\) from resource (?P<resource_id>{_U})",
       "IOSurface from the resource (docs' shorter form)", gen="H1b+", source="§4.2"),
    _q("displaysurface-called", r"\[HELIX-v3\] helix_get_iosurface_from_scanout called: "
       rf"scanout_id=(?P<scanout>{_U})", "DisplaySurface fallback entered", gen="H1-v3–H3",
       source="§4.2"),
    _q("virtio-gpu-null", rf"{_H}ERROR: virtio_gpu pointer is NULL",
       "no virtio-gpu state: nothing to encode", gen="H1-v3–H3", source="§4.2", note=True),
    _q("displaysurface-failed", rf"{_H}Failed to get DisplaySurface data for scanout "
       rf"(?P<scanout>{_U})", "no DisplaySurface data", gen="H1-v3–H3", source="§4.2", note=True),
    _q("displaysurface-uninit", rf"{_H}DisplaySurface may not be initialized yet \(no "
       r"SET_SCANOUT_BLOB command\)", "no DisplaySurface yet", gen="H1-v3–H3", source="§4.2",
       note=True),
    _q("displaysurface-data", rf"{_H}DisplaySurface data retrieved: (?P<width>{_U})x"
       rf"(?P<height>{_U}), stride=(?P<stride>{_U})", "DisplaySurface read", gen="H1-v3–H3",
       source="§4.2"),
    _q("using-guest-pixels", rf"{_H}Using pixel data from guest \((?P<bytes>{_U}) bytes\)",
       "the guest's pixels are encoded", gen="H2–H3", source="§4.2"),
    _q("no-pixels-fallback", rf"{_H}No pixel data, falling back to DisplaySurface",
       "no pixels: the VM console is encoded (#39)", "stream-wrong-picture", gen="H2–H3",
       source="§4.2"),
    _q("invalid-pixel-params", rf"{_H}Invalid pixel data parameters", "pixel data rejected",
       gen="H2–H3", source="§4.2", note=True),
    _q("pixels-too-small", rf"{_H}Pixel data too small: got (?P<got>{_U}), expected "
       rf"(?P<expected>{_U}) \((?P<width>{_U})x(?P<height>{_U}), stride=(?P<stride>{_U})\)",
       "pixel payload smaller than the frame", gen="H2–H3", source="§4.2", note=True),
    _q("pixels-still-small", rf"{_H}Still too small even with calculated stride, aborting",
       "pixel payload rejected", gen="H2–H3", source="§4.2", note=True),
    _q("pixels-iosurface-failed", rf"{_H}Failed to create IOSurface from pixel data",
       "no IOSurface from the pixels", gen="H2–H3", source="§4.2", note=True),
    _q("pixels-iosurface", rf"{_H}Created IOSurface (?P<surface>{_PTR}) \((?P<width>{_U})x"
       rf"(?P<height>{_U})\) from (?P<bytes>{_U}) bytes of pixel data", "BGRA/RGBA pixel path",
       gen="H2–H3", source="§4.2"),
    _q("nv12-too-small", rf"{_H}NV12 pixel data too small: got (?P<got>{_U}), expected "
       rf"(?P<expected>{_U}) \((?P<width>{_U})x(?P<height>{_U})\)", "NV12 payload too small",
       gen="H3", source="§4.2", note=True),
    _q("nv12-iosurface-failed", rf"{_H}Failed to create NV12 IOSurface", "no NV12 IOSurface",
       gen="H3", source="§4.2", note=True),
    _q("nv12-iosurface", rf"{_H}Created NV12 IOSurface (?P<surface>{_PTR}) \((?P<width>{_U})x"
       rf"(?P<height>{_U})\) from (?P<bytes>{_U}) bytes", "NV12 pixel path", gen="H3",
       source="§4.2"),
    _q("iosurface-encoding-failed", rf"{_H}Failed to get IOSurface for encoding",
       "nothing to encode: ERROR -2 on H2, no reply on H3", HOST_ERROR, gen="H2–H3",
       source="§4.2"),
    _q("encoded-h1", rf"{_H}Frame encoded successfully", "submitted to VideoToolbox",
       step="encode", gen="H1", source="§4.2"),
    _q("encode-request-submitted", rf"{_H}Frame encode request submitted \(async callback will "
       r"send response\)", "submitted to VideoToolbox", step="encode", gen="H1b", source="§4.2"),
    _q("encode-submitted", rf"{_H}Frame encode submitted \(callback will send response\)",
       "submitted to VideoToolbox; the reply comes from the callback", step="encode",
       gen="H2–H3", source="§4.2"),
    _q("encoding-failed", rf"{_H}Frame encoding failed: (?P<code>{_N})",
       "encode submit failed (H2: no reply follows, #51)", "encoder-error", gen="H1–H3",
       source="§4.2"),
    _q("vt-create-failed", rf"VTCompressionSessionCreate failed: (?P<code>{_N})",
       "VideoToolbox session not created", "encoder-unavailable", gen="H0–H3", source="§4.2"),
    _q("vt-prepare-failed", rf"PrepareToEncodeFrames failed: (?P<code>{_N})",
       "VideoToolbox session not prepared", "encoder-unavailable", gen="H0–H3", source="§4.2"),
    _q("cvpixelbuffer-failed", rf"CVPixelBufferCreateWithIOSurface failed: (?P<code>{_N})",
       "frame not wrapped for VideoToolbox", "encoder-error", gen="H0–H3", source="§4.2"),
    _q("vt-encode-frame-failed", rf"VTCompressionSessionEncodeFrame failed: (?P<code>{_N})",
       "encode call failed", "encoder-error", gen="H0–H3", source="§4.2"),
    _q("callback-called", rf"{_H}encoder_output_callback called: status=(?P<status>{_N}), "
       rf"sampleBuffer=(?P<sample>{_PTR})", "VideoToolbox produced a sample", step="encode",
       gen="H1b–H3", source="§4.2"),
    _q("callback-null-fe", rf"{_H}encoder_output_callback: NULL fe pointer!",
       "sample dropped in the callback: no reply", gen="H1b–H3", source="§4.2", note=True,
       related="stream-no-reply"),
    _q("callback-fe-invalid", rf"{_H}encoder_output_callback: fe marked invalid, discarding frame",
       "sample dropped in the callback: no reply", gen="H1b–H3", source="§4.2", note=True,
       related="stream-no-reply"),
    _q("callback-null-sample", rf"{_H}encoder_output_callback: NULL sampleBuffer",
       "VideoToolbox delivered no sample: no reply", "encoder-error", gen="H1b–H3",
       source="§4.2"),
    _q("callback-socket-closed", rf"{_H}encoder_output_callback: socket closed, discarding frame",
       "the client left before the reply (#42)", gen="H1b–H3", source="§4.2", note=True,
       related="stream-no-reply"),
    _q("vt-encode-failed", rf"{_H}VideoToolbox encode failed: (?P<code>{_N})",
       "asynchronous encode error: no reply (#51)", "encoder-error", gen="H1b–H3", source="§4.2"),
    _q("vt-encode-failed-h0", rf"VideoToolbox encode failed: (?P<code>{_N})",
       "asynchronous encode error: no reply (#51)", "encoder-error", gen="H0–H1", source="§4.2"),
    _q("parameter-set", rf"{_H}Parameter set (?P<index>{_U}): (?P<bytes>{_U}) bytes \(NAL type "
       rf"(?P<nal_type>{_N})\)", "SPS (7) / PPS (8) prepended on keyframes", gen="H2–H3",
       source="§4.2"),
    _q("parameter-sets", rf"{_H}Extracted (?P<count>{_U}) parameter sets, total (?P<bytes>{_U}) "
       r"bytes", "SPS/PPS extracted", gen="H2–H3", source="§4.2"),
    _q("no-data-buffer", r"No data buffer in sample",
       "callback failure, no reply; leaves the mutex locked on H2/H3 (#43)", "encoder-error",
       gen="H0–H3", source="§4.2"),
    _q("data-pointer-failed", rf"Failed to get data pointer: (?P<code>{_N})",
       "callback failure, no reply; leaves the mutex locked on H2/H3 (#43)", "encoder-error",
       gen="H0–H3", source="§4.2"),
    _q("annexb-alloc-failed", r"Failed to allocate annexb buffer", "callback failure, no reply",
       "encoder-error", gen="H0–H3", source="§4.2"),
    _q("avcc-truncated", r"Invalid avcc data: truncated length prefix",
       "callback failure, no reply", "encoder-error", gen="H0–H3", source="§4.2"),
    _q("avcc-nal-length", rf"Invalid avcc data: NAL length (?P<length>{_U}) exceeds buffer",
       "callback failure, no reply", "encoder-error", gen="H0–H3", source="§4.2"),
    _q("response-alloc-failed", r"Failed to allocate response buffer",
       "callback failure, no reply", "encoder-error", gen="H0–H3", source="§4.2"),
    _q("converting-annexb", rf"{_H}Converting avcc to Annex B: input_size=(?P<input_size>{_U}), "
       rf"sps_pps_size=(?P<sps_pps_size>{_U})", "Annex-B conversion", gen="H2–H3", source="§4.2"),
    _q("converted-annexb", rf"{_H}Converted (?P<nal_units>{_U}) NAL units, output_size="
       rf"(?P<output_size>{_U})", "Annex-B conversion", gen="H2–H3", source="§4.2"),
    _q("send-response-failed", rf"{_H}Failed to send response: {_ERR}",
       "reply not delivered (e.g. Broken pipe: the client left, #42)", "stream-no-reply",
       gen="H2–H3", source="§4.2"),
    _q("send-response-failed-h1", rf"Failed to send response: {_ERR}",
       "reply not delivered (e.g. Broken pipe: the client left, #42)", "stream-no-reply",
       gen="H0–H1", source="§4.2"),
    _q("frame-sent", rf"{_H}Frame sent successfully: (?P<bytes>{_U}) bytes, pts=(?P<pts>{_N}), "
       rf"keyframe=(?P<keyframe>{_U})", "reply written", step="reply", gen="H1b–H3", source="§4.2"),
    _q("callback-socket-gone", rf"{_H}Callback fired but socket already closed, discarding frame",
       "the client left before the reply (#42)", gen="H2–H3", source="§4.2", note=True,
       related="stream-no-reply"),
    # ── §4.3 scanout (SUBSCRIBE) path, H3–H4 ──
    _q("scanout-encoder", rf"{_H}Created encoder for scanout (?P<scanout>{_U}): (?P<width>{_N})x"
       rf"(?P<height>{_N}) bitrate=(?P<bitrate>{_N})", "per-scanout encoder created",
       step="encode", gen="H3–H4", source="§4.3"),
    _q("scanout-vt-create-failed", rf"{_H}VTCompressionSessionCreate failed for scanout "
       rf"(?P<scanout>{_U}): (?P<code>{_N})", "per-scanout encoder not created",
       "encoder-unavailable", gen="H3–H4", source="§4.3"),
    _q("scanout-vt-prepare-failed", rf"{_H}PrepareToEncodeFrames failed for scanout "
       rf"(?P<scanout>{_U}): (?P<code>{_N})", "per-scanout encoder not prepared",
       "encoder-unavailable", gen="H3–H4", source="§4.3"),
    _q("scanout-metal-captured", rf"{_H}Scanout (?P<scanout>{_U}): captured Metal texture",
       "Metal capture", gen="H3", source="§4.3"),
    _q("scanout-metal-no-iosurface", rf"{_H}Scanout (?P<scanout>{_U}): Metal texture "
       rf"(?P<texture>{_PTR}) has NO IOSurface backing", "Metal capture impossible", gen="H3",
       source="§4.3", note=True),
    _q("frame-ready-early", rf"\[FRAME_READY_ENTRY\] #(?P<n>{_U}) scanout=(?P<scanout>{_U}) "
       rf"fe=(?P<fe>{_PTR}) valid=(?P<valid>{_N}) EARLY_RETURN",
       "page flip while the export is not initialised (or a bad scanout id)", gen="H3–H4",
       source="§4.3", note=True),
    _q("frame-ready-no-subscriber", rf"\[FRAME_READY_ENTRY\] #(?P<n>{_U}) scanout=(?P<scanout>{_U})"
       rf" active_clients=(?P<active_clients>{_N}) NO_SUBSCRIBER",
       "page flip with nobody subscribed (normal, or #37)", gen="H3–H4", source="§4.3"),
    _q("frame-ready", rf"\[FRAME_READY\] #(?P<n>{_U}) scanout=(?P<scanout>{_U}) "
       rf"resource=(?P<resource>{_U}) has_subscriber=YES", "frame will be encoded", step="encode",
       gen="H3–H4", source="§4.3"),
    _q("frame-ready-source", rf"\[FRAME_READY\] scanout (?P<scanout>{_U}): tex_id=(?P<tex_id>{_U})",
       "capture source details", gen="H3–H4", source="§4.3"),
    _q("frame-ready-gpu-blit", rf"\[FRAME_READY\] GPU blit #(?P<n>{_U}): scanout=(?P<scanout>{_U})",
       "GPU blit capture", gen="H3", source="§4.3"),
    _q("frame-ready-snapshot", rf"\[FRAME_READY\] Created encode_snapshot IOSurface for scanout "
       rf"(?P<scanout>{_U})", "capture surface created", gen="H3", source="§4.3"),
    _q("frame-ready-cpu-cached", rf"\[FRAME_READY\] CPU fallback: created cached IOSurface for "
       rf"scanout (?P<scanout>{_U})", "CPU capture surface created", gen="H3", source="§4.3"),
    _q("frame-ready-cpu", rf"\[FRAME_READY\] CPU fallback #(?P<n>{_U}): scanout=(?P<scanout>{_U})",
       "CPU capture", gen="H3", source="§4.3"),
    _q("frame-ready-drop", rf"\[FRAME_READY\] Dropping frame \S{{1,3}} (?P<reason>.*?) "
       rf"\(dropped (?P<dropped>{_U}) total\)", "backpressure drop before encoding",
       gen="H3–H4", source="§4.3"),
    _q("frame-ready-blit-failed", rf"\[FRAME_READY\] GL blit failed for scanout (?P<scanout>{_U})",
       "capture failed: frame dropped", gen="H3–H4", source="§4.3", note=True),
    _q("frame-ready-cvpixelbuffer-failed", rf"\[FRAME_READY\] ERROR: CVPixelBufferCreateWithIOSurface"
       rf" failed for scanout (?P<scanout>{_U}): (?P<code>{_N})",
       "capture not wrapped for VideoToolbox: frame dropped", "encoder-error", gen="H3–H4",
       source="§4.3"),
    _q("encode", rf"\[ENCODE\] scanout=(?P<scanout>{_U}) frame=(?P<frame>{_N})(?: slot="
       rf"(?P<slot>{_U}))? status=(?P<status>{_N}) (?P<width>{_U})x(?P<height>{_U})",
       "encode submitted (status != 0 is a failure)", "encoder-error", when="status != 0",
       step="encode", gen="H3–H4", source="§4.3"),
    _q("gl-block-timeout", rf"{_H}SAFETY: gl_block timeout \(100ms\)",
       "the VideoToolbox callback did not fire (#52)", "encoder-error", gen="H3", source="§4.3"),
    _q("gpu-blit-no-display", r"\[GPU_BLIT\] EGL display not available, GPU blit disabled",
       "GPU blit disabled", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-no-context", r"\[GPU_BLIT\] No current EGL context at init time, GPU blit "
       r"disabled", "GPU blit disabled", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-context-failed", rf"\[GPU_BLIT\] Failed to create shared EGL context: {_ERR}",
       "GPU blit disabled", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-init", r"\[GPU_BLIT\] GPU blit initialized", "GPU blit ready", gen="H3",
       source="§4.3"),
    _q("gpu-blit-device", rf"\[GPU_BLIT\] ANGLE native device=(?P<device>{_PTR})", "ANGLE device",
       gen="H3", source="§4.3"),
    _q("gpu-blit-iosurface-failed", rf"\[GPU_BLIT\] IOSurfaceCreate failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit setup failed", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-pbuffer-failed", rf"\[GPU_BLIT\] EGL pbuffer creation failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit setup failed", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-bind-failed", rf"\[GPU_BLIT\] eglBindTexImage failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit setup failed", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-dest-fbo", rf"\[GPU_BLIT\] Dest FBO incomplete \(status=(?P<status>{_HEX})\)",
       "GPU blit setup failed", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-setup", rf"\[GPU_BLIT\] Setup scanout (?P<scanout>{_U}): (?P<width>{_U})x"
       rf"(?P<height>{_U})", "GPU blit ready for a scanout", gen="H3", source="§4.3"),
    _q("gpu-blit-make-current", rf"\[GPU_BLIT\] eglMakeCurrent failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit failed", gen="H3", source="§4.3", note=True),
    _q("gpu-blit-source-fbo", rf"\[GPU_BLIT\] Source FBO incomplete \(status=(?P<status>{_HEX})\)",
       "GPU blit failed", gen="H3", source="§4.3", note=True),
    _q("gl-blit-not-ready", r"\[GL_BLIT\] ERROR: spice_gl_ctx not initialized yet",
       "ring blit not ready", gen="H4", source="§4.3", note=True),
    _q("gl-blit-context-failed", rf"\[GL_BLIT\] ERROR: eglCreateContext failed \(err="
       rf"(?P<err>{_HEX})\)", "ring blit context failed", gen="H4", source="§4.3", note=True),
    _q("gl-blit-context", r"\[GL_BLIT\] Created Helix EGL context", "ring blit context created",
       gen="H4", source="§4.3"),
    _q("gl-blit-make-current", rf"\[GL_BLIT\] ERROR: eglMakeCurrent failed \(err=(?P<err>{_HEX})\)",
       "ring blit failed", gen="H4", source="§4.3", note=True),
    _q("gl-blit-slot-failed", rf"\[GL_BLIT\] ERROR: failed to create ring slot (?P<slot>{_N}) for "
       rf"scanout (?P<scanout>{_U})", "ring blit setup failed", gen="H4", source="§4.3", note=True),
    _q("gl-blit-setup", rf"\[GL_BLIT\] Setup scanout (?P<scanout>{_U}): (?P<width>{_N})x"
       rf"(?P<height>{_N}) ring=(?P<ring>{_N}) slots", "ring blit ready for a scanout", gen="H4",
       source="§4.3"),
    _q("gl-blit-destroyed", rf"\[GL_BLIT\] Destroyed blit ring for scanout (?P<scanout>{_U})",
       "ring blit released", gen="H4", source="§4.3"),
    _q("keepalive", rf"\[KEEPALIVE\] Re-encoded scanout (?P<scanout>{_U}) from IOSurface",
       "idle keepalive frame", gen="later than H4", source="§4.3"),
    # ── §4.3 "other host-side strings" ──
    _q("virgl-init-ok", r"\[HELIX-DEBUG\] virgl_renderer_init succeeded, calling "
       r"helix_frame_export_init", "virgl is up; frame-export init follows", source="§4.3"),
    _q("virgl-init-failed", r"\[HELIX-DEBUG\] virgl_renderer_init FAILED",
       "virgl did not initialise: frame-export init never runs", "qemu-init-failed",
       source="§4.3"),
    _q("reentrant-io", r"warning: Blocked re-entrant IO on MemoryRegion: (?P<region>\S{1,200}) at "
       rf"addr: (?P<addr>{_HEX})", "virtio-gpu notification lost: GPU deadlock risk (#63)",
       source="§4.3", anywhere=True, needle="Blocked re-entrant IO on MemoryRegion", note=True,
       detect=False),
    _q("vt-memory-watermark", rf"VTEncoderXPCServ \[(?P<pid>{_U})\] crossed memory high "
       rf"watermark \((?P<mb>{_U}) MB\)", "VideoToolbox's ~1 GB encoder limit reached (#53)",
       "encoder-unavailable", source="§4.3", anywhere=True, needle="crossed memory high watermark"),
)

SIGNATURES: tuple[Signature, ...] = _GST + _QEMU
_BY_NAME: dict[str, Signature] = {}


def _validate(table: tuple[Signature, ...]) -> None:
    for sig in table:
        if sig.name in _BY_NAME:
            raise ValueError(f"signature {sig.name!r} declared twice")
        if sig.kind not in KINDS:
            raise ValueError(f"signature {sig.name!r}: unknown kind {sig.kind!r}")
        for fid in (sig.failure_id, sig.related):
            if fid is not None and fid not in CATALOG:
                raise ValueError(f"signature {sig.name!r}: unknown failure id {fid!r}")
        if sig.step is not None and sig.step not in _STEP_INDEX:
            raise ValueError(f"signature {sig.name!r}: unknown step {sig.step!r}")
        if sig.era is not None and sig.era not in _ERAS:
            raise ValueError(f"signature {sig.name!r}: unknown era {sig.era!r}")
        if sig.anywhere and not sig.needle:
            raise ValueError(f"signature {sig.name!r}: anywhere needs a needle")
        _BY_NAME[sig.name] = sig


_validate(SIGNATURES)


def signatures_for(kind: str) -> tuple[Signature, ...]:
    """The table rows of one log kind, in table order."""
    return tuple(s for s in SIGNATURES if s.kind == kind)


# ── dispatch: bucket signatures by the first one or two words of their literal prefix ──

_META = set(".^$*+?{}[]|()")


def _literal_prefix(pattern: str) -> tuple[str, bool]:
    """The literal text every match starts with, and whether it is the whole pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])  # an escaped literal such as \[ or \.
            i += 2
        elif c == "$" and i == len(pattern) - 1:
            return "".join(out), True
        elif c == "\\" or c in _META:  # a class (\d, \S …), group, alternation …
            return "".join(out), False
        else:
            out.append(c)
            i += 1
        if i < len(pattern) and pattern[i] in "*?{":
            out.pop()  # the character before a quantifier is optional or repeated
            return "".join(out), False
    return "".join(out), True


def _dispatch_key(sig: Signature) -> tuple[str, ...]:
    literal, complete = _literal_prefix(sig.regex.pattern)
    parts = literal.split(" ")
    if not complete:
        parts = parts[:-1]  # the last word may continue in the message
    return tuple(parts[:2]) if parts and parts[0] else ()


@dataclass(frozen=True)
class _Dispatch:
    by2: dict[str, tuple[Signature, ...]]  # "word1 word2" -> candidates (incl. by1's)
    by1: dict[str, tuple[Signature, ...]]  # "word1" -> candidates
    anywhere: tuple[Signature, ...]


def _build_dispatch(kind: str) -> _Dispatch:
    order = {s.name: i for i, s in enumerate(SIGNATURES)}
    one: dict[str, list[Signature]] = {}
    two: dict[str, list[Signature]] = {}
    anywhere: list[Signature] = []
    for sig in signatures_for(kind):
        if sig.anywhere:
            anywhere.append(sig)
            continue
        key = _dispatch_key(sig)
        if len(key) == 2:
            two.setdefault(f"{key[0]} {key[1]}", []).append(sig)
        elif len(key) == 1:
            one.setdefault(key[0], []).append(sig)
        else:
            raise ValueError(f"signature {sig.name!r} has no literal start; mark it anywhere")
    by2 = {k: tuple(sorted(v + one.get(k.split(" ", 1)[0], []), key=lambda s: order[s.name]))
           for k, v in two.items()}
    by1 = {k: tuple(v) for k, v in one.items()}
    return _Dispatch(by2, by1, tuple(anywhere))


_DISPATCH = {kind: _build_dispatch(kind) for kind in KINDS}


def _match(d: _Dispatch, content: str, func: str | None = None,
           use_anywhere: bool = True) -> tuple[Signature, re.Match[str]] | None:
    i = content.find(" ")
    if i < 0:
        cands = d.by1.get(content)
    else:
        j = content.find(" ", i + 1)
        cands = d.by2.get(content[:j] if j >= 0 else content) or d.by1.get(content[:i])
    if cands:
        for sig in cands:
            if func is not None and sig.func is not None and sig.func not in func:
                continue
            m = sig.regex.match(content)
            if m:
                return sig, m
    if use_anywhere:
        for sig in d.anywhere:
            if sig.needle in content:  # type: ignore[operator]
                m = sig.regex.search(content)
                if m:
                    return sig, m
    return None


# ════════════════════════════════════════════════════════════════════ results


@dataclass
class Note:
    """Informational: not a failure, but worth a line (with an id to read about, if any)."""

    key: str
    message: str
    related: str | None = None
    count: int = 1
    line_no: int | None = None
    line: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "message": self.message, "related": self.related,
                "count": self.count, "line_no": self.line_no, "line": self.line}


@dataclass
class LogSummary:
    """What every scan reports; `kind` is "gst", "qemu" or "unknown"."""

    kind: str = "unknown"
    source: str | None = None
    lines: int = 0
    recognised_lines: int = 0
    long_lines: int = 0  # lines cut at MAX_LINE_CHARS
    binary_lines: int = 0  # lines with NUL bytes or undecodable bytes
    internal_errors: int = 0  # lines a handler failed on (should stay 0; never raised)
    source_age_s: float | None = None  # scan_file: seconds since the file was last written
    signature_counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def status(self) -> str:
        return worst_status(self.findings)

    @property
    def failure_ids(self) -> list[str]:
        return [f.failure_id for f in self.findings]

    def finding(self, failure_id: str) -> Finding | None:
        return next((f for f in self.findings if f.failure_id == failure_id), None)

    def _base_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "source": self.source, "status": self.status,
            "lines": self.lines, "recognised_lines": self.recognised_lines,
            "long_lines": self.long_lines, "binary_lines": self.binary_lines,
            "internal_errors": self.internal_errors, "source_age_s": self.source_age_s,
        }

    def _tail_dict(self) -> dict[str, Any]:
        return {
            "signature_counts": dict(self.signature_counts),
            "findings": [f.to_dict() for f in self.findings],
            "notes": [n.to_dict() for n in self.notes],
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self._base_dict(), **self._tail_dict()}


@dataclass
class UnknownLogSummary(LogSummary):
    """Auto-detection found neither a vsockenc GST_DEBUG line nor a host (`[HELIX]`) line."""


@dataclass
class GstLogSummary(LogSummary):
    kind: str = "gst"
    gst_lines: int = 0  # lines in GST_DEBUG shape (any category)
    vsockenc_lines: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    element: str | None = None  # element generation, from dated strings
    element_eras: list[str] = field(default_factory=list)
    frames_sent: int = 0
    frames_finished: int = 0  # replies that carried H.264
    frames_failed: int = 0  # replies that were errors, bad magic, short reads …
    keyframes_finished: int = 0
    frame_restarts: int = 0  # the frame counter started again (a new element instance)
    last_sent: dict[str, Any] | None = None
    last_finished: dict[str, Any] | None = None
    pending_at_end: int | None = None  # frame sent but not answered when the log ends
    idle_s_at_end: float | None = None  # log time from that frame's "Sent" to the last line
    sequence: str = "none"  # healthy | broken | none
    pixel_bytes: int | None = None
    frame_size: str | None = None
    pixel_format: str | None = None  # guessed from bytes per pixel
    shm_frames: int = 0
    dmabuf_frames: int = 0
    resource_id_failures: int = 0
    connects: int = 0
    connect_failures: int = 0
    last_connect: dict[str, Any] | None = None
    connect_targets: list[str] = field(default_factory=list)
    transport: str | None = None
    tcp_host: str | None = None
    tcp_port: int | None = None
    socket_path: str | None = None
    host_errors: dict[str, int] = field(default_factory=dict)
    bad_magics: dict[str, int] = field(default_factory=dict)
    video_mode: str | None = None  # desktop-bridge: "vsockenc" | "scanout"
    pipeline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._base_dict(),
            "gst_lines": self.gst_lines, "vsockenc_lines": self.vsockenc_lines,
            "first_ts": self.first_ts, "last_ts": self.last_ts,
            "element": self.element, "element_eras": list(self.element_eras),
            "frames": {
                "sent": self.frames_sent, "finished": self.frames_finished,
                "failed": self.frames_failed, "keyframes_finished": self.keyframes_finished,
                "restarts": self.frame_restarts, "last_sent": self.last_sent,
                "last_finished": self.last_finished, "pending_at_end": self.pending_at_end,
                "idle_s_at_end": self.idle_s_at_end, "sequence": self.sequence,
            },
            "pixels": {"bytes_per_frame": self.pixel_bytes, "frame_size": self.frame_size,
                       "format_guess": self.pixel_format},
            "input": {"shm_frames": self.shm_frames, "dmabuf_frames": self.dmabuf_frames,
                      "resource_id_failures": self.resource_id_failures},
            "connection": {
                "connects": self.connects, "failures": self.connect_failures,
                "last": self.last_connect, "targets": list(self.connect_targets),
                "transport": self.transport, "tcp_host": self.tcp_host,
                "tcp_port": self.tcp_port, "socket_path": self.socket_path,
            },
            "host_errors": dict(self.host_errors), "bad_magics": dict(self.bad_magics),
            "video_mode": self.video_mode, "pipeline": self.pipeline,
            **self._tail_dict(),
        }


@dataclass
class QemuLogSummary(LogSummary):
    """The last QEMU run in the log (earlier runs, e.g. in an appended helix-debug.log, are
    listed in `earlier_runs` and not judged)."""

    kind: str = "qemu"
    helix_lines: int = 0
    runs: int = 0
    earlier_runs: list[dict[str, Any]] = field(default_factory=list)
    run_first_line: int | None = None
    steps: dict[str, int] = field(default_factory=dict)  # step -> first line number
    last_step: str | None = None
    placeholder: bool = False  # H0: "initialized on vsock port", nothing listens
    version: str | None = None
    versions_seen: list[str] = field(default_factory=list)
    build: str | None = None
    generation: str | None = None
    init_port: int | None = None
    listen: dict[str, Any] | None = None
    bind_errors: list[dict[str, Any]] = field(default_factory=list)
    init_errors: list[dict[str, Any]] = field(default_factory=list)
    encoder_errors: dict[str, int] = field(default_factory=dict)
    clients_connected: int = 0
    clients_disconnected: int = 0
    clients_rejected: int = 0
    recv_timeouts: int = 0
    clients_open_at_end: int = 0
    subscribes: int = 0
    subscribe_samples: list[dict[str, Any]] = field(default_factory=list)
    unknown_message_types: dict[str, int] = field(default_factory=dict)
    frame_requests: int = 0
    requests_without_pixels: int = 0
    replies_sent: int = 0
    encodes: int = 0
    frames_dropped: int = 0

    @property
    def has_helix(self) -> bool:
        return self.helix_lines > 0

    @property
    def steps_reached(self) -> list[str]:
        return sorted(self.steps, key=_STEP_INDEX.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._base_dict(),
            "helix_lines": self.helix_lines, "has_helix": self.has_helix,
            "runs": self.runs, "earlier_runs": list(self.earlier_runs),
            "run_first_line": self.run_first_line,
            "steps_reached": [{"step": s, "line_no": self.steps[s]} for s in self.steps_reached],
            "last_step": self.last_step, "placeholder": self.placeholder,
            "version": self.version, "versions_seen": list(self.versions_seen),
            "build": self.build, "generation": self.generation, "init_port": self.init_port,
            "listen": self.listen, "bind_errors": list(self.bind_errors),
            "init_errors": list(self.init_errors), "encoder_errors": dict(self.encoder_errors),
            "clients": {
                "connected": self.clients_connected, "disconnected": self.clients_disconnected,
                "rejected": self.clients_rejected, "recv_timeouts": self.recv_timeouts,
                "open_at_end": self.clients_open_at_end,
            },
            "subscribes": self.subscribes, "subscribe_samples": list(self.subscribe_samples),
            "unknown_message_types": dict(self.unknown_message_types),
            "requests": {"frame_requests": self.frame_requests,
                         "without_pixels": self.requests_without_pixels,
                         "replies_sent": self.replies_sent},
            "encodes": self.encodes, "frames_dropped": self.frames_dropped,
            **self._tail_dict(),
        }


# ════════════════════════════════════════════════════════════════════ helpers

_GST_HEADER = re.compile(
    r"(?P<ts>\d{1,6}:\d\d:\d\d\.\d{1,12})\s+(?P<pid>\d{1,10})\s+(?P<thread>0x[0-9a-fA-F]{1,16}|\(nil\))"
    r"\s+(?P<level>[A-Z]{1,8})\s+(?P<cat>\S{1,64})\s+(?P<file>[^:\s]{1,200}):(?P<lineno>\d{1,9}):"
    r"(?P<func>[^:\s]{0,200}):(?:<(?P<obj>[^>]{0,200})>)?\s?(?P<msg>.*)",
    re.ASCII,
)
_GST_SEARCH = _GST_HEADER.search
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_QEMU_MARK = re.compile(r"helix: |\[(?:HELIX|FRAME_READY|ENCODE\]|GPU_BLIT\]|GL_BLIT\]|KEEPALIVE\])")


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _ts_seconds(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        h, m, s = ts.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


def _trim(line: str, limit: int = EVIDENCE_CHARS) -> str:
    text = line.strip()
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _magic_hint(magic: str) -> str:
    """Read a logged little-endian u32 "magic" as the 4 bytes that arrived."""
    value = _int_hex(magic)
    if value is None:
        return magic
    raw = (value & 0xFFFFFFFF).to_bytes(4, "little")
    hexbytes = " ".join(f"{b:02x}" for b in raw)
    if raw in (b"\x00\x00\x00\x01",) or raw[:3] == b"\x00\x00\x01":
        what = "an H.264 start code"
    elif raw == b"HXFR":
        what = "HXFR"
    elif raw == b"RFB ":
        what = "'RFB ': a VNC server (port 5900?)"
    elif all(32 <= b < 127 for b in raw):
        what = f"ASCII {raw.decode('ascii')!r}"
    else:
        what = ""
    return f"{magic} (bytes {hexbytes}{': ' + what if what else ''})"


def _int_hex(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


def _bounded_add(counter: dict[str, int], key: str, limit: int = _SAMPLES) -> None:
    if key in counter or len(counter) < limit:
        counter[key] = counter.get(key, 0) + 1


class _Acc:
    """Every line that proved one failure id: count, first/last line, per-signature counts."""

    __slots__ = ("count", "first_no", "first_line", "first_sig", "fields", "last_no", "sigs", "extra")

    def __init__(self) -> None:
        self.count = 0
        self.first_no = 0
        self.first_line = ""
        self.first_sig = ""
        self.fields: dict[str, Any] = {}
        self.last_no = 0
        self.sigs: dict[str, int] = {}
        self.extra: dict[str, Any] = {}

    def add(self, no: int, line: str, sig: Signature, m: re.Match[str] | None) -> None:
        self.count += 1
        if self.count == 1:
            self.first_no, self.first_line, self.first_sig = no, _trim(line), sig.name
            if m is not None:
                self.fields = {k: v for k, v in m.groupdict().items() if v is not None}
        self.last_no = no
        self.sigs[sig.name] = self.sigs.get(sig.name, 0) + 1

    def evidence(self, **more: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"line_no": self.first_no, "line": self.first_line,
                              "signature": self.first_sig}
        if self.count > 1:
            ev["last_line_no"] = self.last_no
        if len(self.sigs) > 1:
            ev["signatures"] = dict(self.sigs)
        ev.update({k: v for k, v in self.fields.items() if k not in ev})
        ev.update(self.extra)
        ev.update(more)
        return ev


class _Scanner:
    """Shared machinery: per-line bookkeeping, accumulators for findings and notes."""

    kind = "unknown"

    def __init__(self) -> None:
        self.lines = 0
        self.recognised = 0
        self.long_lines = 0
        self.binary_lines = 0
        self.internal_errors = 0
        self.sig_counts: Counter[str] = Counter()
        self.accs: dict[str, _Acc] = {}
        self.notes: dict[str, Note] = {}
        # What to do on a match, per signature: (failure id applied unconditionally, note?,
        # handler). Precomputed so the per-line path is one dict lookup.
        self._plans: dict[str, tuple[str | None, bool, Callable[..., None] | None]] = {}
        for sig in signatures_for(self.kind):
            handler = getattr(self, "_on_" + sig.name.split(".", 1)[1].replace(".", "_")
                              .replace("-", "_"), None)
            auto_fid = sig.failure_id if sig.when is None else None
            self._plans[sig.name] = (auto_fid, sig.note, handler)

    def feed(self, no: int, line: str) -> int:
        """Scan one line. Returns 2 when the line shows this log kind for sure, 1 when a
        signature of this kind matched, 0 otherwise. Never raises."""
        raise NotImplementedError

    def _apply(self, no: int, line: str, sig: Signature, m: re.Match[str]) -> None:
        self.recognised += 1
        name = sig.name
        self.sig_counts[name] += 1
        auto_fid, note, handler = self._plans[name]
        if auto_fid is not None:
            self._hit(auto_fid, no, line, sig, m)
        if note:
            self._note(name, sig.meaning, no, line, related=sig.related)
        if handler is not None:
            handler(no, line, m)

    def _hit(self, failure_id: str, no: int, line: str, sig: Signature,
             m: re.Match[str] | None) -> _Acc:
        acc = self.accs.get(failure_id)
        if acc is None:
            acc = self.accs[failure_id] = _Acc()
        acc.add(no, line, sig, m)
        return acc

    def _note(self, key: str, message: str, no: int | None = None, line: str | None = None,
              related: str | None = None) -> None:
        note = self.notes.get(key)
        if note is None:
            self.notes[key] = Note(key, message, related, 1, no, _trim(line) if line else None)
        else:
            note.count += 1

    def _fill(self, summary: LogSummary) -> None:
        summary.lines = self.lines
        summary.recognised_lines = self.recognised
        summary.long_lines = self.long_lines
        summary.binary_lines = self.binary_lines
        summary.internal_errors = self.internal_errors
        summary.signature_counts = dict(self.sig_counts)
        for key, note in self.notes.items():
            if key in _BY_NAME and note.count > 1 and not note.message.endswith(")"):
                note.message += f" (×{note.count})"
        summary.notes = list(self.notes.values())

    def _finding(self, failure_id: str, message: str, **evidence: Any) -> Finding:
        acc = self.accs.get(failure_id)
        if acc is None:
            return Finding(failure_id, message, evidence, 1)
        return Finding(failure_id, message, acc.evidence(**evidence), acc.count)


# ════════════════════════════════════════════════════════════════════ vsockenc (gst)

_FRAME_START = {"gst.not-dmabuf", "gst.no-resource-id", "gst.dmabuf-resource", "gst.dmabuf-fd-failed",
                "gst.prime-failed", "gst.resource-info-failed", "gst.old.gem-resource",
                "gst.old.gem-failed"}


class _GstScanner(_Scanner):
    kind = "gst"

    def __init__(self) -> None:
        super().__init__()
        self.d = _DISPATCH["gst"]
        self.s = GstLogSummary()
        self.gst_lines = self.vsockenc_lines = 0
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.cur_ts: str | None = None
        self.eras: dict[str, int] = {}
        self.pending: dict[str, Any] | None = None
        self.pending_next: dict[str, Any] | None = None  # next frame started, reply not read
        self.pending_drain: dict[str, Any] | None = None
        self.pending_text = ""
        self.overlapping = 0  # "Sent frame" while the previous one had no reply logged
        self.magics: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}
        self.short_reads = 0
        self.orphans = 0  # replies that matched no pending request (receive-thread element)
        self.host_errors: dict[str, int] = {}
        self.host_error_text: dict[str, str] = {}
        self.connect_errors: dict[str, int] = {}
        self.close_errors: dict[str, int] = {}

    def feed(self, no: int, line: str) -> int:
        self.lines += 1
        try:
            if "\x00" in line or "\ufffd" in line:
                self.binary_lines += 1
            if "\x1b" in line:
                line = _ANSI.sub("", line)
            h = _GST_SEARCH(line) if ":" in line else None
            if h is not None:
                ts, cat, func, msg = h.group("ts", "cat", "func", "msg")
                self.gst_lines += 1
                if self.first_ts is None:
                    self.first_ts = ts
                self.last_ts = self.cur_ts = ts
                if cat != "vsockenc":
                    return 0
                self.vsockenc_lines += 1
                found = _match(self.d, msg.lstrip(), func, False)
                if found is not None:
                    self._apply(no, line, found[0], found[1])
                return 2
            self.cur_ts = None
            found = _match(self.d, line.strip())
            if found is None:
                return 0
            sig, m = found
            self._apply(no, line, sig, m)
            return 1 if sig.detect else 0
        except Exception:  # noqa: BLE001 - one odd line must not end the scan
            self.internal_errors += 1
            return 0

    def _apply(self, no: int, line: str, sig: Signature, m: re.Match[str]) -> None:
        if sig.era is not None and sig.era not in self.eras:
            self.eras[sig.era] = no
        name = sig.name
        if name in _FRAME_START and self.pending is not None and self.pending_next is None:
            self.pending_next = {"line_no": no, "ts": self.cur_ts, "line": _trim(line)}
        # the base _apply, inlined: this runs for every vsockenc line
        self.recognised += 1
        self.sig_counts[name] += 1
        auto_fid, note, handler = self._plans[name]
        if auto_fid is not None:
            self._hit(auto_fid, no, line, sig, m)
        if note:
            self._note(name, sig.meaning, no, line, related=sig.related)
        if handler is not None:
            handler(no, line, m)

    # ---------------------------------------------------------------- frame bookkeeping
    def _resolve(self, ok: bool) -> dict[str, Any] | None:
        done = self.pending
        self.pending = self.pending_next = self.pending_drain = None
        if ok:
            self.s.frames_finished += 1
        else:
            self.s.frames_failed += 1
        return done

    def _connect(self, no: int, transport: str, host: str | None = None, port: int | None = None,
                 path: str | None = None) -> None:
        s = self.s
        s.connects += 1
        s.transport = transport
        s.last_connect = {"transport": transport, "host": host, "port": port, "path": path,
                          "ts": self.cur_ts, "line_no": no}
        if transport == "tcp":
            s.tcp_host, s.tcp_port = host, port
            target = f"tcp {host}:{port}"
        elif transport == "unix":
            s.socket_path = path
            target = f"unix {path}"
        else:
            target = transport if host is None else f"{transport} {host}:{port}"
        if target not in s.connect_targets and len(s.connect_targets) < _SAMPLES:
            s.connect_targets.append(target)
        self.pending = self.pending_next = self.pending_drain = None  # a new connection

    # ---------------------------------------------------------------- handlers
    def _on_tcp_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect(no, "tcp", m["host"], _int(m["port"]))

    _on_old_tcp_connected = _on_tcp_connected

    def _on_unix_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect(no, "unix", path=m["path"])

    def _on_vsock_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect(no, "vsock", m["cid"], _int(m["port"]))

    def _on_old_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect(no, "unknown")

    def _connect_failed(self, m: re.Match[str], transport: str) -> None:
        self.s.connect_failures += 1
        err = m.groupdict().get("error") or ""
        if err:
            _bounded_add(self.connect_errors, err)
        if transport == "tcp" and m.groupdict().get("port"):
            self.s.tcp_host, self.s.tcp_port = m["host"], _int(m["port"])
            self.s.transport = "tcp"
        elif transport == "unix" and m.groupdict().get("path"):
            self.s.socket_path, self.s.transport = m["path"], "unix"
        elif transport == "vsock":
            self.s.transport = "vsock"

    def _on_tcp_connect_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect_failed(m, "tcp")

    def _on_unix_connect_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect_failed(m, "unix")

    def _on_vsock_connect_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect_failed(m, "vsock")

    def _on_vsock_socket_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect_failed(m, "vsock")

    def _on_tcp_socket_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect_failed(m, "tcp")

    def _on_unix_socket_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._connect_failed(m, "unix")

    def _on_tcp_invalid_host(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.connect_failures += 1
        self.s.tcp_host, self.s.transport = m["host"], "tcp"
        _bounded_add(self.connect_errors, f"invalid tcp-host {m['host']!r}")

    def _on_not_dmabuf(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.shm_frames += 1

    def _on_dmabuf_resource(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.dmabuf_frames += 1

    def _on_no_resource_id(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.resource_id_failures += 1

    def _on_sent_pixels(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.pixel_bytes = _int(m["bytes"])

    def _on_sent_frame(self, no: int, line: str, m: re.Match[str]) -> None:
        s = self.s
        frame = _int(m["frame"])
        if s.last_sent is not None and frame is not None and s.last_sent["frame"] is not None \
                and frame <= s.last_sent["frame"]:
            s.frame_restarts += 1
        if self.pending is not None:
            self.overlapping += 1
        s.frames_sent += 1
        width, height = _int(m["width"]), _int(m["height"])
        info = {"frame": frame, "ts": self.cur_ts, "line_no": no,
                "resource_id": _int(m["resource_id"]), "width": width, "height": height,
                "keyframe": m["keyframe"] == "1", "pixel_bytes": s.pixel_bytes}
        s.last_sent = info
        s.frame_size = f"{width}x{height}"
        self.pending, self.pending_next, self.pending_drain = info, None, None
        self.pending_text = _trim(line)
        self._check_bandwidth(no, line, width, height)

    def _check_bandwidth(self, no: int, line: str, width: int | None, height: int | None) -> None:
        nbytes = self.s.pixel_bytes
        if not (nbytes and width and height):
            return
        bpp = nbytes / (width * height)
        self.s.pixel_format = "NV12" if 1.45 <= bpp <= 1.6 else "BGRx/BGRA" if 3.9 <= bpp <= 4.2 \
            else f"{bpp:.2f} bytes/pixel"
        if 3.9 <= bpp <= 4.2 and nbytes > 1_000_000:
            acc = self._hit("gst-bgra-bandwidth", no, line, _BY_NAME["gst.sent-pixels"], None)
            acc.extra = {"pixel_bytes": nbytes, "frame_size": f"{width}x{height}",
                         "nv12_bytes": width * height * 3 // 2}

    def _finished(self, no: int, m: re.Match[str]) -> None:
        done = self._resolve(ok=True)
        nal_count = _int(m["nal_count"])
        keyframe = m["keyframe"] == "1"
        if keyframe:
            self.s.keyframes_finished += 1
        self.s.last_finished = {
            "frame": done["frame"] if done else None, "ts": self.cur_ts, "line_no": no,
            "pts": _int(m["pts"]), "keyframe": keyframe, "nal_count": nal_count,
            "total_size": _int(m["total_size"]),
        }

    def _on_finished(self, no: int, line: str, m: re.Match[str]) -> None:
        self._finished(no, m)
        if (_int(m["nal_count"]) or 0) > 1:
            acc = self._hit("stream-nal-count", no, line, _BY_NAME["gst.finished"], m)
            acc.extra["max_nal_count"] = max(acc.extra.get("max_nal_count", 0), _int(m["nal_count"]) or 0)

    def _on_old_finished(self, no: int, line: str, m: re.Match[str]) -> None:
        self._finished(no, m)
        if (_int(m["nal_count"]) or 0) > 1:
            self._hit("stream-nal-count", no, line, _BY_NAME["gst.old.finished"], m)

    def _on_drain(self, no: int, line: str, m: re.Match[str]) -> None:
        if self.pending is not None and self.pending_drain is None:
            self.pending_drain = {"line_no": no, "ts": self.cur_ts, "line": _trim(line)}

    def _on_host_error(self, no: int, line: str, m: re.Match[str]) -> None:
        self._resolve(ok=False)
        _bounded_add(self.host_errors, m["code"])
        self.host_error_text.setdefault(m["code"], m["text"][:100])

    def _on_bad_magic(self, no: int, line: str, m: re.Match[str]) -> None:
        self._resolve(ok=False)
        _bounded_add(self.magics, m["magic"].lower())

    _on_old_invalid_message_magic = _on_old_invalid_response_magic = _on_bad_magic

    def _on_unexpected_type(self, no: int, line: str, m: re.Match[str]) -> None:
        self._resolve(ok=False)
        _bounded_add(self.unexpected, m["msg_type"])

    _on_old_unknown_type = _on_unexpected_type

    def _on_short_body(self, no: int, line: str, m: re.Match[str]) -> None:
        self._resolve(ok=False)
        self.short_reads += 1

    _on_short_nal_size = _on_short_nal_data = _on_old_read_frame_response_failed = _on_short_body

    def _on_old_no_pending_frame(self, no: int, line: str, m: re.Match[str]) -> None:
        self.orphans += 1

    def _closed(self, m: re.Match[str] | None, resolve: bool) -> None:
        if resolve and self.pending is not None:
            self._resolve(ok=False)
        err = (m.groupdict().get("error") if m is not None else None) or ""
        if err:
            _bounded_add(self.close_errors, err)

    def _on_read_header_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._closed(m, resolve=True)

    _on_old_read_header_failed = _on_old_connection_lost_header = _on_read_header_failed
    _on_old_connection_lost = _on_read_header_failed

    def _on_write_request_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._closed(m, resolve=False)

    _on_write_pixels_failed = _on_old_write_header_failed = _on_write_request_failed
    _on_old_write_request_failed = _on_write_request_failed

    def _on_go_using_vsockenc(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.video_mode = "vsockenc"

    def _on_go_scanout_mode(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.video_mode = "scanout"
        self._note("scanout-mode", "desktop-bridge runs in scanout mode: vsockenc is not used "
                   "at all (FAILURES.md #60); force a GStreamer mode to test vsockenc", no, line)

    def _on_bridge_pipeline(self, no: int, line: str, m: re.Match[str]) -> None:
        self.s.pipeline = m["pipeline"][:2000]

    # ---------------------------------------------------------------- the end
    def finish(self) -> GstLogSummary:
        s = self.s
        self._fill(s)
        s.gst_lines, s.vsockenc_lines = self.gst_lines, self.vsockenc_lines
        s.first_ts, s.last_ts = self.first_ts, self.last_ts
        s.element_eras = sorted(self.eras, key=self.eras.__getitem__)
        s.element = self._element()
        s.host_errors = dict(self.host_errors)
        s.bad_magics = dict(self.magics)
        findings: list[Finding] = []
        if self.pending is not None:
            s.pending_at_end = self.pending["frame"]
            t0, t1 = _ts_seconds(self.pending["ts"]), _ts_seconds(self.last_ts)
            if t0 is not None and t1 is not None and t1 >= t0:
                s.idle_s_at_end = round(t1 - t0, 6)
            self._judge_pending(findings)
        for fid in (CONNECT_FAILED, PEER_CLOSED, DESYNC, HOST_ERROR, "stream-connect-failed",
                    "stream-bad-magic", "stream-protocol-error", "gst-bgra-bandwidth",
                    "stream-nal-count"):
            if fid in self.accs:
                findings.append(self._gst_finding(fid))
        s.findings = findings
        broken = any(f.severity == "fail" for f in findings) or self.overlapping
        s.sequence = "none" if s.frames_sent == 0 else "broken" if broken else "healthy"
        self._input_notes()
        s.notes = list(self.notes.values())
        return s

    def _element(self) -> str | None:
        if not self.eras:
            return None
        keys = set(self.eras)
        # Drop the wide ranges that a narrower era seen in the same log already explains.
        if len(keys) > 1:
            keys.discard("gem-handle")
        if keys & {"sync", "recv-thread"}:
            keys.discard("pre-pipelining")
        if keys & {"recv-thread", "p0"}:
            keys.discard("old-connect")
        if len(keys) == 1:
            return _ERAS[keys.pop()]
        return "mixed: " + "; ".join(_ERAS[k] for k in sorted(keys, key=self.eras.__getitem__))

    def _judge_pending(self, findings: list[Finding]) -> None:
        s, p = self.s, self.pending
        assert p is not None
        eras = set(self.eras)
        pipelined = "head" in eras or not (eras & _NOT_PIPELINED)
        synchronous = not pipelined and "recv-thread" not in eras and "p0" not in eras
        evidence = {"frame": p["frame"], "sent_ts": p["ts"], "sent_line_no": p["line_no"],
                    "last_ts": self.last_ts, "idle_s_at_end": s.idle_s_at_end,
                    "frames_sent": s.frames_sent, "frames_finished": s.frames_finished,
                    "line_no": p["line_no"], "line": None}
        idle = f", {s.idle_s_at_end:g} s before the log ends" if s.idle_s_at_end else ""
        if self.pending_drain is not None:
            evidence.update(line_no=self.pending_drain["line_no"], line=self.pending_drain["line"])
            message = (f"frame {p['frame']} was sent at {p['ts'] or '?'} and never answered; the "
                       f"pipeline is stopping and the drain blocks on its reply{idle}")
        elif self.pending_next is not None:
            evidence.update(line_no=self.pending_next["line_no"], line=self.pending_next["line"],
                            next_frame_ts=self.pending_next["ts"])
            message = (f"frame {p['frame']} was sent at {p['ts'] or '?'} and never answered; the "
                       f"next frame started at {self.pending_next['ts'] or '?'} and is blocked "
                       f"reading that reply (no timeout){idle}")
        elif synchronous and s.frames_finished >= 1:
            evidence["line"] = self.pending_text
            message = (f"frame {p['frame']} was sent at {p['ts'] or '?'} and no reply follows; "
                       f"this element version blocks right after sending{idle} "
                       f"({s.frames_finished} earlier frames were answered)")
        else:
            self._note("pending-at-end", f"the log ends with frame {p['frame']} sent and its reply "
                       "not read yet: normal for the pipelined element, which reads it when the "
                       "next frame arrives (a static screen sends none). If the picture is frozen "
                       "while the screen changes, this is vsockenc-no-reply.", p["line_no"],
                       None, related=NO_REPLY)
            return
        findings.append(Finding(NO_REPLY, message, {k: v for k, v in evidence.items()
                                                    if v is not None}, 1))

    def _gst_finding(self, fid: str) -> Finding:
        acc = self.accs[fid]
        s = self.s
        first = _BY_NAME[acc.first_sig]
        times = f" ({acc.count} lines)" if acc.count > 1 else ""
        if fid == CONNECT_FAILED:
            errs = ", ".join(self.connect_errors) or first.meaning
            not_connected = acc.sigs.get("gst.not-connected", 0)
            attempts = acc.count - not_connected
            times = f" ({attempts} attempts)" if attempts > 1 else ""
            if s.transport == "tcp" and s.tcp_port is not None:
                target = f"{s.tcp_host}:{s.tcp_port}"
            elif s.transport == "unix":
                target = f"unix:{s.socket_path}"
            elif s.transport == "vsock":
                target = "vsock (set tcp-host: vsock never worked on macOS)"
            else:
                target = "the host encoder"
            msg = f"vsockenc could not connect to {target}: {errs}{times}"
            if not_connected:
                msg += f"; {not_connected} frame(s) then failed with 'Not connected to host encoder'"
            return self._finding(fid, msg, transport=s.transport, tcp_host=s.tcp_host,
                                 tcp_port=s.tcp_port, errors=dict(self.connect_errors))
        if fid == PEER_CLOSED:
            seen = ", ".join(_BY_NAME[n].regex.pattern.split(":")[0].rstrip("$") +
                             (f" ×{c}" if c > 1 else "") for n, c in acc.sigs.items())
            msg = f"the host closed vsockenc's connection: {seen}"
            if self.close_errors:
                msg += f" ({', '.join(self.close_errors)})"
            return self._finding(fid, msg + "; the pipeline errors and the stream restarts",
                                 errors=dict(self.close_errors))
        if fid == DESYNC:
            parts = []
            if self.magics:
                parts.append("bad magic " + ", ".join(_magic_hint(k) for k in list(self.magics)[:3]))
            if self.unexpected:
                parts.append("unexpected message type " + ", ".join(
                    f"{t} ({_MSG_TYPES.get(_int(t) or -1, '?')})" for t in self.unexpected))
            if self.short_reads:
                parts.append(f"{self.short_reads} short read(s)")
            if self.orphans:
                parts.append(f"{self.orphans} reply(ies) for no pending frame")
            msg = f"vsockenc lost alignment with the host: {'; '.join(parts) or first.meaning}" \
                  f"{times}; each drops a frame and nothing resynchronises"
            return self._finding(fid, msg, magics=dict(self.magics),
                                 unexpected_types=dict(self.unexpected))
        if fid == HOST_ERROR:
            codes = ", ".join(f"{c} ({self.host_error_text.get(c, '')!s}) ×{n}"
                              for c, n in self.host_errors.items())
            msg = f"the host answered {acc.count} frame(s) with ERROR: {codes}"
            return self._finding(fid, msg, codes=dict(self.host_errors))
        if fid == "gst-bgra-bandwidth":
            ex = acc.extra
            return self._finding(fid, f"each request carries {ex['pixel_bytes']} bytes of pixels "
                                 f"({ex['frame_size']} at 4 bytes/pixel, BGRx/BGRA); NV12 would "
                                 f"be {ex['nv12_bytes']}")
        if fid == "stream-nal-count":
            return self._finding(fid, f"{acc.count} replies carried more than one NAL entry")
        if fid == "stream-bad-magic":
            return self._finding(fid, "the scanout reader got a reply that is not HXFR: bad magic "
                                 f"{_magic_hint(acc.fields.get('magic', '?'))}{times}")
        if fid == "stream-protocol-error":
            t = _int_hex(acc.fields.get("msg_type", "")) or -1
            return self._finding(fid, "the scanout reader got a message of the wrong type: "
                                 f"{acc.fields.get('msg_type')} ({_MSG_TYPES.get(t, '?')}){times}")
        if fid == "stream-connect-failed":
            return self._finding(fid, f"the scanout client could not connect to QEMU at "
                                 f"{acc.fields.get('addr')}: {acc.fields.get('error')}{times}")
        return self._finding(fid, f"{first.meaning}{times}")

    def _input_notes(self) -> None:
        s = self.s
        if s.shm_frames:
            self._note("shm-input", f"{s.shm_frames} frames came from shared-memory buffers: "
                       "resource_id=0, the pixels travel over TCP (normal on UTM)",
                       related="pipewire-shm-buffers")
            self.notes["shm-input"].count = s.shm_frames
        if s.dmabuf_frames:
            self._note("dmabuf-input", f"{s.dmabuf_frames} frames had a zero-copy virtio-gpu "
                       "resource id (not seen on UTM so far)")
            self.notes["dmabuf-input"].count = s.dmabuf_frames
        if "recv-thread" in self.eras and s.frames_sent and not s.frames_finished:
            self._note("recv-thread", "receive-thread element (b608802f0–9aa275186) and no "
                       "'Finished frame' line: replies pushed from that thread never reached "
                       "appsink (FAILURES.md #9); update the element")
        if self.overlapping:
            self._note("overlapping", f"{self.overlapping} frames were sent while the previous "
                       "one had no reply logged (log level too low, or an old element)")


# ════════════════════════════════════════════════════════════════════ QEMU host log

_DATE = re.compile(r"(20\d\d)-(\d\d)-(\d\d)")


def _generation_from_version(version: str) -> str | None:
    m = _DATE.search(version)
    if not m:
        return None
    date = m.group(0)
    if date >= "2026-02-10":
        return "H4"
    if date >= "2026-02-07":
        return "H3"
    if date >= "2026-02-06":
        return "H2"
    return None


_GEN_HINTS = {
    "qemu.h0-init": "H0", "qemu.ready-unix": "H1", "qemu.frame-request": "H1",
    "qemu.frame-request-raw": "H1", "qemu.resource0-rejected": "H1", "qemu.guest-connected": "H1–H2",
    "qemu.added-client": "H3–H4", "qemu.fcntl-failed": "H4", "qemu.control-send-failed": "H4",
    "qemu.gl-blit-setup": "H4", "qemu.gl-blit-context": "H4", "qemu.frame-request-pixels": "H2–H3",
    "qemu.subscribe": "H3–H4", "qemu.unix-bind-failed": "H1", "qemu.unix-socket-failed": "H1",
    "qemu.unix-listen-failed": "H1",
}


class _Run:
    """One QEMU process's lines (helix-debug.log is appended across runs)."""

    def __init__(self, first_line: int | None) -> None:
        self.first_line = first_line
        self.accs: dict[str, _Acc] = {}
        self.steps: dict[str, int] = {}
        self.init_line: int | None = None
        self.placeholder = False
        self.version: str | None = None
        self.build: str | None = None
        self.gen_hints: list[str] = []
        self.init_port: int | None = None
        self.listen: dict[str, Any] | None = None
        self.bind_errors: list[dict[str, Any]] = []
        self.init_errors: list[dict[str, Any]] = []
        self.encoder_errors: dict[str, int] = {}
        self.host_error_codes: dict[str, int] = {}
        self.connected = self.disconnected = self.rejected = self.timeouts = 0
        self.guest_open = False
        self.slots: dict[str, dict[str, Any]] = {}  # client id -> state
        self.subscribes = 0
        self.subscribe_samples: list[dict[str, Any]] = []
        self.unknown_types: dict[str, int] = {}
        self.frame_requests = self.no_pixels = self.replies = self.encodes = self.drops = 0
        self.transfer_pending: dict[str, Any] | None = None
        self.no_subscriber_after_subscribe = 0
        self.lines = 0

    @property
    def max_step(self) -> int:
        return max((_STEP_INDEX[s] for s in self.steps), default=-1)

    def brief(self) -> dict[str, Any]:
        last = max(self.steps, key=_STEP_INDEX.__getitem__) if self.steps else None
        return {"first_line": self.first_line, "version": self.version, "last_step": last,
                "listen": self.listen, "findings": sorted(self.accs)}


class _QemuScanner(_Scanner):
    kind = "qemu"

    def __init__(self) -> None:
        super().__init__()
        self.d = _DISPATCH["qemu"]
        self.helix_lines = 0
        self.run = _Run(None)
        self.runs = 0
        self.earlier: list[dict[str, Any]] = []
        self.versions: list[str] = []

    # findings and notes belong to the current run
    def _hit(self, failure_id: str, no: int, line: str, sig: Signature,
             m: re.Match[str] | None) -> _Acc:
        acc = self.run.accs.get(failure_id)
        if acc is None:
            acc = self.run.accs[failure_id] = _Acc()
        acc.add(no, line, sig, m)
        return acc

    def feed(self, no: int, line: str) -> int:
        self.lines += 1
        try:
            if "\x00" in line or "\ufffd" in line:
                self.binary_lines += 1
            if "\x1b" in line:
                line = _ANSI.sub("", line)
            return self._feed(no, line)
        except Exception:  # noqa: BLE001 - one odd line must not end the scan
            self.internal_errors += 1
            return 0

    def _feed(self, no: int, line: str) -> int:
        mark = _QEMU_MARK.search(line)
        if mark is not None:
            content = line[mark.start():].rstrip()
            if content.startswith("helix: "):
                content = content[7:]
            self.helix_lines += 1
            self.run.lines += 1
        else:
            content = line.strip()
            if not content:
                return 0
        found = _match(self.d, content)
        if found is None:
            return 2 if mark is not None else 0
        sig, m = found
        if mark is None and sig.detect:  # an unprefixed host string (helix-debug.log)
            self.helix_lines += 1
            self.run.lines += 1
        self._apply(no, line, sig, m)
        return 2 if mark is not None else 1 if sig.detect else 0

    def _apply(self, no: int, line: str, sig: Signature, m: re.Match[str]) -> None:
        if sig.step == "init":
            self._maybe_new_run(no)
        run = self.run
        if sig.step is not None and sig.step not in run.steps:
            run.steps[sig.step] = no
        hint = _GEN_HINTS.get(sig.name)
        if hint and hint not in run.gen_hints:
            run.gen_hints.append(hint)
        _Scanner._apply(self, no, line, sig, m)

    def _maybe_new_run(self, no: int) -> None:
        run = self.run
        if run.init_line is None and run.max_step < _STEP_INDEX["listening"] and not run.accs:
            run.first_line = run.first_line or no
            return
        if run.lines or run.steps:
            self.runs += 1
            self.earlier.append(run.brief())
            if len(self.earlier) > _SAMPLES:
                del self.earlier[0]
        self.run = _Run(no)

    # ---------------------------------------------------------------- handlers
    def _on_h0_init(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.placeholder = True
        self.run.init_line = no
        self.run.init_port = _int(m["port"])

    def _on_init(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.init_line = no
        self.run.init_port = _int(m["port"])

    def _on_version(self, no: int, line: str, m: re.Match[str]) -> None:
        version = m["version"].strip()[:200]
        self.run.version = version
        if version not in self.versions and len(self.versions) < _SAMPLES:
            self.versions.append(version)

    def _on_build(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.build = m["build"].strip()[:200]

    def _on_already_initialized(self, no: int, line: str, m: re.Match[str]) -> None:
        self._note("re-init", "init ran again in the same process (display reset/resize); "
                   "harmless on builds with the fix (FAILURES.md #37)", no, line)

    def _on_ready_tcp(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.listen = {"transport": "tcp", "host": m["host"], "port": _int(m["port"]),
                           "guest_host": m["guest_host"], "guest_port": _int(m["guest_port"]),
                           "line_no": no}

    def _on_ready_unix(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.listen = {"transport": "unix", "path": m["path"], "proxy_host": m["proxy_host"],
                           "port": _int(m["port"]), "line_no": no}

    def _bind_error(self, no: int, line: str, m: re.Match[str], transport: str) -> None:
        port = _int(m.groupdict().get("port"))
        self.run.bind_errors.append({"transport": transport, "port": port,
                                     "error": m["error"][:200], "line_no": no})
        del self.run.bind_errors[:-_SAMPLES]

    def _on_tcp_bind_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._bind_error(no, line, m, "tcp")

    def _on_unix_bind_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._bind_error(no, line, m, "unix")

    def _init_error(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.init_errors.append({"line_no": no, "line": _trim(line),
                                     "error": (m.groupdict().get("error") or "")[:200]})
        del self.run.init_errors[:-_SAMPLES]

    _on_unix_socket_failed = _on_unix_listen_failed = _on_tcp_socket_failed = _init_error
    _on_tcp_listen_failed = _on_accept_thread_failed = _on_accept_failed = _init_error
    _on_alloc_failed = _on_alloc_failed_debug = _on_virgl_init_failed = _init_error

    def _on_guest_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.connected += 1
        self.run.guest_open = True

    def _on_guest_disconnected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.disconnected += 1
        self.run.guest_open = False

    def _on_client_connected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.connected += 1

    def _slot(self, client: str) -> dict[str, Any]:
        slots = self.run.slots
        if client not in slots and len(slots) >= 64:
            slots.pop(next(iter(slots)))
        return slots.setdefault(client, {"open": True, "silent": True, "line_no": None})

    def _on_added_client(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.slots[m["client"]] = {"open": True, "silent": True, "line_no": no,
                                       "fd": _int(m["fd"])}
        if len(self.run.slots) > 64:
            self.run.slots.pop(next(iter(self.run.slots)))

    def _on_handler_started(self, no: int, line: str, m: re.Match[str]) -> None:
        slot = self._slot(m["client"])
        slot["open"] = True
        slot["started_line"] = no
        slot["started_text"] = _trim(line)

    def _client_activity(self, m: re.Match[str]) -> None:
        client = m.groupdict().get("client")
        if client is not None:
            self._slot(client)["silent"] = False

    def _on_subscribe(self, no: int, line: str, m: re.Match[str]) -> None:
        run = self.run
        self._client_activity(m)
        run.subscribes += 1
        if len(run.subscribe_samples) < _SAMPLES:
            run.subscribe_samples.append({"client": _int(m["client"]), "scanout": _int(m["scanout"]),
                                          "fe": m["fe"], "g_fe": m["g_fe"], "line_no": no})
        if m["fe"] != m["g_fe"]:
            acc = self._hit("stream-no-reply", no, line, _BY_NAME["qemu.subscribe"], m)
            acc.extra["double_init"] = True

    def _on_config_req(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)

    _on_after_subscribe = _on_config_req

    def _client_gone(self, m: re.Match[str]) -> None:
        client = m.groupdict().get("client")
        if client is not None:
            self._slot(client)["open"] = False

    def _on_client_disconnected(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.disconnected += 1
        self._client_gone(m)

    def _on_removing_client(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_gone(m)

    def _on_client_invalid_magic(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self._client_gone(m)

    def _on_control_send_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self._client_gone(m)

    def _on_partial_send_close(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self._client_gone(m)
        self.run.drops += 1

    def _on_partial_send(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self.run.drops += 1

    def _on_client_dropping(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)
        self.run.drops += 1

    def _on_send_failed(self, no: int, line: str, m: re.Match[str]) -> None:
        self._client_activity(m)

    _on_send_error = _on_send_failed

    def _on_no_slots(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.rejected += 1

    def _on_recv_timeout(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.timeouts += 1

    def _on_unknown_type(self, no: int, line: str, m: re.Match[str]) -> None:
        _bounded_add(self.run.unknown_types, m["msg_type"])

    def _host_error(self, code: str) -> None:
        _bounded_add(self.run.host_error_codes, code)

    def _on_unknown_type_h1(self, no: int, line: str, m: re.Match[str]) -> None:
        _bounded_add(self.run.unknown_types, m["msg_type"])
        self._host_error("-1")

    def _on_invalid_magic_h1(self, no: int, line: str, m: re.Match[str]) -> None:
        self._host_error("-1")

    def _on_resource0_rejected(self, no: int, line: str, m: re.Match[str]) -> None:
        self._host_error("-2")

    _on_iosurface_resource_failed = _on_iosurface_encoding_failed = _on_resource0_rejected

    def _on_frame_request_pixels(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.frame_requests += 1
        if m["pixel_data"] == "NO":
            self.run.no_pixels += 1
            self._hit("stream-wrong-picture", no, line, _BY_NAME["qemu.frame-request-pixels"], m)

    def _on_frame_request(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.frame_requests += 1

    _on_frame_request_raw = _on_frame_request

    def _on_frame_sent(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.replies += 1

    def _encoder_error(self, no: int, line: str, m: re.Match[str]) -> None:
        code = m.groupdict().get("code")
        if code is not None:
            _bounded_add(self.run.encoder_errors, code)

    _on_encoding_failed = _on_vt_create_failed = _on_vt_prepare_failed = _encoder_error
    _on_cvpixelbuffer_failed = _on_vt_encode_frame_failed = _on_vt_encode_failed = _encoder_error
    _on_vt_encode_failed_h0 = _on_data_pointer_failed = _on_scanout_vt_create_failed = _encoder_error
    _on_scanout_vt_prepare_failed = _on_frame_ready_cvpixelbuffer_failed = _encoder_error

    def _on_encode(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.encodes += 1
        if m["status"] != "0":
            self._hit("encoder-error", no, line, _BY_NAME["qemu.encode"], m)
            _bounded_add(self.run.encoder_errors, m["status"])

    def _on_frame_ready_drop(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.drops += 1

    _on_frame_ready_blit_failed = _on_frame_ready_drop

    def _on_frame_ready_no_subscriber(self, no: int, line: str, m: re.Match[str]) -> None:
        if self.run.subscribes and m["active_clients"] == "0" and any(
                s["open"] for s in self.run.slots.values()):
            self.run.no_subscriber_after_subscribe += 1

    def _on_transfer_about(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.transfer_pending = {"line_no": no, "line": _trim(line)}

    def _on_transfer_completed(self, no: int, line: str, m: re.Match[str]) -> None:
        self.run.transfer_pending = None

    _on_transfer_failed = _on_transfer_completed

    # ---------------------------------------------------------------- the end
    def finish(self) -> QemuLogSummary:
        s = QemuLogSummary()
        self._fill(s)
        run = self.run
        s.helix_lines = self.helix_lines
        s.runs = self.runs + (1 if (run.lines or run.steps or run.accs) else 0)
        s.earlier_runs = list(self.earlier)
        s.run_first_line = run.first_line
        s.steps = dict(run.steps)
        s.last_step = max(run.steps, key=_STEP_INDEX.__getitem__) if run.steps else None
        s.placeholder = run.placeholder
        s.version, s.build, s.versions_seen = run.version, run.build, list(self.versions)
        s.generation = self._generation(run)
        s.init_port, s.listen = run.init_port, run.listen
        s.bind_errors, s.init_errors = list(run.bind_errors), list(run.init_errors)
        s.encoder_errors = dict(run.encoder_errors)
        s.clients_connected, s.clients_disconnected = run.connected, run.disconnected
        s.clients_rejected, s.recv_timeouts = run.rejected, run.timeouts
        s.clients_open_at_end = sum(1 for v in run.slots.values() if v["open"]) + run.guest_open
        s.subscribes, s.subscribe_samples = run.subscribes, list(run.subscribe_samples)
        s.unknown_message_types = dict(run.unknown_types)
        s.frame_requests, s.requests_without_pixels = run.frame_requests, run.no_pixels
        s.replies_sent, s.encodes, s.frames_dropped = run.replies, run.encodes, run.drops
        s.findings = self._findings(run, s)
        self._run_notes(run, s)
        s.notes = list(self.notes.values())
        return s

    def _generation(self, run: _Run) -> str | None:
        if run.placeholder:
            return "H0"
        gen = _generation_from_version(run.version) if run.version else None
        if gen:
            return gen
        if run.build and "TCP listener" in run.build:
            return "H2"
        for g in ("H4", "H3–H4", "H2–H3", "H1", "H1–H2"):  # most specific first
            if g in run.gen_hints:
                return g
        if run.build and "Multi-client" in run.build:
            return "H3–H4"
        return None

    def _findings(self, run: _Run, s: QemuLogSummary) -> list[Finding]:
        out: list[Finding] = []
        accs = run.accs

        def finding(fid: str, message: str, **ev: Any) -> Finding:
            acc = accs.get(fid)
            if acc is None:
                return Finding(fid, message, ev, 1)
            return Finding(fid, message, acc.evidence(**ev), acc.count)

        if run.placeholder and run.listen is None:
            out.append(finding("qemu-not-listening", "H0 placeholder module: 'Helix frame export "
                               f"initialized on vsock port {run.init_port}' and nothing listens "
                               "(the listener is a TODO in that build)", port=run.init_port))
        if "qemu-bind-failed" in accs:
            b = run.bind_errors[0] if run.bind_errors else {}
            where = f"port {b.get('port')}" if b.get("port") is not None else \
                "its Unix socket (helix-frame-export.sock in QEMU's working directory)"
            msg = f"QEMU could not bind {where}: {b.get('error', '?')}; init returned without a listener"
            earlier = [r for r in self.earlier if r.get("listen") and r["listen"].get("port") ==
                       b.get("port") and b.get("port") is not None]
            if earlier:
                msg += ("; an earlier init in this log listened on that port (a previous QEMU still "
                        "holding it, or a second init in the same process, #37)")
            out.append(finding("qemu-bind-failed", msg, port=b.get("port"),
                               transport=b.get("transport"), error=b.get("error")))
        if "qemu-init-failed" in accs:
            acc = accs["qemu-init-failed"]
            first = _BY_NAME[acc.first_sig]
            err = run.init_errors[0]["error"] if run.init_errors else ""
            msg = f"{first.meaning}" + (f": {err}" if err else "")
            if acc.count > 1:
                msg += f" ({acc.count} lines)"
            out.append(finding("qemu-init-failed", msg))
        elif run.init_line is not None and not run.placeholder and run.listen is None \
                and "qemu-bind-failed" not in accs:
            last = s.last_step or "init"
            out.append(Finding("qemu-init-failed",
                               f"init started (line {run.init_line}, port {run.init_port}) but "
                               f"never reached 'Frame export ready'; last step: {last}; no "
                               "error was logged",
                               {"line_no": run.init_line, "init_port": run.init_port,
                                "last_step": last, "steps": list(s.steps_reached)}, 1))
        for fid in ("encoder-unavailable", "encoder-error"):
            if fid in accs:
                acc = accs[fid]
                codes = ", ".join(f"{c} ×{n}" for c, n in run.encoder_errors.items())
                msg = _BY_NAME[acc.first_sig].meaning
                msg = f"{msg}{': VideoToolbox status ' + codes if codes else ''}"
                if acc.count > 1:
                    msg += f" ({acc.count} error lines)"
                out.append(finding(fid, msg, codes=dict(run.encoder_errors)))
        if HOST_ERROR in accs:
            acc = accs[HOST_ERROR]
            codes = ", ".join(f"{c} ×{n}" for c, n in run.host_error_codes.items())
            out.append(finding(HOST_ERROR, f"the host answered requests with ERROR ({codes}): "
                               f"{_BY_NAME[acc.first_sig].meaning}",
                               codes=dict(run.host_error_codes)))
        if "stream-wrong-picture" in accs:
            acc = accs["stream-wrong-picture"]
            out.append(finding("stream-wrong-picture", f"{_BY_NAME[acc.first_sig].meaning}"
                               f"{f' ({acc.count} lines)' if acc.count > 1 else ''}"))
        if "stream-no-reply" in accs:
            acc = accs["stream-no-reply"]
            if acc.extra.get("double_init"):
                msg = ("a client subscribed to a different frame-export instance than the one "
                       "encoding (fe != g_fe): init ran twice and subscribers are invisible (#37)")
            else:
                msg = f"{acc.count} encoded replies could not be delivered: " \
                      f"{acc.fields.get('error', 'client gone')} (#42)"
            out.append(finding("stream-no-reply", msg))
        if "stream-closed" in accs:
            acc = accs["stream-closed"]
            parts = [f"{_BY_NAME[n].meaning} ×{c}" for n, c in acc.sigs.items()]
            out.append(finding("stream-closed", "the host dropped clients: " + "; ".join(parts)))
        silent = [(cid, v) for cid, v in run.slots.items()
                  if v["silent"] and v["open"] and v.get("started_line")]
        if s.generation == "H4" and silent:
            cid, v = silent[0]
            out.append(Finding(
                "frame-request-ignored",
                f"H4 host ({run.version or 'build dated 2026-02-10 or later'}): client {cid} "
                "connected and its handler started, then nothing was logged for it. H4 skips "
                "FRAME_REQUEST silently, so a vsockenc client waits forever",
                {"line_no": v["started_line"], "line": v["started_text"], "client": cid,
                 "silent_clients": [c for c, _ in silent][:_SAMPLES], "version": run.version},
                len(silent)))
        return out

    def _run_notes(self, run: _Run, s: QemuLogSummary) -> None:
        if not self.helix_lines:
            self._note("no-helix", "no [HELIX] / helix: line at all: this QEMU may have no Helix "
                       "module, frame-export init has not run yet (it waits for virgl), or the "
                       "log is not QEMU's stderr (helix-debug.log is often empty, #38)",
                       related="qemu-no-helix")
        if run.unknown_types:
            kinds = ", ".join(f"{t} ({_MSG_TYPES.get(_int(t) or -1, '?')}) ×{n}"
                              for t, n in run.unknown_types.items())
            hint = ""
            if "48" in run.unknown_types:
                hint = "; SUBSCRIBE on a host without scanout support (H2): use request mode"
            self._note("unknown-types", f"the host skipped messages of unknown type: {kinds}{hint}")
        if run.transfer_pending is not None:
            self._note("transfer-hang", "the last readback 'About to call "
                       "virgl_renderer_transfer_read_iov' never COMPLETED: QEMU crashed or hung "
                       "in the transfer (FAILURES.md #40/#41)", run.transfer_pending["line_no"],
                       run.transfer_pending["line"])
        if run.no_subscriber_after_subscribe:
            self._note("no-subscriber", f"{run.no_subscriber_after_subscribe} page flips found "
                       "no subscriber while a subscribed client was connected (#37)",
                       related="stream-no-reply")
        if run.timeouts:
            self._note("recv-timeouts", f"{run.timeouts} idle clients were disconnected by the "
                       "host's receive timeout; vsockenc then fails its next write (#14)",
                       related="vsockenc-peer-closed")
        if self.runs:
            self._note("earlier-runs", f"{self.runs} earlier QEMU run(s) in this log; only the "
                       f"last (from line {run.first_line}) is judged")


# ════════════════════════════════════════════════════════════════════ entry points


def _prepared(lines: Iterable[str | bytes], cut: list[int]) -> Iterator[str]:
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
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


def _check_kind(kind: str) -> None:
    if kind not in (*KINDS, "auto"):
        raise UsageError(f"unknown log kind {kind!r}: choose auto, gst or qemu")


def scan_lines(lines: Iterable[str | bytes], kind: str = "auto",
               source: str | None = None) -> LogSummary:
    """Scan lines of one kind: "gst", "qemu", or "auto" (decided by the first line that only
    one kind produces; with no such line the result is an `UnknownLogSummary`)."""
    _check_kind(kind)
    cut = [0]
    it = iter(lines) if isinstance(lines, _CappedLines) else _prepared(lines, cut)
    no = 0
    scanner: _GstScanner | _QemuScanner
    if kind == "auto":
        g, q = _GstScanner(), _QemuScanner()
        chosen: _GstScanner | _QemuScanner | None = None
        for line in it:
            no += 1
            dg, dq = g.feed(no, line), q.feed(no, line)
            if dg or dq:
                chosen = g if dg >= dq else q
                break
        if chosen is None:
            unknown = UnknownLogSummary(source=source, lines=no, binary_lines=g.binary_lines,
                                        long_lines=cut[0] + getattr(lines, "long_lines", 0))
            unknown.notes.append(Note("unrecognised", "no vsockenc GST_DEBUG line and no QEMU "
                                      "[HELIX] line: not a log this tool knows (use --kind to "
                                      "force one)"))
            return unknown
        scanner = chosen
    else:
        scanner = _GstScanner() if kind == "gst" else _QemuScanner()
    feed = scanner.feed
    for line in it:
        no += 1
        feed(no, line)
    summary = scanner.finish()
    summary.source = source
    summary.long_lines = cut[0] + getattr(lines, "long_lines", 0)
    return summary


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
    if isinstance(exc, zlib.error | EOFError):
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


def scan_file(path: str | os.PathLike[str], kind: str = "auto") -> LogSummary:
    """Scan one log file (plain text or gzip) in bounded memory.

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
        binary: Any = raw
        if head == b"\x1f\x8b":
            binary = stack.enter_context(gzip.GzipFile(fileobj=raw))
        text = stack.enter_context(io.TextIOWrapper(binary, encoding="utf-8", errors="replace"))
        summary = scan_stream(text, kind, name)
    summary.source_age_s = round(max(0.0, time.time() - mtime), 1)
    return summary
