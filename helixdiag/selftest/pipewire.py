"""A private, real PipeWire stack, for the tests and the
self-test.

`private_pipewire()` starts dbus-daemon + pipewire + wireplumber in a fresh, short
XDG_RUNTIME_DIR, waits until WirePlumber's client is in the graph, and tears everything down
by PID (reverse order) on exit. `PipeWireStack.start_source()` adds a live Video/Source node
(`videotestsrc is-live=true ! pipewiresink mode=provide`): start a fresh one per consumer,
because pipewiresink 0.3.65 does not reliably serve a second consumer after a gap (§2.3).

Every wait is bounded. When the stack cannot come up, `PipeWireUnavailable` says why (with the
daemons' stderr); the tests turn that into a failure, never a skip (setting the machine up is
the project's job: scripts/setup-system.sh), the self-test into a row that says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from helixdiag.observe.pipewire_graph import merge_dump_arrays

READY_TIMEOUT = 10.0  # seconds for each daemon / node to appear (normally 0.01-0.05 s)
STOP_TIMEOUT = 3.0
SOURCE_NAME = "helixdiag-test-src"
TOOLS = ("dbus-daemon", "pipewire", "wireplumber", "pw-dump", "pw-cli", "gst-launch-1.0")

# Variables that would point clients at another daemon or bus (§1.2).
_LEAKY_VARS = ("PIPEWIRE_REMOTE", "PIPEWIRE_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "PIPEWIRE_DEBUG")


class PipeWireUnavailable(RuntimeError):
    """The private stack did not come up; the message says which step and why."""


@dataclass
class Source:
    """A live video source node served by a gst-launch producer process."""

    name: str
    proc: subprocess.Popen
    node_id: int
    serial: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        """SIGSTOP the producer: frames stop, the node stays `running` (§5, way 2)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        if self.proc.poll() is None:  # never signal a pid we already reaped (it may be reused)
            os.kill(self.proc.pid, sig)


@dataclass
class PipeWireStack:
    runtime_dir: Path
    env: dict[str, str]  # the full environment for clients of this stack
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def client_env(self) -> dict[str, str]:
        """Just the variables a client needs (to set with monkeypatch.setenv)."""
        return {"XDG_RUNTIME_DIR": str(self.runtime_dir)}

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "pipewire-0"

    def pw_dump(self) -> list[dict]:
        out = subprocess.run(["pw-dump"], env=self.env, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            raise PipeWireUnavailable(f"pw-dump failed ({out.returncode}): {out.stderr.strip()}")
        return merge_dump_arrays(out.stdout)

    def start_source(self, name: str = SOURCE_NAME, *, width: int = 320, height: int = 240,
                     fps: int = 30) -> Source:
        """A fresh `videotestsrc ! pipewiresink mode=provide` Video/Source; waits for its node."""
        argv = [
            "gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=ball", "!",
            f"video/x-raw,format=BGRx,width={width},height={height},framerate={fps}/1", "!",
            "pipewiresink", "mode=provide",
            f"stream-properties=props,media.class=Video/Source,node.name={name}",
        ]
        t0 = time.monotonic()
        proc = _spawn(argv, self.env, self.runtime_dir / f"src-{name}.log")
        self.procs[f"source:{name}:{proc.pid}"] = proc
        deadline = t0 + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PipeWireUnavailable(f"the producer exited ({proc.returncode}): {_tail(self.runtime_dir / f'src-{name}.log')}")
            node = next((o for o in self.pw_dump() if o.get("type") == "PipeWire:Interface:Node"
                         and o.get("info", {}).get("props", {}).get("node.name") == name), None)
            if node is not None:
                props = node["info"]["props"]
                src = Source(name, proc, int(node["id"]), int(props["object.serial"]))
                self.sources.append(src)
                self.timings["source_ready_s"] = time.monotonic() - t0
                return src
            time.sleep(0.02)
        raise PipeWireUnavailable(f"node {name!r} did not appear within {READY_TIMEOUT:g} s")

    def stop_source(self, src: Source) -> None:
        with contextlib.suppress(ProcessLookupError):
            src.resume()  # a stopped process cannot act on SIGINT
        _stop(src.proc, signal.SIGINT)
        self.sources = [s for s in self.sources if s is not src]

    def stop(self) -> None:
        """Producers first, then wireplumber, pipewire, dbus (§7); each by its PID."""
        for src in list(self.sources):
            self.stop_source(src)
        for key in reversed(list(self.procs)):
            _stop(self.procs.pop(key), signal.SIGTERM)


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@contextlib.contextmanager
def private_pipewire() -> Iterator[PipeWireStack]:
    """A private dbus + pipewire + wireplumber in a fresh XDG_RUNTIME_DIR; torn down on exit."""
    missing = missing_tools()
    if missing:
        raise PipeWireUnavailable(f"not installed: {', '.join(missing)} (scripts/setup-system.sh installs them)")
    run_dir = Path(tempfile.mkdtemp(prefix="hxpw-", dir="/tmp"))  # short: AF_UNIX paths < 108 bytes
    run_dir.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARS}
    env["XDG_RUNTIME_DIR"] = str(run_dir)
    stack = PipeWireStack(run_dir, env)
    t0 = time.monotonic()
    try:
        stack.procs["dbus"] = _spawn(
            ["dbus-daemon", "--session", f"--address=unix:path={run_dir}/bus", "--nofork", "--nopidfile"],
            env, run_dir / "dbus.log")
        _wait_for(lambda: (run_dir / "bus").is_socket(), stack.procs["dbus"], "dbus-daemon socket",
                  run_dir / "dbus.log")
        stack.procs["pipewire"] = _spawn(["pipewire"], env, run_dir / "pipewire.log")
        _wait_for(lambda: stack.socket.is_socket(), stack.procs["pipewire"], "pipewire-0 socket",
                  run_dir / "pipewire.log")
        stack.procs["wireplumber"] = _spawn(["wireplumber"], env, run_dir / "wireplumber.log")
        _wait_for(lambda: _has_wireplumber(stack), stack.procs["wireplumber"],
                  "WirePlumber's client in the graph", run_dir / "wireplumber.log")
        stack.timings["stack_ready_s"] = time.monotonic() - t0
        yield stack
    finally:
        t1 = time.monotonic()
        stack.stop()
        stack.timings["stack_down_s"] = time.monotonic() - t1
        shutil.rmtree(run_dir, ignore_errors=True)


def _has_wireplumber(stack: PipeWireStack) -> bool:
    try:
        out = subprocess.run(["pw-dump"], env=stack.env, capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return '"application.name": "WirePlumber"' in out.stdout  # a plain text search: any array


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(check, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise PipeWireUnavailable(f"{proc.args[0]} exited with {proc.returncode} before {what}: {_tail(log)}")
        time.sleep(0.01)
    raise PipeWireUnavailable(f"{what} not ready within {READY_TIMEOUT:g} s: {_tail(log)}")


def _stop(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def _tail(log: Path, lines: int = 8) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
