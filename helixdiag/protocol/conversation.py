"""The conversation on one HXFR connection, as a small state machine: what each message
means given what came before. The client (send, the stream and guest probes), watch and
the tap judge the rules here, and nowhere else:

* a message the table says is answered (FRAME_REQUEST, PING, CONFIG_REQ, ENABLE_SCANOUT,
  SUBSCRIBE) waits for one answer; each answer goes to the oldest request it can answer;
* DISABLE_SCANOUT and KEYFRAME_REQ are never answered;
* a FRAME_RESPONSE with no FRAME_REQUEST waiting is a pushed frame: expected after a
  successful SUBSCRIBE_RESP; before it (SUBSCRIBE still waiting) it is tolerated, as
  desktop-bridge tolerates it, and said so; with neither, it is a reply without a request;
* an ERROR answers a waiting FRAME_REQUEST, or stands alone (e.g. "too many clients").

It never raises for what a peer does: every message becomes an `Event` that says what it
was, what it answered and after how long, and which failure id it shows if it breaks a rule.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from helixdiag.protocol.messages import (
    BY_CLASS,
    MESSAGES,
    ErrorMessage,
    FrameResponse,
    Message,
    MsgType,
    Subscribe,
    SubscribeResponse,
    UnknownMessage,
)

REQUEST = "request"  # guest → host, waiting for its answer
ONE_WAY = "one-way"  # guest → host, never answered (DISABLE_SCANOUT, KEYFRAME_REQ)
REPLY = "reply"  # host → guest, the answer to a waiting request
PUSH = "push"  # host → guest, a scanout frame after SUBSCRIBE_RESP
EARLY_PUSH = "early-push"  # a pushed frame before SUBSCRIBE_RESP: tolerated
STANDALONE_ERROR = "error"  # an ERROR that answers nothing
UNSOLICITED = "unsolicited"  # an answer nobody asked for
UNKNOWN = "unknown"  # a type the protocol does not have (skipped by the H3+ hosts)


@dataclass(frozen=True)
class Event:
    kind: str
    message: Message
    answers: Message | None = None  # the request this message answers
    latency_s: float | None = None  # from the request to this answer
    failure_id: str | None = None  # the rule it breaks, if it breaks one
    detail: str = ""

    @property
    def name(self) -> str:
        msg = self.message
        return f"type 0x{msg.msg_type:02x}" if isinstance(msg, UnknownMessage) else type_of(msg).name


def type_of(msg: Message) -> MsgType:
    return BY_CLASS[type(msg)].type


class Conversation:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: deque[tuple[MsgType, Message, float]] = deque()
        self.subscribed: set[int] = set()  # scanout ids with a successful SUBSCRIBE_RESP

    # ------------------------------------------------------------------ guest → host
    def guest_sent(self, msg: Message) -> Event:
        if isinstance(msg, UnknownMessage):
            return Event(UNKNOWN, msg, detail="a type the protocol does not have")
        t = type_of(msg)
        if not MESSAGES[t].answered_by:
            return Event(ONE_WAY, msg, detail=f"{t.name} is never answered")
        self._waiting.append((t, msg, self._clock()))
        return Event(REQUEST, msg)

    # ------------------------------------------------------------------ host → guest
    def host_sent(self, msg: Message) -> Event:
        if isinstance(msg, UnknownMessage):
            return Event(UNKNOWN, msg, failure_id="stream-protocol-error",
                         detail=f"the host sent an unknown type 0x{msg.msg_type:02x}")
        t = type_of(msg)
        waiting = self._take(t)
        if waiting is not None:
            request, since = waiting
            if isinstance(msg, SubscribeResponse) and msg.success:
                self.subscribed.add(msg.scanout_id)
            return Event(REPLY, msg, request, self._clock() - since)
        if isinstance(msg, FrameResponse):
            if self.subscribed:
                return Event(PUSH, msg)
            if self.subscribing:
                return Event(EARLY_PUSH, msg, detail="a pushed frame arrived before SUBSCRIBE_RESP (tolerated)")
            return Event(UNSOLICITED, msg, failure_id="stream-protocol-error",
                         detail="FRAME_RESPONSE with no FRAME_REQUEST waiting and no subscription")
        if isinstance(msg, ErrorMessage):
            return Event(STANDALONE_ERROR, msg, detail=f"ERROR {msg.code} answers no request")
        return Event(UNSOLICITED, msg, failure_id="stream-protocol-error",
                     detail=f"{t.name} with no request waiting for it")

    # ------------------------------------------------------------------ state
    @property
    def subscribing(self) -> bool:
        return any(isinstance(msg, Subscribe) for _, msg, _ in self._waiting)

    def waiting(self) -> list[tuple[Message, float]]:
        """Requests still waiting for their answer, oldest first, with their age in seconds."""
        now = self._clock()
        return [(msg, now - since) for _, msg, since in self._waiting]

    def _take(self, answer: MsgType) -> tuple[Message, float] | None:
        for i, (t, msg, since) in enumerate(self._waiting):
            if answer in MESSAGES[t].answered_by:
                del self._waiting[i]
                return msg, since
        return None
