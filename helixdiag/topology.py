"""Which path this host uses, discovered from observations (SPEC.md §1):

  socat: socat TCP-LISTEN:PORT ─► Unix socket ─► QEMU (the H1 era)
  tcp:   QEMU listens on 127.0.0.1:PORT itself (helix-port=PORT; H2 onward)

Every value keeps its source ("--port", "QEMU helix-port=", "socat TCP-LISTEN", …) so a
mismatch can say where each side's number came from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from helixdiag import net
from helixdiag.config import KNOWN_PORTS, SOCKET_NAME, RunConfig
from helixdiag.observe import parsers
from helixdiag.observe.system import Observations, ProcInfo

QEMU_DEFAULT_PORT = 15937  # helix-port=0 means this (qemu-utm virtio-gpu.h)


@dataclass
class SocatHop:
    process: ProcInfo
    config: parsers.SocatConfig | None
    error: str | None = None

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {**self.process.describe()}
        if self.config is not None:
            out.update(listen_port=self.config.listen_port, bind=self.config.bind,
                       fork=self.config.fork, target_kind=self.config.target_kind,
                       target=self.config.target_path_as_written, target_resolved=self.config.target_path)
        if self.error:
            out["parse_error"] = self.error
        return out


@dataclass
class QemuInstance:
    process: ProcInfo
    config: parsers.QemuConfig | None
    error: str | None = None

    @property
    def helix_port(self) -> int | None:
        if self.config is None or self.config.helix_port is None:
            return None
        return self.config.helix_port or QEMU_DEFAULT_PORT

    @property
    def binary(self) -> str | None:
        if self.config is not None and self.config.binary:
            return self.config.binary
        return self.process.exe


@dataclass
class Topology:
    kind: str  # socat | tcp | unknown
    kind_source: str
    listen_port: int | None  # where the host accepts the guest's TCP connection
    port_source: str
    socket_path: str | None
    socket_source: str
    qemu: list[QemuInstance] = field(default_factory=list)
    socat: list[SocatHop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stream_endpoint(self) -> net.Endpoint | None:
        """The host endpoint itself: the Unix socket (socat topology) or QEMU's port."""
        if self.kind == "socat" and self.socket_path:
            return net.Endpoint("unix", path=self.socket_path)
        if self.listen_port:
            return net.Endpoint("tcp", host="127.0.0.1", port=self.listen_port)
        return None

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind, "kind_source": self.kind_source,
            "listen_port": self.listen_port, "port_source": self.port_source,
            "socket": self.socket_path, "socket_source": self.socket_source,
            "qemu_pids": [q.process.pid for q in self.qemu],
            "socat_pids": [s.process.pid for s in self.socat],
            "notes": self.notes,
        }


def discover(cfg: RunConfig, obs: Observations) -> Topology:
    qemu = [_qemu(p) for p in obs.qemu_processes]
    socat = [_socat(p) for p in obs.socat_processes]
    socat = [s for s in socat if s.config is None or s.config.listen_kind in ("tcp", "tcp4", "tcp6")
             or s.config.listen_port is not None]
    notes: list[str] = []

    # With --topology tcp a socat on this machine is someone else's: it must not decide the
    # port or the socket.
    hops = [] if cfg.topology == "tcp" else socat

    # The port the host listens on for the guest.
    port, port_source = _listen_port(cfg, obs, qemu, hops, notes)

    # The Unix socket (only meaningful with a socat hop).
    socket_path, socket_source = _socket_path(cfg, qemu, hops, port)

    # The topology itself.
    if cfg.topology != "auto":
        kind, kind_source = cfg.topology, cfg.source("topology")
    elif socat or (socket_path and socket_source != "default"):
        kind, kind_source = "socat", "socat running" if socat else f"socket given ({socket_source})"
    elif any(q.helix_port for q in qemu) or port is not None:
        kind, kind_source = "tcp", "QEMU helix-port=" if any(q.helix_port for q in qemu) else "a TCP listener"
    else:
        kind, kind_source = "unknown", "no QEMU, socat or listener found"
    return Topology(kind, kind_source, port, port_source, socket_path, socket_source, qemu, socat, notes)


def _qemu(p: ProcInfo) -> QemuInstance:
    try:
        return QemuInstance(p, parsers.parse_qemu_cmdline(list(p.argv)))
    except parsers.ParseError as exc:
        return QemuInstance(p, None, str(exc))


def _socat(p: ProcInfo) -> SocatHop:
    try:
        return SocatHop(p, parsers.parse_socat_cmdline(list(p.argv), cwd=p.cwd))
    except parsers.ParseError as exc:
        return SocatHop(p, None, str(exc))


def _listen_port(cfg, obs, qemu, socat, notes) -> tuple[int | None, str]:
    if cfg.port is not None:
        # Several stacks on one machine (CI, tests): prefer the one on the configured port.
        socat = sorted(socat, key=lambda h: not (h.config and h.config.listen_port == cfg.port))
        qemu = sorted(qemu, key=lambda q: q.helix_port != cfg.port)
    for hop in socat:
        if hop.config and hop.config.listen_port:
            return hop.config.listen_port, f"socat TCP-LISTEN (pid {hop.process.pid})"
    for q in qemu:
        if q.helix_port:
            return q.helix_port, f"QEMU helix-port= (pid {q.process.pid})"
    if cfg.port is not None:
        return cfg.port, cfg.source("port")
    listening = {lis.port for lis in obs.tcp_listeners if _loopback_or_any(lis.address)}
    for candidate in KNOWN_PORTS:
        if candidate in listening:
            notes.append(f"port {candidate} found listening among the known ports {KNOWN_PORTS}")
            return candidate, "a known port that is listening"
    return None, "none found"


def _socket_path(cfg, qemu, socat, port) -> tuple[str | None, str]:
    if cfg.socket:
        return cfg.socket, cfg.source("socket")
    for hop in socat:
        c = hop.config
        if c and c.target_kind == "unix" and c.target_path and (port is None or c.listen_port == port):
            return c.target_path, f"socat UNIX-CONNECT (pid {hop.process.pid})"
    for q in qemu:
        # H1 binds a relative name, so the socket lives in QEMU's working directory.
        if q.process.cwd:
            candidate = os.path.join(q.process.cwd, SOCKET_NAME)
            if os.path.lexists(candidate):
                return candidate, f"QEMU working directory (pid {q.process.pid})"
    return None, "none found"


def _loopback_or_any(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host in ("127.0.0.1", "0.0.0.0", "::", "::1", "*", "[::]", "[::1]") or host.startswith("127.")
