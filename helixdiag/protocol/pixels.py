"""Raw frames as GStreamer lays them out by default: stride, plane offsets, buffer size,
and names for the pixel formats a FRAME_REQUEST carries."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from helixdiag.compat import SLOTS
from helixdiag.protocol.messages import U32_MAX, PixelFormat


@dataclass(frozen=True, **SLOTS)
class FrameLayout:
    """Byte layout of one raw frame as GStreamer lays it out by default."""

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
