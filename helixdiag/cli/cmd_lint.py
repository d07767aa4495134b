"""`helixdiag lint PIPELINE`: check a GStreamer pipeline string against the known rules."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from functools import partial

import click

from helixdiag.cli.options import IntRange, output_file
from helixdiag.cli.reporting import finish
from helixdiag.errors import EXIT_FAILURE, EXIT_USAGE
from helixdiag.pipeline import PipelineSyntaxError, lint
from helixdiag.report import lint_text


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
@click.option("--port", type=IntRange(1, 65535), metavar="N",
              help="The port the host listens on; compared with vsockenc's tcp-port (default 15937) "
                   "only when given.")
@click.option("--check", is_flag=True,
              help="Also ask the local GStreamer (gst-inspect-1.0, with timeouts) whether each element "
                   "and property exists.")
@click.option("--json", "json_dest", metavar="PATH|-", callback=output_file,
              help="Write the result as JSON ('-' = stdout only).")
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
        # --check runs gst-inspect-1.0 once per element: seconds, worth a spinner.
        with term.busy("asking the local GStreamer about each element…") if check else nullcontext():
            result = lint(text, host=host, port=port, check=check)
    except PipelineSyntaxError as exc:
        error = {"schema": "helixdiag.lint/v1", "status": "error", "pipeline": text,
                 "error": exc.message, "position": exc.position}
        finish(app, EXIT_USAGE, show=partial(term.error, exc.message), json_dest=json_dest,
               document=lambda: error)
        return
    finish(app, EXIT_FAILURE if result.status == "fail" else 0, show=partial(lint_text.render, term, result),
           json_dest=json_dest, document=result.to_dict)
