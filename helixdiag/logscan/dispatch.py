"""The signature table compiled into `Rules`: which signature a line matches, and what it does.

`compile_rules(kind, table)` checks and compiles one log kind's rows (import-time for the
shipped table, `RULES`):

* the dispatch: signatures bucketed by the first one or two words of their regex's literal
  prefix; `_Dispatch.match()` looks a line's message up by its first words and tries only
  that bucket, in table order, then the `anywhere` signatures (searched for by their needle);
* each signature's plan: its `step`/`era` column, its failure id (unless a `when` condition
  leaves it to the handler), its note, its effects, then its stateful handler. Every effect
  kind must be one the kind's scanner implements (`EFFECTS`), read only groups the regex has
  and write only state the scanner has; a handler must be a documented method of that
  scanner class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from helixdiag.logscan.bridge import _BridgeScanner
from helixdiag.logscan.drm import _DrmScanner
from helixdiag.logscan.gst import _GstScanner
from helixdiag.logscan.qemu import _QemuScanner
from helixdiag.logscan.scanner import KINDS, Step, _noted, _proves, _Scanner
from helixdiag.logscan.signatures import SIGNATURES, Signature, check_table

_SCANNERS: dict[str, type[_Scanner]] = {"gst": _GstScanner, "qemu": _QemuScanner,
                                        "bridge": _BridgeScanner, "drm": _DrmScanner}

# ── dispatch: bucket signatures by the first one or two words of their literal prefix ──

_META = set(".^$*+?{}[]|()")


def _literal_prefix(pattern: str) -> tuple[str, bool]:
    """The literal text every match starts with, and whether it is the whole pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])  # an escaped literal such as \[ or \.
            i += 2
        elif c == "$" and i == len(pattern) - 1:
            return "".join(out), True
        elif c == "\\" or c in _META:  # a class (\d, \S …), group, alternation …
            return "".join(out), False
        else:
            out.append(c)
            i += 1
        if i < len(pattern) and pattern[i] in "*?{":
            out.pop()  # the character before a quantifier is optional or repeated
            return "".join(out), False
    return "".join(out), True


def _dispatch_key(sig: Signature) -> tuple[str, ...]:
    literal, complete = _literal_prefix(sig.regex.pattern)
    parts = literal.split(" ")
    if not complete:
        parts = parts[:-1]  # the last word may continue in the message
    return tuple(parts[:2]) if parts and parts[0] else ()


@dataclass(frozen=True)
class _Dispatch:
    by2: dict[str, tuple[Signature, ...]]  # "word1 word2" -> candidates (incl. by1's)
    by1: dict[str, tuple[Signature, ...]]  # "word1" -> candidates
    anywhere: tuple[Signature, ...]

    def match(self, content: str, func: str | None = None,
              use_anywhere: bool = True) -> tuple[Signature, re.Match[str]] | None:
        """The first signature (in table order) that matches a line's message, and its match.
        `func`: the GST_DEBUG function the line comes from (rows naming another are skipped)."""
        i = content.find(" ")
        if i < 0:
            cands = self.by1.get(content)
        else:
            j = content.find(" ", i + 1)
            cands = self.by2.get(content[:j] if j >= 0 else content) or self.by1.get(content[:i])
        if cands:
            for sig in cands:
                if func is not None and sig.func is not None and sig.func not in func:
                    continue
                m = sig.regex.match(content)
                if m:
                    return sig, m
        if use_anywhere:
            for sig in self.anywhere:
                if sig.needle in content:  # type: ignore[operator]
                    m = sig.regex.search(content)
                    if m:
                        return sig, m
        return None


def _build_dispatch(sigs: tuple[Signature, ...]) -> _Dispatch:
    order = {s.name: i for i, s in enumerate(sigs)}
    one: dict[str, list[Signature]] = {}
    two: dict[str, list[Signature]] = {}
    anywhere: list[Signature] = []
    for sig in sigs:
        if sig.anywhere:
            anywhere.append(sig)
            continue
        key = _dispatch_key(sig)
        if len(key) == 2:
            two.setdefault(f"{key[0]} {key[1]}", []).append(sig)
        elif len(key) == 1:
            one.setdefault(key[0], []).append(sig)
        else:
            raise ValueError(f"signature {sig.name!r} has no literal start; mark it anywhere")
    by2 = {k: tuple(sorted(v + one.get(k.split(" ", 1)[0], []), key=lambda s: order[s.name]))
           for k, v in two.items()}
    by1 = {k: tuple(v) for k, v in one.items()}
    return _Dispatch(by2, by1, tuple(anywhere))


# ── the rules of one log kind: dispatch + a plan per signature ──


@dataclass(frozen=True)
class Rules:
    kind: str
    table: tuple[Signature, ...]  # this kind's rows, in table order
    dispatch: _Dispatch
    plans: dict[str, tuple[Step, ...]]  # signature name -> its steps
    by_name: dict[str, Signature]
    scanner_class: type[_Scanner]

    def scanner(self) -> _Scanner:
        """A fresh scanner for one log."""
        return self.scanner_class(self)


def _plan(sig: Signature, cls: type[_Scanner]) -> tuple[Step, ...]:
    def bad(what: str) -> ValueError:
        return ValueError(f"signature {sig.name!r}: {what}")

    steps: list[Step] = []
    if sig.step is not None:
        steps.append((cls._reach, sig.step))  # type: ignore[attr-defined]
    if sig.era is not None:
        steps.append((cls._see_era, sig.era))  # type: ignore[attr-defined]
    if sig.failure_id is not None and sig.when is None:
        steps.append((_proves, sig))
    if sig.note:
        steps.append((_noted, sig))
    for effect in sig.effect:
        fn = cls.EFFECTS.get(effect.kind)
        if fn is None:
            raise bad(f"effect {effect.kind!r} is not one the {sig.kind} scanner implements "
                      f"({', '.join(sorted(cls.EFFECTS))})")
        missing = [g for g in effect.groups if g not in sig.regex.groupindex]
        if missing:
            raise bad(f"effect {effect} reads groups the pattern lacks: {missing}")
        if effect.kind == "gen_hint" and effect.value is None:
            if sig.gen is None:
                raise bad("gen_hint() needs a gen column (or a generation)")
            effect = replace(effect, value=sig.gen)
        steps.append((fn, effect))
    if sig.handler is not None:
        if vars(cls).get(sig.handler.__name__) is not sig.handler:
            raise bad(f"handler {sig.handler.__qualname__} is not a method of {cls.__name__}")
        if not sig.handler.__doc__:
            raise bad(f"handler {sig.handler.__qualname__} needs a docstring (the docs show it)")
        steps.append((sig.handler, sig))
    return tuple(steps)


def compile_rules(kind: str, table: tuple[Signature, ...] = SIGNATURES) -> Rules:
    """Check and compile the rows of one log kind. Raises ValueError on a bad row."""
    if table is not SIGNATURES:  # the shipped table was checked when it was built
        check_table(table)
    cls = _SCANNERS[kind]
    sigs = tuple(s for s in table if s.kind == kind)
    rules = Rules(kind, sigs, _build_dispatch(sigs), {s.name: _plan(s, cls) for s in sigs},
                  {s.name: s for s in sigs}, cls)
    state = rules.scanner().state
    for sig in sigs:
        for effect in sig.effect:
            if effect.field is not None and not hasattr(state, effect.field):
                raise ValueError(f"signature {sig.name!r}: effect {effect} writes "
                                 f"{effect.field!r}, which the {kind} scanner does not keep")
    return rules


RULES: dict[str, Rules] = {kind: compile_rules(kind) for kind in KINDS}
