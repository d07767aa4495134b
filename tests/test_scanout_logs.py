"""The scanout path's logs: desktop-bridge (`bridge`), helix-drm-manager (`drm`) and the host's
H4/H5 frame path (`qemu`) — each fixture's failure ids and facts, detection of the kinds, the
line shapes (journald, short-iso, zerolog JSON, docker's timestamps), standard input read
once, and the stand-ins leaving the host's evidence in their logs.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helixdiag import logscan, protocol
from helixdiag.faults import Fault
from helixdiag.logscan import BridgeLogSummary, DrmLogSummary, scan_file, scan_lines
from helixdiag.logscan.slog import parse
from helixdiag.observe.facts import Observations
from helixdiag.server.generations import GENERATIONS, MOVING
from helixdiag.server.listener import FrameServer
from helixdiag.server.settings import ServerConfig

pytestmark = pytest.mark.timeout(60)

LOGS = Path(__file__).resolve().parent / "logs"
REPO = LOGS.parent.parent

# fixture -> (failure ids, facts the summary must hold)
BRIDGE = {
    "bridge_healthy.log": ([], dict(video_mode="scanout", scanout_id=3, scanout_id_source="file",
                                    subscribed_scanout=3, qemu_port=41937,
                                    monitor_connector="Virtual-4", frames=900)),
    "bridge_own_lease.log": (["scanout-not-rendered", "scanout-no-frames"],
                             dict(scanout_id=5, scanout_id_source="own-lease", subscribed_scanout=5,
                                  monitor_connector="Virtual-4", frames=None)),
    "bridge_wrong_port.log": (["bridge-wrong-port"], dict(qemu_port=15937, subscribed_scanout=None,
                                                          start_failures=2)),
    "bridge_mid_gop.log": (["scanout-mid-gop"], dict(frames=300)),
    "bridge_idle_drop.log": (["scanout-idle-drop"], dict(frames=300, read_errors=1)),
    "bridge_connection_lost.log": (["scanout-connection-lost"], dict(frames=300, read_errors=1)),
    "bridge_static_no_frames.log": (["scanout-no-frames"], dict(frames=None, subscribed_scanout=3)),
    "bridge_bad_magic.log": (["stream-bad-magic"], dict(subscribed_scanout=1, frames=298)),
}
DRM = {
    "drm_healthy.log": ([], dict(qemu_addr="10.0.2.2:41937", qemu_port=41937,
                                 socket="/run/helix-drm/drm.sock", connectors=16,
                                 available_scanouts=15, restarts=1, leases_held=[2],
                                 unknown_command_probes=1)),
    "drm_not_master.log": (["drm-manager-not-master"], dict(restarts=4, qemu_port=41937,
                                                            connectors=None)),
    "drm_pool_exhausted.log": (["scanout-pool-exhausted"],
                               dict(leases_held=list(range(1, 16)), lease_failures=2)),
    "drm_wrong_port.log": (["drm-manager-wrong-port"], dict(qemu_addr="10.0.2.2:15937",
                                                            qemu_port=15937, lease_failures=2)),
    "drm_one_connector.log": (["scanout-outputs-missing", "scanout-pool-exhausted"],
                              dict(connectors=1, available_scanouts=0)),
    "drm_standin_captured.log": ([], dict(connectors=16, available_scanouts=15, leases_held=[],
                                          leases_sent=2, unknown_command_probes=1)),
    "drm_standin_pool_empty_captured.log": (["scanout-pool-exhausted"],
                                            dict(connectors=16, available_scanouts=0)),
    "drm_standin_no_master_captured.log": (["drm-manager-not-master"], dict(restarts=1)),
    "drm_standin_wrong_port_captured.log": (["drm-manager-wrong-port"], dict(lease_failures=2)),
}
QEMU = {
    "qemu_h4_scanout_healthy.log": ([], dict(frames_captured=300, frames_encoded=300, encode_errors=0)),
    "qemu_h4_slots_exhausted.log": (["scanout-slots-exhausted"], dict(clients_rejected=2)),
    "qemu_h4_encode_error.log": (["encoder-error", "scanout-no-frames"],
                                 dict(frames_captured=3, frames_encoded=0, encode_errors=3)),
    "qemu_h4_double_init_scanout.log": (["scanout-no-frames"], dict(frames_captured=0)),
    "qemu_h4_captured_not_encoded.log": (["scanout-no-frames"],
                                         dict(frames_captured=100, frames_encoded=0)),
    "qemu_h5_scanout_keepalive.log": ([], dict(frames_encoded=3, keepalives=100, frames_dropped=2)),
    "qemu_h4_scanout_captured.log": ([], dict(frames_captured=100, frames_encoded=100)),
    "qemu_h4_no_frames_captured.log": (["scanout-no-frames"],
                                       dict(frames_captured=100, frames_encoded=0)),
    "qemu_h4_double_init_captured.log": (["scanout-no-frames"],
                                         dict(frames_captured=0)),
}
CASES = [(name, kind, ids, facts) for kind, table in (("bridge", BRIDGE), ("drm", DRM), ("qemu", QEMU))
         for name, (ids, facts) in table.items()]


@pytest.mark.parametrize(("name", "kind", "ids", "facts"), CASES, ids=[c[0] for c in CASES])
def test_each_fixture_gives_its_ids_and_facts(name, kind, ids, facts):
    summary = scan_file(LOGS / name)
    assert summary.kind == kind
    assert summary.failure_ids == ids, [f.message for f in summary.findings]
    for key, value in facts.items():
        assert getattr(summary, key) == value, key
    assert summary.internal_errors == 0
    for finding in summary.findings:  # every finding says where: a line of the log
        assert finding.evidence.get("line") or finding.evidence.get("line_no"), finding
    forced = scan_file(LOGS / name, kind=kind).to_dict()
    detected = summary.to_dict()
    for scan in (forced, detected):
        scan.pop("source_age_s")  # the file's age when read: the two reads are moments apart
    assert forced == detected  # forced = detected
    assert json.dumps(summary.to_dict())


def test_the_findings_carry_their_evidence():
    drop = scan_file(LOGS / "bridge_idle_drop.log").finding("scanout-idle-drop")
    assert drop.evidence["seconds_after_subscribe"] == pytest.approx(60.26)
    assert "60.26 s" in drop.message
    lost = scan_file(LOGS / "bridge_connection_lost.log").finding("scanout-connection-lost")
    assert lost.evidence["seconds_after_subscribe"] == pytest.approx(192.36)
    assert "connection reset by peer" in lost.message
    port = scan_file(LOGS / "bridge_wrong_port.log").finding("bridge-wrong-port")
    assert port.evidence["addr"] == "10.0.2.2:15937" and port.count == 2
    own = scan_file(LOGS / "bridge_own_lease.log").finding("scanout-not-rendered")
    assert own.evidence["expected_connector"] == "Virtual-6"  # scanout 5, monitor Virtual-4
    wrong = scan_file(LOGS / "drm_wrong_port.log").finding("drm-manager-wrong-port")
    assert wrong.evidence["addr"] == "10.0.2.2:15937" and wrong.evidence["qemu_addr"] == "10.0.2.2:15937"
    master = scan_file(LOGS / "drm_not_master.log")
    assert "SET_MASTER" in master.findings[0].evidence["error"]
    assert master.run_first_line == 16 and len(master.earlier_runs) == 3


def test_a_static_picture_is_a_warning_and_host_evidence_a_failure():
    bridge = scan_file(LOGS / "bridge_static_no_frames.log")
    assert bridge.status == "warn" and bridge.findings[0].severity == "warn"
    assert "static" in bridge.findings[0].message
    host = scan_file(LOGS / "qemu_h4_captured_not_encoded.log")
    assert host.status == "fail" and host.finding("scanout-no-frames").severity == "fail"
    assert "never encoded" in host.finding("scanout-no-frames").message


def test_the_gst_goldens_keep_their_meaning():
    """The vsockenc logs are still vsockenc logs, judged by vsockenc rows only."""
    for path in sorted(LOGS.glob("gst_*.log")):
        golden = json.loads((LOGS / "expected" / f"{path.stem}.json").read_text())
        summary = scan_file(path)
        assert summary.kind == golden["kind"] == "gst", path.name
        assert summary.failure_ids == [f["failure_id"] for f in golden["findings"]], path.name
        assert all(n.startswith("gst.") for n in golden["signature_counts"]), path.name


# ════════════════════════════════════════════════════════════════ line shapes and detection

SLOG = 'time=2026-08-08T10:00:00.000Z level=INFO msg="subscribed to QEMU scanout" scanout_id=3 qemu_addr=10.0.2.2:41937'


@pytest.mark.parametrize("line", [
    "[desktop-bridge] " + SLOG,
    SLOG,
    "2026-08-08T10:00:00.123456789Z [desktop-bridge] " + SLOG,  # docker logs -t
    '[desktop-bridge] {"level":"info","time":"2026-08-08T10:00:00Z","message":"subscribed to QEMU scanout",'
    '"scanout_id":3,"qemu_addr":"10.0.2.2:41937"}',
])
def test_every_shape_of_a_bridge_line_is_read(line):
    s = scan_lines([line])
    assert isinstance(s, BridgeLogSummary)
    assert (s.subscribed_scanout, s.qemu_port, s.subscriptions) == (3, 41937, 1)


@pytest.mark.parametrize("prefix", [
    "Aug  8 10:00:00 helix-vm helix-drm-manager[812]: ",
    "2026-08-08T10:00:00+0000 helix-vm helix-drm-manager[812]: ",  # -o short-iso
    "",  # bare, as the stand-in writes it
    "10:00:00 drm-manager: ",  # as serve shows its stand-in's lines
])
def test_every_shape_of_a_drm_line_is_read(prefix):
    line = (prefix + 'time=2026-08-08T10:00:00.000Z level=INFO msg="starting helix-drm-manager" '
            "drm_device=/dev/dri/card0 socket=/run/helix-drm/drm.sock qemu_addr=10.0.2.2:41937")
    s = scan_lines([line])
    assert isinstance(s, DrmLogSummary)
    assert (s.qemu_port, s.socket, s.restarts) == (41937, "/run/helix-drm/drm.sock", 1)


def test_journal_time_is_read_when_the_slog_time_is_missing():
    a = parse("Aug 08 10:00:00 vm helix-drm-manager[1]: level=INFO msg=x")
    b = parse("Aug 08 10:01:00 vm helix-drm-manager[1]: level=INFO msg=x")
    assert b.time - a.time == 60 and a.ident == "helix-drm-manager" and a.content == "x"


def test_a_bridge_log_with_vsockenc_lines_is_a_vsockenc_log():
    gst = ("[desktop-bridge] 0:00:34.030171437   333 0xe7a330000c00 INFO  vsockenc gstvsockenc.c:322:"
           "gst_vsockenc_connect:<vsockenc0> Connected via TCP to 10.0.2.2:15937 (TCP_NODELAY, sndbuf=1MB)")
    first = '[desktop-bridge] time=2026-08-08T10:00:00Z level=INFO msg="using vsockenc (macOS VideoToolbox via vsock)"'
    s = scan_lines([first, gst])
    assert s.kind == "gst" and s.tcp_port == 15937 and s.video_mode == "vsockenc"
    assert "bridge-lines" in {n.key for n in s.notes}
    assert scan_lines([first]).kind == "bridge"


def test_unknown_lines_are_unknown_and_nothing_raises():
    assert scan_lines(["hello", "time=x level=INFO msg=\"something else\"", "{not json"]).kind == "unknown"
    for kind in ("bridge", "drm"):
        s = scan_lines(["{", '{"message": 5}', "time=", 'msg="', "\x00\x01", "[desktop-bridge] ", "x" * 70000], kind)
        assert s.internal_errors == 0


def test_the_drm_scan_judges_the_last_run_only():
    lines = (LOGS / "drm_wrong_port.log").read_text().splitlines()
    lines += (LOGS / "drm_healthy.log").read_text().splitlines()[1:]  # a restart with the right port
    s = scan_lines(lines, "drm")
    assert s.failure_ids == [] and s.qemu_port == 41937 and s.restarts == 2
    assert s.earlier_runs[0]["findings"] == ["drm-manager-wrong-port"]


def test_a_reader_error_followed_by_a_new_subscription_recovered():
    lines = (LOGS / "bridge_connection_lost.log").read_text().splitlines()
    lines.append('[desktop-bridge] time=2026-08-08T10:04:00.000Z level=INFO msg="subscribed to QEMU scanout" '
                 "scanout_id=3 qemu_addr=10.0.2.2:41937")
    lines.append('[desktop-bridge] time=2026-08-08T10:04:00.100Z level=INFO msg="scanout stream stats" '
                 "frames=1 fps=0.0 last_size=60000 keyframe=true")
    s = scan_lines(lines, "bridge")
    assert s.failure_ids == [] and "reader-recovered" in {n.key for n in s.notes}


def test_the_subscribe_resp_race_is_a_note():
    s = scan_lines(['[desktop-bridge] time=2026-08-08T10:00:00Z level=ERROR msg="failed to start streamer" '
                    'err="start scanout source: subscribe response: unexpected msg_type: 0x2"'])
    assert s.kind == "bridge" and s.findings == [] and s.start_failures == 1
    assert "bridge.start-subscribe-race" in {n.key for n in s.notes}


# ════════════════════════════════════════════════════════════════ standard input, once


def test_stdin_is_read_once_for_every_log_that_names_it(monkeypatch):
    data = (LOGS / "drm_wrong_port.log").read_bytes() + (LOGS / "bridge_wrong_port.log").read_bytes()
    raw = io.BytesIO(data)
    reads = []
    real_read = raw.read

    def counted(n=-1):
        chunk = real_read(n)
        reads.append(len(chunk))
        return chunk

    raw.read = counted  # type: ignore[method-assign]
    raw.read1 = counted  # type: ignore[method-assign]
    stdin = io.TextIOWrapper(raw, encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    obs = Observations()
    drm, bridge = obs.drm_log("-"), obs.bridge_log("-")
    assert drm.failure_ids == ["drm-manager-wrong-port"] and drm.source == "<stdin>"
    assert "bridge-wrong-port" in bridge.failure_ids
    assert obs.qemu_log("-").kind == "qemu" and obs.gst_log("-").kind == "gst"
    assert sum(reads) == len(data) and reads[-1] == 0  # read to its end exactly once
    assert Observations().drm_log("-").failure_ids == drm.failure_ids  # a re-run: the same copy
    assert Observations().drm_log(str(LOGS / "no-such.log")) is None


def test_pbpaste_into_logs_works(tmp_path):
    data = (LOGS / "qemu_h4_encode_error.log").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "helixdiag", "logs", "--json", "-", "-"], input=data,
                          capture_output=True, cwd=REPO, timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["files"][0]["source"] == "<stdin>"
    assert doc["findings"] == ["encoder-error", "scanout-no-frames"]
    assert doc["files"][0]["scanout_frames"]["encode_errors"] == 3


@pytest.mark.parametrize(("kind", "name", "expected"), [
    ("bridge", "bridge_healthy.log", "scanout mode · scanout 3 from file · subscribed to 3 on port 41937"),
    ("drm", "drm_healthy.log", "qemu_addr 10.0.2.2:41937 · 16 connectors · 15 scanouts to lease"),
])
def test_logs_prints_one_summary_line_per_kind(kind, name, expected):
    proc = subprocess.run([sys.executable, "-m", "helixdiag", "--no-color", "logs", "--kind", kind,
                           str(LOGS / name)], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"COLUMNS": "300", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout and "PASS" in proc.stdout


# ════════════════════════════════════════════════════════════════ the stand-in leaves evidence


def _subscribe_and_read(fault: str | None, seconds: float = 1.5) -> tuple[list[str], int]:
    """An H4 host with a moving picture, scanout 1 enabled, one subscriber for `seconds`:
    (the host's log lines, frames pushed to the subscriber)."""
    lines: list[str] = []
    server = FrameServer(ServerConfig(tcp=[("127.0.0.1", 0)], size=(160, 96), generation=GENERATIONS["h4"],
                                      picture=MOVING, fps=30, fault=Fault(fault) if fault else None),
                         log=lines.append)
    endpoints = server.start()
    frames = 0
    try:
        assert server.enable(1, 160, 96)
        ep = endpoints[0]
        with socket.create_connection((ep.host, ep.port), timeout=5) as sock:
            sock.sendall(protocol.encode(protocol.Subscribe(1)))
            decoder = protocol.Decoder()
            sock.settimeout(0.2)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                decoder.feed(data)
                frames += sum(isinstance(m, protocol.FrameResponse) for m in decoder.messages())
    finally:
        server.stop()
    return lines, frames


def test_a_healthy_stand_in_logs_captures_and_encodes():
    lines, frames = _subscribe_and_read(None)
    assert frames > 5
    assert any("[FRAME_READY] #1 scanout=1 resource=" in line for line in lines), lines
    assert any(line.startswith("[ENCODE] scanout=1 frame=1 slot=1 status=0 160x96") for line in lines), lines
    s = logscan.scan_qemu_log(lines)
    assert s.failure_ids == [] and s.frames_captured >= 5 and s.frames_encoded >= 5


def test_no_frames_leaves_captures_that_are_never_encoded():
    lines, frames = _subscribe_and_read("no-frames")
    assert frames == 0  # the wire is unchanged: subscribed, nothing pushed
    assert any("has_subscriber=YES" in line for line in lines) and not any("[ENCODE]" in line for line in lines)
    assert logscan.scan_qemu_log(lines).failure_ids == ["scanout-no-frames"]


def test_double_init_leaves_no_subscriber_lines():
    lines, frames = _subscribe_and_read("double-init")
    assert frames == 0
    assert any("active_clients=0 NO_SUBSCRIBER" in line for line in lines), lines
    assert "scanout-no-frames" in logscan.scan_qemu_log(lines).failure_ids
