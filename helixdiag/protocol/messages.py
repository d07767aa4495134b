"""The HXFR messages: every type's shape in one table (`MESSAGES`).

Each message type is declared once: its number, its dataclass, who sends it, its payload
size, which message answers it, and how its body is packed and unpacked. The codec
(`protocol.codec`), the conversation rules (`protocol.conversation`), the server, the
client and the tap all read this table; none describes a message type again.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from helixdiag.compat import SLOTS

MAGIC = 0x52465848  # "HXFR" on the wire (little-endian)
HEADER = struct.Struct("<IBBHI")
HEADER_SIZE = HEADER.size  # 12

FLAG_PIXEL_DATA = 0x01

# The real host accepts pixel payloads only if 0 < N <= 64 MiB.
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
    """DRM fourcc values carried in FRAME_REQUEST.format."""

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

Buffer = typing.Union[bytes, bytearray, memoryview]  # noqa: UP007 - evaluated at import: Python 3.8 (guest agent)


@dataclass(frozen=True, **SLOTS)
class Header:
    magic: int
    msg_type: int
    flags: int
    session_id: int
    payload_size: int


@dataclass(frozen=True, **SLOTS)
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


@dataclass(frozen=True, **SLOTS)
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
        """All entries concatenated, as vsockenc does."""
        return b"".join(bytes(n) for n in self.nals)


@dataclass(frozen=True, **SLOTS)
class _HeaderOnly:
    """A message that is only its 12-byte header."""

    session_id: int = 1


class KeyframeRequest(_HeaderOnly):
    __slots__ = ()


@dataclass(frozen=True, **SLOTS)
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


@dataclass(frozen=True, **SLOTS)
class ConfigResponse:
    """0x05: a constant in the headers only, never sent by any host; kept opaque."""

    payload: bytes = b""
    session_id: int = 0


class Ping(_HeaderOnly):
    __slots__ = ()


class Pong(_HeaderOnly):
    __slots__ = ()


@dataclass(frozen=True, **SLOTS)
class EnableScanout:
    scanout_id: int
    width: int = 0
    height: int = 0
    refresh_rate: int = 60
    session_id: int = 0


@dataclass(frozen=True, **SLOTS)
class DisableScanout:
    scanout_id: int
    session_id: int = 0


@dataclass(frozen=True, **SLOTS)
class ScanoutResponse:
    scanout_id: int
    success: bool
    connector: str = ""
    session_id: int = 0


@dataclass(frozen=True, **SLOTS)
class Subscribe:
    scanout_id: int
    session_id: int | None = None  # Go puts the scanout id here; None = do the same

    @property
    def header_session(self) -> int:
        return self.scanout_id & 0xFFFF if self.session_id is None else self.session_id


@dataclass(frozen=True, **SLOTS)
class SubscribeResponse:
    scanout_id: int
    success: bool = True
    session_id: int | None = None  # host writes (u16)scanout_id

    @property
    def header_session(self) -> int:
        return self.scanout_id & 0xFFFF if self.session_id is None else self.session_id


@dataclass(frozen=True, **SLOTS)
class ErrorMessage:
    code: int
    message: str = ""
    session_id: int = 1

    @classmethod
    def for_code(cls, code: int, session_id: int = 1) -> ErrorMessage:
        """What the real host sends: `snprintf("Error: %d", code)`."""
        return cls(code=code, message=f"Error: {code}", session_id=session_id)


@dataclass(frozen=True, **SLOTS)
class UnknownMessage:
    """A type this module does not know, skipped like the H3/H4 host does (when allowed)."""

    msg_type: int
    flags: int
    session_id: int
    payload_size: int


Message = typing.Union[  # noqa: UP007 - as Buffer
    FrameRequest, FrameResponse, KeyframeRequest, ConfigRequest, ConfigResponse, Ping, Pong,
    EnableScanout, DisableScanout, ScanoutResponse, Subscribe, SubscribeResponse,
    ErrorMessage, UnknownMessage,
]


# --------------------------------------------------------------------------- the table

GUEST, HOST = "guest", "host"

# Bodies after the 12-byte header.
_FRAME_REQUEST = struct.Struct("<IIIIIqqB7s")  # 44
_FRAME_RESPONSE = struct.Struct("<qqB3sI")  # 24
_CONFIG_REQ = struct.Struct("<IIIIIBBB5s")  # 28
_ENABLE_SCANOUT = struct.Struct("<IIII")  # 16
_SCANOUT_ID = struct.Struct("<I")  # 4: DISABLE_SCANOUT, SUBSCRIBE
_SCANOUT_RESP = struct.Struct("<II64s")  # 72
_SUBSCRIBE_RESP = struct.Struct("<II")  # 8
_ERROR = struct.Struct("<i256s")  # 260
_U32 = struct.Struct("<I")
FRAME_REQUEST_BODY = _FRAME_REQUEST.size  # 44
FRAME_RESPONSE_BODY = _FRAME_RESPONSE.size  # 24

Packed = typing.Tuple[int, int, typing.List[Buffer]]  # noqa: UP006 - as Buffer; flags, header session id, payload parts


@dataclass(frozen=True)
class MessageSpec:
    type: MsgType
    cls: type
    sender: str  # GUEST or HOST
    payload: int | None  # the payload_size it must announce; None = variable
    pack: Callable[..., Packed]
    unpack: Callable[[Header, memoryview], Message]
    answered_by: frozenset[MsgType] = frozenset()  # what the host replies with (none: no reply)


def _frame_request_pack(m: FrameRequest) -> Packed:
    body = _FRAME_REQUEST.pack(m.resource_id, m.width, m.height, m.format, m.stride, m.pts, m.duration,
                               1 if m.force_keyframe else 0, b"")
    if m.pixels is None:
        return 0, m.session_id, [body]
    if _nbytes(m.pixels) == 0:
        raise LocalProtocolError("PIXEL_DATA flag needs at least one pixel byte")
    return FLAG_PIXEL_DATA, m.session_id, [body, m.pixels]


def _frame_request_unpack(h: Header, body: memoryview) -> FrameRequest:
    rid, w, ht, fmt, stride, pts, dur, fk, _ = _FRAME_REQUEST.unpack_from(body)
    pixels = body[FRAME_REQUEST_BODY:] if h.flags & FLAG_PIXEL_DATA else None
    return FrameRequest(w, ht, fmt, stride, pts, dur, bool(fk), rid, pixels, h.session_id)


def _frame_response_pack(m: FrameResponse) -> Packed:
    parts: list[Buffer] = [_FRAME_RESPONSE.pack(m.pts, m.dts, 1 if m.is_keyframe else 0, b"", len(m.nals))]
    for nal in m.nals:
        parts += [_U32.pack(_nbytes(nal)), nal]
    return 0, m.session_id, parts


def _frame_response_unpack(h: Header, body: memoryview) -> FrameResponse:
    pts, dts, key, _, count = _FRAME_RESPONSE.unpack_from(body)
    return FrameResponse(_parse_nal_table(h, body, count), pts, dts, bool(key), h.session_id)


def _config_request_pack(m: ConfigRequest) -> Packed:
    body = _CONFIG_REQ.pack(m.width, m.height, m.bitrate, m.framerate_num, m.framerate_den, m.profile, m.level,
                            m.realtime, b"")
    return 0, m.session_id, [body]


def _config_request_unpack(h: Header, body: memoryview) -> ConfigRequest:
    w, ht, br, fn, fd, prof, lvl, rt, _ = _CONFIG_REQ.unpack_from(body)
    return ConfigRequest(w, ht, br, fn, fd, prof, lvl, rt, h.session_id)


def _scanout_response_unpack(h: Header, body: memoryview) -> ScanoutResponse:
    scanout, ok, connector = _SCANOUT_RESP.unpack_from(body)
    return ScanoutResponse(scanout, bool(ok), _from_c_string(connector), h.session_id)


def _subscribe_response_unpack(h: Header, body: memoryview) -> SubscribeResponse:
    scanout, ok = _SUBSCRIBE_RESP.unpack_from(body)
    return SubscribeResponse(scanout, bool(ok), h.session_id)


def _error_unpack(h: Header, body: memoryview) -> ErrorMessage:
    code, text = _ERROR.unpack_from(body)
    return ErrorMessage(code, _from_c_string(text), h.session_id)


def _empty(cls: type) -> tuple[Callable[..., Packed], Callable[[Header, memoryview], Message]]:
    """A message that is only a header (PING, PONG, KEYFRAME_REQ)."""
    return (lambda m: (0, m.session_id, [])), (lambda h, body: cls(h.session_id))


def _scanout_id(cls: type, session: Callable[[object], int]) -> tuple[Callable[..., Packed], Callable]:
    """A message whose body is one u32 scanout id (DISABLE_SCANOUT, SUBSCRIBE)."""
    return ((lambda m: (0, session(m), [_SCANOUT_ID.pack(m.scanout_id)])),
            (lambda h, body: cls(_SCANOUT_ID.unpack_from(body)[0], h.session_id)))


def _spec(t: MsgType, cls: type, sender: str, payload: int | None,
          codec: tuple[Callable[..., Packed], Callable[[Header, memoryview], Message]],
          answered_by: tuple[MsgType, ...] = ()) -> MessageSpec:
    return MessageSpec(t, cls, sender, payload, codec[0], codec[1], frozenset(answered_by))


MESSAGES: dict[MsgType, MessageSpec] = {s.type: s for s in (
    _spec(MsgType.FRAME_REQUEST, FrameRequest, GUEST, None, (_frame_request_pack, _frame_request_unpack),
          answered_by=(MsgType.FRAME_RESPONSE, MsgType.ERROR)),
    _spec(MsgType.FRAME_RESPONSE, FrameResponse, HOST, None, (_frame_response_pack, _frame_response_unpack)),
    _spec(MsgType.KEYFRAME_REQ, KeyframeRequest, GUEST, 0, _empty(KeyframeRequest)),
    _spec(MsgType.CONFIG_REQ, ConfigRequest, GUEST, _CONFIG_REQ.size, (_config_request_pack, _config_request_unpack),
          answered_by=(MsgType.CONFIG_RESP,)),
    _spec(MsgType.CONFIG_RESP, ConfigResponse, HOST, None,
          ((lambda m: (0, m.session_id, [m.payload])), (lambda h, body: ConfigResponse(bytes(body), h.session_id)))),
    _spec(MsgType.PING, Ping, GUEST, 0, _empty(Ping), answered_by=(MsgType.PONG,)),
    _spec(MsgType.PONG, Pong, HOST, 0, _empty(Pong)),
    _spec(MsgType.ENABLE_SCANOUT, EnableScanout, GUEST, _ENABLE_SCANOUT.size,
          ((lambda m: (0, m.session_id, [_ENABLE_SCANOUT.pack(m.scanout_id, m.width, m.height, m.refresh_rate)])),
           (lambda h, body: EnableScanout(*_ENABLE_SCANOUT.unpack_from(body), session_id=h.session_id))),
          answered_by=(MsgType.SCANOUT_RESP,)),
    _spec(MsgType.DISABLE_SCANOUT, DisableScanout, GUEST, _SCANOUT_ID.size,
          _scanout_id(DisableScanout, lambda m: m.session_id)),  # never answered
    _spec(MsgType.SCANOUT_RESP, ScanoutResponse, HOST, _SCANOUT_RESP.size,
          ((lambda m: (0, m.session_id, [_SCANOUT_RESP.pack(m.scanout_id, 1 if m.success else 0,
                                                            _c_string(m.connector, 64))])),
           _scanout_response_unpack)),
    _spec(MsgType.SUBSCRIBE, Subscribe, GUEST, _SCANOUT_ID.size, _scanout_id(Subscribe, lambda m: m.header_session),
          answered_by=(MsgType.SUBSCRIBE_RESP,)),
    _spec(MsgType.SUBSCRIBE_RESP, SubscribeResponse, HOST, _SUBSCRIBE_RESP.size,
          ((lambda m: (0, m.header_session, [_SUBSCRIBE_RESP.pack(m.scanout_id, 1 if m.success else 0)])),
           _subscribe_response_unpack)),
    _spec(MsgType.ERROR, ErrorMessage, HOST, _ERROR.size,
          ((lambda m: (0, m.session_id, [_ERROR.pack(m.code, _c_string(m.message, 256))])),
           _error_unpack)),
)}
BY_CLASS: dict[type, MessageSpec] = {s.cls: s for s in MESSAGES.values()}

# Derived views of the table.
FIXED_PAYLOAD: dict[int, int | None] = {t: s.payload for t, s in MESSAGES.items()}
GUEST_TO_HOST = frozenset(t for t, s in MESSAGES.items() if s.sender == GUEST)
HOST_TO_GUEST = frozenset(t for t, s in MESSAGES.items() if s.sender == HOST)


def type_name(msg_type: int) -> str:
    return MsgType(msg_type).name if msg_type in MESSAGES else f"type 0x{msg_type:02x}"


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
