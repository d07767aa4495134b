"""The one rule for removing a socket file that looks stale (`fix --apply`, `serve --unix`,
`tap --listen unix:`), and the one way a server listens on a Unix socket path.

A path is removed only if it is a socket that refuses connections, nobody holds it open,
and no QEMU that could have bound it is running. The last part matters on macOS: a full
accept queue makes connect() return ECONNREFUSED there, not a timeout, so a busy live
socket (the H1 host listens with backlog 1 and serves one client at a time) looks exactly
like a stale one. A QEMU whose working directory is the socket's directory and that started
before the socket was created may have bound it (H1 binds a relative name in its cwd), so
the socket stays. A socket older than every such QEMU is a leftover of an earlier run and
may go. Every verdict names the rule that decided.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from helixdiag import net
from helixdiag.errors import ConfigError
from helixdiag.observe.facts import Observations
from helixdiag.observe.processes import START_TIME_PRECISION_S
from helixdiag.timefmt import iso_time
from helixdiag.unixsock import PathState, UnixPathInfo, classify


@dataclass(frozen=True)
class Verdict:
    removable: bool
    rule: str  # which rule decided, in words
    info: UnixPathInfo


def removal_verdict(path: str, *, timeout: float = 1.0) -> Verdict:
    """Look again, now (fresh facts: never a cached view), and decide."""
    info = classify(path, timeout=timeout)
    if info.state != PathState.STALE:
        return Verdict(False, f"{path} is {info.state.value} ({info.detail}): only a socket that refuses "
                              "connections is removed", info)
    facts = Observations()
    holders = facts.socket_holders(path)
    if holders:
        who = ", ".join(f"pid {h.pid} ({h.command})" for h in holders)
        return Verdict(False, f"{path} refuses connections but is held open by {who}: it may be a busy "
                              "live socket", info)
    born = _birth_time(path)
    where = os.path.dirname(os.path.realpath(path))
    for proc in facts.qemu_processes:
        if proc.cwd and os.path.realpath(proc.cwd) == where and proc.started is not None and born is not None \
                and proc.started < born + START_TIME_PRECISION_S:
            return Verdict(False, f"QEMU pid {proc.pid} runs in {where} and started ({iso_time(proc.started)}) "
                                  f"before the socket was created ({iso_time(born)}): it may have bound it, and a "
                                  "busy socket refuses connections on macOS", info)
    return Verdict(True, "refuses connections, nobody holds it, and it is older than every QEMU in its "
                         "directory (a leftover of an earlier run)", info)


def _birth_time(path: str) -> float | None:
    """When the socket file was created: st_birthtime on macOS; elsewhere the modification
    time, which a socket file keeps from its bind()."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return getattr(st, "st_birthtime", st.st_mtime)


@dataclass(frozen=True)
class OwnedSocket:
    """A Unix socket a server bound, remembered by inode so that it removes only its own."""

    path: str
    dev: int
    ino: int

    def remove(self) -> None:
        """Remove the file if it is still the one we bound (a newer server may own the path)."""
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == (self.dev, self.ino):
                os.unlink(self.path)


def listen_unix(path: str, backlog: int, log: Callable[[str], None] = lambda line: None
                ) -> tuple[socket.socket, OwnedSocket]:
    """Listen on a Unix socket path for `serve` and `tap`: a stale leftover is taken over only
    under `removal_verdict`'s rule; anything else at the path is refused with the reason (exit 2).
    The socket is owner-only from the moment it exists."""
    verdict = removal_verdict(path)
    info = verdict.info
    if verdict.removable:
        log(f"taking over stale socket {path} ({verdict.rule})")
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
    old_umask = os.umask(0o077)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(str(net.translate(exc, f"bind {path}"))) from None
    finally:
        os.umask(old_umask)
    sock.listen(backlog)
    st = os.lstat(path)
    return sock, OwnedSocket(path, st.st_dev, st.st_ino)
