"""The reference host: a stand-in for QEMU's helix-frame-export (PROTOCOL.md §13).

Request mode (vsockenc): every FRAME_REQUEST gets exactly one FRAME_RESPONSE or ERROR, in
order, never silence and never an unsolicited message. Scanout mode: SUBSCRIBE, then pushed
FRAME_RESPONSEs of a synthetic moving desktop to every subscriber of that scanout, with
frames dropped (never queued without bound) for a subscriber that cannot keep up.

Threads, like the H3 host: one acceptor for all listeners, one thread per client (so a
dead or slow peer only ever blocks itself), one producer per active scanout and one
writer per subscriber.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from helixdiag import h264, net, protocol
from helixdiag.encoders import EncodeFailed, Encoder, EncoderPool, EncoderUnavailable, open_encoder
from helixdiag.errors import ConfigError
from helixdiag.faults import Fault
from helixdiag.frames import SyntheticSource, test_card
from helixdiag.protocol import (
    DEFAULT_MAX_PAYLOAD,
    GUEST_TO_HOST,
    NEED_DATA,
    ErrorCode,
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    PixelFormat,
    RemoteProtocolError,
)
from helixdiag.unixsock import PathState, classify

MAX_DIMENSION = 8192  # vsockenc's caps allow 1..8192 per side
SCANOUT_FRAME_NS = 16_666_667  # the host fabricates pts = frame_count·16 666 667


@dataclass
class ServerConfig:
    tcp: list[tuple[str, int]] = field(default_factory=list)
    unix: list[str] = field(default_factory=list)
    encoder: str = "auto"
    bitrate: int = 8_000_000
    gop: int = 120
    fps: int = 60
    size: tuple[int, int] = (1920, 1080)
    max_clients: int = 16
    idle_timeout: float = 30.0
    max_payload: int = DEFAULT_MAX_PAYLOAD
    fault: Fault | None = None


class Stats:
    """Counters shared by all threads (cheap lock: a few increments per frame)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.clients_now = 0
        self.clients_total = 0
        self.clients_rejected = 0
        self.frames_out = 0
        self.frames_dropped = 0
        self.errors_sent = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._window: list[tuple[float, int]] = []

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def fps(self) -> float:
        """Frames/s over the last few seconds (sampled by whoever displays it)."""
        now = time.monotonic()
        with self._lock:
            self._window.append((now, self.frames_out))
            self._window = [(t, n) for t, n in self._window if now - t <= 3.0]
            (t0, n0), (t1, n1) = self._window[0], self._window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def snapshot(self) -> dict[str, float | int]:
        with self._lock:
            return {
                "uptime_s": round(time.monotonic() - self.started, 3),
                "clients_now": self.clients_now,
                "clients_total": self.clients_total,
                "clients_rejected": self.clients_rejected,
                "frames_out": self.frames_out,
                "frames_dropped": self.frames_dropped,
                "errors_sent": self.errors_sent,
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
            }


Log = Callable[[str], None]


class StreamShaper:
    """Applies the H.264-level faults (no-sps, avcc) to an access unit."""

    def __init__(self, fault: Fault | None) -> None:
        self.fault = fault.kind if fault else None

    def __call__(self, au: bytes) -> bytes:
        if self.fault == "no-sps":
            return h264.strip_parameter_sets(au)
        if self.fault == "avcc":
            return h264.annexb_to_avcc(au)
        return au


def wire_bytes(msg: protocol.Message, fault: Fault | None) -> list[protocol.Buffer]:
    parts = protocol.encode_parts(msg)
    if fault is not None and fault.kind == "bad-magic":
        parts[0] = b"HXFX" + bytes(parts[0][4:])
    return parts


class FrameServer:
    def __init__(self, config: ServerConfig, log: Log = lambda line: None) -> None:
        self.config = config
        self.log = log
        self.stats = Stats()
        self.endpoints: list[net.Endpoint] = []
        self.encoder_note = ""
        self._stop = threading.Event()
        self._listeners: list[socket.socket] = []
        self._unix_owned: list[tuple[str, int, int]] = []  # path, st_dev, st_ino
        self._sessions: set[ClientSession] = set()
        self._sessions_lock = threading.Lock()
        self._scanouts: dict[int, ScanoutProducer] = {}
        self._scanouts_lock = threading.Lock()
        self._acceptor: threading.Thread | None = None
        self._shaper = StreamShaper(config.fault)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> list[net.Endpoint]:
        if not self.config.tcp and not self.config.unix:
            raise ConfigError("serve needs at least one listener: --tcp HOST:PORT or --unix PATH")
        self._check_encoder()
        try:
            for host, port in self.config.tcp:
                self._listen_tcp(host, port)
            for path in self.config.unix:
                self._listen_unix(path)
        except BaseException:
            self._close_listeners()
            raise
        # Set up here, not in the thread: stop() may close the listeners before it runs.
        sel = selectors.DefaultSelector()
        for sock in self._listeners:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        self._acceptor = threading.Thread(target=self._accept_loop, args=(sel,), name="hxfr-accept",
                                          daemon=True)
        self._acceptor.start()
        return self.endpoints

    def _check_encoder(self) -> None:
        """Open the encoder once up front so `serve` says which it uses, or fails early."""
        width, height = self.config.size
        try:
            enc, self.encoder_note = open_encoder(
                self.config.encoder, width=width, height=height,
                bitrate=self.config.bitrate, gop=self.config.gop, fps=self.config.fps,
            )
        except EncoderUnavailable as exc:
            raise ConfigError(f"encoder {self.config.encoder!r} unavailable: {exc}") from None
        enc.close()

    def stop(self) -> None:
        """Stop accepting, drop every client, remove the Unix sockets we created."""
        self._stop.set()
        self._close_listeners()
        with self._sessions_lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.close()
        with self._scanouts_lock:
            producers = list(self._scanouts.values())
        for p in producers:
            p.stop()
        if self._acceptor is not None:
            self._acceptor.join(timeout=2)
        for s in sessions:
            s.join(timeout=2)

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def _close_listeners(self) -> None:
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
        self._listeners.clear()
        for path, dev, ino in self._unix_owned:
            # Remove only the socket we bound: a newer server may own the path by now.
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.unlink(path)
        self._unix_owned.clear()

    # ------------------------------------------------------------------ listeners
    def _listen_tcp(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            err = net.translate(exc, f"bind tcp {host}:{port}")
            raise ConfigError(str(err), hint="is another server (QEMU, socat, serve) on that port?") from None
        sock.listen(self.config.max_clients)
        self._listeners.append(sock)
        bound_host, bound_port = sock.getsockname()[:2]
        self.endpoints.append(net.Endpoint("tcp", host=bound_host, port=bound_port))

    def _listen_unix(self, path: str) -> None:
        info = classify(path)
        if info.state == PathState.STALE:
            self.log(f"taking over stale socket {path} (connect refused: nobody listens)")
            os.unlink(path)
        elif info.state != PathState.MISSING:
            reasons = {
                PathState.LIVE: "a live socket: another server is listening there",
                PathState.NOT_A_SOCKET: f"not a socket ({info.file_type}); refusing to touch it",
                PathState.PERMISSION: "permission denied",
                PathState.TOO_LONG: info.detail,
            }
            raise ConfigError(f"cannot listen on {path}: {reasons.get(info.state, info.detail)}")
        try:
            net.check_unix_path_length(path)
        except net.NetError as exc:
            raise ConfigError(str(exc)) from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)  # owner-only from the moment it exists
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise ConfigError(str(net.translate(exc, f"bind {path}"))) from None
        finally:
            os.umask(old_umask)
        sock.listen(self.config.max_clients)
        st = os.lstat(path)
        self._unix_owned.append((path, st.st_dev, st.st_ino))
        self._listeners.append(sock)
        self.endpoints.append(net.Endpoint("unix", path=path))

    def _accept_loop(self, sel: selectors.BaseSelector) -> None:
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    try:
                        conn, addr = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    self._admit(conn, addr)
        finally:
            sel.close()

    def _admit(self, conn: socket.socket, addr: object) -> None:
        conn.setblocking(True)
        peer = _peer_name(conn, addr)
        with self._sessions_lock:
            full = len(self._sessions) >= self.config.max_clients
            if not full:
                session = ClientSession(self, conn, peer)
                self._sessions.add(session)
        if full:
            self.stats.add(clients_rejected=1)
            self.log(f"reject {peer}: no client slots ({self.config.max_clients} in use)")
            msg = ErrorMessage(ErrorCode.INTERNAL, f"Error: {ErrorCode.INTERNAL} no client slots available")
            with contextlib.suppress(OSError):
                conn.settimeout(1.0)
                net.send_parts(conn, protocol.encode_parts(msg), time.monotonic() + 1.0)
            _close_quietly(conn)
            return
        self.stats.add(clients_now=1, clients_total=1)
        self.log(f"connect {peer}")
        session.start()

    def _forget(self, session: ClientSession) -> None:
        with self._sessions_lock:
            self._sessions.discard(session)
        self.stats.add(clients_now=-1)

    # ------------------------------------------------------------------ scanouts
    def subscribe(self, scanout_id: int, sub: Subscriber) -> None:
        with self._scanouts_lock:
            producer = self._scanouts.get(scanout_id)
            if producer is None or not producer.alive:
                producer = ScanoutProducer(self, scanout_id)
                self._scanouts[scanout_id] = producer
                producer.add(sub)
                producer.start()
                return
            producer.add(sub)

    def unsubscribe(self, scanout_id: int, sub: Subscriber) -> None:
        with self._scanouts_lock:
            producer = self._scanouts.get(scanout_id)
            if producer is not None and producer.remove(sub) == 0:
                producer.stop()
                del self._scanouts[scanout_id]

    def scanout(self, scanout_id: int) -> ScanoutProducer | None:
        with self._scanouts_lock:
            return self._scanouts.get(scanout_id)


def _peer_name(conn: socket.socket, addr: object) -> str:
    if conn.family == socket.AF_UNIX:
        return f"unix:{conn.getsockname() or '?'}#{conn.fileno()}"
    if isinstance(addr, tuple):
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


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
            _close_quietly(self.sock)
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


class Subscriber(threading.Thread):
    """Writes pushed frames to one client. A one-slot mailbox: a frame that arrives while
    the previous one is still being written replaces it (a drop), and after a drop the
    subscriber waits for the next keyframe so its decoder never sees a broken reference."""

    def __init__(self, session: ClientSession, scanout_id: int) -> None:
        super().__init__(name=f"hxfr-push {session.peer}", daemon=True)
        self.session = session
        self.scanout_id = scanout_id
        self._cond = threading.Condition()
        self._slot: tuple[list[protocol.Buffer], bool] | None = None
        self._stopped = False
        self.need_keyframe = True
        self.sent = 0
        self.dropped = 0

    def offer(self, parts: list[protocol.Buffer], is_keyframe: bool) -> bool:
        """Called by the producer; never blocks. Returns False when the frame was dropped."""
        with self._cond:
            dropped = self._slot is not None
            if dropped:
                self.dropped += 1
                self.need_keyframe = True
            if self.need_keyframe and not is_keyframe:
                self._slot = None
                return False
            self._slot = (parts, is_keyframe)
            self.need_keyframe = False
            self._cond.notify()
            return not dropped

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while self._slot is None and not self._stopped:
                    self._cond.wait(1.0)  # bounded, though stop() and offer() notify
                if self._stopped:
                    return
                parts, _ = self._slot  # type: ignore[misc]
                self._slot = None
            try:
                with self.session.write_lock:
                    n = net.send_parts(self.session.sock, parts,
                                   time.monotonic() + self.session.config.idle_timeout)
            except (OSError, TimeoutError) as exc:
                if net.translate(exc, "push").kind not in ("reset", "closed"):  # else: the client left
                    self.session.close_reason = f"push failed: {exc}"
                self.session.close()
                return
            self.sent += 1
            self.session.frames += 1
            self.session.server.stats.add(frames_out=1, bytes_out=n)


class ScanoutProducer(threading.Thread):
    """Renders and encodes one scanout's synthetic desktop at --fps, once for all
    subscribers, and offers each frame to every subscriber without waiting for any."""

    def __init__(self, server: FrameServer, scanout_id: int) -> None:
        super().__init__(name=f"hxfr-scanout {scanout_id}", daemon=True)
        self.server = server
        self.scanout_id = scanout_id
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._keyframe = threading.Event()
        self._bitrate: int | None = None
        self._last_drop_key = 0.0
        self.alive = True

    def add(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.append(sub)
        self._keyframe.set()  # a new subscriber needs an IDR to start decoding

    def remove(self, sub: Subscriber) -> int:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            return len(self._subs)

    def request_keyframe(self) -> None:
        self._keyframe.set()

    def set_bitrate(self, bps: int) -> None:
        self._bitrate = bps

    def _after_drop(self) -> None:
        # A subscriber that dropped needs an IDR to recover, but a stalled one drops every
        # frame: at most one forced keyframe a second, so the others' bitrate stays sane.
        now = time.monotonic()
        if now - self._last_drop_key >= 1.0:
            self._last_drop_key = now
            self._keyframe.set()

    def stop(self) -> None:
        self.alive = False
        self._halt.set()

    def run(self) -> None:
        cfg = self.server.config
        width, height = cfg.size
        source = SyntheticSource(width, height, PixelFormat.NV12)
        try:
            encoder, _ = open_encoder(cfg.encoder, width=width, height=height,
                                      bitrate=cfg.bitrate, gop=cfg.gop, fps=cfg.fps)
        except EncoderUnavailable as exc:
            self.server.log(f"scanout {self.scanout_id}: encoder unavailable: {exc}")
            self.alive = False
            return
        period = 1.0 / max(cfg.fps, 1)
        next_due = time.monotonic()
        n = 0
        try:
            while not self._halt.is_set():
                if self._bitrate is not None:
                    encoder.set_bitrate(self._bitrate)
                    self._bitrate = None
                force = self._keyframe.is_set()
                self._keyframe.clear()
                encoded = encoder.encode(source.frame(n), source.layout, force_keyframe=force,
                                         pts=n * SCANOUT_FRAME_NS)
                au = self.server._shaper(encoded.data)
                msg = FrameResponse((au,), pts=n * SCANOUT_FRAME_NS, dts=n * SCANOUT_FRAME_NS,
                                    is_keyframe=encoded.is_keyframe,
                                    session_id=self.scanout_id & 0xFFFF)
                parts = wire_bytes(msg, self.server.config.fault)
                with self._lock:
                    subs = list(self._subs)
                for sub in subs:
                    if not sub.offer(parts, encoded.is_keyframe):
                        self.server.stats.add(frames_dropped=1)
                        self._after_drop()
                n += 1
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)
                elif delay < -period:
                    # Over a frame behind: skip ahead rather than burst to catch up.
                    next_due = time.monotonic()
                # Less than a frame late (scheduling jitter): go straight on and keep the
                # clock, so a hiccup does not lower the rate for good (60 fps stays 60).
        except EncodeFailed as exc:
            self.server.log(f"scanout {self.scanout_id}: encode failed: {exc}")
        finally:
            encoder.close()
            self.alive = False
