"""The signature table: every known log string, and what a line of it does.

`SIGNATURES` holds one `Signature` per log string (vsockenc, including its historical
formats; the host's; desktop-bridge's; helix-drm-manager's and the desktop's lease helpers'),
each with its log kind, its pattern,
its meaning, the failure id it proves and what a matching line does to the scan: its
`effect`s (a small closed set of kinds, `scanner.Effect`, e.g. `count("shm_frames")`) and,
for the few rows that need state across lines, the scanner method that handles it
(`handler=_GstScanner._on_sent_frame`). `_GST` and `_QEMU` are its vsockenc and host parts;
the `bridge` and `drm` parts live in `signatures_bridge` and `signatures_drm`. A new log
string is one row; the table is checked on import (here: names, kinds, failure ids, steps,
eras; in `dispatch.compile_rules`: effects and handlers). `markdown_table()` renders one
kind's rows for docs/tools.md.
"""

from __future__ import annotations

from typing import Any

from helixdiag.compat import sre_constants as _sre
from helixdiag.compat import sre_parse as _sre_parse
from helixdiag.failures import CATALOG
from helixdiag.logscan.gst import (
    _ERAS,
    CONNECT_FAILED,
    DESYNC,
    FRAME_FAILED,
    FRAME_STARTED,
    HOST_ERROR,
    PEER_CLOSED,
    _GstScanner,
    closed,
    connect,
    connect_failed,
    pending_mark,
)
from helixdiag.logscan.qemu import (
    CLIENT_ACTIVE,
    CLIENT_GONE,
    INIT_ERROR,
    _QemuScanner,
    bind_error,
    gen_hint,
    init_at,
    listen,
)
from helixdiag.logscan.scanner import (
    _STEP_INDEX,
    KINDS,
    Effect,
    add_note,
    count,
    host_error,
    mark,
    most,
    prove,
    put,
    tally,
)
from helixdiag.logscan.signature import _ERR, _H, _HEX, _IP, _N, _PTR, _U, Signature, _sig
from helixdiag.logscan.signatures_bridge import _BRIDGE
from helixdiag.logscan.signatures_drm import _DRM

__all__ = ["SIGNATURES", "Signature", "_g", "_q", "check_table", "markdown_table", "signatures_for"]

# ════════════════════════════════════════════════════════════════════ the signature table


def _g(name: str, pattern: str, meaning: str, failure_id: str | None = None, **kw: Any) -> Signature:
    return _sig("gst", name, pattern, meaning, failure_id, **kw)


def _q(name: str, pattern: str, meaning: str, failure_id: str | None = None, **kw: Any) -> Signature:
    return _sig("qemu", name, pattern, meaning, failure_id, **kw)


ENCODER_ERROR = tally("encoder_errors", "code")  # a VideoToolbox status
NO_FRAMES = prove("scanout-no-frames")  # the host shows why a subscriber gets no frame
ENCODE_ERROR = count("encode_errors")  # a capture/encode error on the scanout path

_GST: tuple[Signature, ...] = (
    # ── connect (gst_vsockenc_connect) ──
    _g("unix-socket-failed", rf"Failed to create UNIX socket: {_ERR}",
       "socket-path mode: socket() failed", CONNECT_FAILED, func="connect", level="ERROR",
       detect=False,
       effect=connect_failed("unix")),
    _g("vsock-connect-failed", rf"Failed to connect to vsock (?P<cid>{_U}):(?P<port>{_U}): {_ERR}",
       "no vsock device or listener (vsock never worked on macOS)", CONNECT_FAILED,
       func="connect", level="ERROR",
       effect=connect_failed("vsock")),
    _g("tcp-connect-failed", rf"Failed to connect to (?P<host>{_IP}):(?P<port>{_U}): {_ERR}",
       "TCP connect failed: nothing listening / wrong port (Connection refused), routing "
       "(Network is unreachable)", CONNECT_FAILED, func="connect", level="ERROR",
       effect=connect_failed("tcp")),
    _g("unix-connect-failed", rf"Failed to connect to (?P<path>.+?): {_ERR}",
       "Unix socket path missing or nobody listening", CONNECT_FAILED, func="connect",
       level="ERROR",
       effect=connect_failed("unix")),
    _g("unix-connected", r"Connected via UNIX socket: (?P<path>.*)",
       "connected over the Unix socket (socket-path)", func="connect", level="INFO",
       effect=connect("unix")),
    _g("tcp-socket-failed", rf"Failed to create TCP socket: {_ERR}",
       "socket() failed for TCP", CONNECT_FAILED, func="connect", level="ERROR", detect=False,
       effect=connect_failed("tcp")),
    _g("tcp-invalid-host", r"Invalid TCP host address: (?P<host>.*)",
       "tcp-host must be a numeric IPv4 literal (inet_pton, no DNS)", CONNECT_FAILED,
       func="connect", level="ERROR",
       effect=connect_failed("tcp", error="invalid tcp-host {host!r}")),
    _g("tcp-connected",
       rf"Connected via TCP to (?P<host>{_IP}):(?P<port>{_U}) \(TCP_NODELAY, sndbuf=1MB\)",
       "TCP connection established (does not prove a live backend, see socat)",
       func="connect", level="INFO", era="head",
       effect=connect("tcp")),
    _g("vsock-socket-failed", rf"Failed to create vsock socket: {_ERR}",
       "no AF_VSOCK support", CONNECT_FAILED, func="connect", level="ERROR",
       effect=connect_failed("vsock")),
    _g("vsock-connected", rf"Connected via vsock to (?P<cid>{_U}):(?P<port>{_U})",
       "connected over AF_VSOCK", func="connect", level="INFO",
       effect=connect("vsock")),
    # ── DRM / resource id (open_drm, get_resource_id) ──
    _g("drm-open-failed", r"Failed to open DRM device: (?P<error>.+)",
       "neither /dev/dri/renderD128 nor /dev/dri/card0 openable (DMA-BUF input only)",
       func="open_drm", level="WARNING", note=True),
    _g("drm-opened", rf"Opened DRM device fd=(?P<fd>{_N})", "DRM device opened",
       func="open_drm", level="INFO"),
    _g("not-dmabuf", r"Buffer is not DMA-BUF backed",
       "SHM input: resource_id=0, the frame's pixels go over TCP (normal on UTM)",
       func="get_resource_id", level="WARNING", related="pipewire-shm-buffers",
       effect=(count("shm_frames"), FRAME_STARTED)),
    _g("dmabuf-fd-failed", r"Failed to get DMA-BUF fd", "DMA-BUF fd lookup failed",
       func="get_resource_id", level="WARNING",
       effect=FRAME_STARTED),
    _g("prime-failed", rf"PRIME_FD_TO_HANDLE failed \(fd=(?P<fd>{_N})\): {_ERR}",
       "DMA-BUF from another driver, or permissions", func="get_resource_id", level="WARNING",
       effect=FRAME_STARTED),
    _g("resource-info-failed", rf"VIRTGPU_RESOURCE_INFO failed \(gem=(?P<gem>{_U})\): {_ERR}",
       "not a virtio-gpu buffer object", func="get_resource_id", level="WARNING",
       effect=FRAME_STARTED),
    _g("dmabuf-resource",
       rf"DMA-BUF fd=(?P<fd>{_N}) -> GEM handle=(?P<gem>{_U}) -> resource_id=(?P<resource_id>{_U})"
       rf" \(size=(?P<size>{_U}), blob_mem=(?P<blob_mem>{_U})\)",
       "zero-copy virtio-gpu resource id found", func="get_resource_id", level="INFO", era="head",
       effect=(count("dmabuf_frames"), FRAME_STARTED)),
    # ── replies (finish_pending) ──
    _g("read-header-failed", r"Failed to read response header for pending frame",
       "EOF/reset while waiting for a reply: the host closed the connection; frame dropped",
       PEER_CLOSED, func="finish_pending", level="ERROR", era="head",
       effect=closed(resolve=True)),
    _g("bad-magic", rf"Invalid response magic for pending frame: (?P<magic>{_HEX})",
       "reply does not start with HXFR: stream desync, frame dropped, no resync", DESYNC,
       func="finish_pending", level="ERROR", era="head",
       effect=(FRAME_FAILED, tally("magics", "magic", conv="lower"))),
    _g("host-error", rf"Host encoder error (?P<code>{_N}): (?P<text>.*)",
       "the host answered with an ERROR message; frame dropped", HOST_ERROR,
       func="finish_pending", level="ERROR",
       effect=(FRAME_FAILED, host_error("code", text="text"))),
    _g("unexpected-type", rf"Unexpected message type: (?P<msg_type>{_N})",
       "a non-FRAME_RESPONSE was consumed as the reply (e.g. 17 PONG, 49 SUBSCRIBE_RESP): "
       "one frame dropped, then one frame behind", DESYNC, func="finish_pending", level="WARNING",
       effect=(FRAME_FAILED, tally("unexpected", "msg_type"))),
    _g("short-body", r"Failed to read frame response body",
       "short read of the 24-byte response body", DESYNC, func="finish_pending", level="ERROR",
       effect=(FRAME_FAILED, count("short_reads"))),
    _g("short-nal-size", r"Failed to read NAL size", "short read of a NAL size", DESYNC,
       func="finish_pending", level="WARNING",
       effect=(FRAME_FAILED, count("short_reads"))),
    _g("short-nal-data", r"Failed to read NAL data", "short read of NAL data", DESYNC,
       level="WARNING",
       effect=(FRAME_FAILED,
       count("short_reads"))),  # also the P0 element's string (other function)
    _g("finished",
       rf"Finished pending frame pts=(?P<pts>{_N}) keyframe=(?P<keyframe>{_U}) "
       rf"nal_count=(?P<nal_count>{_U}) total_size=(?P<total_size>{_U})",
       "reply consumed, H.264 pushed downstream (pts is the response's)",
       "stream-nal-count", when="nal_count > 1", func="finish_pending", level="DEBUG", era="head",
       handler=_GstScanner._on_finished),
    _g("drain", r"Draining last pending frame on stop",
       "blocking read of the last reply at pipeline stop (hangs if the host never replies)",
       func="stop", level="DEBUG", era="head",
       effect=pending_mark("pending_drain", "stop waits for the pending reply")),
    # ── requests (handle_frame) ──
    _g("not-connected", r"Not connected to host encoder",
       "connect failed earlier: every frame returns GST_FLOW_ERROR", CONNECT_FAILED,
       func="handle_frame", level="ERROR"),
    _g("no-resource-id", r"Failed to get resource ID for frame",
       "the request will carry pixels (resource_id=0)", func="handle_frame", level="WARNING",
       effect=(count("resource_id_failures"), FRAME_STARTED)),
    _g("write-request-failed", rf"Failed to write frame request: {_ERR}",
       "56-byte request write failed (Broken pipe …): pipeline error", PEER_CLOSED,
       func="handle_frame", level="ERROR",
       effect=closed(resolve=False)),
    _g("write-pixels-failed", rf"Failed to write pixel data: {_ERR}",
       "pixel payload write failed: pipeline error, marked disconnected", PEER_CLOSED,
       func="handle_frame", level="ERROR",
       effect=closed(resolve=False)),
    _g("sent-pixels", rf"Sent (?P<bytes>{_U}) bytes of pixel data",
       "pixel payload size of this request", "gst-bgra-bandwidth",
       when="4 bytes/pixel and over 1 MB", func="handle_frame", level="DEBUG",
       effect=put("pixel_bytes", "bytes", conv="int")),
    _g("sent-frame",
       rf"Sent frame (?P<frame>{_U}), resource_id=(?P<resource_id>{_U}), "
       rf"size=(?P<width>{_U})x(?P<height>{_U}), keyframe=(?P<keyframe>{_U})",
       "request sent; the number is the running frame count", func="handle_frame", level="DEBUG",
       handler=_GstScanner._on_sent_frame),
    # ── historical element strings (older vsockenc versions, not at HEAD) ──
    _g("old.connected", r"Connected to host encoder$", "connected (old element)",
       level="INFO", era="old-connect",
       effect=connect("unknown")),
    _g("old.drm-open-failed", r"Failed to open DRM device$",
       "DRM device not openable (old element)", level="WARNING", era="gem-handle", note=True),
    _g("old.gem-failed", rf"Failed to get GEM handle from DMA-BUF: {_ERR}",
       "DMA-BUF to GEM handle failed (old element)", level="WARNING", era="gem-handle",
       effect=FRAME_STARTED),
    _g("old.gem-resource",
       rf"DMA-BUF fd (?P<fd>{_N}) -> GEM handle/resource ID (?P<resource_id>{_U})",
       "old element sends the process-local GEM handle as the resource id: "
       "the ids do not name the frame's resource", level="DEBUG", era="gem-handle", note=True,
       effect=FRAME_STARTED),
    _g("old.write-header-failed", r"Failed to write header$", "write failed (P0 element)",
       PEER_CLOSED, level="ERROR", era="p0",
       effect=closed(resolve=False)),
    _g("old.write-request-failed", r"Failed to write frame request$", "write failed (P0 element)",
       PEER_CLOSED, level="ERROR", era="p0",
       effect=closed(resolve=False)),
    _g("old.connection-lost", r"Connection lost$", "connection lost (P0 element)", PEER_CLOSED,
       level="WARNING", era="p0",
       effect=closed(resolve=True)),
    _g("old.read-header-failed", r"Failed to read response header$",
       "EOF/reset while waiting for the reply (P0 / synchronous element)", PEER_CLOSED,
       level="ERROR",
       effect=closed(resolve=True)),
    _g("old.recv-started", r"Receive thread started", "receive thread running (old element)",
       level="DEBUG", era="recv-thread"),
    _g("old.recv-exiting", r"Receive thread exiting", "receive thread stopped (old element)",
       level="DEBUG", era="recv-thread"),
    _g("old.pong", r"Received pong", "PONG received (old element)", level="DEBUG",
       era="recv-thread"),
    _g("old.finished",
       rf"Finished frame pts=(?P<pts>{_N}) keyframe=(?P<keyframe>{_U}) "
       rf"nal_count=(?P<nal_count>{_U}) total_size=(?P<total_size>{_U})",
       "reply consumed (receive-thread or synchronous element)", "stream-nal-count",
       when="nal_count > 1", level="DEBUG",
       handler=_GstScanner._on_old_finished),
    _g("old.connection-lost-header", r"Connection lost reading header",
       "the host closed the connection (receive-thread element)", PEER_CLOSED, level="WARNING",
       era="recv-thread",
       effect=closed(resolve=True)),
    _g("old.invalid-message-magic", rf"Invalid message magic: (?P<magic>{_HEX})",
       "reply does not start with HXFR (receive-thread element)", DESYNC, level="WARNING",
       era="recv-thread", detect=False,
       effect=(FRAME_FAILED, tally("magics", "magic", conv="lower"))),
    _g("old.read-frame-response-failed", r"Failed to read frame response$",
       "short read of the response (receive-thread / synchronous element)", DESYNC, level="WARNING",
       effect=(FRAME_FAILED, count("short_reads"))),
    _g("old.no-pending-frame", rf"No pending frame for pts=(?P<pts>{_N})",
       "a reply matched no pending request (receive-thread element)", DESYNC, level="WARNING",
       era="recv-thread",
       effect=count("orphans")),
    _g("old.unknown-type", rf"Unknown message type: (?P<msg_type>{_N})",
       "unexpected message type (receive-thread element)", DESYNC, level="WARNING",
       era="recv-thread", detect=False,
       effect=(FRAME_FAILED, tally("unexpected", "msg_type"))),
    _g("old.tcp-connected", rf"Connected via TCP to (?P<host>{_IP}):(?P<port>{_U})$",
       "TCP connection established (element before pipelining)", level="INFO",
       era="pre-pipelining",
       effect=connect("tcp")),
    _g("old.invalid-response-magic", rf"Invalid response magic: (?P<magic>{_HEX})",
       "reply does not start with HXFR (synchronous element)", DESYNC, level="ERROR", era="sync",
       effect=(FRAME_FAILED, tally("magics", "magic", conv="lower"))),
    # ── desktop-bridge's lines about vsockenc (its own rows are the bridge kind's) ──
    _g("bridge.pipeline", r"\[SHARED_VIDEO\] Pipeline: (?P<pipeline>.*)",
       "the full GStreamer pipeline string", anywhere=True,
       needle="[SHARED_VIDEO] Pipeline:", detect=False,
       effect=put("pipeline", "pipeline", limit=2000)),
    _g("bridge.native-source", r"\[STREAM\] macOS ARM virtio-gpu detected, using native "
       r"pipewiresrc with NV12", "source choice on macOS ARM", anywhere=True,
       needle="[STREAM] macOS ARM virtio-gpu detected", detect=False),
    _g("bridge.using-vsockenc", r"using vsockenc \((?P<why>macOS VideoToolbox via vsock|forced via "
       r"HELIX_ENCODER)\)", "desktop-bridge chose the vsockenc encoder",
       anywhere=True, needle="using vsockenc (", detect=False,
       effect=put("video_mode", value="vsockenc")),
    _g("bridge.scanout-mode", r"starting scanout mode \(QEMU H\.264 via TCP\)",
       "desktop-bridge uses scanout mode: vsockenc is not used",
       anywhere=True, needle="starting scanout mode", detect=False,
       effect=(put("video_mode", value="scanout"),
               add_note("scanout-mode", "desktop-bridge runs in scanout mode: vsockenc is not used "
                        "at all; scan this log with --kind bridge for the scanout path, or force a "
                        "GStreamer mode to test vsockenc"))),
)

_QEMU: tuple[Signature, ...] = (
    # ── init, listener, clients (H0–H4) ──
    _q("h0-init", rf"Helix frame export initialized on vsock port (?P<port>{_U})",
       "H0 placeholder init: no listener exists", "qemu-not-listening", step="init", gen="H0",
       effect=(init_at(placeholder=True), gen_hint())),
    _q("init", rf"{_H}Initializing frame export on vsock port (?P<port>{_U})",
       "init entered (the number is the TCP/proxy port despite the word vsock)", step="init",
       gen="H1–H4",
       effect=init_at()),
    _q("banner", r"={10,200}$", "banner around the version", gen="H2–H4", anywhere=True,
       needle="==========", detect=False),
    _q("version", rf"{_H}VERSION: (?P<version>.+)", "host build identity", step="version",
       gen="H2–H4",
       handler=_QemuScanner._on_version),
    _q("build", rf"{_H}BUILD: (?P<build>.+)", "host build description", gen="H2–H4",
       effect=put("build", "build", conv="strip", limit=200)),
    _q("alloc-failed-debug", r"\[HELIX-DEBUG\] Failed to allocate HelixFrameExport",
       "out of memory at init", "qemu-init-failed", gen="H1–H2",
       effect=INIT_ERROR),
    _q("alloc-failed", rf"{_H}Failed to allocate HelixFrameExport", "out of memory at init",
       "qemu-init-failed", gen="H3–H4",
       effect=INIT_ERROR),
    _q("already-initialized", rf"{_H}Already initialized, updating virtio_gpu pointer",
       "second init call (reset/resize): expected, harmless after the fix", gen="H3–H4",
       effect=add_note("re-init", "init ran again in the same process (display reset/resize); "
                        "harmless on builds with the fix")),
    _q("unix-socket-failed", rf"Failed to create UNIX socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H1", detect=False,
       effect=(INIT_ERROR, gen_hint())),
    _q("unix-bind-failed", rf"Failed to bind UNIX socket: {_ERR}",
       "the socket path is taken (stale socket file): no frame export", "qemu-bind-failed",
       gen="H1",
       effect=(bind_error("unix"), gen_hint())),
    _q("unix-listen-failed", rf"Failed to listen on UNIX socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H1",
       effect=(INIT_ERROR, gen_hint())),
    _q("ready-unix", rf"{_H}Frame export ready: socket=(?P<path>.*), proxy=(?P<proxy_host>{_IP})"
       rf":(?P<port>{_U})", "Unix listener up; socat must forward the port", step="listening",
       gen="H1",
       effect=(listen("unix"), gen_hint())),
    _q("tcp-socket-failed", rf"Failed to create TCP socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H2–H4", detect=False,
       effect=INIT_ERROR),
    _q("tcp-bind-failed", rf"Failed to bind TCP socket on port (?P<port>{_U}): {_ERR}",
       "another process (often a stale QEMU) holds the port: no frame export", "qemu-bind-failed",
       gen="H2–H4",
       effect=bind_error("tcp")),
    _q("tcp-listen-failed", rf"Failed to listen on TCP socket: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H2–H4",
       effect=INIT_ERROR),
    _q("accept-thread-failed", rf"Failed to create accept thread: {_ERR}",
       "listener setup failed: no frame export", "qemu-init-failed", gen="H2–H4",
       effect=INIT_ERROR),
    _q("ready-tcp", rf"{_H}Frame export ready: TCP (?P<host>{_IP}):(?P<port>{_U}) "
       rf"\(guest: (?P<guest_host>{_IP}):(?P<guest_port>{_U})\)", "listener up on this port",
       step="listening", gen="H2–H4",
       effect=listen("tcp")),
    _q("waiting", rf"{_H}Waiting for (?P<who>guest|client) connection\.\.\.",
       "accept loop idle (printed before every accept)", step="accepting", gen="H1–H4"),
    _q("guest-connected", rf"{_H}Guest connected!", "TCP/Unix accept", step="client", gen="H1–H2",
       effect=(count("connected"), put("guest_open", value=True), gen_hint())),
    _q("client-connected", rf"{_H}Client connected \(fd=(?P<fd>{_N})\)", "TCP accept",
       step="client", gen="H3–H4",
       effect=count("connected")),
    _q("accept-failed", rf"{_H}Accept failed: {_ERR}",
       "the accept loop has exited: listener dead until QEMU restarts", "qemu-init-failed",
       effect=INIT_ERROR),
    _q("guest-disconnected", rf"{_H}Guest disconnected", "client gone (EOF, error, timeout)",
       gen="H1–H2",
       effect=(count("disconnected"), put("guest_open", value=False))),
    _q("recv-timeout", rf"{_H}Client recv timeout \((?P<idle>[^)]{{1,40}}) idle\), disconnecting",
       "SO_RCVTIMEO fired: idle client dropped", gen="H2/H3",
       effect=count("timeouts")),
    _q("recv-error", rf"{_H}vsock recv error: {_ERR}", "socket error on the client connection",
       gen="H2", note=True),
    _q("recv-error-h1", rf"vsock recv error: {_ERR}", "socket error on the client connection",
       gen="H0–H1", note=True),
    _q("invalid-magic", rf"{_H}Invalid message magic: (?P<magic>{_HEX})",
       "desync or non-HXFR client: the host closes the connection", "stream-closed", gen="H2"),
    _q("invalid-magic-h1", rf"Invalid message magic: (?P<magic>{_HEX})",
       "desync or non-HXFR client: the host answers ERROR -1 (H1 framing)", HOST_ERROR,
       gen="H0–H1", detect=False,
       effect=host_error(value="-1")),
    _q("unknown-type", rf"{_H}Unknown message type: (?P<msg_type>{_N})",
       "message type skipped (e.g. 3 KEYFRAME_REQ, 48 SUBSCRIBE on an H2 host)", gen="H2",
       effect=tally("unknown_types", "msg_type")),
    _q("unknown-type-h1", rf"Unknown message type: (?P<msg_type>{_N})",
       "message type unknown: the host answers ERROR -1", HOST_ERROR, gen="H0–H1",
       detect=False,
       effect=(tally("unknown_types", "msg_type"), host_error(value="-1"))),
    _q("read-body-failed", rf"{_H}Failed to read (?P<what>frame request|config request) body",
       "short read: the host drops the client", "stream-closed", gen="H2"),
    _q("pixel-alloc-failed", rf"{_H}Failed to allocate (?P<bytes>{_U}) bytes for pixel data",
       "pixel buffer allocation failed: the host drops the client", "stream-closed", gen="H2"),
    _q("pixel-read-failed", rf"{_H}Failed to read pixel data \((?P<bytes>{_U}) bytes\)",
       "short pixel read: the host drops the client", "stream-closed", gen="H2"),
    _q("received-pixels", rf"{_H}Received (?P<bytes>{_U}) bytes of pixel data",
       "pixel payload read", step="request", gen="H2"),
    _q("added-client", rf"{_H}Added client (?P<client>{_U}) \(fd=(?P<fd>{_N})\)",
       "client slot assigned", step="client", gen="H3–H4",
       effect=gen_hint(), handler=_QemuScanner._on_added_client),
    _q("no-slots", rf"{_H}No client slots available, rejecting",
       "all 16 client slots in use: the new client is closed", "scanout-slots-exhausted",
       gen="H3–H4",
       effect=count("rejected")),
    _q("client-thread-failed", rf"{_H}Failed to create client thread",
       "no handler thread: the client is dropped", "stream-closed", gen="H3–H4"),
    _q("client-arg-failed", rf"{_H}Failed to allocate client thread arg",
       "no handler thread: the client is dropped", "stream-closed", gen="H3–H4"),
    _q("fcntl-failed", rf"{_H}CRITICAL: fcntl O_NONBLOCK failed \(fd=(?P<fd>{_N})\): "
       r"(?P<error>.*?) \S{1,3} rejecting client to prevent potential deadlock",
       "client rejected", "stream-closed", gen="H4",
       effect=gen_hint()),
    _q("handler-started", rf"{_H}Client (?P<client>{_U}) handler started \(fd=(?P<fd>{_N})\)",
       "per-client thread running", step="client", gen="H3–H4",
       handler=_QemuScanner._on_handler_started),
    _q("client-invalid-magic", rf"{_H}Client (?P<client>{_U}): invalid magic (?P<magic>{_HEX})",
       "desync or non-HXFR client: client dropped", "stream-closed", gen="H3–H4",
       effect=(CLIENT_ACTIVE, CLIENT_GONE)),
    _q("subscribe", rf"{_H}Client (?P<client>{_U}) subscribing to scanout (?P<scanout>{_U}) "
       rf"\(fe=(?P<fe>[^\s)]{{1,40}}) g_fe=(?P<g_fe>[^\s)]{{1,40}})\)",
       "SUBSCRIBE received; differing pointers mean a double init: subscribers invisible",
       "scanout-no-frames", when="fe != g_fe", step="request", gen="H3–H4",
       effect=(CLIENT_ACTIVE, gen_hint()), handler=_QemuScanner._on_subscribe),
    _q("after-subscribe",
       rf"{_H}After subscribe: client\[(?P<client>{_U})\]\.active=(?P<active>{_U})"
       rf" \.subscribed=(?P<subscribed>{_U}) \.scanout=(?P<scanout>{_U})", "subscription state",
       gen="H3–H4",
       effect=CLIENT_ACTIVE),
    _q("config-req", rf"{_H}Client (?P<client>{_U}) CONFIG_REQ: scanout=(?P<scanout>{_U}) "
       rf"bitrate=(?P<bitrate>{_N})", "bitrate change request", step="request", gen="H3–H4",
       effect=CLIENT_ACTIVE),
    _q("enable-scanout", rf"{_H}ENABLE_SCANOUT: id=(?P<scanout>{_U}), (?P<width>{_U})x"
       rf"(?P<height>{_U})(?:@(?P<refresh>{_U}))?", "scanout enabled by helix-drm-manager",
       gen="H3"),
    _q("scanout-enabled", rf"{_H}Scanout (?P<scanout>{_U}) enabled: (?P<width>{_U})x(?P<height>{_U})",
       "ENABLE_SCANOUT done: the guest sees the connector appear", gen="H4"),
    _q("scanout-invalid", rf"{_H}Invalid scanout_id (?P<scanout>{_U}) \(max=(?P<max>{_N})\)",
       "ENABLE_SCANOUT refused: id 0 or not below max_outputs", gen="H4", note=True,
       related="drm-lease-failed"),
    _q("scanout-disabled", rf"{_H}Scanout (?P<scanout>{_U}) disabled",
       "DISABLE_SCANOUT done (no answer is sent)", gen="H4"),
    _q("enable-read-failed", rf"{_H}Failed to read enable_scanout payload",
       "short read of ENABLE_SCANOUT: client dropped", "stream-closed", gen="H3"),
    _q("control-send-failed", rf"{_H}Client (?P<client>{_U}): failed to send "
       r"(?P<what>SUBSCRIBE_RESP|SCANOUT_RESP|PONG)",
       "control reply not deliverable within 10 s: client dropped", "stream-closed", gen="H4",
       effect=(CLIENT_ACTIVE, CLIENT_GONE, gen_hint())),
    _q("client-disconnected", rf"{_H}Client (?P<client>{_U}) disconnected", "client gone",
       gen="H3–H4",
       effect=(count("disconnected"), CLIENT_GONE)),
    _q("removing-client", rf"{_H}Removing client (?P<client>{_U}) \(fd=(?P<fd>{_N}), "
       rf"scanout=(?P<scanout>{_U})\)", "client slot freed", gen="H3–H4",
       effect=CLIENT_GONE),
    _q("send-failed", rf"{_H}Failed to send to client (?P<client>{_U}) \(scanout (?P<scanout>{_U})"
       rf"\): {_ERR}", "frame push failed (client gone or not draining)", gen="H3", note=True,
       effect=CLIENT_ACTIVE),
    _q("send-error", rf"{_H}Send error client (?P<client>{_U}) \(scanout (?P<scanout>{_U})\): "
       rf"{_ERR}", "frame push failed (non-EAGAIN): the host closes the client",
       "scanout-connection-lost", gen="H3-late/H4",
       effect=CLIENT_ACTIVE),
    _q("partial-send-close", rf"{_H}Partial send to client (?P<client>{_U}): (?P<sent>{_N})/"
       rf"(?P<total>{_U}) bytes.*closing to prevent stream corruption",
       "congestion: the host closes the client after a partial frame", "scanout-connection-lost",
       gen="H4",
       effect=(CLIENT_ACTIVE, CLIENT_GONE, count("drops"))),
    _q("partial-send", rf"{_H}Partial send to client (?P<client>{_U}): (?P<sent>{_N})/"
       rf"(?P<total>{_U}) bytes", "congestion: frame dropped after encoding, corruption up to the "
       "next keyframe (the stream is broken)", "scanout-connection-lost", gen="H3-late",
       effect=(CLIENT_ACTIVE, count("drops"))),
    _q("client-dropping", rf"{_H}Client (?P<client>{_U}): dropping frame \((?:need (?P<need>{_U}), "
       rf"have (?P<have>{_U})/(?P<buffer>{_U}) bytes free, total drops=(?P<total_drops>{_U})|"
       r"(?P<detail>.*))\)", "the client's send buffer is full: the whole frame is dropped (H5)",
       gen="H5",
       effect=(CLIENT_ACTIVE, count("drops"))),
    # ── legacy FRAME_REQUEST path (H1–H3) ──
    _q("frame-request-pixels", rf"{_H}Frame request: resource_id=(?P<resource_id>{_U}), "
       rf"(?P<width>{_U})x(?P<height>{_U}), pts=(?P<pts>{_N}), pixel_data=(?P<pixel_data>YES|NO) "
       rf"\((?P<pixel_bytes>{_U}) bytes\)",
       "request parsed; pixel_data=NO means the VM console is encoded",
       "stream-wrong-picture", when="pixel_data=NO", step="request", gen="H2–H3",
       effect=(count("frame_requests"), gen_hint()), handler=_QemuScanner._on_frame_request_pixels),
    _q("frame-request", rf"{_H}Frame request: resource_id=(?P<resource_id>{_U}), (?P<width>{_U})x"
       rf"(?P<height>{_U}), pts=(?P<pts>{_N})$", "request parsed", step="request", gen="H1",
       effect=(count("frame_requests"), gen_hint())),
    _q("frame-request-raw", rf"{_H}Frame request RAW: resource_id=(?P<resource_id>{_U}), "
       rf"width=(?P<width>{_U}) \({_HEX}\), height=(?P<height>{_U}) \({_HEX}\), pts=(?P<pts>{_N})",
       "request parsed (with hex for layout checks)", step="request", gen="H1b",
       effect=(count("frame_requests"), gen_hint("H1"))),
    _q("configuring-encoder", rf"{_H}Configuring encoder: (?P<width>{_U})x(?P<height>{_U}), "
       r"8Mbps, realtime", "new VideoToolbox session (first frame / size change)", step="encode",
       gen="H1–H3"),
    _q("encoder-session-failed", rf"{_H}Failed to create encoder session",
       "VideoToolbox session not created: ERROR -99", "encoder-unavailable", gen="H1–H3"),
    _q("resource0-rejected", rf"{_H}resource_id=0 not supported - guest must provide explicit "
       r"resource ID from DmaBuf", "this build rejects resource_id=0: ERROR -2", HOST_ERROR,
       gen="H1b",
       effect=(host_error(value="-2"), gen_hint("H1"))),
    _q("scanout0-resource", rf"{_H}Current scanout\[0\] resource_id=(?P<resource_id>{_U})",
       "resource_id=0 replaced by scanout 0: the VM console is encoded",
       "stream-wrong-picture", gen="H1"),
    _q("using-scanout-resource", rf"{_H}Using scanout resource_id=(?P<resource_id>{_U})",
       "resource_id=0 replaced by scanout 0: the VM console is encoded",
       "stream-wrong-picture", gen="H1"),
    _q("no-scanout-resource", rf"{_H}No scanout resource (?:set|available)",
       "no scanout to substitute for resource_id=0", gen="H1", note=True),
    _q("looking-up", rf"{_H}Looking up resource_id=(?P<resource_id>{_U})", "resource lookup",
       gen="H1–H3"),
    _q("get-info-failed", rf"{_H}virgl_renderer_resource_get_info_ext failed: ret=(?P<ret>{_N})",
       "resource lookup failed", gen="H1–H3", note=True),
    _q("resource-info", rf"{_H}Resource (?P<resource_id>{_U}): native_type=(?P<native_type>{_N}), "
       rf"width=(?P<width>{_U}), height=(?P<height>{_U}), depth=(?P<depth>{_U})",
       "resource details", gen="H1"),
    _q("no-metal-texture", rf"{_H}Resource (?P<resource_id>{_U}) doesn't have Metal texture, "
       r"creating one\.\.\.", "zero-copy Metal attempt", gen="H1"),
    _q("create-handle-failed", rf"{_H}create_handle_for_scanout failed: type=(?P<type>{_N}) "
       rf"\(expected (?P<expected>{_N})\)", "zero-copy Metal attempt failed (ANGLE)", gen="H1",
       note=True),
    _q("metal-created", rf"{_H}Successfully created Metal texture for resource "
       rf"(?P<resource_id>{_U})", "Metal texture created", gen="H1"),
    _q("metal-null", rf"{_H}Resource (?P<resource_id>{_U}) has NULL Metal texture",
       "no Metal texture", gen="H1", note=True),
    _q("metal-got",
       rf"{_H}Got Metal texture (?P<texture>{_PTR}) for resource (?P<resource_id>{_U})",
       "Metal texture found", gen="H1"),
    _q("metal-no-iosurface", rf"{_H}Metal texture has no IOSurface backing - virglrenderer must "
       r"create IOSurface-backed textures", "zero-copy impossible under ANGLE", gen="H1",
       note=True),
    _q("iosurface-got", rf"{_H}Got IOSurface (?P<surface>{_PTR}) \(width=(?P<width>{_U}), "
       rf"height=(?P<height>{_U})\)", "IOSurface found", gen="H1"),
    _q("iosurface-resource-failed", rf"{_H}Failed to get IOSurface for resource "
       rf"(?P<resource_id>{_U})", "no IOSurface for the resource: ERROR -2", HOST_ERROR, gen="H1",
       effect=host_error(value="-2")),
    _q("metal-note", rf"{_H}NOTE: Only scanout resources have Metal texture backing",
       "explains the ERROR -2", gen="H1"),
    _q("invalid-dimensions", rf"{_H}Invalid resource dimensions", "resource rejected",
       gen="H1b+", note=True),
    _q("too-small", rf"{_H}Resource (?P<resource_id>{_U}) dimensions too small \((?P<width>{_U})x"
       rf"(?P<height>{_U})\), skipping", "resources under 64x64 rejected", gen="H1b+", note=True),
    _q("map-attempt", rf"{_H}Attempting direct resource map for resource (?P<resource_id>{_U})",
       "readback path 1", gen="H1b+"),
    _q("map-ok", rf"{_H}Successfully mapped resource (?P<resource_id>{_U}): (?P<ptr>{_PTR}), "
       rf"size=(?P<size>{_U})", "readback path 1", gen="H1b+"),
    _q("map-copied", rf"{_H}Copied (?P<bytes>{_U}) bytes from mapped resource", "readback path 1",
       gen="H1b+"),
    _q("copy-alloc-failed", rf"{_H}Failed to allocate copy buffer", "readback allocation failed",
       gen="H1b+", note=True),
    _q("map-failed", rf"{_H}Resource map failed \(ret=(?P<ret>{_N})\), trying transfer_read_iov",
       "readback falls back to path 2", gen="H1b+"),
    _q("transfer-reading", rf"{_H}Reading pixel data from resource (?P<resource_id>{_U}) "
       rf"\((?P<width>{_U})x(?P<height>{_U})\) via transfer",
       "readback path 2 (hangs forever without virgl_renderer_force_ctx_0)", gen="H1b+"),
    _q("revalidating", rf"{_H}Re-validating resource (?P<resource_id>{_U}) before transfer",
       "race check", gen="H1b+"),
    _q("revalidation", rf"{_H}Re-validation: ret=(?P<ret>{_N}),", "race check", gen="H1b+"),
    _q("resource-freed", rf"{_H}ERROR: Resource (?P<resource_id>{_U}) no longer valid "
       rf"\(ret=(?P<ret>{_N})\) - likely freed by compositor",
       "the compositor freed the scanout between lookup and transfer", gen="H1b+", note=True),
    _q("race-condition", rf"{_H}This is the race condition - scanout was freed between lookup "
       r"and transfer", "readback race", gen="H1b+"),
    _q("still-valid", rf"{_H}Resource (?P<resource_id>{_U}) still valid, proceeding with transfer",
       "race check passed", gen="H1b+"),
    _q("transfer-about", rf"{_H}About to call virgl_renderer_transfer_read_iov",
       "transfer starts; without a later COMPLETED this is the crash/hang signature",
       gen="H1b+",
       effect=mark("transfer_pending")),
    _q("transfer-params", rf"{_H}Transfer params: resource=(?P<resource_id>{_U}), ctx=0, "
       rf"stride=(?P<stride>{_U})", "transfer parameters", gen="H1b+"),
    _q("transfer-completed", rf"{_H}\S{{0,4}} ?virgl_renderer_transfer_read_iov COMPLETED "
       rf"successfully: ret=(?P<ret>{_N})", "transfer done", gen="H1b+",
       effect=put("transfer_pending")),
    _q("transfer-failed", rf"{_H}virgl_renderer_transfer_read_iov failed: ret=(?P<ret>{_N})",
       "transfer failed", gen="H1b+", note=True,
       effect=put("transfer_pending")),
    _q("transfer-read", rf"{_H}Successfully read (?P<bytes>{_U}) bytes via transfer",
       "readback path 2 done", gen="H1b+"),
    _q("iosurface-create-failed", rf"{_H}Failed to create IOSurface$", "IOSurface not created",
       gen="H1b+", note=True),
    _q("iosurface-locking", rf"{_H}Locking IOSurface (?P<surface>{_PTR}) to copy (?P<bytes>{_U}) "
       r"bytes of pixel data", "copy into IOSurface", gen="H1b+"),
    _q("iosurface-base", rf"{_H}IOSurface base address: (?P<ptr>{_PTR}), copying pixel data",
       "copy into IOSurface", gen="H1b+"),
    _q("iosurface-unlocked", rf"{_H}IOSurface unlocked, pixel data copied successfully",
       "copy into IOSurface done", gen="H1b+"),
    _q("iosurface-from-displaysurface", rf"{_H}\S{{0,4}} ?Successfully created IOSurface "
       rf"(?P<surface>{_PTR}) \((?P<width>{_U})x(?P<height>{_U})\) from DisplaySurface "
       rf"\(scanout (?P<scanout>{_U})\)", "the VM console (DisplaySurface) is encoded",
       "stream-wrong-picture", gen="H1-v3–H3"),
    _q("iosurface-from-resource", rf"{_H}\S{{0,4}} ?Successfully created IOSurface "
       rf"(?P<surface>{_PTR}) \((?P<width>{_U})x(?P<height>{_U})\) from resource "
       rf"(?P<resource_id>{_U})", "IOSurface from the resource", gen="H1b+"),
    _q("iosurface-created-short", rf"{_H}Created IOSurface (?P<surface>{_PTR}) \((?P<width>{_U})x"
       rf"(?P<height>{_U})\) from resource (?P<resource_id>{_U})",
       "IOSurface from the resource (docs' shorter form)", gen="H1b+"),
    _q("displaysurface-called", r"\[HELIX-v3\] helix_get_iosurface_from_scanout called: "
       rf"scanout_id=(?P<scanout>{_U})", "DisplaySurface fallback entered", gen="H1-v3–H3"),
    _q("virtio-gpu-null", rf"{_H}ERROR: virtio_gpu pointer is NULL",
       "no virtio-gpu state: nothing to encode", gen="H1-v3–H3", note=True),
    _q("displaysurface-failed", rf"{_H}Failed to get DisplaySurface data for scanout "
       rf"(?P<scanout>{_U})", "no DisplaySurface data", gen="H1-v3–H3", note=True),
    _q("displaysurface-uninit", rf"{_H}DisplaySurface may not be initialized yet \(no "
       r"SET_SCANOUT_BLOB command\)", "no DisplaySurface yet", gen="H1-v3–H3",
       note=True),
    _q("displaysurface-data", rf"{_H}DisplaySurface data retrieved: (?P<width>{_U})x"
       rf"(?P<height>{_U}), stride=(?P<stride>{_U})", "DisplaySurface read", gen="H1-v3–H3"),
    _q("using-guest-pixels", rf"{_H}Using pixel data from guest \((?P<bytes>{_U}) bytes\)",
       "the guest's pixels are encoded", gen="H2–H3"),
    _q("no-pixels-fallback", rf"{_H}No pixel data, falling back to DisplaySurface",
       "no pixels: the VM console is encoded", "stream-wrong-picture", gen="H2–H3"),
    _q("invalid-pixel-params", rf"{_H}Invalid pixel data parameters", "pixel data rejected",
       gen="H2–H3", note=True),
    _q("pixels-too-small", rf"{_H}Pixel data too small: got (?P<got>{_U}), expected "
       rf"(?P<expected>{_U}) \((?P<width>{_U})x(?P<height>{_U}), stride=(?P<stride>{_U})\)",
       "pixel payload smaller than the frame", gen="H2–H3", note=True),
    _q("pixels-still-small", rf"{_H}Still too small even with calculated stride, aborting",
       "pixel payload rejected", gen="H2–H3", note=True),
    _q("pixels-iosurface-failed", rf"{_H}Failed to create IOSurface from pixel data",
       "no IOSurface from the pixels", gen="H2–H3", note=True),
    _q("pixels-iosurface", rf"{_H}Created IOSurface (?P<surface>{_PTR}) \((?P<width>{_U})x"
       rf"(?P<height>{_U})\) from (?P<bytes>{_U}) bytes of pixel data", "BGRA/RGBA pixel path",
       gen="H2–H3"),
    _q("nv12-too-small", rf"{_H}NV12 pixel data too small: got (?P<got>{_U}), expected "
       rf"(?P<expected>{_U}) \((?P<width>{_U})x(?P<height>{_U})\)", "NV12 payload too small",
       gen="H3", note=True),
    _q("nv12-iosurface-failed", rf"{_H}Failed to create NV12 IOSurface", "no NV12 IOSurface",
       gen="H3", note=True),
    _q("nv12-iosurface", rf"{_H}Created NV12 IOSurface (?P<surface>{_PTR}) \((?P<width>{_U})x"
       rf"(?P<height>{_U})\) from (?P<bytes>{_U}) bytes", "NV12 pixel path", gen="H3"),
    _q("iosurface-encoding-failed", rf"{_H}Failed to get IOSurface for encoding",
       "nothing to encode: ERROR -2 on H2, no reply on H3", HOST_ERROR, gen="H2–H3",
       effect=host_error(value="-2")),
    _q("encoded-h1", rf"{_H}Frame encoded successfully", "submitted to VideoToolbox",
       step="encode", gen="H1"),
    _q("encode-request-submitted", rf"{_H}Frame encode request submitted \(async callback will "
       r"send response\)", "submitted to VideoToolbox", step="encode", gen="H1b"),
    _q("encode-submitted", rf"{_H}Frame encode submitted \(callback will send response\)",
       "submitted to VideoToolbox; the reply comes from the callback", step="encode",
       gen="H2–H3"),
    _q("encoding-failed", rf"{_H}Frame encoding failed: (?P<code>{_N})",
       "encode submit failed (H2: no reply follows)", "encoder-error", gen="H1–H3",
       effect=ENCODER_ERROR),
    _q("vt-create-failed", rf"VTCompressionSessionCreate failed: (?P<code>{_N})",
       "VideoToolbox session not created", "encoder-unavailable", gen="H0–H3",
       effect=ENCODER_ERROR),
    _q("vt-prepare-failed", rf"PrepareToEncodeFrames failed: (?P<code>{_N})",
       "VideoToolbox session not prepared", "encoder-unavailable", gen="H0–H3",
       effect=ENCODER_ERROR),
    _q("cvpixelbuffer-failed", rf"CVPixelBufferCreateWithIOSurface failed: (?P<code>{_N})",
       "frame not wrapped for VideoToolbox", "encoder-error", gen="H0–H3",
       effect=ENCODER_ERROR),
    _q("vt-encode-frame-failed", rf"VTCompressionSessionEncodeFrame failed: (?P<code>{_N})",
       "encode call failed", "encoder-error", gen="H0–H3",
       effect=ENCODER_ERROR),
    _q("callback-called", rf"{_H}encoder_output_callback called: status=(?P<status>{_N}), "
       rf"sampleBuffer=(?P<sample>{_PTR})", "VideoToolbox produced a sample", step="encode",
       gen="H1b–H3"),
    _q("callback-null-fe", rf"{_H}encoder_output_callback: NULL fe pointer!",
       "sample dropped in the callback: no reply", gen="H1b–H3", note=True,
       related="stream-no-reply"),
    _q("callback-fe-invalid", rf"{_H}encoder_output_callback: fe marked invalid, discarding frame",
       "sample dropped in the callback: no reply", gen="H1b–H3", note=True,
       related="stream-no-reply"),
    _q("callback-null-sample", rf"{_H}encoder_output_callback: NULL sampleBuffer",
       "VideoToolbox delivered no sample: no reply", "encoder-error", gen="H1b–H3"),
    _q("callback-socket-closed", rf"{_H}encoder_output_callback: socket closed, discarding frame",
       "the client left before the reply", gen="H1b–H3", note=True,
       related="stream-no-reply"),
    _q("vt-encode-failed", rf"{_H}VideoToolbox encode failed: (?P<code>{_N})",
       "asynchronous encode error: no reply", "encoder-error", gen="H1b–H3",
       effect=ENCODER_ERROR),
    _q("vt-encode-failed-h0", rf"VideoToolbox encode failed: (?P<code>{_N})",
       "asynchronous encode error: no reply", "encoder-error", gen="H0–H1",
       effect=ENCODER_ERROR),
    _q("parameter-set", rf"{_H}Parameter set (?P<index>{_U}): (?P<bytes>{_U}) bytes \(NAL type "
       rf"(?P<nal_type>{_N})\)", "SPS (7) / PPS (8) prepended on keyframes", gen="H2–H3"),
    _q("parameter-sets", rf"{_H}Extracted (?P<count>{_U}) parameter sets, total (?P<bytes>{_U}) "
       r"bytes", "SPS/PPS extracted", gen="H2–H3"),
    _q("no-data-buffer", r"No data buffer in sample",
       "callback failure, no reply; leaves the mutex locked on H2/H3", "encoder-error",
       gen="H0–H3"),
    _q("data-pointer-failed", rf"Failed to get data pointer: (?P<code>{_N})",
       "callback failure, no reply; leaves the mutex locked on H2/H3", "encoder-error",
       gen="H0–H3",
       effect=ENCODER_ERROR),
    _q("annexb-alloc-failed", r"Failed to allocate annexb buffer", "callback failure, no reply",
       "encoder-error", gen="H0–H3"),
    _q("avcc-truncated", r"Invalid avcc data: truncated length prefix",
       "callback failure, no reply", "encoder-error", gen="H0–H3"),
    _q("avcc-nal-length", rf"Invalid avcc data: NAL length (?P<length>{_U}) exceeds buffer",
       "callback failure, no reply", "encoder-error", gen="H0–H3"),
    _q("response-alloc-failed", r"Failed to allocate response buffer",
       "callback failure, no reply", "encoder-error", gen="H0–H3"),
    _q("converting-annexb", rf"{_H}Converting avcc to Annex B: input_size=(?P<input_size>{_U}), "
       rf"sps_pps_size=(?P<sps_pps_size>{_U})", "Annex-B conversion", gen="H2–H3"),
    _q("converted-annexb", rf"{_H}Converted (?P<nal_units>{_U}) NAL units, output_size="
       rf"(?P<output_size>{_U})", "Annex-B conversion", gen="H2–H3"),
    _q("send-response-failed", rf"{_H}Failed to send response: {_ERR}",
       "reply not delivered (e.g. Broken pipe: the client left)", "stream-no-reply",
       gen="H2–H3"),
    _q("send-response-failed-h1", rf"Failed to send response: {_ERR}",
       "reply not delivered (e.g. Broken pipe: the client left)", "stream-no-reply",
       gen="H0–H1"),
    _q("frame-sent", rf"{_H}Frame sent successfully: (?P<bytes>{_U}) bytes, pts=(?P<pts>{_N}), "
       rf"keyframe=(?P<keyframe>{_U})", "reply written", step="reply", gen="H1b–H3",
       effect=count("replies")),
    _q("callback-socket-gone", rf"{_H}Callback fired but socket already closed, discarding frame",
       "the client left before the reply", gen="H2–H3", note=True,
       related="stream-no-reply"),
    # ── scanout (SUBSCRIBE) path, H3–H4 ──
    _q("scanout-encoder", rf"{_H}Created encoder for scanout (?P<scanout>{_U}): (?P<width>{_N})x"
       rf"(?P<height>{_N}) bitrate=(?P<bitrate>{_N})", "per-scanout encoder created",
       step="encode", gen="H3–H4"),
    _q("scanout-vt-create-failed", rf"{_H}VTCompressionSessionCreate failed for scanout "
       rf"(?P<scanout>{_U}): (?P<code>{_N})", "per-scanout encoder not created: no frame for "
       "its subscribers", "encoder-unavailable", gen="H3–H4",
       effect=(ENCODER_ERROR, NO_FRAMES, ENCODE_ERROR)),
    _q("scanout-vt-prepare-failed", rf"{_H}PrepareToEncodeFrames failed for scanout "
       rf"(?P<scanout>{_U}): (?P<code>{_N})", "per-scanout encoder not prepared: no frame for "
       "its subscribers", "encoder-unavailable", gen="H3–H4",
       effect=(ENCODER_ERROR, NO_FRAMES, ENCODE_ERROR)),
    _q("scanout-metal-captured", rf"{_H}Scanout (?P<scanout>{_U}): captured Metal texture",
       "Metal capture", gen="H3"),
    _q("scanout-metal-no-iosurface", rf"{_H}Scanout (?P<scanout>{_U}): Metal texture "
       rf"(?P<texture>{_PTR}) has NO IOSurface backing", "Metal capture impossible", gen="H3",
       note=True),
    _q("frame-ready-early", rf"\[FRAME_READY_ENTRY\] #(?P<n>{_U}) scanout=(?P<scanout>{_U}) "
       rf"fe=(?P<fe>{_PTR}) valid=(?P<valid>{_N}) EARLY_RETURN",
       "page flip while the export is not initialised (or a bad scanout id)", gen="H3–H4",
       note=True),
    _q("frame-ready-no-subscriber", rf"\[FRAME_READY_ENTRY\] #(?P<n>{_U}) scanout=(?P<scanout>{_U})"
       rf" active_clients=(?P<active_clients>{_N}) NO_SUBSCRIBER",
       "page flip with nobody subscribed (normal, or #37)", gen="H3–H4",
       handler=_QemuScanner._on_frame_ready_no_subscriber),
    _q("frame-ready", rf"\[FRAME_READY\] #(?P<n>{_U}) scanout=(?P<scanout>{_U}) "
       rf"resource=(?P<resource>{_U}) has_subscriber=YES", "frame captured for a subscriber "
       "(first 5, then every 100th): an [ENCODE] line should follow", "scanout-no-frames",
       when="no [ENCODE] line follows in the run", step="encode", gen="H3–H4",
       effect=(most("captured", "n"), count("captured_unencoded"), mark("last_captured"))),
    _q("frame-ready-source", rf"\[FRAME_READY\] scanout (?P<scanout>{_U}): tex_id=(?P<tex_id>{_U})",
       "capture source details", gen="H3–H4"),
    _q("frame-ready-gpu-blit", rf"\[FRAME_READY\] GPU blit #(?P<n>{_U}): scanout=(?P<scanout>{_U})",
       "GPU blit capture", gen="H3"),
    _q("frame-ready-snapshot", rf"\[FRAME_READY\] Created encode_snapshot IOSurface for scanout "
       rf"(?P<scanout>{_U})", "capture surface created", gen="H3"),
    _q("frame-ready-cpu-cached", rf"\[FRAME_READY\] CPU fallback: created cached IOSurface for "
       rf"scanout (?P<scanout>{_U})", "CPU capture surface created", gen="H3"),
    _q("frame-ready-cpu", rf"\[FRAME_READY\] CPU fallback #(?P<n>{_U}): scanout=(?P<scanout>{_U})",
       "CPU capture", gen="H3"),
    _q("frame-ready-drop", rf"\[FRAME_READY\] Dropping frame \S{{1,3}} (?P<reason>.*?) "
       rf"\(dropped (?P<dropped>{_U}) total\)", "backpressure drop before encoding",
       gen="H3–H4",
       effect=count("drops")),
    _q("frame-ready-blit-failed", rf"\[FRAME_READY\] GL blit failed for scanout (?P<scanout>{_U})",
       "capture failed: frame dropped", "scanout-no-frames", gen="H3–H4",
       effect=(count("drops"), ENCODE_ERROR)),
    _q("frame-ready-cvpixelbuffer-failed",
       rf"\[FRAME_READY\] ERROR: CVPixelBufferCreateWithIOSurface"
       rf" failed for scanout (?P<scanout>{_U}): (?P<code>{_N})",
       "capture not wrapped for VideoToolbox: frame dropped", "encoder-error", gen="H3–H4",
       effect=(ENCODER_ERROR, NO_FRAMES, ENCODE_ERROR)),
    _q("encode", rf"\[ENCODE\] scanout=(?P<scanout>{_U}) frame=(?P<frame>{_N})(?: slot="
       rf"(?P<slot>{_U}))? status=(?P<status>{_N}) (?P<width>{_U})x(?P<height>{_U})",
       "encode submitted (status != 0 is a failure, and no frame for the subscribers)",
       "encoder-error", when="status != 0", step="encode", gen="H3–H4",
       effect=(count("encodes"), put("captured_unencoded", value=0)),
       handler=_QemuScanner._on_encode),
    _q("gl-block-timeout", rf"{_H}SAFETY: gl_block timeout \(100ms\)",
       "the VideoToolbox callback did not fire", "encoder-error", gen="H3"),
    _q("gpu-blit-no-display", r"\[GPU_BLIT\] EGL display not available, GPU blit disabled",
       "GPU blit disabled", gen="H3", note=True),
    _q("gpu-blit-no-context", r"\[GPU_BLIT\] No current EGL context at init time, GPU blit "
       r"disabled", "GPU blit disabled", gen="H3", note=True),
    _q("gpu-blit-context-failed", rf"\[GPU_BLIT\] Failed to create shared EGL context: {_ERR}",
       "GPU blit disabled", gen="H3", note=True),
    _q("gpu-blit-init", r"\[GPU_BLIT\] GPU blit initialized", "GPU blit ready", gen="H3"),
    _q("gpu-blit-device", rf"\[GPU_BLIT\] ANGLE native device=(?P<device>{_PTR})", "ANGLE device",
       gen="H3"),
    _q("gpu-blit-iosurface-failed", rf"\[GPU_BLIT\] IOSurfaceCreate failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit setup failed", gen="H3", note=True),
    _q("gpu-blit-pbuffer-failed", rf"\[GPU_BLIT\] EGL pbuffer creation failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit setup failed", gen="H3", note=True),
    _q("gpu-blit-bind-failed", rf"\[GPU_BLIT\] eglBindTexImage failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit setup failed", gen="H3", note=True),
    _q("gpu-blit-dest-fbo", rf"\[GPU_BLIT\] Dest FBO incomplete \(status=(?P<status>{_HEX})\)",
       "GPU blit setup failed", gen="H3", note=True),
    _q("gpu-blit-setup", rf"\[GPU_BLIT\] Setup scanout (?P<scanout>{_U}): (?P<width>{_U})x"
       rf"(?P<height>{_U})", "GPU blit ready for a scanout", gen="H3"),
    _q("gpu-blit-make-current", rf"\[GPU_BLIT\] eglMakeCurrent failed for scanout "
       rf"(?P<scanout>{_U})", "GPU blit failed", gen="H3", note=True),
    _q("gpu-blit-source-fbo", rf"\[GPU_BLIT\] Source FBO incomplete \(status=(?P<status>{_HEX})\)",
       "GPU blit failed", gen="H3", note=True),
    _q("gl-blit-not-ready", r"\[GL_BLIT\] ERROR: spice_gl_ctx not initialized yet",
       "ring blit not ready: nothing is captured", "scanout-no-frames", gen="H4",
       effect=ENCODE_ERROR),
    _q("gl-blit-context-failed", rf"\[GL_BLIT\] ERROR: eglCreateContext failed \(err="
       rf"(?P<err>{_HEX})\)", "ring blit context failed", gen="H4", note=True),
    _q("gl-blit-context", r"\[GL_BLIT\] Created Helix EGL context", "ring blit context created",
       gen="H4",
       effect=gen_hint()),
    _q("gl-blit-make-current", rf"\[GL_BLIT\] ERROR: eglMakeCurrent failed \(err=(?P<err>{_HEX})\)",
       "ring blit failed", gen="H4", note=True),
    _q("gl-blit-slot-failed", rf"\[GL_BLIT\] ERROR: failed to create ring slot (?P<slot>{_N}) for "
       rf"scanout (?P<scanout>{_U})", "ring blit setup failed", gen="H4", note=True),
    _q("gl-blit-setup", rf"\[GL_BLIT\] Setup scanout (?P<scanout>{_U}): (?P<width>{_N})x"
       rf"(?P<height>{_N}) ring=(?P<ring>{_N}) slots", "ring blit ready for a scanout", gen="H4",
       effect=gen_hint()),
    _q("gl-blit-destroyed", rf"\[GL_BLIT\] Destroyed blit ring for scanout (?P<scanout>{_U})",
       "ring blit released", gen="H4"),
    _q("keepalive", rf"\[KEEPALIVE\] Re-encoded scanout (?P<scanout>{_U}) from IOSurface"
       rf"(?: \(slot=(?P<slot>{_U}), total keepalive frames=(?P<total>{_U})\))?",
       "static screen: the last frame re-encoded (every 500 ms, H5)", gen="H5",
       effect=most("keepalives", "total")),
    # ── other host-side strings ──
    _q("virgl-init-ok", r"\[HELIX-DEBUG\] virgl_renderer_init succeeded, calling "
       r"helix_frame_export_init", "virgl is up; frame-export init follows"),
    _q("virgl-init-failed", r"\[HELIX-DEBUG\] virgl_renderer_init FAILED",
       "virgl did not initialise: frame-export init never runs", "qemu-init-failed",
       effect=INIT_ERROR),
    _q("reentrant-io", r"warning: Blocked re-entrant IO on MemoryRegion: (?P<region>\S{1,200}) at "
       rf"addr: (?P<addr>{_HEX})", "virtio-gpu notification lost: GPU deadlock risk",
       anywhere=True, needle="Blocked re-entrant IO on MemoryRegion", note=True,
       detect=False),
    _q("vt-memory-watermark", rf"VTEncoderXPCServ \[(?P<pid>{_U})\] crossed memory high "
       rf"watermark \((?P<mb>{_U}) MB\)", "VideoToolbox's ~1 GB encoder limit reached",
       "encoder-unavailable", anywhere=True, needle="crossed memory high watermark"),
)

SIGNATURES: tuple[Signature, ...] = _GST + _QEMU + _BRIDGE + _DRM


def check_table(table: tuple[Signature, ...]) -> None:
    """The table-wide checks (effects and handlers are checked by `dispatch.compile_rules`)."""
    names: set[str] = set()
    for sig in table:
        def bad(what: str, sig: Signature = sig) -> ValueError:
            return ValueError(f"signature {sig.name!r}: {what}")

        if sig.name in names:
            raise ValueError(f"signature {sig.name!r} declared twice")
        names.add(sig.name)
        if sig.kind not in KINDS:
            raise bad(f"unknown kind {sig.kind!r}")
        for fid in (sig.failure_id, sig.related):
            if fid is not None and fid not in CATALOG:
                raise bad(f"unknown failure id {fid!r}")
        if sig.when is not None and sig.failure_id is None:
            raise bad("a `when` condition needs the failure id it guards")
        if sig.step is not None and (sig.kind != "qemu" or sig.step not in _STEP_INDEX):
            raise bad(f"step {sig.step!r} is not a host INIT_STEPS rung")
        if sig.era is not None and (sig.kind != "gst" or sig.era not in _ERAS):
            raise bad(f"era {sig.era!r} is not a vsockenc era")
        if sig.anywhere and not sig.needle:
            raise bad("anywhere needs a needle")
        if not all(isinstance(e, Effect) for e in sig.effect):
            raise bad("effect takes Effects (count(), put(), …)")
        for e in sig.effect:
            if e.kind == "prove" and e.value not in CATALOG:
                raise bad(f"unknown failure id {e.value!r}")
        if sig.handler is not None and not callable(sig.handler):
            raise bad("handler must be a scanner method")


check_table(SIGNATURES)


def signatures_for(kind: str) -> tuple[Signature, ...]:
    """The table rows of one log kind, in table order."""
    return tuple(s for s in SIGNATURES if s.kind == kind)


# ════════════════════════════════════════════════════════════════════ the docs tables


def _render(items: Any, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, av in items:
        if op is _sre.LITERAL:
            out.append(chr(av))
        elif op is _sre.SUBPATTERN:
            gid, sub = av[0], av[3]
            if gid in groups:
                out.append(f"<{groups[gid]}>")
            else:
                out.append(_render(sub, groups))
        elif op is _sre.BRANCH:
            out.append("(" + "|".join(_render(b, groups) for b in av[1]) + ")")
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            lo, hi, sub = av
            inner = _render(sub, groups)
            if len(sub) == 1 and sub[0][0] is _sre.LITERAL:  # "={10,200}", " ?"
                out.append(inner * lo + ("…" if hi != lo and lo else ""))
            elif lo == 0 and hi == 1:
                out.append(f"[{inner}]")
            else:
                out.append("…")
        elif op is _sre.AT:
            continue
        else:  # a class, any character …
            out.append("…")
    return "".join(out).replace("……", "…")


def readable(sig: Signature) -> str:
    """The pattern as a line template: named groups as <name>, other variable parts as …"""
    groups = {v: k for k, v in sig.regex.groupindex.items()}
    return _render(_sre_parse.parse(sig.regex.pattern), groups)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _proves(sig: Signature) -> str:
    parts = []
    if sig.failure_id:
        parts.append(f"[{sig.failure_id}](failures/{sig.failure_id}.md)"
                     + (f" when {sig.when}" if sig.when else ""))
    for e in sig.effect:
        if e.kind == "prove":
            parts.append(f"[{e.value}](failures/{e.value}.md)")
    if sig.note:
        parts.append("note")
    if sig.related:
        parts.append(f"see [{sig.related}](failures/{sig.related}.md)")
    return ", ".join(parts)


def markdown_table(kind: str, table: tuple[Signature, ...] = SIGNATURES) -> str:
    """The rows of one log kind as a Markdown table (docs/tools.md, kept in step by a test)."""
    if kind == "gst":
        head = ["Message", "Logged at", "Era", "Meaning", "Proves", "Does"]
    elif kind == "qemu":
        head = ["Line", "Hosts", "Step", "Meaning", "Proves", "Does"]
    else:
        head = ["Message", "Level", "Meaning", "Proves", "Does"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sig in table:
        if sig.kind != kind:
            continue
        if kind == "gst":
            where = "anywhere in a line" if sig.anywhere else \
                " ".join(x for x in (sig.level, f"`{sig.func}`" if sig.func else None) if x)
            cells = [where, sig.era or ""]
        elif kind == "qemu":
            cells = [sig.gen or "", sig.step or ""]
        else:
            cells = ["anywhere in a line" if sig.anywhere else sig.level or ""]
        cells = [f"`{readable(sig)}`", *cells, sig.meaning, _proves(sig), sig.does]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"
