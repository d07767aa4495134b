"""Tests of the HXFR codec (helixdiag/protocol.py) against /work/shared/PROTOCOL.md.

The hex in the §11 tests is typed in from the document, not produced by the code under
test; every other expectation is derived from the struct formats of PROTOCOL.md §4/§5.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixdiag.protocol import (
    FIXED_PAYLOAD,
    FLAG_PIXEL_DATA,
    FRAME_REQUEST_BODY,
    FRAME_RESPONSE_BODY,
    GUEST_TO_HOST,
    HEADER,
    HEADER_SIZE,
    HOST_TO_GUEST,
    MAGIC,
    NEED_DATA,
    ConfigRequest,
    ConfigResponse,
    Decoder,
    DisableScanout,
    EnableScanout,
    ErrorCode,
    ErrorMessage,
    FrameRequest,
    FrameResponse,
    KeyframeRequest,
    LocalProtocolError,
    MsgType,
    Ping,
    PixelFormat,
    Pong,
    RemoteProtocolError,
    ScanoutResponse,
    Subscribe,
    SubscribeResponse,
    UnknownMessage,
    decode_all,
    encode,
    encode_parts,
    frame_layout,
)

pytestmark = pytest.mark.timeout(60)

FAST = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOWER = settings(FAST, max_examples=60)

MESSAGE_CLASSES = (
    FrameRequest, FrameResponse, KeyframeRequest, ConfigRequest, ConfigResponse, Ping, Pong,
    EnableScanout, DisableScanout, ScanoutResponse, Subscribe, SubscribeResponse, ErrorMessage,
    UnknownMessage,
)


# --------------------------------------------------------------------------- helpers


def hexdump(text: str) -> bytes:
    """Bytes of a hexdump as printed in PROTOCOL.md: `OFFSET  hh hh ...  |ascii|`, or bare hex."""
    out = bytearray()
    for line in text.strip().splitlines():
        line = line.split("|", 1)[0]
        for tok in line.split():
            if len(tok) == 8:  # offset column
                continue
            assert len(tok) == 2, tok
            out.append(int(tok, 16))
    return bytes(out)


def _norm(value):
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, (tuple, list)):
        return tuple(_norm(v) for v in value)
    return value


def canon(msg):
    """Every field (including compare=False pixels) with buffers as bytes and the
    Subscribe/SubscribeResponse `session_id=None` default resolved to the header value."""
    items = []
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if f.name == "session_id" and value is None:
            value = msg.header_session
        items.append((f.name, _norm(value)))
    return (type(msg).__name__, tuple(items))


def header_of(data: bytes) -> tuple[int, int, int, int, int]:
    return HEADER.unpack_from(data)


def decode_one(data: bytes, **kw):
    msgs = decode_all(data, **kw)
    assert len(msgs) == 1, msgs
    return msgs[0]


def raw_header(msg_type: int, payload_size: int, flags: int = 0, session: int = 1) -> bytes:
    return struct.pack("<IBBHI", MAGIC, msg_type, flags, session, payload_size)


def drain(dec: Decoder) -> tuple[list, RemoteProtocolError | None]:
    """Pull everything; any exception other than RemoteProtocolError propagates (test fails)."""
    out = []
    try:
        while True:
            m = dec.next_message()
            if m is NEED_DATA:
                return out, None
            assert isinstance(m, MESSAGE_CLASSES), m
            out.append(m)
    except RemoteProtocolError as exc:
        return out, exc


def run_chunks(chunks, **kw):
    """Feed chunks one by one, pulling messages in between; stops at the first error."""
    dec = Decoder(**kw)
    out = []
    for c in chunks:
        dec.feed(c)
        got, err = drain(dec)
        out.extend(got)
        if err is not None:
            return out, err, dec
    return out, None, dec


def feed_via_buffer(dec: Decoder, data: bytes, sizes: list[int]) -> tuple[list, RemoteProtocolError | None]:
    """Simulate `sock.recv_into(dec.buffer()); dec.commit(n)` with recv sizes from `sizes`."""
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        buf = dec.buffer()
        assert isinstance(buf, memoryview)
        assert len(buf) > 0
        want = sizes[i % len(sizes)] if sizes else len(data)
        i += 1
        n = min(len(buf), len(data) - pos, max(want, 1))
        buf[:n] = data[pos:pos + n]
        dec.commit(n)
        pos += n
        got, err = drain(dec)
        out.extend(got)
        if err is not None:
            return out, err
    got, err = drain(dec)
    out.extend(got)
    return out, err


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    prev = 0
    for p in [*points, len(data)]:
        pieces.append(data[prev:p])
        prev = p
    return pieces


# --------------------------------------------------------------------------- §11 worked examples

HEX_11_1 = """
00000000  48 58 46 52 01 01 01 00 2c 0c 00 00 00 00 00 00  |HXFR....,.......|
00000010  40 00 00 00 20 00 00 00 4e 56 31 32 40 00 00 00  |@... ...NV12@...|
00000020  00 ca 9a 3b 00 00 00 00 2b 50 fe 00 00 00 00 00  |...;....+P......|
00000030  01 00 00 00 00 00 00 00                          |........|
"""

HEX_11_2_A = """
00000000  48 58 46 52 02 00 01 00 30 00 00 00 00 ca 9a 3b  |HXFR....0......;|
00000010  00 00 00 00 00 ca 9a 3b 00 00 00 00 01 00 00 00  |.......;........|
00000020  01 00 00 00 14 00 00 00 00 00 00 01 67 42 c0 1f  |............gB..|
00000030  de ad 00 00 00 01 65 88 84 00 be ef              |......e.....|
"""

HEX_11_2_B = """
00000000  48 58 46 52 02 00 01 00 34 00 00 00 00 ca 9a 3b  |HXFR....4......;|
00000010  00 00 00 00 00 ca 9a 3b 00 00 00 00 01 00 00 00  |.......;........|
00000020  02 00 00 00 0a 00 00 00 00 00 00 01 67 42 c0 1f  |............gB..|
00000030  de ad 0a 00 00 00 00 00 00 01 65 88 84 00 be ef  |..........e.....|
"""

HEX_SUBSCRIBE = "48 58 46 52 30 00 01 00 04 00 00 00 01 00 00 00"
HEX_SUBSCRIBE_RESP = "48 58 46 52 31 00 01 00 08 00 00 00 01 00 00 00 01 00 00 00"
HEX_PING = "48 58 46 52 10 00 01 00 00 00 00 00"
HEX_PONG = "48 58 46 52 11 00 01 00 00 00 00 00"
HEX_ERROR_PREFIX = """
48 58 46 52 ff 00 01 00 04 01 00 00 fe ff ff ff
45 72 72 6f 72 3a 20 2d 32 00 00 00 00 00 00 00
"""
HEX_CONFIG_REQ = """
48 58 46 52 04 00 00 00 1c 00 00 00 80 07 00 00
38 04 00 00 00 12 7a 00 3c 00 00 00 01 00 00 00
42 28 01 00 00 00 00 00
"""
HEX_ENABLE_SCANOUT = """
48 58 46 52 20 00 00 00 10 00 00 00 01 00 00 00
80 07 00 00 38 04 00 00 3c 00 00 00
"""

SPS_ISH = bytes.fromhex("00000001 6742c01f dead")
IDR_ISH = bytes.fromhex("00000001 65888400 beef")


def _nv12_pixels() -> bytes:
    y = bytes((i * 7) & 0xFF for i in range(64 * 32))
    uv = bytes((i * 13 + 5) & 0xFF for i in range(64 * 16))
    return y + uv


class TestWorkedExamples:
    def test_11_1_frame_request_nv12(self):
        head = hexdump(HEX_11_1)
        assert len(head) == 56
        pixels = _nv12_pixels()
        assert len(pixels) == 3072
        wire = head + pixels
        assert len(wire) == 3128
        assert header_of(wire) == (MAGIC, 0x01, 0x01, 1, 3116)

        msg = decode_one(wire)
        assert isinstance(msg, FrameRequest)
        assert msg.resource_id == 0
        assert (msg.width, msg.height, msg.stride) == (64, 32, 64)
        assert msg.format == PixelFormat.NV12
        assert msg.pts == 1_000_000_000
        assert msg.duration == 16_666_667
        assert msg.force_keyframe is True
        assert msg.session_id == 1
        assert msg.has_pixels
        assert bytes(msg.pixels) == pixels
        # Y plane at wire offsets 56-2103, CbCr at 2104-3127.
        assert bytes(msg.pixels[:2048]) == wire[56:2104]
        assert bytes(msg.pixels[2048:]) == wire[2104:3128]

        assert encode(msg) == wire
        built = FrameRequest(
            width=64, height=32, format=PixelFormat.NV12, stride=64, pts=1_000_000_000,
            duration=16_666_667, force_keyframe=True, resource_id=0, pixels=pixels, session_id=1,
        )
        assert encode(built) == wire
        assert frame_layout(PixelFormat.NV12, 64, 32).size == len(pixels)

    @pytest.mark.parametrize(
        ("text", "nals", "payload", "total"),
        [
            (HEX_11_2_A, (SPS_ISH + IDR_ISH,), 48, 60),
            (HEX_11_2_B, (SPS_ISH, IDR_ISH), 52, 64),
        ],
        ids=["variant-A", "variant-B"],
    )
    def test_11_2_frame_response(self, text, nals, payload, total):
        wire = hexdump(text)
        assert len(wire) == total
        assert header_of(wire) == (MAGIC, 0x02, 0, 1, payload)

        msg = decode_one(wire)
        assert isinstance(msg, FrameResponse)
        assert msg.pts == 1_000_000_000
        assert msg.dts == 1_000_000_000
        assert msg.is_keyframe is True
        assert msg.session_id == 1
        assert msg.nal_count == len(nals)
        assert tuple(bytes(n) for n in msg.nals) == nals
        # Both variants carry the same 20-byte access unit once concatenated (§8).
        assert msg.data == SPS_ISH + IDR_ISH
        assert len(msg.data) == 20

        assert encode(msg) == wire
        built = FrameResponse(nals=nals, pts=1_000_000_000, dts=1_000_000_000, is_keyframe=True, session_id=1)
        assert encode(built) == wire

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (HEX_SUBSCRIBE, Subscribe(scanout_id=1, session_id=1)),
            (HEX_SUBSCRIBE_RESP, SubscribeResponse(scanout_id=1, success=True, session_id=1)),
            (HEX_PING, Ping(session_id=1)),
            (HEX_PONG, Pong(session_id=1)),
            (
                HEX_CONFIG_REQ,
                ConfigRequest(
                    width=1920, height=1080, bitrate=8_000_000, framerate_num=60, framerate_den=1,
                    profile=66, level=40, realtime=1, session_id=0,
                ),
            ),
            (
                HEX_ENABLE_SCANOUT,
                EnableScanout(scanout_id=1, width=1920, height=1080, refresh_rate=60, session_id=0),
            ),
        ],
        ids=["SUBSCRIBE", "SUBSCRIBE_RESP", "PING", "PONG", "CONFIG_REQ", "ENABLE_SCANOUT"],
    )
    def test_11_3_messages(self, text, expected):
        wire = hexdump(text)
        msg = decode_one(wire)
        assert msg == expected
        assert canon(msg) == canon(expected)
        assert encode(msg) == wire
        assert encode(expected) == wire

    def test_11_3_constructed_with_defaults(self):
        # What a probe would naturally write: Go/host defaults fill the rest.
        assert encode(Subscribe(1)) == hexdump(HEX_SUBSCRIBE)
        assert encode(SubscribeResponse(1)) == hexdump(HEX_SUBSCRIBE_RESP)
        assert encode(Ping()) == hexdump(HEX_PING)
        assert encode(Pong()) == hexdump(HEX_PONG)
        assert encode(ConfigRequest(width=1920, height=1080, bitrate=8_000_000)) == hexdump(HEX_CONFIG_REQ)
        assert encode(EnableScanout(1, 1920, 1080)) == hexdump(HEX_ENABLE_SCANOUT)

    def test_11_3_error_minus_2(self):
        prefix = hexdump(HEX_ERROR_PREFIX)
        assert len(prefix) == 32
        full = prefix + bytes(272 - 32)  # rest of message[256] is zero
        msg = ErrorMessage.for_code(ErrorCode.RESOURCE_NOT_FOUND)
        wire = encode(msg)
        assert len(wire) == 272
        assert wire[:32] == prefix
        assert wire == full
        assert header_of(wire) == (MAGIC, 0xFF, 0, 1, 260)

        decoded = decode_one(full)
        assert decoded == ErrorMessage(code=-2, message="Error: -2", session_id=1)
        assert encode(decoded) == full


# --------------------------------------------------------------------------- §5 struct sizes


class TestStructSizes:
    def test_constants(self):
        assert HEADER_SIZE == 12 == struct.calcsize("<IBBHI")
        assert FRAME_REQUEST_BODY == 44
        assert FRAME_RESPONSE_BODY == 24
        assert MAGIC == 0x52465848
        assert struct.pack("<I", MAGIC) == b"HXFR"
        assert FLAG_PIXEL_DATA == 0x01
        assert FIXED_PAYLOAD == {
            0x01: None, 0x02: None, 0x03: 0, 0x04: 28, 0x05: None, 0x10: 0, 0x11: 0,
            0x20: 16, 0x21: 4, 0x22: 72, 0x30: 4, 0x31: 8, 0xFF: 260,
        }

    @pytest.mark.parametrize(
        ("fmt", "total"),
        [
            ("<IBBHI", 12), ("<IBBHIIIIIIqqB7s", 56), ("<IBBHIqqB3sI", 36),
            ("<IBBHIIIIIIBBB5s", 40), ("<IBBHIi256s", 272), ("<IBBHIIIII", 28),
            ("<IBBHIII64s", 84), ("<IBBHII", 16), ("<IBBHIII", 20),
        ],
    )
    def test_doc_formats(self, fmt, total):
        assert struct.calcsize(fmt) == total

    @pytest.mark.parametrize(
        ("msg", "total", "msg_type"),
        [
            (FrameRequest(1, 1, PixelFormat.BGRA8888, 4), 56, 0x01),
            (FrameRequest(1, 1, PixelFormat.BGRA8888, 4, pixels=b"abcd"), 56 + 4, 0x01),
            (FrameResponse(nals=()), 36, 0x02),
            (FrameResponse(nals=(b"12345",)), 36 + 4 + 5, 0x02),
            (FrameResponse(nals=(b"1", b"", b"xyz")), 36 + 5 + 4 + 7, 0x02),
            (KeyframeRequest(), 12, 0x03),
            (ConfigRequest(), 40, 0x04),
            (ConfigResponse(b"abc"), 15, 0x05),
            (Ping(), 12, 0x10),
            (Pong(), 12, 0x11),
            (EnableScanout(1), 28, 0x20),
            (DisableScanout(1), 16, 0x21),
            (ScanoutResponse(1, True, "Virtual-2"), 84, 0x22),
            (Subscribe(1), 16, 0x30),
            (SubscribeResponse(1), 20, 0x31),
            (ErrorMessage(-99, "x"), 272, 0xFF),
        ],
        ids=lambda v: type(v).__name__ if dataclasses.is_dataclass(v) else None,
    )
    def test_wire_sizes(self, msg, total, msg_type):
        wire = encode(msg)
        assert len(wire) == total
        magic, t, flags, _sid, payload = header_of(wire)
        assert magic == MAGIC
        assert t == msg_type
        assert payload == total - HEADER_SIZE
        expected_flags = FLAG_PIXEL_DATA if getattr(msg, "pixels", None) is not None else 0
        assert flags == expected_flags
        assert b"".join(bytes(p) for p in encode_parts(msg)) == wire

    def test_scanout_response_layout(self):
        wire = encode(ScanoutResponse(scanout_id=3, success=True, connector="Virtual-4", session_id=9))
        assert header_of(wire) == (MAGIC, 0x22, 0, 9, 72)
        assert wire[12:20] == struct.pack("<II", 3, 1)
        assert wire[20:84] == b"Virtual-4".ljust(64, b"\0")

    def test_disable_scanout_layout(self):
        wire = encode(DisableScanout(scanout_id=7))
        assert wire == raw_header(0x21, 4, session=0) + struct.pack("<I", 7)

    def test_subscribe_header_session_defaults_to_scanout_id(self):
        assert header_of(encode(Subscribe(0x12345)))[3] == 0x2345
        assert header_of(encode(Subscribe(5, session_id=0)))[3] == 0
        assert header_of(encode(SubscribeResponse(6)))[3] == 6


# --------------------------------------------------------------------------- strategies

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
c_text = st.characters(codec="utf-8", exclude_characters="\x00")


def buffers(min_size: int, max_size: int):
    """bytes, bytearray or memoryview with the same content (encode takes all three)."""
    return st.binary(min_size=min_size, max_size=max_size).flatmap(
        lambda b: st.sampled_from([b, bytearray(b), memoryview(b)])
    )


def messages(max_pixels: int = 4096):
    frame_request = st.builds(
        FrameRequest,
        width=u32, height=u32, format=st.one_of(st.sampled_from(list(PixelFormat)), u32),
        stride=u32, pts=i64, duration=i64, force_keyframe=st.booleans(), resource_id=u32,
        pixels=st.one_of(st.none(), buffers(1, max_pixels)), session_id=u16,
    )
    frame_response = st.builds(
        FrameResponse,
        nals=st.lists(buffers(0, 200), max_size=5).map(tuple),
        pts=i64, dts=i64, is_keyframe=st.booleans(), session_id=u16,
    )
    return st.one_of(
        frame_request,
        frame_response,
        st.builds(KeyframeRequest, session_id=u16),
        st.builds(
            ConfigRequest, width=u32, height=u32, bitrate=u32, framerate_num=u32,
            framerate_den=u32, profile=u8, level=u8, realtime=u8, session_id=u16,
        ),
        st.builds(ConfigResponse, payload=st.binary(max_size=64), session_id=u16),
        st.builds(Ping, session_id=u16),
        st.builds(Pong, session_id=u16),
        st.builds(EnableScanout, scanout_id=u32, width=u32, height=u32, refresh_rate=u32, session_id=u16),
        st.builds(DisableScanout, scanout_id=u32, session_id=u16),
        st.builds(
            ScanoutResponse, scanout_id=u32, success=st.booleans(),
            connector=st.text(c_text, max_size=15), session_id=u16,  # ≤ 60 UTF-8 bytes
        ),
        st.builds(Subscribe, scanout_id=u32, session_id=st.one_of(st.none(), u16)),
        st.builds(SubscribeResponse, scanout_id=u32, success=st.booleans(), session_id=st.one_of(st.none(), u16)),
        st.builds(ErrorMessage, code=i32, message=st.text(c_text, max_size=63), session_id=u16),  # ≤ 252 B
    )


def expected_payload_size(msg) -> int:
    if isinstance(msg, FrameRequest):
        return 44 + (0 if msg.pixels is None else len(bytes(msg.pixels)))
    if isinstance(msg, FrameResponse):
        return 24 + sum(4 + len(bytes(n)) for n in msg.nals)
    if isinstance(msg, ConfigResponse):
        return len(msg.payload)
    return FIXED_PAYLOAD[
        {
            KeyframeRequest: 0x03, ConfigRequest: 0x04, Ping: 0x10, Pong: 0x11, EnableScanout: 0x20,
            DisableScanout: 0x21, ScanoutResponse: 0x22, Subscribe: 0x30, SubscribeResponse: 0x31,
            ErrorMessage: 0xFF,
        }[type(msg)]
    ]


# --------------------------------------------------------------------------- round trips


class TestRoundTrip:
    @pytest.mark.parametrize(
        "msg",
        [
            FrameRequest(1920, 1080, PixelFormat.BGRA8888, 7680),
            FrameRequest(64, 32, PixelFormat.NV12, 64, pts=5, duration=6, force_keyframe=True,
                         resource_id=42, pixels=bytes(range(256)) * 12, session_id=1),
            FrameRequest(0xFFFFFFFF, 0, 0xFFFFFFFF, 0, pts=-(2**63), duration=2**63 - 1, pixels=b"\x00"),
            FrameResponse(nals=()),
            FrameResponse(nals=(b"",), pts=-1, dts=-(2**63), is_keyframe=True, session_id=0xFFFF),
            FrameResponse(nals=(b"a", b"bc", b"", b"def", bytes(300))),
            KeyframeRequest(7),
            ConfigRequest(1, 2, 3, 4, 5, 255, 0, 0, 0xFFFF),
            ConfigResponse(b""),
            ConfigResponse(b"\x00\x01opaque", session_id=3),
            Ping(0), Pong(0xFFFF),
            EnableScanout(15, 5120, 2880, 120, 3),
            DisableScanout(0xFFFFFFFF),
            ScanoutResponse(0, False, ""),
            ScanoutResponse(1, True, "x" * 63),
            ScanoutResponse(2, True, "é" * 31),  # 62 bytes
            Subscribe(4, session_id=4),
            Subscribe(0xFFFFFFFF, session_id=None),
            SubscribeResponse(4, False, 0),
            ErrorMessage(-(2**31), "y" * 255),
            ErrorMessage(2**31 - 1, ""),
            ErrorMessage.for_code(ErrorCode.INTERNAL),
        ],
        ids=lambda m: type(m).__name__,
    )
    def test_examples(self, msg):
        wire = encode(msg)
        assert len(wire) == HEADER_SIZE + expected_payload_size(msg)
        back = decode_one(wire)
        assert type(back) is type(msg)
        assert canon(back) == canon(msg)
        assert encode(back) == wire

    @FAST
    @given(messages())
    def test_any_message(self, msg):
        wire = encode(msg)
        magic, _t, flags, session, payload = header_of(wire)
        assert magic == MAGIC
        assert payload == len(wire) - HEADER_SIZE == expected_payload_size(msg)
        if isinstance(msg, FrameRequest):
            assert flags == (FLAG_PIXEL_DATA if msg.pixels is not None else 0)
        else:
            assert flags == 0
        sid = msg.header_session if isinstance(msg, (Subscribe, SubscribeResponse)) else msg.session_id
        assert session == sid

        parts = encode_parts(msg)
        assert b"".join(bytes(p) for p in parts) == wire

        back = decode_one(wire)
        assert type(back) is type(msg)
        assert canon(back) == canon(msg)
        if isinstance(msg, FrameRequest):
            if msg.pixels is None:
                assert back.pixels is None
            else:
                assert bytes(back.pixels) == bytes(msg.pixels)
        if isinstance(msg, FrameResponse):
            assert [bytes(n) for n in back.nals] == [bytes(n) for n in msg.nals]
            assert back.data == b"".join(bytes(n) for n in msg.nals)
        assert encode(back) == wire

    def test_pixels_do_not_take_part_in_equality(self):
        # Documented design: FrameRequest.pixels has compare=False, so tests must compare bytes.
        a = FrameRequest(1, 1, 0, 4, pixels=b"aaaa")
        b = FrameRequest(1, 1, 0, 4, pixels=b"bbbb")
        assert a == b
        assert canon(a) != canon(b)


# --------------------------------------------------------------------------- streaming


def _stream(msgs) -> bytes:
    return b"".join(encode(m) for m in msgs)


class TestStreaming:
    @FAST
    @given(st.lists(messages(), min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=12))
    def test_whole_and_random_splits(self, msgs, cuts):
        wire = _stream(msgs)
        expected = [canon(m) for m in msgs]

        out, err, dec = run_chunks([wire])
        assert err is None
        assert [canon(m) for m in out] == expected
        assert not dec.in_message
        assert dec.next_message() is NEED_DATA

        out, err, dec = run_chunks(split_at(wire, cuts))
        assert err is None
        assert [canon(m) for m in out] == expected
        assert not dec.in_message

        # bytearray / memoryview input works the same
        out, err, _ = run_chunks([memoryview(bytearray(wire))])
        assert err is None
        assert [canon(m) for m in out] == expected

    @SLOWER
    @given(st.lists(messages(max_pixels=300), min_size=1, max_size=5))
    def test_one_byte_at_a_time(self, msgs):
        wire = _stream(msgs)
        dec = Decoder()
        out = []
        for i in range(len(wire)):
            dec.feed(wire[i:i + 1])
            got, err = drain(dec)
            assert err is None
            out.extend(got)
            # A message must come out exactly when its last byte arrives, not later.
            assert dec.in_message == (i + 1 not in _boundaries(msgs))
        assert [canon(m) for m in out] == [canon(m) for m in msgs]

    def test_one_byte_at_a_time_large_pixels(self):
        msgs = [
            FrameRequest(64, 32, PixelFormat.NV12, 64, pixels=_nv12_pixels()),
            Ping(3),
            FrameRequest(32, 32, PixelFormat.BGRA8888, 128, pixels=bytes(range(256)) * 16),
        ]
        wire = _stream(msgs)
        out, err, _ = run_chunks([wire[i:i + 1] for i in range(len(wire))])
        assert err is None
        assert [canon(m) for m in out] == [canon(m) for m in msgs]

    @FAST
    @given(
        st.lists(messages(), min_size=1, max_size=6),
        st.lists(st.integers(1, 5000), min_size=1, max_size=10),
    )
    def test_buffer_commit(self, msgs, sizes):
        wire = _stream(msgs)
        dec = Decoder()
        out, err = feed_via_buffer(dec, wire, sizes)
        assert err is None
        assert [canon(m) for m in out] == [canon(m) for m in msgs]
        assert not dec.in_message

    @SLOWER
    @given(
        st.lists(messages(max_pixels=600), min_size=1, max_size=6),
        st.lists(st.booleans(), min_size=1, max_size=20),
        st.lists(st.integers(1, 700), min_size=1, max_size=10),
    )
    def test_mixed_feed_and_buffer(self, msgs, use_feed, sizes):
        wire = _stream(msgs)
        dec = Decoder()
        out = []
        pos = 0
        i = 0
        while pos < len(wire):
            n = sizes[i % len(sizes)]
            if use_feed[i % len(use_feed)]:
                chunk = wire[pos:pos + n]
                dec.feed(chunk)
                pos += len(chunk)
            else:
                buf = dec.buffer()
                n = min(n, len(buf), len(wire) - pos)
                buf[:n] = wire[pos:pos + n]
                dec.commit(n)
                pos += n
            i += 1
            got, err = drain(dec)
            assert err is None
            out.extend(got)
        assert [canon(m) for m in out] == [canon(m) for m in msgs]

    def test_commit_more_than_offered(self):
        dec = Decoder()
        with pytest.raises(ValueError):
            dec.commit(len(dec.buffer()) + 1)

    def test_messages_iterator(self):
        dec = Decoder()
        dec.feed(encode(Ping(1)) + encode(Pong(2)) + encode(Ping(3))[:5])
        assert list(dec.messages()) == [Ping(1), Pong(2)]
        assert list(dec.messages()) == []
        assert dec.in_message
        assert dec.bytes_needed == 7
        dec.feed(encode(Ping(3))[5:])
        assert list(dec.messages()) == [Ping(3)]
        assert not dec.in_message
        assert dec.bytes_needed == HEADER_SIZE

    def test_current_header_and_bytes_needed_mid_payload(self):
        wire = encode(ErrorMessage(-1, "x", 1))
        dec = Decoder()
        dec.feed(wire[:20])
        assert dec.current_header is not None
        assert dec.current_header.msg_type == 0xFF
        assert dec.current_header.payload_size == 260
        assert dec.bytes_needed == 272 - 20
        assert len(dec.buffer()) == 272 - 20


def _boundaries(msgs) -> set[int]:
    out = set()
    pos = 0
    for m in msgs:
        pos += len(encode(m))
        out.add(pos)
    return out


# --------------------------------------------------------------------------- robustness


def _assert_same_outcome(a, b):
    out_a, err_a = a[0], a[1]
    out_b, err_b = b[0], b[1]
    assert [canon(m) for m in out_a] == [canon(m) for m in out_b]
    assert (err_a is None) == (err_b is None)
    if err_a is not None:
        assert (err_a.kind, err_a.offset) == (err_b.kind, err_b.offset)


DECODER_OPTIONS = [
    {},
    {"skip_unknown": True},
    {"accept": GUEST_TO_HOST},
    {"accept": HOST_TO_GUEST, "skip_unknown": True, "max_payload": 256},
]


class TestArbitraryBytes:
    @FAST
    @given(st.binary(max_size=600), st.sampled_from(DECODER_OPTIONS))
    def test_random_bytes(self, data, opts):
        whole = run_chunks([data], **opts)
        bytewise = run_chunks([data[i:i + 1] for i in range(len(data))], **opts)
        _assert_same_outcome(whole, bytewise)
        if whole[1] is not None:
            assert 0 <= whole[1].offset < len(data)
        # decode_all agrees with the incremental decoder and only raises RemoteProtocolError
        dec = whole[2]
        if whole[1] is not None:
            with pytest.raises(RemoteProtocolError) as info:
                decode_all(data, **opts)
            assert (info.value.kind, info.value.offset) == (whole[1].kind, whole[1].offset)
        elif dec.in_message:
            with pytest.raises(RemoteProtocolError, match="short") as info:
                decode_all(data, **opts)
            assert info.value.kind == "truncated"
        else:
            assert [canon(m) for m in decode_all(data, **opts)] == [canon(m) for m in whole[0]]

    @FAST
    @given(
        st.one_of(st.sampled_from(sorted(FIXED_PAYLOAD)), u8),
        u8,
        u16,
        st.one_of(
            st.sampled_from([0, 4, 8, 16, 23, 24, 28, 43, 44, 45, 72, 260, 300]),
            st.integers(0, 400),
            st.integers(0x7FFFFFF0, 0xFFFFFFFF),
        ),
        st.binary(max_size=400),
        st.lists(messages(max_pixels=64), max_size=2),
        st.sampled_from(DECODER_OPTIONS),
        st.lists(st.integers(1, 64), min_size=1, max_size=8),
    )
    def test_valid_header_then_garbage(self, msg_type, flags, session, payload_size, garbage, before, opts, sizes):
        """Messages, then a header with the right magic and arbitrary fields, then garbage:
        whole / byte-wise / buffer()+commit() agree and only RemoteProtocolError escapes."""
        prefix = _stream(before)
        data = prefix + raw_header(msg_type, payload_size, flags, session) + garbage
        whole = run_chunks([data], **opts)
        bytewise = run_chunks([data[i:i + 1] for i in range(len(data))], **opts)
        via_buffer = feed_via_buffer(Decoder(**opts), data, sizes)
        _assert_same_outcome(whole, bytewise)
        _assert_same_outcome(whole, via_buffer)
        out, err = whole[0], whole[1]
        # the valid prefix always comes out first and intact (up to a type `accept` refuses)
        accept = opts.get("accept")
        ok_before = list(itertools.takewhile(lambda m: accept is None or _type_of(m) in accept, before))
        assert [canon(m) for m in out[: len(ok_before)]] == [canon(m) for m in ok_before]
        if len(ok_before) < len(before):
            assert (err.kind, err.offset) == ("unexpected-type", len(_stream(ok_before)))
        elif err is not None:
            assert err.offset >= len(prefix)
            assert err.kind in {
                "bad-magic", "unknown-type", "unexpected-type", "bad-size", "too-large", "bad-nal-table",
            }

    @FAST
    @given(messages(max_pixels=200), st.integers(0, 10**6), u8)
    def test_single_byte_corruption(self, msg, where, value):
        wire = bytearray(encode(msg))
        wire[where % len(wire)] = value
        data = bytes(wire) + encode(Ping(9))
        _assert_same_outcome(run_chunks([data]), run_chunks([data[i:i + 1] for i in range(len(data))]))


# --------------------------------------------------------------------------- limits


def _peak_while_rejecting(header: bytes, **kw) -> tuple[int, RemoteProtocolError]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        dec = Decoder(**kw)
        dec.feed(header[:-1])
        assert dec.next_message() is NEED_DATA  # nothing decided before the 12th byte
        dec.feed(header[-1:])
        with pytest.raises(RemoteProtocolError) as info:
            dec.next_message()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, info.value


class TestLimits:
    def test_frame_request_4gib_rejected_from_header(self):
        header = raw_header(0x01, 0xFFFFFFFF, flags=FLAG_PIXEL_DATA)
        assert len(header) == 12
        peak, err = _peak_while_rejecting(header)
        assert err.kind == "too-large"
        assert err.offset == 0
        assert err.header is not None and err.header.payload_size == 0xFFFFFFFF
        assert peak < 1024 * 1024

    def test_frame_response_2gib_rejected_from_header(self):
        header = raw_header(0x02, 0x80000000)
        peak, err = _peak_while_rejecting(header)
        assert err.kind == "too-large"
        assert peak < 1024 * 1024

    def test_config_resp_and_unknown_huge(self):
        peak, err = _peak_while_rejecting(raw_header(0x05, 0xFFFFFFFF))
        assert err.kind == "too-large"
        assert peak < 1024 * 1024
        peak, err = _peak_while_rejecting(raw_header(0x77, 0xFFFFFFFF), skip_unknown=True)
        assert err.kind == "too-large"
        assert peak < 1024 * 1024

    def test_huge_via_buffer_commit(self):
        dec = Decoder()
        header = raw_header(0x01, 0xFFFFFFFF, flags=FLAG_PIXEL_DATA)
        buf = dec.buffer()
        assert len(buf) == HEADER_SIZE
        buf[:12] = header
        dec.commit(12)
        with pytest.raises(RemoteProtocolError) as info:
            dec.next_message()
        assert info.value.kind == "too-large"

    def test_default_limit_is_64mib_of_pixels(self):
        ok = raw_header(0x01, 44 + 64 * 1024 * 1024, flags=FLAG_PIXEL_DATA)
        dec = Decoder()
        dec.feed(ok)
        assert dec.next_message() is NEED_DATA
        assert dec.bytes_needed == 44 + 64 * 1024 * 1024
        dec = Decoder()
        dec.feed(raw_header(0x01, 45 + 64 * 1024 * 1024, flags=FLAG_PIXEL_DATA))
        with pytest.raises(RemoteProtocolError, match="limit") as info:
            dec.next_message()
        assert info.value.kind == "too-large"

    def test_frame_request_pixels_boundary(self):
        ok = encode(FrameRequest(10, 25, PixelFormat.BGRA8888, 40, pixels=bytes(1000)))
        assert header_of(ok)[4] == 1044  # payload_size is above the limit, pixels are not
        msg = decode_one(ok, max_payload=1000)
        assert len(bytes(msg.pixels)) == 1000
        bad = encode(FrameRequest(10, 25, PixelFormat.BGRA8888, 40, pixels=bytes(1001)))
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(bad, max_payload=1000)
        assert info.value.kind == "too-large"
        # rejected from the header alone
        dec = Decoder(max_payload=1000)
        dec.feed(bad[:12])
        with pytest.raises(RemoteProtocolError):
            dec.next_message()

    def test_frame_response_boundary(self):
        ok = FrameResponse(nals=(bytes(1000 - 24 - 4),))
        assert header_of(encode(ok))[4] == 1000
        assert canon(decode_one(encode(ok), max_payload=1000)) == canon(ok)
        bad = encode(FrameResponse(nals=(bytes(1000 - 24 - 4 + 1),)))
        dec = Decoder(max_payload=1000)
        dec.feed(bad[:12])
        with pytest.raises(RemoteProtocolError) as info:
            dec.next_message()
        assert info.value.kind == "too-large"

    def test_config_resp_boundary(self):
        assert decode_one(encode(ConfigResponse(bytes(1000))), max_payload=1000) == ConfigResponse(bytes(1000))
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(encode(ConfigResponse(bytes(1001))), max_payload=1000)
        assert info.value.kind == "too-large"

    def test_unknown_skip_boundary(self):
        ok = raw_header(0x40, 1000) + bytes(1000) + encode(Ping())
        assert decode_all(ok, max_payload=1000, skip_unknown=True) == [UnknownMessage(0x40, 0, 1, 1000), Ping()]
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(raw_header(0x40, 1001) + bytes(1001), max_payload=1000, skip_unknown=True)
        assert info.value.kind == "too-large"

    def test_large_unknown_skipped_without_buffering(self):
        size = 50 * 1024 * 1024
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            dec = Decoder(skip_unknown=True)
            dec.feed(raw_header(0x40, size))
            chunk = bytes(65536)
            remaining = size
            while remaining:
                n = min(len(chunk), remaining)
                dec.feed(chunk[:n] if n < len(chunk) else chunk)
                remaining -= n
            dec.feed(encode(Ping(5)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert list(dec.messages()) == [UnknownMessage(0x40, 0, 1, size), Ping(5)]
        assert peak - base < 4 * 1024 * 1024


# --------------------------------------------------------------------------- error kinds


def _error_after(data: bytes, **kw) -> tuple[list, RemoteProtocolError, Decoder]:
    dec = Decoder(**kw)
    dec.feed(data)
    out = []
    with pytest.raises(RemoteProtocolError) as info:
        while True:
            m = dec.next_message()
            assert m is not NEED_DATA, "expected an error"
            out.append(m)
    return out, info.value, dec


PREFIX_MSGS = [Ping(1), FrameRequest(2, 2, PixelFormat.NV12, 4, pixels=bytes(6)), Pong(2)]


class TestErrors:
    def _check(self, bad: bytes, kind: str, *, prefix=PREFIX_MSGS, **kw):
        """`prefix` messages come out first, then `kind` at the first byte of `bad`, again and again;
        the same via byte-wise feeding."""
        if kw.get("accept") is not None:
            prefix = [m for m in prefix if _type_of(m) in kw["accept"]]
        pre = _stream(prefix)
        data = pre + bad + encode(Ping(7))
        out, err, dec = _error_after(data, **kw)
        assert [canon(m) for m in out] == [canon(m) for m in prefix]
        assert err.kind == kind
        assert err.offset == len(pre)
        assert dec.broken
        # the error repeats on every later call, also after more bytes
        for _ in range(2):
            with pytest.raises(RemoteProtocolError) as again:
                dec.next_message()
            assert again.value.kind == kind
        dec.feed(encode(Ping(8)))
        with pytest.raises(RemoteProtocolError):
            list(dec.messages())
        with pytest.raises(RemoteProtocolError):
            decode_all(data, **kw)
        out2, err2, _ = run_chunks([data[i:i + 1] for i in range(len(data))], **kw)
        assert [canon(m) for m in out2] == [canon(m) for m in prefix]
        assert (err2.kind, err2.offset) == (kind, len(pre))
        return err

    @pytest.mark.parametrize("magic", [b"HXFQ", b"RFXH", b"\0\0\0\0", b"hxfr"])
    def test_bad_magic(self, magic):
        bad = magic + encode(Ping())[4:]
        err = self._check(bad, "bad-magic")
        assert err.header is not None and err.header.magic != MAGIC

    def test_bad_magic_first_message(self):
        _, err, _ = _error_after(b"GET / HTTP/1.1\r\n\r\n")
        assert (err.kind, err.offset) == ("bad-magic", 0)

    @pytest.mark.parametrize("msg_type", [0x00, 0x06, 0x12, 0x23, 0x32, 0x40, 0xFE])
    def test_unknown_type(self, msg_type):
        err = self._check(raw_header(msg_type, 3) + b"abc", "unknown-type")
        assert err.header.msg_type == msg_type

    @pytest.mark.parametrize("payload", [b"", b"x", bytes(70000)])
    def test_skip_unknown(self, payload):
        unknown = raw_header(0x42, len(payload), flags=0x80, session=9) + payload
        after = encode(FrameRequest(2, 1, PixelFormat.BGRA8888, 8, pixels=bytes(range(8))))
        data = encode(Ping(1)) + unknown + after
        expected = [
            canon(Ping(1)),
            canon(UnknownMessage(msg_type=0x42, flags=0x80, session_id=9, payload_size=len(payload))),
            canon(FrameRequest(2, 1, PixelFormat.BGRA8888, 8, pixels=bytes(range(8)))),
        ]
        assert [canon(m) for m in decode_all(data, skip_unknown=True)] == expected
        out, err, _ = run_chunks([data[i:i + 1] for i in range(len(data))], skip_unknown=True)
        assert err is None
        assert [canon(m) for m in out] == expected
        for sizes in ([1], [7, 3], [5000], [65536]):
            dec = Decoder(skip_unknown=True)
            out, err = feed_via_buffer(dec, data, sizes)
            assert err is None
            assert [canon(m) for m in out] == expected
            assert not dec.in_message

    def test_skip_unknown_then_error_offset(self):
        # Regression: the offset of an error after a skipped payload pointed into that payload.
        unknown = raw_header(0x42, 5) + b"12345"
        data = unknown + b"BAD!" + bytes(8)
        out, err, _ = _error_after(data, skip_unknown=True)
        assert out == [UnknownMessage(0x42, 0, 1, 5)]
        assert (err.kind, err.offset) == ("bad-magic", len(unknown))
        dec = Decoder(skip_unknown=True)
        out, err = feed_via_buffer(dec, data, [3])
        assert (err.kind, err.offset) == ("bad-magic", len(unknown))

    def test_unexpected_type(self):
        self._check(encode(Pong(1)), "unexpected-type", accept=GUEST_TO_HOST)
        self._check(encode(FrameResponse(nals=(b"x",))), "unexpected-type", accept=GUEST_TO_HOST)
        self._check(encode(FrameRequest(1, 1, 0, 4)), "unexpected-type", accept=HOST_TO_GUEST)
        self._check(encode(Subscribe(1)), "unexpected-type", accept=HOST_TO_GUEST)

    def test_accept_sets(self):
        assert {
            MsgType.FRAME_REQUEST, MsgType.KEYFRAME_REQ, MsgType.CONFIG_REQ, MsgType.PING,
            MsgType.ENABLE_SCANOUT, MsgType.DISABLE_SCANOUT, MsgType.SUBSCRIBE,
        } == GUEST_TO_HOST
        assert {
            MsgType.FRAME_RESPONSE, MsgType.CONFIG_RESP, MsgType.PONG, MsgType.SCANOUT_RESP,
            MsgType.SUBSCRIBE_RESP, MsgType.ERROR,
        } == HOST_TO_GUEST
        # every guest→host message decodes with accept=GUEST_TO_HOST, and vice versa
        guest = [FrameRequest(1, 1, 0, 4), KeyframeRequest(), ConfigRequest(), Ping(), EnableScanout(1),
                 DisableScanout(1), Subscribe(1, session_id=1)]
        host = [FrameResponse(nals=()), ConfigResponse(b"z"), Pong(), ScanoutResponse(1, True),
                SubscribeResponse(1, session_id=1), ErrorMessage(-1)]
        assert decode_all(_stream(guest), accept=GUEST_TO_HOST) == guest
        assert decode_all(_stream(host), accept=HOST_TO_GUEST) == host
        # and each side refuses what only the other side sends
        for msg in guest:
            with pytest.raises(RemoteProtocolError) as err:
                decode_all(_stream([msg]), accept=HOST_TO_GUEST)
            assert err.value.kind == "unexpected-type"
        for msg in host:
            with pytest.raises(RemoteProtocolError) as err:
                decode_all(_stream([msg]), accept=GUEST_TO_HOST)
            assert err.value.kind == "unexpected-type"

    @pytest.mark.parametrize(
        ("msg_type", "good"),
        [(t, s) for t, s in sorted(FIXED_PAYLOAD.items()) if s is not None],
        ids=lambda v: MsgType(v).name if v in FIXED_PAYLOAD else str(v),
    )
    def test_bad_size_fixed_types(self, msg_type, good):
        wrong = sorted({good + 1, good + 4, max(good - 1, 0), 0, 1000, 0xFFFFFFFF} - {good})
        for size in wrong:
            bad = raw_header(msg_type, size)  # rejected from the header: no body needed
            err = self._check(bad, "bad-size")
            assert err.header.payload_size == size

    def test_bad_size_frame_request(self):
        # PIXEL_DATA with no pixel bytes
        self._check(raw_header(0x01, 44, flags=FLAG_PIXEL_DATA) + bytes(44), "bad-size")
        self._check(raw_header(0x01, 43, flags=FLAG_PIXEL_DATA), "bad-size")
        self._check(raw_header(0x01, 0, flags=FLAG_PIXEL_DATA), "bad-size")
        # no PIXEL_DATA but trailing bytes, or a short body
        self._check(raw_header(0x01, 45) + bytes(45), "bad-size")
        self._check(raw_header(0x01, 43), "bad-size")
        self._check(raw_header(0x01, 0xFFFFFFFF), "bad-size")

    def test_bad_size_frame_response(self):
        for size in (0, 1, 23):
            self._check(raw_header(0x02, size), "bad-size")

    @staticmethod
    def _response(count: int, tail: bytes) -> bytes:
        body = struct.pack("<qqB3sI", 1, 2, 1, b"", count) + tail
        return raw_header(0x02, len(body)) + body

    @pytest.mark.parametrize(
        ("count", "tail"),
        [
            pytest.param(1, b"", id="count-1-no-room"),
            pytest.param(3, struct.pack("<I", 0) * 2, id="count-too-large"),
            pytest.param(0xFFFFFFFF, b"", id="count-huge"),
            pytest.param(0xFFFFFFFF, bytes(16), id="count-huge-with-bytes"),
            pytest.param(1, struct.pack("<I", 100) + bytes(10), id="entry-overrun"),
            pytest.param(2, struct.pack("<I", 3) + b"abc" + struct.pack("<I", 5) + b"de", id="second-entry-overrun"),
            pytest.param(2, struct.pack("<I", 1) + b"a" + b"xyz", id="entry-length-cut"),
            pytest.param(1, struct.pack("<I", 2) + b"ab" + b"!!!", id="leftover"),
            pytest.param(0, b"\x00", id="leftover-count-0"),
            pytest.param(2, struct.pack("<I", 0) * 3, id="leftover-empty-entries"),
        ],
    )
    def test_bad_nal_table(self, count, tail):
        err = self._check(self._response(count, tail), "bad-nal-table")
        assert err.header.msg_type == 0x02

    def test_good_nal_table_edges(self):
        # empty entries and count 0 are legal
        msg = decode_one(self._response(2, struct.pack("<I", 0) * 2))
        assert [bytes(n) for n in msg.nals] == [b"", b""]
        assert decode_one(self._response(0, b"")).nals == ()

    def test_reserved_and_flags_are_not_checked(self):
        # §4.2: FRAME_RESPONSE reserved bytes are uninitialised on the host: do not check them.
        body = struct.pack("<qqB3sI", 1, 2, 1, b"\xaa\xbb\xcc", 0)
        msg = decode_one(raw_header(0x02, len(body)) + body)
        assert (msg.pts, msg.dts, msg.is_keyframe, msg.nals) == (1, 2, True, ())
        # FRAME_REQUEST reserved bytes are ignored too
        wire = bytearray(encode(FrameRequest(1, 1, 0, 4)))
        wire[49:56] = b"\xff" * 7
        assert decode_one(bytes(wire)) == FrameRequest(1, 1, 0, 4)


def _type_of(msg) -> int:
    return header_of(encode(msg))[1]


# --------------------------------------------------------------------------- local errors


class _FakeLen:
    """Stands in for a buffer too big to allocate in a test; only its length is used."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class TestLocalErrors:
    @pytest.mark.parametrize("empty", [b"", bytearray(), memoryview(b"")])
    def test_empty_pixels(self, empty):
        with pytest.raises(LocalProtocolError):
            encode(FrameRequest(1, 1, PixelFormat.NV12, 4, pixels=empty))
        with pytest.raises(LocalProtocolError):
            encode_parts(FrameRequest(1, 1, PixelFormat.NV12, 4, pixels=empty))

    @pytest.mark.parametrize("connector", ["x" * 64, "x" * 100, "é" * 32, "€" * 22])
    def test_connector_too_long(self, connector):
        assert len(connector.encode()) >= 64
        with pytest.raises(LocalProtocolError):
            encode(ScanoutResponse(1, True, connector))

    def test_connector_63_bytes_ok(self):
        assert len(encode(ScanoutResponse(1, True, "x" * 63))) == 84
        assert len(encode(ScanoutResponse(1, True, "é" * 31 + "x"))) == 84

    def test_error_message_too_long(self):
        assert len(encode(ErrorMessage(-1, "m" * 255))) == 272
        with pytest.raises(LocalProtocolError):
            encode(ErrorMessage(-1, "m" * 256))

    @pytest.mark.parametrize(
        "msg",
        [
            FrameRequest(2**32, 1, 0, 4),
            FrameRequest(-1, 1, 0, 4),
            FrameRequest(1, 1, 2**32, 4),
            FrameRequest(1, 1, 0, 4, resource_id=-1),
            FrameRequest(1, 1, 0, 4, pts=2**63),
            FrameRequest(1, 1, 0, 4, session_id=0x10000),
            FrameRequest(1, 1, 0, 4, session_id=-1),
            FrameResponse(nals=(), pts=-(2**63) - 1),
            FrameResponse(nals=(), session_id=2**16),
            ConfigRequest(bitrate=2**32),
            ConfigRequest(profile=256),
            KeyframeRequest(session_id=70000),
            Ping(session_id=-1),
            Pong(session_id=2**16),
            EnableScanout(2**32),
            DisableScanout(-1),
            ScanoutResponse(2**32, True),
            Subscribe(-1),
            Subscribe(1, session_id=2**16),
            SubscribeResponse(2**40),
            ErrorMessage(2**31),
            ErrorMessage(-(2**31) - 1),
            ConfigResponse(b"", session_id=-5),
        ],
        ids=lambda m: type(m).__name__,
    )
    def test_out_of_range(self, msg):
        with pytest.raises(LocalProtocolError):
            encode(msg)
        with pytest.raises(LocalProtocolError):
            encode_parts(msg)

    def test_unknown_message(self):
        with pytest.raises(LocalProtocolError):
            encode(UnknownMessage(0x42, 0, 1, 0))

    def test_not_a_message(self):
        with pytest.raises(LocalProtocolError):
            encode("PING")  # type: ignore[arg-type]

    def test_payload_over_u32(self):
        with pytest.raises(LocalProtocolError):
            encode_parts(FrameRequest(1, 1, 0, 4, pixels=_FakeLen(2**32 - 44)))  # type: ignore[arg-type]
        # 2**32 - 45 pixel bytes still fits the u32 payload_size
        parts = encode_parts(FrameRequest(1, 1, 0, 4, pixels=_FakeLen(2**32 - 45)))  # type: ignore[arg-type]
        assert header_of(parts[0])[4] == 0xFFFFFFFF
        with pytest.raises(LocalProtocolError):
            encode_parts(FrameResponse(nals=(_FakeLen(2**31), _FakeLen(2**31))))  # type: ignore[arg-type]

    def test_local_and_remote_are_distinct(self):
        assert not issubclass(LocalProtocolError, RemoteProtocolError)
        assert not issubclass(RemoteProtocolError, LocalProtocolError)


# --------------------------------------------------------------------------- zero copy


class TestZeroCopy:
    def test_decoded_pixels_view_survives_more_input(self):
        pix1 = bytes(range(256)) * 8
        pix2 = bytes(255 - (i & 0xFF) for i in range(2048))
        dec = Decoder()
        dec.feed(encode(FrameRequest(32, 16, PixelFormat.BGRA8888, 128, pixels=pix1)))
        first = dec.next_message()
        assert isinstance(first.pixels, memoryview)
        assert bytes(first.pixels) == pix1
        assert first.pixels.nbytes == len(pix1)
        wire2 = encode(FrameRequest(32, 16, PixelFormat.BGRA8888, 128, pixels=pix2))
        for i in range(0, len(wire2), 100):
            dec.feed(wire2[i:i + 100])
        dec.feed(encode(FrameResponse(nals=(b"\xff" * 500,))) + encode(Ping()))
        rest = list(dec.messages())
        assert bytes(rest[0].pixels) == pix2
        assert bytes(first.pixels) == pix1  # untouched by later messages
        assert isinstance(rest[1].nals[0], memoryview)

    def test_pixels_land_in_the_buffer_offered(self):
        pix = bytes(range(200))
        wire = encode(FrameRequest(50, 1, PixelFormat.BGRA8888, 200, pixels=pix))
        dec = Decoder()
        dec.buffer()[:12] = wire[:12]
        dec.commit(12)
        payload_view = dec.buffer()
        assert len(payload_view) == 44 + 200
        payload_view[:] = wire[12:]
        dec.commit(len(payload_view))
        msg = dec.next_message()
        assert bytes(msg.pixels) == pix
        assert msg.pixels.obj is payload_view.obj  # no copy between recv_into and the message
        # a later message does not reuse that storage
        dec.feed(encode(FrameRequest(50, 1, PixelFormat.BGRA8888, 200, pixels=bytes(200))))
        assert bytes(msg.pixels) == pix

    @pytest.mark.parametrize("pix", [bytes(range(10)), bytearray(range(10)), memoryview(bytes(range(10)))])
    def test_encode_parts_keeps_pixel_object(self, pix):
        msg = FrameRequest(1, 1, PixelFormat.NV12, 4, pixels=pix)
        parts = encode_parts(msg)
        assert any(p is pix for p in parts)
        assert parts[-1] is pix
        assert len(parts[0]) == 56
        assert encode(msg) == bytes(parts[0]) + bytes(pix)

    def test_encode_parts_keeps_nal_objects(self):
        a, b = bytearray(b"\x00\x00\x00\x01\x67"), memoryview(b"\x00\x00\x00\x01\x65")
        parts = encode_parts(FrameResponse(nals=(a, b)))
        assert any(p is a for p in parts)
        assert any(p is b for p in parts)

    def test_multibyte_memoryview_pixels(self):
        arr = memoryview(bytearray(range(16))).cast("I")
        msg = FrameRequest(1, 1, PixelFormat.BGRA8888, 16, pixels=arr)
        wire = encode(msg)
        assert header_of(wire)[4] == 44 + 16
        assert wire[56:] == bytes(range(16))


class TestReusePixels:
    """`Decoder(reuse_pixels=True)`: one payload buffer per decoder, lent to one message at a
    time, reused once the caller comes back for more (the server's recv_into loop)."""

    @staticmethod
    def frame(fill: int, n: int = 2048) -> bytes:
        return encode(FrameRequest(32, 16, PixelFormat.BGRA8888, 128, pixels=bytes([fill]) * n))

    @staticmethod
    def recv_loop(dec: Decoder, wire: bytes, chunk: int = 700):
        """Like the server: recv_into(buffer()), commit, handle every message before reading on."""
        pos = 0
        while pos < len(wire):
            buf = dec.buffer()
            n = min(len(buf), chunk, len(wire) - pos)
            buf[:n] = wire[pos:pos + n]
            pos += n
            dec.commit(n)
            while (msg := dec.next_message()) is not NEED_DATA:
                yield msg

    def test_storage_is_reused_and_contents_are_right(self):
        dec = Decoder(reuse_pixels=True)
        wire = self.frame(1) + encode(Ping()) + self.frame(2) + self.frame(3)
        owners, seen = [], []
        for msg in self.recv_loop(dec, wire):
            if isinstance(msg, FrameRequest):
                seen.append(set(bytes(msg.pixels)))  # read while it is ours
                owners.append(msg.pixels.obj)
        assert seen == [{1}, {2}, {3}]
        assert owners[0] is owners[1] is owners[2]  # no allocation per frame

    def test_pixels_valid_until_the_caller_comes_back(self):
        dec = Decoder(reuse_pixels=True)
        dec.feed(self.frame(7))
        first = dec.next_message()
        assert set(bytes(first.pixels)) == {7}
        assert dec.next_message() is NEED_DATA  # came back: the buffer may now be reused
        dec.feed(self.frame(8))
        second = dec.next_message()
        assert second.pixels.obj is first.pixels.obj
        assert set(bytes(second.pixels)) == {8}

    def test_queued_messages_never_share(self):
        dec = Decoder(reuse_pixels=True)
        dec.feed(self.frame(1) + self.frame(2) + self.frame(3))  # three frames in one feed
        msgs = list(dec.messages())
        assert [set(bytes(m.pixels)) for m in msgs] == [{1}, {2}, {3}]
        assert len({id(m.pixels.obj) for m in msgs}) == 3

    def test_handed_out_message_survives_a_partial_next_frame(self):
        dec = Decoder(reuse_pixels=True)
        wire2 = self.frame(5)
        dec.feed(self.frame(4) + wire2[:100])  # frame 2 starts before frame 1 is handed out
        first = dec.next_message()
        dec.feed(wire2[100:])
        assert set(bytes(first.pixels)) == {4}
        assert set(bytes(dec.next_message().pixels)) == {5}

    def test_grows_and_shrinks(self):
        dec = Decoder(reuse_pixels=True)
        sizes = [64, 4096, 128, 4096, 8]
        wire = b"".join(self.frame(i + 1, n) for i, n in enumerate(sizes))
        got = [(m.pixels.nbytes, set(bytes(m.pixels))) for m in self.recv_loop(dec, wire)]
        assert got == [(n, {i + 1}) for i, n in enumerate(sizes)]

    def test_other_types_and_default_unchanged(self):
        dec = Decoder(reuse_pixels=True)
        resp = encode(FrameResponse(nals=(b"\x00\x00\x00\x01\x65" * 10,)))
        dec.feed(resp + resp)
        a, b = list(dec.messages())
        assert a.nals[0].obj is not b.nals[0].obj  # only pixel payloads are pooled
        plain = Decoder()
        plain.feed(self.frame(1))
        m1 = plain.next_message()
        plain.next_message()
        plain.feed(self.frame(2))
        assert plain.next_message().pixels.obj is not m1.pixels.obj
        assert set(bytes(m1.pixels)) == {1}


# --------------------------------------------------------------------------- frame_layout


class TestFrameLayout:
    @pytest.mark.parametrize(
        ("fmt", "w", "h", "stride", "size"),
        [
            (PixelFormat.NV12, 64, 32, 64, 3072),
            (PixelFormat.NV12, 960, 540, 960, 777_600),
            (PixelFormat.NV12, 1920, 1080, 1920, 3_110_400),
            (PixelFormat.NV12, 1366, 768, 1368, 1_575_936),
            (PixelFormat.NV12, 5120, 2880, 5120, 22_118_400),
            (PixelFormat.BGRA8888, 1920, 1080, 7680, 8_294_400),
            (PixelFormat.BGRA8888, 5120, 2880, 20480, 58_982_400),
        ],
    )
    def test_table_7(self, fmt, w, h, stride, size):
        lay = frame_layout(fmt, w, h)
        assert (lay.width, lay.height, lay.stride, lay.size) == (w, h, stride, size)
        assert lay.format == fmt
        if fmt == PixelFormat.NV12:
            assert lay.uv_offset == stride * h
            assert lay.y_size == stride * h
        else:
            assert lay.uv_offset is None
            assert lay.y_size == size

    def test_nv12_64x32_planes(self):
        lay = frame_layout(PixelFormat.NV12, 64, 32)
        assert lay.uv_offset == 2048  # Y 64×32, then UV 64×16
        assert lay.size - lay.uv_offset == 1024

    def test_int_fourcc_and_rgba(self):
        assert frame_layout(0x3231564E, 64, 32) == frame_layout(PixelFormat.NV12, 64, 32)
        assert frame_layout(PixelFormat.RGBA8888, 3, 2).size == 24
        assert frame_layout(PixelFormat.RGBA8888, 3, 2).stride == 12

    @pytest.mark.parametrize(
        ("fmt", "w", "h", "stride", "uv_offset", "size"),
        [
            (PixelFormat.NV12, 1, 1, 4, 8, 12),
            (PixelFormat.NV12, 63, 31, 64, 64 * 32, 64 * 48),
            (PixelFormat.NV12, 65, 33, 68, 68 * 34, 68 * 51),
            (PixelFormat.NV12, 2, 3, 4, 16, 24),
            (PixelFormat.NV12, 1366, 767, 1368, 1368 * 768, 1368 * 1152),
            (PixelFormat.BGRA8888, 1, 1, 4, None, 4),
            (PixelFormat.BGRA8888, 3, 5, 12, None, 60),
            (PixelFormat.BGRA8888, 1365, 767, 5460, None, 5460 * 767),
        ],
    )
    def test_odd_sizes(self, fmt, w, h, stride, uv_offset, size):
        lay = frame_layout(fmt, w, h)
        assert (lay.stride, lay.uv_offset, lay.size) == (stride, uv_offset, size)

    @pytest.mark.parametrize(
        ("fmt", "w", "h", "stride", "size"),
        [
            (PixelFormat.NV12, 64, 32, 128, 128 * 48),
            (PixelFormat.NV12, 63, 31, 63, 63 * 48),  # explicit stride ≥ width, even if unaligned
            (PixelFormat.NV12, 1366, 768, 1408, 1408 * 1152),
            (PixelFormat.BGRA8888, 1920, 1080, 8192, 8192 * 1080),
            (PixelFormat.BGRA8888, 3, 3, 12, 36),
        ],
    )
    def test_explicit_stride(self, fmt, w, h, stride, size):
        lay = frame_layout(fmt, w, h, stride)
        assert (lay.stride, lay.size) == (stride, size)

    @pytest.mark.parametrize(
        ("fmt", "w", "h", "stride"),
        [
            (PixelFormat.NV12, 0, 32, None),
            (PixelFormat.NV12, 64, 0, None),
            (PixelFormat.NV12, -64, 32, None),
            (PixelFormat.BGRA8888, 64, -1, None),
            (PixelFormat.NV12, 64, 32, 63),
            (PixelFormat.NV12, 64, 32, 0),
            (PixelFormat.BGRA8888, 64, 32, 255),
            (PixelFormat.BGRA8888, 64, 32, 64),
            (PixelFormat.RGBA8888, 1, 1, 3),
            (PixelFormat.UNKNOWN, 64, 32, None),
            (0x12345678, 64, 32, None),
        ],
    )
    def test_invalid(self, fmt, w, h, stride):
        with pytest.raises(ValueError):
            frame_layout(fmt, w, h, stride)

    @FAST
    @given(
        st.sampled_from([PixelFormat.NV12, PixelFormat.BGRA8888, PixelFormat.RGBA8888]),
        st.integers(1, 8192),
        st.integers(1, 8192),
        st.integers(0, 64),
    )
    def test_general_rule(self, fmt, w, h, extra):
        """§7 general rule, written out independently of the implementation."""
        if fmt == PixelFormat.NV12:
            stride = (w + 3) // 4 * 4
            rows = (h + 1) // 2 * 2
            expected = (stride, stride * rows, stride * rows * 3 // 2)
        else:
            stride = 4 * w
            expected = (stride, None, stride * h)
        lay = frame_layout(fmt, w, h)
        assert (lay.stride, lay.uv_offset, lay.size) == expected
        big = frame_layout(fmt, w, h, stride + extra)
        assert big.stride == stride + extra
        assert big.size >= lay.size


# --------------------------------------------------------------------------- decode_all


class TestDecodeAllTruncated:
    def test_every_prefix(self):
        msgs = [
            Ping(1),
            FrameRequest(4, 2, PixelFormat.NV12, 4, pixels=bytes(12)),
            FrameResponse(nals=(b"\x00\x00\x00\x01\x65",)),
            ErrorMessage.for_code(-5),
        ]
        wire = _stream(msgs)
        bounds = {0} | _boundaries(msgs)
        starts = sorted(bounds)
        for cut in range(len(wire) + 1):
            if cut in bounds:
                got = decode_all(wire[:cut])
                assert [canon(m) for m in got] == [canon(m) for m in msgs[: starts.index(cut)]]
            else:
                with pytest.raises(RemoteProtocolError) as info:
                    decode_all(wire[:cut])
                assert info.value.kind == "truncated"
                assert info.value.offset == max(b for b in starts if b < cut)

    def test_truncated_header_and_payload(self):
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(b"HXFR\x10")
        assert info.value.kind == "truncated"
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(encode(ConfigRequest())[:-1])
        assert info.value.kind == "truncated"
        assert info.value.header is not None and info.value.header.msg_type == 0x04

    def test_truncated_while_skipping(self):
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(raw_header(0x42, 10) + b"12345", skip_unknown=True)
        assert info.value.kind == "truncated"

    def test_empty_input(self):
        assert decode_all(b"") == []

    def test_protocol_error_wins_over_truncation(self):
        with pytest.raises(RemoteProtocolError) as info:
            decode_all(encode(Ping()) + b"XXXXXXXXXXXXXXXXXX" + b"HXFR")
        assert info.value.kind == "bad-magic"
        assert info.value.offset == 12
