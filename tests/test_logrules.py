"""The log rules as data: golden snapshots of `helixdiag logs`, and every table row exercised.

* Every log under tests/logs/ (and the constructed tests/logs/signatures/*.log) is scanned and
  its JSON (`LogSummary.to_dict()`, the `files[]` entry of `helixdiag logs --json`) compared
  with tests/logs/expected/. The scanner may be refactored freely; what it reports may not
  change without a reviewed snapshot update.
* tests/logs/signatures/<kind>.log holds one constructed line per signature (then a few lines
  for the conditional paths). Each line, scanned on its own, must be recognised as exactly
  one signature, and every signature must have a line; what each line alone does to the
  summary is snapshotted too (tests/logs/expected/signatures_<kind>.rows.json).

To accept an intended change: `HELIXDIAG_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q
tests/test_logrules.py`, then review the diff of tests/logs/expected/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helixdiag import logscan
from helixdiag.logscan import scan_file, scan_lines

pytestmark = pytest.mark.timeout(120)

LOGS = Path(__file__).resolve().parent / "logs"
EXPECTED = LOGS / "expected"
ROWS = LOGS / "signatures"
UPDATE = os.environ.get("HELIXDIAG_UPDATE_GOLDEN") == "1"

GOLDEN_LOGS = sorted(LOGS.glob("*.log")) + sorted(ROWS.glob("*.log"))


def _golden_name(path: Path) -> str:
    return f"signatures_{path.stem}" if path.parent == ROWS else path.stem


def _snapshot(path: Path) -> dict:
    doc = json.loads(json.dumps(scan_file(path).to_dict()))
    doc["source"] = path.relative_to(LOGS).as_posix()
    doc["source_age_s"] = None  # depends on the file's mtime
    return doc


def _compare(expected_path: Path, actual: object) -> None:
    if UPDATE:
        expected_path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        return
    assert expected_path.is_file(), f"no snapshot {expected_path}: run with HELIXDIAG_UPDATE_GOLDEN=1"
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    assert actual == expected, (
        f"{expected_path.name}: the scan differs from the snapshot (if intended, run with "
        "HELIXDIAG_UPDATE_GOLDEN=1 and review the diff)")


@pytest.mark.parametrize("path", GOLDEN_LOGS, ids=lambda p: p.relative_to(LOGS).as_posix())
def test_scan_matches_its_snapshot(path):
    _compare(EXPECTED / f"{_golden_name(path)}.json", _snapshot(path))


# ════════════════════════════════════════════════════════════════ every row exercised


def _row_lines(kind: str) -> list[str]:
    return [line for line in (ROWS / f"{kind}.log").read_text(encoding="utf-8").splitlines() if line]


def _changes(before: object, after: object) -> object:
    """What differs from `before` in `after` (dicts recursively; anything else whole)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = {}
        for key, value in after.items():
            if key not in before:
                out[key] = value
            elif value != before[key]:
                out[key] = _changes(before[key], value)
        return out
    return after


@pytest.mark.parametrize("kind", logscan.KINDS)
def test_every_signature_has_a_line_and_each_line_one_signature(kind):
    seen: dict[str, str] = {}
    for line in _row_lines(kind):
        summary = scan_lines([line], kind)
        assert summary.internal_errors == 0, line
        assert summary.recognised_lines == 1 and len(summary.signature_counts) == 1, line
        seen.setdefault(next(iter(summary.signature_counts)), line)
    missing = [s.name for s in logscan.signatures_for(kind) if s.name not in seen]
    assert not missing, (f"signatures with no line in {ROWS.name}/{kind}.log (add one constructed "
                         f"line per new row): {missing}")


@pytest.mark.parametrize("kind", logscan.KINDS)
def test_what_each_line_does_alone_matches_its_snapshot(kind):
    empty = scan_lines([], kind).to_dict()
    rows = {}
    for line in _row_lines(kind):
        rows[line] = _changes(empty, json.loads(json.dumps(scan_lines([line], kind).to_dict())))
    _compare(EXPECTED / f"signatures_{kind}.rows.json", rows)
