"""One path, one verdict: a run judges the path the user named or discovery found, never
the first QEMU or socat that matches, whatever else runs on the machine.

Every process here is real: stand-in QEMUs (a copy of Python named qemu-system-aarch64,
with `-device virtio-gpu-gl-pci,helix-port=N` on its command line, serving real HXFR or
just holding a port), real socat, real `serve`. Loopback and short /tmp paths only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_tool, run_cli
from run_helpers import clean_env, probe, root_of, run_report, start_serve, summary_table

from helixdiag import selftest
from helixdiag.config import RunConfig
from helixdiag.faults import Fault
from helixdiag.observe.facts import HELIX_APP_PID_FILE, Observations
from helixdiag.observe.processes import ProcInfo
from helixdiag.topology import QemuInstance, SocatHop, choose, discover

pytestmark = pytest.mark.timeout(180)

SOCKET_NAME = "helix-frame-export.sock"


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = selftest.free_port()
        if port not in ports:
            ports.append(port)
    return ports


def run_host(port: int, *extra: str, validator=None) -> tuple[subprocess.CompletedProcess, dict]:
    return run_report("run", "--all", "--side", "both", "--host", "127.0.0.1", "--port", str(port),
                      "--timeout", "1", *extra, validator=validator)


def failing(doc: dict) -> list[str]:
    return [p["id"] for p in doc["probes"] if p["status"] in ("fail", "error")]


@pytest.fixture
def stacks() -> Iterator[list[selftest.Stack]]:
    """Stacks a test builds; every process and file of each is removed afterwards."""
    made: list[selftest.Stack] = []
    try:
        yield made
    finally:
        for stack in made:
            stack.close()


def new_stack(stacks: list[selftest.Stack]) -> selftest.Stack:
    stack = selftest.Stack()
    stacks.append(stack)
    return stack


@pytest.fixture
def foreign(stacks) -> selftest.Stack:
    """What a busy machine has besides the path under test: a QEMU-named process with a
    stale socket in its directory, a QEMU configured for (and serving) another port, and a
    socat forwarding yet another port to another socket, served by another `serve`."""
    require_tool("socat")
    other = new_stack(stacks)
    other.start_serve()
    other.start_socat()
    old_vm = other.root / "old-vm"
    old_vm.mkdir()
    other.make_stale_socket(str(old_vm / SOCKET_NAME))
    other.start_fake_qemu(cwd=old_vm)
    tcp_vm = other.root / "tcp-vm"
    tcp_vm.mkdir()
    other.start_fake_qemu(selftest.free_port(), serve=True, cwd=tcp_vm)
    return other


# ───────────────────────────────────────── the self-test beside foreign stacks


def test_selftest_and_every_break_match_beside_foreign_stacks(foreign):
    healthy = run_cli("selftest", timeout=90)
    assert healthy.returncode == 0, healthy.stdout[-3000:] + healthy.stderr[-2000:]
    broken = run_cli("selftest", "--break", "all", timeout=150)
    assert broken.returncode == 0, broken.stdout[-4000:] + broken.stderr[-2000:]
    for scenario in selftest.SCENARIOS:
        assert scenario in broken.stdout, f"{scenario} missing from the table:\n{broken.stdout}"


# ─────────────────────────────────────────────────────────── two VMs, two verdicts


def test_two_tcp_vms_each_port_gets_its_own_verdict(stacks, validator):
    healthy_port, broken_port, booting_port = free_ports(3)
    vm_a, vm_b, vm_c = new_stack(stacks), new_stack(stacks), new_stack(stacks)
    a = vm_a.start_fake_qemu(healthy_port, serve=True)
    b = vm_b.start_fake_qemu(broken_port, serve=True, fault=Fault("bad-magic"))
    c = vm_c.start_fake_qemu(booting_port)  # configured for its port, not listening yet

    proc, doc = run_host(healthy_port, validator=validator)
    assert proc.returncode == 0, summary_table(doc)
    assert probe(doc, "qemu.process")["evidence"]["pid"] == a.pid
    assert doc["topology"]["kind"] == "tcp" and doc["topology"]["qemu_pid"] == a.pid
    assert any(f"pid {b.pid}" in line for line in doc["topology"]["also_on_this_machine"])

    text = run_cli("run", "--all", "--side", "host", "--port", str(healthy_port), "--timeout", "1",
                   env={**clean_env(), "COLUMNS": "400"}, timeout=60)
    assert text.returncode == 0, text.stdout
    also = [line for line in text.stdout.splitlines() if line.startswith("also on this machine, not judged:")]
    assert len(also) == 1 and f"QEMU pid {b.pid} (helix-port={broken_port}" in also[0], text.stdout
    assert f"QEMU pid {a.pid}" not in also[0]

    proc, doc = run_host(broken_port, validator=validator)
    assert proc.returncode == 1
    assert root_of(doc)["failure_id"] == "stream-bad-magic", summary_table(doc)
    assert probe(doc, "qemu.process")["evidence"]["pid"] == b.pid

    proc, doc = run_host(booting_port, validator=validator)
    assert proc.returncode == 1
    root = root_of(doc)
    assert root["failure_id"] == "qemu-still-booting", summary_table(doc)
    assert str(c.pid) in root["explanation"] and "still be booting" in root["explanation"]
    assert probe(doc, "qemu.listener")["evidence"]["qemu_pid"] == c.pid


def test_two_socat_stacks_without_a_socket_each_port_gets_its_own_verdict(stacks, validator):
    require_tool("socat")
    healthy, broken = new_stack(stacks), new_stack(stacks)
    healthy.start_serve()
    healthy.start_socat()
    broken.start_serve(Fault("bad-magic"))
    broken.start_socat()

    proc, doc = run_host(healthy.port, validator=validator)
    assert proc.returncode == 0, summary_table(doc)
    assert doc["topology"]["socket"] == healthy.socket_path
    socat_pid = probe(doc, "socat.process")["evidence"]["pid"]
    assert socat_pid == healthy.processes[0].pid

    proc, doc = run_host(broken.port, validator=validator)
    assert proc.returncode == 1
    assert root_of(doc)["failure_id"] == "stream-bad-magic", summary_table(doc)
    assert doc["topology"]["socket"] == broken.socket_path
    assert probe(doc, "socat.process")["evidence"]["pid"] == broken.processes[0].pid


def test_a_stale_socat_stack_is_named_beside_a_healthy_one(stacks, validator):
    require_tool("socat")
    healthy, stale = new_stack(stacks), new_stack(stacks)
    healthy.start_serve()
    healthy.start_socat()
    stale.make_stale_socket()
    os.utime(stale.socket_path, (time.time() - 60, time.time() - 60))
    qemu = stale.start_fake_qemu()
    stale.start_socat()

    proc, doc = run_host(stale.port, validator=validator)
    assert proc.returncode == 1
    root = root_of(doc)
    assert root["failure_id"] == "socket-stale", summary_table(doc)
    assert probe(doc, "qemu.process")["evidence"]["pid"] == qemu.pid


# ─────────────────────────────────────────────────────── the stale QEMU on the port


def test_a_stale_qemu_holding_the_port_is_qemu_bind_failed_naming_it(stacks, validator):
    port = selftest.free_port()
    old_vm, new_vm = new_stack(stacks), new_stack(stacks)
    stale = old_vm.start_fake_qemu(port, serve=True)
    time.sleep(1.3)  # start times are known to a second: make "older" unambiguous
    current = new_vm.start_fake_qemu(port)

    for side in ("host", "both"):
        proc, doc = run_report("run", "--all", "--side", side, "--host", "127.0.0.1", "--port", str(port),
                               "--timeout", "1", validator=validator)
        assert proc.returncode == 1, summary_table(doc)
        root = root_of(doc)
        assert root["failure_id"] == "qemu-bind-failed", summary_table(doc)
        assert root["probe"] == "qemu.listener"
        assert f"pid {stale.pid}" in root["explanation"]
        assert f"kill {stale.pid}" in root["remedy"]
        evidence = probe(doc, "qemu.listener")["evidence"]
        assert evidence["qemu_pid"] == current.pid
        assert evidence["stale_qemu"]["pid"] == stale.pid
        assert doc["topology"]["stale_qemu_pid"] == stale.pid
        assert "older pid" in doc["topology"]["qemu_rule"]


# ─────────────────────────────────────────────────────────────── topology respected


@pytest.mark.parametrize("host", ["qemu", "serve"])
def test_healthy_tcp_direct_host_with_a_socket_given_has_no_failure(stacks, validator, host):
    stack = new_stack(stacks)
    port = selftest.free_port()
    if host == "qemu":
        stack.start_fake_qemu(port, serve=True)
    else:
        serve, _ = start_serve("--tcp", f"127.0.0.1:{port}", "--size", "320x240")
        stack.processes.append(serve)
    # As a profile would carry it: the socket given, though this host has no socket hop.
    proc, doc = run_host(port, "--socket", str(stack.root / SOCKET_NAME), validator=validator)
    assert proc.returncode == 0, summary_table(doc)
    assert doc["topology"]["kind"] == "tcp"
    path = probe(doc, "unix-socket.path")
    assert path["status"] == "skip" and "not part of it" in path["summary"]
    assert probe(doc, "stream.exchange")["status"] == "pass"


def test_a_squatted_tcp_port_is_qemu_bind_failed_not_a_socat_conflict(stacks, validator):
    stack = new_stack(stacks)
    port = selftest.free_port()
    squatter = stack.hold_port_with_stranger(port)
    qemu = stack.start_fake_qemu(port)
    proc, doc = run_host(port, validator=validator)
    assert proc.returncode == 1
    root = root_of(doc)
    assert root["failure_id"] == "qemu-bind-failed", summary_table(doc)
    holders = probe(doc, "qemu.listener")["evidence"]["port_holders"]
    assert [h["pid"] for h in holders] == [squatter.pid]
    assert f"pid {squatter.pid}" in root["explanation"] and f"pid {qemu.pid}" in root["explanation"]
    assert "socat-port-conflict" not in doc["diagnosis"]["findings"]
    assert probe(doc, "socat.port")["status"] == "skip"


def test_a_leftover_socket_does_not_force_socat_when_qemu_has_a_helix_port(stacks, validator):
    stack = new_stack(stacks)
    port = selftest.free_port()
    stack.make_stale_socket()  # a leftover in QEMU's working directory
    stack.start_fake_qemu(port, serve=True)
    _, doc = run_report("run", "--all", "--side", "host", "--host", "127.0.0.1", "--timeout", "1",
                        validator=validator)
    # Discovery with nothing named may see other QEMUs on a busy machine; ours is the newest.
    assert doc["topology"]["kind"] == "tcp", doc["topology"]
    assert doc["topology"]["listen_port"] == port
    assert probe(doc, "unix-socket.path")["status"] == "skip"


# ─────────────────────────────────────────────────────── missing evidence is evidence


def test_missing_qemu_log_is_a_warning_and_the_diagnosis_goes_on(short_tmp, validator):
    port = selftest.free_port()  # nothing runs for it
    missing = short_tmp / "helix-debug.log"
    proc, doc = run_report("run", "--all", "--side", "host", "--host", "127.0.0.1", "--port", str(port),
                           "--qemu-log", str(missing), "--timeout", "1", validator=validator)
    assert proc.returncode == 1
    assert root_of(doc)["failure_id"] == "qemu-not-running", summary_table(doc)
    log = probe(doc, "qemu.log")
    assert log["status"] == "warn" and log["failure_id"] == "qemu-log-missing"
    assert "no such file" in log["summary"] and "QEMU may never have started" in log["summary"]
    assert not missing.exists()


@pytest.mark.parametrize("kind", ["directory", "missing-parent"])
def test_a_log_path_that_cannot_be_a_log_is_a_usage_error(short_tmp, kind):
    path = short_tmp if kind == "directory" else short_tmp / "no-such-dir" / "qemu.log"
    for flag in ("--qemu-log", "--gst-log"):
        proc = run_cli("run", "--all", "--side", "both", flag, str(path), env=clean_env(), timeout=30)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(path) in lines[0], proc.stderr


# ────────────────────────────────────────────────── candidates and the rule that chose


def _proc(pid: int, started: float, name: str = "qemu-system-aarch64") -> ProcInfo:
    return ProcInfo(pid=pid, name=name, exe=None, argv=(name,), cwd="/", started=started)


def test_ties_are_broken_by_holder_then_pid_file_then_newest():
    old, mid, new = (QemuInstance(_proc(pid, started), None) for pid, started in
                     ((101, 1000.0), (102, 2000.0), (103, 3000.0)))
    assert choose([old, mid, new], {101}, 103) == (old, "holds the listener (of 3 candidates)")
    assert choose([old, mid, new], set(), 102) == (mid, "the Helix app's pid file (of 3 candidates)")
    assert choose([old, mid, new], {101, 102}, None) == (mid, "the newest start time (of 3 candidates)")
    assert choose([old, mid, new], set(), None)[0] is new
    assert choose([old], set(), None) == (old, "the only candidate")
    assert choose([], {1}, 1) == (None, "no candidate")


def test_the_helix_app_pid_file_is_read_from_the_users_home(short_tmp, monkeypatch):
    pid_file = Path(HELIX_APP_PID_FILE.replace("~", str(short_tmp)))
    pid_file.parent.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(short_tmp))
    assert Observations().helix_app_pid is None
    pid_file.write_text(f"{os.getpid()}\n")
    assert Observations().helix_app_pid == os.getpid()
    pid_file.write_text("not a pid\n")
    assert Observations().helix_app_pid is None


def test_the_pid_file_decides_between_two_qemus_for_one_port(stacks, short_tmp, monkeypatch):
    port = selftest.free_port()
    first, second = new_stack(stacks), new_stack(stacks)
    app = first.start_fake_qemu(port)
    time.sleep(1.1)
    second.start_fake_qemu(port)
    pid_file = Path(HELIX_APP_PID_FILE.replace("~", str(short_tmp)))
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{app.pid}\n")
    monkeypatch.setenv("HOME", str(short_tmp))
    cfg = RunConfig(side="host", port=port)
    cfg.sources = {"port": "--port"}
    topo = discover(cfg, Observations())
    assert topo.qemu is not None and topo.qemu.pid == app.pid
    assert topo.qemu_rule.startswith("the Helix app's pid file")


def test_socat_fork_children_and_defunct_socats_are_not_separate_hops(stacks):
    socat = require_tool("socat")
    stack = new_stack(stacks)
    stack.start_serve()
    stack.start_socat()
    # A connection in flight: socat forks a child with the parent's command line.
    client = socket.create_connection(("127.0.0.1", stack.port), timeout=2)
    # A socat that exited but was never reaped (<defunct>).
    zombie = subprocess.Popen([socat, "-V"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = [p for p in Observations().socat_processes if p.ppid == stack.processes[0].pid]
            if kids:
                break
            time.sleep(0.05)
        assert kids, "socat did not fork a child for the connection"
        time.sleep(0.3)  # `socat -V` has exited by now, unreaped
        cfg = stack.run_config()
        topo = discover(cfg, Observations())
        hops: list[SocatHop] = topo.all_socat
        assert [h.pid for h in hops if h.pid in (stack.processes[0].pid, kids[0].pid)] == [stack.processes[0].pid]
        assert zombie.pid not in {h.pid for h in hops}
        assert topo.socat is not None and topo.socat.pid == stack.processes[0].pid
        assert topo.socat_rule == "the only candidate"
    finally:
        client.close()
        zombie.wait(timeout=5)
