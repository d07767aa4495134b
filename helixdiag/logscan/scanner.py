"""The machinery both log scanners share: limits, `Effect`s, the `_Scanner` base, `_Acc`, helpers.

A matched line is applied by running its signature's *plan* (compiled once per table by
`dispatch.compile_rules`): the columns (`step`, `era`, `failure_id`, `note`) first, then the
row's effects, then its stateful handler if it names one. An `Effect` is one of a closed set
of kinds; each kind is implemented once, as a function `(scanner, effect, no, line, match)`
in an `EFFECTS` dict: the generic kinds here (they write the scanner's `state`: the GST
scanner itself, or the QEMU scanner's current run), the GST and QEMU kinds in `gst` and
`qemu`. The log-wide constants (line and evidence limits, `KINDS`, the host `INIT_STEPS`
ladder) and the small parsing and bounding helpers live here too.
"""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any

from helixdiag.findings import Finding
from helixdiag.logscan.summary import LogSummary, Note

if TYPE_CHECKING:
    from helixdiag.logscan.dispatch import Rules
    from helixdiag.logscan.signatures import Signature

MAX_LINE_CHARS = 64 * 1024  # longer lines are cut here; the rest of the line is skipped
EVIDENCE_CHARS = 240  # evidence lines are trimmed to this
KINDS = ("gst", "qemu", "bridge", "drm")
_SAMPLES = 20  # bounded lists (connect targets, subscribes, earlier runs …)

# Host progress ladder: where a QEMU run got to. "reply" exists only on the legacy
# FRAME_REQUEST path; a healthy scanout run ends at "encode".
INIT_STEPS = ("init", "version", "listening", "accepting", "client", "request", "encode", "reply")
_STEP_INDEX = {s: i for i, s in enumerate(INIT_STEPS)}

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


# ════════════════════════════════════════════════════════════════════ effects


_CONVERSIONS = (None, "int", "lower", "strip")


@dataclass(frozen=True)
class Effect:
    """What a matching line does to the scan, besides proving its failure id.

    `kind` is a key of the scanner's `EFFECTS`; `field` the state attribute it writes; the
    value comes from the regex group `group` (converted by `conv`: "int", "lower" or
    "strip", then cut to `limit` characters) or else is `value`. `text` names a second group
    (host_error: the error's text). `label` says it in words (the docs' "Does" column).
    Build effects with the constructors (`count`, `put`, … here; the GST and QEMU kinds in
    `gst` and `qemu`), not by hand."""

    kind: str
    field: str | None = None
    group: str | None = None
    value: Any = None
    conv: str | None = None
    limit: int | None = None
    text: str | None = None
    label: str = dataclass_field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.conv not in _CONVERSIONS:
            raise ValueError(f"effect {self.kind}: unknown conversion {self.conv!r}")

    @property
    def groups(self) -> tuple[str, ...]:
        """The regex groups this effect reads (checked against the row's pattern)."""
        return tuple(g for g in (self.group, self.text) if g)

    def __str__(self) -> str:
        return self.label or self.kind


def _from(group: str | None, conv: str | None = None, limit: int | None = None) -> str:
    text = f"{conv}({group})" if conv else f"<{group}>"
    return f"{text}[:{limit}]" if limit else text


def count(field: str) -> Effect:
    """Add one to the counter `field`."""
    return Effect("count", field, label=f"count {field}")


def put(field: str, group: str | None = None, *, value: Any = None, conv: str | None = None,
        limit: int | None = None) -> Effect:
    """Set `field` to the group's (converted) text, or to `value` (None clears it)."""
    label = (f"set {field} = {_from(group, conv, limit)}" if group else
             f"set {field} = {value!r}" if value is not None else f"clear {field}")
    return Effect("put", field, group, value, conv, limit, label=label)


def tally(field: str, group: str | None = None, *, value: str | None = None,
          conv: str | None = None) -> Effect:
    """Count the group's text (or `value`) in the bounded dict `field`."""
    what = _from(group, conv) if group else repr(value)
    return Effect("tally", field, group, value, conv, label=f"tally {what} in {field}")


def mark(field: str) -> Effect:
    """Set `field` to where this line is ({"line_no", "line"})."""
    return Effect("mark", field, label=f"mark this line as {field}")


def add_note(key: str, text: str) -> Effect:
    """Add (or count) the note `key` with this text and line."""
    return Effect("note", value=(key, text), label=f"note {key}")


def host_error(group: str | None = None, *, value: str | None = None,
               text: str | None = None) -> Effect:
    """The host answered with ERROR: count its code (group or `value`) in `host_errors`; with
    `text`, keep the first text seen per code in `host_error_text`."""
    code = f"<{group}>" if group else value
    return Effect("host_error", "host_errors", group, value, text=text,
                  label=f"host error code {code}")


def most(field: str, group: str) -> Effect:
    """Keep in `field` the largest number the group has shown."""
    return Effect("most", field, group, conv="int", label=f"keep the largest <{group}> in {field}")


def prove(failure_id: str) -> Effect:
    """The line also proves `failure_id` (a row's own id is its `failure_id` column)."""
    return Effect("prove", value=failure_id, label=f"proves {failure_id}")


def _value(e: Effect, m: re.Match[str]) -> Any:
    if e.group is None:
        return e.value
    raw = m[e.group]
    if raw is None or e.conv is None and e.limit is None:
        return raw
    if e.conv == "int":
        return _int(raw)
    if e.conv == "lower":
        raw = raw.lower()
    elif e.conv == "strip":
        raw = raw.strip()
    return raw[: e.limit] if e.limit else raw


def _count(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    st = sc.state
    setattr(st, e.field, getattr(st, e.field) + 1)  # type: ignore[arg-type]


def _put(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    setattr(sc.state, e.field, _value(e, m))  # type: ignore[arg-type]


def _tally(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    _bounded_add(getattr(sc.state, e.field), _value(e, m))  # type: ignore[arg-type]


def _mark(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    setattr(sc.state, e.field, {"line_no": no, "line": _trim(line)})  # type: ignore[arg-type]


def _add_note(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    key, text = e.value
    sc._note(key, text, no, line)


def _host_error(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    st = sc.state
    code = _value(e, m)
    _bounded_add(st.host_errors, code)
    if e.text:
        st.host_error_text.setdefault(code, m[e.text][:100])


def _most(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    value = _value(e, m)
    if value is not None and value > getattr(sc.state, e.field):  # type: ignore[arg-type]
        setattr(sc.state, e.field, value)  # type: ignore[arg-type]


def _prove(sc: _Scanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    sc._hit(e.value, no, line, sc.by_name[sc.current], m)


Step = typing.Tuple[typing.Callable[..., None], Any]  # noqa: UP006 - evaluated at import, Python 3.8 (guest agent); (function, argument): fn(scanner, arg, no, line, m)


# ════════════════════════════════════════════════════════════════════ evidence


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


# ════════════════════════════════════════════════════════════════════ the scanner base


def _proves(sc: _Scanner, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
    sc._hit(sig.failure_id, no, line, sig, m)  # type: ignore[arg-type]


def _noted(sc: _Scanner, sig: Signature, no: int, line: str, m: re.Match[str]) -> None:
    sc._note(sig.name, sig.meaning, no, line, related=sig.related)


class _Scanner:
    """Shared machinery: per-line bookkeeping, the plan of each matched signature,
    accumulators for findings and notes. Subclasses set `kind` and extend `EFFECTS`."""

    kind = "unknown"
    EFFECTS: dict[str, Callable[..., None]] = {
        "count": _count, "put": _put, "tally": _tally, "mark": _mark, "note": _add_note,
        "host_error": _host_error, "prove": _prove, "most": _most,
    }

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.by_name = rules.by_name
        self._plans = rules.plans  # signature name -> its steps, compiled once per table
        self.state: Any = self  # where the generic effects write
        self.lines = 0
        self.recognised = 0
        self.long_lines = 0
        self.binary_lines = 0
        self.internal_errors = 0
        self.sig_counts: Counter[str] = Counter()
        self.accs: dict[str, _Acc] = {}
        self.notes: dict[str, Note] = {}
        self.current = ""  # the signature of the line being applied

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
        self.sig_counts[sig.name] += 1
        self.current = sig.name
        for fn, arg in self._plans[sig.name]:
            fn(self, arg, no, line, m)

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
            if key in self.by_name and note.count > 1 and not note.message.endswith(")"):
                note.message += f" (×{note.count})"
        summary.notes = list(self.notes.values())

    def _finding(self, failure_id: str, message: str, **evidence: Any) -> Finding:
        acc = self.accs.get(failure_id)
        if acc is None:
            return Finding(failure_id, message, evidence, 1)
        return Finding(failure_id, message, acc.evidence(**evidence), acc.count)
