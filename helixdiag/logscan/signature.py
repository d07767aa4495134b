"""One row of the signature table: `Signature` (a known log string and what a line of it does)
and `_sig`, which builds one; the regex fragments every kind's rows share.

The rows live by log kind in `signatures` (vsockenc and QEMU), `signatures_bridge`
(desktop-bridge) and `signatures_drm` (helix-drm-manager and the desktop's lease helpers);
`signatures.SIGNATURES` is the one table they make together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helixdiag.logscan.scanner import Effect

_N = r"-?\d{1,20}"  # a (possibly negative) decimal, bounded so int() is always safe
_U = r"\d{1,20}"
_HEX = r"0x[0-9a-fA-F]{1,16}"
_PTR = r"\S{1,40}"
_H = r"\[HELIX\] "
_IP = r"[^\s:]{1,255}"
_ERR = r"(?P<error>.*)"


@dataclass(frozen=True)
class Signature:
    """One known log string.

    `failure_id` None means informational or a healthy marker. `when` says that the id applies
    only under a condition the row's handler checks (e.g. a non-zero status). `note` makes the
    line an informational note (with `related` as the id to read about). `effect` says what
    the line does to the scan; `handler` names the scanner method for what needs state across
    lines. `level` and `func` are where vsockenc logs it (a row naming a function only matches
    lines from it); `era` dates a vsockenc string (the element generation is judged from it);
    `gen` says which host generations print it; `step` is the host's init-ladder rung it
    proves. `anywhere` rows are searched for anywhere in a line (Go log lines, which carry
    their own prefixes) via `needle`; `detect` False rows never decide the log kind.
    """

    name: str
    kind: str  # "gst" | "qemu"
    regex: re.Pattern[str]
    meaning: str
    failure_id: str | None = None
    func: str | None = None  # gst: the function the message comes from (e.g. "connect")
    level: str | None = None  # gst: the GST_DEBUG level it is logged at
    step: str | None = None  # qemu: the INIT_STEPS rung this line proves
    era: str | None = None  # gst: element generation key (gst._ERAS)
    gen: str | None = None  # qemu: host generations that print it (H0–H4)
    when: str | None = None  # the failure id applies only when this holds (checked by code)
    note: bool = False
    related: str | None = None
    anywhere: bool = False
    needle: str | None = None
    detect: bool = True  # may decide the log kind in auto mode
    effect: tuple[Effect, ...] = ()
    handler: Callable[..., None] | None = field(default=None, compare=False)

    @property
    def extracts(self) -> tuple[str, ...]:
        """The facts this signature extracts (named groups), plus the init step if any."""
        names = tuple(self.regex.groupindex)
        return (*names, "step") if self.step else names

    @property
    def does(self) -> str:
        """What a matching line does, in words (its effects, then its handler's docstring)."""
        parts = [str(e) for e in self.effect]
        if self.handler is not None:
            parts.append((self.handler.__doc__ or self.handler.__name__).strip())
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "pattern": self.regex.pattern,
            "meaning": self.meaning, "failure_id": self.failure_id, "when": self.when,
            "extracts": list(self.extracts), "step": self.step, "func": self.func,
            "level": self.level, "era": self.era, "gen": self.gen, "related": self.related,
            "effect": [str(e) for e in self.effect],
            "handler": self.handler.__qualname__ if self.handler else None,
        }


def _sig(kind: str, name: str, pattern: str, meaning: str, failure_id: str | None = None,
         effect: Effect | tuple[Effect, ...] = (), **kw: Any) -> Signature:
    return Signature(name=f"{kind}.{name}", kind=kind, regex=re.compile(pattern, re.ASCII),
                     meaning=meaning, failure_id=failure_id,
                     effect=(effect,) if isinstance(effect, Effect) else tuple(effect), **kw)
