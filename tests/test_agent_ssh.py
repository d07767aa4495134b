"""A real sshd on loopback with key authentication as the `--guest` prefix: the guest agent
goes over ssh like it will to the VM (`ssh -p 41222 ubuntu@127.0.0.1`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_helpers import local_run, verdict
from conftest import run_cli
from run_helpers import kill_group, start_serve

from helixdiag import selftest

pytestmark = pytest.mark.timeout(120)
SSHD = "/usr/sbin/sshd"


@contextlib.contextmanager
def loopback_sshd(tmp: Path) -> Iterator[str]:
    """sshd on 127.0.0.1:free port, root with a fresh key; yields the ssh prefix."""
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh") is None:
        pytest.fail("openssh-server/openssh-client are missing: run scripts/setup-system.sh")
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd runs as root (it must switch to the logged-in user)")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True, timeout=30)
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    port = selftest.free_port()
    config = tmp / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {tmp / 'host_key'}
PidFile {tmp / 'sshd.pid'}
AuthorizedKeysFile {tmp / 'authorized_keys'}
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
""")
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege-separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "sshd.log", "w"), start_new_session=True)  # noqa: SIM115
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"sshd did not start: {(tmp / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield (f"ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "
               f"-o ConnectTimeout=5 -o LogLevel=ERROR -i {tmp / 'client_key'} -p {port} root@127.0.0.1")
    finally:
        kill_group(proc)


def test_the_guest_agent_over_a_real_sshd(tmp_path):
    serve, address = start_serve("--tcp", "127.0.0.1:0", "--fault", "ignore-frame-request")
    port = address.rsplit(":", 1)[1]
    try:
        with loopback_sshd(tmp_path) as prefix:
            res = run_cli("run", "guest-tcp", "--guest", f"vm={prefix}", "--guest-agent", "builtin",
                          "--host", "127.0.0.1", "--port", port, "--timeout", "1", "--mode", "request",
                          "--json", "-", cwd=tmp_path, timeout=90)
        local = local_run(["guest-tcp"], {"host": "127.0.0.1", "port": port, "timeout": "1", "mode": "request"})
    finally:
        kill_group(serve)
    doc = json.loads(res.stdout)
    assert doc["environment"]["places"]["vm"]["agent"] == "builtin"
    guest = {p["id"]: p["status"] for p in doc["probes"] if p.get("place") == "vm"}
    assert guest == verdict(local)[0]
    assert doc["diagnosis"]["root_cause"]["failure_id"] == verdict(local)[1] == "frame-request-ignored"
