"""The guest's PipeWire, observed: the tools run (bounded in time) and the facts of one run
gathered once (`PipeWireFacts`): the daemon, one pw-dump lookup, one consumer per node.

`consume` runs a `gst-launch-1.0 … ! identity silent=false` consumer under a hard deadline
and timestamps every output line as it arrives; `observe.pipewire_graph` reads what it saw.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helixdiag.observe.commands import CommandResult, run_command
from helixdiag.observe.once import Once
from helixdiag.observe.pipewire_graph import (
    SOCKET_TIMEOUT,
    TOOL_TIMEOUT,
    ConsumerLog,
    FrameStats,
    Line,
    ParseError,
    PwGraph,
    PwNode,
    SocketLocation,
    frame_stats,
    parse_consumer,
    parse_pw_dump,
    socket_location,
)

# =========================================================================== running things


def connect_socket(path: str, timeout: float = SOCKET_TIMEOUT) -> str | None:
    """Connect to a Unix socket and hang up: None when it accepts, else the error text."""
    if not os.path.lexists(path):
        return f"{path} does not exist"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except TimeoutError:
        return f"connect() timed out after {timeout:g} s"
    except OSError as exc:
        return f"connect(): {exc.strerror or exc} (errno {exc.errno})"
    finally:
        s.close()
    return None


def find_sockets(patterns: tuple[str, ...] = ("/run/user/*/pipewire-0",)) -> list[str]:

    out = []
    for pattern in patterns:
        out += [p for p in glob.glob(pattern) if _is_socket(p)]
    return out


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def pw_cli_info(timeout: float = TOOL_TIMEOUT) -> CommandResult:
    return run_command(["pw-cli", "info", "0"], timeout=timeout)


def pw_dump(timeout: float = TOOL_TIMEOUT) -> tuple[PwGraph | None, CommandResult, str | None]:
    """(graph, the command's result, parse error). The graph is None when pw-dump failed."""
    result = run_command(["pw-dump"], timeout=timeout)
    if not result.ok:
        return None, result, None
    try:
        return parse_pw_dump(result.stdout), result, None
    except ParseError as exc:
        return None, result, str(exc)


def consumer_argv(node_id: int, *, client_name: str = "helixdiag") -> list[str]:
    """The consumer the frames probe runs. `path=<id>` as Helix's own pipeline does; caps that
    accept system memory and DMA-BUF like vsockenc's sink (a bare `pipewiresrc ! fakesink` never
    negotiates); no keepalive-time (it hides stalls)."""
    return [
        "gst-launch-1.0", "-v", "pipewiresrc", f"path={node_id}", "do-timestamp=true",
        f"client-name={client_name}", "!",
        "capsfilter", "caps=video/x-raw;video/x-raw(memory:DMABuf)", "!",
        "identity", "silent=false", "!", "fakesink", "sync=false",
    ]


@dataclass
class Consumption:
    """One bounded consumer run: the raw timestamped lines plus the window it covered."""

    argv: list[str]
    started: float  # monotonic
    window_start: float  # s since start (PLAYING, or the startup deadline)
    window_end: float
    stdout: list[Line] = field(default_factory=list)
    stderr: list[Line] = field(default_factory=list)
    returncode: int | None = None  # None: still running at the end, we stopped it
    error: str | None = None  # could not start, …
    at_end: Any = None  # what the `at_end` callback returned (e.g. a pw-dump of the graph)

    def log(self) -> ConsumerLog:
        return parse_consumer(list(self.stdout), list(self.stderr))


def consume(argv: list[str], *, window: float, startup: float, env: Mapping[str, str] | None = None,
            at_end: Callable[[], Any] | None = None) -> Consumption:
    """Run the consumer: wait up to `startup` s for PLAYING (or a first frame), then count for
    `window` s. Stops early if it exits. Calls `at_end()` while it still runs (to look at the
    graph with the consumer linked), then stops it: SIGTERM, SIGKILL after 1 s. Never blocks
    longer than startup + window + about 2 s."""
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("GST_DEBUG", "pipewirepool:6")
    run_env["GST_DEBUG_NO_COLOR"] = "1"
    t0 = time.monotonic()
    cons = Consumption(argv, t0, 0.0, 0.0)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=run_env, start_new_session=True)
    except OSError as exc:
        cons.error = f"cannot start {argv[0]}: {exc.strerror or exc}"
        return cons
    started = threading.Event()
    readers = [threading.Thread(target=_read_lines, args=(proc.stdout, cons.stdout, t0, started), daemon=True),
               threading.Thread(target=_read_lines, args=(proc.stderr, cons.stderr, t0, None), daemon=True)]
    for r in readers:
        r.start()
    try:
        startup_deadline = t0 + startup
        while not started.is_set() and proc.poll() is None and time.monotonic() < startup_deadline:
            started.wait(0.02)
        cons.window_start = time.monotonic() - t0
        if started.is_set():  # else it never linked/negotiated: no window to count in
            deadline = t0 + cons.window_start + window
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        cons.window_end = time.monotonic() - t0
        if at_end is not None and proc.poll() is None:
            cons.at_end = at_end()
    finally:
        cons.returncode = proc.poll()
        _stop_group(proc)
        for r in readers:
            r.join(timeout=1.0)
    return cons


def _read_lines(stream, sink: list[Line], t0: float, started: threading.Event | None) -> None:
    for raw in iter(stream.readline, b""):
        t = time.monotonic() - t0
        text = raw.decode("utf-8", "replace").rstrip("\n")
        sink.append(Line(t, text))
        if started is not None and not started.is_set() and (
                text.startswith("Setting pipeline to PLAYING") or "last-message = chain" in text):
            started.set()
    stream.close()


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the consumer we started, by its process group (ours: start_new_session), so a
    gst-plugin-scanner it may have spawned goes too. SIGTERM, then SIGKILL after 1 s."""
    for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 2.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


# =========================================================================== one run's facts


@dataclass(frozen=True)
class Lookup:
    """One pw-dump of the graph: the graph, or why there is none, and the command's outcome."""

    graph: PwGraph | None
    error: str | None
    command: dict[str, Any]


@dataclass(frozen=True)
class Capture:
    """One consumer run on a node: what it logged and the frame timing over the window."""

    node: PwNode
    run: Consumption
    log: ConsumerLog
    stats: FrameStats | None  # None when the consumer never reached PLAYING
    end_graph: PwGraph | None


class PipeWireFacts:
    """The PipeWire facts of one run, each gathered once whichever probe asks first."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._once = Once()

    def location(self) -> SocketLocation:
        return self._once.get("location", lambda: socket_location(self._env))

    def connect_error(self, timeout: float) -> str | None:
        """None when the client socket accepts a connection, else why not."""
        path = self.location().path
        return self._once.get("connect", lambda: connect_socket(path, timeout) if path else None)

    def cli_info(self, timeout: float) -> CommandResult:
        return self._once.get("pw-cli", lambda: pw_cli_info(timeout))

    def sockets(self) -> list[str]:
        """Every PipeWire session socket on this machine (other users' sessions too)."""
        return self._once.get("sockets", find_sockets)

    def lookup(self, timeout: float) -> Lookup:
        return self._once.get("lookup", lambda: _lookup(timeout))

    def capture(self, node: PwNode, *, window: float, startup: float, at_end_timeout: float) -> Capture:
        """Consume the node once per run (frames and buffers share it), bounded in time."""
        return self._once.get(("capture", node.id), lambda: _capture(node, window, startup, at_end_timeout))


def _lookup(timeout: float) -> Lookup:
    graph, result, parse_error = pw_dump(timeout=timeout)
    error = parse_error or result.error or (None if result.ok else (result.stderr.strip() or f"exit {result.returncode}"))
    command: dict[str, Any] = {"argv": "pw-dump", "exit": result.returncode}
    if error:
        command["error"] = error
    return Lookup(graph, error, command)


def _capture(node: PwNode, window: float, startup: float, at_end_timeout: float) -> Capture:
    run = consume(consumer_argv(node.id), window=window, startup=startup,
                  at_end=lambda: pw_dump(timeout=at_end_timeout)[0])
    log = run.log()
    stats = frame_stats(log.frames, run.window_start, run.window_end) if log.playing_at is not None or log.frames \
        else None
    return Capture(node, run, log, stats, run.at_end)
