"""Every FRAME_RESPONSE judged: framing, parameter sets, SPS, decodability, and in request
mode the decoded picture against the one that was sent."""

from __future__ import annotations

import numpy as np

from helixdiag import h264, protocol
from helixdiag.client.result import MIN_PSNR_DB, ExchangeOptions, ExchangeResult
from helixdiag.decoding import StreamDecoder, UndecodableStream
from helixdiag.frames import luma_plane, psnr, read_frame_number
from helixdiag.protocol import FrameLayout, FrameResponse


def _acceptable_sizes(size: tuple[int, int]) -> set[tuple[int, int]]:
    """4:2:0 H.264 can only crop in 2-pixel steps, so an odd side comes back one larger."""
    w, h = size
    return {(w, h), (w + w % 2, h + h % 2)}


class StreamChecker:
    """Validates each FRAME_RESPONSE: framing, parameter sets, SPS, decodability, picture."""

    def __init__(self, result: ExchangeResult, opts: ExchangeOptions) -> None:
        self.result = result
        self.opts = opts
        self.decoder = StreamDecoder() if opts.decode else None
        self.seen_keyframe = False
        self.decode_broken = False

    def check(self, resp: FrameResponse, expected: tuple[protocol.Buffer, FrameLayout, int] | None) -> None:
        r = self.result
        frame = r.frames_received - 1
        scanout = self.opts.mode == "scanout"
        if resp.nal_count != 1:
            r.add("stream-nal-count", f"FRAME_RESPONSE carries {resp.nal_count} NAL entries; "
                  "hosts send 1 and the Go scanout reader reads only the first"
                  + (" (so do we here: the rest is not part of the picture)" if scanout else ""),
                  nal_count=resp.nal_count, frame=frame)
        # A subscriber reads exactly one entry, as desktop-bridge does; vsockenc joins them all.
        data = (bytes(resp.nals[0]) if resp.nals else b"") if scanout else resp.data
        if self.opts.save_to is not None:
            self.opts.save_to.write(data)
        framing = h264.detect_framing(data)
        if framing == h264.Framing.AVCC:
            r.add("stream-avcc", "H.264 is length-prefixed (AVCC), not Annex-B: h264parse cannot use it",
                  frame=frame, first_bytes=data[:8].hex(" "))
            return
        if framing != h264.Framing.ANNEXB:
            r.add("stream-undecodable", "reply is neither Annex-B nor AVCC H.264",
                  frame=frame, first_bytes=data[:8].hex(" "))
            return
        try:
            summary = h264.access_unit_summary(h264.split_annexb(data))
        except h264.H264Error as exc:
            r.add("stream-undecodable", f"H.264 does not parse: {exc}", frame=frame)
            return
        if summary.has_idr or resp.is_keyframe:
            r.keyframes += 1
            if not (summary.has_sps and summary.has_pps and summary.params_before_idr):
                r.add("stream-no-sps-pps", "keyframe without SPS/PPS before the IDR: h264parse "
                      "swallows every frame", frame=frame, has_sps=summary.has_sps, has_pps=summary.has_pps)
                return
            self.seen_keyframe = True
        if summary.sps is not None:
            r.profile = summary.sps.profile
            r.coded_size = (summary.sps.width, summary.sps.height)
            if expected is not None and r.coded_size not in _acceptable_sizes(self.opts.size):
                r.add("stream-wrong-picture",
                      f"host encoded {summary.sps.width}x{summary.sps.height}, we sent "
                      f"{self.opts.size[0]}x{self.opts.size[1]}",
                      frame=frame, sent=list(self.opts.size), received=list(r.coded_size))
        if self.decoder is None or self.decode_broken or not self.seen_keyframe:
            return
        try:
            pictures = self.decoder.decode(data)
        except UndecodableStream as exc:
            self.decode_broken = True
            r.add("stream-undecodable", f"decoder rejects frame {frame}: {exc}", frame=frame)
            return
        r.frames_decoded += len(pictures)
        if expected is not None and pictures:
            self._compare(pictures[-1].luma, *expected, frame)

    def _compare(self, decoded_luma: np.ndarray, pixels, layout: FrameLayout, index: int, frame: int) -> None:
        """The decoded picture against the pixels that were sent (not a re-rendering of them)."""
        r = self.result
        sent = luma_plane(pixels, layout)
        height, width = sent.shape
        if decoded_luma.shape[0] < height or decoded_luma.shape[1] < width:
            return  # size mismatch already reported from the SPS
        decoded_luma = decoded_luma[:height, :width]  # an odd size comes back padded to even
        quality = psnr(decoded_luma, sent)
        r.psnr_db.append(quality)
        number = read_frame_number(decoded_luma)
        if quality < MIN_PSNR_DB or (number is not None and number != index):
            r.add("stream-wrong-picture",
                  f"decoded frame {frame} is not the picture we sent (PSNR {quality:.1f} dB, "
                  f"frame stamp {number}, expected {index})",
                  frame=frame, psnr_db=round(quality, 2), stamp=number, expected_stamp=index)

    def finish(self) -> None:
        r = self.result
        if r.frames_received and not self.seen_keyframe and not (
            {"stream-no-sps-pps", "stream-avcc"} & r.findings.keys()
        ):
            if self.opts.mode == "scanout":  # pushed P-frames of a GOP that began before we subscribed
                r.add("scanout-mid-gop", f"{r.frames_received} frames pushed, none a keyframe: joined mid-GOP, "
                      "a viewer stays black until the next keyframe")
            else:
                r.add("stream-undecodable", f"{r.frames_received} frames received, none a decodable keyframe")
        # A missing SPS or AVCC framing explains undecodable frames; keep the cause only.
        if {"stream-no-sps-pps", "stream-avcc"} & r.findings.keys():
            r.findings.pop("stream-undecodable", None)

