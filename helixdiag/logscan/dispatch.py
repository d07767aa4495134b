"""Finding the signature a log line matches without trying the whole table.

Signatures are bucketed per log kind by the first one or two words of their regex's literal
prefix (`_DISPATCH`); `_match()` looks a line's message up by its first words and tries only
that bucket, in table order, then the `anywhere` signatures (searched for by their needle).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helixdiag.logscan.signatures import KINDS, SIGNATURES, Signature, signatures_for

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


def _build_dispatch(kind: str) -> _Dispatch:
    order = {s.name: i for i, s in enumerate(SIGNATURES)}
    one: dict[str, list[Signature]] = {}
    two: dict[str, list[Signature]] = {}
    anywhere: list[Signature] = []
    for sig in signatures_for(kind):
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


_DISPATCH = {kind: _build_dispatch(kind) for kind in KINDS}


def _match(d: _Dispatch, content: str, func: str | None = None,
           use_anywhere: bool = True) -> tuple[Signature, re.Match[str]] | None:
    i = content.find(" ")
    if i < 0:
        cands = d.by1.get(content)
    else:
        j = content.find(" ", i + 1)
        cands = d.by2.get(content[:j] if j >= 0 else content) or d.by1.get(content[:i])
    if cands:
        for sig in cands:
            if func is not None and sig.func is not None and sig.func not in func:
                continue
            m = sig.regex.match(content)
            if m:
                return sig, m
    if use_anywhere:
        for sig in d.anywhere:
            if sig.needle in content:  # type: ignore[operator]
                m = sig.regex.search(content)
                if m:
                    return sig, m
    return None
