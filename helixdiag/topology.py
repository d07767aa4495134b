"""The path this run judges, and how it is built.

  socat: socat TCP-LISTEN:PORT ─► Unix socket ─► QEMU (the H1 era)
  tcp:   QEMU listens on 127.0.0.1:PORT itself (helix-port=PORT; H2 onward)

A machine is not empty: a Mac runs several VMs, old socats and test servers. A run judges
the instances of *its* path — found from what the user named (`--port`, `--socket`) or,
when nothing is named, from what discovery finds — and lists every other QEMU and socat
as "also on this machine", never judging them. When several candidates remain, evidence
breaks the tie in a fixed order (`TIE_RULES`), and the rule that decided goes into the
report. Every value keeps its source ("--port", "QEMU helix-port=", …) so a mismatch can
say where each side's number came from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from helixdiag import net
from helixdiag.config import KNOWN_PORTS, SOCKET_NAME, RunConfig
from helixdiag.observe import parsers
from helixdiag.observe.facts import Observations
from helixdiag.observe.processes import START_TIME_PRECISION_S, ProcInfo

# How a tie between candidates is broken, strongest evidence first.
TIE_RULES = ("holds the listener", "the Helix app's pid file", "the newest start time")

# Where a socket path came from when nobody named it: not evidence of the topology.
WEAK_SOURCES = ("default", "UTM default", "UTM default (not readable here)")


@dataclass
class SocatHop:
    process: ProcInfo
    config: parsers.SocatConfig | None
    error: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def listen_port(self) -> int | None:
        return self.config.listen_port if self.config else None

    def targets(self, path: str) -> bool:
        c = self.config
        return bool(c and c.target_kind == "unix" and c.target_path and same_path(c.target_path, path))

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {**self.process.describe()}
        if self.config is not None:
            out.update(listen_port=self.config.listen_port, bind=self.config.bind,
                       fork=self.config.fork, target_kind=self.config.target_kind,
                       target=self.config.target_path_as_written, target_resolved=self.config.target_path)
        if self.error:
            out["parse_error"] = self.error
        return out

    def one_line(self) -> str:
        c = self.config
        if c is None:
            return f"socat pid {self.pid} (unreadable command line: {self.error})"
        return f"socat pid {self.pid} ({c.listen_port} → {c.target_path or c.target.raw})"


@dataclass
class QemuInstance:
    process: ProcInfo
    config: parsers.QemuConfig | None
    error: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def helix_port(self) -> int | None:
        if self.config is None or self.config.helix_port is None:
            return None
        # 0 is not "the default": QEMU binds port 0, so the system picks a random port nobody
        # can know (qemu.listener says so). Falsy here: not a port this run can use.
        return self.config.helix_port

    @property
    def binary(self) -> str | None:
        if self.config is not None and self.config.binary:
            return self.config.binary
        return self.process.exe

    @property
    def app(self) -> str:
        """Who started it: the Helix Mac app (its bundled QEMU), UTM (QEMULauncher), or QEMU by hand."""
        binary = self.binary or ""
        if "Helix.app/Contents/MacOS/" in binary:
            return "helix-app"
        launcher = (self.config.launcher if self.config else None) or ""
        if "UTM.app/" in binary or "QEMULauncher" in launcher:
            return "utm"
        return "qemu"

    def restart_how(self) -> str:
        """How to restart this VM, in the words of whatever started it."""
        name = next(iter(self.config.option_values("name")), None) if self.config else None
        if self.app == "utm" and name:
            return f'restart the VM (`utmctl stop "{name}"`, then `utmctl start "{name}"`)'
        if self.app == "helix-app":
            return "restart the VM (quit the Helix app and open it again: it starts its QEMU)"
        return "restart the VM"

    def one_line(self) -> str:
        port = f"helix-port={self.helix_port}" if self.helix_port else "no helix-port"
        return f"QEMU pid {self.pid} ({port}, cwd {self.process.cwd or '?'})"


@dataclass
class Topology:
    kind: str  # socat | tcp | unknown
    kind_source: str
    listen_port: int | None  # where the host accepts the guest's TCP connection
    port_source: str
    socket_path: str | None  # the Unix socket hop (socat topology only)
    socket_source: str
    qemu: QemuInstance | None = None  # the QEMU of this path (None: none runs for it)
    qemu_rule: str = ""
    socat: SocatHop | None = None  # the socat of this path
    socat_rule: str = ""
    stale_qemu: QemuInstance | None = None  # an older QEMU for the same port that holds it
    all_qemu: list[QemuInstance] = field(default_factory=list)
    all_socat: list[SocatHop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stream_endpoint(self) -> net.Endpoint | None:
        """The host endpoint itself: the Unix socket (socat topology) or QEMU's port."""
        if self.kind == "socat" and self.socket_path:
            return net.Endpoint("unix", path=self.socket_path)
        if self.listen_port:
            return net.Endpoint("tcp", host="127.0.0.1", port=self.listen_port)
        return None

    def elsewhere(self) -> list[str]:
        """The QEMUs and socats on this machine that are not this path's: listed, never judged."""
        mine = {id(x) for x in (self.qemu, self.socat, self.stale_qemu) if x is not None}
        return [x.one_line() for x in (*self.all_qemu, *self.all_socat) if id(x) not in mine]

    def judged(self, component: str) -> dict[str, object]:
        """Evidence for a probe of `component` ("qemu" or "socat"): which instance this run
        judges and the rule that chose it, and the ones on this machine it does not judge."""
        chosen, rule = (self.qemu, self.qemu_rule) if component == "qemu" else (self.socat, self.socat_rule)
        out: dict[str, object] = {"chosen_by": rule} if chosen is not None else {}
        if elsewhere := self.elsewhere():
            out["also_on_this_machine"] = elsewhere
        return out

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind, "kind_source": self.kind_source,
            "listen_port": self.listen_port, "port_source": self.port_source,
            "socket": self.socket_path, "socket_source": self.socket_source,
            "qemu_pid": self.qemu.pid if self.qemu else None, "qemu_rule": self.qemu_rule,
            "socat_pid": self.socat.pid if self.socat else None, "socat_rule": self.socat_rule,
            "stale_qemu_pid": self.stale_qemu.pid if self.stale_qemu else None,
            "also_on_this_machine": self.elsewhere(),
            "notes": self.notes,
        }


# ───────────────────────────────────────────────────────────────── choosing one candidate

T = TypeVar("T", QemuInstance, SocatHop)


def choose(candidates: Sequence[T], holders: set[int], pid_file: int | None) -> tuple[T | None, str]:
    """One candidate and the rule that chose it (TIE_RULES, in order)."""
    if not candidates:
        return None, "no candidate"
    if len(candidates) == 1:
        return candidates[0], "the only candidate"
    pool = [c for c in candidates if c.pid in holders]
    if len(pool) == 1:
        return pool[0], f"{TIE_RULES[0]} (of {len(candidates)} candidates)"
    pool = pool or list(candidates)
    named = [c for c in pool if c.pid == pid_file]
    if named:
        return named[0], f"{TIE_RULES[1]} (of {len(candidates)} candidates)"
    newest = max(pool, key=lambda c: c.process.started or 0.0)
    return newest, f"{TIE_RULES[2]} (of {len(candidates)} candidates)"


def _choose_qemu_for_port(candidates: list[QemuInstance], holders: set[int], pid_file: int | None,
                          port: int) -> tuple[QemuInstance | None, str, QemuInstance | None]:
    """The QEMU for PORT among those configured for it, and a stale one holding the port.

    Two QEMUs configured for one port, the older holding it: the newer is the VM just
    started, and its bind failed because a leftover QEMU still has the port.
    """
    holder = next((q for q in candidates if q.pid in holders), None)
    if holder is not None and holder.pid != pid_file:
        newer = [q for q in candidates if q is not holder and _started_after(q, holder)]
        if newer:
            chosen, rule = choose(newer, set(), pid_file)
            return chosen, (f"{rule.split(' (')[0]} of the QEMUs configured for port {port}; "
                            f"the older pid {holder.pid} holds the port"), holder
    chosen, rule = choose(candidates, holders, pid_file)
    return chosen, rule, None


def _started_after(a: QemuInstance, b: QemuInstance) -> bool:
    sa, sb = a.process.started, b.process.started
    return sa is not None and sb is not None and sa - sb > START_TIME_PRECISION_S


# ───────────────────────────────────────────────────────────────────────── discovery


@dataclass
class _Facts:
    """What discovery looks at, gathered once."""

    cfg: RunConfig
    obs: Observations
    qemu: list[QemuInstance]
    socat: list[SocatHop]

    def port_holders(self, port: int | None) -> set[int]:
        if port is None:
            return set()
        return {lis.pid for lis in self.obs.listeners_on_port(port) if lis.pid}

    def socket_holders(self, path: str | None) -> set[int]:
        if not path:
            return set()
        return {h.pid for h in self.obs.socket_holders(path) if h.pid and h.listening}

    def holder_roles(self, port: int | None) -> set[str]:
        roles = set()
        for pid in self.port_holders(port):
            proc = self.obs.process(pid)
            roles.add(proc.role() if proc else "unknown")
        return roles

    @property
    def pid_file(self) -> int | None:
        return self.obs.helix_app_pid


def discover(cfg: RunConfig, obs: Observations) -> Topology:
    qemus = [_qemu(p) for p in obs.qemu_processes]
    socats = [_socat(p) for p in obs.socat_processes]
    # socat's `fork` children carry the parent's command line: one hop, not several.
    socat_pids = {s.pid for s in socats}
    socats = [s for s in socats if s.process.ppid not in socat_pids]
    listening = [s for s in socats if s.config is None or s.listen_port is not None]
    facts = _Facts(cfg, obs, qemus, listening)
    topo = _named_path(facts) or _discovered_path(facts)
    topo.all_qemu, topo.all_socat = qemus, listening
    if cfg.socket and topo.kind == "tcp":
        topo.notes.append(f"the socket {cfg.socket} ({cfg.source('socket')}) is not part of a tcp path: "
                          "QEMU listens on the port itself")
    if topo.qemu is None:
        _attach_qemu(facts, topo)
    return topo


def _socket_named(cfg: RunConfig) -> bool:
    return bool(cfg.socket) and cfg.source("socket") not in WEAK_SOURCES


def _named_path(f: _Facts) -> Topology | None:
    """The path the user named with --port and/or --socket (None when nothing is named)."""
    cfg = f.cfg
    port, socket_named = cfg.port, _socket_named(cfg)
    if port is None and not socket_named:
        return None
    allow_socat, allow_tcp = cfg.topology != "tcp", cfg.topology != "socat"

    if allow_socat and port is not None:
        on_port = [s for s in f.socat if s.listen_port == port]
        if on_port:
            hop, rule = choose(on_port, f.port_holders(port), None)
            return _socat_path(f, hop, rule, f"socat listens on {port}", cfg.source("port"))
    if allow_tcp and port is not None:
        configured = [q for q in f.qemu if q.helix_port == port]
        if configured:
            q, rule, stale = _choose_qemu_for_port(configured, f.port_holders(port), f.pid_file, port)
            topo = _tcp_path(f, port, f"QEMU helix-port= (pid {q.pid})", f"QEMU helix-port={port} (pid {q.pid})")
            topo.qemu, topo.qemu_rule, topo.stale_qemu = q, rule, stale
            return topo
        if f.holder_roles(port) & {"qemu", "helixdiag-serve"}:
            pids = ", ".join(str(pid) for pid in sorted(f.port_holders(port)))
            return _tcp_path(f, port, f"a listener on {port} (pid {pids})",
                             f"a QEMU or helixdiag serve listens on {port}")
    if allow_socat and socket_named:
        into = [s for s in f.socat if s.targets(cfg.socket)]
        hop, rule = choose(into, f.port_holders(port), None) if into else (None, "")
        return _socat_path(f, hop, rule, f"socket given ({cfg.source('socket')})",
                           cfg.source("port") if port else "")
    if allow_tcp and f.port_holders(port):
        return _tcp_path(f, port, cfg.source("port"), f"a TCP listener on {port}")
    if cfg.topology != "auto":
        return _explicit(f)
    # Named, but nothing on this machine is configured for it: the other stacks here belong
    # to other paths (listed, not judged).
    return Topology("unknown", f"nothing on this machine is configured for port {port}", port,
                    cfg.source("port"), None, "none found")


def _discovered_path(f: _Facts) -> Topology:
    """Nothing named: the path discovery finds, today's (a QEMU with helix-port) first."""
    cfg = f.cfg
    configured = [q for q in f.qemu if q.helix_port] if cfg.topology != "socat" else []
    if configured:
        holders = {pid for q in configured for pid in f.port_holders(q.helix_port)}
        first, _ = choose(configured, holders, f.pid_file)
        port = first.helix_port
        same_port = [q for q in configured if q.helix_port == port]
        q, rule, stale = _choose_qemu_for_port(same_port, f.port_holders(port), f.pid_file, port)
        topo = _tcp_path(f, port, f"QEMU helix-port= (pid {q.pid})", f"QEMU helix-port= (pid {q.pid})")
        topo.qemu, topo.qemu_rule, topo.stale_qemu = q, rule, stale
        return topo
    hops = [s for s in f.socat if s.config is not None] if cfg.topology != "tcp" else []
    if hops:
        holders = {pid for s in hops for pid in f.port_holders(s.listen_port)}
        hop, rule = choose(hops, holders, None)
        return _socat_path(f, hop, rule, f"socat running (pid {hop.pid})", "")
    if cfg.topology != "tcp":
        # An H1-era QEMU binds a relative socket name in its working directory.
        bound = [q for q in f.qemu if q.process.cwd and f.obs.exists(os.path.join(q.process.cwd, SOCKET_NAME))]
        if bound:
            q, rule = choose(bound, set(), f.pid_file)
            topo = _socat_path(f, None, "", f"QEMU pid {q.pid} has {SOCKET_NAME} in its working directory", "")
            topo.socket_path = os.path.join(q.process.cwd, SOCKET_NAME)
            topo.socket_source = f"QEMU working directory (pid {q.pid})"
            topo.qemu, topo.qemu_rule = q, rule
            return topo
    if cfg.topology != "socat":
        listening = {lis.port for lis in f.obs.tcp_listeners if _loopback_or_any(lis.address)}
        for candidate in KNOWN_PORTS:
            if candidate in listening:
                topo = _tcp_path(f, candidate, "a known port that is listening", "a TCP listener")
                topo.notes.append(f"port {candidate} found listening among the known ports {KNOWN_PORTS}")
                return topo
    if cfg.topology != "auto":
        return _explicit(f)
    if f.socat:  # socats whose command line cannot be read
        return Topology("socat", "socat running", None, "none found", None, "none found")
    return Topology("unknown", "no QEMU, socat or listener found", None, "none found", None, "none found")


def _explicit(f: _Facts) -> Topology:
    """--topology given, and nothing on this machine serves what was named."""
    cfg = f.cfg
    kind_source = cfg.source("topology")
    if cfg.topology == "tcp":
        return _tcp_path(f, cfg.port, cfg.source("port") if cfg.port else "none found", kind_source)
    return _socat_path(f, None, "", kind_source, cfg.source("port") if cfg.port else "")


def _tcp_path(f: _Facts, port: int | None, port_source: str, kind_source: str) -> Topology:
    kind_source = f.cfg.source("topology") if f.cfg.topology == "tcp" else kind_source
    return Topology("tcp", kind_source, port, port_source, None, "not used: QEMU listens on the port")


def _socat_path(f: _Facts, hop: SocatHop | None, rule: str, kind_source: str, port_source: str) -> Topology:
    cfg = f.cfg
    kind_source = cfg.source("topology") if cfg.topology == "socat" else kind_source
    port = hop.listen_port if hop else cfg.port
    if hop is not None:
        port_source = f"socat TCP-LISTEN (pid {hop.pid})"
    elif not port_source:
        port_source = "none found"
    topo = Topology("socat", kind_source, port, port_source, None, "none found", socat=hop, socat_rule=rule)
    if cfg.socket:
        topo.socket_path, topo.socket_source = cfg.socket, cfg.source("socket")
    elif hop is not None and hop.config and hop.config.target_kind == "unix" and hop.config.target_path:
        topo.socket_path, topo.socket_source = hop.config.target_path, f"socat UNIX-CONNECT (pid {hop.pid})"
    return topo


def _attach_qemu(f: _Facts, topo: Topology) -> None:
    """The QEMU of this path: configured for its port, holding its listener, or bound in its
    socket's directory. With nothing named or found, the candidates are every QEMU."""
    named = f.cfg.port is not None or _socket_named(f.cfg)
    if topo.kind == "socat":
        sock = topo.socket_path
        holders = f.socket_holders(sock)
        where = os.path.dirname(os.path.realpath(sock)) if sock else None
        candidates = [q for q in f.qemu if q.pid in holders
                      or (where and q.process.cwd and os.path.realpath(q.process.cwd) == where)]
        if not candidates and topo.socat is not None and topo.socat.config.target_path_relative:
            # socat resolved a relative name against its own directory: QEMU's is elsewhere.
            name = os.path.basename(topo.socat.config.target_path or SOCKET_NAME)
            candidates = [q for q in f.qemu if q.process.cwd and f.obs.exists(os.path.join(q.process.cwd, name))]
        if not candidates and sock is None and not named:
            candidates = list(f.qemu)
        q, rule = choose(candidates, holders, f.pid_file)
        if q is not None and sock is None:
            found = os.path.join(q.process.cwd, SOCKET_NAME) if q.process.cwd else None
            if found and f.obs.exists(found):  # H1 binds a relative name: QEMU's cwd
                topo.socket_path, topo.socket_source = found, f"QEMU working directory (pid {q.pid})"
    else:
        holders = f.port_holders(topo.listen_port)
        candidates = [q for q in f.qemu if q.pid in holders
                      or (topo.listen_port is not None and q.helix_port == topo.listen_port)]
        if not candidates and topo.listen_port is None and not named:
            candidates = list(f.qemu)
        q, rule = choose(candidates, holders, f.pid_file)
    topo.qemu, topo.qemu_rule = q, rule


def _qemu(p: ProcInfo) -> QemuInstance:
    try:
        return QemuInstance(p, parsers.parse_qemu_cmdline(list(p.argv)))
    except parsers.ParseError as exc:
        return QemuInstance(p, None, str(exc))


def _socat(p: ProcInfo) -> SocatHop:
    if p.argv_unreadable:
        return SocatHop(p, None, f"socat pid {p.pid}: its command line is not readable without sudo "
                                 "(another user's process)")
    try:
        return SocatHop(p, parsers.parse_socat_cmdline(list(p.argv), cwd=p.cwd))
    except parsers.ParseError as exc:
        return SocatHop(p, None, str(exc))


def same_path(a: str, b: str) -> bool:
    return os.path.normpath(os.path.realpath(a)) == os.path.normpath(os.path.realpath(b))


def _loopback_or_any(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host in ("127.0.0.1", "0.0.0.0", "::", "::1", "*", "[::]", "[::1]") or host.startswith("127.")

