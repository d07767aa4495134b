"""The scanout path diagnosed: the drm-manager, the connectors and the desktop's scanout id,
desktop-bridge, the subscription, and `--mode auto` — against the real stand-ins (an H4/H5
QEMU on loopback, the drm-manager on a Unix socket, a desktop holding a lease), a real bind
mount for the stale socket, and sysfs/mountinfo/environ files written in their real formats."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from helixdiag import runner
from helixdiag.config import RunConfig
from helixdiag.faults import Fault
from helixdiag.observe import scanout as facts
from helixdiag.selftest.stack import HostOptions, Stack, free_port
from helixdiag.server.drm_manager import DrmManager, ManagerConfig

pytestmark = pytest.mark.timeout(60)

H4 = HostOptions(generation="h4", picture="moving", fps=30, size=(320, 240), idle=None)


# ── the facts, from files in their real formats ─────────────────────────────────────────

def _sysfs(root: Path, connectors: dict[int, tuple[str, str, int]]) -> Path:
    """A /sys/class/drm tree: card0, card0-Virtual-N with status/enabled/modes, renderD128."""
    (root / "card0").mkdir(parents=True)
    (root / "renderD128").mkdir()
    (root / "version").write_text("drm 1.1.0 20060810\n")
    for n, (status, enabled, modes) in connectors.items():
        d = root / f"card0-Virtual-{n}"
        d.mkdir()
        (d / "status").write_text(status + "\n")
        (d / "enabled").write_text(enabled + "\n")
        (d / "modes").write_text("".join(f"{1920 - i}x1080\n" for i in range(modes)))
    return root


def test_connectors_are_read_in_order_with_their_state(tmp_path):
    tree = {n: ("disconnected", "disabled", 0) for n in range(1, 17)}
    tree[1] = ("connected", "enabled", 3)
    tree[2] = ("connected", "disabled", 1)
    found = facts.connectors(str(_sysfs(tmp_path, tree)))
    assert [c.name for c in found] == [f"Virtual-{n}" for n in range(1, 17)]
    assert (found[0].scanout_id, found[0].status, found[0].enabled, found[0].modes) == (0, "connected", "enabled", 3)
    assert (found[1].scanout_id, found[1].enabled) == (1, "disabled")
    assert facts.connectors(str(tmp_path / "nowhere")) == []


# One line of /proc/self/mountinfo read on this machine right after
# `mount --bind /tmp/mnttest/src/drm.sock /tmp/mnttest/dst/drm.sock` (Debian 12, kernel 6.1),
# with a directory mount and an escaped space around it.
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
30 27 254:0 /run/helix-drm /run/helix-drm rw,relatime - ext4 /dev/vda rw
45 27 254:0 /tmp/mnttest/src/drm.sock /tmp/mnttest/dst/drm.sock rw,relatime - ext4 /dev/vda rw,discard
46 27 254:0 /srv/a\\040b /mnt/a\\040b rw,relatime shared:1 - ext4 /dev/vda rw
"""


def test_a_socket_that_is_its_own_mount_point_is_found_in_mountinfo():
    entry = facts.mount_at("/tmp/mnttest/dst/drm.sock", MOUNTINFO)
    assert entry is not None and entry.root == "/tmp/mnttest/src/drm.sock" and entry.fstype == "ext4"
    assert facts.mount_at("/run/helix-drm/drm.sock", MOUNTINFO) is None  # the directory is mounted: fine
    assert facts.mount_at("/mnt/a b", MOUNTINFO).root == "/srv/a b"  # octal escapes undone


def test_the_manager_env_file_and_the_scanout_id_file(tmp_path):
    env = tmp_path / "helix-drm-manager.env"
    env.write_text("# written by the Helix app\nQEMU_ADDR=10.0.2.2:41937\nexport DRM_DEVICE=\"/dev/dri/card0\"\n\n")
    assert facts.env_file(str(env)) == {"QEMU_ADDR": "10.0.2.2:41937", "DRM_DEVICE": "/dev/dri/card0"}
    assert facts.env_file(str(tmp_path / "none")) is None
    (tmp_path / "helix-scanout-id").write_text("3")  # decimal, no newline, as the launcher writes it
    assert facts.scanout_id_file(str(tmp_path))[1:] == (3, None)
    (tmp_path / "helix-scanout-id").write_text("x\n")
    assert "not a scanout id" in facts.scanout_id_file(str(tmp_path))[2]


def test_a_process_environment_is_read_from_proc():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             env={"HELIX_VIDEO_MODE": "scanout", "HELIX_FRAME_EXPORT_PORT": "41937"})
    try:
        time.sleep(0.2)
        env = facts.process_environ(child.pid)
        assert env == {"HELIX_VIDEO_MODE": "scanout", "HELIX_FRAME_EXPORT_PORT": "41937"}
    finally:
        child.kill()
        child.wait(5)
    assert facts.process_environ(child.pid) is None  # gone


# ── runs against the stand-ins ─────────────────────────────────────────────────────────

def _scanout_stack(s: Stack, host: HostOptions = H4, manager_fault: str | None = None,
                   desktop: bool = True) -> RunConfig:
    s.port = free_port()
    s.start_fake_qemu(s.port, serve=True, host=host)
    if s.start_drm_manager(s.port, fault=Fault(manager_fault) if manager_fault else None) is not None and desktop:
        s.start_desktop(*host.size)
    return _config(s)


def _config(s: Stack, **overrides) -> RunConfig:
    cfg = s.run_config(topology="tcp", socket=None, mode="auto", drm_socket=s.drm_socket or str(s.root / "drm.sock"),
                       drm_log=str(s.root / "drm-manager.log"), qemu_log=str(s.root / f"qemu-{s.port}.log"),
                       timeout=1.0, deadline=30.0)
    for key, value in overrides.items():
        setattr(cfg, key, value)
        cfg.sources[key] = f"--{key.replace('_', '-')}"
    return cfg


def _run(cfg: RunConfig, *names: str):
    report = runner.Runner(cfg, runner.select(list(names), not names)).run()
    return report, {p.id: p for p in report.probes}


def _table(report) -> str:
    return "\n".join(f"{p.id:<28} {p.status:<8} {p.failure_id or '':<24} {p.summary[:120]}" for p in report.probes)


def test_auto_mode_on_a_healthy_h4_host_subscribes_and_is_healthy():
    with Stack() as s:
        report, probes = _run(_scanout_stack(s))
        without_log = _run(_config(s, qemu_log=None), "guest-tcp")[1]["guest-tcp.subscribe"]
    assert report.diagnosis.status == "pass", _table(report)
    sub = probes["guest-tcp.subscribe"]
    assert sub.status == "pass" and "keyframe" in sub.summary, _table(report)
    # --mode auto, decided before anything talks: the host's log carries an H4 VERSION banner;
    # without the log, the host's answer to SUBSCRIBE decides.
    assert sub.evidence["mode_chosen"].startswith("scanout (QEMU's log shows an H4 build"), sub.evidence
    assert without_log.evidence["mode_chosen"] == "scanout: the host answered SUBSCRIBE", without_log.summary
    assert sub.evidence["scanout_id"] == 1 and "client slots" in sub.evidence["cost"]
    assert probes["stream.exchange"].evidence["mode_chosen"].startswith("scanout")
    assert probes["drm-manager.answers"].status == "pass"
    assert "unknown command" in probes["drm-manager.answers"].evidence["cost"]
    assert probes["qemu.outputs"].status == "pass"
    # The request path's own probes are not run against a scanout host: no FRAME_REQUEST is sent.
    assert "frame" not in probes["guest-tcp.ping"].evidence


def test_a_static_picture_is_an_inconclusive_warning_not_a_failure():
    static = HostOptions(generation="h4", picture="static", fps=30, size=(320, 240), idle=None)
    with Stack() as s:
        report, probes = _run(_scanout_stack(s, host=static), "guest-tcp", "stream")
    sub = probes["guest-tcp.subscribe"]
    assert (sub.status, sub.failure_id) == ("warn", "scanout-no-frames"), _table(report)
    assert "move something on the desktop" in sub.summary
    assert report.diagnosis.status == "warn" and report.diagnosis.root_cause is None, _table(report)


def test_request_mode_against_h4_names_frame_request_ignored_and_says_scanout():
    with Stack() as s:
        report, probes = _run(_scanout_stack(s), "stream", "guest-tcp")
        cfg = _config(s, mode="request")
        report, probes = _run(cfg, "stream", "guest-tcp")
    assert report.diagnosis.root_cause.failure_id == "frame-request-ignored", _table(report)
    assert "use scanout mode" in probes["stream.exchange"].summary
    assert probes["guest-tcp.subscribe"].status == "skip"


def test_auto_mode_on_a_host_without_scanout_falls_back_to_request_and_says_so():
    with Stack() as s:
        s.port = free_port()
        s.start_fake_qemu(s.port, serve=True, host=HostOptions(generation="h2", idle=None))
        report, probes = _run(_config(s, drm_log=None), "stream", "guest-tcp")
    exchange = probes["stream.exchange"]
    assert exchange.status == "pass", _table(report)
    assert exchange.evidence["mode_chosen"].startswith("request: the host answers PING but not SUBSCRIBE")
    assert probes["guest-tcp.subscribe"].evidence["mode_chosen"].startswith("request")


def test_no_subscribe_turns_the_active_probe_off():
    with Stack() as s:
        report, probes = _run(_config_with(_scanout_stack, s, subscribe=False), "guest-tcp", "stream")
    assert probes["guest-tcp.subscribe"].status == "skip" and "--no-subscribe" in probes["guest-tcp.subscribe"].summary
    assert probes["stream.exchange"].status == "skip"


def _config_with(build, s: Stack, **overrides) -> RunConfig:
    cfg = build(s)
    for key, value in overrides.items():
        setattr(cfg, key, value)
        cfg.sources[key] = f"--{key.replace('_', '-')}"
    return cfg


def test_the_scanout_path_skips_the_request_layers_with_the_reason(monkeypatch):
    monkeypatch.setenv("HELIX_VIDEO_MODE", "scanout")
    with Stack() as s:
        cfg = _config_with(_scanout_stack, s, drm_socket="/run/helix-drm/drm.sock", side="guest")
        report, probes = _run(cfg, "pipewire", "vsockenc")
    assert {p.layer for p in report.probes} == {"pipewire", "vsockenc"}, _table(report)
    for p in report.probes:
        assert p.status == "skip" and "HELIX_VIDEO_MODE=scanout in this environment" in p.summary, _table(report)


def test_a_manager_that_accepts_and_never_answers_is_named():
    with Stack() as s:
        cfg = _scanout_stack(s)
        path = str(s.root / "hung.sock")
        hung = socket.socket(socket.AF_UNIX)
        hung.bind(path)
        hung.listen()
        try:
            report, probes = _run(_config_with(lambda _s: cfg, s, drm_socket=path), "drm-manager")
        finally:
            hung.close()
    answers = probes["drm-manager.answers"]
    assert (answers.status, answers.failure_id) == ("fail", "drm-manager-not-running"), _table(report)
    assert "does not answer" in answers.summary


def test_a_subscription_to_a_scanout_nobody_draws_on_is_not_rendered():
    with Stack() as s:
        report, probes = _run(_config_with(_scanout_stack, s, scanout_id=5))
    assert report.diagnosis.root_cause.failure_id == "scanout-not-rendered", _table(report)
    assert probes["scanout.id"].evidence["leases_held"] == [1]


@contextlib.contextmanager
def _bind_mount(source: str, target: str):
    Path(target).touch()
    done = subprocess.run(["mount", "--bind", source, target], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip() or done.returncode}): needs root with "
                    "CAP_SYS_ADMIN")
    try:
        yield
    finally:
        subprocess.run(["umount", target], capture_output=True, timeout=10)


def test_a_socket_bind_mounted_as_a_file_goes_stale_when_the_manager_restarts():
    with Stack() as s:
        s.port = free_port()
        s.start_fake_qemu(s.port, serve=True, host=H4)
        manager = s.start_drm_manager(s.port)
        container = s.root / "container"
        container.mkdir()
        seen = str(container / "drm.sock")  # what a desktop container sees: the socket file, mounted
        cfg = _config(s, drm_socket=seen)
        with _bind_mount(s.drm_socket, seen):
            before = _run(cfg, "drm-manager")[1]["drm-manager.socket"]
            # The daemon restarts: its socket goes, a new one is bound at the same path.
            manager.stop()
            again = DrmManager(ManagerConfig(socket=s.drm_socket, qemu=("127.0.0.1", s.port)))
            again.start()
            try:
                report, probes = _run(cfg, "drm-manager")
                still_there = os.path.exists(seen) and os.path.exists(s.drm_socket)
            finally:
                again.stop()
    assert before.status == "pass" and "file bind mount" in before.summary, before.summary
    stale = probes["drm-manager.socket"]
    assert (stale.status, stale.failure_id) == ("fail", "drm-socket-stale-mount"), _table(report)
    assert report.diagnosis.root_cause.failure_id == "drm-socket-stale-mount"
    assert still_there  # diagnosing removed nothing: the socket belongs to the daemon


def test_helix_port_zero_is_a_random_port_not_the_default():
    """QEMU binds port 0 for helix-port=0: the system picks a port nobody can know. The real
    process's command line is the evidence; the path is pinned to it (other tests' stand-in
    QEMUs may run beside it)."""
    from helixdiag.observe.facts import Observations
    from helixdiag.probes import REGISTRY, load
    from helixdiag.probes.context import ProbeContext
    from helixdiag.topology import Topology, _qemu

    load()
    with Stack() as s:
        proc = s.start_fake_qemu(0)
        obs = Observations()
        mine = next(p for p in obs.processes if p.pid == proc.pid)
        assert "helix-port=0" in mine.command_line
        ctx = ProbeContext(RunConfig(side="host", topology="tcp"), obs=obs)
        ctx.__dict__["topology"] = Topology("tcp", "--topology", None, "none", None, "", qemu=_qemu(mine))
        outcome = REGISTRY["qemu.listener"].func(ctx)
    assert outcome.failure_id == "qemu-not-listening" and "helix-port=0" in outcome.summary, outcome.summary
    assert "random port" in outcome.summary


def test_watch_never_repeats_the_subscription_or_the_managers_liveness_probe():
    from helixdiag import watch
    repeated = {p.id for p in watch.cheap_probes()}
    assert "drm-manager.socket" in repeated and "scanout.connectors" in repeated
    assert not repeated & {"drm-manager.answers", "guest-tcp.subscribe", "stream.exchange"}


def test_a_log_from_standard_input_as_pbpaste_gives_it():
    """The Helix app keeps QEMU's log only in its Logs tab: `pbpaste | helixdiag run --qemu-log -`."""
    log = (REPO / "tests" / "logs" / "qemu_h4_slots_exhausted.log").read_text(encoding="utf-8")
    proc = run_cli("run", "qemu.log", "--side", "host", "--host", "127.0.0.1", "--qemu-log", "-", "--json", "-",
                   input=log, timeout=60)
    doc = json.loads(proc.stdout)
    qemu_log = next(p for p in doc["probes"] if p["id"] == "qemu.log")
    assert (qemu_log["status"], qemu_log["failure_id"]) == ("fail", "scanout-slots-exhausted"), qemu_log["summary"]
    two = run_cli("run", "qemu.log", "--side", "host", "--host", "127.0.0.1", "--qemu-log", "-", "--drm-log", "-",
                  input=log, timeout=60)
    assert two.returncode == 2 and "only one log can come from standard input" in two.stderr
    assert len(two.stderr.strip().splitlines()) == 1 and "Traceback" not in two.stderr


def test_a_subscription_that_joins_mid_gop_is_a_warning():
    """The host's encoder keeps its GOP across subscribers and forces no keyframe for a new
    one: joining after the IDR (here a GOP of 600 frames), a subscriber gets a whole GOP's
    worth of P-frames — a viewer stays black — and the watch stops there, with a warning."""
    from conftest import endpoint_of, running_server

    from helixdiag import protocol
    from helixdiag.client import ExchangeOptions, exchange
    from helixdiag.probes import REGISTRY, load
    from helixdiag.server.generations import GENERATIONS, MOVING

    load()
    with running_server(generation=GENERATIONS["h4"], gop=600, fps=60, picture=MOVING, size=(160, 96),
                        idle_timeout=None) as server:
        ep = endpoint_of(server)
        with socket.create_connection((ep.host, ep.port), timeout=5) as manager:  # the drm-manager's ENABLE
            manager.sendall(protocol.encode(protocol.EnableScanout(1, 160, 96, 60)))
            manager.recv(4096)
        viewer = exchange(ExchangeOptions(endpoint=ep, mode="scanout", frames=3, timeout=2.0, scanout_id=1,
                                          size=(160, 96)))  # the real viewer came first: it got the IDR
        assert viewer.keyframes >= 1, viewer.to_dict()
        cfg = RunConfig(side="host", topology="tcp", port=ep.port, mode="scanout", timeout=1.0, size=(160, 96))
        cfg.sources = {"port": "--port", "topology": "--topology", "mode": "--mode"}
        report = runner.Runner(cfg, [REGISTRY["stream.ping"], REGISTRY["stream.exchange"]]).run()
    exchange_result = next(p for p in report.probes if p.id == "stream.exchange")
    assert (exchange_result.status, exchange_result.failure_id) == ("warn", "scanout-mid-gop"), exchange_result.summary
    sub = exchange_result.evidence["subscription"]
    assert sub["frames"]["received"] == 60 and sub["frames"]["keyframes"] == 0
    assert report.diagnosis.status == "warn"


def test_the_vm_place_runs_the_scanout_layers_through_the_guest_agent():
    """`run --guest vm=PREFIX` with nothing installed on the "guest" (a clean interpreter):
    the drm-manager, scanout and guest-tcp layers run there against the stand-ins, the
    subscription's frames are judged back here, and the verdicts are a local run's."""
    from helixdiag import selftest

    stack, cfg = selftest.build(None, "tcp-scanout")
    try:
        args = ("run", "--all", "--host", "127.0.0.1", "--port", str(cfg.port), "--topology", "tcp",
                "--drm-socket", cfg.drm_socket, "--drm-log", cfg.drm_log, "--qemu-log", cfg.qemu_log,
                "--timeout", "1", "--json", "-")
        agent = run_cli(*args, "--guest", "vm=env -i PATH=/usr/bin:/bin", "--guest-agent", "builtin", timeout=120)
        local = run_cli(*args, "--side", "both", timeout=120)
    finally:
        stack.close()
    doc, here = json.loads(agent.stdout), json.loads(local.stdout)
    guest = {p["id"]: p for p in doc["probes"] if p.get("place") == "vm"}
    assert {"drm-manager.answers", "scanout.connectors", "guest-tcp.subscribe"} <= guest.keys(), sorted(guest)
    local_status = {p["id"]: p["status"] for p in here["probes"]}
    assert {pid: p["status"] for pid, p in guest.items()} == {pid: local_status[pid] for pid in guest}
    assert guest["guest-tcp.subscribe"]["evidence"]["subscription"]["judged_on"] == "host"
    assert doc["diagnosis"]["status"] == here["diagnosis"]["status"] == "pass", agent.stderr[-2000:]


@pytest.mark.parametrize("case", ["answers", "refused", "named-port"])
def test_desktop_bridge_dials_the_port_the_host_listens_on(tmp_path, case):
    """A real process named desktop-bridge with the environment Hydra gives it; its port is
    judged by --port when given, else by asking the port itself (PONG, or refused)."""
    from conftest import endpoint_of, running_server

    from helixdiag.probes import REGISTRY, load

    load()
    bridge = tmp_path / "desktop-bridge"
    bridge.symlink_to(sys.executable)  # /proc/PID/comm is the name it was started by
    with running_server() as server:
        port = endpoint_of(server).port if case != "refused" else free_port()
        proc = subprocess.Popen([str(bridge), "-c", "import time; time.sleep(30)"],
                                env={"HELIX_VIDEO_MODE": "scanout", "HELIX_FRAME_EXPORT_PORT": str(port),
                                     "XDG_RUNTIME_DIR": str(tmp_path)})
        try:
            time.sleep(0.3)
            cfg = RunConfig(side="guest", host="127.0.0.1", timeout=1.0)
            cfg.sources = {"side": "--side", "host": "--host"}
            if case == "named-port":
                cfg.port, cfg.sources["port"] = port + 1, "--port"
            result = runner.Runner(cfg, [REGISTRY["desktop-bridge.process"]]).run().probes[0]
        finally:
            proc.kill()
            proc.wait(5)
    assert result.evidence["process"]["pid"] == proc.pid, result.summary
    assert result.evidence["environment"]["HELIX_VIDEO_MODE"] == "scanout"
    if case == "answers":
        assert result.status == "pass" and "answers PING" in result.summary, result.summary
    else:
        assert (result.status, result.failure_id) == ("fail", "bridge-wrong-port"), result.summary
