"""One client of the reference host: its messages read and answered in order, on its own
thread, so a dead or slow peer only ever blocks itself."""

from __future__ import annotations

import contextlib
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
from helixdiag.server.scanout import Subscriber
from helixdiag.server.settings import MAX_DIMENSION
from helixdiag.server.shaping import wire_bytes

if TYPE_CHECKING:
    from helixdiag.server.listener import FrameServer


class ClientSession(threading.Thread):
    """One connection: reads messages, answers them, and may subscribe to a scanout."""

    POLL = 0.25  # read wake-up interval, so stop() and idle timeouts are noticed

    def __init__(self, server: FrameServer, sock: socket.socket, peer: str) -> None:
        super().__init__(name=f"hxfr-client {peer}", daemon=True)
        self.server = server
        self.sock = sock
        self.peer = peer
        self.config = server.config
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
            n = net.send_parts(self.sock, parts, time.monotonic() + self.config.idle_timeout)
        self.server.stats.add(bytes_out=n)

    def send_error(self, code: int, detail: str = "") -> None:
        text = f"Error: {code}" + (f" {detail}" if detail else "")
        self.send(ErrorMessage(code, text[:255]))
        self.server.stats.add(errors_sent=1)

    def run(self) -> None:
        try:
            net.tune(self.sock)
            self.sock.settimeout(self.POLL)
            self._read_loop()
        except OSError as exc:
            if not self.closed.is_set():  # not the aftermath of our own close()
                self.close_reason = self._error_reason(exc)
        except Exception as exc:  # noqa: BLE001 - one client must never take the server down
            self.close_reason = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            if self.subscription is not None:
                self.subscription.stop()
                self.server.unsubscribe(self.subscription.scanout_id, self.subscription)
            self.encoders.close()
            close_quietly(self.sock)
            self.closed.set()
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

    def _read_loop(self) -> None:
        idle = 0.0
        self._message_since: float | None = None  # first byte of the message still incomplete
        while not self.closed.is_set() and not self.server._stop.is_set():
            try:
                n = self.sock.recv_into(self.decoder.buffer())
            except TimeoutError:
                # Subscribers legitimately send nothing; only idle non-subscribers time out.
                idle += self.POLL
                if self.subscription is None and idle >= self.config.idle_timeout:
                    self.close_reason = f"idle for {self.config.idle_timeout:g} s"
                    return
                if self._message_overdue(completed=False):
                    return
                continue
            if n == 0:
                if self.decoder.in_message and not self.closed.is_set():
                    self.close_reason = "client closed mid-message"
                return
            idle = 0.0
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
        its client slot. `completed`: a message was decoded since the last call."""
        if not self.decoder.in_message:
            self._message_since = None
        elif self._message_since is None or completed:
            self._message_since = time.monotonic()
        elif time.monotonic() - self._message_since >= self.config.idle_timeout:
            self.close_reason = (f"message still incomplete after {self.config.idle_timeout:g} s "
                                 "(a peer trickling bytes)")
            return True
        return False

    def _reject_stream(self, exc: RemoteProtocolError) -> None:
        """Broken framing: say why with ERROR -1, then close without reading the rest."""
        self.close_reason = f"protocol error ({exc.kind}): {exc}"
        with contextlib.suppress(OSError, TimeoutError):
            self.send_error(ErrorCode.INVALID_MSG, exc.kind)
            self.sock.shutdown(socket.SHUT_WR)

    # ----------------------------------------------------------- messages
    def _handle(self, msg: protocol.Message) -> bool | None:
        fault = self.fault.kind if self.fault else None
        if fault == "hang":
            return None  # read everything, answer nothing
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
                self.send(protocol.ScanoutResponse(
                    msg.scanout_id, True, f"Virtual-{msg.scanout_id + 1}", msg.session_id))
            case protocol.DisableScanout():
                # The real host never answers DISABLE (PROTOCOL.md §10.8); we do, so a client
                # waiting for it does not stall. See docs/serve.md.
                self.send(protocol.ScanoutResponse(
                    msg.scanout_id, True, f"Virtual-{msg.scanout_id + 1}", msg.session_id))
            case protocol.Subscribe():
                return self._on_subscribe(msg)
            case protocol.UnknownMessage():
                self.server.log(f"{self.peer}: skipped unknown message type 0x{msg.msg_type:02x}")
        return None

    def _keyframe_requested(self) -> None:
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
            producer = self.server.scanout(self.subscription.scanout_id)
            if producer is not None:
                producer.set_bitrate(msg.bitrate)
        else:
            self.encoders.set_bitrate(msg.bitrate)
        self.server.log(f"{self.peer}: bitrate set to {msg.bitrate} bit/s")

    def _on_subscribe(self, msg: protocol.Subscribe) -> bool | None:
        if self.fault is not None and self.fault.kind == "close":
            self.close_reason = "closed on purpose (--fault close)"
            return False
        if self.subscription is not None:
            self.subscription.stop()
            self.server.unsubscribe(self.subscription.scanout_id, self.subscription)
        self.send(protocol.SubscribeResponse(msg.scanout_id, True))
        self.subscription = Subscriber(self, msg.scanout_id)
        self.subscription.start()
        self.server.subscribe(msg.scanout_id, self.subscription)
        self.server.log(f"{self.peer}: subscribed to scanout {msg.scanout_id}")
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
                time.sleep((fault.value or 0) / 1000)
            if fault.kind == "error":
                self.send_error(fault.value or 0)
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
        au = self.server._shaper(encoded.data)
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
