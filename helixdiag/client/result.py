"""What an exchange is asked to do (`ExchangeOptions`) and what it found (`ExchangeResult`;
in scanout mode also `ScanoutFigures`: what a subscriber like desktop-bridge saw)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from helixdiag import net
from helixdiag.findings import Finding, HasFindings
from helixdiag.protocol import PixelFormat

if TYPE_CHECKING:
    from helixdiag.frames import SyntheticSource
    from helixdiag.protocol import Buffer, FrameLayout, FrameResponse

GAP_MS = 250.0  # a pause between two pushed frames this long is a visible freeze
STATIC = "subscribed, no frames while the picture is static"


@dataclass
class ScanoutFigures:
    """A subscription as desktop-bridge lives it: when SUBSCRIBE_RESP came, how long until the
    first frame and the first keyframe (P-frames before it: joined mid-GOP), pauses, and why
    the stream ended."""

    scanout_id: int
    subscribed: bool = False
    subscribe_ms: float | None = None  # SUBSCRIBE → SUBSCRIBE_RESP
    first_frame_ms: float | None = None  # SUBSCRIBE → the first pushed frame
    first_keyframe_ms: float | None = None  # SUBSCRIBE → the first keyframe
    frames_before_keyframe: int = 0
    gaps: int = 0  # pauses over GAP_MS between two frames
    longest_gap_ms: float = 0.0
    config_sent: int | None = None  # the bitrate of the CONFIG_REQ sent
    ended: str = ""  # why the stream ended, in a subscriber's words
    static: bool = False  # subscribed and alive, and no frame came: a static picture

    def arrival(self, gap_ms: float | None) -> None:
        if gap_ms is not None and gap_ms > GAP_MS:
            self.gaps += 1
        if gap_ms is not None:
            self.longest_gap_ms = max(self.longest_gap_ms, gap_ms)

    def to_dict(self) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v, 1)
        return {
            "id": self.scanout_id, "subscribed": self.subscribed, "subscribe_ms": ms(self.subscribe_ms),
            "first_frame_ms": ms(self.first_frame_ms), "first_keyframe_ms": ms(self.first_keyframe_ms),
            "frames_before_keyframe": self.frames_before_keyframe, "gaps": self.gaps,
            "longest_gap_ms": ms(self.longest_gap_ms), "config_req_bitrate": self.config_sent,
            "ended": self.ended, "static": self.static,
        }

    def verdict(self, result: ExchangeResult) -> str:
        """The subscription in one line: what it got, in a subscriber's words."""
        if self.static:
            return STATIC
        if result.status == "pass":
            return (f"subscribed to scanout {self.scanout_id}: {result.frames_received} frames pushed, "
                    "every one valid and decoded")
        return f"scanout {self.scanout_id} · {result.frames_received} frames pushed · {self.ended}"

    def rows(self, result: ExchangeResult) -> list[tuple[str, str]]:
        """The figures of a subscription, as label/value rows for a terminal."""
        subscribed = (f"scanout {self.scanout_id}, SUBSCRIBE_RESP in {self.subscribe_ms:.1f} ms"
                      if self.subscribed and self.subscribe_ms is not None else f"scanout {self.scanout_id}: no")
        if result.frames_before_subscribe_resp:
            subscribed += f" ({result.frames_before_subscribe_resp} frame(s) pushed before it, tolerated)"
        rows = [("subscribed", subscribed)]
        if result.frames_received:
            rows.append(("frames", f"{result.frames_received} pushed · {result.frames_decoded} decoded · "
                                   f"{result.keyframes} keyframes"))
            first = f"first frame after {self.first_frame_ms:.0f} ms"
            if self.first_keyframe_ms is not None:
                first += (f" · first keyframe after {self.first_keyframe_ms:.0f} ms"
                          + (f" ({self.frames_before_keyframe} P-frames before it: joined mid-GOP)"
                             if self.frames_before_keyframe else ""))
            else:
                first += " · no keyframe yet"
            rows.append(("keyframe", first))
            rows.append(("gaps", f"{self.gaps} over {GAP_MS:.0f} ms · longest {self.longest_gap_ms:.0f} ms"))
        rows.append(("ended", self.ended or "-"))
        return rows


MIN_PSNR_DB = 25.0  # a picture this far below the sent one was not made from our pixels
SLOW_FRAME_MS = 100.0  # Helix's own latency goal (< 100 ms)


class Judge(Protocol):
    """What looks at each FRAME_RESPONSE of an exchange: the StreamChecker (client.checker)
    validates and decodes; the guest agent's recorder keeps the bytes for the host."""

    def check(self, resp: FrameResponse, expected: tuple[Buffer, FrameLayout, int] | None) -> None: ...

    def finish(self) -> None: ...


@dataclass
class ExchangeOptions:
    endpoint: net.Endpoint
    mode: str = "request"  # request | scanout
    frames: int | None = 300
    duration: float | None = None
    size: tuple[int, int] = (1920, 1080)
    format: PixelFormat = PixelFormat.NV12
    fps: float = 0.0  # 0 = as fast as the server answers
    keyframe_interval: int = 60
    timeout: float = 3.0  # per reply
    connect_timeout: float = 3.0
    scanout_id: int = 1
    decode: bool = True
    save_to: BinaryIO | None = None  # the received Annex-B stream, e.g. for ffprobe
    # Request mode: where the frames come from (default: a SyntheticSource of size/format).
    # The benchmark passes one that replays pre-rendered frames, so making pictures is not
    # counted as serving them.
    source: SyntheticSource | None = None
    # Scanout mode. Whether silence after SUBSCRIBE_RESP is a failure: None = when counting
    # frames (`frames`: the caller says the picture moves), not when watching (`duration`: a
    # static picture sends nothing).
    expect_frames: bool | None = None
    bitrate: int | None = None  # send CONFIG_REQ with this bitrate after SUBSCRIBE_RESP, like desktop-bridge
    # Scanout mode: stop watching once a keyframe and a frame after it arrived, or a whole GOP
    # (keyframe_interval frames) without one: a diagnosis needs no more, and holds one of the
    # host's client slots meanwhile.
    until_keyframe: bool = False


@dataclass
class ExchangeResult(HasFindings):
    endpoint: str
    mode: str
    frames_sent: int = 0
    frames_received: int = 0
    frames_decoded: int = 0
    keyframes: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    psnr_db: list[float] = field(default_factory=list)
    profile: str | None = None
    coded_size: tuple[int, int] | None = None
    pong: bool | None = None
    frames_before_subscribe_resp: int = 0  # scanout: pushed before the subscription was confirmed
    findings: dict[str, Finding] = field(default_factory=dict)
    scanout: ScanoutFigures | None = None  # scanout mode: what the subscriber saw
    raw: dict[str, Any] | None = None  # the guest agent's recorded replies, judged on the host

    # -------------------------------------------------------------- findings
    def add(self, failure_id: str, message: str, **evidence: Any) -> None:
        found = self.findings.get(failure_id)
        if found is None:
            self.findings[failure_id] = Finding(failure_id, message, evidence)
        else:
            found.count += 1

    @property
    def primary(self) -> Finding | None:
        """The finding that explains the others (a missing SPS explains undecodable frames)."""
        order = [f for f in self.findings.values() if f.severity == "fail"] or list(self.findings.values())
        return order[0] if order else None

    # -------------------------------------------------------------- figures
    @property
    def fps(self) -> float:
        return self.frames_received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency(self) -> dict[str, float] | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return {
            "p50": round(percentile(ordered, 50), 3),
            "p95": round(percentile(ordered, 95), 3),
            "p99": round(percentile(ordered, 99), 3),
            "max": round(ordered[-1], 3),
        }

    def to_dict(self) -> dict[str, Any]:
        per_frame = self.bytes_received / self.frames_received if self.frames_received else 0
        return {
            "endpoint": self.endpoint,
            "mode": self.mode,
            "status": self.status,
            "frames": {
                "sent": self.frames_sent, "received": self.frames_received,
                "decoded": self.frames_decoded, "keyframes": self.keyframes,
                "before_subscribe_resp": self.frames_before_subscribe_resp,
            },
            "elapsed_s": round(self.elapsed_s, 3),
            "fps": round(self.fps, 2),
            "latency_ms": self.latency(),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_per_frame": round(per_frame),
            "bitrate_bps": round(per_frame * 8 * self.fps),
            "psnr_db": _psnr_summary(self.psnr_db),
            "h264": {"profile": self.profile,
                     "size": f"{self.coded_size[0]}x{self.coded_size[1]}" if self.coded_size else None},
            "pong": self.pong,
            "findings": [f.to_dict() for f in self.findings.values()],
            **({"scanout": self.scanout.to_dict()} if self.scanout is not None else {}),
            **({"raw": self.raw} if self.raw is not None else {}),
        }


def percentile(ordered: list[float], p: float) -> float:
    """numpy.percentile's default (linear between the two nearest ranks), in the standard
    library: the guest agent carries this module."""
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _psnr_summary(values: list[float]) -> dict[str, float] | None:
    finite = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return {
        "min": round(min(finite), 2) if finite else float("inf"),
        "mean": round(sum(finite) / len(finite), 2) if finite else float("inf"),
    }
