"""What a fact says about a process or a listener: plain data, the same on every platform."""

from __future__ import annotations

import os
from dataclasses import dataclass

from helixdiag.timefmt import iso_time

QEMU_NAMES = ("qemu-system-", "qemu-aarch64-softmmu", "qemulauncher")
# A process's start time is known to about a second (Linux derives it from the boot time in
# whole seconds): two times closer than this are in no known order.
START_TIME_PRECISION_S = 1.0


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    name: str
    exe: str | None
    argv: tuple[str, ...]
    cwd: str | None
    started: float | None  # epoch seconds
    ppid: int | None = None
    argv_unreadable: bool = False  # another user's process (e.g. started with sudo)

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
