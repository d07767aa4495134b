"""The reference guest client: a stand-in for vsockenc (request mode) and for the scanout
subscriber (scanout mode) that validates every reply and names what is wrong.

A library first: `exchange(options) -> ExchangeResult`. The `send` command renders the
result; the `stream` probes reuse it so a probe and a manual `send` judge a host alike.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from helixdiag import h264, net, protocol
from helixdiag.decoding import StreamDecoder, UndecodableStream
from helixdiag.findings import Finding, worst_status
from helixdiag.frames import SyntheticSource, luma_plane, psnr, read_frame_number
from helixdiag.protocol import (
    NEED_DATA,
    ErrorMessage,
    FrameLayout,
    FrameRequest,
    FrameResponse,
    PixelFormat,
    RemoteProtocolError,
)
from helixdiag.protocol.conversation import EARLY_PUSH, PUSH, REPLY, Conversation, Event

# A picture this far below the sent one was not made from our pixels (console, stale frame).
MIN_PSNR_DB = 25.0
SLOW_FRAME_MS = 100.0  # Helix's own latency goal (< 100 ms)


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


@dataclass
class ExchangeResult:
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

    # -------------------------------------------------------------- findings
    def add(self, failure_id: str, message: str, **evidence: Any) -> None:
        found = self.findings.get(failure_id)
        if found is None:
            self.findings[failure_id] = Finding(failure_id, message, evidence)
        else:
            found.count += 1

    @property
    def status(self) -> str:
        return worst_status(self.findings.values())

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
        arr = np.asarray(self.latencies_ms)
        return {
            "p50": round(float(np.percentile(arr, 50)), 3),
            "p95": round(float(np.percentile(arr, 95)), 3),
            "p99": round(float(np.percentile(arr, 99)), 3),
            "max": round(float(arr.max()), 3),
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
        }


def _psnr_summary(values: list[float]) -> dict[str, float] | None:
    finite = [v for v in values if np.isfinite(v)]
    if not values:
        return None
    return {
        "min": round(min(finite), 2) if finite else float("inf"),
        "mean": round(sum(finite) / len(finite), 2) if finite else float("inf"),
    }


class _Stop(Exception):
    """The exchange cannot go on (no reply, closed, broken framing)."""


class Connection:
    """A client socket plus an HXFR decoder, with bounded waits for one message. Every
    message sent and received goes through the connection's `Conversation`, which says
    what each received message is (a reply, a pushed frame, an answer nobody asked for)."""

    def __init__(self, endpoint: net.Endpoint, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self.sock = net.connect(endpoint, connect_timeout)
        self.decoder = protocol.Decoder(accept=protocol.HOST_TO_GUEST)
        self.conversation = Conversation()
        self.bytes_in = 0

    def send(self, msg: protocol.Message, deadline: float) -> int:
        sent = net.send_parts(self.sock, protocol.encode_parts(msg), deadline)
        self.conversation.guest_sent(msg)
        return sent

    def receive(self, timeout: float) -> Event:
        """The next message and what it means; TimeoutError when nothing complete arrives in
        `timeout`, EOFError when the peer closes, RemoteProtocolError on broken framing."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.decoder.next_message()
            if msg is not NEED_DATA:
                return self.conversation.host_sent(msg)  # type: ignore[arg-type]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                n = self.sock.recv_into(self.decoder.buffer())
            except TimeoutError:
                raise TimeoutError from None
            except OSError as exc:
                raise EOFError(str(net.translate(exc, "read"))) from None
            if n == 0:
                raise EOFError("mid-message" if self.decoder.in_message else "at a message boundary")
            self.bytes_in += n
            self.decoder.commit(n)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass(frozen=True)
class PingResult:
    """What a PING got: `pong`, `silent` (nothing within the timeout), `closed` (EOF or a
    reset), `bad-magic` (not HXFR at all) or `wrong-answer` (HXFR, but not a PONG)."""

    outcome: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome == "pong"


def ping(endpoint: net.Endpoint, timeout: float) -> PingResult:
    """PING → PONG on a fresh connection. Raises NetError only when connecting fails."""
    conn = Connection(endpoint, timeout)
    try:
        conn.send(protocol.Ping(1), time.monotonic() + timeout)
        event = conn.receive(timeout)
    except TimeoutError:
        return PingResult("silent", f"no PONG within {timeout:g} s")
    except (EOFError, OSError) as exc:
        return PingResult("closed", f"connection closed ({exc})")
    except RemoteProtocolError as exc:
        outcome = "bad-magic" if exc.kind == "bad-magic" else "wrong-answer"
        return PingResult(outcome, f"answer breaks the protocol ({exc.kind}): {exc}")
    finally:
        conn.close()
    if event.kind == REPLY and isinstance(event.message, protocol.Pong):
        return PingResult("pong", "PONG")
    return PingResult("wrong-answer", f"answered {event.name} instead of PONG")


def exchange(opts: ExchangeOptions) -> ExchangeResult:
    """Connect, run the exchange in the chosen mode, validate everything; never raises
    for what the peer does — that becomes findings. Raises NetError only on connect."""
    result = ExchangeResult(str(opts.endpoint), opts.mode)
    conn = Connection(opts.endpoint, opts.connect_timeout)
    checker = _StreamChecker(result, opts)
    started = time.monotonic()
    try:
        if opts.mode == "scanout":
            _run_scanout(conn, opts, result, checker)
        else:
            _run_request(conn, opts, result, checker)
    except _Stop:
        pass
    finally:
        result.elapsed_s = time.monotonic() - started
        result.bytes_received = conn.bytes_in
        conn.close()
        checker.finish()
    return result


def _want_more(opts: ExchangeOptions, count: int, started: float) -> bool:
    if opts.duration is not None:
        return time.monotonic() - started < opts.duration
    return count < (opts.frames or 0)


def _run_request(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, checker: _StreamChecker) -> None:
    width, height = opts.size
    source = opts.source or SyntheticSource(width, height, opts.format)
    if (source.width, source.height, source.format) != (width, height, opts.format):
        raise ValueError(f"source is {source.width}x{source.height} {source.format.name}, "
                         f"options say {width}x{height} {PixelFormat(opts.format).name}")
    layout = source.layout
    started = time.monotonic()
    i = 0
    while _want_more(opts, i, started):
        if opts.fps > 0:
            due = started + i / opts.fps
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
        pixels = source.frame(i)
        req = FrameRequest(
            width=width, height=height, format=opts.format, stride=layout.stride,
            pts=i * 16_666_667, duration=16_666_667,
            force_keyframe=opts.keyframe_interval > 0 and i % opts.keyframe_interval == 0 or i == 0,
            pixels=pixels, session_id=1,
        )
        t0 = time.perf_counter()
        try:
            result.bytes_sent += conn.send(req, time.monotonic() + max(opts.timeout, 1.0))
        except (OSError, TimeoutError) as exc:
            result.add("stream-closed", f"sending frame {i} failed: {exc}", frame=i)
            raise _Stop from None
        result.frames_sent += 1
        event = _await_reply(conn, opts, result, i, "FRAME_RESPONSE")
        latency_ms = (time.perf_counter() - t0) * 1000
        reply = event.message
        if event.kind == REPLY and isinstance(reply, ErrorMessage):
            result.add("encoder-error", f"host answered ERROR {reply.code}: {reply.message!r}",
                       code=reply.code, host_message=reply.message, frame=i)
        elif event.kind == REPLY and isinstance(reply, FrameResponse):
            result.frames_received += 1
            result.latencies_ms.append(latency_ms)
            checker.check(reply, expected=(pixels, layout, i))
        else:
            result.add("stream-protocol-error",
                       f"expected FRAME_RESPONSE to frame {i}, got {event.name}"
                       + (f" ({event.detail})" if event.detail else ""),
                       frame=i, message_type=event.name)
            raise _Stop
        i += 1
    slow = [ms for ms in result.latencies_ms if ms > SLOW_FRAME_MS]
    if result.latencies_ms and len(slow) * 2 > len(result.latencies_ms):
        result.add("stream-slow", f"median reply took over {SLOW_FRAME_MS:g} ms",
                   latency_ms=result.latency(), goal_ms=SLOW_FRAME_MS)


def _await_reply(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, frame: int, what: str) -> Event:
    try:
        return conn.receive(opts.timeout)
    except TimeoutError:
        _diagnose_silence(conn, opts, result, frame, what)
    except EOFError as exc:
        result.add("stream-closed", f"host closed the connection while we waited for {what} {frame} ({exc})",
                   frame=frame)
    except RemoteProtocolError as exc:
        if exc.kind == "bad-magic":
            head = exc.header
            result.add("stream-bad-magic", f"reply to frame {frame} does not start with HXFR: {exc}",
                       frame=frame, magic=f"0x{head.magic:08x}" if head else None)
        else:
            result.add("stream-protocol-error", f"reply to frame {frame} breaks the protocol: {exc}",
                       frame=frame, kind=exc.kind)
    raise _Stop


def _diagnose_silence(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, frame: int, what: str) -> None:
    """No reply: is the host dead, or alive and ignoring frames (H4)? Ask with a PING."""
    try:
        conn.send(protocol.Ping(1), time.monotonic() + 1.0)
        result.pong = isinstance(conn.receive(min(opts.timeout, 2.0)).message, protocol.Pong)
    except (TimeoutError, EOFError, OSError, RemoteProtocolError):
        result.pong = False
    if result.pong and opts.mode == "request":
        result.add("frame-request-ignored",
                   f"no reply to frame {frame} within {opts.timeout:g} s, but PING got PONG: "
                   "the host ignores FRAME_REQUEST (H4 behaviour)",
                   frame=frame, timeout_s=opts.timeout, pong=True)
    else:
        result.add("stream-no-reply",
                   f"no {what} for {frame} within {opts.timeout:g} s"
                   + (" and no PONG either" if not result.pong else ""),
                   frame=frame, timeout_s=opts.timeout, pong=result.pong)


def _run_scanout(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, checker: _StreamChecker) -> None:
    conn.send(protocol.Subscribe(opts.scanout_id), time.monotonic() + opts.timeout)
    started = time.monotonic()
    last = time.perf_counter()
    while conn.conversation.subscribing:  # a frame may come before SUBSCRIBE_RESP (tolerated)
        event = _await_reply(conn, opts, result, opts.scanout_id, "SUBSCRIBE_RESP to scanout")
        if event.kind == EARLY_PUSH:
            result.frames_before_subscribe_resp += 1
            last = _pushed(event.message, result, checker, last)
        elif event.kind != REPLY:
            result.add("stream-protocol-error", f"expected SUBSCRIBE_RESP, got {event.name}",
                       message_type=event.name)
            raise _Stop
        elif not event.message.success:
            result.add("stream-protocol-error", f"SUBSCRIBE to scanout {opts.scanout_id} refused",
                       scanout_id=opts.scanout_id)
            raise _Stop
    while _want_more(opts, result.frames_received, started):
        event = _await_reply(conn, opts, result, result.frames_received, "pushed frame")
        msg = event.message
        if event.kind == PUSH:
            last = _pushed(msg, result, checker, last)
        elif isinstance(msg, ErrorMessage):
            result.add("encoder-error", f"host pushed ERROR {msg.code}", code=msg.code)
        elif event.failure_id:
            result.add(event.failure_id, event.detail, message_type=event.name)


def _pushed(msg: FrameResponse, result: ExchangeResult, checker: _StreamChecker, last: float) -> float:
    """A pushed frame: counted, timed against the one before, validated."""
    now = time.perf_counter()
    result.frames_received += 1
    result.latencies_ms.append((now - last) * 1000)  # inter-arrival time
    checker.check(msg, expected=None)
    return now


def _acceptable_sizes(size: tuple[int, int]) -> set[tuple[int, int]]:
    """4:2:0 H.264 can only crop in 2-pixel steps, so an odd side comes back one larger."""
    w, h = size
    return {(w, h), (w + w % 2, h + h % 2)}


class _StreamChecker:
    """Validates each FRAME_RESPONSE: framing, parameter sets, SPS, decodability, picture."""

    def __init__(self, result: ExchangeResult, opts: ExchangeOptions) -> None:
        self.result = result
        self.opts = opts
        self.decoder = StreamDecoder() if opts.decode else None
        self.seen_keyframe = False
        self.decode_broken = False

    def check(self, resp: FrameResponse, expected: tuple[protocol.Buffer, FrameLayout, int] | None) -> None:
        r = self.result
        frame = r.frames_received - 1
        if resp.nal_count != 1:
            r.add("stream-nal-count", f"FRAME_RESPONSE carries {resp.nal_count} NAL entries; "
                  "hosts send 1 and the Go scanout reader reads only the first",
                  nal_count=resp.nal_count, frame=frame)
        data = resp.data
        if self.opts.save_to is not None:
            self.opts.save_to.write(data)
        framing = h264.detect_framing(data)
        if framing == h264.Framing.AVCC:
            r.add("stream-avcc", "H.264 is length-prefixed (AVCC), not Annex-B: h264parse cannot use it",
                  frame=frame, first_bytes=data[:8].hex(" "))
            return
        if framing != h264.Framing.ANNEXB:
            r.add("stream-undecodable", "reply is neither Annex-B nor AVCC H.264",
                  frame=frame, first_bytes=data[:8].hex(" "))
            return
        try:
            summary = h264.access_unit_summary(h264.split_annexb(data))
        except h264.H264Error as exc:
            r.add("stream-undecodable", f"H.264 does not parse: {exc}", frame=frame)
            return
        if summary.has_idr or resp.is_keyframe:
            r.keyframes += 1
            if not (summary.has_sps and summary.has_pps and summary.params_before_idr):
                r.add("stream-no-sps-pps", "keyframe without SPS/PPS before the IDR: h264parse "
                      "swallows every frame", frame=frame, has_sps=summary.has_sps, has_pps=summary.has_pps)
                return
            self.seen_keyframe = True
        if summary.sps is not None:
            r.profile = summary.sps.profile
            r.coded_size = (summary.sps.width, summary.sps.height)
            if expected is not None and r.coded_size not in _acceptable_sizes(self.opts.size):
                r.add("stream-wrong-picture",
                      f"host encoded {summary.sps.width}x{summary.sps.height}, we sent "
                      f"{self.opts.size[0]}x{self.opts.size[1]}",
                      frame=frame, sent=list(self.opts.size), received=list(r.coded_size))
        if self.decoder is None or self.decode_broken or not self.seen_keyframe:
            return
        try:
            pictures = self.decoder.decode(data)
        except UndecodableStream as exc:
            self.decode_broken = True
            r.add("stream-undecodable", f"decoder rejects frame {frame}: {exc}", frame=frame)
            return
        r.frames_decoded += len(pictures)
        if expected is not None and pictures:
            self._compare(pictures[-1].luma, *expected, frame)

    def _compare(self, decoded_luma: np.ndarray, pixels, layout: FrameLayout, index: int, frame: int) -> None:
        """The decoded picture against the pixels that were sent (not a re-rendering of them)."""
        r = self.result
        sent = luma_plane(pixels, layout)
        height, width = sent.shape
        if decoded_luma.shape[0] < height or decoded_luma.shape[1] < width:
            return  # size mismatch already reported from the SPS
        decoded_luma = decoded_luma[:height, :width]  # an odd size comes back padded to even
        quality = psnr(decoded_luma, sent)
        r.psnr_db.append(quality)
        number = read_frame_number(decoded_luma)
        if quality < MIN_PSNR_DB or (number is not None and number != index):
            r.add("stream-wrong-picture",
                  f"decoded frame {frame} is not the picture we sent (PSNR {quality:.1f} dB, "
                  f"frame stamp {number}, expected {index})",
                  frame=frame, psnr_db=round(quality, 2), stamp=number, expected_stamp=index)

    def finish(self) -> None:
        r = self.result
        if r.frames_received and not self.seen_keyframe and not (
            {"stream-no-sps-pps", "stream-avcc"} & r.findings.keys()
        ):
            r.add("stream-undecodable", f"{r.frames_received} frames received, none a decodable keyframe")
        # A missing SPS or AVCC framing explains undecodable frames; keep the cause only.
        if {"stream-no-sps-pps", "stream-avcc"} & r.findings.keys():
            r.findings.pop("stream-undecodable", None)
