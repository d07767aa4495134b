"""H.264 encoders behind one interface, producing what a Helix host sends back.

Every `encode()` call gives exactly ONE Annex-B access unit (docs/protocol.md): 4-byte
start codes on every NAL, and on keyframes SPS and PPS first, then the IDR slices —
the shape H2+ hosts produce from VideoToolbox output. Backends:

* `x264` (`encoders/x264.py`) — libx264 through PyAV, everywhere;
* `videotoolbox` (`encoders/videotoolbox.py`) — PyAV `h264_videotoolbox`, macOS only.

`open_encoder("auto", ...)` picks VideoToolbox on macOS when it opens, else libx264.
An encoder serves one picture size; `EncoderPool` reopens it when the size changes.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction

from helixdiag.errors import HelixdiagError
from helixdiag.protocol import FrameLayout

__all__ = [
    "EncodeFailed",
    "EncodedFrame",
    "Encoder",
    "EncoderPool",
    "EncoderUnavailable",
    "PyAVEncoder",
    "normalize_access_unit",
    "open_encoder",
]

START_CODE = b"\x00\x00\x00\x01"
NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 6, 7, 8, 9


@dataclass(frozen=True)
class EncodedFrame:
    data: bytes  # ONE Annex-B access unit, 4-byte start codes; SPS+PPS before the IDR on keyframes
    is_keyframe: bool
    pts: int

    def __repr__(self) -> str:
        kind = "key" if self.is_keyframe else "delta"
        return f"EncodedFrame({len(self.data)} bytes, {kind}, pts={self.pts})"


class EncoderUnavailable(HelixdiagError):
    """The encoder cannot be opened here (the reason is in the message)."""


class EncodeFailed(Exception):
    """A frame failed to encode."""


class Encoder(ABC):
    """One H.264 encoder for one picture size."""

    name: str = "?"  # "x264" / "videotoolbox"
    width: int
    height: int
    bitrate: int

    @abstractmethod
    def encode(
        self, pixels, layout: FrameLayout, *, force_keyframe: bool = False, pts: int = 0
    ) -> EncodedFrame:
        """Encode one raw frame (`layout` must have this encoder's size); ValueError for a
        short buffer or a wrong size, EncodeFailed when the codec fails."""

    @abstractmethod
    def set_bitrate(self, bps: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- Annex-B


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B buffer (start codes and trailing zeros removed).

    Emulation prevention guarantees 00 00 01 never occurs inside a NAL, so the split is
    exact. Encoder output only; helixdiag.h264 is the strict parser for wire data."""
    nals = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        while end > start and data[end - 1] == 0:
            end -= 1
        if end > start:
            nals.append(data[start:end])
        pos = nxt
    return nals


def normalize_access_unit(
    data: bytes, *, keyframe: bool, param_sets: tuple[bytes, bytes] | None,
    drop_types: frozenset[int] = frozenset(),
) -> tuple[bytes, tuple[bytes, bytes] | None]:
    """Rewrite one encoder packet as the host's access unit: 4-byte start codes, AUDs and
    `drop_types` removed, and on keyframes SPS then PPS first (taken from `param_sets`
    when the packet lacks them). Returns the AU and the parameter sets to remember."""
    nals = [n for n in split_nals(data) if (n[0] & 0x1F) not in drop_types and (n[0] & 0x1F) != NAL_AUD]
    if not keyframe:
        return START_CODE + START_CODE.join(nals), param_sets
    sps = [n for n in nals if n[0] & 0x1F == NAL_SPS]
    pps = [n for n in nals if n[0] & 0x1F == NAL_PPS]
    rest = [n for n in nals if n[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
    if sps and pps:
        param_sets = (sps[-1], pps[-1])
    elif param_sets is None:
        raise EncodeFailed("keyframe without SPS/PPS and no earlier parameter sets to repeat")
    return START_CODE + START_CODE.join([*param_sets, *rest]), param_sets


# --------------------------------------------------------------------------- PyAV base


class PyAVEncoder(Encoder):
    """Shared PyAV plumbing: conversion, one AU per frame, keyframe forcing, reopening."""

    codec_name: str = ""
    drop_nal_types: frozenset[int] = frozenset()

    def __init__(self, width: int, height: int, *, bitrate: int = 8_000_000, gop: int = 120, fps: int = 60):
        from helixdiag.encoders.convert import FrameConverter, coded_size

        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        if bitrate <= 0 or gop <= 0 or fps <= 0:
            raise ValueError(f"bitrate, gop and fps must be positive (got {bitrate}, {gop}, {fps})")
        self.width, self.height = width, height
        self.coded_width, self.coded_height = coded_size(width, height)
        self.bitrate, self.gop, self.fps = bitrate, gop, fps
        self._converter = FrameConverter()
        self._param_sets: tuple[bytes, bytes] | None = None
        self._count = 0
        self._closed = False
        self.reopens = 0  # contexts opened after the first (bitrate change, drained codec)
        self._ctx = self._open_context()
        self._reopen_pending = False

    # backends fill these in
    @abstractmethod
    def _options(self) -> dict[str, str]: ...

    def _configure(self, ctx) -> None:  # noqa: B027 - optional hook
        """Backend-specific context attributes (threads, ...)."""

    def _open_context(self):
        import av

        try:
            ctx = av.CodecContext.create(self.codec_name, "w")
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderUnavailable(f"{self.codec_name} is not available in this PyAV build: {exc}") from exc
        ctx.width = self.coded_width
        ctx.height = self.coded_height
        ctx.pix_fmt = "nv12"
        ctx.time_base = Fraction(1, self.fps)
        ctx.framerate = Fraction(self.fps, 1)
        ctx.bit_rate = self.bitrate
        ctx.gop_size = self.gop
        ctx.max_b_frames = 0
        self._configure(ctx)
        ctx.options = self._options()
        try:
            ctx.open()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderUnavailable(
                f"cannot open {self.codec_name} at {self.coded_width}x{self.coded_height}: {exc}"
            ) from exc
        return ctx

    @property
    def options(self) -> dict[str, str]:
        return self._options()

    def encode(self, pixels, layout: FrameLayout, *, force_keyframe: bool = False, pts: int = 0) -> EncodedFrame:
        import av
        from av.video.frame import PictureType

        if self._closed:
            raise EncodeFailed(f"{self.name} encoder is closed")
        if (layout.width, layout.height) != (self.width, self.height):
            raise ValueError(
                f"{layout.width}x{layout.height} frame for a {self.width}x{self.height} encoder "
                "(reopen on size changes; EncoderPool does)"
            )
        frame = self._converter.convert(pixels, layout)
        if self._reopen_pending:
            try:
                self._ctx = self._open_context()
            except EncoderUnavailable as exc:
                raise EncodeFailed(f"reopening {self.name}: {exc}") from exc
            self._reopen_pending = False
            self.reopens += 1
        frame.pts = self._count
        self._count += 1
        if force_keyframe:
            frame.pict_type = PictureType.I
        try:
            packets = self._ctx.encode(frame)
            if not packets:
                # A buffering codec (should not happen with the zero-latency settings):
                # drain it so this frame still gets its own AU, reopen before the next.
                packets = self._ctx.encode(None)
                self._reopen_pending = True
        except av.FFmpegError as exc:
            raise EncodeFailed(f"{self.name} failed on frame {self._count - 1}: {exc}") from exc
        if len(packets) != 1:
            raise EncodeFailed(f"{self.name} produced {len(packets)} packets for one frame, expected 1")
        packet = packets[0]
        key = bool(packet.is_keyframe)
        data, self._param_sets = normalize_access_unit(
            bytes(packet), keyframe=key, param_sets=self._param_sets, drop_types=self.drop_nal_types
        )
        return EncodedFrame(data=data, is_keyframe=key, pts=pts)

    def set_bitrate(self, bps: int) -> None:
        """Takes effect on the next frame by reopening the codec (that frame is an IDR):
        neither libx264 through PyAV (no VBV to reconfigure, see x264.py) nor FFmpeg's
        VideoToolbox wrapper changes the bitrate of an open context."""
        if bps <= 0:
            raise ValueError(f"bitrate must be positive, got {bps}")
        if bps != self.bitrate:
            self.bitrate = bps
            self._reopen_pending = True

    def close(self) -> None:
        self._closed = True
        self._ctx = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.width}x{self.height} {self.bitrate} bit/s gop {self.gop}>"


# --------------------------------------------------------------------------- choosing

_KINDS = {
    "auto": "auto",
    "x264": "x264", "libx264": "x264",
    "videotoolbox": "videotoolbox", "vt": "videotoolbox", "h264_videotoolbox": "videotoolbox",
}


def open_encoder(
    kind: str = "auto", *, width: int, height: int, bitrate: int = 8_000_000, gop: int = 120, fps: int = 60
) -> tuple[Encoder, str]:
    """Open an encoder; returns it with a one-line reason for the choice."""
    from helixdiag.encoders.videotoolbox import VideoToolboxEncoder
    from helixdiag.encoders.x264 import X264Encoder

    chosen = _KINDS.get(kind.lower())
    if chosen is None:
        raise EncoderUnavailable(f"unknown encoder {kind!r} (choose auto, x264 or videotoolbox)")
    kw = {"bitrate": bitrate, "gop": gop, "fps": fps}
    if chosen == "x264":
        return X264Encoder(width, height, **kw), "x264: requested"
    if chosen == "videotoolbox":
        return VideoToolboxEncoder(width, height, **kw), "videotoolbox: requested"
    if sys.platform != "darwin":
        return X264Encoder(width, height, **kw), "auto: not macOS, using libx264"
    try:
        return VideoToolboxEncoder(width, height, **kw), "auto: VideoToolbox opened"
    except EncoderUnavailable as exc:
        return X264Encoder(width, height, **kw), f"auto: VideoToolbox unavailable ({exc}), using libx264"


class EncoderPool:
    """Holds one encoder and reopens it when the frame size changes, so callers (the
    reference server) need not: `pool.encode(pixels, layout, ...)`. The first frame after
    a reopen is a keyframe, like a new VideoToolbox session."""

    def __init__(self, kind: str = "auto", *, bitrate: int = 8_000_000, gop: int = 120, fps: int = 60):
        self.kind = kind
        self.bitrate, self.gop, self.fps = bitrate, gop, fps
        self.encoder: Encoder | None = None
        self.reason: str | None = None
        self.opened = 0  # encoders opened so far

    def get(self, width: int, height: int) -> Encoder:
        enc = self.encoder
        if enc is not None and (enc.width, enc.height) == (width, height):
            return enc
        if enc is not None:
            enc.close()
            self.encoder = None
        enc, self.reason = open_encoder(
            self.kind, width=width, height=height, bitrate=self.bitrate, gop=self.gop, fps=self.fps
        )
        self.encoder = enc
        self.opened += 1
        return enc

    def encode(self, pixels, layout: FrameLayout, *, force_keyframe: bool = False, pts: int = 0) -> EncodedFrame:
        return self.get(layout.width, layout.height).encode(
            pixels, layout, force_keyframe=force_keyframe, pts=pts
        )

    def set_bitrate(self, bps: int) -> None:
        self.bitrate = bps
        if self.encoder is not None:
            self.encoder.set_bitrate(bps)

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
            self.encoder = None
