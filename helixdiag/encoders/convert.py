"""Raw guest buffer + `FrameLayout` → `av.VideoFrame` (nv12) for an H.264 encoder.

* NV12 with an even size, an even stride and H % 4 == 0 (1080p, 720p, 360p, 1366×768 with
  stride 1368, ...): **no copy** — the frame's planes point into the caller's buffer
  (PyAV `from_numpy_buffer` keeps the buffer alive; libx264 copies the picture into its
  own frame during `encode`, so the buffer may be reused afterwards).
* Other NV12 (H ≡ 2 mod 4, where PyAV's helper would miscompute the plane offset; odd
  strides; odd sizes): one copy, plane rows honouring the stride.
* BGRx/RGBx: a zero-copy `bgra`/`rgba` view, converted by swscale (`VideoReformatter`,
  BT.601 limited range, the swscale default) to nv12 — about 3–4 ms at 1080p here.

Odd sizes: 4:2:0 H.264 cannot signal an odd width or height (SPS frame cropping works
in units of 2 chroma-subsampled pixels) and libx264 refuses to open at one. So the frame
is padded to the next even size by replicating the last column/row, and the stream
carries the even size (a decoder returns e.g. 642×362 for 641×361 input). The chroma
plane of an odd-sized NV12 buffer already covers the even size (GStreamer lays out
ceil(W/2)×ceil(H/2) CbCr pairs), so only luma needs replicating.

A buffer shorter than `layout.size` raises ValueError (the server maps it to ERROR).
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from helixdiag.protocol import FrameLayout, PixelFormat

__all__ = ["FrameConverter", "coded_size", "to_video_frame"]

_RGB_FORMATS = {PixelFormat.BGRA8888: "bgra", PixelFormat.RGBA8888: "rgba"}


def coded_size(width: int, height: int) -> tuple[int, int]:
    """The size an H.264 4:2:0 stream carries for a picture: rounded up to even."""
    return width + (width & 1), height + (height & 1)


def _buffer_array(pixels, layout: FrameLayout) -> np.ndarray:
    try:
        mv = memoryview(pixels).cast("B")
    except TypeError as exc:
        raise ValueError(f"pixels must be a bytes-like buffer, got {type(pixels).__name__}") from exc
    if mv.nbytes < layout.size:
        raise ValueError(
            f"short pixel buffer: {layout.format.name} {layout.width}x{layout.height} "
            f"(stride {layout.stride}) needs {layout.size} bytes, got {mv.nbytes}"
        )
    return np.frombuffer(mv, np.uint8, count=layout.size)


class FrameConverter:
    """Converts raw buffers to nv12 `av.VideoFrame`s at the coded (even) size.

    Holds the swscale context between calls; one per encoder."""

    def __init__(self) -> None:
        self._reformatter = VideoReformatter()

    def convert(self, pixels, layout: FrameLayout) -> av.VideoFrame:
        arr = _buffer_array(pixels, layout)
        if layout.format == PixelFormat.NV12:
            return _nv12_frame(arr, layout)
        name = _RGB_FORMATS.get(layout.format)
        if name is None:
            raise ValueError(f"cannot encode pixel format {layout.format!r}")
        h, w = layout.height, layout.width
        view = arr.reshape(h, layout.stride)[:, :4 * w].reshape(h, w, 4)
        src = av.VideoFrame.from_numpy_buffer(view, format=name)
        out = self._reformatter.reformat(src, format="nv12")
        if (w | h) & 1:
            out = _pad_nv12(out, w, h)
        return out


def to_video_frame(pixels, layout: FrameLayout) -> av.VideoFrame:
    """One-off conversion (an encoder keeps a `FrameConverter` instead)."""
    return FrameConverter().convert(pixels, layout)


def _plane_array(plane, rows: int) -> np.ndarray:
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows]


def _nv12_frame(arr: np.ndarray, layout: FrameLayout) -> av.VideoFrame:
    h, w, s = layout.height, layout.width, layout.stride
    if not (w & 1) and not (s & 1) and h % 4 == 0:
        # from_numpy_buffer derives the UV offset as stride·H: exactly our layout.
        return av.VideoFrame.from_numpy_buffer(arr.reshape(h * 3 // 2, s), format="nv12", width=w)
    ew, eh = coded_size(w, h)
    frame = av.VideoFrame(ew, eh, "nv12")
    y = _plane_array(frame.planes[0], eh)
    src_y = arr[:s * h].reshape(h, s)
    y[:h, :w] = src_y[:, :w]
    uv = _plane_array(frame.planes[1], eh // 2)
    src_uv = arr[layout.uv_offset:layout.uv_offset + s * (eh // 2)].reshape(eh // 2, s)
    n = min(ew, s) & ~1  # whole CbCr pairs present in a row
    uv[:, :n] = src_uv[:, :n]
    if n < ew:  # a stride too narrow for the last pair (custom layouts only)
        uv[:, n:ew] = np.tile(uv[:, n - 2:n], (1, (ew - n) // 2))
    _replicate_edges(y, w, h, ew, eh)
    return frame


def _pad_nv12(frame: av.VideoFrame, w: int, h: int) -> av.VideoFrame:
    """Copy an odd-sized nv12 frame into an even-sized one, replicating the edges."""
    ew, eh = coded_size(w, h)
    out = av.VideoFrame(ew, eh, "nv12")
    y = _plane_array(out.planes[0], eh)
    y[:h, :w] = _plane_array(frame.planes[0], h)[:, :w]
    _replicate_edges(y, w, h, ew, eh)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    uv = _plane_array(out.planes[1], ch)
    uv[:, :2 * cw] = _plane_array(frame.planes[1], ch)[:, :2 * cw]
    return out


def _replicate_edges(y: np.ndarray, w: int, h: int, ew: int, eh: int) -> None:
    if ew > w:
        y[:h, w] = y[:h, w - 1]
    if eh > h:
        y[h, :ew] = y[h - 1, :ew]
