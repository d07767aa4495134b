"""Shared fixtures: real servers on loopback and Unix sockets in a temporary directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helixdiag.server import FrameServer, ServerConfig

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@contextlib.contextmanager
def running_server(**config) -> Iterator[FrameServer]:
    """An in-process reference server; TCP on an ephemeral loopback port unless told."""
    if "tcp" not in config and "unix" not in config:
        config["tcp"] = [("127.0.0.1", 0)]
    config.setdefault("size", (320, 240))
    config.setdefault("idle_timeout", 5.0)
    server = FrameServer(ServerConfig(**config))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def endpoint_of(server: FrameServer, kind: str = "tcp"):
    return next(e for e in server.endpoints if e.kind == kind)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory: Unix socket paths must stay under 104/108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="hxd-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def validator():
    """The report's shipped JSON Schema, checked itself, ready to validate reports."""
    from jsonschema import Draft202012Validator

    from helixdiag.report.json_report import schema

    doc = schema()
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc)


def helixdiag_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "helixdiag", *args]


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (no shell), bounded in time."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(helixdiag_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=kw.pop("cwd", REPO), **kw)


def require_tool(name: str) -> str:
    """Tests that need a system tool fail loudly when it is missing: `make test` installs
    it (scripts/setup-system.sh), so absence is a set-up bug, not a reason to skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run scripts/setup-system.sh (make test does)")
    return path
