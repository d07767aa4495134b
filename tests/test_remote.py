"""`run --guest PREFIX`: the guest side through a real second process, prompts that must
fail fast, a missing remote helixdiag, and one merged diagnosis."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from helixdiag import remote, selftest

pytestmark = pytest.mark.timeout(120)

VENV_BIN = str(Path(sys.executable).parent)
# A "guest" reached through `env`: a separate process with its own environment, on PATH
# only the project's virtualenv (where helixdiag is installed) and the system.
GUEST = f"env -u PYTHONPATH PATH={VENV_BIN}:/usr/bin:/bin"


def fake_prefix(tmp_path: Path, name: str, body: str) -> str:
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def test_merged_report_concludes_the_host_root_cause(tmp_path):
    stack, _ = selftest.build("socket-stale")
    with stack:
        res = run_cli("run", "--all", "--guest", GUEST, "--host", "127.0.0.1", "--port", str(stack.port),
                      "--socket", stack.socket_path, "--timeout", "1", "--json", "-", cwd=tmp_path)
    doc = json.loads(res.stdout)
    assert doc["diagnosis"]["root_cause"]["failure_id"] == "socket-stale"
    guest = [p for p in doc["probes"] if p["side"] == "guest"]
    assert guest and all(p["evidence"].get("ran_on") == GUEST for p in guest if p["id"] != "guest-tcp.port")
    ping = next(p for p in doc["probes"] if p["id"] == "guest-tcp.ping")
    assert ping["failure_id"] == "guest-closed"  # the guest's symptom …
    assert {"probe": "guest-tcp.ping", "failure_id": "guest-closed"} in doc["diagnosis"]["symptoms"]
    assert doc["environment"]["guest"]["via"] == GUEST
    assert doc["config"]["guest"]["config"]["side"] == "guest"


def test_merged_text_report_names_both_sides_in_its_header(tmp_path):
    stack, _ = selftest.build(None)
    with stack:
        res = run_cli("run", "guest-tcp", "stream", "--guest", GUEST, "--host", "127.0.0.1",
                      "--port", str(stack.port), "--socket", stack.socket_path, "--timeout", "1", cwd=tmp_path,
                      env={"COLUMNS": "400"})
    head = res.stdout.splitlines()[0]
    assert head.startswith(f"helixdiag run — side host + guest (via {GUEST})"), head


def test_guest_port_is_compared_with_the_host_across_sides(tmp_path):
    stack, _ = selftest.build(None)
    with stack:
        wrong = selftest.free_port()
        # Only the network layers: this "guest" has no PipeWire, an independent second failure.
        res = run_cli("run", "guest-tcp", "socat", "unix-socket", "stream", "--guest", GUEST,
                      "--host", "127.0.0.1", "--port", str(wrong),
                      "--socket", stack.socket_path, "--timeout", "1", "--json", "-", cwd=tmp_path)
    doc = json.loads(res.stdout)
    root = doc["diagnosis"]["root_cause"]
    assert root["failure_id"] == "port-mismatch", root
    probe = next(p for p in doc["probes"] if p["id"] == "guest-tcp.port")
    assert probe["evidence"]["guest_port"] == wrong and probe["evidence"]["host_port"] == stack.port


@pytest.mark.parametrize(("prompt", "words"), [
    ("ubuntu@helix-vm's password: ", "password"),
    ("Enter passphrase for key '/root/.ssh/id_ed25519': ", "passphrase"),
    ("The authenticity of host 'helix-vm' can't be established.\\nAre you sure you want to continue connecting (yes/no/[fingerprint])? ", "host key"),
])
def test_prompts_fail_at_once_never_wait(tmp_path, prompt, words):
    prefix = fake_prefix(tmp_path, "fake-ssh", f'printf "{prompt}"\nread answer\nexit 1\n')
    started = time.monotonic()
    with pytest.raises(remote.RemoteError, match=words):
        remote.run_guest(prefix, [], connect_timeout=10, run_timeout=10)
    assert time.monotonic() - started < 5


def test_a_silent_prefix_times_out(tmp_path):
    prefix = fake_prefix(tmp_path, "stuck", "sleep 60\n")
    started = time.monotonic()
    with pytest.raises(remote.RemoteError, match="no answer within 1"):
        remote.run_guest(prefix, [], connect_timeout=1, run_timeout=5)
    assert time.monotonic() - started < 4


def test_missing_remote_helixdiag_says_how_to_install(tmp_path):
    # --guest-agent installed: the guest's own helixdiag or nothing (auto would bring the agent).
    res = run_cli("run", "--all", "--guest", "env -u PYTHONPATH PATH=/usr/bin:/bin", "--guest-agent", "installed",
                  "--host", "127.0.0.1", "--port", "9", cwd=tmp_path)
    assert res.returncode == 2
    assert "not installed on the guest" in res.stderr and "pip install" in res.stderr
    assert "Traceback" not in res.stderr


def test_remote_stderr_is_kept_as_evidence(tmp_path):
    # The guest's helixdiag prints its human view on stderr when --json - is used.
    result = remote.run_guest(GUEST, ["--host", "127.0.0.1", "--port", "9", "--timeout", "0.3"],
                              connect_timeout=20, run_timeout=60)
    assert result.report["schema"] == "helixdiag.report/v1"
    assert result.exit_code == 1
    assert any("guest-tcp" in line for line in result.stderr)


def test_prefix_that_is_not_a_command(tmp_path):
    with pytest.raises(remote.RemoteError, match="cannot start|ended before"):
        remote.run_guest(str(tmp_path / "no-such-program"), [], connect_timeout=5, run_timeout=5)
    assert os.path.isdir(REPO)
