"""What a scan returns: `LogSummary` and its per-kind subclasses, and the `Note`s they carry.

`GstLogSummary` (vsockenc GST_DEBUG logs), `QemuLogSummary` (the last QEMU run of a host
log) and `UnknownLogSummary` (neither kind recognised) share the counters, findings and
notes of `LogSummary`; each renders itself with `to_dict()` for the JSON report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from helixdiag.findings import Finding, HasFindings

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
class LogSummary(HasFindings):
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

    def finding(self, failure_id: str) -> Finding | None:
        return next((f for f in self.findings if f.failure_id == failure_id), None)

    @property
    def recognised_kinds(self) -> dict[str, int]:
        """The kinds of line recognised and how often, e.g. {"sent-frame": 6, "finished": 5}
        (signature names without their log-kind prefix)."""
        return {name.split(".", 1)[-1]: n for name, n in self.signature_counts.items()}

    @property
    def looks_binary(self) -> bool:
        """Nothing recognised and at least a tenth of the lines hold NUL or undecodable bytes:
        not a text log (an executable, an image, a core file …)."""
        return self.recognised_lines == 0 and self.lines > 0 and self.binary_lines * 10 >= self.lines

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
    frames_captured: int = 0  # the highest `[FRAME_READY] #n … has_subscriber=YES` (lines are sampled)
    frames_encoded: int = 0  # the highest `[ENCODE] … frame=N` with status 0
    encode_errors: int = 0  # scanout-path capture/encode error lines (status != 0, VT, blit)
    keepalives: int = 0

    @property
    def has_helix(self) -> bool:
        return self.helix_lines > 0

    @property
    def steps_reached(self) -> list[str]:
        from helixdiag.logscan.scanner import _STEP_INDEX  # (scanner imports this module)

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
            "scanout_frames": {"captured": self.frames_captured, "encoded": self.frames_encoded,
                               "encode_errors": self.encode_errors, "keepalives": self.keepalives},
            **self._tail_dict(),
        }


@dataclass
class BridgeLogSummary(LogSummary):
    """desktop-bridge's output (`docker logs DESKTOP`): its video mode, which scanout it
    watches and where that id came from, its subscriptions to the host and their frames."""

    kind: str = "bridge"
    first_time: str | None = None
    last_time: str | None = None
    video_mode: str | None = None  # "scanout" | "vsockenc"
    scanout_id: int | None = None
    scanout_id_source: str | None = None  # "env" | "file" | "own-lease"
    subscribed_scanout: int | None = None
    qemu_port: int | None = None
    monitor_connector: str | None = None
    frames: int | None = None  # the largest `frames=` of `scanout stream stats`
    subscriptions: int = 0
    read_errors: int = 0
    start_failures: int = 0
    frames_dropped: int = 0
    gops: int = 0  # `[SHARED_VIDEO] New GOP started` lines (sampled)
    pipeline: str | None = None

    def headline(self) -> str:
        """One line: mode, scanout id and its source, the subscription, the frames."""
        parts = [f"{self.video_mode} mode" if self.video_mode else "mode not logged"]
        if self.scanout_id is not None:
            parts.append(f"scanout {self.scanout_id} from {self.scanout_id_source}")
        if self.subscribed_scanout is not None:
            port = f" on port {self.qemu_port}" if self.qemu_port is not None else ""
            parts.append(f"subscribed to {self.subscribed_scanout}{port}"
                         + (f" ({self.subscriptions}×)" if self.subscriptions > 1 else ""))
        elif self.qemu_port is not None:
            parts.append(f"port {self.qemu_port}")
        if self.monitor_connector:
            parts.append(f"monitor {self.monitor_connector}")
        parts.append(f"{self.frames} frames" if self.frames is not None else "no frame count")
        if self.read_errors or self.start_failures:
            parts.append(f"{self.read_errors} read error(s), {self.start_failures} failed start(s)")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._base_dict(),
            "first_time": self.first_time, "last_time": self.last_time,
            "video_mode": self.video_mode, "scanout_id": self.scanout_id,
            "scanout_id_source": self.scanout_id_source,
            "subscribed_scanout": self.subscribed_scanout, "qemu_port": self.qemu_port,
            "monitor_connector": self.monitor_connector, "frames": self.frames,
            "subscriptions": self.subscriptions, "read_errors": self.read_errors,
            "start_failures": self.start_failures, "frames_dropped": self.frames_dropped,
            "gops": self.gops, "pipeline": self.pipeline,
            **self._tail_dict(),
        }


@dataclass
class DrmLogSummary(LogSummary):
    """helix-drm-manager's journal (and the desktop's lease helpers, where they show): the
    last run of the daemon (after its last `starting helix-drm-manager`) is judged."""

    kind: str = "drm"
    first_time: str | None = None
    last_time: str | None = None
    restarts: int = 0  # `starting helix-drm-manager` lines
    run_first_line: int | None = None
    earlier_runs: list[dict[str, Any]] = field(default_factory=list)
    qemu_addr: str | None = None
    qemu_port: int | None = None
    socket: str | None = None
    connectors: int | None = None
    available_scanouts: int | None = None
    leases_sent: int = 0
    leases_held: list[int] = field(default_factory=list)
    lease_failures: int = 0
    unknown_command_probes: int = 0
    launcher_scanout_id: int | None = None  # mutter-lease-launcher's `Lease acquired scanout_id=`

    def headline(self) -> str:
        """One line: where it sends ENABLE_SCANOUT, its pool, its leases, its restarts."""
        parts = [f"qemu_addr {self.qemu_addr}" if self.qemu_addr else "no start line"]
        if self.connectors is not None:
            parts.append(f"{self.connectors} connectors")
        if self.available_scanouts is not None:
            parts.append(f"{self.available_scanouts} scanouts to lease")
        parts.append(f"{self.leases_sent} lease(s) sent, held: "
                     + (", ".join(map(str, self.leases_held)) or "none"))
        if self.lease_failures:
            parts.append(f"{self.lease_failures} failed")
        if self.restarts > 1:
            parts.append(f"{self.restarts} starts (the last run is judged)")
        if self.unknown_command_probes:
            parts.append(f"{self.unknown_command_probes} probe line(s)")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._base_dict(),
            "first_time": self.first_time, "last_time": self.last_time,
            "restarts": self.restarts, "run_first_line": self.run_first_line,
            "earlier_runs": list(self.earlier_runs),
            "qemu_addr": self.qemu_addr, "qemu_port": self.qemu_port, "socket": self.socket,
            "connectors": self.connectors, "available_scanouts": self.available_scanouts,
            "leases_sent": self.leases_sent, "leases_held": list(self.leases_held),
            "lease_failures": self.lease_failures,
            "unknown_command_probes": self.unknown_command_probes,
            "launcher_scanout_id": self.launcher_scanout_id,
            **self._tail_dict(),
        }
