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
import re
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


# ════════════════════════════════════════════════════════════════ the table as data


def test_the_table_compiles_and_its_handlers_are_few():
    for kind, rules in logscan.RULES.items():
        cls = rules.scanner_class
        assert {s.name for s in rules.table} == set(rules.plans)
        for sig in rules.table:
            for effect in sig.effect:
                assert effect.kind in cls.EFFECTS, (sig.name, effect)
            if sig.handler is not None:
                assert vars(cls)[sig.handler.__name__] is sig.handler and sig.handler.__doc__
        handlers = {s.handler for s in rules.table if s.handler}
        assert len(handlers) <= 7, f"{kind}: {len(handlers)} stateful handlers; prefer effects"


def test_message_type_names_come_from_the_protocol():
    from helixdiag.logscan.gst import _msg_type_name
    from helixdiag.protocol import MsgType

    for t in MsgType:
        assert _msg_type_name(str(int(t))) == t.name
        assert _msg_type_name(hex(int(t)), 16) == t.name
    assert _msg_type_name("0") == _msg_type_name("-3") == _msg_type_name(None) == "?"
    assert _msg_type_name("0x99999999999", 16) == "?"


_H4_LOG = [
    "[HELIX] Initializing frame export on vsock port 15937",
    "[HELIX] VERSION: 2026-02-15-v10-ipa-granule-test",
    "[HELIX] Frame export ready: TCP 0.0.0.0:15937 (guest: 10.0.2.2:15937)",
    "[HELIX] Added client 3 (fd=12)",
    "[HELIX] Client 3 handler started (fd=12)",
    "[HELIX] Client 3 paused (send buffer full)",
]


def test_a_new_log_string_is_one_row():
    from helixdiag.logscan.qemu import CLIENT_ACTIVE, gen_hint
    from helixdiag.logscan.scanner import count
    from helixdiag.logscan.signatures import _q

    row = _q("client-paused", r"\[HELIX\] Client (?P<client>\d{1,20}) paused \((?P<why>[^)]{0,80})\)",
             "the host paused a client that does not drain: frames dropped", "stream-closed",
             gen="H4", effect=(CLIENT_ACTIVE, count("drops"), gen_hint()))
    rules = logscan.compile_rules("qemu", (*logscan.SIGNATURES, row))
    scanner = rules.scanner()
    for no, line in enumerate(_H4_LOG, 1):
        scanner.feed(no, line)
    summary = scanner.finish()
    assert summary.signature_counts["qemu.client-paused"] == 1
    assert summary.frames_dropped == 1 and summary.generation == "H4"
    finding = summary.finding("stream-closed")
    assert finding is not None and finding.evidence["line_no"] == 6
    assert finding.evidence["why"] == "send buffer full"
    # the client spoke, so it is not a silent one; the shipped table does not know the line
    assert summary.finding("frame-request-ignored") is None
    shipped = scan_lines(_H4_LOG, "qemu")
    assert "qemu.client-paused" not in shipped.signature_counts
    assert shipped.finding("frame-request-ignored") is not None
    assert "qemu.client-paused" not in logscan.RULES["qemu"].plans


def _bad_rows():
    from helixdiag.logscan.qemu import CLIENT_ACTIVE, _QemuScanner, gen_hint
    from helixdiag.logscan.scanner import count, tally
    from helixdiag.logscan.signatures import _g, _q

    pattern = r"Frobnicated (?P<n>\d{1,5}) widgets"
    return [
        ("gst", _g("x", pattern, "m", effect=CLIENT_ACTIVE), "not one the gst scanner implements"),
        ("gst", _g("x", pattern, "m", effect=tally("unexpected", "nope")), "groups the pattern lacks"),
        ("gst", _g("x", pattern, "m", effect=count("no_such_counter")), "does not keep"),
        ("gst", _g("x", pattern, "m", handler=_QemuScanner._on_encode), "not a method of _GstScanner"),
        ("qemu", _q("x", pattern, "m", effect=gen_hint()), "needs a gen column"),
        ("qemu", _q("x", pattern, "m", era="head"), "not a vsockenc era"),
    ]


@pytest.mark.parametrize("index", range(6))
def test_a_bad_row_is_refused_when_the_table_is_compiled(index):
    kind, row, message = _bad_rows()[index]
    with pytest.raises(ValueError, match=message):
        logscan.compile_rules(kind, (*logscan.SIGNATURES, row))


def test_an_effect_with_an_unknown_conversion_cannot_be_written():
    from helixdiag.logscan.scanner import put

    with pytest.raises(ValueError, match="unknown conversion"):
        put("pixel_bytes", "bytes", conv="float")


def test_the_table_checks_refuse_what_the_rows_cannot_mean():
    from helixdiag.logscan.signatures import _g, _q, check_table

    pattern = r"Frobnicated widgets"
    for row, message in [
        (_g("x", pattern, "m", when="always"), "needs the failure id"),
        (_g("x", pattern, "m", step="init"), "not a host INIT_STEPS rung"),
        (_q("x", pattern, "m", era="head"), "not a vsockenc era"),
        (_g("x", pattern, "m", "no-such-id"), "unknown failure id"),
        (logscan.SIGNATURES[0], "declared twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_table((*logscan.SIGNATURES, row))


# ════════════════════════════════════════════════════════════════ the docs tables

DOCS = Path(__file__).resolve().parent.parent / "docs" / "tools.md"
_BLOCK = re.compile(r"<!-- ([\w-]+)(?:: [^>]*)? -->(.*?)<!-- /\1 -->", re.DOTALL)


def _docs_blocks() -> dict[str, str]:
    from helixdiag.logscan.signatures import markdown_table

    out = {}
    for kind in logscan.KINDS:
        out[f"logs-{kind}"] = "\n" + markdown_table(kind)
        out[f"logs-{kind}-count"] = str(len(logscan.signatures_for(kind)))
    return out


def test_the_docs_tables_match_the_table():
    text = DOCS.read_text(encoding="utf-8")
    expected = _docs_blocks()
    found = {m.group(1): m.group(2) for m in _BLOCK.finditer(text) if m.group(1) in expected}
    assert set(found) == set(expected), f"docs/tools.md lacks the blocks {set(expected) - set(found)}"
    if UPDATE:
        text = _BLOCK.sub(lambda m: m.group(0).replace(m.group(2), expected[m.group(1)], 1)
                          if m.group(1) in expected else m.group(0), text)
        DOCS.write_text(text, encoding="utf-8")
        return
    stale = [name for name in expected if found[name] != expected[name]]
    assert not stale, (f"docs/tools.md is out of step with the signature table ({stale}): run "
                       "HELIXDIAG_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_logrules.py")
