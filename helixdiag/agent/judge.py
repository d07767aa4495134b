"""Back on the host: the replies a guest agent recorded, judged as `send` judges them —
framing, SPS/PPS, decoded with PyAV and compared with the frame that was sent (rendered
again here: the same synthetic frame, the same index)."""

from __future__ import annotations

import base64
import copy
from typing import Any

from helixdiag import net
from helixdiag.client import ExchangeOptions, ExchangeResult
from helixdiag.client.checker import StreamChecker
from helixdiag.findings import Finding
from helixdiag.frames import SyntheticSource
from helixdiag.probes.guest_tcp import FRAME_SAID
from helixdiag.protocol import FrameResponse, PixelFormat

JUDGED_ON = "host"


def judge_report(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of a guest agent's report with every recorded exchange judged here."""
    report = copy.deepcopy(report)
    for probe in report.get("probes", []):
        evidence = probe.get("evidence") or {}
        frame = evidence.get("frame")
        if isinstance(frame, dict) and "raw" in frame:
            judged = evidence["frame"] = judge_frame(frame)
            said = FRAME_SAID.format(frame.get("status"))
            if probe.get("summary", "").endswith(said):
                probe["summary"] = probe["summary"][: -len(said)] + FRAME_SAID.format(judged["status"])
        sub = evidence.get("subscription")
        if isinstance(sub, dict) and "raw" in sub:
            judged = evidence["subscription"] = judge_frame(sub)
            _fail_on(probe, judged)
    return report


def _fail_on(probe: dict[str, Any], judged: dict[str, Any]) -> None:
    """A subscription the guest could only count (no decoder there) that the host finds
    broken — no SPS/PPS, AVCC, undecodable — fails with what the host found."""
    if probe.get("status") == "fail":
        return
    found = next((f for f in judged.get("findings") or [] if f.get("severity") == "fail"), None)
    if found is not None:
        probe.update(status="fail", failure_id=found["failure_id"],
                     summary=f"{found['message']} (judged on the host from the recorded frames)")


def judge_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """One recorded exchange (ExchangeResult.to_dict() with `raw`) → the same dict as a local
    exchange gives, with what needs the decoder filled in, and `judged_on`."""
    raw = frame["raw"]
    width, height = raw["size"]
    fmt = PixelFormat[raw["format"]]
    mode = frame.get("mode", "request")
    opts = ExchangeOptions(endpoint=net.Endpoint("tcp", host="127.0.0.1", port=1), mode=mode,
                           frames=len(raw["replies"]), size=(width, height), format=fmt)
    result = ExchangeResult(frame.get("endpoint", ""), mode)
    for found in frame.get("findings") or []:  # what the guest saw (no reply, ignored request, …)
        result.findings[found["failure_id"]] = Finding(found["failure_id"], found["message"],
                                                       found.get("evidence") or {}, found.get("count", 1))
    checker = StreamChecker(result, opts)
    source = SyntheticSource(width, height, fmt)
    for index, reply in enumerate(raw["replies"]):
        result.frames_received += 1
        resp = FrameResponse(tuple(base64.b64decode(n) for n in reply["nals"]), pts=reply.get("pts", 0),
                             dts=reply.get("dts", 0), is_keyframe=reply.get("is_keyframe", False),
                             session_id=reply.get("session_id", 1))
        checker.check(resp, expected=(source.frame(index), source.layout, index) if mode == "request" else None)
    checker.finish()
    here = result.to_dict()
    out = {k: v for k, v in frame.items() if k != "raw"}
    out["frames"] = {**frame.get("frames", {}), "decoded": result.frames_decoded, "keyframes": result.keyframes}
    out.update(status=here["status"], psnr_db=here["psnr_db"], h264=here["h264"], findings=here["findings"],
               judged_on=JUDGED_ON, replies_recorded=len(raw["replies"]))
    return out
