"""`helixdiag lint PIPELINE`: check a GStreamer pipeline string against the known rules."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape

from helixdiag.cli.options import write_json
from helixdiag.errors import EXIT_FAILURE, EXIT_USAGE
from helixdiag.pipeline import LintResult, PipelineSyntaxError, lint


def _ipv4_host(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an IPv4 address (vsockenc's tcp-host takes only IPv4 literals; "
            "the guest dials 10.0.2.2)"
        ) from None


@click.command("lint")
@click.argument("pipeline", metavar="PIPELINE")
@click.option("--host", metavar="ADDR", callback=_ipv4_host,
              help="The address the guest must dial; compared with vsockenc's tcp-host only when given.")
@click.option("--port", type=click.IntRange(1, 65535), metavar="N",
              help="The port the host listens on; compared with vsockenc's tcp-port (default 15937) "
                   "only when given.")
@click.option("--check", is_flag=True,
              help="Also ask the local GStreamer (gst-inspect-1.0, with timeouts) whether each element "
                   "and property exists.")
@click.option("--json", "json_dest", metavar="PATH|-", help="Write the result as JSON ('-' = stdout only).")
@click.pass_obj
def command(app, pipeline: str, host: str | None, port: int | None, check: bool, json_dest: str | None) -> None:
    """Check a GStreamer pipeline string against the rules Helix learned the hard way.

    PIPELINE is a gst-launch pipeline (quote it for the shell) or '-' to read it from stdin;
    a pasted `gst-launch-1.0 …` command line is accepted too. Every finding names its failure
    id, the offending element (#index, counting elements and caps filters from 0, and the
    character where it starts), the rule it breaks with the rule's source (a page under
    docs/failures/) and the remedy; a corrected pipeline is printed when the fix is
    mechanical.

    Exit codes: 0 no failure (warnings allowed), 1 a failure, 2 a syntax error.

    \b
    Examples:
      helixdiag lint "pipewiresrc ! video/x-raw,format=BGRx ! queue leaky=downstream ! vsockenc"
      helixdiag lint --port 41937 "$(cat pipeline.txt)"
      docker logs <desktop-container> 2>&1 | sed -n 's/.*Pipeline: //p' | tail -1 | helixdiag lint -
    """
    term = app.terminal
    if json_dest == "-":
        term.reserve_stdout()
    text = sys.stdin.read() if pipeline == "-" else pipeline
    try:
        result = lint(text, host=host, port=port, check=check)
    except PipelineSyntaxError as exc:
        if json_dest:
            write_json(app, json_dest, {"schema": "helixdiag.lint/v1", "status": "error", "pipeline": text,
                                        "error": exc.message, "position": exc.position})
        term.error(exc.message)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    if json_dest:
        write_json(app, json_dest, result.to_dict())
    render(app, result)
    if result.status == "fail":
        raise click.exceptions.Exit(EXIT_FAILURE)


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


def render(app, result: LintResult) -> None:
    term = app.terminal
    for finding in result.findings:
        ev = finding.evidence
        term.finding(finding, where=where(ev, command_line=result.command_line))
        term.detail(f"  [muted]evidence: {escape(json.dumps(ev, default=str))}[/muted]", soft_wrap=True)
    for note in result.notes:
        term.print(f"[muted]note:[/muted] {escape(note)}")
    if result.corrected is not None:
        term.print("[hint]corrected pipeline:[/hint]")
        # Raw and unwrapped, so it can be copied as it is.
        term.print(result.corrected, markup=False, soft_wrap=True, highlight=False)
    fails = sum(1 for f in result.findings if f.severity == "fail")
    warns = len(result.findings) - fails
    if result.status == "pass":
        term.print("[pass]PASS[/pass] no rule is broken")
    else:
        style = "fail" if fails else "warn"
        term.print(f"[{style}]{result.status.upper()}[/{style}] {fails} failure{'s' if fails != 1 else ''}, "
                   f"{warns} warning{'s' if warns != 1 else ''}"
                   + ("" if result.corrected is not None else " (no mechanical fix)"))
