"""The guest agent's frame exchange: the same client code as `send`, but each reply is kept
as bytes for the host to judge (decoding needs PyAV, which a guest does not have), and the
frames sent are the host's, carried in the payload (making them needs numpy)."""

from __future__ import annotations

import base64
import dataclasses
import pkgutil
from typing import Any

from helixdiag import client
from helixdiag.protocol import FrameResponse, PixelFormat, frame_layout

FRAME_RESOURCE = "frame-{w}x{h}-{fmt}-{n}.raw"  # in the payload, beside this module


def frame_name(width: int, height: int, fmt: PixelFormat, index: int) -> str:
    return FRAME_RESOURCE.format(w=width, h=height, fmt=PixelFormat(fmt).name.lower(), n=index)


class ReplaySource:
    """The frames the host rendered (frames.SyntheticSource), read from the payload."""

    def __init__(self, width: int, height: int, fmt: PixelFormat) -> None:
        self.width, self.height, self.format = width, height, PixelFormat(fmt)
        self.layout = frame_layout(fmt, width, height)

    def frame(self, index: int) -> bytearray:
        data = pkgutil.get_data(__package__, frame_name(self.width, self.height, self.format, index))
        if data is None or len(data) != self.layout.size:
            raise ValueError(f"the payload carries no frame {index} at {self.width}x{self.height}")
        return bytearray(data)


class Recorder:
    """A judge (client.Judge) that keeps every FRAME_RESPONSE for the host."""

    def __init__(self, result: client.ExchangeResult, opts: client.ExchangeOptions) -> None:
        self.replies: list[dict[str, Any]] = []
        self.result, self.opts = result, opts

    def check(self, resp: FrameResponse, expected: object) -> None:
        # The header's flag is all a guest can read; the host checks the NAL units themselves.
        if resp.is_keyframe:
            self.result.keyframes += 1
        self.replies.append({
            "pts": resp.pts, "dts": resp.dts, "is_keyframe": bool(resp.is_keyframe), "session_id": resp.session_id,
            "nals": [base64.b64encode(bytes(n)).decode("ascii") for n in resp.nals],
        })

    def finish(self) -> None:
        pass

    def evidence(self) -> dict[str, Any]:
        """What the host needs to judge the replies as the StreamChecker would have here."""
        width, height = self.opts.size
        return {"replies": self.replies, "size": [width, height], "format": PixelFormat(self.opts.format).name,
                "sent": "frames.SyntheticSource frames 0.. (rendered on the host, carried in the payload)"}


def recording_exchange(opts: client.ExchangeOptions) -> client.ExchangeResult:
    """client.exchange with the host's frames and a Recorder: the raw replies go into
    `result.raw`, which the report carries home (helixdiag.agent.judge)."""
    recorders: list[Recorder] = []

    def judge(result: client.ExchangeResult, options: client.ExchangeOptions) -> Recorder:
        recorders.append(Recorder(result, options))
        return recorders[-1]

    width, height = opts.size
    opts = dataclasses.replace(opts, source=ReplaySource(width, height, opts.format), decode=False)  # type: ignore[arg-type]
    result = client.exchange(opts, judge)
    result.raw = recorders[0].evidence()
    return result
