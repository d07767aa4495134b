"""What every parser shares: the one `ParseError`, and readers for text, argv and numbers.

Parsing is tolerant: lines a parser cannot read are skipped, because real tools vary by OS
and version. Input that cannot mean anything raises `ParseError` (a `ValueError`); no other
exception escapes a parser, whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


class ParseError(ValueError):
    """The input cannot be read as the tool output (or command line) it is supposed to be."""


DIGITS = re.compile(r"[0-9]+")
PORT = re.compile(r"[0-9]{1,5}")


def as_text(text: object) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", errors="replace")
    raise ParseError(f"expected text, got {type(text).__name__}")


def as_argv(argv: object) -> list[str]:
    """An argv list of str. A plain string is split on whitespace, as `ps` output would be."""
    if isinstance(argv, str):
        return argv.split()
    if not isinstance(argv, Sequence) or isinstance(argv, (bytes, bytearray)):
        raise ParseError(f"expected an argv list, got {type(argv).__name__}")
    out: list[str] = []
    for item in argv:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, (bytes, bytearray)):
            out.append(bytes(item).decode("utf-8", errors="replace"))
        else:
            raise ParseError(f"argv element {item!r} is not a string")
    return out


def int_or_none(value: object) -> int | None:
    """An int, or the ASCII digits of one (a tool's text or JSON value); else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not DIGITS.fullmatch(value):
        return None
    return int(value)


def port_or_none(value: str | None) -> int | None:
    if value is None or not PORT.fullmatch(value):
        return None
    port = int(value)
    return port if port <= 65535 else None


def split_hostport(text: str) -> tuple[str | None, int | None]:
    """`127.0.0.1:5900`, `*:5900`, `[::1]:5900`, `localhost:postgresql` -> (host, port or None)."""
    text = text.strip()
    if not text:
        return None, None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return text, None
        host, rest = text[1:end], text[end + 1 :]
        return (host or None), port_or_none(rest[1:] if rest.startswith(":") else None)
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    return (host or None), port_or_none(port)


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
