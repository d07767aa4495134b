"""Endpoints and sockets, with raw OS errors translated into a small vocabulary.

Everything that dials or listens goes through here, so timeouts, TCP_NODELAY, keepalive
and buffer sizes are set in one place, and "who is to blame" words (refused, timeout,
permission, …) come from one table.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import time
from dataclasses import dataclass

from helixdiag.errors import UsageError

# sun_path limits, including the terminating NUL (sys/un.h).
UNIX_PATH_MAX = 104 if sys.platform == "darwin" else 108
SOCKET_BUFFER = 4 * 1024 * 1024  # a 1080p BGRx frame is 8 MB; vsockenc asks for 1 MB


@dataclass(frozen=True)
class Endpoint:
    """Where to dial or listen: `tcp://HOST:PORT` or `unix://PATH`."""

    kind: str  # "tcp" | "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    @property
    def address(self) -> tuple[str, int] | str:
        return self.path if self.kind == "unix" else (self.host, self.port)

    @property
    def family(self) -> int:
        if self.kind == "unix":
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


def parse_port(text: str | int, *, what: str = "port") -> int:
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number 1-65535, got {text!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"{what} must be 1-65535, got {port}")
    return port


def parse_hostport(text: str, *, default_host: str = "127.0.0.1", allow_zero: bool = False) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or a bare `PORT`."""
    text = text.strip()
    if text.isdigit():
        host, port_text = default_host, text
    elif text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"expected [IPV6]:PORT, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise UsageError(f"expected HOST:PORT, got {text!r}")
    if allow_zero and port_text == "0":
        return host, 0
    return host, parse_port(port_text)


def parse_endpoint(text: str) -> Endpoint:
    """`tcp://HOST:PORT`, `unix://PATH`, or a bare `HOST:PORT` / absolute path."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path:
            raise UsageError("unix:// needs a path, e.g. unix:///tmp/helix-frame-export.sock")
        return Endpoint("unix", path=path)
    if text.startswith("tcp://"):
        host, port = parse_hostport(text[len("tcp://"):])
        return Endpoint("tcp", host=host, port=port)
    if text.startswith("/") or text.startswith("./"):
        return Endpoint("unix", path=text)
    if "://" in text:
        raise UsageError(f"unknown endpoint scheme in {text!r}: use tcp://HOST:PORT or unix://PATH")
    host, port = parse_hostport(text)
    return Endpoint("tcp", host=host, port=port)


class NetError(Exception):
    """A socket operation failed; `kind` is one word of a small vocabulary:

    refused, timeout, unreachable, missing, not-a-socket, permission, path-too-long,
    reset, closed, in-use, other.
    """

    def __init__(self, kind: str, message: str, *, errno_: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.errno = errno_


_ERRNO_KINDS = {
    errno.ECONNREFUSED: "refused",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.ENOENT: "missing",
    errno.ENOTSOCK: "not-a-socket",
    errno.EACCES: "permission",
    errno.EPERM: "permission",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "closed",
    errno.EADDRINUSE: "in-use",
    errno.ECONNABORTED: "reset",
}


def translate(exc: OSError, what: str) -> NetError:
    """Turn an OSError from `what` (e.g. "connect to tcp://…") into a NetError."""
    if isinstance(exc, NetError):
        return exc
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return NetError("timeout", f"{what}: timed out", errno_=errno.ETIMEDOUT)
    kind = _ERRNO_KINDS.get(exc.errno or 0, "other")
    if exc.errno == errno.EPROTOTYPE:  # connect() to a path that is a socket of another type
        kind = "not-a-socket"
    reason = exc.strerror or str(exc)
    return NetError(kind, f"{what}: {reason}", errno_=exc.errno)


def check_unix_path_length(path: str) -> None:
    size = len(path.encode()) + 1
    if size > UNIX_PATH_MAX:
        raise NetError(
            "path-too-long",
            f"socket path is {size - 1} bytes, over the {UNIX_PATH_MAX - 1}-byte limit of this OS: {path}",
        )


def tune(sock: socket.socket) -> None:
    """Low latency and big buffers for frame traffic; keepalive so half-open peers die."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # macOS has no TCP_KEEPIDLE: its idle time is TCP_KEEPALIVE.
        idle = "TCP_KEEPIDLE" if hasattr(socket, "TCP_KEEPIDLE") else "TCP_KEEPALIVE"
        for name, value in ((idle, 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    """Dial with a bounded wait; raises NetError."""
    what = f"connect to {endpoint}"
    if endpoint.kind == "unix":
        check_unix_path_length(endpoint.path)
    sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(endpoint.address)
        tune(sock)
    except OSError as exc:
        sock.close()
        raise translate(exc, what) from None
    return sock


def path_kind(path: str) -> str:
    """missing | socket | file | directory | other | unreadable — without following into the
    socket. `unreadable`: we may not even look (EACCES/EPERM; on macOS also another app's
    container the terminal has no consent for)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "unreadable"
    except OSError:
        return "other"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def send_parts(sock: socket.socket, parts: list, deadline: float) -> int:
    """Write every part (pixels and NAL data without joining them), bounded by `deadline`."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    total = sum(v.nbytes for v in views)
    previous_timeout = sock.gettimeout()
    try:
        while views:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("write deadline passed")
            sock.settimeout(min(remaining, 1.0))
            try:
                sent = sock.sendmsg(views[:64])
            except (BlockingIOError, TimeoutError):
                continue
            while sent and views:
                if sent >= views[0].nbytes:
                    sent -= views[0].nbytes
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0
    finally:
        sock.settimeout(previous_timeout)
    return total
