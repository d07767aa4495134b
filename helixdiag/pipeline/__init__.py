"""Parse and lint gst-launch pipeline strings against the rules Helix's pipelines must follow.

`parse()` reads gst-launch syntax, following GStreamer's own lexer (gst/parse/parse.l) for
what these pipelines use: elements with `prop=value` (values may be quoted or escaped),
caps filters in links (`! video/x-raw(memory:DMABuf),format=(string)NV12 !`), `name=`
and references (`t. ! queue`), several chains, and a pasted `gst-launch-1.0 …` command
line. Anything malformed raises `PipelineSyntaxError` (a `UsageError`: exit 2, one line).

`lint()` checks the pipeline against the element-order and configuration rules of
`rules.RULES`, returns the findings (every one with a catalog id, the offending element,
the rule and the rule's source) and a corrected pipeline where the fix is mechanical. `vsockenc_properties()` / `vsockenc_endpoint()` let other probes reuse the
parse.

The package: `syntax` (the model, lexer and parser), `vsockenc_config` (vsockenc's
properties), `rules` (the lint rules), `editing` (how a fix edits a pipeline) and
`elements` (`--check`); this module holds `lint()`, its result and the corrections loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from helixdiag.errors import UsageError
from helixdiag.findings import Finding, HasFindings
from helixdiag.pipeline.editing import _Editor, _FixUnavailable
from helixdiag.pipeline.elements import check_elements
from helixdiag.pipeline.rules import _analyse, _ipv4, _Issue
from helixdiag.pipeline.syntax import (
    Caps,
    Element,
    Pipeline,
    PipelineSyntaxError,
    Prop,
    Ref,
    Structure,
    parse,
)
from helixdiag.pipeline.vsockenc_config import vsockenc_endpoint, vsockenc_properties

__all__ = [
    "Caps",
    "Element",
    "LintResult",
    "Pipeline",
    "PipelineSyntaxError",
    "Prop",
    "Ref",
    "Structure",
    "check_elements",
    "lint",
    "parse",
    "vsockenc_endpoint",
    "vsockenc_properties",
]

_MAX_FIX_ROUNDS = 32


# ── lint ──────────────────────────────────────────────────────────────────────────────


@dataclass
class LintResult(HasFindings):
    pipeline: str  # as given
    parsed: str  # the pipeline as parsed and re-rendered (command-line prefix removed)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational, never a failure
    corrected: str | None = None  # the pipeline with the mechanical fixes, if any applied
    vsockenc: dict[str, Any] | None = None  # vsockenc_properties(), None without vsockenc
    command_line: bool = False  # a pasted gst-launch-1.0 command: positions count in its pipeline

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "helixdiag.lint/v1",
            "status": self.status,
            "pipeline": self.pipeline,
            "parsed": self.parsed,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "corrected": self.corrected,
            "vsockenc": self.vsockenc,
            "command_line": self.command_line,
        }


def _correct(p: Pipeline, issues: list[_Issue], host: str | None, port: int | None) -> str | None:
    """Apply the mechanical fixes one at a time, re-checking after each, until none applies."""
    baseline = text = p.render()
    current, current_issues = p, issues
    for _ in range(_MAX_FIX_ROUNDS):
        for issue in current_issues:
            if issue.fix is None:
                continue
            editor = _Editor(current)
            try:
                issue.fix(editor)
            except _FixUnavailable:
                continue
            new_text = editor.render()
            if new_text == text:
                continue
            try:
                fixed = parse(new_text)
            except PipelineSyntaxError:
                continue  # never offer a correction that is not valid syntax
            current, text = fixed, new_text
            current_issues = _analyse(current, host, port)
            break
        else:
            break
    return text if text != baseline else None


def _check_host(host: str | None) -> str | None:
    if host is None:
        return None
    if _ipv4(host) is None:
        raise UsageError(f"--host {host!r} is not an IPv4 address; vsockenc's tcp-host accepts only IPv4 "
                         "literals (the guest dials 10.0.2.2)")
    return host.strip()


def _check_port(port: int | None) -> int | None:
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise UsageError(f"--port {port!r} is not a TCP port (1..65535)")
    return port


def lint(
    pipeline: str,
    *,
    host: str | None = None,
    port: int | None = None,
    check: bool = False,
    check_timeout: float = 10.0,
) -> LintResult:
    """Check a pipeline string against the known rules; see the module doc.

    `host`/`port` are compared with vsockenc's tcp-host/tcp-port only when given. With
    `check`, the local GStreamer is asked (gst-inspect-1.0, with timeouts) whether each
    element exists. Raises `PipelineSyntaxError` for malformed pipelines and `UsageError`
    for a bad host/port; nothing else."""
    host, port = _check_host(host), _check_port(port)
    p = parse(pipeline)
    issues = _analyse(p, host, port)
    result = LintResult(
        pipeline=pipeline,
        parsed=p.render(),
        findings=[i.finding for i in issues if i.finding is not None],
        notes=[i.note for i in issues if i.note is not None],
        corrected=_correct(p, issues, host, port),
        vsockenc=vsockenc_properties(p) or None,
        command_line=p.command_line,
    )
    if p.command_line:
        result.notes.insert(0, "read as a gst-launch-1.0 command line: the pipeline in its arguments was linted")
    if check:
        findings, notes = check_elements(p, timeout=check_timeout)
        result.findings += findings
        result.notes += notes
    return result
