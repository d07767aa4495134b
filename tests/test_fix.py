"""`helixdiag fix`: plans, and with --apply repairs only what the safety rules allow."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
from pathlib import Path

import pytest
from conftest import run_cli

from helixdiag import fix, selftest
from helixdiag.probes.context import ProbeContext

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    """Where fix remembers what it started; cleaned up (processes killed) afterwards."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield {"XDG_STATE_HOME": str(tmp_path / "state")}
    for entry in fix.started_by_us():
        with contextlib.suppress(OSError):
            os.killpg(entry["pid"], signal.SIGKILL)


def fix_cli(stack, *extra, env=None):
    return run_cli("fix", "--side", "both", "--host", "127.0.0.1", "--port", str(stack.port),
                   "--socket", stack.socket_path, "--timeout", "1", *extra, env=env, timeout=90)


def test_plan_only_changes_nothing(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, env=state_home)
        assert res.returncode == 1
        assert "remove the stale socket" in res.stdout and "--apply" in res.stdout
        assert os.path.exists(stack.socket_path), "without --apply nothing is removed"


def test_apply_removes_a_stale_socket_and_rechecks(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, "--apply", "--yes", env=state_home)
        assert "removed stale socket" in res.stdout
        assert not os.path.exists(stack.socket_path)
        # The re-check ran: the socket probe now says missing (QEMU must bind it again).
        assert "unix-socket.path: pass → fail" in res.stdout
        assert "restart the VM" in res.stdout


def test_apply_starts_missing_socat_and_the_recheck_passes(state_home):
    stack, _ = selftest.build("socat-not-running")
    with stack:
        res = fix_cli(stack, "--apply", "--yes", env=state_home)
        assert "started socat" in res.stdout, res.stdout + res.stderr
        assert "socat.process: fail → pass" in res.stdout
        assert "guest-tcp.ping:" in res.stdout and "→ pass" in res.stdout.split("guest-tcp.ping:")[1].splitlines()[0]
        assert res.returncode == 0, res.stdout  # after the repair the whole run passes
        assert any(e["kind"] == "socat" for e in fix.started_by_us())


def test_regular_file_at_the_socket_path_is_left_byte_for_byte(state_home):
    stack, _ = selftest.build("socket-not-a-socket")
    with stack:
        before = hashlib.sha256(Path(stack.socket_path).read_bytes()).hexdigest()
        res = fix_cli(stack, "--apply", "--yes", env=state_home)
        assert res.returncode == 1
        assert os.path.isfile(stack.socket_path)
        assert hashlib.sha256(Path(stack.socket_path).read_bytes()).hexdigest() == before


def test_remove_refuses_live_and_held_sockets(short_tmp):
    ctx = ProbeContext(selftest.Stack().run_config())
    live = str(short_tmp / "live.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(live)
    server.listen()
    with pytest.raises(fix.Refused, match="live"):
        fix.remove_stale_socket(live, ctx)
    assert os.path.exists(live)
    # Bound but not listening: connect() is refused, yet a process holds it open.
    held = str(short_tmp / "held.sock")
    holder = socket.socket(socket.AF_UNIX)
    holder.bind(held)
    with pytest.raises(fix.Refused, match="held open"):
        fix.remove_stale_socket(held, ctx)
    assert os.path.exists(held)
    holder.close()
    server.close()
    # A directory is never removed.
    with pytest.raises(fix.Refused):
        fix.remove_stale_socket(str(short_tmp), ctx)
    assert short_tmp.is_dir()


def test_apply_without_terminal_needs_yes(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, "--apply", env=state_home)
        assert res.returncode == 2
        assert "--yes" in res.stderr
        assert os.path.exists(stack.socket_path)


def test_a_socat_we_did_not_start_is_never_stopped(state_home):
    stack, _ = selftest.build("socat-wrong-target")
    with stack:
        pids = [p.pid for p in stack.processes]
        res = fix_cli(stack, "--apply", "--yes", env=state_home)
        assert "was not started by helixdiag" in res.stdout
        for pid in pids:
            os.kill(pid, 0)  # still alive


def test_state_file_survives_garbage(state_home):
    path = fix.state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert fix.started_by_us() == []
    path.write_text(json.dumps([{"kind": "socat", "pid": 999999999}]))
    assert fix.started_by_us() == []  # dead pids are forgotten


def test_stand_in_takes_over_after_the_stale_socket_and_the_recheck_passes(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, "--apply", "--yes", "--stand-in", env=state_home)
        assert "removed stale socket" in res.stdout
        assert "as a stand-in" in res.stdout, res.stdout
        assert "unix-socket.accept: fail → pass" in res.stdout
        assert "stream.exchange: blocked → pass" in res.stdout
        serving = [e for e in fix.started_by_us() if e["kind"] == "serve"]
        assert serving and stack.socket_path in serving[0]["argv"]
