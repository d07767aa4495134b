"""The terminal view of a pipeline lint: each finding with the element it points at and the
rule it breaks, notes, the corrected pipeline, then the verdict line (all that -q leaves)."""

from __future__ import annotations

import json

from rich.markup import escape

from helixdiag.pipeline import LintResult
from helixdiag.terminal import count


def render(terminal, result: LintResult) -> None:
    t = terminal
    for finding in result.findings:
        ev = finding.evidence
        t.finding(finding, where=where(ev, command_line=result.command_line))
        t.detail(f"  [muted]evidence: {escape(json.dumps(ev, default=str))}[/muted]", soft_wrap=True)
    for note in result.notes:
        t.print(f"[muted]note:[/muted] {escape(note)}")
    if result.corrected is not None:
        t.print("[hint]corrected pipeline:[/hint]")
        # Raw and unwrapped, so it can be copied as it is.
        t.print(result.corrected, markup=False, soft_wrap=True, highlight=False)
    fails = sum(1 for f in result.findings if f.severity == "fail")
    warns = len(result.findings) - fails
    if result.status == "pass":
        t.verdict("[pass]PASS[/pass] no rule is broken")
    else:
        style = "fail" if fails else "warn"
        t.verdict(f"[{style}]{result.status.upper()}[/{style}] {count(fails, 'failure')}, "
                  f"{count(warns, 'warning')}"
                  + ("" if result.corrected is not None else " (no mechanical fix)"))


def where(evidence: dict, *, command_line: bool = False, indent: str = "  ") -> str | None:
    """The element a finding points at and the rule it breaks, with where that rule comes from:

        element #1 caps, character 56: video/x-raw,format=BGRx,framerate=30/1
          rule: no fixed framerate in the caps of … (source: docs/failures/gst-pipeline-order.md)
    """
    if "element" not in evidence:
        return None
    what = evidence.get("factory") or "caps"
    if evidence.get("element_name"):
        what += f" {evidence['element_name']!r}"
    position = evidence.get("position", -1)
    at = f", character {position + 1}" if position >= 0 and not command_line else ""
    lines = [f"element #{evidence.get('element_index')} {what}{at}: {evidence['element']}"]
    if evidence.get("source"):
        lines.append(f"{indent}rule: {evidence.get('rule_statement') or evidence.get('rule')} "
                     f"(source: {evidence['source']})")
    return "\n".join(lines)
