"""The shape docs/architecture.md describes, checked: the import layers (import-linter),
probes that only judge, and modules small enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "helixdiag"
MAX_LINES = 600
# Cohesive tables and parsers may be longer: splitting them would scatter one table.
LONG_ON_PURPOSE = {
    "logscan/signatures.py": "the table of every known log line",
    "pipeline/syntax.py": "the gst-launch parser",
    "pipeline/rules.py": "the table of pipeline rules with their fixes",
    "failures.py": "the failure catalog",
}
# What a probe may not do itself: look at files or the machine (observe/ does that).
FILE_CALLS = {"open", "stat", "lstat", "exists", "lexists", "isfile", "isdir", "getmtime", "getsize",
              "listdir", "scandir", "read_text", "read_bytes", "readlink", "glob", "iterdir", "run", "Popen"}


def test_the_import_layers_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and ast.unparse(func.value).startswith("ctx.obs"):
                continue  # a fact asked of observe: that is the way
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in FILE_CALLS:
                found.append((node.lineno, name))
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in (PACKAGE / "probes").glob("*.py")))
def test_a_probe_reads_no_file_and_runs_no_command(module):
    source = (PACKAGE / "probes" / module).read_text(encoding="utf-8")
    offending = _calls(ast.parse(source))
    assert not offending, f"probes/{module} does I/O itself ({offending}); ask observe.facts for the fact"


def test_modules_stay_readable():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        name = str(path.relative_to(PACKAGE))
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES and name not in LONG_ON_PURPOSE:
            long[name] = lines
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"
    for name in LONG_ON_PURPOSE:
        assert (PACKAGE / name).exists(), f"{name} is no longer there: drop it from LONG_ON_PURPOSE"
