"""Helpers for the guest agent's tests: a "guest" that is a clean interpreter with no access
to the project's virtualenv (`env -i`, the system python3 under -I), and the verdicts to
compare with a locally installed helixdiag."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from conftest import run_cli

from helixdiag.agent.places import Place
from helixdiag.agent.run import run_place

SYSTEM_PATH = "/usr/bin:/bin"
PYTHON38 = "/root/.pyenv/versions/3.8.18/bin/python3.8"


def clean_prefix(path: str = SYSTEM_PATH, **env: str) -> str:
    """A prefix whose commands see only PATH and `env`: no venv, no PYTHONPATH, no HOME."""
    extra = " ".join(f"{k}={v}" for k, v in env.items())
    return f"env -i PATH={path} {extra}".strip()


def bin_dir(tmp: Path, **links: str) -> str:
    """A directory of symlinks (name → target), to put first on a guest's PATH."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        os.symlink(target, tmp / name)
    return str(tmp)


def python38_path(tmp: Path) -> str | None:
    """A PATH on which python3 is a real 3.8 (None when this machine has none)."""
    if not os.access(PYTHON38, os.X_OK):
        return None
    return f"{bin_dir(tmp, python3=PYTHON38)}:{SYSTEM_PATH}"


def agent_run(prefix: str, names: list[str], options: dict[str, str], timeout: float = 60) -> dict:
    """The guest side through `prefix` by the guest agent, judged here: its report."""
    result = run_place(Place("guest", prefix, None), options, names, mode="builtin", timeout=timeout)
    assert result.agent == "builtin"
    return result.report


def local_run(names: list[str], options: dict[str, str], env: dict[str, str] | None = None) -> dict:
    """The same probes by the installed helixdiag, here: `run --side guest`."""
    words = [w for name, value in options.items() for w in (f"--{name.replace('_', '-')}", value)]
    res = run_cli("run", "--side", "guest", *names, *words, "--json", "-", env=env or {}, timeout=90)
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout)


def verdict(doc: dict) -> tuple[dict[str, str], str | None]:
    """Per-probe statuses of the guest probes and the root cause's failure id."""
    statuses = {p["id"]: p["status"] for p in doc["probes"] if p["side"] == "guest"}
    root = doc["diagnosis"]["root_cause"]
    return statuses, root["failure_id"] if root else None


def guest_tool(name: str) -> str:
    found = shutil.which(name, path=SYSTEM_PATH)
    assert found, f"{name} is missing from {SYSTEM_PATH}: run scripts/setup-system.sh"
    return found
