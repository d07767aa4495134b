"""The parts of a self-test stack, each started on loopback in a temporary directory and
all removed by `Stack.close()`: `serve` in this process on a Unix socket, a real socat in
front of it, a stand-in QEMU (a copy of the Python interpreter named `qemu-system-aarch64`
that carries a `[HELIX] VERSION` marker, optionally serving HXFR as one host generation),
the drm-manager stand-in, a desktop that holds a lease, and a private PipeWire.
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

import psutil

from helixdiag import protocol
from helixdiag.config import RunConfig
from helixdiag.drm_client import Lease, LeaseError, request_lease
from helixdiag.errors import ConfigError
from helixdiag.faults import Fault
from helixdiag.selftest.pipewire import PipeWireStack, Source, private_pipewire
from helixdiag.server import FrameServer, ServerConfig
from helixdiag.server.drm_manager import DrmManager, ManagerConfig

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
               "from helixdiag.server.generations import generation, parse_picture\n"
               "o = {options!r}\n"
               "log = open(o['log'], 'a', buffering=1) if o['log'] else None\n"
               "FrameServer(ServerConfig(tcp=[('127.0.0.1', {port})], size=tuple(o['size']), fps=o['fps'],\n"
               "                         idle_timeout=o['idle'], generation=generation(o['generation']),\n"
               "                         picture=parse_picture(o['picture']), max_outputs=o['max_outputs'],\n"
               "                         fault=parse_fault(o['fault']) if o['fault'] else None),\n"
               "            log=(lambda line: print(line, file=log)) if log else (lambda line: None)).start()\n"
               "time.sleep(3600)\n")


@dataclass(frozen=True)
class HostOptions:
    """How a stand-in QEMU serves HXFR: a host generation and its picture."""

    generation: str = "reference"
    picture: str = "moving"
    fps: int = 60
    size: tuple[int, int] = (320, 240)
    idle: float | None = 10.0  # None: the generation's
    max_outputs: int = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 5.0, proc: subprocess.Popen | None = None) -> bool:
    """Whether 127.0.0.1:PORT accepts within `timeout`; with `proc`, whether that process is
    the one listening there. A free port is only free when asked: another program (another
    stack beside this one) may take it before our socat or QEMU binds it, and must not be
    mistaken for ours."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return False  # it could not bind (the port was taken) or died
            if _listens(proc.pid, port):
                return True
        else:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        time.sleep(0.05)
    return False


def _listens(pid: int, port: int) -> bool:
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


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
    drm_socket: str = ""
    leases: list[Lease] = field(default_factory=list)  # held by the stack's desktops
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
        for _ in range(3):  # the port was free when chosen; if something took it since, choose again
            argv = [socat, f"TCP-LISTEN:{self.port},bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{target}"]
            proc = self._spawn(argv, cwd=str(self.root))
            if wait_listening(self.port, proc=proc):
                break
            self.port = free_port()
        else:
            raise ConfigError(f"socat did not start listening on 127.0.0.1:{self.port}")
        self.notes.append(f"socat 127.0.0.1:{self.port} → {target}")

    def start_pipewire(self) -> None:
        """A private PipeWire with a live video source; raises
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
                        fault: Fault | None = None, cwd: Path | None = None,
                        host: HostOptions | None = None) -> subprocess.Popen:
        """A stand-in QEMU: a copy of this Python interpreter named qemu-system-aarch64 that
        carries a `[HELIX] VERSION` marker, so the QEMU probes see a process with the right
        name and a helix build. With `helix_port` its command line has
        `-device virtio-gpu-gl-pci,helix-port=N` (the tcp topology); with `serve` it serves
        HXFR on 127.0.0.1:N like a healthy H2+ host (`host`: as one generation, its log in
        the stack's directory); with `listen` it only holds the port."""
        cwd = cwd or self.root
        binary = cwd / FAKE_QEMU_NAME
        if not binary.exists():
            shutil.copyfile(os.path.realpath(sys.executable), binary)
            with open(binary, "ab") as fh:  # trailing bytes do not disturb an ELF/Mach-O binary
                fh.write(FAKE_QEMU_MARKER)
            binary.chmod(0o755)
            os.utime(binary, (time.time() - 60, time.time() - 60))  # older than the process
        host = host or HostOptions()
        if serve and helix_port:
            options = {"size": list(host.size), "fps": host.fps, "idle": host.idle, "generation": host.generation,
                       "picture": host.picture, "max_outputs": host.max_outputs,
                       "fault": str(fault) if fault else None, "log": str(self.root / f"qemu-{helix_port}.log")}
            code = _SERVE_CODE.format(port=helix_port, options=options)
        elif listen and helix_port:
            code = _LISTEN_CODE.format(port=helix_port)
        else:
            code = "import time; time.sleep(3600)"
        argv = [str(binary), "-c", code]
        if helix_port is not None:  # as the Helix app starts it: the export's port, one output per desktop
            argv += ["-device", f"virtio-gpu-gl-pci,helix-port={helix_port}",
                     "-global", f"virtio-gpu-gl-pci.max_outputs={host.max_outputs}"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
               "PYTHONHOME": f"{sys.base_prefix}{os.pathsep}{sys.base_exec_prefix}"}
        proc = self._spawn(argv, cwd=str(cwd), env=env)
        if (serve or listen) and helix_port and not wait_listening(helix_port, proc=proc):
            raise ConfigError(f"the stand-in QEMU did not start listening on 127.0.0.1:{helix_port}")
        what = (f"serving HXFR as {host.generation}" + (f" with --fault {fault}" if fault else "") if serve
                else "holding the port" if listen else "listening on nothing")
        port = f" with helix-port={helix_port}" if helix_port else ""
        self.notes.append(f"stand-in QEMU pid {proc.pid} (a copy of python named {FAKE_QEMU_NAME}){port}, "
                          f"{what}, cwd {cwd}")
        return proc

    def start_drm_manager(self, qemu_port: int, fault: Fault | None = None, outputs: int = 16) -> DrmManager | None:
        """The drm-manager stand-in on `drm.sock` here, pointing at 127.0.0.1:qemu_port. One
        that cannot start (no-master) is a note, as a unit restarting in a loop would be."""
        path = str(self.root / "drm.sock")
        manager = DrmManager(ManagerConfig(socket=path, qemu=("127.0.0.1", qemu_port), outputs=outputs, settle=0.1,
                                           enable_timeout=2.0, disable_wait=0.5, fault=fault),
                             log=self._log_to("drm-manager.log"))
        self.drm_socket = path
        # Teardown stops the manager first (like the daemon exiting: no DISABLE, no wait),
        # then the desktops let go of their leases.
        self._contexts.callback(self._release_desktops)
        try:
            manager.start()
        except ConfigError as exc:
            self.notes.append(f"drm-manager stand-in did not start: {exc}")
            return None
        self._contexts.callback(manager.stop)
        self.notes.append(f"drm-manager stand-in on {path} → 127.0.0.1:{manager.qemu[1]}"
                          + (f" with --fault {fault}" if fault else "") + f" ({len(manager.pool)} scanouts)")
        return manager

    def start_desktop(self, width: int = 320, height: int = 240) -> Lease | None:
        """A desktop holding a lease, like mutter-lease-launcher: while it holds the lease the
        host draws on its scanout. A lease that cannot be had is a note (that is the break)."""
        try:
            lease = request_lease(self.drm_socket or str(self.root / "drm.sock"), width, height, timeout=5.0)
        except LeaseError as exc:
            self.notes.append(f"desktop: no lease ({exc})")
            return None
        self.leases.append(lease)
        self.notes.append(f"desktop holds the lease of scanout {lease.scanout_id} ({lease.connector}, fd {lease.fd})")
        return lease

    def start_viewer(self, port: int, scanout_id: int) -> None:
        """A viewer's desktop-bridge: subscribed to the desktop's scanout, reading what is
        pushed and sending nothing more (as the real one), until the stack closes. What the
        host does with it is in the host's log, the evidence a diagnosis reads."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        sock.sendall(protocol.encode(protocol.Subscribe(scanout_id)))
        sock.settimeout(0.5)
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    if not sock.recv(1 << 16):
                        return  # the host closed it
                except TimeoutError:
                    continue
                except OSError:
                    return

        thread = threading.Thread(target=read, name="selftest-viewer", daemon=True)
        thread.start()
        self._contexts.callback(sock.close)
        self._contexts.callback(thread.join, 2.0)
        self._contexts.callback(stop.set)
        self.notes.append(f"a viewer's desktop-bridge subscribed to scanout {scanout_id}")

    def _release_desktops(self) -> None:
        leases, self.leases = self.leases, []
        for lease in leases:
            lease.release()

    def _log_to(self, name: str) -> Callable[[str], None]:
        path = self.root / name

        def log(line: str) -> None:
            with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return log

    def make_stale_socket(self, path: str | None = None) -> None:
        """Bind, then let the owner die: the file stays, nobody listens."""
        path = path or self.socket_path
        child = subprocess.Popen([sys.executable, "-c", (
            "import socket,sys,os,signal\n"
            "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"), path])
        child.wait(timeout=10)
        self.notes.append(f"stale socket {path} (its owner was SIGKILLed)")

    def hold_client_slots(self, port: int, count: int) -> None:
        """`count` idle clients connected to the host (closed at teardown), as stray viewers or
        test tools would hold its slots."""
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
            self._contexts.callback(sock.close)
        time.sleep(0.2)  # the host's accept thread has given each its slot
        self.notes.append(f"{count} idle clients hold the host's client slots on 127.0.0.1:{port}")

    def hold_port_with_stranger(self, port: int | None = None) -> subprocess.Popen:
        port = port or self.port
        proc = self._spawn([sys.executable, "-c", _LISTEN_CODE.format(port=port)])
        if not wait_listening(port, proc=proc):
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
        with contextlib.ExitStack() as teardown:  # in reverse: PipeWire/manager/desktop, serve, processes, files
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


