"""Repairs for what `run` found: a plan first, actions only on `--apply` (docs/tools.md).

What may be done automatically, and nothing more:
  * remove a stale socket file — only a socket that refuses connections and that no
    process holds open, checked again right before the unlink;
  * start socat (TCP-LISTEN → UNIX-CONNECT) when it is missing, or replace a socat that
    points at the wrong socket — but stop only a socat this tool started itself;
  * start `helixdiag serve` as a stand-in on the socket or port (opt-in), to tell a broken
    QEMU from the rest of the path.
Everything else (restart the VM, rebuild QEMU, fix dylib paths, reorder a pipeline) is a
manual step printed with this machine's values. Each applied action re-runs the probes it
affects.

What helixdiag starts is remembered (pid, command line, start time) in
$XDG_STATE_HOME/helixdiag/started.json; `fix --undo` stops those processes, each only while
it is still the very process that was started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from helixdiag import failures
from helixdiag.config import RunConfig
from helixdiag.observe.stale import removal_verdict
from helixdiag.probes.context import ProbeContext
from helixdiag.report.model import Report
from helixdiag.unixsock import PathState, classify

SAFE = "safe"
SERVICES = "changes running services"
MANUAL = "manual"
SOCKET_GONE = ("expected: the socket is gone until QEMU binds it again when the VM restarts — "
               "not a regression")


@dataclass
class Action:
    failure_id: str
    title: str
    risk: str
    command: str  # what it runs, as a shell line (or the manual steps)
    recheck: tuple[str, ...] = ()  # probe ids to run again afterwards
    execute: Callable[[], str] | None = None  # returns what it did; raises Refused
    opt_in: bool = False  # only with --stand-in
    # Rechecked probes that are expected to fail right after it (not a regression), and why.
    expected_fail: dict[str, str] = field(default_factory=dict)

    @property
    def automatic(self) -> bool:
        return self.execute is not None

    def expected(self, probe_id: str, status: str) -> str | None:
        """Why this status of a probe is the action's known consequence (None: it is not)."""
        return self.expected_fail.get(probe_id) if status != "pass" else None


class Refused(Exception):
    """An action declined to act, with the reason (nothing was changed)."""


@dataclass
class ActionResult:
    action: Action
    done: bool
    detail: str
    recheck: dict[str, str] = field(default_factory=dict)  # probe id → status after


# ----------------------------------------------------------------- state of what we started


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "helixdiag" / "started.json"


UNDO = "stop it with `helixdiag fix --undo`"


def _load() -> list[dict]:
    try:
        entries = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _save(entries: list[dict]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))


def started_by_us() -> list[dict]:
    """The processes helixdiag started that still run (and are still those processes)."""
    return [e for e in _load() if not_ours(e) is None]


def not_ours(entry: dict) -> str | None:
    """None while the entry's pid is the process helixdiag started: the same command line
    and the same start time (a pid is reused once its process exits). Else why not."""
    pid = entry.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return f"no valid pid ({pid!r})"
    try:
        if _gone(pid):
            return f"pid {pid} has exited"
        proc = psutil.Process(pid)
        cmdline, started = proc.cmdline(), proc.create_time()
    except psutil.NoSuchProcess:
        return f"pid {pid} has exited"
    except (psutil.Error, TypeError, ValueError) as exc:
        return f"pid {pid} cannot be checked ({type(exc).__name__})"
    if cmdline != entry.get("argv"):
        return f"pid {pid} is now another program ({shlex.join(cmdline)[:80]})"
    recorded = entry.get("started")
    if not isinstance(recorded, int | float) or abs(started - recorded) > 0.01:
        return f"pid {pid} is a newer process with the same command line (started at another time)"
    return None


def _forget(pid: int) -> None:
    _save([e for e in _load() if e.get("pid") != pid])


def _spawn(kind: str, argv: list[str], cwd: str | None = None) -> subprocess.Popen:
    """A detached process that outlives this command (it is the repair)."""
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.3)
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        started = None
    if proc.poll() is not None or started is None:
        raise Refused(f"{argv[0]} exited at once with code {proc.poll()}: {shlex.join(argv)}")
    _save(started_by_us() + [{"kind": kind, "pid": proc.pid, "argv": argv, "started": started}])
    return proc


def stop_started(entry: dict) -> str:
    """Stop one process helixdiag started (with its session: socat's forked children), only
    while it is still that process; then forget it. Raises Refused."""
    pid, kind = entry.get("pid"), entry.get("kind", "process")
    why = not_ours(entry)
    if why is not None:
        _forget(pid)  # it will never be ours again
        raise Refused(f"{kind}: {why}: not touched")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        if _wait_gone(pid) or not_ours(entry) is not None:
            break
    else:
        raise Refused(f"{kind} pid {pid} still runs after SIGKILL")
    _forget(pid)
    return f"stopped {kind} pid {pid} ({shlex.join(entry['argv'])[:100]})"


def undo() -> list[tuple[bool, str]]:
    """Stop every process helixdiag started: (ok, what happened) for each; not ok only for
    one of ours that could not be stopped."""
    results = []
    for entry in _load():
        try:
            results.append((True, stop_started(entry)))
        except Refused as exc:
            results.append((not_ours(entry) is not None, str(exc)))
    return results


# ----------------------------------------------------------------- actions


def remove_stale_socket(path: str, ctx: ProbeContext) -> str:
    """The only deletion helixdiag ever does, and only under the stale-socket rule of observe/stale.py."""
    verdict = removal_verdict(path)
    if not verdict.removable:
        raise Refused(f"{verdict.rule}: not removed")
    again = classify(path)  # a server may have bound it meanwhile
    if again.state != PathState.STALE or again.file_type != "socket":
        raise Refused(f"{path} changed while checking ({again.state.value}); not removed")
    os.unlink(path)
    return f"removed stale socket {path}"


def socat_argv(port: int, socket_path: str) -> list[str]:
    # With socat's defaults (8 KiB transfers, Nagle on) a 1080p frame crawls through at about
    # 10 frames/s; a 1 MiB block and TCP_NODELAY keep it at ~98 % of a direct connection.
    return [shutil.which("socat") or "socat", "-b1048576",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,nodelay", f"UNIX-CONNECT:{socket_path}"]


def start_socat(port: int, socket_path: str) -> str:
    if shutil.which("socat") is None:
        raise Refused("socat is not installed (brew install socat / apt-get install socat)")
    proc = _spawn("socat", socat_argv(port, socket_path))
    return f"started socat pid {proc.pid}: 127.0.0.1:{port} → {socket_path} ({UNDO})"


def replace_our_socat(pid: int, port: int, socket_path: str) -> str:
    ours = next((e for e in started_by_us() if e.get("kind") == "socat" and e.get("pid") == pid), None)
    if ours is None:
        raise Refused(f"socat pid {pid} was not started by helixdiag: stop it yourself (kill {pid})")
    return stop_started(ours) + "; " + start_socat(port, socket_path)


def start_stand_in(socket_path: str | None, port: int | None) -> str:
    argv = [sys.executable, "-m", "helixdiag", "serve"]
    if socket_path:
        argv += ["--unix", socket_path]
    elif port:
        argv += ["--tcp", f"127.0.0.1:{port}"]
    else:
        raise Refused("no socket or port to put the stand-in on")
    proc = _spawn("serve", argv)
    if not _wait_serving(proc, socket_path, port):
        raise Refused(f"helixdiag serve (pid {proc.pid}) did not start listening within "
                      f"{SERVE_START_TIMEOUT:g} s")
    return f"started helixdiag serve pid {proc.pid} as a stand-in ({shlex.join(argv[3:])}; {UNDO})"


SERVE_START_TIMEOUT = 15.0  # importing the encoder stack takes a second or two


def _wait_serving(proc: subprocess.Popen, socket_path: str | None, port: int | None) -> bool:
    """Until the stand-in accepts connections (so the re-check sees it), or it exits."""
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if socket_path and classify(socket_path, timeout=0.5).state == PathState.LIVE:
            return True
        if not socket_path and port:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        time.sleep(0.1)
    return False


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for its parent has exited too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# ----------------------------------------------------------------- planning


def plan(report: Report, ctx: ProbeContext) -> list[Action]:
    """One action per failure found, automatic where the rules allow, else manual steps."""
    cfg: RunConfig = ctx.config
    topo = ctx.topology
    actions: list[Action] = []
    found = {p.failure_id: p for p in report.probes if p.failure_id and str(p.status) in ("fail", "warn")}
    socket_path = topo.socket_path or cfg.socket
    port = topo.listen_port or cfg.port

    if "socket-stale" in found and socket_path:
        actions.append(Action(
            "socket-stale", f"remove the stale socket {socket_path}", SAFE, f"rm {shlex.quote(socket_path)}",
            recheck=("unix-socket.path", "unix-socket.accept"),
            execute=lambda: remove_stale_socket(socket_path, ctx),
            expected_fail=dict.fromkeys(("unix-socket.path", "unix-socket.accept"), SOCKET_GONE)))
        actions.append(_manual("socket-stale", "restart the VM so QEMU binds the socket again",
                               "Quit the VM in UTM (or the Helix app) and start it again."))
    if "socat-not-running" in found and port and socket_path:
        argv = socat_argv(port, socket_path)
        actions.append(Action(
            "socat-not-running", f"start socat 127.0.0.1:{port} → {socket_path}", SERVICES,
            shlex.join(argv), recheck=("socat.process", "socat.target", "guest-tcp.connect", "guest-tcp.ping"),
            execute=lambda: start_socat(port, socket_path)))
    wrong = found.get("socat-wrong-target")
    if wrong is not None and wrong.evidence.get("correct_socket") and wrong.evidence.get("socat_pid"):
        pid = wrong.evidence["socat_pid"]
        real = wrong.evidence["correct_socket"]
        actions.append(Action(
            "socat-wrong-target", f"replace socat pid {pid} with one that connects to {real}", SERVICES,
            f"kill {pid} && " + shlex.join(socat_argv(port or 0, real)),
            recheck=("socat.process", "socat.target", "guest-tcp.ping"),
            execute=lambda: replace_our_socat(pid, port or 0, real)))
    if found.keys() & {"qemu-not-listening", "qemu-not-running", "qemu-bind-failed", "qemu-init-failed",
                       "stream-no-reply", "frame-request-ignored"} and (socket_path or port) \
            and "socket-not-a-socket" not in found:  # serve would refuse the path too
        actions.append(Action(
            "qemu-not-listening", "start `helixdiag serve` as a stand-in host, to test the rest of the path",
            SERVICES, shlex.join([sys.executable, "-m", "helixdiag", "serve",
                                  *(["--unix", socket_path] if socket_path else ["--tcp", f"127.0.0.1:{port}"])]),
            recheck=("unix-socket.accept", "stream.ping", "stream.exchange", "guest-tcp.ping"),
            execute=lambda: start_stand_in(socket_path, port), opt_in=True))
    handled = {a.failure_id for a in actions}
    for failure_id in found:
        if failure_id not in handled:
            entry = failures.get(failure_id)
            actions.append(_manual(failure_id, entry.title, found[failure_id].remedy or entry.remedy))
    return actions


def _manual(failure_id: str, title: str, steps: str) -> Action:
    return Action(failure_id, title, MANUAL, steps)
