"""Linux facts: psutil reads /proc/net/tcp{,6} and /proc/net/unix and maps inodes to pids."""

from __future__ import annotations

import os
from collections.abc import Sequence

import psutil

from helixdiag.observe.backend import lsof_unix_holders
from helixdiag.observe.processes import Listener, ProcInfo
from helixdiag.observe.procfs import listening_sockets, proc_cwd, same_socket, socket_inode
from helixdiag.observe.psutil_procs import PsutilBackend, pid_name


class LinuxBackend(PsutilBackend):
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
        listening = listening_sockets()  # inode → the name it was bound with
        out = []
        for c in _net_connections("unix"):
            cwd = cwd_of.get(c.pid) or proc_cwd(c.pid)
            if not c.laddr or not same_socket(c.laddr, path, real, cwd):
                continue
            inode = socket_inode(c.pid, c.fd)
            if inode:
                is_listening = inode in listening
            else:  # another user's fd table: any listening socket bound to this path will do
                is_listening = any(same_socket(name, path, real, cwd) for name in listening.values())
            out.append(Listener(c.pid, pid_name(c.pid), c.laddr, None, is_listening, "psutil + /proc/net/unix"))
        if out and all(h.pid is None for h in out):
            out = lsof_unix_holders(self, path, candidates) or out  # not root: lsof may name our own processes
        return out


def _net_connections(kind: str) -> list:
    try:
        return psutil.net_connections(kind=kind)
    except (psutil.AccessDenied, PermissionError, OSError):
        return []
