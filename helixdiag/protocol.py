"""The HXFR wire protocol (shared/PROTOCOL.md), sans-I/O.

Bytes in → message objects out (`Decoder`); message objects in → bytes out (`encode`,
`encode_parts`). No sockets, no clocks: the reference server, the reference client, every
probe that talks HXFR and the tests all use this module and none re-implements framing.

Two error types say who is to blame:
  * `LocalProtocolError`  — *we* were asked to send something the protocol cannot carry;
  * `RemoteProtocolError` — the *peer* sent bytes that break the protocol.

Limits are enforced from the 12-byte header alone, before any payload is read or any
buffer allocated: a header announcing 4 GiB costs nothing.
"""

from __future__ import annotations

import mmap
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

MAGIC = 0x52465848  # "HXFR" on the wire (little-endian)
HEADER = struct.Struct("<IBBHI")
HEADER_SIZE = HEADER.size  # 12

FLAG_PIXEL_DATA = 0x01

# The real host accepts pixel payloads only if 0 < N <= 64 MiB (PROTOCOL.md §7).
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
U32_MAX = 0xFFFFFFFF


class MsgType(IntEnum):
    FRAME_REQUEST = 0x01
    FRAME_RESPONSE = 0x02
    KEYFRAME_REQ = 0x03
    CONFIG_REQ = 0x04
    CONFIG_RESP = 0x05
    PING = 0x10
    PONG = 0x11
    ENABLE_SCANOUT = 0x20
    DISABLE_SCANOUT = 0x21
    SCANOUT_RESP = 0x22
    SUBSCRIBE = 0x30
    SUBSCRIBE_RESP = 0x31
    ERROR = 0xFF


class PixelFormat(IntEnum):
    """DRM fourcc values carried in FRAME_REQUEST.format (PROTOCOL.md §6.2)."""

    UNKNOWN = 0
    BGRA8888 = 0x34325241  # "AR24": memory order B,G,R,A (GStreamer BGRx/BGRA)
    RGBA8888 = 0x34324241  # "AB24": memory order R,G,B,A (GStreamer RGBx/RGBA)
    NV12 = 0x3231564E  # "NV12": Y plane then interleaved CbCr, 4:2:0


class ErrorCode(IntEnum):
    OK = 0
    INVALID_MSG = -1
    RESOURCE_NOT_FOUND = -2
    NOT_METAL_TEXTURE = -3
    NO_IOSURFACE = -4
    ENCODE_FAILED = -5
    NOT_CONFIGURED = -6
    INTERNAL = -99


# --------------------------------------------------------------------------- errors


class ProtocolError(Exception):
    """Base of both protocol errors."""


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol.

    `kind` is a stable word for the mapping to failure ids: "bad-magic", "unknown-type",
    "unexpected-type", "bad-size", "too-large", "bad-nal-table" (and "truncated" from
    `decode_all`).
    """

    def __init__(self, kind: str, message: str, *, header: Header | None = None, offset: int = 0):
        super().__init__(message)
        self.kind = kind
        self.header = header
        self.offset = offset  # stream offset of the offending message's first byte


# --------------------------------------------------------------------------- messages

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Header:
    magic: int
    msg_type: int
    flags: int
    session_id: int
    payload_size: int


@dataclass(frozen=True, slots=True)
class FrameRequest:
    """0x01, guest → host. `pixels` present ⇔ the PIXEL_DATA flag (a zero-copy view when decoded)."""

    width: int
    height: int
    format: int
    stride: int
    pts: int = -1
    duration: int = -1
    force_keyframe: bool = False
    resource_id: int = 0
    pixels: Buffer | None = field(default=None, compare=False, repr=False)
    session_id: int = 1

    @property
    def has_pixels(self) -> bool:
        return self.pixels is not None


@dataclass(frozen=True, slots=True)
class FrameResponse:
    """0x02, host → guest: `nals` are the entries; real hosts send one Annex-B access unit."""

    nals: tuple[Buffer, ...]
    pts: int = 0
    dts: int = 0
    is_keyframe: bool = False
    session_id: int = 1

    @property
    def nal_count(self) -> int:
        return len(self.nals)

    @property
    def data(self) -> bytes:
        """All entries concatenated, as vsockenc does (PROTOCOL.md §8)."""
        return b"".join(bytes(n) for n in self.nals)


@dataclass(frozen=True, slots=True)
class KeyframeRequest:
    session_id: int = 1


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    width: int = 0
    height: int = 0
    bitrate: int = 0  # bits/s
    framerate_num: int = 60
    framerate_den: int = 1
    profile: int = 66
    level: int = 40
    realtime: int = 1
    session_id: int = 0


@dataclass(frozen=True, slots=True)
class ConfigResponse:
    """0x05: a constant in the headers only, never sent by any host; kept opaque."""

    payload: bytes = b""
    session_id: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    session_id: int = 1


@dataclass(frozen=True, slots=True)
class Pong:
    session_id: int = 1


@dataclass(frozen=True, slots=True)
class EnableScanout:
    scanout_id: int
    width: int = 0
    height: int = 0
    refresh_rate: int = 60
    session_id: int = 0


@dataclass(frozen=True, slots=True)
class DisableScanout:
    scanout_id: int
    session_id: int = 0


@dataclass(frozen=True, slots=True)
class ScanoutResponse:
    scanout_id: int
    success: bool
    connector: str = ""
    session_id: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    scanout_id: int
    session_id: int | None = None  # Go puts the scanout id here; None = do the same

    @property
    def header_session(self) -> int:
        return self.scanout_id & 0xFFFF if self.session_id is None else self.session_id


@dataclass(frozen=True, slots=True)
class SubscribeResponse:
    scanout_id: int
    success: bool = True
    session_id: int | None = None  # host writes (u16)scanout_id

    @property
    def header_session(self) -> int:
        return self.scanout_id & 0xFFFF if self.session_id is None else self.session_id


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    code: int
    message: str = ""
    session_id: int = 1

    @classmethod
    def for_code(cls, code: int, session_id: int = 1) -> ErrorMessage:
        """What the real host sends: `snprintf("Error: %d", code)`."""
        return cls(code=code, message=f"Error: {code}", session_id=session_id)


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A type this module does not know, skipped like the H3/H4 host does (when allowed)."""

    msg_type: int
    flags: int
    session_id: int
    payload_size: int


Message = (
    FrameRequest | FrameResponse | KeyframeRequest | ConfigRequest | ConfigResponse | Ping | Pong
    | EnableScanout | DisableScanout | ScanoutResponse | Subscribe | SubscribeResponse
    | ErrorMessage | UnknownMessage
)

# Bodies after the 12-byte header (PROTOCOL.md §5).
_FRAME_REQUEST = struct.Struct("<IIIIIqqB7s")  # 44
_FRAME_RESPONSE = struct.Struct("<qqB3sI")  # 24
_CONFIG_REQ = struct.Struct("<IIIIIBBB5s")  # 28
_ENABLE_SCANOUT = struct.Struct("<IIII")  # 16
_SCANOUT_ID = struct.Struct("<I")  # 4: DISABLE_SCANOUT, SUBSCRIBE
_SCANOUT_RESP = struct.Struct("<II64s")  # 72
_SUBSCRIBE_RESP = struct.Struct("<II")  # 8
_ERROR = struct.Struct("<i256s")  # 260
_U32 = struct.Struct("<I")

# payload_size each fixed-size type must announce; None = variable (checked per type).
FIXED_PAYLOAD: dict[int, int | None] = {
    MsgType.FRAME_REQUEST: None,
    MsgType.FRAME_RESPONSE: None,
    MsgType.KEYFRAME_REQ: 0,
    MsgType.CONFIG_REQ: _CONFIG_REQ.size,
    MsgType.CONFIG_RESP: None,
    MsgType.PING: 0,
    MsgType.PONG: 0,
    MsgType.ENABLE_SCANOUT: _ENABLE_SCANOUT.size,
    MsgType.DISABLE_SCANOUT: _SCANOUT_ID.size,
    MsgType.SCANOUT_RESP: _SCANOUT_RESP.size,
    MsgType.SUBSCRIBE: _SCANOUT_ID.size,
    MsgType.SUBSCRIBE_RESP: _SUBSCRIBE_RESP.size,
    MsgType.ERROR: _ERROR.size,
}
FRAME_REQUEST_BODY = _FRAME_REQUEST.size  # 44
FRAME_RESPONSE_BODY = _FRAME_RESPONSE.size  # 24

# Which side sends what; a Decoder can be told which direction it reads.
GUEST_TO_HOST = frozenset({
    MsgType.FRAME_REQUEST, MsgType.KEYFRAME_REQ, MsgType.CONFIG_REQ, MsgType.PING,
    MsgType.ENABLE_SCANOUT, MsgType.DISABLE_SCANOUT, MsgType.SUBSCRIBE,
})
HOST_TO_GUEST = frozenset({
    MsgType.FRAME_RESPONSE, MsgType.CONFIG_RESP, MsgType.PONG, MsgType.SCANOUT_RESP,
    MsgType.SUBSCRIBE_RESP, MsgType.ERROR,
})


# --------------------------------------------------------------------------- encoding


def encode(msg: Message) -> bytes:
    """The message's wire bytes. For large pixel payloads prefer `encode_parts`."""
    return b"".join(encode_parts(msg))


def encode_parts(msg: Message) -> list[Buffer]:
    """Wire bytes as a list of buffers, so pixels and NAL data go out without a copy
    (`socket.sendmsg(parts)`)."""
    try:
        return _encode_parts(msg)
    except struct.error as exc:
        raise LocalProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def _header(msg_type: int, session_id: int, payload_size: int, flags: int = 0) -> bytes:
    if payload_size > U32_MAX:
        raise LocalProtocolError(f"payload of {payload_size} bytes does not fit in u32")
    return HEADER.pack(MAGIC, msg_type, flags, session_id, payload_size)


def _encode_parts(msg: Message) -> list[Buffer]:
    match msg:
        case FrameRequest():
            body = _FRAME_REQUEST.pack(
                msg.resource_id, msg.width, msg.height, msg.format, msg.stride,
                msg.pts, msg.duration, 1 if msg.force_keyframe else 0, b"",
            )
            if msg.pixels is None:
                return [_header(MsgType.FRAME_REQUEST, msg.session_id, len(body)) + body]
            n = _nbytes(msg.pixels)
            if n == 0:
                raise LocalProtocolError("PIXEL_DATA flag needs at least one pixel byte")
            head = _header(MsgType.FRAME_REQUEST, msg.session_id, len(body) + n, FLAG_PIXEL_DATA)
            return [head + body, msg.pixels]
        case FrameResponse():
            parts: list[Buffer] = []
            payload = _FRAME_RESPONSE.size
            for nal in msg.nals:
                n = _nbytes(nal)
                parts.append(_U32.pack(n))
                parts.append(nal)
                payload += 4 + n
            body = _FRAME_RESPONSE.pack(msg.pts, msg.dts, 1 if msg.is_keyframe else 0, b"", len(msg.nals))
            return [_header(MsgType.FRAME_RESPONSE, msg.session_id, payload) + body, *parts]
        case KeyframeRequest():
            return [_header(MsgType.KEYFRAME_REQ, msg.session_id, 0)]
        case ConfigRequest():
            body = _CONFIG_REQ.pack(
                msg.width, msg.height, msg.bitrate, msg.framerate_num, msg.framerate_den,
                msg.profile, msg.level, msg.realtime, b"",
            )
            return [_header(MsgType.CONFIG_REQ, msg.session_id, len(body)) + body]
        case ConfigResponse():
            return [_header(MsgType.CONFIG_RESP, msg.session_id, len(msg.payload)), msg.payload]
        case Ping():
            return [_header(MsgType.PING, msg.session_id, 0)]
        case Pong():
            return [_header(MsgType.PONG, msg.session_id, 0)]
        case EnableScanout():
            body = _ENABLE_SCANOUT.pack(msg.scanout_id, msg.width, msg.height, msg.refresh_rate)
            return [_header(MsgType.ENABLE_SCANOUT, msg.session_id, len(body)) + body]
        case DisableScanout():
            body = _SCANOUT_ID.pack(msg.scanout_id)
            return [_header(MsgType.DISABLE_SCANOUT, msg.session_id, len(body)) + body]
        case ScanoutResponse():
            body = _SCANOUT_RESP.pack(
                msg.scanout_id, 1 if msg.success else 0, _c_string(msg.connector, 64)
            )
            return [_header(MsgType.SCANOUT_RESP, msg.session_id, len(body)) + body]
        case Subscribe():
            body = _SCANOUT_ID.pack(msg.scanout_id)
            return [_header(MsgType.SUBSCRIBE, msg.header_session, len(body)) + body]
        case SubscribeResponse():
            body = _SUBSCRIBE_RESP.pack(msg.scanout_id, 1 if msg.success else 0)
            return [_header(MsgType.SUBSCRIBE_RESP, msg.header_session, len(body)) + body]
        case ErrorMessage():
            body = _ERROR.pack(msg.code, _c_string(msg.message, 256))
            return [_header(MsgType.ERROR, msg.session_id, len(body)) + body]
        case UnknownMessage():
            raise LocalProtocolError("an UnknownMessage cannot be encoded")
    raise LocalProtocolError(f"not an HXFR message: {type(msg).__name__}")


def _nbytes(buf: Buffer) -> int:
    return buf.nbytes if isinstance(buf, memoryview) else len(buf)


def _c_string(text: str, size: int) -> bytes:
    """A NUL-terminated, NUL-padded char[size]; over-long text is an error, not a silent cut."""
    raw = text.encode("utf-8")
    if len(raw) >= size:
        raise LocalProtocolError(f"string of {len(raw)} bytes does not fit char[{size}] with its NUL")
    return raw


def _from_c_string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- decoding


LAZY_BUFFER_MIN = 1 << 20


def untouched_buffer(size: int) -> bytearray | mmap.mmap:
    """A writable buffer whose memory is committed only as bytes are written into it: a
    header that announces 64 MiB and then sends nothing costs (almost) nothing. Large
    buffers are anonymous mappings (zero pages on demand); `bytearray(n)` would zero-fill,
    touching every page at once."""
    if size < LAZY_BUFFER_MIN:
        return bytearray(size)
    return mmap.mmap(-1, size)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()
"""Returned by `Decoder.next_message()` when more bytes are needed."""


class Decoder:
    """Incremental HXFR reader for either direction.

    Feed bytes with `feed(data)` — or, to avoid a copy, `recv_into(decoder.buffer())`
    followed by `decoder.commit(n)` — then pull messages with `next_message()` (a message or
    `NEED_DATA`) or iterate `messages()`. Messages decoded before a protocol violation are
    returned first; then `RemoteProtocolError` is raised, and again on every later call (a
    broken HXFR stream cannot be resynchronised: there is no marker to hunt for).

    Each message with a payload owns its buffer, so a FrameRequest's `pixels` memoryview
    stays valid after later messages arrive.

    `reuse_pixels=True` (opt-in; the server uses it) reads FRAME_REQUEST payloads into one
    buffer per decoder, reused frame after frame, instead of a fresh zero-filled allocation
    per frame (at 1080p NV12 that is a 3 MB memset and ~760 page faults per frame). The
    ownership rule: a FrameRequest's `pixels` stay valid until the caller comes back to the
    decoder — the next `next_message()` (or `messages()` step), `feed()` or `buffer()` call
    after the one that returned it. A reader that finishes with each message before asking
    for the next (the server encodes and replies before it reads on) never sees them change.
    The buffer is lent to one message at a time: while that message is still queued, later
    ones get their own storage, so a `feed()` that completes several frames stays correct.

    `max_payload` bounds pixel bytes for FRAME_REQUEST and payload_size for every other
    type. `accept` restricts the types expected from the peer (e.g. `GUEST_TO_HOST` in a
    server). `skip_unknown` makes unknown types an `UnknownMessage` whose payload is
    discarded without buffering, as the H3/H4 host does.
    """

    def __init__(
        self,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        accept: frozenset[int] | None = None,
        skip_unknown: bool = False,
        reuse_pixels: bool = False,
    ) -> None:
        self.max_payload = max_payload
        self.accept = accept
        self.skip_unknown = skip_unknown
        self.reuse_pixels = reuse_pixels
        self._shared: bytearray | mmap.mmap | None = None  # the reusable payload buffer (reuse_pixels)
        self._shared_msg: Message | None = None  # the message it is lent to while queued
        self._shared_busy = False  # being filled, queued, or handed out and not yet released
        self._scratch: memoryview | None = None  # where skipped payload bytes are drained
        self._ready: deque[Message] = deque()
        self._error: RemoteProtocolError | None = None
        self._offset = 0  # stream offset of the current message's first byte
        self._consumed = 0  # total bytes consumed
        self._start_header()

    # -- state
    def _start_header(self) -> None:
        self._header: Header | None = None
        self._buf = bytearray(HEADER_SIZE)
        self._view = memoryview(self._buf)
        self._filled = 0
        self._skip = 0

    @property
    def bytes_needed(self) -> int:
        """Bytes still missing to complete the header or message in progress."""
        if self._skip:
            return self._skip
        return len(self._view) - self._filled

    @property
    def in_message(self) -> bool:
        """True between the first byte of a message and its last (a cut here is a truncation)."""
        return self._filled > 0 or self._header is not None or self._skip > 0

    @property
    def current_header(self) -> Header | None:
        return self._header

    @property
    def broken(self) -> bool:
        return self._error is not None

    # -- input
    def feed(self, data: Buffer) -> None:
        """Consume bytes; parsing happens here, errors surface from `next_message()`."""
        self._release()
        mv = memoryview(data).cast("B")
        pos = 0
        while pos < len(mv) and self._error is None:
            if self._skip:
                take = min(self._skip, len(mv) - pos)
                self._skip -= take
                pos += take
                self._consumed += take
                if not self._skip:
                    self._message_done()  # the next message starts after the skipped payload
                    self._start_header()
                continue
            take = min(len(self._view) - self._filled, len(mv) - pos)
            self._view[self._filled:self._filled + take] = mv[pos:pos + take]
            self._filled += take
            pos += take
            self._consumed += take
            self._advance()

    def buffer(self) -> memoryview:
        """Where the next bytes go, for `sock.recv_into(...)`; call `commit(n)` afterwards.

        While a payload is being skipped or after an error, a small scratch buffer is
        returned so a reader loop can go on draining the socket.
        """
        self._release()
        if self._error is not None or self._skip:
            if self._scratch is None:
                self._scratch = memoryview(bytearray(65536))
            return self._scratch[:min(self._skip or 65536, 65536)]
        return self._view[self._filled:]

    def commit(self, n: int) -> None:
        """Account for `n` bytes written into `buffer()`."""
        if n <= 0 or self._error is not None:
            return
        if self._skip:
            if n > min(self._skip, 65536):
                raise ValueError("commit() of more bytes than buffer() offered")
            self._skip -= n
            self._consumed += n
            if not self._skip:
                self._message_done()  # the next message starts after the skipped payload
                self._start_header()
            return
        if n > len(self._view) - self._filled:
            raise ValueError("commit() of more bytes than buffer() offered")
        self._filled += n
        self._consumed += n
        self._advance()

    # -- output
    def next_message(self) -> Message | _NeedData:
        self._release()
        if self._ready:
            msg = self._ready.popleft()
            if msg is self._shared_msg:
                self._shared_msg = None  # handed out: lent until the caller comes back
            return msg
        if self._error is not None:
            raise self._error
        return NEED_DATA

    def messages(self) -> Iterator[Message]:
        """Every complete message decoded so far (raises after them if the stream broke)."""
        while True:
            msg = self.next_message()
            if msg is NEED_DATA:
                return
            yield msg  # type: ignore[misc]

    def _release(self) -> None:
        """The caller came back: the message holding the shared buffer (if any was handed
        out) is done with it."""
        if self._shared_busy and self._shared_msg is None and self._header is None:
            self._shared_busy = False

    def _payload_buffer(self, h: Header) -> memoryview:
        size = h.payload_size
        if (self.reuse_pixels and not self._shared_busy and h.msg_type == MsgType.FRAME_REQUEST
                and h.flags & FLAG_PIXEL_DATA):
            shared = self._shared
            # Grow to fit; shrink when far too big, so one huge frame is not held forever.
            if shared is None or len(shared) < size or len(shared) > 4 * size:
                shared = self._shared = untouched_buffer(size)
            self._shared_busy = True
            return memoryview(shared)[:size]
        # The size was checked against the limit above, so this allocation is bounded.
        return memoryview(untouched_buffer(size))

    # -- parsing
    def _advance(self) -> None:
        if self._filled < len(self._view):
            return
        try:
            if self._header is None:
                self._on_header()
            else:
                self._on_payload()
        except RemoteProtocolError as exc:
            exc.offset = self._offset
            self._error = exc

    def _on_header(self) -> None:
        magic, msg_type, flags, session_id, payload_size = HEADER.unpack(self._buf)
        header = Header(magic, msg_type, flags, session_id, payload_size)
        if magic != MAGIC:
            raise RemoteProtocolError(
                "bad-magic",
                f"bad magic 0x{magic:08x} (bytes {bytes(self._buf[:4])!r}), expected 0x{MAGIC:08x} 'HXFR'",
                header=header,
            )
        if msg_type not in FIXED_PAYLOAD:
            if not self.skip_unknown:
                raise RemoteProtocolError("unknown-type", f"unknown message type 0x{msg_type:02x}", header=header)
            if payload_size > self.max_payload:
                raise _too_large(header, payload_size, self.max_payload)
            self._ready.append(UnknownMessage(msg_type, flags, session_id, payload_size))
            # Reset the header buffer even for payload_size 0: otherwise the full 12-byte
            # header is parsed again and again (endless loop, endless UnknownMessages).
            self._start_header()
            if payload_size:
                self._skip = payload_size
            else:
                self._message_done()
            return
        if self.accept is not None and msg_type not in self.accept:
            raise RemoteProtocolError(
                "unexpected-type",
                f"{MsgType(msg_type).name} is not a message this side should receive",
                header=header,
            )
        self._check_size(header)
        self._header = header
        self._view = self._payload_buffer(header)
        self._buf = self._view.obj
        self._filled = 0
        if payload_size == 0:
            self._on_payload()  # body is empty, not the header bytes just parsed

    def _check_size(self, h: Header) -> None:
        name = MsgType(h.msg_type).name
        expected = FIXED_PAYLOAD[h.msg_type]
        if expected is not None:
            if h.payload_size != expected:
                raise RemoteProtocolError(
                    "bad-size", f"{name} announces payload_size {h.payload_size}, must be {expected}", header=h
                )
            return
        if h.msg_type == MsgType.FRAME_REQUEST:
            if not h.flags & FLAG_PIXEL_DATA:
                if h.payload_size != FRAME_REQUEST_BODY:
                    raise RemoteProtocolError(
                        "bad-size",
                        f"FRAME_REQUEST without PIXEL_DATA announces payload_size {h.payload_size}, must be {FRAME_REQUEST_BODY}",
                        header=h,
                    )
                return
            pixels = h.payload_size - FRAME_REQUEST_BODY
            if pixels <= 0:
                raise RemoteProtocolError(
                    "bad-size",
                    f"FRAME_REQUEST with PIXEL_DATA announces payload_size {h.payload_size}: no pixel bytes",
                    header=h,
                )
            if pixels > self.max_payload:
                raise _too_large(h, pixels, self.max_payload)
            return
        if h.payload_size > self.max_payload:
            raise _too_large(h, h.payload_size, self.max_payload)
        if h.msg_type == MsgType.FRAME_RESPONSE and h.payload_size < FRAME_RESPONSE_BODY:
            raise RemoteProtocolError(
                "bad-size",
                f"FRAME_RESPONSE announces payload_size {h.payload_size}, less than its {FRAME_RESPONSE_BODY}-byte body",
                header=h,
            )

    def _on_payload(self) -> None:
        h = self._header
        assert h is not None
        msg = _parse_body(h, self._view)
        if self._shared is not None and self._view.obj is self._shared:
            self._shared_msg = msg
        self._ready.append(msg)
        self._message_done()
        self._start_header()

    def _message_done(self) -> None:
        self._offset = self._consumed


def _too_large(h: Header, size: int, limit: int) -> RemoteProtocolError:
    name = MsgType(h.msg_type).name if h.msg_type in FIXED_PAYLOAD else f"type 0x{h.msg_type:02x}"
    return RemoteProtocolError("too-large", f"{name} announces {size} bytes, over the {limit}-byte limit", header=h)


def _parse_body(h: Header, body: memoryview) -> Message:
    t = h.msg_type
    sid = h.session_id
    if t == MsgType.FRAME_REQUEST:
        rid, w, ht, fmt, stride, pts, dur, fk, _ = _FRAME_REQUEST.unpack_from(body)
        pixels = body[FRAME_REQUEST_BODY:] if h.flags & FLAG_PIXEL_DATA else None
        return FrameRequest(w, ht, fmt, stride, pts, dur, bool(fk), rid, pixels, sid)
    if t == MsgType.FRAME_RESPONSE:
        pts, dts, key, _, count = _FRAME_RESPONSE.unpack_from(body)
        return FrameResponse(_parse_nal_table(h, body, count), pts, dts, bool(key), sid)
    if t == MsgType.KEYFRAME_REQ:
        return KeyframeRequest(sid)
    if t == MsgType.CONFIG_REQ:
        w, ht, br, fn, fd, prof, lvl, rt, _ = _CONFIG_REQ.unpack_from(body)
        return ConfigRequest(w, ht, br, fn, fd, prof, lvl, rt, sid)
    if t == MsgType.CONFIG_RESP:
        return ConfigResponse(bytes(body), sid)
    if t == MsgType.PING:
        return Ping(sid)
    if t == MsgType.PONG:
        return Pong(sid)
    if t == MsgType.ENABLE_SCANOUT:
        return EnableScanout(*_ENABLE_SCANOUT.unpack_from(body), session_id=sid)
    if t == MsgType.DISABLE_SCANOUT:
        return DisableScanout(_SCANOUT_ID.unpack_from(body)[0], sid)
    if t == MsgType.SCANOUT_RESP:
        sc, ok, conn = _SCANOUT_RESP.unpack_from(body)
        return ScanoutResponse(sc, bool(ok), _from_c_string(conn), sid)
    if t == MsgType.SUBSCRIBE:
        return Subscribe(_SCANOUT_ID.unpack_from(body)[0], sid)
    if t == MsgType.SUBSCRIBE_RESP:
        sc, ok = _SUBSCRIBE_RESP.unpack_from(body)
        return SubscribeResponse(sc, bool(ok), sid)
    if t == MsgType.ERROR:
        code, text = _ERROR.unpack_from(body)
        return ErrorMessage(code, _from_c_string(text), sid)
    raise AssertionError(f"unhandled type {t}")  # guarded by FIXED_PAYLOAD


def _parse_nal_table(h: Header, body: memoryview, count: int) -> tuple[memoryview, ...]:
    """The `count` (u32 length + bytes) entries must fill the payload exactly."""
    pos = FRAME_RESPONSE_BODY
    end = len(body)
    if count > (end - pos) // 4:
        raise RemoteProtocolError(
            "bad-nal-table", f"FRAME_RESPONSE claims {count} NAL entries in {end - pos} bytes", header=h
        )
    nals = []
    for i in range(count):
        if end - pos < 4:
            raise RemoteProtocolError("bad-nal-table", f"NAL entry {i} length cut off", header=h)
        (size,) = _U32.unpack_from(body, pos)
        pos += 4
        if size > end - pos:
            raise RemoteProtocolError(
                "bad-nal-table", f"NAL entry {i} claims {size} bytes, only {end - pos} left", header=h
            )
        nals.append(body[pos:pos + size])
        pos += size
    if pos != end:
        raise RemoteProtocolError(
            "bad-nal-table", f"{end - pos} bytes left over after {count} NAL entries", header=h
        )
    return tuple(nals)


def decode_all(data: Buffer, **decoder_options) -> list[Message]:
    """Decode a complete byte string; raises if it ends mid-message."""
    dec = Decoder(**decoder_options)
    dec.feed(data)
    out = list(dec.messages())
    if dec.in_message:
        raise RemoteProtocolError(
            "truncated",
            f"input ends {dec.bytes_needed} bytes short of a complete message",
            header=dec.current_header,
            offset=dec._offset,
        )
    return out


# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """Byte layout of one raw frame as GStreamer lays it out by default (PROTOCOL.md §7)."""

    format: PixelFormat
    width: int
    height: int
    stride: int  # plane-0 bytes per row
    size: int  # whole buffer
    uv_offset: int | None = None  # NV12: where the interleaved CbCr plane starts

    @property
    def y_size(self) -> int:
        return self.uv_offset if self.uv_offset is not None else self.size


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def default_stride(fmt: PixelFormat, width: int) -> int:
    if fmt == PixelFormat.NV12:
        return _round_up(width, 4)
    if fmt in (PixelFormat.BGRA8888, PixelFormat.RGBA8888):
        return 4 * width
    raise ValueError(f"no layout for pixel format {fmt!r}")


def frame_layout(fmt: PixelFormat | int, width: int, height: int, stride: int | None = None) -> FrameLayout:
    """Stride, buffer size and plane offsets: BGRx/RGBx `stride·H` (stride ≥ 4·W);
    NV12 `stride·round_up_2(H)·3/2` with the UV plane at `stride·round_up_2(H)`."""
    fmt = PixelFormat(fmt)
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    min_stride = default_stride(fmt, width)
    stride = min_stride if stride is None else stride
    if fmt == PixelFormat.NV12:
        if stride < width:
            raise ValueError(f"NV12 stride {stride} is less than the width {width}")
        luma_rows = _round_up(height, 2)
        uv_offset = stride * luma_rows
        return FrameLayout(fmt, width, height, stride, uv_offset + stride * luma_rows // 2, uv_offset)
    if stride < 4 * width:
        raise ValueError(f"{fmt.name} stride {stride} is less than 4×width ({4 * width})")
    return FrameLayout(fmt, width, height, stride, stride * height)


FORMAT_NAMES: dict[str, PixelFormat] = {
    "nv12": PixelFormat.NV12,
    "bgrx": PixelFormat.BGRA8888,
    "bgra": PixelFormat.BGRA8888,
    "rgbx": PixelFormat.RGBA8888,
    "rgba": PixelFormat.RGBA8888,
}


def format_name(fmt: int) -> str:
    """A human name for a fourcc value, also for values this module does not know."""
    try:
        return PixelFormat(fmt).name
    except ValueError:
        raw = struct.pack("<I", fmt & U32_MAX)
        text = raw.decode("ascii", errors="replace")
        return f"0x{fmt:08x} ({text!r})"
