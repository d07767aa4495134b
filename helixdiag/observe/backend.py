"""One interface for the facts that differ by platform, chosen once (`choose_backend`).

Linux answers from psutil and /proc; macOS from lsof and otool, where psutil needs root to
list other processes' sockets. A probe never tests the platform: it asks for a fact, and a
fact a platform cannot give comes back with the reason (e.g. dylib paths off macOS).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence

from helixdiag.observe import parsers
from helixdiag.observe.commands import COMMAND_TIMEOUT, CommandResult, Transcript, run_command
from helixdiag.observe.parsers import OtoolDeps
from helixdiag.observe.processes import Listener, ProcInfo


class Backend:
    """Facts that differ by platform. Every command runs through `run`, which records it in
    the run's transcript."""

    name = "generic"
    # Facts this platform cannot give, and why: probes skip with the reason.
    unsupported: dict[str, str] = {"dylibs": "macOS only (otool -L)"}
    hardware_encoder: str | None = None  # the H.264 encoder the real host uses here, if any

    def __init__(self) -> None:
        self.transcript = Transcript()

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        result = run_command(argv, timeout)
        self.transcript.add(result)
        return result

    def processes(self) -> Iterator[ProcInfo]:
        """Every process this user can see; <defunct> ones run nothing and are left out."""
        raise NotImplementedError

    def command_line_of(self, pid: int) -> tuple[str, ...]:
        """Another user's command line, where the platform's `ps` may show it (space-joined)."""
        result = self.run(["/bin/ps", "-o", "command=", "-p", str(pid)], timeout=2.0)
        text = result.stdout.strip() if result.ok else ""
        # ps shows only "(socat)" when it may not read the arguments either.
        return tuple(text.split()) if text and not text.startswith("(") else ()

    def tcp_listeners(self) -> tuple[list[Listener], str | None]:
        """The TCP listeners, and why the list may be incomplete (None: it is complete). An
        empty list with a reason means "unknown", never "nothing listens"."""
        raise NotImplementedError

    def socket_holders(self, path: str, candidates: Sequence[ProcInfo]) -> list[Listener]:
        """Processes holding the Unix socket at `path`, listening or not. A process that bound
        a relative name (H1 QEMU binds `helix-frame-export.sock` in its cwd) matches when that
        name, resolved against its working directory, is `path`."""
        raise NotImplementedError

    def dylibs(self, binary: str) -> tuple[OtoolDeps | None, str | None]:
        """The binary's dylib dependencies, or None and the reason they cannot be known."""
        return None, self.unsupported["dylibs"]


def choose_backend() -> Backend:
    # By name: the guest agent carries this module but not the psutil backends (it uses
    # observe.procfs), so nothing here may import them where the agent would follow.
    name = "macos.MacBackend" if sys.platform == "darwin" else "linux.LinuxBackend"
    module, cls = name.split(".")
    return getattr(importlib.import_module(f"helixdiag.observe.{module}"), cls)()


def lsof() -> str:
    """lsof's path: macOS keeps it in /usr/sbin, which is not always on PATH (cron, CI)."""
    return shutil.which("lsof") or "/usr/sbin/lsof"


def lsof_unix_holders(backend: Backend, path: str, candidates: Sequence[ProcInfo]) -> list[Listener]:
    """Holders of the socket at `path` from `lsof -U` (every Unix socket this user may see)."""
    result = backend.run([lsof(), "-nP", "-U", "-F", "pcfn"])
    return unix_holders(parsers.parse_lsof_fields(result.stdout), path, candidates)


def unix_holders(entries: Sequence[parsers.LsofEntry], path: str, candidates: Sequence[ProcInfo]) -> list[Listener]:
    """The entries of `lsof -U -F pcfn` whose bound name is the socket at `path`."""
    cwd_of = {p.pid: p.cwd for p in candidates}
    real = os.path.realpath(path)
    out = []
    for e in entries:
        if (e.type or "").lower() != "unix" or not e.unix_path:
            continue
        cwd = cwd_of.get(e.pid)
        if e.matches_unix_path(real, os.path.realpath(cwd) if cwd else None) or e.matches_unix_path(path, cwd):
            out.append(Listener(e.pid, e.command, e.unix_path, None, e.is_listening or e.state is None, "lsof -U"))
    return out
