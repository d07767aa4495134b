"""`helixdiag run` end to end: real socat, real sockets, real processes, the real CLI.

Loopback and short /tmp directories only: every `run` passes `--host 127.0.0.1` (checked
by `run_report`), so nothing ever dials 10.0.2.2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, require_tool, run_cli
from run_helpers import (
    kill_group,
    probe,
    root_of,
    run_plain,
    run_report,
    start_serve,
    summary_table,
)

from helixdiag import runner, selftest
from helixdiag.config import RunConfig
from helixdiag.layers import Side
from helixdiag.observe import parsers
from helixdiag.observe.facts import Observations
from helixdiag.probes import REGISTRY, ProbeSpec
from helixdiag.probes import qemu as qemu_probes
from helixdiag.results import Outcome, Status, failed, passed

pytestmark = pytest.mark.timeout(120)

RECORDINGS = REPO / "tests" / "recordings"
SOCKET_NAME = "helix-frame-export.sock"


# ------------------------------------------------------------------------- helpers


# ------------------------------------------------------ 1. every selftest scenario


@pytest.mark.parametrize("scenario_id", list(selftest.SCENARIOS))
def test_run_names_each_broken_layer(scenario_id, validator):
    require_tool("socat")
    stack, _ = selftest.build(scenario_id)
    with stack:
        extra, env = [], {}
        if stack.pipewire_source is not None:  # the CLI finds the private PipeWire like a guest would
            extra = ["--pipewire-node", str(stack.pipewire_source.serial)]
            env = dict(stack.pipewire.client_env)
        for action in stack.during_run:
            threading.Thread(target=action, daemon=True).start()
        proc, doc = run_report("run", "--all", "--side", "both", "--host", "127.0.0.1",
                               "--port", str(stack.port), "--socket", stack.socket_path,
                               "--timeout", "1", *extra, validator=validator, env=env)
        stranger_pid = stack.processes[-1].pid if stack.processes else None

    table = summary_table(doc)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{table}\n{proc.stderr[-1500:]}"
    diagnosis = doc["diagnosis"]
    assert diagnosis["status"] == "fail"
    root = root_of(doc)
    assert root["failure_id"] == scenario_id, table
    assert diagnosis["findings"][0] == scenario_id
    assert not [p["id"] for p in doc["probes"] if p["status"] == "error"], table
    root_probe = probe(doc, root["probe"])
    assert root_probe["status"] == "fail" and root_probe["failure_id"] == scenario_id
    symptoms = {(s["probe"], s["failure_id"]) for s in diagnosis.get("symptoms", [])}

    if scenario_id == "socket-stale":
        assert root["probe"] == "unix-socket.accept"
        ev = root_probe["evidence"]
        assert ev["holders"] == []
        assert ev["path"] == stack.socket_path
        assert ev["socket_older_than_qemu"] is True, ev
        remedy = root["remedy"].lower()
        assert "remove" in remedy and "socket" in remedy and "restart the vm" in remedy, remedy
        assert ("qemu.listener", "qemu-not-listening") in symptoms, symptoms
        assert probe(doc, "qemu.process")["status"] == "pass"
    elif scenario_id == "socat-port-conflict":
        assert root["probe"] == "socat.port"
        listeners = root_probe["evidence"]["listeners"]
        stranger = [entry for entry in listeners if entry["pid"] == stranger_pid]
        assert stranger, listeners
        assert "python" in stranger[0]["command"] and "s.bind(('127.0.0.1'" in stranger[0]["command"]
        assert stranger[0]["role"] == "other"
        assert str(stranger_pid) in root_probe["summary"]
    elif scenario_id == "socat-wrong-target":
        assert root["probe"] == "socat.target"
        ev = root_probe["evidence"]
        assert ev["expected_socket"] == stack.socket_path
        assert ev["expected_from"] == "--socket"
        assert ev["target_resolved"].endswith("/elsewhere/" + SOCKET_NAME)
        assert stack.socket_path in root["remedy"]
    elif scenario_id == "stream-no-reply":
        assert root["probe"] == "stream.ping"
        # The guest's path ends at the same silent host: not run again, blocked by the root.
        assert probe(doc, "guest-tcp.ping")["status"] == "blocked"
        assert "stream.ping" in probe(doc, "guest-tcp.ping")["summary"]
    elif scenario_id == "socat-not-running":
        assert probe(doc, "stream.ping")["status"] == "pass"  # the host itself is fine
    elif scenario_id in ("socket-missing", "socket-not-a-socket"):
        assert root["probe"] == "unix-socket.path"
        assert ("qemu.listener", "qemu-not-listening") in symptoms, symptoms


# --------------------------------------------------------------- 2. healthy stack


@pytest.fixture(scope="module")
def healthy_run():
    require_tool("socat")
    out = Path(tempfile.mkdtemp(prefix="hxd-jx-", dir="/tmp"))
    try:
        stack, _ = selftest.build(None)
        with stack:
            junit_path = out / "report.xml"
            proc, doc = run_report("run", "--all", "--side", "both", "--host", "127.0.0.1",
                                   "--port", str(stack.port), "--socket", stack.socket_path,
                                   "--timeout", "1", "--junit", str(junit_path))
        yield proc, doc, junit_path.read_text() if junit_path.exists() else None
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_healthy_stack_passes(healthy_run, validator):
    proc, doc, _ = healthy_run
    table = summary_table(doc)
    assert proc.returncode == 0, f"{table}\n{proc.stderr[-1500:]}"
    assert not list(validator.iter_errors(doc))
    assert doc["diagnosis"]["status"] == "pass"
    assert doc["diagnosis"]["root_cause"] is None
    assert doc["diagnosis"]["findings"] == []
    statuses = {p["id"]: p["status"] for p in doc["probes"]}
    assert set(statuses.values()) <= {"pass", "skip"}, table
    for must_pass in ("guest-tcp.ping", "socat.target", "unix-socket.accept", "stream.ping", "stream.exchange"):
        assert statuses[must_pass] == "pass", table
    qemu = [p for p in doc["probes"] if p["layer"] == "qemu"]
    assert {p["id"] for p in qemu} >= {"qemu.process", "qemu.listener", "qemu.binary"}
    for p in qemu:
        assert p["status"] == "skip", table
        if p["id"] == "qemu.dylibs" and sys.platform != "darwin":
            assert "macos" in p["summary"].lower()
        elif p["id"] == "qemu.log":
            assert "no QEMU log" in p["summary"], p  # nothing was given to read
        elif p["id"] == "qemu.outputs":
            assert "request path" in p["summary"], p  # the socat topology: no scanouts to count
        else:
            assert "not QEMU" in p["summary"], p
    assert doc["topology"]["kind"] == "socat"


def test_healthy_junit_has_one_testcase_per_probe(healthy_run):
    _, doc, xml = healthy_run
    assert xml is not None, "--junit wrote nothing"
    suite = ET.fromstring(xml.split("\n", 1)[1] if xml.startswith("<?xml") else xml)
    if suite.tag == "testsuites":
        suite = suite.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [p["id"] for p in doc["probes"]]
    assert int(suite.get("tests")) == len(doc["probes"])
    assert int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
    assert not list(suite.iter("failure")) and not list(suite.iter("error"))
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert skipped == [p["id"] for p in doc["probes"] if p["status"] == "skip"]


def test_list_json_names_every_probe_of_the_report(healthy_run):
    _, doc, _ = healthy_run
    proc = run_cli("list", "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    ids = {entry["id"] for entry in listed}
    reported = {p["id"] for p in doc["probes"]}
    assert reported <= ids, reported - ids
    layers = {entry["id"]: entry["layer"] for entry in listed}
    assert all(layers[p["id"]] == p["layer"] for p in doc["probes"])


# ------------------------------------------------------------------ 3. port-mismatch


def test_port_mismatch_is_the_root_not_the_refusal(validator):
    require_tool("socat")
    stack, _ = selftest.build(None)
    with stack:
        other = selftest.free_port()
        while other == stack.port:
            other = selftest.free_port()
        proc, doc = run_report("run", "--all", "--side", "both", "--host", "127.0.0.1", "--port", str(other),
                               "--socket", stack.socket_path, "--timeout", "1", validator=validator)
    table = summary_table(doc)
    assert proc.returncode == 1
    root = root_of(doc)
    assert root["failure_id"] == "port-mismatch", table
    assert root["probe"] == "guest-tcp.port"
    ev = probe(doc, "guest-tcp.port")["evidence"]
    assert ev["guest_port"] == other and ev["guest_port_from"] == "--port"
    assert ev["host_port"] == stack.port and ev["host_port_from"].startswith("socat TCP-LISTEN")
    assert probe(doc, "guest-tcp.connect")["failure_id"] == "guest-tcp-refused"
    assert "guest-tcp-refused" in doc["diagnosis"]["findings"][1:]
    assert {"probe": "guest-tcp.connect", "failure_id": "guest-tcp-refused"} in doc["diagnosis"]["symptoms"]


# ------------------------------------------------------------- 4. bounded in time


def test_run_against_a_hanging_tcp_host_is_bounded(validator):
    timeout = 1.0
    serve, address = start_serve("--tcp", "127.0.0.1:0", "--fault", "hang")
    try:
        assert address.startswith("tcp://127.0.0.1:"), address
        port = address.rsplit(":", 1)[1]
        started = time.monotonic()
        proc, doc = run_report("run", "--all", "--side", "both", "--host", "127.0.0.1", "--topology", "tcp",
                               "--port", port, "--timeout", f"{timeout:g}", validator=validator)
        wall = time.monotonic() - started
    finally:
        kill_group(serve)
    # Interpreter start-up and observation (~1-2 s on a busy 2-core box), then one wait of
    # `timeout` (stream.ping) and its PING; guest-tcp.ping and stream.exchange are blocked.
    bound = 4.0 + 2 * timeout
    assert wall < bound, f"run took {wall:.1f} s against a host that never answers (bound {bound:g} s)"
    assert doc["duration_ms"] < bound * 1000
    table = summary_table(doc)
    assert proc.returncode == 1
    assert root_of(doc)["failure_id"] == "stream-no-reply", table
    assert probe(doc, "guest-tcp.ping")["status"] == "blocked"
    assert doc["topology"]["kind"] == "tcp"


def test_a_path_with_nothing_on_it_is_fast_and_names_no_qemu(validator):
    """Whatever else runs here (other VMs, test servers), a port nothing serves is judged alone."""
    port = selftest.free_port()
    started = time.monotonic()
    proc, doc = run_report("run", "--all", "--side", "host", "--host", "127.0.0.1", "--port", str(port),
                           validator=validator)
    wall = time.monotonic() - started
    assert wall < 5.0, f"{wall:.1f} s"
    assert proc.returncode == 1
    root = root_of(doc)
    assert root["failure_id"] == "qemu-not-running", summary_table(doc)
    assert root["probe"] == "qemu.process"
    guest = [p for p in doc["probes"] if p["side"] == "guest"]
    assert guest and all(p["status"] == "skip" for p in guest)
    assert doc["topology"]["qemu_pid"] is None and doc["topology"]["socat_pid"] is None


# ---------------------------------------------- 5. socat's relative UNIX-CONNECT path


def test_relative_socat_target_against_qemu_cwd(short_tmp, validator):
    socat = require_tool("socat")
    dir_a, dir_b = short_tmp / "a", short_tmp / "b"
    dir_a.mkdir()
    dir_b.mkdir()
    stack = selftest.Stack(root=dir_a)  # the stand-in QEMU runs with cwd dir A
    started: list[subprocess.Popen] = []
    try:
        serve, address = start_serve("--unix", str(dir_a / SOCKET_NAME), cwd=str(short_tmp))
        started.append(serve)
        assert address == f"unix://{dir_a / SOCKET_NAME}"
        stack.start_fake_qemu()
        started.append(subprocess.Popen(
            [socat, f"TCP-LISTEN:{stack.port},bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{SOCKET_NAME}"],
            cwd=str(dir_b), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        assert selftest.wait_listening(stack.port), "socat did not listen"
        proc, doc = run_report("run", "--all", "--side", "both", "--host", "127.0.0.1", "--port", str(stack.port),
                               "--timeout", "1", validator=validator)
    finally:
        for p in started:
            kill_group(p)
        stack.close()
    table = summary_table(doc)
    assert proc.returncode == 1
    root = root_of(doc)
    assert root["failure_id"] == "socat-wrong-target", table
    assert root["probe"] == "socat.target"
    ev = probe(doc, "socat.target")["evidence"]
    assert ev["qemu_cwd"] == os.path.realpath(dir_a)
    assert ev["target_relative"] is True
    assert ev["target_as_written"] == SOCKET_NAME
    assert ev["socat_cwd"] == os.path.realpath(dir_b)
    assert str(Path(os.path.realpath(dir_a)) / SOCKET_NAME) in root["remedy"]
    # What socat "sees" is missing in its own directory: a consequence, not the cause.
    assert "socket-missing" in doc["diagnosis"]["findings"][1:]


# ------------------------------------------------------------------- 6. qemu.binary


def run_qemu_probes(validator, vm_dir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The QEMU probes for the VM whose socket would be in `vm_dir` (H1 binds it in QEMU's
    working directory): named, so no other QEMU or listener on this machine is judged."""
    return run_report("run", "qemu.process", "qemu.binary", "--side", "both", "--host", "127.0.0.1",
                      "--socket", str(vm_dir / SOCKET_NAME), "--timeout", "1", validator=validator)


def test_qemu_binary_helix_marker_and_staleness(validator):
    stack = selftest.Stack()
    with stack:
        stack.start_fake_qemu()
        binary = stack.root / selftest.FAKE_QEMU_NAME
        _, doc = run_qemu_probes(validator, stack.root)
        result = probe(doc, "qemu.binary")
        assert result["status"] == "pass", summary_table(doc)
        assert result["evidence"]["binary"] == str(binary), "another QEMU on this machine was picked"
        assert result["evidence"]["version"] == "helixdiag-selftest-stand-in"
        assert result["evidence"]["helix_strings"] is True

        future = time.time() + 3600  # rebuilt on disk while the old one runs
        os.utime(binary, (future, future))
        proc, doc = run_qemu_probes(validator, stack.root)
        result = probe(doc, "qemu.binary")
        assert proc.returncode == 1
        assert result["status"] == "fail" and result["failure_id"] == "qemu-binary-stale", summary_table(doc)
        assert root_of(doc)["failure_id"] == "qemu-binary-stale"


def test_qemu_binary_without_helix(short_tmp, validator):
    sleep = require_tool("sleep")
    binary = short_tmp / selftest.FAKE_QEMU_NAME
    shutil.copyfile(sleep, binary)
    binary.chmod(0o755)
    past = time.time() - 60
    os.utime(binary, (past, past))
    fake = subprocess.Popen([str(binary), "300"], cwd=str(short_tmp), start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc, doc = run_qemu_probes(validator, short_tmp)
    finally:
        kill_group(fake)
    result = probe(doc, "qemu.binary")
    assert result["evidence"]["binary"] == str(binary), "another QEMU on this machine was picked"
    assert result["status"] == "fail" and result["failure_id"] == "qemu-no-helix", summary_table(doc)
    assert result["evidence"]["helix_strings"] is False
    assert proc.returncode == 1
    assert root_of(doc)["failure_id"] == "qemu-no-helix"


# -------------------------------------------------- 7. the runner, with synthetic probes


def synthetic(probe_id: str, func, **kw) -> ProbeSpec:
    spec = ProbeSpec(probe_id, probe_id.split(".", 1)[0], Side.HOST, "synthetic test probe", func, **kw)
    assert probe_id not in REGISTRY
    return spec


def synthetic_config(**kw) -> RunConfig:
    cfg = RunConfig(side="both", host="127.0.0.1", timeout=1.0, deadline=20.0)
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


def test_runner_a_crashing_probe_is_an_error_and_the_rest_run():
    def boom(ctx) -> Outcome:
        raise RuntimeError("kaboom-4711")

    probes = [synthetic("encoder.synthetic-boom", boom),
              synthetic("encoder.synthetic-ok", lambda ctx: passed("fine")),
              synthetic("stream.synthetic-after", lambda ctx: passed("ran"), needs=("encoder.synthetic-ok",))]
    report = runner.Runner(synthetic_config(), probes).run()
    by_id = {r.id: r for r in report.probes}
    assert [r.id for r in report.probes] == [p.id for p in probes]
    assert by_id["encoder.synthetic-boom"].status == Status.ERROR
    assert "kaboom-4711" in by_id["encoder.synthetic-boom"].summary
    assert "RuntimeError" in by_id["encoder.synthetic-boom"].summary
    assert by_id["encoder.synthetic-ok"].status == Status.PASS
    assert by_id["stream.synthetic-after"].status == Status.PASS
    assert report.diagnosis.status == "fail" and report.exit_code == 1
    assert "synthetic" not in " ".join(p.id for p in runner.select([], True))


def test_runner_probe_timeout_is_enforced():
    release = threading.Event()

    def stuck(ctx) -> Outcome:
        release.wait(15)
        return passed("too late")

    probes = [synthetic("stream.synthetic-stuck", stuck, timeout=0.5),
              synthetic("stream.synthetic-fast", lambda ctx: passed("quick")),
              synthetic("stream.synthetic-dependent", lambda ctx: passed("ran"), needs=("stream.synthetic-stuck",))]
    started = time.monotonic()
    try:
        report = runner.Runner(synthetic_config(), probes).run()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    by_id = {r.id: r for r in report.probes}
    assert elapsed < 2.0, f"Runner.run() took {elapsed:.2f} s with a 0.5 s probe timeout"
    assert by_id["stream.synthetic-stuck"].status == Status.ERROR
    assert "timed out" in by_id["stream.synthetic-stuck"].summary
    assert by_id["stream.synthetic-fast"].status == Status.PASS
    assert by_id["stream.synthetic-dependent"].status == Status.BLOCKED


def test_runner_failed_needs_block_dependents():
    calls: list[str] = []

    def track(name: str, outcome: Outcome):
        def func(ctx) -> Outcome:
            calls.append(name)
            return outcome
        return func

    probes = [
        synthetic("encoder.synthetic-base", track("base", failed("encoder-error", "broken on purpose"))),
        synthetic("stream.synthetic-child", track("child", passed("x")), needs=("encoder.synthetic-base",)),
        synthetic("stream.synthetic-grandchild", track("grandchild", passed("x")), needs=("stream.synthetic-child",)),
        synthetic("stream.synthetic-unrelated", track("unrelated", passed("x")), needs=("qemu.not-selected",)),
    ]
    report = runner.Runner(synthetic_config(), probes).run()
    by_id = {r.id: r for r in report.probes}
    assert by_id["encoder.synthetic-base"].status == Status.FAIL
    assert by_id["stream.synthetic-child"].status == Status.BLOCKED
    assert "encoder.synthetic-base" in by_id["stream.synthetic-child"].summary
    assert "encoder-error" in by_id["stream.synthetic-child"].summary
    assert by_id["stream.synthetic-grandchild"].status == Status.BLOCKED
    assert by_id["stream.synthetic-unrelated"].status == Status.PASS  # an unselected need is no need
    assert sorted(calls) == ["base", "unrelated"]
    assert report.diagnosis.root_cause.failure_id == "encoder-error"
    assert by_id["encoder.synthetic-base"].remedy  # the catalog remedy filled in


def test_runner_deadline_bounds_the_whole_run():
    release = threading.Event()

    def slow(ctx) -> Outcome:  # no own timeout: derived from --timeout (1*2+5 = 7 s)
        release.wait(15)
        return passed("too late")

    probes = [synthetic("stream.synthetic-slow", slow),
              synthetic("stream.synthetic-waiting", lambda ctx: passed("x"), needs=("stream.synthetic-slow",))]
    started = time.monotonic()
    try:
        report = runner.Runner(synthetic_config(deadline=1.0), probes).run()
        elapsed = time.monotonic() - started
    finally:
        release.set()
    by_id = {r.id: r for r in report.probes}
    assert elapsed < 2.5, f"Runner.run() took {elapsed:.2f} s with a 1 s deadline"
    assert by_id["stream.synthetic-slow"].status == Status.ERROR
    assert "deadline" in by_id["stream.synthetic-slow"].summary
    assert by_id["stream.synthetic-waiting"].status == Status.ERROR
    assert "deadline" in by_id["stream.synthetic-waiting"].summary
    assert report.exit_code == 1


# --------------------------------------------------------------------- 8. CLI errors


def assert_usage_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}: {text[-1500:]}"
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text
    return text


def test_unknown_probe_is_a_usage_error_with_suggestions():
    assert_usage_error(run_plain("run", "nosuchprobe", "--host", "127.0.0.1"),
                       "nosuchprobe", "helixdiag list")
    assert_usage_error(run_plain("run", "socat.proces", "--host", "127.0.0.1"),
                       "socat.proces", "did you mean", "socat.process")


def test_bad_profiles_and_env_values_are_usage_errors(short_tmp):
    assert_usage_error(run_plain("run", "--profile", "nope", "--host", "127.0.0.1"),
                       "nope", "ci-smoke")
    bad = short_tmp / "bad.toml"
    bad.write_text('[run]\nport = "x"\n')
    text = assert_usage_error(run_plain("run", "--profile", str(bad), "--host", "127.0.0.1"), str(bad))
    assert "port" in text.replace(str(bad), "")
    assert_usage_error(run_plain("run", "socat.port", "--host", "127.0.0.1", env={"HELIXDIAG_TIMEOUT": "abc"}),
                       "HELIXDIAG_TIMEOUT", "abc")


def test_env_var_then_flag_precedence(validator):
    _, doc = run_report("run", "socat.port", "--side", "both", "--host", "127.0.0.1", validator=validator,
                        env={"HELIXDIAG_PORT": "1234"})
    assert doc["config"]["port"] == 1234
    assert doc["config"]["sources"]["port"] == "$HELIXDIAG_PORT"
    assert doc["topology"]["listen_port"] == 1234
    assert doc["topology"]["port_source"] == "$HELIXDIAG_PORT"
    _, doc = run_report("run", "socat.port", "--side", "both", "--host", "127.0.0.1", "--port", "2345",
                        validator=validator, env={"HELIXDIAG_PORT": "1234"})
    assert doc["config"]["port"] == 2345
    assert doc["config"]["sources"]["port"] == "--port"


# ---------------------------------------------------------------------- 9. redaction


def test_secrets_from_the_environment_never_reach_the_report(short_tmp, validator):
    secret = "s3cr3t-value-xyz"
    junit_path = short_tmp / "r.xml"
    proc, doc = run_report("run", "socat.port", "--side", "both", "--host", "127.0.0.1",
                           "--pipeline", f"videotestsrc ! fakesink name={secret}", "--junit", str(junit_path),
                           validator=validator, env={"HELIX_API_KEY": secret})
    assert secret not in proc.stdout
    assert secret not in proc.stderr
    assert secret not in junit_path.read_text()
    assert "env:HELIX_API_KEY" in doc["redactions"]
    assert doc["config"]["pipeline"] == "videotestsrc ! fakesink name=<redacted:HELIX_API_KEY>"


# ------------------------------------------------------- 11. macOS otool -L recordings


def test_dylib_judgement_on_recorded_macos_otool_output():
    build_tree = qemu_probes.judge_dylibs(parsers.parse_otool_L(
        (RECORDINGS / "macos" / "otool_L_qtcore_mixxx.txt").read_text()))
    assert build_tree.status == Status.FAIL
    assert build_tree.failure_id == "qemu-dylib-sysroot"
    assert build_tree.evidence["build_paths"] and build_tree.evidence["build_paths"][0].startswith("/Users/mixxx/")

    homebrew = qemu_probes.judge_dylibs(parsers.parse_otool_L(
        (RECORDINGS / "macos" / "otool_L_qemu_system_aarch64_acvm.txt").read_text()))
    assert homebrew.status == Status.PASS
    assert homebrew.failure_id is None
    assert homebrew.evidence["build_paths"] == []
    assert all(p.startswith("/opt/homebrew/") for p in homebrew.evidence["other_absolute"])
    assert homebrew.evidence["other_absolute"]


def test_runner_never_loses_track_of_a_probe_whose_needs_settle_early():
    """A probe listed before its need, whose need is settled without running (skipped by
    side, or blocked), must still be judged: never "not run" for the runner's own reasons."""
    probes = [
        synthetic("guest-tcp.synthetic-late", lambda ctx: passed("ran"), needs=("stream.synthetic-middle",)),
        synthetic("stream.synthetic-middle", lambda ctx: passed("x"), needs=("encoder.synthetic-first",)),
        synthetic("encoder.synthetic-first", lambda ctx: failed("encoder-error", "broken on purpose")),
    ]
    facts = Observations()  # one machine snapshot: the race is in the scheduling, not the facts
    for _ in range(200):
        report = runner.Runner(synthetic_config(), probes, observations=facts).run()
        by_id = {r.id: r for r in report.probes}
        assert by_id["stream.synthetic-middle"].status == Status.BLOCKED
        late = by_id["guest-tcp.synthetic-late"]
        assert late.status == Status.BLOCKED, late.summary
        assert "stream.synthetic-middle" in late.summary
        assert not [r for r in report.probes if r.status == Status.ERROR]
