"""Linux facts: psutil reads /proc/net/tcp{,6} and /proc/net/unix and maps inodes to pids."""

from __future__ import annotations

import os
from collections.abc import Sequence

import psutil

from helixdiag.observe.backend import Backend, lsof_unix_holders, pid_name
from helixdiag.observe.processes import Listener, ProcInfo

SO_ACCEPTCON = 0x10000  # the Flags bit of a listening socket in /proc/net/unix


class LinuxBackend(Backend):
    name = "linux"

    def tcp_listeners(self) -> tuple[list[Listener], str | None]:
        try:
            conns = psutil.net_connections(kind="tcp")
        except (psutil.AccessDenied, PermissionError, OSError) as exc:
            return [], f"cannot list TCP listeners: {exc}"
        out = [Listener(c.pid, pid_name(c.pid), f"{c.laddr.ip}:{c.laddr.port}", c.laddr.port, True, "psutil")
               for c in conns if c.status == psutil.CONN_LISTEN and c.laddr]
        unnamed = sum(1 for lis in out if lis.pid is None)
        return out, (f"{unnamed} listener(s) belong to processes this user may not inspect" if unnamed else None)

    def socket_holders(self, path: str, candidates: Sequence[ProcInfo]) -> list[Listener]:
        real = os.path.realpath(path)
        cwd_of = {p.pid: p.cwd for p in candidates}
        listening = _listening_sockets()  # inode → the name it was bound with
        out = []
        for c in _net_connections("unix"):
            cwd = cwd_of.get(c.pid) or _cwd(c.pid)
            if not c.laddr or not _same_socket(c.laddr, path, real, cwd):
                continue
            inode = _socket_inode(c.pid, c.fd)
            if inode:
                is_listening = inode in listening
            else:  # another user's fd table: any listening socket bound to this path will do
                is_listening = any(_same_socket(name, path, real, cwd) for name in listening.values())
            out.append(Listener(c.pid, pid_name(c.pid), c.laddr, None, is_listening, "psutil + /proc/net/unix"))
        if out and all(h.pid is None for h in out):
            out = lsof_unix_holders(self, path, candidates) or out  # not root: lsof may name our own processes
        return out


def _same_socket(name: str, path: str, real: str, cwd: str | None) -> bool:
    if name in (path, real):
        return True
    if not os.path.isabs(name) and cwd:
        return os.path.realpath(os.path.join(cwd, name)) == real
    return False


def _listening_sockets() -> dict[str, str]:
    """inode → bound name of every listening Unix socket (__SO_ACCEPTCON in the Flags)."""
    found: dict[str, str] = {}
    try:
        with open("/proc/net/unix") as fh:
            next(fh, None)
            for line in fh:
                cols = line.split(None, 7)
                if len(cols) == 8 and int(cols[3], 16) & SO_ACCEPTCON:
                    found[cols[6]] = cols[7].rstrip("\n")
    except (OSError, ValueError):
        pass
    return found


def _socket_inode(pid: int | None, fd: int) -> str | None:
    if not pid or fd is None or fd < 0:
        return None
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")  # "socket:[12345]"
    except OSError:
        return None
    return link[8:-1] if link.startswith("socket:[") else None


def _cwd(pid: int | None) -> str | None:
    if not pid:
        return None
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def _net_connections(kind: str) -> list:
    try:
        return psutil.net_connections(kind=kind)
    except (psutil.AccessDenied, PermissionError, OSError):
        return []
