"""`helixdiag fix`: plans, and with --apply repairs only what the safety rules allow."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import psutil
import pytest
from conftest import REPO, helixdiag_cmd, run_cli

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


def fix_args(stack, *extra):
    return ["fix", "--side", "both", "--host", "127.0.0.1", "--port", str(stack.port),
            "--socket", stack.socket_path, "--timeout", "1", *extra]


def fix_cli(stack, *extra, env=None):
    return run_cli(*fix_args(stack, *extra), env=env, timeout=90)


def gone(pid: int, timeout: float = 5.0) -> bool:
    """The process has exited (a zombie counts as exited) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def state_pids() -> set[int]:
    try:
        return {e["pid"] for e in json.loads(fix.state_file().read_text())}
    except FileNotFoundError:
        return set()


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


def test_the_socket_gone_after_the_removal_is_called_expected_not_a_regression(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        res = subprocess.run(helixdiag_cmd(*fix_args(stack, "--apply", "--yes")), capture_output=True,
                             text=True, timeout=90, cwd=REPO,
                             env={**env, **state_home, "FORCE_COLOR": "1", "COLUMNS": "200"})
    line = next(x for x in res.stdout.splitlines() if "unix-socket.path: " in x)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert "pass → fail" in plain
    assert "expected" in plain and "VM" in plain and "not a regression" in plain, plain
    assert "\x1b[1;31m" not in line, repr(line)  # not in the red of a failure


def test_plan_wording(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, env=state_home)
    assert "(manual, manual)" not in res.stdout
    assert "restart the VM so QEMU binds the socket again (manual)" in res.stdout
    assert "carries out 1 automatic action" in res.stdout and "action(s)" not in res.stdout, res.stdout


def test_quiet_keeps_the_diagnosis_and_the_plans_last_word(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, "-q", env=state_home)
    assert res.returncode == 1 and res.stderr == "", res.stderr
    lines = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("FAIL · root cause socket-stale · "), lines
    assert " ".join(lines[1:]) == ("dry run: `helixdiag fix --apply` carries out 1 automatic action; "
                                   "the manual steps are yours"), lines


def test_nothing_automatic_says_what_to_do_by_hand(state_home):
    stack, _ = selftest.build("socket-not-a-socket")
    with stack:
        res = fix_cli(stack, env=state_home)
    assert res.returncode == 1
    assert "0 automatic" not in res.stdout
    assert "nothing can be done automatically" in res.stdout and "by hand" in res.stdout, res.stdout


def test_no_at_the_prompt_changes_nothing_and_stops(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        child = pexpect.spawn(sys.executable, ["-m", "helixdiag", *fix_args(stack, "--apply")], cwd=str(REPO),
                              env={**os.environ, **state_home, "NO_COLOR": "1", "COLUMNS": "200"},
                              encoding="utf-8", timeout=60)
        try:
            child.expect(r"remove the stale socket .*\? \(safe\)")
            child.sendline("n")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        after = child.before
        assert os.path.exists(stack.socket_path)
    assert "nothing was changed" in after, after
    assert "after the repairs" not in after and "ROOT CAUSE" not in after, after
    assert child.exitstatus == 1  # the diagnosis's exit code


def test_undo_stops_the_socat_that_fix_started_and_nothing_else(state_home):
    stack, _ = selftest.build("socat-not-running")
    with stack:
        res = fix_cli(stack, "--apply", "--yes", env=state_home)
        pid = int(re.search(r"started socat pid (\d+)", res.stdout).group(1))
        assert "helixdiag fix --undo" in res.stdout, res.stdout
        assert "socat" in psutil.Process(pid).cmdline()[0]
        others = [p.pid for p in stack.processes]
        undo = run_cli("fix", "--undo", env=state_home, timeout=30)
        assert undo.returncode == 0, undo.stdout + undo.stderr
        assert f"stopped socat pid {pid}" in undo.stdout
        assert gone(pid)
        assert pid not in state_pids()
        for other in others:
            os.kill(other, 0)  # the stack's own processes: untouched
        again = run_cli("fix", "--undo", env=state_home, timeout=30)
        assert again.returncode == 0 and "nothing to undo" in again.stdout


def test_undo_stops_the_stand_in(state_home):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = fix_cli(stack, "--apply", "--yes", "--stand-in", env=state_home)
        pid = int(re.search(r"started helixdiag serve pid (\d+)", res.stdout).group(1))
        assert os.path.exists(stack.socket_path)
        undo = run_cli("fix", "--undo", env=state_home, timeout=30)
        assert f"stopped serve pid {pid}" in undo.stdout, undo.stdout + undo.stderr
        assert gone(pid)
        assert not os.path.exists(stack.socket_path), "serve removes its socket when stopped"


def test_undo_never_signals_a_pid_that_is_no_longer_the_process_it_started(state_home):
    procs = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(2)]
    try:
        reused, other = procs
        started = psutil.Process(reused.pid).create_time()
        path = fix.state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([
            # Same pid and command line, another start time: the pid was reused.
            {"kind": "socat", "pid": reused.pid, "argv": ["sleep", "60"], "started": started - 100},
            # Same pid and start time, another program.
            {"kind": "socat", "pid": other.pid, "argv": ["socat", "TCP-LISTEN:1", "UNIX-CONNECT:/x"],
             "started": psutil.Process(other.pid).create_time()},
        ]))
        undo = run_cli("fix", "--undo", env=state_home, timeout=30)
        time.sleep(0.5)
        assert reused.poll() is None and other.poll() is None, undo.stdout
        assert undo.stdout.count("not touched") == 2, undo.stdout
        assert state_pids() == set()  # neither will ever be ours again
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=5)


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
