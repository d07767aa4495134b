"""The vsockenc layer (element, pipeline, log) and the QEMU log probe, through the runner and
the CLI, on the real gst-inspect-1.0 and the scenario logs in tests/logs/."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from conftest import REPO, run_cli

from helixdiag import runner
from helixdiag.config import RunConfig
from helixdiag.probes import REGISTRY, load
from helixdiag.probes.vsockenc import parse_inspect_properties
from helixdiag.results import Status

pytestmark = pytest.mark.timeout(120)
LOGS = REPO / "tests" / "logs"
HEAD_PIPELINE = (
    "pipewiresrc path=47 do-timestamp=true keepalive-time=500 ! videoconvert ! video/x-raw,format=NV12 "
    "! queue max-size-buffers=1 leaky=downstream ! vsockenc tcp-host=10.0.2.2 tcp-port=15937 "
    "bitrate=10000 keyframe-interval=120 ! h264parse ! video/x-h264,stream-format=byte-stream "
    "! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au "
    "! appsink name=videosink emit-signals=true max-buffers=2 drop=true sync=false"
)


def run_probes(ids: list[str], explicit: set[str] | None = None, **config):
    load()
    cfg = RunConfig(**config)
    cfg.sources = {k: f"--{k}" for k in config if k not in ("side",)}
    report = runner.Runner(cfg, [REGISTRY[i] for i in ids], explicit=explicit or set()).run()
    return {p.id: p for p in report.probes}, report


def test_missing_vsockenc_fails_inside_a_guest_and_skips_on_both():
    # This machine has GStreamer but no vsockenc: the real gst-inspect-1.0 says so.
    results, _ = run_probes(["vsockenc.element"], side="guest")
    r = results["vsockenc.element"]
    assert r.status == Status.FAIL and r.failure_id == "vsockenc-missing"
    assert "No such element" in r.evidence["gst_inspect"]
    results, _ = run_probes(["vsockenc.element"], side="both")
    assert results["vsockenc.element"].status == Status.SKIP
    results, _ = run_probes(["vsockenc.element"], explicit={"vsockenc"}, side="both")
    assert results["vsockenc.element"].status == Status.FAIL  # asked for: absence is a failure


def test_inspect_property_parser_on_a_real_element():
    out = subprocess.run(["gst-inspect-1.0", "x264enc"], capture_output=True, text=True, timeout=30).stdout
    props = parse_inspect_properties(out)
    assert props["bitrate"]["default"] == "2048"
    assert "key-int-max" in props and "tune" in props
    assert "name" in props  # inherited GstObject properties are listed too


def test_head_pipeline_lints_clean_and_a_bad_one_names_the_element():
    results, _ = run_probes(["vsockenc.pipeline"], side="guest", pipeline=HEAD_PIPELINE)
    assert results["vsockenc.pipeline"].status == Status.PASS
    bad = HEAD_PIPELINE.replace("videoconvert ! video/x-raw,format=NV12 ! queue max-size-buffers=1 leaky=downstream",
                                "queue max-size-buffers=1 leaky=downstream ! videoconvert")
    results, _ = run_probes(["vsockenc.pipeline"], side="guest", pipeline=bad)
    r = results["vsockenc.pipeline"]
    assert r.status == Status.FAIL and r.failure_id == "gst-pipeline-order"
    assert r.evidence["corrected"] and "Corrected pipeline:" in r.remedy


def test_pipeline_port_is_compared_only_when_asked():
    results, _ = run_probes(["vsockenc.pipeline"], side="guest", pipeline=HEAD_PIPELINE, port=41937)
    assert results["vsockenc.pipeline"].failure_id == "port-mismatch"
    cfg_default_port = RunConfig(side="guest", pipeline=HEAD_PIPELINE)
    cfg_default_port.sources = {"pipeline": "--pipeline"}
    load()
    report = runner.Runner(cfg_default_port, [REGISTRY["vsockenc.pipeline"]]).run()
    assert report.probes[0].status == Status.PASS


@pytest.mark.parametrize(("log", "failure_id", "sequence"), [
    ("gst_healthy.log", None, "healthy"),
    ("gst_no_reply.log", "vsockenc-no-reply", "broken"),
    ("gst_desync.log", "vsockenc-desync", "broken"),
    ("gst_host_error.log", "vsockenc-host-error", "broken"),
    ("gst_connect_failed.log", "vsockenc-connect-failed", "none"),
])
def test_gst_log_probe(log, failure_id, sequence):
    results, _ = run_probes(["vsockenc.log"], side="guest", gst_log=str(LOGS / log))
    r = results["vsockenc.log"]
    assert r.failure_id == failure_id, (r.status, r.summary)
    assert r.status == (Status.PASS if failure_id is None else Status.FAIL)
    # The frames the element logged as sent, counted here independently of the scanner.
    sent_lines = sum("> Sent frame " in line for line in (LOGS / log).read_text().splitlines())
    assert r.evidence["frames"]["sent"] == sent_lines
    assert r.evidence["frames"]["sequence"] == sequence


@pytest.mark.parametrize(("log", "status", "failure_id"), [
    ("qemu_h2_healthy.log", Status.PASS, None),
    ("qemu_bind_failed.log", Status.FAIL, "qemu-bind-failed"),
    ("qemu_no_helix.log", Status.SKIP, None),
])
def test_qemu_log_probe(log, status, failure_id):
    results, _ = run_probes(["qemu.log"], side="host", qemu_log=str(LOGS / log))
    r = results["qemu.log"]
    assert (r.status, r.failure_id) == (status, failure_id), r.summary
    if status == Status.PASS:
        assert r.evidence["last_step"] and r.evidence["version"]


def test_cli_rejects_a_log_path_in_a_directory_that_does_not_exist():
    res = run_cli("run", "qemu", "--side", "host", "--qemu-log", "/nonexistent/helix-debug.log")
    assert res.returncode == 2 and "no such directory /nonexistent" in res.stderr and "Traceback" not in res.stderr


def test_guest_side_report_through_the_cli(tmp_path):
    res = run_cli("run", "vsockenc", "--side", "guest", "--host", "127.0.0.1", "--port", "9",
                  "--pipeline", HEAD_PIPELINE, "--gst-log", str(LOGS / "gst_no_reply.log"), "--json", "-")
    doc = json.loads(res.stdout)
    by_id = {p["id"]: p for p in doc["probes"]}
    assert by_id["vsockenc.element"]["failure_id"] == "vsockenc-missing"
    assert by_id["vsockenc.log"]["failure_id"] == "vsockenc-no-reply"
    assert by_id["vsockenc.pipeline"]["failure_id"] == "port-mismatch"  # tcp-port 15937 vs --port 9
    assert res.returncode == 1


def test_guest_dials_the_port_the_guest_itself_declares(monkeypatch):
    """Inside a guest nothing of the host can be discovered: the VM's env, the pipeline's
    tcp-port or the element's log say which port vsockenc dials (here: a refused one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connect() is refused
        monkeypatch.setenv("HELIX_FRAME_EXPORT_PORT", str(port))
        results, _ = run_probes(["guest-tcp.connect"], side="guest", host="127.0.0.1")
        r = results["guest-tcp.connect"]
        assert r.failure_id == "guest-tcp-refused"
        assert r.evidence["port_from"] == "$HELIX_FRAME_EXPORT_PORT"
        monkeypatch.delenv("HELIX_FRAME_EXPORT_PORT")
        results, _ = run_probes(["guest-tcp.connect"], side="guest", host="127.0.0.1",
                                pipeline=HEAD_PIPELINE.replace("tcp-port=15937", f"tcp-port={port}"))
        r = results["guest-tcp.connect"]
        assert r.evidence["port_from"] == "the pipeline's vsockenc tcp-port"
        assert r.evidence["endpoint"] == f"tcp://127.0.0.1:{port}"
