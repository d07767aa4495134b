"""Small wording helpers shared by the commands' output."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """`1 client`, `2 clients`, `0 changes` (nouns with a plain plural `s`)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
