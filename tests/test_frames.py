"""helixdiag.frames: synthetic frames, the frame-number stamp, luma and PSNR."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from helixdiag.frames import (
    STAMP_MODULUS,
    SyntheticSource,
    luma_plane,
    psnr,
    read_frame_number,
    stamp_geometry,
    test_card,
)
from helixdiag.protocol import PixelFormat, frame_layout

pytestmark = pytest.mark.timeout(120)

NV12, BGRX, RGBX = PixelFormat.NV12, PixelFormat.BGRA8888, PixelFormat.RGBA8888
ALL_FORMATS = [NV12, BGRX, RGBX]


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("size", [(1920, 1080), (641, 361), (1366, 768), (64, 32)])
def test_frame_has_exactly_the_layout_size(fmt, size):
    src = SyntheticSource(*size, fmt)
    assert src.layout == frame_layout(fmt, *size)
    buf = src.frame(3)
    assert len(buf) == src.layout.size
    assert bytes(src.frame(3)) == bytes(buf)  # deterministic
    assert bytes(src.frame(4)) != bytes(buf)


def test_nv12_gstreamer_sizes_and_custom_stride():
    # PROTOCOL.md §7 table.
    assert len(SyntheticSource(1366, 768, NV12).frame(0)) == 1_575_936
    assert len(SyntheticSource(1920, 1080, NV12).frame(0)) == 3_110_400
    assert len(SyntheticSource(1920, 1080, BGRX).frame(0)) == 8_294_400
    src = SyntheticSource(1366, 768, NV12, stride=1400)
    buf = src.frame(9)
    assert len(buf) == 1400 * 768 * 3 // 2
    # Stride padding stays zero and the picture is unchanged by the stride.
    rows = np.frombuffer(buf, np.uint8)[:1400 * 768].reshape(768, 1400)
    assert not rows[:, 1366:].any()
    tight = SyntheticSource(1366, 768, NV12, stride=1368)
    assert np.array_equal(src.luma(buf), tight.luma(tight.frame(9)))


def test_frames_are_fresh_buffers():
    src = SyntheticSource(320, 240, NV12)
    a = src.frame(1)
    keep = bytes(a)
    src.frame(2)
    assert bytes(a) == keep


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (640, 360), (641, 361), (1366, 768), (200, 30)])
def test_stamp_reads_back_from_raw_luma(fmt, size):
    src = SyntheticSource(*size, fmt)
    for n in (0, 1, 77, 4095, 123_456, STAMP_MODULUS - 1):
        assert read_frame_number(src.luma(src.frame(n))) == n
    assert read_frame_number(src.luma(src.frame(STAMP_MODULUS + 5))) == 5


def test_stamp_blocks_are_big():
    assert stamp_geometry(1920, 1080)[0] == 48
    assert stamp_geometry(1280, 720)[0] == 32
    assert stamp_geometry(640, 360)[0] == 16
    assert stamp_geometry(641, 361)[0] == 16
    assert stamp_geometry(200, 30)[0] == 8  # too small for 16 px blocks
    assert stamp_geometry(64, 32) is None  # too small for any stamp


def test_small_frames_have_no_stamp():
    src = SyntheticSource(64, 32, NV12)
    assert read_frame_number(src.luma(src.frame(5))) is None


def test_stamp_survives_padding_to_even_size():
    src = SyntheticSource(1279, 719, NV12)  # 1279 → 1280 changes the block size
    luma = np.asarray(src.luma(src.frame(42)))
    padded = np.pad(luma, ((0, 1), (0, 1)), mode="edge")
    assert read_frame_number(padded) == 42


def test_random_and_foreign_pictures_do_not_decode():
    rng = np.random.default_rng(7)
    for _ in range(50):
        assert read_frame_number(rng.integers(0, 256, (360, 640), dtype=np.uint8)) is None
    # Random black/white blocks in the stamp area: markers + CRC reject nearly all.
    src = SyntheticSource(640, 360, NV12)
    block, x0, y0 = stamp_geometry(640, 360)
    hits = 0
    for _ in range(300):
        luma = np.array(src.luma(src.frame(1)))
        bits = rng.integers(0, 2, 40)
        for i, bit in enumerate(bits):
            r, c = divmod(i, 20)
            luma[y0 + r * block:y0 + (r + 1) * block, x0 + c * block:x0 + (c + 1) * block] = 235 if bit else 16
        hits += read_frame_number(luma) is not None
    assert hits <= 1
    assert read_frame_number(np.full((360, 640), 128, np.uint8)) is None
    assert read_frame_number(np.zeros((360, 640), np.uint8)) is None
    card, lay = test_card(640, 360, NV12)
    assert read_frame_number(luma_plane(card, lay)) is None


def test_flipped_bit_is_rejected():
    src = SyntheticSource(640, 360, NV12)
    block, x0, y0 = stamp_geometry(640, 360)
    clean = np.array(src.luma(src.frame(1000)))
    assert read_frame_number(clean) == 1000
    for i in (0, 5, 20, 30, 39):  # marker, data, data, crc, end marker
        luma = clean.copy()
        r, c = divmod(i, 20)
        cell = luma[y0 + r * block:y0 + (r + 1) * block, x0 + c * block:x0 + (c + 1) * block]
        cell[...] = 251 - cell  # swap black (16) and white (235)
        assert read_frame_number(luma) is None, i


def test_read_frame_number_rejects_non_2d():
    with pytest.raises(ValueError):
        read_frame_number(np.zeros((4, 4, 3), np.uint8))


def test_luma_plane_nv12_is_a_view_of_the_y_plane():
    lay = frame_layout(NV12, 6, 4, stride=8)
    buf = bytearray(range(lay.size))
    y = luma_plane(buf, lay)
    assert y.shape == (4, 6)
    assert y[1, 0] == 8 and y[3, 5] == 29
    buf[8] = 200
    assert y[1, 0] == 200  # a view, not a copy


@pytest.mark.parametrize("fmt", [BGRX, RGBX], ids=lambda f: f.name)
def test_luma_plane_rgb_is_bt601_limited(fmt):
    lay = frame_layout(fmt, 4, 1)
    colours = [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 0, 255)]  # R, G, B
    px = bytearray()
    for r, g, b in colours:
        px += bytes((b, g, r, 255) if fmt == BGRX else (r, g, b, 255))
    assert luma_plane(px, lay).tolist() == [[16, 235, 82, 41]]


def test_luma_plane_short_buffer():
    lay = frame_layout(BGRX, 16, 16)
    with pytest.raises(ValueError, match="needs 1024 bytes, got 1000"):
        luma_plane(bytes(1000), lay)


def test_psnr():
    a = np.full((8, 8), 100, np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(48.13, abs=0.01)
    assert psnr(np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        psnr(a, a[:4])


def test_consecutive_frames_differ_clearly():
    src = SyntheticSource(640, 360, NV12)
    base = src.luma(src.frame(10))
    for m in (11, 12, 30, 500):
        assert psnr(base, src.luma(src.frame(m))) < 25


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
def test_test_card(fmt):
    card, lay = test_card(641, 361, fmt)
    assert lay == frame_layout(fmt, 641, 361)
    assert isinstance(card, bytes) and len(card) == lay.size
    assert test_card(641, 361, fmt)[0] is card  # cached
    luma = luma_plane(card, lay)
    # 75 % white bar on the left, 75 % blue on the right (BT.601: 180 and 35).
    assert abs(int(luma[10, 5]) - 180) <= 2
    assert abs(int(luma[10, 635]) - 35) <= 2
    src = SyntheticSource(641, 361, fmt)
    assert psnr(luma, src.luma(src.frame(0))) < 15


def test_test_card_nv12_chroma():
    data, lay = test_card(64, 32, NV12)
    card = np.frombuffer(data, np.uint8)
    uv = card[lay.uv_offset:].reshape(16, 64)
    # Rightmost top bar is blue: Cb high, Cr low.
    assert uv[2, 62] > 180 and uv[2, 63] < 130


@pytest.mark.parametrize("fmt,budget_ms", [(NV12, 10.0), (BGRX, 25.0)], ids=["NV12", "BGRX"])
def test_generation_is_fast(fmt, budget_ms):
    src = SyntheticSource(1920, 1080, fmt)
    src.frame(0)
    times = []
    for n in range(20):
        t = time.perf_counter()
        src.frame(n)
        times.append(time.perf_counter() - t)
    # Measured ~0.15 ms (NV12) and ~1.1 ms (BGRx); budgets leave room for a busy CI box.
    assert sorted(times)[len(times) // 2] * 1000 < budget_ms
