"""Ctrl-C: any command stops within about a second, tears down everything it started, and
prints no traceback — also when Ctrl-C is pressed twice.

The real CLI runs in its own process group; SIGINT is sent to that group, as a terminal
does. What it started is found by pid (its descendants, and socat's own sessions), and
checked to be gone afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest
from conftest import REPO, helixdiag_cmd, require_tool
from run_helpers import kill_group, start_serve

pytestmark = pytest.mark.timeout(120)


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(helixdiag_cmd(*args), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "NO_COLOR": "1"})


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def interrupt(proc: subprocess.Popen, times: int = 1) -> tuple[float, str, str]:
    """Ctrl-C the command `times` times (0.1 s apart); how long it took to exit, its output."""
    started = time.monotonic()
    for _ in range(times):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.1)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError("the command did not stop within 15 s of Ctrl-C") from None
    return time.monotonic() - started, out, err


def gone(pids: list[int]) -> list[int]:
    """The pids among `pids` that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.parametrize("presses", [1, 2])
@pytest.mark.parametrize("scenario", ["all", "stream-no-reply"])
def test_ctrl_c_during_selftest_tears_down_the_stack(scenario, presses):
    """`--break all` is interrupted as soon as a scenario's socat runs (other scenarios are
    still to come); `stream-no-reply` while its run waits on the silent host."""
    require_tool("socat")
    proc = start_cli("selftest", "--break", scenario)
    started = wait_for(lambda: [p for p in descendants(proc.pid) if p.name() == "socat"], 20, "socat to start")
    pids = [p.pid for p in started]
    # socat runs in its own session: a terminal's Ctrl-C never reaches it; only teardown does.
    assert all(os.getpgid(pid) != proc.pid for pid in pids)
    if scenario == "stream-no-reply":
        time.sleep(0.3)
    assert proc.poll() is None, "the self-test ended before it could be interrupted"
    elapsed, out, err = interrupt(proc, presses)
    try:
        assert elapsed < 3.0, f"took {elapsed:.1f} s to stop"
        assert proc.returncode == 130, (proc.returncode, out[-1000:], err[-1000:])
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert not gone(pids), f"left running after Ctrl-C: {gone(pids)}"
    finally:
        for pid in gone(pids):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_run_against_a_hung_host_stops_within_a_second(presses):
    serve, address = start_serve("--tcp", "127.0.0.1:0", "--fault", "hang")
    try:
        port = address.rsplit(":", 1)[1]
        proc = start_cli("run", "--all", "--side", "both", "--host", "127.0.0.1", "--topology", "tcp",
                         "--port", port, "--timeout", "20")
        time.sleep(2.0)  # past start-up: now waiting on the silent host
        assert proc.poll() is None, "the run ended before it could be interrupted"
        elapsed, out, err = interrupt(proc, presses)
    finally:
        kill_group(serve)
    assert elapsed < 1.5, f"took {elapsed:.1f} s to stop"
    assert proc.returncode == 130
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "interrupted" in err
