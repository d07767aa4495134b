"""Scanout mode, like desktop-bridge: SUBSCRIBE, an optional CONFIG_REQ with the bitrate, then
read pushed frames (exactly one NAL entry each) until told to stop or the stream ends.

A frame before SUBSCRIBE_RESP is tolerated (the host marks a client subscribed before it
answers). Silence is judged by what the caller knows: counting frames (`frames`) says the
picture moves, so a subscription that stays silent is `stream-no-reply`; watching
(`duration`) a subscription that is answered and alive but silent is a static picture —
every host encodes on damage only — and not a failure."""

from __future__ import annotations

import time

from helixdiag import net, protocol
from helixdiag.client.connection import Connection, Stop
from helixdiag.client.request import diagnose_silence, want_more
from helixdiag.client.result import STATIC, ExchangeOptions, ExchangeResult, Judge, ScanoutFigures
from helixdiag.protocol import ErrorMessage, FrameResponse, RemoteProtocolError
from helixdiag.protocol.conversation import EARLY_PUSH, PUSH, REPLY, Event

IDLE_HINT_S = 0.3  # a close this long after our last message may be the host's idle timeout


def run_scanout(conn: Connection, opts: ExchangeOptions, result: ExchangeResult, checker: Judge) -> None:
    sc = result.scanout = ScanoutFigures(opts.scanout_id)
    run = _Subscription(conn, opts, result, checker, sc)
    try:
        run.subscribe()
        run.watch()
    except Stop:
        if not sc.ended:
            last = list(result.findings.values())[-1] if result.findings else None
            sc.ended = last.message if last else "stopped"
        raise


class _Subscription:
    def __init__(self, conn: Connection, opts: ExchangeOptions, result: ExchangeResult, checker: Judge,
                 sc: ScanoutFigures) -> None:
        self.conn, self.opts, self.result, self.checker, self.sc = conn, opts, result, checker, sc
        self.expect = opts.expect_frames if opts.expect_frames is not None else opts.duration is None
        self.started = time.monotonic()
        self.last_sent = self.started
        self.last_arrival: float | None = None

    def _send(self, msg: protocol.Message) -> None:
        self.conn.send(msg, time.monotonic() + max(self.opts.timeout, 1.0))
        self.last_sent = time.monotonic()

    # ------------------------------------------------------------------ the two phases
    def subscribe(self) -> None:
        opts, result, sc = self.opts, self.result, self.sc
        self._send(protocol.Subscribe(opts.scanout_id))
        while self.conn.conversation.subscribing:  # a frame may come before SUBSCRIBE_RESP (tolerated)
            try:
                event = self._next(opts.timeout)
            except TimeoutError:
                diagnose_silence(self.conn, opts, result, opts.scanout_id, "SUBSCRIBE_RESP to scanout")
                self.sc.ended = (f"no SUBSCRIBE_RESP within {opts.timeout:g} s"
                                 + (": the host answers PING but not SUBSCRIBE (no scanout mode: H2 or older?)"
                                    if result.pong else ""))
                raise Stop from None
            if event.kind == EARLY_PUSH:
                result.frames_before_subscribe_resp += 1
                self._pushed(event.message)
            elif event.kind != REPLY:
                result.add("stream-protocol-error", f"expected SUBSCRIBE_RESP, got {event.name}",
                           message_type=event.name)
                raise Stop
            elif not event.message.success:
                result.add("stream-protocol-error", f"SUBSCRIBE to scanout {opts.scanout_id} refused",
                           scanout_id=opts.scanout_id)
                raise Stop
        sc.subscribed = True
        sc.subscribe_ms = (time.monotonic() - self.started) * 1000
        if opts.bitrate:
            width, height = opts.size
            self._send(protocol.ConfigRequest(width, height, opts.bitrate, 60, 1, 66, 40, 1, session_id=0))
            sc.config_sent = opts.bitrate

    def watch(self) -> None:
        opts, result, sc = self.opts, self.result, self.sc
        ends = self.started + opts.duration if opts.duration is not None else None
        while want_more(opts, result.frames_received, self.started):
            wait = opts.timeout if ends is None else max(0.01, min(opts.timeout, ends - time.monotonic()))
            try:
                event = self._next(wait)
            except TimeoutError:
                if ends is not None:
                    continue  # a pause while watching: counted as a gap when the next frame comes
                self._silent()
                return
            msg = event.message
            if event.kind == PUSH:
                self._pushed(msg)
                if opts.until_keyframe and result.keyframes and result.frames_received > sc.frames_before_keyframe + 1:
                    sc.ended = "a keyframe and a frame after it arrived"
                    return
                if opts.until_keyframe and not result.keyframes and result.frames_received >= opts.keyframe_interval:
                    sc.ended = f"{result.frames_received} frames, a whole GOP, without a keyframe"
                    return
            elif isinstance(msg, ErrorMessage):
                result.add("encoder-error", f"host pushed ERROR {msg.code}", code=msg.code)
            elif event.failure_id:
                result.add(event.failure_id, event.detail, message_type=event.name)
        if result.frames_received == 0:
            self._silent()
        elif ends is not None:
            sc.ended = f"watched for {opts.duration:g} s"
        else:
            sc.ended = f"{result.frames_received} frames received, as asked"

    # ------------------------------------------------------------------ what arrives
    def _next(self, timeout: float) -> Event:
        """The next event (TimeoutError on silence, for the caller to judge); a close or broken
        framing ends the stream with its finding."""
        try:
            return self.conn.receive(timeout)
        except EOFError as exc:
            self._closed(exc)
        except RemoteProtocolError as exc:
            self._broken(exc)
        raise AssertionError("unreachable")

    def _broken(self, exc: RemoteProtocolError) -> None:
        frame = self.result.frames_received
        if exc.kind == "bad-magic":
            head = exc.header
            self.sc.ended = f"bad magic after {frame} frames: {exc}"
            self.result.add("stream-bad-magic", f"pushed message {frame} does not start with HXFR: {exc}",
                            frame=frame, magic=f"0x{head.magic:08x}" if head else None)
        else:
            self.sc.ended = f"protocol error ({exc.kind}) after {frame} frames: {exc}"
            self.result.add("stream-protocol-error", f"pushed message {frame} breaks the protocol: {exc}",
                            frame=frame, kind=exc.kind)
        raise Stop

    def _closed(self, exc: EOFError) -> None:
        quiet = time.monotonic() - self.last_sent
        ended = f"closed by the host {quiet:.1f} s after our last message"
        if quiet >= IDLE_HINT_S:
            ended += (" (an idle timeout? a subscriber sends nothing after SUBSCRIBE, and a host with a "
                      "read timeout drops it: 60 s on H4, 600 s on H3)")
        self.sc.ended = ended
        self.result.add("stream-closed", f"{ended} ({exc})", frames=self.result.frames_received,
                        silent_s=round(quiet, 3))
        raise Stop

    def _pushed(self, msg: FrameResponse) -> None:
        """A pushed frame: counted, timed, validated (one NAL entry, as desktop-bridge reads)."""
        now = time.monotonic()
        result, sc = self.result, self.sc
        result.frames_received += 1
        gap_ms = None if self.last_arrival is None else (now - self.last_arrival) * 1000
        if gap_ms is not None:
            result.latencies_ms.append(gap_ms)  # inter-arrival time
        sc.arrival(gap_ms)
        self.last_arrival = now
        if sc.first_frame_ms is None:
            sc.first_frame_ms = (now - self.started) * 1000
        keyframes = result.keyframes
        self.checker.check(msg, expected=None)
        if result.keyframes > keyframes and sc.first_keyframe_ms is None:
            sc.first_keyframe_ms = (now - self.started) * 1000
            sc.frames_before_keyframe = result.frames_received - 1

    def _silent(self) -> None:
        """No frame came when one was waited for: a static picture, or a host that does not
        push? Alive (PONG) and not expecting frames: static. Otherwise stream-no-reply."""
        result, sc, opts = self.result, self.sc, self.opts
        waited = opts.duration if opts.duration is not None else opts.timeout
        result.pong = self._alive()
        if result.pong and not self.expect and result.frames_received == 0:
            sc.static = True
            sc.ended = STATIC
            return
        if result.pong:
            message = (f"subscribed to scanout {opts.scanout_id} and the host answers PING, but no frame "
                       f"came within {waited:g} s: a static picture sends none (watch with --duration), "
                       "or the host does not push to this subscriber")
        else:
            message = f"no frame within {waited:g} s, and no PONG either: the host does not answer"
        sc.ended = message
        result.add("stream-no-reply", message, frame=result.frames_received, timeout_s=waited, pong=result.pong)
        raise Stop

    def _alive(self) -> bool:
        """PING on the subscribed connection; frames that arrive meanwhile still count."""
        try:
            self._send(protocol.Ping(self.opts.scanout_id & 0xFFFF))
            deadline = time.monotonic() + min(self.opts.timeout, 2.0)
            while (left := deadline - time.monotonic()) > 0:
                event = self.conn.receive(left)
                if event.kind == PUSH:
                    self._pushed(event.message)
                elif isinstance(event.message, protocol.Pong):
                    return True
        except (TimeoutError, EOFError, OSError, RemoteProtocolError, net.NetError):
            return False
        return False
