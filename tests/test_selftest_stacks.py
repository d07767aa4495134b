"""`selftest --stack`: the tcp-scanout stack (an H4 host in a stand-in QEMU, the drm-manager
stand-in, a desktop holding a lease, the diagnosis subscribing) and the tcp-request stack
(an H2 host) are healthy, each of their breaks is named, and every part is gone afterwards,
also after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest
from conftest import REPO, helixdiag_cmd, run_cli
from test_interrupt import descendants, interrupt, wait_for

from helixdiag import selftest

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("break_id", [None, *selftest.scenario_names("tcp-scanout")])
def test_tcp_scanout_is_healthy_and_each_break_is_named(break_id):
    report, notes = selftest.diagnose(break_id, "tcp-scanout")
    ok, got = selftest.verdict(break_id, report, "tcp-scanout")
    table = {p.id: (str(p.status), p.failure_id) for p in report.probes if str(p.status) != "skip"}
    assert ok, (got, table, notes)
    if break_id is None:  # the subscriber got the desktop's frames, pushed by an H4 host
        exchange = next(p for p in report.probes if p.id == "stream.exchange")
        sub = exchange.evidence["subscription"]
        assert sub["mode"] == "scanout" and sub["scanout"]["subscribed"], exchange.evidence
        assert exchange.evidence["mode_chosen"].startswith("scanout ("), exchange.evidence["mode_chosen"]
        assert "H4 build" in exchange.evidence["mode_chosen"]  # decided from the host's VERSION banner
        assert any("desktop holds the lease of scanout 1" in n for n in notes), notes
    elif selftest.STACKS["tcp-scanout"].scenarios[break_id].description.startswith("the drm-manager"):
        assert any(n.startswith(("desktop: no lease", "drm-manager stand-in did not start")) for n in notes), notes


@pytest.mark.parametrize("break_id", [None, *selftest.scenario_names("tcp-request")])
def test_tcp_request_is_healthy_and_each_break_is_named(break_id):
    report, notes = selftest.diagnose(break_id, "tcp-request")
    ok, got = selftest.verdict(break_id, report, "tcp-request")
    assert ok, (got, [(p.id, str(p.status), p.failure_id) for p in report.probes], notes)


def test_break_names_find_their_stack_and_the_socat_stack_keeps_its_api():
    assert selftest.find("no-frames")[0].name == "tcp-scanout"
    assert selftest.find("h4-host")[0].name == "tcp-request"
    assert selftest.find("socket-stale")[0].name == "socat-request"
    assert list(selftest.STACKS) == ["tcp-scanout", "tcp-request", "socat-request"]  # modern first
    names = selftest.scenario_names()
    assert len(names) == len(set(names))
    assert all(sc.id == name for name, sc in selftest.SCENARIOS.items())  # socat-request: named by their ids


def test_every_part_is_gone_after_close():
    stack, cfg = selftest.build(None, "tcp-scanout")
    pids = [p.pid for p in stack.processes]
    manager_socket, root = stack.drm_socket, stack.root
    assert os.path.exists(manager_socket) and stack.leases and cfg.mode == "auto" and cfg.side == "both"
    stack.close()
    assert not root.exists() and not os.path.exists(manager_socket)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_cli_scanout_stack_healthy_and_a_break_found_by_its_name():
    healthy = run_cli("selftest", "--stack", "tcp-scanout", timeout=60)
    assert healthy.returncode == 0, healthy.stdout[-3000:] + healthy.stderr[-2000:]
    assert healthy.stdout.startswith("stack: tcp-scanout · stand-in QEMU"), healthy.stdout[:300]
    assert healthy.stdout.strip().splitlines()[-1] == "selftest: healthy stack diagnosed healthy"
    broken = run_cli("-q", "selftest", "--break", "no-frames", timeout=60)  # no --stack: the name finds it
    assert broken.returncode == 0, broken.stdout + broken.stderr
    assert broken.stdout.strip() == "selftest: broke no-frames, diagnosed scanout-no-frames → MATCH"


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_tears_the_scanout_stack_down(presses):
    proc = subprocess.Popen(helixdiag_cmd("selftest", "--stack", "tcp-scanout", "--break", "no-frames"), cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "NO_COLOR": "1"})
    qemu = wait_for(lambda: [p for p in descendants(proc.pid) if p.name() == selftest.FAKE_QEMU_NAME], 20,
                    "the stand-in QEMU")
    pids = [p.pid for p in qemu]
    time.sleep(0.5)  # the drm-manager and the desktop start, the diagnosis waits for frames
    elapsed, out, err = interrupt(proc, presses)
    try:
        assert elapsed < 3.0, f"took {elapsed:.1f} s to stop"
        assert proc.returncode == 130, (proc.returncode, out[-1000:], err[-1000:])
        assert "Traceback" not in err, err
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert not alive, alive
    finally:
        for pid in pids:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)

