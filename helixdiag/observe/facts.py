"""The facts of one run: the only place a run looks at the machine.

`Observations` holds every fact the probes judge — processes, listeners, socket holders and
states, a binary's helix build and dylibs, gst-inspect output, the GST and QEMU log
summaries, the PipeWire graph, tool versions — each gathered lazily, at most once, under a
lock (`Once`), so probes running on several threads share one scan of a 100 MB log. What
differs by platform comes from the backend chosen once (`observe.backend`).
"""

from __future__ import annotations

import os
import platform
import re
import socket
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from helixdiag import logscan
from helixdiag.logscan.summary import BridgeLogSummary, DrmLogSummary, GstLogSummary, QemuLogSummary
from helixdiag.observe import scanout
from helixdiag.observe.backend import Backend, choose_backend
from helixdiag.observe.commands import CommandResult, run_command
from helixdiag.observe.once import Once
from helixdiag.observe.parsers import OtoolDeps
from helixdiag.observe.pipewire import PipeWireFacts
from helixdiag.observe.processes import Listener, ProcInfo
from helixdiag.unixsock import UnixPathInfo, classify

# The Helix Mac app writes the pid of the QEMU it started here (not UTM).
HELIX_APP_PID_FILE = "~/Library/Application Support/Helix/qemu.pid"
HELIX_MARKER = b"[HELIX]"
HELIX_VERSION_RE = re.compile(rb"\[HELIX\] VERSION: ([\x20-\x7e]{1,120})")
SCAN_CHUNK = 1 << 20
S = TypeVar("S", GstLogSummary, QemuLogSummary, BridgeLogSummary, DrmLogSummary)


@dataclass(frozen=True)
class BinaryFacts:
    """A QEMU binary on disk: when it changed, and whether it carries the helix module."""

    path: str
    readable: bool
    mtime: float | None = None
    helix: bool = False
    version: str | None = None  # the `[HELIX] VERSION:` banner compiled in


@dataclass
class Observations:
    """Lazily gathered, cached facts. Thread-safe: probes run concurrently."""

    backend: Backend = field(default_factory=choose_backend)

    def __post_init__(self) -> None:
        self._once = Once()

    def unsupported(self, fact: str) -> str | None:
        """Why this platform cannot give `fact` (None: it can)."""
        return self.backend.unsupported.get(fact)

    # ── processes and listeners
    @cached_property
    def processes(self) -> list[ProcInfo]:
        return self._once.get("processes", lambda: list(self.backend.processes()))

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
    def helix_app_pid(self) -> int | None:
        """The pid in the Helix app's pid file, if that file exists and holds one."""
        try:
            with open(os.path.expanduser(HELIX_APP_PID_FILE)) as fh:
                text = fh.read(64).strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isascii() and text.isdigit() else None

    @cached_property
    def tcp_listeners(self) -> list[Listener]:
        return self._tcp_scan[0]

    @cached_property
    def listeners_unknown(self) -> str | None:
        """Why the listener list may be incomplete (None: it is complete)."""
        return self._tcp_scan[1]

    @cached_property
    def _tcp_scan(self) -> tuple[list[Listener], str | None]:
        return self._once.get("tcp", self.backend.tcp_listeners)

    def port_accepts(self, port: int, timeout: float) -> bool:
        """Whether 127.0.0.1:PORT accepts a TCP connection (closed at once, nothing sent): the
        cross-check when the listener list cannot say who listens."""
        def attempt() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                    return True
            except OSError:
                return False
        return self._once.get(("accepts", port), attempt)

    def listeners_on_port(self, port: int) -> list[Listener]:
        return [lis for lis in self.tcp_listeners if lis.port == port]

    def socket_holders(self, path: str) -> list[Listener]:
        """Processes that hold the Unix socket at `path` open (listening or not)."""
        return self._once.get(("holders", path), lambda: self.backend.socket_holders(path, self.processes))

    # ── files
    def path_state(self, path: str, timeout: float) -> UnixPathInfo:
        """What is at a socket path, and one connect() to it (nothing sent)."""
        return self._once.get(("path", path), lambda: classify(path, timeout=timeout))

    def exists(self, path: str) -> bool:
        return self._once.get(("exists", path), lambda: os.path.lexists(path))

    def binary(self, path: str) -> BinaryFacts:
        return self._once.get(("binary", path), lambda: _binary_facts(path))

    def dylibs(self, binary: str) -> tuple[OtoolDeps | None, str | None]:
        return self._once.get(("dylibs", binary), lambda: self.backend.dylibs(binary))

    def gst_log(self, path: str) -> GstLogSummary | None:
        """The GST_DEBUG log's summary; None when the file does not exist."""
        return self._once.get(("gst-log", path), lambda: _scan(path, "gst", GstLogSummary))

    def qemu_log(self, path: str) -> QemuLogSummary | None:
        """QEMU's log summary; None when the file does not exist."""
        return self._once.get(("qemu-log", path), lambda: _scan(path, "qemu", QemuLogSummary))

    def bridge_log(self, path: str) -> BridgeLogSummary | None:
        """desktop-bridge's log summary; None when the file does not exist."""
        return self._once.get(("bridge-log", path), lambda: _scan(path, "bridge", BridgeLogSummary))

    def drm_log(self, path: str) -> DrmLogSummary | None:
        """helix-drm-manager's journal summary; None when the file does not exist."""
        return self._once.get(("drm-log", path), lambda: _scan(path, "drm", DrmLogSummary))

    # ── the scanout path, seen from inside the guest
    def processes_named(self, name: str) -> list[ProcInfo]:
        """Processes whose name or program is `name` (e.g. desktop-bridge), oldest first."""
        found = [p for p in self.processes
                 if name in (p.name, os.path.basename(p.exe or ""), os.path.basename(p.argv[0]) if p.argv else "")]
        return sorted(found, key=lambda p: p.started or 0)

    def environ(self, pid: int) -> dict[str, str] | None:
        return self._once.get(("environ", pid), lambda: scanout.process_environ(pid))

    def connectors(self) -> list[scanout.Connector]:
        return self._once.get("connectors", scanout.connectors)

    def mount_at(self, path: str) -> scanout.MountEntry | None:
        return self._once.get(("mount", path), lambda: scanout.mount_at(path))

    def manager_env(self) -> dict[str, str] | None:
        """/etc/helix-drm-manager.env (None: absent or unreadable here)."""
        return self._once.get("manager-env", scanout.env_file)

    def scanout_id_file(self, runtime_dir: str | None) -> tuple[str, int | None, str | None]:
        return self._once.get(("scanout-id", runtime_dir), lambda: scanout.scanout_id_file(runtime_dir))

    def unit_state(self, unit: str) -> str | None:
        """The systemd unit's ActiveState (active, failed, activating …); None: no systemd
        here, or no such unit installed."""
        def ask() -> str | None:
            result = self.backend.run(["systemctl", "show", "-p", "LoadState", "-p", "ActiveState", unit],
                                      timeout=3.0)
            props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
            return props.get("ActiveState") if result.ok and props.get("LoadState") == "loaded" else None
        return self._once.get(("unit", unit), ask)

    # ── tools
    def gst_inspect(self, element: str, timeout: float) -> CommandResult:
        return self._once.get(("gst-inspect", element), lambda: self.backend.run(["gst-inspect-1.0", element], timeout))

    @cached_property
    def pipewire(self) -> PipeWireFacts:
        return PipeWireFacts()

    def raw_outputs(self) -> dict[str, str]:
        """What the facts were read from, for the bundle: every command run and its output,
        and the command lines of the QEMU and socat processes."""
        lines = [f"{p.pid} {'(not readable without sudo)' if p.argv_unreadable else p.command_line}"
                 for p in self.processes if p.is_qemu or p.is_socat]
        return {"commands.txt": self.backend.transcript.text(), "processes.txt": "\n".join(lines) + "\n"}

    def tool_versions(self) -> dict[str, str | None]:
        return dict(_TOOL_VERSIONS.get("versions", _tool_versions))


def _binary_facts(path: str) -> BinaryFacts:
    """Stream the file looking for `[HELIX]` and the VERSION banner (never read it whole)."""
    try:
        mtime = os.stat(path).st_mtime
        found, version, tail = False, None, b""
        with open(path, "rb") as fh:
            while chunk := fh.read(SCAN_CHUNK):
                window = tail + chunk
                found = found or HELIX_MARKER in window
                if version is None and (m := HELIX_VERSION_RE.search(window)):
                    version = m.group(1).decode("ascii", "replace").rstrip()
                if found and version:
                    break
                tail = window[-200:]
    except OSError:
        return BinaryFacts(path, False)
    return BinaryFacts(path, True, mtime, found, version)


def _scan(path: str, kind: str, expected: type[S]) -> S | None:
    """One log's summary; None when the file does not exist. `-` is standard input, read
    once per process and kept (several logs may name it: `pbpaste | helixdiag run --qemu-log -`)."""
    if path != logscan.STDIN and not os.path.isfile(path):
        return None
    summary = logscan.scan_path(path, kind=kind)
    if not isinstance(summary, expected):  # a forced kind always gives its own summary
        raise TypeError(f"scanning {path} as {kind} gave a {type(summary).__name__}")
    return summary


def _tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name, argv, pattern in (
        ("gstreamer", ["gst-launch-1.0", "--version"], r"GStreamer (\S+)"),
        ("socat", ["socat", "-V"], r"socat version (\S+)"),
        ("qemu", ["qemu-system-aarch64", "--version"], r"version (\S+)"),
    ):
        result = run_command(argv, timeout=2.0)
        m = re.search(pattern, result.stdout + result.stderr) if result.error is None else None
        versions[name] = m.group(1) if m else None
    versions["pyav"] = _installed_version("av")  # not imported: the guest agent has no PyAV
    versions["python"] = platform.python_version()
    return versions


def _installed_version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# Tool versions do not change while the process runs (`watch` runs again and again).
_TOOL_VERSIONS = Once()
