"""Facts about this machine, gathered once per run and shared by the probes.

`Observations` is the one API; `LinuxBackend` / `MacBackend` differ only in how they find
listeners and socket holders (psutil and /proc on Linux, lsof on macOS where psutil needs
root for that). The backend is chosen once, in `Observations.__init__`. Every external
command runs through `run_command`, which has a timeout and never raises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

import psutil

from helixdiag.observe import parsers

COMMAND_TIMEOUT = 5.0
# The Helix Mac app writes the pid of the QEMU it started here (not UTM).
HELIX_APP_PID_FILE = "~/Library/Application Support/Helix/qemu.pid"
QEMU_NAMES = ("qemu-system-", "qemu-aarch64-softmmu", "qemulauncher")


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    error: str | None = None  # "not installed", "timed out after 5 s", …

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0


def run_command(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
    """Run a tool with a hard timeout; never raises (the error is in the result)."""
    if shutil.which(argv[0]) is None:
        return CommandResult(tuple(argv), None, "", "", f"{argv[0]} is not installed")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return CommandResult(tuple(argv), None, "", "", f"timed out after {timeout:g} s")
    except OSError as exc:
        return CommandResult(tuple(argv), None, "", "", str(exc))
    return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    name: str
    exe: str | None
    argv: tuple[str, ...]
    cwd: str | None
    started: float | None  # epoch seconds
    ppid: int | None = None

    @property
    def command_line(self) -> str:
        return " ".join(self.argv) if self.argv else self.name

    @property
    def is_qemu(self) -> bool:
        names = (self.name.lower(), os.path.basename(self.exe or "").lower(),
                 os.path.basename(self.argv[0]).lower() if self.argv else "")
        return any(n.startswith(q) for n in names for q in QEMU_NAMES)

    @property
    def is_socat(self) -> bool:
        return self.name == "socat" or os.path.basename(self.exe or "") == "socat"

    @property
    def is_helixdiag_serve(self) -> bool:
        return "helixdiag" in " ".join(self.argv) and "serve" in self.argv

    def describe(self) -> dict[str, object]:
        return {"pid": self.pid, "name": self.name, "command": self.command_line[:400],
                "cwd": self.cwd, "started": iso_time(self.started)}

    def role(self) -> str:
        if self.is_qemu:
            return "qemu"
        if self.is_socat:
            return "socat"
        if self.is_helixdiag_serve or self.pid == os.getpid():
            return "helixdiag-serve"
        return "other"


@dataclass(frozen=True)
class Listener:
    """A process listening on a TCP port or holding a Unix socket."""

    pid: int | None
    command: str | None
    address: str  # "127.0.0.1:5900" or a socket path
    port: int | None = None
    listening: bool = True
    source: str = ""  # how we know: "psutil", "lsof"


@dataclass
class Observations:
    """Lazily gathered, cached facts. Thread-safe: probes run concurrently."""

    backend: Backend = field(default_factory=lambda: choose_backend())

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._holders: dict[str, list[Listener]] = {}

    @cached_property
    def processes(self) -> list[ProcInfo]:
        with self._lock:
            return list(_iter_processes())

    @cached_property
    def helix_app_pid(self) -> int | None:
        """The pid in the Helix app's pid file, if that file exists and holds one."""
        try:
            with open(os.path.expanduser(HELIX_APP_PID_FILE)) as fh:
                text = fh.read(64).strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isascii() and text.isdigit() else None

    def process(self, pid: int | None) -> ProcInfo | None:
        return next((p for p in self.processes if p.pid == pid), None) if pid else None

    def who(self, pid: int | None, command: str | None = None) -> dict[str, object]:
        """The {pid, command, role} record that evidence uses for a process."""
        proc = self.process(pid)
        return {"pid": pid, "command": proc.command_line[:300] if proc else command,
                "role": proc.role() if proc else "unknown"}

    @cached_property
    def qemu_processes(self) -> list[ProcInfo]:
        return [p for p in self.processes if p.is_qemu]

    @cached_property
    def socat_processes(self) -> list[ProcInfo]:
        return [p for p in self.processes if p.is_socat]

    @cached_property
    def tcp_listeners(self) -> list[Listener]:
        with self._lock:
            return self.backend.tcp_listeners()

    def listeners_on_port(self, port: int) -> list[Listener]:
        return [lis for lis in self.tcp_listeners if lis.port == port]

    def socket_holders(self, path: str) -> list[Listener]:
        """Processes that hold the Unix socket at `path` open (listening or not)."""
        with self._lock:
            if path not in self._holders:
                self._holders[path] = self.backend.socket_holders(path)
            return self._holders[path]


class Backend:
    name = "generic"

    def tcp_listeners(self) -> list[Listener]:
        raise NotImplementedError

    def socket_holders(self, path: str) -> list[Listener]:
        raise NotImplementedError


class LinuxBackend(Backend):
    """psutil reads /proc/net/tcp{,6} and /proc/net/unix and maps inodes to pids."""

    name = "linux"

    def tcp_listeners(self) -> list[Listener]:
        out = []
        for c in _net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr:
                out.append(Listener(c.pid, _pid_name(c.pid), f"{c.laddr.ip}:{c.laddr.port}",
                                    c.laddr.port, True, "psutil"))
        return out

    def socket_holders(self, path: str) -> list[Listener]:
        real = os.path.realpath(path)
        listening = _proc_net_unix_listening({path, real})
        out = []
        for c in _net_connections("unix"):
            if c.laddr and c.laddr in (path, real):
                inode = _socket_inode(c.pid, c.fd)
                out.append(Listener(c.pid, _pid_name(c.pid), c.laddr, None,
                                    inode in listening if inode else bool(listening),
                                    "psutil + /proc/net/unix"))
        if out and all(h.pid is None for h in out):
            out = _lsof_holders(path) or out  # not root: lsof may still name our own processes
        return out


def _proc_net_unix_listening(paths: set[str]) -> set[str]:
    """Inodes of listening sockets bound to `paths` (__SO_ACCEPTCON = 0x10000 in Flags)."""
    inodes = set()
    try:
        with open("/proc/net/unix") as fh:
            next(fh, None)
            for line in fh:
                cols = line.split(None, 7)
                if len(cols) == 8 and cols[7].rstrip("\n") in paths and int(cols[3], 16) & 0x10000:
                    inodes.add(cols[6])
    except (OSError, ValueError):
        pass
    return inodes


def _socket_inode(pid: int | None, fd: int) -> str | None:
    if not pid or fd is None or fd < 0:
        return None
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")  # "socket:[12345]"
    except OSError:
        return None
    return link[8:-1] if link.startswith("socket:[") else None


class MacBackend(Backend):
    """macOS: psutil.net_connections needs root, lsof does not (for the user's processes)."""

    name = "macos"

    def tcp_listeners(self) -> list[Listener]:
        result = run_command(["lsof", "-nP", "-iTCP", "-sTCP:LISTEN", "-F", "pcnPtT"])
        return [
            Listener(e.pid, e.command, f"{e.local_address}:{e.local_port}", e.local_port, True, "lsof")
            for e in parsers.parse_lsof_fields(result.stdout) if e.local_port is not None
        ]

    def socket_holders(self, path: str) -> list[Listener]:
        return _lsof_holders(path)


def _lsof_holders(path: str) -> list[Listener]:
    result = run_command(["lsof", "-nP", "-F", "pcfntT", "--", path])
    return [
        Listener(e.pid, e.command, e.unix_path or path, None, e.is_listening or e.state is None, "lsof")
        for e in parsers.parse_lsof_fields(result.stdout) if (e.type or "").lower() == "unix"
    ]


def choose_backend() -> Backend:
    return MacBackend() if sys.platform == "darwin" else LinuxBackend()


def _net_connections(kind: str) -> list:
    try:
        return psutil.net_connections(kind=kind)
    except (psutil.AccessDenied, PermissionError, OSError):
        return []


def _pid_name(pid: int | None) -> str | None:
    if not pid:
        return None
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None


def _iter_processes():
    for proc in psutil.process_iter(["pid", "ppid", "name", "exe", "cmdline", "create_time", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue  # a <defunct> process runs nothing and holds nothing
        try:
            cwd = proc.cwd()
        except (psutil.Error, OSError):
            cwd = None
        yield ProcInfo(
            pid=info["pid"], name=info.get("name") or "", exe=info.get("exe"),
            argv=tuple(info.get("cmdline") or ()), cwd=cwd, started=info.get("create_time"),
            ppid=info.get("ppid"),
        )


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
