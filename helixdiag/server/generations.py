"""The host generations `serve --generation` reproduces, in one table.

Every behaviour of the reference host that differs between QEMU frame-export builds is a
field of `Generation`; the listener, the sessions and the scanout producers read it from
here and nowhere else. Which messages are answered is derived from the protocol's one
message table (`protocol.MESSAGES[...].answered_by`) and the messages a build understands,
so nothing here restates what answers what.

`reference` is today's `serve` and stays the default: it answers everything it can (also
DISABLE_SCANOUT, which no real host answers), sends ERROR instead of silence, pushes to any
subscribed scanout and forces keyframes for new subscribers. `h1`–`h5` behave like the
builds of those names (docs/serve.md has the table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from helixdiag.errors import UsageError
from helixdiag.protocol import GUEST_TO_HOST, MESSAGES, MsgType

# CONFIG_RESP is in the message table but no host ever sends it: CONFIG_REQ goes unanswered.
NEVER_SENT = frozenset({MsgType.CONFIG_RESP})
_REQUEST_ONLY = frozenset({MsgType.FRAME_REQUEST, MsgType.KEYFRAME_REQ, MsgType.CONFIG_REQ, MsgType.PING})
_ALL = frozenset(GUEST_TO_HOST)


@dataclass(frozen=True)
class Generation:
    name: str
    title: str
    banner: str | None  # the log line that identifies the build (None: serve prints none)
    framing: str  # "header": read by payload_size; "recv": one recv() of <= 64 KiB is one message (H1)
    transports: frozenset[str]  # "tcp", "unix"
    max_clients: int
    when_full: str  # "wait": accept only when the slot frees (H1/H2); "close": accept and close; "error": ERROR -99
    idle_timeout: float | None  # seconds of silence from a client before the host drops it; None: never
    idle_spares_subscribers: bool  # serve only: a subscriber may stay silent forever
    understands: frozenset[MsgType]  # guest messages it handles; the rest are unknown types to it
    extra_answers: frozenset[MsgType]  # answered here although no host does (serve: DISABLE_SCANOUT)
    unknown: str  # what an unknown type gets: "error" (ERROR -1, H1) or "skip"
    errors: bool  # a failed request is answered with ERROR (H0–H2, serve) rather than silence
    bad_magic: str  # "error-keep" (ERROR -1, connection kept: H1), "close" (H2+), "error-close" (serve)
    pixels: bool  # reads PIXEL_DATA pixels (H1 predates them and encodes the console)
    annexb: bool  # Annex-B with SPS/PPS on keyframes (H2+); else AVCC without parameter sets (H1)
    scanouts: str  # "any": every subscribed id gets frames (serve); "enabled": only ids ENABLEd, 1..max_outputs-1
    keyframes: str  # "on-demand": IDR for each new subscriber, after drops, on KEYFRAME_REQ (serve);
    #                 "encoder": the real encoder's, IDR on its first frame, then every GOP
    gop: int | None  # frames between IDRs; None: --gop
    keepalive_ms: int | None  # re-encode the last frame of a static picture this often (H5)
    write_timeout: float  # how long a control reply may wait for the socket to take it

    @property
    def answers(self) -> frozenset[MsgType]:
        """The guest messages this build answers: those it understands that the message table
        says are answered (by something a host really sends), plus its extras."""
        answered = {t for t in self.understands if MESSAGES[t].answered_by - NEVER_SENT}
        return frozenset(answered) | self.extra_answers

    @property
    def scanout_mode(self) -> bool:
        return MsgType.SUBSCRIBE in self.understands

    @property
    def is_reference(self) -> bool:
        return self.name == REFERENCE.name

    def idle_limit(self, idle_timeout: float | None, subscribed: bool) -> float:
        """Seconds of silence after which a client is dropped (inf: never)."""
        if idle_timeout is None or (subscribed and self.idle_spares_subscribers):
            return math.inf
        return idle_timeout


REFERENCE = Generation(
    name="reference", title="today's serve: answers everything, never silent, any scanout pushes",
    banner=None, framing="header", transports=frozenset({"tcp", "unix"}), max_clients=16, when_full="error",
    idle_timeout=30.0, idle_spares_subscribers=True, understands=_ALL,
    extra_answers=frozenset({MsgType.DISABLE_SCANOUT}), unknown="skip", errors=True, bad_magic="error-close",
    pixels=True, annexb=True, scanouts="any", keyframes="on-demand", gop=None, keepalive_ms=None,
    write_timeout=30.0,
)

_H3_BASE = dict(
    framing="header", transports=frozenset({"tcp"}), max_clients=16, when_full="close",
    idle_spares_subscribers=False, extra_answers=frozenset(), unknown="skip", errors=False, bad_magic="close",
    pixels=True, annexb=True, scanouts="enabled", keyframes="encoder", gop=60, write_timeout=10.0,
)

GENERATIONS: dict[str, Generation] = {g.name: g for g in (
    REFERENCE,
    Generation(
        name="h1", title="Unix socket behind socat, one recv() per message, AVCC without SPS/PPS, 1 client",
        banner="[HELIX] Frame export ready: socket=helix-frame-export.sock, proxy=10.0.2.2:5900",
        framing="recv", transports=frozenset({"unix"}), max_clients=1, when_full="wait", idle_timeout=None,
        idle_spares_subscribers=False, understands=_REQUEST_ONLY, extra_answers=frozenset(), unknown="error",
        errors=True, bad_magic="error-keep", pixels=False, annexb=False, scanouts="enabled",
        keyframes="encoder", gop=60, keepalive_ms=None, write_timeout=30.0,
    ),
    Generation(
        name="h2", title="TCP, header-framed requests with pixels, ERROR on failures, 1 client, 30 s idle",
        banner="[HELIX] VERSION: 2026-02-06-v4-TCP-direct",
        framing="header", transports=frozenset({"tcp"}), max_clients=1, when_full="wait", idle_timeout=30.0,
        idle_spares_subscribers=False, understands=_REQUEST_ONLY, extra_answers=frozenset(), unknown="skip",
        errors=True, bad_magic="close", pixels=True, annexb=True, scanouts="enabled", keyframes="encoder",
        gop=60, keepalive_ms=None, write_timeout=30.0,
    ),
    Generation(
        name="h3", title="16 clients, scanouts and the legacy FRAME_REQUEST path, silent on failures, 600 s idle",
        banner="[HELIX] VERSION: 2026-02-08-v7-gpu-blit", understands=_ALL, idle_timeout=600.0,
        keepalive_ms=None, **_H3_BASE,
    ),
    Generation(
        name="h4", title="scanouts only: FRAME_REQUEST skipped unanswered, 60 s idle close",
        banner="[HELIX] VERSION: 2026-02-15-v10-ipa-granule-test",
        understands=_ALL - {MsgType.FRAME_REQUEST}, idle_timeout=60.0, keepalive_ms=None, **_H3_BASE,
    ),
    Generation(
        name="h5", title="as h4, and a static picture is re-encoded every 500 ms; no idle close (inferred)",
        banner="[HELIX] VERSION: helixdiag-h5-stand-in (keepalive build)",
        understands=_ALL - {MsgType.FRAME_REQUEST}, idle_timeout=None, keepalive_ms=500, **_H3_BASE,
    ),
)}


def generation(name: str) -> Generation:
    try:
        return GENERATIONS[name.strip().lower()]
    except KeyError:
        raise UsageError(f"unknown generation {name!r}; choose one of: {', '.join(GENERATIONS)}") from None


# --------------------------------------------------------------------------- the picture


@dataclass(frozen=True)
class Picture:
    """What the guest draws on a scanout, as damage over time: frames are pushed only while it
    moves (every real host encodes on damage; a static picture sends nothing). `segments` is
    a cycle of ("moving"|"static", seconds); one segment lasts forever."""

    segments: tuple[tuple[str, float], ...]

    def moving_at(self, t: float) -> bool:
        if len(self.segments) == 1:
            return self.segments[0][0] == "moving"
        t %= sum(s for _, s in self.segments)
        for kind, seconds in self.segments:
            if t < seconds:
                return kind == "moving"
            t -= seconds
        return self.segments[-1][0] == "moving"

    def __str__(self) -> str:
        if len(self.segments) == 1:
            return self.segments[0][0]
        return ",".join(f"{kind}:{seconds:g}" for kind, seconds in self.segments)


MOVING = Picture((("moving", math.inf),))
STATIC = Picture((("static", math.inf),))


def parse_picture(text: str) -> Picture:
    """`static`, `moving`, or a cycle such as `moving:0.5,static:2` (seconds each)."""
    text = text.strip().lower()
    if text in ("moving", "static"):
        return MOVING if text == "moving" else STATIC
    segments = []
    for part in text.split(","):
        kind, sep, raw = part.strip().partition(":")
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if kind not in ("moving", "static") or not sep or not 0 < seconds <= 86400:
            raise UsageError(f"bad --picture {text!r}: use static, moving, or a cycle like "
                             "moving:0.5,static:2 (seconds, each 0 < S <= 86400)")
        segments.append((kind, seconds))
    return Picture(tuple(segments))


def default_listeners(gen: Generation) -> tuple[list[tuple[str, int]], list[str]]:
    """Where a generation listens when told nothing: H1 on its Unix socket in the working
    directory (socat relayed TCP to it), the others on TCP 127.0.0.1:15937."""
    if "tcp" in gen.transports:
        return [("127.0.0.1", 15937)], []
    return [], ["helix-frame-export.sock"]
