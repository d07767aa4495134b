"""The reference host's listeners and lifecycle: one acceptor thread for every TCP and Unix
listener, a session thread per client, a producer per active scanout."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time

from helixdiag import net, protocol
from helixdiag.encoders import EncoderUnavailable, open_encoder
from helixdiag.errors import ConfigError
from helixdiag.observe.stale import removal_verdict
from helixdiag.protocol import (
    ErrorCode,
    ErrorMessage,
)
from helixdiag.server.scanout import ScanoutProducer, Subscriber
from helixdiag.server.session import ClientSession, close_quietly
from helixdiag.server.settings import Log, ServerConfig, Stats
from helixdiag.server.shaping import StreamShaper
from helixdiag.unixsock import PathState


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
        verdict = removal_verdict(path)
        info = verdict.info
        if verdict.removable:
            self.log(f"taking over stale socket {path} ({verdict.rule})")
            os.unlink(path)
        elif info.state == PathState.STALE:
            raise ConfigError(f"cannot listen on {path}: {verdict.rule}")
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
            close_quietly(conn)
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
