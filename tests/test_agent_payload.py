"""What the guest agent carries holds the Python 3.8 floor and the standard library alone:
vermin on every module it ships, no third-party import anywhere in them, and an import of a
module it does not carry only at a named host-side seam that the guest never calls."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helixdiag.agent import closure, payload

VERMIN = str(Path(sys.executable).with_name("vermin"))  # a dev dependency (pyproject)
FORBIDDEN = {"numpy", "av", "psutil", "click", "rich", "pexpect", "dpkt"}
# Function-level imports of modules the agent does not carry: where they are, and why the guest
# never reaches them.
HOST_SEAMS = {
    ("helixdiag.client", "helixdiag.client.checker"): "the default judge; the agent passes its recorder",
    ("helixdiag.client.request", "helixdiag.frames"): "the default source; the agent brings the host's frames",
}


@pytest.fixture(scope="module")
def shipped() -> list[str]:
    return closure.agent_modules()


def _all_imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, at load time?) for every import that can run in `module`."""
    tree = ast.parse(closure.source_file(module).read_text(encoding="utf-8"))
    load_time = {m for m, _ in closure.load_time_imports(tree)}
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}  # never run
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, a.name in load_time) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node.module in load_time))
    return found


def test_the_closure_follows_the_code(shipped):
    # The entry, every guest probe and what they stand on; no host probe, no renderer.
    assert {"helixdiag.agent.guest", "helixdiag.probes.guest_tcp", "helixdiag.probes.pipewire",
            "helixdiag.probes.vsockenc", "helixdiag.runner", "helixdiag.observe.procfs"} <= set(shipped)
    assert not {"helixdiag.probes.stream", "helixdiag.client.checker", "helixdiag.frames", "helixdiag.decoding",
                "helixdiag.observe.linux", "helixdiag.report.text", "helixdiag.cli"} & set(shipped)


def test_no_third_party_import_in_what_the_agent_carries(shipped):
    bad = [(m, target) for m in shipped for target, _ in _all_imports(m) if target.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_modules_not_carried_are_imported_only_at_named_host_seams(shipped):
    carried = set(shipped)
    seams = set()
    for module in shipped:
        for target, load_time in _all_imports(module):
            if target.split(".")[0] == "helixdiag" and target not in carried:
                assert not load_time, f"{module} loads {target}, which the agent does not carry"
                seams.add((module, target))
    assert seams == set(HOST_SEAMS)


def test_vermin_finds_nothing_above_python_3_8(shipped):
    files = [str(closure.source_file(m)) for m in shipped]
    res = subprocess.run([VERMIN, "-t=3.8-", "--no-tips", "--violations", *files],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "Target versions not met" not in res.stdout


def test_vermin_would_catch_a_3_11_feature(tmp_path):
    """The check can fail: a module with a StrEnum is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from enum import StrEnum\n\nclass S(StrEnum):\n    A = 'a'\n")
    res = subprocess.run([VERMIN, "-t=3.8-", "--no-tips", "--violations", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "StrEnum" in res.stdout


def test_the_zip_holds_exactly_the_closure_and_the_frame(shipped):
    with zipfile.ZipFile(io.BytesIO(payload.build_zip())) as zf:
        names = zf.namelist()
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py"))
    assert modules == shipped
    assert [n for n in names if n.endswith(".raw")] == ["helixdiag/agent/frame-320x240-nv12-0.raw"]
    assert len(payload.build_zip()) < 400_000  # docs/guest.md gives the figure


def test_the_program_keeps_lines_short_for_a_pty():
    program = payload.program({"pipeline": "x " * 3000}, [], None)
    assert max(len(line) for line in program.splitlines()) < 200
