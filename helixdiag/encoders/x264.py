"""libx264 through PyAV, set up like a realtime VideoToolbox session.

Settings: preset ultrafast, tune zerolatency (no lookahead, no frame threads), no
B-frames, profile baseline (x264 signals Constrained Baseline: profile_idc 66,
constraint_set0/1), keyint = gop, `forced-idr=1` so a forced keyframe (frame
pict_type I) is an IDR. Rate control: ABR at `bitrate`.

* Headers: GLOBAL_HEADER is not set, so x264 repeats SPS+PPS in front of every IDR
  (checked by the tests); the base class also re-inserts remembered ones if a keyframe
  ever lacks them. x264's version SEI (first frame only, ~600 bytes of option text) is
  dropped so the AU looks like the host's: SPS, PPS, IDR slices.
* One AU per frame: with zerolatency and sliced threads libx264 returns the packet of
  each frame from the same `encode` call (checked); the base class would drain and
  reopen a codec that buffered.
* Threads (2-core machine, 1080p NV12, ultrafast): auto sliced threads (x264 picks 2
  slices here) is the fastest setting that keeps one AU per frame; frame threads are
  slightly faster per frame on average but hold 1–2 frames back (measured figures in
  the module's tests/report). Each slice is its own NAL, so P-frames carry 2 slice NALs.
* Bitrate changes reopen the codec at the next frame (an IDR). In-place changes need
  x264_encoder_reconfig, which FFmpeg's wrapper only calls usefully when VBV was
  enabled with maxrate == bitrate (measured: with maxrate above the bitrate the new
  target is ignored), and PyAV cannot change maxrate after open.
"""

from __future__ import annotations

from helixdiag.encoders import NAL_SEI, PyAVEncoder

__all__ = ["X264Encoder"]


class X264Encoder(PyAVEncoder):
    name = "x264"
    codec_name = "libx264"
    drop_nal_types = frozenset({NAL_SEI})

    def __init__(
        self, width: int, height: int, *, bitrate: int = 8_000_000, gop: int = 120, fps: int = 60,
        threads: int = 0, thread_type: str = "SLICE", preset: str = "ultrafast",
    ):
        self.threads = threads  # 0 = auto (x264: 2 slices on 2 cores)
        self.thread_type = thread_type
        self.preset = preset
        super().__init__(width, height, bitrate=bitrate, gop=gop, fps=fps)

    def _configure(self, ctx) -> None:
        ctx.thread_count = self.threads
        ctx.thread_type = self.thread_type

    def _options(self) -> dict[str, str]:
        return {
            "preset": self.preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "forced-idr": "1",
            "bf": "0",
        }
