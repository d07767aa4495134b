"""Helpers for tests that run `helixdiag run` for real: the CLI in a subprocess, its JSON
report validated against the shipped schema, and the processes a test starts.

Loopback only: every `run` passes `--host 127.0.0.1` or `--side both` (checked by
`assert_loopback`), so nothing ever dials 10.0.2.2.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time

from conftest import REPO, helixdiag_cmd, run_cli
from jsonschema import Draft202012Validator


def clean_env(**extra: str) -> dict[str, str]:
    """Blank out any HELIXDIAG_* of the outer environment (resolve treats "" as unset)."""
    env = {k: "" for k in os.environ if k.startswith("HELIXDIAG_")}
    env.update(extra)
    return env


def assert_loopback(args: tuple[str, ...]) -> None:
    """The rule of these tests: `run` never dials anything but loopback."""
    assert args and args[0] == "run", args
    if "--host" in args:
        assert args[args.index("--host") + 1] == "127.0.0.1", args
    else:
        assert "--side" in args and args[args.index("--side") + 1] == "both", args


def run_plain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`helixdiag run …` without a JSON report (the usage-error cases), loopback-checked too."""
    assert_loopback(args)
    return run_cli(*args, env=clean_env(**(env or {})), timeout=30)


def run_report(*args: str, validator: Draft202012Validator | None = None, env: dict[str, str] | None = None,
               timeout: float = 45) -> tuple[subprocess.CompletedProcess, dict]:
    """`helixdiag run … --json -`: stdout must be exactly one JSON document."""
    assert_loopback(args)
    proc = run_cli(*args, "--json", "-", env=clean_env(**(env or {})), timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not only JSON ({exc}):\n{proc.stdout[:2000]}\n--- stderr\n"
                             f"{proc.stderr[-2000:]}") from None
    assert doc["config"]["host"] == "127.0.0.1"
    if validator is not None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    return proc, doc


def probe(doc: dict, probe_id: str) -> dict:
    matches = [p for p in doc["probes"] if p["id"] == probe_id]
    assert len(matches) == 1, f"{probe_id} appears {len(matches)} times"
    return matches[0]


def root_of(doc: dict) -> dict:
    root = doc["diagnosis"]["root_cause"]
    assert root is not None, f"no root cause; findings {doc['diagnosis']['findings']}"
    return root


def summary_table(doc: dict) -> str:
    return "\n".join(f"  {p['id']:<20} {p['status']:<8} {p['failure_id'] or '':<22} {p['summary'][:110]}"
                     for p in doc["probes"])


def kill_group(proc: subprocess.Popen) -> None:
    """End one process we started (and its own session: socat's forked children)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def start_serve(*args: str, cwd: str | None = None) -> tuple[subprocess.Popen, str]:
    """The real `helixdiag serve` in a subprocess; returns it and its `listening …` address."""
    proc = subprocess.Popen(helixdiag_cmd("serve", *args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, text=True, cwd=cwd or str(REPO), start_new_session=True,
                            env={**os.environ, "NO_COLOR": "1"})
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 20
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith("listening "):
            return proc, line.split(None, 1)[1].strip()
    kill_group(proc)
    raise AssertionError(f"serve did not report `listening`: {seen}")


