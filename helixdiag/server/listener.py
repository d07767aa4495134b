"""The reference host's listeners and lifecycle: one acceptor thread for every TCP and Unix
listener, a session thread per client, a producer per active scanout."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

from helixdiag import net, protocol
from helixdiag.encoders import EncoderUnavailable, open_encoder
from helixdiag.errors import ConfigError
from helixdiag.observe.stale import OwnedSocket, listen_unix
from helixdiag.protocol import (
    ErrorCode,
    ErrorMessage,
)
from helixdiag.server.scanout import ScanoutProducer, ScanoutState, Subscriber
from helixdiag.server.session import ClientSession, close_quietly
from helixdiag.server.settings import MAX_DIMENSION, Log, ServerConfig, Stats
from helixdiag.server.shaping import StreamShaper


class FrameServer:
    def __init__(self, config: ServerConfig, log: Log = lambda line: None) -> None:
        self.config = config
        self.log = log
        self.stats = Stats()
        self.endpoints: list[net.Endpoint] = []
        self.encoder_note = ""
        self._stop = threading.Event()
        self._listeners: list[socket.socket] = []
        self._unix_owned: list[OwnedSocket] = []
        self._sessions: set[ClientSession] = set()
        self._sessions_lock = threading.Lock()
        self._scanouts: dict[int, ScanoutProducer] = {}
        self._states: dict[int, ScanoutState] = {}  # per scanout id: enabled, encoder, frame count
        self._scanouts_lock = threading.Lock()
        self._slot_free = threading.Condition(self._sessions_lock)
        self._entries = 0  # [FRAME_READY_ENTRY] count, as the host numbers them
        self._acceptor: threading.Thread | None = None
        self.shaper = StreamShaper(config.fault, config.generation)

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
        if self.config.generation.banner:
            self.log(self.config.generation.banner)
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
        with self._sessions_lock:
            self._slot_free.notify_all()
        if self._acceptor is not None:
            self._acceptor.join(timeout=2)
        for s in sessions:
            s.join(timeout=2)
        for p in producers:
            p.join(timeout=2)
        with self._scanouts_lock:
            states = list(self._states.values())
        for state in states:
            state.close()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def _close_listeners(self) -> None:
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
        self._listeners.clear()
        for owned in self._unix_owned:
            owned.remove()
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
        sock.listen(self._backlog)
        self._listeners.append(sock)
        bound_host, bound_port = sock.getsockname()[:2]
        self.endpoints.append(net.Endpoint("tcp", host=bound_host, port=bound_port))

    def _listen_unix(self, path: str) -> None:
        sock, owned = listen_unix(path, self._backlog, self.log)
        self._unix_owned.append(owned)
        self._listeners.append(sock)
        self.endpoints.append(net.Endpoint("unix", path=path))

    @property
    def _backlog(self) -> int:
        return max(self.config.max_clients or 1, 1)

    def _accept_loop(self, sel: selectors.BaseSelector) -> None:
        waits = self.config.generation.when_full == "wait"
        try:
            while not self._stop.is_set():
                if waits:
                    # H1/H2 serve one client at a time: the next one waits in the backlog
                    # until the current one leaves.
                    with self._sessions_lock:
                        if len(self._sessions) >= self.config.max_clients:
                            self._slot_free.wait(0.2)
                            continue
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
                taken = {s.slot for s in self._sessions}
                slot = next(i for i in range(len(taken) + 1) if i not in taken)
                session = ClientSession(self, conn, peer, slot)
                self._sessions.add(session)
        if full:
            self.stats.add(clients_rejected=1)
            if self.config.generation.when_full == "error":
                self.log(f"reject {peer}: no client slots ({self.config.max_clients} in use)")
                msg = ErrorMessage(ErrorCode.INTERNAL, f"Error: {ErrorCode.INTERNAL} no client slots available")
                with contextlib.suppress(OSError):
                    conn.settimeout(1.0)
                    net.send_parts(conn, protocol.encode_parts(msg), time.monotonic() + 1.0)
            else:  # the real host closes the 17th without a word
                self.log(f"[HELIX] No client slots available, rejecting ({peer})")
            close_quietly(conn)
            return
        self.stats.add(clients_now=1, clients_total=1)
        self.log(f"connect {peer}")
        session.start()

    def _forget(self, session: ClientSession) -> None:
        with self._sessions_lock:
            self._sessions.discard(session)
            self._slot_free.notify_all()
        self.stats.add(clients_now=-1)

    # ------------------------------------------------------------------ scanouts
    def _state(self, scanout_id: int) -> ScanoutState:
        """Under _scanouts_lock. serve keeps a scanout only while someone watches it; the
        real hosts keep the 16 they have for good (encoder and frame count included)."""
        state = self._states.get(scanout_id)
        if state is None:
            state = ScanoutState(scanout_id, self.config.size)
            if self.config.generation.scanouts == "enabled" and 0 < scanout_id < self.config.max_outputs:
                self._states[scanout_id] = state  # the others can never be enabled: nothing to keep
        return state

    def subscribe(self, scanout_id: int, sub: Subscriber, *, visible: bool = True) -> None:
        with self._scanouts_lock:
            producer = self._scanouts.get(scanout_id)
            if producer is None or not producer.alive:
                producer = ScanoutProducer(self, self._state(scanout_id))
                self._scanouts[scanout_id] = producer
                producer.add(sub, visible=visible)
                producer.start()
                return
            producer.add(sub, visible=visible)

    def unsubscribe(self, scanout_id: int, sub: Subscriber) -> None:
        with self._scanouts_lock:
            producer = self._scanouts.get(scanout_id)
            if producer is not None and producer.remove(sub) == 0:
                producer.stop()
                del self._scanouts[scanout_id]

    def scanout(self, scanout_id: int) -> ScanoutProducer | None:
        with self._scanouts_lock:
            return self._scanouts.get(scanout_id)

    def enable(self, scanout_id: int, width: int, height: int) -> bool:
        """ENABLE_SCANOUT, as QEMU does it: ids 1..max_outputs-1 only; the guest then draws
        on it at that size (0x0: --size). Enabling an enabled scanout succeeds again."""
        if not 0 < scanout_id < self.config.max_outputs:
            return False
        with self._scanouts_lock:
            state = self._state(scanout_id)
            state.enabled = True
            if 0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION:
                state.size = (width, height)
        return True

    def disable(self, scanout_id: int) -> None:
        """DISABLE_SCANOUT: nothing is drawn there any more; encoder and subscribers stay."""
        with self._scanouts_lock:
            state = self._states.get(scanout_id)
            if state is not None:
                state.enabled = False

    def enabled(self, scanout_id: int) -> bool:
        with self._scanouts_lock:
            state = self._states.get(scanout_id)
            return state is not None and state.enabled

    def frame_ready_entry(self) -> int:
        with self._scanouts_lock:
            self._entries += 1
            return self._entries


def _peer_name(conn: socket.socket, addr: object) -> str:
    if conn.family == socket.AF_UNIX:
        return f"unix:{conn.getsockname() or '?'}#{conn.fileno()}"
    if isinstance(addr, tuple):
        return f"{addr[0]}:{addr[1]}"
    return str(addr)
