"""The client side of helix-drm-manager's socket (the wire layout is protocol/drm.py): the
liveness probe a diagnosis may send, and the lease and release a desktop (the self-test's
stand-in desktop) sends. Every wait is bounded."""

from __future__ import annotations

import array
import contextlib
import os
import socket
from dataclasses import dataclass

from helixdiag import net
from helixdiag.protocol import drm


class LeaseError(Exception):
    """A request failed; the text is what the desktop's launcher would log."""


@dataclass
class Lease:
    """A lease as a desktop holds it: closing it (or the process exiting) releases it."""

    scanout_id: int
    connector: str
    fd: int
    sock: socket.socket

    def release(self) -> None:
        for close in (lambda: os.close(self.fd), self.sock.close):
            with contextlib.suppress(OSError):
                close()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def request_lease(path: str, width: int = 0, height: int = 0, timeout: float = 15.0) -> Lease:
    """cmd 1, like mutter-lease-launcher: the reply and the lease fd over SCM_RIGHTS."""
    sock = dial(path, timeout)
    try:
        sock.sendall(drm.pack_request(drm.CMD_LEASE, width, height))
        data, fds = _recv_with_fd(sock, drm.REPLY.size)
        while fds == [] and 0 < len(data) < drm.REPLY.size:  # the rest of a reply cut in two
            more = sock.recv(drm.REPLY.size - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        sock.close()
        raise LeaseError(f"read response: {exc}") from None
    if len(data) < drm.REPLY.size:
        sock.close()
        raise LeaseError(f"short response: {len(data)} bytes")
    reply = drm.unpack_reply(data)
    if not reply.ok:
        sock.close()
        for fd in fds:
            os.close(fd)
        raise LeaseError(f"lease request failed: {reply.text}")
    if not fds:
        sock.close()
        raise LeaseError("no lease FD received via SCM_RIGHTS")
    for extra in fds[1:]:
        os.close(extra)
    return Lease(reply.scanout_id, reply.text, fds[0], sock)


def _recv_with_fd(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
    """Up to `size` bytes and the fds an SCM_RIGHTS message carries (socket.recv_fds is 3.9+;
    this module is also carried by the guest agent, which runs on 3.8)."""
    item = array.array("i")
    data, ancdata, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(4 * item.itemsize))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            item.frombytes(payload[: len(payload) - len(payload) % item.itemsize])
    fds.extend(item)
    return data, fds


def release_scanout(path: str, scanout: int, timeout: float = 5.0) -> None:
    """cmd 2: release `scanout`, whoever holds it (no reply). Never sent by a diagnosis."""
    with dial(path, timeout) as sock:
        sock.sendall(drm.pack_request(drm.CMD_RELEASE, scanout, 0))


def probe(path: str, timeout: float = 5.0) -> drm.Reply:
    """cmd 0, the harmless liveness probe: a live manager answers status 1 "unknown command".
    Raises LeaseError (connect refused, short or no answer in `timeout`)."""
    with dial(path, timeout) as sock:
        sock.sendall(drm.pack_request(drm.CMD_PROBE))
        data = recv_exactly(sock, drm.REPLY.size)
    if data is None:
        raise LeaseError("short response: the manager closed the connection")
    return drm.unpack_reply(data)


def dial(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise LeaseError(f"connect to {path}: {net.translate(exc, 'dial unix')}") from None
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """`n` bytes, or None at EOF; the socket's timeout bounds each wait (TimeoutError)."""
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out
