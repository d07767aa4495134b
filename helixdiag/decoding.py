"""Decode what a host sends back, to check it is a real picture of the right size.

`StreamDecoder` wraps FFmpeg's `h264` decoder. Access units go in one at a time (the
FRAME_RESPONSE payload, Annex-B); for zero-latency streams without reordering (baseline,
what Helix hosts produce) each AU gives exactly one picture at once. The luma of each
picture is returned cropped to the size the SPS signals.

Every decoder failure becomes `UndecodableStream` — a P-frame before any keyframe,
garbage, a truncated slice (`strict=True` sets FFmpeg's `err_detect=explode` so damage
is reported instead of concealed) — never another exception type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import numpy as np

__all__ = ["DecodedPicture", "StreamDecoder", "UndecodableStream"]

_Y8_FORMATS = frozenset({
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray",
})


class UndecodableStream(Exception):
    """The decoder rejected an access unit."""


@dataclass(frozen=True)
class DecodedPicture:
    width: int
    height: int
    luma: np.ndarray = field(repr=False)  # (height, width) uint8, a private copy
    key_frame: bool
    pict_type: str = "?"


class StreamDecoder:
    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self.aus = 0  # access units fed
        self.pictures = 0  # pictures returned
        self._open()

    def _open(self) -> None:
        ctx = av.CodecContext.create("h264", "r")
        ctx.thread_type = "SLICE"  # frame threads would delay output by a frame per thread
        if self.strict:
            ctx.options = {"err_detect": "explode"}
        self._ctx = ctx

    def decode(self, access_unit) -> list[DecodedPicture]:
        """Decode one Annex-B access unit; usually returns exactly one picture."""
        data = bytes(access_unit)
        self.aus += 1
        if not data:
            # An empty packet would put FFmpeg into draining mode.
            raise UndecodableStream(f"access unit #{self.aus} is empty")
        try:
            frames = self._ctx.decode(av.Packet(data))
        except (av.FFmpegError, ValueError, OverflowError, MemoryError) as exc:
            raise UndecodableStream(
                f"access unit #{self.aus} ({len(data)} bytes, starts {data[:8].hex()}) "
                f"cannot be decoded: {exc}"
            ) from exc
        return self._pictures(frames)

    def flush(self) -> list[DecodedPicture]:
        """Pictures still held by the decoder; the decoder is ready for a new stream after."""
        try:
            frames = self._ctx.decode(None)
        except (av.FFmpegError, ValueError) as exc:
            raise UndecodableStream(f"flushing the decoder failed: {exc}") from exc
        finally:
            self._open()
        return self._pictures(frames)

    def _pictures(self, frames) -> list[DecodedPicture]:
        out = []
        for frame in frames:
            out.append(_picture(frame))
        self.pictures += len(out)
        return out


def _picture(frame: av.VideoFrame) -> DecodedPicture:
    w, h = frame.width, frame.height
    if frame.format.name not in _Y8_FORMATS:
        frame = frame.reformat(format="gray")
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w].copy()
    pict = getattr(frame.pict_type, "name", str(frame.pict_type))
    return DecodedPicture(width=w, height=h, luma=luma, key_frame=bool(frame.key_frame), pict_type=pict)
