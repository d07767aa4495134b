"""encoder layer (host): an H.264 session opens and produces SPS/PPS + IDR."""

from __future__ import annotations

import time

from helixdiag import h264
from helixdiag.encoders import EncodeFailed, EncoderUnavailable, open_encoder
from helixdiag.frames import SyntheticSource
from helixdiag.layers import Side
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.protocol import PixelFormat
from helixdiag.results import Outcome, failed, passed, warned

FRAMES = 3


@register("encoder.session", layer="encoder", side=Side.HOST,
          description="open the platform H.264 encoder (VideoToolbox on macOS, else libx264), encode 3 frames")
def encoder_session(ctx: ProbeContext) -> Outcome:
    width, height = ctx.config.size
    try:
        encoder, reason = open_encoder("auto", width=width, height=height, bitrate=4_000_000, gop=60, fps=60)
    except EncoderUnavailable as exc:
        return failed("encoder-unavailable", f"no H.264 encoder opens: {exc}")
    source = SyntheticSource(width, height, PixelFormat.NV12)
    timings = []
    try:
        frames = []
        for i in range(FRAMES):
            t0 = time.perf_counter()
            frames.append(encoder.encode(source.frame(i), source.layout, force_keyframe=i == 0, pts=i))
            timings.append((time.perf_counter() - t0) * 1000)
    except (EncodeFailed, ValueError) as exc:
        return failed("encoder-error", f"{encoder.name} failed to encode: {exc}", encoder=encoder.name)
    finally:
        encoder.close()
    summary = h264.access_unit_summary(h264.split_annexb(frames[0].data))
    evidence = {"encoder": encoder.name, "choice": reason, "size": f"{width}x{height}",
                "ms_per_frame": [round(t, 2) for t in timings],
                "first_frame_nals": [h264.NalType(t).name if t in h264.NalType._value2member_map_ else t
                                     for t in summary.nal_types],
                "profile": summary.sps.profile if summary.sps else None}
    if encoder.name.startswith("videotoolbox"):
        # PyAV returns a VideoToolbox packet late, so each frame gets a fresh session (an IDR).
        evidence["ms_per_frame_includes"] = "session creation: every frame is a new VideoToolbox session (all IDR)"
    if not (summary.has_sps and summary.has_pps and summary.has_idr and summary.params_before_idr):
        return failed("encoder-error", f"{encoder.name}'s first frame lacks SPS/PPS before an IDR", **evidence)
    expected = ctx.obs.backend.hardware_encoder
    if expected and not encoder.name.startswith(expected):
        return warned("encoder-software-fallback",
                      f"{encoder.name} encodes, but the real host uses {expected} here ({reason})", **evidence)
    return passed(f"{encoder.name} encodes {width}x{height} "
                  f"({evidence['profile']}, {min(timings):.1f} ms/frame)", **evidence)
