"""The bundled local stack, diagnosed — and broken on purpose, one layer at a time.

The stack lives in a temporary directory on loopback only:

    real socat TCP-LISTEN:127.0.0.1:PORT ─► Unix socket ─► `serve` (in this process)

Break scenarios change one thing (a stale socket file, a socat pointing elsewhere, a host
that hangs, …) and the self-test passes only when the diagnosis names exactly that. Where
a scenario needs "QEMU running", a stand-in QEMU is started: a copy of `sleep` named
`qemu-system-aarch64` that carries a `[HELIX] VERSION` marker, so the QEMU probes see a
process with the right name and a helix build, which listens on nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helixdiag.config import RunConfig
from helixdiag.errors import ConfigError, UsageError
from helixdiag.faults import Fault
from helixdiag.report.model import Report
from helixdiag.selftest.pipewire import PipeWireStack, PipeWireUnavailable, Source, private_pipewire
from helixdiag.server import FrameServer, ServerConfig

PIPEWIRE_VARS = ("PIPEWIRE_REMOTE", "PIPEWIRE_RUNTIME_DIR")
FAKE_QEMU_NAME = "qemu-system-aarch64"
FAKE_QEMU_MARKER = b"\n[HELIX] VERSION: helixdiag-selftest-stand-in\n"
# What a stand-in process runs: hold a loopback port without answering, or serve HXFR on it.
_LISTEN_CODE = ("import socket, time\n"
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(3600)\n")
_SERVE_CODE = ("import time\n"
               "from helixdiag.faults import parse_fault\n"
               "from helixdiag.server import FrameServer, ServerConfig\n"
               "fault = {fault}\n"
               "FrameServer(ServerConfig(tcp=[('127.0.0.1', {port})], size=(320, 240), idle_timeout=10,\n"
               "                         fault=parse_fault(fault) if fault else None)).start()\n"
               "time.sleep(3600)\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Stack:
    """Processes and files of one self-test run; `close()` removes every one of them."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hxd-st-", dir="/tmp")))
    port: int = 0
    socket_path: str = ""
    server: FrameServer | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pipewire: PipeWireStack | None = None
    pipewire_source: Source | None = None
    during_run: list[Callable[[], None]] = field(default_factory=list)  # started with the run
    _contexts: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.socket_path = str(self.root / "helix-frame-export.sock")

    # -- parts
    def start_serve(self, fault: Fault | None = None, path: str | None = None) -> None:
        path = path or self.socket_path
        self.server = FrameServer(ServerConfig(unix=[path], size=(640, 360), fault=fault, idle_timeout=10))
        self.server.start()
        self.notes.append(f"serve on unix://{path}" + (f" with --fault {fault}" if fault else ""))

    def start_socat(self, target: str | None = None) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise ConfigError("socat is not installed (scripts/setup-system.sh installs it)")
        target = target or self.socket_path
        argv = [socat, f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{target}"]
        self._spawn(argv, cwd=str(self.root))
        if not wait_listening(self.port):
            raise ConfigError(f"socat did not start listening on 127.0.0.1:{self.port}")
        self.notes.append(f"socat 127.0.0.1:{self.port} → {target}")

    def start_pipewire(self) -> None:
        """A private PipeWire with a live video source (PIPEWIRE-TESTING.md); raises
        PipeWireUnavailable when this machine cannot run one."""
        self.pipewire = self._contexts.enter_context(private_pipewire())
        self.pipewire_source = self.pipewire.start_source()
        self.notes.append(f"private PipeWire in {self.pipewire.runtime_dir}, video source node "
                          f"{self.pipewire_source.node_id} (serial {self.pipewire_source.serial})")

    @contextlib.contextmanager
    def client_environment(self):
        """The probes find PipeWire through the environment: point it at the private daemon
        for the duration of the run, and restore it afterwards."""
        if self.pipewire is None:
            yield
            return
        saved = {k: os.environ.get(k) for k in (*self.pipewire.client_env, *PIPEWIRE_VARS)}
        for k in PIPEWIRE_VARS:
            os.environ.pop(k, None)
        os.environ.update(self.pipewire.client_env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def start_fake_qemu(self, helix_port: int | None = None, *, serve: bool = False, listen: bool = False,
                        fault: Fault | None = None, cwd: Path | None = None) -> subprocess.Popen:
        """A stand-in QEMU: a copy of this Python interpreter named qemu-system-aarch64 that
        carries a `[HELIX] VERSION` marker, so the QEMU probes see a process with the right
        name and a helix build. With `helix_port` its command line has
        `-device virtio-gpu-gl-pci,helix-port=N` (the tcp topology); with `serve` it serves
        HXFR on 127.0.0.1:N like a healthy H2+ host; with `listen` it only holds the port."""
        cwd = cwd or self.root
        binary = cwd / FAKE_QEMU_NAME
        if not binary.exists():
            shutil.copyfile(os.path.realpath(sys.executable), binary)
            with open(binary, "ab") as fh:  # trailing bytes do not disturb an ELF/Mach-O binary
                fh.write(FAKE_QEMU_MARKER)
            binary.chmod(0o755)
            os.utime(binary, (time.time() - 60, time.time() - 60))  # older than the process
        if serve and helix_port:
            code = _SERVE_CODE.format(port=helix_port, fault=repr(str(fault)) if fault else None)
        elif listen and helix_port:
            code = _LISTEN_CODE.format(port=helix_port)
        else:
            code = "import time; time.sleep(3600)"
        argv = [str(binary), "-c", code]
        if helix_port:
            argv += ["-device", f"virtio-gpu-gl-pci,helix-port={helix_port}"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               "PYTHONHOME": f"{sys.base_prefix}{os.pathsep}{sys.base_exec_prefix}"}
        proc = self._spawn(argv, cwd=str(cwd), env=env)
        if (serve or listen) and helix_port and not wait_listening(helix_port):
            raise ConfigError(f"the stand-in QEMU did not start listening on 127.0.0.1:{helix_port}")
        what = "serving HXFR" if serve else "holding the port" if listen else "listening on nothing"
        port = f" with helix-port={helix_port}" if helix_port else ""
        self.notes.append(f"stand-in QEMU pid {proc.pid} (a copy of python named {FAKE_QEMU_NAME}){port}, "
                          f"{what}, cwd {cwd}")
        return proc

    def make_stale_socket(self, path: str | None = None) -> None:
        """Bind, then let the owner die: the file stays, nobody listens."""
        path = path or self.socket_path
        child = subprocess.Popen([sys.executable, "-c", (
            "import socket,sys,os,signal\n"
            "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"), path])
        child.wait(timeout=10)
        self.notes.append(f"stale socket {path} (its owner was SIGKILLed)")

    def hold_port_with_stranger(self, port: int | None = None) -> subprocess.Popen:
        port = port or self.port
        proc = self._spawn([sys.executable, "-c", _LISTEN_CODE.format(port=port)])
        if not wait_listening(port):
            raise ConfigError("the port-holding stand-in did not start")
        self.notes.append(f"an unrelated process (python) holds 127.0.0.1:{port}")
        return proc

    def _spawn(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        self.processes.append(proc)
        return proc

    # -- diagnosis input
    def run_config(self, **overrides) -> RunConfig:
        cfg = RunConfig(side="both", host="127.0.0.1", port=self.port, socket=self.socket_path,
                        timeout=1.0, deadline=20.0)
        cfg.sources = {"side": "selftest", "host": "selftest (loopback)", "port": "selftest socat port",
                       "socket": "selftest socket"}
        if self.pipewire_source is not None:
            cfg.pipewire_node = str(self.pipewire_source.serial)
            cfg.sources["pipewire_node"] = "selftest PipeWire source"
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg

    def close(self) -> None:
        """Remove everything this stack started. Each step runs even when an earlier one
        raised (or a Ctrl-C arrived during it): no process or file is left behind."""
        with contextlib.ExitStack() as teardown:  # runs in reverse: PipeWire, serve, processes, files
            teardown.callback(shutil.rmtree, self.root, ignore_errors=True)
            teardown.callback(self._kill_processes)
            teardown.callback(self._stop_server)
            teardown.push(self._contexts)  # the private PipeWire, if any
        self.pipewire = self.pipewire_source = None

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _kill_processes(self) -> None:
        processes, self.processes = list(self.processes), []
        for proc in processes:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)  # socat's forked children too
            with contextlib.suppress(OSError):
                proc.kill()
        for proc in processes:
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Scenario:
    id: str  # the failure id the diagnosis must name
    description: str
    build: Callable[[Stack], dict]  # sets up the stack; returns RunConfig overrides


def _healthy(s: Stack) -> dict:
    s.start_serve()
    s.start_socat()
    with contextlib.suppress(PipeWireUnavailable):  # "where available" (SPEC.md §3)
        s.start_pipewire()
    return {}


def _stalled_screen(s: Stack) -> dict:
    s.start_serve()
    s.start_socat()
    s.start_pipewire()  # raises PipeWireUnavailable: the scenario cannot run here
    source = s.pipewire_source

    def freeze() -> None:
        time.sleep(0.4)  # a first burst of frames, then the producer stops (SIGSTOP)
        source.pause()

    s.during_run.append(freeze)
    s.notes.append("the video source freezes (SIGSTOP) 0.4 s into the run")
    return {}


def _with_fault(name: str) -> Callable[[Stack], dict]:
    def build(s: Stack) -> dict:
        s.start_serve(Fault(name))
        s.start_socat()
        return {}
    return build


def _stale(s: Stack) -> dict:
    s.make_stale_socket()  # left by an earlier QEMU: older than the running one
    # Process start times are only known to about a second (Linux: boot time in whole
    # seconds), so age the file like a real leftover rather than racing the clock.
    os.utime(s.socket_path, (time.time() - 60, time.time() - 60))
    s.start_fake_qemu()
    s.start_socat()
    return {}


def _missing(s: Stack) -> dict:
    s.start_fake_qemu()
    s.start_socat()  # socat is fine; QEMU never created its socket
    return {}


def _not_a_socket(s: Stack) -> dict:
    s.start_fake_qemu()
    Path(s.socket_path).write_text("not a socket: a regular file where QEMU wants to bind\n")
    s.start_socat()
    return {}


def _no_socat(s: Stack) -> dict:
    s.start_serve()
    return {}


def _wrong_target(s: Stack) -> dict:
    s.start_serve()
    s.start_socat(target=str(s.root / "elsewhere" / "helix-frame-export.sock"))
    return {}


def _port_conflict(s: Stack) -> dict:
    s.start_serve()
    s.hold_port_with_stranger()
    return {}


SCENARIOS: dict[str, Scenario] = {
    sc.id: sc for sc in (
        Scenario("socket-stale", "QEMU and socat run; the socket file's owner is gone", _stale),
        Scenario("socket-missing", "QEMU and socat run; QEMU never created its socket", _missing),
        Scenario("socat-not-running", "the host serves the socket; no socat forwards the port", _no_socat),
        Scenario("socat-wrong-target", "socat forwards to a path where nothing is", _wrong_target),
        Scenario("stream-no-reply", "the host accepts and reads but never replies (serve --fault hang)",
                 _with_fault("hang")),
        Scenario("stream-bad-magic", "the host's replies start with a wrong magic", _with_fault("bad-magic")),
        Scenario("stream-no-sps-pps", "keyframes come without SPS/PPS (the H0/H1 host)", _with_fault("no-sps")),
        Scenario("socket-not-a-socket", "a regular file sits where the socket should be", _not_a_socket),
        Scenario("socat-port-conflict", "an unrelated process holds the guest-facing port", _port_conflict),
        Scenario("pipewire-static-stall", "the screen source sends a burst of frames, then freezes "
                 "(needs PipeWire)", _stalled_screen),
    )
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def build(break_id: str | None) -> tuple[Stack, RunConfig]:
    """Start the stack (healthy, or with one scenario); the caller must close() it."""
    if break_id is not None and break_id not in SCENARIOS:
        raise UsageError(f"unknown --break {break_id!r}; choose one of: all, {', '.join(SCENARIOS)}")
    stack = Stack()
    try:
        overrides = (SCENARIOS[break_id].build if break_id else _healthy)(stack)
        return stack, stack.run_config(**overrides)
    except BaseException:
        stack.close()
        raise


def diagnose(break_id: str | None) -> tuple[Report, list[str]]:
    """Build the stack (healthy or with one scenario), run every probe against it from both
    sides, tear it down; the report and what was started."""
    from helixdiag import runner

    stack, cfg = build(break_id)
    with stack, stack.client_environment():
        loopback_only(cfg)
        for action in stack.during_run:
            threading.Thread(target=action, name="selftest-break", daemon=True).start()
        report = runner.Runner(cfg, runner.select([], True)).run()
        return report, list(stack.notes)


def loopback_only(cfg: RunConfig) -> None:
    """The self-test never dials anything but loopback (SPEC.md §6)."""
    if cfg.host not in ("127.0.0.1", "::1", "localhost"):
        raise ConfigError(f"selftest must use loopback, got host {cfg.host}")
