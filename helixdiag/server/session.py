"""One client of the reference host: its messages read and answered in order, on its own
thread, so a dead or slow peer only ever blocks itself. What is answered, and how, is the
host generation's (server/generations.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import socket
import threading
import time
from typing import TYPE_CHECKING

from helixdiag import net, protocol
from helixdiag.encoders import EncodeFailed, Encoder, EncoderPool, EncoderUnavailable
from helixdiag.frames import test_card
from helixdiag.protocol import (
    GUEST_TO_HOST,
    NEED_DATA,
    ErrorCode,
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    PixelFormat,
    RemoteProtocolError,
)
from helixdiag.protocol.conversation import type_of
from helixdiag.server.hostlog import HostLog
from helixdiag.server.scanout import Subscriber
from helixdiag.server.settings import MAX_DIMENSION
from helixdiag.server.shaping import wire_bytes

H1_RECV = 65536  # H1 reads each message with one recv() of at most this much

if TYPE_CHECKING:
    from helixdiag.server.listener import FrameServer


class ClientSession(threading.Thread):
    """One connection: reads messages, answers them, and may subscribe to a scanout."""

    POLL = 0.25  # read wake-up interval, so stop() and idle timeouts are noticed

    def __init__(self, server: FrameServer, sock: socket.socket, peer: str, slot: int = 0) -> None:
        super().__init__(name=f"hxfr-client {peer}", daemon=True)
        self.server = server
        self.sock = sock
        self.peer = peer
        self.slot = slot  # the host's client index (0..max_clients-1)
        self.fd = sock.fileno()
        self.config = server.config
        self.gen = server.config.generation
        self.host_log = HostLog(self.gen, server.log)
        self.fault = server.config.fault
        self.write_lock = threading.Lock()
        self.closed = threading.Event()
        # reuse_pixels: one receive buffer per connection instead of a fresh zero-filled
        # 3-8 MB allocation per frame. Safe because every message is handled (encoded and
        # answered; the encoders copy the picture) before the loop reads on.
        self.decoder = protocol.Decoder(
            max_payload=self.config.max_payload, accept=GUEST_TO_HOST, skip_unknown=True,
            reuse_pixels=True,
        )
        self.encoders = EncoderPool(self.config.encoder, bitrate=self.config.bitrate,
                                    gop=self.config.gop, fps=self.config.fps)
        self.keyframe_next = True  # the first frame of a connection is always a keyframe
        self.subscription: Subscriber | None = None
        self.frames = 0
        self.close_reason: str | None = None  # why it ended, when not the client's normal exit

    # ----------------------------------------------------------- plumbing
    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def send(self, msg: protocol.Message, *, shaped: bool = False) -> None:
        parts = wire_bytes(msg, self.fault if shaped else None)
        with self.write_lock:
            n = net.send_parts(self.sock, parts, time.monotonic() + self.config.write_timeout)
        self.server.stats.add(bytes_out=n)

    def send_error(self, code: int, detail: str = "", *, always: bool = False) -> None:
        """ERROR CODE, on a generation that sends ERROR (H0–H2, serve); the others stay
        silent (`always`: a fault that answers with ERROR on purpose)."""
        if not (self.gen.errors or always):
            self.server.log(f"{self.peer}: no reply (generation {self.gen.name} sends no ERROR; "
                            f"would be {code}{': ' + detail if detail else ''})")
            return
        text = f"Error: {code}" + (f" {detail}" if detail else "")
        self.send(ErrorMessage(code, text[:255]))
        self.server.stats.add(errors_sent=1)

    def run(self) -> None:
        try:
            net.tune(self.sock)
            self.sock.settimeout(self.POLL)
            self.host_log.connected(self.slot, self.fd)
            if self.gen.framing == "recv":
                self._recv_loop()
            else:
                self._read_loop()
        except OSError as exc:
            if not self.closed.is_set():  # not the aftermath of our own close()
                self.close_reason = self._error_reason(exc)
        except Exception as exc:  # noqa: BLE001 - one client must never take the server down
            self.close_reason = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            scanout = 0
            if self.subscription is not None:
                scanout = self.subscription.scanout_id
                self.subscription.stop()
                self.server.unsubscribe(scanout, self.subscription)
            self.encoders.close()
            close_quietly(self.sock)
            self.closed.set()
            self.host_log.disconnected(self.slot, self.fd, scanout)
            self.server._forget(self)
            reason = self.close_reason or (
                "closed by serve (shutting down)" if self.server._stop.is_set() else "client disconnected")
            self.server.log(f"disconnect {self.peer}: {reason} ({self.frames} frames)")

    def _error_reason(self, exc: OSError) -> str | None:
        err = net.translate(exc, "connection")
        if err.kind != "reset":
            return str(err)
        # A client that exits with replies unread (a subscriber) resets the connection:
        # between two messages that is a normal exit.
        return "connection reset mid-message" if self.decoder.in_message else None

    def _idle_limit(self) -> float:
        """Seconds of silence before this client is dropped: the generation's read timeout
        (serve spares subscribers), or a drop-after fault's for a subscriber."""
        limit = self.gen.idle_limit(self.config.idle_timeout, self.subscription is not None)
        if self.subscription is not None and self.fault is not None and self.fault.kind == "drop-after":
            limit = min(limit, float(self.fault.value or 60))
        return limit

    def _idle(self, since: float) -> bool:
        """A poll passed without a byte; True when the client has been silent too long."""
        limit = self._idle_limit()
        if limit == math.inf or time.monotonic() - since < limit:
            return False
        self.close_reason = f"idle for {limit:g} s"
        if self.fault is not None and self.fault.kind == "drop-after" and self.subscription is not None:
            self.close_reason += " (--fault drop-after)"
        self.host_log.idle(limit)
        return True

    def _recv_loop(self) -> None:
        """H1: each recv() of at most 64 KiB is taken as one whole message. A message cut in
        two (any pixel payload) is a garbled message twice; leftover bytes are lost."""
        since = time.monotonic()
        while not self.closed.is_set() and not self.server._stop.is_set():
            try:
                chunk = self.sock.recv(H1_RECV)
            except TimeoutError:
                if self._idle(since):
                    return
                continue
            if not chunk:
                return
            since = time.monotonic()
            self.server.stats.add(bytes_in=len(chunk))
            decoder = protocol.Decoder(max_payload=self.config.max_payload, accept=GUEST_TO_HOST,
                                       skip_unknown=True)
            decoder.feed(chunk)
            try:
                msg = decoder.next_message()
            except RemoteProtocolError as exc:
                if exc.kind == "bad-magic" and exc.header is not None:
                    self.host_log.bad_magic(self.slot, exc.header.magic)
                self.send_error(ErrorCode.INVALID_MSG, exc.kind)  # H1 answers and keeps the connection
                continue
            if msg is NEED_DATA:
                self.server.log(f"{self.peer}: {len(chunk)} bytes are not a whole message (one recv() "
                                "is one message on this generation)")
                self.send_error(ErrorCode.INVALID_MSG, "short message")
                continue
            if self._handle(msg) is False:  # type: ignore[arg-type]
                return

    def _read_loop(self) -> None:
        since = time.monotonic()
        self._message_since: float | None = None  # first byte of the message still incomplete
        while not self.closed.is_set() and not self.server._stop.is_set():
            try:
                n = self.sock.recv_into(self.decoder.buffer())
            except TimeoutError:
                if self._idle(since):
                    return
                if self._message_overdue(completed=False):
                    return
                continue
            if n == 0:
                if self.decoder.in_message and not self.closed.is_set():
                    self.close_reason = "client closed mid-message"
                return
            since = time.monotonic()
            self.server.stats.add(bytes_in=n)
            self.decoder.commit(n)
            completed = False
            try:
                while (msg := self.decoder.next_message()) is not NEED_DATA:
                    completed = True
                    if self._handle(msg) is False:  # type: ignore[arg-type]
                        return
            except RemoteProtocolError as exc:
                self._reject_stream(exc)
                return
            if self._message_overdue(completed):
                return

    def _message_overdue(self, completed: bool) -> bool:
        """A message must arrive whole within --idle-timeout of its first byte: otherwise a
        peer trickling a byte a second (slowloris) resets the idle timer forever and holds
        its client slot. `completed`: a message was decoded since the last call. serve only:
        the real hosts' read timeout is per recv(), which a trickle resets."""
        limit = self.config.message_timeout
        if limit is None:
            return False
        if not self.decoder.in_message:
            self._message_since = None
        elif self._message_since is None or completed:
            self._message_since = time.monotonic()
        elif time.monotonic() - self._message_since >= limit:
            self.close_reason = (f"message still incomplete after {limit:g} s "
                                 "(a peer trickling bytes)")
            return True
        return False

    def _reject_stream(self, exc: RemoteProtocolError) -> None:
        """Broken framing: close without reading the rest — serve says why with ERROR -1
        first, the real hosts log it and close."""
        self.close_reason = f"protocol error ({exc.kind}): {exc}"
        if exc.kind == "bad-magic" and exc.header is not None:
            self.host_log.bad_magic(self.slot, exc.header.magic)
        with contextlib.suppress(OSError, TimeoutError):
            if self.gen.bad_magic == "error-close":
                self.send_error(ErrorCode.INVALID_MSG, exc.kind)
            self.sock.shutdown(socket.SHUT_WR)

    # ----------------------------------------------------------- messages
    def _handle(self, msg: protocol.Message) -> bool | None:
        fault = self.fault.kind if self.fault else None
        if fault == "hang":
            return None  # read everything, answer nothing
        if isinstance(msg, protocol.UnknownMessage) or type_of(msg) not in self.gen.understands:
            return self._on_unknown(msg)
        match msg:
            case FrameRequest():
                return self._on_frame_request(msg)
            case protocol.Ping():
                self.send(protocol.Pong(msg.session_id))
            case protocol.KeyframeRequest():
                self._keyframe_requested()
            case protocol.ConfigRequest():
                self._on_config(msg)
            case protocol.EnableScanout():
                self._on_enable(msg)
            case protocol.DisableScanout():
                self._on_disable(msg)
            case protocol.Subscribe():
                return self._on_subscribe(msg)
        return None

    def _on_unknown(self, msg: protocol.Message) -> None:
        """A type this generation does not know: H1 answers ERROR -1, the others skip it
        (its payload was read and dropped)."""
        msg_type = msg.msg_type if isinstance(msg, protocol.UnknownMessage) else int(type_of(msg))
        if self.host_log.quiet:
            self.server.log(f"{self.peer}: skipped unknown message type 0x{msg_type:02x}")
        else:
            self.host_log.unknown(msg_type)
        if self.gen.unknown == "error":
            self.send_error(ErrorCode.INVALID_MSG, f"unknown message type {msg_type}")

    def _on_enable(self, msg: protocol.EnableScanout) -> None:
        if self.gen.scanouts == "any":  # serve: any id, always success
            ok = True
        else:
            ok = self.server.enable(msg.scanout_id, msg.width, msg.height)
            self.host_log.enabled(msg.scanout_id, msg.width, msg.height, ok, self.config.max_outputs)
        self.send(protocol.ScanoutResponse(msg.scanout_id, ok, f"Virtual-{msg.scanout_id + 1}", msg.session_id))

    def _on_disable(self, msg: protocol.DisableScanout) -> None:
        if self.gen.scanouts == "enabled":
            self.server.disable(msg.scanout_id)
            self.host_log.disabled(msg.scanout_id)
        if protocol.MsgType.DISABLE_SCANOUT in self.gen.answers:
            # No real host answers DISABLE; serve does, so a client waiting for it does not
            # stall. See docs/serve.md.
            self.send(protocol.ScanoutResponse(
                msg.scanout_id, True, f"Virtual-{msg.scanout_id + 1}", msg.session_id))

    def _keyframe_requested(self) -> None:
        if self.gen.keyframes != "on-demand":
            return  # the real hosts ignore KEYFRAME_REQ
        if self.subscription is not None:
            producer = self.server.scanout(self.subscription.scanout_id)
            if producer is not None:
                producer.request_keyframe()
        else:
            self.keyframe_next = True

    def _on_config(self, msg: protocol.ConfigRequest) -> None:
        if not msg.bitrate:
            return
        if self.subscription is not None:
            self.host_log.config(self.slot, self.subscription.scanout_id, msg.bitrate)
            producer = self.server.scanout(self.subscription.scanout_id)
            if producer is not None:
                producer.set_bitrate(msg.bitrate)
        else:
            self.encoders.set_bitrate(msg.bitrate)
        self.server.log(f"{self.peer}: bitrate set to {msg.bitrate} bit/s")

    def _on_subscribe(self, msg: protocol.Subscribe) -> bool | None:
        """Always success, for any id. The real hosts mark the client subscribed before they
        write SUBSCRIBE_RESP (so a pushed frame can come first); serve answers first."""
        fault = self.fault.kind if self.fault else None
        if fault == "close":
            self.close_reason = "closed on purpose (--fault close)"
            return False
        if self.subscription is not None:
            self.subscription.stop()
            self.server.unsubscribe(self.subscription.scanout_id, self.subscription)
        reply = protocol.SubscribeResponse(msg.scanout_id, True)
        if self.gen.is_reference:
            self.send(reply)
        self.host_log.subscribed(self.slot, msg.scanout_id, double_init=fault == "double-init")
        self.subscription = Subscriber(self, msg.scanout_id)
        self.subscription.start()
        # no-frames: subscribed, and the frame path captures for it but never encodes a frame
        self.subscription.capture_only = fault == "no-frames"
        self.server.subscribe(msg.scanout_id, self.subscription, visible=fault != "double-init")
        if not self.gen.is_reference:
            self.send(reply)
        self.server.log(f"{self.peer}: subscribed to scanout {msg.scanout_id}")
        if fault == "close-after-subscribe":
            self.close_reason = "closed on purpose (--fault close-after-subscribe)"
            return False
        return None

    def _on_frame_request(self, req: FrameRequest) -> bool | None:
        fault = self.fault
        if fault is not None:
            if fault.kind == "ignore-frame-request":
                return None
            if fault.kind == "close":
                self.close_reason = "closed on purpose (--fault close)"
                return False
            if fault.kind == "slow":
                time.sleep(float(fault.value or 0) / 1000)
            if fault.kind == "error":
                self.send_error(int(fault.value or 0), always=True)
                return None
        try:
            response = self._encode_request(req)
        except _ReplyError as exc:
            self.server.log(f"{self.peer}: frame rejected: {exc.detail} (ERROR {exc.code})")
            self.send_error(exc.code, exc.detail)
            return None
        self.send(response, shaped=True)
        self.frames += 1
        self.server.stats.add(frames_out=1)
        return None

    def _encode_request(self, req: FrameRequest) -> FrameResponse:
        width, height = req.width, req.height
        if not self.gen.pixels:  # H1 predates PIXEL_DATA: it encodes what resource_id names
            req = dataclasses.replace(req, pixels=None)
        if req.pixels is None:
            if req.resource_id != 0:
                # We cannot read guest GPU resources; the H1 host answered the same.
                raise _ReplyError(ErrorCode.RESOURCE_NOT_FOUND, f"resource {req.resource_id} not found")
            # Like H2/H3, which encode their own DisplaySurface at its own size: the console
            # is --size, whatever the request claims (56 bytes must not buy an 8K encode).
            width, height = self.config.size
        if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
            raise _ReplyError(ErrorCode.INVALID_MSG, f"frame size {width}x{height} out of range")
        if req.pixels is None:
            # Like H2/H3: no pixels and resource 0 → encode the VM "console".
            pixels, layout = test_card(width, height, PixelFormat.NV12)
        else:
            try:
                fmt = PixelFormat(req.format)
                if fmt == PixelFormat.UNKNOWN:
                    raise ValueError
            except ValueError:
                raise _ReplyError(ErrorCode.INVALID_MSG, f"unknown pixel format {protocol.format_name(req.format)}") from None
            try:
                layout = protocol.frame_layout(fmt, width, height, req.stride or None)
            except ValueError as exc:
                raise _ReplyError(ErrorCode.INVALID_MSG, str(exc)) from None
            pixels = req.pixels
            if len(pixels) < layout.size:
                raise _ReplyError(
                    ErrorCode.INVALID_MSG,
                    f"{len(pixels)} pixel bytes, {fmt.name} {width}x{height} stride {layout.stride} needs {layout.size}",
                )
        encoder = self._encoder_for(width, height)
        force = req.force_keyframe or self.keyframe_next
        try:
            encoded = encoder.encode(pixels, layout, force_keyframe=force, pts=req.pts)
        except (EncodeFailed, ValueError) as exc:
            raise _ReplyError(ErrorCode.ENCODE_FAILED, f"encode failed: {exc}") from None
        self.keyframe_next = False
        au = self.server.shaper(encoded.data)
        return FrameResponse((au,), pts=req.pts, dts=req.pts, is_keyframe=encoded.is_keyframe, session_id=1)

    def _encoder_for(self, width: int, height: int) -> Encoder:
        opened = self.encoders.opened
        try:
            encoder = self.encoders.get(width, height)
        except EncoderUnavailable as exc:
            raise _ReplyError(ErrorCode.INTERNAL, f"encoder unavailable: {exc}") from None
        if self.encoders.opened != opened:
            self.keyframe_next = True  # a new session starts with an IDR
        return encoder


class _ReplyError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = int(code)
        self.detail = detail


def close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
