"""helixdiag.encoders + helixdiag.decoding with the real libx264 and FFmpeg h264 decoder."""

from __future__ import annotations

import os
import random
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixdiag.decoding import StreamDecoder, UndecodableStream
from helixdiag.encoders import (
    EncodedFrame,
    EncodeFailed,
    EncoderPool,
    EncoderUnavailable,
    open_encoder,
)
from helixdiag.encoders.convert import FrameConverter, coded_size
from helixdiag.encoders.videotoolbox import VideoToolboxEncoder
from helixdiag.encoders.x264 import X264Encoder
from helixdiag.errors import HelixdiagError
from helixdiag.frames import SyntheticSource, luma_plane, psnr, read_frame_number, test_card
from helixdiag.protocol import PixelFormat, frame_layout

pytestmark = pytest.mark.timeout(120)

NV12, BGRX, RGBX = PixelFormat.NV12, PixelFormat.BGRA8888, PixelFormat.RGBA8888
SPS, PPS, IDR, NON_IDR, SEI = 7, 8, 5, 1, 6


def nal_types(au: bytes) -> list[int]:
    """NAL types of one AU, checking that every NAL has a 4-byte start code."""
    assert au.startswith(b"\x00\x00\x00\x01"), au[:8].hex()
    parts = au.split(b"\x00\x00\x00\x01")[1:]
    for part in parts:
        assert part, "empty NAL"
        assert b"\x00\x00\x01" not in part, "a 3-byte start code inside the AU"
        assert part[-1] != 0, "trailing zero bytes"
        assert part[0] & 0x80 == 0, "forbidden_zero_bit set"
    return [p[0] & 0x1F for p in parts]


def check_shape(ef: EncodedFrame) -> None:
    types = nal_types(ef.data)
    if ef.is_keyframe:
        assert types[:2] == [SPS, PPS], types
        assert types[2:] and set(types[2:]) == {IDR}, types
    else:
        assert types and set(types) == {NON_IDR}, types


CASES = [
    (1920, 1080, NV12, None),
    (1920, 1080, BGRX, None),
    (1920, 1080, RGBX, None),
    (1280, 720, NV12, None),
    (1280, 720, BGRX, None),
    (640, 360, NV12, None),
    (640, 360, RGBX, 4 * 640 + 64),  # padded RGB rows
    (640, 362, NV12, None),  # H ≡ 2 mod 4: the copy path
    (641, 361, NV12, None),  # odd: padded to 642x362
    (641, 361, BGRX, None),
    (641, 361, RGBX, None),
    (1366, 768, NV12, 1368),  # GStreamer's rounded stride
    (1366, 768, BGRX, None),
]


@pytest.mark.parametrize(
    "width,height,fmt,stride", CASES, ids=[f"{w}x{h}-{f.name}-{s}" for w, h, f, s in CASES]
)
def test_round_trip(width, height, fmt, stride):
    frames = 8
    src = SyntheticSource(width, height, fmt, stride)
    enc, reason = open_encoder("x264", width=width, height=height)
    dec = StreamDecoder()
    sent = [src.frame(n) for n in range(frames)]
    out = []
    for n, buf in enumerate(sent):
        ef = enc.encode(buf, src.layout, force_keyframe=(n == 5), pts=1_000_000 * n)
        check_shape(ef)
        assert ef.pts == 1_000_000 * n
        out.append(ef)
    enc.close()
    assert [ef.is_keyframe for ef in out] == [n in (0, 5) for n in range(frames)]

    ew, eh = coded_size(width, height)
    for n, (ef, buf) in enumerate(zip(out, sent, strict=True)):
        pics = dec.decode(ef.data)
        assert len(pics) == 1, f"frame {n}: {len(pics)} pictures from one AU"
        pic = pics[0]
        assert (pic.width, pic.height) == (ew, eh)
        assert pic.luma.shape == (eh, ew)
        assert pic.key_frame == ef.is_keyframe
        ours = luma_plane(buf, src.layout)
        assert psnr(pic.luma[:height, :width], ours) >= 30.0, n
        assert read_frame_number(pic.luma) == n
        # A stale or foreign frame is caught: wrong number and low PSNR.
        other = luma_plane(sent[(n + 3) % frames], src.layout)
        assert psnr(pic.luma[:height, :width], other) < 25.0
        assert read_frame_number(pic.luma) != (n + 3) % frames
    assert dec.flush() == []  # zero latency: nothing held back


def test_odd_size_is_padded_by_replicating_edges():
    src = SyntheticSource(641, 361, NV12)
    frame = FrameConverter().convert(src.frame(2), src.layout)
    assert (frame.width, frame.height) == (642, 362)
    y = np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)[:362, :642]
    ours = luma_plane(src.frame(2), src.layout)
    assert np.array_equal(y[:361, :641], ours)
    assert np.array_equal(y[:361, 641], ours[:, 640])
    assert np.array_equal(y[361, :641], ours[360])


def _planes(frame):
    eh = frame.height
    y, uv = frame.planes[0], frame.planes[1]
    return (
        np.frombuffer(y, np.uint8).reshape(-1, y.line_size)[:eh, :frame.width],
        np.frombuffer(uv, np.uint8).reshape(-1, uv.line_size)[:eh // 2, :frame.width],
    )


@pytest.mark.parametrize("width,height,stride", [
    (640, 360, None), (640, 362, None), (641, 361, None), (1366, 768, 1368), (1366, 768, 1400),
    (642, 360, 643),  # odd stride
])
def test_nv12_conversion_keeps_both_planes(width, height, stride):
    src = SyntheticSource(width, height, NV12, stride)
    lay = src.layout
    buf = src.frame(6)
    frame = FrameConverter().convert(buf, lay)
    ew, eh = coded_size(width, height)
    assert (frame.width, frame.height, frame.format.name) == (ew, eh, "nv12")
    y, uv = _planes(frame)
    assert np.array_equal(y[:height, :width], luma_plane(buf, lay))
    raw = np.frombuffer(buf, np.uint8)
    src_uv = raw[lay.uv_offset:lay.uv_offset + lay.stride * (eh // 2)].reshape(eh // 2, lay.stride)
    assert np.array_equal(uv, src_uv[:, :ew])


@pytest.mark.parametrize("fmt", [BGRX, RGBX], ids=lambda f: f.name)
def test_rgb_conversion_matches_bt601(fmt):
    card, lay = test_card(641, 361, fmt)
    frame = FrameConverter().convert(card, lay)
    y, uv = _planes(frame)
    diff = y[:361, :641].astype(int) - luma_plane(card, lay)
    assert np.abs(diff).max() <= 1
    # Top-right bar is 75 % blue: Cb ≈ 212, Cr ≈ 114 (BT.601 limited).
    cb, cr = int(uv[20, 630]), int(uv[20, 631])
    assert abs(cb - 212) <= 3 and abs(cr - 114) <= 3


def test_libx264_itself_rejects_odd_sizes():
    # Why the converter pads: 4:2:0 H.264 cannot carry an odd size at all.
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 641, 361, "nv12"
    ctx.time_base = Fraction(1, 60)
    with pytest.raises(av.FFmpegError):
        ctx.open()


def test_sps_is_constrained_baseline_with_the_coded_size():
    h264 = pytest.importorskip("helixdiag.h264")
    for w, h in [(1366, 768), (641, 361)]:
        src = SyntheticSource(w, h, NV12, 1368 if w == 1366 else None)
        enc = X264Encoder(w, h)
        ef = enc.encode(src.frame(0), src.layout)
        sps = next(n for n in h264.split_annexb(ef.data) if n.type == SPS)
        info = h264.parse_sps(sps)
        assert info.profile_idc == 66 and info.constraint_set(1), info
        assert (info.width, info.height) == coded_size(w, h)


def test_periodic_keyframes_follow_gop():
    src = SyntheticSource(320, 180, NV12)
    enc = X264Encoder(320, 180, gop=4)
    keys = []
    for n in range(13):
        ef = enc.encode(src.frame(n), src.layout)
        check_shape(ef)
        keys.append(ef.is_keyframe)
    assert [i for i, k in enumerate(keys) if k] == [0, 4, 8, 12]


@pytest.mark.parametrize("width,height,bitrate", [(640, 360, 300_000), (1920, 1080, 1_000_000)])
def test_stamp_survives_low_bitrate(width, height, bitrate):
    src = SyntheticSource(width, height, NV12)
    enc = X264Encoder(width, height, bitrate=bitrate)
    dec = StreamDecoder()
    for n in range(12):
        pic = dec.decode(enc.encode(src.frame(n), src.layout).data)[0]
        assert read_frame_number(pic.luma) == n


def test_no_x264_sei_on_the_first_frame():
    src = SyntheticSource(320, 180, NV12)
    ef = X264Encoder(320, 180).encode(src.frame(0), src.layout)
    assert SEI not in nal_types(ef.data)
    assert b"x264" not in ef.data


def test_encoder_copies_the_input_buffer():
    # NV12 goes in without a copy; the caller may reuse its buffer after encode().
    src = SyntheticSource(640, 360, NV12)
    enc = X264Encoder(640, 360)
    buf = src.frame(0)
    ef = enc.encode(buf, src.layout)
    buf[:] = src.frame(9)
    pic = StreamDecoder().decode(ef.data)[0]
    assert read_frame_number(pic.luma) == 0


def test_frame_threads_still_give_one_au_per_frame():
    # Frame threads make libx264 buffer; the base class drains and reopens instead.
    src = SyntheticSource(320, 180, NV12)
    enc = X264Encoder(320, 180, threads=2, thread_type="FRAME")
    dec = StreamDecoder()
    for n in range(4):
        ef = enc.encode(src.frame(n), src.layout)
        check_shape(ef)
        pics = dec.decode(ef.data)
        assert len(pics) == 1 and read_frame_number(pics[0].luma) == n
    assert enc.reopens >= 1


def test_set_bitrate_reopens_with_an_idr_and_takes_effect():
    src = SyntheticSource(640, 360, NV12)
    enc = X264Encoder(640, 360, bitrate=6_000_000)
    dec = StreamDecoder()
    sizes = []
    for n in range(40):
        if n == 20:
            enc.set_bitrate(150_000)
        ef = enc.encode(src.frame(n), src.layout)
        check_shape(ef)
        assert ef.is_keyframe == (n in (0, 20))
        assert len(dec.decode(ef.data)) == 1
        sizes.append(len(ef.data))
    assert enc.bitrate == 150_000 and enc.reopens == 1
    assert np.mean(sizes[25:40]) < np.mean(sizes[5:20]) / 3
    with pytest.raises(ValueError):
        enc.set_bitrate(0)


def test_pool_reopens_on_size_change_only():
    pool = EncoderPool("x264", bitrate=2_000_000)
    dec = StreamDecoder()
    plan = [(320, 180), (320, 180), (640, 360), (640, 360), (320, 180)]
    for n, (w, h) in enumerate(plan):
        src = SyntheticSource(w, h, NV12)
        ef = pool.encode(src.frame(n), src.layout)
        assert ef.is_keyframe == (n in (0, 2, 4))
        pic = dec.decode(ef.data)[0]
        assert (pic.width, pic.height) == (w, h)
        assert read_frame_number(pic.luma) == n
    assert pool.opened == 3
    assert pool.reason == "x264: requested"
    pool.close()
    assert pool.encoder is None


def test_wrong_size_layout_and_short_buffers():
    enc = X264Encoder(640, 360)
    with pytest.raises(ValueError, match="640x360 encoder"):
        enc.encode(bytes(frame_layout(NV12, 320, 180).size), frame_layout(NV12, 320, 180))
    for fmt in (NV12, BGRX, RGBX):
        lay = frame_layout(fmt, 640, 360)
        with pytest.raises(ValueError, match=f"needs {lay.size} bytes, got {lay.size - 1}"):
            enc.encode(bytes(lay.size - 1), lay)
    # The encoder is still usable afterwards.
    src = SyntheticSource(640, 360, NV12)
    assert enc.encode(src.frame(0), src.layout).is_keyframe
    enc.close()
    with pytest.raises(EncodeFailed):
        enc.encode(src.frame(1), src.layout)


def test_longer_buffer_is_accepted():
    src = SyntheticSource(320, 180, BGRX)
    ef = X264Encoder(320, 180).encode(bytes(src.frame(4)) + b"\0" * 100, src.layout)
    assert read_frame_number(StreamDecoder().decode(ef.data)[0].luma) == 4


def test_open_encoder_auto_on_linux():
    if sys.platform == "darwin":
        pytest.skip("Linux behaviour")
    enc, reason = open_encoder(width=320, height=180)
    assert isinstance(enc, X264Encoder) and enc.name == "x264"
    assert reason == "auto: not macOS, using libx264"
    assert (enc.width, enc.height, enc.bitrate) == (320, 180, 8_000_000)


def test_videotoolbox_is_unavailable_off_macos():
    if sys.platform == "darwin":
        pytest.skip("Linux behaviour")
    with pytest.raises(EncoderUnavailable, match="VideoToolbox exists only on macOS"):
        VideoToolboxEncoder(320, 180)
    with pytest.raises(EncoderUnavailable):
        open_encoder("videotoolbox", width=320, height=180)
    assert issubclass(EncoderUnavailable, HelixdiagError)


def test_auto_falls_back_when_videotoolbox_does_not_open(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")  # PyAV here has no h264_videotoolbox
    enc, reason = open_encoder("auto", width=320, height=180)
    assert isinstance(enc, X264Encoder)
    assert reason.startswith("auto: VideoToolbox unavailable (") and reason.endswith("using libx264")


def test_unknown_encoder_kind():
    with pytest.raises(EncoderUnavailable, match="unknown encoder"):
        open_encoder("nvenc", width=320, height=180)


# --------------------------------------------------------------------------- decoder


@pytest.fixture(scope="module")
def stream():
    src = SyntheticSource(320, 180, NV12)
    enc = X264Encoder(320, 180)
    return [enc.encode(src.frame(n), src.layout).data for n in range(4)]


def test_console_instead_of_our_pixels_is_caught():
    src = SyntheticSource(640, 360, NV12)
    enc = X264Encoder(640, 360)
    # A host that ignores PIXEL_DATA encodes its console (the test card) instead.
    card, card_layout = test_card(640, 360, NV12)
    assert card_layout == src.layout
    ef = enc.encode(card, card_layout)
    pic = StreamDecoder().decode(ef.data)[0]
    assert read_frame_number(pic.luma) is None
    assert psnr(pic.luma, luma_plane(src.frame(0), src.layout)) < 20


_RNG = random.Random(20261124)  # fixed: the same garbage on every run


@pytest.mark.parametrize("garbage", [
    _RNG.randbytes(3000),
    b"\x00\x00\x00\x01" + _RNG.randbytes(3000),
    b"\x00\x00\x00\x01\x67" + bytes(40),
    b"\x00\x00\x00\x01\x65" + _RNG.randbytes(200),
], ids=["random", "startcode-random", "zero-sps", "idr-without-sps"])
def test_garbage_is_undecodable(garbage):
    # Garbage never yields a picture: the decoder either rejects it or finds nothing in it.
    try:
        pictures = StreamDecoder().decode(garbage)
    except UndecodableStream as exc:
        assert "cannot be decoded" in str(exc)
    else:
        assert pictures == []


def test_p_frame_first_is_undecodable(stream):
    with pytest.raises(UndecodableStream):
        StreamDecoder().decode(stream[1])


def test_truncated_keyframe_is_undecodable(stream):
    with pytest.raises(UndecodableStream):
        StreamDecoder().decode(stream[0][: len(stream[0]) // 2])


def test_empty_access_unit(stream):
    dec = StreamDecoder()
    with pytest.raises(UndecodableStream, match="empty"):
        dec.decode(b"")
    # ... and the decoder is not left draining.
    assert len(dec.decode(stream[0])) == 1


def test_decoder_recovers_at_the_next_keyframe(stream):
    dec = StreamDecoder()
    with pytest.raises(UndecodableStream):
        dec.decode(os.urandom(500))
    pics = dec.decode(stream[0])
    assert len(pics) == 1 and pics[0].key_frame
    assert len(dec.decode(stream[1])) == 1


def test_flush_resets_for_a_new_stream(stream):
    dec = StreamDecoder()
    for au in stream:
        assert len(dec.decode(au)) == 1
    assert dec.flush() == []
    assert len(dec.decode(stream[0])) == 1
    assert (dec.aus, dec.pictures) == (5, 5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=600), prefix=st.booleans(), keyframe_first=st.booleans())
def test_fuzz_decoder_raises_only_undecodable(stream, data, prefix, keyframe_first):
    dec = StreamDecoder()
    if keyframe_first:
        dec.decode(stream[0])
    au = (b"\x00\x00\x00\x01" if prefix else b"") + data
    try:
        pics = dec.decode(au)
    except UndecodableStream:
        return
    assert len(pics) <= 1
