"""What is at a Unix socket path: the one classification serve, the probes and fix share.

The stale-socket rule (observe/stale.py; docs/tools.md, `fix`) starts here: a path may only be taken over (serve) or
removed (fix) when it *is* a socket and connecting to it is refused.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass

from helixdiag.compat import StrEnum
from helixdiag.net import NetError, check_unix_path_length, path_kind, translate


class PathState(StrEnum):
    MISSING = "missing"
    LIVE = "live"  # a socket that accepts connections
    STALE = "stale"  # a socket whose connect() is refused: nobody listens
    NOT_A_SOCKET = "not-a-socket"  # a regular file, directory, fifo, …
    PERMISSION = "permission"  # we may not connect (or even look)
    TOO_LONG = "too-long"  # longer than sun_path allows
    UNKNOWN = "unknown"  # connect failed some other way


@dataclass(frozen=True)
class UnixPathInfo:
    path: str
    state: PathState
    detail: str
    file_type: str  # missing | socket | file | directory | other
    errno: int | None = None
    mtime: float | None = None
    mode: int | None = None
    uid: int | None = None


def classify(path: str, *, timeout: float = 1.0) -> UnixPathInfo:
    """Look at `path` and try one connect() (closed straight away, nothing sent)."""
    kind = path_kind(path)
    st = None
    with contextlib.suppress(OSError):
        st = os.lstat(path)
    facts = {
        "mtime": st.st_mtime if st else None,
        "mode": st.st_mode & 0o7777 if st else None,
        "uid": st.st_uid if st else None,
    }
    if kind == "missing":
        return UnixPathInfo(path, PathState.MISSING, "no such file", kind, **facts)
    if kind == "unreadable":
        return UnixPathInfo(path, PathState.PERMISSION, "permission denied: the path cannot even be looked at",
                            kind, **facts)
    if kind != "socket":
        return UnixPathInfo(path, PathState.NOT_A_SOCKET, f"is a {kind}, not a socket", kind, **facts)
    try:
        check_unix_path_length(path)
    except NetError as exc:
        return UnixPathInfo(path, PathState.TOO_LONG, str(exc), kind, **facts)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        err = translate(exc, f"connect to {path}")
        state = {
            "refused": PathState.STALE,
            "permission": PathState.PERMISSION,
            "not-a-socket": PathState.NOT_A_SOCKET,
            "missing": PathState.MISSING,
        }.get(err.kind, PathState.UNKNOWN)
        # A full listen backlog also times out; that socket is alive, only busy.
        if err.kind == "timeout":
            state = PathState.LIVE
        return UnixPathInfo(path, state, str(err), kind, err.errno, **facts)
    finally:
        sock.close()
    return UnixPathInfo(path, PathState.LIVE, "accepts connections", kind, **facts)
