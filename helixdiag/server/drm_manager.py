"""A stand-in for helix-drm-manager, the guest daemon that leases scanouts to desktops.

The protocol on its Unix socket, one request per connection, little-endian and packed:

    request  (9 bytes)   u8 cmd, u32 width, u32 height
    reply   (69 bytes)   u8 status, u32 scanout_id, char connector[64] (NUL-padded)

`cmd` 1 leases a scanout: the manager takes the first free id of its pool (1..outputs-1,
at most 15; a released id goes to the end), sends ENABLE_SCANOUT to the host it points at,
waits `settle` (500 ms), creates the lease and answers status 0 with the lease fd in an
SCM_RIGHTS message. There is no DRM here: the fd is a memfd (a pipe where there is none)
describing the lease. The connection then stays open as the lease's liveness: when it
closes — or, by default, when any byte arrives — the lease is released, DISABLE_SCANOUT goes
to the host and the id returns to the pool once the host's (missing) answer has been waited
for. `cmd` 2 releases the id given in `width`, whoever holds it, with no reply. Any other
`cmd` is answered status 1 "unknown command" (a harmless liveness probe). Errors are status
1 with the text in `connector`, cut to 64 bytes.

It logs like the real daemon (`time=… level=… msg="…" key=value`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from helixdiag import protocol
from helixdiag.errors import ConfigError
from helixdiag.faults import Fault
from helixdiag.observe.stale import OwnedSocket, listen_unix
from helixdiag.protocol.drm import CMD_LEASE, CMD_RELEASE, REQUEST, pack_reply, unpack_request
from helixdiag.timefmt import iso_time

DEFAULT_SIZE = (1920, 1080)
MAX_POOL = 15  # scanout ids 1..15; 0 is the VM's console
_SCANOUT_RESP_PAYLOAD = protocol.FIXED_PAYLOAD[protocol.MsgType.SCANOUT_RESP]


@dataclass
class ManagerConfig:
    socket: str
    qemu: tuple[str, int]  # where ENABLE/DISABLE_SCANOUT go (QEMU_ADDR)
    outputs: int = 16  # DRM connectors = QEMU's max_outputs; the pool is 1..min(outputs-1, 15)
    settle: float = 0.5  # the sleep between ENABLE and the lease
    enable_timeout: float = 10.0  # the deadline of the whole ENABLE connection
    disable_wait: float = 10.0  # how long the DISABLE answer no host sends is waited for (inferred)
    release_on_byte: bool = True  # any byte on a lease connection releases it, not only EOF (inferred)
    fault: Fault | None = None


class ManagerError(Exception):
    """One step of a lease failed; the text is what the real daemon would say."""


class DrmManager:
    def __init__(self, config: ManagerConfig, log: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self._log = log
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.capacity = max(0, min(config.outputs - 1, MAX_POOL))
        self.pool: list[int] = list(range(1, self.capacity + 1))
        self.leases: dict[int, socket.socket] = {}  # scanout id → the lease holder's connection
        self.released: list[int] = []  # ids released, in order (tests and the self-test read it)
        self._listener: socket.socket | None = None
        self._owned: OwnedSocket | None = None
        self._threads: list[threading.Thread] = []
        self._refusing: socket.socket | None = None  # holds a port that refuses (fault wrong-port)
        self.qemu = config.qemu

    # ------------------------------------------------------------------ logging
    def log(self, level: str, msg: str, **fields: object) -> None:
        parts = [f"time={iso_time(time.time())}", f"level={level}", f'msg="{msg}"']
        for key, value in fields.items():
            text = str(value)
            parts.append(f'{key}="{text}"' if (" " in text or not text) else f"{key}={text}")
        self._log(" ".join(parts))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Listen on the socket; raises ConfigError where the real daemon exits 1."""
        cfg, fault = self.config, self.config.fault.kind if self.config.fault else None
        if fault == "wrong-port":
            self._refusing = socket.socket()
            self._refusing.bind(("127.0.0.1", 0))  # bound, never listening: connect is refused
            self.qemu = ("127.0.0.1", self._refusing.getsockname()[1])
        self.log("INFO", "starting helix-drm-manager", drm_device="/dev/dri/card0", socket=cfg.socket,
                 qemu_addr=f"{self.qemu[0]}:{self.qemu[1]}")
        if fault == "no-master":
            err = "open DRM: DRM_IOCTL_SET_MASTER: device or resource busy"
            self.log("ERROR", "failed to create DRM manager", err=err)
            self.close()
            raise ConfigError(f"drm-manager: failed to create DRM manager: {err}")
        self.log("INFO", "DRM resources enumerated", crtcs=cfg.outputs, connectors=cfg.outputs)
        if fault == "pool-empty":  # every id already leased (by desktops this stand-in does not see)
            self.pool = []
        self._listen()
        self.log("INFO", "listening for lease requests", socket=cfg.socket, available_scanouts=len(self.pool))
        self._spawn(self._accept_loop, "drm-accept")

    def _listen(self) -> None:
        path = self.config.socket
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        try:
            sock, self._owned = listen_unix(path, 16)
        except ConfigError as exc:
            self.log("ERROR", "DRM manager error", err=f"listen {path}: {exc.message}")
            raise ConfigError(f"drm-manager: {exc.message}") from None
        os.chmod(path, 0o777)  # every container's desktop connects
        sock.settimeout(0.2)
        self._listener = sock

    def stop(self) -> None:
        """Stop like the real daemon on exit: leases are not released (no DISABLE goes out)."""
        self._stop.set()
        self.close()
        for thread in list(self._threads):
            thread.join(timeout=2)

    def close(self) -> None:
        with self._lock:
            holders = list(self.leases.values())
        for sock in [*holders, self._listener, self._refusing]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        if self._owned is not None:
            self._owned.remove()
            self._owned = None

    def __enter__(self) -> DrmManager:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, target: Callable, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()  # type: ignore[union-attr]
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    self.log("ERROR", "accept error", err="listener closed")
                return
            self._spawn(self._serve, "drm-client", conn)

    # ------------------------------------------------------------------ one request
    def _serve(self, conn: socket.socket) -> None:
        keep = False
        try:
            raw = _recv_exactly(conn, REQUEST.size, self._stop)
            if raw is None:
                self.log("ERROR", "read request failed", err="EOF")
                return
            cmd, width, height = unpack_request(raw)
            if cmd == CMD_LEASE:
                keep = self._lease(conn, width, height)
            elif cmd == CMD_RELEASE:
                self._release(width, why="release request")
            else:
                self.log("ERROR", "unknown command", cmd=cmd)
                self._reply(conn, 1, 0, "unknown command")
        except OSError as exc:
            self.log("ERROR", "read request failed", err=str(exc))
        except Exception as exc:  # noqa: BLE001 - one client must never take the daemon down
            self.log("ERROR", "internal error", err=f"{type(exc).__name__}: {exc}")
        finally:
            if not keep:
                with contextlib.suppress(OSError):
                    conn.close()

    def _reply(self, conn: socket.socket, status: int, scanout: int, text: str) -> None:
        conn.sendall(pack_reply(status, scanout, text))

    def _lease(self, conn: socket.socket, width: int, height: int) -> bool:
        width, height = (width, height) if width and height else DEFAULT_SIZE
        self.log("INFO", "lease request received", width=width, height=height)
        with self._lock:
            scanout = self.pool.pop(0) if self.pool else None
        if scanout is None:
            err = f"no scanouts available (all {self.capacity} in use)"
            self.log("ERROR", "no scanouts available", err=err)
            self._reply(conn, 1, 0, err)
            return False
        self.log("INFO", "allocated scanout", scanout_idx=scanout)
        try:
            connector = self._enable(scanout, width, height)
        except ManagerError as exc:
            self.log("ERROR", "enable scanout in QEMU failed", err=str(exc), scanout_idx=scanout)
            with self._lock:
                self.pool.append(scanout)
            self._reply(conn, 1, 0, f"QEMU enable failed: {exc}")
            return False
        self.log("INFO", "QEMU confirmed scanout enabled", scanout_idx=scanout, connector=connector)
        self.log("INFO", "scanout enabled in QEMU", scanout_idx=scanout)
        self._stop.wait(self.config.settle)
        self.log("INFO", "creating DRM lease", scanout_idx=scanout, connector_id=40 + scanout,
                 crtc_id=37 + scanout, primary_plane=33 + 7 * scanout, cursor_plane=34 + 7 * scanout)
        fd = _lease_fd(scanout, connector)
        lessee = 100 + scanout
        self.log("INFO", "DRM lease created", lessee_id=lessee, lease_fd=fd, scanout_idx=scanout)
        with self._lock:
            self.leases[scanout] = conn
        try:
            socket.send_fds(conn, [pack_reply(0, scanout, connector)], [fd])
        except OSError as exc:
            self.log("ERROR", "send lease FD failed", err=str(exc))
            self._release(scanout, why="send failed")
            return False
        finally:
            os.close(fd)  # the client has its own copy now
        self.log("INFO", "lease FD sent to client", scanout_idx=scanout, connector=connector, lessee_id=lessee)
        self._spawn(self._hold, f"drm-lease {scanout}", conn, scanout)
        return True

    def _hold(self, conn: socket.socket, scanout: int) -> None:
        """The lease lives as long as its connection (and, by default, until a byte arrives)."""
        try:
            conn.settimeout(0.2)  # (closed already, when the daemon stops right away: OSError)
            while not self._stop.is_set():
                try:
                    data = conn.recv(1)
                except TimeoutError:
                    continue
                if not data or self.config.release_on_byte:
                    break
        except OSError:
            pass
        if self._stop.is_set():
            return  # the daemon exits: nothing is released (as the real one)
        self.log("INFO", "lease client disconnected, releasing scanout", scanout_idx=scanout)
        with contextlib.suppress(OSError):
            conn.close()
        self._release(scanout, why="disconnect")

    def _release(self, scanout: int, *, why: str) -> None:
        with self._lock:
            held = self.leases.pop(scanout, None)
        if held is None:
            self.log("WARN", "release request for unknown scanout", scanout_idx=scanout)
            return
        self.log("INFO", "releasing lease", scanout_idx=scanout, lessee_id=100 + scanout)
        self._disable(scanout)
        with self._lock:  # back to the end of the pool, after the DISABLE wait
            self.pool.append(scanout)
            self.released.append(scanout)

    # ------------------------------------------------------------------ the host
    def _connect(self) -> socket.socket:
        host, port = self.qemu
        try:
            return socket.create_connection((host, port), timeout=5.0)
        except OSError as exc:
            reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
                "i/o timeout" if isinstance(exc, TimeoutError) else exc.strerror or str(exc))
            raise ManagerError(f"connect to QEMU {host}:{port}: dial tcp {host}:{port}: connect: {reason}") from None

    def _enable(self, scanout: int, width: int, height: int) -> str:
        sock = self._connect()
        try:
            sock.settimeout(self.config.enable_timeout)
            sock.sendall(protocol.encode(protocol.EnableScanout(scanout, width, height, 60, session_id=0)))
            msg_type, payload = _read_scanout_resp(sock)
        finally:
            sock.close()
        if msg_type == protocol.MsgType.ERROR:
            raise ManagerError(f"QEMU error: {payload!r}")
        if msg_type != protocol.MsgType.SCANOUT_RESP:
            raise ManagerError(f"unexpected msg_type: 0x{msg_type:x} (expected 0x22)")
        got_id, success = struct.unpack_from("<II", payload)
        if not success:
            raise ManagerError(f"QEMU refused to enable scanout {scanout}")
        return payload[8:72].split(b"\0", 1)[0].decode(errors="replace") or f"Virtual-{scanout + 1}"

    def _disable(self, scanout: int) -> None:
        try:
            sock = self._connect()
        except ManagerError as exc:
            self.log("WARN", "connect to QEMU for disable failed", err=str(exc))
            return
        try:
            sock.settimeout(self.config.disable_wait)
            try:
                sock.sendall(protocol.encode(protocol.DisableScanout(scanout, session_id=0)))
            except OSError as exc:
                self.log("WARN", "write disable scanout failed", err=str(exc))
                return
            try:
                _, payload = _read_scanout_resp(sock)
            except ManagerError as exc:  # the normal outcome: no host answers DISABLE
                self.log("WARN", "read disable response failed", err=str(exc))
                return
            self.log("INFO", "QEMU confirmed scanout disabled", scanout_idx=scanout,
                     success=struct.unpack_from("<II", payload)[1] if len(payload) >= 8 else "?")
        finally:
            sock.close()


def _read_scanout_resp(sock: socket.socket) -> tuple[int, bytes]:
    """Header, then the 72-byte body, like the daemon's readScanoutResp (payload_size unchecked)."""
    try:
        head = _recv_exactly(sock, protocol.HEADER_SIZE)
        if head is None:
            raise ManagerError("read scanout response: read header: EOF")
        magic, msg_type, _, _, size = protocol.HEADER.unpack(head)
        if magic != protocol.MAGIC:
            raise ManagerError(f"bad magic: 0x{magic:x} (expected 0x{protocol.MAGIC:x})")
        body = _recv_exactly(sock, size if msg_type == protocol.MsgType.ERROR else _SCANOUT_RESP_PAYLOAD)
    except TimeoutError:
        raise ManagerError("read scanout response: read header: i/o timeout") from None
    except OSError as exc:
        raise ManagerError(f"read scanout response: read header: {exc.strerror or exc}") from None
    if body is None:
        raise ManagerError("read scanout response: unexpected EOF")
    return msg_type, body


def _recv_exactly(sock: socket.socket, n: int, stop: threading.Event | None = None) -> bytes | None:
    """`n` bytes, or None at EOF (a `stop` makes it give up, also None)."""
    out = b""
    if stop is not None:
        sock.settimeout(0.2)
    while len(out) < n:
        try:
            chunk = sock.recv(n - len(out))
        except TimeoutError:
            if stop is not None and not stop.is_set():
                continue
            raise
        if not chunk:
            return None
        out += chunk
    return out


def _lease_fd(scanout: int, connector: str) -> int:
    """A real fd to hand over: a memfd describing the lease (a pipe where there is no memfd)."""
    text = f"helixdiag stand-in DRM lease: scanout {scanout}, connector {connector}\n".encode()
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(f"helix-lease-{scanout}")
        os.write(fd, text)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    read_end, write_end = os.pipe()
    os.write(write_end, text)
    os.close(write_end)
    return read_end
