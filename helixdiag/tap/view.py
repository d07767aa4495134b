"""The decoding view of one tapped connection, sans-I/O: bytes in (with the time they were
read), records out. The relay feeds it a copy of what it forwarded; `--read` feeds it a
capture. Nothing here touches a socket or a clock, so a capture read back prints exactly
what the live tap printed.

Framing is the codec's (`protocol.Decoder`), what a message *is* (a reply, a pushed frame, an
answer nobody asked for) the conversation's (`protocol.Conversation`), and the H.264 inside a
FRAME_RESPONSE is read with `h264`'s helpers. The view only names what they report with the
catalog's failure ids, once, at the message where it happens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from helixdiag import h264
from helixdiag.findings import Finding
from helixdiag.protocol import (
    FIXED_PAYLOAD,
    FRAME_REQUEST_BODY,
    FRAME_RESPONSE_BODY,
    GUEST_TO_HOST,
    HEADER_SIZE,
    HOST_TO_GUEST,
    NEED_DATA,
    ConfigRequest,
    Conversation,
    Decoder,
    DisableScanout,
    EnableScanout,
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    Message,
    Pong,
    RemoteProtocolError,
    ScanoutResponse,
    Subscribe,
    SubscribeResponse,
    UnknownMessage,
    format_name,
)
from helixdiag.protocol.conversation import EARLY_PUSH, PUSH, REPLY, REQUEST, UNSOLICITED, type_of
from helixdiag.protocol.messages import type_name

GUEST, HOST = "guest", "host"  # who sent the bytes
OTHER = {GUEST: HOST, HOST: GUEST}
SLOW_REPLY_MS = 100.0  # Helix's own latency goal, the limit `send` judges stream-slow by


@dataclass
class Record:
    """One line of the tap's log: a message, a protocol break, a note, a connection opening
    or closing. `flags` are the failure ids this line shows, each with its detail."""

    kind: str  # "open" | "message" | "break" | "note" | "close"
    ts: float  # epoch seconds: when the bytes that completed it were read
    conn: int
    sender: str | None = None  # GUEST | HOST
    n: int | None = None  # message number on this connection (both directions)
    type: str | None = None
    session_id: int | None = None
    size: int | None = None  # bytes on the wire, header included
    event: str | None = None  # the conversation's word: request, reply, push, …
    answers: tuple[int, str] | None = None  # (n, type) of the request this answers
    latency_ms: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # what the line says besides the fields
    flags: list[Finding] = field(default_factory=list)

    def flag(self, failure_id: str, detail: str, **evidence: Any) -> None:
        self.flags.append(Finding(failure_id, detail, evidence))

    @property
    def failure_ids(self) -> list[str]:
        return [f.failure_id for f in self.flags]


@dataclass
class _Side:
    """One direction of the connection."""

    decoder: Decoder
    bytes: int = 0
    messages: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    broken_at: int | None = None  # stream offset where decoding stopped
    closed: bool = False


class ConnectionView:
    """What one connection carries, message by message. Call `data()` with each chunk as it
    was forwarded, `tick()` now and then (replies that never come), `closed()` for each
    direction's end, then `summary()`."""

    def __init__(self, conn: int, guest: str, host: str, ts: float, *, reply_timeout: float = 3.0) -> None:
        self.conn = conn
        self.guest = guest
        self.host = host
        self.opened = ts
        self.reply_timeout = reply_timeout
        self.now = ts
        self.conversation = Conversation(clock=lambda: self.now)
        self.sides = {
            # The pixel payload of a request goes into one reused buffer: a 1080p request is
            # summarised, never kept (the ownership rule of Decoder(reuse_pixels=True) holds:
            # each message is finished with before the decoder is asked for the next).
            GUEST: _Side(Decoder(accept=GUEST_TO_HOST, skip_unknown=True, reuse_pixels=True)),
            HOST: _Side(Decoder(accept=HOST_TO_GUEST, skip_unknown=True)),
        }
        self.count = 0
        self._numbers: dict[int, tuple[int, str]] = {}  # id(waiting request) → (n, type)
        self._flagged_silence: set[int] = set()  # ids of requests already flagged unanswered
        self.request_mode = False  # a FRAME_REQUEST was seen: vsockenc's conversation
        self.latencies_ms: list[float] = []
        self.frame_times: list[float] = []
        self.last_frame: float | None = None
        self.subscribed_at: float | None = None
        self._silent_subscription_flagged = False
        self.failures: dict[str, int] = {}
        self.first_closer: str | None = None
        self.closed_by_tap = False
        self.closed_at: float | None = None
        self.unobserved = 0  # bytes forwarded but not decoded (the observer fell behind)

    # ------------------------------------------------------------------ input
    def data(self, sender: str, chunk: bytes, ts: float) -> list[Record]:
        self.now = ts
        side = self.sides[sender]
        side.bytes += len(chunk)
        if side.broken_at is not None:
            return []
        side.decoder.feed(chunk)
        out: list[Record] = []
        while True:
            try:
                msg = side.decoder.next_message()
            except RemoteProtocolError as exc:
                out.append(self._broken(sender, side, exc, ts))
                break
            if msg is NEED_DATA:
                break
            out.append(self._message(sender, msg, ts))  # type: ignore[arg-type]
        return self._count(out)

    def tick(self, ts: float) -> list[Record]:
        """Requests that have waited longer than the reply timeout, and a subscription that
        has had no frame for as long: each said once."""
        self.now = ts
        out = []
        for msg, age in self.conversation.waiting():
            if age < self.reply_timeout or id(msg) in self._flagged_silence:
                continue
            self._flagged_silence.add(id(msg))
            label = self._label(msg)
            rec = Record("note", ts, self.conn, sender=HOST, text=f"no reply to {label} after {age:.1f} s")
            rec.flag("stream-no-reply", f"no answer to {label} within {self.reply_timeout:g} s",
                     request=self._numbers.get(id(msg), (0,))[0])
            out.append(rec)
        if self.conversation.subscribed and not self._silent_subscription_flagged:
            since = self.last_frame if self.last_frame is not None else self.subscribed_at
            if since is not None and ts - since >= self.reply_timeout:
                # Not a failure by itself: a static picture sends nothing (send says the same
                # when it watches); a host that never pushes (double init) looks the same.
                self._silent_subscription_flagged = True
                ids = ", ".join(str(i) for i in sorted(self.conversation.subscribed))
                out.append(Record("note", ts, self.conn, sender=HOST,
                                  text=f"subscribed to scanout {ids}, no frame for {ts - since:.1f} s: a static "
                                       "picture, or a host that never pushes (stream-no-reply if it changes)"))
        return self._count(out)

    def closed(self, sender: str, ts: float, *, by_tap: bool = False) -> list[Record]:
        """`sender`'s side ended (EOF, reset, or the tap stopping). The `close` record comes
        when the first side ends (that one closed the connection); requests the guest left
        unanswered are judged when the second ends (a guest's FIN may be a half-close that
        still reads its answers)."""
        self.now = ts
        side = self.sides[sender]
        if side.closed:
            return []
        side.closed = True
        if self.first_closer is None:
            return self._count([self._first_close(sender, side, ts, by_tap)])
        if by_tap or self.closed_by_tap or self.first_closer == HOST:
            return []
        left = [m for m, _ in self.conversation.waiting() if id(m) not in self._flagged_silence]
        if not left:
            return []
        unanswered = ", ".join(self._label(m) for m in left)
        rec = Record("note", ts, self.conn, sender=GUEST, text=f"the connection ended with {unanswered} unanswered")
        rec.flag("stream-no-reply", f"the guest left with {unanswered} unanswered")
        return self._count([rec])

    def _first_close(self, sender: str, side: _Side, ts: float, by_tap: bool) -> Record:
        self.first_closer = sender
        self.closed_by_tap = by_tap
        self.closed_at = ts
        who = "the tap (stopping)" if by_tap else f"the {sender}"
        rec = Record("close", ts, self.conn, sender=sender, text=f"closed by {who}")
        if by_tap:
            return rec
        waiting = [m for m, _ in self.conversation.waiting()]
        unanswered = ", ".join(self._label(m) for m in waiting)
        if side.decoder.in_message and side.broken_at is None:
            rec.text += f", {side.decoder.bytes_needed} bytes short of a complete message"
        if waiting:
            rec.text += f"; waiting: {unanswered}"
        if sender == HOST:
            if waiting:
                rec.flag("stream-closed", f"the host closed the connection with {unanswered} unanswered")
            elif self.conversation.subscribed:
                rec.flag("stream-closed", "the host closed a subscriber's connection")
            elif side.decoder.in_message and side.broken_at is None:
                rec.flag("stream-closed", "the host closed the connection in the middle of a message")
        return rec

    # ------------------------------------------------------------------ one message
    def _message(self, sender: str, msg: Message, ts: float) -> Record:
        self.count += 1
        side = self.sides[sender]
        side.messages += 1
        name = _type_name(msg)
        side.by_type[name] = side.by_type.get(name, 0) + 1
        rec = Record("message", ts, self.conn, sender=sender, n=self.count, type=name,
                     session_id=_header_session(msg), size=wire_size(msg), fields=describe(msg))
        if sender == GUEST:
            self._guest_sent(msg, rec)
        else:
            self._host_sent(msg, rec)
        return rec

    def _guest_sent(self, msg: Message, rec: Record) -> None:
        if isinstance(msg, FrameRequest):
            self.request_mode = True
            msg = dataclasses.replace(msg, pixels=None)  # the conversation keeps the request, not its pixels
        event = self.conversation.guest_sent(msg)
        rec.event = event.kind
        if event.kind == REQUEST:  # the conversation holds it until it is answered
            self._numbers[id(event.message)] = (rec.n or 0, rec.type or "")
        elif event.detail:
            rec.text = event.detail

    def _host_sent(self, msg: Message, rec: Record) -> None:
        waiting_before = [m for m, _ in self.conversation.waiting()]
        event = self.conversation.host_sent(msg)
        rec.event = event.kind
        if event.answers is not None:
            rec.answers = self._numbers.pop(id(event.answers), (0, type_of(event.answers).name))
            self._flagged_silence.discard(id(event.answers))
        if event.latency_s is not None:
            rec.latency_ms = round(event.latency_s * 1000, 3)
            self.latencies_ms.append(event.latency_s * 1000)
        if event.detail:
            rec.text = event.detail
        if event.failure_id:
            rec.flag(event.failure_id, event.detail or f"{rec.type} breaks the conversation")
            if event.kind == UNSOLICITED and self.request_mode:
                rec.flag("vsockenc-desync", "vsockenc takes whatever comes next as the reply to its pending "
                         "frame: from here on every reply is matched with the wrong frame")
        if isinstance(msg, FrameResponse):
            self._frame(msg, rec)
            if event.kind in (PUSH, EARLY_PUSH) and self.subscribed_at is None:
                self.subscribed_at = rec.ts
        elif isinstance(msg, ErrorMessage) and event.kind == REPLY:
            rec.flag("encoder-error", f"the host answered {rec.answers[1] if rec.answers else 'a request'} "
                     f"with ERROR {msg.code}", code=msg.code)
        elif isinstance(msg, Pong) and event.kind == REPLY:
            ignored = [m for m in waiting_before if isinstance(m, FrameRequest)]
            if ignored:
                self._flagged_silence.update(id(m) for m in ignored)
                rec.flag("frame-request-ignored", f"PING answered while {self._label(ignored[0])} is still "
                         "unanswered: the host is alive and ignores frames (H4 behaviour)",
                         request=self._numbers.get(id(ignored[0]), (0,))[0])
        elif isinstance(msg, SubscribeResponse) and event.kind == REPLY:
            if msg.success:
                self.subscribed_at = rec.ts
                self._silent_subscription_flagged = False
            else:
                rec.flag("stream-protocol-error", f"SUBSCRIBE to scanout {msg.scanout_id} refused")
        if rec.latency_ms is not None and rec.latency_ms > SLOW_REPLY_MS and rec.answers \
                and rec.answers[1] == "FRAME_REQUEST":
            rec.flag("stream-slow", f"reply took {rec.latency_ms:.0f} ms, over Helix's {SLOW_REPLY_MS:g} ms goal")

    def _frame(self, msg: FrameResponse, rec: Record) -> None:
        """The H.264 inside a FRAME_RESPONSE: framing, NAL types, SPS/PPS on keyframes."""
        self.frame_times.append(rec.ts)
        self.last_frame = rec.ts
        self._silent_subscription_flagged = False
        if msg.nal_count != 1:
            rec.flag("stream-nal-count", f"{msg.nal_count} NAL entries; hosts send 1 and the Go scanout "
                     "reader reads only the first", nal_count=msg.nal_count)
        # A subscriber reads exactly one entry, as desktop-bridge does; vsockenc joins them all.
        pushed = rec.event in (PUSH, EARLY_PUSH)
        data = (bytes(msg.nals[0]) if msg.nals else b"") if pushed else msg.data
        framing = h264.detect_framing(data)
        rec.fields["framing"] = str(framing)
        try:
            if framing == h264.Framing.ANNEXB:
                nals = h264.split_annexb(data)
            elif framing == h264.Framing.AVCC:
                nals = h264.split_avcc(data)
            else:
                nals = []
        except h264.H264Error:  # detect_framing split it already; kept for safety
            nals = []
        summary = h264.access_unit_summary(nals)
        rec.fields["nal_types"] = [nal_type_name(t) for t in summary.nal_types]
        keyframe = summary.has_idr or msg.is_keyframe
        rec.fields["keyframe"] = keyframe
        if summary.sps is not None:
            rec.fields["sps"] = {"width": summary.sps.width, "height": summary.sps.height,
                                 "profile": summary.sps.profile, "level": summary.sps.level}
        if framing == h264.Framing.AVCC:
            rec.flag("stream-avcc", "H.264 is length-prefixed (AVCC), not Annex-B: h264parse cannot use it",
                     first_bytes=bytes(data[:8]).hex(" "))
        elif framing != h264.Framing.ANNEXB:
            rec.flag("stream-undecodable", "the entry is neither Annex-B nor AVCC H.264",
                     first_bytes=bytes(data[:8]).hex(" "))
        elif keyframe and not (summary.has_sps and summary.has_pps and summary.params_before_idr):
            rec.flag("stream-no-sps-pps", "keyframe without SPS/PPS before the IDR: h264parse swallows "
                     "every frame", has_sps=summary.has_sps, has_pps=summary.has_pps)

    def _broken(self, sender: str, side: _Side, exc: RemoteProtocolError, ts: float) -> Record:
        side.broken_at = exc.offset
        head = exc.header
        rec = Record("break", ts, self.conn, sender=sender,
                     type=type_name(head.msg_type) if head and exc.kind != "bad-magic" else None,
                     session_id=head.session_id if head and exc.kind != "bad-magic" else None,
                     text=f"at byte {exc.offset} of the {sender}'s stream: {exc}; from here on its bytes are "
                          "forwarded undecoded",
                     fields={"offset": exc.offset, "kind": exc.kind})
        if head is not None:
            rec.fields["header"] = {"magic": f"0x{head.magic:08x}", "msg_type": head.msg_type,
                                    "flags": head.flags, "session_id": head.session_id,
                                    "payload_size": head.payload_size}
        rec.flag("stream-bad-magic" if exc.kind == "bad-magic" else "stream-protocol-error", str(exc),
                 kind=exc.kind, offset=exc.offset)
        if sender == HOST and self.request_mode:
            rec.flag("vsockenc-desync", "vsockenc drops the frame but keeps reading at the wrong place: every "
                     "later reply fails until the pipeline restarts")
        return rec

    def _label(self, msg: Message) -> str:
        n, name = self._numbers.get(id(msg), (0, type_of(msg).name))
        return f"{name} #{n}"

    def _count(self, records: list[Record]) -> list[Record]:
        for rec in records:
            for fid in rec.failure_ids:
                self.failures[fid] = self.failures.get(fid, 0) + 1
        return records

    # ------------------------------------------------------------------ summary
    def summary(self, ts: float) -> dict[str, Any]:
        end = self.closed_at or ts
        frames = len(self.frame_times)
        span = self.frame_times[-1] - self.frame_times[0] if frames > 1 else 0.0
        lat = sorted(self.latencies_ms)
        return {
            "conn": self.conn, "guest": self.guest, "host": self.host,
            "duration_s": round(end - self.opened, 3),
            "closed_by": ("tap" if self.closed_by_tap else self.first_closer) if self.first_closer else None,
            "messages": self.count,
            "frames": frames,
            "fps": round((frames - 1) / span, 2) if span > 0 else None,
            "latency_ms": {"p50": round(percentile(lat, 50), 3), "p95": round(percentile(lat, 95), 3),
                           "count": len(lat)} if lat else None,
            "directions": {
                f"{s}>{OTHER[s]}": {"messages": side.messages, "bytes": side.bytes, "types": dict(side.by_type),
                                    "undecoded_bytes": side.bytes - side.broken_at
                                    if side.broken_at is not None else 0,
                                    "broken_at": side.broken_at}
                for s, side in self.sides.items()
            },
            "unobserved_bytes": self.unobserved,
            "failures": dict(self.failures),
        }


# ---------------------------------------------------------------------- what a message says

def describe(msg: Message) -> dict[str, Any]:
    """The fields worth a line, never the payload itself."""
    if isinstance(msg, FrameRequest):
        d: dict[str, Any] = {"width": msg.width, "height": msg.height, "format": format_name(msg.format),
                             "stride": msg.stride, "pts": msg.pts, "force_keyframe": msg.force_keyframe,
                             "resource_id": msg.resource_id}
        d["pixel_bytes"] = len(msg.pixels) if msg.pixels is not None else None
        return d
    if isinstance(msg, FrameResponse):
        return {"pts": msg.pts, "is_keyframe": msg.is_keyframe, "nal_count": msg.nal_count,
                "entry_bytes": [len(n) for n in msg.nals[:8]]}
    if isinstance(msg, ConfigRequest):
        return {"width": msg.width, "height": msg.height, "bitrate": msg.bitrate,
                "framerate": f"{msg.framerate_num}/{msg.framerate_den}", "profile": msg.profile, "level": msg.level}
    if isinstance(msg, EnableScanout):
        return {"scanout_id": msg.scanout_id, "width": msg.width, "height": msg.height,
                "refresh_rate": msg.refresh_rate}
    if isinstance(msg, DisableScanout | Subscribe):
        return {"scanout_id": msg.scanout_id}
    if isinstance(msg, ScanoutResponse):
        return {"scanout_id": msg.scanout_id, "success": msg.success, "connector": msg.connector}
    if isinstance(msg, SubscribeResponse):
        return {"scanout_id": msg.scanout_id, "success": msg.success}
    if isinstance(msg, ErrorMessage):
        return {"code": msg.code, "message": msg.message}
    if isinstance(msg, UnknownMessage):
        return {"msg_type": msg.msg_type, "payload_size": msg.payload_size}
    return {}


def wire_size(msg: Message) -> int:
    """Bytes the message took on the wire, header included."""
    if isinstance(msg, FrameRequest):
        return HEADER_SIZE + FRAME_REQUEST_BODY + (len(msg.pixels) if msg.pixels is not None else 0)
    if isinstance(msg, FrameResponse):
        return HEADER_SIZE + FRAME_RESPONSE_BODY + sum(4 + len(n) for n in msg.nals)
    if isinstance(msg, UnknownMessage):
        return HEADER_SIZE + msg.payload_size
    payload = FIXED_PAYLOAD.get(type_of(msg))
    if payload is None:  # CONFIG_RESP: opaque
        return HEADER_SIZE + len(getattr(msg, "payload", b""))
    return HEADER_SIZE + payload


def _type_name(msg: Message) -> str:
    return f"type 0x{msg.msg_type:02x}" if isinstance(msg, UnknownMessage) else type_of(msg).name


def nal_type_name(t: int) -> str:
    try:
        return h264.NalType(t).name
    except ValueError:
        return f"TYPE{t}"


def _header_session(msg: Message) -> int | None:
    if isinstance(msg, Subscribe | SubscribeResponse):
        return msg.header_session
    return getattr(msg, "session_id", None)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
