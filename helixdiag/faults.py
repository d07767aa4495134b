"""Known host bugs that `serve --fault` rehearses on purpose (PROTOCOL.md §10, FAILURES.md).

Each fault names the failure id a correct client diagnoses it as, so tests and the
self-test's `--break` read the expectation from here instead of repeating it.
"""

from __future__ import annotations

from dataclasses import dataclass

from helixdiag.errors import UsageError


@dataclass(frozen=True)
class FaultKind:
    name: str
    takes_value: bool
    expected_failure: str
    description: str


FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("hang", False, "stream-no-reply", "accept and read, never reply (not even PONG)"),
        FaultKind("close", False, "stream-closed", "close the connection after a request arrives"),
        FaultKind("bad-magic", False, "stream-bad-magic", "replies start with a wrong magic"),
        FaultKind("no-sps", False, "stream-no-sps-pps", "keyframes without SPS/PPS (the H0/H1 host)"),
        FaultKind("avcc", False, "stream-avcc", "length-prefixed NALs instead of Annex-B (H0/H1)"),
        FaultKind("error", True, "encoder-error", "answer every frame with ERROR CODE (e.g. error=-5)"),
        FaultKind("slow", True, "stream-slow", "wait MS milliseconds before every reply"),
        FaultKind(
            "ignore-frame-request", False, "frame-request-ignored",
            "PING answered, FRAME_REQUEST never (the H4 host)",
        ),
    )
}


@dataclass(frozen=True)
class Fault:
    kind: str
    value: int | None = None

    @property
    def expected_failure(self) -> str:
        return FAULT_KINDS[self.kind].expected_failure

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value}"


def parse_fault(text: str) -> Fault:
    """`hang`, `error=-5`, `slow=200`, …; a clear UsageError otherwise."""
    name, sep, raw = text.strip().partition("=")
    kind = FAULT_KINDS.get(name)
    if kind is None:
        choices = ", ".join(k.name + ("=N" if k.takes_value else "") for k in FAULT_KINDS.values())
        raise UsageError(f"unknown fault {text!r}; choose one of: {choices}")
    if not kind.takes_value:
        if sep:
            raise UsageError(f"fault {name!r} takes no value")
        return Fault(name)
    if not sep:
        raise UsageError(f"fault {name!r} needs a value, e.g. {name}={'-5' if name == 'error' else '200'}")
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"fault {name!r} needs an integer value, got {raw!r}") from None
    if name == "slow" and not 0 <= value <= 600_000:
        raise UsageError("slow=MS must be between 0 and 600000")
    if name == "error" and not -(2**31) <= value < 2**31:
        raise UsageError("error=CODE must fit in an i32")
    return Fault(name, value)
