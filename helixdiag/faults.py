"""Known host bugs that `serve --fault` rehearses on purpose (docs/serve.md lists them).

Each fault names the failure id a correct client diagnoses it as, so tests and the
self-test's `--break` read the expectation from here instead of repeating it, and the modes
it shows in (`request`: vsockenc's FRAME_REQUESTs; `scanout`: a subscriber's pushed frames).
"""

from __future__ import annotations

from dataclasses import dataclass

from helixdiag.errors import UsageError

REQUEST, SCANOUT = "request", "scanout"


@dataclass(frozen=True)
class FaultKind:
    name: str
    takes_value: bool
    expected_failure: str
    description: str
    modes: tuple[str, ...] = (REQUEST, SCANOUT)
    default: float | None = None  # the value when none is given (only faults that take one)
    seconds: bool = False  # the value is seconds (a float), not an integer


FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("hang", False, "stream-no-reply", "accept and read, never reply (not even PONG)"),
        FaultKind("close", False, "stream-closed", "close the connection after a request arrives"),
        FaultKind("bad-magic", False, "stream-bad-magic", "replies start with a wrong magic"),
        FaultKind("no-sps", False, "stream-no-sps-pps", "keyframes without SPS/PPS (the H0/H1 host)"),
        FaultKind("avcc", False, "stream-avcc", "length-prefixed NALs instead of Annex-B (H0/H1)"),
        FaultKind("error", True, "encoder-error", "answer every frame with ERROR CODE (e.g. error=-5)",
                  modes=(REQUEST,)),
        FaultKind("slow", True, "stream-slow", "wait MS milliseconds before every reply", modes=(REQUEST,)),
        FaultKind(
            "ignore-frame-request", False, "frame-request-ignored",
            "PING answered, FRAME_REQUEST never (the H4 host)", modes=(REQUEST,),
        ),
        FaultKind("close-after-subscribe", False, "stream-closed",
                  "answer SUBSCRIBE, then close the connection", modes=(SCANOUT,)),
        FaultKind("no-frames", False, "stream-no-reply",
                  "answer SUBSCRIBE, never push a frame", modes=(SCANOUT,)),
        FaultKind("double-init", False, "stream-no-reply",
                  "the export initialised twice: subscribers are invisible to the frame path "
                  "(fe != g_fe and NO_SUBSCRIBER in the log)", modes=(SCANOUT,)),
        FaultKind("drop-after", True, "stream-closed",
                  "drop a subscriber S seconds (default 60) after its last message, like the "
                  "H4 host's read timeout", modes=(SCANOUT,), default=60.0, seconds=True),
    )
}


# The drm-manager stand-in's faults (`drm-manager --fault`): each leaves the desktop without a
# lease, so nothing is drawn on its scanout and a subscriber waits for frames in vain.
MANAGER_FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("pool-empty", False, "stream-no-reply",
                  "every scanout id is already leased: 'no scanouts available (all N in use)'",
                  modes=("manager",)),
        FaultKind("no-master", False, "stream-no-reply",
                  "cannot become DRM master (another master holds the card): the manager exits",
                  modes=("manager",)),
        FaultKind("wrong-port", False, "stream-no-reply",
                  "ENABLE_SCANOUT goes to a port nothing listens on (QEMU_ADDR points elsewhere)",
                  modes=("manager",)),
    )
}


def parse_manager_fault(text: str) -> Fault:
    name = text.strip()
    if name not in MANAGER_FAULT_KINDS:
        raise UsageError(f"unknown drm-manager fault {text!r}; choose one of: {', '.join(MANAGER_FAULT_KINDS)}")
    return Fault(name)


@dataclass(frozen=True)
class Fault:
    kind: str
    value: int | float | None = None

    @property
    def spec(self) -> FaultKind:
        return FAULT_KINDS.get(self.kind) or MANAGER_FAULT_KINDS[self.kind]

    @property
    def expected_failure(self) -> str:
        return self.spec.expected_failure

    def applies_to(self, mode: str) -> bool:
        return mode in self.spec.modes

    def __str__(self) -> str:
        if self.value is None:
            return self.kind
        return f"{self.kind}={self.value:g}" if isinstance(self.value, float) else f"{self.kind}={self.value}"


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
        if kind.default is not None:
            return Fault(name, kind.default)
        raise UsageError(f"fault {name!r} needs a value, e.g. {name}={'-5' if name == 'error' else '200'}")
    if kind.seconds:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 86400:
            raise UsageError(f"{name}=S needs seconds, 0 < S <= 86400, got {raw!r}")
        return Fault(name, seconds)
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"fault {name!r} needs an integer value, got {raw!r}") from None
    if name == "slow" and not 0 <= value <= 600_000:
        raise UsageError("slow=MS must be between 0 and 600000")
    if name == "error" and not -(2**31) <= value < 2**31:
        raise UsageError("error=CODE must fit in an i32")
    return Fault(name, value)
