"""Synthetic but recognisable raw frames, and the measurements that recognise them.

`SyntheticSource` makes what a guest would send (NV12 / BGRx / RGBx, GStreamer layout,
docs/protocol.md, pixel formats): diagonal bars sliding with the frame number, a box sweeping across the
lower half, and the frame number stamped as two rows of 20 black/white blocks. After a
trip through an H.264 encoder and decoder, `read_frame_number` reads the stamp back from
the luma plane and `psnr` compares that luma with what was sent (`luma_plane`). A host
that encodes its own console (or an old frame) instead of our pixels is caught because
the number is wrong and the PSNR low.

`test_card` is a static colour-bar picture standing for the VM console, which a real
host encodes when a FRAME_REQUEST carries no pixels.

Stamp: 40 bits, MSB first, left to right then second row: marker 1011, the frame number
modulo 2**24 (24 bits), CRC-8 (poly 0x07) of those three bytes, end marker 0110. White
block = 1 (Y 235), black = 0 (Y 16). Blocks are 16·k px (k = min(W//640, H//360) ≥ 1),
8 px for pictures narrower than 352 or lower than 48, none below 168×24 (those frames
carry no stamp and read back as None).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from helixdiag.protocol import FrameLayout, PixelFormat, frame_layout

__all__ = [
    "STAMP_MODULUS",
    "SyntheticSource",
    "luma_plane",
    "psnr",
    "read_frame_number",
    "stamp_geometry",
    "test_card",
]

STAMP_MODULUS = 1 << 24
_MARK_START = (1, 0, 1, 1)
_MARK_END = (0, 1, 1, 0)
_BLOCKS_PER_ROW = 20
_STAMP_ROWS = 2
_Y_BLACK, _Y_WHITE = 16, 235

_BAR_PERIOD = 96  # pixels along the diagonal
_BAR_SPEED = 5  # pixels per frame
_BOX_SPEED = 7


# --------------------------------------------------------------------------- colour maths


def _rgb_to_yuv601(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited range, integer maths as swscale's default RGB→YUV (±1)."""
    r = rgb[..., 0].astype(np.int32)
    g = rgb[..., 1].astype(np.int32)
    b = rgb[..., 2].astype(np.int32)
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return y.astype(np.uint8), u.astype(np.uint8), v.astype(np.uint8)


def _pack(rgb: np.ndarray, layout: FrameLayout) -> bytearray:
    """An (H, W, 3) uint8 RGB picture in `layout` (padding bytes zero, X bytes 255)."""
    h, w = layout.height, layout.width
    out = bytearray(layout.size)
    arr = np.frombuffer(out, np.uint8)
    if layout.format == PixelFormat.NV12:
        y, u, v = _rgb_to_yuv601(rgb)
        eh, ew = h + (h & 1), w + (w & 1)
        arr[:layout.stride * h].reshape(h, layout.stride)[:, :w] = y
        # 4:2:0 chroma: average each 2×2 block (edge-replicated for odd sizes).
        uv = np.stack([u, v], axis=-1).astype(np.uint16)
        uv = np.pad(uv, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        uv = (uv[0::2, 0::2] + uv[1::2, 0::2] + uv[0::2, 1::2] + uv[1::2, 1::2] + 2) // 4
        uv_rows = arr[layout.uv_offset:layout.uv_offset + layout.stride * eh // 2]
        n = min(ew, layout.stride)
        uv_rows.reshape(eh // 2, layout.stride)[:, :n] = uv.astype(np.uint8).reshape(eh // 2, ew)[:, :n]
        return out
    px = arr.reshape(h, layout.stride)[:, :4 * w].reshape(h, w, 4)
    order = (2, 1, 0) if layout.format == PixelFormat.BGRA8888 else (0, 1, 2)
    px[..., :3] = rgb[..., order]
    px[..., 3] = 255
    return out


def luma_plane(buf, layout: FrameLayout) -> np.ndarray:
    """The (H, W) uint8 luma of a raw frame: a view of the Y plane for NV12, BT.601
    limited-range Y computed like swscale for BGRx/RGBx."""
    arr = _as_array(buf, layout)
    h, w = layout.height, layout.width
    if layout.format == PixelFormat.NV12:
        return arr[:layout.stride * h].reshape(h, layout.stride)[:, :w]
    px = arr.reshape(h, layout.stride)[:, :4 * w].reshape(h, w, 4)
    if layout.format == PixelFormat.BGRA8888:
        b, g, r = px[..., 0], px[..., 1], px[..., 2]
    else:
        r, g, b = px[..., 0], px[..., 1], px[..., 2]
    y = 66 * r.astype(np.uint32) + 129 * g.astype(np.uint32) + 25 * b.astype(np.uint32)
    return (((y + 128) >> 8) + 16).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two same-shaped 8-bit pictures, in dB (inf if equal)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr of pictures of different shapes {a.shape} and {b.shape}")
    diff = a.astype(np.int32) - b.astype(np.int32)
    mse = float(np.mean(diff * diff)) if diff.size else 0.0
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def _as_array(buf, layout: FrameLayout) -> np.ndarray:
    arr = np.frombuffer(memoryview(buf).cast("B"), np.uint8)
    if arr.size < layout.size:
        raise ValueError(
            f"{layout.format.name} {layout.width}x{layout.height} (stride {layout.stride}) "
            f"needs {layout.size} bytes, got {arr.size}"
        )
    return arr[:layout.size]


# --------------------------------------------------------------------------- stamp


def stamp_geometry(width: int, height: int) -> tuple[int, int, int] | None:
    """(block size, x0, y0) of the frame-number stamp for a picture size, or None."""
    k = max(1, min(width // 640, height // 360))
    for block in (16 * k, 8):
        if (_BLOCKS_PER_ROW + 2) * block <= width and (_STAMP_ROWS + 1) * block <= height:
            return block, block, block
    return None


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _stamp_bits(n: int) -> list[int]:
    value = n % STAMP_MODULUS
    raw = value.to_bytes(3, "big")
    word = (value << 8) | _crc8(raw)
    data = [(word >> (31 - i)) & 1 for i in range(32)]
    return [*_MARK_START, *data, *_MARK_END]


def _block_rects(block: int, x0: int, y0: int):
    for i in range(_BLOCKS_PER_ROW * _STAMP_ROWS):
        row, col = divmod(i, _BLOCKS_PER_ROW)
        x = x0 + col * block
        y = y0 + row * block
        yield i, x, y


def read_frame_number(luma: np.ndarray) -> int | None:
    """The frame number stamped by `SyntheticSource` (modulo 2**24), or None.

    Tries the stamp geometry of the picture's size and of one pixel less in each
    direction (an odd-sized frame comes back from H.264 padded to even). Every block must
    be clearly black or white and fairly flat, both markers and the CRC must match.
    """
    luma = np.asarray(luma)
    if luma.ndim != 2:
        raise ValueError(f"luma must be a 2-D array, got shape {luma.shape}")
    h, w = luma.shape
    tried: set[tuple[int, int, int]] = set()
    for cw, ch in ((w, h), (w - 1, h), (w, h - 1), (w - 1, h - 1)):
        geo = stamp_geometry(cw, ch) if cw > 0 and ch > 0 else None
        if geo is None or geo in tried:
            continue
        tried.add(geo)
        value = _read_stamp(luma, *geo)
        if value is not None:
            return value
    return None


def _read_stamp(luma: np.ndarray, block: int, x0: int, y0: int) -> int | None:
    margin = block // 4
    bits = []
    for _, x, y in _block_rects(block, x0, y0):
        cell = luma[y + margin:y + block - margin, x + margin:x + block - margin]
        mean = float(cell.mean())
        if float(cell.std()) > 30.0:
            return None
        if mean >= 170.0:
            bits.append(1)
        elif mean <= 80.0:
            bits.append(0)
        else:
            return None
    if tuple(bits[:4]) != _MARK_START or tuple(bits[-4:]) != _MARK_END:
        return None
    word = 0
    for bit in bits[4:36]:
        word = (word << 1) | bit
    value, crc = word >> 8, word & 0xFF
    if _crc8(value.to_bytes(3, "big")) != crc:
        return None
    return value


# --------------------------------------------------------------------------- sources


def _bars(length: int) -> np.ndarray:
    """Soft-edged bars along the diagonal: a trapezoid wave, 0..1, period _BAR_PERIOD."""
    t = (np.arange(length) % _BAR_PERIOD) / _BAR_PERIOD
    return np.clip(np.minimum(t, 1.0 - t) * 8.0 - 1.5, 0.0, 1.0)


class SyntheticSource:
    """Moving test frames in one format and size; `frame(n)` returns a fresh bytearray
    of exactly `layout.size` bytes (stride padding zero), so earlier frames stay valid."""

    def __init__(self, width: int, height: int, fmt: PixelFormat | int, stride: int | None = None):
        self.layout = frame_layout(fmt, width, height, stride)
        self.width = width
        self.height = height
        self.format = self.layout.format
        self.geometry = stamp_geometry(width, height)
        length = width + height + _BAR_PERIOD + 2
        wave = _bars(length)
        # Colours of the two bar states: dark blue-ish and light orange-ish.
        dark = np.array([30, 60, 120], np.float64)
        light = np.array([230, 180, 90], np.float64)
        rgb = (dark + (light - dark) * wave[:, None]).round().astype(np.uint8)
        self._box_w = max(8, width // 8) & ~1
        self._box_h = max(8, height // 5) & ~1
        if self.format == PixelFormat.NV12:
            y, u, v = _rgb_to_yuv601(rgb[None, :, :])
            self._base_y = np.ascontiguousarray(y[0])
            # Chroma base: one (Cb, Cr) pair per chroma sample along the diagonal.
            half = rgb[::2]
            _, cu, cv = _rgb_to_yuv601(half[None, :, :])
            self._base_uv = np.ascontiguousarray(np.stack([cu[0], cv[0]], axis=-1).reshape(-1))
        else:
            order = (2, 1, 0) if self.format == PixelFormat.BGRA8888 else (0, 1, 2)
            px = np.empty((length, 4), np.uint8)
            px[:, :3] = rgb[:, order]
            px[:, 3] = 255
            self._base_px = px.reshape(-1)
            self._white = np.array([255, 255, 255, 255], np.uint8)
            self._black = np.array([0, 0, 0, 255], np.uint8)
            self._box = np.array([250, 250, 250, 255], np.uint8)

    # ----------------------------------------------------------------- frame

    def frame(self, n: int) -> bytearray:
        out = bytearray(self.layout.size)
        arr = np.frombuffer(out, np.uint8)
        off = (n * _BAR_SPEED) % _BAR_PERIOD
        if self.format == PixelFormat.NV12:
            self._fill_nv12(arr, n, off)
        else:
            self._fill_rgbx(arr, n, off)
        return out

    def _box_x(self, n: int) -> int:
        span = max(1, self.width - self._box_w)
        return ((n * _BOX_SPEED) % span) & ~1

    def _fill_nv12(self, arr: np.ndarray, n: int, off: int) -> None:
        lay = self.layout
        h, w, s = lay.height, lay.width, lay.stride
        eh, ew = h + (h & 1), w + (w & 1)
        y = arr[:s * h].reshape(h, s)[:, :w]
        np.copyto(y, np.lib.stride_tricks.as_strided(self._base_y[off:], shape=(h, w), strides=(1, 1)))
        uv_w = min(ew, s)
        uv = arr[lay.uv_offset:lay.uv_offset + s * (eh // 2)].reshape(eh // 2, s)[:, :uv_w]
        coff = 2 * (off // 2)
        np.copyto(uv, np.lib.stride_tricks.as_strided(
            self._base_uv[coff:], shape=(eh // 2, uv_w), strides=(2, 1)))
        # Box in the lower half.
        bx, by = self._box_x(n), (h // 2) & ~1
        y[by:by + self._box_h, bx:bx + self._box_w] = 225
        uv[by // 2:(by + self._box_h) // 2, bx:bx + self._box_w] = 128
        if self.geometry is not None:
            block, x0, y0 = self.geometry
            for i, bit in enumerate(_stamp_bits(n)):
                row, col = divmod(i, _BLOCKS_PER_ROW)
                bx0, by0 = x0 + col * block, y0 + row * block
                y[by0:by0 + block, bx0:bx0 + block] = _Y_WHITE if bit else _Y_BLACK
            sx1 = x0 + _BLOCKS_PER_ROW * block
            sy1 = y0 + _STAMP_ROWS * block
            uv[y0 // 2:sy1 // 2, x0:sx1] = 128

    def _fill_rgbx(self, arr: np.ndarray, n: int, off: int) -> None:
        lay = self.layout
        h, w, s = lay.height, lay.width, lay.stride
        rows = arr.reshape(h, s)[:, :4 * w]
        np.copyto(rows, np.lib.stride_tricks.as_strided(
            self._base_px[4 * off:], shape=(h, 4 * w), strides=(4, 1)))
        px = rows.reshape(h, w, 4)
        bx, by = self._box_x(n), (h // 2) & ~1
        px[by:by + self._box_h, bx:bx + self._box_w] = self._box
        if self.geometry is not None:
            block, x0, y0 = self.geometry
            for i, bit in enumerate(_stamp_bits(n)):
                row, col = divmod(i, _BLOCKS_PER_ROW)
                bx0, by0 = x0 + col * block, y0 + row * block
                px[by0:by0 + block, bx0:bx0 + block] = self._white if bit else self._black

    def luma(self, buf) -> np.ndarray:
        """Shortcut for `luma_plane(buf, self.layout)`."""
        return luma_plane(buf, self.layout)


# --------------------------------------------------------------------------- test card

_BAR_COLOURS = np.array([
    [191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0],
    [191, 0, 191], [191, 0, 0], [0, 0, 191],
], np.uint8)


def test_card(
    width: int, height: int, fmt: PixelFormat | int, stride: int | None = None
) -> tuple[bytes, FrameLayout]:
    """75 % colour bars over a castellation strip and a grey ramp: a static picture that
    stands for the VM console (what a host encodes for a request without pixels).

    Returns the buffer (immutable, cached: building a 1080p NV12 card takes ~150 ms) and
    its layout."""
    layout = frame_layout(fmt, width, height, stride)
    return _test_card_bytes(layout), layout


@functools.lru_cache(maxsize=8)
def _test_card_bytes(layout: FrameLayout) -> bytes:
    width, height = layout.width, layout.height
    cols = np.minimum(np.arange(width) * 7 // max(width, 1), 6)
    rgb = np.empty((height, width, 3), np.uint8)
    top = max(1, height * 2 // 3)
    mid = max(top, height * 3 // 4)
    rgb[:top] = _BAR_COLOURS[cols][None]
    rev = np.where(cols % 2 == 0, 6 - cols, 7)  # blue, black, magenta, black, cyan, ...
    castle = np.vstack([_BAR_COLOURS, [[19, 19, 19]]]).astype(np.uint8)[rev]
    rgb[top:mid] = castle[None]
    ramp = (np.arange(width) * 255 // max(width - 1, 1)).astype(np.uint8)
    rgb[mid:] = ramp[None, :, None]
    return bytes(_pack(rgb, layout))


test_card.__test__ = False  # not a pytest test despite the name
