"""Re-capture the stand-in logs under tests/logs/ (`*_captured.log`): run this, then review the
diff and the golden snapshots (HELIXDIAG_UPDATE_GOLDEN=1 tests/test_logrules.py).

Each capture runs the real commands — `helixdiag serve` (a stand-in QEMU, with the
drm-manager stand-in) and `helixdiag send --mode scanout` (a subscriber like desktop-bridge) —
on loopback in a temporary directory, and keeps serve's output (its `HH:MM:SS` clock and all).
Times and ports differ from run to run; what the scanner reports from them must not.

    .venv/bin/python tests/logs/capture.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELIXDIAG = [sys.executable, "-m", "helixdiag"]
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400", "HELIXDIAG_NO_PROGRESS": "1"}


def _serve(tmp: str, *args: str) -> tuple[subprocess.Popen, str, str]:
    """serve on a free loopback port with the drm-manager stand-in; (process, port, socket)."""
    sock = os.path.join(tmp, "drm.sock")
    out = open(os.path.join(tmp, "serve.log"), "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([*HELIXDIAG, "serve", "--tcp", "127.0.0.1:0", "--drm-manager", sock, *args],
                            stdout=out, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = Path(out.name).read_text()
        for line in text.splitlines():
            if line.startswith("listening tcp://"):
                return proc, line.rsplit(":", 1)[1].strip("/"), sock
        if proc.poll() is not None:
            return proc, "", sock
        time.sleep(0.1)
    raise TimeoutError("serve did not start")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _send(port: str, scanout: int, seconds: float) -> None:
    subprocess.run([*HELIXDIAG, "send", "--to", f"tcp://127.0.0.1:{port}", "--mode", "scanout",
                    "--scanout-id", str(scanout), "--duration", str(seconds), "--no-decode"],
                   env=ENV, capture_output=True, timeout=60)


def _serve_log(tmp: str, keep: str) -> str:
    lines = Path(tmp, "serve.log").read_text().splitlines()
    return "\n".join(line for line in lines if keep in line) + "\n"


def capture_host(name: str, *args: str, lease: bool = True, seconds: float = 3.0) -> None:
    """A lease (the scanout enabled and drawn), a subscriber for `seconds`: serve's host lines."""
    from helixdiag.drm_client import request_lease

    with tempfile.TemporaryDirectory() as tmp:
        proc, port, sock = _serve(tmp, "--generation", "h4", "--picture", "moving", *args)
        try:
            if lease:
                with request_lease(sock, 640, 360) as held:
                    _send(port, held.scanout_id, seconds)
            else:
                _send(port, 1, seconds)
        finally:
            _stop(proc)
        (HERE / name).write_text(_serve_log(tmp, "["))


def capture_manager(name: str, fault: str | None) -> None:
    """The drm-manager stand-in's lines: a lease asked for (and, when granted, released)."""
    from helixdiag.drm_client import LeaseError, probe, request_lease

    with tempfile.TemporaryDirectory() as tmp:
        args = ["--generation", "h4", "--picture", "static"]
        proc, port, sock = _serve(tmp, *args, *(["--drm-manager-fault", fault] if fault else []))
        try:
            if port:
                probe(sock)
                for _ in range(2):
                    try:
                        with request_lease(sock, 1920, 1080):
                            time.sleep(0.3)
                    except LeaseError:
                        pass
                time.sleep(0.5)
        finally:
            _stop(proc)
        (HERE / name).write_text(_serve_log(tmp, "drm-manager: "))


if __name__ == "__main__":
    capture_host("qemu_h4_scanout_captured.log")
    capture_host("qemu_h4_no_frames_captured.log", "--fault", "no-frames")
    capture_host("qemu_h4_double_init_captured.log", "--fault", "double-init")
    capture_manager("drm_standin_captured.log", None)
    capture_manager("drm_standin_pool_empty_captured.log", "pool-empty")
    capture_manager("drm_standin_no_master_captured.log", "no-master")
    capture_manager("drm_standin_wrong_port_captured.log", "wrong-port")
