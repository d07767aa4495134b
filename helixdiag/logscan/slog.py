"""The Go daemons' log lines: one parser for every shape they reach a reader in, and the
scanner base of the two Go log kinds (`bridge`, `drm`).

A line may carry, in this order: a `docker logs -t` timestamp; desktop-bridge's wrapper
prefix `[desktop-bridge] `; a journald prefix (`Mon DD HH:MM:SS host ident[pid]: `, or
`-o short-iso`'s ISO time) or a bare program name (`drm-manager: `, how `serve` shows its
stand-in's lines); then the message itself, as slog text
(`time=… level=… msg="…" key=value …`), zerolog JSON (`{"level":"info","time":"…",
"message":"…", …}`), a Go `log.Printf` line (`2026/08/08 10:00:00 …`) or plain text.
`parse()` returns where it came from, its time (seconds; journald's short format has no year,
so only differences mean anything), its level, its attributes and its *content*: the message
followed by its attributes as ` key=value` (quoted when they hold a space), which is what the
signature rows match, at the start.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from helixdiag.logscan.scanner import Effect, _int, _Scanner

if TYPE_CHECKING:
    from helixdiag.logscan.dispatch import Rules

BRIDGE_PREFIX = "[desktop-bridge] "
_DOCKER_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ")
_JOURNAL = re.compile(
    r"(?:(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d(?:\.\d{1,9})?)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (?P<host>\S{1,255}) (?P<ident>[A-Za-z0-9_.@/-]{1,80})(?:\[(?P<pid>\d{1,10})\])?: (?P<rest>.*)")
# A program name before the message (`drm-manager: time=…`, as serve prints its stand-in's
# lines, after its own `HH:MM:SS` clock).
_IDENT = re.compile(r"(?:\d\d:\d\d:\d\d )?(?P<ident>[A-Za-z0-9_.@-]{1,80})(?:\[\d{1,10}\])?: "
                    r"(?=time=|level=|\{)")
_GOLOG = re.compile(r"(?P<date>\d{4}/\d\d/\d\d) (?P<hms>\d\d:\d\d:\d\d(?:\.\d{1,9})?) (?P<rest>.*)")
_ATTR = re.compile(r'([A-Za-z_][\w.-]{0,63})=("(?:[^"\\]|\\.)*"|\S*)')
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}
_MAX_ATTRS = 40


@dataclass
class GoLine:
    """One line of a Go daemon's log, taken apart."""

    content: str  # the message, then ` key=value` for each attribute
    message: str = ""
    level: str | None = None
    time: float | None = None  # seconds (journald short: within an arbitrary year)
    stamp: str | None = None  # the time as the line prints it
    ident: str | None = None  # journald's program name (helix-drm-manager, systemd …)
    bridge: bool = False  # desktop-bridge's wrapper prefix
    json: bool = False
    attrs: dict[str, str] = field(default_factory=dict)


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?"
                  r"(?:Z|([+-])(\d\d):?(\d\d))?$")


def _iso_seconds(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 / ISO time (Go's, journald's short-iso; no zone:
    UTC). By hand: datetime.fromisoformat reads neither `Z` nor nanoseconds before 3.11."""
    m = _ISO.match(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac, sign, zh, zm = m.groups()
    try:
        t = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(sec), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if frac:
        t += int(frac) / 10 ** len(frac)
    if sign:
        offset = int(zh) * 3600 + int(zm) * 60
        t -= offset if sign == "+" else -offset
    return t


def _journal_seconds(mon: str, day: str, hms: str) -> float | None:
    month = _MONTHS.get(mon)
    if month is None or not 1 <= int(day) <= 31:
        return None
    return calendar.timegm((2000, month, int(day), 0, 0, 0, 0, 0, 0)) + _hms(hms)


def _hms(text: str) -> float:
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return json.loads(raw)
        except ValueError:
            return raw[1:-1]
    return raw


def _quote(value: str) -> str:
    return json.dumps(value) if (not value or " " in value or '"' in value) else value


def _slog(text: str, out: GoLine) -> None:
    """`time=… level=… msg="…" k=v …` (Go's slog TextHandler)."""
    rest: list[str] = []
    seen: set[str] = set()
    for m in _ATTR.finditer(text):
        key, raw = m.group(1), m.group(2)
        if key in ("time", "level", "msg") and key not in seen:
            seen.add(key)
            if key == "time":  # more precise than journald's, and with a year
                out.stamp = _unquote(raw)
                out.time = _iso_seconds(out.stamp) or out.time
            elif key == "level":
                out.level = _unquote(raw).upper()
            else:
                out.message = _unquote(raw)
        elif len(out.attrs) < _MAX_ATTRS:
            out.attrs[key] = _unquote(raw)
            rest.append(f"{key}={raw}")
    out.content = " ".join([out.message, *rest]) if rest else out.message


def _zerolog(text: str, out: GoLine) -> bool:
    """`{"level":"info","time":"…","message":"…", …}` (zerolog's JSON)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    out.json = True
    rest: list[str] = []
    for key, value in doc.items():
        text_value = value if isinstance(value, str) else json.dumps(value)
        if key == "time":
            out.stamp = text_value
            out.time = _iso_seconds(text_value)
        elif key == "level":
            out.level = text_value.upper()
        elif key in ("message", "msg"):
            out.message = text_value
        elif len(out.attrs) < _MAX_ATTRS:
            out.attrs[key] = text_value
            rest.append(f"{key}={_quote(text_value)}")
    out.content = " ".join([out.message, *rest]) if rest else out.message
    return True


def parse(line: str) -> GoLine:
    """Take one log line apart (never raises)."""
    text = line.strip()
    out = GoLine(text)
    m = _DOCKER_TS.match(text)
    if m:
        out.stamp = m.group(0).strip()
        out.time = _iso_seconds(out.stamp)
        text = text[m.end():]
    if text.startswith(BRIDGE_PREFIX):
        out.bridge = True
        text = text[len(BRIDGE_PREFIX):].lstrip()
    j = _JOURNAL.match(text) if ": " in text else None
    if j is not None:
        out.ident = j["ident"]
        if j["iso"]:
            out.stamp, out.time = j["iso"], _iso_seconds(j["iso"])
        else:
            out.stamp = f"{j['mon']} {j['day']} {j['hms']}"
            out.time = _journal_seconds(j["mon"], j["day"], j["hms"])
        text = j["rest"]
    else:
        i = _IDENT.match(text)
        if i is not None:
            out.ident = i["ident"]
            text = text[i.end():]
    if text.startswith("{") and _zerolog(text, out):
        return out
    if text.startswith(("time=", "level=")):
        _slog(text, out)
        return out
    g = _GOLOG.match(text)
    if g is not None:
        out.stamp = f"{g['date']} {g['hms']}"
        out.time = _iso_seconds(f"{g['date'].replace('/', '-')}T{g['hms']}")
        text = g["rest"]
    out.message = out.content = text
    return out


# ── the Go log kinds' effect kind ──


def attr(field: str, key: str, *, conv: str | None = None) -> Effect:
    """Set `field` to the line's attribute `key` (converted by `conv`), when the line has it."""
    return Effect("attr", field, value=key, conv=conv,
                  label=f"set {field} = {conv + '(' if conv else ''}{key}{')' if conv else ''}")


def _fx_attr(sc: _GoScanner, e: Effect, no: int, line: str, m: re.Match[str]) -> None:
    raw = sc.go.attrs.get(e.value)
    if raw is None:
        return
    value: Any = _int(raw) if e.conv == "int" else raw.strip()[:300]
    if value is not None:
        setattr(sc.state, e.field, value)  # type: ignore[arg-type]


class _GoScanner(_Scanner):
    """What the two Go log kinds share: parse each line (`self.go`: its content, time and
    attributes), match its content against the kind's rows and apply the row. `sure(go)` says
    whether a line shows this kind for certain (its prefix or program)."""

    EFFECTS = {**_Scanner.EFFECTS, "attr": _fx_attr}

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        self.d = rules.dispatch
        self.go = GoLine("")
        self.first_time: str | None = None
        self.last_time: str | None = None

    def sure(self, go: GoLine) -> bool:
        raise NotImplementedError

    def feed(self, no: int, line: str) -> int:
        self.lines += 1
        try:
            line = self._clean(line)
            if not line.strip():
                return 0
            go = self.go = parse(line)
            sure = self.sure(go)
            if go.stamp and (sure or go.message):
                self.first_time = self.first_time or go.stamp
                self.last_time = go.stamp
            found = self.d.match(go.content) if go.content else None
            if found is None:
                return 2 if sure else 0
            sig, m = found
            self._apply(no, line, sig, m)
            return 2 if sure else 1 if sig.detect else 0
        except Exception:  # noqa: BLE001 - one odd line must not end the scan
            self.internal_errors += 1
            return 0


def seconds_between(t0: float | None, t1: float | None) -> float | None:
    """t1 − t0 in seconds (None when either is unknown or time went back)."""
    if t0 is None or t1 is None or t1 < t0:
        return None
    return round(t1 - t0, 3)
