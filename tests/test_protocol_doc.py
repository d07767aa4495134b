"""docs/protocol.md against the codec (helixdiag/protocol.py): every number the page gives
a user (type values, sizes, fourccs, error codes, frame sizes, the worked bytes) must be the
one the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helixdiag import protocol as p

pytestmark = pytest.mark.timeout(30)

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^#+ {re.escape(title)}.*?$(.*?)(?=^#+ |\Z)", TEXT, flags=re.S | re.M)
    assert match, f"docs/protocol.md has no section {title!r}"
    return match.group(1)


def tables(text: str) -> list[list[list[str]]]:
    """Each markdown table in `text`, as its rows of cells (heading and rule left out)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = []
            found.append(current)
            continue  # the heading row
        if not re.match(r"^\|[-| ]+\|$", line):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
    return found


def number(cell: str) -> int:
    return int(cell.replace(" ", "").replace("−", "-"), 0)


def test_message_types_and_sizes_are_the_codecs():
    (table,) = tables(section("Message types"))
    assert {r[1] for r in table} == {t.name for t in p.MsgType}
    for value, name, _direction, total, payload, _who in table:
        t = p.MsgType[name]
        assert number(value) == t.value, name
        fixed = p.FIXED_PAYLOAD[t]
        if t == p.MsgType.FRAME_REQUEST:
            assert total.startswith(f"{p.HEADER_SIZE + p.FRAME_REQUEST_BODY} + ")
            assert payload.startswith(f"{p.FRAME_REQUEST_BODY},")
        elif t == p.MsgType.FRAME_RESPONSE:
            assert total.startswith(f"{p.HEADER_SIZE + p.FRAME_RESPONSE_BODY} + ")
            assert payload.startswith(f"{p.FRAME_RESPONSE_BODY} + ")
        elif fixed is None:
            assert total == payload == "—", name
        else:
            assert (number(total), number(payload)) == (p.HEADER_SIZE + fixed, fixed), name


def test_header_layout_is_the_codecs():
    (table,) = tables(section("The header"))
    assert [r[3].strip("`") for r in table] == ["magic", "msg_type", "flags", "session_id", "payload_size"]
    assert [number(r[0]) for r in table] == [0, 4, 5, 6, 8]
    assert sum(number(r[1]) for r in table) == p.HEADER_SIZE
    assert f"0x{p.MAGIC:08X}" in table[0][4] and p.MAGIC.to_bytes(4, "little") == b"HXFR"
    assert "64 MiB (67 108 864 bytes)" in section("The header")
    assert p.DEFAULT_MAX_PAYLOAD == 67_108_864


def test_pixel_formats_and_frame_sizes_are_the_codecs():
    formats, sizes = tables(section("Pixel formats"))
    assert {r[0] for r in formats} == {f.name for f in p.PixelFormat}
    for name, value, wire, *_ in formats:
        fmt = p.PixelFormat[name]
        assert number(value) == fmt.value, name
        if fmt:
            assert wire.strip("`").encode() == fmt.value.to_bytes(4, "little"), name
    assert len(sizes) == 5
    for frame, size in sizes:
        name, dims = frame.split()
        w, h = map(int, dims.split("×"))
        layout = p.frame_layout(p.FORMAT_NAMES[name.lower()], w, h)
        assert number(size.split("(")[0]) == layout.size, frame
    assert "(stride 1368)" in TEXT and p.frame_layout(p.PixelFormat.NV12, 1366, 768).stride == 1368


def test_error_codes_are_the_codecs():
    _layout, table = tables(section("ERROR (0xFF)"))
    assert {r[1]: number(r[0]) for r in table} == {c.name: c.value for c in p.ErrorCode}


def _hex(block: str) -> bytes:
    """The bytes of hexdump lines (`OFFSET  hh hh …  |ascii|`) or of bare `hh hh …` runs."""
    out = bytearray()
    for line in block.splitlines():
        line = re.sub(r"\|.*\|\s*$", "", line)
        line = re.sub(r"^[0-9a-f]{8}\s", "", line.strip())
        out += bytes.fromhex(" ".join(re.findall(r"\b[0-9a-f]{2}\b", line)))
    return bytes(out)


def _blocks() -> list[str]:
    return re.findall(r"```\n(.*?)```", section("The bytes, worked out"), flags=re.S)


def test_the_worked_frame_request_and_response_are_what_the_codec_writes():
    request, response, _short = _blocks()
    pixels = bytes(3072)
    head = p.encode_parts(p.FrameRequest(64, 32, p.PixelFormat.NV12, 64, 1_000_000_000, 16_666_667, True, 0,
                                          pixels, 1))[0]
    assert _hex(request) == head
    assert len(head) + len(pixels) == 3128
    au = bytes.fromhex("00000001 6742c01f dead 00000001 658884 00beef")
    expected = p.encode(p.FrameResponse((au,), 1_000_000_000, 1_000_000_000, True, 1))
    assert _hex(response) == expected
    (decoded,) = p.decode_all(_hex(response))
    assert decoded.nal_count == 1 and decoded.data == au


def test_the_short_messages_are_what_the_codec_writes():
    *_, short = _blocks()
    entries = re.findall(r"^([A-Z_]+) \(([^)]*)\)[^:\n]*:(.*?)(?=^[A-Z]|\Z)", short, flags=re.S | re.M)
    got = {f"{name} ({detail})": _hex(hexdump) for name, detail, hexdump in entries}
    assert got == {
        "PING (session 1)": p.encode(p.Ping(1)),
        "PONG (session 1)": p.encode(p.Pong(1)),
        "SUBSCRIBE (scanout 1)": p.encode(p.Subscribe(1)),
        "SUBSCRIBE_RESP (1, ok)": p.encode(p.SubscribeResponse(1, True)),
        "CONFIG_REQ (1920x1080, 8 Mb/s)": p.encode(p.ConfigRequest(1920, 1080, 8_000_000)),
        "ENABLE_SCANOUT (1, 1920x1080 @ 60)": p.encode(p.EnableScanout(1, 1920, 1080, 60)),
        "ERROR (-2)": p.encode(p.ErrorMessage.for_code(-2))[:32],
    }


def test_the_decode_example_prints_what_it_says():
    m = re.search(r'bytes\.fromhex\("([0-9a-f]+)"\)\)\)\'\n# (.+)', TEXT)
    assert m, "no decode example"
    assert repr(p.decode_all(bytes.fromhex(m.group(1)))) == m.group(2)
