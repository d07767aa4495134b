"""VideoToolbox through PyAV (`h264_videotoolbox`), macOS only — what the real host uses.

Realtime, hardware only (`allow_sw=0`), no B-frames, profile baseline, keyframe
interval = gop; a forced keyframe sets the frame's pict_type to I, which FFmpeg maps to
kVTEncodeFrameOptionKey_ForceKeyFrame. FFmpeg's wrapper emits Annex-B with SPS/PPS in
front of keyframes when GLOBAL_HEADER is off; the base class normalises the AU anyway.
Bitrate changes reopen the session at the next frame. Untested off macOS: elsewhere
opening raises EncoderUnavailable without trying.

Caveat (from FFmpeg's videotoolboxenc.c, not observed here): the wrapper pops finished
frames without waiting (`vtenc_q_pop(vtctx, !frame, ...)`) and returns nothing for the
first frame, so output usually lags input by a frame. The base class then drains the
session (VTCompressionSessionCompleteFrames) to keep one AU per request and reopens it,
which makes every frame an IDR and costs a session creation per frame — correct, but
unlike the host. Watch `reopens`; a direct PyObjC VideoToolbox binding would avoid it.
"""

from __future__ import annotations

import sys

from helixdiag.encoders import EncoderUnavailable, PyAVEncoder

__all__ = ["VideoToolboxEncoder"]


class VideoToolboxEncoder(PyAVEncoder):
    name = "videotoolbox"
    codec_name = "h264_videotoolbox"

    def __init__(self, width: int, height: int, *, bitrate: int = 8_000_000, gop: int = 120, fps: int = 60):
        if sys.platform != "darwin":
            raise EncoderUnavailable("VideoToolbox exists only on macOS")
        import av

        if self.codec_name not in av.codecs_available:
            raise EncoderUnavailable("this PyAV build has no h264_videotoolbox encoder")
        super().__init__(width, height, bitrate=bitrate, gop=gop, fps=fps)

    def _options(self) -> dict[str, str]:
        return {
            "realtime": "1",
            "allow_sw": "0",
            "profile": "baseline",
            "bf": "0",
        }
