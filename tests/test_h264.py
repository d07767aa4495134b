"""Tests for helixdiag.h264 against real libx264 output (via PyAV) and hand-built bitstreams.

Real streams are cross-checked with FFmpeg's own H.264 decoder and MP4 muxer, so the
parser is not only compared with expectations written by the same hand.
"""

from __future__ import annotations

import functools
import io
import re
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixdiag.h264 import (
    BitReader,
    Framing,
    H264Error,
    Nal,
    NalType,
    access_unit_summary,
    detect_framing,
    parse_sps,
    remove_emulation_prevention,
    split_annexb,
    split_avcc,
)

pytestmark = pytest.mark.timeout(60)

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# Real streams from libx264


def _frames(width: int, height: int, pix_fmt: str, count: int):
    """A diagonal gradient that moves a little per frame: cheap to encode, and gives
    P-frames of a few hundred bytes, like a mostly static desktop."""
    for index in range(count):
        luma = (np.arange(width)[None, :] + np.arange(height)[:, None] + 4 * index) % 256
        frame = av.VideoFrame(width, height, pix_fmt)
        for plane_index, plane in enumerate(frame.planes):
            rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
            if plane_index == 0:
                rows[:, : plane.width] = luma[: plane.height, : plane.width]
            else:
                rows[:, : plane.width] = 128
        frame.pts = index
        yield frame


@functools.cache
def encode(
    width: int,
    height: int,
    profile: str,
    preset: str = "superfast",
    pix_fmt: str = "yuv420p",
    x264_params: str | None = None,
    frames: int = 3,
) -> tuple[bytes, ...]:
    """Encode in memory; without AV_CODEC_FLAG_GLOBAL_HEADER libx264 emits Annex-B with
    SPS/PPS in band on keyframes, i.e. the H2+ shape of PROTOCOL.md §8."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 30)
    ctx.framerate = Fraction(30)
    options = {"preset": preset, "tune": "zerolatency", "profile": profile, "bframes": "0"}
    if x264_params:
        options["x264-params"] = x264_params
    ctx.options = options
    packets = []
    for frame in _frames(width, height, pix_fmt, frames):
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    return tuple(packets)


def decode_with_ffmpeg(packets) -> tuple[str, int, list[tuple[int, int]]]:
    """FFmpeg's view of the stream: profile name, level_idc, decoded picture sizes."""
    ctx = av.CodecContext.create("h264", "r")
    frames = []
    for data in packets:
        frames += ctx.decode(av.Packet(data))
    frames += ctx.decode(None)
    return ctx.profile, ctx.level, [(f.width, f.height) for f in frames]


def first_sps_nal(packet: bytes) -> Nal:
    return next(n for n in split_annexb(packet) if n.type == NalType.SPS)


# x264's `profile` option is only a ceiling: the SPS signals the lowest profile that
# covers the tools actually used. `ultrafast` turns off CABAC and 8x8 transforms, so
# every profile comes out Constrained Baseline; main/high therefore use `superfast`.
PROFILE_CASES = [
    # x264 profile, preset, our name, profile_idc, FFmpeg's name
    ("baseline", "ultrafast", "constrained-baseline", 66, "Constrained Baseline"),
    ("main", "superfast", "main", 77, "Main"),
    ("high", "superfast", "high", 100, "High"),
]
SIZES = [(1920, 1080), (642, 362)]


def _ceil16(n: int) -> int:
    return (n + 15) // 16 * 16


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize(("x264_profile", "preset", "name", "profile_idc", "ffmpeg_name"),
                         PROFILE_CASES, ids=[c[0] for c in PROFILE_CASES])
def test_real_keyframe_sps(x264_profile, preset, name, profile_idc, ffmpeg_name, width, height):
    packets = encode(width, height, x264_profile, preset)
    keyframe = packets[0]
    assert detect_framing(keyframe) is Framing.ANNEXB

    au = access_unit_summary(split_annexb(keyframe))
    assert au.has_sps and au.has_pps and au.has_idr
    assert au.params_before_idr
    assert au.slice_count >= 1
    assert au.sps_error is None
    assert au.nal_types[:2] == (NalType.SPS, NalType.PPS)

    sps = au.sps
    assert sps is not None
    assert sps.profile == name
    assert sps.profile_idc == profile_idc
    assert (sps.width, sps.height) == (width, height)
    # 4:2:0 progressive: whole macroblocks, cropped right/bottom in units of 2 pixels.
    assert (sps.coded_width, sps.coded_height) == (_ceil16(width), _ceil16(height))
    assert sps.frame_cropping
    assert (sps.crop_left, sps.crop_top) == (0, 0)
    assert sps.crop_right == (_ceil16(width) - width) // 2
    assert sps.crop_bottom == (_ceil16(height) - height) // 2
    assert sps.chroma_format_idc == 1
    assert (sps.bit_depth_luma, sps.bit_depth_chroma) == (8, 8)
    assert sps.frame_mbs_only

    ffmpeg_profile, ffmpeg_level, sizes = decode_with_ffmpeg(packets)
    assert ffmpeg_profile == ffmpeg_name
    assert sps.level_idc == ffmpeg_level
    assert sizes and set(sizes) == {(sps.width, sps.height)}


def test_real_1080p_details():
    sps = parse_sps(first_sps_nal(encode(1920, 1080, "high")[0]))
    assert (sps.coded_height, sps.crop_bottom, sps.height) == (1088, 4, 1080)
    assert sps.crop_right == 0
    assert sps.level == "4.0"
    assert sps.codec_string == "avc1.640028"


def test_real_odd_size_crops_width_and_height():
    sps = parse_sps(first_sps_nal(encode(642, 362, "main")[0]))
    assert (sps.coded_width, sps.coded_height) == (656, 368)
    assert (sps.crop_right, sps.crop_bottom) == (7, 3)


def test_real_baseline_is_constrained_baseline():
    """libx264 'baseline' sets constraint_set0 and constraint_set1 (0xC0)."""
    sps = parse_sps(first_sps_nal(encode(642, 362, "baseline", "ultrafast")[0]))
    assert sps.constraint_set(0) and sps.constraint_set(1)
    assert not any(sps.constraint_set(n) for n in (2, 3, 4, 5))
    assert sps.constraint_flags == 0xC0
    assert sps.codec_string.startswith("avc1.42C0")


def test_real_ultrafast_high_is_signalled_as_constrained_baseline():
    """Asking libx264 for 'high' with preset ultrafast does not give a High SPS."""
    packets = encode(642, 362, "high", "ultrafast")
    sps = parse_sps(first_sps_nal(packets[0]))
    assert (sps.profile_idc, sps.profile) == (66, "constrained-baseline")
    assert decode_with_ffmpeg(packets)[0] == "Constrained Baseline"


def test_real_p_frames_have_no_parameter_sets():
    packets = encode(642, 362, "main")
    assert len(packets) == 3
    for packet in packets[1:]:
        assert detect_framing(packet) is Framing.ANNEXB
        au = access_unit_summary(split_annexb(packet))
        assert not (au.has_sps or au.has_pps or au.has_idr)
        assert not au.params_before_idr
        assert au.sps is None
        assert au.slice_count >= 1
        assert set(au.nal_types) == {NalType.SLICE}


@pytest.mark.parametrize(
    ("pix_fmt", "x264_profile", "name", "chroma", "crop_right", "crop_bottom", "ffmpeg_name"),
    [
        # 4:2:2 crops in units of 2x1, 4:4:4 in units of 1x1 (656x368 coded).
        ("yuv422p", "high422", "high-4:2:2", 2, 7, 6, "High 4:2:2"),
        ("yuv444p", "high444", "high-4:4:4", 3, 14, 6, "High 4:4:4 Predictive"),
    ],
)
def test_real_chroma_formats(pix_fmt, x264_profile, name, chroma, crop_right, crop_bottom,
                             ffmpeg_name):
    packets = encode(642, 362, x264_profile, pix_fmt=pix_fmt)
    sps = parse_sps(first_sps_nal(packets[0]))
    assert sps.profile == name
    assert sps.chroma_format_idc == chroma
    assert (sps.crop_right, sps.crop_bottom) == (crop_right, crop_bottom)
    assert (sps.width, sps.height) == (642, 362)
    ffmpeg_profile, _, sizes = decode_with_ffmpeg(packets)
    assert ffmpeg_profile == ffmpeg_name
    assert set(sizes) == {(642, 362)}


def test_real_interlaced_crop_unit_doubles():
    """MBAFF: height counts field-pair map units and CropUnitY is 4 for 4:2:0."""
    packets = encode(640, 360, "main", x264_params="tff=1")
    sps = parse_sps(first_sps_nal(packets[0]))
    assert not sps.frame_mbs_only
    assert sps.mb_adaptive_frame_field
    assert sps.pic_height_in_map_units_minus1 + 1 == 12  # 12 map units of 32 lines
    assert (sps.coded_height, sps.crop_bottom, sps.height) == (384, 6, 360)
    assert set(decode_with_ffmpeg(packets)[2]) == {(640, 360)}


# ---------------------------------------------------------------------------
# AVCC


def annexb_to_avcc(stream: bytes) -> bytes:
    """Independent of the code under test: cut at every 00 00 01, drop the zero
    padding before each start code, prefix each NAL with a 4-byte BE length."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", stream)]
    out = bytearray()
    for begin, nxt in zip(starts, [*starts[1:], None], strict=True):
        nal = stream[begin : None if nxt is None else nxt - 3].rstrip(b"\x00")
        out += len(nal).to_bytes(4, "big") + nal
    return bytes(out)


@pytest.mark.parametrize(
    "stream",
    [
        ("1080p-high", (1920, 1080, "high")),
        # One slice per frame, so P-frames are single NALs of a few hundred bytes;
        # those AVCC buffers may start 00 00 01 xx (see the 256..511 test below).
        ("642-main-1slice", (642, 362, "main", "superfast", "yuv420p", "threads=1", 6)),
    ],
    ids=["1080p-high", "642-main-1slice"],
)
def test_annexb_to_avcc_roundtrip(stream):
    for packet in encode(*stream[1]):
        avcc = annexb_to_avcc(packet)
        assert detect_framing(packet) is Framing.ANNEXB
        assert detect_framing(avcc) is Framing.AVCC
        from_annexb = split_annexb(packet)
        from_avcc = split_avcc(avcc)
        assert [bytes(n.data) for n in from_avcc] == [bytes(n.data) for n in from_annexb]
        assert [(n.type, n.ref_idc) for n in from_avcc] == [(n.type, n.ref_idc) for n in from_annexb]


def test_avcc_from_ffmpeg_mp4_muxer():
    """The H0/H1 shape: MP4 samples are AVCC and the SPS lives out of band in avcC."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 642, 362, "yuv420p"
        stream.codec_context.options = {"preset": "superfast", "tune": "zerolatency",
                                        "profile": "main", "bframes": "0"}
        for frame in _frames(642, 362, "yuv420p", 4):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf) as inp:
        video = inp.streams.video[0]
        avcc_config = bytes(video.codec_context.extradata)
        samples = [bytes(p) for p in inp.demux(video) if p.size]

    assert len(samples) == 4
    for index, sample in enumerate(samples):
        assert detect_framing(sample) is Framing.AVCC
        au = access_unit_summary(split_avcc(sample))
        assert not au.has_sps and not au.has_pps  # exactly why h264parse chokes on H0/H1
        assert au.has_idr == (index == 0)
        assert au.slice_count >= 1

    # avcC: version, profile, compat, level, lengthSizeMinusOne, numOfSPS, len16, SPS...
    assert avcc_config[0] == 1 and avcc_config[4] & 0x03 == 3
    assert avcc_config[5] & 0x1F >= 1
    sps_len = int.from_bytes(avcc_config[6:8], "big")
    sps = parse_sps(avcc_config[8 : 8 + sps_len])
    assert (sps.profile, sps.width, sps.height) == ("main", 642, 362)
    assert avcc_config[1:4] == bytes([sps.profile_idc, sps.constraint_flags, sps.level_idc])


def test_detect_avcc_whose_first_length_looks_like_a_start_code():
    """A 357-byte NAL has length 00 00 01 65: a 3-byte start code and an IDR header."""
    nal = b"\x41" + bytes(range(1, 200)) + bytes(range(1, 158))
    assert len(nal) == 0x165
    avcc = len(nal).to_bytes(4, "big") + nal
    assert avcc[:4] == b"\x00\x00\x01\x65"
    # The trap: read as Annex-B it splits cleanly into one plausible NAL ...
    assert [n.type for n in split_annexb(avcc)] == [NalType.IDR]
    # ... but the exact length chain wins.
    assert detect_framing(avcc) is Framing.AVCC


def test_detect_prefers_annexb_for_four_byte_start_code():
    # Also a valid AVCC chain: two 1-byte NALs (end of sequence, end of stream).
    buf = b"\x00\x00\x00\x01\x0a\x00\x00\x00\x01\x0b"
    assert [n.type for n in split_avcc(buf)] == [NalType.END_SEQ, NalType.END_STREAM]
    assert detect_framing(buf) is Framing.ANNEXB


@pytest.mark.parametrize(
    "buf",
    [
        b"",
        b"\x12\x34\x56\x78",
        b"\x00\x00\x00\x02\x67",  # AVCC length overruns
        b"\x00\x00\x00\x01\x80",  # forbidden_zero_bit set either way
        b"\x00\x00\x01\x20\x00\x00\x01\x18",  # Annex-B type 0 / 24 NALs; not AVCC
        b"\x00\x00\x00\x02\x1f\x01",  # AVCC with unspecified type 31
    ],
)
def test_detect_unknown(buf):
    assert detect_framing(buf) is Framing.UNKNOWN


def test_split_avcc_other_length_sizes():
    nals = [b"\x67\x42\xc0\x1e", b"\x68\xce", b"\x65\x88\x84"]
    for size in (1, 2, 3):
        buf = b"".join(len(n).to_bytes(size, "big") + n for n in nals)
        assert [bytes(n.data) for n in split_avcc(buf, size)] == nals


@pytest.mark.parametrize(
    ("buf", "message"),
    [
        (b"\x00\x00\x00\x05\x67\x42", "overruns"),
        (b"\x00\x00\x00\x01\x09\x00\x00", "truncated"),
        (b"\x00\x00\x00\x00", "zero-length"),
    ],
)
def test_split_avcc_errors(buf, message):
    with pytest.raises(H264Error, match=message):
        split_avcc(buf)


def test_split_avcc_rejects_bad_length_size():
    with pytest.raises(H264Error):
        split_avcc(b"\x00\x01\x09", length_size=5)


# ---------------------------------------------------------------------------
# Annex-B by hand


def test_mixed_start_codes_and_zero_padding():
    sps, pps, idr = b"\x67\x42\xc0\x1e\xda", b"\x68\xce\x3c\x80", b"\x65\x88\x84\x00\x03\x01"
    buf = (
        b"\x00"  # leading_zero_8bits
        + b"\x00\x00\x00\x01" + sps
        + b"\x00\x00\x01" + pps
        + b"\x00\x00"  # trailing_zero_8bits
        + b"\x00\x00\x00\x01" + idr
        + b"\x00\x00\x00"
    )
    nals = split_annexb(buf)
    assert [bytes(n.data) for n in nals] == [sps, pps, idr]
    assert [(n.type, n.ref_idc) for n in nals] == [(7, 3), (8, 3), (5, 3)]
    assert nals[0].type_name == "SPS"
    assert split_annexb(b"\x00\x00\x01\x09\xf0") == [Nal(9, 0, b"\x09\xf0")]


def test_split_annexb_empty():
    assert split_annexb(b"") == []
    assert split_avcc(b"") == []


@pytest.mark.parametrize(
    "buf",
    [
        b"\x67\x00\x00\x01\x68",  # data before the first start code
        b"\x12\x34",  # no start code at all
        b"\x00\x00\x00",  # only zeros
        b"\x00\x00\x01\x00\x00\x01\x67",  # empty NAL between two start codes
        b"\x00\x00\x01",  # start code with nothing after it
        b"\x00\x00\x01\x00\x00",  # only padding after it
    ],
)
def test_split_annexb_errors(buf):
    with pytest.raises(H264Error):
        split_annexb(buf)


# ---------------------------------------------------------------------------
# Emulation prevention


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """The encoder side (§7.4.1), written independently: escape 00 00 0x (x <= 3) and a
    trailing 00 00."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    if zeros >= 2:
        out.append(3)
    return bytes(out)


@pytest.mark.parametrize(
    ("escaped", "rbsp"),
    [
        (b"\x00\x00\x03\x01", b"\x00\x00\x01"),
        (b"\x12\x00\x00\x03\x00\x34", b"\x12\x00\x00\x00\x34"),
        (b"\x00\x00\x03\x00\x00\x03\x00", b"\x00\x00\x00\x00\x00"),  # back-to-back
        (b"\x00\x00\x03\x03", b"\x00\x00\x03"),  # an escaped 03 data byte
        (b"\x00\x00\x03\x00\x03", b"\x00\x00\x00\x03"),  # zero count restarts
        (b"\xaa\x00\x00\x03", b"\xaa\x00\x00"),  # cabac_zero_word at the end
        (b"\x00\x03\x00\x00\x05", b"\x00\x03\x00\x00\x05"),  # nothing to remove
        (b"", b""),
    ],
)
def test_remove_emulation_prevention(escaped, rbsp):
    assert remove_emulation_prevention(escaped) == rbsp
    assert add_emulation_prevention(rbsp) == escaped


@FUZZ
@given(st.binary(max_size=200))
def test_emulation_prevention_roundtrip(rbsp):
    escaped = add_emulation_prevention(rbsp)
    assert re.search(b"\x00\x00[\x00-\x02]", escaped) is None
    assert remove_emulation_prevention(escaped) == rbsp


# ---------------------------------------------------------------------------
# Exp-Golomb and hand-built SPS


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def flag(self, value: bool) -> BitWriter:
        return self.u(1, int(value))

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]  # rbsp_stop_one_bit, then zero alignment
        bits += [0] * (-len(bits) % 8)
        return bytes(
            int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)
        )


def test_bitreader_exp_golomb_known_codes():
    codes = "1" "010" "011" "00100" + "011" "00100" "1" + "010"  # ue 0..3, se -1 2 0, pad
    r = BitReader(int(codes, 2).to_bytes(len(codes) // 8, "big"))
    assert [r.ue(), r.ue(), r.ue(), r.ue()] == [0, 1, 2, 3]
    assert [r.se(), r.se(), r.se()] == [-1, 2, 0]
    assert r.u(3) == 0b010
    assert r.bits_left == 0
    with pytest.raises(H264Error):
        r.u(1)


def test_bitreader_rejects_overlong_code():
    with pytest.raises(H264Error):
        BitReader(b"\x00" * 5 + b"\x80").ue()  # 40 leading zeros


@FUZZ
@given(st.lists(st.integers(-(2**31) + 1, 2**31 - 1), max_size=20))
def test_bitreader_roundtrip(values):
    w = BitWriter()
    for v in values:
        w.ue(abs(v)).se(v)
    r = BitReader(w.rbsp())
    assert [(r.ue(), r.se()) for _ in values] == [(abs(v), v) for v in values]


def make_sps(
    *,
    profile_idc: int = 66,
    constraint_flags: int = 0,
    level_idc: int = 30,
    chroma_format_idc: int = 1,
    separate_colour_plane: bool = False,
    bit_depth_luma_minus8: int = 0,
    bit_depth_chroma_minus8: int = 0,
    scaling_lists: list[list[int] | None] | None = None,
    poc_type: int = 0,
    poc_fields: tuple = (4,),
    width_mbs_minus1: int = 39,
    height_map_units_minus1: int = 29,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = None,
) -> bytes:
    """An SPS NAL (header included, emulation prevention applied). scaling_lists holds
    one delta_scale list per scaling_list_present slot (None = not present)."""
    w = BitWriter().u(8, profile_idc).u(8, constraint_flags).u(8, level_idc).ue(0)
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        w.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            w.flag(separate_colour_plane)
        w.ue(bit_depth_luma_minus8).ue(bit_depth_chroma_minus8).flag(False)
        w.flag(scaling_lists is not None)
        for deltas in scaling_lists or []:
            w.flag(deltas is not None)
            for delta in deltas or []:
                w.se(delta)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(poc_fields[0])
    elif poc_type == 1:
        always_zero, non_ref, top_bottom, offsets = poc_fields
        w.flag(always_zero).se(non_ref).se(top_bottom).ue(len(offsets))
        for offset in offsets:
            w.se(offset)
    w.ue(3).flag(False)  # max_num_ref_frames, gaps
    w.ue(width_mbs_minus1).ue(height_map_units_minus1)
    w.flag(frame_mbs_only)
    if not frame_mbs_only:
        w.flag(True)  # mb_adaptive_frame_field_flag
    w.flag(True)  # direct_8x8_inference
    w.flag(crop is not None)
    for offset in crop or ():
        w.ue(offset)
    w.flag(False)  # no VUI
    return b"\x67" + add_emulation_prevention(w.rbsp())


FULL_4X4 = [1] * 16  # 16 deltas: scales 9..24, never 0
FULL_8X8 = [3] * 64
EARLY_STOP = [2, -10]  # scale 10, then next_scale 0: only two deltas are coded
USE_DEFAULT = [-8]  # next_scale 0 at j = 0: "use default matrix"


def test_hand_sps_high_422_scaling_poc1_interlaced():
    data = make_sps(
        profile_idc=122,
        level_idc=41,
        chroma_format_idc=2,
        bit_depth_luma_minus8=2,
        bit_depth_chroma_minus8=2,
        scaling_lists=[FULL_4X4, None, EARLY_STOP, USE_DEFAULT, None, FULL_4X4, FULL_8X8, EARLY_STOP],
        poc_type=1,
        poc_fields=(False, -3, 2, [5, -7, 0]),
        width_mbs_minus1=119,
        height_map_units_minus1=33,  # 34 field-pair map units = 1088 lines
        frame_mbs_only=False,
        crop=(1, 3, 2, 4),
    )
    sps = parse_sps(data)
    assert sps.profile == "high-4:2:2"
    assert sps.level == "4.1"
    assert (sps.chroma_format_idc, sps.bit_depth_luma, sps.bit_depth_chroma) == (2, 10, 10)
    assert sps.seq_scaling_matrix_present
    assert sps.pic_order_cnt_type == 1
    assert sps.delta_pic_order_always_zero is False
    assert (sps.offset_for_non_ref_pic, sps.offset_for_top_to_bottom_field) == (-3, 2)
    assert sps.offset_for_ref_frame == (5, -7, 0)
    assert sps.log2_max_pic_order_cnt_lsb is None
    assert sps.max_num_ref_frames == 3
    assert not sps.frame_mbs_only and sps.mb_adaptive_frame_field
    assert (sps.coded_width, sps.coded_height) == (1920, 1088)
    # 4:2:2 interlaced: CropUnitX = 2, CropUnitY = 1 * 2.
    assert (sps.crop_left, sps.crop_right, sps.crop_top, sps.crop_bottom) == (1, 3, 2, 4)
    assert (sps.width, sps.height) == (1920 - 2 * 4, 1088 - 2 * 6)
    assert not sps.vui_parameters_present


def test_hand_sps_444_twelve_scaling_lists():
    # With 4:4:4 there are 12 list slots; the last four (8x8 Cb/Cr) must be skipped too.
    lists = [None] * 6 + [FULL_8X8, None, USE_DEFAULT, FULL_8X8, EARLY_STOP, FULL_8X8]
    sps = parse_sps(make_sps(profile_idc=244, chroma_format_idc=3, scaling_lists=lists,
                             crop=(0, 5, 0, 3), height_map_units_minus1=44))
    assert sps.profile == "high-4:4:4"
    assert sps.chroma_format_idc == 3 and not sps.separate_colour_plane
    assert sps.log2_max_pic_order_cnt_lsb == 8
    assert (sps.width, sps.height) == (640 - 5, 720 - 3)  # CropUnit 1x1


def test_hand_sps_separate_colour_planes_and_monochrome_crop_in_luma_units():
    # ChromaArrayType 0: CropUnitX = 1, CropUnitY = 2 - frame_mbs_only.
    planes = parse_sps(make_sps(profile_idc=244, chroma_format_idc=3, separate_colour_plane=True,
                                crop=(0, 3, 0, 5)))
    assert planes.separate_colour_plane
    assert (planes.width, planes.height) == (640 - 3, 480 - 5)
    mono = parse_sps(make_sps(profile_idc=100, chroma_format_idc=0, frame_mbs_only=False,
                              height_map_units_minus1=14, crop=(0, 3, 0, 5)))
    assert mono.chroma_format_idc == 0
    assert (mono.width, mono.height) == (640 - 3, 480 - 2 * 5)


def test_hand_sps_poc_type_2_and_no_cropping():
    sps = parse_sps(make_sps(poc_type=2))
    assert sps.pic_order_cnt_type == 2
    assert sps.offset_for_ref_frame == ()
    assert not sps.frame_cropping
    assert (sps.width, sps.height) == (640, 480)
    assert sps.chroma_format_idc == 1  # inferred for non-high profiles


@pytest.mark.parametrize(
    ("profile_idc", "flags", "name"),
    [
        (66, 0x40, "constrained-baseline"),
        (66, 0xC0, "constrained-baseline"),
        (66, 0x80, "baseline"),
        (77, 0x40, "main"),
        (88, 0x00, "extended"),
        (100, 0x00, "high"),
        (110, 0x00, "high-10"),
        (122, 0x00, "high-4:2:2"),
        (244, 0x00, "high-4:4:4"),
        (44, 0x00, "profile-44"),
        (83, 0x00, "profile-83"),
    ],
)
def test_profile_names(profile_idc, flags, name):
    assert parse_sps(make_sps(profile_idc=profile_idc, constraint_flags=flags)).profile == name


@pytest.mark.parametrize(
    ("profile_idc", "flags", "level_idc", "level"),
    [
        (66, 0x10, 11, "1b"),  # constraint_set3 turns 1.1 into 1b in baseline ...
        (77, 0x10, 11, "1b"),
        (77, 0x00, 11, "1.1"),
        (100, 0x10, 11, "1.1"),  # ... but not in high, which uses level_idc 9
        (100, 0x00, 9, "1b"),
        (66, 0xC0, 31, "3.1"),
        (100, 0x00, 40, "4.0"),
        (100, 0x00, 52, "5.2"),
    ],
)
def test_levels(profile_idc, flags, level_idc, level):
    sps = parse_sps(make_sps(profile_idc=profile_idc, constraint_flags=flags, level_idc=level_idc))
    assert sps.level == level


def test_truncated_real_sps_raises():
    sps_nal = bytes(first_sps_nal(encode(642, 362, "high")[0]).data)
    full = parse_sps(sps_nal)
    with pytest.raises(H264Error, match="out of bits"):
        parse_sps(sps_nal[:6])
    # Every prefix either fails cleanly or, once past the fields we read (VUI is not
    # parsed), gives exactly the same answer.
    outcomes = []
    for n in range(len(sps_nal)):
        try:
            outcomes.append(parse_sps(sps_nal[:n]) == full)
        except H264Error:
            outcomes.append(None)
    assert outcomes[:5] == [None] * 5
    assert False not in outcomes


def test_truncated_hand_sps_raises():
    data = make_sps(profile_idc=100, scaling_lists=[FULL_4X4] * 6 + [FULL_8X8] * 2)
    with pytest.raises(H264Error):
        parse_sps(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x68\x42\xc0\x1e",  # a PPS header
        b"\xe7\x42\xc0\x1e",  # forbidden_zero_bit
        b"\x67\x42\xc0\x1e\x00",  # sps id: 8+ zeros then out of bits
    ],
)
def test_parse_sps_rejects(data):
    with pytest.raises(H264Error):
        parse_sps(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profile_idc": 100, "chroma_format_idc": 4},
        {"profile_idc": 100, "bit_depth_luma_minus8": 7},
        {"poc_type": 3},
        {"crop": (0, 0, 0, 300)},  # crops away the whole 480-line picture
    ],
)
def test_parse_sps_rejects_out_of_range(kwargs):
    with pytest.raises(H264Error):
        parse_sps(make_sps(**kwargs))


# ---------------------------------------------------------------------------
# Access unit summary by hand


def test_access_unit_summary_parameter_order():
    sps = Nal.from_bytes(make_sps())
    pps, idr, aud = Nal.from_bytes(b"\x68\xce"), Nal.from_bytes(b"\x65\x88"), Nal.from_bytes(b"\x09\xf0")
    good = access_unit_summary([aud, sps, pps, idr, idr])
    assert good.params_before_idr and good.slice_count == 2
    assert good.sps is not None and good.sps.width == 640
    late = access_unit_summary([pps, idr, sps])
    assert late.has_sps and late.has_idr and not late.params_before_idr
    no_pps = access_unit_summary([sps, idr])
    assert not no_pps.params_before_idr
    broken = access_unit_summary([Nal.from_bytes(b"\x67\x42"), pps, idr])
    assert broken.sps is None and broken.sps_error
    assert access_unit_summary([]).slice_count == 0


# ---------------------------------------------------------------------------
# Arbitrary bytes: return or raise H264Error, nothing else


def _returns_or_h264error(fn, *args):
    try:
        return fn(*args)
    except H264Error:
        return None


# Raw bytes rarely contain start codes or plausible headers; this mix reaches the
# deeper branches (start-code handling, AVCC chains, SPS fields).
_PIECES = st.one_of(
    st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00", b"\x00\x00\x03",
                     b"\x67", b"\x68", b"\x65", b"\x41", b"\x67\x64\x00\x28",
                     b"\x67\x42\xc0\x1e", b"\x00\x00\x00\x05"]),
    st.binary(max_size=12),
)
FUZZ_BYTES = st.one_of(st.binary(max_size=300), st.lists(_PIECES, max_size=30).map(b"".join))


@FUZZ
@given(FUZZ_BYTES, st.sampled_from([1, 2, 3, 4]))
def test_fuzz_only_h264error(data, length_size):
    for nals in (
        _returns_or_h264error(split_annexb, data),
        _returns_or_h264error(split_avcc, data, length_size),
    ):
        if nals is not None:
            assert all(isinstance(n, Nal) and len(n.data) >= 1 for n in nals)
            assert isinstance(access_unit_summary(nals).slice_count, int)
    assert detect_framing(data) in set(Framing)
    _returns_or_h264error(parse_sps, data)
    _returns_or_h264error(parse_sps, b"\x67" + data)
    _returns_or_h264error(parse_sps, b"\x67\x64\x00\x28" + data)  # high: chroma/scaling path
    assert len(remove_emulation_prevention(data)) <= len(data)


_VALID_NAL = st.builds(
    lambda header, body: bytes([header]) + add_emulation_prevention(body) + b"\x80",
    st.integers(0, 0x7F).filter(lambda h: 1 <= h & 0x1F <= 23),
    st.binary(max_size=40),
)


@FUZZ
@given(st.lists(_VALID_NAL, min_size=1, max_size=8),
       st.lists(st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01"]), min_size=8, max_size=8),
       st.integers(0, 3))
def test_fuzz_valid_annexb_detected_and_split(nals, start_codes, trailing_zeros):
    # First start code 4 bytes: a 3-byte one may legitimately also chain as AVCC.
    codes = [b"\x00\x00\x00\x01", *start_codes[1:]]
    buf = b"".join(c + n for c, n in zip(codes, nals, strict=False)) + b"\x00" * trailing_zeros
    assert [bytes(n.data) for n in split_annexb(buf)] == nals
    assert detect_framing(buf) is Framing.ANNEXB


@FUZZ
@given(st.lists(_VALID_NAL, min_size=1, max_size=8))
def test_fuzz_valid_avcc_detected_and_split(nals):
    buf = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
    assert [bytes(n.data) for n in split_avcc(buf)] == nals
    # _VALID_NAL is at least 2 bytes, so the buffer never starts 00 00 00 01.
    assert detect_framing(buf) is Framing.AVCC
