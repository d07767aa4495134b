"""Request mode, like vsockenc: one FRAME_REQUEST in flight, every reply judged; and the
waits both modes share (a reply, or why none came)."""

from __future__ import annotations

import time

from helixdiag import protocol
from helixdiag.client.connection import Connection, Stop
from helixdiag.client.result import ExchangeOptions, ExchangeResult, Judge
from helixdiag.protocol import (
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    PixelFormat,
    RemoteProtocolError,
)
from helixdiag.protocol.conversation import REPLY, Event

SLOW_FRAME_MS = 100.0  # Helix's own latency goal (< 100 ms)


def want_more(opts: ExchangeOptions, count: int, started: float) -> bool:
    if opts.duration is not None:
        return time.monotonic() - started < opts.duration
    return count < (opts.frames or 0)


def run_request(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, checker: Judge) -> None:
    width, height = opts.size
    source = opts.source
    if source is None:
        # Host only (numpy): the guest agent brings its frames, made on the host.
        from helixdiag.frames import SyntheticSource

        source = SyntheticSource(width, height, opts.format)
    if (source.width, source.height, source.format) != (width, height, opts.format):
        raise ValueError(f"source is {source.width}x{source.height} {source.format.name}, "
                         f"options say {width}x{height} {PixelFormat(opts.format).name}")
    layout = source.layout
    started = time.monotonic()
    i = 0
    while want_more(opts, i, started):
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
            raise Stop from None
        result.frames_sent += 1
        event = await_reply(conn, opts, result, i, "FRAME_RESPONSE")
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
            raise Stop
        i += 1
    slow = [ms for ms in result.latencies_ms if ms > SLOW_FRAME_MS]
    if result.latencies_ms and len(slow) * 2 > len(result.latencies_ms):
        result.add("stream-slow", f"median reply took over {SLOW_FRAME_MS:g} ms",
                   latency_ms=result.latency(), goal_ms=SLOW_FRAME_MS)


def await_reply(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, frame: int, what: str) -> Event:
    try:
        return conn.receive(opts.timeout)
    except TimeoutError:
        diagnose_silence(conn, opts, result, frame, what)
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
    raise Stop


def diagnose_silence(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, frame: int, what: str) -> None:
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


