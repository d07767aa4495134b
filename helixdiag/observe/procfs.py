"""Linux facts from /proc alone, for the guest agent (no psutil on a guest): the process
table, the TCP listeners and who holds a Unix socket. The host's Linux backend shares the
/proc/net/unix helpers."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator, Sequence

from helixdiag.observe.backend import Backend
from helixdiag.observe.processes import Listener, ProcInfo

SO_ACCEPTCON = 0x10000  # the Flags bit of a listening socket in /proc/net/unix
TCP_LISTEN = "0A"  # the st column of /proc/net/tcp for LISTEN


class ProcfsBackend(Backend):
    name = "linux-procfs"

    def processes(self) -> Iterator[ProcInfo]:
        boot, ticks = _boot_time(), os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                info = _process(int(entry), boot, ticks)
                if info is not None:
                    yield info

    def tcp_listeners(self) -> tuple[list[Listener], str | None]:
        owners = _inode_owners()
        names = {p.pid: p.name for p in self.processes()}
        out = []
        for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
            for address, port, inode in _listening_tcp(table, family):
                pid = owners.get(inode)
                out.append(Listener(pid, names.get(pid) if pid else None, f"{address}:{port}", port, True, table))
        unnamed = sum(1 for lis in out if lis.pid is None)
        return out, (f"{unnamed} listener(s) belong to processes this user may not inspect" if unnamed else None)

    def socket_holders(self, path: str, candidates: Sequence[ProcInfo]) -> list[Listener]:
        real = os.path.realpath(path)
        owners = _inode_owners()
        cwds = {p.pid: p.cwd for p in candidates}
        out = []
        for inode, (name, listening) in _unix_sockets().items():
            pid = owners.get(inode)
            if same_socket(name, path, real, cwds.get(pid) or proc_cwd(pid)):
                out.append(Listener(pid, None, name, None, listening, "/proc/net/unix"))
        return out


def _boot_time() -> float:
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0.0


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _process(pid: int, boot: float, ticks: int) -> ProcInfo | None:
    """One /proc/PID entry as psutil would give it; None when it is gone or a zombie."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    text = stat.decode("utf-8", "replace")
    name = text[text.find("(") + 1:text.rfind(")")]
    fields = text[text.rfind(")") + 2:].split()  # state, ppid, … starttime is the 20th
    if not fields or fields[0] == "Z":
        return None
    cmdline = _read(f"/proc/{pid}/cmdline")
    argv = tuple(a.decode("utf-8", "replace") for a in cmdline.split(b"\0")[:-1]) if cmdline else ()
    return ProcInfo(pid=pid, name=name, exe=_link(f"/proc/{pid}/exe"), argv=argv, cwd=proc_cwd(pid),
                    started=boot + int(fields[19]) / ticks, ppid=int(fields[1]),
                    argv_unreadable=cmdline is None)


def _inode_owners() -> dict[str, int]:
    """socket inode → the pid holding it (the processes whose fd table we may read)."""
    owners: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            link = _link(f"/proc/{entry}/fd/{fd}") or ""
            if link.startswith("socket:["):
                owners.setdefault(link[8:-1], int(entry))
    return owners


def _listening_tcp(table: str, family: int) -> Iterator[tuple[str, int, str]]:
    """(address, port, inode) of each listening socket in /proc/net/tcp or tcp6."""
    try:
        with open(table) as fh:
            rows = fh.read().splitlines()[1:]
    except OSError:
        return
    for row in rows:
        cols = row.split()
        if len(cols) < 10 or cols[3] != TCP_LISTEN:
            continue
        hex_ip, hex_port = cols[1].split(":")
        raw = bytes.fromhex(hex_ip)
        # The kernel prints each 32-bit word in host order.
        words = struct.unpack(f"={len(raw) // 4}I", raw)
        packed = struct.pack(f">{len(words)}I", *words)
        yield socket.inet_ntop(family, packed), int(hex_port, 16), cols[9]


def _unix_sockets() -> dict[str, tuple[str, bool]]:
    """inode → (bound name, listening) of every named Unix socket in /proc/net/unix."""
    found: dict[str, tuple[str, bool]] = {}
    try:
        with open("/proc/net/unix") as fh:
            next(fh, None)
            for line in fh:
                cols = line.split(None, 7)
                if len(cols) == 8:
                    found[cols[6]] = (cols[7].rstrip("\n"), bool(int(cols[3], 16) & SO_ACCEPTCON))
    except (OSError, ValueError):
        pass
    return found


def listening_sockets() -> dict[str, str]:
    """inode → bound name of every listening Unix socket (__SO_ACCEPTCON in the Flags)."""
    return {inode: name for inode, (name, listening) in _unix_sockets().items() if listening}


def same_socket(name: str, path: str, real: str, cwd: str | None) -> bool:
    if name in (path, real):
        return True
    if not os.path.isabs(name) and cwd:
        return os.path.realpath(os.path.join(cwd, name)) == real
    return False


def socket_inode(pid: int | None, fd: int) -> str | None:
    if not pid or fd is None or fd < 0:
        return None
    link = _link(f"/proc/{pid}/fd/{fd}") or ""  # "socket:[12345]"
    return link[8:-1] if link.startswith("socket:[") else None


def proc_cwd(pid: int | None) -> str | None:
    return _link(f"/proc/{pid}/cwd") if pid else None
