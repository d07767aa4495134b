"""The process table from psutil, for the host backends (Linux and macOS). The guest agent,
which has no psutil, reads /proc instead (observe.procfs)."""

from __future__ import annotations

from collections.abc import Iterator

import psutil

from helixdiag.observe.backend import Backend
from helixdiag.observe.processes import ProcInfo


class PsutilBackend(Backend):
    def processes(self) -> Iterator[ProcInfo]:
        for proc in psutil.process_iter(["pid", "ppid", "name", "exe", "cmdline", "create_time", "status"]):
            info = proc.info
            if info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            try:
                cwd = proc.cwd()
            except (psutil.Error, OSError):
                cwd = None
            argv = tuple(info.get("cmdline") or ())
            unreadable = not argv and info.get("cmdline") is None  # AccessDenied, not an empty argv
            if unreadable and (info.get("name") or "") in ("socat", "qemu-system-aarch64", "QEMULauncher"):
                argv = self.command_line_of(info["pid"])
                unreadable = not argv
            yield ProcInfo(
                pid=info["pid"], name=info.get("name") or "", exe=info.get("exe"), argv=argv, cwd=cwd,
                started=info.get("create_time"), ppid=info.get("ppid"), argv_unreadable=unreadable,
            )


def pid_name(pid: int | None) -> str | None:
    if not pid:
        return None
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None
