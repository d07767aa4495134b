"""vsockenc layer (guest): the element is installed, the pipeline passes the lint, and the
element's GST_DEBUG log shows a healthy sequence."""

from __future__ import annotations

import os
import re

from helixdiag import pipeline
from helixdiag.layers import Side
from helixdiag.probes import register
from helixdiag.probes.context import ProbeContext
from helixdiag.results import Outcome, failed, from_findings, passed, skipped, warned

# Elements whose absence fails the Helix pipeline the same way ("Internal data stream error").
COMPANIONS = ("h264parse", "pipewiresrc")
_PROP = re.compile(r"^  ([a-z][\w-]*)\s+: (.*)$")
_DEFAULT = re.compile(r"Default: (.+?)\s*$")


def parse_inspect_properties(text: str) -> dict[str, dict[str, str]]:
    """`gst-inspect-1.0 ELEMENT` → {property: {"blurb", "default"}} (the Element Properties block)."""
    props: dict[str, dict[str, str]] = {}
    current = None
    in_block = False
    for line in text.splitlines():
        if line.startswith("Element Properties:"):
            in_block = True
            continue
        if in_block and line and not line.startswith(" "):
            break
        if not in_block:
            continue
        if m := _PROP.match(line):
            current = props.setdefault(m.group(1), {"blurb": m.group(2).strip()})
        elif current is not None and (d := _DEFAULT.search(line)):
            current["default"] = d.group(1).strip('"')
    return props


@register("vsockenc.element", layer="vsockenc", side=Side.GUEST, timeout=30,
          description="vsockenc is installed (gst-inspect-1.0), with h264parse and pipewiresrc")
def vsockenc_element(ctx: ProbeContext) -> Outcome:
    timeout = max(5.0, ctx.config.timeout * 3)
    result = ctx.obs.gst_inspect("vsockenc", timeout)
    if result.error and "not installed" in result.error:
        if ctx.absent_is_skip("vsockenc", "pipeline", "gst_log"):
            return skipped("GStreamer is not installed here (not a guest)")
        return failed("vsockenc-missing", "gst-inspect-1.0 is not installed: GStreamer is missing")
    evidence: dict[str, object] = {"gst_plugin_path": os.environ.get("GST_PLUGIN_PATH"),
                                   "command": "gst-inspect-1.0 vsockenc"}
    missing = [e for e in COMPANIONS if not ctx.obs.gst_inspect(e, timeout).ok]
    evidence["companions_missing"] = missing
    if not result.ok:
        evidence["gst_inspect"] = (result.error or result.stdout.strip() or result.stderr.strip())[:300]
        if ctx.absent_is_skip("vsockenc", "pipeline", "gst_log"):
            return skipped("no vsockenc element on this machine (not a guest)", **evidence)
        return failed("vsockenc-missing", f"GStreamer has no vsockenc element ({evidence['gst_inspect']})",
                      **evidence)
    props = parse_inspect_properties(result.stdout)
    evidence["properties"] = props
    filename = re.search(r"Filename\s+(\S+)", result.stdout)
    evidence["plugin_file"] = filename.group(1) if filename else None
    if missing:
        return failed("vsockenc-missing", f"vsockenc is installed but {', '.join(missing)} is not: "
                      "the pipeline fails the same way", **evidence)
    port = props.get("tcp-port", {}).get("default")
    return passed(f"vsockenc installed ({evidence['plugin_file']}), tcp-port default {port}", **evidence)


def _pipeline_text(ctx: ProbeContext) -> tuple[str | None, str]:
    if ctx.config.pipeline:
        return ctx.config.pipeline, ctx.config.source("pipeline")
    summary = ctx.gst_log()
    found = summary.pipeline if summary else None
    if found:
        return found, f"the desktop-bridge log ({ctx.config.gst_log})"
    return None, ""


@register("vsockenc.pipeline", layer="vsockenc", side=Side.GUEST,
          description="the pipeline string passes the lint (element order, caps, bandwidth, port)")
def vsockenc_pipeline(ctx: ProbeContext) -> Outcome:
    text, source = _pipeline_text(ctx)
    if text is None:
        return skipped("no pipeline to lint (give --pipeline, or --gst-log with the desktop-bridge log)")
    cfg = ctx.config
    host = cfg.host if cfg.asked_for("host") else None
    port = cfg.port if cfg.asked_for("port") else None
    try:
        result = pipeline.lint(text, host=host, port=port)
    except pipeline.PipelineSyntaxError as exc:
        return failed("gst-pipeline-order", f"the pipeline does not parse: {exc}", pipeline=text, source=source)
    evidence = {"pipeline": text, "source": source, "findings": [f.to_dict() for f in result.findings],
                "notes": result.notes, "corrected": result.corrected, "vsockenc": result.vsockenc}
    return from_findings(result.findings, "the pipeline passes every rule", evidence,
                         remedy_suffix=f" Corrected pipeline: {result.corrected}" if result.corrected else "")


@register("vsockenc.log", layer="vsockenc", side=Side.GUEST, timeout=60,
          description="the element's GST_DEBUG log shows the healthy per-frame sequence")
def vsockenc_log(ctx: ProbeContext) -> Outcome:
    if not ctx.config.gst_log:
        return skipped("no vsockenc log given (--gst-log FILE; GST_DEBUG=vsockenc:5 output)")
    summary = ctx.gst_log()
    if summary is None:
        path, source = ctx.config.gst_log, ctx.config.source("gst_log")
        return warned("gst-log-missing", f"no such file {path} (from {source}): check the path; "
                      "the pipeline may never have started", log=path, log_from=source)
    facts = summary.to_dict()
    facts.pop("findings", None)
    evidence = {"log": ctx.config.gst_log, **facts}
    sent, done = summary.frames_sent, summary.frames_finished
    return from_findings(summary.findings, f"{sent} frames sent, {done} finished; the sequence is healthy",
                         evidence)
