"""`run --guest` with the guest agent from the command line: several places in one report,
`--guest auto`'s ssh prefix from QEMU's hostfwd, every step bounded by --guest-timeout, a guest
without python3, and nothing left behind on the guest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from agent_helpers import bin_dir, clean_prefix, guest_tool
from conftest import run_cli
from run_helpers import kill_group, start_serve

from helixdiag.agent.places import DEFAULT_NAME, parse_places, ssh_port_forward
from helixdiag.errors import UsageError
from helixdiag.observe.procfs import ProcfsBackend

pytestmark = pytest.mark.timeout(120)
SLACK_S = 4.0  # the CLI's own start (imports) and ending the prefix's process group


@pytest.fixture
def serve_port():
    proc, address = start_serve("--tcp", "127.0.0.1:0")
    try:
        yield int(address.rsplit(":", 1)[1])
    finally:
        kill_group(proc)


def test_two_places_one_report(serve_port, tmp_path, validator):
    res = run_cli("run", "--guest", f"vm={clean_prefix()}", "--guest", f"desktop={clean_prefix()}",
                  "--guest-agent", "builtin", "--host", "127.0.0.1", "--port", str(serve_port),
                  "--timeout", "1", "--json", "-", cwd=tmp_path, timeout=120)
    doc = json.loads(res.stdout)
    validator.validate(doc)
    ids = [p["id"] for p in doc["probes"]]
    assert len(ids) == len(set(ids))
    vm = {p["id"] for p in doc["probes"] if p.get("place") == "vm"}
    desktop = {p["id"] for p in doc["probes"] if p.get("place") == "desktop"}
    # The VM: its network and the scanout path's VM layers (no daemon here: skipped, with why).
    assert {"guest-tcp.connect@vm", "guest-tcp.ping@vm", "drm-manager.socket@vm", "scanout.connectors@vm"} <= vm
    assert not any(i.startswith(("pipewire.", "vsockenc.", "desktop-bridge.")) for i in vm), vm
    socket_vm = next(p for p in doc["probes"] if p["id"] == "drm-manager.socket@vm")
    assert socket_vm["status"] == "skip" and "no drm-manager socket" in socket_vm["summary"]
    assert {"pipewire.daemon@desktop", "vsockenc.element@desktop", "guest-tcp.ping@desktop"} <= desktop
    observers = {p["id"]: p["observed_on"] for p in doc["probes"]}
    assert observers["guest-tcp.connect@vm"] == "guest:vm" and observers["stream.ping"] == "host"
    assert observers["guest-tcp.port@vm"] == "host+guest:vm"
    assert doc["environment"]["places"]["vm"]["agent"] == "builtin"
    # The desktop "container" here has no PipeWire: that is the root cause, in its place.
    root = doc["diagnosis"]["root_cause"]
    assert root["probe"] in desktop and root["failure_id"] in ("pipewire-not-running", "vsockenc-missing")
    text = run_cli("run", "guest-tcp", "--guest", f"vm={clean_prefix()}", "--guest", f"desktop={clean_prefix()}",
                   "--host", "127.0.0.1", "--port", str(serve_port), "--timeout", "1", cwd=tmp_path,
                   env={"COLUMNS": "400"}, timeout=120)
    assert text.stdout.splitlines()[0].startswith("helixdiag run — side host + vm (via env -i"), text.stdout[:300]
    assert re.search(r"guest-tcp\s+✔ pass\s+(vm|desktop): ", text.stdout), text.stdout


def test_a_plain_prefix_is_one_place_named_guest():
    [place] = parse_places(["ssh -p 41222 ubuntu@127.0.0.1"], user="ubuntu", connect_timeout=5)
    assert (place.name, place.prefix, place.layers) == (DEFAULT_NAME, "ssh -p 41222 ubuntu@127.0.0.1", None)
    [env_prefix] = parse_places(["env -u PYTHONPATH PATH=/usr/bin"], user="ubuntu", connect_timeout=5)
    assert env_prefix.name == DEFAULT_NAME  # an '=' inside the prefix is not a name
    with pytest.raises(UsageError, match="twice"):
        parse_places(["vm=ssh a", "vm=ssh b"], user="ubuntu", connect_timeout=5)


def test_auto_reads_the_ssh_forward_from_a_running_qemus_argv(tmp_path):
    """A process that looks like the Helix app's QEMU (its argv, read back from /proc)."""
    fake = bin_dir(tmp_path, **{"qemu-system-aarch64": sys.executable})
    proc = subprocess.Popen([os.path.join(fake, "qemu-system-aarch64"), "-c", "import time; time.sleep(60)",
                             "-netdev", "user,id=net0,hostfwd=tcp::41080-:8080,hostfwd=tcp::41222-:22",
                             "-device", "virtio-net-pci,netdev=net0"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = next((p for p in ProcfsBackend().processes() if p.pid == proc.pid and len(p.argv) > 3), None)
            time.sleep(0.05)
        assert found is not None and found.is_qemu
        assert ssh_port_forward(list(found.argv)) == 41222
        assert ssh_port_forward(["qemu-system-aarch64", "-netdev", "user,id=n,hostfwd=tcp::41080-:8080"]) is None
    finally:
        kill_group(proc)


@pytest.mark.parametrize("prefix", [
    f"{sys.executable} -c 'import time; time.sleep(60)'",  # never reads the script
    "sh -c 'echo HXD-BEGIN; exec sleep 60'",  # starts, then hangs
], ids=["silent", "hangs-after-start"])
def test_guest_timeout_bounds_the_whole_guest_run(prefix, tmp_path):
    started = time.monotonic()
    res = run_cli("run", "guest-tcp", "--guest", prefix, "--guest-timeout", "3", "--host", "127.0.0.1",
                  "--port", "9", cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert res.returncode == 2, res.stderr
    assert "guest" in res.stderr and "Traceback" not in res.stderr
    assert elapsed < 3 + SLACK_S, f"--guest-timeout 3 took {elapsed:.1f} s"


def test_a_guest_without_python3_says_what_to_do(tmp_path):
    tools = {name: guest_tool(name) for name in ("sh", "mktemp", "sed", "rm")}
    path = bin_dir(tmp_path / "bin", **tools)
    res = run_cli("run", "--guest", clean_prefix(path), "--guest-agent", "builtin", "--host", "127.0.0.1",
                  "--port", "9", cwd=tmp_path)
    assert res.returncode == 2
    assert "no python3" in res.stderr and "python3-minimal" in res.stderr and "--guest-agent installed" in res.stderr
    assert "Traceback" not in res.stderr


def test_nothing_is_left_on_the_guest(tmp_path):
    guest_tmp = tmp_path / "guest-tmp"
    guest_tmp.mkdir()
    res = run_cli("run", "guest-tcp", "--guest", clean_prefix(TMPDIR=str(guest_tmp)), "--guest-agent", "builtin",
                  "--host", "127.0.0.1", "--port", "9", "--timeout", "0.5", "--json", "-", cwd=tmp_path)
    doc = json.loads(res.stdout)
    assert doc["environment"]["places"]["guest"]["agent"] == "builtin"
    assert list(guest_tmp.iterdir()) == []


def test_installed_is_used_when_present_and_forced_builtin_is_not(tmp_path):
    venv_guest = f"env -u PYTHONPATH PATH={os.path.dirname(sys.executable)}:/usr/bin:/bin"
    agents = {}
    for mode in ("auto", "builtin"):
        res = run_cli("run", "guest-tcp", "--guest", venv_guest, "--guest-agent", mode, "--host", "127.0.0.1",
                      "--port", "9", "--timeout", "0.5", "--json", "-", cwd=tmp_path, timeout=90)
        agents[mode] = json.loads(res.stdout)["environment"]["places"]["guest"]["agent"]
    assert agents == {"auto": "installed", "builtin": "builtin"}


def test_a_guest_that_ended_never_blocks_the_handover(tmp_path):
    """The guest's shell ends at once (no python3) while the payload is still being written:
    neither the rest of the script nor the end-of-file may block on the full pty (it did,
    about one run in six, until the EOF went through the same non-blocking writer)."""
    tools = {name: guest_tool(name) for name in ("sh", "mktemp", "sed", "rm")}
    path = bin_dir(tmp_path / "bin", **tools)
    for _ in range(12):
        started = time.monotonic()
        res = run_cli("run", "--guest", clean_prefix(path), "--guest-agent", "builtin", "--host", "127.0.0.1",
                      "--port", "9", "--guest-timeout", "5", cwd=tmp_path, timeout=30)
        assert res.returncode == 2 and "no python3" in res.stderr, res.stderr[-500:]
        assert time.monotonic() - started < 10
