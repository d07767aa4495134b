"""What a raw frame costs on the wire, in one place for every text that quotes it.

On the pixel path each frame crosses SLiRP's user-mode TCP as raw pixels, so the bytes per
frame set the frame rate. The catalog (`gst-bgra-bandwidth`), the lint and the docs quote
the same figures; they all come from `protocol.frame_layout` through here, so they cannot
drift apart (a hand-typed "2.65×" next to a computed "2.67×").
"""

from __future__ import annotations

from dataclasses import dataclass

from helixdiag.protocol import PixelFormat, frame_layout

REFERENCE_SIZE = (1920, 1080)  # the size the Helix desktop sends natively


@dataclass(frozen=True)
class FrameCost:
    """Bytes of one `format` frame at `width`×`height`, and of the same frame in NV12."""

    format: PixelFormat
    width: int
    height: int
    bytes_per_frame: int
    nv12_bytes_per_frame: int

    @property
    def ratio(self) -> float:
        """How many times the NV12 bytes, to two decimals (the figure every text prints)."""
        return round(self.bytes_per_frame / self.nv12_bytes_per_frame, 2)

    @property
    def ratio_text(self) -> str:
        return f"{self.ratio:.2f}×"


def frame_cost(fmt: PixelFormat | int, width: int, height: int) -> FrameCost:
    fmt = PixelFormat(fmt)
    return FrameCost(fmt, width, height, frame_layout(fmt, width, height).size,
                     frame_layout(PixelFormat.NV12, width, height).size)


def grouped(n: int) -> str:
    """8294400 → '8 294 400' (thin groups, as the docs print byte counts)."""
    return f"{n:,}".replace(",", " ")


BGRX_1080P = frame_cost(PixelFormat.BGRA8888, *REFERENCE_SIZE)
