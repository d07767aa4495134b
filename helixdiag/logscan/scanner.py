"""The machinery both log scanners share: `_Scanner`, the `_Acc` evidence accumulator, helpers.

`_Scanner` keeps the per-line bookkeeping (line counts, signature counts), applies a matched
signature (its failure id, note or `_on_<name>` handler) and turns accumulated lines into
`Finding`s and `Note`s. The small parsing and bounding helpers used by both the GST and the
QEMU scanner (`_int`, `_trim`, `_bounded_add`, `_ANSI`) sit here as well.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from helixdiag.findings import Finding
from helixdiag.logscan.signatures import (
    _BY_NAME,
    _SAMPLES,
    EVIDENCE_CHARS,
    Signature,
    signatures_for,
)
from helixdiag.logscan.summary import LogSummary, Note

# ════════════════════════════════════════════════════════════════════ helpers


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _trim(line: str, limit: int = EVIDENCE_CHARS) -> str:
    text = line.strip()
    if not text.isprintable():
        text = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_add(counter: dict[str, int], key: str, limit: int = _SAMPLES) -> None:
    if key in counter or len(counter) < limit:
        counter[key] = counter.get(key, 0) + 1


class _Acc:
    """Every line that proved one failure id: count, first/last line, per-signature counts."""

    __slots__ = ("count", "first_no", "first_line", "first_sig", "fields", "last_no", "sigs", "extra")

    def __init__(self) -> None:
        self.count = 0
        self.first_no = 0
        self.first_line = ""
        self.first_sig = ""
        self.fields: dict[str, Any] = {}
        self.last_no = 0
        self.sigs: dict[str, int] = {}
        self.extra: dict[str, Any] = {}

    def add(self, no: int, line: str, sig: Signature, m: re.Match[str] | None) -> None:
        self.count += 1
        if self.count == 1:
            self.first_no, self.first_line, self.first_sig = no, _trim(line), sig.name
            if m is not None:
                self.fields = {k: v for k, v in m.groupdict().items() if v is not None}
        self.last_no = no
        self.sigs[sig.name] = self.sigs.get(sig.name, 0) + 1

    def evidence(self, **more: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"line_no": self.first_no, "line": self.first_line,
                              "signature": self.first_sig}
        if self.count > 1:
            ev["last_line_no"] = self.last_no
        if len(self.sigs) > 1:
            ev["signatures"] = dict(self.sigs)
        ev.update({k: v for k, v in self.fields.items() if k not in ev})
        ev.update(self.extra)
        ev.update(more)
        return ev


class _Scanner:
    """Shared machinery: per-line bookkeeping, accumulators for findings and notes."""

    kind = "unknown"

    def __init__(self) -> None:
        self.lines = 0
        self.recognised = 0
        self.long_lines = 0
        self.binary_lines = 0
        self.internal_errors = 0
        self.sig_counts: Counter[str] = Counter()
        self.accs: dict[str, _Acc] = {}
        self.notes: dict[str, Note] = {}
        # What to do on a match, per signature: (failure id applied unconditionally, note?,
        # handler). Precomputed so the per-line path is one dict lookup.
        self._plans: dict[str, tuple[str | None, bool, Callable[..., None] | None]] = {}
        for sig in signatures_for(self.kind):
            handler = getattr(self, "_on_" + sig.name.split(".", 1)[1].replace(".", "_")
                              .replace("-", "_"), None)
            auto_fid = sig.failure_id if sig.when is None else None
            self._plans[sig.name] = (auto_fid, sig.note, handler)

    def feed(self, no: int, line: str) -> int:
        """Scan one line. Returns 2 when the line shows this log kind for sure, 1 when a
        signature of this kind matched, 0 otherwise. Never raises."""
        raise NotImplementedError

    def _clean(self, line: str) -> str:
        """Count binary junk and strip ANSI colour codes (GST_DEBUG_COLOR_MODE=on logs)."""
        if "\x00" in line or "\ufffd" in line:
            self.binary_lines += 1
        if "\x1b" in line:
            line = _ANSI.sub("", line)
        return line

    def _apply(self, no: int, line: str, sig: Signature, m: re.Match[str]) -> None:
        self.recognised += 1
        name = sig.name
        self.sig_counts[name] += 1
        auto_fid, note, handler = self._plans[name]
        if auto_fid is not None:
            self._hit(auto_fid, no, line, sig, m)
        if note:
            self._note(name, sig.meaning, no, line, related=sig.related)
        if handler is not None:
            handler(no, line, m)

    def _hit(self, failure_id: str, no: int, line: str, sig: Signature,
             m: re.Match[str] | None) -> _Acc:
        acc = self.accs.get(failure_id)
        if acc is None:
            acc = self.accs[failure_id] = _Acc()
        acc.add(no, line, sig, m)
        return acc

    def _note(self, key: str, message: str, no: int | None = None, line: str | None = None,
              related: str | None = None) -> None:
        note = self.notes.get(key)
        if note is None:
            self.notes[key] = Note(key, message, related, 1, no, _trim(line) if line else None)
        else:
            note.count += 1

    def _fill(self, summary: LogSummary) -> None:
        summary.lines = self.lines
        summary.recognised_lines = self.recognised
        summary.long_lines = self.long_lines
        summary.binary_lines = self.binary_lines
        summary.internal_errors = self.internal_errors
        summary.signature_counts = dict(self.sig_counts)
        for key, note in self.notes.items():
            if key in _BY_NAME and note.count > 1 and not note.message.endswith(")"):
                note.message += f" (×{note.count})"
        summary.notes = list(self.notes.values())

    def _finding(self, failure_id: str, message: str, **evidence: Any) -> Finding:
        acc = self.accs.get(failure_id)
        if acc is None:
            return Finding(failure_id, message, evidence, 1)
        return Finding(failure_id, message, acc.evidence(**evidence), acc.count)
